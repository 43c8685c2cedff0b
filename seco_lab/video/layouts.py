"""Dataset layouts on disk -> lists of :class:`VideoRecord`.

Four layouts are understood (see ``data/README.md`` for example trees):

``ucf101``
    ``<root>/<Class>/v_<Class>_gGG_cCC.<ext>`` and ``ucfTrainTestlist/`` holding
    ``classInd.txt`` (``1 ApplyEyeMakeup``), ``trainlist0K.txt`` (``Class/v_...avi 1``) and
    ``testlist0K.txt`` (``Class/v_...avi``), K = 1..3.
``hmdb51``
    ``<root>/<class>/<video>.avi`` and ``testTrainMulti_7030_splits/<class>_test_split<K>.txt``
    with lines ``<video>.avi <tag>``: tag 1 = train, 2 = test, 0 = unused.
``kinetics``
    CSV annotations with the columns ``label,youtube_id,time_start,time_end,split`` and clips
    named ``<youtube_id>_<start:06d>_<end:06d>.<ext>`` stored in ``<root>/<split>/<label>/``,
    ``<root>/<label>/`` or flat. Split ``train`` -> train, ``val``/``validate`` and ``test`` -> test.
``folders``
    ``<root>/<class>/*.<ext>``: the split is a deterministic hash of the file name (about
    70 % train, 30 % test; split K salts the hash, so K = 1, 2, 3 are three different
    partitions). When the root holds ``train/`` and ``test/`` (or ``val/``) folders of class
    folders, those folders are the split instead (``val/`` and ``test/`` together: the test split).

Video files are found by name wherever they sit under the root: annotation entries are
matched on the file name without its extension (case-insensitive, in any Unicode normalisation;
bytes that are not UTF-8 as surrogate escapes on both sides), preferring a file in the
folder of the entry's class and with the entry's extension, so an annotation naming
``x.avi`` finds ``x.mp4``. Entries whose file is missing become :class:`Problem` items of the
returned :class:`DatasetSpec`, as do broken symbolic links and folders that cannot be listed
under the root (a linked class folder whose target is gone, or a folder without read permission,
would otherwise drop a whole class unseen), folder links not followed (back to the root or above
it, or to a folder already read), annotations that disagree with each other or the files (a
file listed twice is kept once), videos that no annotation line names (``ucf101``, ``hmdb51``,
``kinetics``), and videos outside a class folder (``folders``).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import os
import re
import unicodedata
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

__all__ = [
    "LAYOUTS",
    "VIDEO_EXTENSIONS",
    "DatasetSpec",
    "LayoutError",
    "Problem",
    "VideoRecord",
    "discover",
    "folder_split_of",
    "limit_per_class",
]

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv", ".flv", ".wmv", ".3gp")
SPLITS = ("train", "test")
FOLDERS_TRAIN_PERCENT = 70

LAYOUTS: dict[str, str] = {
    "ucf101": "<root>/<Class>/v_<Class>_gGG_cCC.avi with ucfTrainTestlist/{classInd.txt, trainlist0K.txt, testlist0K.txt}",
    "hmdb51": "<root>/<class>/<video>.avi with testTrainMulti_7030_splits/<class>_test_split<K>.txt",
    "kinetics": "CSV label,youtube_id,time_start,time_end,split with clips <youtube_id>_<start:06d>_<end:06d>.mp4",
    "folders": "<root>/<class>/*.mp4 (or <root>/{train,test}/<class>/*.mp4)",
}

_UCF_GROUP = re.compile(r"_g(\d+)_c(\d+)$", re.IGNORECASE)
_HMDB_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<k>\d+)\.txt$", re.IGNORECASE)
_HMDB_SPLIT_LINE = re.compile(r"^(?P<video>.*\S)\s+(?P<tag>[012])$")
_KINETICS_SPLITS = {"train": "train", "training": "train", "val": "test", "valid": "test", "validate": "test",
                    "validation": "test", "test": "test", "testing": "test"}
_SPLIT_DIR_NAMES = {"train": "train", "training": "train", "test": "test", "testing": "test", "val": "test",
                    "valid": "test", "validate": "test", "validation": "test"}


class LayoutError(ValueError):
    """The folder is not in a layout seco_lab understands, or its annotations cannot be read.

    ``lists_layouts`` is True when the message ends with the list of layouts seco_lab understands
    (the folder fits none of them), False when it names one file's or folder's problem.
    """

    def __init__(self, message: str, lists_layouts: bool = False) -> None:
        super().__init__(message)
        self.lists_layouts = lists_layouts


@dataclass(frozen=True)
class Problem:
    """One file that cannot be used as it is, and why."""

    path: Path
    reason: str
    skipped: bool = True  # False: the file is kept (e.g. a truncated file keeps its decodable frames)


@dataclass(frozen=True)
class VideoRecord:
    """One annotated video: where it is, its class, and which split it belongs to."""

    path: Path
    label: int
    class_name: str
    split: str  # "train" | "test"
    group: str | None = None  # UCF101 group "gGG" (clips of one group share actors/scene); else None


@dataclass
class DatasetSpec:
    """What :func:`discover` found: the classes (index = label) and every resolvable record."""

    root: Path
    layout: str
    classes: list[str]
    records: list[VideoRecord]
    problems: list[Problem] = field(default_factory=list)
    max_per_class: int | None = None  # set by :meth:`limited`
    num_annotated: int | None = None  # records before :meth:`limited` kept a subset
    hashed_split: bool = False  # folders layout without train/test folders: the split is :func:`folder_split_of`'s

    def split(self, name: str) -> list[VideoRecord]:
        """Records of split ``name`` ("train" or "test"), in annotation order."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return [record for record in self.records if record.split == name]

    def limited(self, max_per_class: int | None) -> DatasetSpec:
        """This spec with at most ``max_per_class`` records of each class in each split
        (:func:`limit_per_class`); None keeps every record."""
        if max_per_class is None:
            return self
        records = limit_per_class(self.records, max_per_class)
        return replace(self, records=records, max_per_class=max_per_class,
                       num_annotated=self.num_annotated or len(self.records))


def _selection_key(record: VideoRecord) -> tuple[str, str]:
    return hashlib.sha1(os.fsencode(record.path.name)).hexdigest(), os.fsencode(record.path).hex()


def limit_per_class(records: list[VideoRecord], max_per_class: int) -> list[VideoRecord]:
    """At most ``max_per_class`` records of each (split, class), in their original order.

    The records kept are the first by a hash of their file name, so the choice does not depend
    on the order in which files were listed or found, spreads over a class's actors and scenes,
    and a larger limit keeps every record a smaller one kept.
    """
    if isinstance(max_per_class, bool) or not isinstance(max_per_class, int) or max_per_class < 1:
        raise ValueError(f"max_videos_per_class must be a positive integer or None, got {max_per_class!r}")
    by_cell: dict[tuple[str, int], list[VideoRecord]] = defaultdict(list)
    for record in records:
        by_cell[(record.split, record.label)].append(record)
    kept = {id(record) for cell in by_cell.values() for record in sorted(cell, key=_selection_key)[:max_per_class]}
    return [record for record in records if id(record) in kept]


def _ucf_group(stem: str) -> str | None:
    """UCF101's group ``"gGG"`` of a file name ``…_gGG_cCC`` (without extension), else None."""
    match = _UCF_GROUP.search(stem)
    return f"g{int(match.group(1)):02d}" if match else None


def _name_key(name: str) -> str:
    """Comparable form of a file name: composed Unicode (NFC; a copy through macOS decomposes
    ``é`` into ``e`` and an accent) and case-folded."""
    return unicodedata.normalize("NFC", name).casefold()


def _normalise(name: str) -> str:
    """Comparable form of a class or file name: as :func:`_name_key`, without separators."""
    return re.sub(r"[\s_\-]+", "", _name_key(name))


def _is_video(name: str) -> bool:
    return name.lower().endswith(VIDEO_EXTENSIONS) and not name.startswith(".")


def _is_broken_link(path: Path) -> bool:
    """A symbolic link whose target does not exist."""
    return path.is_symlink() and not path.exists()


def _broken_link_problem(path: Path) -> Problem:
    return Problem(path, f"broken symbolic link (to {os.readlink(path)}): its target does not exist")


def _unlisted_folder_problem(error: OSError) -> Problem:
    return Problem(Path(error.filename), f"cannot list the folder ({error.strerror}): its videos are not found")


def _leads_back(real: str, top: str) -> bool:
    """Whether the real path ``real`` is the real path ``top`` or a folder above it."""
    return real == top or top.startswith(real.rstrip(os.sep) + os.sep)


def _folders_to_walk(directory: str | Path, names: list[str], top: str, walked: set[str],
                     problems: list[Problem] | None = None) -> list[str]:
    """The names among ``names`` (sub-folders of ``directory``) to walk into, sorted, real folders
    before links: not hidden, not leading back to ``top`` (the real path of the dataset root) or
    above it, and not to a folder in ``walked``, which gains the real paths of those returned.

    Such folders would list the same videos again, or forever (``up -> ..``); those left out are
    appended to ``problems`` when it is given.
    """
    def linked_last(name: str) -> tuple[bool, str]:
        return os.path.islink(os.path.join(directory, name)), name

    kept = []
    for name in sorted((name for name in names if not name.startswith(".")), key=linked_last):
        path = Path(directory) / name
        real = os.path.realpath(path)
        if _leads_back(real, top):
            reason = "leads back to the dataset root or above it"
        elif real in walked:
            reason = "leads to a folder that is read already"
        else:
            walked.add(real)
            kept.append(name)
            continue
        if problems is None:
            continue
        if path.is_symlink():
            problems.append(Problem(path, f"symbolic link to a folder (to {os.readlink(path)}) that {reason}: "
                                          "not followed, so its videos are not read twice"))
        else:  # reached first through a link elsewhere, whose path its videos keep
            problems.append(Problem(path, "folder read already through a symbolic link to it elsewhere (its videos "
                                          "count where that link is): not read again"))
    return kept


class _VideoFinder:
    """Every video file under a root, looked up by file name without extension, and as
    :attr:`problems` the folders that cannot be listed, the broken symbolic links and the folder
    links not followed met on the way (broken links named like a video are among the videos:
    probing names them).

    ``top`` is the real path of the dataset root (default: ``root``'s) and ``walked`` the real
    paths of folders read already (shared by the class folders of one dataset): folder links back
    to ``top`` or above it, or to a walked folder, are not followed.
    """

    def __init__(self, root: Path, top: str | None = None, walked: set[str] | None = None) -> None:
        self.root = root
        self.by_stem: dict[str, list[Path]] = defaultdict(list)
        self.problems: list[Problem] = []

        def unlisted(error: OSError) -> None:
            self.problems.append(_unlisted_folder_problem(error))

        top = top or os.path.realpath(root)
        walked = walked if walked is not None else {os.path.realpath(root)}
        for directory, subdirectories, files in os.walk(root, onerror=unlisted, followlinks=True):
            subdirectories[:] = _folders_to_walk(directory, subdirectories, top, walked, self.problems)
            for name in sorted(files):
                path = Path(directory) / name
                if _is_video(name):
                    self.by_stem[_name_key(path.stem)].append(path)
                elif not name.startswith(".") and _is_broken_link(path):
                    self.problems.append(_broken_link_problem(path))

    def __len__(self) -> int:
        return sum(len(paths) for paths in self.by_stem.values())

    def all_paths(self) -> list[Path]:
        return sorted(path for paths in self.by_stem.values() for path in paths)

    @staticmethod
    def entry_key(entry: str) -> str:
        """The key of :attr:`by_stem` an annotation entry (``Class/name.ext``, ``name.ext`` or a
        bare name) is looked up by: its file name, without a video extension."""
        entry_path = Path(entry.strip().replace("\\", "/"))
        return _name_key(entry_path.stem if entry_path.suffix.lower() in VIDEO_EXTENSIONS else entry_path.name)

    def find(self, entry: str, class_name: str | None = None) -> Path | None:
        """Resolve an annotation entry (``Class/name.ext``, ``name.ext`` or a bare name) to a file."""
        entry_path = Path(entry.strip().replace("\\", "/"))
        candidates = self.by_stem.get(self.entry_key(entry), [])
        if not candidates:
            return None
        wanted_suffix = entry_path.suffix.lower()
        class_keys = {_normalise(class_name)} if class_name else set()
        if len(entry_path.parts) > 1:
            class_keys.add(_normalise(entry_path.parts[-2]))

        def preference(path: Path) -> tuple[int, int, int, str]:
            relative_parts = path.relative_to(self.root).parts[:-1]
            in_class_folder = any(_normalise(part) in class_keys for part in relative_parts)
            return (
                0 if in_class_folder else 1,
                0 if path.suffix.lower() == wanted_suffix else 1,
                VIDEO_EXTENSIONS.index(path.suffix.lower()),
                str(path),
            )

        return min(candidates, key=preference)

    def missing_path(self, entry: str, class_name: str, default: Path) -> Path:
        """Where a listed video that is not there would be: in the folder holding most of the
        class's videos (an extra level such as ``UCF-101/`` included), else at ``default``."""
        folder = self._class_folders.get(_normalise(class_name))
        return folder / Path(entry.strip().replace("\\", "/")).name if folder is not None else default

    @functools.cached_property
    def _class_folders(self) -> dict[str, Path]:
        """Normalised folder name -> the folder of that name holding the most videos (the
        shallowest of equals)."""
        counts = Counter(path.parent for paths in self.by_stem.values() for path in paths)
        chosen: dict[str, Path] = {}
        for folder in sorted(counts, key=lambda folder: (-counts[folder], len(folder.parts), str(folder))):
            chosen.setdefault(_normalise(folder.name), folder)
        return chosen


@dataclass(frozen=True)
class _Listing:
    """One annotation line that names a video file: the file, its class and split, and where
    the line is (``"train.csv (line 3)"``)."""

    path: Path
    class_name: str
    split: str
    source: str


def _one_listing_per_file(listings: list[_Listing]) -> tuple[list[_Listing], list[Problem]]:
    """One listing per file, in the order files are first listed: a file listed in train and in
    test keeps a train listing (a test video seen in training inflates the test score), otherwise
    its first listing. Every listing left out is a kept :class:`Problem` naming both lines."""
    kept: dict[Path, _Listing] = {}
    problems = []
    for listing in listings:
        first = kept.setdefault(listing.path, listing)
        if first is listing:
            continue
        if listing.split == "train" and first.split != "train":
            kept[listing.path], listing = listing, first
        chosen = kept[listing.path]
        why = " (a test video seen in training inflates the test score)" if listing.split != chosen.split else ""
        problems.append(Problem(listing.path, f"listed more than once: in {chosen.source} as {chosen.class_name!r} in "
                                              f"{chosen.split}, and in {listing.source} as {listing.class_name!r} in "
                                              f"{listing.split}; kept once, as {chosen.class_name!r} in "
                                              f"{chosen.split}{why}", skipped=False))
    return list(kept.values()), problems


def _unlisted_videos(finder: _VideoFinder, listed_keys: set[str], lists: str, class_names: list[str],
                     folder_reason: Callable[[Path, int], str]) -> list[Problem]:
    """The videos under the finder's root that no annotation line names (``listed_keys``: the
    :meth:`_VideoFinder.entry_key` of every line, unused ones too), which would not be used
    unseen. A folder none of whose videos is listed and whose name is no class of
    ``class_names`` is one problem, worded by ``folder_reason(folder, number of videos)``; every
    other such video is one, saying that no line of ``lists`` names it."""
    class_keys = {_normalise(class_name) for class_name in class_names}
    videos_by_folder: dict[Path, list[Path]] = defaultdict(list)
    for path in finder.all_paths():
        videos_by_folder[path.parent].append(path)
    problems = []
    for folder, videos in sorted(videos_by_folder.items()):
        unlisted = [video for video in videos if _name_key(video.stem) not in listed_keys]
        if len(unlisted) == len(videos) and _normalise(folder.name) not in class_keys:
            problems.append(Problem(folder, folder_reason(folder, len(videos))))
            continue
        problems.extend(Problem(video, f"not listed: no line of {lists} names it, so it is not used")
                        for video in unlisted)
    return problems


def _describe(root: Path) -> str:
    """A short account of what is in ``root``, for layout errors."""
    if not root.exists():
        return f"{root} does not exist"
    if not root.is_dir():
        return f"{root} is not a folder"
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    folders = [p.name for p in entries if p.is_dir()]
    files = [p for p in entries if p.is_file()]
    videos = [p for p in files if _is_video(p.name)]
    others = Counter(p.suffix.lower() or "(no extension)" for p in files if not _is_video(p.name))
    parts = [f"{len(folders)} folder(s)" + (f" ({', '.join(folders[:6])}{', ...' if len(folders) > 6 else ''})" if folders else "")]
    parts.append(f"{len(videos)} video file(s) at the top level")
    if others:
        parts.append("other files: " + ", ".join(f"{count} {suffix}" for suffix, count in sorted(others.items())))
    return f"{root} holds " + "; ".join(parts)


def _layout_error(root: Path, problem: str) -> LayoutError:
    understood = "\n".join(f"  {name}: {description}" for name, description in LAYOUTS.items())
    return LayoutError(f"{problem}.\nFound: {_describe(root)}.\nseco_lab understands these layouts:\n{understood}",
                       lists_layouts=True)


def _search_dirs(root: Path, depth: int) -> list[Path]:
    """``root`` and its non-hidden sub-folders down to ``depth`` levels, breadth first (not
    through a folder link back to ``root`` or above it, or to a folder listed already)."""
    top = os.path.realpath(root)
    walked = {top}
    found, frontier = [root], [root]
    for _ in range(depth):
        next_frontier = []
        for directory in frontier:
            try:
                names = [p.name for p in directory.iterdir() if p.is_dir()]
            except OSError:
                names = []
            next_frontier.extend(directory / name for name in _folders_to_walk(directory, names, top, walked))
        found.extend(next_frontier)
        frontier = next_frontier
    return found


def _find_file_ci(directory: Path, name: str) -> Path | None:
    """The file ``name`` in ``directory``, matched case-insensitively."""
    try:
        for path in directory.iterdir():
            if path.name.lower() == name.lower() and path.is_file():
                return path
    except OSError:
        return None
    return None


def _candidate_dirs(root: Path) -> list[Path]:
    """Where annotation folders may sit: the root and its sub-folders, two levels deep."""
    return _search_dirs(root, 2)


# ---------------------------------------------------------------- UCF101

def _ucf_split_dir(root: Path) -> Path | None:
    for directory in _candidate_dirs(root):
        if _find_file_ci(directory, "classInd.txt") and any(
            _find_file_ci(directory, f"trainlist0{k}.txt") for k in (1, 2, 3)
        ):
            return directory
    return None


def _read_lines(path: Path) -> list[str]:
    # -sig: a leading BOM is not text. Bytes that are not UTF-8 (an old archive's Latin-1 names)
    # become surrogate escapes, as os.walk gives the same bytes in file names, so the two match.
    text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _discover_ucf101(root: Path, split: int) -> DatasetSpec:
    split_dir = _ucf_split_dir(root)
    if split_dir is None:
        raise _layout_error(root, f"{root} is not a ucf101 layout: no folder with classInd.txt and trainlist0K.txt")
    class_index = _find_file_ci(split_dir, "classInd.txt")
    assert class_index is not None
    classes: list[str] = []
    for line_number, line in enumerate(_read_lines(class_index), 1):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise LayoutError(f"{class_index}:{line_number}: expected '<number> <ClassName>', got {line!r}")
        if int(parts[0]) != len(classes) + 1:
            raise LayoutError(f"{class_index}:{line_number}: class numbers must run 1, 2, 3, ...; got {parts[0]}")
        classes.append(parts[1])
    by_key = {_normalise(name): label for label, name in enumerate(classes)}
    lists = {"train": _find_file_ci(split_dir, f"trainlist0{split}.txt"),
             "test": _find_file_ci(split_dir, f"testlist0{split}.txt")}
    missing_lists = [name for name, path in lists.items() if path is None]
    if missing_lists:
        available = sorted(p.name for p in split_dir.glob("*list0*.txt"))
        raise LayoutError(f"{split_dir}: split {split} needs trainlist0{split}.txt and testlist0{split}.txt; "
                          f"available: {', '.join(available) or 'none'}")
    finder = _VideoFinder(root)
    listings: list[_Listing] = []
    problems: list[Problem] = []
    listed_keys: set[str] = set()
    for split_name, list_path in lists.items():
        assert list_path is not None
        for line_number, line in enumerate(_read_lines(list_path), 1):
            fields = line.split()
            entry = fields[0]
            entry_path = Path(entry.replace("\\", "/"))
            listed_keys.add(finder.entry_key(entry))
            label, label_note = _ucf_label(entry_path, fields, by_key, classes)
            if label is None:
                problems.append(Problem(split_dir / list_path.name,
                                        f"line {line_number}: cannot tell the class of {entry!r}"))
                continue
            if label_note is not None:
                problems.append(Problem(split_dir / list_path.name, f"line {line_number}: {entry!r}: {label_note}",
                                        skipped=False))
            path = finder.find(entry, classes[label])
            if path is None:
                problems.append(Problem(finder.missing_path(entry, classes[label], root / entry_path),
                                        f"listed in {list_path.name} but no such video under {root}"))
                continue
            listings.append(_Listing(path, classes[label], split_name, f"{list_path.name} (line {line_number})"))
    kept, repeated = _one_listing_per_file(listings)
    problems.extend(repeated)
    list_names = " or ".join(path.name for path in lists.values() if path is not None)
    problems.extend(_unlisted_videos(
        finder, listed_keys, list_names, classes,
        lambda folder, count: (f"folder of videos not listed: {folder.name} is not a class of {class_index.name} "
                               f"and no line of {list_names} names its {count} video(s), so they are not used")))
    problems.extend(finder.problems)
    label_of = {class_name: label for label, class_name in enumerate(classes)}
    records = [VideoRecord(listing.path, label_of[listing.class_name], listing.class_name, listing.split,
                           _ucf_group(listing.path.stem)) for listing in kept]
    return DatasetSpec(root, "ucf101", classes, records, problems)


def _ucf_label(entry_path: Path, fields: list[str], by_key: dict[str, int],
               classes: list[str]) -> tuple[int | None, str | None]:
    """Class of a UCF101 list entry: its folder, else its ``v_<Class>_`` name, else its label
    column; and a note when the label column disagrees with that class or names no class."""
    match = re.match(r"v_(.+?)_g\d+_c\d+", entry_path.stem, re.IGNORECASE)
    candidates = (("folder", entry_path.parts[-2] if len(entry_path.parts) > 1 else None),
                  ("file name", match.group(1) if match else None))
    named = {source: name for source, name in candidates if name}
    source, by_name = next(((source, by_key[_normalise(name)]) for source, name in named.items()
                            if _normalise(name) in by_key), (None, None))
    number = fields[1] if len(fields) > 1 else None
    numbered = number is not None and number.isdigit() and 1 <= int(number) <= len(classes)
    by_number = int(number) - 1 if numbered else None
    if by_name is None:
        if by_number is not None and named:
            source, name = next(iter(named.items()))
            return by_number, (f"its {source} names class {name}, which is not in classInd.txt: labelled "
                               f"{classes[by_number]}, the class of its label number {number}")
        return by_number, None
    if number is None or by_number == by_name:
        return by_name, None
    if by_number is None:
        return by_name, (f"label number {number} is not in classInd.txt (1-{len(classes)}): labelled "
                         f"{classes[by_name]}, the class of its {source}")
    return by_name, (f"its {source} names class {classes[by_name]} but its label number {number} is "
                     f"{classes[by_number]} in classInd.txt: labelled {classes[by_name]}, the class of its {source}")


# ---------------------------------------------------------------- HMDB51

def _hmdb_split_files(root: Path) -> tuple[Path, dict[int, dict[str, Path]]] | None:
    for directory in _candidate_dirs(root):
        try:
            names = [p for p in directory.iterdir() if p.is_file()]
        except OSError:
            continue
        splits: dict[int, dict[str, Path]] = defaultdict(dict)
        for path in names:
            match = _HMDB_SPLIT_FILE.match(path.name)
            if match:
                splits[int(match.group("k"))][match.group("cls")] = path
        if splits:
            return directory, dict(splits)
    return None


def _discover_hmdb51(root: Path, split: int) -> DatasetSpec:
    found = _hmdb_split_files(root)
    if found is None:
        raise _layout_error(root, f"{root} is not a hmdb51 layout: no <class>_test_split<K>.txt files")
    split_dir, splits = found
    if split not in splits:
        raise LayoutError(f"{split_dir}: no <class>_test_split{split}.txt files; splits available: "
                          f"{', '.join(str(k) for k in sorted(splits))}")
    files_by_class = splits[split]
    classes = sorted(files_by_class)
    finder = _VideoFinder(root)
    listings: list[_Listing] = []
    problems: list[Problem] = []
    tags = {"1": "train", "2": "test"}
    listed_keys: set[str] = set()  # every entry's, tag 0 too
    for label, class_name in enumerate(classes):
        list_path = files_by_class[class_name]
        for line_number, line in enumerate(_read_lines(list_path), 1):
            match = _HMDB_SPLIT_LINE.match(line)
            if match is None:
                problems.append(Problem(list_path, f"line {line_number}: expected '<video>.avi <0|1|2>', got {line!r}"))
                continue
            entry, tag = match.group("video"), match.group("tag")
            listed_keys.add(finder.entry_key(entry))
            if tag == "0":
                continue
            path = finder.find(entry, class_name)
            if path is None:
                problems.append(Problem(finder.missing_path(entry, class_name, root / class_name / entry),
                                        f"listed in {list_path.name} but no such video under {root}"))
                continue
            listings.append(_Listing(path, class_name, tags[tag], f"{list_path.name} (line {line_number})"))
    kept, repeated = _one_listing_per_file(listings)
    problems.extend(repeated)
    problems.extend(_unlisted_videos(
        finder, listed_keys, f"the <class>_test_split{split}.txt files", classes,
        lambda folder, count: (f"folder of videos without a split file: no {folder.name}_test_split{split}.txt in "
                               f"{split_dir}, so its {count} video(s) are not used")))
    problems.extend(finder.problems)
    label_of = {class_name: label for label, class_name in enumerate(classes)}
    records = [VideoRecord(listing.path, label_of[listing.class_name], listing.class_name, listing.split)
               for listing in kept]
    return DatasetSpec(root, "hmdb51", classes, records, problems)


# ---------------------------------------------------------------- Kinetics

_KINETICS_COLUMNS = {"youtube_id", "time_start", "time_end"}


def _kinetics_csvs(root: Path) -> list[Path]:
    found = []
    for directory in _search_dirs(root, 2):
        for path in sorted(directory.glob("*.csv")):
            try:
                with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
                    header = next(csv.reader(handle), [])
            except OSError:
                continue
            if _KINETICS_COLUMNS <= {column.strip().lower() for column in header}:
                found.append(path)
    return found


def _split_from_csv_name(path: Path) -> str | None:
    stem = path.stem.lower()
    for key, value in _KINETICS_SPLITS.items():
        if re.search(rf"(^|[^a-z]){key}([^a-z]|$)", stem):
            return value
    return None


def _discover_kinetics(root: Path, split: int) -> DatasetSpec:
    csv_paths = _kinetics_csvs(root)
    if not csv_paths:
        raise _layout_error(root, f"{root} is not a kinetics layout: no CSV with columns youtube_id,time_start,time_end")
    if split != 1:
        warnings.warn(f"{root}: split {split} asked for, but a kinetics layout has one split, the one its CSVs name "
                      "(train, and val as test): that one is read", stacklevel=3)
    rows: list[tuple[str, str, str, Path, int]] = []  # (label, clip name, split, csv, line)
    problems: list[Problem] = []
    listed_keys: set[str] = set()  # of every row's clip, unlabelled ones too
    labels: set[str] = set()
    for csv_path in csv_paths:
        with csv_path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
            reader = csv.DictReader(handle)
            reader.fieldnames = [name.strip().lower() for name in reader.fieldnames or []]
            for line_number, row in enumerate(reader, 2):
                label = (row.get("label") or "").strip().strip('"')
                youtube_id = (row.get("youtube_id") or "").strip()
                listed_keys.add(_name_key(youtube_id))
                labels.add(label)
                try:
                    start, end = int(float(row["time_start"])), int(float(row["time_end"]))
                    listed_keys.add(_name_key(f"{youtube_id}_{start:06d}_{end:06d}"))
                except (TypeError, ValueError):
                    start = end = None
                split_value = (row.get("split") or "").strip().lower() or (_split_from_csv_name(csv_path) or "")
                split_name = _KINETICS_SPLITS.get(split_value)
                if not label or split_name is None:
                    continue  # unlabelled (e.g. hidden test set) or unknown split: not usable
                if start is None:
                    problems.append(Problem(csv_path, f"line {line_number}: bad time_start/time_end {row!r}"))
                    continue
                rows.append((label, f"{youtube_id}_{start:06d}_{end:06d}", split_name, csv_path, line_number))
    finder = _VideoFinder(root)
    listings: list[_Listing] = []
    for label, clip_name, split_name, csv_path, line_number in rows:
        path = finder.find(clip_name, label) or finder.find(clip_name.rsplit("_", 2)[0], label)
        if path is None:
            problems.append(Problem(root / label / f"{clip_name}.mp4",
                                    f"listed in {csv_path.name} (line {line_number}) but no video of that name "
                                    f"(any extension, any folder) under {root}"))
            continue
        listings.append(_Listing(path, label, split_name, f"{csv_path.name} (line {line_number})"))
    kept, repeated = _one_listing_per_file(listings)
    problems.extend(repeated)
    csv_names = " or ".join(path.name for path in csv_paths)
    problems.extend(_unlisted_videos(
        finder, listed_keys, csv_names, sorted(labels - {""}),
        lambda folder, count: (f"folder of videos not listed: no row of {csv_names} names its {count} video(s), so "
                               "they are not used")))
    # Classes of a partial download none of whose clips is present are left out: a class
    # without videos would only lower the chance level and waste a classifier output.
    classes = sorted({listing.class_name for listing in kept})
    by_name = {name: index for index, name in enumerate(classes)}
    records = [VideoRecord(listing.path, by_name[listing.class_name], listing.class_name, listing.split)
               for listing in kept]
    problems.extend(finder.problems)
    return DatasetSpec(root, "kinetics", classes, records, problems)


# ---------------------------------------------------------------- plain class folders

def folder_split_of(file_name: str, split: int = 1) -> str:
    """Deterministic split of a file in the ``folders`` layout: "train" for ~70 % of names.

    The name without extension is hashed (sha1, salted by ``split``), so renaming a file's
    extension or moving the root keeps its split, and splits 1, 2, 3 differ. A name in UCF101's
    pattern ``…_gGG_cCC`` is hashed without its ``_cCC``: the clips of one group (same actors,
    same scene) land on the same side, as in the official splits.
    """
    stem = Path(file_name).stem.lower()
    group = _ucf_group(stem)
    key = stem if group is None else f"{_UCF_GROUP.sub('', stem)}_{group}"
    digest = hashlib.sha1(os.fsencode(f"seco_lab-split{split}:{key}")).digest()
    return "train" if int.from_bytes(digest[:8], "big") % 100 < FOLDERS_TRAIN_PERCENT else "test"


def _class_folders(directory: Path, problems: list[Problem] | None = None) -> dict[str, list[Path]]:
    """Sub-folders of ``directory`` that hold video files (at any depth), with those files.

    Broken symbolic links among the sub-folders, folder links back to ``directory`` or above it
    or to another class folder, and what their finders cannot list or follow inside them, are
    appended to ``problems`` when it is given.
    """
    classes: dict[str, list[Path]] = {}
    try:
        children = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    except OSError:
        return classes
    top = os.path.realpath(directory)
    walked = {top}
    for child in children:
        if not child.is_dir() and problems is not None and _is_broken_link(child):
            problems.append(_broken_link_problem(child))
    # Every class folder is claimed before any is walked, so a link inside one class to another
    # is left out whichever comes first.
    class_names = _folders_to_walk(directory, [child.name for child in children if child.is_dir()], top, walked,
                                   problems)
    for class_name in sorted(class_names):
        finder = _VideoFinder(directory / class_name, top, walked)
        videos = finder.all_paths()
        if videos:
            classes[class_name] = videos
        if problems is not None:
            problems.extend(finder.problems)
    return classes


def _videos_outside_class_folders(directory: Path, inside: str) -> list[Problem]:
    """One problem for the video files directly in ``directory``, which the folders layout cannot
    label (``inside``: where its videos must be instead, e.g. ``"<class>/"``)."""
    try:
        videos = sorted(p.name for p in directory.iterdir() if _is_video(p.name) and p.is_file())
    except OSError:
        return []
    if not videos:
        return []
    shown = ", ".join(videos[:3]) + (", ..." if len(videos) > 3 else "")
    return [Problem(directory, f"videos outside a class folder: {len(videos)} video(s) directly in this folder "
                               f"({shown}) are not used; the folders layout takes a video's class from the "
                               f"folder holding it, {directory}/{inside}<video>")]


def _split_folders(root: Path) -> dict[str, list[Path]]:
    """``train``/``test``/``val`` folders directly under ``root``, grouped by the split they mean."""
    found: dict[str, list[Path]] = defaultdict(list)
    top = os.path.realpath(root)
    names = [p.name for p in root.iterdir() if p.is_dir()]
    for name in _folders_to_walk(root, names, top, {top}):
        split_name = _SPLIT_DIR_NAMES.get(name.lower())
        if split_name:
            found[split_name].append(root / name)
    return dict(found)


def _single_class_note(root: Path, class_name: str) -> str:
    """What a folders layout with one class folder most likely is, and where to point instead."""
    folder = root / class_name
    note = (f"{root}: the folders layout found one class, {class_name!r} (every video is labelled the same: "
            "fine for self-supervised pretraining, but no classification protocol can use it)")
    if _SPLIT_DIR_NAMES.get(class_name.lower()) == "train":
        return note + f"; {class_name}/ looks like a train split, but there is no test or val folder beside it"
    if _split_folders(folder).keys() >= set(SPLITS):
        return note + f"; {folder} holds train and test (or val) folders: point at {folder} instead"
    inner = _class_folders(folder)
    if len(inner) > 1:
        return note + f"; {folder} holds {len(inner)} folders of videos ({', '.join(list(inner)[:4])}, ...): " \
                      f"point at {folder} to use them as classes"
    return note


def _discover_folders(root: Path, split: int) -> DatasetSpec:
    split_dirs = _split_folders(root) if root.is_dir() else {}
    records: list[VideoRecord] = []
    problems: list[Problem] = []
    if "train" in split_dirs and "test" in split_dirs:
        per_split = {name: {} for name in SPLITS}
        problems.extend(_videos_outside_class_folders(root, "<train|test>/<class>/"))
        for split_name, directories in split_dirs.items():
            for directory in directories:
                problems.extend(_videos_outside_class_folders(directory, "<class>/"))
                for class_name, videos in _class_folders(directory, problems).items():
                    per_split[split_name].setdefault(class_name, []).extend(videos)
        classes = sorted(set(per_split["train"]) | set(per_split["test"]))
        if not classes:
            raise _layout_error(root, f"{root} has train/test folders but no class folders with videos inside")
        for split_name, directories in split_dirs.items():
            if len(directories) > 1:  # e.g. val/ and test/: seco_lab evaluates on one held-out split
                names = [f"{directory.name}/" for directory in directories]
                warnings.warn(f"{root}: {', '.join(names[:-1])} and {names[-1]} are read together as the {split_name} "
                              "split (seco_lab has a train and a test split only)", stacklevel=3)
        for split_name in SPLITS:
            for class_name in classes:
                for path in per_split[split_name].get(class_name, []):
                    records.append(VideoRecord(path, classes.index(class_name), class_name, split_name))
        return DatasetSpec(root, "folders", classes, records, problems)
    videos_by_class = _class_folders(root, problems) if root.is_dir() else {}
    if not videos_by_class:
        raise _layout_error(root, f"{root} is not a folders layout: no sub-folder holds video files "
                                  f"({', '.join(VIDEO_EXTENSIONS)})")
    problems.extend(_videos_outside_class_folders(root, "<class>/"))
    classes = sorted(videos_by_class)
    if len(classes) == 1:
        warnings.warn(_single_class_note(root, classes[0]), stacklevel=3)
    for label, class_name in enumerate(classes):
        for path in videos_by_class[class_name]:
            records.append(VideoRecord(path, label, class_name, folder_split_of(path.name, split),
                                       _ucf_group(path.stem)))
    grouped = sum(record.group is not None for record in records)
    if grouped > len(records) // 2:
        warnings.warn(f"{root}: {grouped} of {len(records)} videos are named like UCF101's (…_gGG_cCC) but no "
                      "ucfTrainTestlist/ was found, so the split is this package's hash of the groups, not the "
                      "official split 1-3; point at the folder that holds ucfTrainTestlist/ to use those.",
                      stacklevel=3)
    return DatasetSpec(root, "folders", classes, records, problems, hashed_split=True)


# ---------------------------------------------------------------- entry point

_DISCOVER = {
    "ucf101": _discover_ucf101,
    "hmdb51": _discover_hmdb51,
    "kinetics": _discover_kinetics,
    "folders": _discover_folders,
}


def _looks_like_folders(root: Path) -> bool:
    """Whether ``root`` holds train and test folders, or class folders with videos."""
    return _split_folders(root).keys() >= set(SPLITS) or bool(_class_folders(root))


def detect_layout(root: str | Path) -> str:
    """Name of the layout of ``root``; raises :class:`LayoutError` when none fits."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise _layout_error(root, f"cannot read a dataset from {root}")
    if _ucf_split_dir(root) is not None:
        return "ucf101"
    if _hmdb_split_files(root) is not None:
        return "hmdb51"
    if _kinetics_csvs(root):
        return "kinetics"
    if _looks_like_folders(root):
        return "folders"
    raise _layout_error(root, f"{root} matches none of the layouts seco_lab understands")


def _missing_entries(spec: DatasetSpec) -> int:
    """How many annotation entries of ``spec`` name a video that is not there."""
    return sum(problem.reason.startswith("listed in ") for problem in spec.problems)


def discover(root: str | Path, layout: str = "auto", split: int = 1) -> DatasetSpec:
    """Find every annotated video under ``root``.

    Args:
        root: dataset folder.
        layout: "auto" (detect), "ucf101", "hmdb51", "kinetics" or "folders".
        split: official split number 1..3 (ucf101, hmdb51) or hash salt (folders); kinetics
            has one split and ignores it.

    Returns:
        DatasetSpec whose ``records`` are the entries with an existing file and whose
        ``problems`` name annotation entries without a file.

    Raises:
        LayoutError: the layout is unknown, or ``root`` is not in the requested layout, or
            its annotations name no existing video.
    """
    root = Path(root).expanduser().resolve()
    if layout != "auto" and layout not in _DISCOVER:
        raise LayoutError(f"unknown layout {layout!r}: seco_lab understands auto, {', '.join(LAYOUTS)}")
    if isinstance(split, bool) or not isinstance(split, int) or split < 1:
        raise ValueError(f"split must be a positive integer (1..3 for ucf101/hmdb51), got {split!r}")
    if not root.is_dir():
        raise _layout_error(root, f"cannot read a dataset from {root}")
    name = detect_layout(root) if layout == "auto" else layout
    spec = _DISCOVER[name](root, split)
    if not spec.records and layout == "auto" and name == "kinetics":
        # Any CSV with Kinetics' three columns makes a kinetics layout, a weak sign (a folder of class
        # folders may hold such a metadata.csv, or Kinetics clips renamed): when none of its rows names
        # a video, the class folders are read, as auto detection would without the CSV, with a note
        # saying how to read the CSV instead. Refusing a folder that reads fine would be the surprise.
        try:
            folders_spec = _discover_folders(root, split)
        except LayoutError:  # no class folders with videos: the kinetics error below says more
            folders_spec = None
        if folders_spec is not None:
            csv_names = ", ".join(path.name for path in _kinetics_csvs(root))
            warnings.warn(f"{root}: none of the {_missing_entries(spec)} entries of {csv_names} (Kinetics' columns "
                          f"youtube_id, time_start, time_end) names a video under {root}, so the folder is read as "
                          "class folders; pass --layout kinetics to read the CSV instead (it then lists the entries "
                          "without a video)", stacklevel=2)
            return folders_spec
    if not spec.records:
        raise _layout_error(root, f"{root} looks like a {name} layout but none of its {_missing_entries(spec)} "
                                  "annotated entries names an existing video file")
    return spec
