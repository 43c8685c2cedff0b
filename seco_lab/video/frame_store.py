"""Decoded frames of a small dataset, kept in one memory-mapped file.

Self-supervised training reads a few frames of every video in every epoch. For a small dataset
(the embedded one decodes to about 230 MB at 64 px) decoding each video once and keeping the
frames in a memory-mapped file turns every later read into an array slice; all DataLoader
workers share the file's pages through the operating system's cache. Large datasets (UCF101
at full size, Kinetics) keep decoding on the fly: set the profile's ``frame_cache`` to false.

The store lives next to the data (``<root>/.seco_lab_frames_<size>_<set>.bin`` and ``.json``,
``<set>`` naming the set of videos, so runs on different splits never share a file), or in the
user cache folder when the dataset folder is read-only; it is rebuilt when a video's size or
modification time changes. Before writing, the free space of that disk is checked against the
frames' size: :class:`FrameStoreSpaceError` says how much is missing, and training then decodes
from the files instead; when there is room, a line on stderr (with the progress bars) names
the file, its size and how to do without it. A build stopped by any exception (Ctrl-C too)
deletes its partial file. Each set of
videos keeps its own store (another split, another size), unless a store of the same frame size
already holds every one of its videos unchanged (a subset of a stored set): that one is read.
:func:`cached_stores` lists the stores of a dataset and :func:`remove_stores` deletes them
(``python -m seco_lab data cache ROOT [--remove]``).

The store also keeps, for every video, the camera's whole-pixel shift from each frame to the next
and back (``estimate_translations`` on the stored frames), so the loaders of stabilized frame
differences look them up (:meth:`FrameStore.camera_steps`) instead of searching again in every
epoch.
"""

from __future__ import annotations

import errno
import functools
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seco_lab.transforms.functional import estimate_translations
from seco_lab.video.io import VideoDecodeError, read_frames, resized_shape
from seco_lab.video.parallel import default_processes, results_in_order

# Raised whenever decoding returns other frames or the file format changes, so an older store
# is rebuilt, never read: 2 = byte offsets, 3 = frames turned upright by a display rotation,
# 4 = camera steps between consecutive frames.
STORE_VERSION = 4
# Left free on the disk beside the store, so caching never fills it.
RESERVE_BYTES = 1 << 30


class FrameStoreSpaceError(OSError):
    """The disk has no room for the decoded frames."""


@dataclass(frozen=True)
class _Entry:
    offset: int  # first byte of the video's frames in the file
    num_frames: int
    height: int
    width: int


def _key(path: str | Path) -> str:
    """A video's key in the store: its path as ``Path`` spells it (a Path is not parsed again:
    the loaders ask for every item)."""
    return str(path) if isinstance(path, Path) else str(Path(path))


def _fingerprint(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


class FrameStore:
    """All frames of some videos, decoded once at shorter side ``size``: ``read(path, indices)``,
    and the camera's shifts between their consecutive frames: ``camera_steps(path, reference, moving)``."""

    def __init__(self, data_file: Path, entries: dict[str, _Entry], steps: dict[str, np.ndarray]) -> None:
        self.data_file = Path(data_file)
        self.entries = entries
        self.steps = steps  # path -> (num_frames - 1, 2, 2): shifts (dy, dx) from frame t to t + 1, and back
        self._frames: np.ndarray | None = None  # opened lazily, so each worker maps its own view

    def __contains__(self, path: str | Path) -> bool:
        return _key(path) in self.entries

    def __getstate__(self) -> dict:
        return {"data_file": self.data_file, "entries": self.entries, "steps": self.steps, "_frames": None}

    def _array(self) -> np.ndarray:
        if self._frames is None:
            self._frames = np.memmap(self.data_file, dtype=np.uint8, mode="r")
        return self._frames

    def read(self, path: str | Path, indices: Sequence[int]) -> torch.Tensor:
        """Frames ``indices`` of video ``path``: uint8 (T, C, H, W)."""
        entry = self.entries[_key(path)]
        wanted = np.asarray(indices, dtype=np.int64)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= entry.num_frames):
            raise IndexError(f"{path}: frame indices must be in [0, {entry.num_frames}), got {wanted.tolist()}")
        video_bytes = entry.num_frames * entry.height * entry.width * 3
        video = self._array()[entry.offset:entry.offset + video_bytes]
        frames = video.reshape(entry.num_frames, entry.height, entry.width, 3)[wanted]  # (T, H, W, C)
        # numpy makes this uint8 layout change in about a quarter of the time torch's permute-copy takes
        return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))  # (T, C, H, W)

    def camera_steps(self, path: str | Path, reference: Sequence[int], moving: Sequence[int]) -> torch.Tensor | None:
        """The camera's shifts ``(N, 2)`` from frame ``reference[n]`` to frame ``moving[n]`` of video
        ``path``, as ``estimate_translations`` (default radius) gives them on the stored frames; None
        unless every pair is a frame and the next one, the previous one, or itself (shift 0)."""
        steps = self.steps.get(_key(path))
        reference, moving = np.asarray(reference, dtype=np.int64), np.asarray(moving, dtype=np.int64)
        if steps is None or reference.shape != moving.shape or reference.ndim != 1:
            return None
        earlier = np.minimum(reference, moving)  # the pair's first frame in the video
        forward, backward = moving == reference + 1, moving == reference - 1
        neighbours = forward | backward
        outside = (earlier < 0) | (earlier >= len(steps))
        if not np.all(neighbours | (moving == reference)) or np.any(neighbours & outside):
            return None
        shifts = np.zeros((len(reference), 2), dtype=np.int64)
        shifts[forward] = steps[earlier[forward], 0]
        shifts[backward] = steps[earlier[backward], 1]
        return torch.from_numpy(shifts)

    @classmethod
    def build(cls, paths: Sequence[Path], num_frames: Sequence[int], size: int, folder: Path,
              progress: bool = True, frame_sizes: Sequence[tuple[int, int]] | None = None,
              processes: int | None = None) -> FrameStore:
        """Decode ``paths`` (with their frame counts) into ``folder``, or read them from a store of
        frame size ``size`` there that holds every one of them unchanged. With ``progress``, a line
        on stderr names a new store's file and size, and how to do without it, before writing.

        ``frame_sizes``: each video's native (height, width), to check the disk's free space
        before decoding; without them only a full disk during writing stops the build. Either
        way :class:`FrameStoreSpaceError` is raised and no partial file is left. A video that fails
        to decode is left out (it is then read from its file, where the dataset's bad-file
        handling applies). ``processes`` decode the videos (default: one per usable core on
        Linux); the store is the same for any number.
        """
        from tqdm.auto import tqdm

        folder = Path(folder)
        wanted = {str(Path(p)): (_fingerprint(Path(p)), int(n)) for p, n in zip(paths, num_frames)}
        data_file, index_file = _store_files(folder, size, wanted)
        _remove_abandoned_builds(data_file, index_file)
        existing = cls._covering_store(folder, size, wanted, data_file, index_file)
        if existing is not None:
            return existing
        for outdated in (f".seco_lab_frames_{size}.bin", f".seco_lab_frames_{size}.json"):  # version 1's one store
            (folder / outdated).unlink(missing_ok=True)
        needed = None
        if frame_sizes is not None:
            needed = sum(count * 3 * _pixels(shape, size) for (_, count), shape in zip(wanted.values(), frame_sizes))
            _check_free_space(folder, needed)
        if progress:
            tqdm.write(_writing_note(data_file, len(wanted), needed), file=sys.stderr)

        entries: dict[str, _Entry] = {}
        steps: dict[str, np.ndarray] = {}
        fingerprints: dict[str, list[int]] = {}
        temporary = data_file.with_name(data_file.name + f".tmp-{os.getpid()}")
        offset = 0
        try:
            with open(temporary, "wb") as handle:
                calls = [functools.partial(_decoded_video, key, count, size) for key, (_, count) in wanted.items()]
                if processes is None:
                    processes = default_processes(len(calls))
                decoded = results_in_order(calls, processes, progress, "caching decoded frames", unit="video")
                for (key, (fingerprint, count)), video in zip(wanted.items(), decoded, strict=True):
                    if video is None:
                        continue
                    frames, steps[key] = video
                    handle.write(frames.data)
                    entries[key] = _Entry(offset, count, frames.shape[1], frames.shape[2])
                    fingerprints[key] = fingerprint
                    offset += frames.size
        except BaseException as error:  # a full disk, a failing read, Ctrl-C: no partial file is left
            temporary.unlink(missing_ok=True)
            if isinstance(error, OSError) and error.errno == errno.ENOSPC:
                raise FrameStoreSpaceError(errno.ENOSPC, f"the disk of {folder} filled up while caching decoded "
                                           f"frames ({offset / 2**30:.1f} GiB written); the partial cache was deleted") from error
            raise
        os.replace(temporary, data_file)
        index = {"version": STORE_VERSION, "size": size,
                 "videos": {key: [e.offset, e.num_frames, e.height, e.width, *fingerprints[key]]
                            for key, e in entries.items()},
                 "steps": {key: value.reshape(-1).tolist() for key, value in steps.items()}}
        index_temporary = index_file.with_name(index_file.name + f".tmp-{os.getpid()}")
        try:
            index_temporary.write_text(json.dumps(index))
            os.replace(index_temporary, index_file)
        except BaseException:
            index_temporary.unlink(missing_ok=True)
            raise
        return cls(data_file, entries, steps)

    @classmethod
    def _covering_store(cls, folder: Path, size: int, wanted: dict[str, tuple[list[int], int]], data_file: Path,
                        index_file: Path) -> FrameStore | None:
        """The videos ``wanted`` read from a finished store of frame size ``size`` in ``folder`` that
        holds every one of them as it is now (same file size and modification time): the store of
        exactly these videos (``data_file``, ``index_file``), else the smallest other one (a subset's
        or another split's videos may all be in the store of a larger set); None when none does."""
        other_sizes: dict[Path, int] = {}  # data file -> bytes
        for other_index in folder.glob(f".seco_lab_frames_{size}_*.json"):
            if other_index != index_file and _STORE_FILE.match(other_index.name):
                try:
                    other_sizes[other_index.with_suffix(".bin")] = other_index.with_suffix(".bin").stat().st_size
                except FileNotFoundError:
                    continue
        others = sorted(other_sizes, key=lambda path: (other_sizes[path], str(path)))
        for candidate_data, candidate_index in [(data_file, index_file)] + [(path, path.with_suffix(".json"))
                                                                           for path in others]:
            existing = cls._load_index(candidate_index, candidate_data)
            if existing is None:
                continue
            entries, fingerprints, steps = existing
            if all(fingerprints.get(key) == fingerprint for key, (fingerprint, _) in wanted.items()):
                return cls(candidate_data, {key: entries[key] for key in wanted}, {key: steps[key] for key in wanted})
        return None

    @staticmethod
    def _load_index(index_file: Path, data_file: Path) -> tuple[dict[str, _Entry], dict[str, list[int]],
                                                                 dict[str, np.ndarray]] | None:
        try:
            index = json.loads(index_file.read_text())
            if index.get("version") != STORE_VERSION or not data_file.exists():
                return None
            entries = {key: _Entry(*values[:4]) for key, values in index["videos"].items()}
            fingerprints = {key: list(values[4:6]) for key, values in index["videos"].items()}
            steps = {key: np.asarray(values, dtype=np.int64).reshape(-1, 2, 2)  # (num_frames - 1, 2, 2)
                     for key, values in index["steps"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):  # unreadable or damaged: rebuilt
            return None
        return (entries, fingerprints, steps) if steps.keys() == entries.keys() else None


def _decoded_video(path: str, count: int, size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The ``(T, H, W, C)`` frames of a video at frame size ``size`` and its camera steps; None when
    it does not decode."""
    try:
        frames = read_frames(path, list(range(count)), size)  # (T, C, H, W)
    except VideoDecodeError:
        return None
    return frames.permute(0, 2, 3, 1).contiguous().numpy(), _consecutive_steps(frames)  # (T, H, W, C)


def _consecutive_steps(frames: torch.Tensor) -> np.ndarray:
    """``(T - 1, 2, 2)`` camera shifts of ``(T, C, H, W)``: ``[t, 0]`` from frame t to t + 1,
    ``[t, 1]`` from frame t + 1 to t (not always the negative: the search compares each frame's own
    interior)."""
    if len(frames) < 2:
        return np.zeros((0, 2, 2), dtype=np.int64)
    forward = estimate_translations(frames[:-1], frames[1:])  # (T - 1, 2)
    backward = estimate_translations(frames[1:], frames[:-1])
    return torch.stack([forward, backward], dim=1).numpy()


def _writing_note(data_file: Path, num_videos: int, num_bytes: int | None) -> str:
    """What a build says before writing: where the store goes, how large it gets (when the frame
    sizes are known) and how to do without it or delete it."""
    from seco_lab.video.index import default_cache_dir

    size = f"{num_bytes / 2**30:.2f} GiB, " if num_bytes is not None else ""
    in_user_cache = default_cache_dir() in data_file.parents
    root = "DATASET_FOLDER" if in_user_cache else shlex.quote(str(data_file.parent))
    return (f"caching the decoded frames of {num_videos} videos in {data_file} ({size}kept for later runs): "
            f"--no-frame-cache decodes from the video files instead, `python -m seco_lab data cache {root} --remove` "
            "deletes the caches")


def _store_files(folder: Path, size: int, videos: dict) -> tuple[Path, Path]:
    """Data and index file of the store holding exactly ``videos`` (their paths name the set)."""
    names = os.fsencode("\n".join(sorted(videos)))
    stem = f".seco_lab_frames_{size}_{hashlib.sha1(names).hexdigest()[:12]}"
    return folder / f"{stem}.bin", folder / f"{stem}.json"


def _pixels(frame_size: tuple[int, int], size: int) -> int:
    height, width = resized_shape(*frame_size, size)
    return height * width


def _check_free_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free - needed < RESERVE_BYTES:
        raise FrameStoreSpaceError(
            errno.ENOSPC, f"caching the decoded frames needs {needed / 2**30:.1f} GiB on the disk of {folder}, "
            f"which has {free / 2**30:.1f} GiB free (and keeps {RESERVE_BYTES / 2**30:.0f} GiB spare)")


def store_folder(root: Path) -> Path:
    """``root`` when writable, else a per-dataset folder in the user cache."""
    root = Path(root)
    if os.access(root, os.W_OK):
        return root
    folder = user_cache_folder(root)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def user_cache_folder(root: Path) -> Path:
    """Where the stores of a read-only dataset ``root`` live (not created here)."""
    from seco_lab.video.index import default_cache_dir

    digest = hashlib.sha1(os.fsencode(str(Path(root).resolve()))).hexdigest()[:16]
    return default_cache_dir() / f"frames-{digest}"


_STORE_FILE = re.compile(r"^\.seco_lab_frames_(\d+)(?:_[0-9a-f]+)?\.(bin|json)(?:\.tmp-(\d+))?$")


@dataclass(frozen=True)
class CachedStore:
    """The files of one frame store; ``writer_pid`` is the process of an unfinished build."""

    files: tuple[Path, ...]
    size: int  # shorter side of its frames, in pixels
    videos: int | None  # None when its index is missing or unreadable
    num_bytes: int
    modified: float
    writer_pid: int | None = None

    @property
    def being_written(self) -> bool:
        """An unfinished build whose process still runs (it must not be deleted)."""
        return self.writer_pid is not None and _process_running(self.writer_pid)


def _process_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's running process
        return True
    return True


ABANDONED_AFTER_S = 600.0  # an unfinished build untouched this long, by no running process, was stopped


def _remove_abandoned_builds(*files: Path) -> None:
    """Delete the temporary files that stopped builds of ``files`` left (``<file>.tmp-<pid>``): their
    process no longer runs here and they have not changed for ``ABANDONED_AFTER_S`` (a build on
    another machine sharing the folder writes all the time)."""
    for file in files:
        for temporary in file.parent.glob(glob.escape(file.name) + ".tmp-*"):
            pid = temporary.name.rsplit("-", 1)[-1]
            try:
                untouched = time.time() - temporary.stat().st_mtime > ABANDONED_AFTER_S
            except FileNotFoundError:
                continue
            if pid.isdigit() and untouched and not _process_running(int(pid)):
                temporary.unlink(missing_ok=True)


def cached_stores(root: Path) -> list[CachedStore]:
    """Every frame store of dataset ``root``, beside it and in its user cache folder, oldest first;
    the temporary file of an unfinished build (a killed run) is one store of its own."""
    groups: dict[tuple[Path, int | None], list[Path]] = {}
    for folder in (Path(root), user_cache_folder(root)):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = _STORE_FILE.match(path.name)
            if match and path.is_file():
                stem = path.name.split(".bin")[0].split(".json")[0]
                pid = int(match.group(3)) if match.group(3) else None
                groups.setdefault((folder / stem, pid), []).append(path)
    stores = []
    for (stem, pid), files in groups.items():
        size = int(_STORE_FILE.match(files[0].name).group(1))
        index_file = stem.with_name(stem.name + ".json")
        videos = None
        if pid is None and index_file in files:
            try:
                videos = len(json.loads(index_file.read_text())["videos"])
            except (OSError, ValueError, KeyError, TypeError):
                videos = None
        stats = [path.stat() for path in files]
        stores.append(CachedStore(tuple(sorted(files)), size, videos, sum(stat.st_size for stat in stats),
                                  max(stat.st_mtime for stat in stats), pid))
    return sorted(stores, key=lambda store: (store.modified, str(store.files[0])))


def remove_stores(stores: Sequence[CachedStore]) -> int:
    """Delete the files of ``stores`` (skipping builds still being written); returns the bytes freed.
    Training rebuilds the store it needs."""
    freed = 0
    for store in stores:
        if store.being_written:
            continue
        for path in store.files:
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
            freed += size
    return freed
