"""SeCo intra-frame loss: is it the same frame? Two-way softmaxes against same-video negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seco_lab.losses.validation import check_dim_matches, check_embeddings, check_positive


class IntraFrameLoss(nn.Module):
    r"""Mean of N two-way softmax cross-entropies, one per same-video negative.

    For query :math:`q` (anchor frame, view 1), positive :math:`k_1` (anchor frame, view 2) and
    negatives :math:`k_{n}` (other frames of the *same* video; in SeCo ``k2`` and ``k3``):

    .. math::
        \ell_n = -\log \frac{\exp(q \cdot k_1 / \tau)}{\exp(q \cdot k_1 / \tau) + \exp(q \cdot k_n / \tau)}
               = \operatorname{softplus}\big((q \cdot k_n - q \cdot k_1) / \tau\big),
        \qquad L = \frac{1}{BN} \sum_{b,n} \ell_{b,n}

    There is no queue. Inputs are used as given (expected L2-normalised by the caller).

    Shapes: query (B, D); positive (B, D); negatives (B, N, D) -> scalar.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = check_positive("IntraFrameLoss", "temperature", temperature)

    def forward(self, query: Tensor, positive: Tensor, negatives: Tensor) -> Tensor:
        check_embeddings("IntraFrameLoss", "query", query, 2)
        check_embeddings("IntraFrameLoss", "positive", positive, 2, like=("query", query))
        check_embeddings("IntraFrameLoss", "negatives", negatives, 3, like=("query", query))
        if positive.shape != query.shape:
            raise ValueError(
                f"seco_lab/losses: IntraFrameLoss: positive shape {tuple(positive.shape)} != query shape {tuple(query.shape)}"
            )
        check_dim_matches("IntraFrameLoss", "negatives", negatives, 0, query.shape[0], "batch size of query")
        check_dim_matches("IntraFrameLoss", "negatives", negatives, 2, query.shape[1], "embedding dim of query")
        positive_logit = (query * positive).sum(dim=1, keepdim=True)  # (B, 1)
        negative_logits = torch.einsum("bd,bnd->bn", query, negatives)  # (B, N)
        logits = torch.stack([positive_logit.expand_as(negative_logits), negative_logits], dim=2)  # (B, N, 2)
        logits = logits.reshape(-1, 2) / self.temperature  # (B*N, 2)
        targets = torch.zeros(logits.shape[0], dtype=torch.long, device=query.device)
        return F.cross_entropy(logits, targets)
