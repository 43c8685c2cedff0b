"""A notebook's first cell stops on a bad parameter with a message naming the valid choices."""

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


def test_paper_profile_needs_a_real_dataset(tmp_path):
    with pytest.raises(ValueError, match="real dataset"):
        start(profile="paper", run_dir=tmp_path / "runs")


def test_negative_seed_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="seed"):
        start(profile="smoke", seed=-1, data_root=tmp_path, run_dir=tmp_path / "runs")


def test_valid_parameters_give_a_session(tmp_path):
    lab = start(profile="smoke", data_root=tmp_path, run_dir=tmp_path / "runs", seed=3)
    assert lab.profile_name == "smoke" and lab.seed == 3 and lab.run_dir.is_dir()
    assert lab.section("data")["crop_size"] <= lab.section("data")["size"]
