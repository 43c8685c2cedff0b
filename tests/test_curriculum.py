"""The notebooks' helpers for frozen-feature protocols."""

from pathlib import Path

import numpy as np
import pytest

from seco_lab.curriculum import RunFeatures, frozen_protocols
from seco_lab.evaluation.linear_svm import SVM_C_GRID
from seco_lab.profiles import get_profile
from seco_lab.session import Session


def session_with_svm_c(svm_c) -> Session:
    profile = get_profile("smoke")
    profile["eval"]["svm_c"] = svm_c
    return Session("smoke", profile, "cpu", 0, Path("data"), Path("runs"))


def clustered_features(seed: int, classes: int = 3, per_class: int = 12, dim: int = 6) -> RunFeatures:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    train = rng.normal(size=(len(labels), dim)) + 4.0 * np.eye(dim)[labels]
    test = rng.normal(size=(len(labels), dim)) + 4.0 * np.eye(dim)[labels]
    groups = np.tile(np.arange(4), len(labels) // 4)
    return RunFeatures("run", "2d", "concat", train, labels, test, labels, train_groups=groups)


@pytest.mark.parametrize("svm_c", [1.0, "cv"])
def test_frozen_linear_svm_follows_the_profiles_c(svm_c):
    metrics = frozen_protocols(clustered_features(0), session_with_svm_c(svm_c), ("linear-svm",))
    assert metrics["linear-svm top1"] > 90.0
    if svm_c == "cv":
        assert metrics["linear-svm C"] in SVM_C_GRID
    else:
        assert "linear-svm C" not in metrics
