"""Where seco_lab keeps datasets, runs and reports.

Inside a checkout (the package sits next to ``pyproject.toml``) everything lives below the
checkout: ``data/``, ``runs/``, ``reports/``. An installed copy uses ``~/seco_lab`` instead.
The environment variables ``SECO_LAB_DATA``, ``SECO_LAB_RUNS`` and ``SECO_LAB_REPORTS``
override each folder.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def in_checkout() -> bool:
    """Whether the package runs from a checkout (it sits next to ``pyproject.toml`` and ``notebooks/``)."""
    checkout = PACKAGE_DIR.parent
    return (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir()


def project_root() -> Path:
    """The checkout that holds the package, or ``~/seco_lab`` for an installed copy."""
    return PACKAGE_DIR.parent if in_checkout() else Path.home() / "seco_lab"


def _folder(variable: str, default_name: str) -> Path:
    override = os.environ.get(variable)
    return Path(override).expanduser() if override else project_root() / default_name


def data_dir() -> Path:
    """Folder of generated and user datasets."""
    return _folder("SECO_LAB_DATA", "data")


def runs_dir() -> Path:
    """Folder of training runs (checkpoints, histories, results)."""
    return _folder("SECO_LAB_RUNS", "runs")


def reports_dir() -> Path:
    """Folder of executed-notebook reports."""
    return _folder("SECO_LAB_REPORTS", "reports")


def notebooks_dir() -> Path:
    """Folder of the curriculum's notebooks (an installed copy does not include them: they are
    read from ``~/seco_lab/notebooks``)."""
    return project_root() / "notebooks"


def synth_dataset_dir(preset: str) -> Path:
    """Where the embedded dataset of a synth preset lives."""
    return data_dir() / f"synth-{preset}"
