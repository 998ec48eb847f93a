"""How each method's cost and quality grow with its work: docs/results/scaling.md (issue 15).

    python bench/scaling.py                  # resumable (docs/results/scaling/*); writes docs/results/scaling.md
    python bench/scaling.py --render-only    # re-render from docs/results/scaling.json
    python bench/scaling.py --smoke          # one seed, each axis's first point, under runs/scaling-smoke

MNIST, LeNet, the ``mnist_class`` recipe (4 epochs, lr 0.02, batch 128), every
registered method that supports the request at its defaults, against
retraining, along three axes — one benchmark file per point, written to
``docs/results/scaling/configs/`` and run with ``unlearnkit bench``'s machinery. The points' records
(``records.jsonl``, ``run.json``) and wall times are committed in ``docs/results/scaling/``, so a rerun in a
fresh checkout resumes from them (the whole page takes more than one working session on 2 cores); the models
are cached under ``runs/scaling-cache`` and rebuilt only for what is left to run. The page is rewritten after
every point, naming the points still to run.

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

from _results import Walls, results_parser, unwind_on_sigterm, write_results
from unlearnkit.env import environment
from unlearnkit.files import write_bytes_atomic, write_text_atomic
from unlearnkit.reporting.records import read_records
from unlearnkit.reporting.report import REFERENCE_ROWS, summarize
from unlearnkit.reporting.tables import markdown_table
from unlearnkit.running.benchconfig import load_config
from unlearnkit.running.benchmark import run_benchmark

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "results" / "scaling.md"
COMMAND = "python bench/scaling.py"
RUNS = ROOT / "docs" / "results" / "scaling"
CACHE = ROOT / "runs" / "scaling-cache"
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
    ap = results_parser(__doc__, PAGE, "one seed, the first point of each axis (records under runs/scaling-smoke)")
    args = ap.parse_args()
    runs = ROOT / "runs" / "scaling-smoke" if args.smoke else RUNS
    if args.smoke and args.out == PAGE:
        args.out = runs / "scaling.md"
    json_path = args.out.with_suffix(".json")
    if args.render_only:
        write_text_atomic(args.out, render(json.loads(json_path.read_text()), args.out.parent / "img"))
        return
    unwind_on_sigterm()  # a killed run unwinds: its time is kept
    seeds = [int(s) for s in ("0" if args.smoke else args.seeds).split(",")]
    (runs / "configs").mkdir(parents=True, exist_ok=True)
    walls = Walls(runs / "walls.json")
    done_file = runs / "done.json"  # the points whose every row is recorded
    done: list[str] = json.loads(done_file.read_text()) if done_file.exists() else []
    plan = [(axis, [(point_name(i, j), *pt) for j, pt in enumerate(points[:1] if args.smoke else points)])
            for i, (axis, points) in enumerate(AXES.items())]  # fmt: skip
    for axis, points in plan:
        for name, label, n, scen, opts in points:
            path = runs / "configs" / f"{name}.toml"
            write_text_atomic(path, TEMPLATE.format(name=name, axis=axis, label=label, seeds=seeds, train_size=n,
                                                    scenario=scen, options=toml_inline(opts)))  # fmt: skip
            say(f"{axis}: {label}")
            with walls.timed(name):
                run_benchmark(load_config(path), runs / name, resume=True, cache_dir=CACHE,
                              log=lambda m: print(m, file=sys.stderr, flush=True))  # fmt: skip
            if name not in done:
                write_text_atomic(done_file, json.dumps([*done, name]))
                done.append(name)
            # the page after every point: a run stopped later leaves a page of what is done, and says what is not
            write_results(assemble(plan, runs, walls.seconds, done, seeds), json_path, args.out, render)
    say(f"wrote {args.out}")


def assemble(plan: list[tuple[str, list[tuple[Any, ...]]]], runs: Path, walls: dict[str, float], done: list[str],
             seeds: list[int]) -> dict[str, Any]:  # fmt: skip
    """The page's record from the points' run folders: per axis, each finished point's cells; the pending ones."""
    record: dict[str, Any] = {"env": environment(), "seeds": seeds, "axes": {}, "pending": []}
    for axis, points in plan:
        record["axes"][axis] = []
        for name, label, *_ in points:
            if name not in done:
                record["pending"].append(f"{axis}: {label}")
                continue
            cells = summarize(read_records(runs / name))
            record["axes"][axis].append({"label": label, "seconds": walls.get(name), "cells": {
                c["method"]: {"seconds": c["seconds"]["mean"], "avg_gap": c["avg_gap"]["mean"],
                              "seeds": c["seeds"], "errors": len(c["errors"])} for c in cells}})  # fmt: skip
    record["total_seconds"] = sum(walls.values())
    return record


def _cell(c: dict[str, Any] | None) -> str:
    if c is None:
        return "–"
    if c.get("errors") and c.get("seconds") is None:
        return f"failed ({c['errors']} of {c['errors'] + len(c.get('seeds') or [])} seeds)"
    s = "–" if c["seconds"] is None else f"{c['seconds']:.3g} s"
    g = "–" if c["avg_gap"] is None else f"{c['avg_gap']:.2f}"
    failed = f" ({c['errors']} seed(s) failed)" if c.get("errors") else ""
    return f"{s} / {g}{failed}"


def growth(points: list[dict[str, Any]], method: str) -> str:
    """Seconds at the axis's last point over seconds at its first: how the method's cost grows with its work."""
    ends = [points[k]["cells"].get(method, {}) for k in (0, -1)]
    if any(e.get("errors") for e in ends):  # a mean over fewer seeds at one end is not comparable
        return "– (failed seeds)"
    first, last = (e.get("seconds") for e in ends)
    return "–" if len(points) < 2 or not first or not last else f"{last / first:.3g}x"


def figure(record: dict[str, Any], img: Path) -> str:
    """One panel per axis: log10 seconds per call of every method and of retraining, point by point."""
    import numpy as np

    from unlearnkit.reporting import plots

    panels = {}
    for axis, points in record["axes"].items():
        names = sorted({m for p in points for m in p["cells"]} - {"original", "retrain_other"})
        secs = {m: [p["cells"].get(m, {}).get("seconds") for p in points] for m in names}
        panels[axis.split(" (")[0]] = {m: ([np.log10(v) if v else np.nan for v in vs], [0.0] * len(vs))
                                       for m, vs in secs.items()}  # fmt: skip
    fig = plots.curve_panels(panels, xlabel="point (as in the table)", ylabel="log10 seconds per call",
                             title="Seconds per call as the work grows")  # fmt: skip
    img.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(img / "scaling_seconds.png", plots.png(fig))
    return "![seconds per call](img/scaling_seconds.png)"


def render(record: dict[str, Any], img: Path | None = None) -> str:
    when = "so far" if record.get("pending") else "in all"
    out = [
        "# Scaling: seconds and Avg. Gap as the work grows (MNIST, LeNet)",
        "",
        f"Generated by `{COMMAND}` (seeds {record['seeds']}; {record['total_seconds'] / 60:.0f} min on "
        f"{record['env'].get('cpu_count', '?')} CPU cores {when}, summed over the sessions that contributed; "
        "resumable from the records committed in `docs/results/scaling/`). What each axis varies: "
        "the docstring of `bench/scaling.py`. Each cell: seconds per call / Avg. Gap to retraining in points "
        "(means over seeds); `retrain` gives retraining's own seconds, `retrain_other` (a second retraining with "
        "another seed) the noise floor of Avg. Gap. The last column: seconds at the axis's last point over its "
        "first — how the cost grows with the work, beside retraining's.",
        "",
    ]
    if record.get("pending"):
        out += ["**Not run yet** (the command continues with them): "
                + "; ".join(record["pending"]) + ".", ""]  # fmt: skip
    for axis, points in record["axes"].items():
        if not points:
            continue
        methods = sorted({m for p in points for m in p["cells"]} - {"original"},
                         key=lambda m: (m not in REFERENCE_ROWS, m))  # fmt: skip
        head = ["method", *(p["label"] for p in points), "seconds, last / first"]
        rows = [[f"`{m}`", *(_cell(p["cells"].get(m)) for p in points), growth(points, m)] for m in methods]
        rows.append(["`original` (Avg. Gap of doing nothing)",
                     *(_cell({**p["cells"]["original"], "seconds": None}) if "original" in p["cells"] else "–"
                       for p in points), "–"])  # fmt: skip
        walls = " + ".join(f"{p['seconds'] / 60:.0f}" for p in points if p.get("seconds") is not None)
        out += [f"## {axis}", "", f"Wall time per point (min): {walls}.", "", markdown_table(head, rows), ""]
    if img is not None and any(record["axes"].values()):
        out += [figure(record, img), ""]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    main()
