"""Checkpoints: a SIGKILLed or SIGTERMed run resumed in a new process ends bit-identical to an
uninterrupted one."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from _toy_method import RESUME_DROPOUT, ToyMoCo, ToyPairDataset, resume_config, train_for_resume_test
from seco_lab.engine import CheckpointError, TrainConfig, fit, load_history
from seco_lab.engine.checkpoint import load_checkpoint, save_checkpoint
from seco_lab.engine.sampler import epoch_order, rank_batches

TOY_SCRIPT = Path(__file__).with_name("_toy_method.py")
REPO = Path(__file__).resolve().parents[1]
CHECKPOINT_EVERY = 3   # steps_per_epoch is 4: the first checkpoint is mid-epoch
ITEM_DELAY = 0.25      # seconds per item in the run to be killed: about 1-2 s per step, so the kill lands
                       # mid-epoch (step 3, 6 or 9) even when this process is seconds late to notice
TOTAL_STEPS = 16


def start_training(run_dir: Path, num_workers: int, delay: float,
                   checkpoint_every: int = CHECKPOINT_EVERY) -> subprocess.Popen:
    """The toy training in a new process, leading its own process group (its loader workers join it)."""
    return subprocess.Popen(
        [sys.executable, str(TOY_SCRIPT), str(run_dir), str(num_workers), str(checkpoint_every),
         str(delay)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )


def kill_after_first_checkpoint(processes: dict[int, subprocess.Popen], run_dirs: dict[int, Path],
                                timeout: float = 180.0) -> None:
    """SIGKILL each training process as soon as its run_dir/checkpoint.pt appears."""
    deadline = time.monotonic() + timeout
    running = dict(processes)
    while running:
        for key, process in list(running.items()):
            if (run_dirs[key] / "checkpoint.pt").exists():
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                assert process.returncode == -signal.SIGKILL
                del running[key]
            elif process.poll() is not None:
                raise AssertionError(f"training exited before its first checkpoint: "
                                     f"{process.stderr.read().decode()}")
        if time.monotonic() > deadline:
            for process in running.values():
                process.kill()
            raise AssertionError("no checkpoint appeared")
        time.sleep(0.002)


def finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr.decode()


@pytest.fixture(scope="module")
def uninterrupted_state(tmp_path_factory) -> dict[str, torch.Tensor]:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    train_for_resume_test(str(run_dir), num_workers=0, checkpoint_every=CHECKPOINT_EVERY, delay=0.0)
    return torch.load(run_dir / "final_state.pt", weights_only=True)


def test_sigkilled_runs_resume_to_identical_weights(tmp_path, uninterrupted_state):
    runs = {workers: tmp_path / f"workers{workers}" for workers in (0, 2)}
    killed = {workers: start_training(run_dir, workers, ITEM_DELAY) for workers, run_dir in runs.items()}
    kill_after_first_checkpoint(killed, runs)
    for run_dir in runs.values():
        checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
        assert not checkpoint["finished"] and 0 < checkpoint["step"] < TOTAL_STEPS
        assert checkpoint["step_in_epoch"] > 0, "the kill should land mid-epoch"
    resumed = {workers: start_training(run_dir, workers, 0.0) for workers, run_dir in runs.items()}
    for workers, process in resumed.items():
        finish(process)
        state = torch.load(runs[workers] / "final_state.pt", weights_only=True)
        assert state.keys() == uninterrupted_state.keys()
        for name, value in uninterrupted_state.items():
            assert torch.equal(state[name], value), f"{name} differs after resume (workers={workers})"
        steps = [record["step"] for record in load_history(runs[workers], "step")]
        assert steps == list(range(1, TOTAL_STEPS + 1))


def test_sigterm_to_the_process_group_saves_after_the_step_and_resumes_to_identical_weights(
        tmp_path, uninterrupted_state):
    """A scheduler's SIGTERM, sent to every process of the run (loader workers included), stops it
    after the step in progress with a checkpoint of that step, though this run saves only at epoch
    ends; the same run started again continues from it to the uninterrupted run's weights."""
    runs = {workers: tmp_path / f"workers{workers}" for workers in (0, 2)}
    stopped = {workers: start_training(run_dir, workers, ITEM_DELAY, checkpoint_every=0)
               for workers, run_dir in runs.items()}
    deadline = time.monotonic() + 180.0
    waiting = dict(stopped)
    while waiting:  # the first history flush (step 2 of 4 in epoch 0): the signal lands mid-epoch
        for workers, process in list(waiting.items()):
            history = runs[workers] / "history.jsonl"
            if history.exists() and history.stat().st_size > 0:
                os.killpg(process.pid, signal.SIGTERM)
                del waiting[workers]
            elif process.poll() is not None:
                raise AssertionError(f"training exited before its first step: {process.stderr.read().decode()}")
        assert time.monotonic() < deadline, "no step was logged"
        time.sleep(0.002)
    for workers, process in stopped.items():
        _, stderr = process.communicate(timeout=120)
        checkpoint = load_checkpoint(runs[workers] / "checkpoint.pt")
        assert not checkpoint["finished"] and checkpoint["epoch"] == 0 and checkpoint["step_in_epoch"] > 0
        assert process.returncode == 1  # TrainingStopped: the command line turns it into its own exit status
        assert f"TrainingStopped: stopped by SIGTERM after step {checkpoint['step']} of {TOTAL_STEPS}; " \
               f"checkpoint saved: {runs[workers] / 'checkpoint.pt'}" in stderr.decode()
    resumed = {workers: start_training(run_dir, workers, 0.0, checkpoint_every=0) for workers, run_dir in runs.items()}
    for workers, process in resumed.items():
        finish(process)
        state = torch.load(runs[workers] / "final_state.pt", weights_only=True)
        for name, value in uninterrupted_state.items():
            assert torch.equal(state[name], value), f"{name} differs after resume (workers={workers})"
        steps = [record["step"] for record in load_history(runs[workers], "step")]
        assert steps == list(range(1, TOTAL_STEPS + 1))


class CrashingDataset(ToyPairDataset):
    """Raises once when item ``crash_index`` of epoch ``crash_epoch`` is loaded (a crash mid-epoch)."""

    def __init__(self, *args, crash_epoch: int, crash_index: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.crash_epoch = crash_epoch
        self.crash_index = crash_index
        self.crashed = False

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not self.crashed and self.epoch == self.crash_epoch and index == self.crash_index:
            self.crashed = True
            raise RuntimeError("simulated crash")
        return super().__getitem__(index)


def test_crash_in_process_then_resume_matches_uninterrupted(tmp_path, uninterrupted_state):
    cfg = resume_config(num_workers=0, checkpoint_every=CHECKPOINT_EVERY)
    crash_index = int(rank_batches(epoch_order(36, cfg.seed, 2), cfg.batch_size, 1, 0)[2, 0])
    dataset = CrashingDataset(36, seed=5, crash_epoch=2, crash_index=crash_index)
    torch.manual_seed(0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(ToyMoCo(queue_size=24, dropout=RESUME_DROPOUT), dataset, cfg, tmp_path, {}, progress=False)
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert (checkpoint["epoch"], checkpoint["step_in_epoch"], checkpoint["step"]) == (2, 1, 9)
    torch.manual_seed(123)  # the resumed weights must come from the checkpoint, not this init
    method = ToyMoCo(queue_size=24, dropout=RESUME_DROPOUT)
    result = fit(method, dataset, cfg, tmp_path, {}, progress=False)
    assert result.resumed_from_step == 9 and result.steps == TOTAL_STEPS
    for name, value in uninterrupted_state.items():
        assert torch.equal(method.state_dict()[name], value), name
    assert [r["step"] for r in load_history(tmp_path, "step")] == list(range(1, TOTAL_STEPS + 1))
    assert load_checkpoint(tmp_path / "checkpoint.pt")["rng"][0]["torch"].dtype == torch.uint8


def test_finished_run_returns_and_loads_its_weights(tmp_path):
    cfg = resume_config(num_workers=0, checkpoint_every=0)
    torch.manual_seed(0)
    trained = ToyMoCo(queue_size=24)
    fit(trained, ToyPairDataset(36, seed=5), cfg, tmp_path, {}, progress=False)
    history_before = (tmp_path / "history.jsonl").read_text()
    torch.manual_seed(1)
    fresh = ToyMoCo(queue_size=24)
    result = fit(fresh, ToyPairDataset(36, seed=5), cfg, tmp_path, {}, progress=False)
    assert result.already_finished and result.steps == TOTAL_STEPS
    for name, value in trained.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name
    assert (tmp_path / "history.jsonl").read_text() == history_before


def test_a_run_continued_with_other_settings_is_refused_naming_them_but_not_for_loading_only_ones(tmp_path):
    cfg = resume_config(num_workers=0, checkpoint_every=0)
    settings = {"toy": {"temperature": 0.1, "heads": {"dim": 8}}, "data": {"num_workers": 0}}
    fit(ToyMoCo(queue_size=24), ToyPairDataset(36, seed=5), cfg, tmp_path, settings, progress=False)
    changed = {"toy": {"temperature": 0.5, "heads": {"dim": 16}}, "data": {"num_workers": 0}}
    with pytest.raises(CheckpointError, match=r"other settings \(toy.heads.dim 8 -> 16; toy.temperature 0.1 -> 0.5\)"):
        fit(ToyMoCo(queue_size=24), ToyPairDataset(36, seed=5), cfg, tmp_path, changed, progress=False)
    loading_only = {**settings, "data": {"num_workers": 4}, "toy": {**settings["toy"], "added_later": True}}
    assert fit(ToyMoCo(queue_size=24), ToyPairDataset(36, seed=5), cfg, tmp_path, loading_only,
               progress=False).already_finished


def test_fit_into_a_run_folder_that_another_process_trains_in_is_refused(tmp_path):
    from seco_lab.engine.run_lock import RunFolderInUse

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom pathlib import Path\nfrom seco_lab.engine.run_lock import run_folder_lock\n"
        "with run_folder_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(120)\n"),
        str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderInUse, match=rf"in use by another training \(process {holder.pid}\)"):
            fit(ToyMoCo(queue_size=24), ToyPairDataset(36, seed=5), resume_config(num_workers=0, checkpoint_every=0), tmp_path / "run",
                {}, progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert not (tmp_path / "run" / "history.jsonl").exists()


def test_fit_needs_its_settings_as_a_dict(tmp_path):
    with pytest.raises(TypeError, match="full_config must be a dict of the run's settings"):
        fit(ToyMoCo(queue_size=24), ToyPairDataset(36, seed=5), resume_config(num_workers=0, checkpoint_every=0), tmp_path, None)
    (tmp_path / "taken").write_text("")
    with pytest.raises(ValueError, match="run_dir .*taken is a file, not a folder for the run"):
        fit(ToyMoCo(queue_size=24), ToyPairDataset(36, seed=5), resume_config(num_workers=0, checkpoint_every=0), tmp_path / "taken",
            {})


def test_resume_false_starts_afresh(tmp_path):
    cfg = resume_config(num_workers=0, checkpoint_every=0)
    torch.manual_seed(0)
    fit(ToyMoCo(queue_size=24), ToyPairDataset(36, seed=5), cfg, tmp_path, {}, progress=False)
    torch.manual_seed(0)
    result = fit(ToyMoCo(queue_size=24), ToyPairDataset(36, seed=5), cfg, tmp_path, {}, resume=False,
                 progress=False)
    assert not result.already_finished and result.resumed_from_step is None
    assert len(load_history(tmp_path, "step")) == TOTAL_STEPS


def test_corrupt_checkpoint_is_a_clear_error_naming_the_file(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"PK\x03\x04 this is not a checkpoint")
    cfg = resume_config(num_workers=0, checkpoint_every=0)
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: not a readable checkpoint"):
        fit(ToyMoCo(queue_size=24), ToyPairDataset(36, seed=5), cfg, tmp_path, {}, progress=False)


def test_checkpoint_of_another_schedule_or_method_is_refused(tmp_path):
    cfg = resume_config(num_workers=0, checkpoint_every=0)
    fit(ToyMoCo(queue_size=24), ToyPairDataset(36, seed=5), cfg, tmp_path, {}, progress=False)
    longer = TrainConfig.from_dict({**cfg.to_dict(), "epochs": 8})
    with pytest.raises(CheckpointError, match="epochs=4 \\(now 8\\)"):
        fit(ToyMoCo(queue_size=24), ToyPairDataset(36, seed=5), longer, tmp_path, {}, progress=False)
    other = ToyMoCo(queue_size=24)
    other.name = "other"
    with pytest.raises(CheckpointError, match="holds method 'toy', not 'other'"):
        fit(other, ToyPairDataset(36, seed=5), cfg, tmp_path, {}, progress=False)
    with pytest.raises(CheckpointError, match="36 items but the dataset now has 40"):
        fit(ToyMoCo(queue_size=24), ToyPairDataset(40, seed=5), cfg, tmp_path, {}, progress=False)


def test_each_refusal_to_continue_says_how_to_train_afresh_on_the_command_line_and_in_python(tmp_path):
    """A command line user has --out, not resume=False; pretrain without --resume refuses an existing checkpoint."""
    hint = ("to train afresh, choose another run folder (pretrain --out, or run_dir) or delete this checkpoint "
            "(fit(..., resume=False) overwrites it)")
    cfg = resume_config(num_workers=0, checkpoint_every=0)
    fit(ToyMoCo(queue_size=24), ToyPairDataset(36, seed=5), cfg, tmp_path, {"toy": {"dim": 8}}, progress=False)
    other = ToyMoCo(queue_size=24)
    other.name = "other"
    longer = TrainConfig.from_dict({**cfg.to_dict(), "epochs": 8})
    attempts = [(other, 36, cfg, 8), (ToyMoCo(queue_size=24), 36, longer, 8), (ToyMoCo(queue_size=24), 36, cfg, 16),
                (ToyMoCo(queue_size=24), 40, cfg, 8)]  # another method, schedule, setting, dataset size
    for method, items, config, dim in attempts:
        with pytest.raises(CheckpointError) as refused:
            fit(method, ToyPairDataset(items, seed=5), config, tmp_path, {"toy": {"dim": dim}}, progress=False)
        assert str(refused.value).endswith(hint)


def test_checkpoint_without_required_keys_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"model": {}}, path)
    with pytest.raises(CheckpointError, match="missing format, method"):
        load_checkpoint(path)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left


def test_a_full_disk_while_saving_names_the_file_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"step": 1}, path)
    before = path.read_bytes()
    monkeypatch.setattr("builtins.open", lambda *args, **kwargs: io.open("/dev/full", "wb"))
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: could not write the checkpoint \(No space left on "
                                              r"device\); the previous checkpoint, if any, is unchanged"):
        save_checkpoint({"step": 2, "weights": torch.zeros(100_000)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_a_checkpoint_left_half_written_by_a_killed_process_is_removed_when_the_run_continues(tmp_path):
    unfinished_write = tmp_path / ".checkpoint.pt.tmp-99999"
    unfinished_write.write_bytes(b"PK\x03\x04 half of a checkpoint")
    cfg = resume_config(num_workers=0, checkpoint_every=0)
    fit(ToyMoCo(queue_size=24), ToyPairDataset(36, seed=5), cfg, tmp_path, {}, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "checkpoint.pt", "config.json", "history.jsonl"]
