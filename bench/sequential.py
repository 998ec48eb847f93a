"""Sequential deletion requests (issue 18, part 5): docs/results/sequential.md.

    python bench/sequential.py                  # 3 seeds; writes docs/results/sequential.md (+ .json)
    python bench/sequential.py --render-only    # re-render from docs/results/sequential.json

A deployed model receives requests one after another. MNIST, LeNet on a
seeded 10,000-image training subset (4 epochs, SGD lr 0.02 — the
``mnist_class`` recipe); K = 10 requests of m = 50 random training samples
each, every request drawn from what is still in the training set. Each
method starts from the same original and applies request 1, then request 2 to
its own result, and so on: the retain set of request k excludes requests
1..k (``Splits.without``). After each request its model is compared with a
model retrained from scratch on everything still remaining (Avg. Gap over
forget / retain / test accuracy and MIA accuracy, where the forget set is
everything deleted so far), and the cumulative seconds are set against
retraining after every request. SISA (5 shards × 2 slices, prepared at
training time) handles each request exactly by retraining the affected
shards. Methods run at their defaults: nothing is tuned.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from _results import results_parser, write_results
from unlearnkit import TrainConfig, build_model, collect, fit, load_dataset, make_method
from unlearnkit.core.sisa import train_sisa
from unlearnkit.data import ForgetRequest, split_dataset
from unlearnkit.data.splits import Splits
from unlearnkit.env import environment
from unlearnkit.evaluation.metrics import evaluate, gap
from unlearnkit.files import write_text_atomic
from unlearnkit.reporting import plots
from unlearnkit.reporting.tables import markdown_table, mean_std
from unlearnkit.running.experiment import GAP_METRICS

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "results" / "sequential.md"
COMMAND = "python bench/sequential.py"
RECIPE = TrainConfig(epochs=4, lr=0.02, batch_size=128)
TRAIN_SIZE, REQUESTS, PER_REQUEST = 10_000, 10, 50
METHODS = ("finetune", "neggrad_plus", "ssd", "salun", "l1_sparse")
SISA = {"shards": 5, "slices": 2}


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def requests_for(n_train: int, seed: int, k: int, m: int) -> list[torch.Tensor]:
    """K disjoint seeded sets of m training positions (request i never names an earlier request's samples)."""
    g = torch.Generator().manual_seed(int(seed) + 9176)
    perm = torch.randperm(n_train, generator=g)
    return [perm[i * m : (i + 1) * m].sort().values for i in range(k)]


def splits_after(split: Any, reqs: list[torch.Tensor], i: int, seed: int) -> Splits:
    """Splits for request i: forget = request i, and requests 0..i-1 already forgotten (in neither set)."""
    earlier = torch.cat(reqs[:i]) if i else None
    return Splits.from_request(split, ForgetRequest.from_indices(reqs[i]), seed=seed, forgotten=earlier)


def cumulative(split: Any, reqs: list[torch.Tensor], i: int, seed: int) -> Splits:
    """Everything deleted so far as one forget set: what retraining on the remainder is compared on."""
    return Splits.from_request(split, ForgetRequest.from_indices(torch.cat(reqs[: i + 1]).sort().values), seed=seed)


def run_seed(ds: Any, seed: int, k: int, m: int) -> dict[str, Any]:
    split = split_dataset(ds, seed=seed, holdout_fraction=0.1, train_size=TRAIN_SIZE)
    reqs = requests_for(len(split.train), seed, k, m)
    original = build_model("lenet", ds.input_shape, ds.num_classes, seed=seed)
    fit(original, split.train, RECIPE, seed=seed)
    sisa = train_sisa(build_model("lenet", ds.input_shape, ds.num_classes, seed=seed), split.train, RECIPE,
                      seed=seed, **SISA)  # fmt: skip
    current: dict[str, Any] = {m_: original for m_ in METHODS} | {"sisa": sisa}
    spent = {m_: 0.0 for m_ in current} | {"retrain": 0.0}
    steps: list[dict[str, Any]] = []
    for i in range(k):
        say(f"seed {seed}: request {i + 1} of {k}")
        seq = splits_after(split, reqs, i, seed)
        whole = cumulative(split, reqs, i, seed)
        start = time.perf_counter()
        ref = make_method("retrain").unlearn(original, whole, seed=seed, recipe=RECIPE)
        spent["retrain"] += ref.seconds
        ref_m = evaluate(collect(ref.model, whole), GAP_METRICS, seed=seed)
        row: dict[str, Any] = {"request": i + 1, "deleted": int(sum(len(r) for r in reqs[: i + 1])),
                               "retrain_seconds": ref.seconds, "methods": {}}  # fmt: skip
        for name, model in current.items():
            out = make_method(name).unlearn(model, seq, seed=seed, recipe=RECIPE)
            spent[name] += out.seconds
            current[name] = out.model
            met = evaluate(collect(out.model, whole), GAP_METRICS, seed=seed)
            gaps = [gap(met.get(x), ref_m.get(x)) for x in GAP_METRICS]
            defined = [g for g in gaps if g is not None]
            row["methods"][name] = {"avg_gap": 100 * sum(defined) / len(defined) if defined else None,
                                    "test_accuracy": met.get("test_accuracy"),
                                    "forget_accuracy": met.get("forget_accuracy"),
                                    "seconds": out.seconds, "cumulative_seconds": spent[name]}  # fmt: skip
        row["retrain_cumulative_seconds"] = spent["retrain"]
        row["test_accuracy_retrain"] = ref_m.get("test_accuracy")
        row["wall"] = time.perf_counter() - start
        steps.append(row)
    return {"steps": steps}


def main() -> None:
    ap = results_parser(__doc__, PAGE, "2 requests of 20, 1 seed, 1 epoch")
    args = ap.parse_args()
    json_path = args.out.with_suffix(".json")
    if args.render_only:
        write_text_atomic(args.out, render(json.loads(json_path.read_text()), args.out.parent / "img"))
        return
    global RECIPE
    k, m = (2, 20) if args.smoke else (REQUESTS, PER_REQUEST)
    if args.smoke:
        RECIPE = TrainConfig(**{**RECIPE.to_dict(), "epochs": 1})
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    ds = load_dataset("mnist")
    record: dict[str, Any] = {"env": environment(), "recipe": RECIPE.to_dict(), "requests": k, "per_request": m,
                              "train_size": TRAIN_SIZE, "sisa": SISA, "seeds": {}}  # fmt: skip
    for seed in (int(s) for s in args.seeds.split(",")):
        record["seeds"][str(seed)] = run_seed(ds, seed, k, m)
    record["total_seconds"] = time.perf_counter() - start
    write_results(record, json_path, args.out, render)
    say(f"wrote {args.out}")


def render(record: dict[str, Any], img: Path) -> str:
    seeds = list(record["seeds"].values())
    names = list(seeds[0]["steps"][0]["methods"])
    k = record["requests"]

    def series(key: str) -> dict[str, tuple[list[float], list[float]]]:
        out = {}
        for name in names:
            vals = [[s["steps"][i]["methods"][name][key] for s in seeds] for i in range(k)]
            ms = [mean_std([v for v in col if v is not None]) for col in vals]
            out[name] = ([a if a is not None else float("nan") for a, _ in ms], [b or 0.0 for _, b in ms])
        return out

    cum = series("cumulative_seconds")
    rt = [[s["steps"][i]["retrain_cumulative_seconds"] for s in seeds] for i in range(k)]
    cum["retrain"] = ([mean_std(c)[0] or 0.0 for c in rt], [mean_std(c)[1] or 0.0 for c in rt])
    fig = plots.curve_panels({"Avg. Gap to retraining on what remains": series("avg_gap"),
                              "cumulative seconds": cum}, xlabel="request", ylabel=["points", "seconds"], x0=1,
                             title="sequential requests: quality and cost after each request")  # fmt: skip
    img.mkdir(parents=True, exist_ok=True)
    path = img / "sequential_curves.png"
    path.write_bytes(plots.png(fig))
    head = ["method", "Avg. Gap after request 1", f"after request {k}", "cumulative seconds after request 1",
            f"after request {k}", f"retraining's cumulative seconds after request {k}"]
    rows = []
    for name in names:
        first = mean_std([s["steps"][0]["methods"][name]["avg_gap"] for s in seeds])
        last = mean_std([s["steps"][-1]["methods"][name]["avg_gap"] for s in seeds])
        c1 = mean_std([s["steps"][0]["methods"][name]["cumulative_seconds"] for s in seeds])
        ck = mean_std([s["steps"][-1]["methods"][name]["cumulative_seconds"] for s in seeds])
        rows.append([f"`{name}`", f"{first[0]:.2f} ± {first[1] or 0:.2f}", f"{last[0]:.2f} ± {last[1] or 0:.2f}",
                     f"{c1[0]:.1f}", f"{ck[0]:.1f}", f"{mean_std(rt[-1])[0]:.1f}"])  # fmt: skip
    return "\n".join([
        "# Sequential deletion requests: quality and cost after each request (MNIST, LeNet)", "",
        f"Generated by `{COMMAND}` ({len(seeds)} seed(s), {record['total_seconds'] / 60:.0f} min on "
        f"{record['env'].get('cpu_count', '?')} CPU cores). {k} requests of {record['per_request']} samples on a "
        f"{record['train_size']:,}-image training set; the set-up is in the docstring of `bench/sequential.py`.", "",
        markdown_table(head, rows), "",
        f"![quality and cost after each request](img/{path.name})", "",
        "*Mean ± std over seeds. Avg. Gap is measured against a model retrained from scratch on everything still "
        "remaining after that request, with every deletion so far as the forget set. SISA retrains only the "
        "shards the request touches; its Avg. Gap is against the same full retraining.*", "",
    ])  # fmt: skip


if __name__ == "__main__":
    main()
