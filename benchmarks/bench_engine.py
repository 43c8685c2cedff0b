"""Training-engine overhead benchmark: ``fit`` against a bare PyTorch loop on the same model.

A small 2D-CNN contrastive method (two 3x32x32 views, EMA key encoder, queue) is trained for
the same number of steps by (a) a plain ``for batch in loader`` loop with SGD, (b) ``fit``
without mid-epoch checkpoints, (c) ``fit`` checkpointing every 10 steps. Prints steps/s,
the engine's overhead relative to the bare loop, and the size/time of one checkpoint.

Usage: ``python benchmarks/bench_engine.py [--steps 40] [--batch 16]``
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from seco_lab.engine import TrainConfig, fit

IMAGE_SHAPE = (3, 32, 32)


class RandomPairs(Dataset):
    """Two random views per item, deterministic per (epoch, index)."""

    def __init__(self, num_items: int) -> None:
        self.num_items = num_items
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.epoch * 1_000_003 + index)
        views = torch.randn(2, *IMAGE_SHAPE, generator=generator)  # (2, C, H, W)
        return {"x1": views[0], "x2": views[1]}


class SmallMoCo(nn.Module):
    name = "bench"

    def __init__(self, queue_size: int = 1024, dim: int = 64) -> None:
        super().__init__()
        self.query = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, dim),
        )
        self.key = copy.deepcopy(self.query)
        for parameter in self.key.parameters():
            parameter.requires_grad = False
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        q = F.normalize(self.query(batch["x1"]), dim=1)  # (B, D)
        with torch.no_grad():
            k = F.normalize(self.key(batch["x2"]), dim=1)  # (B, D)
        logits = torch.cat([(q * k).sum(1, keepdim=True), q @ self.queue.clone().T], dim=1) / 0.2
        loss = F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))
        with torch.no_grad():
            start = int(self.queue_ptr)
            rows = (torch.arange(len(k)) + start) % len(self.queue)
            self.queue[rows] = k
            self.queue_ptr.fill_((start + len(k)) % len(self.queue))
        return {"loss": loss, "infonce": loss.detach()}

    @torch.no_grad()
    def after_step(self) -> None:
        for key_param, query_param in zip(self.key.parameters(), self.query.parameters()):
            key_param.mul_(0.99).add_(query_param, alpha=0.01)


def bare_loop(steps: int, batch: int) -> float:
    torch.manual_seed(0)
    method = SmallMoCo()
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.01,
                                momentum=0.9)
    loader = DataLoader(RandomPairs(steps * batch), batch_size=batch, shuffle=True, drop_last=True)
    start = time.perf_counter()
    for data in loader:
        loss = method(data)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        method.after_step()
    return steps / (time.perf_counter() - start)


def engine_run(steps: int, batch: int, checkpoint_every: int, run_dir: Path) -> float:
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=1, batch_size=batch, base_lr=0.01, lr_scaling_batch=0, device="cpu",
                      checkpoint_every=checkpoint_every, log_every=10)
    result = fit(SmallMoCo(), RandomPairs(steps * batch), cfg, run_dir, {"bench": True},
                 resume=False, progress=False)
    return result.steps / result.wall_time


def checkpoint_cost(run_dir: Path) -> tuple[float, float]:
    from seco_lab.engine.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(run_dir / "checkpoint.pt")
    start = time.perf_counter()
    repeats = 5
    for _ in range(repeats):
        save_checkpoint(state, run_dir / "copy.pt")
    seconds = (time.perf_counter() - start) / repeats
    return seconds, (run_dir / "copy.pt").stat().st_size / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        bare_loop(3, args.batch)  # warm-up: first optimiser import, allocator, thread pool
        bare = bare_loop(args.steps, args.batch)
        plain = engine_run(args.steps, args.batch, 0, Path(tmp) / "plain")
        checkpointed = engine_run(args.steps, args.batch, 10, Path(tmp) / "ckpt")
        save_seconds, size_mib = checkpoint_cost(Path(tmp) / "ckpt")
    print(f"{'run':<34}{'steps/s':>10}{'vs bare':>10}")
    for label, rate in (("bare loop", bare), ("fit", plain), ("fit, checkpoint every 10 steps", checkpointed)):
        print(f"{label:<34}{rate:>10.1f}{rate / bare:>10.2f}")
    print(f"one checkpoint: {size_mib:.2f} MiB, {save_seconds * 1000:.1f} ms to write (atomic)")


if __name__ == "__main__":
    main()
