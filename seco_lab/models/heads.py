"""Projection heads placed on top of a pooled trunk feature (N, D).

Heads return unnormalised embeddings unless said otherwise; the methods (or the losses that
document it) L2-normalise them.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def mlp_head(
    in_dim: int, hidden_dim: int, out_dim: int, num_hidden_layers: int = 1, batch_norm: bool = False
) -> nn.Sequential:
    """``num_hidden_layers`` x [Linear(hidden_dim) (- BN) - ReLU] then Linear(out_dim).

    (N, in_dim) -> (N, out_dim). With ``batch_norm`` the hidden Linear layers have no bias (the
    BN shift replaces it). ``num_hidden_layers=0`` gives a single Linear layer.
    """
    if num_hidden_layers < 0:
        raise ValueError(f"seco_lab/models/heads.py: num_hidden_layers must be >= 0, got {num_hidden_layers}")
    layers: list[nn.Module] = []
    previous = in_dim
    for _ in range(num_hidden_layers):
        layers.append(nn.Linear(previous, hidden_dim, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.ReLU(inplace=True))
        previous = hidden_dim
    layers.append(nn.Linear(previous, out_dim))
    return nn.Sequential(*layers)


def seco_head(in_dim: int, hidden_dim: int | None = None, out_dim: int = 128) -> nn.Sequential:
    """SeCo inter / intra / order head: Linear(in, hidden) - ReLU - Linear(hidden, 128); hidden defaults to in."""
    return mlp_head(in_dim, hidden_dim or in_dim, out_dim, num_hidden_layers=1)


def cvrl_head(in_dim: int, hidden_dim: int = 2048, out_dim: int = 128, num_hidden_layers: int = 3,
              batch_norm: bool = True) -> nn.Sequential:
    """CVRL projection head: 3 x [Linear(2048) - BN - ReLU] then Linear(128). The CPU profiles
    use one hidden layer without BN (``num_hidden_layers=1, batch_norm=False``, see ``methods.cvrl``)."""
    return mlp_head(in_dim, hidden_dim, out_dim, num_hidden_layers=num_hidden_layers, batch_norm=batch_norm)


def dualvar_clip_head(in_dim: int = 512, hidden_dim: int = 512, out_dim: int = 128) -> nn.Sequential:
    """DualVar clip head: Linear(512, 512) - ReLU - Linear(512, 128)."""
    return mlp_head(in_dim, hidden_dim, out_dim, num_hidden_layers=1)


class SeriesHead(nn.Module):
    """DualVar series head: Linear(in, hidden) - ReLU - Linear(hidden, S*segment_dim).

    ``forward(features (N, in_dim)) -> (N, S, segment_dim)``, one vector per temporal segment,
    each L2-normalised when ``normalize`` (default).
    """

    def __init__(
        self,
        in_dim: int = 512,
        hidden_dim: int = 512,
        num_segments: int = 2,
        segment_dim: int = 64,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        if num_segments < 1 or segment_dim < 1:
            raise ValueError(
                f"seco_lab/models/heads.py: SeriesHead needs num_segments >= 1 and segment_dim >= 1, "
                f"got {num_segments}, {segment_dim}"
            )
        self.num_segments = num_segments
        self.segment_dim = segment_dim
        self.normalize = normalize
        self.mlp = mlp_head(in_dim, hidden_dim, num_segments * segment_dim, num_hidden_layers=1)

    def forward(self, features: Tensor) -> Tensor:
        series = self.mlp(features).view(-1, self.num_segments, self.segment_dim)  # (N, S, segment_dim)
        return F.normalize(series, dim=-1) if self.normalize else series
