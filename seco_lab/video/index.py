"""A cached index of every video of a dataset: decodable frame count, fps and frame size.

Building the index decodes each video once with PyAV (:func:`~seco_lab.video.io.probe_video`),
in one process per usable core on Linux.
The result is cached as JSON, in ``<root>/.seco_lab_index.json`` when the dataset folder is
writable, else in ``~/.cache/seco_lab/`` (``$XDG_CACHE_HOME`` respected); when neither can be
written, a one-line notice says so and every build probes the videos again. Each entry is keyed
by the file's path relative to the root and remembers the file's size and modification time:
a file whose size or mtime changed is probed again, the others are read from the cache.

Files that cannot be used (empty, not a video, no decodable frame, fewer than ``min_frames``
frames) are skipped and recorded in :attr:`VideoIndex.problems` with the reason; a truncated
file keeps the frames that decode and is recorded as a kept problem. One summary warning is
issued per build, and the full list is written next to the cache as a text file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import statistics
import tempfile
import unicodedata
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from seco_lab.video.io import VideoDecodeError, VideoInfo, probe_video_with_note
from seco_lab.video.layouts import SPLITS, DatasetSpec, Problem, VideoRecord, discover
from seco_lab.video.parallel import default_processes, results_in_order

__all__ = ["CACHE_FILE_NAME", "MIN_USABLE_FRAMES", "DataProblemWarning", "Problem", "VideoIndex", "default_cache_dir", "load_dataset"]

CACHE_FILE_NAME = ".seco_lab_index.json"
# Decodable frames a video needs for training and evaluation to use it: one frame has no frame
# difference and no temporal order, and one set of videos for every encoder, RGB ones included,
# keeps their scores comparable.
MIN_USABLE_FRAMES = 2
PROBLEMS_FILE_SUFFIX = ".problems.txt"
CACHE_VERSION = 1
# While building, the cache is saved again once the entries probed since its last save reach
# SAVE_EVERY, or SAVE_FRACTION of the entries it then held if more: each save rewrites the whole
# file, so saves grow apart as it grows (their total cost stays proportional to the final size,
# not its square) and an interrupted build loses at most the last SAVE_EVERY entries it probed,
# or a sixth of them.
SAVE_EVERY = 500
SAVE_FRACTION = 0.2


class DataProblemWarning(UserWarning):
    """Some dataset files are unusable or damaged.

    A process shows each distinct warning once, however often the dataset is loaded again (a
    notebook loads it for every run it trains or evaluates). Python's own "shown once" memory
    is not enough: every ``warnings.catch_warnings`` block (scikit-learn has many) clears it.
    """


_shown_problem_warnings: set[str] = set()


def _warn_once(text: str, category: type[Warning]) -> None:
    """Issue the warning ``text`` unless this process has shown it already."""
    if text not in _shown_problem_warnings:
        _shown_problem_warnings.add(text)
        warnings.warn(text, category, stacklevel=4)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/seco_lab`` or ``~/.cache/seco_lab``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "seco_lab"


def _home_cache_file(root: Path, cache_dir: Path) -> Path:
    digest = hashlib.sha1(os.fsencode(str(root))).hexdigest()[:16]
    return cache_dir / f"index-{root.name}-{digest}.json"


def _root_is_writable(root: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=root, prefix=".seco_lab_probe_"):
            return True
    except OSError:
        return False


def _cache_file_for(root: Path, cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return _home_cache_file(root, Path(cache_dir).expanduser())
    next_to_data = root / CACHE_FILE_NAME
    # The cache is replaced, not written in place: its folder must be writable, whatever the file's mode.
    if next_to_data.exists() and os.access(next_to_data, os.W_OK) and os.access(root, os.W_OK) \
            or _root_is_writable(root):
        return next_to_data
    return _home_cache_file(root, default_cache_dir())


def _key(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


@dataclass
class _Entry:
    size: int
    mtime_ns: int
    info: dict | None = None  # VideoInfo fields, None when the file is unusable
    error: str | None = None
    note: str | None = None


def _load_cache(cache_file: Path) -> dict[str, _Entry]:
    try:
        payload = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(payload, dict) or payload.get("version") != CACHE_VERSION:
        return {}
    entries = {}
    for key, value in payload.get("videos", {}).items():
        try:
            entries[key] = _Entry(**value)
        except TypeError:
            continue
    return entries


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _save_cache(cache_file: Path, root: Path, entries: dict[str, _Entry]) -> OSError | None:
    """Write the cache file; returns the error that stopped it, None when it was written."""
    payload = {"version": CACHE_VERSION, "root": str(root),
               "videos": {key: asdict(entry) for key, entry in sorted(entries.items())}}
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=cache_file.parent, prefix=".seco_lab_index.", suffix=".tmp")
    except OSError as error:
        return error
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(payload, stream)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would hide the index from other users
        os.replace(temporary, cache_file)
        return None
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)  # a half-written index (a full disk) is not left behind
        return error


def _probe_entry(path: Path) -> _Entry:
    try:
        stat = path.stat()
    except OSError as error:
        if path.is_symlink():
            return _Entry(size=-1, mtime_ns=-1, error=f"broken symbolic link (to {os.readlink(path)}: {error.strerror})")
        return _Entry(size=-1, mtime_ns=-1, error=f"cannot read file ({error.strerror})")
    try:
        info, note = probe_video_with_note(path)
    except VideoDecodeError as error:
        return _Entry(size=stat.st_size, mtime_ns=stat.st_mtime_ns, error=error.reason)
    return _Entry(size=stat.st_size, mtime_ns=stat.st_mtime_ns, info=asdict(info), note=note)


def problem_counts(skipped: int, kept: int) -> str:
    """``4 file(s) skipped``, with ``, and 1 kept and used (damaged, or with a note on its listing)`` when some are."""
    return f"{skipped} file(s) skipped" + (f", and {kept} kept and used (damaged, or with a note on its listing)"
                                            if kept else "")


@dataclass
class VideoIndex:
    """Per-video :class:`VideoInfo` of a dataset plus every problem found.

    Attributes:
        root: dataset root.
        infos: VideoInfo of each usable file (path -> info).
        problems: every file that was skipped, or kept damaged or with a note on its listing, with the reason; includes
            annotation entries whose file is missing (from the :class:`DatasetSpec`).
        cache_file: where the index is cached (None if it could not be written).
        min_frames: files with fewer decodable frames were skipped.
        num_found: video files the layout found (usable or not); None when unknown.
    """

    root: Path
    infos: dict[Path, VideoInfo]
    problems: list[Problem] = field(default_factory=list)
    cache_file: Path | None = None
    min_frames: int = 1
    num_found: int | None = None

    @classmethod
    def build(cls, spec: DatasetSpec, cache_dir: str | Path | None = None, progress: bool = True,
              min_frames: int = 1, warn: bool = True, processes: int | None = None) -> VideoIndex:
        """Index every record of ``spec``, reusing cached entries whose size and mtime still match.

        Args:
            spec: what :func:`~seco_lab.video.layouts.discover` found.
            cache_dir: folder for the cache file; None = next to the data if writable, else
                ``~/.cache/seco_lab``.
            progress: show a tqdm progress bar while probing.
            min_frames: files with fewer decodable frames are skipped as too short.
            warn: issue one :class:`DataProblemWarning` summarising the problems.
            processes: how many processes probe the videos (default: one per usable core on Linux).
        """
        if min_frames < 1:
            raise ValueError(f"min_frames must be >= 1, got {min_frames}")
        root = spec.root
        cache_file = _cache_file_for(root, cache_dir)
        entries = _load_cache(cache_file)
        unique_paths = list(dict.fromkeys(record.path for record in spec.records))
        to_probe = []
        for path in unique_paths:
            cached = entries.get(_key(root, path))
            try:
                stat = path.stat()
                fresh = cached is not None and cached.size == stat.st_size and cached.mtime_ns == stat.st_mtime_ns
            except OSError:  # still unreadable (a dangling symlink): fresh if it was unreadable before too
                fresh = cached is not None and cached.size == -1
            if not fresh:
                to_probe.append(path)
        unsaved = 0  # entries probed since the last save
        saved_size = len(entries)  # entries in the cache file (as loaded, or last saved)
        save_error = None
        calls = [functools.partial(_probe_entry, path) for path in to_probe]
        probed = results_in_order(calls, default_processes(len(calls)) if processes is None else processes,
                                  progress and bool(to_probe), f"indexing {root.name}", unit="video")
        for path, entry in zip(to_probe, probed, strict=True):  # strict: the generator ends, its bar closes
            entries[_key(root, path)] = entry
            unsaved += 1
            if unsaved >= max(SAVE_EVERY, SAVE_FRACTION * saved_size):
                save_error = _save_cache(cache_file, root, entries)
                unsaved, saved_size = 0, len(entries)
        if to_probe or not cache_file.exists():
            save_error = _save_cache(cache_file, root, entries)
        if save_error is not None:
            _warn_once(f"{cache_file}: the index of {root} cannot be kept ({save_error.strerror or save_error}), so "
                       "every load probes its videos again; set XDG_CACHE_HOME to a writable folder to keep it",
                       UserWarning)
        infos: dict[Path, VideoInfo] = {}
        problems = list(spec.problems)
        for path in unique_paths:
            entry = entries[_key(root, path)]
            if entry.info is None:
                problems.append(Problem(path, entry.error or "unreadable"))
                continue
            info = VideoInfo(**entry.info)
            if info.num_frames < min_frames:
                problems.append(Problem(path, f"too short: {info.num_frames} decodable frame(s), need at least {min_frames}"))
                continue
            if entry.note:
                problems.append(Problem(path, f"{entry.note} (kept)", skipped=False))
            infos[path] = info
        index = cls(root=root, infos=infos, problems=problems, cache_file=cache_file if save_error is None else None,
                    min_frames=min_frames, num_found=len(unique_paths))
        if problems:
            problems_file = index.write_problems()
            if warn:
                index.warn_summary(problems_file)
        return index

    def __contains__(self, item: VideoRecord | Path) -> bool:
        return (item.path if isinstance(item, VideoRecord) else Path(item)) in self.infos

    def __getitem__(self, item: VideoRecord | Path) -> VideoInfo:
        path = item.path if isinstance(item, VideoRecord) else Path(item)
        try:
            return self.infos[path]
        except KeyError:
            reasons = [problem.reason for problem in self.problems if problem.path == path]
            raise KeyError(f"{path} is not a usable indexed video" + (f": {reasons[0]}" if reasons else "")) from None

    def usable(self, records: Iterable[VideoRecord]) -> list[VideoRecord]:
        """The records whose file is usable, in their order."""
        return [record for record in records if record.path in self.infos]

    def skipped_problems(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.skipped]

    def problems_text(self) -> str:
        """One line per problem: ``<path>: <reason>``."""
        return "".join(f"{problem.path}: {problem.reason}\n" for problem in self.problems)

    def write_problems(self) -> Path | None:
        """Write :meth:`problems_text` next to the cache file, under a line saying which build it
        lists (each build rewrites it); returns its path (None if not writable)."""
        if self.cache_file is None:
            return None
        target = self.cache_file.with_name(self.cache_file.name.removesuffix(".json") + PROBLEMS_FILE_SUFFIX)
        header = (f"# {len(self.problems)} problem(s) of the last index build of {self.root}: "
                  f"{self.num_found} video(s), kept with at least {self.min_frames} decodable frame(s)\n")
        try:
            target.write_text(header + self.problems_text(), encoding="utf-8", errors="backslashreplace")
        except OSError:
            return None
        return target

    def warn_summary(self, problems_file: Path | None = None) -> None:
        skipped = self.skipped_problems()
        kept = len(self.problems) - len(skipped)
        reasons = Counter(problem.reason.split(":")[0].split(" (")[0] for problem in self.problems)
        first = "; ".join(f"{p.path.name}: {p.reason}" for p in self.problems[:3])
        where = (f"full list in {problems_file}" if problems_file else
                 f"full list in VideoIndex.problems, or printed by `python -m seco_lab data check {self.root}`")
        shown = reasons.most_common(4)
        parts = [f"{count} {reason}" for reason, count in shown]
        others = len(self.problems) - sum(count for _, count in shown)
        if others:  # the parts add up to the total
            parts.append(f"{others} for {len(reasons) - len(shown)} other reason(s)")
        text = (f"{self.root}: {problem_counts(len(skipped), kept)} ({', '.join(parts)}); e.g. {first}; {where}")
        _warn_once(text, DataProblemWarning)

    def summary(self, spec: DatasetSpec) -> str:
        """Readable summary: videos per class and split, frame counts, frame sizes, problems."""
        usable = self.usable(spec.records)
        found = self.num_found if self.num_found is not None else len(spec.records)
        lines = [f"root: {spec.root}",
                 f"layout: {spec.layout}, {len(spec.classes)} classes, {found} listed videos found, "
                 f"{len(usable)} usable"]
        if spec.max_per_class is not None:
            lines.append(f"subset: at most {spec.max_per_class} video{'s' * (spec.max_per_class != 1)} per class and "
                         f"split, {found} of {spec.num_annotated} in the dataset")
        if self.cache_file:
            lines.append(f"index cache: {self.cache_file}")
        per_split = Counter(record.split for record in usable)
        lines.append("videos per split: " + ", ".join(f"{name} {per_split.get(name, 0)}" for name in SPLITS))
        counts = Counter((record.class_name, record.split) for record in usable)
        width = max([display_width(_printed_name(name)) for name in spec.classes] + [5])
        lines.append(f"  {'class'.ljust(width)}  {'train':>6}  {'test':>6}")
        for name in spec.classes:
            printed = _printed_name(name)
            lines.append(f"  {printed}{' ' * (width - display_width(printed))}  {counts.get((name, 'train'), 0):>6}  "
                         f"{counts.get((name, 'test'), 0):>6}")
        lines.extend(_unevaluated_classes(spec.classes, counts))
        infos = [self.infos[record.path] for record in usable]
        if infos:
            frames = [info.num_frames for info in infos]
            fps = [info.fps for info in infos]
            lines.append(f"frames per video: min {min(frames)}, median {statistics.median(frames):g}, max {max(frames)}")
            lines.append(f"fps: min {min(fps):.4g}, median {statistics.median(fps):.4g}, max {max(fps):.4g}")
            sizes = Counter(f"{info.width}x{info.height}" for info in infos)
            lines.append("frame sizes (WxH): " + ", ".join(f"{size} ({count})" for size, count in sizes.most_common(5))
                         + (f", ... {len(sizes) - 5} more" if len(sizes) > 5 else ""))
        lines.append(f"problems: {len(self.problems)}")
        lines.extend(f"  {problem.path}: {problem.reason}" for problem in self.problems)
        return "\n".join(lines)


def _printed_name(name: str) -> str:
    """``name`` as the command line prints it: a byte that is not UTF-8 (a surrogate escape of an
    old archive's Latin-1 name) as ``\\udce9``, so a table can measure it as it appears."""
    return name.encode("utf-8", errors="backslashreplace").decode("utf-8")


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: none for combining marks (a name copied through macOS
    keeps ``é`` as ``e`` and an accent) and other zero-width characters, two for wide East Asian
    characters, one for the rest."""
    width = 0
    for char in text:
        if unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _unevaluated_classes(classes: list[str], counts: Counter[tuple[str, str]]) -> list[str]:
    """Lines naming the classes with usable videos in one split only, and those with none
    (``counts``: (class, split) -> videos)."""
    without_train = [name for name in classes if counts.get((name, "test")) and not counts.get((name, "train"))]
    without_test = [name for name in classes if counts.get((name, "train")) and not counts.get((name, "test"))]
    without_any = [name for name in classes if not counts.get((name, "train")) and not counts.get((name, "test"))]
    lines = []
    if without_any:
        lines.append(f"classes without any usable video ({len(without_any)}; evaluation can neither learn nor measure "
                     f"them, and leaves them out of its chance level): {', '.join(without_any)}")
    if without_train:
        lines.append(f"classes without a training video ({len(without_train)}; evaluation can never predict them, "
                     f"so their test videos all count as errors): {', '.join(without_train)}")
    if without_test:
        lines.append(f"classes without a test video ({len(without_test)}; evaluation does not measure them): "
                     f"{', '.join(without_test)}")
    return lines


def load_dataset(root: str | Path, layout: str = "auto", split: int = 1, min_frames: int = MIN_USABLE_FRAMES,
                 cache_dir: str | Path | None = None, progress: bool = True,
                 max_videos_per_class: int | None = None) -> tuple[DatasetSpec, VideoIndex]:
    """Discover, index, and keep only usable records.

    ``max_videos_per_class`` keeps at most that many annotated videos of each class in each
    split (:func:`~seco_lab.video.layouts.limit_per_class`) before indexing, so a quick run on a
    large dataset probes only its subset; None keeps every video.

    Returns:
        ``(spec, index)`` where ``spec.records`` holds only videos with at least
        ``min_frames`` decodable frames (by default the two that pretraining, evaluation and the
        notebooks need) and ``index.problems`` lists everything left out.
    """
    spec = discover(root, layout=layout, split=split).limited(max_videos_per_class)
    index = VideoIndex.build(spec, cache_dir=cache_dir, progress=progress, min_frames=min_frames)
    return replace(spec, records=index.usable(spec.records), problems=list(index.problems)), index
