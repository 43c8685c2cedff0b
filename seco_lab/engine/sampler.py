"""Seeded data order shared by one process and by torchrun: same global batches for any world size."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


def epoch_order(num_items: int, seed: int, epoch: int) -> np.ndarray:
    """Permutation (num_items,) of the dataset for ``epoch``, a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(num_items)


def rank_batches(order: np.ndarray, global_batch: int, world_size: int, rank: int) -> np.ndarray:
    """This rank's index batches, (steps, global_batch / world_size).

    Global batch ``s`` is ``order[s * global_batch:(s + 1) * global_batch]`` (the incomplete
    tail is dropped: contrastive losses and BatchNorm want full batches); rank ``r`` gets the
    ``r``-th contiguous slice of it, so concatenating the ranks' batches in rank order gives
    the global batch of a single-process run.
    """
    if global_batch % world_size:
        raise ValueError(f"batch_size={global_batch} is not divisible by world size {world_size}")
    steps = len(order) // global_batch
    local = global_batch // world_size
    batches = order[:steps * global_batch].reshape(steps, world_size, local)  # (S, W, B/W)
    return batches[:, rank]


class SeededBatchSampler(Sampler[list]):
    """Batch sampler over ``rank_batches(epoch_order(...))``; ``set_epoch(epoch, start_step)``
    selects the epoch and skips the first ``start_step`` batches (resume mid-epoch)."""

    def __init__(self, num_items: int, global_batch: int, world_size: int, rank: int, seed: int) -> None:
        if num_items < global_batch:
            raise ValueError(
                f"dataset has {num_items} items, fewer than batch_size={global_batch}: "
                f"lower batch_size or use more data"
            )
        self.num_items = num_items
        self.global_batch = global_batch
        self.world_size = world_size
        self.rank = rank
        self.seed = seed
        self.epoch = 0
        self.start_step = 0
        self.with_epoch = False  # yield (epoch, index) pairs instead of indices

    @property
    def steps_per_epoch(self) -> int:
        return self.num_items // self.global_batch

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        if not 0 <= start_step <= self.steps_per_epoch:
            raise ValueError(f"start_step={start_step} outside [0, {self.steps_per_epoch}]")
        self.epoch = epoch
        self.start_step = start_step

    def __iter__(self) -> Iterator[list[int]]:
        order = epoch_order(self.num_items, self.seed, self.epoch)
        batches = rank_batches(order, self.global_batch, self.world_size, self.rank)
        for batch in batches[self.start_step:]:
            yield [(self.epoch, index) for index in batch.tolist()] if self.with_epoch else batch.tolist()

    def __len__(self) -> int:
        return self.steps_per_epoch - self.start_step
