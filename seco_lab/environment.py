"""What this machine offers: library versions, devices and threads."""

from __future__ import annotations

import os
import platform
from importlib import metadata

import seco_lab


# Idle OpenMP threads sleep instead of spinning. On a small CPU the training threads share the
# cores with DataLoader workers; spinning threads steal their time (CVRL's loader-fed step ran
# about 1.3x faster with this, see benchmarks/bench_training.py). Read by OpenMP when torch is
# first imported, so entry points set it before that.
CPU_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE"}


def configure_cpu_environment() -> None:
    """Put ``CPU_ENVIRONMENT`` into ``os.environ`` (values already set by the user win).

    Takes effect in this process only if torch is not imported yet, and in every process
    started afterwards (Jupyter kernels of a report, torchrun workers)."""
    for key, value in CPU_ENVIRONMENT.items():
        os.environ.setdefault(key, value)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment_report() -> dict[str, str]:
    """Versions of the libraries seco_lab uses, the compute devices and the thread count."""
    import torch

    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        accelerator = f"CUDA {torch.version.cuda}: {names}"
    else:
        accelerator = "none (CPU only)"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "seco_lab": seco_lab.__version__,  # this copy's, not the metadata of whichever copy is installed
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "av (PyAV)": _version("av"),
        "numpy": _version("numpy"),
        "scikit-learn": _version("scikit-learn"),
        "accelerator": accelerator,
        "cpu cores": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "unset (OpenMP default: spinning)"),
    }
