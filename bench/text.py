"""003's text experiments on the real text that installs offline: OOD and in-distribution unlearning.

Reuters-21578 (ModApte, three topics; 003 Fig. 14's bag-of-words MLP) and Rotten Tomatoes (fresh / rotten; 003
Fig. 13's text CNN, the stand-in for IMDB). OOD: 200 documents of the other corpus, in the target's vocabulary,
with random labels, inserted and then forgotten; ID: 200 random training documents. Forgetting rate FR and CFR by
003's shadow oracle, test-accuracy change, seconds and speed-up for retraining, Forsaken, SMU (on Reuters; on
Rotten Tomatoes its recording cost leaves it out, and the page says so), SISA and the project's other methods (the
best of them by Avg. Gap is named).

Resumable: each (dataset, seed, case) is kept in docs/results/text.partial.json as it finishes; rerun the
command to go on. ``--render-only`` rebuilds the page from docs/results/text.json.

    python bench/text.py            # 1 seed by default (--seeds 0,1,2 for three)
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
from unlearnkit.core.models import build_model_for
from unlearnkit.data import load_dataset, split_dataset
from unlearnkit.data.scenarios import make_scenario
from unlearnkit.data.splits import DataSplit, Splits, View
from unlearnkit.env import environment
from unlearnkit.evaluation.attacks import catastrophic_forgetting_rate, forgetting_rate, train_shadow_oracle
from unlearnkit.evaluation.collection import collect
from unlearnkit.evaluation.metrics import evaluate as evaluate_metrics
from unlearnkit.evaluation.outputs import outputs_of
from unlearnkit.files import clean_json, write_text_atomic
from unlearnkit.methods import train_sisa, train_smu
from unlearnkit.reporting.tables import markdown_table, mean_std

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "results" / "text.md"
COMMAND = "python bench/text.py"

SETUPS: dict[str, dict[str, Any]] = {
    "reuters": {
        "model": "bow_mlp",
        "kwargs": {},
        "recipe": TrainConfig(epochs=10, batch_size=64, lr=1e-3, optimizer="adam"),
        "ood_source": "rotten_tomatoes",
        "paper": "Reuters (Keras, 46 topics; OOD: topics 35-11)",
        "smu_left_out": None,
    },
    "rotten_tomatoes": {
        "model": "text_cnn",
        "kwargs": {},
        "recipe": TrainConfig(epochs=4, batch_size=64, lr=1e-3, optimizer="adam"),
        "ood_source": "reuters",
        "paper": "IMDB (OOD: Customer Review, 'I.C.')",
        # measured in the smoke run: 3.5 min per epoch to record 200 candidates' contributions on the text CNN
        "smu_left_out": "recording 200 candidates' SGD contributions on the text CNN took 3.5 min per epoch here "
        "(about 14 min per case, more than every other row together); left out for the compute budget",
    },
}
HOLDOUT = 0.25  # the shadow oracle's pool
COUNT = 200
SISA = {"shards": 5, "slices": 5}
CFR_SAMPLES = 1000
SMU_MAX_BYTES = 3e9  # SMU stores one parameter-sized contribution per candidate: above this it is left out


def SMU_RECIPE(recipe: TrainConfig) -> TrainConfig:
    return TrainConfig(epochs=recipe.epochs, batch_size=recipe.batch_size, lr=0.05, optimizer="sgd", momentum=0.9)


CORE = ("retrain", "forsaken", "smu", "sisa")
OTHERS = ("finetune", "neggrad_plus", "scrub", "random_label", "bad_teacher", "ssd", "l1_sparse")
GAP = ("forget_accuracy", "retain_accuracy", "test_accuracy", "mia_accuracy")
#: 003 Tables III (OOD) and IV (ID), FR %: retraining / Forsaken / SMU / SISA — another dataset, for direction only
PAPER = {
    ("reuters", "ood"): {"retrain": 94.79, "forsaken": 96.35, "smu": 81.25, "sisa": 95.32},
    ("reuters", "id"): {"retrain": 83.13, "forsaken": 86.25, "smu": 69.38, "sisa": 81.25},
    ("rotten_tomatoes", "ood"): {"retrain": 94.36, "forsaken": 98.46, "smu": 43.59, "sisa": 95.89},
    ("rotten_tomatoes", "id"): {"retrain": 84.77, "forsaken": 94.04, "smu": 62.25, "sisa": 87.42},
}


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Setup:
    def __init__(self, name: str, seed: int) -> None:
        self.name, self.seed = name, seed
        self.cfg = SETUPS[name]
        self.recipe: TrainConfig = self.cfg["recipe"]
        self.ds = load_dataset(name)
        self.split: DataSplit = split_dataset(self.ds, seed=seed, holdout_fraction=HOLDOUT)

    def build(self, seed: int) -> torch.nn.Module:
        return build_model_for(self.ds, self.cfg["model"], seed=seed, **self.cfg["kwargs"])


def positions(train: View, rows: torch.Tensor) -> torch.Tensor:
    return torch.isin(train.indices, rows).nonzero().flatten()


def facts(model: torch.nn.Module, splits: Splits, retained: View, shadow: Any, seed: int) -> dict[str, Any]:
    model.eval()
    metrics = evaluate_metrics(collect(model, splits), list(GAP), seed=seed)
    return {
        **{k: metrics.get(k) for k in GAP},
        "member_forget": shadow.predict(outputs_of(model, splits.forget)),
        "member_retained": shadow.predict(outputs_of(model, retained)),
    }


def compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        **{k: after[k] for k in GAP},
        "test_change": after["test_accuracy"] - before["test_accuracy"],
        "fr": forgetting_rate(before["member_forget"], after["member_forget"]),
        "cfr": catastrophic_forgetting_rate(before["member_retained"], after["member_retained"]),
    }


def run_case(setup: Setup, splits: Splits, shadow: Any) -> dict[str, Any]:
    seed, recipe = setup.seed, setup.recipe
    train = splits.train
    g = torch.Generator().manual_seed(seed)
    retained = splits.retain.subset(torch.randperm(len(splits.retain), generator=g)[:CFR_SAMPLES], "retained")
    cand = positions(train, splits.forget.indices)
    params = sum(p.numel() for p in setup.build(seed).parameters())
    smu_bytes = 4.0 * params * len(cand)
    from unlearnkit.core.training import fit

    t = time.perf_counter()
    original = setup.build(seed)
    fit(original, train, recipe, seed=seed)
    original.eval()
    train_seconds = time.perf_counter() - t
    before = facts(original, splits, retained, shadow, seed)
    case: dict[str, Any] = {
        "n_train": len(train),
        "n_forget": len(splits.forget),
        "params": params,
        "original_seconds": train_seconds,
        "original": {k: before[k] for k in GAP},
        "BT": int(before["member_forget"].sum()),
        "rows": {},
        "left_out": {},
    }
    for name in (*CORE, *OTHERS):
        say(f"  {name}")
        if name == "smu" and setup.cfg["smu_left_out"]:
            case["left_out"]["smu"] = setup.cfg["smu_left_out"]
            continue
        if name == "smu" and smu_bytes > SMU_MAX_BYTES:
            case["left_out"]["smu"] = (
                f"its contributions would take {smu_bytes / 1e9:.1f} GB ({params:,} parameters x {len(cand)})"
            )
            continue
        if name == "smu":  # SMU records SGD displacements: its own original, trained with SGD (as SISA has its own)
            t = time.perf_counter()
            smu_model = train_smu(setup.build(seed), train, SMU_RECIPE(recipe), candidates=cand, seed=seed)
            smu_train = time.perf_counter() - t
            smu_before = facts(smu_model.inner, splits, retained, shadow, seed)
            outcome = make_method("smu").unlearn(smu_model, splits, seed=seed)
            row = compare(smu_before, facts(outcome.model, splits, retained, shadow, seed))
            row["training_seconds"] = smu_train
            row["original_test_accuracy"] = smu_before["test_accuracy"]
        elif name == "sisa":
            t = time.perf_counter()
            ens = train_sisa(setup.build(seed), train, recipe, seed=seed, **SISA)
            sisa_train = time.perf_counter() - t
            ens_before = facts(ens, splits, retained, shadow, seed)
            outcome = make_method("sisa").unlearn(ens, splits, seed=seed)
            row = compare(ens_before, facts(outcome.model, splits, retained, shadow, seed))
            row["training_seconds"] = sisa_train
            row["original_test_accuracy"] = ens_before["test_accuracy"]
            row["shards_retrained"] = outcome.diagnostics.get("shards_retrained")
        else:
            outcome = make_method(name).unlearn(original, splits, seed=seed, recipe=recipe)
            row = compare(before, facts(outcome.model, splits, retained, shadow, seed))
        row["seconds"] = outcome.seconds
        row["retired_tokens"] = len(outcome.diagnostics.get("retired_tokens", []))
        case["rows"][name] = row
    ref = case["rows"]["retrain"]
    for row in case["rows"].values():
        row["speedup"] = ref["seconds"] / row["seconds"]
        gaps = [abs(row[k] - ref[k]) for k in GAP if row.get(k) is not None and ref.get(k) is not None]
        row["avg_gap"] = 100 * sum(gaps) / len(gaps) if gaps else None
    return case


def main() -> None:
    ap = results_parser(__doc__, PAGE, "1 epoch, 2x2 shards, one dataset: check the script end to end (minutes)")
    ap.set_defaults(seeds="0")
    args = ap.parse_args()
    global SISA, OTHERS
    if args.smoke:
        for cfg in SETUPS.values():
            cfg["recipe"] = TrainConfig(**{**cfg["recipe"].to_dict(), "epochs": 1})
        SISA, OTHERS = {"shards": 2, "slices": 2}, ("finetune",)
    json_path = args.out.with_suffix(".json")
    if args.render_only:
        write_page(args.out, json.loads(json_path.read_text()))
        return
    torch.set_num_threads(args.threads)
    partial = json_path.with_suffix(".partial.json")
    record: dict[str, Any] = (
        json.loads(partial.read_text()) if partial.exists() else {"runs": {}, "compute_seconds": 0.0}
    )
    record.update(
        env=environment(torch.device("cpu")),
        setups={k: {**v, "recipe": v["recipe"].to_dict()} for k, v in SETUPS.items()},
        sisa=SISA,
        holdout=HOLDOUT,
        count=COUNT,
    )
    seeds = [int(s) for s in args.seeds.split(",")]
    for name in SETUPS:
        for seed in seeds:
            done = record["runs"].setdefault(f"{name}/{seed}", {})
            todo = [c for c in ("ood", "id") if c not in done]
            if not todo:
                continue
            start = time.perf_counter()
            setup = Setup(name, seed)
            say(f"{name} seed {seed}: shadow oracle")
            shadow, sfacts = train_shadow_oracle(setup.build, setup.recipe, setup.split.holdout, seed=seed + 1000)
            done["shadow"] = sfacts
            record["compute_seconds"] += time.perf_counter() - start
            for case in todo:
                start = time.perf_counter()
                scen = (
                    make_scenario("ood", source_dataset=SETUPS[name]["ood_source"], count=COUNT)
                    if case == "ood"
                    else make_scenario("id", count=COUNT)
                )
                say(f"{name} seed {seed}: {case}")
                done[case] = run_case(setup, scen.prepare(setup.split, seed=seed), shadow)
                record["compute_seconds"] += time.perf_counter() - start
                partial.write_text(json.dumps(clean_json(record)))
                write_page(args.out, record)
    write_text_atomic(json_path, json.dumps(clean_json(record), indent=1))
    partial.unlink(missing_ok=True)
    write_page(args.out, record)
    say(f"wrote {args.out}")


# -- rendering --------------------------------------------------------------------


def cases_of(record: dict[str, Any], name: str, case: str) -> list[dict[str, Any]]:
    return [r[case] for k, r in sorted(record["runs"].items()) if k.startswith(f"{name}/") and case in r]


def num(values: list[float | None], digits: int = 2, scale: float = 1.0) -> str:
    m, s = mean_std([None if v is None else scale * v for v in values])
    if m is None:
        return "–"
    return f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if s is not None else "")


def best_other(cases: list[dict[str, Any]]) -> str | None:
    def gap(name: str) -> float:
        vals = [c["rows"][name]["avg_gap"] for c in cases if name in c["rows"]]
        return float(np.mean(vals)) if vals else float("inf")

    names = [n for n in OTHERS if any(n in c["rows"] for c in cases)]
    return min(names, key=gap) if names else None


def case_table(record: dict[str, Any], name: str, case: str) -> str:
    cases = cases_of(record, name, case)
    if not cases:
        return "_pending: run the command above._\n"
    paper = PAPER[(name, case)]
    best = best_other(cases)
    names = [*CORE, *(n for n in OTHERS)]
    rows = []
    for m in names:
        got = [c["rows"][m] for c in cases if m in c["rows"]]
        if not got:
            if any(m in c["left_out"] for c in cases):
                rows.append([f"`{m}`", "left out: " + next(c["left_out"][m] for c in cases if m in c["left_out"])]
                            + [""] * 7)  # fmt: skip
            continue
        label = f"`{m}`" + (" (best other by Avg. Gap)" if m == best else "")
        rows.append([
            label,
            pct([r["fr"]["fr"] for r in got]),
            f"{paper[m]:.2f}" if m in paper else "",
            pct([r["cfr"]["cfr"] for r in got]),
            pct([r["forget_accuracy"] for r in got]),
            num([r["test_change"] for r in got], 1, 100),
            num([r["avg_gap"] for r in got], 2),
            num([r["seconds"] for r in got], 2),
            f"{np.mean([r['speedup'] for r in got]):.1f}x",
        ])  # fmt: skip
    head = ["method", "FR % (shadow)", "003's FR %", "CFR %", "forget acc %", "test acc change (pts)",
            "Avg. Gap (pts)", "seconds", "speed-up"]  # fmt: skip
    o = cases[0]
    note = (
        f"\n\n{len(cases)} seed(s); {o['n_forget']} forgotten of {o['n_train']} training documents; the original's "
        f"test accuracy {num([c['original']['test_accuracy'] for c in cases], 1, 100)} %, forget accuracy "
        f"{num([c['original']['forget_accuracy'] for c in cases], 1, 100)} %; BT (forget documents the shadow "
        f"oracle calls members before unlearning) {num([c['BT'] for c in cases], 0)}; {o['params']:,} parameters."
        + (f" One seed: with BT = {cases[0]['BT']}, one document moves FR by {100 / max(cases[0]['BT'], 1):.1f} "
           "points, and differences of a few points cannot be told from noise." if len(cases) == 1 else "")
        + "\n"
    )  # fmt: skip
    if case == "ood" and all("forsaken" in c["rows"] for c in cases):
        f_acc = num([c["rows"]["forsaken"]["forget_accuracy"] for c in cases], 1, 100)
        r_acc = num([c["rows"]["retrain"]["forget_accuracy"] for c in cases], 1, 100)
        note += (
            f"\nForsaken's forget accuracy is {f_acc} % against retraining's {r_acc} %: an inserted document has no "
            "true label, so it is pulled toward P[its random training label], whose arg-max is that label, and the "
            "model keeps the labels it memorised; its FR is the shadow oracle's verdict, not forgetting of the "
            "labels (as on MNIST, [forsaken.md](forsaken.md)).\n"
        )
    return markdown_table(head, rows) + note


def write_page(out: Path, record: dict[str, Any]) -> None:
    write_text_atomic(out, render(record, out))


def exposure_summary(path: Path) -> list[str]:
    """Fig. 12's plot and final points, read from bench/text_exposure.py's record (pending if it has not run)."""
    if not path.exists():
        return ["_pending: run `python bench/text_exposure.py`._", ""]
    rec = json.loads(path.read_text())
    seeds = list(rec["seeds"].values())
    its = rec["config"]["iterations"]

    def mean(values: list[float]) -> float:
        return float(np.mean(values))

    rows = [["original", "0", f"{mean([s['original']['mean_rank_exposure'] for s in seeds]):.2f}",
             f"{100 * mean([s['original']['canary_window_accuracy'] for s in seeds]):.1f}"]]  # fmt: skip
    for m in seeds[0]["methods"]:
        last = [s["methods"][m]["points"][its - 1] for s in seeds]
        rows.append([f"`{m}`", str(its), f"{mean([p['mean_rank_exposure'] for p in last]):.2f}",
                     f"{100 * mean([p['canary_window_accuracy'] for p in last]):.1f}"])  # fmt: skip
    rows.append(["`retrain`", "–", f"{mean([s['retrain']['mean_rank_exposure'] for s in seeds]):.2f}",
                 f"{100 * mean([s['retrain']['canary_window_accuracy'] for s in seeds]):.1f}"])  # fmt: skip
    head = ["model", "iterations", "mean canary exposure (bits, by rank)", "canary-window next-token accuracy %"]
    return ["![mean canary exposure against iterations](img/text_exposure.png)", "",
            markdown_table(head, rows), ""]  # fmt: skip


def render(record: dict[str, Any], out: Path = PAGE) -> str:
    minutes = record.get("compute_seconds", 0.0) / 60
    runs = sorted(record["runs"])
    lines = [
        "# Text: 003's OOD and in-distribution unlearning on Reuters and Rotten Tomatoes",
        "",
        f"Generated by `{COMMAND}` (resumable; {minutes:.0f} min of compute in all so far, on 2 CPU cores shared "
        "with other work). Raw numbers: [text.json](text.json). Runs: "
        + (", ".join(f"`{r}`" for r in runs) or "none yet")
        + ".",
        "",
        "**Set-up.** Reuters-21578 ModApte's corn / grain articles as three topics (other / grain / corn; 1,554 "
        "training articles) with 003 Fig. 14's bag-of-words MLP (vocabulary → 512 → 256 → 3, dropout 0.5); Rotten "
        "Tomatoes critic snippets (fresh / rotten; 10,808 training snippets) with 003 Fig. 13's text CNN (embedding "
        "100, widths 3 / 4 / 5 × 100 channels). Adam, lr 1e-3, batch 64; 10 epochs (Reuters), 4 (Rotten Tomatoes). "
        f"{int(100 * HOLDOUT)}% of each training partition is held out: the shadow oracle's pool. The vocabulary "
        "(at most 10,000 tokens, each in ≥ 2 documents, digits always) is fitted on the official training partition. "
        f"**OOD**: {COUNT} documents of the other corpus (Rotten Tomatoes snippets into Reuters, Reuters articles "
        "into Rotten Tomatoes), encoded with the target's vocabulary, each with a random label, inserted into "
        f"training and then forgotten. **ID**: {COUNT} random training documents. SISA: 5 shards × 5 slices. "
        "SMU records SGD displacements, so its original is its own, trained with SGD (lr 0.05, momentum 0.9), "
        "and its FR / CFR / test change are measured against that original (as SISA's against its ensemble). "
        "Every method at its defaults. After any method, tokens that occur only in forgotten documents are retired "
        "(they read as unknown words; docs/text.md).",
        "",
        "**Oracles.** FR = (AF − BF) / BT (003 eq. 2) and CFR (eq. 10, on 1,000 retained documents) by 003's shadow "
        "oracle: a shadow model of the target's architecture and recipe trained on half of the holdout split, "
        "XGBoost on its sorted confidence vector. Avg. Gap: mean |difference| to retraining of forget, retain and "
        "test accuracy and MIA accuracy, in points (SalUn). Speed-up = retraining's seconds / the method's.",
        "",
        "**003's numbers are beside ours for direction only**: 003 used IMDB, the 46-topic Keras Reuters and other "
        "OOD sets, larger models and its own splits, so the magnitudes are not comparable and nothing here "
        "reproduces them.",
        "",
    ]
    lines += [
        "## 003 Fig. 12: canaries in an LSTM language model",
        "",
        "The exposure of 100 canaries against the unlearning iterations (Forsaken, finetune, neggrad_plus; retraining "
        "as the reference; 003's \"below 10 is safe\" line), generated by `python bench/text_exposure.py`; its "
        "page [text_exposure.md](text_exposure.md) has the set-up, every iteration and the skew-normal estimate.",
        "",
        *exposure_summary(out.parent / "text_exposure.json"),
    ]
    for name, cfg in SETUPS.items():
        for case, title in (("ood", "OOD unlearning (003 Table III)"), ("id", "in-distribution unlearning (Table IV)")):
            lines += [f"## {name}: {title} — 003's column: {cfg['paper']}", "", case_table(record, name, case), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
