"""Generation time and size on disk of the embedded dataset presets.

Usage: python benchmarks/bench_synth.py [--workers N]
Prints one row per preset: wall time, CPU time (this process and its workers), videos,
frames, tracking sequences, size on disk; and the rendering speed without encoding.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from seco_lab.video import synth


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _disk_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: automatic)")
    args = parser.parse_args()
    print(f"{'preset':<9} {'wall s':>7} {'cpu s':>7} {'videos':>7} {'frames':>7} {'tracks':>7} {'MiB':>6}")
    with tempfile.TemporaryDirectory() as scratch:
        for preset in synth.SYNTH_PRESETS:
            start_wall, start_cpu = time.perf_counter(), _cpu_seconds()
            root = synth.generate_dataset(Path(scratch) / preset, preset, seed=0, progress=False, workers=args.workers)
            wall, cpu = time.perf_counter() - start_wall, _cpu_seconds() - start_cpu
            counts = synth.read_manifest(root)["counts"]
            print(f"{preset:<9} {wall:>7.1f} {cpu:>7.1f} {counts['videos']:>7} {counts['video_frames']:>7} "
                  f"{counts['tracking_sequences']:>7} {_disk_bytes(root) / 2**20:>6.1f}")
    config = synth.SYNTH_PRESETS["standard"]
    scene = synth.draw_scene(np.random.default_rng(0), config)
    frames, start = 0, time.perf_counter()
    for index, class_name in enumerate(config.classes * 8):
        frames += len(synth.render_video(class_name, scene, np.random.default_rng(index), config))
    print(f"rendering only (standard, no encoding): {frames / (time.perf_counter() - start):,.0f} frames/s")


if __name__ == "__main__":
    main()
