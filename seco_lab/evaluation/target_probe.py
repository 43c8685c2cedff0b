"""What frozen frame features say about the moving target (the generated dataset only).

The generator knows, in every frame, where its target is and how large it is. A ridge regression
from one frame's frozen feature to the target's centre ``x``, ``y`` and ``radius`` (px), fitted
on the train split's frames and scored on the test split's, measures how *linearly* a frame
encoder encodes them: R^2 = 1 - sum((prediction - truth)^2) / sum((truth - mean)^2) is 1 for a
perfect read-out, 0 for one no better than the test frames' mean, negative for a worse one.

SeCo's linear protocol reads concatenated frame features with a linear SVM. :func:`ground_truth_svm`
gives a reference for it: the same SVM on the true ``x``, ``y`` and ``radius`` of the same frames
(not a bound: a frame difference also shows which way the target moved).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.preprocessing import StandardScaler

from seco_lab.evaluation.features import INPUT_MODES, EvaluationError, evaluation_frames
from seco_lab.evaluation.linear_svm import linear_svm_protocol
from seco_lab.methods.base import uses_differences
from seco_lab.video.synth import SynthConfig, SynthDatasetError, manifest_config, video_target

TARGET_QUANTITIES = ("x", "y", "radius")
RIDGE_ALPHAS = tuple(float(alpha) for alpha in np.logspace(-2, 4, 13))


def frame_targets(config: SynthConfig, seed: int, records: Sequence[Any], frames_per_video: int,
                  input_mode: str = "rgb", num_frames: Sequence[int] | None = None) -> np.ndarray:
    """The target's ``(x, y, radius)`` in the frames evaluation encodes: (N, T, 3) for the N
    ``records`` (objects with the ``path`` of a video of the dataset made with ``config`` and
    ``seed``), T = ``frames_per_video`` evenly spaced frames. With frame differences a feature
    sees frames i and i + 1, and the target is the mean of the two.

    ``num_frames``: the decoded frame count of each record; a count the generator did not draw
    means the file is not the generated video, and raises SynthDatasetError naming it.
    """
    if input_mode not in INPUT_MODES:
        raise EvaluationError(f"input_mode {input_mode!r} is not one of {', '.join(INPUT_MODES)}")
    if num_frames is not None and len(num_frames) != len(records):
        raise EvaluationError(f"{len(records)} records but {len(num_frames)} frame counts")
    targets = []
    for position, record in enumerate(records):
        motion = video_target(config, seed, record.path)
        length = len(motion.radii)
        if num_frames is not None and int(num_frames[position]) != length:
            raise SynthDatasetError(f"{record.path}: decodes {num_frames[position]} frames, the generator drew "
                                    f"{length}: the file is not the generated video")
        values = np.column_stack([motion.centres, motion.radii])  # (L, 3) x, y, radius
        indices = evaluation_frames(length, frames_per_video, input_mode)
        if uses_differences(input_mode):
            targets.append((values[indices] + values[np.minimum(indices + 1, length - 1)]) / 2)
        else:
            targets.append(values[indices])
    return np.stack(targets) if targets else np.zeros((0, frames_per_video, len(TARGET_QUANTITIES)))


def _frame_rows(features: np.ndarray, targets: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, T * D) or (N, T, D) features and (N, T, 3) targets -> one row per frame."""
    features, targets = np.asarray(features, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    if targets.ndim != 3 or targets.shape[2] != len(TARGET_QUANTITIES):
        raise EvaluationError(f"{split} targets must be (N, T, {len(TARGET_QUANTITIES)}), got {targets.shape}")
    num_videos, frames = targets.shape[:2]
    if features.ndim not in (2, 3) or len(features) != num_videos or features.ndim == 3 and features.shape[1] != frames:
        raise EvaluationError(f"{split} features {features.shape} do not fit targets {targets.shape}: give (N, T * D) "
                              f"frame features in temporal order or (N, T, D)")
    if features.ndim == 2 and features.shape[1] % frames:
        raise EvaluationError(f"{split} features have {features.shape[1]} values per video, not a multiple of the "
                              f"{frames} frames of the targets")
    return features.reshape(num_videos * frames, -1), targets.reshape(num_videos * frames, -1)


def target_probe(train_features: np.ndarray, train_targets: np.ndarray, test_features: np.ndarray,
                 test_targets: np.ndarray, alphas: Sequence[float] = RIDGE_ALPHAS) -> dict[str, float]:
    """Test R^2 of a ridge regression from one frame's feature to the target's x, y and radius.

    Features (N, T * D) (frames concatenated in temporal order, as evaluation makes them) or
    (N, T, D); targets (N, T, 3) from :func:`frame_targets`. Features are standardised with the
    train frames' mean and standard deviation; the ridge penalty is chosen among ``alphas`` by
    leave-one-out on the train frames. Returns ``{"x": R^2, "y": R^2, "radius": R^2}``.
    """
    train_x, train_t = _frame_rows(train_features, train_targets, "train")
    test_x, test_t = _frame_rows(test_features, test_targets, "test")
    if train_x.shape[1] != test_x.shape[1]:
        raise EvaluationError(f"train frames have {train_x.shape[1]} features, test frames {test_x.shape[1]}")
    if len(train_x) < 2 or len(test_x) < 2:
        raise EvaluationError(f"the probe needs at least 2 train and 2 test frames, got {len(train_x)} and {len(test_x)}")
    scaler = StandardScaler().fit(train_x)
    regression = RidgeCV(alphas=tuple(alphas)).fit(scaler.transform(train_x), train_t)
    predicted = regression.predict(scaler.transform(test_x))  # (M * T, 3)
    residual = ((predicted - test_t) ** 2).sum(axis=0)
    spread = ((test_t - test_t.mean(axis=0)) ** 2).sum(axis=0)
    return {name: float(1.0 - residual[k] / spread[k]) if spread[k] > 0 else float("nan")
            for k, name in enumerate(TARGET_QUANTITIES)}


def ground_truth_svm(train_targets: np.ndarray, train_labels: np.ndarray, test_targets: np.ndarray,
                     test_labels: np.ndarray, C: float | str = 1.0, seed: int = 0) -> float:
    """Test top-1 (percent) of SeCo's linear SVM on the true target values (N, T, 3) of the
    frames, concatenated in temporal order: what the protocol reaches with features that encode
    the target's position and size exactly (and nothing else)."""
    train_targets, test_targets = np.asarray(train_targets), np.asarray(test_targets)
    for split, targets in (("train", train_targets), ("test", test_targets)):
        if targets.ndim != 3 or targets.shape[2] != len(TARGET_QUANTITIES):
            raise EvaluationError(f"{split} targets must be (N, T, {len(TARGET_QUANTITIES)}), got {targets.shape}")
    result = linear_svm_protocol(train_targets.reshape(len(train_targets), -1), train_labels,
                                 test_targets.reshape(len(test_targets), -1), test_labels, C=C, seed=seed)
    return float(result["top1"])


def dataset_targets(data_root: str | Path, records: Sequence[Any], frames_per_video: int, input_mode: str = "rgb",
                    num_frames: Sequence[int] | None = None) -> np.ndarray:
    """:func:`frame_targets` for a generated dataset at ``data_root``, read from its manifest
    (raises SynthDatasetError naming the folder when it holds no generated dataset)."""
    config, seed = manifest_config(data_root)
    return frame_targets(config, seed, records, frames_per_video, input_mode, num_frames)
