"""The kNN monitor: test-split kNN accuracy of the encoder being trained, every few epochs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from seco_lab.evaluation.features import InputSpec, LoadedEncoder, extract_video_features
from seco_lab.evaluation.knn import knn_protocol
from seco_lab.video.layouts import DatasetSpec, VideoRecord, limit_per_class


def monitor_records(spec: DatasetSpec, max_videos: int) -> tuple[list[VideoRecord], list[VideoRecord]]:
    """The train and test videos the monitor measures: the same number of each class (about
    ``max_videos`` in all per split, at least one per class), whatever order the layout lists."""
    per_class = max(1, max_videos // max(1, len(spec.classes)))
    return limit_per_class(spec.split("train"), per_class), limit_per_class(spec.split("test"), per_class)


def knn_monitor(method_name: str, config: dict[str, Any], spec: DatasetSpec, index: Any,
                max_videos: int = 400, progress: bool = False) -> Callable[[nn.Module], dict[str, float]]:
    """A ``monitor(method) -> {"knn_top1": ...}`` for the engine.

    Frozen features of about ``max_videos`` train and test videos, balanced over the classes
    (:func:`monitor_records`), mean pooling for frame encoders as the papers, weighted kNN with
    the profile's ``knn_k`` and temperature. ``progress`` shows a bar of each split's videos
    while its features are extracted ("monitor: train features", "monitor: test features"),
    gone once it finishes.
    """
    settings = config["eval"]
    train, test = monitor_records(spec, max_videos)
    counts = {record.path: index[record.path].num_frames for record in train + test}

    def monitor(method: nn.Module) -> dict[str, float]:
        trunk = method.encoder()
        was_training = trunk.training
        loaded = LoadedEncoder(trunk, method.encoder_kind, InputSpec.from_config(config, method_name))
        options = dict(frames_per_video=settings["frames_per_video"], clips_per_video=settings["clips_per_video"],
                       batch_size=settings["batch_size"], device=next(trunk.parameters()).device,
                       progress=progress, keep_progress=False)
        try:
            trunk.eval()
            with torch.no_grad():
                train_x, train_y = extract_video_features(loaded, train, num_frames=[counts[r.path] for r in train],
                                                          description="monitor: train features", **options)
                test_x, test_y = extract_video_features(loaded, test, num_frames=[counts[r.path] for r in test],
                                                        description="monitor: test features", **options)
        finally:
            trunk.train(was_training)
        result = knn_protocol(train_x, train_y, test_x, test_y, k=settings["knn_k"],
                              temperature=settings["knn_temperature"], num_classes=len(spec.classes))
        return {"knn_top1": float(result["top1"])}

    return monitor
