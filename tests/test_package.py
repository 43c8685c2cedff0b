"""The source distribution holds the project, and the package as its wheel installs it runs
from another folder, outside any checkout."""

import ast
import importlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


# What a working copy holds beside the project's own files: environments, generated data, outputs.
NOT_PROJECT_FILES = (".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache",
                     ".ipynb_checkpoints", ".seco_lab_cache", "runs", "reports", "artifacts", "results")


def project_files(folder: str, names: list[str]) -> set[str]:
    """``shutil.copytree`` ignore function: leave out what is not the project's (``data/`` keeps its README)."""
    ignored = shutil.ignore_patterns(*NOT_PROJECT_FILES)(folder, names)
    if Path(folder) == ROOT / "data":
        ignored |= {name for name in names if name != "README.md"}
    return ignored


def build(kind: str, source: Path, out: Path) -> Path:
    """Build an ``sdist`` or ``wheel`` of the project in ``source`` into ``out``; the archive's path."""
    out.mkdir()
    script = f"from setuptools import build_meta; build_meta.build_{kind}({str(out)!r})"
    result = subprocess.run([sys.executable, "-c", script], cwd=source, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"building the {kind} failed:\n{result.stderr}"
    (archive,) = out.iterdir()
    return archive


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """The project's source distribution, the wheel built from it (as pip builds one) unpacked as
    pip installs it, and an empty home folder and working folder for the commands run from it."""
    base = tmp_path_factory.mktemp("installed")
    shutil.copytree(ROOT, base / "project", ignore=project_files)
    sdist = build("sdist", base / "project", base / "sdist")
    with tarfile.open(sdist) as archive:
        archive.extractall(base / "unpacked", filter="data")
    (unpacked,) = (base / "unpacked").iterdir()
    wheel = build("wheel", unpacked, base / "wheel")
    site = base / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    home, elsewhere = base / "home", base / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    return {"sdist": unpacked, "site": site, "home": home, "cwd": elsewhere}


def run_installed(installed: dict[str, Path], *args: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SECO_LAB_")}
    environment.update(PYTHONPATH=str(installed["site"]), HOME=str(installed["home"]))
    return subprocess.run([sys.executable, *args], cwd=installed["cwd"], env=environment, capture_output=True,
                          text=True, timeout=120)


def test_the_source_distribution_holds_the_tests_with_their_helpers_and_the_notebooks(installed):
    expected = [ROOT / name for name in ("conftest.py", "requirements.txt", "Makefile")]
    expected += [*(ROOT / "tests").glob("*.py"), *(ROOT / "notebooks").glob("*.ipynb")]
    missing = [str(path.relative_to(ROOT)) for path in expected
               if not (installed["sdist"] / path.relative_to(ROOT)).is_file()]
    assert not missing


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


def test_the_installed_package_offers_its_type_hints_to_type_checkers(installed):
    assert (installed["site"] / "seco_lab" / "py.typed").is_file()


def test_report_from_an_installed_package_says_that_the_notebooks_are_not_included(installed):
    result = run_installed(installed, "-m", "seco_lab", "report", "--profile", "smoke")
    assert result.returncode == 2
    assert "no curriculum notebooks" in result.stderr
    assert "an installed seco_lab does not include the notebooks" in result.stderr
    assert not (installed["home"] / "seco_lab").exists()  # nothing written before the check


def imported_top_level_modules(package: Path) -> set[str]:
    """Top-level names of every module the package's source imports (``import x.y``, ``from x import y``),
    relative imports left out."""
    names = set()
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def declared_distributions() -> set[str]:
    """Normalised names of the distributions pyproject.toml requires, core and extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {normalised(re.match(r"[A-Za-z0-9._-]+", requirement).group()) for requirement in requirements}


def normalised(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_every_third_party_module_the_package_imports_is_declared_in_pyproject_and_pinned():
    providers = importlib.metadata.packages_distributions()
    third_party = {name for name in imported_top_level_modules(ROOT / "seco_lab")
                   if name not in sys.stdlib_module_names and name not in ("seco_lab", "__future__")}
    assert {"torch", "PIL", "sklearn"} <= third_party  # the scan sees imports inside functions too
    declared = declared_distributions()
    pinned = {normalised(line.split("==")[0]) for line in (ROOT / "requirements.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    undeclared = {name: providers.get(name) for name in third_party
                  if not {normalised(d) for d in providers.get(name, [])} & declared}
    assert not undeclared, f"imported by seco_lab, not required by pyproject.toml: {undeclared}"
    assert declared <= pinned, f"required by pyproject.toml, not pinned in requirements.txt: {declared - pinned}"


def test_the_python_versions_pyproject_accepts_are_those_the_setup_checks_for():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "sys.version_info[:2] < (3, 11)" in (ROOT / "Makefile").read_text()
    assert project["requires-python"] == ">=3.11"


def test_the_wheel_carries_the_license_that_its_metadata_names(installed):
    (metadata,) = installed["site"].glob("seco_lab-*.dist-info/METADATA")
    assert "\nLicense-Expression: MIT\n" in metadata.read_text()
    (license_file,) = installed["site"].glob("seco_lab-*.dist-info/licenses/LICENSE")
    assert license_file.read_text().startswith("MIT License\n")


@pytest.mark.parametrize("package", ["seco_lab.engine", "seco_lab.evaluation", "seco_lab.losses", "seco_lab.methods",
                                     "seco_lab.video"])
def test_every_subpackage_exports_the_names_it_lists(package):
    module = importlib.import_module(package)
    assert module.__all__ and module.__doc__
    assert all(hasattr(module, name) for name in module.__all__)
