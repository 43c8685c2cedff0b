"""Training history: ``run_dir/history.jsonl``, one JSON object per line.

Records have a ``"type"``: ``"step"`` (``step``, ``epoch``, one key per loss term, ``lr``,
``samples_per_s``, ``wall_time``) or ``"monitor"`` (``step``, ``epoch`` and whatever the
monitor returned, e.g. ``knn_top1``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

HISTORY_NAME = "history.jsonl"


class HistoryWriter:
    """Appends records to ``history.jsonl``. ``resume_step=None`` starts an empty file; an int
    keeps only records up to that step (later ones were written by a run that died before
    checkpointing them, and will be written again)."""

    def __init__(self, run_dir: str | Path, resume_step: int | None) -> None:
        self.path = Path(run_dir) / HISTORY_NAME
        if resume_step is None:
            self.path.write_text("")
        else:
            kept = [record for record in _read_records(self.path) if record.get("step", 0) <= resume_step]
            temporary = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
            temporary.write_text("".join(json.dumps(record) + "\n" for record in kept))
            os.replace(temporary, self.path)
        self._handle = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(_json_safe(record)) + "\n")

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


RECORD_TYPES = (None, "step", "monitor")  # None: every record


def load_history(run_dir: str | Path, record_type: str | None = None) -> list[dict[str, Any]]:
    """Records of ``run_dir/history.jsonl`` in order; ``record_type`` keeps only ``"step"`` or
    ``"monitor"`` records. A missing file raises ``FileNotFoundError`` naming it."""
    if record_type not in RECORD_TYPES:
        raise ValueError(f"record_type must be one of {', '.join(map(repr, RECORD_TYPES))}, got {record_type!r}")
    path = Path(run_dir) / HISTORY_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path}: no training history (has this run started?)")
    records = _read_records(path)
    if record_type is not None:
        records = [record for record in records if record.get("type") == record_type]
    return records


def _read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if line_number == len(lines):  # a process killed mid-write leaves a partial last line
                break
            raise ValueError(f"{path}: line {line_number} is not JSON") from None
    return records


def _json_safe(record: dict[str, Any]) -> dict[str, Any]:
    """Floats that JSON cannot hold (nan, inf) become strings."""
    return {key: (repr(value) if isinstance(value, float) and not math.isfinite(value) else value)
            for key, value in record.items()}
