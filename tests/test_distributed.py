"""Two gloo processes against one process holding the whole global batch.

One spawn (module fixture) runs, on each of 2 ranks: a full ``fit`` of the toy MoCo-style
method under DDP (``fit`` creates the process group from torchrun-style env variables), a
second ``fit`` (sync_bn on CPU), then the gather / shuffle-BN helpers on the same group. The parent computes the same things in a
single process and compares.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from _toy_method import INPUT_DIM, ToyMoCo, ToyPairDataset
from seco_lab.engine import TrainConfig, TrainingStopped, fit, load_history
from seco_lab.engine.checkpoint import CheckpointError, load_checkpoint
from seco_lab.engine.distributed import (
    all_gather_no_grad, all_gather_with_grad, init_from_env, is_distributed, main_rank_first, rank,
    shuffle_bn_forward, world_size,
)

WORLD = 2
LOCAL_BATCH = 4
TEMPERATURE = 0.5
SPAWN_TIMEOUT = 240.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def set_torchrun_env(rank_index: int, port: int) -> None:
    """The variables torchrun sets for process ``rank_index`` of ``WORLD`` on this machine."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(WORLD),
                       "RANK": str(rank_index), "LOCAL_RANK": str(rank_index)})


def ddp_config() -> TrainConfig:
    return TrainConfig(epochs=2, batch_size=LOCAL_BATCH * WORLD, base_lr=0.1, lr_scaling_batch=0,
                       optimizer="sgd", weight_decay=1e-4, warmup_epochs=1, grad_clip=10.0,
                       device="cpu", seed=1, log_every=1)


def build_toy() -> tuple[ToyMoCo, ToyPairDataset]:
    torch.manual_seed(0)
    return ToyMoCo(queue_size=20), ToyPairDataset(num_items=20, seed=2)


def global_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """Two views (W * B, D) of the helper checks' global batch."""
    generator = torch.Generator().manual_seed(7)
    return (torch.randn(WORLD * LOCAL_BATCH, INPUT_DIM, generator=generator),
            torch.randn(WORLD * LOCAL_BATCH, INPUT_DIM, generator=generator))


def local_ntxent(z1: torch.Tensor, z2_all: torch.Tensor, offset: int) -> torch.Tensor:
    """Mean over local rows of cross-entropy of z1 against all z2 (positive at ``offset + i``)."""
    z1 = F.normalize(z1, dim=1)
    z2_all = F.normalize(z2_all, dim=1)
    targets = torch.arange(len(z1)) + offset
    return F.cross_entropy(z1 @ z2_all.T / TEMPERATURE, targets)


def projector() -> nn.Module:
    torch.manual_seed(11)
    return nn.Sequential(nn.Linear(INPUT_DIM, 6), nn.Tanh(), nn.Linear(6, 5))


def worker(rank_index: int, out_dir: str, port: int) -> None:
    set_torchrun_env(rank_index, port)
    out = Path(out_dir)
    method, dataset = build_toy()
    fit(method, dataset, ddp_config(), out / "ddp_run", {"method": "toy"}, progress=False)
    torch.save(method.state_dict(), out / f"fit_rank{rank_index}.pt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.manual_seed(0)
        fit(ToyMoCo(queue_size=20, use_bn=True), dataset,
            TrainConfig.from_dict({**ddp_config().to_dict(), "epochs": 1, "sync_bn": True}),
            out / "sync_bn_run", {"method": "toy"}, progress=False)
    torch.save({"warnings": [str(w.message) for w in caught]}, out / f"sync_bn_rank{rank_index}.pt")

    assert dist.is_initialized(), "fit keeps the process group it created from the environment"
    results: dict[str, object] = {"world_size": world_size(), "rank": rank(),
                                  "is_distributed": is_distributed()}
    x1, x2 = global_inputs()
    rows = slice(rank_index * LOCAL_BATCH, (rank_index + 1) * LOCAL_BATCH)
    model = projector()

    # gather with gradient: local queries against every rank's keys
    z1_in = x1[rows].clone().requires_grad_(True)
    z2_in = x2[rows].clone().requires_grad_(True)
    loss = local_ntxent(model(z1_in), all_gather_with_grad(model(z2_in)), rank_index * LOCAL_BATCH)
    loss.backward()
    results.update(loss=loss.detach(), grad_z1=z1_in.grad, grad_z2=z2_in.grad,
                   grad_weight=model[0].weight.grad.clone())

    # the gather that drops other ranks' gradients (what the project must not do)
    model.zero_grad()
    z2_naive = x2[rows].clone().requires_grad_(True)
    keys = model(z2_naive)
    parts = [torch.empty_like(keys) for _ in range(WORLD)]
    dist.all_gather(parts, keys.detach())
    parts[rank_index] = keys
    naive_loss = local_ntxent(model(x1[rows]), torch.cat(parts), rank_index * LOCAL_BATCH)
    naive_loss.backward()
    results.update(grad_z2_naive=z2_naive.grad)

    results["gathered_ranks"] = all_gather_no_grad(torch.full((2, 3), float(rank_index)))

    # shuffle-BN on a BN-free model equals a plain forward, values and input gradients
    model.zero_grad()
    shuffled_in = x1[rows].clone().requires_grad_(True)
    shuffled = shuffle_bn_forward(model, shuffled_in)
    (shuffled * torch.arange(5.0)).sum().backward()
    results.update(shuffled=shuffled.detach(), grad_shuffled=shuffled_in.grad)
    # with BatchNorm the statistics come from a cross-rank shuffle: differs from a local forward
    torch.manual_seed(3)
    bn_model = nn.Sequential(nn.Linear(INPUT_DIM, 5), nn.BatchNorm1d(5))
    with torch.no_grad():
        results["bn_shuffled"] = shuffle_bn_forward(bn_model, x1[rows])
        results["bn_local"] = bn_model(x1[rows])
    torch.save(results, out / f"helpers_rank{rank_index}.pt")
    threads_with_group = gloo_worker_threads()
    dist.destroy_process_group()
    (out / f"threads_rank{rank_index}.json").write_text(json.dumps(
        {"with_group": threads_with_group, "after_destroy": gloo_worker_threads()}))


def gloo_worker_threads() -> int:
    """Threads of this process that run a gloo process group's work queue (named by torch)."""
    tasks = Path("/proc/self/task")
    return sum((task / "comm").read_text().strip() == "pt_gloo_runloop" for task in tasks.iterdir())


def unshared_folder_worker(rank_index: int, out_dir: str, port: int) -> None:
    """A finished run, then a resume where rank 1's run folder is not rank 0's (each machine's own
    disk): rank 0 sees the finished checkpoint, rank 1 none. Each rank writes the error it got."""
    set_torchrun_env(rank_index, port)
    out = Path(out_dir)
    config = TrainConfig.from_dict({**ddp_config().to_dict(), "epochs": 1})
    fit(*build_toy(), config, out / "shared", {"method": "toy"}, progress=False)
    run_dir = out / "shared" if rank_index == 0 else out / f"own_disk_rank{rank_index}"
    try:
        fit(*build_toy(), config, run_dir, {"method": "toy"}, progress=False)
        message = ""
    except CheckpointError as error:
        message = str(error)
    (out / f"unshared_rank{rank_index}.txt").write_text(message)
    dist.destroy_process_group()


def raised_error(call: Callable[[], object]) -> str:
    """``"Type: message"`` of the error ``call`` raises (rank 0's own, or ``MainRankFailed`` on the
    others), "" when it raises none."""
    try:
        call()
    except (ValueError, RuntimeError) as raised:  # MainRankFailed is a RuntimeError
        return f"{type(raised).__name__}: {raised}"
    return ""


def main_rank_first_worker(rank_index: int, out_dir: str, port: int) -> None:
    """Rank 0 leaves a file after a pause; every rank's work records whether it was there when
    the work began. Then rank 0's work fails, and each rank records the error it got."""
    set_torchrun_env(rank_index, port)
    out = Path(out_dir)
    init_from_env(use_cuda=False)
    left_by_rank0 = out / "index.json"

    def build() -> bool:
        found = left_by_rank0.exists()
        if rank_index == 0:
            time.sleep(1.0)
            left_by_rank0.write_text("{}")
        return found

    found = main_rank_first(build)

    def fail() -> None:
        if rank_index == 0:
            raise ValueError("no layout fits /data")

    error = raised_error(lambda: main_rank_first(fail))
    (out / f"first_rank{rank_index}.json").write_text(json.dumps({"found": found, "error": error}))
    dist.destroy_process_group()


def test_main_rank_first_lets_the_others_reuse_rank_0s_work_and_stop_with_its_error(tmp_path):
    spawn_workers(main_rank_first_worker, tmp_path)
    ranks = [json.loads((tmp_path / f"first_rank{rank_index}.json").read_text()) for rank_index in range(WORLD)]
    assert [result["found"] for result in ranks] == [False, True]
    assert ranks[0]["error"] == "ValueError: no layout fits /data"
    assert ranks[1]["error"] == "MainRankFailed: rank 0 stopped: ValueError: no layout fits /data"


SHORT_COLLECTIVE_TIMEOUT = 3.0  # seconds: the default group's timeout in the slow-rank-0 test
RANK0_PAUSE = SHORT_COLLECTIVE_TIMEOUT + 3.0


def slow_rank0_worker(rank_index: int, out_dir: str, port: int) -> None:
    """A default group whose collectives time out after 3 s; rank 0's work (an index build, the
    monitor) takes 6 s. Each rank records what it saw; a timeout raises in the waiting rank."""
    set_torchrun_env(rank_index, port)
    out = Path(out_dir)
    dist.init_process_group(backend="gloo", timeout=timedelta(seconds=SHORT_COLLECTIVE_TIMEOUT))

    def slow_build() -> int:
        if rank_index == 0:
            time.sleep(RANK0_PAUSE)
        return rank_index

    built_by = main_rank_first(slow_build)

    def slow_monitor(method: nn.Module) -> dict[str, float]:
        time.sleep(RANK0_PAUSE)
        return {"knn_top1": 0.5}

    method, dataset = build_toy()
    config = TrainConfig.from_dict({**ddp_config().to_dict(), "epochs": 1, "knn_every": 1})
    fit(method, dataset, config, out / "run", {"method": "toy"}, monitor=slow_monitor, progress=False)

    def failing_monitor(method: nn.Module) -> dict[str, float]:
        raise RuntimeError("features of /data/v_1.avi: out of memory")

    error = raised_error(lambda: fit(method, dataset, config, out / "failing_run", {"method": "toy"},
                                     monitor=failing_monitor, progress=False))
    (out / f"slow_rank{rank_index}.json").write_text(json.dumps({"built_by": built_by, "error": error}))
    dist.destroy_process_group()


def test_ranks_wait_for_rank_0s_work_beyond_the_collective_timeout_and_stop_with_its_error(tmp_path):
    spawn_workers(slow_rank0_worker, tmp_path)
    ranks = [json.loads((tmp_path / f"slow_rank{rank_index}.json").read_text()) for rank_index in range(WORLD)]
    assert [result["built_by"] for result in ranks] == [0, 1]
    monitored = load_history(tmp_path / "run", "monitor")
    assert [row["knn_top1"] for row in monitored] == [0.5]
    assert ranks[0]["error"] == "RuntimeError: features of /data/v_1.avi: out of memory"
    assert ranks[1]["error"] == "MainRankFailed: rank 0 stopped: RuntimeError: features of /data/v_1.avi: out of memory"


STOP_RUN_STEPS = 8  # 4 epochs of 2 steps, a log flush every 2 steps


def stopped_worker(rank_index: int, out_dir: str, port: int) -> None:
    """A slow run that the parent stops by sending SIGTERM to rank 1 only; each rank writes the
    step and signal its ``TrainingStopped`` names."""
    set_torchrun_env(rank_index, port)
    out = Path(out_dir)
    method, _ = build_toy()
    config = TrainConfig.from_dict({**ddp_config().to_dict(), "epochs": 4, "log_every": 2})
    try:
        fit(method, ToyPairDataset(num_items=20, seed=2, delay=0.3), config, out / "run", {"method": "toy"},
            progress=False)
        stop = {"step": None, "signal": None}
    except TrainingStopped as stopped:
        stop = {"step": stopped.step, "signal": stopped.signal_name, "message": str(stopped)}
    (out / f"stopped_rank{rank_index}.json").write_text(json.dumps(stop))
    dist.destroy_process_group()


def spawn_workers(function, out_dir: Path) -> Path:
    context = mp.start_processes(function, args=(str(out_dir), free_port()), nprocs=WORLD, join=False)
    deadline = time.monotonic() + SPAWN_TIMEOUT
    while not context.join(timeout=1.0):  # raises if a worker failed
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"distributed workers still running after {SPAWN_TIMEOUT} s (deadlock?)")
    return out_dir


@pytest.fixture(scope="module")
def spawned(tmp_path_factory) -> Path:
    return spawn_workers(worker, tmp_path_factory.mktemp("ddp"))


def load_rank(out_dir: Path, name: str, rank_index: int) -> dict:
    return torch.load(out_dir / f"{name}_rank{rank_index}.pt", weights_only=True)


def test_destroying_the_group_after_ddp_training_stops_its_worker_threads(spawned):
    """A group kept alive after ``destroy_process_group`` (DDP imports torch.distributed.nn,
    which binds the group as default arguments) leaves gloo threads that can abort the process
    at exit while they free a finished collective."""
    for rank_index in range(WORLD):
        threads = json.loads((spawned / f"threads_rank{rank_index}.json").read_text())
        assert threads["with_group"] > 0
        assert threads["after_destroy"] == 0


def test_helpers_see_the_process_group(spawned):
    for rank_index in range(WORLD):
        results = load_rank(spawned, "helpers", rank_index)
        assert results["world_size"] == WORLD and results["rank"] == rank_index
        assert results["is_distributed"]
        expected = torch.cat([torch.full((2, 3), 0.0), torch.full((2, 3), 1.0)])
        assert torch.equal(results["gathered_ranks"], expected)
    assert not is_distributed() and world_size() == 1 and rank() == 0


def test_all_gather_with_grad_matches_single_process_loss(spawned):
    x1, x2 = global_inputs()
    model = projector()
    z1_in, z2_in = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    full_loss = local_ntxent(model(z1_in), model(z2_in), 0)  # mean over the whole global batch
    full_loss.backward()
    rank_results = [load_rank(spawned, "helpers", r) for r in range(WORLD)]
    mean_rank_loss = torch.stack([r["loss"] for r in rank_results]).mean()
    torch.testing.assert_close(mean_rank_loss, full_loss.detach())
    for rank_index, results in enumerate(rank_results):
        rows = slice(rank_index * LOCAL_BATCH, (rank_index + 1) * LOCAL_BATCH)
        # each rank's loss is a mean over B of the W*B rows, so its gradients are W x the full one
        torch.testing.assert_close(results["grad_z1"] / WORLD, z1_in.grad[rows])
        torch.testing.assert_close(results["grad_z2"] / WORLD, z2_in.grad[rows])
        assert not torch.allclose(results["grad_z2_naive"] / WORLD, z2_in.grad[rows], atol=1e-5)
    # DDP averages parameter gradients over ranks: that average is the single-process gradient
    averaged_weight_grad = torch.stack([r["grad_weight"] for r in rank_results]).mean(0)
    torch.testing.assert_close(averaged_weight_grad, model[0].weight.grad)


def test_shuffle_bn_forward_is_a_plain_forward_without_bn(spawned):
    x1, _ = global_inputs()
    model = projector()
    x = x1.clone().requires_grad_(True)
    plain = model(x)
    (plain * torch.arange(5.0)).sum().backward()
    for rank_index in range(WORLD):
        rows = slice(rank_index * LOCAL_BATCH, (rank_index + 1) * LOCAL_BATCH)
        results = load_rank(spawned, "helpers", rank_index)
        torch.testing.assert_close(results["shuffled"], plain.detach()[rows])
        torch.testing.assert_close(results["grad_shuffled"], x.grad[rows])
    bn_differs = [not torch.allclose(load_rank(spawned, "helpers", r)["bn_shuffled"],
                                     load_rank(spawned, "helpers", r)["bn_local"]) for r in range(WORLD)]
    assert any(bn_differs)


def test_ddp_fit_matches_single_process_fit(spawned, tmp_path):
    method, dataset = build_toy()
    fit(method, dataset, ddp_config(), tmp_path / "single", {"method": "toy"}, progress=False)
    single_state = method.state_dict()
    rank_states = [load_rank(spawned, "fit", r) for r in range(WORLD)]
    for name, single_value in single_state.items():
        torch.testing.assert_close(rank_states[0][name], rank_states[1][name], msg=name)
        torch.testing.assert_close(rank_states[0][name], single_value, msg=name)
    assert int(rank_states[0]["queue_ptr"]) == int(single_state["queue_ptr"]) != 0
    # losses logged by rank 0 are means over ranks: equal to the single process's, step by step
    ddp_steps = load_history(spawned / "ddp_run", "step")
    single_steps = load_history(tmp_path / "single", "step")
    assert [r["step"] for r in ddp_steps] == [r["step"] for r in single_steps] == list(range(1, 5))
    for ddp_record, single_record in zip(ddp_steps, single_steps):
        for term in ("loss", "infonce", "cross", "lr"):
            assert ddp_record[term] == pytest.approx(single_record[term], rel=1e-5, abs=1e-6)
    checkpoint = torch.load(spawned / "ddp_run" / "checkpoint.pt", weights_only=True)
    assert checkpoint["world_size"] == WORLD and len(checkpoint["rng"]) == WORLD
    assert checkpoint["finished"]


def test_sync_bn_on_cpu_processes_warns_and_trains(spawned):
    for rank_index in range(WORLD):
        messages = load_rank(spawned, "sync_bn", rank_index)["warnings"]
        assert any("sync_bn=True ignored" in message for message in messages)
    assert load_history(spawned / "sync_bn_run", "step")[-1]["step"] == 2


def test_resume_that_some_processes_cannot_see_stops_every_process_with_the_reason(tmp_path):
    spawn_workers(unshared_folder_worker, tmp_path)
    for rank_index in range(WORLD):
        message = (tmp_path / f"unshared_rank{rank_index}.txt").read_text()
        assert "do not see the same checkpoint (rank 0: step 2, rank 1: no checkpoint)" in message
        assert "filesystem that every machine sees" in message


def test_sigterm_to_one_process_stops_every_process_after_the_same_step_with_a_checkpoint(tmp_path):
    context = mp.start_processes(stopped_worker, args=(str(tmp_path), free_port()), nprocs=WORLD, join=False)
    history = tmp_path / "run" / "history.jsonl"
    deadline = time.monotonic() + SPAWN_TIMEOUT
    signalled = False
    while not context.join(timeout=0.01):  # raises if a worker failed
        if not signalled and history.exists() and history.stat().st_size > 0:
            os.kill(context.processes[1].pid, signal.SIGTERM)
            signalled = True
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"distributed workers still running after {SPAWN_TIMEOUT} s (deadlock?)")
    assert signalled
    stops = [json.loads((tmp_path / f"stopped_rank{rank_index}.json").read_text()) for rank_index in range(WORLD)]
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert not checkpoint["finished"] and 2 < checkpoint["step"] < STOP_RUN_STEPS
    assert [stop["step"] for stop in stops] == [checkpoint["step"]] * WORLD
    assert [stop["signal"] for stop in stops] == [None, "SIGTERM"]
    assert stops[0]["message"].startswith("stopped by a stop signal sent to another process of the run after step")
    assert load_history(tmp_path / "run", "step")[-1]["step"] == checkpoint["step"]
    method, _ = build_toy()  # resumed by one process: it goes on, and says it will not repeat the two-process run
    config = TrainConfig.from_dict({**ddp_config().to_dict(), "epochs": 4, "log_every": 2})
    with pytest.warns(UserWarning, match=r"written by a run of 2 process\(es\), resumed by 1: it continues from step"):
        fit(method, ToyPairDataset(num_items=20, seed=2), config, tmp_path / "run", {"method": "toy"}, resume=True,
            progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["finished"]
