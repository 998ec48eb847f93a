"""Benchmark records: the JSON lines a run appends, read back for reports and resumes.

A run folder holds ``records.jsonl`` (one JSON object per (cell, seed) row) and
``run.json``; everything in :mod:`unlearnkit.reporting` is built from them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RECORDS = "records.jsonl"


def read_records(out: str | Path) -> list[dict[str, Any]]:
    """The run's rows, the last one recorded for each (cell, seed) (a resumed run may have retried some)."""
    path = Path(out) / RECORDS
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill: that row reruns on resume
                    continue
                rows[(r["cell"], r["seed"])] = r
    return list(rows.values())


def damaged_lines(out: str | Path) -> list[int]:
    """Line numbers (1-based) of ``records.jsonl`` that are not a JSON row: rows lost to a kill or a full disk."""
    path = Path(out) / RECORDS
    if not path.exists():
        return []
    bad = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                json.loads(line)
            except json.JSONDecodeError:
                bad.append(n)
    return bad


def repair_records(out: str | Path) -> int:
    """Cut a partial last line (a write cut by a kill or a full disk) off ``records.jsonl``; returns the bytes cut.

    Rows are appended one line each; without this, the next append would glue
    its row to the broken line and both would be lost.
    """
    path = Path(out) / RECORDS
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as f:
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return len(data) - keep


def completeness(out: str | Path, records: list[dict[str, Any]] | None = None) -> str | None:
    """A sentence when the run in ``out`` is short of rows or has damaged lines; None when it is complete."""
    meta_path = Path(out) / "run.json"
    expected = json.loads(meta_path.read_text()).get("expected_rows") if meta_path.exists() else None
    rows = records if records is not None else read_records(out)
    bad = damaged_lines(out)
    parts = []
    if expected is not None and len(rows) < expected:
        parts.append(f"{len(rows)} of {expected} rows are recorded")
    if bad:
        parts.append(f"{len(bad)} damaged line(s) in {RECORDS} (line {', '.join(map(str, bad[:5]))})")
    if not parts:
        return None
    return "INCOMPLETE RUN: " + "; ".join(parts) + " — the figures below leave those rows out; rerun with --resume."
