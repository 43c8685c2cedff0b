"""Profiles: one structure, three scales, clear errors."""

import pytest

from seco_lab.profiles import PROFILE_NAMES, PROFILES, ProfileError, get_profile, profile_section


def _shape(tree):
    if isinstance(tree, dict):
        return {key: _shape(value) for key, value in tree.items()}
    return "value"


def test_profiles_share_one_structure():
    shapes = {name: _shape(PROFILES[name]) for name in PROFILE_NAMES}
    assert shapes["smoke"] == shapes["standard"] == shapes["paper"]


def test_get_profile_returns_an_independent_copy():
    first = get_profile("smoke")
    first["train"]["epochs"] = 999
    assert get_profile("smoke")["train"]["epochs"] != 999


def test_unknown_profile_names_the_choices():
    with pytest.raises(ProfileError, match="smoke, standard, paper"):
        get_profile("huge")


def test_unknown_section_names_the_sections():
    with pytest.raises(ProfileError, match="sections are"):
        profile_section("smoke", "nope")


def test_paper_profile_is_the_reference_recipe():
    paper = get_profile("paper")
    assert paper["data"]["crop_size"] == 224
    assert paper["seco"]["arch"] == "resnet50"
    assert paper["seco"]["queue_size"] == 131072
    assert paper["seco"]["key_momentum"] == 0.999
    assert paper["cvrl"]["clip_frames"] == 16 and paper["cvrl"]["stride"] == 2
    assert paper["dualvar"]["clip_frames"] == 16 and paper["dualvar"]["stride"] == 4
