"""A notebook's first cell stops on a bad parameter with a message naming the valid choices."""

import warnings

import pytest

from seco_lab.profiles import ProfileError
from seco_lab.session import resolve_profile_name, start


def test_unknown_profile_names_the_choices():
    with pytest.raises(ProfileError, match="smoke, standard, paper"):
        start(profile="fast")


def test_profile_falls_back_to_the_environment(monkeypatch):
    monkeypatch.setenv("SECO_LAB_PROFILE", "paper")
    assert resolve_profile_name(None) == "paper"
    monkeypatch.delenv("SECO_LAB_PROFILE")
    assert resolve_profile_name(None) == "standard"


@pytest.mark.parametrize("device,message", [("gpu", "choose 'auto', 'cpu'"), ("cuda", "CUDA is not available")])
def test_bad_device_is_explained(device, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        start(profile="smoke", device=device, data_root=tmp_path, run_dir=tmp_path / "runs")


def test_missing_data_root_names_the_path_and_the_layouts(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere.*UCF101, HMDB51"):
        start(profile="smoke", data_root=missing, run_dir=tmp_path / "runs")


def test_empty_strings_are_refused_instead_of_meaning_the_working_folder_or_a_default(tmp_path):
    with pytest.raises(ValueError, match="data_root is an empty string"):
        start(profile="smoke", data_root=" ", run_dir=tmp_path / "runs", prepare=False)
    with pytest.raises(ProfileError, match="profile is an empty string: choose one of smoke, standard, paper"):
        start(profile="", prepare=False)


def test_paper_profile_needs_a_real_dataset(tmp_path):
    with pytest.raises(ValueError, match="real dataset"):
        start(profile="paper", run_dir=tmp_path / "runs")


def test_negative_seed_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="seed"):
        start(profile="smoke", seed=-1, data_root=tmp_path, run_dir=tmp_path / "runs")


def test_a_setting_outside_its_range_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match=r"data.crop_size must be a whole number >= 1, got 0"):
        start(profile="smoke", data_root=tmp_path, run_dir=tmp_path / "runs", settings=["data.crop_size=0"])
    assert not (tmp_path / "runs").exists()


def test_valid_parameters_give_a_session(tmp_path):
    lab = start(profile="smoke", data_root=tmp_path, run_dir=tmp_path / "runs", seed=3)
    assert lab.profile_name == "smoke" and lab.seed == 3 and lab.run_dir.is_dir()
    assert lab.section("data")["crop_size"] <= lab.section("data")["size"]


def test_a_session_resolved_without_preparing_touches_neither_disk_nor_rngs(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("SECO_LAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SECO_LAB_RUNS", str(tmp_path / "runs"))
    torch.manual_seed(11)
    expected = torch.rand(1)
    torch.manual_seed(11)
    lab = start(profile="smoke", seed=3, max_videos_per_class=2, prepare=False)
    assert lab.data_root == tmp_path / "data" / "synth-smoke" and lab.run_dir == tmp_path / "runs" / "smoke-2-per-class-seed3"
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()
    assert torch.equal(torch.rand(1), expected)


def test_runs_and_summaries_on_another_dataset_stay_apart_from_the_curriculum(tmp_path, monkeypatch):
    """A learner who points data_root at UCF101 after the embedded curriculum must get fresh
    runs, not "different settings" errors, and must not overwrite the report's numbers."""
    import json

    from seco_lab import paths
    from seco_lab.report import summary_dir
    from seco_lab.session import default_run_dir

    monkeypatch.setenv("SECO_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("SECO_LAB_DATA", str(tmp_path / "data"))
    assert default_run_dir("smoke") == tmp_path / "runs" / "smoke"
    assert default_run_dir("smoke", paths.synth_dataset_dir("smoke")) == tmp_path / "runs" / "smoke"
    (tmp_path / "UCF101").mkdir()
    lab = start(profile="smoke", data_root=tmp_path / "UCF101")
    assert lab.run_dir == tmp_path / "runs" / "smoke-UCF101"
    saved = lab.save_summary("00_setup_and_data", {"videos": 3})
    assert saved == lab.run_dir / "summary" / "00_setup_and_data.json"
    assert json.loads(saved.read_text()) == {"videos": 3}
    assert not summary_dir("smoke").exists()
    explicit = start(profile="smoke", data_root=tmp_path / "UCF101", run_dir=tmp_path / "mine")
    assert explicit.save_summary("01_sampling", {}).parent == tmp_path / "mine" / "summary"


def test_a_file_as_run_dir_is_named(tmp_path):
    taken = tmp_path / "runs.txt"
    taken.write_text("")
    with pytest.raises(ValueError, match=f"run_dir '{taken}' is a file, not a folder"):
        start(profile="smoke", data_root=tmp_path, run_dir=taken)


def test_another_seed_gets_its_own_run_folder(tmp_path, monkeypatch):
    """A notebook re-run with another seed trains its own runs instead of meeting the seed-0 ones."""
    monkeypatch.setenv("SECO_LAB_RUNS", str(tmp_path / "runs"))
    assert start(profile="smoke", prepare=False).run_dir == tmp_path / "runs" / "smoke"
    assert start(profile="smoke", seed=3, prepare=False).run_dir == tmp_path / "runs" / "smoke-seed3"
    assert start(profile="smoke", seed=3, batch_size=4, prepare=False).run_dir == \
        tmp_path / "runs" / "smoke-batch4-seed3"


def test_a_setting_that_a_parameter_overrides_is_named_once_in_the_run_folder_and_warned_of(tmp_path, monkeypatch):
    monkeypatch.setenv("SECO_LAB_RUNS", str(tmp_path / "runs"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same value twice: nothing to warn of
        same = start(profile="smoke", batch_size=8, settings=["train.batch_size=8", "seco.queue_size=64"],
                     prepare=False)
    assert same.run_dir == tmp_path / "runs" / "smoke-batch8-seco.queue_size=64"
    with pytest.warns(UserWarning, match=r"'train.batch_size=4' has no effect: the batch_size parameter \(8\) sets "
                                         r"train.batch_size"):
        other = start(profile="smoke", batch_size=8, settings=["train.batch_size=4"], prepare=False)
    assert other.run_dir == tmp_path / "runs" / "smoke-batch8"
    assert other.section("train")["batch_size"] == 8
    with pytest.warns(UserWarning, match="the input_mode parameter"):
        assert start(profile="smoke", input_mode="rgb", settings=["cvrl.input_mode=frame_differences"],
                     prepare=False).run_dir == tmp_path / "runs" / "smoke-rgb"


def test_a_setting_that_the_run_folder_names_already_is_not_named_twice(tmp_path, monkeypatch):
    """``report --set train.batch_size=12`` named its folders ``...-batch12-train.batch_size=12``: the
    setting changes what the batch_size parameter changes, and their runs are the same runs."""
    from seco_lab.report import notebook_parameters

    monkeypatch.setenv("SECO_LAB_RUNS", str(tmp_path / "runs"))
    runs = tmp_path / "runs"
    by_setting = start(profile="smoke", settings=["train.batch_size=12", "seco.queue_size=64"], prepare=False)
    assert by_setting.run_dir == runs / "smoke-batch12-seco.queue_size=64"
    assert by_setting.run_dir == start(profile="smoke", batch_size=12, settings=["seco.queue_size=64"],
                                       prepare=False).run_dir
    assert notebook_parameters("smoke", settings=["train.batch_size=12"])[1] == runs / "smoke-batch12"
    assert start(profile="smoke", settings=["data.max_videos_per_class=3"], prepare=False).run_dir == \
        runs / "smoke-3-per-class"
    every_encoder = [f"{section}.input_mode=rgb" for section in ("seco", "cvrl", "dualvar")]
    assert start(profile="smoke", settings=every_encoder, prepare=False).run_dir == runs / "smoke-rgb"
    assert start(profile="smoke", input_mode="rgb", prepare=False).run_dir == runs / "smoke-rgb"
    # one encoder's input only: not what the input_mode parameter (every encoder's) does, so named as set
    assert start(profile="smoke", settings=["seco.input_mode=rgb"], prepare=False).run_dir == \
        runs / "smoke-seco.input_mode=rgb"
