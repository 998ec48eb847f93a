"""Charts: one matplotlib path for the HTML report (inline SVG) and the results pages (PNG).

Every chart is a function from plain numbers (what the records hold) to a
:class:`matplotlib.figure.Figure`; :func:`svg` and :func:`png` serialise it.
Figures are built with the object API on the Agg canvas (no ``pyplot`` global
state, no display), so charts can be made from any thread or process.

Each plotted series carries a ``gid`` (``series-NAME``), which matplotlib
writes as the ``id`` of the series' SVG group: a reader (or a test) finds
every method's curve in the page by name.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Fixed colours per role so that a method looks the same in every chart of a page.
REFERENCE_COLOR = "#000000"  # retrain: the target every method is read against
ORIGINAL_COLOR = "#7f7f7f"  # original: doing nothing
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def gid(name: str) -> str:
    """The SVG id of a series: ``series-`` plus the name with anything but letters, digits, ``_-.`` as ``_``."""
    return "series-" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def colors(names: Sequence[str]) -> dict[str, str]:
    """One colour per name: black for ``retrain``, grey for ``original``, the palette in order for the rest."""
    out: dict[str, str] = {}
    others = [n for n in names if n not in ("retrain", "original")]
    for i, n in enumerate(others):
        out[n] = PALETTE[i % len(PALETTE)]
    out.update({n: REFERENCE_COLOR for n in names if n == "retrain"})
    out.update({n: ORIGINAL_COLOR for n in names if n == "original"})
    return out


def svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prologue, text kept as text)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "unlearnkit"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def png(fig: Figure, *, dpi: int = 90) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def gap_vs_time(points: Sequence[tuple[str, float, float]], front: Sequence[int], *, title: str = "") -> Figure:
    """Avg. Gap (points) against seconds on a log axis, one marker per method; the Pareto front ringed and joined.

    Args:
        points: ``(method, seconds, avg_gap)`` per method (means over seeds).
        front: Indices into ``points`` of the Pareto front.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig = _figure(5.6, 3.6)
    ax = fig.add_subplot()
    if not points:
        _no_data(ax)
        return fig
    palette = colors([p[0] for p in points])
    for i, (name, sec, gap) in enumerate(points):
        ax.scatter([sec], [gap], s=60 if i in front else 36, color=palette[name], zorder=3, gid=gid(name),
                   edgecolors="black" if i in front else "none", linewidths=1.5, label=name)  # fmt: skip
        ax.annotate(name, (sec, gap), textcoords="offset points", xytext=(6, 5), fontsize=8)
    fp = sorted((points[i][1], points[i][2]) for i in front)
    if len(fp) > 1:
        ax.plot(*zip(*fp, strict=True), color="#999999", linestyle="--", linewidth=1, zorder=2)
    ax.set_xscale("log")
    secs = [p[1] for p in points]
    lo, hi = min(secs), max(secs)
    ax.set_xlim(lo / 2, hi * 2)
    # Labels at 1-2-5 steps when the points span less than three decades, so the axis always reads.
    subs = (1.0, 2.0, 5.0) if hi / lo < 1000 else (1.0,)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(bottom=0, top=max(p[2] for p in points) * 1.15 + 0.5)
    ax.set_xlabel("seconds (log scale)")
    ax.set_ylabel("Avg. Gap to retrain (points)")
    ax.grid(alpha=0.3, which="both")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def grouped_bars(groups: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], *, xlabel: str,
                 ylabel: str, title: str = "", ids: Sequence[str] | None = None) -> Figure:  # fmt: skip
    """Grouped bars (values are shares, drawn in %), one colour per series; undefined entries draw no bar.

    Bar ``c`` of series ``NAME`` gets the SVG id ``series-NAME-{ids[c]}`` (``ids`` defaults to ``groups``).
    """
    ids = list(groups) if ids is None else list(ids)
    fig = _figure(5.6, 3.4)
    ax = fig.add_subplot()
    if not series:
        _no_data(ax)
        return fig
    width = 0.8 / len(series)
    palette = colors([n for n, _ in series])
    for si, (name, vals) in enumerate(series):
        offset = (si - (len(series) - 1) / 2) * width
        bars = ax.bar([c + offset for c in range(len(vals))], [100 * float(v or 0.0) for v in vals], width=width,
                      color=palette[name], label=name)  # fmt: skip
        for c, (bar, v) in enumerate(zip(bars, vals, strict=True)):
            bar.set_gid(gid(f"{name}-{ids[c]}"))
            bar.set_visible(v is not None)
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7, ncol=min(4, len(series)), loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def per_class_bars(series: Sequence[tuple[str, Sequence[float | None]]], *, title: str = "") -> Figure:
    """Grouped bars of test accuracy (%) per class, one colour per method; undefined entries are left out."""
    k = max((len(v) for _, v in series), default=0)
    return grouped_bars([str(c) for c in range(k)], series, xlabel="class", ylabel="test accuracy %", title=title,
                        ids=[f"class-{c}" for c in range(k)])  # fmt: skip


def roc_curves(grid: Sequence[float], series: Sequence[tuple[str, Sequence[float | None]]], *,
               title: str = "") -> Figure:  # fmt: skip
    """ROC curves (TPR against FPR on a fixed grid) per method, with the chance diagonal.

    ``retrain`` is drawn first, thick and black, so every other curve stays
    visible on top of it; ``original`` is dashed with markers, so it shows even
    where it lies on another curve.
    """
    fig = _figure(4.4, 4.2)
    ax = fig.add_subplot()
    if not series:
        _no_data(ax)
        return fig
    ax.plot([0, 1], [0, 1], color="#bbbbbb", linestyle=":", linewidth=1, label="chance")
    palette = colors([n for n, _ in series])
    order = sorted(series, key=lambda s: {"retrain": 0, "original": 2}.get(s[0], 1))
    for name, tpr in order:
        ys = [math.nan if t is None else float(t) for t in tpr]
        style: dict[str, Any] = {"linewidth": 1.5}
        if name == "retrain":
            style = {"linewidth": 4, "alpha": 0.45}
        elif name == "original":
            style = {"linewidth": 1.5, "linestyle": "--", "marker": "o", "markersize": 3, "markevery": 5}
        ax.plot(list(grid[: len(ys)]), ys, color=palette[name], label=name, gid=gid(name), **style)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def curve_panels(panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]], *,
                 xlabel: str, ylabel: str | Sequence[str], title: str = "",
                 colors_by_name: Mapping[str, str] | None = None, x0: int = 0) -> Figure:  # fmt: skip
    """Side-by-side panels of mean ± std curves (e.g. accuracy per epoch).

    Args:
        panels: Panel title -> series name -> ``(mean, std)`` per step, in the plotted unit
            (NaN leaves a gap: a series that has no value at that step).
        ylabel: One label for a shared y axis, or one per panel (each panel then has its own scale).
        colors_by_name: Fixed colours per series (default: :func:`colors`).
        x0: The x value of the first step (0 for "before training", 1 for "after round 1").
    """
    shared = isinstance(ylabel, str)
    fig = _figure(3.5 * max(1, len(panels)), 3.2)
    axes = fig.subplots(1, max(1, len(panels)), sharey=shared, squeeze=False)[0]
    names = list(dict.fromkeys(n for series in panels.values() for n in series))
    palette = dict(colors_by_name) if colors_by_name is not None else colors(names)
    # past the palette's length colours repeat: the second round of series is dashed, so no two lines look alike
    others = [n for n in names if n not in ("retrain", "original")]
    dashed = {n for i, n in enumerate(others) if i >= len(PALETTE)}
    for ax, (panel, series) in zip(axes, panels.items(), strict=False):
        for name, (mean, std) in series.items():
            m, s = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
            x = np.arange(len(m)) + x0
            ax.plot(x, m, label=name, color=palette[name], gid=gid(f"{panel}-{name}"), marker=".",
                    linestyle="--" if name in dashed else "-")  # fmt: skip
            ax.fill_between(x, m - s, m + s, color=palette[name], alpha=0.2)
        ax.set_title(panel)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    if isinstance(ylabel, str):
        axes[0].set_ylabel(ylabel)
    else:
        for ax, label in zip(axes, ylabel, strict=False):
            ax.set_ylabel(label)
    _legend(fig, axes)
    if title:
        fig.suptitle(title)
    return fig


def _legend(fig: Figure, axes: Sequence[Any]) -> None:
    """One legend of every series: in the last panel for a few, beside the panels for many (it would cover them)."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if len(handles) <= 6:
        if handles:
            axes[-1].legend(list(handles.values()), list(handles), loc="lower right", fontsize=8)
        return
    fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize=7,
               ncols=1 + len(handles) // 16)  # fmt: skip


def scatter_panels(panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]], *,
                   title: str = "", colors_by_name: Mapping[str, str] | None = None) -> Figure:  # fmt: skip
    """Side-by-side 2-D scatter panels (e.g. a t-SNE embedding before and after), one colour per group.

    Args:
        panels: Panel title -> group name -> ``(xs, ys)``. Axes carry no units (an embedding's do not).
        colors_by_name: Fixed colours per group (default: :func:`colors`).
    """
    names = sorted({g for groups in panels.values() for g in groups})
    palette = dict(colors_by_name or colors(names))
    fig = _figure(3.4 * max(len(panels), 1), 3.6)
    if not panels:
        _no_data(fig.add_subplot())
        return fig
    for i, (name, groups) in enumerate(panels.items()):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for g, (xs, ys) in groups.items():
            ax.scatter(list(xs), list(ys), s=9, alpha=0.7, color=palette[g], label=g, gid=gid(f"{name}-{g}"),
                       linewidths=0)  # fmt: skip
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if i == 0:
            ax.legend(fontsize=7, loc="best", frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def image_grid(images: Sequence[Sequence[Any]], *, row_labels: Sequence[str], col_labels: Sequence[str],
               title: str = "", inputs_first: bool = True) -> Figure:  # fmt: skip
    """A grid of 2-D maps (rows: samples, columns: the input and one attribution map per model).

    Args:
        images: ``images[r][c]`` a 2-D array (H × W). With ``inputs_first`` column 0 is the input,
            drawn in grey; the other columns are attribution maps, each scaled to its own maximum (hot).
    """
    rows, cols = len(images), max((len(r) for r in images), default=0)
    fig = _figure(1.25 * max(cols, 1) + 0.6, 1.25 * max(rows, 1) + 0.5)
    if not rows:
        _no_data(fig.add_subplot())
        return fig
    for r, row in enumerate(images):
        for c, img in enumerate(row):
            ax = fig.add_subplot(rows, cols, r * cols + c + 1)
            a = np.asarray(img, dtype=float)
            if inputs_first and c == 0:
                ax.imshow(a, cmap="gray", interpolation="nearest")
            else:
                ax.imshow(a, cmap="hot", vmin=0.0, vmax=float(np.abs(a).max()) or 1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_gid(gid(f"cell-{r}-{c}"))
            if r == 0:
                ax.set_title(col_labels[c], fontsize=7)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def exposure_panels(panels: Mapping[str, Mapping[str, Sequence[float | None]]], *,
                    references: Mapping[str, Mapping[str, float | None]] | None = None, safe: float | None = 10.0,
                    ceiling: float | None = None, xlabel: str = "unlearning iterations (epochs)",
                    ylabel: str = "mean exposure (bits)", title: str = "") -> Figure:  # fmt: skip
    """Canary exposure against unlearning iterations (003 Fig. 12), one panel per exposure estimate.

    Args:
        panels: Panel title -> method -> exposure after 0, 1, 2, ... iterations (entry 0: the original model;
            None leaves a gap).
        references: Panel title -> name -> one value drawn as a horizontal line (retrain: a method without
            iterations, one point).
        safe: The "below is safe" line (Carlini et al.: 10 bits), dotted grey; None draws none.
        ceiling: A bound no value can pass (log2 |R| for the rank exposure), thin grey; None draws none.
    """
    from matplotlib.ticker import MaxNLocator

    fig = _figure(3.9 * max(1, len(panels)), 3.4)
    if not panels:
        _no_data(fig.add_subplot())
        return fig
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    names = list(dict.fromkeys(n for series in panels.values() for n in series))
    refs = references or {}
    palette = colors([*names, *dict.fromkeys(n for r in refs.values() for n in r)])
    for ax, (panel, series) in zip(axes, panels.items(), strict=True):
        for name, ys in series.items():
            y = np.asarray([np.nan if v is None else float(v) for v in ys], dtype=float)
            ax.plot(np.arange(len(y)), y, marker=".", color=palette[name], label=name, gid=gid(f"{panel}-{name}"))
        for name, v in refs.get(panel, {}).items():
            if v is not None:
                ax.axhline(float(v), color=palette[name], linestyle="--", linewidth=1.2, label=f"{name} (reference)",
                           gid=gid(f"{panel}-{name}"))  # fmt: skip
        if safe is not None:
            ax.axhline(safe, color="#7f7f7f", linestyle=":", linewidth=1.2, label=f"safe below {safe:g}")
        if ceiling is not None and "rank" in panel:
            ax.axhline(ceiling, color="#bbbbbb", linewidth=0.8, label=f"log2 |R| = {ceiling:.2f}")
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
