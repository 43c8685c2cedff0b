"""Losses of SeCo, CVRL and DualVar (one per module)."""

from seco_lab.losses.info_nce import InfoNCELoss
from seco_lab.losses.intra_frame import IntraFrameLoss
from seco_lab.losses.ntxent import NTXentLoss
from seco_lab.losses.order import OrderLoss
from seco_lab.losses.shuffle_rank import ShuffleRankLoss
from seco_lab.losses.temporal_coherent import TemporalCoherentLoss

__all__ = [
    "InfoNCELoss",
    "IntraFrameLoss",
    "NTXentLoss",
    "OrderLoss",
    "ShuffleRankLoss",
    "TemporalCoherentLoss",
]
