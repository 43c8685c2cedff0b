"""The first code cell of every notebook: validate its parameters and find data and runs.

``start`` turns the values of a notebook's ``parameters`` cell into a :class:`Session`,
stopping at once with a message that names the valid choices when a value is wrong.
"""

from __future__ import annotations

import os
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seco_lab import paths
from seco_lab.profiles import (PROFILE_NAMES, ProfileError, check_profile_values, flatten_settings, get_profile,
                               settings_label, settings_overrides)

DEFAULT_PROFILE_VARIABLE = "SECO_LAB_PROFILE"
ENCODER_SECTIONS = ("seco", "cvrl", "dualvar")


@dataclass
class Session:
    """A notebook's validated settings.

    ``overrides`` are the profile changes the notebook's parameters ask for (already applied to
    ``profile``); every run the notebook trains gets them too. ``settings`` are the
    ``SECTION.KEY=VALUE`` strings among them, as given.
    """

    profile_name: str
    profile: dict[str, Any]
    device: str
    seed: int
    data_root: Path
    run_dir: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    settings: tuple[str, ...] = ()

    @property
    def max_videos_per_class(self) -> int | None:
        """The subset the notebook works on: at most this many videos per class and split."""
        return self.profile["data"]["max_videos_per_class"]

    def section(self, name: str) -> dict[str, Any]:
        """One section of the profile (``"data"``, ``"seco"``, ``"train"``, ...)."""
        return self.profile[name]

    def load_dataset(self, progress: bool = False) -> tuple[Any, Any]:
        """``(spec, index)`` of the session's dataset (its subset when ``max_videos_per_class``
        is set), as :func:`~seco_lab.video.index.load_dataset` returns them: the videos training
        and evaluation use (``MIN_USABLE_FRAMES`` decodable frames or more)."""
        from seco_lab.video.index import MIN_USABLE_FRAMES, load_dataset

        return load_dataset(self.data_root, progress=progress, max_videos_per_class=self.max_videos_per_class,
                            min_frames=MIN_USABLE_FRAMES)

    def save_summary(self, notebook: str, values: dict[str, Any]) -> Path:
        """Record this notebook's key numbers beside its runs (``run_dir/summary``), where the
        report index of the default run folder finds them."""
        from seco_lab.report import save_summary

        return save_summary(self.profile_name, notebook, values, folder=self.run_dir / "summary")

    def __str__(self) -> str:
        described = _describe_overrides(self.overrides)
        if self.settings:
            described.append(f"profile settings: {', '.join(self.settings)}")
        changed = "".join(f"\n{line}" for line in described)
        return (
            f"profile={self.profile_name}  device={self.device}  seed={self.seed}{changed}\n"
            f"data: {self.data_root}\nruns: {self.run_dir}"
        )


def _describe_overrides(overrides: dict[str, Any]) -> list[str]:
    data, train = overrides.get("data", {}), overrides.get("train", {})
    lines = []
    if "max_videos_per_class" in data:
        lines.append(f"subset: at most {data['max_videos_per_class']} videos per class and split")
    if "batch_size" in train:
        lines.append(f"training batch size: {train['batch_size']}")
    if "input_mode" in overrides.get("seco", {}):
        lines.append(f"encoder input: {overrides['seco']['input_mode']}")
    return lines


def notebook_overrides(max_videos_per_class: int | None = None, batch_size: int | None = None,
                       input_mode: str | None = None) -> dict[str, Any]:
    """The profile changes of the notebooks' optional parameters, validated (None: the profile's).

    ``max_videos_per_class``: train and evaluate on at most that many videos of each class and
    split; ``batch_size``: the training batch of every run; ``input_mode``: ``"rgb"``,
    ``"frame_differences"`` or ``"stabilized_differences"`` for every encoder (SeCo, CVRL, DualVar
    and their baselines).
    """
    from seco_lab.evaluation.features import INPUT_MODES

    overrides: dict[str, Any] = {}
    for name, value, minimum in (("max_videos_per_class", max_videos_per_class, 1), ("batch_size", batch_size, 2)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
            raise ValueError(f"{name} must be None or an integer >= {minimum}, got {value!r}")
    if max_videos_per_class is not None:
        overrides["data"] = {"max_videos_per_class": max_videos_per_class}
    if batch_size is not None:
        overrides["train"] = {"batch_size": batch_size}
    if input_mode is not None:
        if input_mode not in INPUT_MODES:
            raise ValueError(f"input_mode must be None or one of {', '.join(map(repr, INPUT_MODES))}, got {input_mode!r}")
        overrides.update({name: {"input_mode": input_mode} for name in ENCODER_SECTIONS})
    return overrides


def validate_settings(settings: Any) -> tuple[str, ...]:
    """The notebooks' ``settings`` parameter: a list of ``SECTION.KEY=VALUE`` strings, stripped."""
    if isinstance(settings, str) or not isinstance(settings, (list, tuple)) or not all(
            isinstance(setting, str) for setting in settings):
        raise ValueError("settings must be a list of 'SECTION.KEY=VALUE' strings "
                         f"(e.g. ['seco.queue_size=1024']), got {settings!r}")
    return tuple(setting.strip() for setting in settings)


def _setting_key(setting: str) -> str:
    """``train.batch_size`` of the setting ``train.batch_size = 8``."""
    return ".".join(part.strip() for part in setting.partition("=")[0].split("."))


def _run_folder_suffix(overrides: dict[str, Any], settings: tuple[str, ...] = ()) -> str:
    """``-10-per-class``, ``-batch8``, ``-rgb``, ``-seco.queue_size=1024``: runs with other
    settings get their own folder (many or long settings: ``-settings-<hash>``). ``overrides``
    hold the settings' changes too: a setting whose change a part names already (``-batch8`` for
    ``train.batch_size=8``, as the batch_size parameter) is not named again."""
    parts, named = [], set()
    if "max_videos_per_class" in overrides.get("data", {}):
        parts.append(f"{overrides['data']['max_videos_per_class']}-per-class")
        named.add("data.max_videos_per_class")
    if "batch_size" in overrides.get("train", {}):
        parts.append(f"batch{overrides['train']['batch_size']}")
        named.add("train.batch_size")
    input_modes = {overrides.get(section, {}).get("input_mode") for section in ENCODER_SECTIONS}
    if len(input_modes) == 1 and None not in input_modes:  # every encoder's, as the input_mode parameter sets it
        parts.append(input_modes.pop().replace("_", "-"))
        named.update(f"{section}.input_mode" for section in ENCODER_SECTIONS)
    unnamed = tuple(setting for setting in settings if _setting_key(setting) not in named)
    if unnamed:
        parts.append(settings_label(unnamed))
    return "".join(f"-{part}" for part in parts)


def shadowed_settings(settings: tuple[str, ...], profile: dict[str, Any],
                      named: dict[str, Any]) -> dict[str, tuple[str, Any, Any]]:
    """The settings whose value a notebook parameter sets too (``named``, from
    :func:`notebook_overrides`), which wins: setting -> (its key, its value, the parameter's)."""
    by_parameter = flatten_settings(named)
    shadowed = {}
    for setting in settings:
        for key, value in flatten_settings(settings_overrides([setting], profile)).items():
            if key in by_parameter:
                shadowed[setting] = (key, value, by_parameter[key])
    return shadowed


def resolve_profile_name(profile: str | None) -> str:
    """``profile`` itself, else ``$SECO_LAB_PROFILE``, else ``"standard"``; validated."""
    if isinstance(profile, str) and not profile.strip():
        raise ProfileError(f"profile is an empty string: choose one of {', '.join(PROFILE_NAMES)}, or None for "
                           f"${DEFAULT_PROFILE_VARIABLE} or standard")
    name = profile or os.environ.get(DEFAULT_PROFILE_VARIABLE) or "standard"
    if name not in PROFILE_NAMES:
        raise ProfileError(f"unknown profile {name!r}: choose one of {', '.join(PROFILE_NAMES)}")
    return name


def validate_device(device: str) -> str:
    """Accept ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; CUDA must exist when asked for."""
    from seco_lab.engine.device import DeviceError, resolve_device

    try:
        resolve_device(device)
    except DeviceError as error:
        raise ValueError(str(error)) from None
    return device


def ensure_synth_dataset(preset: str, seed: int = 0, root: Path | None = None) -> Path:
    """The embedded dataset of ``preset``: reused when already generated, generated otherwise."""
    from seco_lab.video.synth import generate_dataset, read_manifest

    root = root or paths.synth_dataset_dir(preset)
    if read_manifest(root) is not None:
        print(f"Using the embedded dataset at {root}.")
    else:
        print(f"Generating the embedded dataset ({preset}) at {root} — this happens once.")
    return generate_dataset(root, preset=preset, seed=seed, progress=True)


def default_run_dir(profile: str, data_root: Path | None = None, overrides: dict[str, Any] | None = None,
                    settings: tuple[str, ...] = (), seed: int = 0) -> Path:
    """``runs/<profile>`` for the embedded dataset, ``runs/<profile>-<dataset folder>`` for
    another one, with a suffix for each notebook parameter that changes the profile
    (``runs/smoke-UCF-101-10-per-class``) and for a seed other than 0 (``runs/standard-seed1``):
    runs never meet runs of the same name trained with other data, settings or seed."""
    suffix = _run_folder_suffix(overrides or {}, settings) + (f"-seed{seed}" if seed else "")
    embedded = paths.synth_dataset_dir(get_profile(profile)["synth"]["preset"])
    if data_root is None or Path(data_root).resolve() == embedded.resolve():
        return paths.runs_dir() / f"{profile}{suffix}"
    return paths.runs_dir() / f"{profile}-{Path(data_root).resolve().name}{suffix}"


def start(
    profile: str | None = None,
    device: str = "auto",
    seed: int = 0,
    data_root: str | Path | None = None,
    run_dir: str | Path | None = None,
    max_videos_per_class: int | None = None,
    batch_size: int | None = None,
    input_mode: str | None = None,
    settings: list[str] | tuple[str, ...] = (),
    prepare: bool = True,
) -> Session:
    """Validate a notebook's parameters, seed every RNG and make sure the data exists.

    ``max_videos_per_class``, ``batch_size`` and ``input_mode`` change the profile for this
    notebook and every run it trains (:func:`notebook_overrides`); None keeps the profile's.
    ``settings`` change any other value of the profile, as ``pretrain --set`` does
    (``["seco.queue_size=1024"]``, checked by :func:`~seco_lab.profiles.settings_overrides`);
    the three named parameters win over them. ``prepare=False`` only validates and resolves
    the folders (``data_root=None``: the embedded dataset's, not generated), touching neither
    the disk nor the RNGs, as a report does before it runs the notebooks.
    """
    import numpy as np
    import torch

    from seco_lab.methods.pretrain import deep_update

    name = resolve_profile_name(profile)
    settings = validate_settings(settings)
    named = notebook_overrides(max_videos_per_class, batch_size, input_mode)
    base = get_profile(name)
    overrides = deep_update(settings_overrides(list(settings), base), named)
    shadowed = shadowed_settings(settings, base, named)
    for setting, (key, value, parameter_value) in shadowed.items():
        if value != parameter_value:
            warnings.warn(f"the setting {setting!r} has no effect: the {key.rsplit('.', 1)[-1]} parameter "
                          f"({parameter_value!r}) sets {key}", stacklevel=2)
    profile_values = deep_update(base, overrides)
    check_profile_values(profile_values)
    device = validate_device(device)
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if data_root is None:
        if name == "paper":
            raise ValueError(
                "the paper profile trains on a real dataset: set data_root to a UCF101, HMDB51 "
                "or Kinetics folder (see data/README.md)"
            )
        root = paths.synth_dataset_dir(profile_values["synth"]["preset"])
    else:
        if isinstance(data_root, str) and not data_root.strip():  # Path("") would be the working folder
            raise ValueError("data_root is an empty string: give a dataset folder in a layout seco_lab reads, or "
                             "None for the embedded dataset")
        root = Path(data_root).expanduser()
        if not root.exists():
            raise FileNotFoundError(
                f"data_root {str(root)!r} does not exist: give a dataset folder in a layout "
                "seco_lab reads (UCF101, HMDB51, Kinetics CSV or class folders), or None for "
                "the embedded dataset"
            )
    runs = (Path(run_dir).expanduser() if run_dir
            else default_run_dir(name, None if data_root is None else root, overrides,
                                 tuple(setting for setting in settings if setting not in shadowed), seed))
    if runs.exists() and not runs.is_dir():
        raise ValueError(f"run_dir {str(runs)!r} is a file, not a folder: give a folder for the runs, "
                         "or None for the default one")
    lab = Session(name, profile_values, device, seed, root, runs, overrides, settings)
    if not prepare:
        return lab
    if data_root is None:
        ensure_synth_dataset(profile_values["synth"]["preset"], root=root)
    runs.mkdir(parents=True, exist_ok=True)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return lab
