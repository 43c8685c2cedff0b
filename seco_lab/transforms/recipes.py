"""Augmentation recipes of SeCo, CVRL and DualVar, and the deterministic evaluation transform.

Each recipe returns a ``VideoTransform``: a picklable callable taking a uint8 (or float in
[0, 1]) clip ``(T, C, H, W)`` and returning float32 ``(T, C, crop, crop)``. The recipes are
built on ``torchvision.transforms.v2``, which draws its random parameters once per call and
applies them to every frame of a ``(T, C, H, W)`` tensor. So ``mode="consistent"`` is one draw
for the whole clip, and ``mode="per_frame"`` calls the same pipeline frame by frame (an
independent draw per frame, CVRL's ablation). All random draws come from torch's global
generator, which the dataset seeds per item, so an item's views are reproducible.

Every parameter is named and defaults to the paper's value; the CPU profiles shrink
``crop_size`` (and the blur kernel follows it through ``blur_kernel_size``). Horizontal flips
are on by default as in the papers, but a flip turns "move left" into "move right": switch
``hflip`` off when the classes depend on direction.

Cost on a CPU: the hue part of colour jitter (an RGB -> HSV -> RGB round trip) takes most of
a clip's augmentation time (about 8 of 19 ms for an 8 x 3 x 56 x 56 clip on one thread);
``jitter=(b, c, s, 0.0)`` drops it. These small tensors run several times faster on one thread
than on two, which is what DataLoader workers use. ``run_pipeline`` executes a pipeline without
the per-call bookkeeping of ``Transform.forward`` (input flattening and checks, meant for
mixed images, boxes and masks), which is about half of a 56 px frame's augmentation time; it
makes the same random draws in the same order, so its output equals ``pipeline(clip)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from seco_lab.transforms.functional import (
    IMAGENET_MEAN, IMAGENET_STD, blur_kernel_size, check_float_pixels, gaussian_blur,
)

AugmentMode = Literal["consistent", "per_frame"]
AUGMENT_MODES: tuple[str, ...] = ("consistent", "per_frame")

Jitter = tuple[float, float, float, float]


class SeparableGaussianBlur(v2.Transform):
    """``v2.GaussianBlur`` drop-in (sigma uniform in ``sigma``, one draw per call, from torch's
    global generator) computed with ``functional.gaussian_blur`` — the same result, several times
    faster on a CPU than torchvision's depthwise convolution."""

    def __init__(self, kernel_size: int, sigma: tuple[float, float] = (0.1, 2.0)) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"seco_lab/transforms/recipes.py: blur kernel must be odd, got {kernel_size}")
        if not 0.0 < sigma[0] <= sigma[1]:
            raise ValueError(f"seco_lab/transforms/recipes.py: sigma must be (min, max) > 0, got {sigma}")
        self.kernel_size = kernel_size
        self.sigma = sigma

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"sigma": torch.empty(1).uniform_(self.sigma[0], self.sigma[1]).item()}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        blurred = gaussian_blur(inpt.as_subclass(torch.Tensor), self.kernel_size, params["sigma"])
        return tv_tensors.wrap(blurred, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else blurred


class ContiguousRandomResizedCrop(v2.RandomResizedCrop):
    """``v2.RandomResizedCrop`` (same random draws, same pixels) that copies a plain tensor's
    crop into contiguous memory before resizing it. The crop is a strided view, and torch's
    antialiased resize of a strided uint8 clip takes longer than copying the crop and resizing
    the copy together (about 1.3x for 9 x 3 x 64 x 64 clips cropped to 50-62 px and resized to
    56, one thread: ``benchmarks/bench_views.py``). Other inputs (tv_tensors, boxes) go through
    ``v2.RandomResizedCrop`` unchanged."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if type(inpt) is not torch.Tensor:
            return super().transform(inpt, params)
        crop = F.crop(inpt, params["top"], params["left"], params["height"], params["width"]).contiguous()
        return F.resize(crop, self.size, interpolation=self.interpolation, antialias=self.antialias)


_PLAIN_FORWARD = v2.Transform.forward  # make_params, then transform
_COIN_FORWARD = v2.RandomGrayscale.forward  # one torch.rand(1) < p draw, then as above


def run_pipeline(transform: v2.Transform, clip: torch.Tensor) -> torch.Tensor:
    """``transform(clip)`` for a plain tensor, with the same random draws in the same order.

    ``Compose`` and ``RandomApply`` are walked here; a transform that keeps ``Transform``'s own
    ``forward`` (optionally behind the coin of a ``RandomGrayscale``-style ``p``) is run as
    ``transform.transform(clip, transform.make_params([clip]))``; any other is simply called.
    """
    if isinstance(transform, (v2.Compose, v2.RandomApply)):
        if isinstance(transform, v2.RandomApply) and torch.rand(1) >= transform.p:
            return clip
        for step in transform.transforms:
            clip = run_pipeline(step, clip)
        return clip
    forward = type(transform).forward
    if forward is _COIN_FORWARD:
        if torch.rand(1) >= transform.p:
            return clip
    elif forward is not _PLAIN_FORWARD:
        return transform(clip)
    return transform.transform(clip, transform.make_params([clip]))


class VideoTransform:
    """Apply a ``torchvision.transforms.v2`` pipeline to a clip ``(T, C, H, W)`` or a single frame
    ``(C, H, W)``.

    ``mode="consistent"``: one random draw shared by all frames. ``mode="per_frame"``: an
    independent draw for every frame. Input uint8 or float in [0, 1]; output float32 with the
    pipeline's spatial size, same leading shape as the input. ``clamp01`` clips the output to
    [0, 1] (for un-normalised recipes, whose float arithmetic can overshoot by ~1e-7).
    """

    def __init__(self, pipeline: v2.Transform, mode: AugmentMode = "consistent", clamp01: bool = False) -> None:
        if mode not in AUGMENT_MODES:
            raise ValueError(
                f"seco_lab/transforms/recipes.py: unknown augment mode {mode!r}; "
                f"choose one of {', '.join(AUGMENT_MODES)}"
            )
        self.pipeline = pipeline
        self.mode = mode
        self.clamp01 = clamp01

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        if not isinstance(clip, torch.Tensor) or clip.ndim not in (3, 4):
            shape = tuple(clip.shape) if isinstance(clip, torch.Tensor) else type(clip).__name__
            raise ValueError(
                f"seco_lab/transforms/recipes.py: expected a (T, C, H, W) clip or (C, H, W) frame, got {shape}"
            )
        if clip.dtype != torch.uint8 and not clip.is_floating_point():
            raise TypeError(f"seco_lab/transforms/recipes.py: expected uint8 or float pixels, got {clip.dtype}")
        if clip.is_floating_point():
            check_float_pixels(clip)
        if clip.ndim == 3:
            return self._apply(clip.unsqueeze(0))[0]
        return self._apply(clip)

    def _apply(self, clip: torch.Tensor) -> torch.Tensor:
        if self.mode == "consistent":
            out = run_pipeline(self.pipeline, clip)
        else:
            out = torch.cat([run_pipeline(self.pipeline, clip[t : t + 1]) for t in range(clip.shape[0])])
        out = out.as_subclass(torch.Tensor)
        if out.dtype == torch.uint8:  # a pipeline without ToDtype: its pixels scaled to [0, 1] as documented
            out = out.to(torch.float32).div_(255.0)
        out = out.to(torch.float32)
        return out.clamp(0.0, 1.0) if self.clamp01 else out

    def __repr__(self) -> str:
        return f"VideoTransform(mode={self.mode!r}, clamp01={self.clamp01}, pipeline={self.pipeline!r})"


def _normalize_step(mean: Sequence[float] | None, std: Sequence[float] | None) -> list[v2.Transform]:
    if (mean is None) != (std is None):
        raise ValueError("seco_lab/transforms/recipes.py: give both mean and std, or neither")
    return [] if mean is None else [v2.Normalize(mean=list(mean), std=list(std))]


def _blur_step(crop_size: int, sigma: tuple[float, float], prob: float, kernel: int | None) -> list[v2.Transform]:
    if prob <= 0:
        return []
    size = blur_kernel_size(crop_size) if kernel is None else kernel
    return [v2.RandomApply([SeparableGaussianBlur(kernel_size=size, sigma=sigma)], p=prob)]


def _check_prob(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"seco_lab/transforms/recipes.py: {name} must be in [0, 1], got {value!r}")


def seco_frame_augment(
    crop_size: int = 224,
    scale: tuple[float, float] = (0.2, 1.0),
    jitter: Jitter = (0.4, 0.4, 0.4, 0.1),
    jitter_prob: float = 0.8,
    grayscale_prob: float = 0.2,
    blur_prob: float = 0.5,
    blur_sigma: tuple[float, float] = (0.1, 2.0),
    blur_kernel: int | None = None,
    hflip: bool = True,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] | None = IMAGENET_STD,
) -> VideoTransform:
    """SeCo's per-view augmentation (MoCo v2): RandomResizedCrop(``crop_size``, ``scale``),
    ColorJitter(``jitter`` = brightness, contrast, saturation, hue) with ``jitter_prob``, grayscale
    with ``grayscale_prob``, Gaussian blur (``blur_sigma``, kernel ~10 % of the crop) with
    ``blur_prob``, horizontal flip, ImageNet normalisation.

    A view is one frame: call it once per view, ``(1, C, H, W)`` or ``(C, H, W)`` uint8 ->
    float32 ``(1, C, crop, crop)`` / ``(C, crop, crop)``; each call is an independent draw.
    """
    for name, prob in (("jitter_prob", jitter_prob), ("grayscale_prob", grayscale_prob), ("blur_prob", blur_prob)):
        _check_prob(name, prob)
    steps: list[v2.Transform] = [
        ContiguousRandomResizedCrop(crop_size, scale=scale, antialias=True),
        v2.ToDtype(torch.float32, scale=True),
        v2.RandomApply([v2.ColorJitter(*jitter)], p=jitter_prob),
        v2.RandomGrayscale(p=grayscale_prob),
        *_blur_step(crop_size, blur_sigma, blur_prob, blur_kernel),
    ]
    if hflip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    steps += _normalize_step(mean, std)
    return VideoTransform(v2.Compose(steps), mode="consistent", clamp01=mean is None)


def cvrl_clip_augment(
    view: int,
    crop_size: int = 224,
    area: tuple[float, float] = (0.3, 1.0),
    aspect: tuple[float, float] = (0.5, 2.0),
    hflip: bool = True,
    jitter: Jitter = (0.8, 0.8, 0.8, 0.2),
    jitter_prob: float = 0.8,
    grayscale_prob: float = 0.2,
    blur_prob: float | None = None,
    blur_sigma: tuple[float, float] = (0.1, 2.0),
    blur_kernel: int | None = None,
    solarize_prob: float | None = None,
    mode: AugmentMode = "consistent",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> VideoTransform:
    """CVRL's clip augmentation for ``view`` 1 or 2.

    Crop of area fraction ``area`` and aspect ratio ``aspect`` resized to ``crop_size``;
    horizontal flip p=0.5; colour jitter with p=``jitter_prob`` — brightness, contrast and
    saturation factors in ``[1 - j, 1 + j]`` (default [0.2, 1.8]) and hue ±``jitter[3]`` (0.2),
    applied in random order; grayscale p=0.2; Gaussian blur sigma 0.1–2 with p=1.0 on view 1 and
    0.1 on view 2 (``blur_prob=None``); solarisation p=0.2 on view 2 only (``solarize_prob=None``).
    Output in [0, 1] (CVRL does no mean/std normalisation) unless ``mean``/``std`` are given.

    ``mode="consistent"`` (CVRL's key finding): one draw for every frame of the clip;
    ``mode="per_frame"``: an independent draw per frame (the ablation that does worse).
    uint8 ``(T, C, H, W)`` -> float32 ``(T, C, crop_size, crop_size)``.
    """
    if view not in (1, 2):
        raise ValueError(f"seco_lab/transforms/recipes.py: CVRL view must be 1 or 2, got {view!r}")
    blur_prob = (1.0 if view == 1 else 0.1) if blur_prob is None else blur_prob
    solarize_prob = (0.0 if view == 1 else 0.2) if solarize_prob is None else solarize_prob
    for name, prob in (
        ("jitter_prob", jitter_prob), ("grayscale_prob", grayscale_prob),
        ("blur_prob", blur_prob), ("solarize_prob", solarize_prob),
    ):
        _check_prob(name, prob)
    steps: list[v2.Transform] = [ContiguousRandomResizedCrop(crop_size, scale=area, ratio=aspect, antialias=True)]
    if hflip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    steps += [
        v2.ToDtype(torch.float32, scale=True),
        v2.RandomApply([v2.ColorJitter(*jitter)], p=jitter_prob),
        v2.RandomGrayscale(p=grayscale_prob),
        *_blur_step(crop_size, blur_sigma, blur_prob, blur_kernel),
    ]
    if solarize_prob > 0:
        steps.append(v2.RandomSolarize(threshold=0.5, p=solarize_prob))
    steps += _normalize_step(mean, std)
    return VideoTransform(v2.Compose(steps), mode=mode, clamp01=mean is None)


def dualvar_clip_augment(
    crop_size: int = 112,
    scale: tuple[float, float] = (0.2, 1.0),
    aspect: tuple[float, float] = (3 / 4, 4 / 3),
    hflip: bool = True,
    jitter: Jitter = (0.4, 0.4, 0.4, 0.1),
    jitter_prob: float = 0.8,
    blur_prob: float = 0.5,
    blur_sigma: tuple[float, float] = (0.1, 2.0),
    blur_kernel: int | None = None,
    mode: AugmentMode = "consistent",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> VideoTransform:
    """DualVar's clip augmentation: random resized crop to ``crop_size`` (112 in the paper),
    horizontal flip, colour jitter with ``jitter_prob``, Gaussian blur with ``blur_prob``; no
    grayscale. The crop scale, jitter strengths and probabilities are not given in the paper and
    are exposed defaults. ``mode`` as in ``cvrl_clip_augment`` (the paper is clip-consistent).
    Time reversal is a sampler decision (``samplers.dualvar_clips``), not part of this recipe.
    uint8 ``(T, C, H, W)`` -> float32 ``(T, C, crop_size, crop_size)`` in [0, 1] unless
    ``mean``/``std`` are given.
    """
    _check_prob("jitter_prob", jitter_prob)
    _check_prob("blur_prob", blur_prob)
    steps: list[v2.Transform] = [ContiguousRandomResizedCrop(crop_size, scale=scale, ratio=aspect, antialias=True)]
    if hflip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    steps += [
        v2.ToDtype(torch.float32, scale=True),
        v2.RandomApply([v2.ColorJitter(*jitter)], p=jitter_prob),
        *_blur_step(crop_size, blur_sigma, blur_prob, blur_kernel),
    ]
    steps += _normalize_step(mean, std)
    return VideoTransform(v2.Compose(steps), mode=mode, clamp01=mean is None)


def eval_transform(
    crop_size: int,
    resize_size: int | None = None,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] | None = IMAGENET_STD,
) -> VideoTransform:
    """Deterministic test-time transform: resize the shorter side to ``resize_size`` (default
    ``round(crop_size / 0.875)``, i.e. 256 for 224 and 64 for 56), centre crop ``crop_size``,
    scale to [0, 1], normalise with ``mean``/``std`` (pass ``None`` for encoders trained on [0, 1]
    input, such as CVRL's and DualVar's). uint8 ``(T, C, H, W)`` -> float32 ``(T, C, crop, crop)``.
    """
    resize_size = round(crop_size / 0.875) if resize_size is None else resize_size
    if resize_size < crop_size:
        raise ValueError(
            f"seco_lab/transforms/recipes.py: resize_size {resize_size} is smaller than crop_size {crop_size}"
        )
    steps: list[v2.Transform] = [
        v2.Resize(resize_size, antialias=True),
        v2.CenterCrop(crop_size),
        v2.ToDtype(torch.float32, scale=True),
        *_normalize_step(mean, std),
    ]
    return VideoTransform(v2.Compose(steps), mode="consistent", clamp01=mean is None)
