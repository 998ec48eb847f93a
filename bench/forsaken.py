"""003 (Forsaken) results: forgetting rate by membership oracle for Forsaken and its baselines.

    python bench/forsaken.py                  # all of it (about an hour on 2 cores), writes docs/results/forsaken.md
    python bench/forsaken.py --render-only    # re-render the page from docs/results/forsaken.json

Real MNIST (Fashion-MNIST images for the OOD scenario), an MLP (784-256-10)
trained with one recipe for every model; for each seed:

* one shadow-model oracle (XGBoost on sorted confidences + true-label confidence,
  the shadow trained with the target's recipe on a seeded half of the holdout
  split) and, for comparison, a loss-threshold oracle fitted on the original's
  own members / holdout;
* scenarios ``ood`` (200 Fashion-MNIST images with random labels inserted and
  forgotten; P from 1,000 other ones), ``id`` (200 random training samples; P
  from the holdout split, never trained on — the paper takes test samples) and
  ``poison`` (2 / 4 / 10 % of class 5 relabelled 3; forget the flipped ones; P
  from clean holdout samples);
* the original is trained by ``train_smu`` (bit-identical to plain training; it
  also records the forget candidates for SMU), the SISA / SISA-DP ensembles are
  trained with the same recipe; every method's FR uses BT / BF of its own original.

Nothing here is tuned on test data: Forsaken runs at its defaults; the λ sweep
(Table VIII) is reported, not used to choose.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from _results import pct, results_parser
from unlearnkit import TrainConfig, make_method
from unlearnkit.core.models import build_model
from unlearnkit.core.training import fit
from unlearnkit.data import load_dataset, split_dataset
from unlearnkit.data.scenarios import make_scenario
from unlearnkit.data.splits import DataSplit, ForgetRequest, Splits, View
from unlearnkit.env import environment
from unlearnkit.evaluation.attacks import (
    catastrophic_forgetting_rate,
    forgetting_rate,
    make_attack,
    oracle_quality,
    roc_summary,
    train_shadow_oracle,
)
from unlearnkit.evaluation.outputs import Outputs, outputs_of
from unlearnkit.evaluation.scores import accuracy
from unlearnkit.files import clean_json, write_bytes_atomic, write_text_atomic
from unlearnkit.methods import train_sisa, train_smu
from unlearnkit.reporting import plots
from unlearnkit.reporting.tables import markdown_table, mean_std

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "results" / "forsaken.md"
COMMAND = "python bench/forsaken.py"

RECIPE = TrainConfig(epochs=20, batch_size=64, lr=0.05, momentum=0.9)
HOLDOUT = 0.25  # 15,000 MNIST images: the shadow's pool
WIDTHS = (256,)
SISA = {"shards": 5, "slices": 5}
DP_EPSILON = 16.0
LAMBDAS = (0.0, 0.1, 1.0, 10.0, 100.0)  # 003 Table VIII's values
SIZES = (50, 100, 200, 300)
POISON = (0.02, 0.04, 0.10)
CFR_SAMPLES = 2000
ORIGINAL_FACTS = ("forget_accuracy", "test_accuracy", "poisoned_class_recall", "forget_true_accuracy")
METHODS = ("retrain", "forsaken", "smu", "sisa", "sisa_dp")
#: rows that are a method at other settings: the poison cases add the project's own training-label target
VARIANTS = {"forsaken_trained_label": ("forsaken", {"pull_toward": "trained_label"})}


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build(seed: int) -> torch.nn.Module:
    return build_model("mlp", (1, 28, 28), 10, seed=seed, widths=WIDTHS)


def positions(train: View, rows: torch.Tensor) -> torch.Tensor:
    return torch.isin(train.indices, rows).nonzero().flatten()


class Oracles:
    """The shadow oracle (003) (fitted once per seed) and a loss-threshold oracle (per original)."""

    def __init__(self, split: DataSplit, seed: int) -> None:
        start = time.perf_counter()
        self.shadow, self.facts = train_shadow_oracle(build, RECIPE, split.holdout, seed=seed + 1000)
        self.facts["seconds"] = time.perf_counter() - start
        self.threshold: Any = None

    def fit_threshold(self, members: Outputs, nonmembers: Outputs, seed: int) -> None:
        self.threshold = make_attack("threshold_loss").fit(members, nonmembers, seed=seed)


def membership(oracles: Oracles, o: Outputs) -> dict[str, np.ndarray]:
    return {"shadow": oracles.shadow.predict(o), "loss": oracles.threshold.predict(o)}


def evaluate(model: torch.nn.Module, splits: Splits, retained: View, oracles: Oracles, poisoned: int | None) -> dict:
    model.eval()
    out = {
        "forget": outputs_of(model, splits.forget),
        "retained": outputs_of(model, retained),
        "test": outputs_of(model, splits.test),
    }
    facts: dict[str, Any] = {
        "forget_accuracy": accuracy(out["forget"]),
        "test_accuracy": accuracy(out["test"]),
        "member_forget": membership(oracles, out["forget"]),
        "member_retained": membership(oracles, out["retained"]),
    }
    if poisoned is not None:
        facts["poisoned_class_recall"] = accuracy(out["test"].of_classes([poisoned]))
    if "forget_true" in splits.extras:  # the flipped samples scored against their true labels
        facts["forget_true_accuracy"] = accuracy(outputs_of(model, splits.extras["forget_true"]))
    return facts


def compare(before: dict, after: dict) -> dict[str, Any]:
    row = {
        "forget_accuracy": after["forget_accuracy"],
        "test_accuracy": after["test_accuracy"],
        "test_change": after["test_accuracy"] - before["test_accuracy"],
    }
    for oracle in ("shadow", "loss"):
        row[f"fr_{oracle}"] = forgetting_rate(before["member_forget"][oracle], after["member_forget"][oracle])
        row[f"cfr_{oracle}"] = catastrophic_forgetting_rate(
            before["member_retained"][oracle], after["member_retained"][oracle]
        )
    if "forget_true_accuracy" in after:
        row["forget_true_accuracy"] = after["forget_true_accuracy"]
    if "poisoned_class_recall" in after:
        row["poisoned_class_recall"] = after["poisoned_class_recall"]
        row["poisoned_class_recall_before"] = before["poisoned_class_recall"]
    return row


def run_case(split: DataSplit, splits: Splits, seed: int, oracles: Oracles, *, methods: tuple[str, ...],
             poisoned: int | None = None, sweep: bool = False) -> dict[str, Any]:  # fmt: skip
    """Original (via train_smu), retrain, Forsaken, SMU, SISA, SISA-DP on one request; FR / CFR / accuracy / time."""
    train = splits.train
    retained = splits.retain.subset(torch.randperm(len(splits.retain), generator=torch.Generator().manual_seed(seed))
                                    [:CFR_SAMPLES], "retained")  # fmt: skip
    t = time.perf_counter()
    smu_model = train_smu(build(seed), train, RECIPE, candidates=positions(train, splits.forget.indices), seed=seed)
    record_seconds = time.perf_counter() - t
    original = smu_model.inner.eval()
    oracles.fit_threshold(outputs_of(original, retained), outputs_of(original, split.holdout), seed)
    before = evaluate(original, splits, retained, oracles, poisoned)
    rows: dict[str, Any] = {}
    case: dict[str, Any] = {
        "n_train": len(train),
        "n_forget": len(splits.forget),
        "smu_training_seconds": record_seconds,
        "original": {k: v for k, v in before.items() if k in ORIGINAL_FACTS},
        "BT_shadow": int(before["member_forget"]["shadow"].sum()),
        "BT_loss": int(before["member_forget"]["loss"].sum()),
        "oracle_quality": oracle_quality(
            oracles.shadow, outputs_of(original, retained), outputs_of(original, splits.test)
        ),
        "rows": rows,
    }  # fmt: skip
    ensembles: dict[str, Any] = {}
    for name in methods:
        say(f"  {name}")
        if name in ("sisa", "sisa_dp"):
            t = time.perf_counter()
            eps = DP_EPSILON if name == "sisa_dp" else None
            ens = train_sisa(build(seed), train, RECIPE, seed=seed, dp_epsilon=eps,
                             **SISA)  # fmt: skip
            train_seconds = time.perf_counter() - t
            ens_before = evaluate(ens, splits, retained, oracles, poisoned)
            outcome = make_method(name).unlearn(ens, splits, seed=seed)
            row = compare(ens_before, evaluate(outcome.model, splits, retained, oracles, poisoned))
            row["original_test_accuracy"] = ens_before["test_accuracy"]
            row["training_seconds"] = train_seconds
            row["shards_retrained"] = outcome.diagnostics["shards_retrained"]
            row["checkpoint_bytes"] = outcome.diagnostics["checkpoint_bytes"]
            ensembles[name] = ens
        elif name == "smu":
            outcome = make_method("smu").unlearn(smu_model, splits, seed=seed)
            row = compare(before, evaluate(outcome.model, splits, retained, oracles, poisoned))
            row["storage_bytes"] = int(smu_model.contributions.numel() * 4)
        else:
            method, settings = VARIANTS.get(name, (name, {}))
            outcome = make_method(method, **settings).unlearn(original, splits, seed=seed, recipe=RECIPE)
            row = compare(before, evaluate(outcome.model, splits, retained, oracles, poisoned))
        row["seconds"] = outcome.seconds
        rows[name] = row
    for row in rows.values():
        row["speedup"] = rows["retrain"]["seconds"] / row["seconds"] if "retrain" in rows else None
    if sweep:
        case["lambda_sweep"] = []
        for weighted in (True, False):
            for lam in LAMBDAS:
                outcome = make_method("forsaken", lam=lam, weighted_penalty=weighted).unlearn(
                    original, splits, seed=seed
                )
                row = compare(before, evaluate(outcome.model, splits, retained, oracles, poisoned))
                row["moved_fraction"] = outcome.diagnostics["moved_fraction"]
                case["lambda_sweep"].append({"lam": lam, "weighted": weighted, "seconds": outcome.seconds, **row})
    return case


def run_sizes(split: DataSplit, seed: int, oracles: Oracles) -> list[dict[str, Any]]:
    """Table XVI: one original with 300 inserted OOD images; forget the first k of them."""
    scenario = make_scenario("ood", count=max(SIZES))
    full = scenario.prepare(split, seed=seed)
    train = full.train
    inserted = positions(train, full.forget.indices)
    t = time.perf_counter()
    smu_model = train_smu(build(seed), train, RECIPE, candidates=inserted, seed=seed)
    record_seconds = time.perf_counter() - t
    original = smu_model.inner.eval()
    oracles.fit_threshold(outputs_of(original, full.retain.subset(torch.arange(CFR_SAMPLES))),
                          outputs_of(original, split.holdout), seed)  # fmt: skip
    out = []
    for k in SIZES:
        say(f"  size {k}")
        splits = scenario.prepare(split, seed=seed, request=ForgetRequest.from_indices(inserted[:k]))
        retained = splits.retain.subset(torch.arange(CFR_SAMPLES), "retained")
        before = evaluate(original, splits, retained, oracles, None)
        entry: dict[str, Any] = {"size": k, "BT_shadow": int(before["member_forget"]["shadow"].sum()),
                                 "smu_training_seconds": record_seconds}  # fmt: skip
        for name in ("retrain", "forsaken", "smu"):
            model = smu_model if name == "smu" else original
            outcome = make_method(name).unlearn(model, splits, seed=seed, recipe=RECIPE)
            row = compare(before, evaluate(outcome.model, splits, retained, oracles, None))
            row["seconds"] = outcome.seconds
            entry[name] = row
        out.append(entry)
    return out


def overfit_oracle_check(seed: int) -> dict[str, Any]:
    """Done-means check: the shadow oracle on an overfit original (Fashion-MNIST MLP, 500 images, 60 epochs)."""
    ds = load_dataset("fashion_mnist")
    split = split_dataset(ds, seed=seed, holdout_fraction=0.1, train_size=500)
    recipe = TrainConfig(epochs=60, batch_size=32, lr=0.05)
    target = build_model("mlp", ds.input_shape, 10, seed=seed, widths=WIDTHS)
    fit(target, split.train, recipe, seed=seed)
    target.eval()

    def make(s: int) -> torch.nn.Module:
        return build_model("mlp", ds.input_shape, 10, seed=s, widths=WIDTHS)

    oracle, facts = train_shadow_oracle(make, recipe, split.holdout, seed=seed + 1000, pool_size=1000)
    members, nonmembers = outputs_of(target, split.train), outputs_of(target, split.test.subset(torch.arange(500)))
    q = oracle_quality(oracle, members, nonmembers)
    q["auc"] = roc_summary(oracle.score(members), oracle.score(nonmembers))["auc"]
    q["train_accuracy"], q["test_accuracy"] = accuracy(members), accuracy(outputs_of(target, split.test))
    return {**q, "shadow": facts}


def main() -> None:
    ap = results_parser(__doc__, PAGE, "1 epoch, 2x2 shards: check the script end to end (minutes)")
    args = ap.parse_args()
    if args.smoke:
        global RECIPE, SISA, POISON
        RECIPE = TrainConfig(**{**RECIPE.to_dict(), "epochs": 1})
        SISA, POISON = {"shards": 2, "slices": 2}, (0.04,)
    json_path = args.out.with_suffix(".json")
    if args.render_only:
        write_page(args.out, json.loads(json_path.read_text()))
        return
    torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    partial = json_path.with_suffix(".partial.json")
    record: dict[str, Any] = json.loads(partial.read_text()) if partial.exists() else {"seeds": {}}
    record.update(env=environment(torch.device("cpu")), recipe=RECIPE.to_dict(), sisa=SISA, dp_epsilon=DP_EPSILON)
    start = time.perf_counter()
    ds = load_dataset("mnist")
    for seed in seeds:
        done = record["seeds"].setdefault(str(seed), {})
        split = split_dataset(ds, seed=seed, holdout_fraction=HOLDOUT)
        say(f"seed {seed}: shadow oracle")
        oracles = Oracles(split, seed)
        done["shadow"] = oracles.facts
        # SISA-DP (Opacus per-sample gradients) costs ~25 min per run here: first seed only
        ood_methods = METHODS if seed == seeds[0] else tuple(m for m in METHODS if m != "sisa_dp")
        cases: list[tuple[str, Any, dict[str, Any]]] = [
            ("ood", make_scenario("ood"), {"methods": ood_methods, "sweep": True}),
            ("id", make_scenario("id"), {"methods": METHODS[:4]}),
        ]
        poison_methods = (*METHODS[:2], *VARIANTS, *METHODS[2:4])
        cases += [(f"poison_{int(100 * s)}", make_scenario("poison", share=s),
                   {"methods": poison_methods, "poisoned": 5}) for s in POISON]  # fmt: skip
        for key, scenario, opts in cases:
            if key in done:
                continue
            say(f"seed {seed}: {key}")
            splits = scenario.prepare(split, seed=seed)
            done[key] = run_case(split, splits, seed, oracles, **opts)
            partial.write_text(json.dumps(clean_json(record)))
        if "sizes" not in done:
            say(f"seed {seed}: sizes")
            done["sizes"] = run_sizes(split, seed, oracles)
        partial.write_text(json.dumps(clean_json(record)))
    say("overfit oracle check")
    record["overfit_oracle"] = overfit_oracle_check(0)
    record["total_seconds"] = time.perf_counter() - start + record.get("total_seconds", 0.0)
    write_text_atomic(json_path, json.dumps(clean_json(record), indent=1))
    partial.unlink(missing_ok=True)
    write_page(args.out, record)
    say(f"wrote {args.out}")


# -- rendering --------------------------------------------------------------------


def num(values: list[float | None], digits: int = 2) -> str:
    m, s = mean_std(values)
    if m is None:
        return "–"
    return f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if s is not None else "")


def fr(rows: list[dict], oracle: str = "shadow") -> str:
    return pct([r[f"fr_{oracle}"]["fr"] for r in rows])


def counts(rows: list[dict], oracle: str = "shadow") -> str:
    return " / ".join(f"{np.mean([r[f'fr_{oracle}'][k] for r in rows]):.0f}" for k in ("BT", "BF", "AF"))


def main_table(record: dict, key: str) -> str:
    seeds = list(record["seeds"].values())
    cases = [s[key] for s in seeds if key in s]
    methods = list(cases[0]["rows"])
    poison = "poisoned_class_recall" in cases[0]["rows"][methods[0]]
    head = ["method", "FR % (shadow)", "BT / BF / AF", "FR % (loss thr.)", "CFR % (shadow)", "forget acc %",
            "test acc change (pts)", "seconds", "speed-up"]  # fmt: skip
    if poison:
        head.insert(6, "class-5 recall % (before → after)")
        head.insert(6, "forget acc, true labels %")
    rows = []
    for m in methods:
        rs = [c["rows"][m] for c in cases if m in c["rows"]]
        label = f"`{m}`" + (f" ({len(rs)} seed{'s' if len(rs) > 1 else ''})" if len(rs) != len(cases) else "")
        row = [label, fr(rs), counts(rs), fr(rs, "loss"), pct([r["cfr_shadow"]["cfr"] for r in rs]),
               pct([r["forget_accuracy"] for r in rs]), pct([r["test_change"] for r in rs]),
               num([r["seconds"] for r in rs]), f"{np.mean([r['speedup'] for r in rs]):.1f}x"]  # fmt: skip
        if poison:
            row.insert(
                6,
                pct([r["poisoned_class_recall_before"] for r in rs])
                + " → "
                + pct([r["poisoned_class_recall"] for r in rs]),
            )
            row.insert(6, pct([r.get("forget_true_accuracy") for r in rs]))
        rows.append(row)
    orig = [c["original"] for c in cases]
    note = (
        f"\n\n{len(cases)} seeds; {cases[0]['n_forget']} forgotten of {cases[0]['n_train']} training samples; "
        f"original test accuracy {pct([o['test_accuracy'] for o in orig])} %, forget accuracy "
        f"{pct([o['forget_accuracy'] for o in orig])} %. BT / BF / AF: forget samples the shadow oracle calls "
        "members before / non-members before / non-members after (mean over seeds; SISA's counts are its own "
        "ensemble's)."
    )
    return markdown_table(head, rows) + note


def sweep_table(record: dict) -> str:
    entries = [e for s in record["seeds"].values() for e in s["ood"]["lambda_sweep"]]
    rows = []
    for lam in sorted({e["lam"] for e in entries}):
        cells = [f"{lam:g}"]
        for weighted in (True, False):
            rs = [e for e in entries if e["lam"] == lam and e["weighted"] == weighted]
            cells += [fr(rs), pct([r["test_change"] for r in rs]), pct([r["forget_accuracy"] for r in rs]),
                      pct([r.get("moved_fraction") for r in rs])]  # fmt: skip
        rows.append(cells)
    head = ["λ", "FR % with ω", "test change (pts)", "forget acc %", "parameters moved %", "FR % without ω",
            "test change (pts)", "forget acc %", "parameters moved %"]  # fmt: skip
    return markdown_table(head, rows)


def sizes_table(record: dict) -> str:
    entries = [e for s in record["seeds"].values() for e in s.get("sizes", [])]
    rows = []
    for k in SIZES:
        es = [e for e in entries if e["size"] == k]
        cells = [str(k), f"{np.mean([e['BT_shadow'] for e in es]):.0f}"]
        for m in ("retrain", "forsaken", "smu"):
            cells += [fr([e[m] for e in es]), num([e[m]["seconds"] for e in es])]
        rows.append(cells)
    head = ["forgotten", "BT", "retrain FR %", "s", "forsaken FR %", "s", "smu FR %", "s"]
    return markdown_table(head, rows)


def oracle_table(record: dict) -> str:
    rows = []
    for key in ("ood", "id", "poison_4"):
        qs = [s[key]["oracle_quality"] for s in record["seeds"].values() if key in s]
        rows.append([f"MNIST original ({key})", pct([q["accuracy"] for q in qs]), pct([q["precision"] for q in qs]),
                     pct([q["recall"] for q in qs]), f"{qs[0]['members']} / {qs[0]['nonmembers']}"])  # fmt: skip
    o = record["overfit_oracle"]
    rows.append(["overfit Fashion-MNIST MLP (500 images, 60 epochs)", pct([o["accuracy"]]), pct([o["precision"]]),
                 pct([o["recall"]]), f"{o['members']} / {o['nonmembers']}"])  # fmt: skip
    return markdown_table(
        ["target model", "balanced accuracy %", "precision %", "recall %", "members / non-members"], rows
    )


def render(record: dict) -> str:
    seeds = list(record["seeds"].values())

    def shadow_gap() -> str:
        tr = [s["shadow"]["shadow_train_accuracy"] for s in seeds if "shadow" in s]
        ho = [s["shadow"]["shadow_holdout_accuracy"] for s in seeds if "shadow" in s]
        return f"{100 * np.mean(tr):.1f}% / {100 * np.mean(ho):.1f}%" if tr else "(not recorded)"

    ood = [s["ood"]["rows"] for s in seeds]
    fz = [r["forsaken"] for r in ood]
    fr_f = mean_std([r["fr_shadow"]["fr"] for r in fz])[0]
    drop = -mean_std([r["test_change"] for r in fz])[0]
    speed = float(np.mean([r["speedup"] for r in fz]))
    retrain_s = float(np.mean([r["retrain"]["seconds"] for r in ood]))
    o = record["overfit_oracle"]
    r = record["recipe"]
    sisa_speed = float(np.mean([x["sisa"]["speedup"] for x in ood]))
    id_fr = fr([s["id"]["rows"]["forsaken"] for s in seeds]) + "%"
    p4 = [s["poison_4"]["rows"]["forsaken"] for s in seeds]
    poison_fr = fr(p4) + "%"
    recall_before = pct([x["poisoned_class_recall_before"] for x in p4])
    recall_after = pct([x["poisoned_class_recall"] for x in p4])

    def recall_of(method: str) -> str:
        return pct([s["poison_4"]["rows"][method]["poisoned_class_recall"] for s in seeds])

    def mean_of(method: str, key: str, case: str = "poison_4") -> float:
        return float(np.mean([s[case]["rows"][method][key] for s in seeds if method in s[case]["rows"]]))

    before_m = float(np.mean([x["poisoned_class_recall_before"] for x in p4]))
    paper_m, own_m = (
        mean_of("forsaken", "poisoned_class_recall"),
        mean_of("forsaken_trained_label", "poisoned_class_recall"),
    )
    defaults = make_method("forsaken").get_params()

    sisa_bytes = seeds[0]["ood"]["rows"]["sisa"]["checkpoint_bytes"] / 1e6
    smu_bytes = seeds[0]["ood"]["rows"]["smu"]["storage_bytes"] / 1e6
    total = record["total_seconds"] + record.get("earlier_run_seconds", 0.0)
    earlier = (
        f"; this includes a first run of {record['earlier_run_seconds'] / 60:.0f} min, stopped after seed 0's OOD "
        "case to take SISA-DP off the later seeds, whose results were kept"
        if record.get("earlier_run_seconds")
        else ""
    )
    lines = [
        "# Forsaken and its baselines: forgetting rate by membership oracle (003)",
        "",
        f"Generated by `{COMMAND}` ({len(seeds)} seed{'s' if len(seeds) != 1 else ''}, {total / 60:.0f} min on "
        f"{record['env'].get('cpu_count', '?')} CPU cores, other work sharing them at times{earlier}). Raw numbers: "
        "[forsaken.json](forsaken.json).",
        "",
        "**Set-up.** Real MNIST; MLP 784-256-10; every model (original, retrained reference, shadow, SISA "
        f"constituents) uses one recipe: SGD lr {r['lr']}, momentum {r['momentum']}, batch {r['batch_size']}, "
        f"{r['epochs']} epochs. 25% of MNIST's training images are held out (the shadow oracle's pool); the original "
        "trains on the other 45,000 plus the scenario's inserted / relabelled samples. SISA: "
        f"{SISA['shards']} shards × {SISA['slices']} slices; SISA-DP: the same with DP-SGD, "
        f"ε = {record['dp_epsilon']:g}, "
        "δ = 1e-5, clipping 1.0. "
        f"Forsaken at its defaults ({defaults['iterations']} iterations, ξ = {defaults['xi']:g}, "
        f"λ = {defaults['lam']:g} on eq. 5's summed penalty, |D_0| = {defaults['penalty_set_size']}, ω on, each "
        "forget sample pulled toward P[its true label] — its training label except in the poison cases). "
        "Speed-up = retraining's seconds (same recipe, same seed) / the method's unlearning seconds; SISA's and "
        "SMU's training-time preparation is not counted there (it is listed below).",
        "",
        "**Oracles.** FR = (AF − BF) / BT (003 eq. 2) and CFR = (BT_train − AT_train) / BT_train (eq. 10) use the "
        "shadow-model oracle: a shadow MLP trained with the target's recipe on a seeded half of the holdout split, "
        "XGBoost on its sorted confidence vector plus true-label confidence. CFR is measured on 2,000 retained "
        "training "
        "samples. A second column uses a loss-threshold oracle fitted on the original's own members / holdout. "
        "The white-box oracle (Table IX) is on [forsaken_oracles.md](forsaken_oracles.md).",
        "",
        "## Headline",
        "",
        f"* **MNIST OOD (Table III):** Forsaken's FR is **{100 * fr_f:.1f}%** with a test-accuracy drop of "
        f"**{100 * drop:.2f} points**, in {np.mean([x['seconds'] for x in fz]):.2f} s vs {retrain_s:.1f} s for "
        f"retraining: a **{speed:.0f}x** speed-up"
        + (
            " (the ≥ 20x aim is met)."
            if speed >= 20
            else f" (below the 20x aim: retraining this MLP takes only {retrain_s:.0f} s on 2 cores)."
        ),
        "* **But FR is the oracle's verdict, not forgetting of the labels:** an inserted OOD image has no true "
        "label, so Forsaken pulls it toward P[its random training label], the mean posterior of non-members "
        "*predicted as that label*, whose arg-max is that label — the model keeps predicting the random labels it "
        f"memorised (forget accuracy {pct([r['forget_accuracy'] for r in fz])}% after Forsaken vs "
        f"{pct([r['retrain']['forget_accuracy'] for r in ood])}% after retraining). A weak oracle (its BT is a "
        "minority of the forget set) is easy to move.",
        f"* **Poisoning (003 Fig. 11), 4% of class 5 flipped to 3:** class-5 test recall {recall_before}% before → "
        f"**{recall_after}%** after Forsaken with 003 §V-F's target (each flipped sample pulled toward P[its true "
        f"label 5]), against {recall_of('forsaken_trained_label')}% with the project's earlier training-label "
        f"target and {recall_of('retrain')}% after retraining; "
        + (
            "the paper's target raises the recall, as Fig. 11 reports."
            if paper_m > before_m + 0.005
            else "the paper's target does not raise the recall here."
        )
        + " Figure below: all three poison shares.",
        f"* **The oracle:** on the MNIST originals the shadow oracle is barely better than chance (MNIST generalises: "
        f"the shadow model, trained with the target's recipe, scores {shadow_gap()} on its members / non-members); on "
        "an overfit Fashion-MNIST MLP (500 images, 60 epochs, train acc "
        f"{100 * o['train_accuracy']:.0f}% vs test {100 * o['test_accuracy']:.0f}%) it reaches "
        f"**{100 * o['accuracy']:.1f}% balanced accuracy** (AUC {o['auc']:.3f}) on members vs non-members it was not "
        "fitted on (Table XIV).",
        f"* **Storage:** SISA's checkpoints take {sisa_bytes:.0f} MB; SMU's recorded contributions "
        f"{smu_bytes:.0f} MB for {seeds[0]['ood']['n_forget']} candidates.",
        "",
        "## Table III / IV / XI / V — OOD unlearning (200 Fashion-MNIST images in MNIST)",
        "",
        main_table(record, "ood"),
        "",
        "## In-distribution unlearning (200 random training samples)",
        "",
        main_table(record, "id"),
        "",
        "## Poisoning: 5 → 3 label flips, forget the flipped samples",
        "",
    ]
    for s in POISON:
        lines += [f"### {int(100 * s)}% of class 5 flipped", "", main_table(record, f"poison_{int(100 * s)}"), ""]
    lines += ["`forsaken_trained_label` is Forsaken with `pull_toward=\"trained_label\"`, the project's own earlier "
              "target (P[3] for a flipped 5), kept to show what 003's target changes. \"forget acc, true labels\" "
              "scores the flipped samples against their true class 5.", "",
              "![Class-5 test recall before and after unlearning, per poison share](img/forsaken_poison_recall.png)",
              ""]  # fmt: skip
    lines += [
        "## Table VIII — Forsaken with and without ω over λ (OOD)",
        "",
        sweep_table(record),
        "",
        "## Table XVI — FR and time against the number of forgotten samples (OOD, 300 inserted)",
        "",
        sizes_table(record),
        "",
        "## Table XIV — oracle quality on the target's members vs non-members",
        "",
        oracle_table(record),
        "",
        "## Training-time preparation (not in the speed-ups above)",
        "",
        preparation_table(record),
        "",
        "## Where this differs from the paper",
        "",
        "* 003 has no MNIST rows: on CIFAR / ImageNet / text tasks it reports Forsaken FR of 95.7–98.5% for OOD "
        "(Table III) and 86.3–94.0% for ID unlearning (Table IV), with oracles of 75–96% accuracy (Table XIV) that "
        "call 117–195 of the 200 forget samples members. Here the shadow oracle on a well-generalising MNIST MLP is "
        "near chance, so BT is small and FR rests on few samples (the BT / BF / AF counts are printed for that "
        "reason); a second oracle (loss threshold) is printed beside it.",
        "* 003 reports SISA as slow to unlearn; with 200 random forget samples every one of the 5 shards holds one, so "
        f"SISA retrains all of them (from their earliest affected slice): its speed-up is only {sisa_speed:.1f}x, and "
        "its ensemble (a vote of models trained on a fifth of the data each) is so weak a member that the oracle calls "
        "almost none of its forget samples members (BT ≈ 0), which makes its FR undefined or meaningless.",
        f"* **Forsaken's FR on in-distribution and poisoned samples:** {id_fr} (ID) and {poison_fr} (4% poison; "
        "003 Table IV: 86.3–94.0% for ID). A negative FR means the oracle calls *more* forget samples members "
        "afterwards. On poisoning, class 5's recall goes from "
        f"{recall_before}% to {recall_after}% with 003's target and to {recall_of('forsaken_trained_label')}% with "
        "the training-label target (which pulls a flipped 5 toward P[3] and so reinforces the poison; this page "
        "used it before the fix); retraining reaches "
        f"{recall_of('retrain')}%, SISA {recall_of('sisa')}% and SMU {recall_of('smu')}%. 003 Fig. 11 reports "
        "Forsaken improving the recall (by how much is only drawn, not tabulated)"
        + (
            ", which reproduces here in direction."
            if paper_m > before_m + 0.005
            else ", which does not reproduce here."
        )
        + (" The training-label target lowers it." if own_m < before_m - 0.005 else ""),
        sweep_note(record),
        "* SMU here is exact bookkeeping of SGD's per-sample displacements (momentum included) plus one epoch; 003 "
        "gives no formula, so its numbers may not be comparable.",
        "* SISA-DP (Opacus per-sample gradients, roughly 40x the cost per sample of plain training on this CPU) ran "
        "for the first seed only. Seconds on this page were measured on 2 cores that other work shared at times, "
        "so they are an upper bound on the cost; FR / accuracy figures are unaffected.",
        "* 003's white-box oracle (Table IX) and the t-SNE views of Figs. 7–10: [forsaken_oracles.md]"
        "(forsaken_oracles.md); Alg. 2 (MacForget) in a federation: [federated.md](federated.md).",
        "* 003's text tasks are on their own pages: [text.md](text.md) (Reuters and Rotten Tomatoes, Tables III "
        "and IV), [text_exposure.md](text_exposure.md) (Fig. 12's canaries) and [forsaken_linear.md]"
        "(forsaken_linear.md) (Table X). Not run: the reverse OOD direction (Fashion-MNIST target; the scenario "
        "supports it: `--scenario-set source_dataset=mnist` with `--dataset fashion_mnist`).",
    ]
    return "\n".join(lines) + "\n"


def sweep_note(record: dict) -> str:
    """Table VIII against 003's, from the sweep's records."""
    entries = [e for s in record["seeds"].values() for e in s["ood"]["lambda_sweep"]]

    def mean(lam: float, weighted: bool, key: str) -> float:
        vals = [e[key] for e in entries if e["lam"] == lam and e["weighted"] == weighted]
        return float(np.mean([v["fr"] if isinstance(v, dict) else v for v in vals if v is not None]))

    lams = sorted({e["lam"] for e in entries})
    top, low = max(lams), min(lams)
    blocked = [lam for lam in lams if lam > 0 and mean(lam, False, "moved_fraction") == 0.0]
    return (
        f"* **Table VIII (λ sweep):** 003's test-accuracy drop falls from 8.54% at λ = 0 to 1.13% at λ = 100 (C10.T). "
        f"Here Forsaken costs only {-100 * mean(low, True, 'test_change'):.2f} points at λ = {low:g}, so the penalty "
        f"has little to save; with ω, FR is at least {100 * min(mean(x, True, 'fr_shadow') for x in lams[:-1]):.1f}% "
        f"up to λ = {lams[-2]:g} and falls to {100 * mean(top, True, 'fr_shadow'):.1f}% at λ = {top:g} "
        f"({100 * mean(top, True, 'moved_fraction'):.0f}% of the parameters moved, against "
        f"{100 * mean(low, True, 'moved_fraction'):.0f}% at λ = {low:g}) — 003's \"when λ is increased to 100, the "
        'unlearning process will be blocked" in shape. Without ω (eq. 4), the summed penalty blocks every step at λ ≥ '
        + (f"{min(blocked):g} (no parameter moves)." if blocked else "none of the swept values.")
    )


def poison_figure(record: dict) -> bytes:
    """003 Fig. 11 (b): class-5 test recall before and after each method, per poison share (mean over seeds)."""
    seeds = list(record["seeds"].values())
    keys = [f"poison_{int(100 * s)}" for s in POISON if f"poison_{int(100 * s)}" in seeds[0]]
    methods = list(seeds[0][keys[0]]["rows"])

    def mean(key: str, method: str, field: str) -> float:
        return float(np.mean([s[key]["rows"][method][field] for s in seeds if key in s]))

    series = [("original", [mean(k, methods[0], "poisoned_class_recall_before") for k in keys])]
    series += [(m, [mean(k, m, "poisoned_class_recall") for k in keys]) for m in methods]
    groups = [k.split("_")[1] + "% flipped" for k in keys]
    fig = plots.grouped_bars(groups, series, xlabel="poisoned share of class 5", ylabel="class-5 test recall %",
                             title="003 Fig. 11: class-5 recall before / after")  # fmt: skip
    return plots.png(fig)


def write_page(out: Path, record: dict) -> None:
    write_bytes_atomic(out.parent / "img" / "forsaken_poison_recall.png", poison_figure(record))
    write_text_atomic(out, render(record))


def preparation_table(record: dict) -> str:
    seeds = list(record["seeds"].values())
    rows = []
    for key in ("ood", "id"):
        cases = [s[key] for s in seeds]

        def col(method: str, field: str, cases: list = cases) -> list:
            return [c["rows"][method][field] for c in cases if method in c["rows"]]

        rows.append([key, num(col("retrain", "seconds"), 1), num([c["smu_training_seconds"] for c in cases], 1),
                     num(col("sisa", "training_seconds"), 1), num(col("sisa_dp", "training_seconds"), 1),
                     pct(col("sisa", "original_test_accuracy")),
                     pct(col("sisa_dp", "original_test_accuracy"))])  # fmt: skip
    head = ["scenario", "plain training s (= retrain)", "training + SMU recording s", "SISA training s",
            "SISA-DP training s", "SISA test acc %", "SISA-DP test acc %"]  # fmt: skip
    return markdown_table(head, rows)


if __name__ == "__main__":
    main()
