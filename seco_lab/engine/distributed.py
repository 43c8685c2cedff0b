"""Multi-process helpers (torchrun / DistributedDataParallel); all are identities in one process.

Gradient convention: under DDP every rank computes its loss on ITS OWN rows (against keys
gathered from every rank) and DDP averages the parameter gradients, so the result equals one
process computing the mean loss over the global batch. ``all_gather_with_grad`` keeps this
exact: its backward sums the gradient that every rank's loss sends to each gathered row.
"""

from __future__ import annotations

import atexit
import importlib
import os
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

if dist.is_available():
    # torch.distributed.nn binds ``group.WORLD`` as default arguments when first imported, and
    # DistributedDataParallel imports it. Imported after the group exists, it keeps the group
    # alive after ``destroy_process_group``: gloo's worker threads then outlive it, and one that
    # frees a finished collective's tensors while Python shuts down aborts the process
    # ("terminate called without an active exception"). Imported first, the defaults are None.
    importlib.import_module("torch.distributed.nn")


def is_distributed() -> bool:
    """True when a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def env_world_size() -> int:
    """``WORLD_SIZE`` as set by torchrun (1 when absent)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def env_rank() -> int:
    """``RANK`` as set by torchrun (0 when absent): known before any process group exists."""
    return int(os.environ.get("RANK", "0"))


def env_local_rank() -> int:
    """``LOCAL_RANK`` as set by torchrun (0 when absent)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_from_env(use_cuda: bool) -> bool:
    """Initialise the default process group from torchrun's environment when ``WORLD_SIZE > 1``.

    Backend: nccl for CUDA, gloo for CPU. The group is kept for the rest of the process (a
    second rendezvous on the same ``MASTER_PORT`` is unreliable) and destroyed at exit.
    Returns True when this call created it, False when there is nothing to do or one exists.
    """
    if env_world_size() <= 1 or (dist.is_available() and dist.is_initialized()):
        return False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={env_world_size()} but {', '.join(missing)} not set: launch with torchrun"
        )
    if use_cuda:
        torch.cuda.set_device(env_local_rank())
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    atexit.register(_destroy_if_initialised)
    return True


def _destroy_if_initialised() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if is_distributed():
        dist.barrier()


Result = TypeVar("Result")

# Rank 0's one-off work that the other ranks wait for (indexing a dataset and caching its frames
# on a first run, the kNN monitor) can outlast torch's collective timeout (10 minutes for NCCL,
# 30 for gloo), after which the waiting ranks are aborted. They wait on a gloo group of their
# own, made for that one wait, with this timeout; training's collectives keep torch's.
RANK0_WORK_TIMEOUT = timedelta(hours=48)


class MainRankFailed(RuntimeError):
    """Rank 0 stopped with an error in work the other ranks were waiting for."""


def _after_rank0(work: Callable[[], Result]) -> tuple[bool, Result | None]:
    """Run ``work`` on rank 0 while the others wait for it (up to ``RANK0_WORK_TIMEOUT``); an error
    on rank 0 is raised there and as ``MainRankFailed`` on the others. Returns (True, result) on
    rank 0, (False, None) elsewhere."""
    group = dist.new_group(backend="gloo", timeout=RANK0_WORK_TIMEOUT)
    try:
        if rank() == 0:
            try:
                result = work()
            except BaseException as error:
                dist.broadcast_object_list([f"{type(error).__name__}: {error}"], src=0, group=group)
                raise
            dist.broadcast_object_list([None], src=0, group=group)
            return True, result
        failure: list[str | None] = [None]
        dist.broadcast_object_list(failure, src=0, group=group)
        if failure[0] is not None:
            raise MainRankFailed(f"rank 0 stopped: {failure[0]}")
        return False, None
    finally:
        dist.barrier(group=group)  # nobody tears the group down while another rank still uses it
        dist.destroy_process_group(group)


def main_rank_first(work: Callable[[], Result]) -> Result:
    """Run ``work`` on rank 0, then on the other ranks, which find what it left on disk (a dataset
    index, a frame cache) instead of each building their own copy at the same time. An error on
    rank 0 stops every rank: the others raise ``MainRankFailed`` naming it instead of waiting.
    The others wait as long as rank 0 works (up to ``RANK0_WORK_TIMEOUT``), not just torch's
    collective timeout. In one process it just runs ``work``."""
    if not is_distributed():
        return work()
    on_rank0, result = _after_rank0(work)
    return result if on_rank0 else work()  # type: ignore[return-value]


def main_rank_only(work: Callable[[], Result]) -> Result | None:
    """Run ``work`` on rank 0 only, the other ranks waiting for it as in ``main_rank_first``;
    returns its result on rank 0 and None elsewhere (and in one process just runs ``work``)."""
    if not is_distributed():
        return work()
    return _after_rank0(work)[1]


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate ``x`` from every rank along dim 0; backward all-reduces, returns this rank's rows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.batch = x.shape[0]
        parts = [torch.empty_like(x, memory_format=torch.contiguous_format)
                 for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)  # (W * B, ...)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = dist.get_rank() * ctx.batch
        return grad[start:start + ctx.batch]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) on every rank -> (W * B, ...) in rank order, differentiable.

    The backward sums the gradients of every rank's loss with respect to this rank's rows
    (all-reduce, then slice), so no rank's contribution is dropped. ``B`` must be equal on
    all ranks. Returns ``x`` itself in one process.
    """
    if not is_distributed():
        return x
    return _AllGatherWithGrad.apply(x)


@torch.no_grad()
def all_gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) on every rank -> (W * B, ...) in rank order, detached. ``x.detach()`` in one process."""
    if not is_distributed():
        return x.detach()
    parts = [torch.empty_like(x, memory_format=torch.contiguous_format)
             for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts, dim=0)


def shuffle_bn_forward(module: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """MoCo's shuffle-BN: run ``module`` (a module or a function of one, returning one tensor
    (B, ...)) on a random cross-rank shuffle of the batch.

    ``x`` (B, ...) is gathered from every rank (W * B rows), permuted with a permutation drawn
    on rank 0 and broadcast, each rank runs ``module`` on its slice of B shuffled rows (so
    BatchNorm statistics mix videos from all ranks and cannot reveal the positive pair), the
    outputs are gathered, un-permuted, and this rank's B rows are returned: (B, ...).
    Gradients flow when called outside ``torch.no_grad``. Identical to ``module(x)`` in one
    process; ``B`` must be equal on all ranks.
    """
    if not is_distributed():
        return module(x)
    batch = x.shape[0]
    x_all = all_gather_with_grad(x)  # (W * B, ...)
    permutation = torch.randperm(x_all.shape[0], device=x.device) if rank() == 0 else \
        torch.empty(x_all.shape[0], dtype=torch.long, device=x.device)
    dist.broadcast(permutation, src=0)
    mine = permutation[rank() * batch:(rank() + 1) * batch]
    out_all = all_gather_with_grad(module(x_all[mine]))  # (W * B, ...) in shuffled order
    unshuffled = out_all[torch.argsort(permutation)]  # row i = module(x_all[i])
    return unshuffled[rank() * batch:(rank() + 1) * batch]
