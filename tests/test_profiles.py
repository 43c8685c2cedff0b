"""Profiles: one structure, three scales, clear errors."""

import fnmatch
from types import SimpleNamespace

import pytest

from seco_lab.engine.schedule import scaled_lr
from seco_lab.methods.pretrain import build_run_config, deep_update, train_config
from seco_lab.profiles import (METHOD_NAMES, PROFILE_NAMES, PROFILES, VALUE_RULES, ProfileError, flatten_settings,
                               check_profile_values, choice_rules, fold_method_sections, get_profile, profile_section,
                               settings_overrides)


def _shape(tree):
    if isinstance(tree, dict):
        return {key: _shape(value) for key, value in tree.items()}
    return "value"


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_profiles_share_one_structure(method):
    """Every profile gives a run of each method the same sections and keys."""
    shapes = {name: _shape(fold_method_sections(PROFILES[name], method)) for name in PROFILE_NAMES}
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


def _paper_run(method, tmp_path, overrides=None):
    config = build_run_config(method, "paper", tmp_path, overrides=overrides)
    return config, train_config(config, device="cpu")


@pytest.mark.parametrize("method, batch, lr, weight_decay, warmup, epochs", [
    ("seco", 512, 0.1 * 512 / 256, 1e-4, 5, 400),  # SGD, lr 0.1 x batch/256, 5 warm-up epochs, 400 epochs
    ("cvrl", 1024, 0.32, 1e-6, 5, 800),  # lr 0.32 at batch 1024, decay 1e-6, 5 warm-up epochs, 200-800 epochs
    ("dualvar", 64, 0.003, 1e-4, 0, 200),  # batch 64, lr 0.003, decay 1e-4, 200 epochs
])
def test_paper_runs_train_on_their_own_papers_schedule(tmp_path, method, batch, lr, weight_decay, warmup, epochs):
    _, cfg = _paper_run(method, tmp_path)
    assert (cfg.optimizer, cfg.momentum) == ("sgd", 0.9)
    assert cfg.batch_size == batch and scaled_lr(cfg.base_lr, cfg.batch_size, cfg.lr_scaling_batch) == pytest.approx(lr)
    assert cfg.weight_decay == weight_decay and cfg.warmup_epochs == warmup and cfg.epochs == epochs


@pytest.mark.parametrize("method, decays_everything", [("seco", True), ("cvrl", False), ("dualvar", True)])
def test_paper_runs_decay_the_parameters_their_papers_decay(tmp_path, method, decays_everything):
    """MoCo v2's code (SeCo) decays every parameter; CVRL conv/linear weights only."""
    assert _paper_run(method, tmp_path)[1].decay_norm_and_bias is decays_everything


def test_paper_augmentations_flip_where_their_papers_do():
    """SeCo (MoCo v2's augmentation) and CVRL flip; DualVar names crop, jitter and blur only."""
    paper = get_profile("paper")
    assert [paper[method]["augment"]["hflip"] for method in ("seco", "cvrl", "dualvar")] == [True, True, False]


@pytest.mark.parametrize("method, clips, crops, average", [
    ("seco", 20, 3, "logits"),  # SeCo: 20 clips x 3 crops, logits averaged
    ("cvrl", 20, 3, "logits"),
    ("dualvar", 10, 1, "softmax"),  # DualVar: 10 clips, softmax averaged
])
def test_paper_fine_tuning_tests_each_method_as_its_paper_does(tmp_path, method, clips, crops, average):
    from seco_lab.evaluation.runner import evaluation_settings

    encoder = SimpleNamespace(method=method, config={})
    by_name = evaluation_settings("paper", encoder)
    from_the_dict = evaluation_settings(get_profile("paper"), encoder)
    from_the_run = _paper_run(method, tmp_path)[0]["eval"]
    for settings in (by_name, from_the_dict, from_the_run):
        assert (settings["finetune_test_clips"], settings["finetune_test_crops"],
                settings["finetune_test_average"]) == (clips, crops, average)
        assert settings["finetune_epochs"] == 150


def test_paper_dualvar_trains_on_112_pixel_clips_and_the_others_on_224(tmp_path):
    assert _paper_run("dualvar", tmp_path)[0]["data"]["crop_size"] == 112
    assert _paper_run("cvrl", tmp_path)[0]["data"]["crop_size"] == _paper_run("seco", tmp_path)[0]["data"]["crop_size"] == 224


def test_a_runs_overrides_win_over_its_methods_own_schedule(tmp_path):
    config, cfg = _paper_run("cvrl", tmp_path, overrides={"train": {"batch_size": 256}, "data": {"crop_size": 160}})
    assert cfg.batch_size == 256 and scaled_lr(cfg.base_lr, cfg.batch_size, cfg.lr_scaling_batch) == pytest.approx(0.08)
    assert cfg.weight_decay == 1e-6 and config["data"]["crop_size"] == 160
    assert not {"train_cvrl", "train_dualvar", "data_dualvar"} & set(config)
    _, cfg = _paper_run("cvrl", tmp_path, overrides={"train": {"epochs": 70}, "train_cvrl": {"epochs": 30}})
    assert cfg.epochs == 30


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


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_every_profile_value_is_one_its_rule_accepts(name):
    check_profile_values(get_profile(name))


@pytest.mark.parametrize("setting, message", [
    ("data.crop_size=0", "data.crop_size must be a whole number >= 1, got 0"),
    ("data.crop_size=100", "data.crop_size (100) must not exceed data.size (64): crops are cut from frames decoded"),
    ("train.batch_size=1", "train.batch_size must be a whole number >= 2, got 1"),
    ("dualvar.segments=16", "dualvar.segments (16) must not exceed dualvar.clip_frames (8): each segment"),
    ("data.num_workers=-1", "data.num_workers must be a whole number >= 0, got -1"),
    ("seco.queue_size=0", "seco.queue_size must be a whole number >= 1, got 0"),
    ("seco.width=0", "seco.width must be a number > 0, got 0"),
    ("seco.temperature=-0.1", "seco.temperature must be a number > 0, got -0.1"),
    ("seco.key_momentum=1.5", "seco.key_momentum must be a number in [0, 1], got 1.5"),
    ("seco.weights.order=-1", "seco.weights.order must be a number >= 0, got -1"),
    ("seco.augment.scale=[0.9,0.1]", "seco.augment.scale must be [min, max] with 0 < min <= max <= 1, got [0.9, 0.1]"),
    ("seco.augment.scale=[0,1]", "seco.augment.scale must be [min, max] with 0 < min"),
    ("cvrl.augment.area=[0.5,1.5]", "cvrl.augment.area must be [min, max]"),
    ("cvrl.erase_alpha=[0.5]", "cvrl.erase_alpha must be [min, max] with 0 <= min"),
    ("seco.augment.jitter=[0.4,0.4,0.4,0.6]", "seco.augment.jitter must be [brightness, contrast, saturation, hue]"),
    ("dualvar.segments=1", "dualvar.segments must be a whole number >= 2, got 1"),
    ("cvrl.reverse_prob=2", "cvrl.reverse_prob must be a number in [0, 1], got 2"),
    ("eval.frames_per_video=0", "eval.frames_per_video must be a whole number >= 1, got 0"),
    ("eval.retrieval_ks=[1,0]", "eval.retrieval_ks must be a list of whole numbers >= 1, got [1, 0]"),
    ("eval.svm_c=0", "eval.svm_c must be a number > 0, got 0"),
    ("seco.arch=resnet99", "seco.arch must be one of resnet18, resnet50, got 'resnet99'"),
    ("cvrl.arch=resnet18", "cvrl.arch must be one of r3d_18, "),
    ("eval.tracking_feature_norm=l1", "eval.tracking_feature_norm must be one of l2, none, got 'l1'"),
    ("eval.finetune_optimizer=rmsprop", "eval.finetune_optimizer must be one of sgd, adam, got 'rmsprop'"),
    ("eval.embeddings=[\"pca\",\"umap\"]", "eval.embeddings must be a list of pca, tsne, got ['pca', 'umap']"),
    ("supervised.frame_pooling=max", "supervised.frame_pooling must be one of concat, mean, got 'max'"),
    ("dualvar.losses=SR", "dualvar.losses must be one of clip, clip+SR, clip+SR+TC, got 'SR'"),
    ("cvrl.interval_distribution=gaussian", "cvrl.interval_distribution must be one of decreasing, uniform"),
    ("synth.preset=huge", "synth.preset must be one of smoke, standard, got 'huge'"),
    ("cvrl.std=[0.2,0.2,0]", "cvrl.std must be [red, green, blue], three numbers > 0, got [0.2, 0.2, 0]"),
])
def test_a_value_outside_its_range_is_refused_by_name(setting, message):
    profile = get_profile("standard")
    check_profile_values(profile)
    changed = deep_update(profile, settings_overrides([setting], profile))
    with pytest.raises(ProfileError) as refused:
        check_profile_values(changed)
    assert message in str(refused.value)


def test_a_methods_own_sections_are_checked_with_the_values_they_take_from_the_shared_ones():
    profile = get_profile("paper")
    profile["data_dualvar"]["crop_size"] = 200  # its own size is 128
    profile["train_cvrl"]["batch_size"] = 1
    with pytest.raises(ProfileError) as refused:
        check_profile_values(profile)
    assert "train_cvrl.batch_size must be a whole number >= 2, got 1" in str(refused.value)
    assert "data_dualvar.crop_size (200) must not exceed data_dualvar.size (128)" in str(refused.value)
    profile = get_profile("paper")
    del profile["data_dualvar"]["size"]  # then data.size, 256, is its size
    profile["data_dualvar"]["crop_size"] = 240
    check_profile_values(profile)
    profile["data_dualvar"]["crop_size"] = 300
    with pytest.raises(ProfileError, match=r"data_dualvar\.crop_size \(300\) must not exceed data_dualvar\.size \(256\)"):
        check_profile_values(profile)


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_every_profile_value_outside_train_has_a_rule(name):
    """A new profile key needs a rule (the train section is checked by TrainConfig)."""
    rules = [pattern for pattern, _ in VALUE_RULES + choice_rules()]
    unruled = [key for key in flatten_settings(get_profile(name))
               if not key.startswith(("train.", "train_cvrl.", "train_dualvar."))
               and not any(fnmatch.fnmatchcase(key, rule) for rule in rules)]
    assert unruled == []


def test_a_value_of_another_type_is_refused_even_without_a_setting():
    """Overrides given from Python skip the settings' kind check: the rules still catch them."""
    profile = get_profile("smoke")
    profile["seco"]["augment"]["hflip"] = "no"
    profile["eval"]["embeddings"] = "pca"
    profile["cvrl"]["input_mode"] = "RGB"
    with pytest.raises(ProfileError, match=r"seco.augment.hflip must be true or false, got 'no'; "
                                           r"cvrl.input_mode must be one of rgb, frame_differences, "
                                           r"stabilized_differences, got 'RGB'; "
                                           r"eval.embeddings must be a list of pca, tsne, got 'pca'"):
        check_profile_values(profile)


def test_null_cv_and_edge_values_pass_and_every_problem_is_named():
    profile = get_profile("smoke")
    profile["seco"].update(queue_size=1, key_momentum=1.0, order_hidden=0, augment={**profile["seco"]["augment"],
                                                                                     "blur_prob": None})
    profile["eval"].update(svm_c="cv", finetune_dropout=0.0)
    profile["data"]["max_videos_per_class"] = None
    check_profile_values(profile)
    profile["data"]["size"] = 0
    profile["eval"]["knn_k"] = 2.5
    with pytest.raises(ProfileError, match=r"data.size must be .*, got 0; eval.knn_k must be a whole number >= 1, got 2.5"):
        check_profile_values(profile)
