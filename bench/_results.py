"""Helpers shared by the results scripts in bench/ (each writes one docs/results page)."""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
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


def unwind_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit, so a killed run unwinds through its ``finally`` blocks (its time is kept)."""
    import signal
    import sys

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


class Walls:
    """Wall seconds per key, kept in a JSON file across the sessions that contribute to a resumable page.

    :meth:`timed` adds a block's time and saves the file — also when the block is interrupted, so a run resumed
    over several sessions states its whole compute.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.seconds: dict[str, float] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, key: str) -> float | None:
        return self.seconds.get(key)

    def total(self, keys: Iterable[str] | None = None) -> float:
        return sum(self.seconds.get(k, 0.0) for k in (self.seconds if keys is None else keys))

    @contextlib.contextmanager
    def timed(self, key: str) -> Iterator[None]:
        from unlearnkit.files import write_json_atomic

        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - start
            write_json_atomic(self.path, self.seconds)
