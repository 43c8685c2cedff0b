"""CVRL — spatiotemporal contrastive video representation learning (Qian et al., CVPR 2021).

SimCLR on clips: two clips of one video, drawn by the temporal interval sampler and augmented
consistently over time, are positives; every other clip of the (global) batch is a negative.
3D encoder -> 3 x [Linear-BN-ReLU] + Linear projection -> NT-Xent (τ = 0.1, both directions).

``head_layers`` and ``head_batch_norm`` (the ``cvrl`` section of a profile) set the projection
head's hidden layers and whether each has BN: 3 with BN in the paper (batches of 1024 clips).
The CPU profiles (batches of 32) use one hidden layer without BN, the head of SimCLR's first
version and of DualVar: with small batches the paper's head leaves the trunk's features little
better than an untrained encoder's. Notebook 05 trains both heads and measures them side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from seco_lab.engine.distributed import all_gather_with_grad
from seco_lab.losses.ntxent import NTXentLoss
from seco_lab.methods.base import (
    Method, check_input_mode, clip_frames_to_read, finish_clip, losses_in_float32, read_view_frames, register,
    view_normalisation,
)
from seco_lab.models.encoders3d import build_encoder_3d
from seco_lab.models.heads import cvrl_head
from seco_lab.samplers import cvrl_clip_pair
from seco_lab.transforms.functional import background_erase
from seco_lab.transforms.recipes import cvrl_clip_augment


@dataclass
class CVRLViews:
    """One video -> clips ``v1`` and ``v2`` ``(C, T, H, W)``, each with its view's augmentation.

    ``reverse_prob`` time-reverses both clips together (an augmentation CVRL does not use: it
    makes the encoder blind to the direction of time). ``erase_alpha`` > 0 mixes a still frame
    into each clip (background erasing) before augmentation.
    """

    clip_frames: int
    stride: int
    input_mode: str = "rgb"
    interval_distribution: str = "decreasing"
    interval_power: float = 1.0
    reverse_prob: float = 0.0
    erase_alpha: tuple[float, float] = (0.0, 0.0)
    augment_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_input_mode(self.input_mode)
        self.augment = {view: cvrl_clip_augment(view, **self.augment_options) for view in (1, 2)}

    def __call__(self, video: Any, rng: np.random.Generator) -> dict[str, Tensor]:
        first, second = cvrl_clip_pair(
            video.num_frames, clip_frames_to_read(self.clip_frames, self.input_mode), self.stride, rng,
            power=self.interval_power, distribution=self.interval_distribution,
        )
        reverse = bool(rng.random() < self.reverse_prob)
        views = {}
        for view, indices in ((1, first), (2, second)):
            if reverse:
                indices = indices[::-1].copy()
            clip = read_view_frames(video, indices, self.input_mode, paired=False)  # (T', C, H, W) uint8
            if self.erase_alpha[1] > 0:
                clip = background_erase(clip, rng, self.erase_alpha)
            views[f"v{view}"] = finish_clip(self.augment[view](clip), self.input_mode)
        return views


@register
class CVRL(Method):
    name = "cvrl"
    encoder_kind = "3d"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        cfg, data = config["cvrl"], config["data"]
        self.views = CVRLViews(
            clip_frames=int(cfg["clip_frames"]), stride=int(cfg["stride"]),
            input_mode=cfg.get("input_mode", "rgb"),
            interval_distribution=cfg["interval_distribution"], interval_power=float(cfg["interval_power"]),
            reverse_prob=float(cfg.get("reverse_prob", 0.0)),
            erase_alpha=tuple(cfg.get("erase_alpha", (0.0, 0.0))),
            augment_options={"crop_size": int(data["crop_size"]), "mode": cfg["augment_mode"],
                             **cfg.get("augment", {}), **view_normalisation(cfg, cfg.get("input_mode", "rgb"))},
        )
        self.trunk = build_encoder_3d(cfg["arch"], width=cfg["width"])
        # A checkpoint written before ``head_layers`` and ``head_batch_norm`` existed holds the paper's head.
        self.head = cvrl_head(self.trunk.feature_dim, cfg["head_hidden"], cfg["head_dim"],
                              num_hidden_layers=int(cfg.get("head_layers", 3)),
                              batch_norm=bool(cfg.get("head_batch_norm", True)))
        self.loss = NTXentLoss(cfg["temperature"], gather=all_gather_with_grad)

    def view_maker(self) -> CVRLViews:
        return self.views

    def encoder(self) -> nn.Module:
        return self.trunk

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        batch_size = batch["v1"].shape[0]
        clips = torch.cat([batch["v1"], batch["v2"]])  # (2B, C, T, H, W)
        z1, z2 = self.head(self.trunk(clips)).float().split(batch_size)  # (B, dim) each
        with losses_in_float32(z1):
            loss = self.loss(z1, z2)
        return {"loss": loss, "ntxent": loss.detach()}
