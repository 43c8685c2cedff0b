"""The package as a wheel installs it: run from another folder, outside any checkout."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """The wheel built from the package's sources, unpacked as pip installs it, and an empty home
    folder and working folder for the commands run from it."""
    base = tmp_path_factory.mktemp("installed")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "seco_lab", source / "seco_lab", ignore=shutil.ignore_patterns("__pycache__"))
    wheel_dir = base / "wheel"
    wheel_dir.mkdir()
    subprocess.run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_wheel({str(wheel_dir)!r})"],
                   cwd=source, check=True, capture_output=True, timeout=120)
    (wheel,) = wheel_dir.glob("seco_lab-*.whl")
    site = base / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    home, elsewhere = base / "home", base / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    return {"site": site, "home": home, "cwd": elsewhere}


def run_installed(installed: dict[str, Path], *args: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SECO_LAB_")}
    environment.update(PYTHONPATH=str(installed["site"]), HOME=str(installed["home"]))
    return subprocess.run([sys.executable, *args], cwd=installed["cwd"], env=environment, capture_output=True,
                          text=True, timeout=120)


def test_the_installed_package_keeps_its_folders_in_the_home_folder(installed):
    result = run_installed(installed, "-c", "import seco_lab, seco_lab.paths as p; print(seco_lab.__file__, "
                                            "p.data_dir(), p.runs_dir(), p.reports_dir(), sep='\\n')")
    assert result.returncode == 0, result.stderr
    module_file, *folders = result.stdout.splitlines()
    assert Path(module_file).is_relative_to(installed["site"])
    assert folders == [str(installed["home"] / "seco_lab" / name) for name in ("data", "runs", "reports")]


def test_the_wheel_has_the_version_of_the_package_and_its_command(installed):
    import seco_lab

    (metadata,) = installed["site"].glob("seco_lab-*.dist-info/METADATA")
    assert f"\nVersion: {seco_lab.__version__}\n" in metadata.read_text()
    entry_points = metadata.with_name("entry_points.txt").read_text()
    assert "seco-lab = seco_lab.cli:main" in entry_points
    result = run_installed(installed, "-m", "seco_lab", "--version")
    assert result.returncode == 0 and result.stdout.strip() == f"seco-lab {seco_lab.__version__}"


def test_report_from_an_installed_package_says_that_the_notebooks_are_not_included(installed):
    result = run_installed(installed, "-m", "seco_lab", "report", "--profile", "smoke")
    assert result.returncode == 2
    assert "no curriculum notebooks" in result.stderr
    assert "an installed seco_lab does not include the notebooks" in result.stderr
    assert not (installed["home"] / "seco_lab").exists()  # nothing written before the check
