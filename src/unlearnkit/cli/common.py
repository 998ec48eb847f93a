"""What every command shares: the one-line argument parser, option groups, and argument readers.

The option builders (``add_data``, ``add_training``, ...) are the one place an option is spelt,
so a flag reads the same in every command that takes it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from unlearnkit.errors import ParameterError, UnlearnkitError

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UnlearnkitError(f"{self.prog}: {message}")


def add_runtime(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, or auto (cuda when present)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars on stderr (default: when stderr is a terminal)",
    )


def add_data(p: argparse.ArgumentParser, *, defaults: bool = True) -> None:
    p.add_argument("--dataset", default="mnist" if defaults else None, help="dataset name (unlearnkit list datasets)")
    p.add_argument("--data-dir", default=None, help="folder with the dataset's standard files (never downloads)")
    p.add_argument("--holdout-fraction", type=float, default=0.1, help="share of training data never trained on")
    p.add_argument("--train-size", type=int, default=None, help="train on a seeded subset of this many samples")


def add_training(p: argparse.ArgumentParser, *, epochs: int = 5) -> None:
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


def add_settings(p: argparse.ArgumentParser, flag: str, metavar: str, help: str) -> None:
    """A repeatable ``KEY=VALUE`` option (``--set``, ``--scenario-set``), read by :func:`parse_settings`."""
    p.add_argument(flag, action="append", default=[], metavar=metavar, help=help)


def add_scenario(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", default=None, help="scenario name (unlearnkit list scenarios)")
    add_settings(p, "--scenario-set", "KEY=VALUE", "scenario option, e.g. --scenario mislabel --scenario-set count=50")
    p.add_argument("--transform", default=None, help="backdoor / leakage: the feature (line, tile, color, ...)")
    p.add_argument("--target-class", type=int, default=None, help="backdoor / leakage: the class carrying it")
    add_forget(p)


def add_forget(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--forget-classes", default=None, help="comma-separated classes to forget, e.g. 3 or 3,5")
    g.add_argument(
        "--forget-indices", default=None, help="file of training-set positions: one integer per line, or .npy"
    )
    g.add_argument("--forget-fraction", type=float, default=None, help="seeded random fraction in (0, 1)")
    g.add_argument("--forget-count", type=int, default=None, help="seeded random number of samples")
    p.add_argument("--no-stratify", action="store_true", help="draw random requests without stratifying by class")


def ints(text: str, param: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip() != "")
    except ValueError:
        raise ParameterError(f"The '{param}' parameter must be comma-separated integers; got {text!r}.") from None
    if not values:
        raise ParameterError(f"The '{param}' parameter must hold at least one integer; got {text!r}.")
    return values


def json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_settings(items: Sequence[str], *, qualified: bool, param: str = "--set") -> dict[str, dict[str, Any]]:
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
        out.setdefault(method, {})[name] = json_value(val)
    return out


def request_from_args(args: argparse.Namespace) -> Any:
    from unlearnkit.data import ForgetRequest

    stratified = not getattr(args, "no_stratify", False)
    if args.forget_classes is not None:
        return ForgetRequest.from_classes(ints(args.forget_classes, "--forget-classes"))
    if args.forget_indices is not None:
        return ForgetRequest.from_file(args.forget_indices)
    if args.forget_fraction is not None:
        return ForgetRequest.random_fraction(args.forget_fraction, stratified=stratified)
    if args.forget_count is not None:
        return ForgetRequest.random_count(args.forget_count, stratified=stratified)
    return None


def scenario_from_args(args: argparse.Namespace, default: str = "class") -> Any:
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
            options["forget_classes"] = ints(args.forget_classes, "--forget-classes")
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
    options.update(
        parse_settings(getattr(args, "scenario_set", []), qualified=False, param="--scenario-set").get("", {})
    )
    return make_scenario(name, **options)


def train_config(args: argparse.Namespace) -> Any:
    from unlearnkit.core.training import TrainConfig

    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
    )


def model_kwargs(text: str) -> dict[str, Any]:
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParameterError(
            f"The '--model-kwargs' parameter must be a JSON object; got {text!r} ({exc.msg})."
        ) from None
    if not isinstance(kwargs, dict):
        raise ParameterError(f"The '--model-kwargs' parameter must be a JSON object; got {text!r}.")
    return kwargs


def show_progress(args: argparse.Namespace) -> bool:
    return sys.stderr.isatty() if args.progress is None else bool(args.progress)


def check_json_target(path: str | None) -> None:
    if path is not None and Path(path).is_dir():
        raise ParameterError(f"The '--json' parameter must be a file path, not a folder; got {path!r}.")


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def context_from_model(folder: str, data_dir: str | None) -> tuple[Any, dict[str, Any], Any, Any, Any]:
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
