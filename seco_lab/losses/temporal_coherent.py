"""DualVar temporal coherent contrastive loss: NT-Xent over series-embedding similarities."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from seco_lab.losses.ntxent import NTXENT_REDUCTIONS, NTXentLoss
from seco_lab.losses.validation import check_embeddings, check_positive


class TemporalCoherentLoss(nn.Module):
    r"""NT-Xent whose clip similarity is the mean of all segment-pair dot products.

    For series embeddings :math:`a, b \in \mathbb{R}^{S \times D}` of two clips,

    .. math::
        \mathrm{sim}(a, b) = \frac{1}{S^2} \sum_{s=1}^{S} \sum_{t=1}^{S} a_s \cdot b_t
                           = \bar a \cdot \bar b, \qquad \bar a = \frac{1}{S} \sum_s a_s ,

    and the loss is NT-Xent (see :class:`NTXentLoss`, temperature τ = 0.07) with the two clips
    v0, v1 of each video as positives and all other clips of the (global) batch as negatives.
    The series vectors are expected to be L2-normalised per segment (SeriesHead does this) and
    are not renormalised: the segment means are compared by their plain dot product.

    ``reduction`` as in NTXentLoss; the default ``"mean"`` averages over all 2B anchors.

    Shapes: series_v0, series_v1 (B, S, D) -> scalar (or (2B,) with ``reduction="none"``).
    """

    def __init__(
        self,
        temperature: float = 0.07,
        reduction: str = "mean",
        gather: Callable[[Tensor], Tensor] | None = None,
        rank: int | None = None,
    ) -> None:
        super().__init__()
        check_positive("TemporalCoherentLoss", "temperature", temperature)
        if reduction not in NTXENT_REDUCTIONS:
            raise ValueError(f"seco_lab/losses: TemporalCoherentLoss: reduction must be one of {NTXENT_REDUCTIONS}, "
                             f"got {reduction!r}")
        self.ntxent = NTXentLoss(temperature, reduction=reduction, normalize=False, gather=gather, rank=rank)

    def forward(self, series_v0: Tensor, series_v1: Tensor) -> Tensor:
        check_embeddings("TemporalCoherentLoss", "series_v0", series_v0, 3)
        check_embeddings("TemporalCoherentLoss", "series_v1", series_v1, 3, like=("series_v0", series_v0))
        if series_v0.shape != series_v1.shape:
            raise ValueError(
                f"seco_lab/losses: TemporalCoherentLoss: series_v0 shape {tuple(series_v0.shape)} != "
                f"series_v1 shape {tuple(series_v1.shape)}"
            )
        if self.ntxent.gather is None and series_v0.shape[0] < 2:
            raise ValueError("seco_lab/losses: TemporalCoherentLoss: needs at least 2 videos in the batch (their clips "
                             "are one another's negatives)")
        return self.ntxent(series_v0.mean(dim=1), series_v1.mean(dim=1))  # segment means (B, D)
