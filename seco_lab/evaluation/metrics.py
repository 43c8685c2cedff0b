"""Small classification metrics shared by the protocols."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils import assert_all_finite


def top1_accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of predictions (N,) equal to labels (N,), in percent."""
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions {predictions.shape} and labels {labels.shape} differ in shape")
    if labels.size == 0:
        raise ValueError("top1_accuracy: no samples")
    return float(100.0 * np.mean(predictions == labels))


def majority_class_accuracy(train_labels: np.ndarray, test_labels: np.ndarray) -> float:
    """Top-1 (percent) of always predicting the most frequent training class."""
    values, counts = np.unique(np.asarray(train_labels), return_counts=True)
    return top1_accuracy(np.full(len(test_labels), values[np.argmax(counts)]), np.asarray(test_labels))


def chance_accuracy(train_labels: np.ndarray, test_labels: np.ndarray) -> float:
    """Expected top-1 (percent) of a uniform guess among the K classes that have training videos,
    the classes a classifier trained on ``train_labels`` (N,) chooses from:
    ``100 / K * (fraction of test_labels (M,) in those classes)``. A class listed by the dataset
    but without training videos is not guessed; a class present only in the test split never
    scores. Classes missing from the test split do not raise it: the guess does not know them.
    """
    train_classes = np.unique(np.asarray(train_labels))
    test_labels = np.asarray(test_labels)
    if train_classes.size == 0 or test_labels.size == 0:
        raise ValueError("chance_accuracy: needs train and test labels")
    return float(100.0 * np.mean(np.isin(test_labels, train_classes)) / train_classes.size)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Counts (num_classes, num_classes): row = true class, column = predicted class. Labels and
    predictions (N,) are classes in [0, num_classes) (num_classes None: up to the largest given)."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"confusion_matrix: labels {labels.shape} and predictions {predictions.shape} differ in shape")
    for name, classes in (("labels", labels), ("predictions", predictions)):
        if classes.size and (classes.min() < 0 or (num_classes is not None and classes.max() >= num_classes)):
            bound = f", below num_classes={num_classes}" if num_classes is not None else ""
            raise ValueError(f"confusion_matrix: {name} must be classes >= 0{bound}, got {classes.min()} to "
                             f"{classes.max()}")
    size = num_classes if num_classes is not None else int(max(labels.max(), predictions.max())) + 1
    matrix = np.zeros((size, size), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def check_split_arrays(protocol: str, train_features: Any, train_labels: Any, test_features: Any, test_labels: Any,
                       num_classes: int | None = None, feature_dims: tuple[int, ...] = (2,)) -> None:
    """Raise a ``ValueError`` naming ``protocol`` and the array at fault unless both splits hold
    finite features (N, ..., D) with ``ndim`` in ``feature_dims``, one integer label in
    [0, num_classes) per row, at least one row, and the same feature width."""
    dims = {}
    for split, features, labels in (("train", train_features, train_labels), ("test", test_features, test_labels)):
        features, labels = np.asarray(features), np.asarray(labels)
        if features.ndim not in feature_dims:
            raise ValueError(f"{protocol}: {split} features must have {' or '.join(map(str, feature_dims))} dims, "
                             f"got shape {features.shape}")
        assert_all_finite(features, input_name=f"{protocol} {split} features")
        if labels.ndim != 1 or labels.shape[0] != features.shape[0] or not labels.size:
            raise ValueError(f"{protocol}: {split} labels {labels.shape} must give one label per row of the "
                             f"{split} features {features.shape}, and there must be at least one")
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or (
                num_classes is not None and labels.max() >= num_classes):
            bound = f", below num_classes={num_classes}" if num_classes is not None else ""
            raise ValueError(f"{protocol}: {split} labels must be integers >= 0{bound}, got {labels.dtype} from "
                             f"{labels.min()} to {labels.max()}")
        dims[split] = features.shape[-1]
    if dims["train"] != dims["test"]:
        raise ValueError(f"{protocol}: train features have width {dims['train']} but test features {dims['test']}")
