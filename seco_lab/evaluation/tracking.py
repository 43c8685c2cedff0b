"""Single-object tracking with a frozen 2D trunk: a Siamese (SiamFC-style) correlation tracker.

Sequences use the OTB layout: ``<seq>/img/0001.jpg ...`` and ``<seq>/groundtruth_rect.txt``
with one ``x,y,w,h`` line per frame (1-based pixels, comma or whitespace separated). A folder
with several targets (OTB's Jogging, Skating2) holds one ``groundtruth_rect.<K>.txt`` per
target instead, and gives one sequence per target, named ``<seq>-<K>``. When every image name
holds a frame number (``0001.jpg``), the first box belongs to the lowest number (to frame 0300
for OTB's David, whose boxes start there) and each later box to the number after: a missing
image leaves its box out and shifts no later frame; numbering that starts above 1 is named in a
warning (a missing first image would shift every box). Images named without numbers are paired
with the boxes in order. Boxes without an image, and images without a box, are named in a warning.
A sequence that cannot be read or scored is left out of :func:`tracking_protocol` with a warning.
Boxes inside this module are 0-based ``(x, y, w, h)`` in continuous pixel coordinates
(a pixel k covers [k, k+1)).

The tracker crops a template around the first box (with context), and in every later frame
a larger search region around the last position at a few scales; both go through the same
frozen feature map; the template map is slid over the search map (cross-correlation), the
response is upsampled, penalised by a cosine window (small displacements preferred) and its
peak moves the box. Scores follow the OTB benchmark: precision (centre error <= 20 px) and
success AUC (area under the IoU-threshold curve).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

FeatureFn = Callable[[torch.Tensor], torch.Tensor]
"""Maps images (N, 3, H, W) float in [0, 1] to feature maps (N, D, h, w)."""

PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)  # pixels, OTB: error <= threshold
SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)  # IoU, OTB: overlap > threshold
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
FEATURE_NORMS = ("l2", "none")
TRUTH_FILE = "groundtruth_rect.txt"
TARGET_TRUTH_FILE = re.compile(r"^groundtruth_rect\.(\d+)\.txt$")  # one target of several: groundtruth_rect.2.txt
# Sequences whose ground truth starts after their first image, with the number of the frame its
# first box belongs to (OTB-100's David holds images 0001-0770 and boxes for 0300-0770); used when
# img/ holds more frames than there are boxes.
FIRST_ANNOTATED_FRAME = {"david": 300, "blurcar1": 247, "blurcar3": 3, "blurcar4": 18, "tiger1": 6}
LISTED_FRAME_NUMBERS = 5  # a warning about missing images names this many frame numbers


class TrackingDataError(ValueError):
    """A tracking sequence folder that does not follow the OTB layout."""


# --------------------------------------------------------------------------- data


@dataclass
class TrackingSequence:
    """One sequence: frame image files in order and ground-truth boxes (T, 4) 0-based x, y, w, h.

    ``problem`` says why the sequence could not be read (it then has no frames and boxes);
    :func:`tracking_protocol` leaves such a sequence out.
    """

    name: str
    frame_paths: list[Path]
    boxes: np.ndarray
    problem: str | None = None

    def __len__(self) -> int:
        return len(self.frame_paths)

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as uint8 (H, W, 3)."""
        return load_frame(self.frame_paths[index])

    def frames(self) -> list[np.ndarray]:
        return [self.frame(i) for i in range(len(self))]


def parse_otb_boxes(text: str, source: str = "<text>") -> np.ndarray:
    """Parse OTB ground-truth lines (1-based ``x,y,w,h``) into 0-based boxes (T, 4) float64."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        values = [v for v in re.split(r"[,\s]+", line) if v]
        if len(values) != 4:
            raise TrackingDataError(f"{source}: line {number} has {len(values)} values, expected x,y,w,h")
        try:
            rows.append([float(v) for v in values])
        except ValueError as error:
            raise TrackingDataError(f"{source}: line {number} is not numeric: {line!r}") from error
    if not rows:
        raise TrackingDataError(f"{source}: no boxes")
    boxes = np.asarray(rows, dtype=np.float64)
    boxes[:, :2] -= 1.0  # 1-based -> 0-based
    return boxes


def load_frame(path: str | Path) -> np.ndarray:
    """Image file -> uint8 (H, W, 3) RGB."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def frame_order(path: Path) -> list[str | int]:
    """Sort key of a frame file: the numbers in its name compare as numbers, so ``2.jpg`` comes
    before ``10.jpg`` whether or not the names are padded with zeros."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def frame_numbers(paths: Sequence[Path]) -> list[int] | None:
    """The frame number in each image file's name (12 for ``0012.jpg`` or ``frame_12.png``); None
    when some name holds no digits. The number is the last run of digits, or, when every name holds
    as many runs and the last repeats (``0012_v2.png``), the last run whose values are all different."""
    runs = [re.findall(r"\d+", path.stem) for path in paths]
    if not all(runs):
        return None
    numbers = [[int(run) for run in name_runs] for name_runs in runs]
    if len({len(name_runs) for name_runs in numbers}) == 1:
        for position in range(len(numbers[0]) - 1, -1, -1):
            column = [name_runs[position] for name_runs in numbers]
            if len(set(column)) == len(column):
                return column
    return [name_runs[-1] for name_runs in numbers]


def listed_numbers(numbers: Sequence[int], limit: int = LISTED_FRAME_NUMBERS) -> str:
    """The first ``limit`` numbers, comma separated, with ``...`` when there are more."""
    shown = ", ".join(str(number) for number in numbers[:limit])
    return shown + (", ..." if len(numbers) > limit else "")


def sequence_targets(sequence_dir: Path) -> list[int | None]:
    """The targets of an OTB folder: ``[None]`` for its ``groundtruth_rect.txt``, else the numbers
    K of its ``groundtruth_rect.<K>.txt`` files (empty when it has neither)."""
    if (sequence_dir / TRUTH_FILE).is_file():
        return [None]
    try:
        names = [path.name for path in sequence_dir.iterdir() if path.is_file()]
    except OSError:
        return []
    return sorted(int(match.group(1)) for match in map(TARGET_TRUTH_FILE.match, names) if match)


def sequence_name(sequence_dir: Path, target: int | None) -> str:
    """``<seq>`` for a folder's only target, ``<seq>-<K>`` for its target K."""
    return sequence_dir.name if target is None else f"{sequence_dir.name}-{target}"


def pair_frames_in_order(sequence_dir: Path, truth: Path, frame_paths: list[Path],
                         boxes: np.ndarray) -> tuple[list[Path], np.ndarray]:
    """Frames named without numbers and boxes, paired in order from the first of each."""
    length = min(len(frame_paths), len(boxes))
    if len(frame_paths) != len(boxes):
        warnings.warn(f"{sequence_dir}: {len(frame_paths)} frames in img/ and {len(boxes)} boxes in {truth.name}: "
                      f"the first {length} of each are paired, the rest left out", stacklevel=3)
    return frame_paths[:length], boxes[:length]


def pair_frames_by_number(sequence_dir: Path, truth: Path, frame_paths: list[Path], numbers: list[int],
                          boxes: np.ndarray) -> tuple[list[Path], np.ndarray]:
    """Frames with their ``numbers`` (see :func:`frame_numbers`) and boxes: the first box belongs to
    the lowest number (or to the sequence's :data:`FIRST_ANNOTATED_FRAME` when img/ holds more
    frames than there are boxes) and box k to the k-th number from there; a box whose image is
    missing is left out. A first box paired with a frame above 1 that the table does not name is
    warned about: it is right for frames never annotated, wrong when the first images are missing."""
    numbered: dict[int, Path] = {}
    for path, number in zip(frame_paths, numbers):
        if number in numbered:
            raise TrackingDataError(f"{path.parent}: {numbered[number].name} and {path.name} both hold frame "
                                    f"{number}, so which of them belongs to box {number} is unclear")
        numbered[number] = path
    known_first = FIRST_ANNOTATED_FRAME.get(sequence_dir.name.lower())
    first_annotated = known_first if known_first is not None and len(frame_paths) > len(boxes) else min(numbered)
    if first_annotated > 1 and first_annotated != known_first:
        warnings.warn(f"{sequence_dir}: img/ has no frame numbered below {first_annotated}, so the first box in "
                      f"{truth.name} is paired with frame {first_annotated}; if the sequence's first images are "
                      "missing rather than never annotated, every box is paired with the wrong frame", stacklevel=3)
    box_numbers = range(first_annotated, first_annotated + len(boxes))
    paired = [number for number in box_numbers if number in numbered]
    if not paired:
        raise TrackingDataError(f"{sequence_dir}: no image in img/ is numbered {box_numbers[0]}-{box_numbers[-1]}, "
                                f"the frames of the boxes in {truth.name}")
    missing = [number for number in box_numbers if number not in numbered]
    unboxed = sorted(number for number in numbered if number > box_numbers[-1])
    left_out = []
    if missing:
        left_out.append(f"{len(missing)} box{'es have' if len(missing) > 1 else ' has'} no image (frame "
                        f"number{'s' if len(missing) > 1 else ''} {listed_numbers(missing)}) and "
                        f"{'are' if len(missing) > 1 else 'is'} left out")
    if unboxed:
        left_out.append(f"{len(unboxed)} frame{'s' if len(unboxed) > 1 else ''} after the last box (frame "
                        f"{box_numbers[-1]}) {'are' if len(unboxed) > 1 else 'is'} left out")
    if left_out:
        warnings.warn(f"{sequence_dir}: {len(frame_paths)} frames in img/ and {len(boxes)} boxes in {truth.name}: "
                      + "; ".join(left_out), stacklevel=3)
    return [numbered[number] for number in paired], boxes[[number - first_annotated for number in paired]]


def read_otb_sequence(sequence_dir: str | Path, target: int | None = None) -> TrackingSequence:
    """Read one OTB-layout sequence; frames (in :func:`frame_order`) are paired with ground-truth
    rows by their numbers when every name holds one (:func:`pair_frames_by_number`), else in order.

    ``target`` K reads the boxes of ``groundtruth_rect.<K>.txt`` (a folder with several targets)
    and names the sequence ``<seq>-<K>``; None reads ``groundtruth_rect.txt``.
    """
    sequence_dir = Path(sequence_dir)
    image_dir = sequence_dir / "img"
    truth = sequence_dir / (TRUTH_FILE if target is None else f"groundtruth_rect.{target}.txt")
    if not image_dir.is_dir():
        raise TrackingDataError(f"{sequence_dir}: no img/ folder (OTB layout: <seq>/img/0001.jpg)")
    if not truth.is_file():
        raise TrackingDataError(f"{sequence_dir}: no {truth.name} (OTB layout: <seq>/groundtruth_rect.txt, or "
                                "groundtruth_rect.<K>.txt for each of several targets)")
    frame_paths = sorted((p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=frame_order)
    if not frame_paths:
        raise TrackingDataError(f"{image_dir}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    boxes = parse_otb_boxes(truth.read_text(), str(truth))
    numbers = frame_numbers(frame_paths)
    if numbers is None:
        frame_paths, boxes = pair_frames_in_order(sequence_dir, truth, frame_paths, boxes)
    else:
        frame_paths, boxes = pair_frames_by_number(sequence_dir, truth, frame_paths, numbers, boxes)
    if not valid_truth(boxes[:1])[0]:
        shown = ",".join(f"{value:g}" for value in boxes[0] + [1.0, 1.0, 0.0, 0.0])  # as written, 1-based
        raise TrackingDataError(f"{truth}: the first box ({shown}) has no positive width and height, and the "
                                "tracker starts from the first box")
    return TrackingSequence(sequence_name(sequence_dir, target), frame_paths, boxes)


def read_sequence_or_problem(sequence_dir: Path, target: int | None) -> TrackingSequence:
    """:func:`read_otb_sequence`, or a sequence without frames whose ``problem`` says why it cannot be read."""
    try:
        return read_otb_sequence(sequence_dir, target)
    except (OSError, ValueError) as error:  # a TrackingDataError, an unreadable or non-UTF-8 file
        return TrackingSequence(sequence_name(sequence_dir, target), [], np.empty((0, 4)), problem=str(error))


def discover_tracking_sequences(root: str | Path) -> list[TrackingSequence]:
    """All OTB-layout sequences directly under ``root`` (or ``root/tracking``), sorted by name; a
    ``root`` that is itself one sequence (``img/`` and its ground truth) gives that one.

    A sequence that cannot be read (a malformed ground truth, a first box of no size, ...) is
    returned with its ``problem`` and no frames, for :func:`tracking_protocol` to leave out and count.
    """
    root = Path(root)
    if (root / "tracking").is_dir():
        root = root / "tracking"
    if not root.is_dir():
        raise TrackingDataError(f"{root}: tracking folder not found")
    own_targets = sequence_targets(root) if (root / "img").is_dir() else []
    if own_targets:
        return [read_sequence_or_problem(root, target) for target in own_targets]
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    sequences = [read_sequence_or_problem(folder, target) for folder in folders for target in sequence_targets(folder)]
    if not sequences:
        raise TrackingDataError(f"{root}: no sequence folders with img/ and groundtruth_rect.txt "
                                "(or groundtruth_rect.<K>.txt per target)")
    return sequences


# --------------------------------------------------------------------------- metrics


def box_centres(boxes: np.ndarray) -> np.ndarray:
    """(T, 4) x, y, w, h -> (T, 2) centres."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return boxes[:, :2] + boxes[:, 2:] / 2.0


def centre_errors(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Euclidean distance (T,) between predicted and true box centres, in pixels."""
    return np.linalg.norm(box_centres(predicted) - box_centres(truth), axis=1)


def overlap_ratios(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Intersection over union (T,) of two box sequences (T, 4)."""
    predicted = np.asarray(predicted, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    left = np.maximum(predicted[:, 0], truth[:, 0])
    top = np.maximum(predicted[:, 1], truth[:, 1])
    right = np.minimum(predicted[:, 0] + predicted[:, 2], truth[:, 0] + truth[:, 2])
    bottom = np.minimum(predicted[:, 1] + predicted[:, 3], truth[:, 1] + truth[:, 3])
    intersection = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    union = predicted[:, 2] * predicted[:, 3] + truth[:, 2] * truth[:, 3] - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0)


def precision_curve(errors: np.ndarray, thresholds: np.ndarray = PRECISION_THRESHOLDS) -> np.ndarray:
    """Fraction of frames with centre error <= each threshold."""
    return (np.asarray(errors)[None, :] <= np.asarray(thresholds)[:, None]).mean(axis=1)


def success_curve(overlaps: np.ndarray, thresholds: np.ndarray = SUCCESS_THRESHOLDS) -> np.ndarray:
    """Fraction of frames with IoU > each threshold."""
    return (np.asarray(overlaps)[None, :] > np.asarray(thresholds)[:, None]).mean(axis=1)


def valid_truth(truth: np.ndarray) -> np.ndarray:
    """Frames whose ground truth is a real box (finite, positive width and height)."""
    truth = np.asarray(truth, dtype=np.float64)
    return np.isfinite(truth).all(axis=1) & (truth[:, 2] > 0) & (truth[:, 3] > 0)


def otb_metrics(predicted: np.ndarray, truth: np.ndarray, precision_at: float = 20.0) -> dict[str, Any]:
    """OTB scores of one sequence; frames without a valid ground-truth box are left out.

    Returns {"precision" (fraction at ``precision_at`` px), "success_auc" (mean of the success
    curve over 21 IoU thresholds 0..1), "mean_iou", "mean_centre_error", "precision_curve" (51,),
    "success_curve" (21,)}.
    """
    keep = valid_truth(truth)
    if not keep.any():
        raise TrackingDataError("otb_metrics: no frame has a valid ground-truth box")
    errors = centre_errors(predicted[keep], truth[keep])
    overlaps = overlap_ratios(predicted[keep], truth[keep])
    precision = precision_curve(errors)
    success = success_curve(overlaps)
    return {
        "precision": float(precision_curve(errors, np.array([precision_at]))[0]),
        "success_auc": float(success.mean()),
        "mean_iou": float(overlaps.mean()),
        "mean_centre_error": float(errors.mean()),
        "precision_curve": precision,
        "success_curve": success,
    }


# --------------------------------------------------------------------------- tracker


@dataclass
class TrackerConfig:
    """SiamFC-style tracker settings (SiamFC: exemplar 127, instance 255, 3 scales, step 1.0375).

    feature_norm: ``"l2"`` normalises each feature-map location over channels (the response is
    a mean cosine similarity; robust for frozen trunks), ``"none"`` keeps raw correlation.
    """

    exemplar_size: int = 64
    instance_size: int = 128
    context: float = 0.5
    num_scales: int = 3
    scale_step: float = 1.0375
    scale_penalty: float = 0.9745
    scale_lr: float = 0.59
    window_influence: float = 0.176
    response_upsample: int = 8
    feature_norm: str = "l2"
    min_size_factor: float = 0.2
    max_size_factor: float = 5.0

    def __post_init__(self) -> None:
        if self.instance_size <= self.exemplar_size:
            raise ValueError(f"instance_size {self.instance_size} must exceed exemplar_size {self.exemplar_size}")
        if self.num_scales < 1:
            raise ValueError(f"num_scales must be >= 1, got {self.num_scales}")
        if self.feature_norm not in FEATURE_NORMS:
            raise ValueError(f"feature_norm must be one of {', '.join(FEATURE_NORMS)}, got {self.feature_norm!r}")

    @property
    def scale_factors(self) -> np.ndarray:
        exponents = np.arange(self.num_scales) - (self.num_scales - 1) / 2
        return self.scale_step ** exponents


def image_to_tensor(frame: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (H, W, 3) or (3, H, W) -> float32 (3, H, W) in [0, 1]."""
    tensor = frame if isinstance(frame, torch.Tensor) else torch.from_numpy(np.array(frame))
    if tensor.ndim != 3:
        raise ValueError(f"a frame must have 3 dimensions, got shape {tuple(tensor.shape)}")
    if tensor.shape[-1] == 3 and tensor.shape[0] != 3:
        tensor = tensor.permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
    tensor = tensor.float()
    return tensor / 255.0 if tensor.max() > 1.0 else tensor


def crop_square(image: torch.Tensor, centre: tuple[float, float], sides: Sequence[float], out_size: int) -> torch.Tensor:
    """Square crops of ``image`` (3, H, W) centred at (cx, cy), one per side length, resized.

    Returns (len(sides), 3, out_size, out_size); outside the image the per-channel image mean fills in.
    """
    _, height, width = image.shape
    channel_mean = image.mean(dim=(1, 2), keepdim=True)
    steps = (torch.arange(out_size, dtype=torch.float32) + 0.5) / out_size - 0.5  # (out,), -0.5..0.5
    grids = []
    for side in sides:
        xs = centre[0] + steps * side
        ys = centre[1] + steps * side
        grid_x = (2.0 * xs / width - 1.0).view(1, -1).expand(out_size, out_size)
        grid_y = (2.0 * ys / height - 1.0).view(-1, 1).expand(out_size, out_size)
        grids.append(torch.stack([grid_x, grid_y], dim=-1))  # (out, out, 2)
    grid = torch.stack(grids)  # (S, out, out, 2)
    centred = (image - channel_mean).unsqueeze(0).expand(len(sides), -1, -1, -1)
    crops = F.grid_sample(centred, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return crops + channel_mean.unsqueeze(0)


def hann_window(size: int) -> torch.Tensor:
    """Outer product of Hann windows (size, size), normalised to sum 1."""
    window = torch.hann_window(size + 2, periodic=False)[1:-1]
    outer = torch.outer(window, window)
    return outer / outer.sum()


class SiameseTracker:
    """Cross-correlation tracker on a frozen feature map (see the module docstring)."""

    def __init__(self, feature_fn: FeatureFn, config: TrackerConfig | None = None):
        self.feature_fn = feature_fn
        self.config = config or TrackerConfig()
        self.centre = np.zeros(2)
        self.size = np.ones(2)
        self.initial_size = np.ones(2)
        self.template: torch.Tensor | None = None

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = self.feature_fn(images).float()
        if features.ndim != 4:
            raise ValueError(f"feature_fn must return (N, D, h, w), got shape {tuple(features.shape)}")
        if self.config.feature_norm == "l2":
            features = F.normalize(features, dim=1)
        return features

    def _exemplar_side(self) -> float:
        pad = self.config.context * float(self.size.sum())
        return float(np.sqrt((self.size[0] + pad) * (self.size[1] + pad)))

    def init(self, frame: np.ndarray | torch.Tensor, box: Sequence[float]) -> None:
        """Take the template from ``box`` (x, y, w, h, 0-based) in the first frame."""
        x, y, w, h = (float(v) for v in box)
        if w <= 0 or h <= 0:
            raise ValueError(f"initial box must have positive size, got {box}")
        self.centre = np.array([x + w / 2, y + h / 2])
        self.size = np.array([w, h])
        self.initial_size = self.size.copy()
        image = image_to_tensor(frame)
        exemplar = crop_square(image, tuple(self.centre), [self._exemplar_side()], self.config.exemplar_size)
        self.template = self._features(exemplar)  # (1, D, hz, wz)

    def update(self, frame: np.ndarray | torch.Tensor) -> np.ndarray:
        """Locate the target in ``frame``; returns the new box (4,) x, y, w, h."""
        if self.template is None:
            raise RuntimeError("SiameseTracker.update called before init")
        cfg = self.config
        image = image_to_tensor(frame)
        scales = cfg.scale_factors
        search_side = self._exemplar_side() * cfg.instance_size / cfg.exemplar_size
        sides = [search_side * s for s in scales]
        instances = self._features(crop_square(image, tuple(self.centre), sides, cfg.instance_size))  # (S, D, hx, wx)
        template = self.template
        if instances.shape[-1] < template.shape[-1] or instances.shape[-2] < template.shape[-2]:
            raise ValueError("search feature map is smaller than the template map: raise instance_size")
        responses = F.conv2d(instances, template) / (template.shape[-1] * template.shape[-2])  # (S, 1, r, r)
        response_cells = responses.shape[-1]
        upsampled_size = (response_cells - 1) * cfg.response_upsample + 1
        upsampled = F.interpolate(responses, size=(upsampled_size, upsampled_size), mode="bicubic",
                                  align_corners=True)[:, 0]  # (S, R, R)
        peaks = upsampled.flatten(1).max(dim=1).values.clone()
        unit = int(np.argmin(np.abs(scales - 1.0)))
        penalty = torch.full_like(peaks, cfg.scale_penalty)
        penalty[unit] = 1.0
        best = int((peaks * penalty).argmax())
        response = upsampled[best]
        response = response - response.min()
        response = response / response.sum().clamp_min(1e-12)
        response = (1 - cfg.window_influence) * response + cfg.window_influence * hann_window(upsampled_size)
        row, col = divmod(int(response.argmax()), upsampled_size)
        stride = cfg.instance_size / instances.shape[-1]  # instance pixels per feature cell
        cell_scale = (response_cells - 1) / max(upsampled_size - 1, 1)
        displacement_cells = np.array([col, row]) * cell_scale - (response_cells - 1) / 2
        pixels_per_instance_pixel = sides[best] / cfg.instance_size
        self.centre = self.centre + displacement_cells * stride * pixels_per_instance_pixel
        height, width = image.shape[-2:]
        self.centre = np.clip(self.centre, 0.0, [width, height])
        scale_change = (1 - cfg.scale_lr) + cfg.scale_lr * scales[best]
        self.size = np.clip(self.size * scale_change, self.initial_size * cfg.min_size_factor,
                            self.initial_size * cfg.max_size_factor)
        return self.box()

    def box(self) -> np.ndarray:
        return np.concatenate([self.centre - self.size / 2, self.size])

    def track(self, frames: Iterable[np.ndarray | torch.Tensor], first_box: Sequence[float]) -> np.ndarray:
        """Track through ``frames``; returns boxes (T, 4), the first being ``first_box``."""
        boxes = []
        for index, frame in enumerate(frames):
            if index == 0:
                self.init(frame, first_box)
                boxes.append(np.asarray(first_box, dtype=np.float64))
            else:
                boxes.append(self.update(frame))
        return np.stack(boxes)


def trunk_feature_fn(module: torch.nn.Module, mean: Sequence[float] = (0.485, 0.456, 0.406),
                     std: Sequence[float] = (0.229, 0.224, 0.225),
                     device: str | torch.device = "cpu") -> FeatureFn:
    """Feature function of a 2D encoder: normalise [0, 1] images, return ``forward_map`` (N, D, h, w)."""
    if not hasattr(module, "forward_map"):
        raise ValueError(f"{type(module).__name__} has no forward_map: tracking needs a 2D encoder's feature map")
    module = module.to(device).eval()
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def features(images: torch.Tensor) -> torch.Tensor:
        return module.forward_map((images.to(device) - mean_t) / std_t).cpu()

    return features


@dataclass
class SequenceResult:
    name: str
    boxes: np.ndarray
    metrics: dict[str, Any] = field(default_factory=dict)


def unscorable_reason(sequence: TrackingSequence) -> str | None:
    """Why ``sequence`` cannot be tracked and scored, None when it can: it could not be read, its
    first box (where the tracker starts) has no size, or no later frame has a valid box to score
    (the first frame, set from the ground truth, would score perfectly on its own)."""
    if sequence.problem is not None:
        return sequence.problem
    usable = len(sequence)
    if usable and not valid_truth(sequence.boxes[:1])[0]:
        shown = ", ".join(f"{value:g}" for value in sequence.boxes[0])
        return f"the first box (0-based x, y, w, h = {shown}) has no positive width and height"
    if usable < 2 or not valid_truth(sequence.boxes[1:usable]).any():
        return (f"{usable} frame(s) paired with a box and none after the first with a valid box: the tracker starts "
                "from the first box, so a sequence needs at least 2 usable frames to be scored")
    return None


def image_error_text(path: Path, error: OSError) -> str:
    """An image file's read error as one line that names the file once."""
    reason = str(error)
    return reason if str(path) in reason else f"{path}: {reason}"


def sequence_frames(sequence: TrackingSequence) -> Iterator[np.ndarray]:
    """The frames of ``sequence`` in order; an image file that cannot be read raises a
    TrackingDataError that names it."""
    for path in sequence.frame_paths:
        try:
            yield load_frame(path)
        except OSError as error:  # PIL's "cannot identify image file", a truncated file, ...
            raise TrackingDataError(image_error_text(path, error)) from error


def _with_progress(sequences: Sequence[TrackingSequence], description: str,
                   progress: bool) -> Iterable[TrackingSequence]:
    if not progress:
        return sequences
    from tqdm.auto import tqdm

    return tqdm(sequences, desc=description, leave=False)


@dataclass
class TrackingCheck:
    """What :func:`check_tracking_sequences` found: the ``folder`` of sequences, their names, the
    frames paired with a box in those that can be tracked, the ``problems`` [(name, reason)] of
    those that cannot (one line per unreadable image), and the ``notes`` (warnings) of reading them."""

    folder: Path
    names: list[str]
    frames: int
    problems: list[tuple[str, str]]
    notes: list[str]

    @property
    def usable(self) -> list[str]:
        """The sequences the tracking protocol scores."""
        failed = {name for name, _ in self.problems}
        return [name for name in self.names if name not in failed]


def check_tracking_sequences(root: str | Path, progress: bool = False) -> TrackingCheck | None:
    """Read every OTB-layout sequence under ``root`` (or ``root/tracking``) as the tracking protocol
    would, decoding every image paired with a box; None when ``root`` holds no such sequence."""
    root = Path(root)
    folder = root / "tracking" if (root / "tracking").is_dir() else root
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            sequences = discover_tracking_sequences(root)
        except TrackingDataError:
            return None
    frames = 0
    problems: list[tuple[str, str]] = []
    for sequence in _with_progress(sequences, "checking tracking sequences", progress):
        reason = unscorable_reason(sequence)
        if reason is not None:
            problems.append((sequence.name, reason))
            continue
        unreadable = []
        for path in sequence.frame_paths:
            try:
                load_frame(path)
            except OSError as error:
                unreadable.append((sequence.name, image_error_text(path, error)))
        problems.extend(unreadable)
        frames += 0 if unreadable else len(sequence)
    return TrackingCheck(folder, [sequence.name for sequence in sequences], frames, problems,
                         [str(warning.message) for warning in caught])


def tracking_protocol(feature_fn: FeatureFn, sequences: Sequence[TrackingSequence],
                      config: TrackerConfig | None = None, progress: bool = False) -> dict[str, Any]:
    """Track every sequence from its first ground-truth box; OTB scores averaged over the scored sequences.

    A sequence that cannot be read or scored (see :func:`unscorable_reason`, or a frame image that
    cannot be read) is left out with a warning naming it and the reason; a TrackingDataError
    names every reason when no sequence is left to score.

    Returns {"precision@20", "success_auc", "mean_iou", "num_sequences" (the scored ones),
    "sequences_scored", "sequences_skipped", "left_out" [(name, reason)], "precision_curve" (51,),
    "success_curve" (21,), "sequences": [SequenceResult of each scored sequence, with per-frame
    boxes and metrics]}.
    """
    if not sequences:
        raise TrackingDataError("tracking_protocol: no sequences")
    results = []
    left_out: list[tuple[str, str]] = []
    for sequence in _with_progress(sequences, "tracking", progress):
        reason = unscorable_reason(sequence)
        if reason is not None:
            left_out.append((sequence.name, reason))
            continue
        tracker = SiameseTracker(feature_fn, config)
        try:
            boxes = tracker.track(sequence_frames(sequence), sequence.boxes[0])
        except TrackingDataError as error:
            left_out.append((sequence.name, str(error)))
            continue
        results.append(SequenceResult(sequence.name, boxes, otb_metrics(boxes, sequence.boxes)))
    if not results:
        raise TrackingDataError(f"tracking_protocol: none of the {len(sequences)} sequences can be scored: "
                                + "; ".join(f"{name}: {reason}" for name, reason in left_out))
    for name, reason in left_out:
        warnings.warn(f"tracking: sequence {name} left out: {reason}", stacklevel=2)
    precision = np.mean([r.metrics["precision_curve"] for r in results], axis=0)
    success = np.mean([r.metrics["success_curve"] for r in results], axis=0)
    return {
        "precision@20": float(np.mean([r.metrics["precision"] for r in results])),
        "success_auc": float(success.mean()),
        "mean_iou": float(np.mean([r.metrics["mean_iou"] for r in results])),
        "num_sequences": len(results),
        "sequences_scored": len(results),
        "sequences_skipped": len(left_out),
        "left_out": left_out,
        "precision_curve": precision,
        "success_curve": success,
        "sequences": results,
    }
