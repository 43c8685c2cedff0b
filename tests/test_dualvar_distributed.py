"""DualVar's MoCo variant under 2 gloo processes: its key encoder runs with shuffle-BN.

With shuffle-BN the BatchNorm statistics of a rank's keys come from a random half of the
global batch, so rank 0's keys change when only rank 1's clips change; a plain local forward
of the key encoder would give rank 0 the same keys whatever rank 1 holds.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from seco_lab.methods import build_method
from seco_lab.profiles import get_profile

WORLD = 2
LOCAL_BATCH = 4
CLIP_SHAPE = (3, 8, 32, 32)  # (C, T, H, W)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank0_keys(rank: int, rank1_scale: float) -> torch.Tensor:
    """Rank 0's clip keys after one training forward of a fresh MoCo-variant DualVar, with rank 1's
    clips multiplied by ``rank1_scale`` (rank 0's clips are the same every time)."""
    config = get_profile("smoke")
    config["dualvar"].update(variant="moco", losses="clip+SR+TC", queue_size=16)
    torch.manual_seed(0)
    model = build_method("dualvar", config)
    model.train()
    generator = torch.Generator().manual_seed(10 + rank)
    batch = {name: torch.rand(LOCAL_BATCH, *CLIP_SHAPE, generator=generator) for name in ("v0", "v1", "v2")}
    batch["perm"] = torch.tensor([1, 0]).repeat(LOCAL_BATCH, 1)
    if rank == 1:
        batch = {name: value * rank1_scale if value.is_floating_point() else value for name, value in batch.items()}
    model(batch)
    return model.clip_queue[:LOCAL_BATCH].clone()  # the gathered keys are enqueued in rank order


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        keys = {scale: _rank0_keys(rank, scale) for scale in (1.0, 3.0)}
        torch.save(keys, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_moco_keys_of_one_rank_depend_on_the_other_ranks_clips(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    keys = torch.load(tmp_path / "rank0.pt", weights_only=True)
    assert torch.isfinite(keys[1.0]).all()
    assert not torch.allclose(keys[1.0], keys[3.0], atol=1e-4)
