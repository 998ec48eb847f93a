"""Refill the demo's methods (``DEMO`` in src/unlearnkit/running/experiment.py) from the leaderboard's record.

Run after ``python bench/leaderboard.py`` changes a ranking (tests/test_demo.py fails until the demo follows):
``python bench/demo_choices.py``. Per demo scenario it takes the top three of that benchmark's ranking in
``docs/results/leaderboard.json`` — the tuned table's where tuned, else the defaults table's; by F where audited,
else by Avg. Gap — with the settings they ran with there, and rewrites the ``DEMO`` literal in place.
"""

from __future__ import annotations

import json
import pprint
from pathlib import Path

from unlearnkit.files import write_text_atomic
from unlearnkit.running.experiment import DEMO

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "unlearnkit" / "running" / "experiment.py"
RECORD = ROOT / "docs" / "results" / "leaderboard.json"
HEAD, TAIL = "DEMO: tuple[tuple[str, str, dict[str, dict[str, Any]]], ...] = (\n", ")  # fmt: skip\n"


def literal() -> str:
    benchmarks = json.loads(RECORD.read_text())["benchmarks"]
    parts = []
    for bench, title, _ in DEMO:
        block = benchmarks[bench].get("tuned") or benchmarks[bench]["defaults"]
        methods = {m: block["rows"][m]["params"] or {} for m in block["ranking"][:3]}
        parts.append(f"    ({bench!r}, {title!r},\n     {pprint.pformat(methods, sort_dicts=False, width=110)}),\n")
    return HEAD + "".join(parts) + TAIL


def main() -> None:
    text = SOURCE.read_text()
    start = text.index(HEAD)
    end = text.index(TAIL, start) + len(TAIL)
    write_text_atomic(SOURCE, text[:start] + literal() + text[end:])
    for bench, _, methods in DEMO:
        print(f"{bench}: was {', '.join(methods)}")
    print(f"rewrote DEMO in {SOURCE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
