"""DualVar's retrieval protocol: nearest train videos of each test video, recall at k.

Video features (clip features averaged per video) are centred by their own split's mean,
L2-normalised and compared by cosine similarity; a test video scores a hit at k when any of
its k most similar train videos has its class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_KS = (1, 5, 10, 20, 50)


def _prepare(features: np.ndarray, center: bool) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim == 3:
        features = features.mean(axis=1)  # (N, V, D) -> (N, D)
    if features.ndim != 2:
        raise ValueError(f"features must be (N, D) or (N, V, D), got shape {features.shape}")
    if center:
        features = features - features.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def retrieval_neighbours(train_features: np.ndarray, test_features: np.ndarray, k: int,
                         center: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Indices (M, k') and cosine similarities (M, k') of each test video's nearest train videos.

    k' = min(k, N). Ties keep the lower train index first.
    """
    train = _prepare(train_features, center)
    test = _prepare(test_features, center)
    similarity = test @ train.T  # (M, N)
    k = min(k, train.shape[0])
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(similarity, order, axis=1)


def recall_at_k(neighbour_labels: np.ndarray, test_labels: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """R@k in percent from ranked neighbour labels (M, K): hit if any of the first k match."""
    matches = np.asarray(neighbour_labels) == np.asarray(test_labels)[:, None]  # (M, K)
    first_hit = np.where(matches.any(axis=1), matches.argmax(axis=1), np.iinfo(np.int64).max)
    return {k: float(100.0 * np.mean(first_hit < k)) for k in ks}


def retrieval_protocol(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                       test_labels: np.ndarray, ks: Sequence[int] = DEFAULT_KS,
                       center: bool = True) -> dict[str, Any]:
    """Video retrieval recall (percent): {"R@1": ..., "R@5": ..., ...}.

    A k larger than the train set is capped at its size; the result then holds
    ``"R@k_capped_to"`` = the number of train videos and the key keeps the requested k.
    Also returns "neighbours" (M, K) train indices and "similarities" (M, K) for plots.
    """
    train_labels = np.asarray(train_labels)
    ks = sorted(int(k) for k in ks)
    if ks[0] < 1:
        raise ValueError(f"every k must be >= 1, got {ks}")
    neighbours, similarities = retrieval_neighbours(train_features, test_features, max(ks), center)
    available = neighbours.shape[1]
    recalls = recall_at_k(train_labels[neighbours], test_labels, [min(k, available) for k in ks])
    result: dict[str, Any] = {f"R@{k}": recalls[min(k, available)] for k in ks}
    if ks[-1] > available:
        result["R@k_capped_to"] = available
    result["neighbours"] = neighbours
    result["similarities"] = similarities
    return result
