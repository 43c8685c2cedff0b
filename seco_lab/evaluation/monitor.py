"""The kNN monitor: test-split kNN accuracy of the encoder being trained, every few epochs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from seco_lab.evaluation.features import InputSpec, LoadedEncoder, extract_video_features
from seco_lab.evaluation.knn import knn_protocol


def knn_monitor(method_name: str, config: dict[str, Any], spec: Any, index: Any,
                max_videos: int = 400) -> Callable[[nn.Module], dict[str, float]]:
    """A ``monitor(method) -> {"knn_top1": ...}`` for the engine.

    Frozen features of at most ``max_videos`` train and test videos (mean pooling for frame
    encoders, as the papers), weighted kNN with the profile's ``knn_k`` and temperature.
    """
    settings = config["eval"]
    train, test = spec.split("train")[:max_videos], spec.split("test")[:max_videos]
    counts = {record.path: index[record.path].num_frames for record in train + test}

    def monitor(method: nn.Module) -> dict[str, float]:
        trunk = method.encoder()
        was_training = trunk.training
        loaded = LoadedEncoder(trunk, method.encoder_kind, InputSpec.from_config(config, method_name))
        options = dict(frames_per_video=settings["frames_per_video"], clips_per_video=settings["clips_per_video"],
                       batch_size=settings["batch_size"], device=next(trunk.parameters()).device)
        try:
            trunk.eval()
            with torch.no_grad():
                train_x, train_y = extract_video_features(loaded, train, num_frames=[counts[r.path] for r in train],
                                                          **options)
                test_x, test_y = extract_video_features(loaded, test, num_frames=[counts[r.path] for r in test],
                                                        **options)
        finally:
            trunk.train(was_training)
        result = knn_protocol(train_x, train_y, test_x, test_y, k=settings["knn_k"],
                              temperature=settings["knn_temperature"], num_classes=len(spec.classes))
        return {"knn_top1": float(result["top1"])}

    return monitor
