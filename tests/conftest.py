"""Fixtures shared by several test modules."""

import pytest
import torch


@pytest.fixture(scope="module")
def single_thread():
    """Tiny tensors: one intra-op thread avoids spin-waiting on a busy 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory):
    """The embedded smoke dataset, generated once for the tests that only read it."""
    from seco_lab.video.synth import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("data") / "synth-smoke", preset="smoke", progress=False)


@pytest.fixture
def linear_probe_devices(monkeypatch):
    """``record(owner)``: wrap ``owner.linear_protocol`` (a module that calls it) so that each call
    appends the ``device`` it was given (None when none) to the list ``record`` returns."""

    def record(owner) -> list:
        devices = []
        real_linear_protocol = owner.linear_protocol

        def recording_linear_protocol(*args, **kwargs):
            devices.append(kwargs.get("device"))
            return real_linear_protocol(*args, **kwargs)

        monkeypatch.setattr(owner, "linear_protocol", recording_linear_protocol)
        return devices

    return record
