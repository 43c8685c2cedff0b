"""What each of SeCo's three signals teaches, measured on held-out videos.

For every test video one SeCo triplet ``(a, b, c)`` is drawn and the anchor is augmented twice,
exactly as in training. Probes by cosine similarity, and the order head, answer the three
questions SeCo asks:

* same frame?  — ``same_frame_acc``: the anchor's second view is closer to its first view than
  both other frames of its video are (what the intra-frame loss trains);
* same video?  — ``same_video_r1``: the nearest of all other videos' and its own frames b, c to
  the anchor belongs to its own video (what the inter-frame loss trains);
* right order? — ``order_acc``: the order classifier's accuracy on these triplets (what the
  order loss trains; 50 % is chance).

The first two are asked twice: of the trunk's pooled features (the representation every
evaluation uses) and, with the ``_head`` suffix, of the head whose loss asks that question (the
intra head for the same frame, the inter head for the same video). A loss trains its head's answer
directly; how much of it reaches the trunk, which the heads share, is a separate question.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from seco_lab.methods.seco import INTER, INTRA, ORDER, SeCo
from seco_lab.video.dataset import VideoSource


@torch.no_grad()
def seco_signal_probes(method: SeCo, records: Sequence[Any], num_frames: Sequence[int], size: int,
                       seed: int = 0, batch_size: int = 64) -> dict[str, float]:
    """The three probes (percent) of a SeCo model on ``records`` (usually the test split).

    Views come from the method's own view maker (same triplet rule, input mode and
    augmentation as in training), seeded per video so every model sees the same views.
    """
    if len(records) < 2:
        raise ValueError("seco_signal_probes needs at least two videos")
    make_views = method.view_maker()
    views, orders = [], []
    for position, (record, frames) in enumerate(zip(records, num_frames)):
        torch.manual_seed(seed * 100_003 + position)
        item = make_views(VideoSource(record.path, frames, record.label, position, size),
                          np.random.default_rng([seed, position]))
        views.append(torch.stack([item["xq"], item["x1"], item["x2"], item["x3"]]))
        orders.append(int(item["order"]))
    stacked = torch.stack(views)  # (N, 4, C, H, W): a1, a2, b, c
    device = next(method.parameters()).device
    was_training = method.training
    method.eval()
    try:
        flat = stacked.flatten(0, 1).to(device)  # (4N, C, H, W)
        features = torch.cat([method.query.trunk(chunk) for chunk in flat.split(batch_size)])
        embeddings = torch.cat([method.query(chunk) for chunk in flat.split(batch_size)])  # (4N, 3, dim)
    finally:
        method.train(was_training)
    features = F.normalize(features.float(), dim=1).view(len(records), 4, -1).cpu()  # (N, 4, D)
    embeddings = embeddings.float().view(len(records), 4, 3, -1).cpu()  # (N, 4 views, 3 signals, dim)

    labels = torch.tensor(orders, dtype=torch.long)
    q_order, k_b, k_c = embeddings[:, 0, ORDER], embeddings[:, 2, ORDER], embeddings[:, 3, ORDER]
    order_acc = method.order_loss.cpu().accuracy(q_order, k_b, k_c, labels)
    method.order_loss.to(device)
    return {
        "same_frame_acc": same_frame_accuracy(features),
        "same_video_r1": same_video_recall(features),
        "same_frame_acc_head": same_frame_accuracy(F.normalize(embeddings[:, :, INTRA], dim=-1)),
        "same_video_r1_head": same_video_recall(F.normalize(embeddings[:, :, INTER], dim=-1)),
        "order_acc": 100.0 * float(order_acc),
    }


def same_frame_accuracy(views: torch.Tensor) -> float:
    """Percent of videos whose anchor view a1 is more similar to a2 (the same frame, other view)
    than to both b and c; ``views`` ``(N, 4, D)`` unit vectors in the order a1, a2, b, c."""
    a1, a2, b, c = views.unbind(dim=1)  # (N, D) each
    same_frame = (a1 * a2).sum(1) > torch.maximum((a1 * b).sum(1), (a1 * c).sum(1))
    return 100.0 * float(same_frame.float().mean())


def same_video_recall(views: torch.Tensor) -> float:
    """Recall@1 (percent) of the anchor views a1 among the frames b and c of all ``N`` videos: the
    nearest one is from the anchor's own video; ``views`` ``(N, 4, D)`` unit vectors a1, a2, b, c."""
    a1, b, c = views[:, 0], views[:, 2], views[:, 3]
    gallery = torch.cat([b, c])  # (2N, D): frames b and c of every video
    owner = torch.arange(len(views)).repeat(2)  # (2N,)
    nearest = (a1 @ gallery.T).argmax(dim=1)  # (N,)
    return 100.0 * float((owner[nearest] == torch.arange(len(views))).float().mean())
