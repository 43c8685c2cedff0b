"""DataLoader workers that yield the cores to the training step on a CPU.

On a machine whose cores run the training step, every worker that makes a batch takes a core
from one of the step's threads, and a multi-threaded operator then waits for its slowest
thread. Yet the step does not keep every core busy all the time (single-threaded stretches,
the optimiser, Python between operators). Workers with a higher niceness run in exactly those
gaps: the scheduler hands a core to a step thread whenever one is ready, and to a worker
otherwise. When the workers fall behind, the step blocks on the loader and leaves them all the
cores, so nothing starves; only the order changes. ``benchmarks/bench_training.py`` measures
the effect (loader-fed step ÷ in-memory step).
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
import warnings
from collections.abc import Callable

from seco_lab.engine.preemption import ignore_stop_signals

MAX_NICENESS = 19
# The start of PyTorch's own warning about more workers than cores, which ``worker_count_note`` replaces.
TORCH_WORKER_COUNT_WARNING = "This DataLoader will create"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the platform keeps one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def worker_count_note(num_workers: int) -> str | None:
    """What to say when ``num_workers`` loader processes exceed this process's cores, else None."""
    cores = usable_cores()
    if num_workers <= cores:
        return None
    return (f"{num_workers} data loading processes on {cores} usable CPU core{'s' * (cores != 1)}: they take turns "
            f"with each other and with the training step, which slows every step; pretrain --num-workers {cores} "
            f"(the profile's data.num_workers) fits them")


def _raise_niceness(niceness: int, worker_id: int) -> None:
    try:
        os.nice(niceness)
    except OSError as error:  # a sandbox that forbids it: train at the normal priority
        warnings.warn(f"DataLoader worker {worker_id} keeps its priority: os.nice failed ({error})", stacklevel=1)


def lower_worker_priority(niceness: int) -> Callable[[int], None] | None:
    """A DataLoader ``worker_init_fn`` that adds ``niceness`` (0-19) to each worker's Unix nice
    value, or ``None`` when there is nothing to do (0, or no ``os.nice`` on this platform).
    Raising one's own nice value needs no privileges; the kernel caps it at 19."""
    if isinstance(niceness, bool) or not isinstance(niceness, int) or not 0 <= niceness <= MAX_NICENESS:
        raise ValueError(f"worker niceness must be an integer in [0, {MAX_NICENESS}], got {niceness!r}")
    if niceness == 0 or not hasattr(os, "nice"):
        return None
    return functools.partial(_raise_niceness, niceness)


PR_SET_PDEATHSIG = 1  # prctl(2) option: the signal this process gets when its parent ends


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library's symbols as this process has them loaded (Linux), else None."""
    return ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def end_with_parent(worker_id: int = 0) -> bool:
    """A DataLoader ``worker_init_fn`` (Linux): the worker is killed as soon as the process that
    started it ends. Without it, a worker whose main process was killed outright (SIGKILL, the
    out-of-memory killer) lives on until PyTorch's watchdog notices, and may print a
    ``BrokenPipeError`` traceback from the pipe that no one reads any more. Linux sends the
    signal when the *thread* that started the worker ends, so a loader's iterator must not outlive
    the thread that created it (the training loop and the evaluations iterate on the calling
    thread). Returns whether the request was made (False on other platforms)."""
    libc = _libc()
    if libc is None:
        return False
    return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0


def _start_training_worker(raise_niceness: Callable[[int], None] | None, worker_id: int) -> None:
    if end_with_parent(worker_id):  # Ctrl-C is the main process's to handle; the worker ends with it
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    ignore_stop_signals()
    if raise_niceness is not None:
        raise_niceness(worker_id)


def training_worker_init(niceness: int) -> Callable[[int], None]:
    """The training loader's ``worker_init_fn``: the worker ends with its main process
    (``end_with_parent``; it then leaves Ctrl-C to that process, which under torchrun would
    otherwise get a traceback from every worker of every rank), ignores the stop signals (the
    training process stops at a step boundary and its workers end with it,
    ``seco_lab.engine.preemption``), then adds ``niceness`` to its nice value as
    ``lower_worker_priority`` does."""
    return functools.partial(_start_training_worker, lower_worker_priority(niceness))
