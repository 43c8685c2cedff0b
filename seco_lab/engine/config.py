"""``TrainConfig``: every knob of the shared training loop, validated on construction."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from seco_lab.engine.workers import MAX_NICENESS

OPTIMIZERS = ("sgd", "adamw")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
DEVICE_CHOICES = "'auto', 'cpu', 'cuda' or 'cuda:N'"


class TrainConfigError(ValueError):
    """A ``TrainConfig`` field holds a value the trainer cannot use."""


@dataclass
class TrainConfig:
    """Hyperparameters of ``fit``.

    ``batch_size`` is the GLOBAL batch (summed over all processes); under torchrun each of
    the ``W`` processes loads ``batch_size / W`` items per step, so a run gives the same global
    batches and learning rate whatever ``W`` is. Its weights differ with ``W``: each process
    seeds its own random draws (``seed + rank``) and BatchNorm normalises over each process's
    share of the batch (unless ``sync_bn``). The same ``W`` and seed give the same weights (on
    CUDA only with ``deterministic``, which replaces cuDNN's autotuned kernels by deterministic
    ones: :func:`~seco_lab.engine.device.cuda_kernel_choice`).
    The learning rate is ``base_lr * batch_size / lr_scaling_batch`` (``lr_scaling_batch=0``:
    no scaling), warmed up linearly for ``warmup_epochs`` then cosine-decayed to 0, per step.
    ``amp`` and ``channels_last`` act on CUDA only. ``checkpoint_every`` counts steps
    (0: checkpoint at epoch ends only); ``knn_every`` counts epochs between ``monitor`` calls
    (0: never); ``log_every`` counts steps between progress-bar/history flushes.
    ``weight_decay`` applies to weight matrices and kernels; biases and normalisation parameters
    get it too only with ``decay_norm_and_bias`` (MoCo's code decays every parameter, CVRL's
    conv/linear weights only). ``momentum`` is SGD's momentum, or AdamW's beta1 (beta2 = 0.999). Under DDP,
    ``find_unused_parameters`` is needed by methods with switched-off losses, and
    ``broadcast_buffers`` re-sends rank 0's buffers (BN statistics; not the key queues, which every process
    fills alike: ``distributed_model``) at every forward.
    ``worker_nice`` (0-19, Unix, CPU training only) raises the nice value of the DataLoader
    workers so that they make batches while the step leaves a core idle instead of taking cores
    from its threads (``seco_lab.engine.workers``); 0 leaves them as they are.
    """

    epochs: int
    batch_size: int
    base_lr: float
    lr_scaling_batch: int = 256
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    decay_norm_and_bias: bool = False
    warmup_epochs: float = 0.0
    grad_clip: float | None = None
    num_workers: int = 0
    worker_nice: int = 19
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    checkpoint_every: int = 0
    seed: int = 0
    sync_bn: bool = False
    knn_every: int = 0
    log_every: int = 10
    find_unused_parameters: bool = False
    broadcast_buffers: bool = True
    deterministic: bool = False

    def __post_init__(self) -> None:
        _require_int("epochs", self.epochs, minimum=1)
        _require_int("batch_size", self.batch_size, minimum=1)
        _require_number("base_lr", self.base_lr, minimum=0.0, exclusive=True)
        _require_int("lr_scaling_batch", self.lr_scaling_batch, minimum=0)
        if self.optimizer not in OPTIMIZERS:
            raise TrainConfigError(
                f"TrainConfig.optimizer={self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}"
            )
        _require_number("momentum", self.momentum, minimum=0.0)
        if self.momentum >= 1.0:
            raise TrainConfigError(f"TrainConfig.momentum={self.momentum}: must be in [0, 1)")
        _require_number("weight_decay", self.weight_decay, minimum=0.0)
        _require_number("warmup_epochs", self.warmup_epochs, minimum=0.0)
        if self.warmup_epochs > self.epochs:
            raise TrainConfigError(
                f"TrainConfig.warmup_epochs={self.warmup_epochs} exceeds epochs={self.epochs}: the warm-up must "
                f"fit in the run, so shorten it too (pretrain --set train.warmup_epochs=N)"
            )
        if self.grad_clip is not None:
            _require_number("grad_clip", self.grad_clip, minimum=0.0, exclusive=True)
        _require_int("num_workers", self.num_workers, minimum=0)
        _require_int("worker_nice", self.worker_nice, minimum=0)
        if self.worker_nice > MAX_NICENESS:
            raise TrainConfigError(f"TrainConfig.worker_nice={self.worker_nice}: must be at most {MAX_NICENESS}")
        if not isinstance(self.device, str) or not DEVICE_PATTERN.match(self.device):
            raise TrainConfigError(
                f"TrainConfig.device={self.device!r}: choose {DEVICE_CHOICES}"
            )
        for flag in ("amp", "channels_last", "sync_bn", "find_unused_parameters",
                     "broadcast_buffers", "decay_norm_and_bias", "deterministic"):
            if not isinstance(getattr(self, flag), bool):
                raise TrainConfigError(
                    f"TrainConfig.{flag}={getattr(self, flag)!r}: must be True or False"
                )
        _require_int("checkpoint_every", self.checkpoint_every, minimum=0)
        _require_int("seed", self.seed, minimum=0)
        _require_int("knn_every", self.knn_every, minimum=0)
        _require_int("log_every", self.log_every, minimum=1)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from a plain dict (e.g. a profile's ``"train"`` section); unknown keys are errors."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TrainConfigError(
                f"unknown TrainConfig field(s) {', '.join(unknown)}: valid fields are "
                f"{', '.join(sorted(known))}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        return dataclasses.asdict(self)


SCHEDULE_FIELDS = ("epochs", "batch_size", "base_lr", "lr_scaling_batch", "optimizer", "momentum",
                   "weight_decay", "warmup_epochs", "seed")
"""Fields a resumed run must share with its checkpoint (they fix the data order and lr curve)."""


def _require_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TrainConfigError(f"TrainConfig.{name}={value!r}: must be an integer >= {minimum}")


def _require_number(name: str, value: Any, minimum: float, exclusive: bool = False) -> None:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or value < minimum or (exclusive and value == minimum):
        relation = ">" if exclusive else ">="
        raise TrainConfigError(f"TrainConfig.{name}={value!r}: must be a number {relation} {minimum}")
