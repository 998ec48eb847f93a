"""`unlearnkit train`: train an original model (optionally prepared for SISA / SMU, with 000's Fisher) and save it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from unlearnkit.cli import common
from unlearnkit.errors import ParameterError


def add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train an original model and save it")
    common.add_data(p)
    common.add_training(p)
    common.add_scenario(p)
    common.add_seed(p)
    p.add_argument("--out", required=True, help="new folder for the model (must not hold a model)")
    g = p.add_argument_group("prepare for a method that needs it at training time (sisa, sisa_dp, smu)")
    g.add_argument("--sisa-shards", type=int, default=None, help="train a SISA ensemble of this many shards")
    g.add_argument("--sisa-slices", type=int, default=1, help="slices per shard (checkpoint after each)")
    g.add_argument("--sisa-epochs-per-slice", type=int, default=None, help="default: max(1, round(epochs / slices))")
    g.add_argument("--sisa-epsilon", type=float, default=None, help="train the shards with DP-SGD to this epsilon")
    g.add_argument("--sisa-delta", type=float, default=1e-5, help="DP delta (with --sisa-epsilon)")
    g.add_argument("--sisa-max-grad-norm", type=float, default=1.0, help="DP-SGD clipping norm")
    g.add_argument(
        "--fisher-data",
        choices=["except-target", "all", "none"],
        default=None,
        help="backdoor / leakage: save the EWC Fisher (selective-forgetting paper) computed on this data "
        "(default except-target)",
    )
    g.add_argument(
        "--smu-candidates",
        default=None,
        help="record SMU contributions of N seeded training samples, or of positions given as i,j,... or a file",
    )
    common.add_runtime(p)


def model_meta(
    arch: str, ds: Any, kwargs: dict[str, Any], split: Any, scenario: Any, config: Any, seed: int, data_dir: str | None
) -> dict[str, Any]:
    return {
        "architecture": {
            "name": arch,
            "input_shape": list(ds.input_shape),
            "num_classes": ds.num_classes,
            "kwargs": kwargs,
        },
        "dataset": {
            "name": ds.name,
            "sha256": ds.content_hash,
            "data_dir": data_dir,
            "split": {
                "seed": split.seed,
                "holdout_fraction": split.holdout_fraction,
                "train_size": split.train_size,
                "train_rows_sha256": split.train_rows_sha256(),
            },
        },
        "classes": list(ds.class_names),
        "scenario": scenario.describe(),
        "training": config.to_dict(),
        "seed": seed,
    }


def cmd_train(args: argparse.Namespace) -> int:
    from unlearnkit.core.artifacts import check_output_dir, save_model
    from unlearnkit.core.models import MODELS, build_model_for
    from unlearnkit.core.training import fit
    from unlearnkit.data import load_dataset, split_dataset
    from unlearnkit.env import environment, resolve_device, set_threads

    set_threads(args.threads)
    device = resolve_device(args.device)
    check_output_dir(args.out)
    args.arch = common.model_name(args, args.dataset)
    config = common.train_config(args)
    kwargs = common.model_kwargs(args.model_kwargs)
    MODELS.get(args.arch)
    scenario = common.scenario_from_args(args)
    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    split = split_dataset(ds, seed=args.seed, holdout_fraction=args.holdout_fraction, train_size=args.train_size)
    splits = scenario.prepare(split, seed=args.seed)
    kwargs = {**ds.model_options, **kwargs}  # a text dataset fixes the vocabulary size
    model: Any = build_model_for(ds, args.arch, seed=args.seed, **kwargs)
    common.say(f"training {args.arch} on {args.dataset}: {len(splits.train)} samples, {config.epochs} epochs")
    start = time.perf_counter()
    if args.sisa_shards is not None and args.smu_candidates is not None:
        raise ParameterError("The '--sisa-shards' and '--smu-candidates' parameters exclude each other; got both.")
    if args.sisa_shards is not None:
        from unlearnkit.methods import train_sisa

        common.say(
            f"SISA: {args.sisa_shards} shards x {args.sisa_slices} slices"
            + (f", DP-SGD epsilon {args.sisa_epsilon}" if args.sisa_epsilon is not None else "")
        )
        model = train_sisa(
            model,
            splits.train,
            config,
            shards=args.sisa_shards,
            slices=args.sisa_slices,
            epochs_per_slice=args.sisa_epochs_per_slice,
            seed=args.seed,
            dp_epsilon=args.sisa_epsilon,
            dp_delta=args.sisa_delta,
            max_grad_norm=args.sisa_max_grad_norm,
            device=device,
            progress=common.show_progress(args),
        )
        final, final_loss = "", None
    elif args.smu_candidates is not None:
        from unlearnkit.methods import train_smu

        text = args.smu_candidates.strip()
        candidates: Any
        if text.isdigit():
            candidates = int(text)
        elif "," in text:
            candidates = common.ints(text, "--smu-candidates")
        else:
            from unlearnkit.data import ForgetRequest

            if not Path(text).is_file():
                raise ParameterError(
                    "The '--smu-candidates' parameter must be a count, a comma list of positions or an existing "
                    f"file of positions; got {text!r}."
                )
            candidates = list(ForgetRequest.from_file(text).indices or ())
        model = train_smu(
            model,
            splits.train,
            config,
            candidates=candidates,
            seed=args.seed,
            device=device,
            progress=common.show_progress(args),
        )
        final, final_loss = "", None
    else:
        stats = fit(
            model,
            splits.train,
            config,
            seed=args.seed,
            device=device,
            progress=common.show_progress(args),
            desc="train",
        )
        final_loss = stats.epoch_loss[-1] if stats.epoch_loss else None
        final = f", final loss {final_loss:.4f}" if final_loss is not None else ""
    seconds = time.perf_counter() - start
    from unlearnkit.evaluation.outputs import outputs_of
    from unlearnkit.evaluation.scores import accuracy

    common.check_model(model, setting=f"--lr (now {args.lr}) or --epochs", loss=final_loss)
    model.eval()
    train_acc = accuracy(outputs_of(model, splits.train, device=device))
    holdout_acc = accuracy(outputs_of(model, splits.holdout, device=device))
    reached = f"train accuracy {100 * (train_acc or 0):.1f}%, holdout accuracy {100 * (holdout_acc or 0):.1f}%"
    common.warn_near_chance(holdout_acc, ds.num_classes, "holdout accuracy", f"--lr (now {args.lr}), --epochs, --model")
    fisher = args.fisher_data or ("except-target" if scenario.kind == "features" else "none")
    if fisher != "none":
        from unlearnkit.core.gradients import training_fisher

        t0 = time.perf_counter()
        training_fisher(model, splits, data=fisher, device=device)
        common.say(f"Fisher ({fisher}) computed in {time.perf_counter() - t0:.1f}s")
    meta = model_meta(args.arch, ds, kwargs, split, scenario, config, args.seed, args.data_dir)
    meta["train_seconds"] = seconds
    meta["reached"] = {"train_accuracy": train_acc, "holdout_accuracy": holdout_acc}
    meta["created_by"] = environment(device)
    # training position -> dataset row: the map from what a user holds (rows) to what requests name (positions)
    save_model(
        model,
        args.out,
        meta,
        extra_json={"training_rows.json": {"rows": split.train.indices.tolist()}},
        vocabulary=getattr(ds, "vocabulary", None),
    )
    print(f"saved {args.out} (trained in {seconds:.1f}s{final}; {reached})")
    return common.EXIT_OK
