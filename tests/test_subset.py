"""A fixed subset of a large dataset (``max_videos_per_class``) and the notebooks' parameters that
change the profile (subset, training batch, encoder input) for every run they train."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
import torch

from _video_fixtures import make_ucf101
from seco_lab.cli import main
from seco_lab.curriculum import RunSpec, ensure_run
from seco_lab.evaluation.monitor import monitor_records
from seco_lab.methods.pretrain import pretrain
from seco_lab.session import start
from seco_lab.video.check import run_check
from seco_lab.video.index import load_dataset
from seco_lab.video.layouts import DatasetSpec, VideoRecord, limit_per_class


def _records(num_classes: int, per_class: dict[str, int]) -> list[VideoRecord]:
    """Class-sorted records, as UCF101's lists give them: every train video of class 0 first."""
    return [VideoRecord(Path(f"/d/c{label}/v_{label}_{split}_{i:03d}.avi"), label, f"c{label}", split)
            for split, count in per_class.items() for label in range(num_classes) for i in range(count)]


@pytest.mark.parametrize("limit", [1, 3, 7, 50])
def test_at_most_the_limit_of_each_class_and_split_is_kept_in_order(limit):
    records = _records(4, {"train": 7, "test": 2})
    kept = limit_per_class(records, limit)
    for label in range(4):
        assert sum(r.label == label and r.split == "train" for r in kept) == min(limit, 7)
        assert sum(r.label == label and r.split == "test" for r in kept) == min(limit, 2)
    positions = [records.index(r) for r in kept]
    assert positions == sorted(positions)


def test_the_subset_does_not_depend_on_listing_order_and_grows_with_the_limit():
    records = _records(3, {"train": 9, "test": 4})
    shuffled = random.Random(0).sample(records, len(records))
    assert set(limit_per_class(shuffled, 4)) == set(limit_per_class(records, 4))
    for smaller, larger in ((1, 2), (2, 5), (5, 9)):
        assert set(limit_per_class(records, smaller)) <= set(limit_per_class(records, larger))
    first_four = {r for r in records if r.split == "train" and int(r.path.stem.rsplit("_", 1)[1]) < 4}
    assert {r for r in limit_per_class(records, 4) if r.split == "train"} != first_four  # spread, not a prefix


@pytest.mark.parametrize("bad", [0, -2, True, 1.5, "3"])
def test_a_bad_limit_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="max_videos_per_class must be a positive integer"):
        limit_per_class(_records(2, {"train": 3}), bad)


def test_only_the_subset_is_indexed_and_the_summary_says_so(tmp_path):
    root = make_ucf101(tmp_path / "ucf", groups=3, clips=2)  # 2 classes: 8 train, 4 test videos
    spec, index = load_dataset(root, progress=False, max_videos_per_class=1)
    assert len(spec.split("train")) == 2 and len(spec.split("test")) == 2
    assert index.num_found == 4 and len(index.infos) == 4
    assert "subset: at most 1 video per class and split, 4 of 12 in the dataset" in index.summary(spec)
    full_spec, full_index = load_dataset(root, progress=False)
    assert len(full_spec.records) == 12 and "subset:" not in full_index.summary(full_spec)
    out = io.StringIO()
    assert run_check(root, progress=False, out=out, max_videos_per_class=3) == 0
    assert "subset: at most 3 videos per class and split, 10 of 12 in the dataset" in out.getvalue()


@pytest.mark.parametrize("num_classes,max_videos,per_class", [(8, 400, 50), (8, 40, 5), (101, 400, 3), (500, 400, 1)])
def test_the_knn_monitor_measures_every_class_whatever_the_listing_order(num_classes, max_videos, per_class):
    spec = DatasetSpec(Path("/d"), "ucf101", [f"c{i}" for i in range(num_classes)],
                       _records(num_classes, {"train": 72, "test": 28}))
    train, test = monitor_records(spec, max_videos)
    for records, available in ((train, 72), (test, 28)):
        assert sorted({r.label for r in records}) == list(range(num_classes))
        assert len(records) == num_classes * min(per_class, available)


def test_pretraining_on_a_subset_trains_on_it_and_records_it(smoke_data, tmp_path):
    overrides = {"train": {"epochs": 1, "batch_size": 4}}
    result = pretrain("seco", smoke_data, "smoke", tmp_path / "subset", max_videos_per_class=2,
                      overrides=overrides, progress=False, monitor=False)
    config = json.loads((tmp_path / "subset" / "config.json").read_text())
    assert config["data"]["max_videos_per_class"] == 2
    assert result.steps == 2 * config["data"]["num_classes"] // 4
    full = pretrain("seco", smoke_data, "smoke", tmp_path / "full", epochs=0, progress=False)
    assert full.action == "initialised"
    with pytest.raises(ValueError, match=r"different settings \(data.max_videos_per_class 2 -> 3\)"):
        pretrain("seco", smoke_data, "smoke", tmp_path / "subset", max_videos_per_class=3, overrides=overrides,
                 resume=True, progress=False)


def test_the_cli_evaluates_on_the_subset_and_refuses_a_bad_count(smoke_data, tmp_path, capsys):
    checkpoint = pretrain("seco", smoke_data, "smoke", tmp_path / "random", epochs=0, progress=False).checkpoint_path
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(smoke_data), "--protocol", "knn",
                 "--max-videos-per-class", "1", "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["num_train"] == line["num_classes"] == line["num_test"] and line["max_videos_per_class"] == 1
    with pytest.raises(SystemExit) as stopped:
        main(["pretrain", "--method", "seco", "--data", str(smoke_data), "--out", str(tmp_path / "x"),
              "--max-videos-per-class", "0"])
    assert stopped.value.code == 2
    assert "'0' is not a whole number >= 1" in capsys.readouterr().err


def test_evaluating_a_subset_checkpoint_on_every_video_says_so(smoke_data, tmp_path, capsys):
    checkpoint = pretrain("seco", smoke_data, "smoke", tmp_path / "subset", epochs=0, max_videos_per_class=1,
                          progress=False).checkpoint_path
    command = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(smoke_data), "--protocol", "knn"]
    assert main(command) == 0
    assert "pretrained on at most 1 video(s) per class; evaluating on every video" in capsys.readouterr().err
    assert main(command + ["--max-videos-per-class", "1"]) == 0
    assert "pretrained on at most" not in capsys.readouterr().err


def test_notebook_parameters_reach_every_run_and_name_its_folder(smoke_data, tmp_path, monkeypatch):
    monkeypatch.setenv("SECO_LAB_RUNS", str(tmp_path / "runs"))
    lab = start(profile="smoke", data_root=smoke_data, max_videos_per_class=2, batch_size=4, input_mode="rgb")
    assert lab.run_dir == tmp_path / "runs" / "smoke-synth-smoke-2-per-class-batch4-rgb"
    assert lab.section("train")["batch_size"] == 4 and lab.section("cvrl")["input_mode"] == "rgb"
    assert "subset: at most 2 videos per class and split" in str(lab)
    spec, _ = lab.load_dataset()
    assert len(spec.split("train")) == 2 * len(spec.classes)
    ensure_run(lab, RunSpec("wide", "seco", {"seco": {"width": 0.5}}, epochs=0), progress=False)
    config = json.loads((lab.run_dir / "wide" / "config.json").read_text())
    assert config["data"]["max_videos_per_class"] == 2 and config["train"]["batch_size"] == 4
    assert config["seco"]["input_mode"] == "rgb" and config["seco"]["width"] == 0.5
    plain = start(profile="smoke", data_root=smoke_data)
    assert plain.run_dir == tmp_path / "runs" / "smoke-synth-smoke" and plain.overrides == {}


def test_notebook_settings_reach_every_run_and_name_its_folder(smoke_data, tmp_path, monkeypatch):
    monkeypatch.setenv("SECO_LAB_RUNS", str(tmp_path / "runs"))
    with pytest.warns(UserWarning, match="'train.batch_size=8' has no effect: the batch_size parameter"):
        lab = start(profile="smoke", data_root=smoke_data, batch_size=4,
                    settings=["seco.queue_size=64", " train.batch_size=8", "seco.augment.scale=[0.8, 1.0]"])
    assert lab.run_dir == tmp_path / "runs" / "smoke-synth-smoke-batch4-seco.queue_size=64-seco.augment.scale=[0.8,1.0]"
    assert lab.section("seco")["queue_size"] == 64 and lab.section("train")["batch_size"] == 4
    assert "profile settings: seco.queue_size=64, train.batch_size=8, seco.augment.scale=[0.8, 1.0]" in str(lab)
    ensure_run(lab, RunSpec("random", "seco", {"seco": {"width": 0.5}}, epochs=0), progress=False)
    config = json.loads((lab.run_dir / "random" / "config.json").read_text())
    assert config["seco"]["queue_size"] == 64 and config["seco"]["augment"]["scale"] == [0.8, 1.0]
    assert config["seco"]["width"] == 0.5 and config["train"]["batch_size"] == 4
    many = start(profile="smoke", data_root=smoke_data, settings=[f"seco.queue_size={64 + i}" for i in range(6)])
    assert many.run_dir.name.startswith("smoke-synth-smoke-settings-") and len(many.run_dir.name) < 50


@pytest.mark.parametrize("parameters,message", [
    ({"max_videos_per_class": 0}, "max_videos_per_class must be None or an integer >= 1"),
    ({"batch_size": 1}, "batch_size must be None or an integer >= 2"),
    ({"batch_size": "8"}, "batch_size must be None or an integer >= 2"),
    ({"input_mode": "flow"}, "input_mode must be None or one of 'rgb', 'frame_differences', 'stabilized_differences'"),
    ({"settings": "seco.queue_size=64"}, r"settings must be a list of 'SECTION.KEY=VALUE' strings"),
    ({"settings": ["seco.queue_sise=64"]}, r"seco has no 'queue_sise' \(keys: arch, augment"),
    ({"settings": ["seco.queue_size=many"]}, r"seco.queue_size takes a number"),
])
def test_a_bad_notebook_parameter_is_refused_by_name(parameters, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        start(profile="smoke", data_root=tmp_path, run_dir=tmp_path / "runs", **parameters)


def test_a_run_saved_before_the_subset_setting_existed_is_still_reused(smoke_data, tmp_path):
    run = tmp_path / "older"
    pretrain("seco", smoke_data, "smoke", run, epochs=0, progress=False)
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    del checkpoint["config"]["data"]["max_videos_per_class"]  # as written before the setting existed
    del checkpoint["config"]["train"]["decay_norm_and_bias"]
    torch.save(checkpoint, run / "checkpoint.pt")
    assert pretrain("seco", smoke_data, "smoke", run, epochs=0, resume=True, progress=False).action == "initialised"
    with pytest.raises(ValueError, match=r"different settings \(data.max_videos_per_class None -> 3\)"):
        pretrain("seco", smoke_data, "smoke", run, epochs=0, resume=True, progress=False, max_videos_per_class=3)
    with pytest.raises(ValueError, match=r"different settings \(train.decay_norm_and_bias False -> True\)"):
        pretrain("seco", smoke_data, "smoke", run, epochs=0, resume=True, progress=False,
                 overrides={"train": {"decay_norm_and_bias": True}})
