"""How each method's cost and quality grow with its work: docs/results/scaling.md (issue 15).

    python bench/scaling.py                  # resumable (runs/scaling/*); writes docs/results/scaling.md (+ .json)
    python bench/scaling.py --render-only    # re-render from docs/results/scaling.json

MNIST, LeNet, the ``mnist_class`` recipe (4 epochs, lr 0.02, batch 128), every
registered method that supports the request at its defaults, against
retraining, along three axes — one benchmark file per point, written to
``runs/scaling/configs/`` and run with ``unlearnkit bench``'s machinery
(cached originals and references; a killed run resumes):

* **random forget set size**: 0.1%, 1%, 5% and 10% of a 20,000-image training set;
* **forgotten classes**: 1, 2 and 5 classes (3; 3, 5; 3, 5, 7, 1, 9) of the same set;
* **training set size**: 2,000, 10,000 and 54,000 images, forgetting class 3.

Seconds are per unlearning call (retraining's beside them); Avg. Gap as on the
leaderboard. Methods that need a model prepared at training time (SISA, SMU)
or a feature request are skipped, as the benchmark skips them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from _results import results_parser
from unlearnkit.env import environment
from unlearnkit.files import clean_json, write_text_atomic
from unlearnkit.reporting.records import read_records
from unlearnkit.reporting.report import REFERENCE_ROWS, summarize
from unlearnkit.reporting.tables import markdown_table
from unlearnkit.running.benchconfig import load_config
from unlearnkit.running.benchmark import run_benchmark

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "results" / "scaling.md"
COMMAND = "python bench/scaling.py"
RUNS = ROOT / "runs" / "scaling"
CLASSES = (3, 5, 7, 1, 9)
#: axis -> [(label, train_size, scenario name, scenario options)]
AXES: dict[str, list[tuple[str, int, str, dict[str, Any]]]] = {
    "random forget set (share of 20,000)": [(f"{100 * f:g}%", 20000, "random", {"fraction": f})
                                            for f in (0.001, 0.01, 0.05, 0.10)],
    "forgotten classes": [(str(k), 20000, "class", {"forget_classes": list(CLASSES[:k])}) for k in (1, 2, 5)],
    "training set size (forget class 3)": [(f"{n:,}", n, "class", {"forget_classes": [3]})
                                           for n in (2000, 10000, 54000)],
}
TEMPLATE = """name = "{name}"
description = "scaling: {axis}, {label}"
seeds = {seeds}
methods = "all"

[data]
datasets = ["mnist"]
holdout_fraction = 0.1
train_size = {train_size}

[[models]]
name = "lenet"

[train]
epochs = 4
lr = 0.02
batch_size = 128

[[scenarios]]
name = "{scenario}"
options = {options}

[executor]
name = "ray"
cell_time_limit = 1800
"""


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def toml_inline(d: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in d.items()) + " }"


def point_name(axis_i: int, j: int) -> str:
    return f"scaling_{axis_i}_{j}"


def main() -> None:
    ap = results_parser(__doc__, PAGE, "one seed, the first point of each axis")
    args = ap.parse_args()
    json_path = args.out.with_suffix(".json")
    if args.render_only:
        write_text_atomic(args.out, render(json.loads(json_path.read_text())))
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    (RUNS / "configs").mkdir(parents=True, exist_ok=True)
    walls_file = RUNS / "walls.json"
    walls: dict[str, float] = json.loads(walls_file.read_text()) if walls_file.exists() else {}
    record: dict[str, Any] = {"env": environment(), "seeds": seeds, "axes": {}}
    for i, (axis, points) in enumerate(AXES.items()):
        record["axes"][axis] = []
        for j, (label, n, scen, opts) in enumerate(points[:1] if args.smoke else points):
            name = point_name(i, j)
            path = RUNS / "configs" / f"{name}.toml"
            path.write_text(TEMPLATE.format(name=name, axis=axis, label=label, seeds=seeds, train_size=n,
                                            scenario=scen, options=toml_inline(opts)))  # fmt: skip
            say(f"{axis}: {label}")
            start = time.perf_counter()
            try:
                run_benchmark(load_config(path), RUNS / name, resume=True, cache_dir=RUNS / "cache",
                              log=lambda m: print(m, file=sys.stderr, flush=True))  # fmt: skip
            finally:
                walls[name] = walls.get(name, 0.0) + time.perf_counter() - start
                write_text_atomic(walls_file, json.dumps(walls, indent=1))
            cells = summarize(read_records(RUNS / name))
            record["axes"][axis].append({"label": label, "cells": {c["method"]: {
                "seconds": c["seconds"]["mean"], "avg_gap": c["avg_gap"]["mean"],
                "errors": len(c["errors"])} for c in cells}})  # fmt: skip
    record["total_seconds"] = sum(walls.values())
    write_text_atomic(json_path, json.dumps(clean_json(record), indent=1))
    write_text_atomic(args.out, render(record))
    say(f"wrote {args.out}")


def _cell(c: dict[str, Any] | None) -> str:
    if c is None:
        return "–"
    if c.get("errors") and c.get("seconds") is None:
        return "failed"
    s = "–" if c["seconds"] is None else f"{c['seconds']:.3g} s"
    g = "–" if c["avg_gap"] is None else f"{c['avg_gap']:.2f}"
    return f"{s} / {g}"


def render(record: dict[str, Any]) -> str:
    out = [
        "# Scaling: seconds and Avg. Gap as the work grows (MNIST, LeNet)",
        "",
        f"Generated by `{COMMAND}` (seeds {record['seeds']}; {record['total_seconds'] / 60:.0f} min on "
        f"{record['env'].get('cpu_count', '?')} CPU cores, resumable from `runs/scaling`). What each axis varies: "
        "the docstring of `bench/scaling.py`. Each cell: seconds per call / Avg. Gap to retraining in points "
        "(means over seeds); `retrain` gives retraining's own seconds.",
        "",
    ]
    for axis, points in record["axes"].items():
        methods = sorted({m for p in points for m in p["cells"]} - {"original"},
                         key=lambda m: (m not in REFERENCE_ROWS, m))  # fmt: skip
        head = ["method", *(p["label"] for p in points)]
        rows = [[f"`{m}`", *(_cell(p["cells"].get(m)) for p in points)] for m in methods]
        rows.append(["`original` (Avg. Gap of doing nothing)",
                     *(_cell({**p["cells"]["original"], "seconds": None}) if "original" in p["cells"] else "–"
                       for p in points)])  # fmt: skip
        out += [f"## {axis}", "", markdown_table(head, rows), ""]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    main()
