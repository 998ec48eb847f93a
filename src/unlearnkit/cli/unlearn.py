"""`unlearnkit unlearn` and `unlearnkit evaluate`: forget a request on a saved model; measure a saved model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from unlearnkit.cli import common
from unlearnkit.errors import ParameterError

FORGET_OPTIONS = ("forget_classes", "forget_indices", "forget_rows", "forget_fraction", "forget_count")


def request_label(request: Any, scenario: Any) -> str:
    """What a record calls the request: ``indices``, ``class`` or ``random`` (the training scenario's name is
    not the deletion's: forgetting listed samples of a class-scenario model is no class request)."""
    if request is None:
        return str(scenario.name)
    if request.indices is not None:
        return "indices"
    return "class" if request.classes is not None else "random"


def add_unlearn(sub: Any) -> None:
    p = sub.add_parser("unlearn", help="make a saved model forget a request; write the new model and its record")
    p.add_argument("--model", dest="model_dir", required=True, help="folder of a model saved by unlearnkit")
    p.add_argument("--method", required=True, help="method name (unlearnkit list methods)")
    common.add_settings(p, "--set", "KEY=VALUE", "method setting, e.g. --set beta=0.9")
    common.add_forget(p)
    common.add_seed(p)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", required=True, help="new folder for the unlearned model")
    common.add_json(p, "also write the run record to this file")
    p.add_argument("--track-validation", action="store_true", help="holdout accuracy per epoch -> epochs_to_best")
    common.add_runtime(p)


def add_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="measure a saved model (optionally against a retrained reference)")
    p.add_argument("--model", dest="model_dir", required=True)
    p.add_argument("--reference", default=None, help="folder of the retrained reference model")
    common.add_forget(p)
    common.add_seed(p)
    p.add_argument("--data-dir", default=None)
    common.add_json(p, "write the metrics record to this file")
    common.add_runtime(p)


def cmd_unlearn(args: argparse.Namespace) -> int:
    from unlearnkit.core.artifacts import check_output_dir, save_model
    from unlearnkit.core.models import num_outputs
    from unlearnkit.core.training import TrainConfig
    from unlearnkit.env import environment, resolve_device, set_threads
    from unlearnkit.evaluation.collection import collect
    from unlearnkit.evaluation.metrics import evaluate
    from unlearnkit.files import file_sha256, write_json_atomic
    from unlearnkit.methods import make_method
    from unlearnkit.running.experiment import GAP_METRICS, summarize_diagnostics

    set_threads(args.threads)
    device = resolve_device(args.device)
    check_output_dir(args.out)
    common.check_json_target(args, inputs=(args.forget_indices, args.forget_rows))
    method = make_method(args.method, **common.parse_settings(args.set, qualified=False).get("", {}))
    if all(getattr(args, f) is None for f in FORGET_OPTIONS):
        raise ParameterError(
            "The 'unlearn' command must be told what to forget: give --forget-classes, --forget-indices, "
            "--forget-rows, --forget-fraction or --forget-count (a deletion is never taken from the model's defaults)."
        )
    model, meta, _ds, split, scenario = common.context_from_model(args.model_dir, args.data_dir)
    request = common.request_from_args(args, split)
    history = common.deletion_history(meta, split, scenario, args.model_dir)
    forgotten = common.forgotten_positions(history)
    splits = scenario.prepare(split, seed=meta["seed"], request=request, forgotten=forgotten)
    method.check_request(splits)
    if history:
        common.say(f"{len(history)} earlier deletion(s) of {forgotten.numel()} samples stay deleted")
    recipe = TrainConfig.from_dict(meta["training"])
    common.say(f"{args.method}: forgetting {len(splits.forget)} of {len(splits.train)} training samples")
    outcome = method.unlearn(
        model,
        splits,
        seed=args.seed,
        recipe=recipe,
        device=device,
        progress=common.show_progress(args),
        track_validation=args.track_validation,
    )
    common.check_model(outcome.model, setting=f"{args.method}'s step size or strength (--set ...)")
    metrics = evaluate(collect(outcome.model, splits, device=device), seed=args.seed)
    retain_acc = metrics.get("retain_accuracy")
    common.warn_near_chance(
        retain_acc if isinstance(retain_acc, float) else None,
        splits.num_classes,
        "retain accuracy after unlearning",
        f"{args.method}'s settings (--set ...)",
    )
    new_meta = {k: v for k, v in meta.items() if k not in ("format", "format_version", "weights_sha256")}
    unlearning = {
        "method": outcome.method,
        "params": outcome.params,
        "seed": args.seed,
        "seconds": outcome.seconds,
        "steps": outcome.steps,
        "samples_seen": outcome.samples_seen,
        "request": splits.request.describe() if splits.request else None,
        "forget_sha256": splits.request_hash(),
        "n_forget": len(splits.forget),
        "forget_positions": splits.forget_positions.tolist(),
        "n_retain": len(splits.retain),
        "n_already_forgotten": splits.n_already_forgotten,
        "parent_weights_sha256": file_sha256(Path(args.model_dir) / "model.safetensors"),
        "diagnostics": summarize_diagnostics(outcome.diagnostics),
    }
    new_meta["unlearning"] = unlearning  # the latest deletion
    new_meta["deletions"] = [*history, unlearning]  # every deletion this model has honoured, oldest first
    outputs = num_outputs(outcome.model)
    if outputs != new_meta["architecture"]["num_classes"]:  # a method dropped the forgotten classes' outputs
        new_meta["architecture"] = {**new_meta["architecture"], "num_classes": outputs}
        new_meta["output_classes"] = splits.remaining_classes
    new_meta["created_by"] = environment(device)
    record = {
        "config": {
            "command": "unlearn",
            "model": str(args.model_dir),
            "method": args.method,
            "params": outcome.params,
            "seed": args.seed,
            "request": unlearning["request"],
        },
        "env": environment(device),
        "results": [
            {
                "method": outcome.method,
                "seed": args.seed,
                "scenario": request_label(splits.request, scenario),
                "seconds": outcome.seconds,
                "speedup": None,
                "metrics": metrics,
            }
        ],
    }
    rows = {"rows": split.train.indices.tolist()}  # as `train` writes it: --forget-rows works on this model too
    vocab = getattr(split.dataset, "vocabulary", None)
    if vocab is not None:  # tokens only forgotten documents held: the saved vocabulary no longer names them
        vocab = vocab.retire(outcome.diagnostics.get("retired_tokens", []))
    save_model(
        outcome.model,
        args.out,
        new_meta,
        extra_json={"record.json": record, "training_rows.json": rows},
        vocabulary=vocab,
    )
    if args.json:
        write_json_atomic(args.json, record)
    shown = ", ".join(f"{k} {100 * v:.1f}%" for k in GAP_METRICS if isinstance(v := metrics.get(k), float))
    print(f"saved {args.out} ({outcome.seconds:.2f}s): {shown}")
    return common.EXIT_OK


def check_reference(folder: str, ref_meta: dict[str, Any], meta: dict[str, Any], splits: Any, split: Any,
                    scenario: Any) -> None:  # fmt: skip
    """Refuse a ``--reference`` that is not retraining from scratch on exactly the evaluated retain set.

    The reference's own record must say ``retrain``, on the same training set, and
    the samples it was retrained without must be the evaluated forget set plus
    every earlier deletion — otherwise the gaps would be read against the wrong model
    (the original, say, which makes doing nothing look perfect).
    """
    from unlearnkit.errors import CheckpointError

    if ref_meta.get("dataset", {}).get("split") != meta.get("dataset", {}).get("split"):
        raise CheckpointError(f"The '--reference' model {folder!r} was trained on another training set.")
    history = common.deletion_history(ref_meta, split, scenario, folder)
    if not history or history[-1].get("method") != "retrain":
        what = "has no unlearning record (an original model?)" if not history else f"is {history[-1].get('method')!r}"
        raise CheckpointError(
            f"The '--reference' model {folder!r} must be retrained from scratch without the forget set "
            f"(unlearnkit unlearn --method retrain); it {what}."
        )
    without = set(common.forgotten_positions(history).tolist())
    expected = set(splits.forget_positions.tolist()) | set(splits.forgotten.tolist())
    if without != expected:
        raise CheckpointError(
            f"The '--reference' model {folder!r} was retrained without {len(without)} samples, but the evaluated "
            f"retain set leaves out {len(expected)} (forget set plus earlier deletions): not the same retain set."
        )


def cmd_evaluate(args: argparse.Namespace) -> int:
    from unlearnkit.core.artifacts import load_model
    from unlearnkit.data import ForgetRequest
    from unlearnkit.env import environment, resolve_device, set_threads
    from unlearnkit.evaluation.collection import collect
    from unlearnkit.evaluation.metrics import METRICS, evaluate, gap
    from unlearnkit.files import write_json_atomic
    from unlearnkit.reporting.tables import metrics_table
    from unlearnkit.running.experiment import GAP_METRICS

    set_threads(args.threads)
    device = resolve_device(args.device)
    common.check_json_target(args, inputs=(args.forget_indices, args.forget_rows))
    model, meta, _ds, split, scenario = common.context_from_model(args.model_dir, args.data_dir)
    request = common.request_from_args(args, split)
    recorded = meta.get("unlearning", {})
    history = common.deletion_history(meta, split, scenario, args.model_dir)
    if request is None and history:  # the latest deletion, with the earlier ones excluded
        last = history[-1].get("request") or {}
        request = (  # a class request stays one: the class metrics apply to it
            ForgetRequest.from_classes(last["classes"])
            if last.get("kind") == "classes"
            else ForgetRequest.from_indices(history[-1]["forget_positions"])
        )
    # Random requests are drawn with the training seed, as `unlearn` does.
    splits = scenario.prepare(split, seed=meta["seed"], request=request)
    if history:  # earlier deletions are in neither set (the evaluated ones stay in the forget set)
        splits = splits.without(common.forgotten_positions(history, except_=splits.forget_positions))
    if recorded.get("forget_sha256") and recorded["forget_sha256"] != splits.request_hash():
        common.say("note: this forget set differs from the one the model was unlearned with")
    metrics = evaluate(collect(model, splits, device=device), seed=args.seed)
    ref_metrics = None
    if args.reference:
        ref_model, ref_meta = load_model(args.reference)
        check_reference(args.reference, ref_meta, meta, splits, split, scenario)
        ref_metrics = evaluate(collect(ref_model, splits, device=device), seed=args.seed)
    directions = {n: {"retrain": "closest to retrain"}.get(METRICS.get(n).direction, METRICS.get(n).direction)
                  for n in metrics}  # fmt: skip
    title = f"{args.model_dir}: forget set of {len(splits.forget)} samples"
    print(metrics_table(metrics, ref_metrics, directions=directions, title=title))
    if args.json:
        result = {
            "method": meta.get("unlearning", {}).get("method", "model"),
            "seed": args.seed,
            "scenario": request_label(splits.request, scenario),
            "seconds": meta.get("unlearning", {}).get("seconds"),
            "speedup": None,
            "metrics": metrics,
        }
        results = [result]
        if ref_metrics is not None:
            result["gap"] = {k: gap(metrics.get(k), ref_metrics.get(k)) for k in GAP_METRICS}
            results.append(
                {
                    "method": "retrain",
                    "seed": args.seed,
                    "scenario": request_label(splits.request, scenario),
                    "seconds": None,
                    "speedup": 1.0,
                    "metrics": ref_metrics,
                }
            )
        write_json_atomic(
            args.json,
            {
                "config": {
                    "command": "evaluate",
                    "model": args.model_dir,
                    "reference": args.reference,
                    "n_forget": len(splits.forget),
                    "forget_sha256": splits.request_hash(),
                },
                "env": environment(device),
                "results": results,
            },
        )
    return common.EXIT_OK
