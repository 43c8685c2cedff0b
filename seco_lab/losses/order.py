"""SeCo order loss: is the frame triplet in temporal order? A linear classifier + cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seco_lab.losses.validation import check_embeddings


class OrderLoss(nn.Module):
    r"""Cross-entropy of a Linear(3·D -> 2) classifier on ``concat(q_order, k_b, k_c)``.

    .. math::
        L = \mathrm{CE}\big(W [q; k_b; k_c] + w_0,\ y\big), \qquad y \in \{0, 1\}

    In SeCo ``q_order`` is the query encoder's order-head embedding of the anchor view, ``k_b``
    and ``k_c`` the key encoder's order-head embeddings of frames b and c (b <= c), and ``y`` the
    sampled order (0: anchor in the first half). The classifier's parameters belong to this module.

    ``hidden_dim > 0`` replaces the linear classifier by Linear(3·D -> hidden) - ReLU -
    Linear(hidden -> 2). A linear classifier can only add up evidence from each frame on its
    own; deciding whether ``a`` lies before or after ``b -> c`` from where an object is in each
    frame needs the frames' features to interact, which the hidden layer allows. SeCo's
    reference is linear (``hidden_dim=0``).

    Shapes: q_order, k_b, k_c (B, D); labels (B,) int64 in {0, 1} -> scalar.
    """

    def __init__(self, embed_dim: int = 128, num_classes: int = 2, hidden_dim: int = 0) -> None:
        super().__init__()
        if embed_dim < 1 or num_classes < 2:
            raise ValueError(f"seco_lab/losses: OrderLoss: embed_dim must be >= 1 and num_classes >= 2, got "
                             f"{embed_dim} and {num_classes}")
        if hidden_dim < 0:
            raise ValueError(f"seco_lab/losses: OrderLoss: hidden_dim must be >= 0, got {hidden_dim}")
        self.embed_dim = embed_dim
        self.num_classes = num_classes
        self.classifier = (
            nn.Linear(3 * embed_dim, num_classes) if hidden_dim == 0 else
            nn.Sequential(nn.Linear(3 * embed_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, num_classes))
        )

    def logits(self, q_order: Tensor, k_b: Tensor, k_c: Tensor) -> Tensor:
        """(B, D) x3 -> classifier logits (B, num_classes)."""
        for name, value in (("q_order", q_order), ("k_b", k_b), ("k_c", k_c)):
            check_embeddings("OrderLoss", name, value, 2, like=("q_order", q_order))
            if value.shape != (q_order.shape[0], self.embed_dim):
                raise ValueError(
                    f"seco_lab/losses: OrderLoss: {name} has shape {tuple(value.shape)}, "
                    f"expected ({q_order.shape[0]}, {self.embed_dim})"
                )
        return self.classifier(torch.cat([q_order, k_b, k_c], dim=1))  # (B, num_classes)

    def _check_labels(self, labels: Tensor, batch_size: int) -> None:
        if not torch.is_tensor(labels) or labels.dtype != torch.long or labels.shape != (batch_size,):
            raise ValueError(
                f"seco_lab/losses: OrderLoss: labels must be an int64 tensor of shape ({batch_size},), got "
                f"{getattr(labels, 'dtype', type(labels).__name__)} {tuple(getattr(labels, 'shape', ()))}"
            )
        num_classes = self.num_classes
        # labels on the meta device (shape-only runs) have no values to check
        if labels.numel() and labels.device.type != "meta" and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"seco_lab/losses: OrderLoss: labels must lie in [0, {num_classes - 1}]")

    def forward(self, q_order: Tensor, k_b: Tensor, k_c: Tensor, labels: Tensor) -> Tensor:
        logits = self.logits(q_order, k_b, k_c)
        self._check_labels(labels, logits.shape[0])
        return F.cross_entropy(logits, labels)

    @torch.no_grad()
    def accuracy(self, q_order: Tensor, k_b: Tensor, k_c: Tensor, labels: Tensor) -> Tensor:
        """Fraction of correctly classified triplets (scalar tensor, no gradient)."""
        logits = self.logits(q_order, k_b, k_c)
        self._check_labels(labels, logits.shape[0])
        return (logits.argmax(dim=1) == labels).float().mean()
