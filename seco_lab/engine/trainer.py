"""``fit``: the training loop shared by every method (SeCo, CVRL, DualVar, supervised).

One step: ``out = model(batch)`` (``out["loss"]`` plus detached terms) -> backward ->
optional clipping -> ``optimizer.step()`` -> ``scheduler.step()`` -> ``method.after_step()``.
Under torchrun (``WORLD_SIZE > 1``) the method is wrapped in ``DistributedDataParallel``;
only rank 0 writes the checkpoint, the history and the progress bar. A stop signal (SIGTERM,
SIGUSR1; ``seco_lab.engine.preemption``) ends training at a step boundary with a checkpoint.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from seco_lab.engine import distributed
from seco_lab.engine.checkpoint import (
    CHECKPOINT_FORMAT, CHECKPOINT_NAME, CheckpointError, capture_rng_state, load_checkpoint, preserved_rng,
    remove_unfinished_writes, restore_rng_state, save_checkpoint, seed_everything,
)
from seco_lab.engine.config import SCHEDULE_FIELDS, TrainConfig
from seco_lab.engine.device import (
    autocast_dtype, build_grad_scaler, cuda_kernel_choice, module_to_channels_last, move_batch, resolve_device,
)
from seco_lab.engine.history import HistoryWriter
from seco_lab.engine.preemption import StopRequests, TrainingStopped
from seco_lab.engine.run_lock import run_folder_lock
from seco_lab.engine.sampler import SeededBatchSampler
from seco_lab.engine.schedule import build_optimizer, build_scheduler
from seco_lab.engine.workers import TORCH_WORKER_COUNT_WARNING, training_worker_init, worker_count_note

# torch >= 2.12 renamed DDP's per-forward buffer broadcast; older versions only know the old name
_DDP_BUFFER_SYNC_ARGUMENT = "forward_sync_buffers" if "forward_sync_buffers" in \
    inspect.signature(DistributedDataParallel.__init__).parameters else "broadcast_buffers"
Monitor = Callable[[nn.Module], dict[str, float]]
CONFIG_NAME = "config.json"
# The way out of a checkpoint that cannot be continued, for the command line and for Python.
_START_AFRESH = ("to train afresh, choose another run folder (pretrain --out, or run_dir) or delete this checkpoint "
                "(fit(..., resume=False) overwrites it)")


@dataclass
class TrainResult:
    """What ``fit`` did. ``final_terms``: last logged loss terms (mean over ranks);
    ``samples_per_second``: mean training throughput of this call (0 when nothing ran)."""

    run_dir: Path
    checkpoint_path: Path
    steps: int
    epochs: int
    final_terms: dict[str, float]
    wall_time: float
    samples_per_second: float
    resumed_from_step: int | None
    already_finished: bool


def fit(
    method: nn.Module,
    dataset: Dataset,
    cfg: TrainConfig,
    run_dir: str | Path,
    full_config: dict[str, Any],
    resume: bool = True,
    monitor: Monitor | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``method`` on ``dataset`` following ``cfg``; checkpoints and history go to ``run_dir``.

    ``dataset[i]`` returns a dict of tensors; its optional ``set_epoch(epoch)`` is called at
    every epoch start. ``full_config`` (JSON-able) is written to ``run_dir/config.json`` and
    into every checkpoint. With ``resume=True`` an existing ``run_dir/checkpoint.pt`` is
    continued exactly (on CUDA: with ``cfg.deterministic``), and a finished run loads its weights
    into ``method`` and returns; ``resume=False`` starts afresh and overwrites it.
    ``monitor(method) -> dict`` runs on rank 0 every ``cfg.knn_every`` epochs, without disturbing
    the training RNG, while the other ranks wait for it.
    A SIGTERM or SIGUSR1 received while training saves a checkpoint after the step in progress
    (under torchrun: at the next log flush, every ``cfg.log_every`` steps, so that every process
    stops after the same step) and raises ``TrainingStopped``; ``fit`` again continues from it.
    Under torchrun the process group created here stays up for later ``fit`` calls or
    evaluation and is destroyed at interpreter exit. ``run_dir`` holds one training at a time
    (:func:`~seco_lab.engine.run_lock.run_folder_lock`); a run continued with ``resume=True``
    must have the settings of ``full_config`` it was started with (loading-only ones aside).
    ``fit`` seeds the global torch, numpy and ``random`` generators from ``cfg.seed`` (plus the
    rank) and leaves them as training left them. An epoch is ``len(dataset) // cfg.batch_size``
    steps: the last, partial batch is left out (each epoch's order differs, so no item is left
    out every time).
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"fit: cfg must be a TrainConfig, got {type(cfg).__name__}")
    if not isinstance(full_config, dict):
        raise TypeError(f"fit: full_config must be a dict of the run's settings (saved as config.json, read back by "
                        f"evaluation), got {type(full_config).__name__}")
    try:
        json.dumps(full_config)
    except TypeError as error:
        raise TypeError(f"fit: full_config must be JSON-able ({error})") from None
    device = resolve_device(cfg.device, distributed.env_local_rank(), distributed.env_world_size())
    if device.type == "cuda":
        torch.cuda.set_device(device)  # pinned batches and cuDNN's workspace go to this GPU, not GPU 0
    distributed.init_from_env(use_cuda=device.type == "cuda")
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"fit: run_dir {run_dir} is a file, not a folder for the run")
    with run_folder_lock(run_dir) if distributed.rank() == 0 else contextlib.nullcontext():
        return _TrainingRun(method, dataset, cfg, run_dir, full_config, device, monitor, progress).run(resume)


def distributed_model(method: nn.Module, device: torch.device, find_unused_parameters: bool = False,
                      broadcast_buffers: bool = True) -> DistributedDataParallel:
    """``method`` wrapped in DistributedDataParallel (one GPU per process on CUDA). The buffers
    that ``method.replicated_buffers()`` names (key queues, which every process fills with the
    same gathered keys) are copied from rank 0 once, here, then left out of the copy of rank 0's
    buffers that ``broadcast_buffers`` makes at every forward: they are equal on every process
    anyway, and SeCo's paper queue alone is 64 MB a step."""
    replicated = list(getattr(method, "replicated_buffers", lambda: ())())
    for name in replicated:
        dist.broadcast(method.get_buffer(name), src=0)
    if replicated:
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(method, replicated)
    return DistributedDataParallel(
        method, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters, **{_DDP_BUFFER_SYNC_ARGUMENT: broadcast_buffers},
    )


class _TrainingRun:
    """State of one ``fit`` call (kept in one object so checkpoints can see all of it)."""

    def __init__(self, method: nn.Module, dataset: Dataset, cfg: TrainConfig, run_dir: Path,
                 full_config: dict[str, Any], device: torch.device, monitor: Monitor | None,
                 progress: bool) -> None:
        self.cfg = cfg
        self.dataset = dataset
        self.run_dir = run_dir
        self.full_config = full_config
        self.device = device
        self.monitor = monitor
        self.progress = progress
        self.world_size = distributed.world_size()
        self.rank = distributed.rank()
        self.is_main = self.rank == 0
        self.method_name = str(getattr(method, "name", type(method).__name__))
        self.checkpoint_path = run_dir / CHECKPOINT_NAME
        self.sampler = SeededBatchSampler(len(dataset), cfg.batch_size, self.world_size, self.rank,
                                          cfg.seed)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.warmup_steps = round(cfg.warmup_epochs * self.steps_per_epoch)
        self.use_channels_last = cfg.channels_last and device.type == "cuda"
        self.frame_encoder = getattr(method, "encoder_kind", None) == "2d"
        self.amp_dtype = autocast_dtype(device, cfg.amp)

        if self.world_size > 1 and cfg.sync_bn:
            if device.type == "cuda":
                method = nn.SyncBatchNorm.convert_sync_batchnorm(method)
            else:
                warnings.warn("sync_bn=True ignored: torch's SyncBatchNorm runs on GPUs only, "
                              "so each CPU process normalises its own batch", stacklevel=3)
        self.method = method.to(device)
        if self.use_channels_last:
            module_to_channels_last(self.method)
        self.optimizer = build_optimizer(self.method, cfg)
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, self.warmup_steps)
        self.scaler = build_grad_scaler(self.amp_dtype)

        self.step = 0
        self.epoch = 0
        self.step_in_epoch = 0
        self.previous_wall_time = 0.0
        self.last_terms: dict[str, float] = {}
        self.pending: list[tuple[dict[str, Any], dict[str, torch.Tensor]]] = []
        self.saved_step: int | None = None  # of the checkpoint in run_dir that this run wrote or resumed from
        self.stop_requests = StopRequests()
        self.stop_requested_anywhere = False  # by any process, as of the last log flush

    # ----------------------------------------------------------------------------- run
    def run(self, resume: bool) -> TrainResult:
        checkpoint = None
        if resume and self.checkpoint_path.exists():
            checkpoint = load_checkpoint(self.checkpoint_path)
            self._check_compatible(checkpoint)
        self._check_same_start(checkpoint)
        if checkpoint is not None and checkpoint["finished"]:
            self.method.load_state_dict(checkpoint["model"])
            return TrainResult(self.run_dir, self.checkpoint_path, checkpoint["step"],
                               checkpoint["epoch"], {}, checkpoint.get("wall_time", 0.0), 0.0,
                               checkpoint["step"], already_finished=True)
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            remove_unfinished_writes(self.checkpoint_path)  # of a process killed mid-save
            _write_json_atomic(self.run_dir / CONFIG_NAME, self.full_config)
        if checkpoint is None:
            seed_everything(self.cfg.seed + self.rank)
        else:
            self._restore(checkpoint)
        resumed_from = None if checkpoint is None else self.step
        history = HistoryWriter(self.run_dir, resumed_from) if self.is_main else None
        distributed.barrier()  # history truncated before any rank moves on
        worker_note = worker_count_note(self.cfg.num_workers)
        if worker_note and self.is_main:
            warnings.warn(worker_note, stacklevel=3)
        bar = tqdm(total=self.total_steps, initial=self.step, desc=f"train {self.method_name}",
                   unit="step", dynamic_ncols=True, disable=not (self.progress and self.is_main))
        self.history, self.bar = history, bar
        session_start = time.perf_counter()
        session_steps = self.step
        try:
            with self.stop_requests, warnings.catch_warnings(), \
                    cuda_kernel_choice(self.device, self.cfg.deterministic):
                warnings.filterwarnings("ignore", message=TORCH_WORKER_COUNT_WARNING, category=UserWarning)
                self._train(session_start)
        finally:
            bar.close()
            if history is not None:
                history.close()
        elapsed = time.perf_counter() - session_start
        samples = (self.step - session_steps) * self.cfg.batch_size
        return TrainResult(self.run_dir, self.checkpoint_path, self.step, self.epoch,
                           dict(self.last_terms), self.previous_wall_time + elapsed,
                           samples / elapsed if elapsed > 0 else 0.0, resumed_from,
                           already_finished=False)

    def _train(self, session_start: float) -> None:
        model: nn.Module = self.method
        if self.world_size > 1:
            model = distributed_model(self.method, self.device, self.cfg.find_unused_parameters,
                                      self.cfg.broadcast_buffers)
        self.method.train()
        # A dataset that takes (epoch, index) items keeps its workers alive across epochs: the
        # batch sampler (in this process) tells every item its epoch.
        persistent = bool(getattr(self.dataset, "accepts_epoch_index", False)) and self.cfg.num_workers > 0
        self.sampler.with_epoch = persistent
        # On a CPU the workers take the cores the step leaves idle (seco_lab.engine.workers).
        worker_init = training_worker_init(self.cfg.worker_nice if self.device.type == "cpu" else 0)
        persistent_loader = DataLoader(
            self.dataset, batch_sampler=self.sampler, num_workers=self.cfg.num_workers,
            pin_memory=self.device.type == "cuda", persistent_workers=True, worker_init_fn=worker_init,
            generator=torch.Generator().manual_seed(self.cfg.seed * 100_003),
        ) if persistent else None
        while self.epoch < self.cfg.epochs:
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(self.epoch)
            self.sampler.set_epoch(self.epoch, self.step_in_epoch)
            loader = persistent_loader or DataLoader(
                self.dataset, batch_sampler=self.sampler, num_workers=self.cfg.num_workers,
                pin_memory=self.device.type == "cuda", worker_init_fn=worker_init,
                # the loader draws its worker base seed from here, never from the global RNG
                generator=torch.Generator().manual_seed(self.cfg.seed * 100_003 + self.epoch),
            )
            step_start = time.perf_counter()
            for batch in loader:
                lr = self.optimizer.param_groups[0]["lr"]
                terms = self._optimisation_step(model, batch)
                self.step += 1
                self.step_in_epoch += 1
                now = time.perf_counter()
                self.pending.append(({
                    "type": "step", "step": self.step, "epoch": self.epoch, "lr": lr,
                    "samples_per_s": self.cfg.batch_size / max(now - step_start, 1e-9),
                    "wall_time": self.previous_wall_time + now - session_start,
                }, terms))
                step_start = now
                self.bar.update(1)
                if self.step % self.cfg.log_every == 0:
                    self._flush_log()
                mid_epoch = self.step_in_epoch < self.steps_per_epoch
                if mid_epoch and self._stop_agreed():
                    self._save(session_start)
                    raise self._stopped()
                if self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0 and mid_epoch:
                    self._save(session_start)
            self.epoch += 1
            self.step_in_epoch = 0
            self._flush_log()
            if self.monitor is not None and self.cfg.knn_every and self.epoch % self.cfg.knn_every == 0:
                self._run_monitor()
                self.bar.unpause()  # the step rate shown leaves the monitor's time out
            self._save(session_start)
            if self.epoch < self.cfg.epochs and self._stop_agreed():
                raise self._stopped()

    def _optimisation_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        batch = move_batch(batch, self.device, self.use_channels_last, frame_encoder=self.frame_encoder)
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype) \
            if self.amp_dtype is not None else contextlib.nullcontext()
        with autocast:
            out = model(batch)
        loss = _check_output(out, self.method_name)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(
                [p for group in self.optimizer.param_groups for p in group["params"]], self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        after_step = getattr(self.method, "after_step", None)
        if after_step is not None:
            after_step()
        return {name: value.detach().float().reshape(()) for name, value in out.items()
                if isinstance(value, torch.Tensor) and value.numel() == 1}

    # ------------------------------------------------------------------------- logging
    def _flush_log(self) -> None:
        """Write pending step records: one device sync and (DDP) one all-reduce per flush;
        logged terms are means over ranks. The all-reduce also carries whether each process
        received a stop signal, so all of them learn it after the same step."""
        if not self.pending:
            return
        names = [sorted(terms) for _, terms in self.pending]
        stop_requested = torch.tensor([float(self.stop_requests.received is not None)], device=self.device)
        values = torch.cat([torch.stack([terms[name] for name in step_names]) if step_names
                            else torch.zeros(0, device=self.device)
                            for step_names, (_, terms) in zip(names, self.pending)] + [stop_requested])
        if self.world_size > 1:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
            values = values / self.world_size
        flat = values.cpu().tolist()
        self.stop_requested_anywhere = self.stop_requested_anywhere or flat.pop() > 0
        offset = 0
        for step_names, (record, _) in zip(names, self.pending):
            step_terms = dict(zip(step_names, flat[offset:offset + len(step_names)]))
            offset += len(step_names)
            if not math.isfinite(step_terms.get("loss", 0.0)):
                non_finite = [f"{name} {value}" for name, value in step_terms.items()
                              if name != "loss" and not math.isfinite(value)]
                raise FloatingPointError(
                    f"{self.method_name}: loss is {step_terms['loss']} at step {record['step']} "
                    f"(epoch {record['epoch']}, lr {record['lr']:.3g}; "
                    f"{'terms: ' + ', '.join(non_finite) if non_finite else 'every term finite'}); "
                    f"{self._divergence_advice()}"
                )
            self.last_terms = step_terms
            if self.history is not None:
                self.history.write({**record, **step_terms})
        self.pending.clear()
        if self.history is not None:
            self.history.flush()
        if "loss" in self.last_terms:
            self.bar.set_postfix(loss=f"{self.last_terms['loss']:.4f}", refresh=False)

    def _divergence_advice(self) -> str:
        kept = f"the checkpoint of step {self.saved_step} is kept: {self.checkpoint_path}" \
            if self.saved_step is not None else "no checkpoint was written"
        return f"lower base_lr (or, calling fit, set grad_clip); {kept}"

    def _check_finite_state(self) -> None:
        """Refuse to checkpoint weights or buffers that are no longer finite, so the checkpoint on
        disk stays the last good one. The logged loss can still be finite then: BatchNorm's running
        statistics, for one, can overflow a step before any output does. Under DDP every process
        checks its own state and all of them learn whether any failed."""
        state = [(name, tensor) for name, tensor in self.method.state_dict().items() if tensor.is_floating_point()]
        finite = torch.stack([torch.isfinite(tensor).all() for _, tensor in state]).float()  # (T,)
        everywhere = finite.min().reshape(1)
        if self.world_size > 1:
            dist.all_reduce(everywhere, op=dist.ReduceOp.MIN)
        if everywhere.item() == 1.0:
            return
        names = [name for (name, _), ok in zip(state, finite.tolist()) if not ok]
        if not names:
            where = "the state of another process is"
        else:
            where = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "") + \
                (" is" if len(names) == 1 else " are")
        raise FloatingPointError(
            f"{self.method_name}: {where} no longer finite after step {self.step} of {self.total_steps} ("
            f"last logged loss {self.last_terms.get('loss', float('nan')):.4g}); {self._divergence_advice()}"
        )

    def _stop_agreed(self) -> bool:
        """Whether to stop after this step: in one process as soon as it received a stop signal;
        under DDP once a log flush, which every process does after the same steps, told that
        one of them did."""
        if self.world_size == 1:
            return self.stop_requests.received is not None
        return self.stop_requested_anywhere

    def _stopped(self) -> TrainingStopped:
        return TrainingStopped(self.stop_requests.received, self.step, self.total_steps, self.checkpoint_path)

    def _run_monitor(self) -> None:
        distributed.main_rank_only(self._monitor_on_main_rank)  # the others wait, however long it takes

    def _monitor_on_main_rank(self) -> None:
        with preserved_rng():
            metrics = self.monitor(self.method)
        self.method.train()
        if not isinstance(metrics, dict):
            raise TypeError(f"the monitor must return a dict of numbers, got {type(metrics).__name__}")
        if self.history is not None:
            self.history.write({"type": "monitor", "step": self.step, "epoch": self.epoch,
                                **{key: float(value) for key, value in metrics.items()}})
            self.history.flush()
        if self.progress:
            self.bar.write(f"epoch {self.epoch}: " + ", ".join(
                f"{key} {float(value):.4g}" for key, value in metrics.items()))

    # ------------------------------------------------------------------- checkpointing
    def _save(self, session_start: float) -> None:
        self._flush_log()
        self._check_finite_state()
        rng_states = [capture_rng_state()]
        if self.world_size > 1:
            rng_states = [None] * self.world_size
            dist.all_gather_object(rng_states, capture_rng_state())
        if self.is_main:
            save_checkpoint({
                "format": CHECKPOINT_FORMAT,
                "method": self.method_name,
                "model": self.method.state_dict(),
                "config": self.full_config,
                "train_config": self.cfg.to_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "step": self.step,
                "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch,
                "steps_per_epoch": self.steps_per_epoch,
                "total_steps": self.total_steps,
                "finished": self.step >= self.total_steps,
                "wall_time": self.previous_wall_time + time.perf_counter() - session_start,
                "data_order": {"seed": self.cfg.seed, "epoch": self.epoch,
                               "step_in_epoch": self.step_in_epoch,
                               "batch_size": self.cfg.batch_size, "num_items": len(self.dataset)},
                "rng": rng_states,
                "world_size": self.world_size,
            }, self.checkpoint_path)
        distributed.barrier()
        self.saved_step = self.step

    def _check_same_start(self, checkpoint: dict[str, Any] | None) -> None:
        """Every process continues from the same checkpoint step, or all start afresh. A checkpoint
        that only some processes see (a run folder on one machine's own disk) would otherwise
        leave them training different steps and waiting for each other forever."""
        start = -1 if checkpoint is None else int(checkpoint["step"])
        starts = distributed.all_gather_no_grad(torch.tensor([start], device=self.device)).tolist()  # (W,)
        if len(set(starts)) > 1:
            seen = ", ".join(f"rank {index}: " + ("no checkpoint" if step < 0 else f"step {step}")
                             for index, step in enumerate(starts))
            raise CheckpointError(
                f"{self.checkpoint_path}: the processes do not see the same checkpoint ({seen}); on several "
                f"machines the run folder must be on a filesystem that every machine sees at the same path"
            )

    def _check_compatible(self, checkpoint: dict[str, Any]) -> None:
        path = self.checkpoint_path
        if checkpoint["method"] != self.method_name:
            raise CheckpointError(
                f"{path}: holds method {checkpoint['method']!r}, not {self.method_name!r}; {_START_AFRESH}"
            )
        current = self.cfg.to_dict()
        changed = [f"{name}={checkpoint['train_config'].get(name)!r} (now {current[name]!r})"
                   for name in SCHEDULE_FIELDS if checkpoint["train_config"].get(name) != current[name]]
        if changed:
            raise CheckpointError(
                f"{path}: written with {', '.join(changed)}; these fix the data order and lr "
                f"schedule, so the run cannot continue: {_START_AFRESH}"
            )
        changed_settings = config_changes(checkpoint.get("config") or {}, self.full_config,
                                          ignore=LOADING_ONLY_SETTINGS, shared_only=True)
        if changed_settings:
            raise CheckpointError(
                f"{path}: written by a run with other settings ({'; '.join(changed_settings)}); continuing it would "
                f"train its later steps with them: {_START_AFRESH}"
            )
        num_items = checkpoint.get("data_order", {}).get("num_items")
        if num_items != len(self.dataset):
            raise CheckpointError(
                f"{path}: trained on {num_items} items but the dataset now has {len(self.dataset)}; {_START_AFRESH}"
            )

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        self.method.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.step = checkpoint["step"]
        self.saved_step = self.step
        self.epoch = checkpoint["epoch"]
        self.step_in_epoch = checkpoint["step_in_epoch"]
        self.previous_wall_time = float(checkpoint.get("wall_time", 0.0))
        rng_states = checkpoint["rng"]
        if len(rng_states) == self.world_size:
            restore_rng_state(rng_states[self.rank])
        else:
            seed_everything(self.cfg.seed + self.rank + self.step)
            if self.is_main:
                warnings.warn(
                    f"{self.checkpoint_path}: written by a run of {len(rng_states)} process(es), resumed by "
                    f"{self.world_size}: it continues from step {self.step} with the same global batches, but its "
                    "random draws (augmentations) and per-process BatchNorm statistics differ from the interrupted "
                    "run's, so it will not end with the weights an uninterrupted run would have", stacklevel=2)


# Settings that change how batches are loaded or which kernels compute a step, not what is trained:
# a run may continue with others.
LOADING_ONLY_SETTINGS = ("data.frame_cache", "data.num_workers", "train.deterministic")


def config_changes(saved: dict[str, Any], current: dict[str, Any], ignore: Collection[str] = (),
                   shared_only: bool = False, prefix: str = "") -> list[str]:
    """``section.key saved -> current`` for each setting whose value differs (nested dicts walked),
    leaving out the dotted names in ``ignore``; ``shared_only`` compares only the settings both
    hold (one only one of them holds is newer or older than the run)."""
    changes = []
    keys = set(saved) & set(current) if shared_only else set(saved) | set(current)
    for key in sorted(keys, key=str):
        name, before, now = f"{prefix}{key}", saved.get(key), current.get(key)
        if before == now or name in ignore:
            continue
        if isinstance(before, dict) and isinstance(now, dict):
            changes.extend(config_changes(before, now, ignore, shared_only, f"{name}."))
        else:
            changes.append(f"{name} {before!r} -> {now!r}")
    return changes


def _check_output(out: Any, method_name: str) -> torch.Tensor:
    if not isinstance(out, dict) or "loss" not in out:
        raise TypeError(
            f"{method_name}.forward must return a dict with a 'loss' tensor, got "
            f"{type(out).__name__}{' with keys ' + ', '.join(out) if isinstance(out, dict) else ''}"
        )
    loss = out["loss"]
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
        raise TypeError(
            f"{method_name}.forward: 'loss' must be a one-element tensor that requires grad"
        )
    return loss


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)
