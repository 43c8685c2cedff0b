"""Checkpoints: atomic writes, safe (``weights_only``) reads, and RNG state as plain tensors.

A checkpoint (``run_dir/checkpoint.pt``) is a dict of tensors and plain Python values:

=================  =================================================================
``format``         ``CHECKPOINT_FORMAT`` (int)
``method``         the method's ``name`` (str)
``model``          ``method.state_dict()`` (EMA/key encoder, queue and its pointer included)
``config``         the full run configuration (JSON-able dict, as passed to ``fit``)
``train_config``   ``TrainConfig.to_dict()``
``optimizer``      optimiser ``state_dict``; ``scheduler``: LambdaLR ``state_dict``;
                   ``scaler``: GradScaler ``state_dict`` (empty without float16 autocast)
``step``           optimisation steps done; ``epoch``: epoch in progress (== epochs when
                   finished); ``step_in_epoch``: batches of ``epoch`` already done
``steps_per_epoch``, ``total_steps``, ``finished`` (bool), ``wall_time`` (s of training)
``data_order``     ``{"seed", "epoch", "step_in_epoch", "batch_size", "num_items"}``
``rng``            one entry per rank: ``capture_rng_state()``
``world_size``     processes of the run that wrote it
=================  =================================================================
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pt"
REQUIRED_KEYS = ("format", "method", "model", "config", "train_config", "optimizer", "scheduler",
                 "step", "epoch", "step_in_epoch", "finished", "rng")


class CheckpointError(RuntimeError):
    """A checkpoint file is unreadable, incomplete or does not fit the run."""


def _temporary_path(path: Path, process: str) -> Path:
    """Where a process writes ``path`` before renaming it into place: beside it, hidden."""
    return path.with_name(f".{path.name}.tmp-{process}")


def remove_unfinished_writes(path: str | Path) -> None:
    """Delete the temporary files that writes of ``path`` killed before their rename left beside it."""
    path = Path(path)
    for leftover in path.parent.glob(_temporary_path(path, "*").name):
        leftover.unlink()


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same directory, fsync,
    then ``os.replace`` (a crash leaves the previous checkpoint intact, never half a file)."""
    path = Path(path)
    temporary = _temporary_path(path, str(os.getpid()))
    try:
        with open(temporary, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except (OSError, RuntimeError) as error:  # torch reports a failed write as a RuntimeError about zip offsets
        cause = error if isinstance(error, OSError) else error.__context__
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(error)
        raise CheckpointError(f"{path}: could not write the checkpoint ({reason}); "
                              "the previous checkpoint, if any, is unchanged") from error
    finally:
        if temporary.exists():
            temporary.unlink()


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` onto the CPU.

    Raises ``CheckpointError`` naming the file when it is corrupt, truncated or lacks keys.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint file does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: a folder, not a checkpoint file (a run's checkpoint is "
                              f"<run folder>/checkpoint.pt)") from None
    except Exception as error:  # torch raises many types for a damaged zip/pickle
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(error).__name__}: {error}); "
            f"delete it to train the run again from the start"
        ) from error
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict, found {type(state).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path}: not a seco_lab training checkpoint (missing {', '.join(missing)})")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {state['format']} but this version reads {CHECKPOINT_FORMAT}"
        )
    return state


def capture_rng_state() -> dict[str, Any]:
    """torch, CUDA, numpy (global) and Python ``random`` states as tensors and plain values."""
    numpy_state = np.random.get_state()  # ("MT19937", keys uint32 (624,), pos, has_gauss, cached)
    python_version, python_internal, python_gauss = random.getstate()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(cuda_states),
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "python": {
            "version": int(python_version),
            "internal": torch.tensor(python_internal, dtype=torch.int64),
            "gauss_next": python_gauss,
        },
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng_state``."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        # a process that sees fewer GPUs than the one that saved (another machine, another
        # CUDA_VISIBLE_DEVICES) restores the ones it has: set_rng_state_all fails on the others
        for index, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)
    numpy_state = state["numpy"]
    np.random.set_state((
        "MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
        numpy_state["has_gauss"], numpy_state["cached_gaussian"],
    ))
    python_state = state["python"]
    random.setstate((
        python_state["version"], tuple(python_state["internal"].tolist()), python_state["gauss_next"],
    ))


def seed_everything(seed: int) -> None:
    """Seed torch (all devices), numpy's global generator and Python ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (e.g. an evaluation monitor) without moving any global RNG of the training."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)
