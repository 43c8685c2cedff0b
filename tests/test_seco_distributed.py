"""SeCo under DistributedDataParallel (2 gloo processes) equals one process on the global batch.

BatchNorm layers are put in eval mode (fixed statistics) so that both computations normalise
identically; everything else — shuffle-BN key encoding, keys gathered into the queue, DDP's
gradient averaging — runs as in training. Loss, gradients, queue and its pointer must match.
The queue, which every process fills with the same gathered keys, is not re-sent from rank 0 at
every forward.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from seco_lab.engine.trainer import distributed_model
from seco_lab.methods import build_method
from seco_lab.profiles import get_profile

WORLD = 2
LOCAL_BATCH = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _model() -> nn.Module:
    config = get_profile("smoke")
    config["seco"].update(queue_size=16, head_hidden=16, head_dim=8)
    torch.manual_seed(0)
    model = build_method("seco", config)
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    return model


def _global_batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    size = WORLD * LOCAL_BATCH
    batch = {name: torch.randn(size, 3, 32, 32, generator=generator) for name in ("xq", "x1", "x2", "x3")}
    batch["order"] = torch.randint(0, 2, (size,), generator=generator)
    return batch


def _step(model: nn.Module, wrapped: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = wrapped(batch)
    out["loss"].backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return {"loss": out["loss"].detach(), "grads": grads, "queue": model.queue.clone(), "ptr": model.queue_ptr.clone()}


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        model = _model()
        wrapped = distributed_model(model, torch.device("cpu"))
        batch = {name: value[rank * LOCAL_BATCH:(rank + 1) * LOCAL_BATCH] for name, value in _global_batch().items()}
        result = _step(model, wrapped, batch)
        if rank == 1:  # a queue rank 0 does not hold: kept through the next forward (eval mode: nothing enqueued)
            model.queue.fill_(0.0)
        model.eval()
        wrapped(batch)
        result["queue_after_forward"] = model.queue.clone()
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_match_one_process_on_the_global_batch(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    model = _model()
    single = _step(model, model, _global_batch())

    distributed_loss = torch.stack([r["loss"] for r in ranks]).mean()
    assert torch.allclose(distributed_loss, single["loss"], atol=1e-5)
    for rank in ranks:  # DDP leaves the same averaged gradient on every rank
        assert rank["grads"].keys() == single["grads"].keys()
        for name, grad in single["grads"].items():
            assert torch.allclose(rank["grads"][name], grad, atol=1e-5, rtol=1e-4), name
        assert torch.allclose(rank["queue"], single["queue"], atol=1e-5)
        assert torch.equal(rank["ptr"], single["ptr"])
    assert int(single["ptr"]) == (3 * WORLD * LOCAL_BATCH) % model.queue.shape[0]
    assert torch.equal(ranks[0]["queue_after_forward"], ranks[0]["queue"])
    assert not ranks[1]["queue_after_forward"].any()
