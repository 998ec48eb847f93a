"""Aggregate benchmark records and render leaderboards.

Everything here reads only the records (``records.jsonl``) and the run's
``run.json``: a report can be rebuilt from a run folder at any time.

Per (dataset, model, scenario, method) cell and metric: mean ± std over seeds
and a 95% bootstrap interval of the mean (seeds resampled with replacement,
seeded). The headline is **Avg. Gap to Retrain** as the field reports it
(SalUn): the mean absolute difference to the retrained reference over
``forget_accuracy``, ``retain_accuracy``, ``test_accuracy`` and
``mia_accuracy``, in percentage points, per seed, then aggregated.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unlearnkit.metrics import METRICS

ARROWS = {"higher": "↑", "lower": "↓", "retrain": "≈R"}
TABLE_METRICS = ("forget_accuracy", "retain_accuracy", "test_accuracy", "mia_accuracy", "mia_efficacy")


def bootstrap_ci(values: Sequence[float], *, n_boot: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """95% percentile interval of the mean over ``values`` (None for fewer than 2 values)."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if v.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


def _stats(values: Sequence[Any]) -> dict[str, Any]:
    v = [float(x) for x in values if isinstance(x, (int, float)) and not isinstance(x, bool)]
    if not v:
        return {"mean": None, "std": None, "ci": None, "n": 0}
    arr = np.asarray(v)
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        "ci": bootstrap_ci(v),
        "n": int(arr.size),
    }


def summarize(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary per cell: metric statistics over its seeds, errors kept."""
    cells: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        cells[r["cell"]].append(r)
    out = []
    for cell, rows in cells.items():
        ok = [r for r in rows if r.get("status") == "ok"]
        first = rows[0]
        metric_names = sorted({k for r in ok for k, v in r.get("metrics", {}).items() if not isinstance(v, list)})
        per_class = [r["metrics"]["per_class_test_accuracy"] for r in ok if "per_class_test_accuracy" in r["metrics"]]
        out.append({
            "cell": cell, "dataset": first["dataset"], "model": first["model"], "scenario": first["scenario"],
            "method": first["method"], "seeds": sorted(r["seed"] for r in ok),
            "errors": [{"seed": r["seed"], "error": r.get("error")} for r in rows if r.get("status") != "ok"],
            "metrics": {m: _stats([r["metrics"].get(m) for r in ok]) for m in metric_names},
            "avg_gap": _stats([r.get("avg_gap") for r in ok]),
            "seconds": _stats([r.get("seconds") for r in ok]),
            "speedup": _stats([r.get("speedup") for r in ok]),
            "samples_seen": ok[0].get("samples_seen") if ok else None,
            "params": ok[0].get("params") if ok else None,
            "per_class_test_accuracy": _mean_lists(per_class),
            "original_facts": {k: _stats([r["original_facts"][k] for r in ok]) for k in ok[0]["original_facts"]}
            if ok and "original_facts" in ok[0] else None,
        })  # fmt: skip
    return out


def _mean_lists(lists: Sequence[Sequence[float | None]]) -> list[float | None] | None:
    """Element-wise mean over seeds, skipping undefined entries (None if there is nothing)."""
    if not lists:
        return None
    out: list[float | None] = []
    for i in range(len(lists[0])):
        vals = [float(x) for v in lists if (x := v[i]) is not None]
        out.append(float(np.mean(vals)) if vals else None)
    return out


def _fmt(stat: dict[str, Any], scale: float = 100.0, digits: int = 1, ci: bool = False) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    text = f"{scale * stat['mean']:.{digits}f} ± {scale * stat['std']:.{digits}f}"
    if ci and stat.get("ci"):
        lo, hi = stat["ci"]
        text += f" [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]"
    return text


def _touched(samples: dict[str, int] | None) -> str:
    if not samples:
        return "–"
    return ", ".join(f"{k} {v:,}" for k, v in sorted(samples.items()))


def leaderboard(
    summary: Sequence[dict[str, Any]], skipped: Sequence[dict[str, Any]] = ()
) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """Per (dataset, model, scenario): (title, header, rows sorted by Avg. Gap, notes)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for s in summary:
        groups[(s["dataset"], s["model"], s["scenario"])].append(s)
    tables = []
    for (dataset, model, scenario), cells in groups.items():
        header = ["method", "Avg. Gap ↓ (pts) [95% CI]"]
        header += [f"{m} {ARROWS[METRICS.get(m).direction]} (%)" for m in TABLE_METRICS if m in METRICS]
        header += ["seconds", "speed-up ↑", "data touched", "seeds"]

        def key(c: dict[str, Any]) -> tuple[int, float]:
            order = {"retrain": 0, "original": 2}.get(c["method"], 1)
            g = c["avg_gap"]["mean"]
            return (
                (0 if c["method"] == "retrain" else 1, g if g is not None else math.inf)
                if order != 2
                else (1, math.inf)
            )

        rows = []
        notes = []
        for c in sorted(cells, key=key):
            rows.append([
                c["method"] + (" (no unlearning)" if c["method"] == "original" else ""),
                _fmt(c["avg_gap"], scale=1.0, digits=2, ci=True),
                *(_fmt(c["metrics"].get(m, {})) for m in TABLE_METRICS if m in METRICS),
                _fmt(c["seconds"], scale=1.0, digits=2),
                "–" if c["method"] == "original" else _fmt(c["speedup"], scale=1.0, digits=1),
                _touched(c["samples_seen"]),
                str(len(c["seeds"])),
            ])  # fmt: skip
            for e in c["errors"]:
                notes.append(f"{c['method']} failed on seed {e['seed']}: {e['error']}")
            facts = c.get("original_facts")
            if c["method"] == "original" and facts:
                notes.append(
                    f"original: train accuracy {_fmt(facts['train_accuracy'])}%, test accuracy "
                    f"{_fmt(facts['test_accuracy_all'])}% (train–test gap {_fmt(facts['train_test_gap'])} points); "
                    f"its own Avg. Gap {_fmt(c['avg_gap'], scale=1.0, digits=2)} points is what doing nothing scores"
                )
        for sk in skipped:
            if sk["scenario"] == scenario:
                notes.append(f"{sk['method']} skipped: {sk['reason']}")
        tables.append((f"{dataset} / {model} / {scenario}", header, rows, notes))
    return tables


def markdown_report(run_dir: str | Path) -> str:
    """The leaderboard of a run folder as Markdown."""
    from unlearnkit.benchmark import read_records

    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    summary = summarize(read_records(run_dir))
    cfg = meta["config"]
    env = meta["environment"]
    lines = [
        f"# Benchmark: {cfg['name']}",
        "",
        cfg.get("description") or "",
        "",
        f"Rerun: `unlearnkit bench {meta['config_file']} --out RUN_DIR` then `unlearnkit report RUN_DIR`. "
        f"Config hash `{meta['config_hash'][:16]}`; seeds {cfg['seeds']}; unlearnkit {env['unlearnkit']}, "
        f"torch {env['torch']}, {env['cpu_count']} CPU cores ({env['platform']}).",
        "",
        "Avg. Gap = mean |method − retrain| over forget, retain and test accuracy and MIA accuracy, in points "
        "(lower is better; mean ± std over seeds, 95% bootstrap interval). ↑ higher is better, ↓ lower, "
        "≈R closest to the retrained model. Speed-up = retraining seconds / method seconds (same seed).",
        "",
    ]
    for title, header, rows, notes in leaderboard(summary, cfg.get("skipped", [])):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines += [""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)
