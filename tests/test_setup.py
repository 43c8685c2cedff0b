"""The Makefile's setup step: it stops with a clear message before pip can fill the disk."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def test_setup_stops_when_the_disk_is_too_small(tmp_path):
    venv = tmp_path / "not-yet" / "venv"
    result = subprocess.run(["make", "-C", str(ROOT), "test", f"VENV={venv}", "VENV_GB=1000000000"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "GiB free on the disk of" in result.stderr and "needs about 1000000000 GiB" in result.stderr
    assert str(tmp_path) in result.stderr  # names the folder whose disk is too small
    assert not (tmp_path / "not-yet").exists()  # stopped before creating the venv

