"""Waiting for processes the tests do not own (another process's children) to end."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def all_ended(pids: Iterable[int], within_s: float) -> bool:
    """Whether every process of ``pids`` has ended, waiting up to ``within_s`` seconds for them."""
    pids = list(pids)
    deadline = time.monotonic() + within_s
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(alive(pid) for pid in pids)
