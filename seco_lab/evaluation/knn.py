"""Weighted k-nearest-neighbour classifier on cosine similarity (instance-discrimination style)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from seco_lab.evaluation.metrics import check_split_arrays, top1_accuracy


def knn_predict(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                num_classes: int, k: int = 20, temperature: float = 0.07, chunk_size: int = 1024) -> torch.Tensor:
    """Class scores (M, num_classes) for test features (M, D) from train features (N, D).

    Features are L2-normalised; each of the k most similar train samples votes for its class
    with weight exp(sim / temperature). k is capped at N. The scores are on the device of
    the features (``train_labels`` may be elsewhere).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    train = F.normalize(torch.as_tensor(train_features).float(), dim=1)
    test = F.normalize(torch.as_tensor(test_features).float(), dim=1)
    labels = torch.as_tensor(train_labels, dtype=torch.long).to(train.device)
    k = min(k, train.shape[0])
    scores = []
    for chunk in test.split(chunk_size):
        similarity = chunk @ train.T  # (m, N)
        top_sim, top_index = similarity.topk(k, dim=1)  # (m, k)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(chunk.shape[0], num_classes, dtype=weights.dtype, device=weights.device)
        votes.scatter_add_(1, labels[top_index], weights)
        scores.append(votes)
    return torch.cat(scores)


def knn_protocol(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                 test_labels: np.ndarray, k: int = 20, temperature: float = 0.07,
                 num_classes: int | None = None) -> dict[str, Any]:
    """Weighted kNN top-1 (percent). Returns {"top1", "predictions" (M,), "k"} (k after capping)."""
    check_split_arrays("knn", train_features, train_labels, test_features, test_labels, num_classes)
    train_labels_t = torch.as_tensor(np.asarray(train_labels), dtype=torch.long)
    if num_classes is None:
        num_classes = int(max(np.max(train_labels), np.max(test_labels))) + 1
    scores = knn_predict(torch.as_tensor(np.asarray(train_features)), train_labels_t,
                         torch.as_tensor(np.asarray(test_features)), num_classes, k, temperature)
    predictions = scores.argmax(dim=1).numpy()
    return {"top1": top1_accuracy(predictions, test_labels), "predictions": predictions,
            "k": min(k, len(train_labels_t))}
