"""NT-Xent (SimCLR normalised-temperature cross-entropy), both directions, optional global negatives."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from seco_lab.losses.validation import check_embeddings, check_positive

NTXENT_REDUCTIONS = ("sum_directions", "mean", "none")


def default_rank() -> int:
    """This process's rank in torch.distributed if initialised, else 0."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class NTXentLoss(nn.Module):
    r"""SimCLR's NT-Xent over two views z1, z2 of the same B samples.

    With :math:`s(u, v) = u \cdot v / \tau` on L2-normalised rows, the loss of anchor
    :math:`z1_i` (direction z1 -> z2) is

    .. math::
        \ell^{1\to 2}_i = -\log \frac{\exp s(z1_i, z2_i)}
            {\sum_{k} \exp s(z1_i, z2_k) + \sum_{k \ne i} \exp s(z1_i, z1_k)}

    (its positive, the other view of every sample, and the same view of every other sample),
    and symmetrically :math:`\ell^{2\to 1}_i`. With ``reduction="sum_directions"`` (CVRL)
    :math:`L = \mathrm{mean}_i \ell^{1\to2}_i + \mathrm{mean}_i \ell^{2\to1}_i`; ``"mean"`` is the
    mean over all 2B anchors (SimCLR, half of the former); ``"none"`` returns the (2B,) per-anchor
    losses, z1 anchors first.

    Global negatives: ``gather`` maps a local (B, D) tensor to the (world·B, D) concatenation
    over devices (it should pass gradients back, e.g. ``all_gather_with_grad``). Local anchors
    are then compared with every gathered key; the positive of local anchor i sits at index
    ``rank·B + i`` where ``rank`` is the constructor's value or, if None, torch.distributed's rank
    (0 when not initialised).

    ``normalize=True`` (default) L2-normalises z1, z2 inside; ``normalize=False`` uses the
    given vectors' dot products as similarities (used by :class:`TemporalCoherentLoss`).

    Shapes: z1, z2 (B, D) -> scalar, or (2B,) with ``reduction="none"``.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        reduction: str = "sum_directions",
        normalize: bool = True,
        gather: Callable[[Tensor], Tensor] | None = None,
        rank: int | None = None,
    ) -> None:
        super().__init__()
        if reduction not in NTXENT_REDUCTIONS:
            raise ValueError(f"seco_lab/losses: NTXentLoss: reduction must be one of {NTXENT_REDUCTIONS}, got {reduction!r}")
        self.temperature = check_positive("NTXentLoss", "temperature", temperature)
        self.reduction = reduction
        self.normalize = normalize
        self.gather = gather
        self.rank = rank

    def _one_direction(self, anchors: Tensor, others_all: Tensor, anchors_all: Tensor, targets: Tensor) -> Tensor:
        """Per-anchor losses (B,) of ``anchors`` against keys ``[others_all, anchors_all \\ self]``."""
        cross_logits = anchors @ others_all.t() / self.temperature  # (B, N)
        same_view_logits = anchors @ anchors_all.t() / self.temperature  # (B, N)
        self_mask = F.one_hot(targets, num_classes=anchors_all.shape[0]).bool()  # (B, N)
        same_view_logits = same_view_logits.masked_fill(self_mask, float("-inf"))
        logits = torch.cat([cross_logits, same_view_logits], dim=1)  # (B, 2N)
        return F.cross_entropy(logits, targets, reduction="none")

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        check_embeddings("NTXentLoss", "z1", z1, 2)
        check_embeddings("NTXentLoss", "z2", z2, 2, like=("z1", z1))
        if z1.shape != z2.shape:
            raise ValueError(f"seco_lab/losses: NTXentLoss: z1 shape {tuple(z1.shape)} != z2 shape {tuple(z2.shape)}")
        if self.normalize:
            z1 = F.normalize(z1, dim=1)
            z2 = F.normalize(z2, dim=1)
        batch_size = z1.shape[0]
        if self.gather is None:
            z1_all, z2_all, rank = z1, z2, 0
        else:
            z1_all, z2_all = self.gather(z1), self.gather(z2)  # (world*B, D) each
            rank = default_rank() if self.rank is None else self.rank
            if z1_all.shape[0] % batch_size or z1_all.shape[1:] != z1.shape[1:] or z2_all.shape != z1_all.shape:
                raise ValueError(
                    f"seco_lab/losses: NTXentLoss: gather returned {tuple(z1_all.shape)} / {tuple(z2_all.shape)} "
                    f"for a local batch {tuple(z1.shape)}; expected (world*B, D)"
                )
            if not 0 <= rank < z1_all.shape[0] // batch_size:
                raise ValueError(
                    f"seco_lab/losses: NTXentLoss: rank {rank} out of range for world size {z1_all.shape[0] // batch_size}"
                )
        if z1_all.shape[0] < 2:
            raise ValueError("seco_lab/losses: NTXentLoss: needs at least 2 samples in the (global) batch")
        targets = rank * batch_size + torch.arange(batch_size, device=z1.device)  # (B,)
        loss_1to2 = self._one_direction(z1, z2_all, z1_all, targets)  # (B,)
        loss_2to1 = self._one_direction(z2, z1_all, z2_all, targets)  # (B,)
        if self.reduction == "sum_directions":
            return loss_1to2.mean() + loss_2to1.mean()
        per_anchor = torch.cat([loss_1to2, loss_2to1])  # (2B,)
        return per_anchor.mean() if self.reduction == "mean" else per_anchor
