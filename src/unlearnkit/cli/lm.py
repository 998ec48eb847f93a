"""`unlearnkit train-lm` and `unlearnkit exposure`: a language model trained with canaries, and their exposure.

``train-lm`` builds the ``canary`` scenario on a text dataset's training documents
(Rotten Tomatoes by default), trains ``lstm_lm`` on its windows and saves the model
folder with ``vocabulary.json`` and ``canaries.json`` beside the weights, both hashed in
the sidecar. ``exposure`` reads such a folder — nothing is refitted, no data is read —
and prints every canary's exposure by rank (all ``10 ** digits`` secrets enumerated)
and by the skew-normal fit (003 eq. 8), its repeat count and its log-perplexity.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, cast

from unlearnkit.cli import common
from unlearnkit.errors import CheckpointError, ParameterError

CANARY_OPTIONS = "count, repeats, digits, prefix, window, vocabulary_size, min_df"


def add_train_lm(sub: Any) -> None:
    p = sub.add_parser(
        "train-lm",
        help="train the canary language model (lstm_lm on a text dataset with canaries inserted) and save it",
    )
    common.add_data(p)
    p.set_defaults(dataset="rotten_tomatoes", train_size=3000)
    common.add_training(p, epochs=10)
    p.set_defaults(arch="lstm_lm", batch_size=64)
    common.add_settings(
        p, "--scenario-set", "KEY=VALUE", f"canary option ({CANARY_OPTIONS}), e.g. --scenario-set repeats=[1,5,30]"
    )
    common.add_seed(p, "seeds the split, the canaries, the initial weights and the shuffle")
    p.add_argument("--out", required=True, help="new folder for the model (must not hold a model)")
    common.add_runtime(p)


def cmd_train_lm(args: argparse.Namespace) -> int:
    from unlearnkit.core.artifacts import check_output_dir, save_model
    from unlearnkit.core.models import build_model
    from unlearnkit.core.training import fit
    from unlearnkit.data import load_dataset, split_dataset
    from unlearnkit.data.canaries import CANARIES_FILE, CanaryScenario, canaries_sha256
    from unlearnkit.data.scenarios import make_scenario
    from unlearnkit.env import environment, resolve_device, set_threads
    from unlearnkit.evaluation.exposure import next_token_scores

    set_threads(args.threads)
    device = resolve_device(args.device)
    check_output_dir(args.out)
    if args.arch != "lstm_lm":
        raise ParameterError(
            f"The '--model' parameter of train-lm must be lstm_lm (the language model); got {args.arch!r}."
        )
    config = common.train_config(args)
    kwargs = common.model_kwargs(args.model_kwargs)
    options = common.parse_settings(args.scenario_set, qualified=False, param="--scenario-set").get("", {})
    scenario = cast(CanaryScenario, make_scenario("canary", **options))
    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    split = split_dataset(ds, seed=args.seed, holdout_fraction=args.holdout_fraction, train_size=args.train_size)
    corpus = scenario.corpus(split, seed=args.seed)
    splits = corpus.splits(seed=args.seed)
    vocab = corpus.vocabulary
    model = build_model("lstm_lm", (corpus.window,), vocab.size, seed=args.seed, **kwargs)
    common.say(
        f"training lstm_lm on {args.dataset}: {len(splits.train)} windows of {corpus.window + 1} tokens "
        f"({corpus.train.numel()} tokens, vocabulary {vocab.size}), {corpus.spec.count} canaries inserted "
        f"{sum(corpus.spec.repeat_counts())} times in all, {config.epochs} epochs"
    )
    stats = fit(model, splits.train, config, seed=args.seed, device=device, progress=common.show_progress(args),
                desc="train-lm")  # fmt: skip
    final_loss = stats.epoch_loss[-1] if stats.epoch_loss else None
    common.check_model(model, setting=f"--lr (now {args.lr}) or --epochs", loss=final_loss)
    model.eval()
    holdout = next_token_scores(model, splits.holdout)
    forget = next_token_scores(model, splits.forget)
    canaries = corpus.describe()
    meta = {
        "architecture": {
            "name": "lstm_lm",
            "input_shape": [corpus.window],
            "num_classes": vocab.size,
            "kwargs": kwargs,
        },
        "dataset": {
            "name": ds.name,
            "sha256": ds.content_hash,
            "data_dir": args.data_dir,
            "split": {
                "seed": split.seed,
                "holdout_fraction": split.holdout_fraction,
                "train_size": split.train_size,
                "train_rows_sha256": split.train_rows_sha256(),
            },
        },
        "classes": [],
        "scenario": scenario.describe(),
        "training": config.to_dict(),
        "seed": args.seed,
        "canaries": {"file": CANARIES_FILE, "sha256": canaries_sha256(canaries)},
        "train_seconds": stats.seconds,
        "reached": {
            "holdout_next_token_accuracy": holdout.accuracy,
            "holdout_loss": holdout.loss,
            "canary_window_next_token_accuracy": forget.accuracy,
        },
        "created_by": environment(device),
    }
    save_model(model, args.out, meta, vocabulary=vocab, extra_json={CANARIES_FILE: canaries})
    print(
        f"saved {args.out} (trained in {stats.seconds:.1f}s, final loss {final_loss:.4f}; next-token accuracy "
        f"{100 * holdout.accuracy:.1f}% on holdout windows, {100 * forget.accuracy:.1f}% on the canary windows)"
    )
    return common.EXIT_OK


def add_exposure(sub: Any) -> None:
    p = sub.add_parser("exposure", help="exposure of a saved language model's canaries (by rank and skew-normal)")
    p.add_argument("--model", required=True, help="a folder saved by train-lm")
    p.add_argument("--samples", type=int, default=5000, help="random secrets the skew-normal is fitted to")
    p.add_argument(
        "--no-rank", action="store_true", help="skip enumerating every secret (the rank exposure; ~10^5 LSTM steps)"
    )
    common.add_seed(p, "seeds the sampled secrets of the skew-normal fit")
    common.add_json(p, "write every canary's exposure to this file")
    common.add_runtime(p)


def load_language_model(folder: str | Path) -> tuple[Any, dict[str, Any], Any, dict[str, Any]]:
    """A saved language model, its sidecar, vocabulary and canaries, each checked against the sidecar's hashes."""
    from unlearnkit.core.artifacts import load_model, load_vocabulary, read_metadata
    from unlearnkit.data.canaries import CANARIES_FILE, canaries_sha256, read_canaries
    from unlearnkit.errors import DataError

    folder = Path(folder)
    meta = read_metadata(folder)
    if meta.get("architecture", {}).get("name") != "lstm_lm" or "canaries" not in meta:
        raise CheckpointError(
            f"The '--model' folder {str(folder)!r} is not a language model with canaries (train one with train-lm)."
        )
    path = folder / CANARIES_FILE
    try:
        canaries = read_canaries(json.loads(path.read_text(encoding="utf-8")), source=str(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} cannot be read ({exc}); the model folder is damaged.") from None
    except DataError as exc:
        raise CheckpointError(str(exc)) from None
    if canaries_sha256(canaries) != meta["canaries"].get("sha256"):
        raise CheckpointError(f"{path} does not match the hash in its sidecar: it was changed.")
    model, meta = load_model(folder)
    vocab = load_vocabulary(folder, meta, model)
    if vocab is None:
        raise CheckpointError(f"The '--model' folder {str(folder)!r} has no vocabulary entry in its sidecar.")
    return model, meta, vocab, canaries


def cmd_exposure(args: argparse.Namespace) -> int:
    from unlearnkit.data.canaries import CanarySpec
    from unlearnkit.env import resolve_device, set_threads
    from unlearnkit.evaluation.exposure import SAFE_EXPOSURE, canary_exposure
    from unlearnkit.files import write_json_atomic
    from unlearnkit.validation import Interval, validate_parameters

    common.check_json_target(args)
    validate_parameters("exposure", {"--samples": args.samples}, {"--samples": Interval(int, 3, None)})
    set_threads(args.threads)
    device = resolve_device(args.device)
    model, _meta, vocab, canaries = load_language_model(args.model)
    model.to(device)
    spec = CanarySpec.from_dict(canaries["spec"])
    start = time.perf_counter()
    report = canary_exposure(model, canaries["context_ids"], canaries["digit_ids"], canaries["secrets"], spec.digits,
                             samples=args.samples, enumerate_space=not args.no_rank, seed=args.seed)  # fmt: skip
    seconds = time.perf_counter() - start
    rows = []
    for i, secret in enumerate(canaries["secrets"]):
        rows.append({
            "canary": i,
            "secret": f"{spec.prefix} {' '.join(str(secret).zfill(spec.digits))}",
            "repeats": canaries["repeats"][i],
            "log_perplexity": float(report.log_perplexity[i]),
            "rank": None if report.rank is None else int(report.rank[i]),
            "rank_exposure": None if report.rank_exposure is None else float(report.rank_exposure[i]),
            "skew_normal_exposure": float(report.skew_normal_exposure[i]),
        })  # fmt: skip
    print(f"exposure of {len(rows)} canaries in {args.model} (|R| = {report.space_size:,}; "
          f"skew-normal fitted to {report.samples} random secrets; {seconds:.1f}s)")  # fmt: skip
    print(f"{'canary':<8}{'repeats':>8}{'log-ppl (bits)':>16}{'rank':>10}{'exposure (rank)':>17}{'(skew-normal)':>15}")
    for r in rows:
        rank = "–" if r["rank"] is None else f"{r['rank']:,}"
        by_rank = "–" if r["rank_exposure"] is None else f"{r['rank_exposure']:.2f}"
        print(f"{r['canary']:<8}{r['repeats']:>8}{r['log_perplexity']:>16.2f}{rank:>10}{by_rank:>17}"
              f"{r['skew_normal_exposure']:>15.2f}")  # fmt: skip
    print(
        f"higher = more memorised; by rank at most log2 |R| = {math.log2(report.space_size):.2f}; "
        f"below {SAFE_EXPOSURE:g} is safe (Carlini et al.; 003 §G)"
    )
    if args.json:
        write_json_atomic(args.json, {
            "model": str(args.model), "vocabulary_sha256": vocab.sha256, "space_size": report.space_size,
            "samples": report.samples, "skew_normal_fit": dict(zip(("a", "loc", "scale"), report.fit, strict=True)),
            "seconds": {**report.seconds, "total": seconds}, "canaries": rows,
        })  # fmt: skip
    return common.EXIT_OK
