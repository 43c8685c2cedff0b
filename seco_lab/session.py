"""The first code cell of every notebook: validate its parameters and find data and runs.

``start`` turns the values of a notebook's ``parameters`` cell into a :class:`Session`,
stopping at once with a message that names the valid choices when a value is wrong.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seco_lab import paths
from seco_lab.profiles import PROFILE_NAMES, ProfileError, get_profile

DEFAULT_PROFILE_VARIABLE = "SECO_LAB_PROFILE"


@dataclass
class Session:
    """A notebook's validated settings."""

    profile_name: str
    profile: dict[str, Any]
    device: str
    seed: int
    data_root: Path
    run_dir: Path

    def section(self, name: str) -> dict[str, Any]:
        """One section of the profile (``"data"``, ``"seco"``, ``"train"``, ...)."""
        return self.profile[name]

    def save_summary(self, notebook: str, values: dict[str, Any]) -> Path:
        """Record this notebook's key numbers beside its runs (``run_dir/summary``), where the
        report index of the default run folder finds them."""
        from seco_lab.report import save_summary

        return save_summary(self.profile_name, notebook, values, folder=self.run_dir / "summary")

    def __str__(self) -> str:
        return (
            f"profile={self.profile_name}  device={self.device}  seed={self.seed}\n"
            f"data: {self.data_root}\nruns: {self.run_dir}"
        )


def resolve_profile_name(profile: str | None) -> str:
    """``profile`` itself, else ``$SECO_LAB_PROFILE``, else ``"standard"``; validated."""
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


def default_run_dir(profile: str, data_root: Path | None = None) -> Path:
    """``runs/<profile>`` for the embedded dataset, ``runs/<profile>-<dataset folder>`` for
    another one: runs on a real dataset never meet the curriculum's runs of the same name."""
    embedded = paths.synth_dataset_dir(get_profile(profile)["synth"]["preset"])
    if data_root is None or Path(data_root).resolve() == embedded.resolve():
        return paths.runs_dir() / profile
    return paths.runs_dir() / f"{profile}-{Path(data_root).resolve().name}"


def start(
    profile: str | None = None,
    device: str = "auto",
    seed: int = 0,
    data_root: str | Path | None = None,
    run_dir: str | Path | None = None,
) -> Session:
    """Validate a notebook's parameters, seed every RNG and make sure the data exists."""
    import numpy as np
    import torch

    name = resolve_profile_name(profile)
    settings = get_profile(name)
    device = validate_device(device)
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if data_root is None:
        if name == "paper":
            raise ValueError(
                "the paper profile trains on a real dataset: set data_root to a UCF101, HMDB51 "
                "or Kinetics folder (see data/README.md)"
            )
        root = ensure_synth_dataset(settings["synth"]["preset"])
    else:
        root = Path(data_root).expanduser()
        if not root.exists():
            raise FileNotFoundError(
                f"data_root {str(root)!r} does not exist: give a dataset folder in a layout "
                "seco_lab reads (UCF101, HMDB51, Kinetics CSV or class folders), or None for "
                "the embedded dataset"
            )
    runs = Path(run_dir).expanduser() if run_dir else default_run_dir(name, None if data_root is None else root)
    runs.mkdir(parents=True, exist_ok=True)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return Session(name, settings, device, seed, root, runs)
