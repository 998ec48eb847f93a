"""`unlearnkit forget-feature`: remove a feature (a backdoor trigger) while keeping the samples (000)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from unlearnkit.cli import common
from unlearnkit.errors import ParameterError


def add_forget_feature(sub: Any) -> None:
    p = sub.add_parser(
        "forget-feature",
        help="make a saved model stop using a feature (backdoor trigger, leaked mark) while keeping its samples "
        "(selective-forgetting paper)",
    )
    p.add_argument("--model", dest="model_dir", required=True, help="folder of a model saved by unlearnkit")
    g = p.add_argument_group("the feature: a registered transform, or images")
    g.add_argument("--transform", default=None, help="registered feature map (line, tile, color, ...)")
    g.add_argument("--target-class", type=int, default=None, help="with --transform: the class that carries it")
    g.add_argument("--forget", default=None, help="D_f: .npz (images, labels) of training images with the feature")
    g.add_argument("--forget-clean", default=None, help="D_f,clean: the same images without it (same order)")
    g.add_argument("--extra", default=None, help="optional .npz of other-class images with the feature (D_r,extra)")
    p.add_argument("--pattern", choices=["B", "C"], default="B", help="B: backdoor (default), C: leakage")
    p.add_argument("--search-trials", type=int, default=0, help="Optuna trials choosing lr, lam_kl, lam_f (0: none)")
    p.add_argument(
        "--folds", type=int, default=2, help="cross-validation folds per trial (the selective-forgetting paper uses 5)"
    )
    common.add_settings(p, "--set", "KEY=VALUE", "selective_forgetting setting (fixed)")
    common.add_seed(p)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", required=True, help="new folder for the model, record.json and search.json")
    common.add_json(p, "also write the run record to this file")
    common.add_runtime(p)


def cmd_forget_feature(args: argparse.Namespace) -> int:
    from unlearnkit.core.artifacts import check_output_dir, save_model
    from unlearnkit.core.gradients import attached_fisher
    from unlearnkit.data.scenarios import make_scenario
    from unlearnkit.env import environment, resolve_device, set_threads
    from unlearnkit.evaluation.collection import collect
    from unlearnkit.evaluation.metrics import evaluate
    from unlearnkit.files import file_sha256, write_json_atomic
    from unlearnkit.methods import make_method
    from unlearnkit.running.experiment import summarize_diagnostics
    from unlearnkit.validation import Interval, validate_parameters

    set_threads(args.threads)
    device = resolve_device(args.device)
    validate_parameters(
        "forget-feature",
        {"--search-trials": args.search_trials, "--folds": args.folds},
        {"--search-trials": Interval(int, 0, None), "--folds": Interval(int, 1, 5)},
    )
    check_output_dir(args.out)
    common.check_json_target(args, inputs=(args.forget, args.forget_clean, args.extra))
    by_transform = args.transform is not None
    by_files = args.forget is not None or args.forget_clean is not None
    if by_transform == by_files:
        raise ParameterError(
            "The feature must be given either as '--transform' with '--target-class' or as '--forget' with "
            "'--forget-clean' files; got " + ("both." if by_transform else "neither.")
        )
    settings = common.parse_settings(args.set, qualified=False).get("", {})
    make_method("selective_forgetting", **settings)  # bad settings fail before any work
    model, meta, ds, split, _scenario = common.context_from_model(args.model_dir, args.data_dir)
    if by_transform:
        if args.target_class is None:
            raise ParameterError("The '--target-class' parameter is required with '--transform'; got none.")
        name = "backdoor" if args.pattern == "B" else "leakage"
        scenario = make_scenario(name, transform=args.transform, target_class=args.target_class)
        splits = scenario.prepare(split, seed=meta["seed"])
    else:
        from unlearnkit.data.features import feature_splits_from_views, load_images_npz

        if args.forget is None or args.forget_clean is None:
            raise ParameterError("The '--forget' and '--forget-clean' files go together; got only one.")
        shape = tuple(ds.input_shape)
        extra = load_images_npz(args.extra, param="--extra", input_shape=shape) if args.extra else None
        splits = feature_splits_from_views(
            load_images_npz(args.forget, param="--forget", input_shape=shape),
            load_images_npz(args.forget_clean, param="--forget-clean", input_shape=shape),
            split.holdout,
            split.test,
            ds.num_classes,
            extra=extra,
            pattern=args.pattern,
        )
        if attached_fisher(model) is None:
            splits = splits.with_extras(fisher=splits.extras["holdout_retain"])
    search_record = None
    if args.search_trials:
        from unlearnkit.running.tuning import SELECTIVE_SPACE, search, selective_objective

        space = {k: v for k, v in SELECTIVE_SPACE.items() if k not in settings}
        common.say(
            f"searching {', '.join(space)} over {args.search_trials} trials x {args.folds} folds (holdout data only)"
        )
        objective = selective_objective(model, splits, pattern=args.pattern, folds=args.folds, seed=args.seed,
                                        fixed=settings)  # fmt: skip
        result = search(objective, space, trials=args.search_trials, seed=args.seed, direction="maximize",
                        fixed=settings, progress=common.show_progress(args))  # fmt: skip
        settings = result.best_params
        search_record = {"space": {k: p.to_dict() for k, p in space.items()}, **result.to_dict()}
        common.say(f"best cross-validated minimum accuracy {100 * result.best_value:.1f}% with {settings}")
    method = make_method("selective_forgetting", **settings)
    common.say(f"forgetting the feature in {len(splits.forget)} images (pattern {args.pattern})")
    before = evaluate(collect(model, splits, device=device), seed=args.seed)
    outcome = method.unlearn(model, splits, seed=args.seed, device=device, progress=common.show_progress(args))
    after = evaluate(collect(outcome.model, splits, device=device), seed=args.seed)
    new_meta = {k: v for k, v in meta.items() if k not in ("format", "format_version", "weights_sha256")}
    new_meta["unlearning"] = {
        "method": outcome.method,
        "params": outcome.params,
        "pattern": args.pattern,
        "feature": {"transform": args.transform, "target_class": args.target_class}
        if by_transform
        else {"forget": args.forget, "forget_clean": args.forget_clean, "extra": args.extra},
        "seed": args.seed,
        "seconds": outcome.seconds,
        "parent_weights_sha256": file_sha256(Path(args.model_dir) / "model.safetensors"),
        "diagnostics": summarize_diagnostics(outcome.diagnostics),
    }
    new_meta["created_by"] = environment(device)
    record: dict[str, Any] = {
        "config": {"command": "forget-feature", "model": str(args.model_dir), "pattern": args.pattern,
                   "params": outcome.params, "seed": args.seed},
        "env": environment(device),
        "results": [
            {"method": "original", "seed": args.seed, "scenario": f"pattern {args.pattern}", "seconds": None,
             "speedup": None, "metrics": before},
            {"method": outcome.method, "seed": args.seed, "scenario": f"pattern {args.pattern}",
             "seconds": outcome.seconds, "speedup": None, "metrics": after},
        ],
    }  # fmt: skip
    extra_json = {"record.json": record}
    if search_record is not None:
        extra_json["search.json"] = search_record
    save_model(outcome.model, args.out, new_meta, extra_json=extra_json)
    if args.json:
        write_json_atomic(args.json, record)
    from unlearnkit.reporting.tables import results_table

    print(results_table(record["results"], title=f"forget-feature, pattern {args.pattern}"))
    print(f"saved {args.out} ({outcome.seconds:.2f}s)")
    return common.EXIT_OK
