"""Engine pieces: lr schedule, weight-decay groups, config validation, devices, data order, fit."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from _processes import all_ended
from _toy_method import INPUT_DIM, ToyMoCo, ToyPairDataset
from seco_lab.engine import (
    CheckpointError, DeviceError, TrainConfig, TrainConfigError, autocast_dtype, fit, load_checkpoint, load_history, lr_at,
    parameter_groups, resolve_device,
)
from seco_lab.engine.checkpoint import capture_rng_state, preserved_rng, restore_rng_state
from seco_lab.engine.device import build_grad_scaler, cuda_kernel_choice, move_batch
from seco_lab.engine.sampler import SeededBatchSampler, epoch_order, rank_batches
from seco_lab.engine.schedule import build_optimizer, build_scheduler, scaled_lr
from seco_lab.engine.workers import lower_worker_priority, training_worker_init


# ------------------------------------------------------------------------------ schedule
def test_lr_warmup_is_linear_and_reaches_base():
    base = 0.4
    assert [lr_at(step, 100, 4, base) for step in range(4)] == pytest.approx([0.1, 0.2, 0.3, 0.4])


def test_lr_cosine_after_warmup_follows_the_formula():
    base, total, warmup = 0.4, 100, 4
    for step in (4, 10, 52, 99):
        progress = (step - warmup) / (total - warmup)
        assert lr_at(step, total, warmup, base) == pytest.approx(base * 0.5 * (1 + math.cos(math.pi * progress)))
    assert lr_at(4, total, warmup, base) == pytest.approx(base)
    assert lr_at(52, total, warmup, base) == pytest.approx(base / 2)


def test_lr_without_warmup_starts_at_base_and_decays_to_near_zero():
    assert lr_at(0, 10, 0, 1.0) == pytest.approx(1.0)
    assert 0 < lr_at(9, 10, 0, 1.0) < 0.03


@pytest.mark.parametrize("total, warmup", [(0, 0), (10, 11), (10, -1)])
def test_lr_rejects_impossible_schedules(total, warmup):
    with pytest.raises(ValueError, match="warmup_steps"):
        lr_at(0, total, warmup, 1.0)


def test_scheduler_sets_lr_at_every_iteration():
    parameter = nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([parameter], lr=0.3)
    scheduler = build_scheduler(optimizer, total_steps=12, warmup_steps=3)
    seen = []
    for _ in range(12):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([lr_at(step, 12, 3, 0.3) for step in range(12)])


def test_weight_decay_groups_exclude_biases_norms_and_frozen_parameters():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(2, 3, 5, 5))
    frozen = nn.Linear(2, 2)
    for parameter in frozen.parameters():
        parameter.requires_grad = False
    container = nn.ModuleDict({"trained": model, "frozen": frozen})
    groups = parameter_groups(container, weight_decay=0.05)
    decay, no_decay = groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[3].weight)}
    assert {id(p) for p in no_decay["params"]} == {
        id(model[0].bias), id(model[1].weight), id(model[1].bias), id(model[3].bias)}


def test_decay_of_norms_and_biases_keeps_the_two_groups():
    """MoCo's recipe decays every parameter; the groups stay two so that an optimiser state fits."""
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    decay, no_decay = parameter_groups(model, weight_decay=0.05, decay_norm_and_bias=True)
    assert decay["weight_decay"] == no_decay["weight_decay"] == 0.05
    assert {id(p) for p in no_decay["params"]} == {id(model[0].bias), id(model[1].weight), id(model[1].bias)}
    sgd = build_optimizer(model, TrainConfig(epochs=1, batch_size=8, base_lr=0.1, decay_norm_and_bias=True))
    assert [group["weight_decay"] for group in sgd.param_groups] == [1e-4, 1e-4]
    with pytest.raises(TrainConfigError, match="decay_norm_and_bias='yes': must be True or False"):
        TrainConfig(epochs=1, batch_size=8, base_lr=0.1, decay_norm_and_bias="yes")


def test_optimizer_uses_scaled_lr_and_chosen_algorithm():
    model = nn.Linear(3, 2)
    sgd = build_optimizer(model, TrainConfig(epochs=1, batch_size=512, base_lr=0.1, lr_scaling_batch=256))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["lr"] == pytest.approx(0.2)
    assert sgd.param_groups[0]["momentum"] == 0.9
    adamw = build_optimizer(model, TrainConfig(epochs=1, batch_size=512, base_lr=0.1, lr_scaling_batch=0,
                                               optimizer="adamw"))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["lr"] == pytest.approx(0.1)
    assert scaled_lr(0.3, 1024, 256) == pytest.approx(1.2)


# -------------------------------------------------------------------------------- config
@pytest.mark.parametrize("field, value, message", [
    ("optimizer", "adam", "optimizer='adam': choose one of sgd, adamw"),
    ("device", "tpu", "device='tpu': choose 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ("epochs", 0, "epochs=0: must be an integer >= 1"),
    ("base_lr", 0.0, "base_lr=0.0: must be a number > 0"),
    ("momentum", 1.0, "momentum=1.0: must be in"),
    ("grad_clip", -1.0, "grad_clip=-1.0"),
    ("warmup_epochs", 5, "warmup_epochs=5 exceeds epochs=2"),
    ("amp", "yes", "amp='yes': must be True or False"),
    ("worker_nice", 20, "worker_nice=20: must be at most 19"),
    ("worker_nice", -1, "worker_nice=-1: must be an integer >= 0"),
])
def test_train_config_errors_name_the_field(field, value, message):
    with pytest.raises(TrainConfigError) as error:
        TrainConfig(**{"epochs": 2, "batch_size": 4, "base_lr": 0.1, field: value})
    assert message in str(error.value)


def test_train_config_from_dict_rejects_unknown_keys_and_round_trips():
    cfg = TrainConfig.from_dict({"epochs": 3, "batch_size": 8, "base_lr": 1e-3, "optimizer": "adamw"})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    json.dumps(cfg.to_dict())
    with pytest.raises(TrainConfigError, match="unknown TrainConfig field.*lr_sched"):
        TrainConfig.from_dict({"epochs": 3, "batch_size": 8, "base_lr": 1e-3, "lr_sched": "cos"})


# ------------------------------------------------------------------------------- devices
def test_auto_device_is_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_device_on_this_machine():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("spec", ["cuda", "cuda:0"])
def test_cuda_without_cuda_is_a_clear_error(monkeypatch, spec):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device(spec)


def test_unknown_device_names_the_choices():
    with pytest.raises(DeviceError, match="unknown device 'gpu'.*'auto', 'cpu'"):
        resolve_device("gpu")


def test_cuda_devices_follow_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda:0", local_rank=1) == torch.device("cuda", 0)
    with pytest.raises(DeviceError, match="cuda:3.*only 2"):
        resolve_device("cuda:3")


def test_several_processes_each_take_the_gpu_of_their_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1", local_rank=0, world_size=1) == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match="'cuda:1' for 2 processes.*'cuda' or 'auto'"):
        resolve_device("cuda:1", local_rank=0, world_size=2)
    assert resolve_device("auto", local_rank=1, world_size=2) == torch.device("cuda", 1)
    for spec in ("auto", "cuda"):
        with pytest.raises(DeviceError, match="cuda:2.*only 2.*LOCAL_RANK is 2: start at most 2 processes"):
            resolve_device(spec, local_rank=2, world_size=4)


def test_fit_makes_its_gpu_the_current_device(monkeypatch, tmp_path):
    """Training on cuda:1 sets it current before anything is pinned or allocated (else GPU 0)."""
    chosen: list[torch.device] = []

    class Chosen(Exception):
        pass

    def set_device(device: torch.device) -> None:
        chosen.append(device)
        raise Chosen

    monkeypatch.setattr("seco_lab.engine.trainer.resolve_device", lambda *args: torch.device("cuda", 1))
    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    with pytest.raises(Chosen):
        fit(ToyMoCo(queue_size=8), ToyPairDataset(8), TrainConfig(epochs=1, batch_size=4, base_lr=0.1),
            tmp_path / "run", {"method": "toy"}, progress=False)
    assert chosen == [torch.device("cuda", 1)]


@pytest.mark.parametrize("deterministic", [False, True])
def test_cuda_kernel_choice_sets_the_flags_for_training_and_restores_them(monkeypatch, deterministic):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    cudnn = torch.backends.cudnn
    before = (cudnn.benchmark, cudnn.deterministic, torch.are_deterministic_algorithms_enabled())
    with pytest.raises(RuntimeError, match="stopped"):
        with cuda_kernel_choice(torch.device("cuda", 0), deterministic):
            assert cudnn.benchmark is not deterministic and cudnn.deterministic is deterministic
            assert torch.are_deterministic_algorithms_enabled() is deterministic
            assert ("CUBLAS_WORKSPACE_CONFIG" in os.environ) is deterministic
            raise RuntimeError("stopped")
    assert (cudnn.benchmark, cudnn.deterministic, torch.are_deterministic_algorithms_enabled()) == before
    with cuda_kernel_choice(torch.device("cpu"), deterministic=not deterministic):
        assert (cudnn.benchmark, cudnn.deterministic, torch.are_deterministic_algorithms_enabled()) == before


def pretend_cuda_devices(monkeypatch, capabilities: list[tuple[int, int]]) -> None:
    """CUDA devices of the given compute capabilities, each able to emulate bfloat16 as torch's
    ``is_bf16_supported()`` finds when it creates a bfloat16 tensor on a pre-Ampere GPU."""
    def properties(device: torch.device | int | None = None) -> SimpleNamespace:
        major, minor = capabilities[torch.cuda._get_device_index(device, optional=True)]
        return SimpleNamespace(major=major, minor=minor)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", properties)
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda device: True)


@pytest.mark.parametrize("capability, expected", [((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16),
                                                  ((7, 5), torch.float16), ((7, 0), torch.float16)])
def test_autocast_dtype_is_bf16_only_where_the_gpu_has_it_natively(monkeypatch, capability, expected):
    pretend_cuda_devices(monkeypatch, [capability])
    assert autocast_dtype(torch.device("cuda", 0), amp=True) == expected
    assert autocast_dtype(torch.device("cuda", 0), amp=False) is None
    assert build_grad_scaler(autocast_dtype(torch.device("cuda", 0), amp=True)).is_enabled() == \
        (expected == torch.float16)


def test_autocast_dtype_asks_the_training_device_not_the_current_one(monkeypatch):
    pretend_cuda_devices(monkeypatch, [(8, 0), (7, 0)])
    assert autocast_dtype(torch.device("cuda", 1), amp=True) == torch.float16


def test_no_autocast_and_no_scaler_on_cpu(monkeypatch):
    pretend_cuda_devices(monkeypatch, [(8, 0)])
    assert autocast_dtype(torch.device("cpu"), amp=True) is None
    assert not build_grad_scaler(None).is_enabled()
    assert not build_grad_scaler(torch.bfloat16).is_enabled()


def test_move_batch_uses_channels_last_layouts_for_float_images():
    batch = {"frames": torch.rand(2, 3, 4, 5), "clips": torch.rand(2, 3, 2, 4, 5),
             "label": torch.tensor([1, 2]), "name": ["a", "b"]}
    moved = move_batch(batch, torch.device("cpu"), channels_last=True)
    assert moved["frames"].is_contiguous(memory_format=torch.channels_last)
    assert not moved["frames"].is_contiguous()
    assert moved["clips"].is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(moved["frames"], batch["frames"]) and torch.equal(moved["clips"], batch["clips"])
    assert moved["label"].is_contiguous() and moved["name"] == ["a", "b"]
    plain = move_batch(batch, torch.device("cpu"), channels_last=False)
    assert plain["frames"].is_contiguous()


def test_move_batch_gives_a_frame_encoders_frame_stacks_channels_last_frames():
    """(B, K, C, H, W) stacks for a 2D encoder: flattened to (B * K, C, H, W) without a copy, and
    channels-last (as channels_last_3d, the clip layout, they would be neither)."""
    stacks = torch.rand(2, 3, 4, 5, 6)
    moved = move_batch({"x": stacks}, torch.device("cpu"), channels_last=True, frame_encoder=True)["x"]
    assert torch.equal(moved, stacks)
    frames = moved.flatten(0, 1)
    assert frames.data_ptr() == moved.data_ptr()
    assert frames.is_contiguous(memory_format=torch.channels_last) and not frames.is_contiguous()


# ---------------------------------------------------------------------------- data order
def test_epoch_order_is_seeded_per_epoch():
    assert np.array_equal(epoch_order(50, seed=1, epoch=2), epoch_order(50, seed=1, epoch=2))
    assert not np.array_equal(epoch_order(50, seed=1, epoch=2), epoch_order(50, seed=1, epoch=3))
    assert sorted(epoch_order(50, seed=1, epoch=2)) == list(range(50))


def test_rank_batches_concatenate_to_the_single_process_batches():
    order = epoch_order(22, seed=0, epoch=0)
    single = rank_batches(order, global_batch=6, world_size=1, rank=0)  # (3, 6): tail of 4 dropped
    assert single.shape == (3, 6)
    ranks = [rank_batches(order, global_batch=6, world_size=2, rank=r) for r in range(2)]
    assert np.array_equal(np.concatenate(ranks, axis=1), single)
    with pytest.raises(ValueError, match="not divisible"):
        rank_batches(order, global_batch=6, world_size=4, rank=0)


def test_sampler_skips_batches_done_before_a_resume():
    sampler = SeededBatchSampler(20, global_batch=4, world_size=1, rank=0, seed=3)
    sampler.set_epoch(1)
    full = list(sampler)
    sampler.set_epoch(1, start_step=2)
    assert list(sampler) == full[2:] and len(sampler) == 3
    with pytest.raises(ValueError, match="fewer than batch_size=8"):
        SeededBatchSampler(5, global_batch=8, world_size=1, rank=0, seed=0)


def test_rng_state_round_trip_and_preserved_block():
    import random
    state = capture_rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng_state(state)
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert first[2] == second[2]
    with preserved_rng():
        torch.rand(5), np.random.rand(5), random.random()
    after_block = torch.rand(1)
    restore_rng_state(state)
    torch.rand(3)
    assert torch.equal(after_block, torch.rand(1))


def test_rng_state_from_a_process_with_more_gpus_restores_the_visible_ones(monkeypatch):
    restored: dict[int, torch.Tensor] = {}

    def set_cuda_rng_state(new_state: torch.Tensor, device: int | str | torch.device = "cuda") -> None:
        index = device if isinstance(device, int) else torch.device(device).index
        if index >= 1:  # torch.cuda.default_generators[index] of a process that sees one GPU
            raise IndexError("tuple index out of range")
        restored[index] = new_state

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", set_cuda_rng_state)
    monkeypatch.setattr(torch.cuda.random, "set_rng_state", set_cuda_rng_state)
    two_gpu_states = [torch.full((16,), 1, dtype=torch.uint8), torch.full((16,), 2, dtype=torch.uint8)]
    restore_rng_state({**capture_rng_state(), "cuda": two_gpu_states})
    assert list(restored) == [0] and torch.equal(restored[0], two_gpu_states[0])


# ----------------------------------------------------------------------------------- fit
def small_config(**overrides) -> TrainConfig:
    values = dict(epochs=2, batch_size=4, base_lr=0.05, lr_scaling_batch=0, warmup_epochs=1,
                  device="cpu", seed=0, log_every=3)
    values.update(overrides)
    return TrainConfig(**values)


def test_fit_writes_history_config_and_checkpoint(tmp_path):
    torch.manual_seed(0)
    method = ToyMoCo(queue_size=8)
    before = {name: value.clone() for name, value in method.state_dict().items()}
    monitor_calls = []

    def monitor(model):
        monitor_calls.append(model.training)
        return {"knn_top1": 0.5}

    result = fit(method, ToyPairDataset(13, seed=1), small_config(knn_every=1), tmp_path,
                 {"method": "toy", "x": 1}, monitor=monitor, progress=False)
    assert result.steps == 6 and result.epochs == 2 and not result.already_finished
    assert set(result.final_terms) == {"loss", "infonce", "cross"}
    assert json.loads((tmp_path / "config.json").read_text()) == {"method": "toy", "x": 1}
    steps = load_history(tmp_path, "step")
    assert [record["step"] for record in steps] == list(range(1, 7))
    assert [record["epoch"] for record in steps] == [0, 0, 0, 1, 1, 1]
    assert [record["lr"] for record in steps] == pytest.approx([lr_at(s, 6, 3, 0.05) for s in range(6)])
    assert all(record["samples_per_s"] > 0 and {"loss", "infonce", "cross"} <= set(record) for record in steps)
    assert steps[-1]["loss"] == pytest.approx(result.final_terms["loss"])
    monitors = load_history(tmp_path, "monitor")
    assert [(m["epoch"], m["knn_top1"]) for m in monitors] == [(1, 0.5), (2, 0.5)]
    assert len(load_history(tmp_path)) == 8 and monitor_calls == [True, True]
    assert method.training
    state = method.state_dict()
    assert not torch.equal(state["key.0.weight"], before["key.0.weight"])  # EMA moved
    assert not torch.equal(state["queue"], before["queue"]) and int(state["queue_ptr"]) == 8 * 6 % 8
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert checkpoint["method"] == "toy" and checkpoint["config"] == {"method": "toy", "x": 1}
    assert all(torch.equal(checkpoint["model"][name], value) for name, value in state.items())


def test_fit_rejects_a_method_without_loss(tmp_path):
    class NoLoss(nn.Module):
        name = "broken"

        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(12, 2)

        def forward(self, batch):
            return {"logits": self.layer(batch["x1"])}

        def after_step(self):
            pass

    with pytest.raises(TypeError, match="broken.forward must return a dict with a 'loss'.*logits"):
        fit(NoLoss(), ToyPairDataset(8), small_config(), tmp_path, {}, progress=False)


def test_fit_stops_on_a_diverging_loss(tmp_path):
    class Diverging(ToyMoCo):
        def forward(self, batch):
            out = super().forward(batch)
            return {"loss": out["loss"] * float("nan")}

    with pytest.raises(FloatingPointError, match="loss is nan at step 1"):
        fit(Diverging(queue_size=8), ToyPairDataset(8), small_config(log_every=1), tmp_path, {},
            progress=False)


def test_a_diverging_loss_names_its_non_finite_terms(tmp_path):
    class InfiniteCross(ToyMoCo):
        def forward(self, batch):
            out = super().forward(batch)
            return {**out, "loss": out["loss"] + float("inf"), "cross": out["cross"] + float("inf")}

    with pytest.raises(FloatingPointError, match=r"toy: loss is inf at step 1 \(epoch 0, lr 0\.025; terms: cross inf\); "
                                                 r"lower base_lr \(or, calling fit, set grad_clip\); no checkpoint was written"):
        fit(InfiniteCross(queue_size=8), ToyPairDataset(8), small_config(log_every=1), tmp_path, {}, progress=False)


def test_a_state_that_stops_being_finite_is_not_checkpointed_over_the_last_good_one(tmp_path):
    class OverflowingQueue(ToyMoCo):
        """Its queue (a buffer) overflows after the loss of step 4 was computed: every logged loss is finite."""

        steps_done = 0

        def after_step(self) -> None:
            super().after_step()
            self.steps_done += 1
            if self.steps_done == 4:
                self.queue.fill_(float("inf"))

    torch.manual_seed(0)
    with pytest.raises(FloatingPointError, match=r"toy: queue is no longer finite after step 4 of 4 \(last logged loss "
                                                 r"[0-9.]+\); .*; the checkpoint of step 2 is kept: .*checkpoint\.pt"):
        fit(OverflowingQueue(queue_size=8), ToyPairDataset(8), small_config(), tmp_path, {}, progress=False)
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert checkpoint["step"] == 2 and not checkpoint["finished"]
    assert all(torch.isfinite(value).all() for value in checkpoint["model"].values() if value.is_floating_point())


# ------------------------------------------------------------------------ loader workers
class NicenessDataset(ToyPairDataset):
    """Toy items that also carry the nice value of the process that made them."""

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {**super().__getitem__(index), "nice": torch.tensor(os.nice(0))}


class EpochIndexNicenessDataset(NicenessDataset):
    """The same, addressed by (epoch, index), so the trainer keeps its workers across epochs."""

    accepts_epoch_index = True

    def __getitem__(self, item: tuple[int, int]) -> dict[str, torch.Tensor]:
        self.epoch = item[0]
        return super().__getitem__(item[1])


class NicenessRecorder(ToyMoCo):
    def __init__(self) -> None:
        super().__init__(queue_size=8)
        self.seen: set[int] = set()

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.seen.update(batch["nice"].tolist())
        return super().forward(batch)


ORPHAN_SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    import torch
    from seco_lab.engine.workers import training_worker_init

    class Slow(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            print(os.getpid(), flush=True)
            time.sleep(120)
            return index

    if __name__ == "__main__":
        loader = torch.utils.data.DataLoader(Slow(), num_workers=1, worker_init_fn=training_worker_init({nice}))
        iterator = iter(loader)
        time.sleep(3)  # the worker is inside __getitem__
        os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux only")
@pytest.mark.parametrize("nice", [0, 19])
def test_a_training_worker_ends_when_its_main_process_is_killed_outright(tmp_path, nice):
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN_SCRIPT.format(nice=nice))
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert completed.returncode == -9, completed.stderr
    worker = int(completed.stdout.split()[0])
    assert all_ended([worker], within_s=20)  # without it the worker sleeps on for two minutes
    assert "Traceback" not in completed.stderr


class SigintHandlerDataset(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> bool:
        import signal

        return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux only")
def test_training_workers_leave_ctrl_c_to_the_main_process():
    loader = torch.utils.data.DataLoader(SigintHandlerDataset(), batch_size=2, num_workers=1,
                                         worker_init_fn=training_worker_init(0))
    assert [bool(value) for batch in loader for value in batch] == [True, True]


def test_lower_worker_priority_checks_its_argument():
    assert lower_worker_priority(0) is None
    assert callable(lower_worker_priority(7))
    for bad in (-1, 20, 2.5, True):
        with pytest.raises(ValueError, match="niceness must be an integer in"):
            lower_worker_priority(bad)


def test_a_worker_that_may_not_renice_warns_and_goes_on(monkeypatch):
    def forbidden(increment):
        raise PermissionError("operation not permitted")

    monkeypatch.setattr(os, "nice", forbidden, raising=False)
    with pytest.warns(UserWarning, match="worker 3 keeps its priority: os.nice failed"):
        lower_worker_priority(5)(3)


@pytest.mark.skipif(not hasattr(os, "nice"), reason="no Unix nice values here")
@pytest.mark.parametrize("niceness", [0, 5])
def test_loader_workers_raise_their_nice_value(niceness):
    loader = torch.utils.data.DataLoader(NicenessDataset(4), batch_size=2, num_workers=1,
                                         worker_init_fn=lower_worker_priority(niceness))
    seen = {int(value) for batch in loader for value in batch["nice"]}
    assert seen == {min(19, os.nice(0) + niceness)}


@pytest.mark.skipif(not hasattr(os, "nice"), reason="no Unix nice values here")
@pytest.mark.parametrize("niceness", [0, 3])
@pytest.mark.parametrize("dataset_type", [NicenessDataset, EpochIndexNicenessDataset])
def test_fit_on_cpu_nices_its_workers(tmp_path, niceness, dataset_type):
    method = NicenessRecorder()
    fit(method, dataset_type(8), small_config(num_workers=1, worker_nice=niceness, epochs=1, warmup_epochs=0),
        tmp_path, {"method": "toy"}, progress=False)
    assert method.seen == {min(19, os.nice(0) + niceness)}


def test_more_loader_workers_than_cores_is_said_once_in_the_packages_words(tmp_path):
    from seco_lab.engine.workers import usable_cores

    workers = usable_cores() + 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(NicenessRecorder(), NicenessDataset(8),
            small_config(num_workers=workers, epochs=2, warmup_epochs=0), tmp_path, {"method": "toy"}, progress=False)
    messages = [str(warning.message) for warning in caught]
    assert [message for message in messages if "data loading processes" in message] == [
        f"{workers} data loading processes on {usable_cores()} usable CPU core{'s' * (usable_cores() != 1)}: they "
        f"take turns with each other and with the training step, which slows every step; pretrain --num-workers "
        f"{usable_cores()} (the profile's data.num_workers) fits them"]
    assert not [message for message in messages if "This DataLoader will create" in message]


class TupleDataset(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(INPUT_DIM), torch.zeros(INPUT_DIM)


def test_library_misuse_is_named(tmp_path):
    config = TrainConfig(epochs=1, batch_size=4, base_lr=0.1, device="cpu", num_workers=0, log_every=1)
    with pytest.raises(TypeError, match="a training batch must be a dict of tensors .*got list"):
        fit(ToyMoCo(queue_size=8), TupleDataset(), config, tmp_path / "tuple", {}, progress=False)
    with pytest.raises(TypeError, match="the monitor must return a dict of numbers, got float"):
        fit(ToyMoCo(queue_size=8), ToyPairDataset(num_items=8, seed=0), TrainConfig.from_dict(
            {**config.to_dict(), "knn_every": 1}), tmp_path / "monitor", {}, monitor=lambda method: 0.5,
            progress=False)
    with pytest.raises(ValueError, match="record_type must be one of None, 'step', 'monitor', got 'steps'"):
        load_history(tmp_path / "monitor", "steps")
    with pytest.raises(CheckpointError, match="a folder, not a checkpoint file"):
        load_checkpoint(tmp_path)
