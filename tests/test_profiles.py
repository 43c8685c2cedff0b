"""Profiles: one structure, three scales, clear errors."""

import pytest

from seco_lab.profiles import PROFILE_NAMES, PROFILES, ProfileError, get_profile, profile_section, settings_overrides


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


@pytest.mark.parametrize("settings, expected", [
    (["seco.queue_size=1024"], {"seco": {"queue_size": 1024}}),
    (["seco.weights.order=0", "seco.weights.inter=0.5"], {"seco": {"weights": {"order": 0, "inter": 0.5}}}),
    (["seco.augment.scale=[0.8, 1.0]", "seco.augment.hflip=true"], {"seco": {"augment": {"scale": [0.8, 1.0],
                                                                                           "hflip": True}}}),
    (["seco.input_mode=rgb", "train.base_lr=3e-3"], {"seco": {"input_mode": "rgb"}, "train": {"base_lr": 0.003}}),
    (["data.max_videos_per_class=3", "train.epochs=2.0"], {"data": {"max_videos_per_class": 3},
                                                          "train": {"epochs": 2}}),
    (["eval.svm_c=cv", "train.warmup_epochs=null"], {"eval": {"svm_c": "cv"}, "train": {"warmup_epochs": None}}),
])
def test_settings_become_nested_overrides_of_the_kind_the_profile_holds(settings, expected):
    overrides = settings_overrides(settings, get_profile("standard"))
    assert overrides == expected
    assert type(overrides.get("train", {}).get("epochs", 0)) is int


@pytest.mark.parametrize("setting, message", [
    ("seco.queu_size=1", r"seco has no 'queu_size' \(keys: arch, augment, .*queue_size"),
    ("nosection.a=1", r"the profile has no 'nosection' \(keys: cvrl, data"),
    ("seco.weights.order.x=1", r"seco.weights.order has no 'x'"),
    ("queue_size=3", r"is not SECTION.KEY=VALUE"),
    ("seco.queue_size", r"is not SECTION.KEY=VALUE"),
    ("seco.queue_size=abc", r"seco.queue_size takes a number \(the profile holds 4096\), got a string"),
    ("seco.queue_size=10.5", r"seco.queue_size takes a whole number"),
    ("seco.augment.hflip=1", r"seco.augment.hflip takes true/false"),
    ("seco.augment.scale=0.5", r"seco.augment.scale takes a list"),
    ("train.base_lr=cv", r"train.base_lr takes a number"),
])
def test_a_bad_setting_is_refused_naming_it_and_what_it_takes(setting, message):
    with pytest.raises(ProfileError, match=message):
        settings_overrides([setting], get_profile("standard"))
