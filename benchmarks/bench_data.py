"""Data pipeline benchmark: index build, clip decoding, DataLoader throughput, peak memory.

Generates its own videos in a temporary folder (a ``folders`` layout), then prints a table:

- index build time per 1,000 videos (first build, and a rebuild served from the cache), and the
  first build and the frame store's build in one process and in one per usable core (median of
  ``--rounds``);
- random-clip decoding with ``read_frames`` relative to a plain sequential PyAV decode of the
  same frames (decode from the first frame, convert the wanted ones); >= 0.8 is the goal;
  the same for SeCo's frame triplets (one frame in each half: read_frames seeks to the far ones),
  and for the 8 evenly spaced frames of the linear protocol in mpeg4 AVI files with a keyframe
  every 12 frames, as UCF101's and HMDB51's (read_frames seeks to the keyframe before each);
- DataLoader clips/s with 0, 1 and 2 workers (VideoDataset reading one clip per item);
- peak resident memory of this process and of its (worker) children.

Usage: ``python benchmarks/bench_data.py [--videos 200] [--frames 40] [--size 64] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter
from torch.utils.data import DataLoader

from seco_lab.samplers import evenly_spaced_frames, seco_frame_triplet
from seco_lab.engine.workers import usable_cores
from seco_lab.video.dataset import VideoDataset, VideoSource
from seco_lab.video.frame_store import FrameStore
from seco_lab.video.index import VideoIndex
from seco_lab.video.io import THREADED_DECODE_MIN_PIXELS, read_frames, write_video
from seco_lab.video.layouts import discover

CLIP_FRAMES = 8
CLIP_STRIDE = 2
UCF101_HEIGHT = 240


def make_videos(root: Path, num_videos: int, num_frames: int, size: int, classes: int = 4,
                codec: str = "libx264") -> None:
    """Moving-square videos, ``num_videos`` spread over ``classes`` class folders (``.avi`` for
    mpeg4, whose keyframes FFmpeg places every 12 frames, ``.mp4`` otherwise)."""
    rng = np.random.default_rng(0)
    for video in range(num_videos):
        frames = np.full((num_frames, size, size, 3), rng.integers(0, 255, 3), dtype=np.uint8)
        x, y = rng.integers(0, size // 2, 2)
        dx, dy = rng.integers(-2, 3, 2)
        for t in range(num_frames):
            top, left = (y + dy * t) % (size // 2), (x + dx * t) % (size // 2)
            frames[t, top:top + size // 4, left:left + size // 4] = 255 - frames[t, 0, 0]
        suffix = ".avi" if codec == "mpeg4" else ".mp4"
        write_video(root / f"class{video % classes}" / f"video{video:05d}{suffix}", frames, codec=codec)


def random_clip(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    span = (CLIP_FRAMES - 1) * CLIP_STRIDE + 1
    start = int(rng.integers(0, max(1, num_frames - span + 1)))
    return np.minimum(start + CLIP_STRIDE * np.arange(CLIP_FRAMES), num_frames - 1)


def sequential_pyav_plain(path: Path, indices: np.ndarray) -> list[np.ndarray]:
    """Reference: PyAV with default settings, decoding from the first frame to the last wanted one."""
    wanted = set(int(i) for i in indices)
    last = max(wanted)
    arrays = []
    with av.open(str(path)) as container:
        for position, frame in enumerate(container.decode(video=0)):
            if position in wanted:
                arrays.append(frame.to_ndarray(format="rgb24"))
            if position >= last:
                break
    return arrays


def sequential_pyav_tuned(path: Path, indices: np.ndarray) -> list[np.ndarray]:
    """Reference with read_frames' decoder settings (one thread for small frames, one scaler context)."""
    wanted = set(int(i) for i in indices)
    last = max(wanted)
    arrays = []
    reformatter = VideoReformatter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.codec_context.width * stream.codec_context.height >= THREADED_DECODE_MIN_PIXELS:
            stream.thread_type = "AUTO"
        else:
            stream.codec_context.thread_count = 1
        for position, frame in enumerate(container.decode(stream)):
            if position in wanted:
                arrays.append(reformatter.reformat(frame, format="rgb24").to_ndarray())
            if position >= last:
                break
    return arrays


def seco_triplet(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """SeCo's frames of one video: the anchor in one half, two frames in the other."""
    return seco_frame_triplet(num_frames, rng)[0]


def evaluation_frames(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """The linear protocol's frames of one video: 8 evenly spaced (``rng`` is not used)."""
    return evenly_spaced_frames(num_frames, 8)


def decode_rates(paths: list[Path], num_frames: int, repeats: int = 3,
                 pattern: Callable[[int, np.random.Generator], np.ndarray] = random_clip) -> dict[str, float]:
    """Clips/s of read_frames and of the two sequential references, the frames ``pattern``
    draws from each video (default: one random clip)."""
    rng = np.random.default_rng(1)
    clips = [(path, pattern(num_frames, rng)) for path in paths]
    decoders = {"read_frames": read_frames, "plain": sequential_pyav_plain, "tuned": sequential_pyav_tuned}
    best = {name: float("inf") for name in decoders}
    for _ in range(repeats):
        for name, decode in decoders.items():
            start = time.perf_counter()
            for path, indices in clips:
                decode(path, indices)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: len(clips) / seconds for name, seconds in best.items()}


def decode_rows(label: str, rates: dict[str, float]) -> list[tuple[str, str]]:
    return [
        (f"decode {label}: read_frames", f"{rates['read_frames']:.0f} clips/s"),
        ("  sequential PyAV, default settings", f"{rates['plain']:.0f} clips/s"),
        ("  sequential PyAV, same decoder settings", f"{rates['tuned']:.0f} clips/s"),
        ("  ratio read_frames / sequential default (goal >= 0.8)", f"{rates['read_frames'] / rates['plain']:.2f}"),
        ("  ratio read_frames / sequential same settings", f"{rates['read_frames'] / rates['tuned']:.2f}"),
    ]


def build_seconds(build: Callable[[Path], object], folder: Path, rounds: int) -> float:
    """Median wall time of ``build(empty_folder)`` over ``rounds`` fresh folders under ``folder``."""
    seconds = []
    for round_number in range(rounds):
        target = folder / f"round{round_number}"
        target.mkdir(parents=True)
        start = time.perf_counter()
        build(target)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def parallel_build_rows(spec, index: VideoIndex, size: int, folder: Path, rounds: int) -> list[tuple[str, str]]:
    """Index and frame-store builds per 1,000 videos, in one process and in one per usable core."""
    cores = usable_cores()
    paths = [record.path for record in spec.records]
    counts = [index[path].num_frames for path in paths]
    builds = {
        "index build (first)": lambda processes: lambda target: VideoIndex.build(
            spec, cache_dir=target, progress=False, processes=processes),
        "frame store build": lambda processes: lambda target: FrameStore.build(
            paths, counts, size, target, progress=False, processes=processes),
    }
    rows = []
    for name, build in builds.items():
        one = build_seconds(build(1), folder / name / "one", rounds)
        many = build_seconds(build(cores), folder / name / "many", rounds)
        rows.append((f"{name} per 1,000 videos, 1 process", f"{one * 1000 / len(paths):.2f} s"))
        rows.append((f"{name} per 1,000 videos, {cores} processes", f"{many * 1000 / len(paths):.2f} s"))
        rows.append((f"  speed-up with {cores} processes", f"{one / many:.2f}x"))
    return rows


class OneClip:
    """ViewMaker for the DataLoader benchmark: one strided clip."""

    def __call__(self, source: VideoSource, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        return {"clip": source.read(random_clip(source.num_frames, rng))}


def loader_throughput(dataset: VideoDataset, num_workers: int, epochs: int = 2) -> float:
    loader = DataLoader(dataset, batch_size=16, shuffle=True, num_workers=num_workers)
    clips = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        for batch in loader:
            clips += batch["clip"].shape[0]
    return clips / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--long-videos", type=int, default=20, help="videos of 10x the frames, for seeking")
    parser.add_argument("--rounds", type=int, default=3, help="builds timed per process count (median)")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="seco_lab_bench_") as temporary:
        root = Path(temporary) / "short"
        start = time.perf_counter()
        make_videos(root, args.videos, args.frames, args.size)
        rows.append((f"generate {args.videos} videos ({args.frames} frames, {args.size}x{args.size})",
                     f"{time.perf_counter() - start:.2f} s"))
        spec = discover(root)
        start = time.perf_counter()
        index = VideoIndex.build(spec, progress=False)
        build = time.perf_counter() - start
        start = time.perf_counter()
        VideoIndex.build(spec, progress=False)
        cached = time.perf_counter() - start
        rows.append(("index build per 1,000 videos (first build)", f"{build * 1000 / args.videos:.2f} s"))
        rows.append(("index build per 1,000 videos (from cache)", f"{cached * 1000 / args.videos:.3f} s"))
        rows.extend(parallel_build_rows(spec, index, args.size, Path(temporary) / "builds", args.rounds))

        paths = [record.path for record in spec.records]
        rows.extend(decode_rows(f"random clips of {args.frames}-frame videos", decode_rates(paths, args.frames)))
        long_root = Path(temporary) / "long"
        long_frames = args.frames * 10
        make_videos(long_root, args.long_videos, long_frames, args.size)
        long_paths = sorted(long_root.rglob("*.mp4"))
        rows.extend(decode_rows(f"random clips of {long_frames}-frame videos", decode_rates(long_paths, long_frames)))
        rows.extend(decode_rows(f"SeCo frame triplets of {long_frames}-frame videos",
                                decode_rates(long_paths, long_frames, pattern=seco_triplet)))
        avi_root = Path(temporary) / "avi"
        make_videos(avi_root, args.long_videos, long_frames, UCF101_HEIGHT, codec="mpeg4")
        avi_paths = sorted(avi_root.rglob("*.avi"))
        rows.extend(decode_rows(f"8 evenly spaced frames of {long_frames}-frame mpeg4 AVIs ({UCF101_HEIGHT} px)",
                                decode_rates(avi_paths, long_frames, pattern=evaluation_frames)))

        dataset = VideoDataset(spec.records, index, OneClip(), size=args.size, seed=0)
        for workers in (0, 1, 2):
            rows.append((f"DataLoader clips/s, {workers} worker(s), batch 16, {CLIP_FRAMES}x{args.size}x{args.size}",
                         f"{loader_throughput(dataset, workers):.0f}"))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rows.append(("peak RSS, this process", f"{own:.0f} MiB"))
    rows.append(("peak RSS, largest worker process", f"{children:.0f} MiB"))
    width = max(len(name) for name, _ in rows)
    print(f"| {'measure'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
