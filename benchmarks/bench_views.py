"""What a DataLoader worker spends per video: making the views, and collating them into a batch.

For each method, on a profile's real data and frame store, it prints:

* ``views CPU``   — median CPU time of one video's views on one thread (``dataset[i]``, after a
  first untimed pass over the same items);
* ``collate CPU`` — CPU time per video of ``default_collate`` on a batch, timed inside a real
  worker process, where it stacks the views into new shared memory for the main process;
* ``MB/video``    — bytes of the collated views, which the main process then reads.

A second table times the resize of a random crop of a uint8 clip, as the augmentation recipes
make it: torch's antialiased resize of the strided crop (what ``v2.RandomResizedCrop`` does),
and of the crop first copied to contiguous memory (``ContiguousRandomResizedCrop``).

Usage: ``python benchmarks/bench_views.py [--profile standard] [--data DIR] [--methods seco,cvrl,dualvar]
[--items 40] [--batches 4]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from seco_lab.environment import configure_cpu_environment

configure_cpu_environment()  # before torch is imported

import torch  # noqa: E402
from torch.utils.data import DataLoader, default_collate  # noqa: E402
from torchvision.transforms.v2 import functional as F  # noqa: E402

from seco_lab.methods import build_method  # noqa: E402
from seco_lab.methods.base import Method  # noqa: E402
from seco_lab.methods.pretrain import build_run_config, train_config  # noqa: E402
from seco_lab.paths import synth_dataset_dir  # noqa: E402
from seco_lab.video.dataset import VideoDataset  # noqa: E402
from seco_lab.video.frame_store import FrameStore, store_folder  # noqa: E402
from seco_lab.video.index import load_dataset  # noqa: E402


def method_and_train_dataset(name: str, profile: str, data_root: Path) -> tuple[dict, Method, VideoDataset]:
    """A method's run config, the method, and the dataset its training loader reads (with the
    frame store when the profile caches frames)."""
    spec, index = load_dataset(data_root, progress=False)
    train = spec.split("train")
    config = build_run_config(name, profile, data_root)
    config["data"]["num_classes"] = len(spec.classes)
    method = build_method(name, config)
    size = int(config["data"]["size"])
    store = None
    if config["data"].get("frame_cache"):
        store = FrameStore.build([r.path for r in train], [index[r].num_frames for r in train], size,
                                 store_folder(data_root), progress=False)
    return config, method, VideoDataset(train, index, method.view_maker(), size=size, seed=0, frame_store=store)


def view_cpu_seconds(dataset: VideoDataset, items: int) -> float:
    """Median CPU time of making one video's views on one thread, as a loader worker does in any
    epoch after the first: the first ``items`` items are made once untimed (first reads of the
    frame store's pages, lazy set-up), then timed in a second pass."""
    items = min(items, len(dataset))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for item in range(items):
            dataset[item]
        times = []
        for item in range(items):
            start = time.process_time()
            dataset[item]
            times.append(time.process_time() - start)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(times)


def timed_collate(items: list[dict[str, torch.Tensor]]) -> tuple[dict[str, torch.Tensor], float]:
    """``default_collate`` and the CPU seconds it took (run in the worker that calls it)."""
    start = time.process_time()
    batch = default_collate(items)
    return batch, time.process_time() - start


def collate_cpu_seconds(dataset: VideoDataset, batch_size: int, batches: int) -> tuple[float, float]:
    """Median CPU seconds per video of collating a batch in a worker, and the batch's MB per video."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=1, collate_fn=timed_collate)
    per_video, megabytes = [], 0.0
    for count, (batch, seconds) in enumerate(loader):
        if count == batches:
            break
        per_video.append(seconds / batch_size)
        megabytes = sum(value.numel() * value.element_size() for value in batch.values()) / batch_size / 2**20
    return statistics.median(per_video), megabytes


def median_microseconds(call, repeats: int = 300) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def resize_table(crop_size: int, frames: int, size: int) -> None:
    torch.set_num_threads(1)
    clip = torch.randint(0, 256, (frames, 3, size, size), dtype=torch.uint8)  # (T, C, H, W)
    print(f"\nresize of a crop of a uint8 clip {tuple(clip.shape)} to {crop_size} px, one thread, median µs")
    print(f"{'crop':>10}{'strided':>10}{'contiguous':>12}{'ratio':>8}")
    for side in (size - 2, size - 6, size - 12):  # crops of 94 %, 82 % and 66 % of the area
        top = left = (size - side) // 2
        strided = median_microseconds(lambda: F.resize(F.crop(clip, top, left, side, side), [crop_size] * 2))
        copied = median_microseconds(
            lambda: F.resize(F.crop(clip, top, left, side, side).contiguous(), [crop_size] * 2))
        print(f"{f'{side}x{side}':>10}{strided:>10.0f}{copied:>12.0f}{strided / copied:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--data", default=None)
    parser.add_argument("--methods", default="seco,cvrl,dualvar")
    parser.add_argument("--items", type=int, default=40, help="videos timed for the views column")
    parser.add_argument("--batches", type=int, default=4, help="batches timed for the collate column")
    args = parser.parse_args()
    if args.items < 1 or args.batches < 1:
        parser.error(f"--items and --batches must be at least 1, got {args.items} and {args.batches}")
    data_root = Path(args.data) if args.data else synth_dataset_dir("standard" if args.profile != "smoke" else "smoke")
    spec, _ = load_dataset(data_root, progress=False)
    print(f"profile {args.profile}, data {data_root}, {len(spec.split('train'))} train videos")
    rows = []
    for name in args.methods.split(","):
        config, method, dataset = method_and_train_dataset(name, args.profile, data_root)
        batch_size = min(train_config(config).batch_size, len(dataset))
        views = view_cpu_seconds(dataset, args.items)
        collate, megabytes = collate_cpu_seconds(dataset, batch_size, args.batches)
        rows.append((name, batch_size, views, collate, megabytes))
    print(f"{'method':<10}{'batch':>6}{'views CPU ms/video':>20}{'collate CPU ms/video':>22}{'MB/video':>10}")
    for name, batch_size, views, collate, megabytes in rows:
        print(f"{name:<10}{batch_size:>6}{views * 1e3:>20.2f}{collate * 1e3:>22.2f}{megabytes:>10.2f}")
    resize_table(crop_size=56, frames=9, size=64)


if __name__ == "__main__":
    main()
