"""Results for linear filtration and the Bayes-advantage test (issue: filtration, Ray, model inversion).

    python bench/filtration.py                 # writes docs/results/filtration.md (+ .json, + PNG figures), on Ray
    python bench/filtration.py --executor local --n-mnist 10 --n-fashion 4 --out /tmp/f.md   # a quick look

Reproduces 004's experiments where the data exists here: MNIST with the
1-hidden-layer MLP (50 units), and Fashion-MNIST in place of CIFAR-10 with the
paper's small CNN (conv 16/32, FC p units). Populations are trained on the
executor and cached under --cache, so a rerun (or a resumed run) trains
nothing twice. Nothing is tuned: filtration has no setting chosen on data
besides the paper's choices of z and sample size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnkit import TrainConfig, make_method
from unlearnkit.env import environment
from unlearnkit.evaluation.inversion import model_inversion
from unlearnkit.evaluation.weak import bayes_advantage
from unlearnkit.files import clean_json, write_text_atomic
from unlearnkit.running.executor import Executor, make_executor
from unlearnkit.running.populations import (
    Population,
    PopulationConfig,
    load_member,
    remaining_predictions,
    weak_unlearning,
)

CLASSIFIERS = ("knn", "random_forest", "adaboost")
SHORT = {"knn": "NN", "random_forest": "RF", "adaboost": "AB"}
NOT_SEEN_OFFSET = 100_000  # not-seen members use seeds disjoint from the seen ones

# 004's numbers (MNIST: Tables 7 and 8; CIFAR-10 CNN: Tables 2, 5, 9, 6 and 10), per classifier NN / RF / AB.
PAPER_MNIST = {
    ("unlearned", "naive"): (0.593, 0.609, 0.641),
    ("unlearned", "normalization"): (0.327, 0.362, 0.438),
    ("unlearned", "randomization"): (0.910, 0.869, 0.902),
    ("unlearned", "zeroing"): (0.919, 0.886, 0.909),
    ("remaining", "naive"): (0.048, 0.090, 0.098),
    ("remaining", "normalization"): (0.041, 0.089, 0.095),
    ("remaining", "randomization"): (0.116, 0.132, 0.133),
    ("remaining", "zeroing"): (0.119, 0.129, 0.132),
}
PAPER_MNIST_ACC = {"original": 97.1, "not seen": 97.1, "naive": 97.1, "normalization": 97.1,
                   "randomization": 96.7, "zeroing": 96.7}  # fmt: skip
PAPER_CIFAR = {  # (group, variant, p, s) -> NN / RF / AB; s None = the paper's "full test data" estimate
    ("unlearned", "naive", 64, None): (0.290, 0.331, 0.380),
    ("unlearned", "normalization", 64, 10): (0.113, 0.135, 0.137),
    ("unlearned", "normalization", 64, 100): (0.089, 0.105, 0.129),
    ("unlearned", "normalization", 64, None): (0.086, 0.106, 0.119),
    ("unlearned", "randomization", 64, None): (0.547, 0.487, 0.528),
    ("unlearned", "zeroing", 64, None): (0.599, 0.534, 0.560),
    ("unlearned", "naive", 256, None): (0.609, 0.457, 0.590),
    ("unlearned", "normalization", 256, 10): (0.193, 0.114, 0.122),
    ("unlearned", "normalization", 256, 100): (0.156, 0.095, 0.111),
    ("unlearned", "normalization", 256, None): (0.146, 0.110, 0.093),
    ("unlearned", "randomization", 256, None): (0.634, 0.579, 0.582),
    ("unlearned", "zeroing", 256, None): (0.642, 0.566, 0.575),
    ("unlearned", "naive", 1024, None): (0.627, 0.485, 0.603),
    ("unlearned", "normalization", 1024, 10): (0.230, 0.164, 0.179),
    ("unlearned", "normalization", 1024, 100): (0.216, 0.157, 0.172),
    ("unlearned", "normalization", 1024, None): (0.174, 0.138, 0.138),
    ("unlearned", "randomization", 1024, None): (0.741, 0.637, 0.682),
    ("unlearned", "zeroing", 1024, None): (0.746, 0.642, 0.680),
    ("remaining", "naive", 64, None): (0.040, 0.043, 0.044),
    ("remaining", "normalization", 64, 10): (0.072, 0.075, 0.080),
    ("remaining", "normalization", 64, 100): (0.047, 0.044, 0.047),
    ("remaining", "normalization", 64, None): (0.044, 0.040, 0.045),
    ("remaining", "randomization", 64, None): (0.240, 0.203, 0.174),
    ("remaining", "zeroing", 64, None): (0.246, 0.204, 0.163),
    ("remaining", "naive", 256, None): (0.115, 0.080, 0.109),
    ("remaining", "normalization", 256, 10): (0.205, 0.142, 0.171),
    ("remaining", "normalization", 256, 100): (0.169, 0.108, 0.136),
    ("remaining", "normalization", 256, None): (0.148, 0.097, 0.118),
    ("remaining", "randomization", 256, None): (0.416, 0.279, 0.230),
    ("remaining", "zeroing", 256, None): (0.421, 0.276, 0.219),
    ("remaining", "naive", 1024, None): (0.129, 0.090, 0.115),
    ("remaining", "normalization", 1024, 10): (0.242, 0.149, 0.182),
    ("remaining", "normalization", 1024, 100): (0.217, 0.128, 0.146),
    ("remaining", "normalization", 1024, None): (0.174, 0.097, 0.118),
    ("remaining", "randomization", 1024, None): (0.506, 0.309, 0.249),
    ("remaining", "zeroing", 1024, None): (0.508, 0.310, 0.251),
}
PAPER_TABLE6 = {  # CIFAR-10, p = 256: % labels changed vs naive (all / unl. / cor.) and accuracy
    "normalization": (0.0, 0.0, 0.0, 69.2),
    "randomization": (20.1, 48.8, 11.8, 64.8),
    "zeroing": (18.3, 45.4, 10.3, 65.7),
}
Z_CHOICES = ("naive", "normalization", "randomization", "zeroing")


def variant(z: str, samples: int) -> tuple[str, dict[str, Any]]:
    return "filtration", {"z": z, "samples_per_class": samples, "keep_outputs": False}


def fmt_adv(a: dict[str, Any]) -> str:
    return f"{a['advantage']:.3f} [{a['ci'][0]:.2f}, {a['ci'][1]:.2f}]"


def adv_table(rows: list[tuple[str, dict[str, Any], tuple[float, float, float] | None]], group: str) -> str:
    """rows: (label, weak_unlearning variant entry, paper NN/RF/AB)."""
    head = [group, *(SHORT[c] for c in CLASSIFIERS), *(f"paper {SHORT[c]}" for c in CLASSIFIERS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, entry, paper in rows:
        by = {a["classifier"]: a for a in entry["advantage"] if a["group"] == group}
        ours = [fmt_adv(by[c]) for c in CLASSIFIERS]
        theirs = [f"{v:.3f}" for v in paper] if paper else ["–"] * 3
        lines.append("| " + " | ".join([label, *ours, *theirs]) + " |")
    return "\n".join(lines)


def mean_sd(values: list[float], scale: float = 100.0) -> str:
    if not values:
        return "–"
    arr = np.asarray(values) * scale
    return f"{arr.mean():.1f} ± {arr.std(ddof=1) if len(arr) > 1 else 0.0:.2f}"


def label_changes(pop: Population, seeds: list[int], samples: int) -> dict[str, dict[str, float]]:
    """% of predictions that differ from naive's: all test samples, the unlearned class, naive-correct others."""
    cfg = pop.config
    labels = pop.eval_labels()
    forget = list(cfg.forget_classes)
    k = int(labels.max()) + 1
    base = pop.outputs("seen", seeds, method="filtration", settings=variant("naive", samples)[1])
    base_pred = remaining_predictions(base.logits, k, forget)
    unl = torch.isin(labels, torch.tensor(forget))
    correct = (base_pred == labels) & ~unl
    out = {}
    for z in Z_CHOICES[1:]:
        other = pop.outputs("seen", seeds, method="filtration", settings=variant(z, samples)[1])
        changed = remaining_predictions(other.logits, k, forget) != base_pred
        acc = (remaining_predictions(other.logits, k, forget)[:, ~unl] == labels[~unl]).double().mean()
        out[z] = {
            "all": 100 * float(changed.double().mean()),
            "unlearned": 100 * float(changed[:, unl].double().mean()),
            "correct": 100 * float(changed[correct].double().mean()),
            "accuracy": 100 * float(acc),
        }
    return out


def run_population(
    name: str,
    config: PopulationConfig,
    n: int,
    samples: list[int],
    args: argparse.Namespace,
    executor: Executor,
    log: Any,
) -> dict[str, Any]:
    pop = Population(config, args.cache, executor=executor, progress=args.progress)
    seen, not_seen = list(range(n)), list(range(NOT_SEEN_OFFSET, NOT_SEEN_OFFSET + n))
    start = time.perf_counter()
    pop.train("seen", seen)  # both sides in one executor call each; the test below then only reads the cache
    pop.train("not_seen", not_seen)
    train_wall = time.perf_counter() - start
    log(f"[{name}] {len(pop.trained)} members trained now ({train_wall:.0f} s wall), {2 * n - len(pop.trained)} cached")
    # no "original" row: on the remaining classes' logits (the test's features) it is naive by construction
    variants: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for z in Z_CHOICES:
        variants[z] = variant(z, 100)
    for s in samples:
        if s != 100:
            variants[f"normalization, ℓ={s}"] = variant("normalization", s)
    start = time.perf_counter()
    result = weak_unlearning(pop, variants, seen_seeds=seen, not_seen_seeds=not_seen, classifiers=CLASSIFIERS)
    log(f"[{name}] Bayes advantage for {len(variants)} variants in {time.perf_counter() - start:.0f} s")
    # what an attacker who only gets probabilities sees (not in the paper): softmax over the remaining logits
    not_seen_out = pop.outputs("not_seen", not_seen)
    result["probabilities"] = {}
    for z in ("naive", "normalization"):
        seen_out = pop.outputs("seen", seen, method="filtration", settings=variant(z, 100)[1])
        result["probabilities"][z] = {"advantage": bayes_advantage(
            seen_out.logits, not_seen_out.logits, not_seen_out.labels, list(config.forget_classes),
            classifiers=CLASSIFIERS, features="probabilities",
        )}  # fmt: skip
    retrain = [pop.train_seconds[("not_seen", s)] for s in not_seen if ("not_seen", s) in pop.train_seconds]
    result["train_wall_seconds"] = train_wall
    result["members_trained_now"] = len(pop.trained)
    result["retrain_seconds"] = retrain
    result["label_changes"] = label_changes(pop, seen, 100)
    splits, view = pop.data()
    result["data"] = {"n_train": len(splits.train), "n_retain": len(splits.retain), "n_holdout": len(splits.holdout),
                      "n_eval": len(view)}  # fmt: skip
    return result


def inversion_figure(config: PopulationConfig, args: argparse.Namespace, out: Path, log: Any) -> dict[str, Any]:
    splits, _ = Population(config, args.cache).data()
    model = load_member(config, "seen", 0, args.cache)
    rows = [("original", model)]
    for z in ("naive", "normalization"):
        rows.append((z, make_method("filtration", **variant(z, 100)[1]).unlearn(model, splits, seed=0).model))
    start = time.perf_counter()
    _, labels = model_inversion(
        rows, splits.holdout, list(range(splits.num_classes)), out=out, steps=args.inversion_steps
    )
    log(f"[inversion] {out.name} in {time.perf_counter() - start:.0f} s")
    return {"file": out.name, "rows": labels}


def speed(result: dict[str, Any]) -> str:
    retrain = result["retrain_seconds"]
    parts = []
    for label, key in (("ℓ = 100", "normalization"), ("ℓ = 10", "normalization, ℓ=10")):
        unl = result["variants"].get(key, {}).get("unlearn_seconds")
        if unl and retrain:
            ratio = float(np.mean(retrain)) / float(np.mean(unl))
            parts.append(f"{label}: {1000 * np.mean(unl):.1f} ms ({ratio:,.0f}x)")
    if not parts:
        return "–"
    return f"{'; '.join(parts)} — vs {np.mean(retrain):.1f} s to retrain a model without the class (1 thread)"


def acc_table(result: dict[str, Any], paper: dict[str, float] | None) -> str:
    lines = ["| model | accuracy on remaining classes, % (mean ± sd over models) | paper |", "|---|---|---|"]
    rows = [("not seen (retrained without the class)", result["not_seen"]["accuracy"], "not seen")]
    rows += [(k, v["accuracy"], k.split(" ")[0]) for k, v in result["variants"].items()]
    for label, accs, key in rows:
        ref = paper.get(key) if paper else None
        lines.append(f"| {label} | {mean_sd(accs)} | {ref if ref is not None else '–'} |")
    return "\n".join(lines)


def changes_table(result: dict[str, Any]) -> str:
    lines = [
        "| z | all | unl. | cor. | acc. | paper (CIFAR-10, p=256) all / unl. / cor. / acc. |",
        "|---|---|---|---|---|---|",
    ]
    for z, c in result["label_changes"].items():
        p = PAPER_TABLE6[z]
        lines.append(f"| {z} | {c['all']:.1f} | {c['unlearned']:.1f} | {c['correct']:.1f} | {c['accuracy']:.1f} | "
                     f"{p[0]} / {p[1]} / {p[2]} / {p[3]} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--executor", default="ray", choices=("ray", "local"))
    ap.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: start a local one)")
    ap.add_argument("--n-mnist", type=int, default=100, help="models per population, MNIST MLP (paper: 100)")
    ap.add_argument("--n-fashion", type=int, default=50, help="models per population and p, Fashion-MNIST CNN")
    ap.add_argument("--widths", default="64,256,1024", help="p values for the CNN")
    ap.add_argument("--fashion-train-size", type=int, default=20000)
    ap.add_argument("--inversion-steps", type=int, default=300)
    ap.add_argument("--cache", default=".cache/populations")
    ap.add_argument("--out", default="docs/results/filtration.md")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--render-only", action="store_true", help="rewrite the page from the existing JSON")
    args = ap.parse_args()
    out = Path(args.out)
    if args.render_only:
        record = json.loads(out.with_suffix(".json").read_text())
        write_text_atomic(out, render(record, argparse.Namespace(**record.get("args", vars(args)))))
        return
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.0f}s] {msg}", file=sys.stderr, flush=True)

    mnist = PopulationConfig(
        dataset="mnist", model="mlp", model_kwargs={"widths": [50]},
        train=TrainConfig(epochs=3, batch_size=128, lr=0.1, momentum=0.9), forget_classes=(0,),
        holdout_fraction=0.2, eval_per_class=200,
    )  # fmt: skip
    widths = [int(p) for p in args.widths.split(",")]
    fashion = {
        p: PopulationConfig(
            dataset="fashion_mnist",
            model="cnn",
            model_kwargs={"width": p, "channels": [16, 32]},
            train=TrainConfig(epochs=2, batch_size=128, lr=0.05, momentum=0.9),
            forget_classes=(0,),
            holdout_fraction=0.2,
            train_size=args.fashion_train_size,
            eval_per_class=100,
        )
        for p in widths
    }
    record: dict[str, Any] = {"command": " ".join(["python", *sys.argv]), "environment": environment("cpu"),
                              "executor": args.executor, "mnist": None, "fashion": {}}  # fmt: skip
    options = {"address": args.ray_address} if args.ray_address else {}
    with make_executor(args.executor, retries=1, **options) as executor:  # one cluster for the whole page
        record["mnist"] = run_population("mnist mlp", mnist, args.n_mnist, [10, 100, 1000], args, executor, log)
        for p, cfg in fashion.items():
            name = f"fashion cnn p={p}"
            record["fashion"][str(p)] = run_population(name, cfg, args.n_fashion, [10, 100, 1000], args, executor, log)
    img = out.parent / "img"
    record["inversion"] = {
        "mnist": inversion_figure(mnist, args, img / "filtration_inversion_mnist.png", log),
        "fashion_mnist": inversion_figure(fashion[256 if 256 in fashion else widths[0]], args,
                                          img / "filtration_inversion_fashion_mnist.png", log),
    }  # fmt: skip
    record["wall_seconds"] = time.perf_counter() - t0
    record["args"] = {k: v for k, v in vars(args).items() if k != "render_only"}
    write_text_atomic(out.with_suffix(".json"), json.dumps(clean_json(record), indent=1) + "\n")
    write_text_atomic(out, render(record, args))
    log(f"wrote {out} and {out.with_suffix('.json')}")


def render(record: dict[str, Any], args: argparse.Namespace) -> str:
    m = record["mnist"]
    n_m = m["variants"]["naive"]["models"]
    fs = record["fashion"]
    p_ref = "256" if "256" in fs else next(iter(fs))
    f_ref = fs[p_ref]
    n_f = f_ref["variants"]["naive"]["models"]
    env = record["environment"]
    lines = [
        "# Linear filtration and the Bayes-advantage test (004)",
        "",
        f"Generated by `{record['command']}` in {record['wall_seconds'] / 60:.0f} min on {env['cpu_count']} CPU cores "
        f"(torch {env['torch']}, {record['executor']} executor). Numbers below come from "
        "`docs/results/filtration.json`; a rerun with the same cache trains nothing.",
        "",
        "**Set-up.** Two populations per configuration: *seen* models trained on all training data and then "
        "unlearned by filtration of class 0 (digit zero / T-shirt), and *not seen* models trained without class 0, "
        "with disjoint training seeds (the split is fixed). Each model's raw outputs on the test samples are "
        "collected; per test class a binary classifier (NN = 5-nearest neighbours, RF = random forest, "
        "AB = AdaBoost) learns seen vs not seen from the outputs of 70% of the models of each population and is "
        "scored on the other 30%; advantage = 2·(accuracy − ½), averaged over the unlearned class or the 9 "
        "remaining classes. Brackets: 95% bootstrap interval over the held-out models. The mean logits A come "
        "from ℓ = 100 holdout samples per class (never the test split) unless stated.",
        "",
        "**Differences from the paper.** Fashion-MNIST replaces CIFAR-10 (not installable from the package "
        "registries), so the paper's CIFAR columns are a reference for the trend, not the same experiment. "
        f"Population sizes: MNIST N = {n_m} per side (paper 100); Fashion-MNIST N = {n_f} per side and p "
        f"(paper 100), trained for 2 epochs on a {args.fashion_train_size:,}-image subset, chosen so the whole page "
        "runs within the time we had on 2 cores (`--n-fashion` raises it; the cache keeps earlier members). The test "
        f"samples are the first {m['config']['eval_per_class']} (MNIST) / "
        f"{f_ref['config']['eval_per_class']} (Fashion-MNIST) of each class (paper: all 1,000); this bounds the "
        "classifiers' cost.",
        "",
        "## MNIST, MLP with 50 hidden units (paper Tables 1, 7, 8)",
        "",
        f"Cost of filtration (normalization, mean over models): {speed(m)}.",
        "",
        adv_table([(k, v, PAPER_MNIST.get(("unlearned", k))) for k, v in m["variants"].items()], "unlearned"),
        "",
        adv_table([(k, v, PAPER_MNIST.get(("remaining", k))) for k, v in m["variants"].items()], "remaining"),
        "",
        acc_table(m, PAPER_MNIST_ACC),
        "",
        "Labels changed vs naive, % of test predictions (paper Table 6 is for CIFAR-10):",
        "",
        changes_table(m),
        "",
        *probability_section(m),
        "## Fashion-MNIST, CNN (conv 16/32, FC p units) in place of the paper's CIFAR-10 (Tables 2, 4, 5, 6)",
        "",
    ]
    for p, r in fs.items():
        lines += [
            f"### p = {p}",
            "",
            f"Cost of filtration: {speed(r)}.",
            "",
            adv_table([(k, v, _paper_cifar("unlearned", k, int(p))) for k, v in r["variants"].items()], "unlearned"),
            "",
            adv_table([(k, v, _paper_cifar("remaining", k, int(p))) for k, v in r["variants"].items()], "remaining"),
            "",
            acc_table(r, None),
            "",
            "Labels changed vs naive (Table 6):",
            "",
            changes_table(r),
            "",
            *probability_section(r),
        ]  # fmt: skip
    lines += findings(record)
    inv = record["inversion"]
    lines += [
        "## Model inversion (paper Figures 1 and 5)",
        "",
        "Rows: a training image of each class; reconstruction from the original model; after naive unlearning of "
        "class 0 (first column); after normalising filtration of class 0. The attack (gradient ascent on the input, "
        "total-variation and L2 prior, see `unlearnkit.inversion`) maximises the projection of the raw outputs on "
        "the model's own mean output for the class, so it applies to the unlearned class too.",
        "",
        f"![MNIST inversion](img/{inv['mnist']['file']})",
        "",
        f"![Fashion-MNIST inversion](img/{inv['fashion_mnist']['file']})",
        "",
        "Reading the figures: the paper reports that naive unlearning barely changes the reconstruction of the "
        "unlearned class while normalization disturbs it; compare the first column of the last two rows.",
        "",
    ]
    return "\n".join(lines)


def _paper_cifar(group: str, label: str, p: int) -> tuple[float, float, float] | None:
    """The paper's CIFAR-10 row for a variant label: z choices without ℓ use ℓ = 100 for normalization
    (the paper's s = 100) and the paper's full-data estimate for the others; ℓ = 1000 is the paper's full estimate
    (1,000 test images per class)."""
    z = label.split(",")[0]
    s = int(label.split("ℓ=")[1]) if "ℓ=" in label else (100 if z == "normalization" else None)
    return PAPER_CIFAR.get((group, z, p, None if s == 1000 else s))


def probability_section(result: dict[str, Any]) -> list[str]:
    """The same test on softmax outputs (not in the paper)."""
    rows = [(z, entry, None) for z, entry in result["probabilities"].items()]
    return [
        "Not in the paper — the same test when the classifiers see probabilities (softmax over the remaining "
        "classes) instead of raw logits, i.e. an attacker behind an API that returns probabilities:",
        "",
        adv_table(rows, "unlearned"),
        "",
    ]


def _adv(entry: dict[str, Any], group: str, clf: str) -> dict[str, Any]:
    return next(a for a in entry["advantage"] if a["group"] == group and a["classifier"] == clf)


def findings(record: dict[str, Any]) -> list[str]:
    """Sentences computed from the records: what reproduces and what does not."""
    out = ["## Findings", ""]
    cases = [("MNIST MLP", record["mnist"])] + [(f"Fashion-MNIST CNN p={p}", r) for p, r in record["fashion"].items()]
    for name, r in cases:
        v = r["variants"]
        parts = []
        for clf in CLASSIFIERS:
            naive, norm = _adv(v["naive"], "unlearned", clf), _adv(v["normalization"], "unlearned", clf)
            separated = norm["ci"][1] < naive["ci"][0]
            parts.append(f"{SHORT[clf]} {naive['advantage']:.2f} → {norm['advantage']:.2f}"
                         + ("" if separated else " (intervals overlap)"))  # fmt: skip
        rn, rz = _adv(v["naive"], "remaining", "knn"), _adv(v["normalization"], "remaining", "knn")
        rnd = _adv(v["randomization"], "unlearned", "knn")
        lc = r["label_changes"]["normalization"]["all"]
        pn = _adv(r["probabilities"]["naive"], "unlearned", "knn")["advantage"]
        pz = _adv(r["probabilities"]["normalization"], "unlearned", "knn")["advantage"]
        out.append(
            f"- **{name}**: unlearned-class advantage, naive → normalization: {'; '.join(parts)}. "
            f"Remaining classes (NN): {rn['advantage']:.2f} → {rz['advantage']:.2f}. "
            f"Randomization (NN) on the unlearned class: {rnd['advantage']:.2f}. "
            f"Labels changed by normalization vs naive: {lc:.1f}%. "
            f"On probabilities (NN): naive {pn:.2f}, normalization {pz:.2f}."
        )
    out.append("")
    out += discussion(record)
    return out


def discussion(record: dict[str, Any]) -> list[str]:
    """What reproduces, what does not, and why (numbers computed from the records)."""
    cases = [record["mnist"], *record["fashion"].values()]
    rem = [_adv(r["variants"]["naive"], "remaining", "knn")["advantage"] for r in cases]
    ratios = [float(np.mean(r["retrain_seconds"])) / float(np.mean(r["variants"]["normalization"]["unlearn_seconds"]))
              for r in cases]  # fmt: skip
    mnist_acc = 100 * float(np.mean(record["mnist"]["not_seen"]["accuracy"]))
    mnist_norm = _adv(record["mnist"]["variants"]["normalization"], "unlearned", "knn")["advantage"]
    changes = [r["label_changes"][z] for r in cases for z in ("randomization", "zeroing")]
    all_lo, all_hi = min(c["all"] for c in changes), max(c["all"] for c in changes)
    unl_lo, unl_hi = min(c["unlearned"] for c in changes), max(c["unlearned"] for c in changes)
    retrain_lo = min(float(np.mean(r["retrain_seconds"])) for r in cases)
    retrain_hi = max(float(np.mean(r["retrain_seconds"])) for r in cases)
    mv = record["mnist"]["variants"]
    below = all(_adv(mv[z], "unlearned", "knn")["advantage"] < _adv(mv["naive"], "unlearned", "knn")["advantage"]
                for z in ("randomization", "zeroing"))  # fmt: skip
    separated = all(
        _adv(r["variants"]["normalization"], "unlearned", c)["ci"][1]
        < _adv(r["variants"]["naive"], "unlearned", c)["ci"][0]
        for r in cases
        for c in CLASSIFIERS
    )
    return [
        "## What reproduces and what does not",
        "",
        f"- **Reproduces — the direction.** Normalization lowers the unlearned class's advantage below naive "
        f"deletion's in every set-up and for every classifier ({'all' if separated else 'not all'} intervals "
        "separated), and it is robust to the sample size ℓ (10, 100 and 1,000 per class give the same advantage "
        "within the intervals), as the paper reports. Normalization changes no predicted label (0.0% in every "
        "set-up), as in the paper's Table 6, and the card derives why this is exact: it moves all remaining logits "
        "of a sample by the same amount.",
        "- **Does not reproduce — the magnitudes.** Our advantages are much higher than the paper's, on the "
        f"remaining classes too (naive, NN: {min(rem):.2f}–{max(rem):.2f} here vs 0.04–0.13 in the paper): our seen "
        "and not-seen populations are told apart even where nothing was unlearned, so the raw-logit test separates "
        "them on more than the forgotten class. A likely cause (not tested here) is our short training: 3 epochs "
        f"for the MNIST MLPs (remaining-class accuracy {mnist_acc:.1f}% vs the paper's 97.1%) and 2 epochs on "
        "20,000 images for the CNNs, so a model's logit scale still depends on how many classes it was trained on. "
        f"Normalization's advantage therefore stays well above the paper's (MNIST NN {mnist_norm:.2f} vs 0.33), "
        "and on MNIST it raises the remaining classes' advantage instead of leaving it unchanged.",
        "- **Randomization and zeroing** stay close to naive on the unlearned class and are worse on the remaining "
        "classes, as in the paper"
        + (
            "; on MNIST they are slightly *below* naive on the unlearned class where the paper has them above"
            if below
            else ""
        )
        + f". They change {all_lo:.0f}–{all_hi:.0f}% of all labels and {unl_lo:.0f}–{unl_hi:.0f}% of the unlearned "
        "class's (paper: 18–20% and 45–49%) and cost accuracy.",
        "- **Logits versus probabilities (not in the paper).** Because normalization only shifts all remaining "
        "logits of a sample together, its softmax outputs are exactly naive deletion's: to an observer of "
        "probabilities the two are the same model (identical advantages in every set-up above), and the "
        "unlearned-class advantage on probabilities is far lower than on logits for both. The improvement "
        "normalization buys is visible only to someone who reads raw logits.",
        f"- **Cost.** Filtration is {min(ratios):.0f}–{max(ratios):.0f}x cheaper than retraining here, not the "
        f"thousands of times the issue expected: retraining these small models on our short recipes takes "
        f"{retrain_lo:.1f}–{retrain_hi:.0f} s, "
        "and filtration's time is dominated by the ℓ·k forward passes (1,000 at ℓ = 100) and copying the model, "
        "not by the k × k solve. The ratio grows linearly with the training budget of the model being unlearned "
        "(a model trained for hours is filtered in the same fraction of a second), and ℓ = 10 cuts filtration's "
        "own cost further.",
        "- **Model inversion does not reproduce the paper's figure.** In our reconstructions, naive deletion and "
        "normalization give nearly the same image for every class, the unlearned one included. With raw-logit "
        "objectives the two models differ only by the per-sample shift above, which changes the attack's "
        "objective by a term the optimiser barely follows; the paper's toy face model (sigmoid MLP, AT&T faces, "
        "its own inversion settings) is not available here to compare.",
        "",
    ]


if __name__ == "__main__":
    main()
