"""InfoNCE of a query against several positives and a queue of negatives (SeCo inter-frame loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seco_lab.losses.validation import check_dim_matches, check_embeddings, check_positive


class InfoNCELoss(nn.Module):
    r"""One InfoNCE row per positive, rows of all positives averaged.

    For query :math:`q_b`, positive :math:`k_{b,p}` and negatives :math:`n_j`:

    .. math::
        \ell_{b,p} = -\log \frac{\exp(q_b \cdot k_{b,p} / \tau)}
                               {\exp(q_b \cdot k_{b,p} / \tau) + \sum_j \exp(q_b \cdot n_j / \tau)},
        \qquad L = \frac{1}{BP} \sum_{b,p} \ell_{b,p}

    i.e. cross-entropy of the logits ``[q·k_p, q·n_1, ..., q·n_K] / τ`` with target 0. In SeCo
    the positives are ``k1, k2, k3`` (key-encoder embeddings of the anchor's second view and of
    the two frames of the other half) and the negatives a FIFO queue of keys.

    Negatives: ``queue`` (K, D) when given; with ``queue=None`` the negatives of query b are
    the positives of every *other* video in the batch ((B-1)·P keys).

    Inputs are used as given: they are expected to be L2-normalised already (the methods
    normalise head outputs; the queue stores normalised keys). Nothing is detached here.

    Shapes: query (B, D); positives (B, P, D) or (B, D) (= P 1); queue (K, D) or None -> scalar.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = check_positive("InfoNCELoss", "temperature", temperature)

    def forward(self, query: Tensor, positives: Tensor, queue: Tensor | None = None) -> Tensor:
        check_embeddings("InfoNCELoss", "query", query, 2)
        check_embeddings("InfoNCELoss", "positives", positives, (2, 3), like=("query", query))
        if positives.dim() == 2:
            positives = positives.unsqueeze(1)  # (B, 1, D)
        batch_size, num_positives, dim = positives.shape
        check_dim_matches("InfoNCELoss", "positives", positives, 0, query.shape[0], "batch size of query")
        check_dim_matches("InfoNCELoss", "positives", positives, 2, query.shape[1], "embedding dim of query")
        positive_logits = torch.einsum("bd,bpd->bp", query, positives)  # (B, P)
        if queue is not None:
            check_embeddings("InfoNCELoss", "queue", queue, 2, like=("query", query))
            check_dim_matches("InfoNCELoss", "queue", queue, 1, dim, "embedding dim of query")
            negative_logits = query @ queue.t()  # (B, K)
        else:
            if batch_size < 2:
                raise ValueError("seco_lab/losses: InfoNCELoss: queue=None needs a batch of >= 2 videos for negatives")
            all_keys = positives.reshape(batch_size * num_positives, dim)  # (B*P, D)
            logits_by_video = (query @ all_keys.t()).view(batch_size, batch_size, num_positives)  # (B, B, P)
            other_video = torch.arange(batch_size - 1, device=query.device).expand(batch_size, -1)  # (B, B-1)
            # row b: every video but b (0..B-1 without b), as indices, so no step depends on values
            other_video = other_video + (other_video >= torch.arange(batch_size, device=query.device).unsqueeze(1))
            negative_logits = logits_by_video.gather(1, other_video.unsqueeze(2).expand(-1, -1, num_positives))
            negative_logits = negative_logits.reshape(batch_size, (batch_size - 1) * num_positives)
        logits = torch.cat(
            [
                positive_logits.unsqueeze(2),  # (B, P, 1)
                negative_logits.unsqueeze(1).expand(-1, num_positives, -1),  # (B, P, K)
            ],
            dim=2,
        ) / self.temperature  # (B, P, 1 + K)
        targets = torch.zeros(batch_size * num_positives, dtype=torch.long, device=query.device)
        return F.cross_entropy(logits.reshape(batch_size * num_positives, -1), targets)
