"""``python -m seco_lab data check ROOT``: index a dataset (its videos, its tracking sequences) and
print what was found and every problem.

The tracking code lives in :mod:`seco_lab.evaluation`, whose import (scikit-learn and the other
protocols) takes seconds: it is imported only for a folder that may hold tracking sequences.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from seco_lab.video.index import MIN_USABLE_FRAMES, VideoIndex, problem_counts
from seco_lab.video.layouts import LayoutError, discover

if TYPE_CHECKING:
    from seco_lab.evaluation.tracking import TrackingCheck

__all__ = ["run_check"]

# Matches every ground-truth file name of an OTB sequence (groundtruth_rect.txt, groundtruth_rect.<K>.txt).
_TRUTH_FILES = "groundtruth_rect*.txt"


def run_check(root: str | Path, layout: str = "auto", split: int = 1, min_frames: int = MIN_USABLE_FRAMES,
              cache_dir: str | Path | None = None, progress: bool = True, out: TextIO | None = None,
              max_videos_per_class: int | None = None) -> int:
    """Discover and index ``root`` (or its subset of at most ``max_videos_per_class`` videos of
    each class and split), print the summary and the problem list. Videos with fewer than
    ``min_frames`` decodable frames count as too short (by default those training and evaluation
    leave out).

    OTB-layout tracking sequences in ``root/tracking`` (or directly under ``root``) are read and
    their images decoded too; a folder holding only them is checked as a tracking dataset.

    Returns the exit code: 0 when every annotated video (and tracking sequence) is usable, 1 when
    some files were skipped or are damaged (the rest is usable), 2 when the folder is not a layout
    seco_lab understands (the error names the layouts) or nothing is usable.
    """
    out = out or sys.stdout
    tracking = None
    if _may_hold_tracking_sequences(Path(root)):
        from seco_lab.evaluation.tracking import check_tracking_sequences

        tracking = check_tracking_sequences(root, progress=progress)
    try:
        with warnings.catch_warnings(record=True) as layout_notes:  # printed below the summary
            warnings.simplefilter("always")
            spec = discover(root, layout=layout, split=split).limited(max_videos_per_class)
    except LayoutError as error:
        if tracking is None:
            otb = "\n  tracking (OTB): <root>/<sequence>/img/0001.jpg with groundtruth_rect.txt"
            print(f"error: {error}{otb if error.lists_layouts else ''}", file=out)
            return 2
        print(f"note: no video dataset in {root}; its tracking sequences were checked", file=out)
        return _print_tracking_check(tracking, out)
    # No warning: the full list is printed below.
    index = VideoIndex.build(spec, cache_dir=cache_dir, progress=progress, min_frames=min_frames, warn=False)
    print(index.summary(spec), file=out)
    for note in layout_notes:
        print(f"note: {note.message}", file=out)
    if not index.usable(spec.records):
        print("error: no usable video", file=out)
        code = 2
    elif index.problems:
        skipped = len(index.skipped_problems())
        print(problem_counts(skipped, len(index.problems) - skipped), file=out)
        code = 1
    else:
        print("ok: every annotated video is usable", file=out)
        code = 0
    # Unusable tracking sequences leave the videos usable: at worst "some files are damaged".
    return code if tracking is None else max(code, min(_print_tracking_check(tracking, out), 1))


def _may_hold_tracking_sequences(root: Path) -> bool:
    """Whether ``root`` has a ``tracking`` folder, or it or one of its folders a ground-truth file
    (where :func:`~seco_lab.evaluation.tracking.discover_tracking_sequences` looks): without
    either it finds no sequence."""
    if (root / "tracking").is_dir():
        return True
    try:
        folders = [root, *(path for path in root.iterdir() if path.is_dir())]
    except OSError:
        return False
    return any(next(folder.glob(_TRUTH_FILES), None) is not None for folder in folders)


def _print_tracking_check(check: TrackingCheck, out: TextIO) -> int:
    """Print what :func:`check_tracking_sequences` found; the exit code as :func:`run_check`'s."""
    usable = check.usable
    print(f"tracking sequences (OTB layout) in {check.folder}: {len(check.names)}, of which {len(usable)} can be "
          f"tracked and scored ({check.frames} frames with a box)", file=out)
    for note in check.notes:
        print(f"note: {note}", file=out)
    for name, reason in check.problems:
        print(f"problem: {name}: {reason}", file=out)
    if not usable:
        print("error: no tracking sequence can be scored", file=out)
        return 2
    if check.problems:
        print(f"{len(check.names) - len(usable)} tracking sequence(s) will be left out", file=out)
        return 1
    print("ok: every tracking sequence can be tracked and scored", file=out)
    return 0
