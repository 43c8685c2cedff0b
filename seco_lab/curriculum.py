"""The runs and measurements the notebooks share, so that no notebook redefines them.

``ensure_run`` trains a named run in the session's run folder, or reuses it when it already
finished with the same settings (and says so); ``reseeded`` names the same run with another
seed. ``extract_run_features`` extracts an encoder's features once and ``frozen_protocols``
applies the frozen-feature protocols to them. ``results_table`` renders rows of measured
numbers as Markdown and ``spread`` summarises one number measured over several seeds.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from seco_lab.session import Session

FROZEN_PROTOCOLS = ("linear-svm", "linear", "knn", "retrieval")


@dataclass(frozen=True)
class RunSpec:
    """A named pretraining run: method, config overrides, and (optionally) a fixed epoch count
    and its own seed (None: the session's seed)."""

    name: str
    method: str
    overrides: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None
    description: str = ""
    seed: int | None = None


def reseeded(spec: RunSpec, seed: int) -> RunSpec:
    """``spec`` with its own ``seed``, in its own folder ``<name>-seed<seed>``: for an untrained
    baseline, another draw of the initial weights."""
    return replace(spec, name=f"{spec.name}-seed{seed}", seed=seed,
                   description=f"{spec.description or spec.method}, seed {seed}")


BASELINE_RUNS = {
    "random-2d": RunSpec("random-2d", "seco", epochs=0, description="SeCo's frame encoder, untrained"),
    "random-3d": RunSpec("random-3d", "cvrl", epochs=0, description="the 3D clip encoder, untrained"),
    "supervised-2d": RunSpec("supervised-2d", "supervised", {"supervised": {"backbone": "seco"}},
                             description="the frame encoder trained with labels"),
    "supervised-3d": RunSpec("supervised-3d", "supervised", {"supervised": {"backbone": "cvrl"}},
                             description="the clip encoder trained with labels"),
}
METHOD_RUNS = {
    "seco": RunSpec("seco", "seco", description="SeCo: intra-frame + inter-frame + order"),
    "cvrl": RunSpec("cvrl", "cvrl", description="CVRL: clip contrast, decreasing interval, consistent augmentation"),
    "dualvar": RunSpec("dualvar", "dualvar", description="DualVar: clip + shuffle-rank + temporal coherence"),
}


def check_method_names(methods: Any) -> list[str]:
    """A notebook's ``methods`` parameter: a list of names of ``METHOD_RUNS`` (a single name given
    as a string, as ``papermill -p methods seco`` passes it, is refused with the list form)."""
    if isinstance(methods, str) or not isinstance(methods, (list, tuple)):
        raise ValueError(f"methods must be a list of method names, e.g. {list(METHOD_RUNS)}, got {methods!r}")
    unknown = [name for name in methods if name not in METHOD_RUNS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}: choose from {', '.join(METHOD_RUNS)}")
    return list(methods)


def ensure_run(lab: Session, spec: RunSpec, progress: bool = True) -> Path:
    """Train ``spec`` into ``lab.run_dir / spec.name`` unless a finished run is already there.

    Returns the checkpoint path. An interrupted run is resumed from its last checkpoint. The
    session's own overrides (its notebook parameters) apply first, then the run's. The paper
    profile's runs are not trained on a CPU (:func:`check_paper_run_device`); finished ones are
    reused there.
    """
    from seco_lab.engine.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from seco_lab.methods.pretrain import deep_update, pretrain

    run_dir = lab.run_dir / spec.name
    checkpoint = run_dir / CHECKPOINT_NAME
    finished = checkpoint.exists() and load_checkpoint(checkpoint)["finished"]
    if not finished:
        check_paper_run_device(lab, spec)
        state = "resuming" if checkpoint.exists() else ("initialising" if spec.epochs == 0 else "training")
        print(f"{spec.name}: {state} — {spec.description or spec.method}")
    result = pretrain(spec.method, lab.data_root, lab.profile_name, run_dir, epochs=spec.epochs,
                      device=lab.device, resume=True, seed=lab.seed if spec.seed is None else spec.seed,
                      overrides=deep_update(lab.overrides, spec.overrides), progress=progress)
    if finished:  # said only once pretrain has found the run's settings equal to these
        print(f"{spec.name}: reusing the finished run in {run_dir} (delete that folder to train again)")
    elif result.action == "trained":
        print(f"{spec.name}: {result.steps} step{'' if result.steps == 1 else 's'} in {result.wall_time:.0f} s "
              f"({result.samples_per_second:.0f} videos/s)")
    elif result.action == "resumed":  # the steps before the interruption are not in this call's time
        print(f"{spec.name}: finished at step {result.steps}, {result.wall_time:.0f} s after resuming "
              f"({result.samples_per_second:.0f} videos/s)")
    return result.checkpoint_path


def check_paper_run_device(lab: Session, spec: RunSpec) -> None:
    """Refuse to train a run of the paper profile on a CPU: sized for GPUs (224 px, ResNet-50 /
    R3D-50, batches of hundreds), it would run for days there, if it fitted the memory at all.
    Runs of 0 epochs (an untrained encoder) only initialise weights and pass. The message gives
    the run's own schedule and crop (CVRL's and DualVar's differ from SeCo's)."""
    from seco_lab.methods.pretrain import build_run_config, deep_update

    config = build_run_config(spec.method, lab.profile_name, lab.data_root,
                              overrides=deep_update(lab.overrides, spec.overrides))
    train, data = config["train"], config["data"]
    epochs = train["epochs"] if spec.epochs is None else spec.epochs
    if lab.profile_name != "paper" or epochs == 0 or _device(lab) != "cpu":
        return
    raise RuntimeError(
        f"{spec.name}: the paper profile trains {epochs} epochs in batches of {train['batch_size']} at "
        f"{data['crop_size']} px, sized for GPUs; this session's device is the CPU, where the run would take "
        f"days, if it fitted the memory at all. Train the paper profile's runs on a machine with CUDA (their "
        f"folders, copied into {lab.run_dir}, are then reused here), or set profile = 'standard' for runs "
        "sized for a CPU. To train it on the CPU anyway: python -m seco_lab pretrain --profile paper --device cpu ..."
    )


def finetune_skip_reason(lab: Session, finetune: bool) -> str | None:
    """Why a notebook leaves fine-tuning out, or None to fine-tune: ``finetune`` is False, or the
    paper profile's fine-tuning (its epochs at its crop size, for every run) would run on a CPU."""
    if not finetune:
        return "finetune = False"
    if lab.profile_name == "paper" and _device(lab) == "cpu":
        epochs, size = lab.section("eval")["finetune_epochs"], lab.section("data")["crop_size"]
        return (f"the paper profile fine-tunes every run for {epochs} epochs at {size} px, sized for GPUs, and this "
                "session's device is the CPU; run this notebook on a machine with CUDA, or set finetune = False")
    return None


@dataclass
class RunFeatures:
    """Frozen features of one run's encoder for the train and test splits."""

    name: str
    kind: str
    pooling: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    test_views: np.ndarray | None = None
    train_views: np.ndarray | None = None
    train_groups: np.ndarray | None = None  # (N,) group of each train video when the layout knows it


def extract_run_features(lab: Session, name: str, bn_stats: str = "checkpoint",
                         progress: bool = False) -> dict[str, RunFeatures]:
    """Features of run ``name`` (``lab.run_dir/name/checkpoint.pt``) on the session's dataset.

    Frame encoders give two poolings from one extraction: ``"concat"`` (frame features in
    temporal order) and ``"mean"`` (their average, the papers' protocol); clip encoders give
    ``"clips"`` (clip features averaged over evenly spaced clips, centre crop), whose
    ``test_views`` (M, clips * test_crops, D) also hold the profile's ``test_crops`` crops of every
    clip for the linear probe's multi-view test. ``bn_stats="train"`` re-estimates BatchNorm
    statistics on train videos first.
    """
    from seco_lab.evaluation.features import extract_video_features, load_encoder, recompute_bn_stats
    from seco_lab.evaluation.linear_svm import record_groups

    settings = lab.section("eval")
    encoder = load_encoder(lab.run_dir / name / "checkpoint.pt", device=_device(lab))
    spec, index = lab.load_dataset()
    train, test = spec.split("train"), spec.split("test")
    train_frames = [index[record].num_frames for record in train]
    test_frames = [index[record].num_frames for record in test]
    if bn_stats == "train":
        recompute_bn_stats(encoder, train, train_frames, frames_per_video=settings["frames_per_video"],
                           clips_per_video=settings["clips_per_video"], batch_size=settings["batch_size"],
                           device=_device(lab), seed=lab.seed)
    options = dict(frames_per_video=settings["frames_per_video"], clips_per_video=settings["clips_per_video"],
                   pooling="concat", batch_size=settings["batch_size"], device=_device(lab), progress=progress,
                   keep_views=True)
    train_views, train_y = extract_video_features(encoder, train, num_frames=train_frames, **options)
    test_crops = int(settings["test_crops"]) if encoder.kind == "3d" else 1
    test_views, test_y = extract_video_features(encoder, test, num_frames=test_frames, num_crops=test_crops,
                                                **options)
    train_groups = record_groups(train)
    if encoder.kind == "3d":
        # views are clip-major, crops within a clip (start, centre, end): the centre crop is crop test_crops // 2
        centre_crops = test_views.reshape(len(test_views), -1, test_crops, test_views.shape[-1])[:, :, test_crops // 2]
        return {"clips": RunFeatures(name, "3d", "clips", train_views.mean(axis=1), train_y,
                                     centre_crops.mean(axis=1), test_y, test_views=test_views, train_views=train_views,
                                     train_groups=train_groups)}
    frames = settings["frames_per_video"]
    pooled = {}
    for pooling in ("mean", "concat"):
        split_features = []
        for views in (train_views, test_views):
            concat = views[:, 0]  # (N, T * D), frames in temporal order
            features = concat if pooling == "concat" else concat.reshape(len(concat), frames, -1).mean(axis=1)
            split_features.append(features)
        pooled[pooling] = RunFeatures(name, "2d", pooling, split_features[0], train_y, split_features[1], test_y,
                                      test_views=split_features[1][:, None], train_views=split_features[0][:, None],
                                      train_groups=train_groups)
    return pooled


def _device(lab: Session) -> str:
    from seco_lab.engine.device import resolve_device

    return str(resolve_device(lab.device))


def frozen_protocols(features: RunFeatures, lab: Session, protocols: tuple[str, ...] = FROZEN_PROTOCOLS
                     ) -> dict[str, float]:
    """The frozen-feature protocols on already extracted features: a flat ``metric -> value``."""
    from seco_lab.evaluation import knn_protocol, linear_protocol, linear_svm_protocol, retrieval_protocol

    settings = lab.section("eval")
    num_classes = int(max(features.train_y.max(), features.test_y.max())) + 1
    metrics: dict[str, float] = {}
    for protocol in protocols:
        if protocol == "linear-svm":
            result = linear_svm_protocol(features.train_x, features.train_y, features.test_x, features.test_y,
                                         C=settings["svm_c"], seed=lab.seed, train_groups=features.train_groups)
            metrics["linear-svm top1"] = result["top1"]
            if settings["svm_c"] == "cv":
                metrics["linear-svm C"] = result["C"]
        elif protocol == "linear":
            result = linear_protocol(features.train_views, features.train_y, features.test_views, features.test_y,
                                     num_classes=num_classes, lr=settings["linear_lr"],
                                     epochs=settings["linear_epochs"], batch_size=settings["linear_batch_size"],
                                     weight_decay=settings["linear_weight_decay"], seed=lab.seed,
                                     device=_device(lab))
            metrics["linear top1"] = result["top1"]
        elif protocol == "knn":
            result = knn_protocol(features.train_x, features.train_y, features.test_x, features.test_y,
                                  k=settings["knn_k"], temperature=settings["knn_temperature"],
                                  num_classes=num_classes)
            metrics["knn top1"] = result["top1"]
        elif protocol == "retrieval":
            result = retrieval_protocol(features.train_x, features.train_y, features.test_x, features.test_y,
                                        ks=settings["retrieval_ks"])
            metrics.update({key: value for key, value in result.items() if key.startswith("R@") and key[2:].isdigit()})
        else:
            raise ValueError(f"unknown frozen protocol {protocol!r}: choose from {', '.join(FROZEN_PROTOCOLS)}")
    return metrics


def results_table(rows: list[dict[str, Any]], columns: list[str] | None = None, digits: int = 1) -> str:
    """Rows of measured values as a Markdown table (floats rounded to ``digits``)."""
    if not rows:
        return "_no results_"
    columns = columns or list(dict.fromkeys(key for row in rows for key in row))

    def shown(value: Any) -> str:
        if isinstance(value, float):
            return "—" if np.isnan(value) else f"{value:.{digits}f}"
        return "—" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(shown(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def spread(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), minimum and maximum of ``values``."""
    if not values:
        raise ValueError("spread needs at least one value")
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def difference_note(a_name: str, a: float, b_name: str, b: float, noise: float) -> str:
    """One honest sentence comparing two measured accuracies against a noise level (points)."""
    gap = a - b
    if round(abs(gap), 1) <= round(noise, 1):  # as printed: a gap equal to the noise is within it
        return (f"{a_name} ({a:.1f} %) and {b_name} ({b:.1f} %) differ by {abs(gap):.1f} points, "
                f"within the noise of this test set (about ±{noise:.1f} points): no difference can be claimed.")
    better, worse = (a_name, b_name) if gap > 0 else (b_name, a_name)
    return (f"{better} beats {worse} by {abs(gap):.1f} points "
            f"({a_name} {a:.1f} %, {b_name} {b:.1f} %), more than the noise level of about ±{noise:.1f} points.")


def accuracy_noise(num_test: int, accuracy: float = 50.0) -> float:
    """Two standard errors of one test accuracy (points) for ``num_test`` test videos: the half
    width of the error bar of a single score."""
    p = min(max(accuracy / 100.0, 0.05), 0.95)
    return float(200.0 * np.sqrt(p * (1 - p) / max(num_test, 1)))


def difference_noise(num_test: int, a: float = 50.0, b: float = 50.0) -> float:
    """Two standard errors of the difference of two test accuracies ``a`` and ``b`` (points), as if
    their errors were independent: ``sqrt(noise(a)² + noise(b)²)``, about √2 times one score's.
    Two encoders scored on the same test videos err on many of the same ones, so this errs on
    the side of claiming no difference."""
    return float(np.hypot(accuracy_noise(num_test, a), accuracy_noise(num_test, b)))
