"""``python -m seco_lab data check ROOT``: index a dataset and print what was found and every problem."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import TextIO

from seco_lab.video.index import VideoIndex, problem_counts
from seco_lab.video.layouts import LayoutError, discover

__all__ = ["run_check"]


def run_check(root: str | Path, layout: str = "auto", split: int = 1, min_frames: int = 1,
              cache_dir: str | Path | None = None, progress: bool = True, out: TextIO | None = None,
              max_videos_per_class: int | None = None) -> int:
    """Discover and index ``root`` (or its subset of at most ``max_videos_per_class`` videos of
    each class and split), print the summary and the problem list.

    Returns the exit code: 0 when every annotated video is usable, 1 when some files were
    skipped or are damaged (the rest is usable), 2 when the folder is not a layout seco_lab
    understands (the error names the layouts) or nothing is usable.
    """
    out = out or sys.stdout
    try:
        with warnings.catch_warnings(record=True) as layout_notes:  # printed below the summary
            warnings.simplefilter("always")
            spec = discover(root, layout=layout, split=split).limited(max_videos_per_class)
    except LayoutError as error:
        print(f"error: {error}", file=out)
        return 2
    # No warning: the full list is printed below.
    index = VideoIndex.build(spec, cache_dir=cache_dir, progress=progress, min_frames=min_frames, warn=False)
    print(index.summary(spec), file=out)
    for note in layout_notes:
        print(f"note: {note.message}", file=out)
    usable = index.usable(spec.records)
    if not usable:
        print("error: no usable video", file=out)
        return 2
    if index.problems:
        skipped = len(index.skipped_problems())
        print(problem_counts(skipped, len(index.problems) - skipped), file=out)
        return 1
    print("ok: every annotated video is usable", file=out)
    return 0
