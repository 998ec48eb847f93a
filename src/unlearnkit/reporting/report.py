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

import functools
import itertools
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unlearnkit.evaluation.metrics import METRICS

CFR_NOTE = (
    "A negative CFR means more retained samples look like members after unlearning than before (the method "
    "trained on them again, e.g. fine-tuning); it is no damage, and 0 is the best a method can lose."
)
ARROWS = {"higher": "↑", "lower": "↓", "retrain": "≈R"}
#: the rows that are references, not methods, as the leaderboard names them
LABELS = {"original": "original (no unlearning)", "retrain_other": "retrain (other seed)"}
REFERENCE_ROWS = ("retrain", "retrain_other", "original")
TABLE_METRICS = ("forget_accuracy", "retain_accuracy", "test_accuracy", "mia_accuracy", "mia_efficacy")


def bootstrap_ci(values: Sequence[float], *, n_boot: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """95% percentile bootstrap interval of the mean over ``values`` (None for fewer than 2 values).

    :func:`scipy.stats.bootstrap` with ``method="percentile"``: its default (BCa)
    returns NaN on constant data, where the interval of a constant is the constant.
    """
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if v.size < 2:
        return None
    res = stats.bootstrap((v,), np.mean, n_resamples=n_boot, confidence_level=0.95, method="percentile",
                          rng=np.random.default_rng(seed))  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


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
        rocs = [r["metrics"]["mia_loss_roc"] for r in ok if r["metrics"].get("mia_loss_roc")]
        out.append({
            "cell": cell, "dataset": first["dataset"], "model": first["model"], "scenario": first["scenario"],
            "method": first["method"], "seeds": sorted(r["seed"] for r in ok),
            "errors": [{"seed": r["seed"], "error": r.get("error")} for r in rows if r.get("status") != "ok"],
            "metrics": {m: _stats([r["metrics"].get(m) for r in ok]) for m in metric_names},
            "avg_gap": _stats([r.get("avg_gap") for r in ok]),
            "seconds": _stats([r.get("seconds") for r in ok]),
            "speedup": _stats([r.get("speedup") for r in ok]),
            "forgetting_rate": _stats([(r.get("forgetting") or {}).get("fr") for r in ok]),
            "catastrophic_forgetting_rate": _stats([(r.get("forgetting") or {}).get("cfr") for r in ok]),
            "samples_seen": ok[0].get("samples_seen") if ok else None,
            "params": ok[0].get("params") if ok else None,
            "per_class_test_accuracy": _mean_lists(per_class),
            "mia_loss_roc": _mean_lists(rocs),
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


def _fmt_sig(stat: dict[str, Any], digits: int = 3) -> str:
    """Mean ± std with ``digits`` significant digits (seconds span 1 ms to hours)."""
    if not stat or stat.get("mean") is None:
        return "–"
    return f"{stat['mean']:.{digits}g} ± {stat['std']:.{max(1, digits - 1)}g}"


def _touched(samples: dict[str, int] | None) -> str:
    if not samples:
        return "–"
    return ", ".join(f"{k} {v:,}" for k, v in sorted(samples.items()))


def audit_units(audit: dict[str, Any] | None) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The units of an ``audit.json`` record by (dataset, model, scenario)."""
    if not audit:
        return {}
    out = {}
    for u in audit.get("units", []):
        dataset, model, scenario = u["unit"].split("/")
        out[(dataset, model, scenario)] = u
    return out


def _audit_cells(unit: dict[str, Any] | None, method: str) -> list[str]:
    """F, final score and U-LiRA accuracy of one leaderboard row; retrain shows the ceiling, original the floor."""
    if unit is None:
        return []
    row = {"retrain": unit["ceiling"], "original": unit["floor"]}.get(method) or unit["rows"].get(method)
    if row is None:
        return ["–", "–", "–"]
    ul = row.get("ulira")
    return [f"{row['forget_score']:.3f}", f"{row['final_score']:.3f}",
            "–" if not ul else f"{100 * ul['balanced_accuracy']:.1f}"]  # fmt: skip


def _audit_notes(unit: dict[str, Any]) -> list[str]:
    notes = [
        f"F, final and U-LiRA: audit over N = {unit['models']} models per population (protocol {unit['protocol']}, "
        f"{unit['forget_size']} forget samples); F = 1 is indistinguishable from retraining, and at this N no ε "
        f"above {unit['resolution']:g} can be told apart. The retrain row shows the ceiling (a second retrained "
        f"population: F {unit['ceiling']['forget_score']:.3f}), the original row the floor (doing nothing: F "
        f"{unit['floor']['forget_score']:.3f}); rows sort by F. U-LiRA accuracy: 50% is perfect unlearning."
    ]
    notes += [f"{m} not audited: its first unlearning run took {s:.1f} s, over the audit's max_seconds"
              for m, s in unit.get("left_out", {}).items()]  # fmt: skip
    return notes + list(unit.get("notes", []))


def _rank_key(c: dict[str, Any], unit: dict[str, Any] | None) -> tuple[int, float, float]:
    """Retrain first, original last; methods by F (higher first) where ``unit`` audited them, else by Avg. Gap."""
    order = {"retrain": -1, "retrain_other": 0, "original": 3}.get(c["method"], 1)
    g = c["avg_gap"]["mean"]
    gap_key = g if g is not None else math.inf
    if order == 1 and unit is not None:
        row = unit["rows"].get(c["method"])
        return (1, -row["forget_score"], gap_key) if row else (2, 0.0, gap_key)
    return (order, 0.0, gap_key if order == 1 else 0.0)


def ranking(summary: Sequence[dict[str, Any]], audit: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """Per unit ("dataset/model/scenario"), the methods (reference rows left out) in the leaderboard's order:
    by the audit's F where it covers them, else by Avg. Gap — the one ranking every page and the demo use."""
    audited = audit_units(audit)
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for s in summary:
        groups[(s["dataset"], s["model"], s["scenario"])].append(s)
    out = {}
    for k, cells in groups.items():
        unit = audited.get(k)
        ordered = sorted(cells, key=functools.partial(_rank_key, unit=unit))
        out["/".join(k)] = [c["method"] for c in ordered if c["method"] not in REFERENCE_ROWS]
    return out


def leaderboard(
    summary: Sequence[dict[str, Any]], skipped: Sequence[dict[str, Any]] = (), audit: dict[str, Any] | None = None
) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """Per (dataset, model, scenario): (title, header, rows, notes).

    Rows sort by Avg. Gap; when ``audit`` (an ``audit.json`` record) covers the unit, they gain the forget
    score F, the final score and U-LiRA accuracy and sort by F (retrain first, original last either way;
    methods the audit left out follow the audited ones, by Avg. Gap).
    """
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for s in summary:
        groups[(s["dataset"], s["model"], s["scenario"])].append(s)
    audited = audit_units(audit)
    tables = []
    for (dataset, model, scenario), cells in groups.items():
        unit = audited.get((dataset, model, scenario))
        header = ["method"] + (["F ↑", "final ↑", "U-LiRA acc ≈50 (%)"] if unit else [])
        header += ["Avg. Gap ↓ (pts) [95% CI]"]
        header += [f"{m} {ARROWS[METRICS.get(m).direction]} (%)" for m in TABLE_METRICS if m in METRICS]
        header += ["FR ↑ (%)", "CFR ↓ (%)", "seconds", "speed-up ↑", "data touched", "seeds"]

        rows = []
        notes = []
        for c in sorted(cells, key=functools.partial(_rank_key, unit=unit)):
            rows.append([
                LABELS.get(c["method"], c["method"]),
                *_audit_cells(unit, c["method"]),
                _fmt(c["avg_gap"], scale=1.0, digits=2, ci=True),
                *(_fmt(c["metrics"].get(m, {})) for m in TABLE_METRICS if m in METRICS),
                _fmt(c["forgetting_rate"]),
                _fmt(c["catastrophic_forgetting_rate"]),
                _fmt_sig(c["seconds"]),
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
        floor = next((c for c in cells if c["method"] == "retrain_other"), None)
        if floor is not None and floor["avg_gap"]["mean"] is not None:
            level = floor["avg_gap"]["mean"]
            within = [c["method"] for c in cells if c["method"] not in REFERENCE_ROWS
                      and c["avg_gap"]["mean"] is not None and c["avg_gap"]["mean"] <= level]  # fmt: skip
            notes.append(
                f"retrain (other seed): a second retraining with another initialisation and data order, scored like "
                f"a method — its Avg. Gap {level:.2f} points is the noise floor, what retraining differs from "
                "retraining; " + (f"{', '.join(within)} at or below it: indistinguishable from retraining on these "
                                  "metrics" if within else "no method is at or below it")
            )
        for sk in skipped:
            if sk["scenario"] == scenario:
                notes.append(f"{sk['method']} skipped: {sk['reason']}")
        if unit is not None:
            notes += _audit_notes(unit)
        tables.append((f"{dataset} / {model} / {scenario}", header, rows, notes))
    return tables


# -- evidence over model populations (audit.json) ---------------------------------

def read_audit(run_dir: str | Path) -> dict[str, Any] | None:
    """The folder's ``audit.json`` (written by ``unlearnkit audit`` or by ``bench`` with an ``[audit]`` table)."""
    path = Path(run_dir) / "audit.json"
    if not path.is_file():
        return None
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def _f(v: float | None, digits: int = 3, scale: float = 1.0) -> str:
    return "–" if v is None else f"{scale * v:.{digits}f}"


def evidence_rows(unit: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, scores) of an audited unit: the ceiling, the methods by F (highest first), the floor."""
    methods = sorted(unit["rows"].items(), key=lambda kv: -kv[1]["forget_score"])
    return [("ceiling (2nd retrained population)", unit["ceiling"]), *methods,
            ("floor (originals: doing nothing)", unit["floor"])]  # fmt: skip


def evidence_table(unit: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of an audited unit's evidence: F with its interval, final, U-LiRA, RMIA, KLoM, Avg. Gap."""
    head = ["row", "F ↑ [95% CI]", "final ↑", "U-LiRA acc ≈0.5", "U-LiRA AUC ≈0.5", "U-LiRA TPR@1%",
            "RMIA AUC (shipped)", "KLoM forget mean / p50 / p95 / p99 ↓", "KLoM retain mean ↓", "KLoM test mean ↓",
            "Avg. Gap ↓ (pts)", "seconds"]  # fmt: skip
    rows = []
    for label, r in evidence_rows(unit):
        ul = r.get("ulira") or {}
        kf = r["klom"]["forget"]
        lo, hi = r["forget_score_ci"]
        secs = unit.get("retrain_seconds") if label.startswith("ceiling") else r.get("seconds")
        rows.append([label, f"{r['forget_score']:.3f} [{lo:.3f}, {hi:.3f}]", _f(r["final_score"]),
                     _f(ul.get("balanced_accuracy")), _f(ul.get("auc")), _f((ul.get("tpr_at_fpr") or {}).get("0.01")),
                     _f(r["rmia"].get("auc")),
                     f"{kf['mean']:.2f} / {kf['median']:.2f} / {kf['p95']:.2f} / {kf['p99']:.2f}",
                     _f(r["klom"]["retain"]["mean"], 2), _f(r["klom"]["test"]["mean"], 2), _f(r.get("avg_gap"), 2),
                     _f(secs, 2)])  # fmt: skip
    return head, rows


def epsilon_buckets(unit: dict[str, Any]) -> tuple[list[str], list[tuple[str, list[float | None]]]]:
    """F's ε buckets (width 0.5 up to the resolution, then "≥ resolution", worth 0) and each row's share in them."""
    top = float(unit["resolution"])
    edges = np.arange(0.0, top + 0.25, 0.5)
    labels = [*(f"{a:g}–{b:g}" for a, b in itertools.pairwise(edges)), f"≥{top:g}"]
    k = len(edges) - 1
    series: list[tuple[str, list[float | None]]] = []
    for label, r in evidence_rows(unit):
        hist = np.asarray(r["epsilon_histogram"], dtype=float)  # 100 bins of width 0.5 over [0, 50]
        shares: list[float | None] = [*(hist[:k] / hist.sum()).tolist(), float(hist[k:].sum() / hist.sum())]
        series.append((label.split(" (")[0], shares))
    return labels, series


def drawn_rows(unit: dict[str, Any], most: int = 4) -> list[str]:
    """The methods a figure draws beside the ceiling and the floor: the best by F, then the best by Avg. Gap."""
    rows = unit["rows"]
    by_f = sorted(rows, key=lambda m: -rows[m]["forget_score"])
    by_gap = sorted(rows, key=lambda m: rows[m].get("avg_gap") if rows[m].get("avg_gap") is not None else math.inf)
    picked: list[str] = []
    for m in [x for pair in zip(by_f, by_gap, strict=True) for x in pair]:
        if m not in picked and len(picked) < most:
            picked.append(m)
    return picked


def evidence_figures(unit: dict[str, Any], title: str, *, most: int = 4) -> list[tuple[Any, str]]:
    """The ε-bucket bars and the U-LiRA ROC of an audited unit, each with its caption (matplotlib figures).

    They draw the ceiling, the floor and at most ``most`` methods (:func:`drawn_rows`), so each bar and curve
    can be read; every method's numbers are in the table.
    """
    from unlearnkit.reporting import plots

    keep = set(drawn_rows(unit, most))
    labels, series = epsilon_buckets(unit)
    series = [(n, v) for n, v in series if n in keep or n in ("ceiling", "floor")]
    bars = plots.grouped_bars(labels, series, xlabel="per-example ε (buckets of F: worth 1, 1/2, 1/4, …; the last 0)",
                              ylabel="forget samples %", title=f"per-example ε, {title}",
                              ids=[f"eps-{i}" for i in range(len(labels))])  # fmt: skip
    curves = [({"ceiling": "retrain", "floor": "original"}.get(label.split(" (")[0], label.split(" (")[0]),
               r["ulira"]["roc"]["tpr"]) for label, r in evidence_rows(unit)
              if r.get("ulira") and (label in keep or label.startswith(("ceiling", "floor")))]  # fmt: skip
    grid: list[float] = next((r["ulira"]["roc"]["fpr"] for _, r in evidence_rows(unit) if r.get("ulira")), [])
    roc = plots.roc_curves(grid, curves, title=f"U-LiRA ROC, {title}")
    shown = ", ".join(sorted(keep))
    return [
        (bars, f"Share of forget samples per ε bucket (N = {unit['models']} models per population): the further "
               "right, the better an attacker tells the method's models from retrained ones on that sample. The "
               f"ceiling is what perfect unlearning scores at this N. Drawn: the ceiling, the floor and {shown} "
               "(the best by F and by Avg. Gap); every method is in the table."),
        (roc, "U-LiRA over (sample, model) pairs: the closer to the diagonal, the better; the thick curve is the "
              "ceiling (a retrained population against another), the dashed one the floor (the originals). "
              f"Drawn: {shown}."),
    ]  # fmt: skip


def evidence_markdown(audit: dict[str, Any]) -> list[str]:
    """The evidence section (one table per audited unit) as Markdown lines."""
    lines = ["## Evidence over model populations", "",
             "Per-example tests over N models per population (`unlearnkit audit`; definitions in docs/evidence.md). "
             "Read each method between the ceiling (a second retrained population: perfect unlearning at this N) "
             "and the floor (the originals: doing nothing).", ""]  # fmt: skip
    for u in audit.get("units", []):
        head, rows = evidence_table(u)
        lines += [f"### {u['unit'].replace('/', ' / ')}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines += [""] + [f"- {n}" for n in _audit_notes(u)] + [""]
    return lines


def markdown_report(run_dir: str | Path) -> str:
    """The leaderboard of a run folder as Markdown (and its evidence section when the folder holds an audit)."""
    from unlearnkit.reporting.records import completeness, read_records

    run_dir = Path(run_dir)
    audit = read_audit(run_dir)
    if not (run_dir / "run.json").is_file() and audit is not None:  # an `unlearnkit audit` folder
        cfg = audit["config"]
        return "\n".join([f"# Audit: {cfg['name']}", "", cfg.get("description") or "", "",
                          f"Rerun: `unlearnkit audit {audit.get('config_file') or cfg['name']} --out DIR "
                          f"--models {audit['audit']['models']}`; {audit['seconds']:.0f} s.", "",
                          *evidence_markdown(audit)])  # fmt: skip
    meta = json.loads((run_dir / "run.json").read_text())
    records = read_records(run_dir)
    summary = summarize(records)
    cfg = meta["config"]
    env = meta["environment"]
    short = completeness(run_dir, records)
    lines = [
        f"# Benchmark: {cfg['name']}",
        "",
        *([f"**{short}**", ""] if short else []),
        cfg.get("description") or "",
        "",
        f"Rerun: `unlearnkit bench {meta['config_file']}"
        + "".join(f" --settings {f}" for f in meta.get("settings_files", []))
        + " --out RUN_DIR` then `unlearnkit report RUN_DIR`. "
        f"Config hash `{meta['config_hash'][:16]}`; seeds {cfg['seeds']}; unlearnkit {env['unlearnkit']}, "
        f"torch {env['torch']}, {env['cpu_count']} CPU cores ({env['platform']}).",
        "",
        "Avg. Gap = mean |method − retrain| over forget, retain and test accuracy and MIA accuracy, in points "
        "(lower is better; mean ± std over seeds, 95% bootstrap interval). ↑ higher is better, ↓ lower, "
        "≈R closest to the retrained model. Speed-up = retraining seconds / method seconds (same seed). "
        "FR / CFR: 003's forgetting rate on the forget set and catastrophic forgetting rate on retained samples, "
        "with a loss-threshold membership oracle fitted on the original (retain vs holdout samples); "
        "– where undefined (no forget sample looked like a member before unlearning). " + CFR_NOTE,
        "",
    ]
    for title, header, rows, notes in leaderboard(summary, cfg.get("skipped", []), audit):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines += [""] + [f"- {n}" for n in notes] + [""]
    if audit is not None:
        lines += evidence_markdown(audit)
    return "\n".join(lines)


# -- HTML ---------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
color:#222;padding:0 1rem}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:1rem 0;font-size:.85rem}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:right;white-space:nowrap}
th{background:#f3f3f3;white-space:normal;min-width:4.5rem;vertical-align:bottom}
td:first-child,th:first-child{text-align:left}
tr.ref td{background:#eef6ee}tr.orig td{background:#f8f0f0}
.notes{font-size:.85rem;color:#444}figure{display:inline-block;margin:0 1.5rem 1rem 0;vertical-align:top}
figure svg{max-width:100%;height:auto}
figcaption{font-size:.85rem;color:#444;max-width:520px}code{background:#f3f3f3;padding:0 .2rem}
"""


def _esc(text: Any) -> str:
    import html

    return html.escape(str(text))


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both coordinates (lower is better on each)."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any((x2 <= x and y2 <= y) and (x2 < x or y2 < y) for j, (x2, y2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return front


def chart_data(cells: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The numbers each chart of one leaderboard draws, taken from the cells' summaries (means over seeds)."""
    points = [
        (c["method"], c["seconds"]["mean"], c["avg_gap"]["mean"])
        for c in cells
        if c["method"] not in REFERENCE_ROWS and c["seconds"]["mean"] and c["avg_gap"]["mean"] is not None
    ]
    return {
        "gap_vs_time": points,
        "front": pareto_front([(p[1], p[2]) for p in points]),
        "per_class": [(c["method"], c["per_class_test_accuracy"]) for c in cells if c.get("per_class_test_accuracy")],
        "roc": [(c["method"], c["mia_loss_roc"]) for c in cells if c.get("mia_loss_roc")],
    }


def charts(cells: Sequence[dict[str, Any]], title: str) -> list[tuple[str, str]]:
    """The leaderboard's three charts as inline SVG, each with its caption."""
    from unlearnkit.evaluation.metrics import ROC_FPR_GRID
    from unlearnkit.reporting import plots

    data = chart_data(cells)
    figures = [
        (plots.gap_vs_time(data["gap_vs_time"], data["front"], title=f"gap vs time, {title}"),
         "Avg. Gap vs seconds per method (mean over seeds); ringed points form the Pareto front (no method is "
         "both faster and closer to retraining)."),
        (plots.per_class_bars(data["per_class"], title=f"per-class test accuracy, {title}"),
         "Test accuracy per class (mean over seeds)."),
        (plots.roc_curves(ROC_FPR_GRID, data["roc"], title=f"MIA ROC, {title}"),
         "ROC of the loss-threshold membership attack on the forget set vs never-seen samples of its classes "
         "(TPR averaged over seeds at each FPR); the closer a method's curve to retraining's (thick grey-black), "
         "the better; the original is dashed."),
    ]  # fmt: skip
    return [(plots.svg(fig), caption) for fig, caption in figures]


def _table_html(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cls(first: str) -> str:
        if first == "retrain" or first.startswith("ceiling"):
            return ' class="ref"'
        return ' class="orig"' if first.startswith(("original", "floor")) else ""

    return ('<div class="scroll"><table><thead><tr>' + "".join(f"<th>{_esc(h)}</th>" for h in header)
            + "</tr></thead><tbody>"
            + "".join(f"<tr{cls(r[0])}>" + "".join(f"<td>{_esc(v)}</td>" for v in r) + "</tr>" for r in rows)
            + "</tbody></table></div>")  # fmt: skip


def evidence_html(audit: dict[str, Any]) -> list[str]:
    """The evidence section as HTML: per audited unit its table, ε buckets, U-LiRA ROC and notes."""
    from unlearnkit.reporting import plots

    body = ["<h2>Evidence over model populations</h2>",
            "<p>Per-example tests over N models per population (<code>unlearnkit audit</code>; definitions in "
            "docs/evidence.md). Read each method between the ceiling (a second retrained population: perfect "
            "unlearning at this N) and the floor (the originals: doing nothing).</p>"]  # fmt: skip
    for u in audit.get("units", []):
        title = u["unit"].replace("/", " / ")
        head, rows = evidence_table(u)
        body += [f"<h3>{_esc(title)}</h3>", _table_html(head, rows),
                 '<ul class="notes">' + "".join(f"<li>{_esc(n)}</li>" for n in _audit_notes(u)) + "</ul>"]  # fmt: skip
        for fig, caption in evidence_figures(u, title):
            body.append(f"<figure>{plots.svg(fig)}<figcaption>{_esc(caption)}</figcaption></figure>")
    return body


def _page(title: str, body: Sequence[str]) -> str:
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
            f"{_esc(title)}</title><style>{_CSS}</style></head><body>" + "\n".join(body)
            + "</body></html>\n")  # fmt: skip


def html_report(run_dir: str | Path) -> str:
    """The leaderboard of a run folder as one self-contained HTML page (inline CSS and SVG, no scripts)."""
    from unlearnkit.reporting.records import completeness, read_records

    run_dir = Path(run_dir)
    audit = read_audit(run_dir)
    if not (run_dir / "run.json").is_file() and audit is not None:  # an `unlearnkit audit` folder
        cfg = audit["config"]
        return _page(f"{cfg['name']} — unlearnkit audit", [
            f"<h1>Audit: {_esc(cfg['name'])}</h1>", f"<p>{_esc(cfg.get('description') or '')}</p>",
            *evidence_html(audit)])  # fmt: skip
    meta = json.loads((run_dir / "run.json").read_text())
    records = read_records(run_dir)
    summary = summarize(records)
    cfg, env = meta["config"], meta["environment"]
    short = completeness(run_dir, records)
    body = [
        f"<h1>Benchmark: {_esc(cfg['name'])}</h1>",
        *([f'<p class="warn"><strong>{_esc(short)}</strong></p>'] if short else []),
        f"<p>{_esc(cfg.get('description') or '')}</p>",
        "<p>Avg. Gap = mean |method − retrain| over forget, retain and test accuracy and MIA accuracy, in points "
        "(lower is better; mean ± std over seeds, 95% bootstrap interval). ↑ higher is better, ↓ lower, ≈R closest "
        "to the retrained model. Speed-up = retraining seconds / method seconds. FR / CFR: forgetting rate and "
        f"catastrophic forgetting rate (Forsaken paper) by a loss-threshold membership oracle. {_esc(CFR_NOTE)}</p>",
    ]
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in summary:
        by_group[f"{c['dataset']} / {c['model']} / {c['scenario']}"].append(c)
    for title, header, rows, notes in leaderboard(summary, cfg.get("skipped", []), audit):
        body.append(f"<h2>{_esc(title)}</h2>")
        body.append(_table_html(header, rows))
        if notes:
            body.append('<ul class="notes">' + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>")
        for chart, caption in charts(by_group[title], title):
            body.append(f"<figure>{chart}<figcaption>{_esc(caption)}</figcaption></figure>")
    if audit is not None:
        body += evidence_html(audit)
    body.append("<h2>Environment and how to rerun</h2>")
    body.append(f"<p><code>unlearnkit bench {_esc(meta['config_file'])} --out RUN_DIR</code> then "
                f"<code>unlearnkit report RUN_DIR</code>. Config hash <code>{_esc(meta['config_hash'])}</code>; "
                f"seeds {_esc(cfg['seeds'])}; started {_esc(meta['started'])}.</p>")  # fmt: skip
    body.append("<table><tbody>" + "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in env.items())
                + "</tbody></table>")  # fmt: skip
    return _page(f"{cfg['name']} — unlearnkit benchmark", body)


def write_report(run_dir: str | Path, *, out: str | Path | None = None) -> list[Path]:
    """Write ``report.md``, ``report.html`` and ``summary.json`` (every metric's mean, std and 95% interval per
    cell, for programs) atomically for a run folder; returns their paths."""
    from unlearnkit.files import write_json_atomic, write_text_atomic
    from unlearnkit.reporting.records import read_records

    folder = Path(out) if out is not None else Path(run_dir)
    md, page, js = folder / "report.md", folder / "report.html", folder / "summary.json"
    write_text_atomic(md, markdown_report(run_dir))
    write_text_atomic(page, html_report(run_dir))
    if not (Path(run_dir) / "run.json").is_file():  # an audit folder: audit.json is its machine-readable record
        return [md, page]
    write_json_atomic(js, {"cells": summarize(read_records(run_dir))})
    return [md, page, js]
