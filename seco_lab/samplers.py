"""Frame-index samplers for SeCo, CVRL, DualVar and evaluation.

Every sampler is a pure function of a video's frame count and an ``np.random.Generator``; it
returns frame *indices* (``np.ndarray`` of ``int64``) and never decodes anything. Decoding the
indices is the dataset's job (``VideoSource.read``). Thin dataclass wrappers (``SeCoTripletSampler``,
``TemporalIntervalSampler``, ``DualVarClipSampler``) bind the hyperparameters so a method can keep
one callable ``sampler(num_frames, rng)``.

Conventions
-----------
* A clip of ``clip_frames`` frames at ``stride`` starting at ``start`` covers the indices
  ``start, start + stride, ..., start + (clip_frames - 1) * stride``.
* ``M = num_frames - (clip_frames - 1) * stride`` is the number of valid start positions
  (starts ``0 .. M - 1`` keep the whole clip inside the video).
* A video with ``M < 1`` is too short for one clip: its start is drawn uniformly in
  ``[0, num_frames)`` and the indices wrap around (taken modulo ``num_frames``), as CVRL does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

GapDistribution = Literal["decreasing", "uniform", "increasing"]
GAP_DISTRIBUTIONS: tuple[str, ...] = ("decreasing", "uniform", "increasing")

_BISECTION_STEPS = 60


def _check_positive(name: str, value: int) -> None:
    if int(value) != value or value < 1:
        raise ValueError(f"seco_lab/samplers.py: {name} must be a positive integer, got {value!r}")


def _check_rng(rng: object) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"seco_lab/samplers.py: rng must be a numpy Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")


def _check_clip_args(num_frames: int, clip_frames: int, stride: int) -> None:
    _check_positive("num_frames", num_frames)
    _check_positive("clip_frames", clip_frames)
    _check_positive("stride", stride)


def num_clip_starts(num_frames: int, clip_frames: int, stride: int) -> int:
    """Number of start positions ``M = num_frames - (clip_frames - 1) * stride`` that keep a
    clip inside the video (``<= 0`` when the video is too short for one clip)."""
    _check_clip_args(num_frames, clip_frames, stride)
    return num_frames - (clip_frames - 1) * stride


def clip_indices(start: int, clip_frames: int, stride: int, num_frames: int) -> np.ndarray:
    """Indices ``(clip_frames,)`` of the clip starting at ``start``, wrapped modulo ``num_frames``
    (the wrap only matters for videos shorter than the clip's span)."""
    _check_clip_args(num_frames, clip_frames, stride)
    offsets = np.arange(clip_frames, dtype=np.int64) * stride
    return (int(start) + offsets) % num_frames


def random_clip_indices(
    num_frames: int, clip_frames: int, stride: int, rng: np.random.Generator
) -> np.ndarray:
    """One clip ``(clip_frames,)`` at a uniformly random valid start; videos too short for one
    clip get a uniform start in ``[0, num_frames)`` and wrapped indices."""
    _check_rng(rng)
    max_offset = num_clip_starts(num_frames, clip_frames, stride)
    start_range = max_offset if max_offset >= 1 else num_frames
    start = int(rng.integers(0, start_range))
    return clip_indices(start, clip_frames, stride, num_frames)


# --------------------------------------------------------------------------------------------
# SeCo
# --------------------------------------------------------------------------------------------


def seco_frame_triplet(num_frames: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Sample SeCo's anchor and ordered pair of frames, and the order label.

    SeCo (Yao et al., AAAI 2021) splits the video into two halves and draws ``order`` uniformly
    from {0, 1}. ``order == 0``: the anchor ``a`` is uniform in the first half and ``b``, ``c``
    are drawn independently and uniformly in the second half; ``order == 1``: ``a`` in the second
    half, ``b``, ``c`` in the first. ``b`` and ``c`` are then swapped so that ``b <= c`` (they may
    be equal). The order classifier learns to tell which half the anchor came from.

    The first half is ``[0, num_frames // 2)`` and the second ``[num_frames // 2, num_frames)``
    (an odd frame count gives the extra frame to the second half).

    Very short videos: with ``num_frames == 1`` both halves are the single frame 0, so the
    triplet is ``[0, 0, 0]`` and ``order`` is still drawn (a label the network cannot predict;
    index such videos out with ``min_frames``). ``num_frames == 2`` and ``3`` follow the rule
    above (halves ``[0]/[1]`` and ``[0]/[1, 2]``).

    Returns ``(np.array([a, b, c]) int64 (3,), order)``.
    """
    _check_rng(rng)
    _check_positive("num_frames", num_frames)
    order = int(rng.integers(0, 2))
    if num_frames == 1:
        return np.zeros(3, dtype=np.int64), order
    half = num_frames // 2
    first_half, second_half = (0, half), (half, num_frames)
    anchor_half, pair_half = (first_half, second_half) if order == 0 else (second_half, first_half)
    anchor = rng.integers(*anchor_half)
    pair = np.sort(rng.integers(*pair_half, size=2))
    return np.array([anchor, pair[0], pair[1]], dtype=np.int64), order


# --------------------------------------------------------------------------------------------
# CVRL temporal interval sampler
# --------------------------------------------------------------------------------------------


def _check_gap_args(power: float, distribution: str) -> None:
    if distribution not in GAP_DISTRIBUTIONS:
        raise ValueError(
            f"seco_lab/samplers.py: unknown gap distribution {distribution!r}; "
            f"choose one of {', '.join(GAP_DISTRIBUTIONS)}"
        )
    if not power > 0:
        raise ValueError(f"seco_lab/samplers.py: power must be > 0, got {power!r}")


def _decreasing_cdf(t: np.ndarray | float, power: float) -> np.ndarray | float:
    """CDF on [0, 1] of the density ``((p+1)/p) (1 - t^p)``: ``((p+1)/p) t - t^(p+1) / p``."""
    return ((power + 1.0) / power) * t - t ** (power + 1.0) / power


def _decreasing_inverse_cdf(u: float, power: float) -> float:
    """Inverse of ``_decreasing_cdf``: closed form for ``p == 1``, bisection otherwise."""
    if power == 1.0:
        return 1.0 - float(np.sqrt(1.0 - u))
    low, high = 0.0, 1.0
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (low + high)
        if _decreasing_cdf(mid, power) < u:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def interval_gap_density(
    d: np.ndarray | float,
    max_offset: int,
    power: float = 1.0,
    distribution: GapDistribution = "decreasing",
) -> np.ndarray:
    """Normalised density of CVRL's continuous start gap ``d`` on ``[0, M]`` (``M = max_offset``).

    * ``"decreasing"`` (CVRL's choice): ``f(d) = (p+1)/(p M) * (1 - (d/M)^p)`` — the paper's
      ``-t^p + c`` family; ``p = 1`` is the official default (linear decreasing).
    * ``"uniform"``: ``f(d) = 1/M``.
    * ``"increasing"``: the mirror image of "decreasing", ``f(d) = (p+1)/(p M) * (1 - (1 - d/M)^p)``
      (for ``p = 1`` this is ``∝ d``, the paper's increasing ablation).

    Zero outside ``[0, M]``. Shape follows ``d``. Intended for plots next to sampled histograms.
    """
    _check_gap_args(power, distribution)
    _check_positive("max_offset", max_offset)
    t = np.asarray(d, dtype=np.float64) / max_offset
    inside = (t >= 0) & (t <= 1)
    t = np.clip(t, 0.0, 1.0)
    if distribution == "uniform":
        shape = np.ones_like(t)
    else:
        mirrored = t if distribution == "decreasing" else 1.0 - t
        shape = (power + 1.0) / power * (1.0 - mirrored**power)
    return np.where(inside, shape / max_offset, 0.0)


def interval_gap_pmf(
    max_offset: int, power: float = 1.0, distribution: GapDistribution = "decreasing"
) -> np.ndarray:
    """Exact probabilities ``(M,)`` of the integer gaps ``0 .. M - 1`` returned by ``interval_gap``:
    ``P(k) = F((k + 1)/M) - F(k/M)`` with ``F`` the CDF of ``interval_gap_density``."""
    _check_gap_args(power, distribution)
    _check_positive("max_offset", max_offset)
    edges = np.arange(max_offset + 1, dtype=np.float64) / max_offset
    if distribution == "uniform":
        cdf = edges
    elif distribution == "decreasing":
        cdf = _decreasing_cdf(edges, power)
    else:
        cdf = 1.0 - _decreasing_cdf(1.0 - edges, power)
    return np.diff(cdf)


def interval_gap(
    max_offset: int,
    rng: np.random.Generator,
    power: float = 1.0,
    distribution: GapDistribution = "decreasing",
) -> int:
    """Draw CVRL's gap between the two clips' start frames.

    ``max_offset`` is ``M = L - (n - 1) s``, the number of valid clip starts of a video of ``L``
    frames for clips of ``n`` frames at stride ``s``, so a gap lies in ``0 .. M - 1``.
    A continuous gap ``d`` is drawn from ``interval_gap_density`` on ``[0, M]`` by inverse-CDF
    sampling (CVRL, Qian et al. CVPR 2021: for ``p = 1``, ``d = M (1 - sqrt(1 - u))``; other ``p``
    invert ``CDF(k) = ((p+1)/p)(k/M) - (k/M)^(p+1)/p`` by bisection) and floored to an integer
    (``P(k)`` is ``interval_gap_pmf``). ``"increasing"`` draws the mirror ``M - d``.
    """
    _check_rng(rng)
    _check_gap_args(power, distribution)
    _check_positive("max_offset", max_offset)
    u = float(rng.random())
    if distribution == "uniform":
        t = u
    else:
        t = _decreasing_inverse_cdf(u, power)
        if distribution == "increasing":
            t = 1.0 - t
    return min(int(np.floor(t * max_offset)), max_offset - 1)


def cvrl_clip_pair(
    num_frames: int,
    clip_frames: int,
    stride: int,
    rng: np.random.Generator,
    power: float = 1.0,
    distribution: GapDistribution = "decreasing",
) -> tuple[np.ndarray, np.ndarray]:
    """Sample CVRL's two positive clips of one video.

    CVRL's temporal interval sampler: draw the start gap ``d`` with ``interval_gap`` (decreasing
    density by default: nearby clips are more often positives), put the first start uniformly
    in ``0 .. M - 1 - d`` and the second at ``first + d``, then swap the two clips with
    probability 1/2 so neither view is systematically the earlier one. Videos too short for one
    clip (``M < 1``): both starts uniform in ``[0, L)`` and indices wrap around modulo ``L``.

    Returns two index arrays ``(clip_frames,)`` int64.
    """
    _check_rng(rng)
    max_offset = num_clip_starts(num_frames, clip_frames, stride)
    if max_offset < 1:
        starts = rng.integers(0, num_frames, size=2)
    else:
        gap = interval_gap(max_offset, rng, power=power, distribution=distribution)
        first = int(rng.integers(0, max_offset - gap))
        starts = np.array([first, first + gap])
        if rng.random() < 0.5:
            starts = starts[::-1]
    return (
        clip_indices(int(starts[0]), clip_frames, stride, num_frames),
        clip_indices(int(starts[1]), clip_frames, stride, num_frames),
    )


# --------------------------------------------------------------------------------------------
# DualVar
# --------------------------------------------------------------------------------------------


def dualvar_clips(
    num_frames: int,
    clip_frames: int,
    stride: int,
    rng: np.random.Generator,
    reverse_prob: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Sample DualVar's clips v0 and v1 of one video, and whether they are time-reversed.

    DualVar (Zhang et al., BMVC 2021): v0 and v1 sit at independent uniformly random positions;
    with probability ``reverse_prob`` all clips of the video are reversed in time together, so
    both index arrays are returned reversed. The third view v2 is v0's frames augmented
    again, so it needs no indices of its own. Short videos wrap around as in ``cvrl_clip_pair``.

    Returns ``(v0 (clip_frames,), v1 (clip_frames,), reversed)``.
    """
    _check_rng(rng)
    if not 0.0 <= reverse_prob <= 1.0:
        raise ValueError(f"seco_lab/samplers.py: reverse_prob must be in [0, 1], got {reverse_prob!r}")
    first = random_clip_indices(num_frames, clip_frames, stride, rng)
    second = random_clip_indices(num_frames, clip_frames, stride, rng)
    is_reversed = bool(rng.random() < reverse_prob)
    if is_reversed:
        first, second = first[::-1].copy(), second[::-1].copy()
    return first, second, is_reversed


def segment_permutation(
    num_segments: int, rng: np.random.Generator, derangement: bool = True
) -> np.ndarray:
    """Random order ``perm (S,)`` of a clip's ``S`` temporal segments for DualVar's shuffle-rank.

    ``perm[j]`` is the original segment placed in slot ``j`` of the shuffled clip.

    With ``derangement=True`` (default) the permutation has no fixed point (every segment moves,
    so it is never the identity), drawn uniformly among derangements by rejection. Why: DualVar's
    shuffle-rank loss asks each calibrated slot of the shuffled clip to match the same temporal
    position of the unshuffled clip rather than the other positions. A uniformly random
    permutation is the identity with probability ``1/S!`` — half the time for DualVar's
    ``S = 2`` — and then the "shuffled" clip is the original frames in the original order: the
    pair is trivially aligned and teaches nothing about temporal order. ``derangement=False``
    gives a uniform permutation, as the official code does.
    """
    _check_rng(rng)
    _check_positive("num_segments", num_segments)
    if derangement and num_segments == 1:
        raise ValueError(
            "seco_lab/samplers.py: one segment has no derangement; use num_segments >= 2 "
            "or derangement=False"
        )
    while True:
        perm = rng.permutation(num_segments).astype(np.int64)
        if not derangement or not np.any(perm == np.arange(num_segments)):
            return perm


def shuffle_segments(clip: torch.Tensor, perm: np.ndarray | torch.Tensor, time_dim: int) -> torch.Tensor:
    """Cut ``clip`` into ``S`` segments along ``time_dim`` and reorder them.

    ``clip`` is e.g. ``(C, T, H, W)`` with ``time_dim=1`` or ``(T, C, H, W)`` with ``time_dim=0``.
    With ``perm (S,)``, segment ``perm[j]`` of the input becomes segment ``j`` of the output.
    ``perm`` may also be ``(N, S)``, one permutation per row of a batch ``clip`` whose dim 0 is
    ``N`` (``time_dim`` then another dim, e.g. 2 for ``(N, C, T, H, W)``). ``T`` need not be a
    multiple of ``S`` (segment lengths then differ by at most one, as ``torch.tensor_split``).
    Returns a tensor of the same shape.
    """
    perm_t = torch.as_tensor(perm, dtype=torch.long).cpu()
    time_dim = time_dim % clip.ndim
    num_segments = perm_t.shape[-1] if perm_t.ndim else 0
    identity = torch.arange(num_segments)
    if perm_t.ndim not in (1, 2) or not bool((perm_t.sort(dim=-1).values == identity).all()):
        raise ValueError(f"seco_lab/samplers.py: perm must be a permutation of 0..S-1 (in every row), "
                         f"got {perm_t.tolist()}")
    if clip.shape[time_dim] < num_segments:
        raise ValueError(
            f"seco_lab/samplers.py: cannot cut {clip.shape[time_dim]} frames into {num_segments} segments"
        )
    if perm_t.ndim == 1:
        segments = torch.tensor_split(clip, num_segments, dim=time_dim)
        return torch.cat([segments[i] for i in perm_t.tolist()], dim=time_dim)
    if time_dim == 0 or perm_t.shape[0] != clip.shape[0]:
        raise ValueError(
            "seco_lab/samplers.py: a batched perm (N, S) needs a clip with N rows in dim 0 and time in "
            f"another dim; got perm {tuple(perm_t.shape)}, clip {tuple(clip.shape)}, time_dim {time_dim}"
        )
    distinct, row_group = torch.unique(perm_t, dim=0, return_inverse=True)  # rows sharing a permutation
    if len(distinct) == 1:  # one permutation for all rows (always so with S = 2 and derangements)
        return shuffle_segments(clip, distinct[0], time_dim)
    shuffled = torch.empty_like(clip)
    for group, order in enumerate(distinct):
        rows = (row_group == group).nonzero().flatten().to(clip.device)
        shuffled[rows] = shuffle_segments(clip[rows], order, time_dim)
    return shuffled


def calibrate(
    series: torch.Tensor, perm: np.ndarray | torch.Tensor, segment_dim: int = -2
) -> torch.Tensor:
    """Undo a segment shuffle on per-segment outputs (DualVar's "calibration").

    ``series`` holds one output per slot of a shuffled clip along ``segment_dim`` — e.g. the
    series head's ``(N, S, D)`` or ``(S, D)`` (default ``segment_dim=-2``), or ``(S, ...)`` with
    ``segment_dim=0``. Slot ``j`` came from original segment ``perm[j]``; the result puts it back
    at position ``perm[j]``, so ``calibrate(f(shuffle_segments(x, perm)), perm)`` lines up with
    ``f(x)`` segment by segment. ``perm`` is ``(S,)`` for all rows, or ``(N, S)`` — one
    permutation per row of a batched ``series`` whose dim 0 is ``N``.
    """
    perm_t = torch.as_tensor(np.asarray(perm), dtype=torch.long, device=series.device)
    dim = segment_dim % series.ndim
    num_segments = series.shape[dim]
    if perm_t.shape[-1] != num_segments:
        raise ValueError(
            f"seco_lab/samplers.py: perm has {perm_t.shape[-1]} segments, series has {num_segments} "
            f"along dim {segment_dim}"
        )
    identity = torch.arange(num_segments, device=perm_t.device)
    if not bool((perm_t.sort(dim=-1).values == identity).all()):
        raise ValueError(f"seco_lab/samplers.py: perm must be a permutation of 0..{num_segments - 1} (in every row), "
                         f"got {perm_t.tolist()}")
    inverse = torch.argsort(perm_t, dim=-1)
    if perm_t.ndim == 1:
        return series.index_select(dim, inverse)
    if perm_t.ndim != 2 or dim == 0 or perm_t.shape[0] != series.shape[0]:
        raise ValueError(
            "seco_lab/samplers.py: a batched perm (N, S) needs series with N rows in dim 0 and "
            f"segments in another dim; got perm {tuple(perm_t.shape)}, series {tuple(series.shape)}"
        )
    index_shape = [1] * series.ndim
    index_shape[0], index_shape[dim] = perm_t.shape
    index = inverse.reshape(index_shape).expand_as(series)
    return torch.gather(series, dim, index)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def tsn_segment_indices(
    num_frames: int, num_segments: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """TSN sampling: cut the video into ``num_segments`` equal spans and take one frame of each.

    With ``rng`` (training) the frame is uniform within its span; with ``rng=None`` (testing) it
    is the span's centre. Videos shorter than ``num_segments`` repeat frames. Returns
    ``(num_segments,)`` int64, non-decreasing.
    """
    _check_positive("num_frames", num_frames)
    _check_positive("num_segments", num_segments)
    span = num_frames / num_segments
    position = np.full(num_segments, 0.5) if rng is None else rng.random(num_segments)
    indices = np.floor(span * (np.arange(num_segments) + position)).astype(np.int64)
    return np.clip(indices, 0, num_frames - 1)


def evenly_spaced_frames(num_frames: int, n: int) -> np.ndarray:
    """``n`` frame indices ``(n,)`` at the centres of ``n`` equal spans (SeCo's linear protocol
    uses 30 per video). Deterministic; repeats frames when ``n > num_frames``."""
    _check_positive("n (frames to take)", n)
    return tsn_segment_indices(num_frames, n, rng=None)


def uniform_clip_starts(num_frames: int, clip_frames: int, stride: int, num_clips: int) -> np.ndarray:
    """Start frames ``(num_clips,)`` of ``num_clips`` evenly spaced clips (multi-clip testing):
    spread from the first to the last valid start (one clip: the middle start); all 0 when the
    video is too short for one clip."""
    _check_positive("num_clips", num_clips)
    max_offset = num_clip_starts(num_frames, clip_frames, stride)
    if max_offset <= 1:
        return np.zeros(num_clips, dtype=np.int64)
    if num_clips == 1:
        return np.array([(max_offset - 1) // 2], dtype=np.int64)
    return np.round(np.linspace(0, max_offset - 1, num_clips)).astype(np.int64)


def uniform_clip_indices(
    num_frames: int, clip_frames: int, stride: int, num_clips: int
) -> list[np.ndarray]:
    """Index arrays of ``num_clips`` evenly spaced clips, each ``(clip_frames,)`` (see
    ``uniform_clip_starts``); short videos wrap around modulo ``num_frames``."""
    return [
        clip_indices(int(start), clip_frames, stride, num_frames)
        for start in uniform_clip_starts(num_frames, clip_frames, stride, num_clips)
    ]


# --------------------------------------------------------------------------------------------
# Thin wrappers: hyperparameters bound once, ``sampler(num_frames, rng)`` per video
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeCoTripletSampler:
    """``seco_frame_triplet`` as a callable: ``sampler(num_frames, rng) -> (indices (3,), order)``."""

    def __call__(self, num_frames: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        return seco_frame_triplet(num_frames, rng)


@dataclass(frozen=True)
class TemporalIntervalSampler:
    """``cvrl_clip_pair`` with bound parameters: ``sampler(num_frames, rng) -> (idx1, idx2)``."""

    clip_frames: int
    stride: int = 1
    power: float = 1.0
    distribution: GapDistribution = "decreasing"

    def __post_init__(self) -> None:
        _check_positive("clip_frames", self.clip_frames)
        _check_positive("stride", self.stride)
        _check_gap_args(self.power, self.distribution)

    def __call__(self, num_frames: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return cvrl_clip_pair(
            num_frames, self.clip_frames, self.stride, rng, power=self.power, distribution=self.distribution
        )


@dataclass(frozen=True)
class DualVarClipSampler:
    """``dualvar_clips`` with bound parameters: ``sampler(num_frames, rng) -> (v0, v1, reversed)``."""

    clip_frames: int
    stride: int = 1
    reverse_prob: float = 0.5

    def __post_init__(self) -> None:
        _check_positive("clip_frames", self.clip_frames)
        _check_positive("stride", self.stride)
        if not 0.0 <= self.reverse_prob <= 1.0:
            raise ValueError(f"seco_lab/samplers.py: reverse_prob must be in [0, 1], got {self.reverse_prob!r}")

    def __call__(self, num_frames: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool]:
        return dualvar_clips(num_frames, self.clip_frames, self.stride, rng, reverse_prob=self.reverse_prob)


@dataclass(frozen=True)
class TSNSampler:
    """``tsn_segment_indices`` with bound parameters; ``train=False`` takes segment centres."""

    num_segments: int
    train: bool = True

    def __call__(self, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        return tsn_segment_indices(num_frames, self.num_segments, rng if self.train else None)
