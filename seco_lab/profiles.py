"""Run profiles: every size, schedule and hyperparameter the CLI and notebooks use.

Three profiles share one structure and differ only in scale:

* ``smoke``    — seconds per notebook; what CI and ``make test`` run.
* ``standard`` — meaningful results on a 2-core CPU, whole curriculum in about half an hour,
  under 2 GB of RAM (fits a Binder session).
* ``paper``    — the reference recipes of the three papers (224 px, ResNet-50 / R3D-50;
  DualVar's 112 px R(2+1)D; each paper's batch size and schedule), for GPUs and a real dataset.

A profile is a plain nested dict with one section per concern. ``get_profile`` returns a
deep copy, so callers may override values freely. A section ``<shared>_<method>`` (the paper
profile's ``train_cvrl``, ``train_dualvar``, ``data_dualvar``, ``eval_dualvar``) holds one
method's own values of the shared section ``train``, ``data`` or ``eval``: a run of that method takes them in place of the
shared ones (``fold_method_sections``), so every profile gives each method's runs one structure.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import hashlib
import json
from collections.abc import Iterable
from typing import Any

PROFILE_NAMES = ("smoke", "standard", "paper")
METHOD_NAMES = ("seco", "cvrl", "dualvar", "supervised")


class ProfileError(ValueError):
    """An unknown profile, method or section name."""


_SMOKE: dict[str, Any] = {
    "data": {"size": 64, "crop_size": 56, "num_workers": 1, "frame_cache": True, "max_videos_per_class": None},
    "synth": {"preset": "smoke"},
    "seco": {
        "arch": "resnet18", "width": 0.25, "small_input": False, "head_hidden": 64, "head_dim": 32,
        "queue_size": 256, "temperature": 0.1, "key_momentum": 0.99,
        "weights": {"inter": 1.0, "intra": 1.0, "order": 1.0}, "order_hidden": 64,
        "input_mode": "stabilized_differences", "init_checkpoint": None,
        "augment": {"hflip": False, "scale": [0.5, 1.0], "jitter": [0.4, 0.4, 0.4, 0.0], "blur_prob": 0.0},
    },
    "cvrl": {
        "arch": "tiny3d", "width": 0.25, "clip_frames": 8, "stride": 1, "head_hidden": 64,
        "head_dim": 32, "head_layers": 1, "head_batch_norm": False, "temperature": 0.1, "interval_power": 1.0,
        "interval_distribution": "decreasing", "augment_mode": "consistent",
        "input_mode": "stabilized_differences", "reverse_prob": 0.0, "erase_alpha": [0.0, 0.0], "mean": None,
        "std": None, "augment": {"hflip": False, "area": [0.6, 1.0], "jitter": [0.6, 0.6, 0.6, 0.0],
                                 "blur_prob": 0.0, "solarize_prob": 0.0},
    },
    "dualvar": {
        "arch": "tiny3d", "width": 0.25, "clip_frames": 8, "stride": 1, "head_hidden": 64,
        "clip_dim": 32, "series_dim": 16, "segments": 2, "temperature": 0.07,
        "rank_margin_temperature": 0.05, "losses": "clip+SR+TC", "variant": "simclr",
        "input_mode": "stabilized_differences", "reverse_prob": 0.5, "derangement": True, "mean": None, "std": None,
        "key_momentum": 0.99, "queue_size": 1024, "augment_mode": "consistent",
        "augment": {"hflip": False, "scale": [0.6, 1.0], "jitter": [0.6, 0.6, 0.6, 0.0], "blur_prob": 0.0},
    },
    "supervised": {"backbone": "seco", "segments": 4, "frame_pooling": "concat", "dropout": 0.0, "augment": {"hflip": False}},
    "train": {
        "epochs": 1, "batch_size": 16, "optimizer": "adamw", "base_lr": 1e-3,
        "lr_scaling_batch": 0, "weight_decay": 1e-4, "decay_norm_and_bias": False, "warmup_epochs": 0,
        "checkpoint_every": 0, "knn_every": 0, "deterministic": False,
    },
    "train_signals": {"epochs": 1},
    "eval": {
        "frames_per_video": 8, "clips_per_video": 2, "test_crops": 1, "batch_size": 64, "bn_stats": "checkpoint",
        "svm_c": 1.0,  # the paper's C; "cv" chooses it by cross-validation on the train split
        "linear_lr": 4.0, "linear_epochs": 50, "linear_batch_size": 256, "linear_weight_decay": 0.0,
        "knn_k": 20, "knn_temperature": 0.07,
        "untrained_inits": 2,  # initialisations of each untrained baseline, to show how much its seed moves it
        "retrieval_ks": [1, 5, 10, 20, 50],
        "finetune_epochs": 1, "finetune_lr": 1e-3, "finetune_optimizer": "adam", "finetune_batch_size": 16,
        "finetune_weight_decay": 0.0, "finetune_segments": 4, "finetune_dropout": 0.5, "finetune_partial_bn": True,
        "finetune_hflip": False, "finetune_test_clips": 2, "finetune_test_crops": 1,
        "finetune_test_average": "logits",  # over a test video's views: "logits" (SeCo) or "softmax" (DualVar)
        "tracking_exemplar_size": 32, "tracking_instance_size": 64, "tracking_num_scales": 3,
        "tracking_feature_norm": "l2", "embeddings": ["pca"],
    },
}

_STANDARD: dict[str, Any] = copy.deepcopy(_SMOKE)
_STANDARD.update({
    "synth": {"preset": "standard"},
    "train": {
        "epochs": 20, "batch_size": 32, "optimizer": "adamw", "base_lr": 1e-3,
        "lr_scaling_batch": 0, "weight_decay": 1e-4, "decay_norm_and_bias": False, "warmup_epochs": 2,
        "checkpoint_every": 200, "knn_every": 10, "deterministic": False,
    },
})
_STANDARD["eval"].update({"embeddings": ["pca", "tsne"], "clips_per_video": 4, "linear_epochs": 100, "finetune_epochs": 5,
                          "untrained_inits": 5})
_STANDARD["train_signals"] = {"epochs": 5}
_STANDARD["data"]["num_workers"] = 2
_STANDARD["seco"].update({"width": 0.5, "small_input": False, "head_hidden": 128, "head_dim": 64, "queue_size": 4096})
_STANDARD["cvrl"].update({"width": 0.5, "head_hidden": 128, "head_dim": 64})
_STANDARD["dualvar"].update({"width": 0.5, "head_hidden": 128, "clip_dim": 64, "series_dim": 32})

_PAPER: dict[str, Any] = {
    "data": {"size": 256, "crop_size": 224, "num_workers": 8, "frame_cache": False, "max_videos_per_class": None},
    "synth": {"preset": "standard"},
    "seco": {
        "arch": "resnet50", "width": 1.0, "small_input": False, "head_hidden": 2048, "head_dim": 128,
        "queue_size": 131072, "temperature": 0.1, "key_momentum": 0.999,
        "weights": {"inter": 1.0, "intra": 1.0, "order": 1.0}, "order_hidden": 0,
        "input_mode": "rgb", "init_checkpoint": None,
        "augment": {"hflip": True, "scale": [0.2, 1.0], "jitter": [0.4, 0.4, 0.4, 0.1], "blur_prob": 0.5},
    },
    "cvrl": {
        "arch": "cvrl_r3d50", "width": 1.0, "clip_frames": 16, "stride": 2, "head_hidden": 2048,
        "head_dim": 128, "head_layers": 3, "head_batch_norm": True, "temperature": 0.1, "interval_power": 1.0,
        "interval_distribution": "decreasing", "augment_mode": "consistent",
        "input_mode": "rgb", "reverse_prob": 0.0, "erase_alpha": [0.0, 0.0], "mean": None,
        "std": None, "augment": {"hflip": True, "area": [0.3, 1.0], "jitter": [0.8, 0.8, 0.8, 0.2],
                                 "blur_prob": None, "solarize_prob": None},
    },
    "dualvar": {
        "arch": "dualvar_r21d", "width": 1.0, "clip_frames": 16, "stride": 4, "head_hidden": 512,
        "clip_dim": 128, "series_dim": 64, "segments": 2, "temperature": 0.07,
        "rank_margin_temperature": 0.05, "losses": "clip+SR+TC", "variant": "simclr",
        "input_mode": "rgb", "reverse_prob": 0.5, "derangement": True, "mean": None, "std": None, "key_momentum": 0.999,
        "queue_size": 65536, "augment_mode": "consistent",
        # DualVar's clip-consistent augmentation: random crop, colour jitter and blur (no flip, no grayscale).
        "augment": {"hflip": False, "scale": [0.2, 1.0], "jitter": [0.4, 0.4, 0.4, 0.1], "blur_prob": 0.5},
    },
    "supervised": {"backbone": "seco", "segments": 7, "frame_pooling": "mean", "dropout": 0.9, "augment": {"hflip": True}},
    # SeCo (and the supervised baseline): MoCo v2's code decays every parameter, BN and biases too.
    "train": {
        "epochs": 400, "batch_size": 512, "optimizer": "sgd", "base_lr": 0.1,
        "lr_scaling_batch": 256, "weight_decay": 1e-4, "decay_norm_and_bias": True, "warmup_epochs": 5,
        "checkpoint_every": 1000, "knn_every": 0, "deterministic": False,
    },
    "train_signals": {"epochs": 50},
    # CVRL: lr 0.32 at batch 1024, decay 1e-6 (on conv/linear weights, not BN or biases), 5 warm-up
    # epochs, cosine, 800 epochs (200 in its ablations). Its TF code summed the replicas' gradients
    # of per-replica mean losses, while DDP averages them: at the same lr, steps here are smaller by
    # CVRL's replica count (raise base_lr by that count to take its steps).
    "train_cvrl": {"epochs": 800, "batch_size": 1024, "base_lr": 0.32, "lr_scaling_batch": 1024,
                   "weight_decay": 1e-6, "decay_norm_and_bias": False, "warmup_epochs": 5},
    # DualVar: batch 64, lr 0.003, decay 1e-4 (no exclusion named: every parameter), 200 epochs of
    # 16 x 112 x 112 clips.
    "train_dualvar": {"epochs": 200, "batch_size": 64, "base_lr": 0.003, "lr_scaling_batch": 64,
                      "weight_decay": 1e-4, "decay_norm_and_bias": True, "warmup_epochs": 0},
    "data_dualvar": {"size": 128, "crop_size": 112},
}
_PAPER["eval"] = copy.deepcopy(_SMOKE["eval"])
_PAPER["eval"].update({
    "frames_per_video": 30, "clips_per_video": 10, "test_crops": 3, "batch_size": 256,
    "linear_lr": 32.0, "linear_epochs": 100, "linear_batch_size": 1024,
    "knn_k": 200, "untrained_inits": 3,
    "finetune_epochs": 150, "finetune_lr": 1e-3, "finetune_optimizer": "sgd", "finetune_batch_size": 64,
    "finetune_weight_decay": 5e-4, "finetune_segments": 7, "finetune_dropout": 0.9, "finetune_test_clips": 20,
    "finetune_test_crops": 3, "finetune_hflip": True,
    "tracking_exemplar_size": 127, "tracking_instance_size": 255, "embeddings": ["pca", "tsne"],
})
# Fine-tuning as SeCo's paper does it (above), and as DualVar's: 10 clips of 16 frames at test (one
# centre crop), their softmax averaged. A DualVar run's evaluation takes these in place of the above.
_PAPER["eval_dualvar"] = {"finetune_test_clips": 10, "finetune_test_crops": 1, "finetune_test_average": "softmax"}

PROFILES: dict[str, dict[str, Any]] = {"smoke": _SMOKE, "standard": _STANDARD, "paper": _PAPER}


def get_profile(name: str) -> dict[str, Any]:
    """Return a deep copy of profile ``name``; raise ``ProfileError`` naming the valid choices."""
    if name not in PROFILES:
        raise ProfileError(
            f"unknown profile {name!r}: choose one of {', '.join(PROFILE_NAMES)}"
        )
    return copy.deepcopy(PROFILES[name])


SHARED_SECTIONS = ("data", "train", "eval")


def fold_method_sections(values: dict[str, Any], method: str) -> dict[str, Any]:
    """``values`` (a profile or nested overrides) as a run of ``method`` sees it: its
    ``<shared>_<method>`` sections merged into ``<shared>`` (for ``<shared>`` in ``SHARED_SECTIONS``),
    and every ``<shared>_<name>`` section removed. Example, for ``"cvrl"``: ``{"train": {"epochs":
    400, "batch_size": 512}, "train_cvrl": {"batch_size": 1024}, "train_dualvar": {"batch_size":
    64}}`` -> ``{"train": {"epochs": 400, "batch_size": 1024}}``."""
    folded = copy.deepcopy(values)
    for shared in SHARED_SECTIONS:
        for name in METHOD_NAMES:
            own = folded.pop(f"{shared}_{name}", None)
            if name == method and own:
                folded[shared] = {**folded.get(shared, {}), **own}
    return folded


def check_setting_names(overrides: dict[str, Any], profile: dict[str, Any]) -> None:
    """Raise ``ProfileError`` naming every key of the nested ``overrides`` that ``profile`` lacks,
    with the keys it holds there (``seco.weights has no 'ordr' (keys: inter, intra, order)``): a
    misspelt setting would otherwise be recorded in a run's config and ignored. The CLI's ``--set``
    applies the same rule (:func:`settings_overrides`)."""
    problems: list[str] = []

    def walk(values: dict[str, Any], held: dict[str, Any], path: str) -> None:
        for key, value in values.items():
            name = f"{path}.{key}" if path else str(key)
            if key not in held:
                problems.append(f"{path or 'the profile'} has no {key!r} (keys: {', '.join(sorted(held))})")
            elif isinstance(value, dict) and isinstance(held[key], dict):
                walk(value, held[key], name)

    walk(overrides, profile, "")
    if problems:
        raise ProfileError("unknown setting(s): " + "; ".join(problems))


def profile_section(name: str, section: str) -> dict[str, Any]:
    """Return one section (``"data"``, ``"seco"``, ``"train"``, ...) of a profile."""
    profile = get_profile(name)
    if section not in profile:
        raise ProfileError(
            f"profile {name!r} has no section {section!r}: sections are {', '.join(sorted(profile))}"
        )
    return profile[section]


# Values a setting may take besides those of the profile's kind.
ALTERNATIVE_VALUES: dict[str, tuple[Any, ...]] = {"eval.svm_c": ("cv",)}


def _kind(value: Any) -> str:
    """The kind of a profile value, for checking a setting against it."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a section" if isinstance(value, dict) else type(value).__name__


def settings_overrides(settings: list[str], profile: dict[str, Any]) -> dict[str, Any]:
    """Nested overrides of ``profile`` from ``SECTION.KEY[.KEY]=VALUE`` settings (the CLI's ``--set``).

    VALUE is read as JSON when it parses as JSON (``1024``, ``3e-3``, ``[0.8, 1.0]``, ``true``,
    ``null``) and as a plain string otherwise (``rgb``). The key must already exist in
    ``profile`` and the value must be of the kind held there (``null`` may replace or be
    replaced by anything); ``ProfileError`` names the setting and what was expected.
    Example: ``["seco.queue_size=1024", "seco.weights.order=0"]`` ->
    ``{"seco": {"queue_size": 1024, "weights": {"order": 0}}}``.
    """
    overrides: dict[str, Any] = {}
    for setting in settings:
        key, equals, text = setting.partition("=")
        path = [part.strip() for part in key.split(".")]
        if not equals or len(path) < 2 or not all(path):
            raise ProfileError(f"setting {setting!r} is not SECTION.KEY=VALUE (e.g. seco.queue_size=1024)")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text.strip()
        held: Any = profile
        for depth, part in enumerate(path):
            if not isinstance(held, dict) or part not in held:
                where = ".".join(path[:depth]) or "the profile"
                choices = ", ".join(sorted(held)) if isinstance(held, dict) else "none: it is a single value"
                raise ProfileError(f"setting {setting!r}: {where} has no {part!r} (keys: {choices})")
            held = held[part]
        name = ".".join(path)
        if (held is not None and value is not None and _kind(held) != _kind(value)
                and value not in ALTERNATIVE_VALUES.get(name, ())):
            raise ProfileError(f"setting {setting!r}: {name} takes {_kind(held)} "
                               f"(the profile holds {held!r}), got {_kind(value)}")
        if isinstance(held, int) and not isinstance(held, bool) and isinstance(value, float):
            if not value.is_integer():
                raise ProfileError(f"setting {setting!r}: {name} takes a whole number (the profile holds {held!r})")
            value = int(value)
        target = overrides
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return overrides


def settings_label(settings: list[str] | tuple[str, ...]) -> str:
    """A folder-name part for runs of these settings: ``seco.queue_size=1024-train.epochs=40``,
    or ``settings-<hash>`` when that would be long."""
    named = "-".join(setting.strip() for setting in settings).replace("/", "_").replace(" ", "")
    return named if len(named) <= 80 else "settings-" + hashlib.sha1(named.encode()).hexdigest()[:10]


def _is_whole_number(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _whole_number(minimum: int) -> tuple[str, Any]:
    return f"a whole number >= {minimum}", lambda value: _is_whole_number(value, minimum)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_above(low: float) -> tuple[str, Any]:
    return f"a number > {low:g}", lambda value: _is_number(value) and value > low


def _number_at_least(low: float) -> tuple[str, Any]:
    return f"a number >= {low:g}", lambda value: _is_number(value) and value >= low


_FRACTION = ("a number in [0, 1]", lambda value: _is_number(value) and 0 <= value <= 1)


def _ordered_pair(low_open: bool) -> tuple[str, Any]:
    def check(value: Any) -> bool:
        if not (isinstance(value, list) and len(value) == 2 and all(map(_is_number, value))):
            return False
        return (value[0] > 0 if low_open else value[0] >= 0) and value[0] <= value[1] <= 1
    return f"[min, max] with {'0 <' if low_open else '0 <='} min <= max <= 1", check


_JITTER = ("[brightness, contrast, saturation, hue], each >= 0 and hue <= 0.5",
           lambda value: isinstance(value, list) and len(value) == 4 and all(_is_number(v) and v >= 0 for v in value)
           and value[3] <= 0.5)
_WHOLE_NUMBERS = ("a list of whole numbers >= 1",
                  lambda value: isinstance(value, list) and bool(value) and all(_is_whole_number(v, 1) for v in value))

_BOOLEAN = ("true or false", lambda value: isinstance(value, bool))
_FILE_PATH = ("a file path (text)", lambda value: isinstance(value, str) and bool(value.strip()))
_RGB_MEAN = ("[red, green, blue], three numbers", lambda value: isinstance(value, list) and len(value) == 3
             and all(map(_is_number, value)))
_RGB_STD = ("[red, green, blue], three numbers > 0", lambda value: isinstance(value, list) and len(value) == 3
            and all(_is_number(v) and v > 0 for v in value))

# What each value of a profile may be, by dotted name (``*`` matches any part); ``null`` is always
# accepted (the method's default, or the feature off). Names chosen from the library's own lists
# are in ``choice_rules()``; the rest of the ``train`` section is checked by ``TrainConfig``.
VALUE_RULES: tuple[tuple[str, tuple[str, Any]], ...] = (
    # Contrastive losses contrast each video with the batch's others, BatchNorm needs two samples.
    ("train*.batch_size", _whole_number(2)),
    ("data*.size", _whole_number(1)), ("data*.crop_size", _whole_number(1)), ("data.num_workers", _whole_number(0)),
    ("data.max_videos_per_class", _whole_number(1)),
    ("*.width", _number_above(0)), ("*.head_hidden", _whole_number(1)), ("*.head_dim", _whole_number(1)),
    ("cvrl.head_layers", _whole_number(0)),
    ("*.clip_dim", _whole_number(1)), ("*.series_dim", _whole_number(1)), ("*.order_hidden", _whole_number(0)),
    ("*.queue_size", _whole_number(1)), ("*.temperature", _number_above(0)),
    ("*.rank_margin_temperature", _number_above(0)), ("*.key_momentum", _FRACTION),
    ("*.weights.*", _number_at_least(0)), ("*.clip_frames", _whole_number(1)), ("*.stride", _whole_number(1)),
    ("dualvar.segments", _whole_number(2)), ("supervised.segments", _whole_number(1)),
    ("*.interval_power", _number_above(0)), ("*.reverse_prob", _FRACTION), ("*.dropout", _FRACTION),
    ("*.erase_alpha", _ordered_pair(low_open=False)), ("*.augment.scale", _ordered_pair(low_open=True)),
    ("*.augment.area", _ordered_pair(low_open=True)), ("*.augment.jitter", _JITTER),
    ("*.augment.blur_prob", _FRACTION), ("*.augment.solarize_prob", _FRACTION),
    ("train_signals.epochs", _whole_number(1)),
    *((f"eval*.{key}", _whole_number(1)) for key in (
        "frames_per_video", "clips_per_video", "test_crops", "batch_size", "linear_epochs", "linear_batch_size",
        "knn_k", "untrained_inits", "finetune_epochs", "finetune_batch_size", "finetune_segments",
        "finetune_test_clips", "finetune_test_crops", "tracking_exemplar_size", "tracking_instance_size",
        "tracking_num_scales")),
    ("eval.linear_lr", _number_above(0)), ("eval.finetune_lr", _number_above(0)),
    ("eval.knn_temperature", _number_above(0)), ("eval.linear_weight_decay", _number_at_least(0)),
    ("eval.finetune_weight_decay", _number_at_least(0)), ("eval.finetune_dropout", _FRACTION),
    ("eval.retrieval_ks", _WHOLE_NUMBERS), ("eval.svm_c", _number_above(0)),
    ("*.hflip", _BOOLEAN), ("eval.finetune_hflip", _BOOLEAN), ("data.frame_cache", _BOOLEAN),
    ("seco.small_input", _BOOLEAN), ("cvrl.head_batch_norm", _BOOLEAN), ("dualvar.derangement", _BOOLEAN),
    ("eval.finetune_partial_bn", _BOOLEAN),
    ("*.mean", _RGB_MEAN), ("*.std", _RGB_STD), ("seco.init_checkpoint", _FILE_PATH),
)


def _one_of(choices: Iterable[str]) -> tuple[str, Any]:
    names = tuple(choices)
    return f"one of {', '.join(names)}", lambda value: value in names


def _list_of(choices: Iterable[str]) -> tuple[str, Any]:
    names = tuple(choices)
    return (f"a list of {', '.join(names)}",
            lambda value: isinstance(value, list) and all(isinstance(v, str) and v in names for v in value))


@functools.cache
def choice_rules() -> tuple[tuple[str, tuple[str, Any]], ...]:
    """Rules for the values named from the library's own lists (architectures, input modes,
    optimisers, ...), in the form of ``VALUE_RULES``. Imported when first needed: the modules
    that hold the lists import this one."""
    from seco_lab.evaluation.finetune import OPTIMIZERS as FINETUNE_OPTIMIZERS
    from seco_lab.evaluation.finetune import VIEW_AVERAGES
    from seco_lab.evaluation.runner import BN_STATS
    from seco_lab.evaluation.tracking import FEATURE_NORMS
    from seco_lab.methods.base import INPUT_MODES
    from seco_lab.methods.dualvar import LOSS_SETS, VARIANTS
    from seco_lab.methods.supervised import BACKBONES, FRAME_POOLINGS
    from seco_lab.models.encoders2d import ARCH_2D_LAYERS
    from seco_lab.models.encoders3d import ENCODER_3D_ARCHS
    from seco_lab.plots import EMBEDDING_METHODS
    from seco_lab.samplers import GAP_DISTRIBUTIONS
    from seco_lab.transforms.recipes import AUGMENT_MODES
    from seco_lab.video.synth import SYNTH_PRESETS

    return (
        ("seco.arch", _one_of(ARCH_2D_LAYERS)), ("cvrl.arch", _one_of(ENCODER_3D_ARCHS)),
        ("dualvar.arch", _one_of(ENCODER_3D_ARCHS)), ("*.input_mode", _one_of(INPUT_MODES)),
        ("*.augment_mode", _one_of(AUGMENT_MODES)), ("cvrl.interval_distribution", _one_of(GAP_DISTRIBUTIONS)),
        ("dualvar.losses", _one_of(LOSS_SETS)), ("dualvar.variant", _one_of(VARIANTS)),
        ("supervised.backbone", _one_of(BACKBONES)), ("supervised.frame_pooling", _one_of(FRAME_POOLINGS)),
        ("eval.bn_stats", _one_of(BN_STATS)), ("eval.finetune_optimizer", _one_of(FINETUNE_OPTIMIZERS)),
        ("eval.tracking_feature_norm", _one_of(FEATURE_NORMS)), ("eval*.finetune_test_average", _one_of(VIEW_AVERAGES)), ("eval.embeddings", _list_of(EMBEDDING_METHODS)),
        ("synth.preset", _one_of(SYNTH_PRESETS)),
    )


def flatten_settings(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"batch_size": 8}}`` -> ``{"train.batch_size": 8}`` (nested dicts walked)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_settings(value, name + "."))
        else:
            flat[name] = value
    return flat


def _cross_value_problems(profile: dict[str, Any]) -> list[str]:
    """Values that are fine alone but not together: ``crop_size`` above ``size`` in ``data`` or a
    ``data_<method>`` section (which takes the values it lacks from ``data``; crops are cut from
    frames decoded at ``size``, so a larger one only upsamples them), and DualVar's clip cut into
    more segments than it has frames."""
    shared = profile.get("data") if isinstance(profile.get("data"), dict) else {}
    problems = []
    for section, values in profile.items():
        if not (section == "data" or section.startswith("data_")) or not isinstance(values, dict):
            continue
        size, crop = values.get("size", shared.get("size")), values.get("crop_size", shared.get("crop_size"))
        if _is_whole_number(size, 1) and _is_whole_number(crop, 1) and crop > size:
            problems.append(f"{section}.crop_size ({crop}) must not exceed {section}.size ({size}): crops are cut "
                            "from frames decoded at that size")
    dualvar = profile.get("dualvar") if isinstance(profile.get("dualvar"), dict) else {}
    segments, frames = dualvar.get("segments"), dualvar.get("clip_frames")
    if _is_whole_number(segments, 1) and _is_whole_number(frames, 1) and segments > frames:
        problems.append(f"dualvar.segments ({segments}) must not exceed dualvar.clip_frames ({frames}): each segment "
                        "of a clip holds one frame or more")
    return problems


def check_profile_values(profile: dict[str, Any]) -> None:
    """Raise ``ProfileError`` naming every value of ``profile`` (or of some of its sections) that
    ``VALUE_RULES`` or ``choice_rules()`` refuse, e.g. ``data.crop_size must be a whole number >= 1,
    got 0``; the value ``"cv"`` of ``eval.svm_c`` and ``null`` anywhere pass."""
    problems = []
    for name, value in flatten_settings(profile).items():
        if value is None or value in ALTERNATIVE_VALUES.get(name, ()):
            continue
        for pattern, (expected, accepts) in VALUE_RULES + choice_rules():
            if fnmatch.fnmatchcase(name, pattern) and not accepts(value):
                problems.append(f"{name} must be {expected}, got {value!r}")
                break
    problems.extend(_cross_value_problems(profile))
    if problems:
        raise ProfileError("; ".join(problems))
