"""Frozen encoders and per-video features for every evaluation protocol.

A checkpoint written by the training engine holds ``"method"`` (registry name), ``"config"``
(the full profile dict the run used, with its ``"data"`` and method sections) and ``"model"``
(the method's state dict). ``load_encoder`` rebuilds the method, loads the weights and hands
back only the trunk used for evaluation, together with how its inputs must be made
(``InputSpec``).

Pooling over frames (2D encoders) is the choice that decides motion classes: the mean over
frame features is the papers' protocol and cannot tell a video from its time reversal;
``"concat"`` keeps the frames in temporal order and can.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seco_lab.engine.device import resolve_device as resolve_training_device
from seco_lab.engine.workers import end_with_parent
from seco_lab.methods.base import (
    INPUT_MODES, Method, clip_frames_to_read, frame_pairs, frames_to_sample, stabilized, uses_differences,
)
from seco_lab.samplers import evenly_spaced_frames, uniform_clip_indices
from seco_lab.transforms.functional import (
    IMAGENET_MEAN, IMAGENET_STD, frame_differences, normalize, paired_frame_differences, to_float01,
)
from seco_lab.transforms.recipes import eval_transform

POOLINGS = ("mean", "concat")
ENCODER_KINDS = ("2d", "3d")


class EvaluationError(RuntimeError):
    """A checkpoint, dataset or option that an evaluation protocol cannot use."""


@dataclass(frozen=True)
class InputSpec:
    """How evaluation inputs are made for one encoder.

    size: shorter side after decoding; crop_size: side of the centre crop fed to the encoder;
    clip_frames / stride: temporal extent of one 3D clip (ignored by 2D encoders);
    input_mode: ``"rgb"``, ``"frame_differences"`` (motion-only input, one more frame read) or
    ``"stabilized_differences"`` (the same after undoing the camera's shift between the two frames);
    mean / std: normalisation of RGB input by ``eval_transform`` (None: [0, 1] input, as
    CVRL/DualVar). Frame differences are taken on [0, 1] pixels and never normalised, whatever
    mean / std hold (:func:`centre_crop_transform` makes inputs either way).
    """

    size: int = 64
    crop_size: int = 56
    clip_frames: int = 8
    stride: int = 1
    input_mode: str = "rgb"
    mean: tuple[float, ...] | None = IMAGENET_MEAN
    std: tuple[float, ...] | None = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.input_mode not in INPUT_MODES:
            raise EvaluationError(
                f"input_mode {self.input_mode!r} is not one of {', '.join(INPUT_MODES)}"
            )
        if self.crop_size > self.size:
            raise EvaluationError(f"crop_size {self.crop_size} is larger than size {self.size}")

    @classmethod
    def from_config(cls, config: dict[str, Any], method: str) -> InputSpec:
        """Read the spec from a run's full config (``"data"`` section + method section).

        A method section naming a ``"backbone"`` (the supervised baseline) defers to that
        backbone's section, whose encoder and inputs it reuses.
        """
        data = config.get("data", {})
        section = config.get(method, {})
        if "backbone" in section:
            section = config.get(section["backbone"], section)
        defaults = cls()
        return cls(
            size=int(data.get("size", defaults.size)),
            crop_size=int(data.get("crop_size", defaults.crop_size)),
            clip_frames=int(section.get("clip_frames", data.get("clip_frames", defaults.clip_frames))),
            stride=int(section.get("stride", data.get("stride", defaults.stride))),
            input_mode=str(section.get("input_mode", data.get("input_mode", defaults.input_mode))),
            mean=_optional_tuple(section.get("mean", data.get("mean", defaults.mean))),
            std=_optional_tuple(section.get("std", data.get("std", defaults.std))),
        )


def _optional_tuple(values: Sequence[float] | None) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in values)


@dataclass
class LoadedEncoder:
    """A frozen trunk ready for evaluation.

    module: 2D encoders map (N, C, H, W) -> (N, D) and offer ``forward_map`` -> (N, D, h, w);
    3D encoders map (N, C, T, H, W) -> (N, D). kind: ``"2d"`` or ``"3d"``.
    """

    module: nn.Module
    kind: str
    input_spec: InputSpec
    method: str = "unknown"
    config: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None

    def __post_init__(self) -> None:
        if self.kind not in ENCODER_KINDS:
            raise EvaluationError(f"encoder kind {self.kind!r} is not one of {', '.join(ENCODER_KINDS)}")

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Features of one video's frames ``(T, C, H, W)`` uint8, made as evaluation makes them
        (shorter side to ``input_spec.size``, centre crop, the input mode; eval mode, no gradient).

        2D encoders: one feature per frame, ``(T, D)``; with frame differences one per pair of
        consecutive frames, ``(T - 1, D)``. 3D encoders: the frames are one clip, ``(D,)``
        (frame differences: T - 1 of them). ``"stabilized_differences"`` aligns the frames to
        the first (``stabilize_clip``): each consecutive pair then differs as evaluation's (t, t + 1)
        pairs do, except in a border as wide as the camera's drift from the first frame. Returned
        on the CPU.
        """
        if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8 or frames.ndim != 4:
            shown = (f"{tuple(frames.shape)} {frames.dtype}" if isinstance(frames, torch.Tensor)
                     else type(frames).__name__)
            raise EvaluationError(f"encode takes one video's frames as a (T, C, H, W) uint8 tensor, got {shown}")
        spec = self.input_spec
        inputs = centre_crop_transform(spec)(stabilized(frames, spec.input_mode, paired=False))  # (T, C, crop, crop)
        if uses_differences(spec.input_mode):
            if frames.shape[0] < 2:
                raise EvaluationError("encode: frame differences need at least 2 frames, got 1")
            inputs = inputs[1:] - inputs[:-1]  # (T - 1, C, crop, crop), on [0, 1] pixels
        was_training = self.module.training
        self.module.eval()
        try:
            device = _module_device(self.module)
            if self.kind == "2d":
                return self.module(inputs.to(device)).float().cpu()  # (T', D)
            return self.module(inputs.permute(1, 0, 2, 3).unsqueeze(0).to(device))[0].float().cpu()  # (D,)
        finally:
            self.module.train(was_training)

    @property
    def feature_dim(self) -> int:
        """Width D of one frame/clip feature (probed with a dummy input if not declared)."""
        declared = getattr(self.module, "feature_dim", None)
        if declared is not None:
            return int(declared)
        spec = self.input_spec
        if self.kind == "2d":
            dummy = torch.zeros(1, 3, spec.crop_size, spec.crop_size)
        else:
            dummy = torch.zeros(1, 3, spec.clip_frames, spec.crop_size, spec.crop_size)
        was_training = self.module.training
        self.module.eval()
        with torch.no_grad():
            width = int(self.module(dummy.to(_module_device(self.module))).shape[1])
        self.module.train(was_training)
        return width


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """A ``torch.device`` as given; a name as the trainer reads it (``"auto"``: CUDA when
    available, else CPU), so that an unknown name or CUDA on a machine without it is a
    ``DeviceError`` naming the choices."""
    if isinstance(device, torch.device):
        return device
    return resolve_training_device(device)


def _module_device(module: nn.Module) -> torch.device:
    for tensor in module.parameters():
        return tensor.device
    return torch.device("cpu")


def _run_seed(state: dict[str, Any]) -> int:
    """The seed a checkpoint's run was trained with (0, ``pretrain``'s default, when it records none)."""
    return int((state.get("train_config") or {}).get("seed", 0))


def _initial_method(method_name: str, config: dict[str, Any], seed: int) -> Method:
    """The method as ``pretrain`` builds it for ``config`` and ``seed``, on the CPU after seeding
    torch's CPU generator with ``seed``; the caller's generators are left as they were."""
    from seco_lab.methods import build_method

    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return build_method(method_name, config)


def load_encoder(checkpoint_path: str | Path, weights: str = "checkpoint",
                 device: str | torch.device = "cpu") -> LoadedEncoder:
    """Rebuild a run's method from its checkpoint and return its evaluation trunk.

    weights: ``"checkpoint"`` loads the trained weights; ``"random"`` rebuilds the run's random
    initial weights from its config and seed (seed 0 when the checkpoint records none), the same
    at every call: those ``pretrain --epochs 0`` writes with the run's settings and seed (except a
    SeCo run's ``init_checkpoint``, which is not loaded: these are the random weights it replaces).
    The trunk is returned in eval mode.
    """
    from seco_lab.methods import build_method

    checkpoint_path = Path(checkpoint_path)
    if checkpoint_path.is_dir():
        raise EvaluationError(f"{checkpoint_path} is a folder, not a checkpoint file: give the checkpoint in it, "
                              f"e.g. {checkpoint_path / 'checkpoint.pt'}")
    if not checkpoint_path.is_file():
        raise EvaluationError(f"{checkpoint_path}: checkpoint file not found")
    if weights not in ("checkpoint", "random"):
        raise EvaluationError(f"weights must be 'checkpoint' or 'random', got {weights!r}")
    try:
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged zip/pickle
        raise EvaluationError(f"{checkpoint_path}: not a readable checkpoint ({type(error).__name__}: {error})") from error
    missing = [key for key in ("method", "config", "model") if key not in state]
    if missing:
        raise EvaluationError(
            f"{checkpoint_path}: not a seco_lab checkpoint (missing keys: {', '.join(missing)})"
        )
    method_name = str(state["method"])
    config = dict(state["config"])
    if weights == "random":
        method = _initial_method(method_name, config, _run_seed(state))
    else:
        method = build_method(method_name, config)
        method.load_state_dict(state["model"])
        if state.get("finished") is False:
            warnings.warn(f"{checkpoint_path}: its run stopped at step {state.get('step')} of "
                          f"{state.get('total_steps')}, before it finished; these are the weights of that step "
                          "(pretrain --resume with the run's options finishes it)", stacklevel=2)
    kind = str(getattr(method, "encoder_kind", "2d"))
    trunk = method.encoder().to(resolve_device(device)).eval()
    return LoadedEncoder(
        module=trunk,
        kind=kind,
        input_spec=InputSpec.from_config(config, method_name),
        method=method_name,
        config=config,
        checkpoint=checkpoint_path,
    )


def evaluation_settings(profile: str | dict[str, Any] | None, encoder: LoadedEncoder) -> dict[str, Any]:
    """The ``"eval"`` section: of the named profile, of a given profile dict, or (None) of the
    checkpoint's own config, falling back to the ``standard`` profile's. A profile's
    ``eval_<method>`` section (the paper profile's ``eval_dualvar``) wins for that method's encoders."""
    from seco_lab.profiles import fold_method_sections, get_profile

    if isinstance(profile, str):
        settings = fold_method_sections(get_profile(profile), encoder.method)["eval"]
    elif isinstance(profile, dict):
        settings = copy.deepcopy(fold_method_sections(profile, encoder.method).get("eval", profile))
    else:
        settings = copy.deepcopy(encoder.config.get("eval", get_profile("standard")["eval"]))
    base = get_profile("standard")["eval"]
    return {**base, **settings}


# --------------------------------------------------------------------------- pure pieces


def pool_frame_features(frame_features: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """Pool per-frame features of each video.

    frame_features: (N, T, D) in temporal order. ``"mean"`` -> (N, D) (the papers' protocol,
    blind to frame order); ``"concat"`` -> (N, T * D), frames kept in temporal order.
    """
    if frame_features.ndim != 3:
        raise EvaluationError(f"frame features must be (N, T, D), got shape {tuple(frame_features.shape)}")
    if pooling == "mean":
        return frame_features.mean(dim=1)
    if pooling == "concat":
        return frame_features.reshape(frame_features.shape[0], -1)  # (N, T * D)
    raise EvaluationError(f"pooling {pooling!r} is not one of {', '.join(POOLINGS)}")


def crop_offsets(height: int, width: int, crop_size: int, num_crops: int) -> list[tuple[int, int]]:
    """Top-left corners of 1 (centre) or 3 (start, centre, end of the longer side) square crops."""
    centre = ((height - crop_size) // 2, (width - crop_size) // 2)
    if num_crops == 1:
        return [centre]
    if num_crops != 3:
        raise EvaluationError(f"num_crops must be 1 or 3, got {num_crops}")
    if width >= height:
        return [(centre[0], 0), centre, (centre[0], width - crop_size)]
    return [(0, centre[1]), centre, (height - crop_size, centre[1])]


def normalise_frames(frames: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """uint8 (T, C, H, W) -> float32 (T, C, H, W) in [0, 1], then mean/std normalised unless the
    spec has none or the input is frame differences (which are taken on [0, 1] pixels)."""
    pixels = to_float01(frames)
    if spec.mean is None or spec.std is None or uses_differences(spec.input_mode):
        return pixels
    return normalize(pixels, spec.mean, spec.std)


def apply_input_mode(frames: torch.Tensor, spec: InputSpec, kind: str = "3d") -> torch.Tensor:
    """Turn processed frames into encoder inputs (T, C, H, W); RGB passes through.

    Frame differences (stabilized or not, see ``read_input_frames``): a 3D clip of T+1 frames gives
    T differences of consecutive frames; for 2D encoders the frames come in (t, t+1) pairs (see
    ``_frames_to_read``) and each pair gives one difference frame, as the SeCo view maker makes them.
    """
    if not uses_differences(spec.input_mode):
        return frames
    if kind == "2d":
        return paired_frame_differences(frames)
    return frame_differences(frames)


def _frames_to_read(indices: np.ndarray, spec: InputSpec, num_frames: int, kind: str = "3d") -> np.ndarray:
    """Frame indices to decode: a 2D encoder on frame differences needs frame t + 1 beside each
    picked frame t, as the methods' view makers read them (a 3D encoder's clip is drawn with its
    extra frame already, see ``clip_frames_to_read``)."""
    if kind == "2d" and uses_differences(spec.input_mode):
        return frame_pairs(indices, num_frames)
    return np.asarray(indices)


def read_input_frames(path: Path, indices: np.ndarray, spec: InputSpec, num_frames: int, kind: str) -> torch.Tensor:
    """The decoded frames uint8 ``(N, C, H, W)`` an encoder's input is made from, for the frames
    ``indices`` picked (``_frames_to_read``), with the camera's shifts undone for
    ``"stabilized_differences"`` (a 2D encoder's (t, t + 1) pairs each, a 3D encoder's clip as a whole)."""
    frames = _read_frames(path, _frames_to_read(indices, spec, num_frames, kind), spec.size, num_frames)
    return stabilized(frames, spec.input_mode, paired=kind == "2d")


def evaluation_frames(num_frames: int, frames_per_video: int, input_mode: str) -> np.ndarray:
    """The frames ``(frames_per_video,)`` a 2D encoder's features come from: evenly spaced over the
    frames a difference can start at (all but the last with frame differences)."""
    return evenly_spaced_frames(frames_to_sample(num_frames, input_mode), frames_per_video)


def centre_crop_transform(spec: InputSpec) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 (T, C, H, W) -> float32 (T, C, crop, crop): ``eval_transform`` (shorter side to
    ``spec.size``, centre crop, normalisation as in ``normalise_frames``)."""
    plain = spec.mean is None or spec.std is None or uses_differences(spec.input_mode)
    return eval_transform(spec.crop_size, resize_size=spec.size,
                          mean=None if plain else spec.mean, std=None if plain else spec.std)


# --------------------------------------------------------------------------- datasets of eval views


def _read_frames(path: Path, indices: Sequence[int], size: int, num_frames: int | None = None) -> torch.Tensor:
    from seco_lab.video.io import read_frames

    return read_frames(path, [int(i) for i in indices], size=size, num_frames=num_frames)


def probe_num_frames(records: Sequence[Any]) -> list[int]:
    """Decodable frame count of each record (``VideoRecord.path``)."""
    from seco_lab.video.io import probe_video

    return [probe_video(record.path).num_frames for record in records]


class EvalViewDataset(torch.utils.data.Dataset):
    """Deterministic evaluation views of each video.

    2D: item ``"views"`` is (T, C, crop, crop) — ``frames_per_video`` evenly spaced frames,
    centre crop. 3D: (V, C, clip_frames, crop, crop) — ``clips_per_video`` evenly spaced clips
    times ``num_crops`` spatial crops (V = clips * crops).
    """

    def __init__(self, records: Sequence[Any], num_frames: Sequence[int], kind: str, spec: InputSpec,
                 frames_per_video: int = 8, clips_per_video: int = 1, num_crops: int = 1):
        if len(records) != len(num_frames):
            raise EvaluationError(f"{len(records)} records but {len(num_frames)} frame counts")
        self.records = list(records)
        self.num_frames = [int(n) for n in num_frames]
        self.kind = kind
        self.spec = spec
        self.frames_per_video = frames_per_video
        self.clips_per_video = clips_per_video
        self.num_crops = num_crops
        self.transform = centre_crop_transform(spec)

    def __len__(self) -> int:
        return len(self.records)

    def _frames(self, record: Any, indices: np.ndarray, num_frames: int) -> torch.Tensor:
        return read_input_frames(record.path, indices, self.spec, num_frames, self.kind)

    def __getitem__(self, i: int) -> dict[str, Any]:
        record, num_frames = self.records[i], self.num_frames[i]
        spec = self.spec
        if self.kind == "2d":
            indices = evaluation_frames(num_frames, self.frames_per_video, spec.input_mode)
            frames = self._frames(record, indices, num_frames)
            views = apply_input_mode(self.transform(frames), spec, "2d")  # (T, C, crop, crop)
        else:
            clips = []
            clip_length = clip_frames_to_read(spec.clip_frames, spec.input_mode)
            for indices in uniform_clip_indices(num_frames, clip_length, spec.stride, self.clips_per_video):
                frames = self._frames(record, indices, num_frames)
                if self.num_crops == 1:
                    crops = [self.transform(frames)]
                else:
                    crops = [
                        normalise_frames(frames[..., top:top + spec.crop_size, left:left + spec.crop_size], spec)
                        for top, left in crop_offsets(frames.shape[-2], frames.shape[-1], spec.crop_size, self.num_crops)
                    ]
                for crop in crops:
                    clip = apply_input_mode(crop, spec)  # (T, C, crop, crop)
                    clips.append(clip.permute(1, 0, 2, 3))  # (C, T, crop, crop)
            views = torch.stack(clips)  # (V, C, T, crop, crop)
        return {"views": views, "label": int(record.label), "index": i}


# --------------------------------------------------------------------------- feature extraction


def video_progress_bar(progress: bool, total: int, description: str, keep: bool = True) -> Any:
    """A tqdm bar counting ``total`` videos under ``description`` (nothing shown when ``progress``
    is False); ``keep``: the finished bar stays on screen."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="video", leave=keep, dynamic_ncols=True, disable=not progress)


@torch.no_grad()
def encode_views(module: nn.Module, kind: str, views: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Encode a batch of videos' views.

    2D: views (B, T, C, H, W) -> (B, T, D). 3D: views (B, V, C, T, H, W) -> (B, V, D).
    Inputs are sent in chunks of at most ``batch_size`` frames/clips.
    """
    batch, per_video = views.shape[:2]
    flat = views.reshape(batch * per_video, *views.shape[2:])  # (B * T, C, H, W) or (B * V, C, T, H, W)
    outputs = [module(chunk) for chunk in flat.split(max(batch_size, 1))]
    features = torch.cat(outputs).float()
    return features.reshape(batch, per_video, -1)  # (B, T|V, D)


def iterate_view_features(encoder: LoadedEncoder, dataset: torch.utils.data.Dataset, batch_size: int = 64,
                          device: str | torch.device = "auto", num_workers: int = 0, progress: bool = False,
                          description: str = "features",
                          keep_progress: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (features (B, T|V, D) on CPU, labels (B,)) for consecutive videos of ``dataset``;
    ``progress`` shows a bar of the videos named ``description`` (``keep_progress``: it stays
    on screen once finished)."""
    device = resolve_device(device)
    module = encoder.module.to(device)
    was_training = module.training
    module.eval()
    videos_per_batch = max(1, batch_size // max(1, _views_per_video(dataset)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=videos_per_batch, shuffle=False,
                                         num_workers=num_workers, worker_init_fn=end_with_parent)
    try:
        with video_progress_bar(progress, len(dataset), description, keep_progress) as bar:
            for batch in loader:
                views = batch["views"].to(device, non_blocking=True)
                features = encode_views(module, encoder.kind, views, batch_size).cpu()
                bar.update(len(views))
                yield features, batch["label"]
    finally:
        module.train(was_training)


def _views_per_video(dataset: Any) -> int:
    if isinstance(dataset, EvalViewDataset):
        if dataset.kind == "2d":
            return dataset.frames_per_video
        return dataset.clips_per_video * dataset.num_crops
    return 1


def extract_video_features(encoder: LoadedEncoder, records: Sequence[Any], input_spec: InputSpec | None = None,
                           frames_per_video: int | None = None, clips_per_video: int | None = None,
                           pooling: str = "mean", batch_size: int = 64, device: str | torch.device = "auto",
                           progress: bool = False, num_frames: Sequence[int] | None = None, num_crops: int = 1,
                           keep_views: bool = False, num_workers: int = 0, description: str = "features",
                           keep_progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-video features of ``records`` from a frozen encoder.

    2D encoders: ``frames_per_video`` evenly spaced frames, centre crop, frame features pooled
    by ``pooling`` -> features (N, D) for ``"mean"`` or (N, frames * D) for ``"concat"``.
    3D encoders: ``clips_per_video`` evenly spaced clips (x ``num_crops`` crops), clip features
    averaged -> (N, D); with ``keep_views=True`` the per-clip features are kept: (N, V, D)
    (2D encoders then return (N, 1, D')). ``frames_per_video`` / ``clips_per_video`` left None
    are the encoder's evaluation settings (:func:`evaluation_settings` without a profile: its
    checkpoint's ``eval`` section), those ``run_protocol`` extracts with when given no profile.
    num_frames: frame count per record (probed if None).
    ``records`` are a dataset's ``VideoRecord`` s, or any objects with a video file's ``path`` and
    an integer ``label`` (for frames already in memory, :meth:`LoadedEncoder.encode`).
    ``progress`` shows a bar of the videos named ``description`` (``keep_progress``: it stays on
    screen once finished). Returns (features float32, labels int64 (N,)).
    """
    if pooling not in POOLINGS:
        raise EvaluationError(f"pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
    spec = input_spec or encoder.input_spec
    settings = evaluation_settings(None, encoder)
    frames_per_video = int(settings["frames_per_video"]) if frames_per_video is None else frames_per_video
    clips_per_video = int(settings["clips_per_video"]) if clips_per_video is None else clips_per_video
    counts = list(num_frames) if num_frames is not None else probe_num_frames(records)
    dataset = EvalViewDataset(records, counts, encoder.kind, spec, frames_per_video=frames_per_video,
                              clips_per_video=clips_per_video, num_crops=num_crops)
    chunks: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    for features, batch_labels in iterate_view_features(encoder, dataset, batch_size, device, num_workers, progress,
                                                        description, keep_progress):
        if encoder.kind == "2d":
            video_features = pool_frame_features(features, pooling).unsqueeze(1)  # (B, 1, D')
        else:
            video_features = features  # (B, V, D)
        chunks.append(video_features if keep_views else video_features.mean(dim=1))
        labels.append(batch_labels)
    if not chunks:
        raise EvaluationError("no records to extract features from")
    return torch.cat(chunks).numpy().astype(np.float32), torch.cat(labels).numpy().astype(np.int64)


# --------------------------------------------------------------------------- BatchNorm re-estimation


@torch.no_grad()
def recompute_bn_stats_from_batches(module: nn.Module, batches: Iterable[torch.Tensor],
                                    device: str | torch.device = "cpu") -> nn.Module:
    """Re-estimate every BatchNorm's running mean/var as the average over ``batches``.

    Running statistics are reset, BN layers run in train mode with a cumulative average
    (momentum None) while every other layer stays in eval mode; no parameter changes.
    The module is returned in eval mode with its original momenta restored. When it fails (no
    batches, or one the module cannot take) the module is left as it was given: statistics,
    momenta and train/eval modes.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return module.eval()
    statistics = [{name: buffer.clone() for name, buffer in norm.named_buffers()} for norm in norms]
    modes = [(layer, layer.training) for layer in module.modules()]
    momenta = [norm.momentum for norm in norms]
    module.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    try:
        seen = 0
        for batch in batches:
            module(batch.to(device))
            seen += 1
        if seen == 0:
            raise EvaluationError("recompute_bn_stats: no batches were given")
    except BaseException:
        for norm, buffers in zip(norms, statistics):
            for name, buffer in norm.named_buffers():
                buffer.copy_(buffers[name])
        for layer, training in modes:
            layer.train(training)
        raise
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
    return module.eval()


def recompute_bn_stats(encoder: LoadedEncoder, train_records: Sequence[Any], num_frames: Sequence[int] | None = None,
                       frames_per_video: int = 8, clips_per_video: int = 1, max_videos: int | None = 512,
                       batch_size: int = 64, device: str | torch.device = "auto", seed: int = 0,
                       num_workers: int = 0, progress: bool = False) -> LoadedEncoder:
    """Re-estimate the encoder's BatchNorm statistics on training videos (the fair random baseline).

    A randomly initialised encoder's running statistics are the defaults (mean 0, var 1);
    re-estimating them on the data it will be evaluated on changes its linear score, so
    report which baseline is used. Uses the evaluation views of up to ``max_videos`` train
    videos (a seeded random subset), decoded by ``num_workers`` processes (0: this one);
    ``progress`` shows a bar of the videos. Modifies ``encoder.module`` in place and returns ``encoder``.
    """
    device = resolve_device(device)
    counts = list(num_frames) if num_frames is not None else probe_num_frames(train_records)
    order = np.arange(len(train_records))
    if max_videos is not None and len(order) > max_videos:
        order = np.sort(np.random.default_rng(seed).choice(len(order), size=max_videos, replace=False))
    dataset = EvalViewDataset([train_records[i] for i in order], [counts[i] for i in order], encoder.kind,
                              encoder.input_spec, frames_per_video=frames_per_video,
                              clips_per_video=clips_per_video)
    videos_per_batch = max(1, batch_size // max(1, _views_per_video(dataset)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=videos_per_batch, shuffle=False,
                                         num_workers=num_workers, worker_init_fn=end_with_parent)

    def batches(bar: Any) -> Iterator[torch.Tensor]:
        for batch in loader:
            views = batch["views"]
            yield views.reshape(-1, *views.shape[2:])  # (B * T, C, H, W) or (B * V, C, T, H, W)
            bar.update(len(views))

    encoder.module.to(device)
    with video_progress_bar(progress, len(dataset), "BatchNorm statistics: train") as bar:
        recompute_bn_stats_from_batches(encoder.module, batches(bar), device)
    return encoder
