"""SeCo's linear protocol: standardised video features, liblinear SVM (squared hinge, L2), C=1."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from seco_lab.evaluation.metrics import top1_accuracy


def linear_svm_protocol(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                        test_labels: np.ndarray, C: float = 1.0, standardize: bool = True,
                        max_iter: int = 5000, seed: int = 0) -> dict[str, Any]:
    """Fit a one-vs-rest linear SVM on train features (N, D), report test top-1 (percent).

    Features are standardised with the train split's mean/std (as SeCo does before liblinear).
    Returns {"top1", "predictions" (M,), "converged"}.
    """
    train_features = np.asarray(train_features, dtype=np.float64)
    test_features = np.asarray(test_features, dtype=np.float64)
    if train_features.ndim != 2 or test_features.ndim != 2:
        raise ValueError(f"features must be (N, D); got train {train_features.shape}, test {test_features.shape}")
    svm = LinearSVC(C=C, loss="squared_hinge", penalty="l2", dual="auto", max_iter=max_iter, random_state=seed)
    classifier = make_pipeline(StandardScaler(), svm) if standardize else svm
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        classifier.fit(train_features, np.asarray(train_labels))
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    predictions = classifier.predict(test_features)
    return {"top1": top1_accuracy(predictions, test_labels), "predictions": predictions, "converged": converged}
