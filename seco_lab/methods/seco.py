"""SeCo — sequence contrastive learning (Yao et al., AAAI 2021).

One 2D frame encoder learns from three signals a video gives for free:

* intra-frame — *same frame?* the anchor's second view against the same video's other frames;
* inter-frame — *same video?* three positives (anchor, and two frames of the other half)
  against a FIFO queue of keys from other videos;
* order — *right order?* a linear classifier on ``[q_order(a), k_order(b), k_order(c)]``.

Queries come from the query encoder ``f_q``; keys from its momentum (EMA) copy ``f_k``, computed
without gradient and with shuffle-BN across processes. SeCo's reference starts from ImageNet
MoCo v2 weights: the ``init_checkpoint`` setting (a local MoCo v2 checkpoint, e.g. ``pretrain
--set seco.init_checkpoint=moco_v2_800ep_pretrain.pth.tar``) loads its trunk and its projection
MLP into each head of both encoders when a run starts (``load_moco_weights``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seco_lab.engine.distributed import all_gather_no_grad, shuffle_bn_forward
from seco_lab.losses.info_nce import InfoNCELoss
from seco_lab.losses.intra_frame import IntraFrameLoss
from seco_lab.losses.order import OrderLoss
from seco_lab.methods.base import (
    Method, check_input_mode, frame_pairs, frames_to_sample, frozen_copy, losses_in_float32, momentum_update,
    read_view_frames, register, uses_differences,
)
from seco_lab.models.encoders2d import (
    MLP_HEAD_KEYS, build_encoder_2d, extract_mlp_head_state_dict, load_trunk_weights,
)
from seco_lab.models.heads import seco_head
from seco_lab.samplers import seco_frame_triplet
from seco_lab.transforms.functional import frame_differences
from seco_lab.transforms.recipes import seco_frame_augment

SIGNALS = ("inter", "intra", "order")
INTER, INTRA, ORDER = range(len(SIGNALS))  # positions of each signal's embedding


class FrameEncoderWithHeads(nn.Module):
    """Trunk + the three SeCo heads: ``(N, C, H, W) -> (N, 3, dim)`` L2-normalised embeddings
    stacked in the order of ``SIGNALS``."""

    def __init__(self, trunk: nn.Module, hidden_dim: int, dim: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.heads = nn.ModuleDict({s: seco_head(trunk.feature_dim, hidden_dim, dim) for s in SIGNALS})

    def forward(self, frames: Tensor) -> Tensor:
        features = self.trunk(frames)  # (N, D)
        return torch.stack([F.normalize(self.heads[s](features), dim=1) for s in SIGNALS], dim=1)


def load_moco_weights(encoder: FrameEncoderWithHeads, path: str | Path) -> None:
    """Initialise ``encoder`` from a local MoCo v2 checkpoint, as SeCo does: the trunk from its
    query encoder and, when the checkpoint holds one, each of the three heads from its projection
    MLP ``Linear(2048, 2048) - ReLU - Linear(2048, 128)`` (a trunk-only checkpoint, e.g.
    torchvision's, leaves the heads random). Raises ``ValueError`` naming mis-shaped head weights."""
    mlp = extract_mlp_head_state_dict(load_trunk_weights(encoder.trunk, path), path)  # the file is read once
    if not mlp:
        return
    own = encoder.heads[SIGNALS[0]].state_dict()
    mis_shaped = [f"fc.{key} checkpoint {tuple(mlp[key].shape)} vs head {tuple(own[key].shape)}"
                  for key in MLP_HEAD_KEYS if mlp[key].shape != own[key].shape]
    if mis_shaped:
        raise ValueError(f"{path}: the projection MLP does not match the SeCo heads ({'; '.join(mis_shaped)})")
    for signal in SIGNALS:
        encoder.heads[signal].load_state_dict(mlp)


@dataclass
class SeCoViews:
    """One video -> ``xq``, ``x1`` (two views of anchor a), ``x2``, ``x3`` (frames b, c) and ``order``.

    With frame differences (``input_mode`` ``"frame_differences"``, or ``"stabilized_differences"``
    with frame t + 1 first aligned to frame t) a "frame" is the difference between frame t and
    frame t + 1, both augmented with one draw (pixels in [0, 1], no mean/std normalisation), and
    the triplet is drawn from every frame but the last (see ``frames_to_sample``).
    """

    augment_options: dict[str, Any] = field(default_factory=dict)
    input_mode: str = "rgb"

    def __post_init__(self) -> None:
        check_input_mode(self.input_mode)
        options = dict(self.augment_options)
        if uses_differences(self.input_mode):
            options.update(mean=None, std=None)
        self.augment = seco_frame_augment(**options)

    def _view(self, frames: Tensor) -> Tensor:
        """One augmented view: (C, H, W) for RGB, from a (2, C, H, W) pair for differences."""
        if self.input_mode == "rgb":
            return self.augment(frames)
        return frame_differences(self.augment(frames))[0]

    def __call__(self, video: Any, rng: np.random.Generator) -> dict[str, Tensor]:
        indices, order = seco_frame_triplet(frames_to_sample(video.num_frames, self.input_mode), rng)
        if self.input_mode == "rgb":
            anchor, b, c = video.read(indices)  # (C, H, W) uint8 each
        else:
            frames = read_view_frames(video, frame_pairs(indices, video.num_frames), self.input_mode,
                                      paired=True)
            # (6, C, H, W): a, a+1, b, b+1, c, c+1
            anchor, b, c = frames.view(3, 2, *frames.shape[1:])
        return {
            "xq": self._view(anchor),
            "x1": self._view(anchor),
            "x2": self._view(b),
            "x3": self._view(c),
            "order": torch.tensor(order, dtype=torch.long),
        }


@register
class SeCo(Method):
    name = "seco"
    encoder_kind = "2d"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        cfg, data = config["seco"], config["data"]
        self.weights = {s: float(cfg["weights"].get(s, 0.0)) for s in SIGNALS}
        if not any(self.weights.values()):
            raise ValueError("SeCo needs at least one signal with a non-zero weight: inter, intra or order")
        self.momentum = float(cfg["key_momentum"])
        self.augment_options = {"crop_size": int(data["crop_size"]), **cfg.get("augment", {})}
        self.input_mode = cfg.get("input_mode", "rgb")
        trunk = build_encoder_2d(cfg["arch"], width=cfg["width"], small_input=cfg["small_input"])
        self.query = FrameEncoderWithHeads(trunk, cfg["head_hidden"], cfg["head_dim"])
        self.init_checkpoint = cfg.get("init_checkpoint")
        self.key = frozen_copy(self.query)
        self.inter_loss = InfoNCELoss(cfg["temperature"])
        self.intra_loss = IntraFrameLoss(cfg["temperature"])
        self.order_loss = OrderLoss(cfg["head_dim"], hidden_dim=int(cfg.get("order_hidden", 0)))
        self.register_buffer("queue", F.normalize(torch.randn(cfg["queue_size"], cfg["head_dim"]), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def view_maker(self) -> SeCoViews:
        return SeCoViews(self.augment_options, self.input_mode)

    def encoder(self) -> nn.Module:
        return self.query.trunk

    @torch.no_grad()
    def _enqueue(self, keys: Tensor) -> None:
        """Write the inter keys of every process, ``keys`` (B, 3, dim) here, into the FIFO queue at
        its pointer: all k1 of the global batch, then all k2, then all k3."""
        keys = all_gather_no_grad(keys).transpose(0, 1).flatten(0, 1)  # (W*B, 3, dim) -> (3*W*B, dim)
        size = self.queue.shape[0]
        slots = (self.queue_ptr + torch.arange(keys.shape[0], device=keys.device)) % size
        self.queue[slots[-size:]] = keys[-size:].to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + keys.shape[0]) % size)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        batch_size = batch["xq"].shape[0]
        q = self.query(batch["xq"])  # (B, 3 signals, dim)
        with torch.no_grad():
            keys = shuffle_bn_forward(self.key, torch.cat([batch["x1"], batch["x2"], batch["x3"]]))
            k1, k2, k3 = keys.float().split(batch_size)  # each (B, 3 signals, dim)
        q = q.float()
        with losses_in_float32(q):
            terms: dict[str, Tensor] = {}
            if self.weights["inter"]:
                positives = torch.stack([k1[:, INTER], k2[:, INTER], k3[:, INTER]], dim=1)  # (B, 3, dim)
                terms["inter"] = self.inter_loss(q[:, INTER], positives, self.queue.clone().detach())
            if self.weights["intra"]:
                negatives = torch.stack([k2[:, INTRA], k3[:, INTRA]], dim=1)  # (B, 2, dim)
                terms["intra"] = self.intra_loss(q[:, INTRA], k1[:, INTRA], negatives)
            if self.weights["order"]:
                terms["order"] = self.order_loss(q[:, ORDER], k2[:, ORDER], k3[:, ORDER], batch["order"])
                terms["order_acc"] = self.order_loss.accuracy(q[:, ORDER], k2[:, ORDER], k3[:, ORDER],
                                                              batch["order"])
            loss = sum(self.weights[name] * terms[name] for name in SIGNALS if name in terms)
        if self.weights["inter"] and self.training:
            self._enqueue(positives)
        return {"loss": loss, **{name: value.detach() for name, value in terms.items()}}

    def has_unused_parameters(self) -> bool:
        return not all(self.weights.values())

    def replicated_buffers(self) -> tuple[str, ...]:
        return ("queue", "queue_ptr")

    def after_step(self) -> None:
        momentum_update(self.key, self.query, self.momentum)

    def load_start_weights(self) -> None:
        if self.init_checkpoint:
            load_moco_weights(self.query, self.init_checkpoint)
            self.key.load_state_dict(self.query.state_dict())
