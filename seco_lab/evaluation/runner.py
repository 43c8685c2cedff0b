"""One entry point for every protocol: ``run_protocol``, and ``run_protocols`` for several at
once (used by ``python -m seco_lab evaluate``).

Loads a checkpoint's trunk, builds the features or trains what the protocol needs, and
returns a flat dict of metrics (numbers and short strings) with the wall time, plus tracking's
per-sequence scores (``per_sequence``, ``left_out``); the same dict is appended as one JSON line
to ``<checkpoint folder>/results.jsonl``.
"""

from __future__ import annotations

import copy
import json
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seco_lab.evaluation.features import (
    POOLINGS, EvaluationError, LoadedEncoder, evaluation_settings, extract_video_features, load_encoder,
    pool_frame_features, recompute_bn_stats, resolve_device,
)
from seco_lab.evaluation.finetune import finetune_protocol
from seco_lab.evaluation.knn import knn_protocol
from seco_lab.evaluation.linear import linear_protocol
from seco_lab.evaluation.linear_svm import linear_svm_protocol, record_groups
from seco_lab.evaluation.metrics import chance_accuracy, majority_class_accuracy
from seco_lab.evaluation.retrieval import retrieval_protocol
from seco_lab.evaluation.target_probe import dataset_targets, ground_truth_svm, target_probe
from seco_lab.evaluation.tracking import (
    TrackerConfig, TrackingDataError, discover_tracking_sequences, tracking_protocol, trunk_feature_fn,
)
from seco_lab.methods.base import uses_differences
from seco_lab.profiles import ProfileError, check_profile_values
from seco_lab.video.index import MIN_USABLE_FRAMES
from seco_lab.video.synth import SynthDatasetError

PROTOCOLS = ("linear-svm", "linear", "knn", "finetune", "retrieval", "tracking", "target-probe")
UNPOOLED_PROTOCOLS = ("tracking", "target-probe")  # scored per frame or per sequence, not per pooled video
RUN_OPTIONS = ("split", "layout", "weights", "progress", "seed", "results_file", "num_workers", "max_videos_per_class")
BN_STATS = ("checkpoint", "train")


def _scalars(result: dict[str, Any]) -> dict[str, Any]:
    """Keep numbers, booleans and strings (arrays and per-sample outputs are left out)."""
    flat: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, (bool, int, float, str)):
            flat[key] = value
        elif isinstance(value, np.generic):
            flat[key] = value.item()
    return flat


def append_result(results_file: Path, metrics: dict[str, Any]) -> None:
    """Append one JSON line to ``results_file`` (folders created as needed)."""
    results_file.parent.mkdir(parents=True, exist_ok=True)
    with results_file.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(metrics, default=float) + "\n")


def read_results(results_file: str | Path) -> list[dict[str, Any]]:
    """All JSON lines of a ``results.jsonl`` (empty list when it does not exist)."""
    results_file = Path(results_file)
    if not results_file.is_file():
        return []
    lines = results_file.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@dataclass
class VideoSplits:
    """A dataset's train and test records with their decodable frame counts."""

    spec: Any
    train: list[Any]
    test: list[Any]
    train_frames: list[int]
    test_frames: list[int]

    @property
    def num_classes(self) -> int:
        """The classes the dataset lists (the classifiers' outputs), with usable videos or not."""
        return len(self.spec.classes)

    @property
    def num_train_classes(self) -> int:
        """The classes with training videos: those a classifier chooses from, and :attr:`chance` guesses among."""
        return len({record.label for record in self.train})

    @property
    def chance(self) -> float:
        """Expected top-1 (%) of a uniform guess among the classes with training videos (a partial
        download may list classes that have no video), see :func:`chance_accuracy`."""
        return chance_accuracy(np.array([r.label for r in self.train]), np.array([r.label for r in self.test]))


def _empty_split_hint(spec: Any, split: int, train: list[Any], test: list[Any]) -> str:
    """How to fill the empty split of a folders layout split by a hash of the file names ("" for
    any other layout, or when both splits are empty)."""
    if not spec.hashed_split or not (train or test):
        return ""
    another, empty = split + 1, "test" if train else "train"
    return (f": the folders layout puts each video in train or test by a hash of its file name, salted by the split "
            f"number ({split} here), and none landed in {empty} (class folders that reuse the same file names land "
            f"alike); split {another} (--split {another}, for pretrain as for evaluate) hashes them another way, and "
            "train/ and test/ folders of class folders set the split yourself")


def load_video_splits(data_root: str | Path, split: int = 1, layout: str = "auto", progress: bool = False,
                      max_videos_per_class: int | None = None, min_frames: int = 1) -> VideoSplits:
    """Index a dataset (any supported layout) and return its usable train/test records (at most
    ``max_videos_per_class`` of each class and split when given) with at least ``min_frames``
    decodable frames: shorter ones are left out, and the note on the skipped files counts them."""
    from seco_lab.video.index import load_dataset

    spec, index = load_dataset(data_root, layout=layout, split=split, progress=progress,
                               max_videos_per_class=max_videos_per_class, min_frames=min_frames)
    train, test = spec.split("train"), spec.split("test")
    if not train or not test:
        raise EvaluationError(f"{data_root}: needs train and test videos, found {len(train)} train / {len(test)} test"
                              + _empty_split_hint(spec, split, train, test))
    train_classes = sorted({record.class_name for record in train})
    if len(train_classes) < 2:
        raise EvaluationError(f"{data_root}: the evaluation protocols classify videos and need at least 2 classes "
                              f"with training videos; found {len(train_classes)} ({', '.join(train_classes)}). "
                              "Is --data one folder too high (see `python -m seco_lab data check`)?")
    tested_classes = {record.class_name for record in test}
    untested = [name for name in train_classes if name not in tested_classes]
    if untested:
        tested = len(train_classes) - len(untested)
        warnings.warn(
            f"{data_root}: the test split holds videos of {tested} of the {len(train_classes)} classes with training "
            f"videos (none of {', '.join(untested[:5])}{', ...' if len(untested) > 5 else ''}): every test score "
            "measures those classes only" + (", and with one class tested, a classifier that always predicts it "
                                            "scores 100 %" if tested == 1 else ""), stacklevel=2)
    return VideoSplits(spec, train, test, [index[r].num_frames for r in train], [index[r].num_frames for r in test])


def track_encoder(encoder: LoadedEncoder, data_root: Path, settings: dict[str, Any], device: Any = "cpu",
                  progress: bool = False) -> dict[str, Any]:
    """The tracking protocol on every OTB sequence under ``data_root``: scores, curves and the
    per-sequence boxes (``"sequences"``), or ``{"skipped": reason}`` for a 3D encoder."""
    if encoder.kind != "2d":
        return {"skipped": f"tracking needs a 2D frame encoder's feature map; method {encoder.method!r} "
                           f"has a {encoder.kind} encoder"}
    spec = encoder.input_spec
    plain = spec.mean is None or spec.std is None
    feature_fn = trunk_feature_fn(encoder.module, mean=(0.0, 0.0, 0.0) if plain else spec.mean,
                                  std=(1.0, 1.0, 1.0) if plain else spec.std, device=device)
    config = TrackerConfig(exemplar_size=int(settings["tracking_exemplar_size"]),
                           instance_size=int(settings["tracking_instance_size"]),
                           num_scales=int(settings["tracking_num_scales"]),
                           feature_norm=str(settings["tracking_feature_norm"]))
    result = tracking_protocol(feature_fn, discover_tracking_sequences(data_root), config, progress=progress)
    if uses_differences(spec.input_mode):
        result["input_note"] = ("this trunk was trained on frame differences; the tracker correlates single RGB "
                                "frames, an input it never saw in training")
    return result


def probe_targets(encoder: LoadedEncoder, data_root: Path, splits: VideoSplits,
                  features: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], settings: dict[str, Any],
                  seed: int = 0) -> dict[str, Any]:
    """The target probe (``seco_lab.evaluation.target_probe``) on a frame encoder's frozen
    features ``(train_x, train_y, test_x, test_y)``: the test R² of the target's x, y and radius
    read from one frame's feature, and the linear SVM's top-1 on the true values of the same
    frames (``true_targets_top1``). Needs the generated dataset (SynthDatasetError otherwise)."""
    frames, input_mode = int(settings["frames_per_video"]), encoder.input_spec.input_mode
    train_targets = dataset_targets(data_root, splits.train, frames, input_mode, splits.train_frames)
    test_targets = dataset_targets(data_root, splits.test, frames, input_mode, splits.test_frames)
    train_x, train_y, test_x, test_y = features
    r2 = target_probe(train_x, train_targets, test_x, test_targets)
    return {**{f"r2_{quantity}": value for quantity, value in r2.items()},
            "true_targets_top1": ground_truth_svm(train_targets, train_y, test_targets, test_y, C=settings["svm_c"],
                                             seed=seed)}


def tracking_details(result: dict[str, Any]) -> dict[str, Any]:
    """The per-sequence part of a tracking result, as JSON-ready lists: ``per_sequence`` (name,
    frames scored, precision@20, success AUC, mean IoU, mean centre error in px) and ``left_out``
    (name, reason); empty for a skipped protocol."""
    if "sequences" not in result:
        return {}
    return {
        "per_sequence": [{"name": sequence.name, "frames": len(sequence.boxes),
                          "precision@20": sequence.metrics["precision"], "success_auc": sequence.metrics["success_auc"],
                          "mean_iou": sequence.metrics["mean_iou"],
                          "mean_centre_error": sequence.metrics["mean_centre_error"]}
                         for sequence in result["sequences"]],
        "left_out": [{"name": name, "reason": reason} for name, reason in result["left_out"]],
    }


def _profile_num_workers(profile: str | dict[str, Any] | None, encoder: LoadedEncoder) -> int:
    """``data.num_workers`` of the profile the evaluation settings come from (``evaluation_settings``):
    the named profile's, a profile dict's when it has a ``"data"`` section, else the checkpoint's (0
    when it sets none); at most this process's usable cores (the paper profile's 8, sized for GPU
    machines, would only queue up on a small CPU)."""
    from seco_lab.engine.workers import usable_cores
    from seco_lab.profiles import get_profile

    if isinstance(profile, str):
        workers = int(get_profile(profile)["data"]["num_workers"])
    else:
        data = profile.get("data", {}) if isinstance(profile, dict) else {}
        workers = int(data.get("num_workers", encoder.config.get("data", {}).get("num_workers", 0)))
    return min(workers, usable_cores())


def _note_pretraining_subset(encoder: LoadedEncoder, checkpoint: Path) -> None:
    """Say so when a checkpoint pretrained on a subset is evaluated on every video."""
    subset = encoder.config.get("data", {}).get("max_videos_per_class")
    if subset is not None:
        print(f"note: {checkpoint} was pretrained on at most {subset} video(s) per class; evaluating on every "
              f"video (--max-videos-per-class {subset} evaluates on the same subset)", file=sys.stderr)


def run_protocol(protocol: str, checkpoint: str | Path, data_root: str | Path,
                 profile: str | dict[str, Any] | None = None, pooling: str = "mean", device: str = "auto",
                 **options: Any) -> dict[str, Any]:
    """Evaluate a checkpoint's encoder with one protocol; returns a flat dict of metrics.

    protocol: linear-svm | linear | knn | finetune | retrieval | tracking | target-probe (the
    generated dataset only, see :func:`probe_targets`).
    profile: profile name, profile dict (or its "eval" section), or None for the checkpoint's own.
    pooling: 2D encoders' pooling over frames, "mean" (papers) or "concat" (temporal order kept).
    options: any key of the profile's "eval" section (e.g. ``bn_stats="train"`` to re-estimate
    BatchNorm statistics on train videos first, ``linear_lr=...``), and ``split`` (1), ``layout``
    ("auto"), ``weights`` ("checkpoint" | "random": the run's untrained initial weights, drawn with
    the run's own seed, see :func:`~seco_lab.evaluation.features.load_encoder`), ``seed`` (0; of the
    protocols' classifiers, folds and subsets), ``progress``, ``num_workers`` (0: the videos are
    decoded in this process; None: the profile's ``data.num_workers``, as ``evaluate`` by default),
    ``max_videos_per_class`` (None: every video; else a fixed subset of each class and split),
    ``results_file`` (default: results.jsonl next to the checkpoint).
    The metrics name each eval setting given here as ``eval.KEY`` (``bn_stats`` is always named).
    """
    return run_protocols([protocol], checkpoint, data_root, profile, [pooling], device, **options)[0]


def _frozen_features(encoder: LoadedEncoder, splits: VideoSplits, settings: dict[str, Any], views: bool,
                     **common: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train_x, train_y, test_x, test_y)`` of a frozen encoder. 2D: frame features concatenated
    in temporal order (N, T * D), whatever the pooling. 3D: clip features averaged (N, D), or with
    ``views`` kept per clip (N, V, D), the test split's with ``test_crops`` crops per clip."""
    pooling = "concat" if encoder.kind == "2d" else "mean"
    keep_views = views and encoder.kind == "3d"
    train_x, train_y = extract_video_features(encoder, splits.train, num_frames=splits.train_frames, pooling=pooling,
                                              keep_views=keep_views, description="features: train", **common)
    test_x, test_y = extract_video_features(encoder, splits.test, num_frames=splits.test_frames, pooling=pooling,
                                            keep_views=keep_views,
                                            num_crops=int(settings["test_crops"]) if keep_views else 1,
                                            description="features: test", **common)
    return train_x, train_y, test_x, test_y


def _view_averaged(features_with_views: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                   encoder: LoadedEncoder, splits: VideoSplits, settings: dict[str, Any],
                   **common: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 3D encoder's ``_frozen_features`` without views, from those with views: the clip features
    averaged (as extraction averages them). The test split's views hold ``test_crops`` crops per
    clip where the averaged features have the centre crop alone: with more than one crop its
    features are extracted again."""
    train_views, train_y, test_views, test_y = features_with_views
    train_x = torch.from_numpy(train_views).mean(dim=1).numpy()  # (N, V, D) -> (N, D)
    if int(settings["test_crops"]) == 1:
        test_x = torch.from_numpy(test_views).mean(dim=1).numpy()
    else:
        test_x, _ = extract_video_features(encoder, splits.test, num_frames=splits.test_frames, pooling="mean",
                                           description="features: test, centre crop", **common)
    return train_x, train_y, test_x, test_y


def _pooled(features: np.ndarray, encoder: LoadedEncoder, pooling: str, frames_per_video: int) -> np.ndarray:
    """2D features (N, T * D) in temporal order pooled by ``pooling``; 3D features as they are."""
    if encoder.kind != "2d" or pooling == "concat":
        return features
    frames = torch.from_numpy(features).reshape(len(features), frames_per_video, -1)  # (N, T, D)
    return pool_frame_features(frames, pooling).numpy()


def run_protocols(protocols: Sequence[str], checkpoint: str | Path, data_root: str | Path,
                  profile: str | dict[str, Any] | None = None, poolings: Sequence[str] = ("mean",),
                  device: str = "auto", **options: Any) -> list[dict[str, Any]]:
    """Evaluate a checkpoint's encoder with several protocols (and, for 2D encoders' frozen
    features, several poolings); one metrics dict per result, in the order of ``protocols``
    then ``poolings``, each also appended to the results file.

    The encoder, the dataset index and the features are loaded or extracted once for all of
    them: a frame encoder's frames are encoded once and pooled both ways; a clip encoder's clips
    are encoded once, kept per clip for ``linear`` and averaged for the other protocols (with
    ``test_crops`` above 1 the test split's averaged features, of the centre crop alone, are
    extracted apart from its cropped views). ``finetune`` and
    ``tracking`` do not pool frozen features and give one result each, as do the protocols of a
    3D encoder. Arguments as :func:`run_protocol`; ``wall_time_s`` counts from the start of the
    call to each result. The protocols draw from generators seeded by ``seed``: the caller's
    torch generators are left as they were.
    """
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda_devices):
        return _run_protocols(protocols, checkpoint, data_root, profile, poolings, device, **options)


def _run_protocols(protocols: Sequence[str], checkpoint: str | Path, data_root: str | Path,
                   profile: str | dict[str, Any] | None, poolings: Sequence[str], device: str,
                   **options: Any) -> list[dict[str, Any]]:
    protocols, poolings = list(dict.fromkeys(protocols)), list(dict.fromkeys(poolings))
    unknown_protocols = [name for name in protocols if name not in PROTOCOLS]
    if unknown_protocols or not protocols:
        raise EvaluationError(f"unknown protocol {', '.join(map(repr, unknown_protocols)) or 'none given'}: "
                              f"choose one of {', '.join(PROTOCOLS)}")
    unknown_poolings = [name for name in poolings if name not in POOLINGS]
    if unknown_poolings or not poolings:
        raise EvaluationError(f"pooling {', '.join(map(repr, unknown_poolings)) or 'none given'} is not one of "
                              f"{', '.join(POOLINGS)}")
    started = time.perf_counter()
    checkpoint = Path(checkpoint)
    data_root = Path(data_root)
    device_t = resolve_device(device)
    weights = options.get("weights", "checkpoint")
    encoder = load_encoder(checkpoint, weights=weights, device=device_t)
    if encoder.kind != "2d" and poolings != ["mean"]:
        warnings.warn(f"{checkpoint}: pooling over frames ({', '.join(poolings)}) applies to frame encoders; "
                      f"this {encoder.method} clip encoder's features are the mean over its clips, one result "
                      "per protocol (pooling 'clip-mean')", stacklevel=2)
    settings = evaluation_settings(profile, encoder)
    unknown = sorted(set(options) - set(settings) - set(RUN_OPTIONS))
    if unknown:
        raise EvaluationError(
            f"unknown option(s) {', '.join(unknown)}: use run options {', '.join(RUN_OPTIONS)} "
            f"or eval settings {', '.join(sorted(settings))}")
    settings.update({key: value for key, value in options.items() if key in settings})
    try:
        check_profile_values({"eval": settings})
    except ProfileError as error:
        raise EvaluationError(str(error)) from None
    paper = profile == "paper" or encoder.config.get("profile") == "paper"
    if "finetune" in protocols and paper and device == "auto" and device_t.type == "cpu" \
            and "finetune_epochs" not in options:
        raise EvaluationError(
            f"{checkpoint}: the paper profile fine-tunes for {settings['finetune_epochs']} epochs at "
            f"{encoder.input_spec.crop_size} px, sized for GPUs, and no GPU is visible (--device auto chose the CPU), "
            "where it would take days: --set eval.finetune_epochs=N shortens it, --device cpu fine-tunes it on the "
            "CPU anyway")
    progress = bool(options.get("progress", False))
    seed = int(options.get("seed", 0))
    num_workers = options.get("num_workers", 0)
    num_workers = _profile_num_workers(profile, encoder) if num_workers is None else int(num_workers)
    context: dict[str, Any] = {
        "checkpoint": str(checkpoint), "data": str(data_root),
        **{f"eval.{key}": value for key, value in options.items() if key in settings and key != "bn_stats"},
    }
    video_context: dict[str, Any] = {}  # what the dataset's protocols (all but tracking) add
    results_file = Path(options.get("results_file") or checkpoint.parent / "results.jsonl")
    results: list[dict[str, Any]] = []

    def record(protocol: str, pooling: str, result: dict[str, Any], extra: dict[str, Any]) -> None:
        pooled_as = {} if protocol in UNPOOLED_PROTOCOLS else {
            "pooling": "clip-mean" if encoder.kind == "3d" else "segment-mean" if protocol == "finetune" else pooling}
        metrics = {"protocol": protocol, "method": encoder.method, "encoder_kind": encoder.kind, "weights": weights,
                   **pooled_as, **context,
                   **({"bn_stats": "checkpoint"} if protocol == "tracking" else video_context), **extra,
                   **_scalars(result)}
        metrics["wall_time_s"] = round(time.perf_counter() - started, 3)
        metrics["time"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        try:
            append_result(results_file, metrics)
        except OSError as error:  # a read-only or full disk: the measured result is still returned
            warnings.warn(f"{results_file}: could not record the result ({error.strerror or error}); "
                          "it is only returned (and printed by the command line)", stacklevel=2)
        results.append(metrics)

    video_protocols = [name for name in protocols if name != "tracking"]
    if "tracking" in protocols:
        try:
            tracked = track_encoder(encoder, data_root, settings, device_t, progress)
        except TrackingDataError as error:
            if not video_protocols:
                raise
            tracked = {"skipped": str(error)}  # a classification dataset without tracking sequences
            warnings.warn(f"tracking skipped: {error}; the other protocols run", stacklevel=2)
    if video_protocols:
        max_videos_per_class = options.get("max_videos_per_class")
        # Frame differences of a one-frame video are all zero, whatever it shows: such videos are
        # left out, as pretraining leaves them out, and for every encoder, so that all are scored
        # on the same videos (those the notebooks count).
        splits = load_video_splits(data_root, int(options.get("split", 1)), str(options.get("layout", "auto")), progress,
                                   max_videos_per_class=max_videos_per_class, min_frames=MIN_USABLE_FRAMES)
        if max_videos_per_class is not None:
            video_context["max_videos_per_class"] = max_videos_per_class
        elif progress:
            _note_pretraining_subset(encoder, checkpoint)
        if settings["bn_stats"] == "train":
            recompute_bn_stats(encoder, splits.train, splits.train_frames,
                               frames_per_video=int(settings["frames_per_video"]),
                               clips_per_video=int(settings["clips_per_video"]),
                               batch_size=int(settings["batch_size"]), device=device_t, seed=seed,
                               num_workers=num_workers, progress=progress)
        video_context.update({"bn_stats": settings["bn_stats"], "num_classes": splits.num_classes,
                              "num_train_classes": splits.num_train_classes, "num_train": len(splits.train),
                              "num_test": len(splits.test), "chance": splits.chance})
        video_context["majority_baseline"] = majority_class_accuracy(np.array([r.label for r in splits.train]),
                                                               np.array([r.label for r in splits.test]))
        if "knn" in protocols and len(splits.train) < int(settings["knn_k"]):
            warnings.warn(f"knn: k={settings['knn_k']} is more than the {len(splits.train)} training videos, so every "
                          "one of them votes for every test video (k is capped); --set eval.knn_k=N with a smaller "
                          "N makes kNN look at neighbours", stacklevel=2)
    common = dict(frames_per_video=int(settings["frames_per_video"]), clips_per_video=int(settings["clips_per_video"]),
                  batch_size=int(settings["batch_size"]), device=device_t, progress=progress, num_workers=num_workers)
    extracted: dict[bool, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    keeps_views = encoder.kind == "3d" and "linear" in protocols  # the linear probe scores a 3D encoder's clips

    def frozen_features(views: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The frozen features with or without views, extracted once for every protocol."""
        if views not in extracted:
            if keeps_views and not views:
                extracted[views] = _view_averaged(frozen_features(True), encoder, splits, settings, **common)
            else:
                extracted[views] = _frozen_features(encoder, splits, settings, views, **common)
        return extracted[views]

    pooled: dict[tuple[bool, str], tuple[np.ndarray, np.ndarray]] = {}  # (views, pooling) -> train, test
    for protocol in protocols:
        if protocol == "tracking":
            record(protocol, poolings[0], tracked, tracking_details(tracked))
            continue
        if protocol == "finetune":  # on a copy: the frozen protocols keep the trunk as loaded
            result = finetune_protocol(
                copy.deepcopy(encoder), splits.train, splits.test, splits.train_frames, splits.test_frames,
                splits.num_classes,
                epochs=int(settings["finetune_epochs"]), lr=float(settings["finetune_lr"]),
                optimizer=str(settings["finetune_optimizer"]), batch_size=int(settings["finetune_batch_size"]),
                weight_decay=float(settings["finetune_weight_decay"]), segments=int(settings["finetune_segments"]),
                dropout=float(settings["finetune_dropout"]), partial_bn=bool(settings["finetune_partial_bn"]),
                hflip=bool(settings["finetune_hflip"]), test_clips=int(settings["finetune_test_clips"]),
                test_crops=int(settings["finetune_test_crops"]),
                test_average=str(settings["finetune_test_average"]), device=device_t, seed=seed,
                num_workers=num_workers, progress=progress)
            result["final_train_loss"] = result["train_losses"][-1] if result["train_losses"] else float("nan")
            record(protocol, poolings[0], result, {})
            continue
        if protocol == "target-probe" and encoder.kind != "2d":
            record(protocol, poolings[0], {"skipped": f"the target probe reads frame features; method "
                                                      f"{encoder.method!r} has a {encoder.kind} encoder"}, {})
            continue
        views = protocol == "linear" and encoder.kind == "3d"
        train_x, train_y, test_x, test_y = frozen_features(views)
        if protocol == "target-probe":
            try:
                probed = probe_targets(encoder, data_root, splits, frozen_features(views), settings, seed)
            except SynthDatasetError as error:
                if len(protocols) == 1:
                    raise
                probed = {"skipped": str(error)}
                warnings.warn(f"target-probe skipped: {error}; the other protocols run", stacklevel=2)
            record(protocol, poolings[0], probed, {})
            continue
        for pooling in poolings if encoder.kind == "2d" else poolings[:1]:
            if (views, pooling) not in pooled:
                pooled[views, pooling] = (_pooled(train_x, encoder, pooling, int(settings["frames_per_video"])),
                                          _pooled(test_x, encoder, pooling, int(settings["frames_per_video"])))
            train_f, test_f = pooled[views, pooling]
            if protocol == "linear-svm":
                result = linear_svm_protocol(train_f, train_y, test_f, test_y, C=settings["svm_c"], seed=seed,
                                             train_groups=record_groups(splits.train), class_names=splits.spec.classes)
            elif protocol == "linear":
                result = linear_protocol(train_f if views else train_f[:, None], train_y,
                                         test_f if views else test_f[:, None], test_y,
                                         num_classes=splits.num_classes, lr=float(settings["linear_lr"]),
                                         epochs=int(settings["linear_epochs"]),
                                         batch_size=int(settings["linear_batch_size"]),
                                         weight_decay=float(settings["linear_weight_decay"]), seed=seed,
                                         device=device_t)
            elif protocol == "knn":
                result = knn_protocol(train_f, train_y, test_f, test_y, k=int(settings["knn_k"]),
                                      temperature=float(settings["knn_temperature"]), num_classes=splits.num_classes)
            else:
                result = retrieval_protocol(train_f, train_y, test_f, test_y, ks=settings["retrieval_ks"])
            record(protocol, pooling, result, {"feature_dim": int(train_f.shape[-1])})
    return results
