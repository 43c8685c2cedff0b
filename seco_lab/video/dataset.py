"""VideoDataset: one item = the views a method's ViewMaker builds from one video.

The dataset does not decide which frames to decode: it hands the ViewMaker a lazy
:class:`VideoSource` and a ``numpy`` generator, and the ViewMaker reads the frames it needs
(``source.read(indices)``) and returns its named tensors. The dataset adds ``"label"`` and
``"index"``.

Determinism: item ``i`` of epoch ``e`` uses ``np.random.default_rng([seed, e, i])`` and a
torch RNG seeded from the same triple (inside ``torch.random.fork_rng``, so the caller's
torch RNG is untouched). The item is therefore identical whatever the number of DataLoader
workers or the order items are fetched in.

Bad files: when decoding fails (:class:`~seco_lab.video.io.VideoDecodeError`), the failure is
recorded in :attr:`VideoDataset.problems` (per process: each DataLoader worker keeps its own
list; pass ``problem_log`` to collect them all in one file), a warning is issued once per
file, and a replacement video is chosen with ``np.random.default_rng([seed, e, i, attempt])``,
so the replacement is deterministic too and no epoch dies on one bad file.

Epochs and workers: :meth:`VideoDataset.set_epoch` changes the epoch of this object; DataLoader
workers see it when they are (re)started for the next epoch (the default,
``persistent_workers=False``). With persistent workers, let the sampler yield
``(epoch, index)`` pairs instead: ``dataset[(epoch, i)]`` uses that epoch.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from seco_lab.video.frame_store import FrameStore
from seco_lab.video.io import VideoDecodeError, VideoInfo, read_frames
from seco_lab.video.layouts import Problem, VideoRecord

__all__ = ["VideoSource", "ViewMaker", "VideoDataset", "item_seed"]

MAX_REPLACEMENT_ATTEMPTS = 16
RESERVED_KEYS = ("label", "index")


class VideoSource:
    """A video handed to a ViewMaker; decodes only when :meth:`read` is called.

    Attributes:
        num_frames: decodable frames (from the index).
        label: class label.
        index: position of the video in the dataset.
        path: video file.
        size: shorter side of the frames :meth:`read` returns (None = native).
    """

    def __init__(self, path: Path, num_frames: int, label: int, index: int, size: int | None,
                 store: FrameStore | None = None) -> None:
        self.path = Path(path)
        self.num_frames = num_frames
        self.label = label
        self.index = index
        self.size = size
        self.store = store if store is not None and self.path in store else None

    def read(self, indices: Sequence[int]) -> torch.Tensor:
        """Decode frames ``indices`` (any order, repeats allowed): uint8 (T, C, H, W), short side = size.

        Raises IndexError for an index outside ``[0, num_frames)`` (a ViewMaker bug, never
        masked) and VideoDecodeError when the file fails to decode (handled by the dataset).
        """
        index_array = np.asarray(indices, dtype=np.int64).reshape(-1)
        if index_array.size == 0:
            raise IndexError(f"{self.path}: read() needs at least one frame index")
        if index_array.min() < 0 or index_array.max() >= self.num_frames:
            raise IndexError(
                f"{self.path}: frame indices must lie in [0, {self.num_frames}), got {index_array.min()}..{index_array.max()}"
            )
        if self.store is not None:
            return self.store.read(self.path, index_array)
        return read_frames(self.path, index_array.tolist(), self.size, num_frames=self.num_frames)

    def camera_steps(self, reference: Sequence[int], moving: Sequence[int]) -> torch.Tensor | None:
        """The camera's shifts ``(N, 2)`` from frame ``reference[n]`` to ``moving[n]`` when the frame
        store knows them (:meth:`FrameStore.camera_steps`), else None (estimate them from the frames)."""
        return None if self.store is None else self.store.camera_steps(self.path, reference, moving)

    def __repr__(self) -> str:
        return f"VideoSource({self.path.name!r}, num_frames={self.num_frames}, label={self.label}, index={self.index})"


ViewMaker = Callable[[VideoSource, np.random.Generator], dict[str, torch.Tensor]]


def item_seed(seed: int, epoch: int, index: int, *extra: int) -> int:
    """A 63-bit torch seed derived from the same entropy as ``np.random.default_rng([seed, epoch, index, *extra])``."""
    state = np.random.SeedSequence([seed, epoch, index, *extra]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class VideoDataset(Dataset):
    """Items built by a ViewMaker from videos; deterministic per (seed, epoch, index).

    Args:
        records: videos (e.g. ``spec.split("train")`` of a loaded dataset).
        infos: their VideoInfo, as a sequence aligned with ``records`` or a mapping
            path -> VideoInfo (a :class:`~seco_lab.video.index.VideoIndex` works).
        view_maker: ``(source, rng) -> dict[str, Tensor]``; must not use the keys
            "label" or "index". Picklable for DataLoader workers.
        size: shorter side of decoded frames (None = native).
        seed: base seed.
        problem_log: optional text file; each decode failure is appended as
            ``<path>: <reason>`` (works across worker processes).
        frame_store: optional :class:`~seco_lab.video.frame_store.FrameStore` holding the
            videos' frames already decoded at ``size``; videos not in it are decoded as usual.
    """

    accepts_epoch_index = True  # dataset[(epoch, i)] works, so loaders may keep their workers

    def __init__(self, records: Sequence[VideoRecord], infos: Sequence[VideoInfo] | Mapping[Path, VideoInfo],
                 view_maker: ViewMaker, size: int | None, seed: int = 0, problem_log: str | Path | None = None,
                 frame_store: FrameStore | None = None) -> None:
        self.records = list(records)
        if not self.records:
            raise ValueError("VideoDataset needs at least one record")
        if isinstance(infos, Sequence):
            if len(infos) != len(self.records):
                raise ValueError(f"infos has {len(infos)} entries for {len(self.records)} records")
            self.infos = list(infos)
        else:
            missing = [record.path for record in self.records if record.path not in infos]
            if missing:
                raise ValueError(f"{len(missing)} record(s) have no VideoInfo, e.g. {missing[0]}")
            self.infos = [infos[record.path] for record in self.records]
        if not callable(view_maker):
            raise TypeError(f"view_maker must be callable, got {type(view_maker).__name__}")
        self.view_maker = view_maker
        self.size = size
        self.seed = int(seed)
        self.epoch = 0
        self.problem_log = Path(problem_log) if problem_log is not None else None
        self.frame_store = frame_store
        self.problems: list[Problem] = []
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Items of a new epoch draw new randomness (same seed, different epoch)."""
        self.epoch = int(epoch)

    def source(self, index: int) -> VideoSource:
        record, info = self.records[index], self.infos[index]
        return VideoSource(record.path, info.num_frames, record.label, index, self.size, self.frame_store)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        """Views of video ``item`` (or of ``(epoch, index)``) plus "label" and "index" (int64 scalars).

        "index" is the dataset position of the video actually used: a replacement's when
        the requested file failed to decode.
        """
        epoch, index = (int(item[0]), int(item[1])) if isinstance(item, tuple) else (self.epoch, int(item))
        if not 0 <= index < len(self.records):
            raise IndexError(f"index {index} out of range for a dataset of {len(self.records)} videos")
        candidate = index
        for attempt in range(MAX_REPLACEMENT_ATTEMPTS):
            if attempt > 0:
                candidate = int(np.random.default_rng([self.seed, epoch, index, attempt]).integers(len(self.records)))
            if candidate in self._bad:
                continue
            extra = (attempt,) if attempt > 0 else ()
            rng = np.random.default_rng([self.seed, epoch, index, *extra])
            try:
                with torch.random.fork_rng(devices=[]):
                    torch.random.default_generator.manual_seed(item_seed(self.seed, epoch, index, *extra))
                    views = self.view_maker(self.source(candidate), rng)
            except VideoDecodeError as error:
                self._record_problem(candidate, error)
                continue
            return self._finish(views, candidate)
        raise RuntimeError(
            f"item {index} (epoch {epoch}): {MAX_REPLACEMENT_ATTEMPTS} videos failed to decode in a row; "
            f"problems so far: {'; '.join(f'{p.path}: {p.reason}' for p in self.problems[-3:])}"
        )

    def _finish(self, views: dict[str, torch.Tensor], used: int) -> dict[str, torch.Tensor]:
        if not isinstance(views, dict):
            raise TypeError(f"view_maker must return a dict of tensors, got {type(views).__name__}")
        clash = [key for key in RESERVED_KEYS if key in views]
        if clash:
            raise ValueError(f"view_maker returned reserved key(s) {clash}: the dataset adds them")
        item = dict(views)
        item["label"] = torch.tensor(self.records[used].label, dtype=torch.int64)
        item["index"] = torch.tensor(used, dtype=torch.int64)
        return item

    def _record_problem(self, index: int, error: VideoDecodeError) -> None:
        path = self.records[index].path
        self._bad.add(index)
        problem = Problem(path, f"decode failed during training: {error.reason}")
        self.problems.append(problem)
        warnings.warn(f"{path}: {error.reason}; a replacement video is used", RuntimeWarning, stacklevel=3)
        if self.problem_log is not None:
            try:
                with open(self.problem_log, "a", encoding="utf-8", errors="backslashreplace") as handle:
                    handle.write(f"{path}: {problem.reason} (pid {os.getpid()})\n")
            except OSError:
                pass
