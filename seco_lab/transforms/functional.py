"""Pure tensor operations on videos laid out ``(T, C, H, W)`` (uint8 in [0, 255] or float in [0, 1]).

Nothing here draws from torch's random generator; the one random operation,
``background_erase``, takes an explicit ``np.random.Generator``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _check_video(clip: torch.Tensor, name: str = "clip") -> None:
    if not isinstance(clip, torch.Tensor) or clip.ndim != 4:
        shape = tuple(clip.shape) if isinstance(clip, torch.Tensor) else type(clip).__name__
        raise ValueError(
            f"seco_lab/transforms/functional.py: {name} must be a (T, C, H, W) tensor, got {shape}"
        )


FLOAT_PIXEL_LIMIT = 1.5  # float pixels above this are taken for 0-255 values, not [0, 1] ones


def to_float01(clip: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` -> float32 ``[0, 1]``; a floating tensor is returned as float32 unchanged
    in value. Any shape. Float pixels far above 1 (0-255 values kept as floats) raise a
    ``ValueError`` instead of passing for [0, 1] ones."""
    if clip.dtype == torch.uint8:
        return clip.to(torch.float32).div_(255.0)
    if not clip.is_floating_point():
        raise TypeError(
            f"seco_lab/transforms/functional.py: expected uint8 or float pixels, got {clip.dtype}"
        )
    check_float_pixels(clip)
    return clip.to(torch.float32)


def check_float_pixels(clip: torch.Tensor) -> None:
    """Refuse float pixels far above 1: 0-255 values kept as floats, not [0, 1] ones."""
    if clip.numel() and float(clip.max()) > FLOAT_PIXEL_LIMIT:
        raise ValueError(
            f"seco_lab/transforms/functional.py: float pixels must be in [0, 1], got values up to "
            f"{float(clip.max()):g}: pass uint8 pixels, or divide 0-255 floats by 255"
        )


def normalize(clip: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean[c]) / std[c]`` per channel; channels are dim -3 (``(T, C, H, W)`` or
    ``(C, H, W)``). uint8 input is first scaled to [0, 1]. Returns float32 of the same shape."""
    pixels = to_float01(clip)
    num_channels = pixels.shape[-3]
    if len(mean) != num_channels or len(std) != num_channels:
        raise ValueError(
            f"seco_lab/transforms/functional.py: mean/std have {len(mean)}/{len(std)} entries, "
            f"clip has {num_channels} channels"
        )
    mean_t = torch.tensor(mean, dtype=pixels.dtype, device=pixels.device).view(-1, 1, 1)  # (C, 1, 1)
    std_t = torch.tensor(std, dtype=pixels.dtype, device=pixels.device).view(-1, 1, 1)  # (C, 1, 1)
    return (pixels - mean_t) / std_t


def frame_differences(clip: torch.Tensor) -> torch.Tensor:
    """Motion-only input: ``out[t] = x[t + 1] - x[t]``, ``(T, C, H, W) -> (T - 1, C, H, W)``.

    Pixels are scaled to [0, 1] first, so the result is float32 in [-1, 1]; anything that does
    not move (a static background) becomes exactly 0. A model that wants ``T`` difference frames
    must therefore decode ``T + 1`` frames (ask the sampler for ``clip_frames + 1``). Apply it
    after a clip-consistent augmentation — with per-frame augmentation the differences would
    mostly measure the augmentation — and before, or instead of, mean/std normalisation.
    """
    _check_video(clip)
    if clip.shape[0] < 2:
        raise ValueError(
            f"seco_lab/transforms/functional.py: frame_differences needs >= 2 frames, got {clip.shape[0]}"
        )
    pixels = to_float01(clip)
    return pixels[1:] - pixels[:-1]


def paired_frame_differences(frames: torch.Tensor) -> torch.Tensor:
    """Differences of frames read as ``(t, t + 1)`` pairs: ``(2T, C, H, W) -> (T, C, H, W)`` with
    ``out[i] = frames[2i + 1] - frames[2i]``, pixels scaled to [0, 1] first (as
    ``frame_differences``). The input of a 2D encoder on frame differences, one pair per frame."""
    _check_video(frames)
    if frames.shape[0] % 2:
        raise ValueError(
            f"seco_lab/transforms/functional.py: paired_frame_differences needs (t, t + 1) pairs, got "
            f"{frames.shape[0]} frames"
        )
    pairs = to_float01(frames).reshape(-1, 2, *frames.shape[1:])  # (T, 2, C, H, W)
    return pairs[:, 1] - pairs[:, 0]


def translation_search_radius(height: int, width: int) -> int:
    """The largest camera shift between two frames that ``estimate_translations`` looks for: one
    sixteenth of the shorter side, at least 2 px (4 px at 64 px)."""
    return max(2, math.ceil(min(height, width) / 16))


def estimate_translations(reference: torch.Tensor, moving: torch.Tensor, max_shift: int | None = None,
                          grid_step: int = 2) -> torch.Tensor:
    """Integer camera shifts ``(N, 2)`` (dy, dx) such that ``moving[n]`` at pixel (y, x) shows
    what ``reference[n]`` shows at (y - dy, x - dx), from frames ``(N, C, H, W)`` (uint8 or [0, 1]).

    Every shift within ``max_shift`` px in each direction (``translation_search_radius`` by
    default) is tried, and the one with the smallest absolute difference of grey levels summed
    over the frame's interior (``max_shift`` px in from each edge) wins; ties go to the smaller
    shift. The sum takes every ``grid_step``-th row and column of the interior: every shift is
    still tried, at a quarter of the cost for 2. The background, which fills most of a frame,
    decides: an absolute difference lets an object that moves on its own weigh by the area it
    covers, however bright it is, and a frame with no texture keeps the shift 0. Translation
    only: a camera that turns or zooms is undone as far as a shift can undo it.
    """
    _check_video(reference, "reference")
    if moving.shape != reference.shape:
        raise ValueError(f"seco_lab/transforms/functional.py: reference {tuple(reference.shape)} and moving "
                         f"{tuple(moving.shape)} frames differ in shape")
    height, width = reference.shape[-2:]
    radius = translation_search_radius(height, width) if max_shift is None else int(max_shift)
    radius = min(radius, (min(height, width) - 1) // 2)
    if grid_step < 1:
        raise ValueError(f"seco_lab/transforms/functional.py: grid_step must be at least 1, got {grid_step}")
    grey_reference, grey_moving = _grey_levels(reference), _grey_levels(moving)  # (N, H, W)
    rows, columns = slice(radius, height - radius, grid_step), slice(radius, width - radius, grid_step)
    interior = grey_reference[:, rows, columns]
    candidates = _shift_candidates(radius)
    costs = np.stack([
        np.abs(grey_moving[:, rows.start + dy:rows.stop + dy:grid_step, columns.start + dx:columns.stop + dx:grid_step]
               - interior).sum(axis=(1, 2))
        for dy, dx in candidates
    ], axis=1)  # (N, (2r + 1)^2)
    return torch.tensor(candidates, dtype=torch.long)[torch.from_numpy(costs.argmin(axis=1))]  # (N, 2)


@functools.lru_cache(maxsize=None)
def _shift_candidates(radius: int) -> tuple[tuple[int, int], ...]:
    """Every (dy, dx) within ``radius``, smaller shifts first (so ``argmin`` breaks ties towards
    them): by |dy| + |dx|, then by (dy, dx)."""
    shifts = ((dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1))
    return tuple(sorted(shifts, key=lambda shift: (abs(shift[0]) + abs(shift[1]), shift)))


def _grey_levels(frames: torch.Tensor) -> np.ndarray:
    """``(N, C, H, W)`` -> ``(N, H, W)`` numpy sums of the channels: int16 for uint8 frames (exact,
    and the fastest to compare), float32 for [0, 1] ones."""
    if frames.dtype == torch.uint8:
        return frames.numpy().astype(np.int16).sum(axis=1, dtype=np.int16)
    return to_float01(frames).numpy().sum(axis=1)


def shift_frames(frames: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """``out[n]`` at (y, x) = ``frames[n]`` at (y + dy, x + dx) for ``shifts[n] = (dy, dx)``: each
    frame moved back by its camera shift, the pixels that enter at the border copied from the
    nearest edge. ``(N, C, H, W)`` in, the same shape and dtype out."""
    _check_video(frames, "frames")
    shifts = torch.as_tensor(shifts, dtype=torch.long).reshape(-1, 2)
    if len(shifts) != len(frames):
        raise ValueError(f"seco_lab/transforms/functional.py: {len(shifts)} shifts for {len(frames)} frames")
    margin = int(shifts.abs().max()) if len(shifts) else 0
    if margin == 0:
        return frames.clone()
    height, width = frames.shape[-2:]
    padded = torch.nn.functional.pad(frames, (margin,) * 4, mode="replicate")  # (N, C, H+2m, W+2m)
    return torch.stack([padded[n, :, margin + dy:margin + dy + height, margin + dx:margin + dx + width]
                        for n, (dy, dx) in enumerate(shifts.tolist())])


def stabilize_pairs(frames: torch.Tensor, max_shift: int | None = None,
                    shifts: torch.Tensor | None = None) -> torch.Tensor:
    """Frames read as ``(t, t + 1)`` pairs, ``(2T, C, H, W)``, with each frame t + 1 moved back by
    the camera's shift from frame t (``estimate_translations``), so that a difference of the pair
    shows what moved in the scene rather than every edge the camera moved. Same shape and dtype.
    ``shifts``: the pairs' shifts ``(T, 2)`` when already known (then nothing is estimated)."""
    _check_video(frames, "frames")
    if frames.shape[0] % 2:
        raise ValueError(f"seco_lab/transforms/functional.py: stabilize_pairs needs (t, t + 1) pairs, got "
                         f"{frames.shape[0]} frames")
    pairs = frames.reshape(-1, 2, *frames.shape[1:])  # (T, 2, C, H, W)
    if shifts is None:
        shifts = estimate_translations(pairs[:, 0], pairs[:, 1], max_shift)
    return torch.stack([pairs[:, 0], shift_frames(pairs[:, 1], shifts)], dim=1).reshape(frames.shape)


def stabilize_clip(clip: torch.Tensor, max_shift: int | None = None,
                   steps: torch.Tensor | None = None) -> torch.Tensor:
    """A clip ``(T, C, H, W)`` with every frame moved into the first frame's view: the camera
    shifts between consecutive frames (``estimate_translations``) are summed and undone, so
    consecutive differences of the result show what moved in the scene. Same shape and dtype.
    ``steps``: those shifts ``(T - 1, 2)`` when already known (then nothing is estimated)."""
    _check_video(clip)
    if clip.shape[0] < 2:
        return clip.clone()
    if steps is None:
        steps = estimate_translations(clip[:-1], clip[1:], max_shift)  # (T - 1, 2)
    shifts = torch.cat([torch.zeros(1, 2, dtype=torch.long), steps.cumsum(dim=0)])  # (T, 2), frame 0 stays
    return shift_frames(clip, shifts)


def background_erase(
    clip: torch.Tensor,
    rng: np.random.Generator,
    alpha: float | tuple[float, float] = (0.0, 0.3),
) -> torch.Tensor:
    """Background erasing: mix one randomly chosen frame of the clip into every frame.

    ``out[t] = (1 - w) x[t] + w x[k]`` with ``k`` uniform over the clip's frames and weight
    ``w = alpha`` (a float) or ``w ~ U(alpha[0], alpha[1])`` (a range), both drawn from ``rng``.
    The added frame is static, so it changes appearance without adding motion: two clips of one
    video stop sharing an identical background, which removes the static-appearance shortcut
    contrastive learning otherwise takes. Keeps shape ``(T, C, H, W)`` and dtype (uint8 is
    rounded back).
    """
    _check_video(clip)
    low, high = (alpha, alpha) if isinstance(alpha, (int, float)) else alpha
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"seco_lab/transforms/functional.py: alpha must lie in [0, 1], got {alpha!r}")
    weight = float(rng.uniform(low, high)) if high > low else float(low)
    still_frame = int(rng.integers(0, clip.shape[0]))
    pixels = to_float01(clip)
    mixed = (1.0 - weight) * pixels + weight * pixels[still_frame : still_frame + 1]  # (T, C, H, W)
    if clip.dtype == torch.uint8:
        return mixed.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return mixed.to(clip.dtype)


def solarize(clip: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
    """Invert every pixel at or above ``threshold`` (``x -> max - x``). Default threshold is half
    the range: 128 for uint8, 0.5 for float in [0, 1]. Any shape; dtype kept."""
    if threshold is None:
        threshold = 128 if clip.dtype == torch.uint8 else 0.5
    bound = 255 if clip.dtype == torch.uint8 else 1.0
    return torch.where(clip >= threshold, bound - clip, clip)


def time_reverse(clip: torch.Tensor, time_dim: int = 0) -> torch.Tensor:
    """The clip played backwards along ``time_dim`` (0 for ``(T, C, H, W)``)."""
    return torch.flip(clip, dims=(time_dim,))


def _blur_matrix(size: int, kernel_size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """(size, size) matrix applying a 1-D Gaussian along one axis with reflect padding."""
    half = kernel_size // 2
    offsets = torch.arange(-half, half + 1, dtype=like.dtype, device=like.device)  # (K,)
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    weights = weights / weights.sum()
    positions = torch.arange(size, device=like.device).unsqueeze(1) + offsets.long()  # (size, K)
    positions = positions.abs()
    positions = torch.where(positions > size - 1, 2 * (size - 1) - positions, positions).clamp(0, size - 1)
    matrix = torch.zeros(size, size, dtype=like.dtype, device=like.device)
    return matrix.scatter_add_(1, positions, weights.expand(size, -1).contiguous())


def gaussian_blur(clip: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """Gaussian blur of every frame of ``(..., C, H, W)``, separable, with reflect padding — the
    same result as ``torchvision.transforms.v2.functional.gaussian_blur`` up to float rounding,
    computed as two matrix products ``B_h @ x @ B_w^T``, which on a CPU is several times faster
    than a depthwise convolution. uint8 input is blurred in float and rounded back."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"seco_lab/transforms/functional.py: kernel_size must be odd, got {kernel_size}")
    if not sigma > 0:
        raise ValueError(f"seco_lab/transforms/functional.py: sigma must be > 0, got {sigma}")
    pixels = clip if clip.is_floating_point() else clip.to(torch.float32)
    rows = _blur_matrix(pixels.shape[-2], kernel_size, sigma, pixels)  # (H, H)
    columns = _blur_matrix(pixels.shape[-1], kernel_size, sigma, pixels)  # (W, W)
    blurred = rows @ pixels @ columns.T  # (..., C, H, W)
    if clip.dtype == torch.uint8:
        return blurred.round_().clamp_(0, 255).to(torch.uint8)
    return blurred


def blur_kernel_size(crop_size: int, fraction: float = 0.1) -> int:
    """Odd Gaussian-blur kernel of about ``fraction`` of the crop side, at least 3
    (SimCLR's 10 %: 23 px at 224, 7 px at 56)."""
    size = max(3, int(round(crop_size * fraction)))
    return size if size % 2 == 1 else size + 1
