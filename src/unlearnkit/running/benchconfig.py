"""Declarative benchmark files: datasets x models x scenarios x methods x seeds, validated up front.

A benchmark is a TOML file (YAML too, when PyYAML is installed). Every key is
checked against the registries and the method tags before anything runs; an
error names the file, the key, what is wrong and how to fix it. Example::

    name = "tiny"
    seeds = [0, 1]

    [data]
    datasets = ["digits"]
    holdout_fraction = 0.1

    [[models]]
    name = "mlp"
    kwargs = { widths = [64] }

    [train]
    epochs = 8
    lr = 0.05

    [[scenarios]]
    name = "class"
    options = { forget_classes = [3] }

    [methods]
    finetune = {}
    neggrad_plus = { beta = 0.9 }

    [executor]
    name = "local"

``methods = "all"`` takes every registered method (except ``retrain``, which is
always run as the reference) — so a method registered later joins the shipped
benchmarks without edits — with settings from an optional ``[settings]`` table
(``[settings.finetune]`` ...); pairs a scenario cannot serve are then skipped
with the reason in the table. A method listed by name that no scenario in the
file can serve is an error.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearnkit.core.models import MODELS
from unlearnkit.core.training import TrainConfig
from unlearnkit.data.datasets import DATASETS
from unlearnkit.data.scenarios import SCENARIOS, make_scenario
from unlearnkit.errors import ParameterError, UnlearnkitError
from unlearnkit.evaluation.metrics import METRICS
from unlearnkit.methods import METHODS, make_method
from unlearnkit.running.executor import EXECUTORS


class BenchConfigError(UnlearnkitError):
    """A benchmark file is invalid; the message names the file, the key and the fix."""


TOP_KEYS = {
    "name": False,
    "description": False,
    "seeds": True,
    "data": True,
    "models": True,
    "train": False,
    "scenarios": True,
    "methods": True,
    "settings": False,
    "metrics": False,
    "executor": False,
    "audit": False,
}


@dataclass(frozen=True)
class Entry:
    """A registry name with its options (model kwargs, scenario options or method settings)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "options": dict(self.options)}


@dataclass(frozen=True)
class Skip:
    """A (scenario, method) pair that is not run, and why."""

    scenario: str
    method: str
    reason: str


PROTOCOLS = ("per_original", "challenge")


@dataclass(frozen=True)
class AuditConfig:
    """How an audit samples its populations (a benchmark file's ``[audit]`` table; see :mod:`unlearnkit.running.audit`).

    Attributes:
        models: N, members per population.
        protocol: ``per_original`` or ``challenge`` (see the module docstring).
        data_seed: The fixed split and forget set of the unit.
        retain_sample: Logits are kept on at most this many retain samples (seeded); None keeps all.
        max_seconds: Leave out a method whose first unlearning run (member 0, kept in its population) takes
            longer; None audits every method. The left-out methods are reported with that time.
    """

    models: int = 32
    protocol: str = "per_original"
    data_seed: int = 0
    retain_sample: int | None = 2000
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.models, bool) or not isinstance(self.models, int) or self.models < 4:
            raise ParameterError(f"The 'models' parameter of an audit must be an int >= 4; got {self.models!r}.")
        if self.protocol not in PROTOCOLS:
            raise ParameterError(
                f"The 'protocol' parameter of an audit must be one of {', '.join(PROTOCOLS)}; got {self.protocol!r}."
            )
        if self.retain_sample is not None and (
            isinstance(self.retain_sample, bool) or not isinstance(self.retain_sample, int) or self.retain_sample < 1
        ):
            raise ParameterError(
                f"The 'retain_sample' parameter of an audit must be None or an int >= 1; got {self.retain_sample!r}."
            )
        m = self.max_seconds
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float)) or not m > 0):
            raise ParameterError(f"The 'max_seconds' parameter of an audit must be None or a number > 0; got {m!r}.")


@dataclass(frozen=True)
class BenchConfig:
    """A validated benchmark file."""

    name: str
    path: str
    seeds: tuple[int, ...]
    datasets: tuple[str, ...]
    models: tuple[Entry, ...]
    scenarios: tuple[Entry, ...]
    methods: tuple[Entry, ...]
    train: TrainConfig
    holdout_fraction: float = 0.1
    train_size: int | None = None
    data_dir: str | None = None
    metrics: tuple[str, ...] | None = None
    executor: Mapping[str, Any] = field(default_factory=lambda: {"name": "local"})
    cell_time_limit: float | None = None
    skipped: tuple[Skip, ...] = ()
    description: str = ""
    audit: Mapping[str, Any] | None = None
    settings_files: tuple[str, ...] = ()  # the --settings fragments merged in (a rerun needs them too)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "seeds": list(self.seeds),
            "datasets": list(self.datasets),
            "models": [m.to_dict() for m in self.models],
            "scenarios": [s.to_dict() for s in self.scenarios],
            "methods": [m.to_dict() for m in self.methods],
            "train": self.train.to_dict(),
            "holdout_fraction": self.holdout_fraction,
            "train_size": self.train_size,
            "metrics": list(self.metrics) if self.metrics else None,
            "executor": dict(self.executor),
            "cell_time_limit": self.cell_time_limit,
            "audit": dict(self.audit) if self.audit is not None else None,
            "skipped": [vars(s) for s in self.skipped],
        }

    def content_hash(self) -> str:
        """SHA-256 of what determines the results (not the executor or where data lives)."""
        d = self.to_dict()
        d.pop("executor"), d.pop("cell_time_limit"), d.pop("description"), d.pop("audit")
        d["methods"] = sorted(d["methods"], key=lambda m: m["name"])  # a table's key order carries no meaning
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    def pairs(self) -> list[tuple[Entry, Entry]]:
        """(scenario, method) pairs that run."""
        skip = {(s.scenario, s.method) for s in self.skipped}
        return [(s, m) for s in self.scenarios for m in self.methods if (s.name, m.name) not in skip]


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict (errors name the file)."""
    path = Path(path)
    if path.suffix.lower() != ".toml":
        raise BenchConfigError(f"{path}: expected a .toml file.")
    return _read(path)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise BenchConfigError(f"{path}: no such benchmark file.")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BenchConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    if suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise BenchConfigError(f"{path}: not valid TOML ({exc}).") from None
    elif suffix in (".yaml", ".yml"):
        from unlearnkit.optional import optional_import

        yaml = optional_import("yaml", extra="yaml")
        try:
            # Aliases are refused before anything is built: a few lines of nested aliases expand to
            # gigabytes (the "billion laughs"), and a benchmark file never needs them.
            for event in yaml.parse(text, Loader=yaml.SafeLoader):
                if isinstance(event, yaml.AliasEvent):
                    mark = event.start_mark
                    raise BenchConfigError(
                        f"{path}: YAML aliases (*name) are not allowed in a benchmark file; line {mark.line + 1} "
                        "uses one. Write the value out."
                    )
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise BenchConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())}).") from None
    else:
        raise BenchConfigError(f"{path}: a benchmark file must end in .toml, .yaml or .yml; got {suffix or 'none'!r}.")
    if not isinstance(data, dict):
        raise BenchConfigError(f"{path}: the top level must be a table of keys; got {type(data).__name__}.")
    return data


class _Checker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str, fix: str) -> BenchConfigError:
        return BenchConfigError(f"{self.path}: key '{key}': {problem}; fix: {fix}.")

    def typed(self, value: Any, kind: type | tuple[type, ...], key: str, what: str) -> Any:
        bad_bool = isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))
        if bad_bool or not isinstance(value, kind):
            raise self.fail(key, f"must be {what}, got {type(value).__name__} {value!r}", f"write {what}")
        return value

    def name(self, registry: Any, value: Any, key: str) -> str:
        self.typed(value, str, key, "a name (string)")
        if value not in registry:
            raise self.fail(key, registry.unknown_message(value), f"use one of {', '.join(registry.names())}")
        return str(value)

    def entry(self, item: Any, key: str, registry: Any, options_key: str) -> Entry:
        if isinstance(item, str):
            return Entry(self.name(registry, item, key))
        self.typed(item, dict, key, "a table with 'name' (and optionally '" + options_key + "')")
        unknown = set(item) - {"name", options_key}
        if unknown:
            raise self.fail(f"{key}.{sorted(unknown)[0]}", "unknown key", f"use only 'name' and '{options_key}'")
        if "name" not in item:
            raise self.fail(f"{key}.name", "missing required key", 'add name = "..."')
        options = self.typed(item.get(options_key, {}), dict, f"{key}.{options_key}", "a table")
        return Entry(self.name(registry, item["name"], f"{key}.name"), dict(options))


def _check_against_data(
    ck: _Checker,
    datasets: Sequence[str],
    holdout: float,
    train_size: int | None,
    data_dir: str | None,
    seed: int,
    scenarios: Sequence[Entry],
) -> None:
    """Build each dataset's split and each scenario's forget set once, before any cell runs.

    Catches what only the data can tell — a ``train_size`` larger than the
    training partition, a class the dataset does not have, a count larger than
    the data — up front, instead of failing every cell of the run.
    """
    from unlearnkit.data.datasets import cached_dataset
    from unlearnkit.data.splits import split_dataset

    for name in datasets:
        try:
            ds = cached_dataset(name, data_dir)
            split = split_dataset(ds, seed=seed, holdout_fraction=holdout, train_size=train_size)
        except UnlearnkitError as exc:
            raise ck.fail("data", f"dataset {name!r}: {' '.join(str(exc).split()).rstrip('.')}", "correct it") from None
        for i, e in enumerate(scenarios):
            try:
                sc = make_scenario(e.name, **dict(e.options))
                if "memorization" in sc.needs:  # scores come later, from trained models: check the selection's size
                    sc.prepare(split, seed=seed, request=sc.select([0.0] * len(split.train), seed=seed))  # type: ignore[attr-defined]
                else:
                    sc.prepare(split, seed=seed)
            except UnlearnkitError as exc:
                problem = f"on {name}: {' '.join(str(exc).split()).rstrip('.')}"
                raise ck.fail(f"scenarios[{i}].options", problem, "correct the option for this data") from None


def _check_fragment_entry(fragment: str | Path, name: str, values: Any) -> None:
    """A settings fragment's error names the fragment, not the benchmark file it is merged into."""
    if name not in METHODS:
        raise BenchConfigError(f"{fragment}: methods.{name}: {METHODS.unknown_message(name)}.")
    if not isinstance(values, dict):
        raise BenchConfigError(f"{fragment}: methods.{name} must be a table of settings; got {values!r}.")
    try:
        make_method(name, **values)
    except UnlearnkitError as exc:
        raise BenchConfigError(f"{fragment}: methods.{name}: {' '.join(str(exc).split())}") from None


def load_config(
    path: str | Path, *, overrides: Mapping[str, Any] | None = None, settings: Sequence[str | Path] = ()
) -> BenchConfig:
    """Read and validate a benchmark file.

    ``overrides`` replace top-level keys (e.g. ``{"seeds": [0]}``); each file in
    ``settings`` is a TOML fragment whose ``[methods.NAME]`` tables update the
    settings of methods the file lists (e.g. the ``best.toml`` of ``unlearnkit tune``).
    """
    path = Path(path)
    data = {**_read(path), **dict(overrides or {})}
    ck = _Checker(path)
    for fragment in settings:
        extra = read_toml(fragment)
        unknown = set(extra) - {"methods"}
        if unknown or not isinstance(extra.get("methods"), dict):
            raise BenchConfigError(f"{fragment}: a settings fragment holds only [methods.NAME] tables.")
        for name, values in extra["methods"].items():
            _check_fragment_entry(fragment, name, values)
            if isinstance(data.get("methods"), dict):
                if name not in data["methods"]:
                    raise BenchConfigError(
                        f"{fragment}: method {name!r} is not in {path}'s [methods]; add it there first."
                    )
                data["methods"] = {**data["methods"], name: {**data["methods"][name], **values}}
            else:  # methods = "all": fragments update the [settings] table
                current = dict(data.get("settings", {}))
                current[name] = {**current.get(name, {}), **values}
                data["settings"] = current
    for key in data:
        if key not in TOP_KEYS:
            raise ck.fail(key, "unknown key", f"use only {', '.join(TOP_KEYS)}")
    for key, required in TOP_KEYS.items():
        if required and key not in data:
            nested = [t for t, v in data.items() if isinstance(v, dict) and key in v]
            nested += [
                t for t, v in data.items() if isinstance(v, list) and any(isinstance(i, dict) and key in i for i in v)
            ]
            if nested:  # TOML puts keys written after a [table] header inside that table
                raise ck.fail(key, f"missing at the top level (found inside '{nested[0]}')",
                              "move it above the first [table] header")  # fmt: skip
            raise ck.fail(key, "missing required key", f"add '{key}' (see docs/benchmarks.md)")

    name = ck.typed(data.get("name", path.stem), str, "name", "a string")
    seeds = ck.typed(data["seeds"], list, "seeds", "a list of ints >= 0")
    if not seeds:
        raise ck.fail("seeds", "is empty", "list at least one seed, e.g. seeds = [0, 1, 2]")
    for i, s in enumerate(seeds):
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ck.fail(f"seeds[{i}]", f"must be an int >= 0, got {s!r}", "write a non-negative integer")
    if len(set(seeds)) != len(seeds):
        raise ck.fail("seeds", f"has duplicates {seeds}", "list each seed once")

    d = ck.typed(data["data"], dict, "data", "a table")
    for key in d:
        if key not in ("datasets", "holdout_fraction", "train_size", "data_dir"):
            raise ck.fail(f"data.{key}", "unknown key", "use datasets, holdout_fraction, train_size, data_dir")
    if "datasets" not in d:
        raise ck.fail("data.datasets", "missing required key", 'add datasets = ["mnist"]')
    datasets = ck.typed(d["datasets"], list, "data.datasets", "a list of dataset names")
    if not datasets:
        raise ck.fail("data.datasets", "is empty", "list at least one dataset")
    datasets = [ck.name(DATASETS, v, f"data.datasets[{i}]") for i, v in enumerate(datasets)]
    holdout = ck.typed(d.get("holdout_fraction", 0.1), (int, float), "data.holdout_fraction", "a float in (0, 1)")
    if not 0 < holdout < 1:
        raise ck.fail("data.holdout_fraction", f"must be in (0, 1), got {holdout!r}", "write e.g. 0.1")
    train_size = d.get("train_size")
    if train_size is not None and (ck.typed(train_size, int, "data.train_size", "an int >= 2") < 2):
        raise ck.fail("data.train_size", f"must be >= 2, got {train_size}", "write a larger subset size")
    data_dir = d.get("data_dir")
    if data_dir is not None:
        ck.typed(data_dir, str, "data.data_dir", "a folder path")

    models = ck.typed(data["models"], list, "models", "a list of model tables ([[models]])")
    if not models:
        raise ck.fail("models", "is empty", "add a [[models]] table")
    model_entries = tuple(ck.entry(m, f"models[{i}]", MODELS, "kwargs") for i, m in enumerate(models))
    for i, m in enumerate(model_entries):
        spec = MODELS.get(m.name)
        for k, v in m.options.items():
            c = spec.constraints.get(k)
            if c is None:
                raise ck.fail(f"models[{i}].kwargs.{k}", f"model {m.name!r} has no option {k!r}",
                              f"use {', '.join(spec.constraints) or 'no kwargs'}")  # fmt: skip
            if not c.is_satisfied_by(v):
                raise ck.fail(f"models[{i}].kwargs.{k}", f"must be {c.describe()}, got {v!r}", "correct the value")

    train = ck.typed(data.get("train", {}), dict, "train", "a table")
    for key in train:
        if key not in TrainConfig.__dataclass_fields__:
            raise ck.fail(f"train.{key}", "unknown key", f"use {', '.join(TrainConfig.__dataclass_fields__)}")
    try:
        recipe = TrainConfig.from_dict(dict(train))
    except TypeError as exc:
        raise ck.fail("train", str(exc), "use epochs, batch_size, lr, optimizer, momentum, weight_decay") from None
    except UnlearnkitError as exc:
        raise ck.fail("train", str(exc).rstrip("."), "correct the value") from None

    scenarios = ck.typed(data["scenarios"], list, "scenarios", "a list of scenario tables ([[scenarios]])")
    if not scenarios:
        raise ck.fail("scenarios", "is empty", "add a [[scenarios]] table")
    scenario_entries: list[Entry] = []
    kinds: dict[str, str] = {}
    for i, s in enumerate(scenarios):
        e = ck.entry(s, f"scenarios[{i}]", SCENARIOS, "options")
        try:
            kinds[e.name] = make_scenario(e.name, **dict(e.options)).kind
        except UnlearnkitError as exc:
            raise ck.fail(f"scenarios[{i}].options", str(exc).rstrip("."), "correct the option") from None
        if e.name in [x.name for x in scenario_entries]:
            raise ck.fail(f"scenarios[{i}].name", f"scenario {e.name!r} appears twice", "list each scenario once")
        scenario_entries.append(e)

    methods = data["methods"]
    explicit = True
    extra_settings = ck.typed(data.get("settings", {}), dict, "settings", "a table of method = { settings }")
    for n, values in extra_settings.items():
        ck.name(METHODS, n, f"settings.{n}")
        ck.typed(values, dict, f"settings.{n}", "a table of settings")
    if methods == "all":
        explicit = False
        method_entries = [Entry(n, dict(extra_settings.get(n, {}))) for n in METHODS.names() if n != "retrain"]
    else:
        ck.typed(methods, dict, "methods", 'a table of method = { settings } (or "all")')
        if not methods:
            raise ck.fail("methods", "is empty", "add e.g. finetune = {}")
        method_entries = []
        for n, values in methods.items():
            ck.name(METHODS, n, f"methods.{n}")
            ck.typed(values, dict, f"methods.{n}", "a table of settings (use {} for the defaults)")
            method_entries.append(Entry(n, {**dict(extra_settings.get(n, {})), **dict(values)}))
    skipped = []
    for m in method_entries:
        try:
            method = make_method(m.name, **dict(m.options))
        except UnlearnkitError as exc:
            raise ck.fail(f"methods.{m.name}", str(exc).rstrip("."), f"see docs/methods/{m.name}.md") from None
        reasons = {}
        for s in scenario_entries:
            kind = kinds[s.name]
            if kind not in method.supports:
                reasons[s.name] = f"supports {', '.join(sorted(method.supports))} requests, not {kind}"
            elif "prepared" in method.needs:
                reasons[s.name] = "needs a model prepared at training time, which this benchmark does not do"
        if explicit and len(reasons) == len(scenario_entries):
            first = next(iter(reasons.values()))
            raise ck.fail(f"methods.{m.name}", f"no scenario here can run it ({first})",
                          "remove it or add a scenario it supports")  # fmt: skip
        skipped += [Skip(s, m.name, r) for s, r in reasons.items()]

    _check_against_data(ck, datasets, holdout, train_size, data_dir, seeds[0], scenario_entries)

    metrics = data.get("metrics")
    if metrics is not None:
        ck.typed(metrics, list, "metrics", "a list of metric names")
        metrics = tuple(ck.name(METRICS, v, f"metrics[{i}]") for i, v in enumerate(metrics))

    ex = ck.typed(data.get("executor", {}), dict, "executor", "a table")
    ex = dict(ex)
    ex_name = ck.name(EXECUTORS, ex.pop("name", "local"), "executor.name")
    limit = ex.pop("cell_time_limit", None)
    if limit is not None and (ck.typed(limit, (int, float), "executor.cell_time_limit", "seconds > 0") <= 0):
        raise ck.fail("executor.cell_time_limit", f"must be > 0, got {limit}", "write seconds, e.g. 600")
    try:
        EXECUTORS.get(ex_name)(**ex)
    except TypeError as exc:
        raise ck.fail("executor", str(exc), "use threads, retries (and address, num_cpus for ray)") from None
    except UnlearnkitError as exc:
        raise ck.fail("executor", str(exc).rstrip("."), "correct the value") from None

    audit = None
    if "audit" in data:
        table = dict(ck.typed(data["audit"], dict, "audit",
                              "a table (models, protocol, data_seed, retain_sample, max_seconds)"))  # fmt: skip
        try:
            audit = dict(vars(AuditConfig(**table)))
        except TypeError as exc:
            raise ck.fail("audit", str(exc), "use models, protocol, data_seed, retain_sample, max_seconds") from None
        except UnlearnkitError as exc:
            raise ck.fail("audit", str(exc).rstrip("."), "correct the value") from None

    return BenchConfig(
        name=name,
        path=str(path),
        settings_files=tuple(str(f) for f in settings),
        seeds=tuple(seeds),
        datasets=tuple(datasets),
        models=model_entries,
        scenarios=tuple(scenario_entries),
        methods=tuple(method_entries),
        train=recipe,
        holdout_fraction=float(holdout),
        train_size=train_size,
        data_dir=data_dir,
        metrics=metrics,
        executor={"name": ex_name, **ex},
        cell_time_limit=float(limit) if limit is not None else None,
        skipped=tuple(skipped),
        description=str(data.get("description", "")),
        audit=audit,
    )
