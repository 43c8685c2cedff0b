"""The Makefile's setup step: it stops with a clear message before pip fails (disk, interpreter)."""

import shutil
import subprocess
import sys
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



def test_setup_stops_when_python_is_too_old(tmp_path):
    """An interpreter older than 3.11 cannot install the pins: make says so and which PYTHON it used."""
    old_python = tmp_path / "python3.10"
    old_python.write_text("#!/bin/sh\n"  # runs the check as a Python 3.10 would see itself
                          f'exec {sys.executable} -c "import sys; sys.version_info = (3, 10, 14, \'final\', 0); '
                          'exec(sys.argv[1])" "$2"\n')
    old_python.chmod(0o755)
    venv = tmp_path / "venv"
    result = subprocess.run(["make", "-C", str(ROOT), "test", f"VENV={venv}", f"PYTHON={old_python}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"PYTHON={old_python} is Python 3.10" in result.stderr
    assert "need Python 3.11 or newer" in result.stderr
    assert not venv.exists()
