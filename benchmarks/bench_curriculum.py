"""Time and memory of the whole curriculum: every notebook executed as the report does it.

Runs ``seco_lab report`` for a profile into a fresh temporary run folder (nothing is reused),
while a sampler thread adds up the memory of this process and all its descendants (the Jupyter
kernel and its DataLoader workers) every half second. Prints one row per notebook (wall time)
and the peak total memory, as PSS (what the tree occupies) and as summed RSS. Linux only (reads /proc).

Usage: ``python benchmarks/bench_curriculum.py [--profile smoke] [--notebooks 00,01]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

def _descendants(root_pid: int) -> list[int]:
    """``root_pid`` and all its descendants."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
    found, frontier = [], [root_pid]
    while frontier:
        pid = frontier.pop()
        found.append(pid)
        frontier.extend(child for child, parent in parents.items() if parent == pid)
    return found


def _memory_kib(pid: int) -> tuple[int, int]:
    """(Rss, Pss) of one process in KiB. Pss splits each shared page (the memory-mapped frame
    store, copy-on-write pages of forked loader workers) among the processes that map it."""
    values = {"Rss:": 0, "Pss:": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                key, _, rest = line.partition(" ")
                if key in values:
                    values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values["Rss:"], values["Pss:"]


def _tree_memory_bytes(root_pid: int) -> tuple[int, int]:
    """Summed (RSS, PSS) of ``root_pid`` and its descendants, in bytes. The PSS sum is the
    memory the tree really occupies; the RSS sum counts shared pages once per process."""
    rss = pss = 0
    for pid in _descendants(root_pid):
        process_rss, process_pss = _memory_kib(pid)
        rss, pss = rss + process_rss * 1024, pss + process_pss * 1024
    return rss, pss


class MemorySampler(threading.Thread):
    """Keeps the peaks of ``_tree_memory_bytes(os.getpid())`` until stopped."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_rss = 0
        self.peak_pss = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            rss, pss = _tree_memory_bytes(os.getpid())
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self._stop_event.wait(self.interval)

    def stop(self) -> tuple[int, int]:
        self._stop_event.set()
        self.join()
        return self.peak_rss, self.peak_pss


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
        peak_rss, peak_pss = sampler.stop()
    print(f"\ncurriculum, profile {args.profile}")
    print(f"{'notebook':<24}{'status':>8}{'seconds':>10}")
    for run in result.runs:
        print(f"{run.name:<24}{run.status:>8}{run.seconds:>10.1f}")
    print(f"{'total (incl. dataset)':<24}{'':>8}{total:>10.1f}")
    print(f"peak memory of the report process and all its children: {peak_pss / 2**20:.0f} MiB proportional "
          f"(PSS, shared pages split), {peak_rss / 2**20:.0f} MiB summed resident (RSS, shared pages counted per process)")


if __name__ == "__main__":
    main()
