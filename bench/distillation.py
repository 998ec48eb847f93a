"""Results for the distillation-based methods (issue: SCRUB and two-stage).

    python bench/distillation.py                      # writes docs/results/distillation.md (+ .json)
    python bench/distillation.py --seeds 0 --datasets mnist --out /tmp/d.md   # a quick look

Settings are chosen on the HOLDOUT split of a separate tuning seed (never the
test split, never a reported seed): for random forgetting the unlearned model's
forget accuracy should match its own holdout accuracy (what a model that never
saw the samples scores), without losing holdout accuracy. Then every method
runs with the chosen settings on the reported seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnkit import (
    ExperimentConfig,
    TrainConfig,
    build_model,
    collect,
    fit,
    load_dataset,
    make_method,
    run_experiment,
)
from unlearnkit.data import split_dataset
from unlearnkit.data.scenarios import make_scenario
from unlearnkit.env import environment
from unlearnkit.errors import DivergenceError
from unlearnkit.evaluation.scores import accuracy
from unlearnkit.files import clean_json, write_bytes_atomic, write_text_atomic
from unlearnkit.reporting import plots
from unlearnkit.reporting.tables import fmt_value, mean_std
from unlearnkit.running.experiment import build_record

TUNING_SEED = 100
METHODS = ("finetune", "neggrad_plus", "scrub", "scrub_attention", "scrub_similarity", "two_stage")
GRIDS: dict[str, list[dict[str, Any]]] = {
    "finetune": [{"epochs": e, "lr": lr} for e, lr in itertools.product((5, 10, 20), (0.02, 0.05))],
    "neggrad_plus": [
        {},
        {"epochs": 20, "beta": 0.7, "lr": 0.1},
        {"epochs": 10, "beta": 0.5, "lr": 0.1},
        {"epochs": 40, "beta": 0.5, "lr": 0.1},
        {"epochs": 20, "beta": 0.6, "lr": 0.05},
    ],
    "scrub": [
        {"max_steps": m, "steps": m + 3, "max_lr": lr, "forget_kl_cap": cap}
        for m, lr, cap in itertools.product((2, 4, 8), (0.02, 0.05), (None, 0.5, 2.0))
    ],
    "two_stage": [{"neutralize_lr": nlr, "lr": lr} for nlr, lr in itertools.product((0.001, 0.01), (None, 0.01))],
}
GRIDS["scrub_attention"] = GRIDS["scrub"]
GRIDS["scrub_similarity"] = GRIDS["scrub"]

RB = {"train_size": 1000, "train": TrainConfig(epochs=40, lr=0.05)}  # memorising subset (001 used 5,000 images)
RC = {"train_size": 2000, "train": TrainConfig(epochs=40, lr=0.05), "count": 50}


def holdout_score(model: torch.nn.Module, splits: Any, orig_holdout: float) -> tuple[float, float, float]:
    """(score, forget acc, holdout acc): |forget - holdout| + holdout accuracy lost. Lower is better."""
    c = collect(model, splits, names=("forget", "holdout"))
    f, h = accuracy(c["forget"]) or 0.0, accuracy(c["holdout"]) or 0.0
    return abs(f - h) + max(0.0, orig_holdout - h), f, h


def tune(dataset: Any, log: Any) -> tuple[dict[str, dict[str, Any]], list[list[str]]]:
    """Pick each method's settings on the holdout split of the tuning seed."""
    split = split_dataset(dataset, seed=TUNING_SEED, train_size=RB["train_size"])
    splits = make_scenario("random", fraction=0.1).prepare(split, seed=TUNING_SEED)
    model = build_model("lenet", dataset.input_shape, dataset.num_classes, seed=TUNING_SEED)
    fit(model, splits.train, RB["train"], seed=TUNING_SEED)
    base = collect(model, splits, names=("forget", "holdout"))
    orig_h = accuracy(base["holdout"]) or 0.0
    chosen: dict[str, dict[str, Any]] = {}
    rows = [["original", "—", f"{100 * (accuracy(base['forget']) or 0):.1f}", f"{100 * orig_h:.1f}", "—"]]
    for name in METHODS:
        best = None
        for params in GRIDS[name]:
            try:
                out = make_method(name, **params).unlearn(model, splits, seed=TUNING_SEED, recipe=RB["train"])
            except DivergenceError:
                continue
            score, f, h = holdout_score(out.model, splits, orig_h)
            if best is None or score < best[0]:
                best = (score, params, f, h)
        assert best is not None
        chosen[name] = best[1]
        rows.append([name, json.dumps(best[1]), f"{100 * best[2]:.1f}", f"{100 * best[3]:.1f}", f"{100 * best[0]:.1f}"])
        log(f"  tuned {name}: {best[1]} (holdout score {best[0]:.3f})")
    return chosen, rows


RB_COLUMNS = [
    ("retain %", "retain_accuracy", True, 1), ("forget %", "forget_accuracy", True, 1),
    ("test %", "test_accuracy", True, 1), ("MIA %", "mia_accuracy", True, 1),
]  # fmt: skip
RC_COLUMNS = [
    ("retain %", "retain_accuracy", True, 1), ("forget % (trained labels)", "forget_accuracy", True, 1),
    ("forget % (true labels)", "forget_true_label_accuracy", True, 1), ("test %", "test_accuracy", True, 1),
    ("confusion a↔b", "interclass_confusion", False, 1),
]  # fmt: skip


def md_table(results: list[dict[str, Any]], columns: list[tuple[str, str, bool, int]]) -> str:
    order: list[str] = []
    for r in results:
        if r["method"] not in order:
            order.append(r["method"])
    headers = ["method", *(c[0] for c in columns), "seconds", "speed-up"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for m in order:
        rs = [r for r in results if r["method"] == m]
        cells = [f"`{m}`"]
        for _, key, pct, digits in columns:
            cells.append(fmt_value(*mean_std([r["metrics"].get(key) for r in rs]), percent=pct, digits=digits))
        cells.append(
            fmt_value(*mean_std([r["seconds"] for r in rs if r["seconds"] is not None]), percent=False, digits=2)
        )
        failed = sum(1 for r in rs if r.get("error"))
        if failed:
            cells[0] += f" ({failed} of {len(rs)} seeds diverged)"
        sp = mean_std([r["speedup"] for r in rs])
        cells.append("—" if sp[0] is None else f"{sp[0]:.1f}× ± {sp[1] or 0:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def two_stage_table(results: list[dict[str, Any]], label_rows: list[tuple[str, list[dict[str, Any]]]]) -> str:
    headers = ["variant", "neutralise epochs (runs at the budget)", "forget % before", "after neutralise",
               "after retraining",
               "hflip %", "vflip %", "crop90 %", "epochs to best", "retrain: epochs to best"]  # fmt: skip
    scratch = [r["diagnostics"].get("epochs_to_best") for r in results if r["method"] == "retrain"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for label, rows in label_rows:
        d = [r["diagnostics"] for r in rows]

        def f(vals: list[Any], pct: bool = True, digits: int = 1) -> str:
            return fmt_value(*mean_std(vals), percent=pct, digits=digits)

        lines.append("| " + " | ".join([
            label, f([x["neutralize_epochs"] for x in d], False)
            + f" ({sum(bool(x.get('neutralize_hit_budget')) for x in d)} of {len(d)})",
            f([x["forget_accuracy_before"] for x in d]), f([x["forget_accuracy_after_neutralize"] for x in d]),
            f([r["metrics"]["forget_accuracy"] for r in rows]),
            f([r["metrics"].get("forget_accuracy_hflip") for r in rows]),
            f([r["metrics"].get("forget_accuracy_vflip") for r in rows]),
            f([r["metrics"].get("forget_accuracy_crop90") for r in rows]),
            f([x.get("epochs_to_best") for x in d], False), f(scratch, False),
        ]) + " |")  # fmt: skip
    return "\n".join(lines)


def avg(results: list[dict[str, Any]], method: str, key: str) -> float | None:
    return mean_std([r["metrics"].get(key) for r in results if r["method"] == method and r["metrics"]])[0]


def avg_gap(results: list[dict[str, Any]], method: str, keys: tuple[str, ...]) -> float | None:
    """Mean over seeds of the mean |metric - retrain's| over ``keys``, in points."""
    per_seed = []
    for r in results:
        if r["method"] != method or not r["metrics"]:
            continue
        ref = next(x for x in results if x["method"] == "retrain" and x["seed"] == r["seed"])
        diffs = [abs(r["metrics"][k] - ref["metrics"][k]) for k in keys if r["metrics"].get(k) is not None]
        per_seed.append(100 * sum(diffs) / len(diffs))
    return mean_std(per_seed)[0]


def per_seed(results: list[dict[str, Any]], method: str, key: str) -> list[float]:
    return [r["metrics"][key] for r in results if r["method"] == method and r["metrics"]
            and r["metrics"].get(key) is not None]  # fmt: skip


def apart(a: list[float], b: list[float]) -> bool:
    """``a``'s mean above ``b``'s by more than their seed spreads together (one std each): not within noise."""
    if not a or not b:
        return False
    return float(np.mean(a) - np.mean(b)) > float(np.std(a) + np.std(b))


def pts(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def findings(ds: str, rb: list[dict[str, Any]], rc: list[dict[str, Any]],
             ts_min: list[dict[str, Any]], ts_max: list[dict[str, Any]]) -> list[str]:  # fmt: skip
    """Statements computed from the records: what reproduces and what does not."""
    out = []
    keys = ("forget_accuracy", "test_accuracy", "mia_accuracy")
    methods = [m for m in ("original", *METHODS)]
    gaps = {m: avg_gap(rb, m, keys) for m in methods}
    ranked = sorted((g, m) for m, g in gaps.items() if g is not None and m != "original")
    best_gap, best = ranked[0]
    speed = mean_std([r["speedup"] for r in rb if r["method"] == best])[0]
    out.append(
        f"**{ds}, removing bias.** Closest to retraining (mean |gap| over forget, test and MIA accuracy): "
        f"`{best}`, {best_gap:.1f} points at {speed:.1f}× the speed of retraining; doing nothing (`original`) "
        f"is {gaps['original']:.1f} points away. Ranking: " + ", ".join(f"`{m}` {g:.1f}" for g, m in ranked) + "."
    )
    o, rt = avg(rb, "original", "forget_accuracy"), avg(rb, "retrain", "forget_accuracy")
    moved = {m: (o or 0) - (avg(rb, m, "forget_accuracy") or 0) for m in ("finetune", "scrub", "scrub_attention")}
    fa = {m: per_seed(rb, m, "forget_accuracy") for m in ("finetune", "scrub", "scrub_attention")}
    # lower forget accuracy = forgot more; the claim holds where it is lower by more than the seeds' spread
    holds = all(apart(fa["finetune"], fa[m]) for m in ("scrub", "scrub_attention"))
    direction = moved["scrub"] > moved["finetune"] and moved["scrub_attention"] > moved["finetune"]
    verdict = ("reproduces" if holds else "holds in direction but within the seeds' spread, so not shown"
               if direction else "does not reproduce")  # fmt: skip
    out.append(
        f"001's Table 1 claim — SCRUB and attention SCRUB forget more than fine-tuning (there: forget 80.1% / "
        f"77.2% vs 93%, retrain 65.2%) — {verdict} here: from the "
        f"original's {pts(o)} toward retrain's {pts(rt)}, forget accuracy moved {100 * moved['finetune']:.1f} "
        f"points with fine-tuning, {100 * moved['scrub']:.1f} with SCRUB, {100 * moved['scrub_attention']:.1f} "
        f"with attention SCRUB (settings chosen on the holdout split; see the scrub card for why a converged, "
        f"memorising original leaves SCRUB little room)."
    )
    st, rtt = avg(rb, "scrub", "test_accuracy"), avg(rb, "retrain", "test_accuracy")
    if st is not None and rtt is not None:
        out.append(f"SCRUB's test accuracy {pts(st)} vs retrain's {pts(rtt)} ({100 * abs(st - rtt):.1f} points apart).")
    variants = ("scrub", "scrub_attention", "scrub_similarity")
    rc_test = {m: avg(rc, m, "test_accuracy") for m in ("original", "retrain", *variants)}
    best_ref = max(("retrain", "original"), key=lambda m: rc_test[m] or 0)
    better = [m for m in variants if apart(per_seed(rc, m, "test_accuracy"), per_seed(rc, best_ref, "test_accuracy"))]
    out.append(
        f"**{ds}, resolving confusion.** 001's Table 2 claim — the SCRUB variants forget the mislabelled samples "
        f"and reach higher test accuracy than both retrain and the original (by more than the seeds' spread) — "
        f"{'reproduces' if len(better) == 3 else 'does not reproduce' if not better else 'partly reproduces'}: "
        f"test accuracy original {pts(rc_test['original'])}, retrain {pts(rc_test['retrain'])}, "
        + ", ".join(f"`{m}` {pts(rc_test[m])}" for m in variants)
        + f"; forget accuracy on the wrong labels retrain {pts(avg(rc, 'retrain', 'forget_accuracy'))}, "
        + ", ".join(f"`{m}` {pts(avg(rc, m, 'forget_accuracy'))}" for m in variants)
        + f". Test confusions between the two classes: original {avg(rc, 'original', 'interclass_confusion'):.0f}, "
        f"retrain {avg(rc, 'retrain', 'interclass_confusion'):.0f}, best of the others "
        f"{min(avg(rc, m, 'interclass_confusion') or 0 for m in METHODS):.0f}."
    )
    d_min = [r["diagnostics"] for r in ts_min if r.get("diagnostics")]
    reached = [d["neutralize_epochs"] for d in d_min if d.get("neutralized")]
    spent = sum(bool(d.get("neutralize_hit_budget")) for d in d_min)
    budget = ts_min[0].get("params", {}).get("neutralize_max_epochs", "the") if ts_min else "the"
    e2n = mean_std(reached)
    out.append(
        f"**{ds}, two-stage neutralisation (002 Table 5).** Neutralisation (Adam, lr chosen on the holdout split) "
        f"reached chance (≤ 1/k) in {len(reached)} of {len(d_min)} runs"
        + (
            f", after {fmt_value(*e2n, percent=False, digits=1)} epochs of the forget set (002 Table 5, "
            "MNIST / Fashion-MNIST: 3–28 epochs at 1–10% of the data)"
            if reached
            else ""
        )
        + (
            f"; {spent} run(s) spent the {budget}-epoch budget and are censored, not counted as epochs-to-neutralise"
            if spent
            else "; no run hit the budget"
        )
        + "."
    )
    retrain_d = {r["seed"]: r["diagnostics"] for r in rb if r["method"] == "retrain" and r.get("diagnostics")}

    def epochs_to_reach(curve: list[float], target: float) -> int | None:
        return next((i + 1 for i, v in enumerate(curve) if v >= target), None)

    reach_ts, reach_rt, n_ts = [], [], 0
    for r in ts_min:
        ref = retrain_d.get(r["seed"])
        if not ref or not r.get("diagnostics", {}).get("val_accuracy") or not ref.get("val_accuracy"):
            continue
        target = 0.99 * max(ref["val_accuracy"])  # within 1% of retraining's best holdout accuracy
        n_ts = len(r["diagnostics"]["val_accuracy"])
        reach_ts.append(epochs_to_reach(r["diagnostics"]["val_accuracy"], target))
        reach_rt.append(epochs_to_reach(ref["val_accuracy"], target))
    got = [x for x in reach_ts if x is not None]
    out.append(
        f"**{ds}, two-stage efficiency (002 Table 3).** 002 counts the epoch of the best validation accuracy; "
        f"two-stage retrains for half the original's epochs ({n_ts}), so its best epoch cannot exceed {n_ts} and a "
        "smaller number is no evidence. Compared at the same target instead — the first epoch whose holdout "
        "accuracy is within 1% of retraining's best — two-stage gets there in "
        + (
            f"{fmt_value(*mean_std(got), percent=False, digits=1)} epochs in {len(got)} of {len(reach_ts)} runs"
            if got
            else f"none of {len(reach_ts)} runs"
        )
        + f" ({len(reach_ts) - len(got)} never within its {n_ts} epochs), retraining from scratch in "
        f"{fmt_value(*mean_std([x for x in reach_rt if x is not None]), percent=False, digits=1)} epochs; "
        "each epoch of two-stage sees half the retain set."
    )
    augs = ("hflip", "vflip", "crop90")

    def tta_seeds(rows: list[dict[str, Any]]) -> list[float]:
        return [
            float(np.mean([r["metrics"][f"forget_accuracy_{t}"] for t in augs]))
            for r in rows
            if r["metrics"] and all(r["metrics"].get(f"forget_accuracy_{t}") is not None for t in augs)
        ]

    rt_rows = [r for r in rb if r["method"] == "retrain"]
    tta = {name: tta_seeds(rows) for name, rows in (("min", ts_min), ("max", ts_max), ("retrain", rt_rows))}
    chance = 1.0 / 10
    (m_min, s_min), (m_max, s_max) = mean_std(tta["min"]), mean_std(tta["max"])
    separated = (m_min is not None and m_max is not None
                 and abs(m_min - m_max) > 2 * max(s_min or 0.0, s_max or 0.0))  # fmt: skip
    below = m_min is not None and m_min < chance
    out.append(
        f"**{ds}, two-stage labels under test-time augmentation (002 Table 4).** 002's point is that contrastive "
        "(min) labels leave the forgotten samples *below chance* under TTA while max-mislabel labels stay above "
        f"it. Mean TTA forget accuracy: min {fmt_value(m_min, s_min, percent=True)}%, max "
        f"{fmt_value(m_max, s_max, percent=True)}%, retraining {fmt_value(*mean_std(tta['retrain']), percent=True)}%, "
        f"chance {100 * chance:.0f}%. "
        + (
            "Min labels are below chance, as 002 reports. "
            if below
            else "Min labels are not below chance here; 002's claim does not reproduce. "
        )
        + (
            "The min–max difference exceeds twice the seed spread."
            if separated
            else "The min–max difference is within twice the seed spread: not told apart from noise."
        )
    )
    return out


SCRUBS = ("scrub", "scrub_attention", "scrub_similarity")


def scrub_rounds_figure(results: list[dict[str, Any]], ds_name: str, out: Path) -> str:
    """001 Fig. 2: SCRUB's max-step KL on D_f and min-step loss on D_r per round (mean ± std over seeds)."""
    panels: dict[str, dict[str, tuple[list[float], list[float]]]] = {"max-step: KL(teacher ‖ student) on D_f": {},
                                                                      "min-step: loss on D_r": {}}  # fmt: skip
    for method in SCRUBS:
        runs = [r["diagnostics"]["rounds"] for r in results
                if r["method"] == method and r.get("diagnostics", {}).get("rounds")]  # fmt: skip
        if not runs:
            continue
        n = max(len(x) for x in runs)
        for panel, key in zip(panels, ("max_kl", "min_loss"), strict=True):
            cols = [[run[i].get(key, np.nan) if i < len(run) else np.nan for run in runs] for i in range(n)]
            mean = [float(np.nanmean(c)) if np.isfinite(c).any() else np.nan for c in cols]
            std = [float(np.nanstd(c)) if np.isfinite(c).any() else np.nan for c in cols]
            panels[panel][method] = (mean, std)
    fig = plots.curve_panels(panels, xlabel="round", ylabel=["KL", "α·KL + γ·CE"], x0=1,
                             title=f"{ds_name}: SCRUB per round (001 Fig. 2)")  # fmt: skip
    name = f"img/distillation_scrub_rounds_{ds_name}.png"
    write_bytes_atomic(out.parent / name, plots.png(fig))
    return name


SALIENCY_MODELS = ("original", "retrain", "scrub", "two_stage")


def saliency_figure(ds: Any, chosen: dict[str, dict[str, Any]], seed: int, ds_name: str, out: Path) -> str:
    """001's remark after Fig. 3, as maps: Captum attributions of the original, retrained and unlearned models on
    3 forgotten (mislabelled) and 3 retained samples of the RC set-up, toward each sample's TRUE class."""
    from unlearnkit.evaluation.attribution import attributions

    split = split_dataset(ds, seed=seed, holdout_fraction=0.1, train_size=RC["train_size"])
    splits = make_scenario("mislabel", source=0, target=1, count=RC["count"]).prepare(split, seed=seed)
    original = build_model("lenet", ds.input_shape, ds.num_classes, seed=seed)
    fit(original, splits.train, RC["train"], seed=seed)
    models = {"original": original.eval()}
    for m in SALIENCY_MODELS[1:]:
        models[m] = make_method(m, **chosen.get(m, {})).unlearn(original, splits, seed=seed, recipe=RC["train"]).model
    true = splits.extras["forget_true"]
    x_f, y_f = true.subset(torch.arange(3)).tensors()  # the forgotten samples, with their true labels
    g = torch.Generator().manual_seed(seed)
    keep = splits.retain.subset(torch.randperm(len(splits.retain), generator=g)[:3])
    x_r, y_r = keep.tensors()
    x, y = torch.cat([x_f, x_r]), torch.cat([y_f, y_r])
    rows = [f"forgotten {i + 1} (true {int(c)})" for i, c in enumerate(y_f)]
    rows += [f"retained {i + 1} (class {int(c)})" for i, c in enumerate(y_r)]
    cols = ["input"]
    maps: list[list[Any]] = [[x[i, 0].numpy()] for i in range(len(x))]
    for method in ("saliency", "integrated_gradients"):
        for name, model in models.items():
            a = attributions(model, x, y, method)
            cols.append(f"{name}\n{'saliency' if method == 'saliency' else 'int. grad.'}")
            for i in range(len(x)):
                maps[i].append(a[i].abs().sum(0).numpy())
    fig = plots.image_grid(maps, row_labels=rows, col_labels=cols,
                           title=f"{ds_name}, resolving confusion: attributions toward the true class "
                                 f"(seed {seed})")  # fmt: skip
    name = f"img/distillation_saliency_{ds_name}.png"
    write_bytes_atomic(out.parent / name, plots.png(fig))
    return name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--datasets", default="mnist,fashion_mnist")
    ap.add_argument("--out", default="docs/results/distillation.md")
    args = ap.parse_args()
    seeds = tuple(int(s) for s in args.seeds.split(","))
    command = "python bench/distillation.py" + ("" if args.seeds == "0,1,2" and args.datasets == "mnist,fashion_mnist"
                                                else f" --seeds {args.seeds} --datasets {args.datasets}")  # fmt: skip
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f}s] {msg}", file=sys.stderr, flush=True)

    sections: list[str] = []
    found: list[str] = []
    experiments = []
    for ds_name in args.datasets.split(","):
        ds = load_dataset(ds_name)
        log(f"{ds_name}: tuning on the holdout split of seed {TUNING_SEED}")
        chosen, tune_rows = tune(ds, log)
        rb = ExperimentConfig(
            name=f"{ds_name} RB", dataset=ds_name, model="lenet", scenario="random", scenario_options={"fraction": 0.1},
            methods=METHODS, method_params=chosen, seeds=seeds, train=RB["train"], train_size=RB["train_size"],
            track_validation=True,
        )  # fmt: skip
        log(f"{ds_name}: removing bias (random 10%)")
        rb_result = run_experiment(rb, dataset=ds)
        log(f"{ds_name}: resolving confusion (mislabel 0<->1)")
        rc = dataclasses.replace(rb, name=f"{ds_name} RC", scenario="mislabel",
                                 scenario_options={"source": 0, "target": 1, "count": RC["count"]},
                                 train=RC["train"], train_size=RC["train_size"])  # fmt: skip
        rc_result = run_experiment(rc, dataset=ds)
        log(f"{ds_name}: two-stage with max-mislabel labels")
        max_params = {"two_stage": {**chosen["two_stage"], "labels": "max_mislabel"}}
        ts_max = dataclasses.replace(
            rb, name=f"{ds_name} two-stage max_mislabel", methods=("two_stage",), method_params=max_params
        )
        ts_result = run_experiment(ts_max, dataset=ds)
        experiments += [rb_result, rc_result, ts_result]

        facts = rb_result.data
        gap = mean_std([d["original"]["train_test_gap"] for d in facts])
        rc_facts = rc_result.data
        ts_rows = [r for r in rb_result.results if r["method"] == "two_stage"]
        max_rows = [r for r in ts_result.results if r["method"] == "two_stage"]
        found += findings(ds_name, rb_result.results, rc_result.results, ts_rows, max_rows)
        sections.append(f"## {ds_name}\n")
        sections.append(
            f"### Removing bias (RB): forget a random 10% of a {RB['train_size']:,}-image training subset\n\n"
            f"LeNet trained {RB['train'].epochs} epochs (SGD, lr {RB['train'].lr}). Original: train accuracy "
            f"{fmt_value(*mean_std([d['original']['train_accuracy'] for d in facts]), percent=True)}%, "
            f"train–test gap {fmt_value(*gap, percent=True)} points. Mean ± std over seeds {args.seeds}. "
            f"Forget % and MIA %: closer to `retrain` is better.\n"
        )
        sections.append(md_table(rb_result.results, RB_COLUMNS) + "\n")
        img = scrub_rounds_figure(rb_result.results, ds_name, Path(args.out))
        sections.append(
            f"![SCRUB max-step and min-step losses per round, {ds_name}]({img})\n\n"
            "SCRUB's two losses per round at the settings chosen on the holdout split (001 Fig. 2): the KL it "
            "ascends on the forget set in its max-steps (only the first `max_steps` rounds have one) and the "
            "distillation + cross-entropy loss it descends on the retain set. Mean ± std over seeds.\n"
        )
        sections.append(
            f"### Resolving confusion (RC): {RC['count']} images of class 0 labelled 1 and {RC['count']} of class 1 "
            f"labelled 0, on a {RC['train_size']:,}-image training subset\n\n"
            f"The forget set is the mislabelled images. `forget % (trained labels)` uses the wrong labels "
            f"(retraining drives it toward 0); `forget % (true labels)` the correct ones; `confusion a↔b` counts "
            f"test images of 0 predicted as 1 plus 1 predicted as 0. Original train–test gap "
            f"{fmt_value(*mean_std([d['original']['train_test_gap'] for d in rc_facts]), percent=True)} points.\n"
        )
        sections.append(md_table(rc_result.results, RC_COLUMNS) + "\n")
        log(f"{ds_name}: attribution maps (Captum)")
        sal = saliency_figure(ds, chosen, seeds[0], ds_name, Path(args.out))
        sections.append(
            f"![Attribution maps, resolving confusion, {ds_name}]({sal})\n\n"
            "001's remark after its Fig. 3 — on mislabelled classes the unlearned models focus on more explainable "
            "features — as maps: Captum's saliency (|∂f/∂x|) and integrated gradients (zero baseline) toward each "
            "sample's true class, for the original, retraining and two unlearned models, on three forgotten "
            "(mislabelled) images and three retained ones (seed "
            f"{seeds[0]}; each map scaled to its own maximum). Whether a map is 'more explainable' is for the "
            "reader's eye; the page measures nothing from it.\n"
        )
        ts_min = [r for r in rb_result.results if r["method"] == "two_stage"]
        sections.append(
            "### Two-stage: neutralisation, test-time augmentation, epochs to best (RB setting)\n\n"
            "`forget %` columns are accuracy on the forget set; hflip / vflip / crop90 are the final model's forget "
            "accuracy under those test-time transforms (002's check); epochs to best = epoch of the best holdout "
            "accuracy, for the two-stage retraining stage and for retraining from scratch (002 Table 3).\n"
        )
        variants = [
            ("contrastive (min) labels", ts_min),
            ("max-mislabel labels", [r for r in ts_result.results if r["method"] == "two_stage"]),
        ]
        sections.append(two_stage_table(rb_result.results, variants) + "\n")
        sections.append(
            f"### Settings chosen on the holdout split (tuning seed {TUNING_SEED}, not reported above)\n\n"
            "Score = |forget accuracy − holdout accuracy| + holdout accuracy lost vs the original "
            "(lower is better).\n\n"
            "| method | chosen settings | forget % | holdout % | score (points) |\n|---|---|---|---|---|\n"
            + "\n".join("| " + " | ".join(r) + " |" for r in tune_rows)
            + "\n"
        )
        log(f"{ds_name}: done")

    env = environment()
    wall = time.perf_counter() - start
    header = (
        "# Distillation-based unlearning: SCRUB and two-stage\n\n"
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d')} in {wall / 60:.1f} minutes "
        f"({env['cpu_count']} CPUs, torch {env['torch']}, unlearnkit {env['unlearnkit']}). "
        "Raw records: `docs/results/distillation.json`.\n\n"
    )
    notes = (
        "## Findings (computed from the records below)\n\n" + "\n".join(f"- {f}" for f in found) + "\n\n"
        "Setup: LeNet-style CNN; random forgetting on a small training subset so the original memorises "
        "(on the full sets the untouched model already scores within noise of retraining and nothing is "
        "measured); settings chosen on the holdout split of a separate seed; `seconds` exclude the per-epoch "
        "holdout evaluation used for epochs-to-best. MIA = the loss-based attack of docs/metrics.md (in RC it "
        "also sees the label noise).\n"
    )
    text = header + notes + "\n" + "\n".join(sections)
    record = build_record(experiments, device="cpu")
    out = Path(args.out)
    write_text_atomic(out.with_suffix(".json"), json.dumps(clean_json(record), indent=1) + "\n")
    write_text_atomic(out, text)
    log(f"wrote {out} and {out.with_suffix('.json')} in {wall:.0f}s")


if __name__ == "__main__":
    main()
