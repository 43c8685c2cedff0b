"""Supervised baseline: the same encoder as a self-supervised method, trained with labels.

``backbone`` names the method whose encoder (and input) is copied: ``"seco"`` gives a 2D frame
encoder trained TSN-style (``segments`` frames per video, one per segment, their features
concatenated in temporal order — or averaged — before a linear classifier); ``"cvrl"`` or
``"dualvar"`` give a 3D clip encoder with a linear classifier on one clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import Tensor, nn

from seco_lab.methods.base import (
    Method, check_input_mode, clip_frames_to_read, finish_clip, frame_pairs, frames_to_sample, read_view_frames,
    register, uses_differences, view_normalisation,
)
from seco_lab.models.encoders2d import build_encoder_2d
from seco_lab.models.encoders3d import build_encoder_3d
from seco_lab.samplers import random_clip_indices, tsn_segment_indices
from seco_lab.transforms.functional import paired_frame_differences
from seco_lab.transforms.recipes import cvrl_clip_augment, seco_frame_augment

BACKBONES = ("seco", "cvrl", "dualvar")
FRAME_POOLINGS = ("concat", "mean")


@dataclass
class LabelledViews:
    """One video -> ``x`` (2D: ``(K, C, H, W)`` TSN frames; 3D: ``(C, T, H, W)`` clip); the
    dataset adds ``label``. One augmentation draw is shared by all frames of a video.

    With frame differences (``input_mode`` ``"frame_differences"`` or ``"stabilized_differences"``)
    the encoder sees what the self-supervised method of
    its backbone sees and what evaluation feeds it: 2D frames are differences of frames t and
    t + 1 (on [0, 1] pixels, as SeCo's views), 3D clips of T + 1 frames give T differences.
    """

    kind: str
    segments: int
    clip_frames: int
    stride: int
    input_mode: str = "rgb"
    augment_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_input_mode(self.input_mode)
        if self.kind == "2d":
            options = dict(self.augment_options)
            if uses_differences(self.input_mode):
                options.update(mean=None, std=None)
            self.augment = seco_frame_augment(**options)
        else:
            self.augment = cvrl_clip_augment(1, **self.augment_options)

    def __call__(self, video: Any, rng: np.random.Generator) -> dict[str, Tensor]:
        if self.kind == "3d":
            clip_length = clip_frames_to_read(self.clip_frames, self.input_mode)
            indices = random_clip_indices(video.num_frames, clip_length, self.stride, rng)
            clip = read_view_frames(video, indices, self.input_mode, paired=False)  # (T', C, H, W) uint8
            return {"x": finish_clip(self.augment(clip), self.input_mode)}
        indices = tsn_segment_indices(frames_to_sample(video.num_frames, self.input_mode), self.segments, rng)
        if self.input_mode == "rgb":
            return {"x": self.augment(video.read(indices))}  # (K, C, H, W)
        pairs = read_view_frames(video, frame_pairs(indices, video.num_frames), self.input_mode, paired=True)
        frames = self.augment(pairs)  # (2K, C, H, W), one draw
        return {"x": paired_frame_differences(frames)}  # (K, C, H, W)


@register
class Supervised(Method):
    name = "supervised"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        cfg, data = config["supervised"], config["data"]
        backbone = cfg["backbone"]
        if backbone not in BACKBONES or cfg.get("frame_pooling", "concat") not in FRAME_POOLINGS:
            raise ValueError(
                f"supervised: backbone must be one of {', '.join(BACKBONES)} and frame_pooling one of "
                f"{', '.join(FRAME_POOLINGS)}; got {backbone!r}, {cfg.get('frame_pooling')!r}"
            )
        if "num_classes" not in data:
            raise ValueError("supervised: the config's data section needs num_classes (set from the dataset)")
        source = config[backbone]
        self.encoder_kind = "2d" if backbone == "seco" else "3d"
        self.frame_pooling = cfg.get("frame_pooling", "concat")
        self.segments = int(cfg["segments"])
        augment = {"crop_size": int(data["crop_size"]), "hflip": False, **cfg.get("augment", {})}
        if self.encoder_kind == "2d":
            self.trunk = build_encoder_2d(source["arch"], width=source["width"], small_input=source["small_input"])
            augment = {**source.get("augment", {}), **augment}
            inputs = self.segments if self.frame_pooling == "concat" else 1
        else:
            self.trunk = build_encoder_3d(source["arch"], width=source["width"])
            inputs = 1
        input_mode = source.get("input_mode", "rgb")
        self.views = LabelledViews(
            self.encoder_kind, self.segments, int(source.get("clip_frames", 1)), int(source.get("stride", 1)),
            input_mode=input_mode, augment_options={**augment, **view_normalisation(source, input_mode)},
        )
        self.dropout = nn.Dropout(float(cfg.get("dropout", 0.0)))
        self.classifier = nn.Linear(inputs * self.trunk.feature_dim, int(data["num_classes"]))

    def view_maker(self) -> LabelledViews:
        return self.views

    def encoder(self) -> nn.Module:
        return self.trunk

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x = batch["x"]
        if self.encoder_kind == "2d":
            batch_size, segments = x.shape[:2]
            features = self.trunk(x.flatten(0, 1)).view(batch_size, segments, -1)  # (B, K, D)
            features = features.flatten(1) if self.frame_pooling == "concat" else features.mean(dim=1)
        else:
            features = self.trunk(x)  # (B, D)
        logits = self.classifier(self.dropout(features)).float()
        loss = F.cross_entropy(logits, batch["label"])
        accuracy = (logits.argmax(dim=1) == batch["label"]).float().mean()
        return {"loss": loss, "cross_entropy": loss.detach(), "train_acc": accuracy}
