"""The embedded dataset: procedurally generated action videos whose classes are motions.

Every video shows one *target* object on a textured background with a few smaller
*distractor* objects. The class is the way the target moves; nothing else is.

Classes and what they teach
---------------------------
* Time-reversal pairs (``reversal_pairs()``): ``SlideRight`` is ``SlideLeft`` played
  backwards, ``Shrink`` is ``Grow`` backwards, ``OrbitCounterclockwise`` is
  ``OrbitClockwise`` backwards (and ``Fall`` is ``Rise`` backwards). The target
  trajectories of the second class are *exactly* the trajectories of the first, reversed in
  time, so any single frame (and any order-blind pooling of frames) has the same
  distribution in both classes: only temporal order separates them.
* Horizontal-flip pairs (``horizontal_flip_pairs()``): a left-right flip turns
  ``SlideLeft`` into ``SlideRight`` and a clockwise orbit into a counter-clockwise one. A
  method that uses flips as augmentation is trained to ignore what these classes need.
* Manner-of-motion classes: ``Bounce`` (parabolic arcs off a floor) and ``ZigZag``
  (horizontal travel on a triangle wave) differ from the slides in *how* the object moves,
  and are unchanged by time reversal and by horizontal flips.

Nuisances (not the label)
-------------------------
Per *group* (one scene, as the clips of one UCF101 group share a scene): background texture
and colours, target shape, colour and size, distractor shapes, colours and sizes. A group's
scene is drawn from ``(seed, group)`` only and is shared by every class, so appearance
carries no information about the class, and the test groups' scenes are never seen in
training. Per *clip*: length, start position, speed and easing, path size, target spin,
distractor paths, camera pan and jitter, brightness and pixel noise.

Files written by ``generate_dataset(root, preset, seed)``
---------------------------------------------------------
UCF101 layout (split 1 only)::

    root/<Class>/v_<Class>_gGG_cCC.mp4           H.264, frame_size x frame_size, fps frames/s
    root/ucfTrainTestlist/classInd.txt            "1 Bounce" ... (1-based, classes sorted)
    root/ucfTrainTestlist/trainlist01.txt         "Bounce/v_Bounce_g01_c01.mp4 1"  groups 1..num_train_groups
    root/ucfTrainTestlist/testlist01.txt          "Bounce/v_Bounce_g19_c01.mp4"    the remaining groups
    root/synth_manifest.json                      preset, seed, config, counts, generator version

Tracking subset, OTB layout::

    root/tracking/<SeqName>/img/0001.jpg ...      RGB JPEG frames, tracking_size x tracking_size
    root/tracking/<SeqName>/groundtruth_rect.txt  one "x,y,w,h" line per frame: the target's tight
                                                  box, OTB convention (1-based pixel coordinates:
                                                  x, y = column, row of the top-left pixel + 1;
                                                  w, h = width and height in pixels, integers)

A tracking sequence has one target (two-tone, drawn on top) moving along a smooth random
path over a textured background, and distractors of similar size but another shape and
colour crossing the frame. The dataset is written into a temporary folder next to ``root``
and renamed when complete; a complete dataset with the same generator version, preset
configuration and seed is reused as it is.

Everything is a pure function of the seed: scenes come from ``rng([seed, 0, group])``,
clips from ``rng([seed, 1, class_id, group, clip])``, tracking sequences from
``rng([seed, 2, index])``, so the frames do not depend on the number of worker processes, and
the encoded files are the same bytes in every generation (see ``write_video``).
"""

from __future__ import annotations

import colorsys
import functools
import json
import math
import os
import re
import secrets
import shutil
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from seco_lab.video.io import write_video
from seco_lab.video.parallel import results_in_order

__all__ = [
    "GENERATOR_VERSION", "MANIFEST_NAME", "SHAPES", "CLASS_DESCRIPTIONS", "SYNTH_PRESETS",
    "SynthConfig", "SynthDatasetError", "ObjectStyle", "Scene", "RenderedClip", "RenderedTrackingSequence",
    "reversal_pairs", "horizontal_flip_pairs", "get_synth_config", "draw_scene", "render_clip",
    "render_video", "group_scene", "render_dataset_clip", "TargetMotion", "dataset_clip_target",
    "manifest_config", "video_target", "render_tracking_sequence", "tracking_sequence_name",
    "generate_dataset", "read_manifest",
]

GENERATOR_VERSION = 1
MANIFEST_NAME = "synth_manifest.json"
SPLIT_DIR = "ucfTrainTestlist"
TRACKING_DIR = "tracking"
# Reference frame size: every pixel quantity below is given at 64 px and scaled with the frame.
REFERENCE_SIZE = 64.0
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring", "hexagon")

_SCENE_STREAM, _CLIP_STREAM, _TRACKING_STREAM = 0, 1, 2


class SynthDatasetError(RuntimeError):
    """The output folder holds something other than the requested dataset, or a bad request."""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SynthConfig:
    """Every knob of the generator. Pixel ranges are given at 64 px and scale with the frame.

    ``min_frames``/``max_frames``: clip length range (inclusive). Groups ``1..num_train_groups``
    form the training split, the remaining groups the test split. ``noise_std`` is the range of
    the per-clip Gaussian pixel noise (0-255 scale); ``camera_jitter`` the per-frame camera shake
    (std, px); ``camera_pan`` the largest camera drift over a clip (px).
    """

    classes: tuple[str, ...]
    num_groups: int
    num_train_groups: int
    clips_per_group: int
    frame_size: int = 64
    fps: float = 25.0
    min_frames: int = 24
    max_frames: int = 40
    target_radius: tuple[float, float] = (5.5, 7.5)
    min_distractors: int = 1
    max_distractors: int = 2
    distractor_scale: tuple[float, float] = (0.5, 0.8)
    noise_std: tuple[float, float] = (2.0, 6.0)
    camera_jitter: float = 0.5
    camera_pan: float = 3.0
    tracking_sequences: int = 8
    tracking_frames: int = 60
    tracking_size: int = 128
    tracking_distractors: int = 3

    def __post_init__(self) -> None:
        unknown = [name for name in self.classes if name not in _CLASS_SPECS]
        if unknown:
            raise SynthDatasetError(f"unknown synth classes {unknown}: known classes are {sorted(_CLASS_SPECS)}")
        if len(set(self.classes)) != len(self.classes) or not self.classes:
            raise SynthDatasetError(f"classes must be distinct and non-empty, got {self.classes}")
        if not 1 <= self.num_train_groups < self.num_groups:
            raise SynthDatasetError(
                f"need 1 <= num_train_groups < num_groups so both splits have groups, "
                f"got {self.num_train_groups} of {self.num_groups}"
            )
        if self.num_groups > 99 or self.clips_per_group > 99 or self.clips_per_group < 1:
            raise SynthDatasetError("num_groups and clips_per_group must fit the gGG/cCC names (1..99)")
        if not 2 <= self.min_frames <= self.max_frames:
            raise SynthDatasetError(f"need 2 <= min_frames <= max_frames, got {self.min_frames}..{self.max_frames}")
        if self.frame_size < 32 or self.tracking_size < 32:
            raise SynthDatasetError("frame_size and tracking_size must be at least 32 px")
        if self.min_distractors > self.max_distractors:
            raise SynthDatasetError("min_distractors must not exceed max_distractors")

    @property
    def scale(self) -> float:
        """Frame size relative to the 64 px reference."""
        return self.frame_size / REFERENCE_SIZE

    def to_json(self) -> dict:
        """The configuration as JSON-compatible values (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))


# --------------------------------------------------------------------------------------------
# Classes: each maps (rng, num_frames, frame_size, radius) to target centres (T, 2) (x, y in
# px) and a radius multiplier (T,). A class with ``reverse_of`` plays its partner backwards.
# --------------------------------------------------------------------------------------------
MotionFn = Callable[[np.random.Generator, int, int, float], tuple[np.ndarray, np.ndarray]]


def _progress(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """Monotone progress 0 -> 1 over the clip, (T,): a random mix of constant speed and ease-in-out."""
    s = np.linspace(0.0, 1.0, num_frames)
    ease = rng.uniform(0.0, 1.0)
    return (1.0 - ease) * s + ease * (3.0 * s**2 - 2.0 * s**3)


def _start_range(lo: float, hi: float, travel: float) -> tuple[float, float]:
    """Start coordinates for a path of signed length ``travel`` that stays within [lo, hi]."""
    return lo + max(0.0, -travel), hi - max(0.0, travel)


def _slide(direction: tuple[int, int]) -> MotionFn:
    """Straight travel along ``direction`` (a unit axis vector, image coordinates, y down)."""

    def motion(rng: np.random.Generator, num_frames: int, size: int, radius: float):
        scale = size / REFERENCE_SIZE
        margin = radius + 1.0
        distance = min(rng.uniform(0.6, 1.0) * scale * (num_frames - 1), 34.0 * scale)
        along = np.asarray(direction, dtype=float)
        across = np.abs(along[::-1])
        travel = distance * _progress(rng, num_frames)
        start = np.empty(2)
        for axis in range(2):
            lo, hi = _start_range(margin, size - margin, distance * along[axis])
            start[axis] = rng.uniform(lo, hi)
        t = np.arange(num_frames)
        wobble = scale * rng.uniform(0.0, 1.0) * np.sin(2 * np.pi * t / rng.uniform(12, 30) + rng.uniform(0, 2 * np.pi))
        centres = start + travel[:, None] * along + wobble[:, None] * across  # (T, 2)
        return centres, np.ones(num_frames)

    return motion


def _grow(rng: np.random.Generator, num_frames: int, size: int, radius: float):
    """Size grows geometrically by 2.0-2.6x while the object drifts at most 3 px."""
    scale = size / REFERENCE_SIZE
    first = rng.uniform(0.5, 0.7)
    last = first * rng.uniform(2.0, 2.6)
    multiplier = first * (last / first) ** _progress(rng, num_frames)
    margin = radius * last + 1.0 + 3.0 * scale
    start = rng.uniform(margin, size - margin, size=2)
    heading = rng.uniform(0, 2 * np.pi)
    drift = rng.uniform(0, 3.0 * scale) * np.array([np.cos(heading), np.sin(heading)])
    centres = start + np.linspace(0.0, 1.0, num_frames)[:, None] * drift  # (T, 2)
    return centres, multiplier


def _orbit(rng: np.random.Generator, num_frames: int, size: int, radius: float):
    """Clockwise on screen (y down): right -> bottom -> left -> top, on a circle or mild ellipse."""
    scale = size / REFERENCE_SIZE
    orbit_radius = rng.uniform(9.0, 14.0) * scale
    squash = np.ones(2)
    squash[rng.integers(2)] = rng.uniform(0.75, 1.0)
    radii = orbit_radius * squash
    margin = radius + 1.0
    centre = np.array([rng.uniform(margin + r, size - margin - r) for r in radii])
    angular_speed = rng.uniform(2 * np.pi / 36, 2 * np.pi / 20)
    angle = rng.uniform(0, 2 * np.pi) + angular_speed * np.arange(num_frames)
    centres = centre + radii * np.stack([np.cos(angle), np.sin(angle)], axis=1)  # (T, 2)
    return centres, np.ones(num_frames)


def _bounce(rng: np.random.Generator, num_frames: int, size: int, radius: float):
    """Parabolic arcs off a floor (period 12-20 frames, height 14-22 px), slow horizontal drift."""
    scale = size / REFERENCE_SIZE
    margin = radius + 1.0
    floor = rng.uniform(size - margin - 4.0 * scale, size - margin)
    height = min(rng.uniform(14.0, 22.0) * scale, floor - margin)
    phase = (np.arange(num_frames) / rng.uniform(12.0, 20.0) + rng.uniform(0, 1)) % 1.0
    y = floor - 4.0 * height * phase * (1.0 - phase)
    drift = rng.uniform(-0.3, 0.3) * scale * (num_frames - 1)
    x = rng.uniform(*_start_range(margin, size - margin, drift)) + drift * np.linspace(0, 1, num_frames)
    return np.stack([x, y], axis=1), np.ones(num_frames)


def _zigzag(rng: np.random.Generator, num_frames: int, size: int, radius: float):
    """Horizontal travel (either way) on a triangle wave of +-5-8 px with a 8-14 frame period."""
    scale = size / REFERENCE_SIZE
    margin = radius + 1.0
    travel = min(rng.uniform(0.5, 0.8) * scale * (num_frames - 1), 34.0 * scale) * rng.choice([-1.0, 1.0])
    amplitude = rng.uniform(5.0, 8.0) * scale
    phase = np.arange(num_frames) / rng.uniform(8.0, 14.0) + rng.uniform(0, 1)
    triangle = 2.0 * np.abs(2.0 * (phase % 1.0) - 1.0) - 1.0
    x = rng.uniform(*_start_range(margin, size - margin, travel)) + travel * np.linspace(0, 1, num_frames)
    y = rng.uniform(margin + amplitude, size - margin - amplitude) + amplitude * triangle
    return np.stack([x, y], axis=1), np.ones(num_frames)


@dataclass(frozen=True)
class _ClassSpec:
    description: str
    motion: MotionFn | None = None
    reverse_of: str | None = None
    flip_of: str | None = None


_CLASS_SPECS: dict[str, _ClassSpec] = {
    "SlideLeft": _ClassSpec("moves straight to the left (14-34 px)", _slide((-1, 0)), flip_of="SlideRight"),
    "SlideRight": _ClassSpec("moves straight to the right: SlideLeft played backwards", reverse_of="SlideLeft",
                             flip_of="SlideLeft"),
    "Rise": _ClassSpec("moves straight up (14-34 px)", _slide((0, -1))),
    "Fall": _ClassSpec("moves straight down: Rise played backwards", reverse_of="Rise"),
    "Grow": _ClassSpec("grows 2-2.6x in size while staying almost in place", _grow),
    "Shrink": _ClassSpec("shrinks to 1/2.6-1/2 of its size: Grow played backwards", reverse_of="Grow"),
    "OrbitClockwise": _ClassSpec("circles clockwise around a point (radius 9-14 px)", _orbit,
                                 flip_of="OrbitCounterclockwise"),
    "OrbitCounterclockwise": _ClassSpec("circles counter-clockwise: OrbitClockwise played backwards",
                                        reverse_of="OrbitClockwise", flip_of="OrbitClockwise"),
    "Bounce": _ClassSpec("bounces on a floor in parabolic arcs, drifting slowly sideways", _bounce),
    "ZigZag": _ClassSpec("travels sideways on a sharp up-and-down zig-zag", _zigzag),
}

CLASS_DESCRIPTIONS: dict[str, str] = {name: spec.description for name, spec in _CLASS_SPECS.items()}


def reversal_pairs(classes: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """Pairs ``(A, B)`` where class B is class A played backwards (both in ``classes``, default all)."""
    chosen = set(_CLASS_SPECS if classes is None else classes)
    return [(spec.reverse_of, name) for name, spec in _CLASS_SPECS.items()
            if spec.reverse_of is not None and name in chosen and spec.reverse_of in chosen]


def horizontal_flip_pairs(classes: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """Pairs of classes that a left-right flip turns into each other (both in ``classes``)."""
    chosen = set(_CLASS_SPECS if classes is None else classes)
    names = list(_CLASS_SPECS)
    return [(name, spec.flip_of) for name, spec in _CLASS_SPECS.items()
            if spec.flip_of is not None and names.index(name) < names.index(spec.flip_of)
            and name in chosen and spec.flip_of in chosen]


SYNTH_PRESETS: dict[str, SynthConfig] = {
    "smoke": SynthConfig(
        classes=("SlideLeft", "SlideRight", "Grow", "Shrink"),
        num_groups=4, num_train_groups=3, clips_per_group=2,
        min_frames=16, max_frames=24, tracking_sequences=2, tracking_frames=16,
    ),
    "standard": SynthConfig(
        classes=("SlideLeft", "SlideRight", "Grow", "Shrink", "OrbitClockwise", "OrbitCounterclockwise",
                 "Bounce", "ZigZag"),
        num_groups=25, num_train_groups=18, clips_per_group=4,
        min_frames=24, max_frames=40, tracking_sequences=8, tracking_frames=60,
    ),
}


def get_synth_config(preset: str | SynthConfig) -> SynthConfig:
    """Return the configuration of a preset name (``"smoke"``, ``"standard"``) or pass one through."""
    if isinstance(preset, SynthConfig):
        return preset
    if preset not in SYNTH_PRESETS:
        raise SynthDatasetError(f"unknown synth preset {preset!r}: choose one of {', '.join(SYNTH_PRESETS)}")
    return SYNTH_PRESETS[preset]


# --------------------------------------------------------------------------------------------
# Scenes: background texture and object looks, shared by all clips of a group
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectStyle:
    """How one object looks: ``shape`` from SHAPES, RGB ``colour`` (0-255), ``radius`` in px.

    A ``two_tone`` object has its lower half (in its own rotating frame) darker, so spin is visible.
    """

    shape: str
    colour: tuple[float, float, float]
    radius: float
    two_tone: bool = False


@dataclass(frozen=True, eq=False)
class Scene:
    """A group's look: ``background`` float32 (S + 2 margin, S + 2 margin, 3) in 0-255, the target
    style and the distractor styles. The camera views a window of S x S pixels of the background."""

    background: np.ndarray
    margin: int
    target: ObjectStyle
    distractors: tuple[ObjectStyle, ...] = field(default_factory=tuple)

    @property
    def frame_size(self) -> int:
        return self.background.shape[0] - 2 * self.margin


def _hsv(hue: float, saturation: float, value: float) -> tuple[float, float, float]:
    red, green, blue = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return (255.0 * red, 255.0 * green, 255.0 * blue)


def _background(rng: np.random.Generator, canvas: int, frame_size: int) -> np.ndarray:
    """A textured background float32 (canvas, canvas, 3): stripes, a soft checkerboard or blobs."""
    coords = np.arange(canvas, dtype=np.float32) / frame_size
    y, x = coords[:, None], coords[None, :]  # (canvas, 1), (1, canvas)
    kind = rng.integers(3)
    angle = rng.uniform(0, np.pi)
    rotated_x = x * np.cos(angle) + y * np.sin(angle)
    rotated_y = -x * np.sin(angle) + y * np.cos(angle)
    if kind == 0:
        pattern = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2.0, 5.0) * rotated_x + rng.uniform(0, 2 * np.pi))
    elif kind == 1:
        cells = rng.uniform(3.0, 6.0)
        pattern = 0.5 + 0.5 * np.tanh(3.0 * np.sin(np.pi * cells * rotated_x) * np.sin(np.pi * cells * rotated_y))
    else:
        pattern = np.zeros((canvas, canvas), dtype=np.float32)
        for _ in range(6):
            frequency = rng.uniform(0.5, 3.0)
            direction = rng.uniform(0, 2 * np.pi)
            pattern = pattern + np.sin(
                2 * np.pi * frequency * (x * np.cos(direction) + y * np.sin(direction)) + rng.uniform(0, 2 * np.pi)
            )
        pattern = (pattern - pattern.min()) / max(float(pattern.max() - pattern.min()), 1e-6)
    hue = rng.uniform(0, 1)
    dark = np.array(_hsv(hue, rng.uniform(0.05, 0.45), rng.uniform(0.2, 0.45)), dtype=np.float32)
    light = np.array(_hsv(hue + rng.uniform(-0.25, 0.25), rng.uniform(0.05, 0.45), rng.uniform(0.5, 0.75)),
                     dtype=np.float32)
    image = dark + pattern[..., None].astype(np.float32) * (light - dark)  # (canvas, canvas, 3)
    grain = rng.normal(0.0, rng.uniform(0.0, 8.0), size=(canvas, canvas, 1)).astype(np.float32)
    return np.clip(image + grain, 0.0, 255.0)


def _draw_scene(
    rng: np.random.Generator,
    frame_size: int,
    num_distractors: int,
    target_radius: tuple[float, float],
    distractor_scale: tuple[float, float],
    margin: int,
) -> Scene:
    scale = frame_size / REFERENCE_SIZE
    background = _background(rng, frame_size + 2 * margin, frame_size)
    target_hue = rng.uniform(0, 1)
    target_shape = SHAPES[rng.integers(len(SHAPES))]
    target_size = rng.uniform(*target_radius) * scale
    target = ObjectStyle(target_shape, _hsv(target_hue, rng.uniform(0.65, 1.0), rng.uniform(0.75, 1.0)),
                         target_size, two_tone=True)
    other_shapes = [shape for shape in SHAPES if shape != target_shape]
    distractors = tuple(
        ObjectStyle(
            other_shapes[rng.integers(len(other_shapes))],
            _hsv(target_hue + rng.uniform(0.2, 0.8), rng.uniform(0.3, 0.8), rng.uniform(0.45, 0.95)),
            target_size * rng.uniform(*distractor_scale),
        )
        for _ in range(num_distractors)
    )
    return Scene(background, margin, target, distractors)


def _camera_margin(config: SynthConfig, frame_size: int) -> int:
    scale = frame_size / REFERENCE_SIZE
    return int(math.ceil((config.camera_pan + 3.0 * config.camera_jitter) * scale)) + 1


def draw_scene(rng: np.random.Generator, config: SynthConfig | None = None) -> Scene:
    """Draw one group's scene (background, target look, distractor looks) for ``config``'s videos."""
    config = config or SYNTH_PRESETS["standard"]
    num_distractors = int(rng.integers(config.min_distractors, config.max_distractors + 1))
    return _draw_scene(rng, config.frame_size, num_distractors, config.target_radius, config.distractor_scale,
                       _camera_margin(config, config.frame_size))


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------
def _shape_distance(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Approximate signed distance to the outline of ``shape`` (radius 1) at local coords (u, v)."""
    abs_u, abs_v = np.abs(u), np.abs(v)
    if shape == "circle":
        return np.sqrt(u * u + v * v) - 1.0
    if shape == "square":
        return np.maximum(abs_u, abs_v) - 0.82
    if shape == "diamond":
        return (abs_u + abs_v - 1.15) / np.sqrt(2.0)
    if shape == "triangle":
        return np.maximum(v - 0.55, (np.sqrt(3.0) * abs_u - v) / 2.0 - 0.55)
    if shape == "cross":
        return np.minimum(np.maximum(abs_u - 0.38, abs_v - 1.0), np.maximum(abs_u - 1.0, abs_v - 0.38))
    if shape == "ring":
        return np.abs(np.sqrt(u * u + v * v) - 0.68) - 0.32
    if shape == "hexagon":
        return np.maximum(abs_u, np.maximum(np.abs(0.5 * u + 0.866 * v), np.abs(0.5 * u - 0.866 * v))) - 0.9
    raise SynthDatasetError(f"unknown shape {shape!r}: shapes are {SHAPES}")


# Largest distance from an object's centre to its outline, in radii (square corners: 1.16).
_SHAPE_EXTENT = 1.2


def _draw_object(
    frames: np.ndarray,
    style: ObjectStyle,
    centres: np.ndarray,
    radii: np.ndarray,
    angles: np.ndarray,
    coverage: bool = False,
) -> np.ndarray | None:
    """Composite one anti-aliased object into ``frames`` float32 (T, H, W, 3) in place.

    ``centres`` (T, 2) x, y in px; ``radii`` (T,) px; ``angles`` (T,) radians. Only a square
    window around the object is computed in each frame; the window is shifted to lie inside
    the frame, so it still covers every on-screen pixel of the object. With ``coverage``,
    returns the object's alpha float32 (T, H, W).
    """
    num_frames, height, width, _ = frames.shape
    side = min(2 * (int(np.ceil(_SHAPE_EXTENT * radii.max())) + 2) + 1, height, width)
    corner = np.rint(centres).astype(np.int64) - side // 2  # (T, 2) x, y
    cols = np.clip(corner[:, 0], 0, width - side)[:, None] + np.arange(side)  # (T, side)
    rows = np.clip(corner[:, 1], 0, height - side)[:, None] + np.arange(side)  # (T, side)
    dx = cols[:, None, :].astype(np.float32) - centres[:, 0, None, None].astype(np.float32)  # (T, 1, side)
    dy = rows[:, :, None].astype(np.float32) - centres[:, 1, None, None].astype(np.float32)  # (T, side, 1)
    cos = np.cos(angles).astype(np.float32)[:, None, None]
    sin = np.sin(angles).astype(np.float32)[:, None, None]
    radius = radii.astype(np.float32)[:, None, None]
    u = (cos * dx + sin * dy) / radius  # (T, side, side)
    v = (-sin * dx + cos * dy) / radius  # (T, side, side)
    alpha = np.clip(0.5 - _shape_distance(style.shape, u, v) * radius, 0.0, 1.0)  # (T, side, side)
    colour = np.asarray(style.colour, dtype=np.float32)
    if style.two_tone:
        paint = np.where(v > 0.0, np.float32(0.55), np.float32(1.0))[..., None] * colour  # (T, side, side, 3)
    else:
        paint = colour
    window = (np.arange(num_frames)[:, None, None], rows[:, :, None], cols[:, None, :])
    patch = frames[window]  # (T, side, side, 3)
    frames[window] = patch + alpha[..., None] * (paint - patch)
    if not coverage:
        return None
    full = np.zeros((num_frames, height, width), dtype=np.float32)
    full[window] = alpha
    return full


def _wander(rng: np.random.Generator, num_frames: int, size: int, radius: float, reach: float) -> np.ndarray:
    """A distractor's path (T, 2): slow drift of at most ``reach`` px plus a gentle sway."""
    scale = size / REFERENCE_SIZE
    margin = radius + 1.0
    heading = rng.uniform(0, 2 * np.pi)
    drift = rng.uniform(0.0, reach) * np.array([np.cos(heading), np.sin(heading)])
    start = np.array([rng.uniform(*_start_range(margin, size - margin, d)) for d in drift])
    t = np.arange(num_frames)[:, None]
    sway = rng.uniform(0.0, 3.0 * scale, size=2) * np.sin(
        2 * np.pi * t / rng.uniform(16.0, 40.0, size=2) + rng.uniform(0, 2 * np.pi, size=2)
    )
    return start + drift * t / max(num_frames - 1, 1) + sway  # (T, 2)


def _camera_offsets(rng: np.random.Generator, num_frames: int, pan: float, jitter: float, margin: int) -> np.ndarray:
    """Integer camera offsets (T, 2) x, y in px: a linear pan plus per-frame shake, within +-margin."""
    heading = rng.uniform(0, 2 * np.pi)
    drift = rng.uniform(0.0, pan) * np.array([np.cos(heading), np.sin(heading)])
    path = drift * np.linspace(0.0, 1.0, num_frames)[:, None] + rng.normal(0.0, jitter, size=(num_frames, 2))
    return np.clip(np.rint(path), -margin, margin).astype(np.int64)


def _view(background: np.ndarray, margin: int, size: int, offsets: np.ndarray) -> np.ndarray:
    """Crop the camera window of every frame: float32 (T, size, size, 3)."""
    pixels = np.arange(size)
    rows = margin + offsets[:, 1, None] + pixels[None, :]  # (T, size)
    cols = margin + offsets[:, 0, None] + pixels[None, :]  # (T, size)
    return background[rows[:, :, None], cols[:, None, :]]


def _finish(rng: np.random.Generator, frames: np.ndarray, noise_std: tuple[float, float]) -> np.ndarray:
    """Per-clip brightness gain and Gaussian pixel noise, then uint8 (T, H, W, 3)."""
    gain, noise_scale = np.float32(rng.uniform(0.9, 1.1)), np.float32(rng.uniform(*noise_std))
    noise = rng.standard_normal(frames.shape, dtype=np.float32)
    noise *= noise_scale
    frames *= gain
    frames += noise
    np.rint(frames, out=frames)
    np.clip(frames, 0, 255, out=frames)
    return frames.astype(np.uint8)


@dataclass(frozen=True, eq=False)
class RenderedClip:
    """One rendered clip: ``frames`` uint8 (T, H, W, 3); the target's ``centres`` (T, 2) x, y in px
    in frame coordinates and ``radii`` (T,) in px (ground truth of the motion, for tests and plots)."""

    frames: np.ndarray
    centres: np.ndarray
    radii: np.ndarray


def _class_motion(class_name: str) -> tuple[MotionFn, bool]:
    if class_name not in _CLASS_SPECS:
        raise SynthDatasetError(f"unknown synth class {class_name!r}: known classes are {sorted(_CLASS_SPECS)}")
    spec = _CLASS_SPECS[class_name]
    if spec.reverse_of is not None:
        return _CLASS_SPECS[spec.reverse_of].motion, True
    return spec.motion, False


@dataclass(frozen=True, eq=False)
class TargetMotion:
    """The target of one clip, frame by frame: ``centres`` (T, 2) x, y in px in frame coordinates,
    ``radii`` (T,) in px, spin ``angles`` (T,) and the camera ``offsets`` (T, 2) already applied."""

    centres: np.ndarray
    radii: np.ndarray
    angles: np.ndarray
    offsets: np.ndarray


def _target_motion(class_name: str, scene: Scene, rng: np.random.Generator, config: SynthConfig) -> TargetMotion:
    """Draw a clip's length, target path and camera from ``rng`` (the first draws of a clip)."""
    motion, reverse = _class_motion(class_name)
    size = scene.frame_size
    scale = size / REFERENCE_SIZE
    num_frames = int(rng.integers(config.min_frames, config.max_frames + 1))
    centres, multiplier = motion(rng, num_frames, size, scene.target.radius)
    if reverse:
        centres, multiplier = centres[::-1], multiplier[::-1]
    angles = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.06, 0.06) * np.arange(num_frames)
    offsets = _camera_offsets(rng, num_frames, config.camera_pan * scale, config.camera_jitter * scale, scene.margin)
    return TargetMotion(centres - offsets, scene.target.radius * multiplier, angles, offsets)


def render_clip(
    class_name: str, scene: Scene, rng: np.random.Generator, config: SynthConfig | None = None
) -> RenderedClip:
    """Render one clip of ``class_name`` in ``scene``; clip length and nuisances drawn from ``rng``."""
    config = config or SYNTH_PRESETS["standard"]
    size = scene.frame_size
    motion = _target_motion(class_name, scene, rng, config)
    num_frames = len(motion.radii)
    frames = _view(scene.background, scene.margin, size, motion.offsets)  # (T, H, W, 3)
    for style in scene.distractors:
        path = _wander(rng, num_frames, size, style.radius, reach=8.0 * size / REFERENCE_SIZE)
        spin = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.06, 0.06) * np.arange(num_frames)
        _draw_object(frames, style, path - motion.offsets, np.full(num_frames, style.radius), spin)
    _draw_object(frames, scene.target, motion.centres, motion.radii, motion.angles)
    return RenderedClip(_finish(rng, frames, config.noise_std), motion.centres, motion.radii)


def render_video(
    class_name: str, scene_params: Scene, rng: np.random.Generator, config: SynthConfig | None = None
) -> np.ndarray:
    """Render one example video of ``class_name`` in a scene: uint8 (T, H, W, 3).

    ``scene_params`` comes from ``draw_scene(rng, config)``; ``config`` (default: the standard
    preset) gives the clip length range and the nuisance strengths.
    """
    return render_clip(class_name, scene_params, rng, config).frames


# --------------------------------------------------------------------------------------------
# Tracking sequences
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class RenderedTrackingSequence:
    """``frames`` uint8 (T, S, S, 3); ``boxes`` float (T, 4) x, y, w, h, 0-based, the tight box of
    the target's pixels (coverage > 0.5); ``target_alpha`` float32 (T, S, S) the target's coverage."""

    frames: np.ndarray
    boxes: np.ndarray
    target_alpha: np.ndarray


def _smooth_path(rng: np.random.Generator, num_frames: int, lo: float, hi: float) -> np.ndarray:
    """A smooth random path (T, 2) inside [lo, hi]^2: three sinusoids per axis, 0.3-1.5 cycles each."""
    t = np.linspace(0.0, 1.0, num_frames)[:, None, None]  # (T, 1, 1)
    frequency = rng.uniform(0.3, 1.5, size=(1, 3, 2))
    weights = rng.dirichlet(np.ones(3), size=2).T[None]  # (1, 3, 2), each axis sums to 1
    waves = np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi, size=(1, 3, 2)))
    unit = (weights * waves).sum(axis=1)  # (T, 2) in [-1, 1]
    reach = rng.uniform(0.6, 1.0, size=2) * (hi - lo) / 2
    return (lo + hi) / 2 + reach * unit


def _tight_boxes(alpha: np.ndarray) -> np.ndarray:
    """Tight boxes (T, 4) x, y, w, h (0-based, pixel units) of the pixels with coverage > 0.5."""
    inside = alpha > 0.5  # (T, H, W)
    rows, cols = inside.any(axis=2), inside.any(axis=1)  # (T, H), (T, W)
    if not rows.any(axis=1).all():
        raise SynthDatasetError("a tracking target left the frame")
    top = rows.argmax(axis=1)
    bottom = rows.shape[1] - 1 - rows[:, ::-1].argmax(axis=1)
    left = cols.argmax(axis=1)
    right = cols.shape[1] - 1 - cols[:, ::-1].argmax(axis=1)
    return np.stack([left, top, right - left + 1, bottom - top + 1], axis=1).astype(np.float64)


def render_tracking_sequence(rng: np.random.Generator, config: SynthConfig | None = None) -> RenderedTrackingSequence:
    """Render one tracking sequence of ``config.tracking_frames`` frames at ``config.tracking_size``."""
    config = config or SYNTH_PRESETS["standard"]
    size, num_frames = config.tracking_size, config.tracking_frames
    scale = size / REFERENCE_SIZE
    margin = _camera_margin(config, size)
    scene = _draw_scene(rng, size, config.tracking_distractors, (4.5, 6.5), (0.8, 1.2), margin)
    target = scene.target
    radii = target.radius * (1.0 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 0.8) * np.linspace(0, 1, num_frames)
                                                 + rng.uniform(0, 2 * np.pi)))
    edge = 1.2 * target.radius + 2.0
    centres = _smooth_path(rng, num_frames, edge, size - edge)
    angles = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.05, 0.05) * np.arange(num_frames)
    offsets = _camera_offsets(rng, num_frames, config.camera_pan * scale, config.camera_jitter * scale, margin)
    frames = _view(scene.background, margin, size, offsets)  # (T, S, S, 3)
    for style in scene.distractors:
        path = _smooth_path(rng, num_frames, style.radius + 1.0, size - style.radius - 1.0)
        spin = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.05, 0.05) * np.arange(num_frames)
        _draw_object(frames, style, path - offsets, np.full(num_frames, style.radius), spin)
    alpha = _draw_object(frames, target, centres - offsets, radii, angles, coverage=True)
    return RenderedTrackingSequence(_finish(rng, frames, config.noise_std), _tight_boxes(alpha), alpha)


def _write_tracking_sequence(sequence: RenderedTrackingSequence, folder: Path) -> None:
    """Write ``folder/img/0001.jpg ...`` and ``folder/groundtruth_rect.txt`` (OTB, 1-based)."""
    from PIL import Image

    images = folder / "img"
    images.mkdir(parents=True)
    for index, frame in enumerate(sequence.frames, start=1):
        Image.fromarray(frame).save(images / f"{index:04d}.jpg", quality=92)
    lines = [f"{int(x) + 1},{int(y) + 1},{int(w)},{int(h)}" for x, y, w, h in sequence.boxes]
    (folder / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------
# Dataset generation
# --------------------------------------------------------------------------------------------
def _class_id(class_name: str) -> int:
    """A stable number per class name, so a clip's frames do not depend on the class list."""
    return zlib.crc32(class_name.encode())


def _video_name(class_name: str, group: int, clip: int) -> str:
    return f"{class_name}/v_{class_name}_g{group:02d}_c{clip:02d}.mp4"


def _render_group(config: SynthConfig, seed: int, group: int, root: str) -> int:
    """Render and write every clip of one group (all classes); return the number of frames written."""
    scene = group_scene(config, seed, group)
    total = 0
    for class_name in config.classes:
        for clip in range(1, config.clips_per_group + 1):
            frames = render_dataset_clip(config, seed, class_name, group, clip, scene)
            write_video(Path(root) / _video_name(class_name, group, clip), frames, fps=config.fps)
            total += len(frames)
    return total


def group_scene(config: SynthConfig, seed: int, group: int) -> Scene:
    """The scene shared by every clip (of every class) of ``group`` in the dataset of ``seed``."""
    return draw_scene(np.random.default_rng([seed, _SCENE_STREAM, group]), config)


def render_dataset_clip(
    config: SynthConfig, seed: int, class_name: str, group: int, clip: int, scene: Scene | None = None
) -> np.ndarray:
    """The frames uint8 (T, H, W, 3) of ``<class_name>/v_<class_name>_g<group>_c<clip>.mp4``
    before encoding (``scene``: the group's scene, if already drawn)."""
    scene = scene if scene is not None else group_scene(config, seed, group)
    rng = np.random.default_rng([seed, _CLIP_STREAM, _class_id(class_name), group, clip])
    return render_video(class_name, scene, rng, config)


def dataset_clip_target(config: SynthConfig, seed: int, class_name: str, group: int, clip: int) -> TargetMotion:
    """The target's path in ``<class_name>/v_<class_name>_g<group>_c<clip>.mp4`` of the dataset of
    ``seed``: what :func:`render_dataset_clip` draws, without drawing any pixel."""
    scene = group_scene(config, seed, group)
    rng = np.random.default_rng([seed, _CLIP_STREAM, _class_id(class_name), group, clip])
    return _target_motion(class_name, scene, rng, config)


def manifest_config(root: str | Path) -> tuple[SynthConfig, int]:
    """The generator configuration and seed a dataset at ``root`` was made with (its manifest);
    raises SynthDatasetError when ``root`` holds no dataset of this generator version."""
    manifest = read_manifest(root)
    if manifest is None or manifest.get("generator") != __name__ or not isinstance(manifest.get("config"), dict):
        raise SynthDatasetError(f"{root}: not a dataset made by {__name__} (no readable {MANIFEST_NAME})")
    if manifest.get("version") != GENERATOR_VERSION:
        raise SynthDatasetError(f"{root}: made by generator version {manifest.get('version')}, this is version "
                                f"{GENERATOR_VERSION}: regenerate it to read its ground truth")
    settings = {key: tuple(value) if isinstance(value, list) else value for key, value in manifest["config"].items()}
    try:
        return SynthConfig(**settings), int(manifest["seed"])
    except (TypeError, KeyError, ValueError) as error:
        raise SynthDatasetError(f"{Path(root) / MANIFEST_NAME}: unreadable configuration ({error})") from error


_VIDEO_NAME = re.compile(r"^v_(?P<class_name>.+)_g(?P<group>\d+)_c(?P<clip>\d+)$")


def video_target(config: SynthConfig, seed: int, path: str | Path) -> TargetMotion:
    """The target's path in the dataset's video file ``path`` (named ``v_<Class>_gGG_cCC.mp4``)."""
    match = _VIDEO_NAME.match(Path(path).stem)
    if match is None or match["class_name"] not in config.classes:
        raise SynthDatasetError(f"{path}: not a video of the generated dataset (expected v_<Class>_gGG_cCC.mp4 "
                                f"with a class of {', '.join(config.classes)})")
    return dataset_clip_target(config, seed, match["class_name"], int(match["group"]), int(match["clip"]))


def _render_tracking(config: SynthConfig, seed: int, index: int, root: str) -> int:
    sequence = render_tracking_sequence(np.random.default_rng([seed, _TRACKING_STREAM, index]), config)
    _write_tracking_sequence(sequence, Path(root) / TRACKING_DIR / tracking_sequence_name(index))
    return len(sequence.frames)


def tracking_sequence_name(index: int) -> str:
    """Folder name of tracking sequence ``index`` (0-based): ``Synth01``, ``Synth02``, ..."""
    return f"Synth{index + 1:02d}"


def _write_split_lists(root: Path, config: SynthConfig) -> tuple[int, int]:
    classes = sorted(config.classes)
    lists = root / SPLIT_DIR
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i} {name}\n" for i, name in enumerate(classes, start=1)))
    train, test = [], []
    for label, class_name in enumerate(classes, start=1):
        for group in range(1, config.num_groups + 1):
            for clip in range(1, config.clips_per_group + 1):
                name = _video_name(class_name, group, clip)
                if group <= config.num_train_groups:
                    train.append(f"{name} {label}\n")
                else:
                    test.append(f"{name}\n")
    (lists / "trainlist01.txt").write_text("".join(train))
    (lists / "testlist01.txt").write_text("".join(test))
    return len(train), len(test)


def read_manifest(root: str | Path) -> dict | None:
    """The manifest of a generated dataset at ``root``, or None if there is none (or it is unreadable)."""
    path = Path(root) / MANIFEST_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _manifest_matches(manifest: dict | None, config: SynthConfig, seed: int) -> bool:
    return (
        manifest is not None
        and manifest.get("version") == GENERATOR_VERSION
        and manifest.get("seed") == seed
        and manifest.get("config") == config.to_json()
    )


def _complete(root: Path, manifest: dict) -> bool:
    """Whether every file the manifest counts is present."""
    counts = manifest.get("counts", {})
    videos = sum(1 for _ in root.glob("*/v_*.mp4"))
    sequences = sum(1 for _ in (root / TRACKING_DIR).glob("*/groundtruth_rect.txt"))
    return videos == counts.get("videos") and sequences == counts.get("tracking_sequences")


def generate_dataset(
    out: Path,
    preset: str | SynthConfig = "standard",
    seed: int = 0,
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """Generate the embedded dataset at ``out`` (UCF101 layout + OTB tracking subset); return ``out``.

    ``preset`` is a name from SYNTH_PRESETS or a SynthConfig. An existing complete dataset
    made with the same generator version, configuration and seed is reused as it is; a folder
    holding anything else raises SynthDatasetError (nothing is overwritten). ``workers``
    (default: 2 processes when the dataset is large, else 1) does not change the output.
    """
    out = Path(out)
    config = get_synth_config(preset)
    preset_name = preset if isinstance(preset, str) else "custom"
    if out.exists():
        manifest = read_manifest(out)
        if _manifest_matches(manifest, config, seed) and _complete(out, manifest):
            return out
        if manifest is not None:
            raise SynthDatasetError(
                f"{out}: holds a synth dataset made with other parameters or incomplete (preset "
                f"{manifest.get('preset')!r}, seed {manifest.get('seed')}, version {manifest.get('version')}); "
                f"delete it or choose another --out"
            )
        if not out.is_dir() or any(out.iterdir()):
            raise SynthDatasetError(f"{out}: exists and is not a synth dataset; delete it or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    num_videos = len(config.classes) * config.num_groups * config.clips_per_group
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if num_videos >= 200 else 1
    partial = out.parent / f".{out.name}.partial-{secrets.token_hex(8)}"
    partial.mkdir()  # the umask's permissions, as every other folder (mkdtemp's are the owner's only)
    try:
        jobs = [functools.partial(_render_group, config, seed, group, str(partial))
                for group in range(1, config.num_groups + 1)]
        jobs += [functools.partial(_render_tracking, config, seed, index, str(partial))
                 for index in range(config.tracking_sequences)]
        frames = list(results_in_order(jobs, workers, progress, f"synth {preset_name}", unit="job"))
        num_train, num_test = _write_split_lists(partial, config)
        manifest = {
            "generator": "seco_lab.video.synth",
            "version": GENERATOR_VERSION,
            "preset": preset_name,
            "seed": seed,
            "config": config.to_json(),
            "classes": sorted(config.classes),
            "reversal_pairs": reversal_pairs(config.classes),
            "horizontal_flip_pairs": horizontal_flip_pairs(config.classes),
            "counts": {
                "videos": num_videos,
                "train": num_train,
                "test": num_test,
                "groups": config.num_groups,
                "train_groups": config.num_train_groups,
                "video_frames": int(sum(frames[: config.num_groups])),
                "tracking_sequences": config.tracking_sequences,
            },
        }
        (partial / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            os.replace(partial, out)
        except OSError:
            # Another process finished the same folder first: reuse it if it is what was asked.
            existing = read_manifest(out)
            if _manifest_matches(existing, config, seed) and _complete(out, existing):
                shutil.rmtree(partial, ignore_errors=True)
                return out
            raise
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out
