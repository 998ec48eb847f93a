"""Per-example evidence over model populations (the competition's F, U-LiRA, RMIA, KLoM) on the shipped benchmarks.

    python bench/evidence.py                  # resumable: writes docs/results/evidence.md (+ .json)
    python bench/evidence.py --render-only    # re-render from docs/results/evidence.json

Three audits (``unlearnkit audit``'s machinery, protocol ``per_original``), one
per benchmark file, every population cached by content under
``runs/evidence-cache`` — a killed run resumes from it without training any
member twice, and the page states the compute time summed over every run that
contributed:

* ``mnist_random10`` at N = 64 models per population, every method the file runs;
* ``mnist_class`` and ``mnist_memorized`` at N = 32, restricted to the methods
  whose first unlearning run (member 0, which the audit keeps) took under 10 s;
  the others are listed with that time.

Each unit also trains a second retrained population (the ceiling: what perfect
unlearning scores at this N) and scores the N originals as an unlearned one
(the floor: doing nothing). Nothing here is tuned: methods run with the
settings of their benchmark file.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from _results import Walls, results_parser, unwind_on_sigterm
from unlearnkit.env import environment
from unlearnkit.files import clean_json, write_text_atomic
from unlearnkit.reporting import plots
from unlearnkit.reporting.report import evidence_figures, evidence_table
from unlearnkit.reporting.tables import markdown_table
from unlearnkit.running.audit import AuditConfig, audit_unit
from unlearnkit.running.benchconfig import load_config
from unlearnkit.running.benchmark import unit_spec
from unlearnkit.running.executor import make_executor

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "results" / "evidence.md"
COMMAND = "python bench/evidence.py"
CACHE = ROOT / "runs" / "evidence-cache"
#: (benchmark file, N, seconds limit per unlearning call or None for every method)
UNITS = (("mnist_random10", 64, None), ("mnist_class", 32, 10.0), ("mnist_memorized", 32, 10.0))


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_unit(name: str, n: int, limit: float | None, cache: Path, spent: Walls,
             smoke: bool) -> dict[str, Any]:  # fmt: skip
    config = load_config(ROOT / "benchmarks" / f"{name}.toml")
    scenario = config.scenarios[0]
    spec = unit_spec(config, config.datasets[0], config.models[0], scenario)
    audit = AuditConfig(models=n, max_seconds=limit)
    methods = [(m.name, dict(m.options)) for s, m in config.pairs() if s == scenario]
    if smoke:
        methods = methods[:2]
    ex = dict(config.executor)
    kind = str(ex.pop("name", "local"))
    ex.pop("cell_time_limit", None)
    # an interrupted run's time counts too: it computed members the next run reuses
    with spent.timed(name), make_executor(kind, **ex) as executor:
        result = audit_unit(spec, audit, methods, cache, executor=executor)
    say(f"{name}: {result['computed']} members computed in this run; {spent.total([name]) / 60:.1f} min in all")
    return {"benchmark": name, "unit": f"{spec['dataset']}/{spec['model']['name']}/{scenario.name}",
            "description": config.description, "limit_seconds": limit, **result,
            "compute_seconds": spent.total([name])}  # fmt: skip


def main() -> None:
    ap = results_parser(__doc__, PAGE, "N = 4 and two methods per unit: check the script end to end")
    ap.add_argument("--cache", type=Path, default=CACHE)
    args = ap.parse_args()
    json_path = args.out.with_suffix(".json")
    if args.render_only:
        write_text_atomic(args.out, render(json.loads(json_path.read_text()), args.out.parent / "img"))
        return
    unwind_on_sigterm()  # so a killed run still records its compute time
    spent = Walls(args.out.with_suffix(".partial.json"))  # compute seconds of earlier (interrupted) runs
    record: dict[str, Any] = {"env": environment(), "units": [], "pending": [u[0] for u in UNITS]}
    for name, n, limit in UNITS:
        record["units"].append(run_unit(name, 4 if args.smoke else n, limit, args.cache, spent, args.smoke))
        record["pending"].remove(name)
        # the page after every unit: a run stopped later still leaves a page of what is done (and says so)
        record["compute_seconds"] = spent.total()
        record["smoke"] = args.smoke
        write_text_atomic(json_path, json.dumps(clean_json(record), indent=1))
        write_text_atomic(args.out, render(record, args.out.parent / "img", smoke=args.smoke))
        say(f"wrote {args.out} ({len(record['units'])} of {len(UNITS)} units)")


def _rank_agreement(unit: dict[str, Any]) -> tuple[float | None, list[str]]:
    """Spearman ρ between the ranking by Avg. Gap (low is good) and by F (high is good); the disagreements."""
    from scipy.stats import spearmanr

    names = list(unit["rows"])
    if len(names) < 3:
        return None, []
    gap = np.array([unit["rows"][m]["avg_gap"] for m in names])
    f = np.array([unit["rows"][m]["forget_score"] for m in names])
    rho = float(spearmanr(-gap, f).statistic)
    half = len(names) / 2
    by_gap = {m: i for i, m in enumerate(sorted(names, key=lambda m: unit["rows"][m]["avg_gap"]))}
    by_f = {m: i for i, m in enumerate(sorted(names, key=lambda m: -unit["rows"][m]["forget_score"]))}
    odd = [m for m in names if by_gap[m] < half <= by_f[m]]  # better half by Avg. Gap, worse half by F
    return rho, odd


def _figures(unit: dict[str, Any], stem: str, img: Path) -> list[str]:
    img.mkdir(parents=True, exist_ok=True)
    out = []
    for (fig, caption), kind in zip(evidence_figures(unit, unit["benchmark"]), ("epsilon", "ulira_roc"), strict=True):
        path = img / f"evidence_{stem}_{kind}.png"
        path.write_bytes(plots.png(fig))
        out += [f"![{kind}, {unit['benchmark']}](img/{path.name})", "", f"*{caption}*", ""]
    return out


def render(record: dict[str, Any], img: Path, *, smoke: bool = False) -> str:
    total = record["compute_seconds"]
    env = record["env"]
    out = [
        "# Evidence over model populations: the competition's F, U-LiRA, RMIA and KLoM on the shipped benchmarks",
        "",
        f"Generated by `{COMMAND}` (resumable: it continues from its cache `runs/evidence-cache`); total compute "
        f"{total / 60:.0f} min on {env.get('cpu_count', '?')} CPU cores, summed over the runs that contributed. "
        "Definitions, directions and costs: [docs/evidence.md](../evidence.md).",
        "",
        "Protocol `per_original`: N originals, each trained with its own seed and unlearned once with its own seed, "
        "against N models retrained from scratch on the retain set. The **ceiling** is a second, independent "
        "retrained population scored against the first (what perfect unlearning scores at this N); the **floor** "
        "scores the N originals as the unlearned population (doing nothing). A method is read between the two. "
        "F's 95% interval resamples the forget examples with the models fixed; the ceiling and the floor say what "
        "the sampling of models does. RMIA attacks one shipped model: unlearned member 0 (for the ceiling, "
        "retrained member 0 of the second population; for the floor, original 0), with the retrained population as "
        "its reference models.",
        "",
    ]
    if smoke:
        out += ["**Smoke run (N = 4, two methods): not a result.**", ""]
    if record.get("pending"):
        out += [f"**Not finished yet: {', '.join(f'`{u}`' for u in record['pending'])}** — rerun the command; it "
                "resumes from its cache (the compute time above covers the finished units and the started ones).",
                ""]  # fmt: skip
    for unit in record["units"]:
        stem = unit["benchmark"]
        rho, odd = _rank_agreement(unit)
        ceiling, floor = unit["ceiling"]["forget_score"], unit["floor"]["forget_score"]
        out += [f"## `{stem}`", "", unit["description"], "",
                f"N = {unit['models']} models per population, {unit['forget_size']} forget examples; at this N no ε "
                f"above {unit['resolution']:g} can be told apart (the last bucket). Compute "
                f"{unit['compute_seconds'] / 60:.0f} min. Rows sorted by F (higher is closer to retraining); "
                f"seconds are per unlearning call (the ceiling row: per retraining).", "",
                markdown_table(*evidence_table(unit)), ""]  # fmt: skip
        fci, cci = unit["floor"]["forget_score_ci"], unit["ceiling"]["forget_score_ci"]
        rows_ = unit["rows"]
        # read with the intervals: a method is above (below) the floor only when its interval clears the floor's
        above = [m for m, r in rows_.items() if r["forget_score_ci"][0] > fci[1]]
        below = [m for m, r in rows_.items() if r["forget_score_ci"][1] < fci[0]]
        same = [m for m in rows_ if m not in above and m not in below]
        at_ceiling = [m for m in above if rows_[m]["forget_score_ci"][1] >= cci[0]]
        facts = [f"- Ceiling F {ceiling:.3f} [{cci[0]:.3f}, {cci[1]:.3f}], floor F {floor:.3f} [{fci[0]:.3f}, "
                 f"{fci[1]:.3f}]: "
                 + ("the intervals are apart, so F can separate a method from doing nothing at this N."
                    if cci[0] > fci[1]
                    else "their intervals overlap: at this N, F cannot tell perfect unlearning "
                         "from doing nothing.")]  # fmt: skip
        if above:
            facts.append("- Above the floor (F's interval clears doing nothing's): "
                         + ", ".join(f"`{m}`" for m in above)
                         + (f"; reaching the ceiling's interval: {', '.join(f'`{m}`' for m in at_ceiling)}"
                            if at_ceiling else "; none reaches the ceiling's interval") + ".")  # fmt: skip
        else:
            facts.append("- No method's F clears the floor's interval: by F, none is measurably closer to "
                         "retraining than doing nothing.")  # fmt: skip
        if same:
            facts.append("- Indistinguishable from the floor (intervals overlap): "
                         + ", ".join(f"`{m}`" for m in same) + ".")
        if below:
            facts.append("- Below the floor (F's interval under doing nothing's: the method's models are easier to "
                         "tell from retrained ones than the originals are): "
                         + ", ".join(f"`{m}`" for m in below) + ".")
        if rho is not None:
            facts.append(f"- Avg. Gap and F rank the {len(unit['rows'])} methods with Spearman ρ = {rho:.2f} "
                         "(1: the same order). "
                         + (f"Better half by Avg. Gap but worse half by F: {', '.join(f'`{m}`' for m in odd)}."
                            if odd else "No method is in the better half by Avg. Gap and the worse half "
                            "by F."))  # fmt: skip
        if unit["left_out"]:
            facts.append(f"- Left out (first unlearning call over the {unit['limit_seconds']:g} s limit): "
                         + ", ".join(f"`{m}` ({s:.1f} s)" for m, s in unit["left_out"].items())
                         + ". These times were measured while other jobs shared the two cores, so they are slower "
                           "than on a quiet machine (see the leaderboard's seconds): the cut depends on the load.")
        if unit.get("limit_seconds"):
            slow = [m for m, r in unit["rows"].items() if (r.get("seconds") or 0) > unit["limit_seconds"]]
            if slow:
                facts.append(f"- The {unit['limit_seconds']:g} s limit is applied to member 0's unlearning call; "
                             "the seconds column is the mean over all N calls, many of them measured while other "
                             "jobs shared the two cores, so "
                             + ", ".join(f"`{m}`" for m in slow)
                             + " average above the limit they passed (read the leaderboard for quiet timings).")
        facts += [f"- {note}" for note in unit["notes"]]
        out += [*facts, "", *_figures(unit, stem, img)]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    main()
