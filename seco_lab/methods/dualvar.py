"""DualVar — inter-intra variant dual representations (Zhang et al., BMVC 2021).

Two embeddings per clip from one 3D encoder: a *clip* embedding trained to tell videos apart
(NT-Xent, τ = 0.07) and a *series* embedding — one vector per temporal segment — trained to be
temporally coherent across clips of a video (L_TC) and sensitive to the order of segments
inside a clip (shuffle-rank, L_SR).

Total: ``L_clip + L_TC + 0.5 L_SR(v0) + 0.5 L_SR(v2)``. ``variant="simclr"`` takes negatives
from the batch; ``variant="moco"`` from queues filled by a momentum key encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seco_lab.engine.distributed import all_gather_no_grad, all_gather_with_grad, shuffle_bn_forward
from seco_lab.losses.info_nce import InfoNCELoss
from seco_lab.losses.ntxent import NTXentLoss
from seco_lab.losses.shuffle_rank import ShuffleRankLoss
from seco_lab.losses.temporal_coherent import TemporalCoherentLoss
from seco_lab.methods.base import (
    Method, check_input_mode, clip_frames_to_read, finish_clip, frozen_copy, losses_in_float32, momentum_update,
    read_view_frames, register, view_normalisation,
)
from seco_lab.models.encoders3d import build_encoder_3d
from seco_lab.models.heads import SeriesHead, dualvar_clip_head
from seco_lab.samplers import calibrate, dualvar_clips, segment_permutation, shuffle_segments
from seco_lab.transforms.recipes import dualvar_clip_augment

LOSS_SETS = {"clip": ("clip",), "clip+SR": ("clip", "SR"), "clip+SR+TC": ("clip", "SR", "TC")}
VARIANTS = ("simclr", "moco")


@dataclass
class DualVarViews:
    """One video -> ``v0``, ``v1`` (two clips), ``v2`` (v0's frames re-augmented) and ``perm``, the
    order of v2's S temporal segments in the shuffled copy that shuffle-rank encodes (slot j holds
    segment perm[j]). The method makes that copy on the batch (``shuffle_segments``), so the
    loader does not carry a fourth clip. All clips ``(C, T, H, W)``; with ``reverse_prob`` every
    clip of the video is time-reversed."""

    clip_frames: int
    stride: int
    segments: int
    input_mode: str = "rgb"
    reverse_prob: float = 0.5
    derangement: bool = True
    augment_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_input_mode(self.input_mode)
        self.augment = dualvar_clip_augment(**self.augment_options)

    def __call__(self, video: Any, rng: np.random.Generator) -> dict[str, Tensor]:
        clip_length = clip_frames_to_read(self.clip_frames, self.input_mode)
        first, second, _ = dualvar_clips(video.num_frames, clip_length, self.stride, rng, self.reverse_prob)
        frames_v0, frames_v1 = (read_view_frames(video, indices, self.input_mode, paired=False)
                                for indices in (first, second))  # (T', C, H, W) uint8 each
        v2 = finish_clip(self.augment(frames_v0), self.input_mode)  # (C, T, H, W)
        perm = segment_permutation(self.segments, rng, derangement=self.derangement)
        return {
            "v0": finish_clip(self.augment(frames_v0), self.input_mode),
            "v1": finish_clip(self.augment(frames_v1), self.input_mode),
            "v2": v2,
            "perm": torch.as_tensor(perm),
        }


class ClipEncoderWithHeads(nn.Module):
    """Trunk + clip head + series head: clips (N, C, T, H, W) -> (clip (N, d) unit, series (N, S, d') unit)."""

    def __init__(self, trunk: nn.Module, hidden: int, clip_dim: int, segments: int, series_dim: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.clip_head = dualvar_clip_head(trunk.feature_dim, hidden, clip_dim)
        self.series_head = SeriesHead(trunk.feature_dim, hidden, segments, series_dim)

    def forward(self, clips: Tensor) -> tuple[Tensor, Tensor]:
        features = self.trunk(clips)  # (N, D)
        return F.normalize(self.clip_head(features), dim=1), self.series_head(features)


@register
class DualVar(Method):
    name = "dualvar"
    encoder_kind = "3d"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        cfg, data = config["dualvar"], config["data"]
        if cfg["losses"] not in LOSS_SETS or cfg["variant"] not in VARIANTS:
            raise ValueError(
                f"DualVar: losses must be one of {', '.join(LOSS_SETS)} and variant one of "
                f"{', '.join(VARIANTS)}; got {cfg['losses']!r}, {cfg['variant']!r}"
            )
        self.losses, self.variant = LOSS_SETS[cfg["losses"]], cfg["variant"]
        self.views = DualVarViews(
            clip_frames=int(cfg["clip_frames"]), stride=int(cfg["stride"]), segments=int(cfg["segments"]),
            input_mode=cfg.get("input_mode", "rgb"), reverse_prob=float(cfg.get("reverse_prob", 0.5)),
            derangement=bool(cfg.get("derangement", True)),
            augment_options={"crop_size": int(data["crop_size"]), "mode": cfg.get("augment_mode", "consistent"),
                             **cfg.get("augment", {}), **view_normalisation(cfg, cfg.get("input_mode", "rgb"))},
        )
        trunk = build_encoder_3d(cfg["arch"], width=cfg["width"])
        self.query = ClipEncoderWithHeads(trunk, cfg["head_hidden"], cfg["clip_dim"], cfg["segments"],
                                          cfg["series_dim"])
        temperature = float(cfg["temperature"])
        self.rank_loss = ShuffleRankLoss(cfg["rank_margin_temperature"])
        if self.variant == "simclr":
            self.clip_loss = NTXentLoss(temperature, reduction="mean", gather=all_gather_with_grad)
            self.coherent_loss = TemporalCoherentLoss(temperature, gather=all_gather_with_grad)
        else:
            self.momentum = float(cfg.get("key_momentum", 0.999))
            self.key = frozen_copy(self.query)
            self.queue_loss = InfoNCELoss(temperature)
            queue_size = int(cfg.get("queue_size", 4096))
            self.register_buffer("clip_queue", F.normalize(torch.randn(queue_size, cfg["clip_dim"]), dim=1))
            self.register_buffer("series_queue", F.normalize(torch.randn(queue_size, cfg["series_dim"]), dim=1))
            self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def view_maker(self) -> DualVarViews:
        return self.views

    def encoder(self) -> nn.Module:
        return self.query.trunk

    def _key_embeddings(self, clips: Tensor) -> Tensor:
        """Key encoder on clips (N, C, T, H, W) -> clip and flattened series keys side by side,
        (N, d + S * d'): one tensor, as ``shuffle_bn_forward`` gathers and un-shuffles."""
        key_clip, key_series = self.key(clips)
        return torch.cat([key_clip.float(), key_series.float().flatten(1)], dim=1)

    @torch.no_grad()
    def _enqueue(self, clip_keys: Tensor, series_means: Tensor) -> None:
        clip_keys, series_means = all_gather_no_grad(clip_keys), all_gather_no_grad(series_means)
        size = self.clip_queue.shape[0]
        slots = (self.queue_ptr + torch.arange(clip_keys.shape[0], device=clip_keys.device)) % size
        self.clip_queue[slots[-size:]] = clip_keys[-size:]
        self.series_queue[slots[-size:]] = series_means[-size:]
        self.queue_ptr.copy_((self.queue_ptr + clip_keys.shape[0]) % size)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        batch_size = batch["v0"].shape[0]
        clips = {"v0": batch["v0"], "v1": batch["v1"]}  # (B, C, T, H, W) each
        if "SR" in self.losses:
            clips.update(v2=batch["v2"], v2_shuffled=shuffle_segments(batch["v2"], batch["perm"], time_dim=2))
        clip_emb, series = self.query(torch.cat(list(clips.values())))  # (nB, d), (nB, S, d')
        clip_v0, clip_v1 = clip_emb.float().split(batch_size)[:2]  # (B, d) each
        series_by_view = dict(zip(clips, series.float().split(batch_size)))  # name -> (B, S, d')
        series_v0, series_v1 = series_by_view["v0"], series_by_view["v1"]
        if self.variant == "moco":
            with torch.no_grad():  # shuffle-BN: the keys' BatchNorm statistics mix videos of every process
                keys = shuffle_bn_forward(self._key_embeddings, batch["v1"])  # (B, d + S * d')
                clip_dim = clip_v0.shape[1]
                key_clip = keys[:, :clip_dim]  # (B, d)
                key_series_mean = keys[:, clip_dim:].view(series_v0.shape).mean(dim=1)  # (B, d')
        terms: dict[str, Tensor] = {}
        with losses_in_float32(clip_v0):
            if self.variant == "simclr":
                terms["clip"] = self.clip_loss(clip_v0, clip_v1)
                if "TC" in self.losses:
                    terms["TC"] = self.coherent_loss(series_v0, series_v1)
            else:
                terms["clip"] = self.queue_loss(clip_v0, key_clip, self.clip_queue.clone().detach())
                if "TC" in self.losses:
                    terms["TC"] = self.queue_loss(series_v0.mean(dim=1), key_series_mean,
                                                  self.series_queue.clone().detach())
            if "SR" in self.losses:
                calibrated = calibrate(series_by_view["v2_shuffled"], batch["perm"].cpu())  # slots back in time order
                terms["SR_v0"] = self.rank_loss(series_v0, calibrated)
                terms["SR_v2"] = self.rank_loss(series_by_view["v2"], calibrated)
            loss = (terms["clip"] + terms.get("TC", 0.0) + 0.5 * terms.get("SR_v0", 0.0)
                    + 0.5 * terms.get("SR_v2", 0.0))
        if self.variant == "moco" and self.training:
            self._enqueue(key_clip, key_series_mean)
        return {"loss": loss, **{name: value.detach() for name, value in terms.items()}}

    def has_unused_parameters(self) -> bool:
        return self.losses == LOSS_SETS["clip"]

    def replicated_buffers(self) -> tuple[str, ...]:
        return ("clip_queue", "series_queue", "queue_ptr") if self.variant == "moco" else ()

    def after_step(self) -> None:
        if self.variant == "moco":
            momentum_update(self.key, self.query, self.momentum)
