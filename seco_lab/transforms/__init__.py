"""Video augmentation: pure tensor ops (``functional``) and the methods' recipes (``recipes``)."""

from seco_lab.transforms.functional import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    background_erase,
    blur_kernel_size,
    frame_differences,
    paired_frame_differences,
    gaussian_blur,
    normalize,
    solarize,
    time_reverse,
    to_float01,
)
from seco_lab.transforms.recipes import (
    AUGMENT_MODES,
    ContiguousRandomResizedCrop,
    SeparableGaussianBlur,
    VideoTransform,
    cvrl_clip_augment,
    dualvar_clip_augment,
    eval_transform,
    run_pipeline,
    seco_frame_augment,
)

__all__ = [
    "AUGMENT_MODES",
    "ContiguousRandomResizedCrop",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SeparableGaussianBlur",
    "VideoTransform",
    "background_erase",
    "blur_kernel_size",
    "cvrl_clip_augment",
    "dualvar_clip_augment",
    "eval_transform",
    "frame_differences",
    "paired_frame_differences",
    "gaussian_blur",
    "normalize",
    "run_pipeline",
    "seco_frame_augment",
    "solarize",
    "time_reverse",
    "to_float01",
]
