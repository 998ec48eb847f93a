"""Benchmark records: the JSON lines a run appends, read back for reports and resumes.

A run folder holds ``records.jsonl`` (one JSON object per (cell, seed) row) and
``run.json``; everything in :mod:`unlearnkit.reporting` is built from them.
"""

from __future__ import annotations

import json
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
