"""DualVar shuffle-rank loss: segment embeddings must match their own temporal position."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seco_lab.losses.validation import check_embeddings, check_positive


class ShuffleRankLoss(nn.Module):
    r"""Softplus ranking loss between unshuffled and calibrated shuffled series embeddings.

    For one video let :math:`u_1..u_S` be the series vectors of the unshuffled clip and
    :math:`c_1..c_S` those of the shuffled clip after calibration (slot s moved back to the
    original position of its segment). Of these 2S vectors, anchor :math:`u_s` has positive
    :math:`c_s` (and :math:`c_s` has positive :math:`u_s`); the other 2S-2 vectors are its
    negatives. With :math:`\mathrm{sim}` the dot product and margin scale θ = 0.05:

    .. math::
        L = \frac{1}{B \cdot 2S \cdot (2S-2)} \sum_{b} \sum_{a} \sum_{n \in N(a)}
            \operatorname{softplus}\Big(\frac{\mathrm{sim}(a, n) - \mathrm{sim}(a, p(a))}{\theta}\Big)

    Inputs are expected to be unit vectors (SeriesHead output) and are not renormalised.
    Needs S >= 2 (with S = 1 there are no negatives).

    Shapes: unshuffled, calibrated_shuffled (B, S, D) -> scalar.
    """

    def __init__(self, theta: float = 0.05) -> None:
        super().__init__()
        self.theta = check_positive("ShuffleRankLoss", "theta", theta)

    def forward(self, unshuffled: Tensor, calibrated_shuffled: Tensor) -> Tensor:
        check_embeddings("ShuffleRankLoss", "unshuffled", unshuffled, 3)
        check_embeddings("ShuffleRankLoss", "calibrated_shuffled", calibrated_shuffled, 3,
                         like=("unshuffled", unshuffled))
        if unshuffled.shape != calibrated_shuffled.shape:
            raise ValueError(
                f"seco_lab/losses: ShuffleRankLoss: unshuffled shape {tuple(unshuffled.shape)} != "
                f"calibrated_shuffled shape {tuple(calibrated_shuffled.shape)}"
            )
        num_segments = unshuffled.shape[1]
        if num_segments < 2:
            raise ValueError(f"seco_lab/losses: ShuffleRankLoss: needs S >= 2 segments, got S = {num_segments}")
        vectors = torch.cat([unshuffled, calibrated_shuffled], dim=1)  # (B, 2S, D)
        similarities = vectors @ vectors.transpose(1, 2)  # (B, 2S, 2S)
        size = 2 * num_segments
        anchor_index = torch.arange(size, device=vectors.device)
        positive_index = (anchor_index + num_segments) % size  # (2S,)
        positive_sim = similarities[:, anchor_index, positive_index]  # (B, 2S)
        offsets = torch.cat([torch.arange(1, num_segments, device=vectors.device),
                             torch.arange(num_segments + 1, size, device=vectors.device)])  # (2S-2,): not 0, not S
        negative_index = (anchor_index.unsqueeze(1) + offsets) % size  # (2S, 2S-2): neither anchor nor positive
        negative_sim = similarities.gather(2, negative_index.expand(unshuffled.shape[0], -1, -1))  # (B, 2S, 2S-2)
        return F.softplus((negative_sim - positive_sim.unsqueeze(2)) / self.theta).mean()
