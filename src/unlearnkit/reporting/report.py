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

from unlearnkit.evaluation.metrics import METRICS

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
        header += ["FR ↑ (%)", "CFR ↓ (%)", "seconds", "speed-up ↑", "data touched", "seeds"]

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
                _fmt(c["forgetting_rate"]),
                _fmt(c["catastrophic_forgetting_rate"]),
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
    from unlearnkit.reporting.records import read_records

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
        "≈R closest to the retrained model. Speed-up = retraining seconds / method seconds (same seed). "
        "FR / CFR: 003's forgetting rate on the forget set and catastrophic forgetting rate on retained samples, "
        "with a loss-threshold membership oracle fitted on the original (retain vs holdout samples); "
        "– where undefined (no forget sample looked like a member before unlearning).",
        "",
    ]
    for title, header, rows, notes in leaderboard(summary, cfg.get("skipped", [])):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines += [""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


# -- HTML ---------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
color:#222;padding:0 1rem}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
tr.ref td{background:#eef6ee}tr.orig td{background:#f8f0f0}
.notes{font-size:.85rem;color:#444}figure{display:inline-block;margin:0 1.5rem 1rem 0;vertical-align:top}
figcaption{font-size:.85rem;color:#444;max-width:520px}code{background:#f3f3f3;padding:0 .2rem}
"""
_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


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


def _empty_svg(width: int, title: str) -> str:
    label = _esc(title)
    return f'<svg width="{width}" height="60" role="img" aria-label="{label}"><text x="10" y="30">no data</text></svg>'


def _scatter_svg(cells: Sequence[dict[str, Any]], title: str) -> str:
    """Avg. Gap vs seconds (log scale), Pareto front marked."""
    pts = [
        (c["seconds"]["mean"], c["avg_gap"]["mean"], c["method"])
        for c in cells
        if c["method"] not in ("retrain", "original") and c["seconds"]["mean"] and c["avg_gap"]["mean"] is not None
    ]
    w, h, pad = 520, 320, 50
    if not pts:
        return _empty_svg(w, title)
    xs = [math.log10(max(p[0], 1e-6)) for p in pts]
    ys = [p[1] for p in pts]
    x0, x1 = min(xs) - 0.3, max(xs) + 0.3
    y1 = max(ys) * 1.1 + 0.5

    def sx(v: float) -> float:
        return float(pad + (v - x0) / (x1 - x0) * (w - 2 * pad))

    def sy(v: float) -> float:
        return float(h - pad - v / y1 * (h - 2 * pad))

    front = pareto_front([(p[0], p[1]) for p in pts])
    parts = [f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{_esc(title)}" '
             'xmlns="http://www.w3.org/2000/svg" style="background:#fff">',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#333"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#333"/>',
             f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle" font-size="12">seconds (log scale)</text>',
             f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle" font-size="12">'
             "Avg. Gap (points)</text>"]  # fmt: skip
    for e in range(math.floor(x0), math.ceil(x1) + 1):
        if x0 <= e <= x1:
            label = f"{10.0**e:g}"
            parts.append(f'<text x="{sx(e):.1f}" y="{h - pad + 14}" text-anchor="middle" font-size="10">{label}</text>')
    for t in np.linspace(0, y1, 5):
        parts.append(f'<text x="{pad - 4}" y="{sy(t) + 3:.1f}" text-anchor="end" font-size="10">{t:.1f}</text>')
    fp = sorted((xs[i], ys[i]) for i in front)
    if len(fp) > 1:
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in fp)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#999" stroke-dasharray="4 3"/>')
    for i, (x, y, name) in enumerate(zip(xs, ys, (p[2] for p in pts), strict=True)):
        color = _PALETTE[i % len(_PALETTE)]
        ring = ' stroke="#000" stroke-width="2"' if i in front else ""
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" fill="{color}"{ring}><title>{_esc(name)}: '
                     f"{pts[i][0]:.3g} s, gap {y:.2f}</title></circle>"
                     f'<text x="{sx(x) + 7:.1f}" y="{sy(y) - 6:.1f}" font-size="11">{_esc(name)}</text>')  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def _bars_svg(cells: Sequence[dict[str, Any]], title: str) -> str:
    """Per-class test accuracy, grouped bars per class, one colour per method."""
    series = [(c["method"], c["per_class_test_accuracy"]) for c in cells if c.get("per_class_test_accuracy")]
    w, h, pad = 520, 300, 40
    if not series:
        return _empty_svg(w, title)
    k = len(series[0][1])
    group_w = (w - 2 * pad) / k
    bar_w = group_w * 0.8 / len(series)
    parts = [f'<svg width="{w}" height="{h + 20 * ((len(series) + 3) // 4)}" role="img" aria-label="{_esc(title)}" '
             'xmlns="http://www.w3.org/2000/svg" style="background:#fff">',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#333"/>']  # fmt: skip
    for t in (0, 0.5, 1.0):
        y = h - pad - t * (h - 2 * pad)
        parts.append(f'<text x="{pad - 4}" y="{y + 3:.1f}" text-anchor="end" font-size="10">{100 * t:.0f}%</text>')
    for ci in range(k):
        parts.append(f'<text x="{pad + (ci + 0.5) * group_w:.1f}" y="{h - pad + 14}" text-anchor="middle" '
                     f'font-size="10">{ci}</text>')  # fmt: skip
        for si, (name, vals) in enumerate(series):
            v = vals[ci] if ci < len(vals) and vals[ci] is not None else 0.0
            x = pad + ci * group_w + group_w * 0.1 + si * bar_w
            bh = v * (h - 2 * pad)
            parts.append(f'<rect x="{x:.1f}" y="{h - pad - bh:.1f}" width="{bar_w:.1f}" height="{bh:.1f}" '
                         f'fill="{_PALETTE[si % len(_PALETTE)]}"><title>{_esc(name)} class {ci}: '
                         f"{100 * v:.1f}%</title></rect>")  # fmt: skip
    parts.append(_legend([(name, _PALETTE[si % len(_PALETTE)]) for si, (name, _) in enumerate(series)], pad, h, 4))
    parts.append("</svg>")
    return "".join(parts)


def _legend(entries: Sequence[tuple[str, str]], left: float, top: float, per_row: int) -> str:
    """Colour swatches with labels, ``per_row`` to a row, starting at (left, top)."""
    out = []
    step = 360 / per_row if per_row == 3 else 120
    for i, (name, color) in enumerate(entries):
        x, y = left + (i % per_row) * step, top + 4 + 20 * (i // per_row)
        out.append(f'<rect x="{x:.0f}" y="{y}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{x + 14:.0f}" y="{y + 9}" font-size="11">{_esc(name)}</text>')  # fmt: skip
    return "".join(out)


def _roc_svg(cells: Sequence[dict[str, Any]], title: str) -> str:
    """One ROC curve per method (mean TPR over seeds on a fixed FPR grid), diagonal = chance."""
    from unlearnkit.evaluation.metrics import ROC_FPR_GRID

    series = [(c["method"], c["mia_loss_roc"]) for c in cells if c.get("mia_loss_roc")]
    w, h, pad = 360, 360, 44
    if not series:
        return _empty_svg(w, title)
    span = w - 2 * pad
    parts = [f'<svg width="{w}" height="{h + 20 * ((len(series) + 2) // 3)}" role="img" aria-label="{_esc(title)}" '
             'xmlns="http://www.w3.org/2000/svg" style="background:#fff">',
             f'<rect x="{pad}" y="{pad}" width="{span}" height="{span}" fill="none" stroke="#333"/>',
             f'<line x1="{pad}" y1="{pad + span}" x2="{pad + span}" y2="{pad}" stroke="#bbb" stroke-dasharray="4 3"/>',
             f'<text x="{w / 2}" y="{h - 10}" text-anchor="middle" font-size="12">false-positive rate</text>',
             f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle" font-size="12">'
             "true-positive rate</text>"]  # fmt: skip
    legend: list[tuple[str, str]] = []
    for si, (name, tpr) in enumerate(series):
        color = "#000" if name == "retrain" else _PALETTE[si % len(_PALETTE)]
        width = 3 if name == "retrain" else 1.5
        pts = " ".join(f"{pad + f * span:.1f},{pad + span - (t or 0.0) * span:.1f}"
                       for f, t in zip(ROC_FPR_GRID, tpr, strict=False))  # fmt: skip
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="{width}">'
                     f"<title>{_esc(name)}</title></polyline>")  # fmt: skip
        legend.append((name, color))
    parts.append(_legend(legend, pad, h, 3))
    parts.append("</svg>")
    return "".join(parts)


def html_report(run_dir: str | Path) -> str:
    """The leaderboard of a run folder as one self-contained HTML page (inline CSS and SVG, no scripts)."""
    from unlearnkit.reporting.records import read_records

    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    summary = summarize(read_records(run_dir))
    cfg, env = meta["config"], meta["environment"]
    body = [
        f"<h1>Benchmark: {_esc(cfg['name'])}</h1>",
        f"<p>{_esc(cfg.get('description') or '')}</p>",
        "<p>Avg. Gap = mean |method − retrain| over forget, retain and test accuracy and MIA accuracy, in points "
        "(lower is better; mean ± std over seeds, 95% bootstrap interval). ↑ higher is better, ↓ lower, ≈R closest "
        "to the retrained model. Speed-up = retraining seconds / method seconds.</p>",
    ]
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in summary:
        by_group[f"{c['dataset']} / {c['model']} / {c['scenario']}"].append(c)
    for title, header, rows, notes in leaderboard(summary, cfg.get("skipped", [])):
        body.append(f"<h2>{_esc(title)}</h2>")
        body.append("<table><thead><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr></thead><tbody>")
        for r in rows:
            cls = ' class="ref"' if r[0] == "retrain" else (' class="orig"' if r[0].startswith("original") else "")
            body.append(f"<tr{cls}>" + "".join(f"<td>{_esc(v)}</td>" for v in r) + "</tr>")
        body.append("</tbody></table>")
        if notes:
            body.append('<ul class="notes">' + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>")
        cells = by_group[title]
        body.append(f"<figure>{_scatter_svg(cells, f'gap vs time, {title}')}<figcaption>Avg. Gap vs seconds per "
                    "method (mean over seeds); ringed points form the Pareto front (no method is both faster and "
                    "closer to retraining).</figcaption></figure>")  # fmt: skip
        body.append(f"<figure>{_bars_svg(cells, f'per-class test accuracy, {title}')}<figcaption>Test accuracy per "
                    "class (mean over seeds).</figcaption></figure>")  # fmt: skip
        body.append(f"<figure>{_roc_svg(cells, f'MIA ROC, {title}')}<figcaption>ROC of the loss-threshold "
                    "membership attack on the forget set vs never-seen samples of its classes (TPR averaged over "
                    "seeds at each FPR); the closer a method's curve to retraining's, the better."
                    "</figcaption></figure>")  # fmt: skip
    body.append("<h2>Environment and how to rerun</h2>")
    body.append(f"<p><code>unlearnkit bench {_esc(meta['config_file'])} --out RUN_DIR</code> then "
                f"<code>unlearnkit report RUN_DIR</code>. Config hash <code>{_esc(meta['config_hash'])}</code>; "
                f"seeds {_esc(cfg['seeds'])}; started {_esc(meta['started'])}.</p>")  # fmt: skip
    body.append("<table><tbody>" + "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in env.items())
                + "</tbody></table>")  # fmt: skip
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
            f"{_esc(cfg['name'])} — unlearnkit benchmark</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")  # fmt: skip


def write_report(run_dir: str | Path, *, out: str | Path | None = None) -> list[Path]:
    """Write ``report.md``, ``report.html`` and ``summary.json`` (every metric's mean, std and 95% interval per
    cell, for programs) atomically for a run folder; returns their paths."""
    from unlearnkit.files import write_json_atomic, write_text_atomic
    from unlearnkit.reporting.records import read_records

    folder = Path(out) if out is not None else Path(run_dir)
    md, page, js = folder / "report.md", folder / "report.html", folder / "summary.json"
    write_text_atomic(md, markdown_report(run_dir))
    write_text_atomic(page, html_report(run_dir))
    write_json_atomic(js, {"cells": summarize(read_records(run_dir))})
    return [md, page, js]
