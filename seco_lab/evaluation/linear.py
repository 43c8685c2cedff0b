"""CVRL's linear protocol: L2-normalised frozen features, one linear layer, SGD + cosine schedule.

The reference trains with lr 32 for 100 epochs (batch 1024) on normalised 2048-d features and
tests on 10 clips x 3 crops with the softmax averaged over clips. Here the features are
precomputed: every training view (clip) is one training sample, and the test score averages
the softmax over each test video's views.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seco_lab.evaluation.metrics import check_split_arrays, top1_accuracy


def _as_views(features: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, D) -> (N, 1, D); (N, V, D) unchanged."""
    tensor = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    if tensor.ndim == 2:
        return tensor.unsqueeze(1)  # (N, 1, D)
    if tensor.ndim != 3:
        raise ValueError(f"features must be (N, D) or (N, V, D), got shape {tuple(tensor.shape)}")
    return tensor


def train_linear_classifier(train_features: torch.Tensor, train_labels: torch.Tensor, num_classes: int,
                            lr: float = 4.0, epochs: int = 100, batch_size: int = 256, momentum: float = 0.9,
                            weight_decay: float = 0.0, seed: int = 0,
                            device: str | torch.device = "cpu") -> nn.Linear:
    """Train nn.Linear(D, num_classes) on features (N, D) with SGD and a per-step cosine lr."""
    generator = torch.Generator().manual_seed(seed)
    classifier = nn.Linear(train_features.shape[1], num_classes)
    with torch.no_grad():
        classifier.weight.normal_(0.0, 0.01, generator=generator)
        classifier.bias.zero_()
    classifier.to(device)
    optimizer = torch.optim.SGD(classifier.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(train_features) / batch_size)
    total_steps = max(1, epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    features = train_features.to(device)
    labels = train_labels.to(device)
    for _ in range(epochs):
        order = torch.randperm(len(features), generator=generator).to(device)
        for batch in order.split(batch_size):
            loss = F.cross_entropy(classifier(features[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    return classifier.eval()


def linear_protocol(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                    test_labels: np.ndarray, num_classes: int | None = None, lr: float = 4.0, epochs: int = 100,
                    batch_size: int = 256, momentum: float = 0.9, weight_decay: float = 0.0,
                    normalize: bool = True, seed: int = 0, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Linear probe top-1 (percent) with multi-view test.

    train_features: (N, D) or (N, V, D) — each view is a training sample with its video's label;
    test_features: (M, D) or (M, V', D) — softmax averaged over the V' views of each video.
    Labels are integers in [0, num_classes) (num_classes None: up to the largest label given).
    Returns {"top1", "top1_single_view" (first view only), "predictions" (M,)}.
    """
    check_split_arrays("linear", train_features, train_labels, test_features, test_labels, num_classes,
                       feature_dims=(2, 3))
    train_views = _as_views(train_features)
    test_views = _as_views(test_features)
    if normalize:
        train_views = F.normalize(train_views, dim=-1)
        test_views = F.normalize(test_views, dim=-1)
    train_labels_t = torch.as_tensor(np.asarray(train_labels), dtype=torch.long)
    if num_classes is None:
        num_classes = int(max(np.max(train_labels), np.max(test_labels))) + 1
    per_view_labels = train_labels_t.repeat_interleave(train_views.shape[1])  # (N * V,)
    classifier = train_linear_classifier(
        train_views.reshape(-1, train_views.shape[-1]), per_view_labels, num_classes, lr=lr, epochs=epochs,
        batch_size=batch_size, momentum=momentum, weight_decay=weight_decay, seed=seed, device=device)
    with torch.no_grad():
        flat = test_views.reshape(-1, test_views.shape[-1]).to(device)  # (M * V', D)
        probabilities = classifier(flat).softmax(dim=1).cpu().reshape(test_views.shape[0], test_views.shape[1], -1)
    predictions = probabilities.mean(dim=1).argmax(dim=1).numpy()
    single_view = probabilities[:, 0].argmax(dim=1).numpy()
    return {"top1": top1_accuracy(predictions, test_labels),
            "top1_single_view": top1_accuracy(single_view, test_labels), "predictions": predictions}
