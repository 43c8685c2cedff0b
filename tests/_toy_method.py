"""Toy method and dataset for the engine tests; also a training script for subprocess runs.

``python tests/_toy_method.py RUN_DIR NUM_WORKERS CHECKPOINT_EVERY`` trains the toy method
with a fixed seed (used by the kill-and-resume test).
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seco_lab.engine import TrainConfig, fit  # noqa: E402
from seco_lab.engine.distributed import (  # noqa: E402
    all_gather_no_grad, all_gather_with_grad, rank, shuffle_bn_forward,
)

INPUT_DIM = 12
EMBED_DIM = 8
RESUME_DROPOUT = 0.2


class ToyPairDataset(Dataset):
    """Two noisy views ("x1", "x2": (INPUT_DIM,)) of a fixed vector per item; deterministic per
    (seed, epoch, index) whatever the worker count. ``delay`` seconds of sleep per item."""

    def __init__(self, num_items: int, seed: int = 0, delay: float = 0.0) -> None:
        self.num_items = num_items
        self.seed = seed
        self.delay = delay
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.delay:
            time.sleep(self.delay)
        base = np.random.default_rng([self.seed, index]).standard_normal(INPUT_DIM)
        noise = np.random.default_rng([self.seed, self.epoch, index]).standard_normal((2, INPUT_DIM))
        views = torch.from_numpy(base + 0.3 * noise).float()  # (2, INPUT_DIM)
        return {"x1": views[0], "x2": views[1], "index": torch.tensor(index)}


class ToyMoCo(nn.Module):
    """Query encoder + EMA key encoder + queue/pointer buffers; two losses:
    InfoNCE of q against its key and the queue, and a cross-rank term of q against the
    query embeddings of the second view gathered with gradient from every rank. ``dropout``
    makes training consume the global torch RNG (so resuming must restore it)."""

    name = "toy"
    encoder_kind = "2d"

    def __init__(self, queue_size: int = 32, key_momentum: float = 0.9, use_bn: bool = False,
                 temperature: float = 0.2, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(INPUT_DIM, 16)]
        if use_bn:
            layers.append(nn.BatchNorm1d(16))
        layers += [nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, EMBED_DIM)]
        self.query = nn.Sequential(*layers)
        self.key = copy.deepcopy(self.query)
        for parameter in self.key.parameters():
            parameter.requires_grad = False
        self.key_momentum = key_momentum
        self.temperature = temperature
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, EMBED_DIM), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def encoder(self) -> nn.Module:
        return self.query

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        q1 = F.normalize(self.query(batch["x1"]), dim=1)  # (B, E)
        q2 = F.normalize(self.query(batch["x2"]), dim=1)  # (B, E)
        with torch.no_grad():
            k = F.normalize(shuffle_bn_forward(self.key, batch["x2"]), dim=1)  # (B, E)
        queue = self.queue.clone()
        logits = torch.cat([(q1 * k).sum(1, keepdim=True), q1 @ queue.T], dim=1) / self.temperature
        infonce = F.cross_entropy(logits, torch.zeros(len(q1), dtype=torch.long, device=q1.device))
        q2_all = all_gather_with_grad(q2)  # (W * B, E)
        targets = torch.arange(len(q1), device=q1.device) + rank() * len(q1)
        cross = F.cross_entropy(q1 @ q2_all.T / self.temperature, targets)
        self._enqueue(all_gather_no_grad(k))
        loss = infonce + cross
        return {"loss": loss, "infonce": infonce.detach(), "cross": cross.detach()}

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        start = int(self.queue_ptr)
        rows = (torch.arange(len(keys), device=keys.device) + start) % len(self.queue)
        self.queue[rows] = keys
        self.queue_ptr.fill_((start + len(keys)) % len(self.queue))

    @torch.no_grad()
    def after_step(self) -> None:
        for key_param, query_param in zip(self.key.parameters(), self.query.parameters()):
            key_param.mul_(self.key_momentum).add_(query_param.detach(), alpha=1 - self.key_momentum)


def resume_config(num_workers: int, checkpoint_every: int) -> TrainConfig:
    """The configuration of the kill-and-resume runs (SGD momentum, warm-up, cosine, clipping)."""
    return TrainConfig(epochs=4, batch_size=8, base_lr=0.05, lr_scaling_batch=0, optimizer="sgd",
                       weight_decay=1e-4, warmup_epochs=1, grad_clip=5.0, num_workers=num_workers,
                       device="cpu", checkpoint_every=checkpoint_every, seed=3, log_every=2)


def train_for_resume_test(run_dir: str, num_workers: int, checkpoint_every: int,
                          delay: float) -> None:
    torch.manual_seed(0)
    method = ToyMoCo(queue_size=24, dropout=RESUME_DROPOUT)
    dataset = ToyPairDataset(num_items=36, seed=5, delay=delay)
    cfg = resume_config(num_workers, checkpoint_every)
    fit(method, dataset, cfg, Path(run_dir), {"method": "toy", "train": cfg.to_dict()},
        progress=False)
    torch.save(method.state_dict(), Path(run_dir) / "final_state.pt")


if __name__ == "__main__":
    train_for_resume_test(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
