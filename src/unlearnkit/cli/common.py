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
from unlearnkit.validation import SEED_MAX

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2
EXIT_FAILED_ROWS = 3  # `bench`: the run finished, but some rows (cells x seeds) failed; they are in the records


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UnlearnkitError(f"{self.prog}: {message}")


def seed_value(text: str) -> int:
    """argparse type of ``--seed``: an int in [0, 2**32 - 1] (what every generator here accepts)."""
    import re

    if not re.fullmatch(r"[0-9]+", text.strip()) or int(text) > SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be an int in [0, {SEED_MAX}]; got {text!r}")
    return int(text)


def add_seed(p: argparse.ArgumentParser, help: str = "seed of everything random (same seed, same result)") -> None:
    p.add_argument("--seed", type=seed_value, default=0, help=help)


def check_out_folder(path: str | None, param: str = "--out") -> None:
    """Refuse an output folder path that names an existing file (before any work)."""
    if path is not None and Path(path).exists() and not Path(path).is_dir():
        from unlearnkit.errors import OutputExistsError

        raise OutputExistsError(f"The '{param}' parameter must name a folder, not an existing file; got {path!r}.")


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
    p.add_argument(
        "--model", dest="arch", default=None, help="model name (unlearnkit list models; default: the dataset's)"
    )
    p.add_argument(
        "--model-kwargs", default="{}", help="JSON keyword arguments of the model, e.g. '{\"widths\": [128]}'"
    )
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=None, help="SGD learning rate (default: the model's; 0.05 for most)")
    p.add_argument("--optimizer", default=None, help="sgd or adam (default: the model's: adam for text)")
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
    g.add_argument(
        "--forget-rows",
        default=None,
        help="file of dataset rows (as in the dataset you hold; the model folder's training_rows.json maps them)",
    )
    g.add_argument("--forget-fraction", type=float, default=None, help="seeded random fraction in (0, 1)")
    g.add_argument("--forget-count", type=int, default=None, help="seeded random number of samples")
    p.add_argument("--no-stratify", action="store_true", help="draw random requests without stratifying by class")


def ints(text: str, param: str, *, unique: bool = True) -> tuple[int, ...]:
    """Comma-separated integers (ASCII digits); repeats are refused unless ``unique=False``."""
    import re

    parts = [v.strip() for v in text.split(",") if v.strip() != ""]
    if not all(re.fullmatch(r"-?[0-9]+", v) for v in parts):
        raise ParameterError(f"The '{param}' parameter must be comma-separated integers; got {text!r}.")
    values = tuple(int(v) for v in parts)
    if not values:
        raise ParameterError(f"The '{param}' parameter must hold at least one integer; got {text!r}.")
    if unique and len(set(values)) != len(values):
        raise ParameterError(f"The '{param}' parameter must not repeat a value; got {text!r}.")
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


def request_from_args(args: argparse.Namespace, split: Any = None) -> Any:
    """The request the --forget-* options name (None when none is given); ``--forget-rows`` needs ``split``."""
    from unlearnkit.data import ForgetRequest
    from unlearnkit.data.splits import read_integers

    stratified = not getattr(args, "no_stratify", False)
    if getattr(args, "forget_rows", None) is not None:
        rows = read_integers(args.forget_rows, param="--forget-rows")
        if split is None:
            raise ParameterError("The '--forget-rows' option applies to 'unlearn' and 'evaluate' only.")
        return ForgetRequest.from_rows(rows, split.train.indices)
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
    options: dict[str, Any] = {}
    if name is None:
        name = "random" if (args.forget_fraction is not None or args.forget_count is not None) else default
        if name == default and getattr(args, "dataset", None) is not None:  # the dataset's own default request
            from unlearnkit.data.datasets import DATASETS

            spec = DATASETS.get(args.dataset)
            name = spec.default_scenario
            options.update(spec.default_scenario_options)
    if args.forget_indices is not None or getattr(args, "forget_rows", None) is not None:
        raise ParameterError(
            "The '--forget-indices' and '--forget-rows' options apply to 'unlearn' and 'evaluate', not to scenarios; "
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
    """The recipe of a model trained from scratch (``--epochs`` must be >= 1: 0 would save an untrained model)."""
    from unlearnkit.core.training import TrainConfig

    if isinstance(args.epochs, int) and args.epochs < 1:
        raise ParameterError(f"The '--epochs' parameter must be an int >= 1; got {args.epochs!r}.")
    from unlearnkit.core.models import MODELS

    spec = MODELS.get(args.arch or "lenet")
    if args.optimizer is None:  # the model's own defaults (resolved once, so the record shows the values used)
        args.optimizer = spec.default_optimizer
    if args.lr is None:
        args.lr = spec.default_lr

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


def add_json(p: argparse.ArgumentParser, help: str) -> None:
    """``--json FILE`` (a record for programs) and ``--force`` (allow replacing an existing FILE)."""
    p.add_argument("--json", default=None, help=help + " (refused if it exists, unless --force)")
    p.add_argument("--force", action="store_true", help="let --json replace an existing file")


MODEL_FILES = ("model.json", "model.safetensors")


def check_json_target(args: argparse.Namespace, *, inputs: Sequence[str | None] = ()) -> None:
    """Check ``--json`` before any work: a new file (or ``--force``), never an input, never in a model folder.

    Args:
        inputs: The command's input files (``--forget-indices``, ...): never overwritten, even with ``--force``.
    """
    from unlearnkit.errors import OutputExistsError
    from unlearnkit.files import check_writable_dir

    path = getattr(args, "json", None)
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise ParameterError(f"The '--json' parameter must be a file path, not a folder; got {path!r}.")
    resolved = target.resolve()
    for given in inputs:
        if given is not None and Path(given).resolve() == resolved:
            raise OutputExistsError(f"The '--json' parameter names an input file of this command; got {path!r}.")
    out = getattr(args, "out", None)
    parent = resolved.parent
    if (out is not None and Path(out).resolve() == parent) or any((parent / f).exists() for f in MODEL_FILES):
        raise OutputExistsError(
            f"The '--json' parameter must not point into the --out folder or a model folder (they are written whole, "
            f"once); got {path!r}."
        )
    if target.exists() and not getattr(args, "force", False):
        raise OutputExistsError(
            f"The '--json' file {path!r} already exists; choose a new name or pass --force to replace it."
        )
    check_writable_dir(parent, param="--json", what="a file")


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
    from unlearnkit.core.artifacts import load_vocabulary

    saved = load_vocabulary(folder, meta, model)
    fitted = getattr(ds, "vocabulary", None)
    if (saved is None) != (fitted is None) or (saved is not None and fitted is not None and not fitted.matches(saved)):
        raise CheckpointError(
            f"{folder}/vocabulary.json does not match the {ds.name} data's vocabulary: the model was saved with "
            "another vocabulary (or none)."
        )
    if saved is not None and saved.retired():
        ds = ds.with_vocabulary(saved)  # type: ignore[attr-defined]  # a TextDataset: retired tokens encode as unknown
    try:
        split = split_dataset(ds, seed=sp["seed"], holdout_fraction=sp["holdout_fraction"], train_size=sp["train_size"])
    except (KeyError, TypeError, ParameterError) as exc:
        raise CheckpointError(f"{folder}/model.json has a damaged 'dataset.split' entry ({exc}).") from None
    recorded = sp.get("train_rows_sha256")
    if recorded is not None and recorded != split.train_rows_sha256():
        raise CheckpointError(
            f"{folder}/model.json: the training set rebuilt from its 'dataset.split' entry is not the one the model "
            "was trained on (train_rows_sha256 mismatch); the sidecar was edited or damaged, so forget indices "
            "would name other samples."
        )
    name = scen.pop("name")
    for key, val in list(scen.items()):
        if isinstance(val, list):
            scen[key] = tuple(val)
    scenario = make_scenario(name, **scen)
    return model, meta, ds, split, scenario


def deletion_history(meta: dict[str, Any], split: Any, scenario: Any, folder: str) -> list[dict[str, Any]]:
    """Every deletion a saved model has honoured, oldest first, each with its ``forget_positions``.

    Sidecars written since the request history was kept list them under
    ``deletions``. An older sidecar records only its last deletion under
    ``unlearning``: a class or random request is re-resolved (and checked
    against its recorded hash); explicit indices cannot be recovered, so such a
    model is refused rather than letting its forgotten samples return.
    """
    from unlearnkit.errors import CheckpointError

    if "deletions" in meta:
        history = meta["deletions"]
        if not isinstance(history, list) or not all(
            isinstance(d, dict) and isinstance(d.get("forget_positions"), list) for d in history
        ):
            raise CheckpointError(f"{folder}/model.json: the 'deletions' entry is damaged.")
        return [dict(d) for d in history]
    last = meta.get("unlearning")
    if not last:
        return []
    try:
        request = request_from_record(last.get("request") or {})
    except ParameterError:
        raise CheckpointError(
            f"{folder} was unlearned with explicit indices by an older unlearnkit whose sidecar does not list them; "
            "unlearn from its parent model with all deletions in one --forget-indices file instead."
        ) from None
    splits = scenario.prepare(split, seed=meta["seed"], request=request)
    if last.get("forget_sha256") not in (None, splits.request_hash()):
        raise CheckpointError(f"{folder}/model.json: its recorded deletion does not rebuild to the same samples.")
    return [{**last, "forget_positions": splits.forget_positions.tolist()}]


def forgotten_positions(history: list[dict[str, Any]], *, except_: Any = None) -> Any:
    """The union of the history's forget positions (minus ``except_``), as a sorted int64 tensor."""
    import torch

    rows = sorted({int(p) for d in history for p in d["forget_positions"]})
    out = torch.tensor(rows, dtype=torch.long)
    if except_ is not None and out.numel():
        out = out[~torch.isin(out, torch.as_tensor(except_, dtype=torch.long))]
    return out


def request_from_record(d: dict[str, Any]) -> Any:
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


def model_name(args: argparse.Namespace, dataset: str) -> str:
    """``--model``, or the registered default of ``dataset`` (mlp for digits, lenet for MNIST, cnn for CIFAR)."""
    from unlearnkit.data import DATASETS

    return str(args.arch) if args.arch is not None else DATASETS.get(dataset).default_model


def check_model(model: Any, *, setting: str, loss: float | None = None) -> None:
    """Refuse a model whose weights (or final training loss) are not finite, naming the setting to change."""
    import math

    import torch

    from unlearnkit.errors import DivergenceError

    bad = [n for n, p in model.state_dict().items() if p.is_floating_point() and not bool(torch.isfinite(p).all())]
    if bad or (loss is not None and not math.isfinite(loss)):
        what = f"weights {bad[0]!r} are not finite" if bad else f"the final loss is {loss}"
        raise DivergenceError(f"training diverged ({what}); nothing was saved. Lower {setting}.")


def warn_near_chance(accuracy: float | None, num_classes: int, what: str, setting: str) -> None:
    """Say so, loudly, when ``accuracy`` is below 1.5 / k: such a model has learned (almost) nothing."""
    if accuracy is not None and accuracy < 1.5 / num_classes:
        say(
            f"WARNING: {what} is {100 * accuracy:.1f}%, near chance ({100 / num_classes:.1f}% for {num_classes} "
            f"classes): this model has learned almost nothing; check {setting}."
        )
