import os

import seco_lab
from seco_lab import environment


def test_cpu_environment_fills_in_defaults(monkeypatch):
    for key in environment.CPU_ENVIRONMENT:
        monkeypatch.delenv(key, raising=False)
    environment.configure_cpu_environment()
    for key, value in environment.CPU_ENVIRONMENT.items():
        assert os.environ[key] == value


def test_cpu_environment_keeps_the_users_choice(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    environment.configure_cpu_environment()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_environment_report_names_versions_and_wait_policy(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    report = environment.environment_report()
    assert report["OMP_WAIT_POLICY"] == "PASSIVE"
    assert report["torch"] and report["torch"] != "not installed"
    assert int(report["cpu cores"]) >= 1


def test_environment_report_gives_the_version_of_the_imported_package(monkeypatch):
    """Not an installed distribution's metadata, which may belong to another copy of the package."""
    monkeypatch.setattr(seco_lab, "__version__", "0.0.0.dev7")
    assert environment.environment_report()["seco_lab"] == "0.0.0.dev7"
