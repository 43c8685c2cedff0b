"""Pretraining from a dataset folder: the CLI's path, on the embedded smoke dataset."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from _video_fixtures import make_ucf101, make_video

from seco_lab.cli import main
from seco_lab.evaluation import read_results, run_protocols, runner
from seco_lab.methods.pretrain import pretrain
from seco_lab.profiles import get_profile


def _weights(run_dir):
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]


def test_weights_do_not_depend_on_the_number_of_loader_workers(smoke_data, tmp_path):
    overrides = {"train": {"epochs": 2, "batch_size": 8}}
    pretrain("seco", smoke_data, "smoke", tmp_path / "w0", num_workers=0, overrides=overrides, progress=False)
    pretrain("seco", smoke_data, "smoke", tmp_path / "w2", num_workers=2, overrides=overrides, progress=False)
    first, second = _weights(tmp_path / "w0"), _weights(tmp_path / "w2")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_epochs_zero_writes_the_untrained_model_for_evaluation(smoke_data, tmp_path, capsys):
    result = pretrain("cvrl", smoke_data, "smoke", tmp_path / "random", epochs=0, progress=False)
    assert result.action == "initialised" and result.steps == 0
    assert main(["evaluate", "--checkpoint", str(result.checkpoint_path), "--data", str(smoke_data),
                 "--protocol", "knn", "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["protocol"] == "knn" and line["method"] == "cvrl" and 0.0 <= line["top1"] <= 100.0
    assert (tmp_path / "random" / "results.jsonl").exists()


def test_cli_tracking_lists_each_sequence_and_the_ones_left_out(smoke_data, tmp_path, capsys):
    checkpoint = pretrain("seco", smoke_data, "smoke", tmp_path / "random", epochs=0, progress=False).checkpoint_path
    sequences = tmp_path / "otb"
    shutil.copytree(smoke_data / "tracking", sequences)
    (sequences / "Synth02" / "groundtruth_rect.txt").write_text("x,y,w,h\n")
    command = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(sequences), "--protocol", "tracking"]
    assert main(command) == 0
    out, err = capsys.readouterr()
    assert "note: tracking: sequence Synth02 left out" in err
    header, row = out.split("sequence  frames")[1].splitlines()[:2]
    assert header.split() == ["precision@20", "success_auc", "mean_iou", "centre_error_px"]
    assert row.split()[:2] == ["Synth01", "16"]
    assert re.search(r"left out: Synth02: .*Synth02.groundtruth_rect\.txt: line 1 is not numeric", out)
    assert main(command + ["--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (scored,) = line["per_sequence"]
    assert scored["name"] == "Synth01" and scored["frames"] == 16
    assert scored["precision@20"] == line["precision@20"] and scored["mean_iou"] == line["mean_iou"]
    assert [row["name"] for row in line["left_out"]] == ["Synth02"]
    recorded = [json.loads(text) for text in (tmp_path / "random" / "results.jsonl").read_text().splitlines()]
    assert recorded[-1]["per_sequence"] == line["per_sequence"]


def test_an_existing_run_is_never_overwritten_without_resume(smoke_data, tmp_path):
    pretrain("seco", smoke_data, "smoke", tmp_path / "run", epochs=0, progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        pretrain("seco", smoke_data, "smoke", tmp_path / "run", epochs=0, progress=False)
    reused = pretrain("seco", smoke_data, "smoke", tmp_path / "run", epochs=0, resume=True, progress=False)
    assert reused.action == "initialised"


HOLD_RUN_FOLDER = """
import sys, time
from pathlib import Path
from seco_lab.engine.run_lock import run_folder_lock
with run_folder_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


@contextlib.contextmanager
def run_folder_held_by_another_process(run: Path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_RUN_FOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_second_training_in_a_run_folder_in_use_is_refused_naming_the_process(smoke_data, tmp_path, capsys):
    from seco_lab.engine.run_lock import RunFolderInUse

    run = tmp_path / "run"
    with run_folder_held_by_another_process(run) as holder:
        with pytest.raises(RunFolderInUse, match=rf"{run} is in use by another training \(process {holder}\)"):
            pretrain("seco", smoke_data, "smoke", run, epochs=0, progress=False)
        assert main(["pretrain", "--method", "seco", "--data", str(smoke_data), "--profile", "smoke",
                     "--out", str(run), "--epochs", "0"]) == 2
        assert "is in use by another training" in capsys.readouterr().err
        assert not (run / "checkpoint.pt").exists()
    pretrain("seco", smoke_data, "smoke", run, epochs=0, progress=False)  # free again once it ended
    assert (run / "checkpoint.pt").exists()


def test_a_run_folder_on_a_filesystem_without_locks_trains_with_a_warning(smoke_data, tmp_path, monkeypatch):
    import errno

    from seco_lab.engine import run_lock

    def no_locks(handle, operation):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(run_lock.fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match="cannot lock the run folder \\(Function not implemented\\)") as caught:
        pretrain("seco", smoke_data, "smoke", tmp_path / "run", epochs=1, batch_size=4, max_videos_per_class=2,
                 progress=False)
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    assert sum("cannot lock" in str(warning.message) for warning in caught) == 1  # fit inside pretrain asks again


def test_a_run_folder_that_a_failed_start_created_is_not_left_behind(smoke_data, tmp_path):
    with pytest.raises(ValueError, match="batch_size=4 does not split evenly over the 3 processes"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("WORLD_SIZE", "3")  # checked before any process group or data
            pretrain("seco", smoke_data, "smoke", tmp_path / "run", batch_size=4, progress=False)
    assert not (tmp_path / "run").exists()


def test_a_batch_that_does_not_split_over_the_processes_names_the_multiples_that_do(smoke_data, tmp_path,
                                                                                     monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match=r"choose a multiple of 3 \(6 or 9\)"):
        pretrain("seco", smoke_data, "smoke", tmp_path / "run", batch_size=8, progress=False)
    with pytest.raises(ValueError, match=r"choose a multiple of 3 \(3\)"):
        pretrain("seco", smoke_data, "smoke", tmp_path / "run", batch_size=2, progress=False)


def test_a_run_with_other_settings_is_refused(smoke_data, tmp_path):
    pretrain("seco", smoke_data, "smoke", tmp_path / "run", epochs=0, progress=False)
    with pytest.raises(ValueError, match=r"different settings \(seco.width 0.25 -> 0.5\)"):
        pretrain("seco", smoke_data, "smoke", tmp_path / "run", epochs=0, resume=True, progress=False,
                 overrides={"seco": {"width": 0.5}})


def test_a_run_is_reused_whatever_its_kernel_choice_and_from_before_that_setting(smoke_data, tmp_path):
    """train.deterministic picks kernels, not what is trained: a finished run is reused with the other
    value, and so is one saved before the setting existed."""
    settings = dict(epochs=1, batch_size=4, max_videos_per_class=2, progress=False)
    run = pretrain("seco", smoke_data, "smoke", tmp_path / "run", **settings).run_dir
    assert pretrain("seco", smoke_data, "smoke", run, resume=True, overrides={"train": {"deterministic": True}},
                    **settings).action == "reused"
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    del checkpoint["config"]["train"]["deterministic"]
    torch.save(checkpoint, run / "checkpoint.pt")
    assert pretrain("seco", smoke_data, "smoke", run, resume=True, **settings).action == "reused"


def test_cli_settings_reach_the_run_config_and_a_changed_one_is_refused(smoke_data, tmp_path, capsys):
    run = tmp_path / "run"
    command = ["pretrain", "--method", "seco", "--data", str(smoke_data), "--profile", "smoke", "--out", str(run),
               "--epochs", "0", "--quiet", "--set", "seco.queue_size=64", "--set", "seco.weights.order=0"]
    assert main(command) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["seco"]["queue_size"] == 64 and config["seco"]["weights"] == {"inter": 1.0, "intra": 1.0, "order": 0}
    assert config["train"]["epochs"] == 0
    capsys.readouterr()
    assert main(command[:-1] + ["seco.weights.order=2", "--resume"]) == 2
    assert "different settings (seco.weights.order 0 -> 2)" in capsys.readouterr().err
    assert main(command[:-1] + ["seco.weights.ordr=2"]) == 2
    assert "seco.weights has no 'ordr' (keys: inter, intra, order)" in capsys.readouterr().err


def test_seco_starts_from_the_moco_v2_checkpoint_a_setting_names(smoke_data, tmp_path, capsys):
    """``--set seco.init_checkpoint=FILE`` starts a run (query and key encoders) from MoCo v2
    weights; evaluation rebuilds it from the run's checkpoint without the MoCo file."""
    from seco_lab.evaluation.features import load_encoder
    from seco_lab.models.encoders2d import build_encoder_2d

    cfg = get_profile("smoke")["seco"]
    torch.manual_seed(123)
    trunk = build_encoder_2d(cfg["arch"], width=cfg["width"], small_input=cfg["small_input"])
    moco = tmp_path / "moco_v2.pth.tar"
    torch.save({"state_dict": {f"module.encoder_q.{key}": value for key, value in trunk.state_dict().items()}}, moco)
    run = tmp_path / "run"
    assert main(["pretrain", "--method", "seco", "--data", str(smoke_data), "--profile", "smoke", "--out", str(run),
                 "--epochs", "0", "--quiet", "--set", f"seco.init_checkpoint={moco}"]) == 0
    assert json.loads((run / "config.json").read_text())["seco"]["init_checkpoint"] == str(moco)
    model = _weights(run)
    for key, value in trunk.state_dict().items():
        assert torch.equal(model[f"query.trunk.{key}"], value), key
        assert torch.equal(model[f"key.trunk.{key}"], value), key
    moco.unlink()
    loaded = load_encoder(run / "checkpoint.pt")
    assert torch.equal(loaded.module.state_dict()["conv1.weight"], trunk.state_dict()["conv1.weight"])
    random_baseline = load_encoder(run / "checkpoint.pt", weights="random")
    assert not torch.equal(random_baseline.module.state_dict()["conv1.weight"], trunk.state_dict()["conv1.weight"])
    capsys.readouterr()
    assert main(["pretrain", "--method", "seco", "--data", str(smoke_data), "--profile", "smoke",
                 "--out", str(tmp_path / "missing"), "--epochs", "0", "--quiet",
                 "--set", f"seco.init_checkpoint={moco}"]) != 0
    assert f"{moco}: trunk checkpoint not found" in capsys.readouterr().err


def test_a_run_shorter_than_its_profiles_warm_up_says_how_to_shorten_it(smoke_data, tmp_path, capsys):
    """The paper profile warms up for 5 epochs: a 1-epoch try names the setting that fits it."""
    command = ["pretrain", "--method", "seco", "--data", str(smoke_data), "--profile", "paper", "--device", "cpu",
               "--out", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "8", "--quiet"]
    assert main(command) == 2
    assert ("warmup_epochs=5 exceeds epochs=1: the warm-up must fit in the run, so shorten it too "
            "(pretrain --set train.warmup_epochs=N)") in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_the_paper_profile_on_a_machine_without_a_gpu_needs_device_cpu(smoke_data, tmp_path, capsys, monkeypatch):
    """--device auto finding no GPU stops a paper run before any work, with its schedule and the
    two ways on; --device cpu trains it (here its untrained model, 0 epochs, passes either way)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    command = ["pretrain", "--method", "cvrl", "--data", str(smoke_data), "--profile", "paper",
               "--out", str(tmp_path / "run"), "--quiet"]
    assert main(command) == 2
    assert ("the paper profile trains cvrl for 800 epochs in batches of 1024 at 224 px, sized for GPUs, and no GPU "
            "is visible (--device auto chose the CPU), where it would take days: use --profile standard (sized for a "
            "CPU), or --device cpu to train it on the CPU anyway") in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert main(command + ["--epochs", "0"]) == 0
    finished = tmp_path / "trained_on_a_gpu"  # a finished run copied here is reused, not refused
    pretrain("cvrl", smoke_data, "paper", finished, device="cpu", batch_size=8, max_videos_per_class=2,
             progress=False, num_workers=0, overrides={"train": {"epochs": 1, "warmup_epochs": 0},
                                        "data": {"size": 40, "crop_size": 32}})
    reused = pretrain("cvrl", smoke_data, "paper", finished, resume=True, batch_size=8, max_videos_per_class=2,
                      progress=False, num_workers=0, overrides={"train": {"epochs": 1, "warmup_epochs": 0},
                                                 "data": {"size": 40, "crop_size": 32}})
    assert reused.action == "reused"


def test_fine_tuning_a_paper_run_on_a_machine_without_a_gpu_needs_device_cpu(smoke_data, tmp_path, capsys,
                                                                            monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = tmp_path / "paper-seco"
    assert main(["pretrain", "--method", "seco", "--data", str(smoke_data), "--profile", "paper", "--out", str(run),
                 "--epochs", "0", "--quiet", "--set", "data.size=40", "--set", "data.crop_size=32"]) == 0
    command = ["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--data", str(smoke_data),
               "--max-videos-per-class", "1", "--json", "--protocol"]
    capsys.readouterr()
    assert main(command + ["finetune"]) == 2
    assert ("the paper profile fine-tunes for 150 epochs at 32 px, sized for GPUs, and no GPU is visible (--device "
            "auto chose the CPU), where it would take days: --set eval.finetune_epochs=N shortens it, --device cpu "
            "fine-tunes it on the CPU anyway") in capsys.readouterr().err
    assert main(command + ["knn"]) == 0  # frozen features are not refused
    assert main(command + ["finetune", "--set", "eval.finetune_epochs=1"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["protocol"] == "finetune"


def test_loading_settings_may_change_when_a_run_continues(smoke_data, tmp_path):
    pretrain("seco", smoke_data, "smoke", tmp_path / "run", epochs=0, progress=False)
    continued = pretrain("seco", smoke_data, "smoke", tmp_path / "run", epochs=0, resume=True, progress=False,
                         num_workers=0, frame_cache=False)
    assert continued.action == "initialised"
    with pytest.raises(ValueError, match=r"different settings \(data.crop_size 56 -> 48\)"):
        pretrain("seco", smoke_data, "smoke", tmp_path / "run", epochs=0, resume=True, progress=False,
                 overrides={"data": {"crop_size": 48}})


def test_training_decodes_from_files_when_the_disk_has_no_room_for_the_frame_store(smoke_data, tmp_path,
                                                                                   monkeypatch):
    from seco_lab.video import frame_store

    data = shutil.copytree(smoke_data, tmp_path / "data", ignore=shutil.ignore_patterns(".seco_lab_frames_*"))
    overrides = {"train": {"epochs": 1, "batch_size": 8}}
    with monkeypatch.context() as full_disk:
        full_disk.setattr(frame_store, "RESERVE_BYTES", 1 << 60)
        with pytest.warns(UserWarning, match="decodes every batch from the video files"):
            pretrain("seco", data, "smoke", tmp_path / "decoded", num_workers=0, overrides=overrides, progress=False)
    assert not list(data.glob(".seco_lab_frames_*"))
    pretrain("seco", data, "smoke", tmp_path / "cached", num_workers=0, overrides=overrides, progress=False)
    assert list(data.glob(".seco_lab_frames_*.bin")), "with room on the disk the frames are cached"
    cached, decoded = _weights(tmp_path / "cached"), _weights(tmp_path / "decoded")
    assert all(torch.equal(cached[key], decoded[key]) for key in cached)


@pytest.mark.filterwarnings("ignore:.*the index of .* cannot be kept:UserWarning")
def test_training_decodes_from_files_when_no_folder_can_hold_the_frame_store(smoke_data, tmp_path, monkeypatch):
    """A read-only dataset and a home whose cache folder cannot be made (a file stands in its way)."""
    from seco_lab.video import index as index_module

    data = shutil.copytree(smoke_data, tmp_path / "data", ignore=shutil.ignore_patterns(".seco_lab_*"))
    (tmp_path / "home").write_text("a file, not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home" / "cache"))
    system_access = os.access

    def access(path, mode, **options):  # the dataset folder reads as not writable
        return system_access(path, mode, **options) and not (mode & os.W_OK and Path(path) == data)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(index_module, "_root_is_writable", lambda root: False)
    overrides = {"train": {"epochs": 1, "batch_size": 8}}
    with pytest.warns(UserWarning, match=r"cannot cache the decoded frames \(.*home.*\): training decodes every batch"):
        result = pretrain("seco", data, "smoke", tmp_path / "run", num_workers=0, overrides=overrides, progress=False)
    assert result.action == "trained"
    assert not list(data.glob(".seco_lab_*")), "nothing is written into a read-only dataset"


@pytest.mark.filterwarnings("ignore::seco_lab.video.index.DataProblemWarning")
def test_a_copy_without_test_videos_trains_without_the_knn_monitor(tmp_path):
    """Only the train videos of a split copied: the kNN monitor has nothing to measure."""
    data = make_ucf101(tmp_path / "data")
    for test_video in (data / "UCF-101").glob("*/*_g03_*"):
        test_video.unlink()
    overrides = {"train": {"epochs": 1, "batch_size": 4, "knn_every": 1}}
    with pytest.warns(UserWarning, match="split 1 has no usable test videos, so this run trains without the kNN"):
        result = pretrain("seco", data, "smoke", tmp_path / "run", num_workers=0, frame_cache=False,
                          overrides=overrides, progress=False)
    assert result.action == "trained" and result.steps == 2


def test_a_split_smaller_than_one_batch_is_refused_before_any_work(smoke_data, tmp_path):
    data = shutil.copytree(smoke_data, tmp_path / "data", ignore=shutil.ignore_patterns(".seco_lab_frames_*"))
    with pytest.raises(ValueError, match=r"usable training videos, fewer than batch_size=100000 .*lower it to at "
                                         r"most \d+ \(pretrain --batch-size, report --set train\.batch_size, or a "
                                         r"notebook's batch_size parameter\)"):
        pretrain("seco", data, "smoke", tmp_path / "run", batch_size=100000, progress=False)
    assert not list(data.glob(".seco_lab_frames_*")) and not (tmp_path / "run" / "checkpoint.pt").exists()


def test_supervised_training_on_one_class_is_refused_and_self_supervised_training_is_not(tmp_path):
    for clip in range(4):
        make_video(tmp_path / "data" / "only" / f"clip{clip}.mp4", num_frames=4, seed=clip)
    overrides = {"train": {"batch_size": 2}}
    with pytest.raises(ValueError, match=r"supervised training learns to tell classes apart and needs training "
                                         r"videos of at least 2 classes; split 1 has those of one, only"), \
            pytest.warns(UserWarning, match="the folders layout found one class"):
        pretrain("supervised", tmp_path / "data", "smoke", tmp_path / "supervised", epochs=1, overrides=overrides,
                 progress=False)
    with pytest.warns(UserWarning, match="the folders layout found one class"):
        result = pretrain("seco", tmp_path / "data", "smoke", tmp_path / "seco", epochs=0, progress=False)
    assert result.action == "initialised"


def test_cli_resume_without_a_checkpoint_says_training_starts_from_the_beginning(smoke_data, tmp_path, capsys):
    arguments = ["pretrain", "--method", "seco", "--data", str(smoke_data), "--profile", "smoke", "--epochs", "0",
                 "--out", str(tmp_path / "run"), "--quiet", "--resume"]
    assert main(arguments) == 0
    assert (f"note: --resume: no checkpoint in {tmp_path / 'run'} yet, so training starts from the beginning"
            in capsys.readouterr().err)
    assert main(arguments) == 0
    assert "note: --resume" not in capsys.readouterr().err


def test_cli_evaluate_settings_are_applied_named_and_checked(smoke_data, tmp_path, capsys):
    checkpoint = pretrain("seco", smoke_data, "smoke", tmp_path / "random", epochs=0, progress=False).checkpoint_path
    command = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(smoke_data), "--protocol", "knn",
               "--pooling", "concat", "--max-videos-per-class", "2", "--json"]
    frames = get_profile("smoke")["eval"]["frames_per_video"]
    assert main(command) == 0
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(command + ["--set", "eval.frames_per_video=2", "--set", "eval.bn_stats=train"]) == 0
    changed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert frames != 2 and plain["feature_dim"] * 2 == changed["feature_dim"] * frames
    assert changed["eval.frames_per_video"] == 2 and changed["bn_stats"] == "train"
    assert "eval.frames_per_video" not in plain and plain["bn_stats"] == "checkpoint"
    assert main(command + ["--set", "eval.bn_stats=train", "--bn-stats", "checkpoint"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["bn_stats"] == "checkpoint"
    assert main(command + ["--set", "eval.knn_kk=5"]) == 2
    assert "eval has no 'knn_kk' (keys: batch_size," in capsys.readouterr().err
    assert main(command + ["--set", "seco.width=1"]) == 2
    assert "the profile has no 'seco' (keys: eval)" in capsys.readouterr().err
    assert main(command + ["--set", "eval.knn_k=many"]) == 2
    assert "eval.knn_k takes a number" in capsys.readouterr().err
    assert main(command + ["--set", "eval.knn_k=0"]) == 2
    assert "eval.knn_k must be a whole number >= 1, got 0" in capsys.readouterr().err


def test_cli_evaluates_several_protocols_and_poolings_from_one_extraction(smoke_data, tmp_path, capsys, monkeypatch):
    """Each result equals the one its own command gives; the frames are encoded once per split."""
    checkpoint = pretrain("seco", smoke_data, "smoke", tmp_path / "random", epochs=0, progress=False).checkpoint_path
    command = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(smoke_data), "--max-videos-per-class", "2",
               "--json"]
    alone = {}
    for protocol in ("linear-svm", "knn", "retrieval"):
        for pooling in ("mean", "concat"):
            assert main(command + ["--protocol", protocol, "--pooling", pooling]) == 0
            alone[protocol, pooling] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    extractions = []
    original = runner.extract_video_features
    monkeypatch.setattr(runner, "extract_video_features",
                        lambda *args, **kwargs: extractions.append(kwargs["pooling"]) or original(*args, **kwargs))
    assert main(command + ["--protocol", "linear-svm,knn,retrieval", "--pooling", "mean,concat"]) == 0
    together = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert extractions == ["concat", "concat"]  # train and test, once
    assert [(line["protocol"], line["pooling"]) for line in together] == list(alone)
    for line in together:
        single = alone[line["protocol"], line["pooling"]]
        assert {key: value for key, value in line.items() if key not in ("wall_time_s", "time")} == {
            key: value for key, value in single.items() if key not in ("wall_time_s", "time")}
    with pytest.raises(SystemExit):
        main(command + ["--protocol", "knn,nearest"])
    assert "'nearest' given: choose from linear-svm, linear, knn" in capsys.readouterr().err


def test_tracking_beside_the_dataset_protocols_keeps_its_own_context(smoke_data, tmp_path):
    checkpoint = pretrain("seco", smoke_data, "smoke", tmp_path / "random", epochs=0, progress=False).checkpoint_path
    tracking, knn = run_protocols(["tracking", "knn"], checkpoint, smoke_data, poolings=["concat"], bn_stats="train",
                                  max_videos_per_class=2, knn_k=4)
    assert tracking["protocol"] == "tracking" and tracking["bn_stats"] == "checkpoint"
    assert get_profile("smoke")["seco"]["input_mode"] == "stabilized_differences"
    assert "trained on frame differences; the tracker correlates single RGB frames" in tracking["input_note"]
    assert "num_classes" not in tracking and "max_videos_per_class" not in tracking and "pooling" not in tracking
    assert knn["protocol"] == "knn" and knn["bn_stats"] == "train" and knn["pooling"] == "concat"
    assert knn["num_classes"] >= 2 and knn["max_videos_per_class"] == 2
    assert [line["protocol"] for line in read_results(tmp_path / "random" / "results.jsonl")] == ["tracking", "knn"]


def test_tracking_on_a_dataset_without_sequences_is_skipped_beside_other_protocols_and_an_error_alone(
        smoke_data, tmp_path):
    from seco_lab.evaluation.tracking import TrackingDataError

    data = tmp_path / "no-tracking"
    shutil.copytree(smoke_data, data, ignore=shutil.ignore_patterns("tracking", ".seco_lab_*"))
    checkpoint = pretrain("seco", data, "smoke", tmp_path / "random", epochs=0, progress=False).checkpoint_path
    with pytest.warns(UserWarning, match="tracking skipped: .*no sequence folders with img.*; the other protocols run"):
        tracking, knn = run_protocols(["tracking", "knn"], checkpoint, data, max_videos_per_class=2, knn_k=4)
    assert "no sequence folders" in tracking["skipped"] and knn["top1"] >= 0
    with pytest.raises(TrackingDataError, match="no sequence folders"):
        run_protocols(["tracking"], checkpoint, data)


def test_a_clip_encoder_asked_for_both_poolings_says_it_gives_one_result(smoke_data, tmp_path):
    checkpoint = pretrain("cvrl", smoke_data, "smoke", tmp_path / "random", epochs=0, progress=False).checkpoint_path
    with pytest.warns(UserWarning, match="applies to frame encoders; this cvrl clip encoder's features are the mean"):
        results = run_protocols(["knn"], checkpoint, smoke_data, poolings=["mean", "concat"], max_videos_per_class=2,
                                knn_k=4)
    assert [result["pooling"] for result in results] == ["clip-mean"]


def test_fine_tuning_before_a_frozen_protocol_leaves_the_frozen_trunk_as_loaded(smoke_data, tmp_path):
    checkpoint = pretrain("seco", smoke_data, "smoke", tmp_path / "random", epochs=0, progress=False).checkpoint_path
    options = dict(poolings=["concat"], max_videos_per_class=2, finetune_lr=0.5)
    finetuned, after = run_protocols(["finetune", "retrieval"], checkpoint, smoke_data, **options)
    (alone,) = run_protocols(["retrieval"], checkpoint, smoke_data, **options)
    assert finetuned["protocol"] == "finetune" and finetuned["final_train_loss"] > 0
    assert (finetuned["pooling"], after["pooling"]) == ("segment-mean", "concat")  # fine-tuning averages segments
    assert {key: value for key, value in after.items() if key not in ("wall_time_s", "time")} == {
        key: value for key, value in alone.items() if key not in ("wall_time_s", "time")}


def test_a_profile_value_outside_its_range_is_refused_before_the_run_folder_is_made(smoke_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", "--method", "seco", "--data", str(smoke_data), "--profile", "smoke", "--out", str(run),
                 "--quiet", "--set", "data.crop_size=0", "--set", "seco.augment.scale=[0.9,0.1]"]) == 2
    error = capsys.readouterr().err
    assert "data.crop_size must be a whole number >= 1, got 0" in error
    assert "seco.augment.scale must be [min, max] with 0 < min <= max <= 1, got [0.9, 0.1]" in error
    assert not run.exists()


def test_cli_prints_the_packages_warnings_as_notes(tmp_path, capfd):
    """A layout note reaches a CLI user as one line, not as a Python warning with its source line."""
    for index in range(2):
        make_video(tmp_path / "data" / "train" / f"clip{index}.mp4", seed=index)
    assert main(["pretrain", "--method", "seco", "--data", str(tmp_path / "data"), "--profile", "smoke",
                 "--out", str(tmp_path / "run"), "--epochs", "0", "--quiet"]) == 0
    err = capfd.readouterr().err
    assert f"note: {tmp_path / 'data'}: the folders layout found one class, 'train'" in err
    assert "UserWarning" not in err and "warnings.warn" not in err and "spec = discover" not in err


def test_cli_refuses_to_overwrite_a_run_in_one_line(smoke_data, tmp_path, capsys):
    command = ["pretrain", "--method", "seco", "--data", str(smoke_data), "--profile", "smoke",
               "--out", str(tmp_path / "run"), "--epochs", "0", "--quiet"]
    assert main(command) == 0
    capsys.readouterr()
    assert main(command) == 2
    error = capsys.readouterr().err
    assert error.startswith("seco-lab pretrain: error: ") and "pass --resume" in error and "Traceback" not in error


def test_a_file_as_run_folder_or_an_existing_run_is_refused_before_the_data_is_indexed(smoke_data, tmp_path):
    data = shutil.copytree(smoke_data, tmp_path / "data", ignore=shutil.ignore_patterns(".seco_lab_*"))
    taken = tmp_path / "notes.txt"
    taken.write_text("not a run")
    with pytest.raises(ValueError, match=f"{taken} is a file, not a run directory: choose another --out"):
        pretrain("seco", data, "smoke", taken, epochs=0, progress=False)
    existing = pretrain("seco", smoke_data, "smoke", tmp_path / "run", epochs=0, progress=False).run_dir
    with pytest.raises(FileExistsError, match="--resume"):
        pretrain("seco", data, "smoke", existing, epochs=0, progress=False)
    assert taken.read_text() == "not a run" and not list(data.glob(".seco_lab_*"))


def test_an_evaluation_whose_results_file_cannot_be_written_still_returns_its_result(smoke_data, tmp_path):
    checkpoint = pretrain("seco", smoke_data, "smoke", tmp_path / "random", epochs=0, progress=False).checkpoint_path
    taken = tmp_path / "taken"
    taken.write_text("a file where the results folder would go")
    with pytest.warns(UserWarning, match=f"{taken / 'results.jsonl'}: could not record the result"):
        (result,) = run_protocols(["knn"], checkpoint, smoke_data, max_videos_per_class=2, knn_k=4,
                                  results_file=taken / "results.jsonl")
    assert result["protocol"] == "knn" and 0.0 <= result["top1"] <= 100.0


def test_a_run_is_compared_with_the_config_its_checkpoint_holds(smoke_data, tmp_path):
    """A run folder whose config.json was lost or damaged is still refused for other settings."""
    run = pretrain("seco", smoke_data, "smoke", tmp_path / "run", epochs=0, progress=False).run_dir
    (run / "config.json").unlink()
    with pytest.raises(ValueError, match=r"different settings \(seco.temperature 0.1 -> 0.5\)"):
        pretrain("seco", smoke_data, "smoke", run, epochs=0, resume=True, progress=False,
                 overrides={"seco": {"temperature": 0.5}})
    (run / "config.json").write_text('{"method": "seco", ')
    assert pretrain("seco", smoke_data, "smoke", run, epochs=0, resume=True, progress=False).action == "initialised"


def test_evaluating_the_checkpoint_of_an_unfinished_run_says_so(smoke_data, tmp_path):
    from seco_lab.evaluation.features import load_encoder

    checkpoint = pretrain("seco", smoke_data, "smoke", tmp_path / "run", epochs=0, progress=False).checkpoint_path
    state = torch.load(checkpoint, weights_only=True)
    torch.save({**state, "finished": False, "step": 3, "total_steps": 6}, checkpoint)
    with pytest.warns(UserWarning, match=r"checkpoint\.pt: its run stopped at step 3 of 6, before it finished"):
        load_encoder(checkpoint)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_encoder(checkpoint, weights="random")


def test_cli_pretrain_says_whether_it_trained_or_reused_a_finished_run(smoke_data, tmp_path, capsys):
    command = ["pretrain", "--method", "cvrl", "--data", str(smoke_data), "--profile", "smoke",
               "--out", str(tmp_path / "run"), "--quiet", "--resume"]
    assert main(command) == 0
    assert capsys.readouterr().out.endswith("checkpoint.pt (trained)\n")
    assert main(command) == 0
    assert capsys.readouterr().out.endswith("checkpoint.pt (the run had already finished: reused, not trained again)\n")


def test_a_run_of_another_seed_is_refused_even_untrained(smoke_data, tmp_path):
    run = pretrain("seco", smoke_data, "smoke", tmp_path / "run", epochs=0, seed=0, progress=False).run_dir
    with pytest.raises(ValueError, match=r"different settings \(seed 0 -> 5\)"):
        pretrain("seco", smoke_data, "smoke", run, epochs=0, seed=5, resume=True, progress=False)
