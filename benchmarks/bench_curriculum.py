"""Time and memory of the whole curriculum: every notebook executed as the report does it.

Runs ``seco_lab report`` for a profile into a fresh temporary run folder (nothing is reused),
while a sampler thread adds up the resident memory of this process and all its descendants
(the Jupyter kernel and its DataLoader workers) every half second. Prints one row per notebook
(wall time) and the peak total resident memory. Linux only (reads /proc).

Usage: ``python benchmarks/bench_curriculum.py [--profile smoke] [--notebooks 00,01]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _tree_rss_bytes(root_pid: int) -> int:
    """Resident memory of ``root_pid`` and all its descendants."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        rss[int(entry)] = int(fields[21]) * PAGE_SIZE
    total, frontier = 0, [root_pid]
    while frontier:
        pid = frontier.pop()
        total += rss.get(pid, 0)
        frontier.extend(child for child, parent in parents.items() if parent == pid)
    return total


class MemorySampler(threading.Thread):
    """Keeps the peak of ``_tree_rss_bytes(os.getpid())`` until stopped."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, _tree_rss_bytes(os.getpid()))
            self._stop_event.wait(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--notebooks", default=None, help="comma-separated prefixes, e.g. 00,01")
    parser.add_argument("--keep", default=None, help="keep runs and report in this folder instead of a temporary one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="seco_lab-bench-") as temporary:
        folder = Path(args.keep) if args.keep else Path(temporary)
        os.environ["SECO_LAB_RUNS"] = str(folder / "runs")
        from seco_lab.report import run_report

        sampler = MemorySampler()
        sampler.start()
        start = time.perf_counter()
        selection = args.notebooks.split(",") if args.notebooks else None
        result = run_report(args.profile, selection=selection, out_dir=folder / "report")
        total = time.perf_counter() - start
        peak = sampler.stop()
    print(f"\ncurriculum, profile {args.profile}")
    print(f"{'notebook':<24}{'status':>8}{'seconds':>10}")
    for run in result.runs:
        print(f"{run.name:<24}{run.status:>8}{run.seconds:>10.1f}")
    print(f"{'total (incl. dataset)':<24}{'':>8}{total:>10.1f}")
    print(f"peak resident memory of the report process and all its children: {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
