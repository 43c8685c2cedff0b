"""One training per run folder at a time.

Two trainings writing to one folder would each write the other's checkpoint over and append
every step twice to its history; a run killed without its processes (a torchrun launcher killed
alone leaves its ranks running) and then resumed would do exactly that. ``run_folder_lock``
holds an exclusive ``flock`` on ``<run_dir>/.lock`` while a training runs; the operating system
releases it when the process ends, however it ends, so a lock is never left behind.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; trainings are not kept apart there
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"
_held: set[str] = set()  # run folders this process holds (``pretrain`` holds its folder, then ``fit`` asks again)


class RunFolderInUse(RuntimeError):
    """Another process is training in this run folder."""


@contextlib.contextmanager
def run_folder_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock (creating the folder) for the ``with`` block, or raise
    ``RunFolderInUse`` naming the process that holds it. A folder this call created and that
    holds nothing but the lock afterwards (the run stopped before writing anything) is removed.
    Asked again for a folder this process holds, it holds it on (re-entrant)."""
    key = os.path.realpath(run_dir)
    if fcntl is None or key in _held:
        yield
        return
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    handle = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunFolderInUse(
                f"{run_dir} is in use by another training (process {holder}): two trainings in one folder "
                "write over each other's checkpoint and history. Wait for it to end or stop it (a run whose "
                "torchrun launcher was killed alone may still be running), or choose another --out"
            ) from None
        except OSError as error:  # a filesystem without flock (Lustre mounted without it, some FUSE ones)
            warnings.warn(f"{run_dir}: cannot lock the run folder ({error.strerror or error}), so nothing stops a "
                          "second training from writing into it at the same time", stacklevel=3)
            _held.add(key)  # said once: a nested request for this folder does not try again
            yield
            return
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _held.add(key)
        yield
    finally:
        _held.discard(key)
        handle.close()  # releases the lock
        if created and [entry.name for entry in run_dir.iterdir()] == [LOCK_NAME]:
            path.unlink()
            run_dir.rmdir()
