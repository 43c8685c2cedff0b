"""DualVar's retrieval protocol: nearest train videos of each test video, recall at k.

Video features (clip features averaged per video) are centred by the train split's mean (train
and test videos alike, so a test video's neighbours do not depend on the other test videos),
L2-normalised and compared by cosine similarity; a test video scores a hit at k when any of its
k most similar train videos has its class.

R@k rises with k for any ranking, a random one included: ``chance_recall_at_k`` gives the value a
ranking drawn at random is expected to reach, the baseline each R@k is read against. With N train
videos and n of a class, every k above N - n puts one of the class among the k, so R@k is 100 %
there whatever the features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from seco_lab.evaluation.metrics import check_split_arrays

DEFAULT_KS = (1, 5, 10, 20, 50)
CHUNK_SIMILARITIES = 1 << 22  # test-train similarities ranked at once by default (16 MB of float32)


def _video_features(features: np.ndarray) -> np.ndarray:
    """(N, D) features, or (N, V, D) averaged over views -> (N, D) float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim == 3:
        features = features.mean(axis=1)  # (N, V, D) -> (N, D)
    if features.ndim != 2:
        raise ValueError(f"features must be (N, D) or (N, V, D), got shape {features.shape}")
    return features


def _unit_rows(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def _top_k_columns(similarity: np.ndarray, k: int) -> np.ndarray:
    """Column indices (m, k) of each row's k largest values, largest first; among equal values the
    lower column comes first, at the k-th place too. 1 <= k <= number of columns."""
    rows, columns = similarity.shape
    if k < columns:
        kth_largest = np.partition(similarity, columns - k, axis=1)[:, columns - k, None]  # (m, 1)
        above = similarity > kth_largest  # (m, N), fewer than k per row
        level = similarity == kth_largest  # (m, N), the lowest columns fill the k places left
        places_left = k - above.sum(axis=1, keepdims=True)  # (m, 1)
        chosen = above | (level & (np.cumsum(level, axis=1, dtype=np.int32) <= places_left))  # (m, N), k per row
        candidates = np.nonzero(chosen)[1].reshape(rows, k)  # (m, k), ascending columns
    else:
        candidates = np.broadcast_to(np.arange(columns), (rows, columns))  # (m, N)
    order = np.argsort(-np.take_along_axis(similarity, candidates, axis=1), axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1)


def retrieval_neighbours(train_features: np.ndarray, test_features: np.ndarray, k: int,
                         center: bool = True, chunk_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices (M, k') and cosine similarities (M, k', float32) of each test video's nearest train videos.

    k' = min(k, N). ``center``: both splits are first centred by the train features' mean.
    Ties keep the lower train index first. Similarities are computed and ranked ``chunk_size``
    test videos at a time (None: as many as hold about ``CHUNK_SIMILARITIES`` similarities), so
    memory grows with ``chunk_size * N``, not ``M * N``.
    """
    if k < 1:
        raise ValueError(f"retrieval_neighbours: k must be >= 1, got {k}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"retrieval_neighbours: chunk_size must be >= 1, got {chunk_size}")
    train = _video_features(train_features)
    test = _video_features(test_features)
    if center:
        train_mean = train.mean(axis=0, keepdims=True)  # (1, D)
        train, test = train - train_mean, test - train_mean
    train_units = _unit_rows(train).astype(np.float32).T  # (D, N)
    test_units = _unit_rows(test).astype(np.float32)  # (M, D)
    k = min(k, train.shape[0])
    if chunk_size is None:
        chunk_size = max(1, CHUNK_SIMILARITIES // train.shape[0])
    neighbours = np.empty((test.shape[0], k), dtype=np.int64)
    similarities = np.empty((test.shape[0], k), dtype=np.float32)
    for start in range(0, test.shape[0], chunk_size):
        similarity = test_units[start:start + chunk_size] @ train_units  # (m, N)
        order = _top_k_columns(similarity, k)  # (m, k)
        neighbours[start:start + chunk_size] = order
        similarities[start:start + chunk_size] = np.take_along_axis(similarity, order, axis=1)
    return neighbours, similarities


def recall_at_k(neighbour_labels: np.ndarray, test_labels: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """R@k in percent from ranked neighbour labels (M, K): hit if any of the first k match."""
    matches = np.asarray(neighbour_labels) == np.asarray(test_labels)[:, None]  # (M, K)
    first_hit = np.where(matches.any(axis=1), matches.argmax(axis=1), np.iinfo(np.int64).max)
    return {k: float(100.0 * np.mean(first_hit < k)) for k in ks}


def chance_recall_at_k(train_labels: np.ndarray, test_labels: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """Expected R@k in percent of a uniformly random ranking of the N train videos.

    A test video whose class has n train videos misses at k with the hypergeometric probability
    ``C(N - n, k) / C(N, k) = prod_{i<k} (N - n - i) / (N - i)`` (zero once k > N - n); a class
    without train videos always misses. A k above N is capped at N.
    """
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    total = train_labels.shape[0]
    if total == 0 or test_labels.size == 0:
        raise ValueError("chance_recall_at_k: needs train and test labels")
    classes, counts = np.unique(train_labels, return_counts=True)
    per_class = dict(zip(classes.tolist(), counts.tolist()))
    in_class = np.array([per_class.get(label, 0) for label in test_labels.tolist()], dtype=np.float64)  # (M,)
    chances = {}
    for k in ks:
        steps = np.arange(min(int(k), total), dtype=np.float64)  # (k,)
        miss = np.clip((total - in_class[:, None] - steps) / (total - steps), 0.0, None).prod(axis=1)  # (M,)
        chances[int(k)] = float(100.0 * np.mean(1.0 - miss))
    return chances


def certain_recall_k(train_labels: np.ndarray, test_labels: np.ndarray) -> int | None:
    """The smallest k from which every test video of a class with train videos scores a hit under
    any ranking (N - n + 1 for the test classes' smallest count n of train videos); None when no
    test video's class has train videos."""
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    classes, counts = np.unique(train_labels, return_counts=True)
    tested = np.isin(classes, test_labels)
    if not tested.any():
        return None
    return int(train_labels.shape[0] - counts[tested].min() + 1)


def retrieval_protocol(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                       test_labels: np.ndarray, ks: Sequence[int] = DEFAULT_KS,
                       center: bool = True) -> dict[str, Any]:
    """Video retrieval recall (percent): {"R@1": ..., "R@5": ..., ...}.

    A k larger than the train set is capped at its size; the result then holds
    ``"R@k_capped_to"`` = the number of train videos and the key keeps the requested k.
    ``"chance_R@k"`` is each k's value for a random ranking (``chance_recall_at_k``); when a
    requested k is so large that any ranking scores every test video of a class with train
    videos, ``"R@k_certain_from"`` gives the smallest such k (``certain_recall_k``).
    Also returns "neighbours" (M, K) train indices and "similarities" (M, K) for plots.
    center: centre both splits by the train features' mean first (``retrieval_neighbours``).
    """
    check_split_arrays("retrieval", train_features, train_labels, test_features, test_labels, feature_dims=(2, 3))
    train_labels = np.asarray(train_labels)
    ks = sorted(int(k) for k in ks)
    if not ks or ks[0] < 1:
        raise ValueError(f"retrieval: ks must hold at least one k, each >= 1, got {ks}")
    neighbours, similarities = retrieval_neighbours(train_features, test_features, max(ks), center)
    available = neighbours.shape[1]
    recalls = recall_at_k(train_labels[neighbours], test_labels, [min(k, available) for k in ks])
    result: dict[str, Any] = {f"R@{k}": recalls[min(k, available)] for k in ks}
    if ks[-1] > available:
        result["R@k_capped_to"] = available
    result.update({f"chance_R@{k}": chance for k, chance in chance_recall_at_k(train_labels, test_labels, ks).items()})
    certain_from = certain_recall_k(train_labels, test_labels)
    if certain_from is not None and ks[-1] >= certain_from:
        result["R@k_certain_from"] = certain_from
    result["neighbours"] = neighbours
    result["similarities"] = similarities
    return result
