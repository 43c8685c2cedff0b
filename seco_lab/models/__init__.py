"""Frame (2D) and clip (3D) encoders and projection heads."""

from seco_lab.models.encoders2d import Encoder2D, build_encoder_2d, load_trunk_weights
from seco_lab.models.encoders3d import ENCODER_3D_ARCHS, Encoder3D, build_encoder_3d, count_parameters
from seco_lab.models.heads import SeriesHead, cvrl_head, dualvar_clip_head, mlp_head, seco_head

__all__ = [
    "ENCODER_3D_ARCHS",
    "Encoder2D",
    "Encoder3D",
    "SeriesHead",
    "build_encoder_2d",
    "build_encoder_3d",
    "count_parameters",
    "cvrl_head",
    "dualvar_clip_head",
    "load_trunk_weights",
    "mlp_head",
    "seco_head",
]
