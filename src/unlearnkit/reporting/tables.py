"""Plain-text tables a person reads at a glance (mean ± std over seeds)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def fmt_value(mean: float | None, std: float | None, *, percent: bool, digits: int = 1) -> str:
    if mean is None:
        return "—"
    scale = 100.0 if percent else 1.0
    text = f"{mean * scale:.{digits}f}"
    if std is not None:
        text += f" ± {std * scale:.{digits}f}"
    return text


def render(headers: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None, left: int = 1) -> str:
    """Align columns: the first ``left`` columns (text) left, the rest (numbers) right."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [str(c).ljust(widths[i]) if i < left else str(c).rjust(widths[i]) for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    out = [title] if title else []
    out.append(line(headers))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table (results pages)."""
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines.extend("| " + " | ".join(str(c) for c in r) + " |" for r in rows)
    return "\n".join(lines)


# (column header, key, is a share in [0, 1] shown as percent, digits)
RESULT_COLUMNS: list[tuple[str, str, bool, int]] = [
    ("forget acc %", "forget_accuracy", True, 1),
    ("retain acc %", "retain_accuracy", True, 1),
    ("test acc %", "test_accuracy", True, 1),
    ("forgotten-class test %", "forgotten_class_test_accuracy", True, 1),
    ("MIA acc %", "mia_accuracy", True, 1),
    ("D_r %", "feature_retain_accuracy", True, 1),
    ("D_f %", "feature_forget_accuracy", True, 1),
    ("D_f,clean %", "feature_clean_accuracy", True, 1),
    ("D_r,extra %", "feature_extra_accuracy", True, 1),
    ("attack success %", "attack_success_rate", True, 1),
]


def results_table(
    results: Sequence[Mapping[str, Any]],
    *,
    title: str | None = None,
    columns: Sequence[tuple[str, str, bool, int]] | None = None,
) -> str:
    """One row per method (first-seen order), mean ± std over seeds.

    ``columns``: (header, metric key, shown as percent, digits); default :data:`RESULT_COLUMNS`.
    """
    order: list[str] = []
    for r in results:
        if r["method"] not in order:
            order.append(r["method"])
    present = [c for c in (columns or RESULT_COLUMNS) if any(r["metrics"].get(c[1]) is not None for r in results)]
    headers = ["method", *(c[0] for c in present), "seconds", "speed-up"]
    rows = []
    for m in order:
        rs = [r for r in results if r["method"] == m]
        cells = [m]
        for _, key, pct, digits in present:
            cells.append(fmt_value(*mean_std([r["metrics"].get(key) for r in rs]), percent=pct, digits=digits))
        sec = mean_std([r["seconds"] for r in rs if r.get("seconds") is not None])
        cells.append(fmt_value(*sec, percent=False, digits=2 if (sec[0] or 0) >= 0.1 else 3))
        sp = mean_std([r["speedup"] for r in rs])
        cells.append("—" if sp[0] is None else f"{sp[0]:.1f}x")
        rows.append(cells)
    return render(headers, rows, title=title)


def metrics_table(
    metrics: Mapping[str, Any],
    reference: Mapping[str, Any] | None = None,
    *,
    directions: Mapping[str, str] | None = None,
    title: str | None = None,
) -> str:
    """A readable summary of :func:`~unlearnkit.evaluate` results: one row per scalar metric, in percent.

    Per-class lists and ROC curves (what programs read from the dict) are left
    out; with ``reference`` (the retrained model's metrics) each row also shows
    the reference and the gap in points. ``directions``: metric -> ``higher`` /
    ``lower`` / ``retrain``, shown in a column (``unlearnkit evaluate`` passes the registry's).

    Example:
        >>> print(metrics_table({"forget_accuracy": 0.02, "test_accuracy": 0.951}))
        metric           model %
        ---------------  -------
        forget_accuracy      2.0
        test_accuracy       95.1
    """

    def pct(v: Any) -> str:
        return "—" if not isinstance(v, (int, float)) or isinstance(v, bool) else f"{100 * float(v):.1f}"

    headers = ["metric", *(["direction"] if directions else []), "model %"]
    if reference is not None:
        headers += ["reference %", "|gap| points"]
    rows = []
    for name, value in metrics.items():
        if isinstance(value, (list, tuple, dict)):
            continue
        cells = [name, *([directions.get(name, "")] if directions else []), pct(value)]
        if reference is not None:
            ref = reference.get(name)
            gap = (
                f"{100 * abs(float(value) - float(ref)):.1f}"
                if isinstance(value, (int, float)) and isinstance(ref, (int, float))
                else "—"
            )
            cells += [pct(ref), gap]
        rows.append(cells)
    return render(headers, rows, title=title, left=2 if directions else 1)
