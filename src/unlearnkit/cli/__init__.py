"""The ``unlearnkit`` command line.

Exit status: 0 success; 2 bad input (one line on stderr, no file written);
1 internal error. See ``docs/cli.md`` for every command and option.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from unlearnkit.errors import ParameterError, UnlearnkitError

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UnlearnkitError(f"{self.prog}: {message}")


# -- argument groups -----------------------------------------------------------


def _add_runtime(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, or auto (cuda when present)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars on stderr (default: when stderr is a terminal)",
    )


def _add_data(p: argparse.ArgumentParser, *, defaults: bool = True) -> None:
    p.add_argument("--dataset", default="mnist" if defaults else None, help="dataset name (unlearnkit list datasets)")
    p.add_argument("--data-dir", default=None, help="folder with the dataset's standard files (never downloads)")
    p.add_argument("--holdout-fraction", type=float, default=0.1, help="share of training data never trained on")
    p.add_argument("--train-size", type=int, default=None, help="train on a seeded subset of this many samples")


def _add_training(p: argparse.ArgumentParser, *, epochs: int = 5) -> None:
    p.add_argument("--model", dest="arch", default="lenet", help="model name (unlearnkit list models)")
    p.add_argument(
        "--model-kwargs", default="{}", help="JSON keyword arguments of the model, e.g. '{\"widths\": [128]}'"
    )
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--optimizer", default="sgd", help="sgd or adam")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.0)


def _add_scenario(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", default=None, help="scenario name (unlearnkit list scenarios)")
    p.add_argument(
        "--scenario-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="scenario option, e.g. --scenario mislabel --scenario-set count=50",
    )
    p.add_argument("--transform", default=None, help="backdoor / leakage: the feature (line, tile, color, ...)")
    p.add_argument("--target-class", type=int, default=None, help="backdoor / leakage: the class carrying it")
    _add_forget(p)


def _add_forget(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--forget-classes", default=None, help="comma-separated classes to forget, e.g. 3 or 3,5")
    g.add_argument(
        "--forget-indices", default=None, help="file of training-set positions: one integer per line, or .npy"
    )
    g.add_argument("--forget-fraction", type=float, default=None, help="seeded random fraction in (0, 1)")
    g.add_argument("--forget-count", type=int, default=None, help="seeded random number of samples")
    p.add_argument("--no-stratify", action="store_true", help="draw random requests without stratifying by class")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="unlearnkit", description="Make a trained classifier forget, and measure that it forgot.")
    from unlearnkit import __version__

    parser.add_argument("--version", action="version", version=f"unlearnkit {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("list", help="list registered methods, datasets, models, metrics or scenarios")
    p.add_argument("what", choices=["methods", "datasets", "models", "metrics", "scenarios"])

    p = sub.add_parser("train", help="train an original model and save it")
    _add_data(p)
    _add_training(p)
    _add_scenario(p)
    p.add_argument("--seed", type=int, default=0)
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
        help="backdoor / leakage: save 000's EWC Fisher computed on this data (default except-target)",
    )
    g.add_argument(
        "--smu-candidates",
        default=None,
        help="record SMU contributions of N seeded training samples, or of positions given as i,j,... or a file",
    )
    _add_runtime(p)

    p = sub.add_parser("unlearn", help="make a saved model forget a request; write the new model and its record")
    p.add_argument("--model", dest="model_dir", required=True, help="folder of a model saved by unlearnkit")
    p.add_argument("--method", required=True, help="method name (unlearnkit list methods)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="method setting, e.g. --set beta=0.9"
    )
    _add_forget(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", required=True, help="new folder for the unlearned model")
    p.add_argument("--json", default=None, help="also write the run record to this file")
    p.add_argument("--track-validation", action="store_true", help="holdout accuracy per epoch -> epochs_to_best")
    _add_runtime(p)

    p = sub.add_parser("evaluate", help="measure a saved model (optionally against a retrained reference)")
    p.add_argument("--model", dest="model_dir", required=True)
    p.add_argument("--reference", default=None, help="folder of the retrained reference model")
    _add_forget(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--json", default=None, help="write the metrics record to this file")
    _add_runtime(p)

    p = sub.add_parser(
        "run", help="end to end: original, retrained reference, each method, table (no options: the demo)"
    )
    _add_data(p, defaults=False)
    _add_training(p, epochs=3)
    _add_scenario(p)
    p.add_argument("--methods", default=None, help="comma-separated methods (default: finetune,neggrad,neggrad_plus)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="METHOD.KEY=VALUE",
        help="method setting, e.g. --set neggrad_plus.beta=0.9",
    )
    p.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument("--out", default=None, help="new folder for record.json and table.md")
    p.add_argument("--json", default=None, help="write the run record to this file")
    p.add_argument("--track-validation", action="store_true", help="holdout accuracy per epoch -> epochs_to_best")
    _add_runtime(p)

    p = sub.add_parser("bench", help="run a benchmark file (datasets x models x scenarios x methods x seeds)")
    p.add_argument("config", help="benchmark file (.toml, .yaml); see benchmarks/ and docs/benchmarks.md")
    p.add_argument("--out", required=True, help="new folder for the run (records.jsonl, run.json, cache/)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out (skips finished rows)")
    p.add_argument("--cache", default=None, help="model cache shared across runs (default: OUT/cache)")
    p.add_argument("--seeds", default=None, help="override the file's seeds, e.g. 0,1")
    p.add_argument("--executor", default=None, help="override the file's executor: local or ray")
    p.add_argument("--report", action="store_true", help="also write report.md and report.html into --out")
    p.add_argument(
        "--settings",
        action="append",
        default=[],
        help="TOML fragment with [methods.NAME] settings (e.g. a tune run's best.toml) overriding the file's",
    )
    _add_runtime(p)

    p = sub.add_parser("tune", help="Optuna search of a method's settings: Avg. Gap to Retrain on the holdout split")
    p.add_argument("config", help="benchmark file giving the data, model, training recipe and scenarios")
    p.add_argument("--method", required=True, help="method to tune (its settings in the file are the fixed ones)")
    p.add_argument("--scenario", default=None, help="scenario of the file to tune on (default: the first)")
    p.add_argument("--dataset", default=None, help="dataset of the file (default: the first)")
    p.add_argument("--model", dest="arch", default=None, help="model of the file (default: the first)")
    p.add_argument("--trials", type=int, default=20, help="trial budget")
    p.add_argument("--space", default=None, help="TOML search space (default: derived from the method's defaults)")
    p.add_argument("--tuning-seeds", default="1000,1001", help="seeds tuned on (keep them apart from reported seeds)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler")
    p.add_argument("--cache", default=None, help="model cache shared with bench (default: OUT/cache)")
    p.add_argument("--out", required=True, help="new folder for best.toml (a [methods] fragment) and history.json")
    _add_runtime(p)

    p = sub.add_parser(
        "forget-feature",
        help="make a saved model stop using a feature (backdoor trigger, leaked mark) while keeping its samples (000)",
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
    p.add_argument("--folds", type=int, default=2, help="cross-validation folds per trial (000: 5)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="selective_forgetting setting (fixed)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", required=True, help="new folder for the model, record.json and search.json")
    p.add_argument("--json", default=None, help="also write the run record to this file")
    _add_runtime(p)

    p = sub.add_parser("report", help="leaderboard of a benchmark run: Markdown and a self-contained HTML page")
    p.add_argument("run_dir", help="folder written by unlearnkit bench")
    p.add_argument("--out", default=None, help="folder for report.md and report.html (default: RUN_DIR)")

    p = sub.add_parser(
        "weak",
        help="weak-unlearning test: Bayes advantage of classifiers telling unlearned models from never-trained ones",
    )
    _add_data(p)
    p.set_defaults(holdout_fraction=0.2)
    _add_training(p, epochs=3)
    p.set_defaults(arch="mlp", model_kwargs='{"widths": [50]}', lr=0.1)
    p.add_argument("--forget-classes", default="0", help="comma-separated classes to unlearn (default 0)")
    p.add_argument("--methods", default="filtration", help="comma-separated methods applied to the seen models")
    p.add_argument(
        "--set", action="append", default=[], metavar="METHOD.KEY=VALUE", help="method setting, e.g. filtration.z=naive"
    )
    p.add_argument("--models", type=int, default=100, help="models per population (default 100, as the paper)")
    p.add_argument("--classifiers", default="knn,random_forest,adaboost", help="advantage classifiers")
    p.add_argument("--features", default="logits", help="logits, probabilities, or both comma-separated")
    p.add_argument("--eval-per-class", type=int, default=None, help="test samples per class (default: all)")
    p.add_argument("--executor", default="local", help="local or ray")
    p.add_argument("--ray-address", default=None, help="address of an existing Ray cluster (default: start one)")
    p.add_argument("--cache", default=None, help="population cache folder (default: ~/.cache/unlearnkit/populations)")
    p.add_argument("--seed", type=int, default=0, help="seeds the model split, classifiers and bootstrap")
    p.add_argument("--json", default=None, help="write the result record to this file")
    _add_runtime(p)
    return parser


# -- parsing helpers --------------------------------------------------------------


def _ints(text: str, param: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip() != "")
    except ValueError:
        raise ParameterError(f"The '{param}' parameter must be comma-separated integers; got {text!r}.") from None
    if not values:
        raise ParameterError(f"The '{param}' parameter must hold at least one integer; got {text!r}.")
    return values


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _settings(items: Sequence[str], *, qualified: bool, param: str = "--set") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ParameterError(f"The '{param}' parameter must be KEY=VALUE; got {item!r}.")
        if qualified:
            method, dot, name = key.partition(".")
            if not dot or not name:
                raise ParameterError(f"The '--set' parameter of run must be METHOD.KEY=VALUE; got {item!r}.")
        else:
            method, name = "", key
        out.setdefault(method, {})[name] = _value(val)
    return out


def _request(args: argparse.Namespace) -> Any:
    from unlearnkit.data import ForgetRequest

    stratified = not getattr(args, "no_stratify", False)
    if args.forget_classes is not None:
        return ForgetRequest.from_classes(_ints(args.forget_classes, "--forget-classes"))
    if args.forget_indices is not None:
        return ForgetRequest.from_file(args.forget_indices)
    if args.forget_fraction is not None:
        return ForgetRequest.random_fraction(args.forget_fraction, stratified=stratified)
    if args.forget_count is not None:
        return ForgetRequest.random_count(args.forget_count, stratified=stratified)
    return None


def _scenario_from_args(args: argparse.Namespace, default: str = "class") -> Any:
    """Scenario name + options from --scenario and the --forget-* flags."""
    from unlearnkit.data.scenarios import make_scenario

    name = args.scenario
    if name is None:
        name = "random" if (args.forget_fraction is not None or args.forget_count is not None) else default
    options: dict[str, Any] = {}
    if args.forget_indices is not None:
        raise ParameterError(
            "The '--forget-indices' option applies to 'unlearn' and 'evaluate', not to scenarios; "
            "use --forget-classes, --forget-fraction or --forget-count."
        )
    if name == "class":
        if args.forget_fraction is not None or args.forget_count is not None:
            raise ParameterError("The 'class' scenario takes --forget-classes, not --forget-fraction/--forget-count.")
        if args.forget_classes is not None:
            options["forget_classes"] = _ints(args.forget_classes, "--forget-classes")
    elif name == "random":
        if args.forget_classes is not None:
            raise ParameterError(
                "The 'random' scenario takes --forget-fraction or --forget-count, not --forget-classes."
            )
        if args.forget_count is not None:
            options.update(count=args.forget_count, fraction=None)
        elif args.forget_fraction is not None:
            options["fraction"] = args.forget_fraction
        options["stratified"] = not args.no_stratify
    elif any(getattr(args, f) is not None for f in ("forget_classes", "forget_fraction", "forget_count")):
        raise ParameterError(
            f"The {name!r} scenario builds its own forget set; set its options with --scenario-set KEY=VALUE."
        )
    for flag, key in (("transform", "transform"), ("target_class", "target_class")):
        value = getattr(args, flag, None)
        if value is not None:
            if name not in ("backdoor", "leakage"):
                raise ParameterError(
                    f"The '--{flag.replace('_', '-')}' parameter applies to the backdoor and leakage scenarios; "
                    f"got scenario {name!r}."
                )
            options[key] = value
    options.update(_settings(getattr(args, "scenario_set", []), qualified=False, param="--scenario-set").get("", {}))
    return make_scenario(name, **options)


def _train_config(args: argparse.Namespace) -> Any:
    from unlearnkit.core.training import TrainConfig

    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
    )


def _model_kwargs(text: str) -> dict[str, Any]:
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParameterError(
            f"The '--model-kwargs' parameter must be a JSON object; got {text!r} ({exc.msg})."
        ) from None
    if not isinstance(kwargs, dict):
        raise ParameterError(f"The '--model-kwargs' parameter must be a JSON object; got {text!r}.")
    return kwargs


def _progress(args: argparse.Namespace) -> bool:
    return sys.stderr.isatty() if args.progress is None else bool(args.progress)


def _check_json_target(path: str | None) -> None:
    if path is not None and Path(path).is_dir():
        raise ParameterError(f"The '--json' parameter must be a file path, not a folder; got {path!r}.")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- commands ---------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from unlearnkit.core.models import MODELS
    from unlearnkit.data import DATASETS
    from unlearnkit.data.scenarios import SCENARIOS
    from unlearnkit.evaluation.metrics import METRICS
    from unlearnkit.methods import METHODS
    from unlearnkit.reporting.tables import render

    if args.what == "methods":
        rows = [
            [n, ",".join(sorted(c.supports)), ",".join(sorted(c.needs)), (c.__doc__ or "").strip().splitlines()[0]]
            for n, c in METHODS.items()
        ]
        print(render(["method", "supports", "needs", "what it does"], rows, left=4))
    elif args.what == "datasets":
        print(render(["dataset", "description"], [[n, s.description] for n, s in DATASETS.items()], left=2))
    elif args.what == "models":
        print(render(["model", "description"], [[n, s.description] for n, s in MODELS.items()], left=2))
    elif args.what == "metrics":
        print(
            render(
                ["metric", "direction", "definition"],
                [[n, m.direction, m.description] for n, m in METRICS.items()],
                left=3,
            )
        )
    else:
        print(
            render(
                ["scenario", "description"],
                [[n, (c.__doc__ or "").strip().splitlines()[0]] for n, c in SCENARIOS.items()],
                left=2,
            )
        )
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from unlearnkit.core.artifacts import check_output_dir, save_model
    from unlearnkit.core.models import MODELS, build_model
    from unlearnkit.core.training import fit
    from unlearnkit.data import load_dataset, split_dataset
    from unlearnkit.env import environment, resolve_device, set_threads

    set_threads(args.threads)
    device = resolve_device(args.device)
    check_output_dir(args.out)
    config = _train_config(args)
    kwargs = _model_kwargs(args.model_kwargs)
    MODELS.get(args.arch)
    scenario = _scenario_from_args(args)
    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    split = split_dataset(ds, seed=args.seed, holdout_fraction=args.holdout_fraction, train_size=args.train_size)
    splits = scenario.prepare(split, seed=args.seed)
    model: Any = build_model(args.arch, ds.input_shape, ds.num_classes, seed=args.seed, **kwargs)
    _say(f"training {args.arch} on {args.dataset}: {len(splits.train)} samples, {config.epochs} epochs")
    start = time.perf_counter()
    if args.sisa_shards is not None and args.smu_candidates is not None:
        raise ParameterError("The '--sisa-shards' and '--smu-candidates' parameters exclude each other; got both.")
    if args.sisa_shards is not None:
        from unlearnkit.methods import train_sisa

        _say(
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
            progress=_progress(args),
        )
        final = ""
    elif args.smu_candidates is not None:
        from unlearnkit.methods import train_smu

        text = args.smu_candidates.strip()
        candidates: Any
        if text.isdigit():
            candidates = int(text)
        elif "," in text:
            candidates = _ints(text, "--smu-candidates")
        else:
            from unlearnkit.data import ForgetRequest

            if not Path(text).is_file():
                raise ParameterError(
                    "The '--smu-candidates' parameter must be a count, a comma list of positions or an existing "
                    f"file of positions; got {text!r}."
                )
            candidates = list(ForgetRequest.from_file(text).indices or ())
        model = train_smu(
            model, splits.train, config, candidates=candidates, seed=args.seed, device=device, progress=_progress(args)
        )
        final = ""
    else:
        stats = fit(model, splits.train, config, seed=args.seed, device=device, progress=_progress(args), desc="train")
        final = f", final loss {stats.epoch_loss[-1]:.4f}" if stats.epoch_loss else ""
    seconds = time.perf_counter() - start
    fisher = args.fisher_data or ("except-target" if scenario.kind == "features" else "none")
    if fisher != "none":
        from unlearnkit.data.features import training_fisher

        t0 = time.perf_counter()
        training_fisher(model, splits, data=fisher, device=device)
        _say(f"Fisher ({fisher}) computed in {time.perf_counter() - t0:.1f}s")
    meta = _model_meta(args.arch, ds, kwargs, split, scenario, config, args.seed, args.data_dir)
    meta["train_seconds"] = seconds
    meta["created_by"] = environment(device)
    save_model(model, args.out, meta)
    print(f"saved {args.out} (trained in {seconds:.1f}s{final})")
    return EXIT_OK


def _model_meta(
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
            "split": {"seed": split.seed, "holdout_fraction": split.holdout_fraction, "train_size": split.train_size},
        },
        "classes": list(ds.class_names),
        "scenario": scenario.describe(),
        "training": config.to_dict(),
        "seed": seed,
    }


def _context_from_model(folder: str, data_dir: str | None) -> tuple[Any, dict[str, Any], Any, Any, Any]:
    """Load a saved model and rebuild the exact data split and scenario it was trained with."""
    from unlearnkit.core.artifacts import load_model
    from unlearnkit.data import load_dataset, split_dataset
    from unlearnkit.data.scenarios import make_scenario
    from unlearnkit.errors import CheckpointError

    model, meta = load_model(folder)
    try:
        dmeta = meta["dataset"]
        ds = load_dataset(dmeta["name"], data_dir=data_dir or dmeta.get("data_dir"))
        sp = dmeta["split"]
        scen = dict(meta["scenario"])
    except KeyError as exc:
        raise CheckpointError(f"{folder}/model.json lacks the {exc} entry needed to rebuild its data.") from None
    if ds.content_hash != dmeta.get("sha256"):
        raise CheckpointError(
            f"the {ds.name} data found differs from the data {folder} was trained on (hash mismatch)."
        )
    split = split_dataset(ds, seed=sp["seed"], holdout_fraction=sp["holdout_fraction"], train_size=sp["train_size"])
    name = scen.pop("name")
    for key, val in list(scen.items()):
        if isinstance(val, list):
            scen[key] = tuple(val)
    scenario = make_scenario(name, **scen)
    return model, meta, ds, split, scenario


def cmd_unlearn(args: argparse.Namespace) -> int:
    from unlearnkit.core.artifacts import check_output_dir, file_sha256, save_model, write_json_atomic
    from unlearnkit.core.models import num_outputs
    from unlearnkit.core.training import TrainConfig
    from unlearnkit.env import environment, resolve_device, set_threads
    from unlearnkit.evaluation.metrics import evaluate
    from unlearnkit.evaluation.outputs import collect
    from unlearnkit.methods import make_method
    from unlearnkit.running.experiment import GAP_METRICS, summarize_diagnostics

    set_threads(args.threads)
    device = resolve_device(args.device)
    check_output_dir(args.out)
    _check_json_target(args.json)
    method = make_method(args.method, **_settings(args.set, qualified=False).get("", {}))
    request = _request(args)
    model, meta, _ds, split, scenario = _context_from_model(args.model_dir, args.data_dir)
    splits = scenario.prepare(split, seed=meta["seed"], request=request)
    method.check_request(splits)
    recipe = TrainConfig.from_dict(meta["training"])
    _say(f"{args.method}: forgetting {len(splits.forget)} of {len(splits.train)} training samples")
    outcome = method.unlearn(
        model,
        splits,
        seed=args.seed,
        recipe=recipe,
        device=device,
        progress=_progress(args),
        track_validation=args.track_validation,
    )
    metrics = evaluate(collect(outcome.model, splits, device=device), seed=args.seed)
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
        "parent_weights_sha256": file_sha256(Path(args.model_dir) / "model.safetensors"),
        "diagnostics": summarize_diagnostics(outcome.diagnostics),
    }
    new_meta["unlearning"] = unlearning
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
                "scenario": scenario.name,
                "seconds": outcome.seconds,
                "speedup": None,
                "metrics": metrics,
            }
        ],
    }
    save_model(outcome.model, args.out, new_meta, extra_json={"record.json": record})
    if args.json:
        write_json_atomic(args.json, record)
    shown = ", ".join(f"{k} {metrics[k]:.4f}" for k in GAP_METRICS if isinstance(metrics.get(k), float))
    print(f"saved {args.out} ({outcome.seconds:.2f}s): {shown}")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from unlearnkit.core.artifacts import load_model, write_json_atomic
    from unlearnkit.env import environment, resolve_device, set_threads
    from unlearnkit.evaluation.metrics import METRICS, evaluate, gap
    from unlearnkit.evaluation.outputs import collect
    from unlearnkit.reporting.tables import render
    from unlearnkit.running.experiment import GAP_METRICS

    set_threads(args.threads)
    device = resolve_device(args.device)
    _check_json_target(args.json)
    request = _request(args)
    model, meta, _ds, split, scenario = _context_from_model(args.model_dir, args.data_dir)
    recorded = meta.get("unlearning", {})
    if request is None and recorded.get("request"):
        request = _request_from_record(recorded["request"])
    # Random requests are drawn with the training seed, as `unlearn` does.
    splits = scenario.prepare(split, seed=meta["seed"], request=request)
    if recorded.get("forget_sha256") and recorded["forget_sha256"] != splits.request_hash():
        _say("note: this forget set differs from the one the model was unlearned with")
    metrics = evaluate(collect(model, splits, device=device), seed=args.seed)
    ref_metrics = None
    if args.reference:
        ref_model, _ = load_model(args.reference)
        ref_metrics = evaluate(collect(ref_model, splits, device=device), seed=args.seed)
    rows = []
    for name, value in metrics.items():
        if not METRICS.get(name).scalar:
            continue
        ref = ref_metrics.get(name) if ref_metrics else None
        cells = [name, METRICS.get(name).direction, "—" if value is None else f"{value:.4f}"]
        if ref_metrics is not None:
            g = gap(value, ref)
            cells += ["—" if ref is None else f"{ref:.4f}", "—" if g is None else f"{g:.4f}"]
        rows.append(cells)
    headers = ["metric", "direction", "model"] + (["reference", "|gap|"] if ref_metrics is not None else [])
    print(render(headers, rows, title=f"{args.model_dir}: forget set of {len(splits.forget)} samples"))
    if args.json:
        result = {
            "method": meta.get("unlearning", {}).get("method", "model"),
            "seed": args.seed,
            "scenario": scenario.name,
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
                    "scenario": scenario.name,
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
    return EXIT_OK


def _request_from_record(d: dict[str, Any]) -> Any:
    """Rebuild a request recorded by ``unlearn`` (explicit indices are not stored, only their hash)."""
    from unlearnkit.data import ForgetRequest

    if d.get("kind") == "classes":
        return ForgetRequest.from_classes(d["classes"])
    if "fraction" in d:
        return ForgetRequest.random_fraction(d["fraction"], stratified=d.get("stratified", True))
    if "count" in d:
        return ForgetRequest.random_count(d["count"], stratified=d.get("stratified", True))
    raise ParameterError(
        "this model was unlearned with explicit indices; pass the same --forget-indices file to evaluate it."
    )


def cmd_run(args: argparse.Namespace) -> int:
    from unlearnkit.core.artifacts import check_output_dir, write_json_atomic, write_text_atomic
    from unlearnkit.data import load_dataset
    from unlearnkit.env import resolve_device, set_threads
    from unlearnkit.running.experiment import (
        DEMO_METHODS,
        FEATURE_METHODS,
        ExperimentConfig,
        build_record,
        demo_configs,
        run_experiment,
    )

    set_threads(args.threads)
    device = resolve_device(args.device)
    if args.out:
        check_output_dir(args.out)
    _check_json_target(args.json)
    seeds = _ints(args.seeds, "--seeds")
    demo = (
        args.dataset is None
        and args.scenario is None
        and all(
            getattr(args, f) is None
            for f in ("forget_classes", "forget_fraction", "forget_count", "forget_indices", "methods")
        )
        and args.train_size is None
        and not args.set
    )
    if demo:
        configs = demo_configs(seeds=seeds, device=args.device, data_dir=args.data_dir)
    else:
        scenario = _scenario_from_args(args)
        default = FEATURE_METHODS if scenario.kind == "features" else DEMO_METHODS
        methods = tuple(m.strip() for m in args.methods.split(",") if m.strip()) if args.methods else default
        configs = [
            ExperimentConfig(
                dataset=args.dataset or "mnist",
                model=args.arch,
                model_kwargs=_model_kwargs(args.model_kwargs),
                scenario=scenario.name,
                scenario_options={k: v for k, v in scenario.describe().items() if k != "name"},
                methods=methods,
                method_params=_settings(args.set, qualified=True),
                seeds=seeds,
                train=_train_config(args),
                holdout_fraction=args.holdout_fraction,
                train_size=args.train_size,
                data_dir=args.data_dir,
                device=args.device,
                track_validation=args.track_validation,
            )
        ]
    for c in configs:
        c.validate()
    start = time.perf_counter()
    experiments = []
    tables = []
    loaded: dict[tuple[str, str | None], Any] = {}
    for c in configs:
        key = (c.dataset, c.data_dir)
        if key not in loaded:  # scenarios on the same data share one load
            loaded[key] = load_dataset(c.dataset, data_dir=c.data_dir)
        result = run_experiment(c, progress=_progress(args), log=_say, dataset=loaded[key])
        experiments.append(result)
        tables.append(result.table())
        print(tables[-1] + "\n", flush=True)
    record = build_record(experiments, device=device, extra_config={"preset": "demo"} if demo else None)
    print(f"total {time.perf_counter() - start:.1f}s")
    if args.json:
        write_json_atomic(args.json, record)
    if args.out:
        from unlearnkit.core.artifacts import dumps

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "record.json", dumps(record))
        write_text_atomic(out / "table.md", "\n\n".join(f"```\n{t}\n```" for t in tables) + "\n")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from unlearnkit.running.benchconfig import load_config
    from unlearnkit.running.benchmark import run_benchmark

    overrides: dict[str, Any] = {}
    if args.seeds is not None:
        overrides["seeds"] = list(_ints(args.seeds, "--seeds"))
    config = load_config(args.config, overrides=overrides, settings=args.settings)
    if args.executor is not None:
        from dataclasses import replace

        from unlearnkit.running.executor import EXECUTORS

        EXECUTORS.get(args.executor)
        config = replace(config, executor={**config.executor, "name": args.executor})
    start = time.perf_counter()
    run = run_benchmark(config, args.out, resume=args.resume, cache_dir=args.cache, progress=_progress(args), log=_say)
    errors = [r for r in run.records if r.get("status") != "ok"]
    print(
        f"{config.name}: {len(run.records)} rows in {args.out} ({len(errors)} failed) "
        f"in {time.perf_counter() - start:.1f}s"
    )
    if args.report:
        from unlearnkit.reporting.report import write_report

        for path in write_report(args.out):
            print(f"wrote {path}")
    return EXIT_OK


def cmd_tune(args: argparse.Namespace) -> int:
    from unlearnkit.core.artifacts import check_output_dir, write_json_atomic, write_text_atomic
    from unlearnkit.env import set_threads
    from unlearnkit.running.benchconfig import load_config, read_toml
    from unlearnkit.running.benchmark import unit_spec
    from unlearnkit.running.tuning import default_space, holdout_gap_objective, parse_space, search
    from unlearnkit.validation import Interval, validate_parameters

    set_threads(args.threads)
    validate_parameters("tune", {"--trials": args.trials}, {"--trials": Interval(int, 1, None)})
    config = load_config(args.config)
    out = check_output_dir(args.out)
    seeds = _ints(args.tuning_seeds, "--tuning-seeds")
    clash = sorted(set(seeds) & set(config.seeds))
    if clash:
        raise ParameterError(
            f"The '--tuning-seeds' parameter must not share seeds with the file's reported seeds; both have {clash}."
        )

    def pick(items: Sequence[Any], name: str | None, param: str, label: Any) -> Any:
        if name is None:
            return items[0]
        for item in items:
            if label(item) == name:
                return item
        raise ParameterError(
            f"The '{param}' parameter must be one of the file's {[label(i) for i in items]}; got {name!r}."
        )

    scenario = pick(config.scenarios, args.scenario, "--scenario", lambda e: e.name)
    dataset = pick(config.datasets, args.dataset, "--dataset", lambda d: d)
    model = pick(config.models, args.arch, "--model", lambda e: e.name)
    method = next((m for m in config.methods if m.name == args.method), None)
    if method is None:
        raise ParameterError(
            f"The '--method' parameter must be a method of the file ({[m.name for m in config.methods]}); "
            f"got {args.method!r}."
        )
    if any(sk.scenario == scenario.name and sk.method == method.name for sk in config.skipped):
        raise ParameterError(f"The '--method' {method.name!r} cannot run on scenario {scenario.name!r}.")
    space = parse_space(read_toml(args.space), owner=args.space) if args.space else default_space(method.name)
    space = {k: v for k, v in space.items() if k not in method.options}  # the file's settings stay fixed
    if not space:
        raise ParameterError(f"method {method.name!r} has no setting left to search; give a --space file.")
    spec = unit_spec(config, dataset, model, scenario)
    cache = args.cache or str(Path(args.out) / "cache")
    objective = holdout_gap_objective(spec, method.name, seeds, cache)
    start = time.perf_counter()
    result = search(
        objective, space, trials=args.trials, seed=args.seed, fixed=method.options, progress=_progress(args)
    )
    seconds = time.perf_counter() - start
    lines = [
        f"# unlearnkit tune {args.config} --method {method.name}: best Avg. Gap to Retrain on the holdout split "
        f"{result.best_value:.3f} points",
        f"# {args.trials} trials, tuning seeds {list(seeds)}, scenario {scenario.name}, {dataset}/{model.name}, "
        f"{seconds:.0f} s. Use with: unlearnkit bench CONFIG --settings best.toml",
        f"[methods.{method.name}]",
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in sorted(result.best_params.items())]
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "best.toml", "\n".join(lines) + "\n")
    write_json_atomic(
        out / "history.json",
        {
            "space": {k: p.to_dict() for k, p in space.items()},
            **result.to_dict(),
            "tuning_seeds": list(seeds),
            "seconds": seconds,
        },
    )
    print("\n".join(lines))
    states = [h["state"] for h in result.history]
    print(
        f"trials: {states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned, {states.count('FAIL')} failed"
    )
    return EXIT_OK


def cmd_forget_feature(args: argparse.Namespace) -> int:
    from unlearnkit.core.artifacts import check_output_dir, file_sha256, save_model, write_json_atomic
    from unlearnkit.core.gradients import attached_fisher
    from unlearnkit.data.scenarios import make_scenario
    from unlearnkit.env import environment, resolve_device, set_threads
    from unlearnkit.evaluation.metrics import evaluate
    from unlearnkit.evaluation.outputs import collect
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
    _check_json_target(args.json)
    by_transform = args.transform is not None
    by_files = args.forget is not None or args.forget_clean is not None
    if by_transform == by_files:
        raise ParameterError(
            "The feature must be given either as '--transform' with '--target-class' or as '--forget' with "
            "'--forget-clean' files; got " + ("both." if by_transform else "neither.")
        )
    settings = _settings(args.set, qualified=False).get("", {})
    make_method("selective_forgetting", **settings)  # bad settings fail before any work
    model, meta, ds, split, _scenario = _context_from_model(args.model_dir, args.data_dir)
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
        _say(f"searching {', '.join(space)} over {args.search_trials} trials x {args.folds} folds (holdout data only)")
        objective = selective_objective(model, splits, pattern=args.pattern, folds=args.folds, seed=args.seed,
                                        fixed=settings)  # fmt: skip
        result = search(objective, space, trials=args.search_trials, seed=args.seed, direction="maximize",
                        fixed=settings, progress=_progress(args))  # fmt: skip
        settings = result.best_params
        search_record = {"space": {k: p.to_dict() for k, p in space.items()}, **result.to_dict()}
        _say(f"best cross-validated minimum accuracy {result.best_value:.4f} with {settings}")
    method = make_method("selective_forgetting", **settings)
    _say(f"forgetting the feature in {len(splits.forget)} images (pattern {args.pattern})")
    before = evaluate(collect(model, splits, device=device), seed=args.seed)
    outcome = method.unlearn(model, splits, seed=args.seed, device=device, progress=_progress(args))
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
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from unlearnkit.reporting.report import write_report

    if not (Path(args.run_dir) / "run.json").is_file():
        raise ParameterError(
            "The 'RUN_DIR' parameter must be a folder written by unlearnkit bench (with run.json); "
            f"got {args.run_dir!r}."
        )
    for path in write_report(args.run_dir, out=args.out):
        print(f"wrote {path}")
    return EXIT_OK


def cmd_weak(args: argparse.Namespace) -> int:
    import os

    from unlearnkit.core.artifacts import write_json_atomic
    from unlearnkit.evaluation.weak import ADVANTAGE_CLASSIFIERS
    from unlearnkit.methods import make_method
    from unlearnkit.running.executor import make_executor
    from unlearnkit.running.populations import Population, PopulationConfig, weak_unlearning
    from unlearnkit.validation import Interval, validate_parameters

    _check_json_target(args.json)
    validate_parameters("weak", {"--models": args.models}, {"--models": Interval(int, 2, None)})
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise ParameterError(f"The '--methods' parameter must name at least one method; got {args.methods!r}.")
    settings = _settings(args.set, qualified=True)
    for name in settings:
        if name not in methods:
            raise ParameterError(f"The '--set' parameter names method {name!r}, which is not in --methods {methods}.")
    for name in methods:
        method = make_method(name, **settings.get(name, {}))
        if "classes" not in method.supports:
            raise ParameterError(f"The '--methods' parameter must name methods that forget classes; {name!r} does not.")
    classifiers = [c.strip() for c in args.classifiers.split(",") if c.strip()]
    for c in classifiers:
        ADVANTAGE_CLASSIFIERS.get(c)
    features = [f.strip() for f in args.features.split(",") if f.strip()]
    for f in features:
        if f not in ("logits", "probabilities"):
            raise ParameterError(f"The '--features' parameter must be logits and/or probabilities; got {f!r}.")
    config = PopulationConfig(
        dataset=args.dataset,
        model=args.arch,
        model_kwargs=_model_kwargs(args.model_kwargs),
        train=_train_config(args),
        forget_classes=_ints(args.forget_classes, "--forget-classes"),
        holdout_fraction=args.holdout_fraction,
        train_size=args.train_size,
        eval_per_class=args.eval_per_class,
        data_dir=args.data_dir,
    )
    options: dict[str, Any] = {"threads": args.threads or 1}
    if args.ray_address is not None:
        if args.executor != "ray":
            raise ParameterError("The '--ray-address' parameter needs --executor ray.")
        options["address"] = args.ray_address
    cache = args.cache or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "unlearnkit", "populations"
    )
    n = args.models
    start = time.perf_counter()
    with make_executor(args.executor, **options) as executor:
        population = Population(config, cache, executor=executor, progress=_progress(args))
        population.data()  # bad data settings fail here, before any training
        result = weak_unlearning(
            population,
            {name: (name, settings.get(name, {})) for name in methods},
            seen_seeds=range(n),
            not_seen_seeds=range(100_000, 100_000 + n),
            classifiers=classifiers,
            seed=args.seed,
            features=features,
        )
    result["seconds"] = time.perf_counter() - start
    result["members_trained"] = len(population.trained)
    result["cache"] = cache
    print(
        f"weak-unlearning test: {args.dataset}/{args.arch}, classes {list(config.forget_classes)}, "
        f"{n} + {n} models ({len(population.trained)} trained now, the rest from {cache})"
    )
    print(f"{'method':<16}{'features':<15}{'classifier':<15}{'group':<11}advantage [95% interval]")
    for name, entry in result["variants"].items():
        for row in entry["advantage"]:
            print(
                f"{name:<16}{row['features']:<15}{row['classifier']:<15}{row['group']:<11}"
                f"{row['advantage']:.3f} [{row['ci'][0]:.3f}, {row['ci'][1]:.3f}]"
            )
        if entry["failures"]:
            print(f"{name}: {len(entry['failures'])} failed tasks: {entry['failures'][0]['error']}")
    print("0 = indistinguishable from models that never saw the classes; 1 = always told apart")
    if args.json:
        write_json_atomic(args.json, result)
    return EXIT_OK


COMMANDS = {
    "list": cmd_list,
    "train": cmd_train,
    "unlearn": cmd_unlearn,
    "evaluate": cmd_evaluate,
    "run": cmd_run,
    "weak": cmd_weak,
    "bench": cmd_bench,
    "report": cmd_report,
    "forget-feature": cmd_forget_feature,
    "tune": cmd_tune,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (also used by the tests)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_BAD_INPUT
        return COMMANDS[args.command](args)
    except UnlearnkitError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # internal error: show where, exit 1
        import traceback

        traceback.print_exc()
        print(f"internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
