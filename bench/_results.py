"""Helpers shared by the results scripts in bench/ (each writes one docs/results page)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from unlearnkit.reporting.tables import mean_std


def results_parser(doc: str | None, page: Path, smoke: str) -> argparse.ArgumentParser:
    """The options every results script takes: seeds, output page, re-render, threads, smoke run."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", type=Path, default=page)
    ap.add_argument("--render-only", action="store_true", help="re-render the page from its JSON")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help=smoke)
    return ap


def pct(values: list[float | None], digits: int = 1) -> str:
    """Shares as percent, mean ± std over seeds; "–" for no runs, "undefined" when none is defined."""
    if not values:
        return "–"
    m, s = mean_std([None if v is None else 100 * v for v in values])
    if m is None:
        return "undefined"
    return f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if s is not None else "")


def write_results(record: dict, json_path: Path, page: Path, render: Callable[..., str], *, img: bool = True) -> None:
    """Write a results page's JSON record and the page rendered from it (``render(record, img_folder)``)."""
    from unlearnkit.files import clean_json, write_text_atomic

    write_text_atomic(json_path, json.dumps(clean_json(record), indent=1))
    write_text_atomic(page, render(record, page.parent / "img") if img else render(record))
