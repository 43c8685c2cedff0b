"""One-off work on many videos (indexing, caching frames, generating the embedded dataset) in
several processes, with results in the order of the videos.

The processes are forked where that is the platform's default (Linux), so they start without
importing torch again. Each is one core's worth of work: torch and FFmpeg run on one thread
there. They end with the calling process, however it ends (on Linux), and leave Ctrl-C to it.
At most a few calls per process run ahead of the oldest unfinished one, so results waiting for
their turn never pile up in memory.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import TypeVar

Result = TypeVar("Result")
# Calls submitted per process beyond the one it runs: keeps every process busy while results wait
# for the oldest unfinished call.
CALLS_AHEAD_PER_PROCESS = 4


def pool_context():
    """Fork where it is the platform default (Linux): the processes need no re-import of torch."""
    return get_context("fork" if sys.platform.startswith("linux") else "spawn")


def _start_process(caller: int) -> None:
    import torch

    from seco_lab.engine.workers import end_with_parent
    from seco_lab.video.io import decode_on_one_thread

    if end_with_parent():  # killed with the calling process (even by SIGKILL), which handles Ctrl-C
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if os.getppid() != caller:  # the caller ended before the request was made: nothing would end this one
            os._exit(0)
    torch.set_num_threads(1)
    decode_on_one_thread()


def _kill_processes(pool: ProcessPoolExecutor) -> None:
    """End the pool's processes at once, in the middle of their calls."""
    kill_workers = getattr(pool, "kill_workers", None)  # Python 3.14
    if kill_workers is not None:
        kill_workers()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()


def default_processes(num_calls: int) -> int:
    """The cores this process may use, at most one per call; 1 where processes are not forked
    (macOS, Windows): started afresh, each would import torch again, and the caller's script would
    need an ``if __name__ == "__main__":`` guard to load a dataset."""
    from seco_lab.engine.workers import usable_cores

    if pool_context().get_start_method() != "fork":
        return 1
    return max(1, min(usable_cores(), num_calls))


def results_in_order(calls: Sequence[Callable[[], Result]], processes: int, progress: bool = False,
                     description: str = "", unit: str = "it") -> Iterator[Result]:
    """Yield ``call()`` for every call of ``calls``, in their order, computed in ``processes``
    processes (1: here, one after the other). Each call must pickle (a ``functools.partial`` of a
    module-level function). With ``progress``, a tqdm bar counts the finished calls.

    An exception raised by a call is raised here when its turn comes; so is one raised in the
    caller (Ctrl-C) while waiting. Whenever the results stop before the last (that, or the caller
    stops reading), the calls not yet started are cancelled and the processes killed, so no call
    runs on after this generator ends.
    """
    from tqdm.auto import tqdm

    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    if processes == 1 or len(calls) <= 1:
        for call in tqdm(calls, desc=description, unit=unit, disable=not progress):
            yield call()
        return
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=pool_context(), initializer=_start_process,
                               initargs=(os.getpid(),))
    pending: deque[Future] = deque()
    upcoming = iter(calls)
    try:
        for call in upcoming:
            pending.append(pool.submit(call))
            if len(pending) == processes * (1 + CALLS_AHEAD_PER_PROCESS):
                break
        with tqdm(total=len(calls), desc=description, unit=unit, disable=not progress) as bar:
            while pending:
                try:
                    result = pending.popleft().result()
                except BrokenProcessPool as error:
                    raise BrokenProcessPool(
                        f"{description or 'work in processes'}: one of its {processes} processes ended in the middle "
                        "of a call (killed by a signal, or by the system when memory ran out); fewer processes use "
                        "less memory") from error
                next_call = next(upcoming, None)
                if next_call is not None:
                    pending.append(pool.submit(next_call))
                bar.update()
                yield result
    finally:
        if pending:  # stopped early (an error, Ctrl-C, the caller stopped reading): no call runs on
            for future in pending:
                future.cancel()
            _kill_processes(pool)
        pool.shutdown(wait=True, cancel_futures=True)
