"""Populations of models trained with or without the forgotten classes, cached and run on an executor.

The weak-unlearning test (004 §3, :func:`unlearnkit.evaluation.weak.bayes_advantage`)
compares two populations: models trained on all data and then unlearned
(``"seen"``) and models trained without the forgotten classes (``"not_seen"``).
Members differ only in their training seed (initial weights and data order);
the data split is fixed by ``data_seed``.

Everything is cached under ``cache_dir`` by content: a trained member by
(population config, side, seed), its outputs by (member, method, settings).
A rerun or a resumed run trains nothing twice. Trainings and output
collection are :class:`~unlearnkit.running.executor.Task` objects, so they run on the
``local`` or ``ray`` executor with the same results for the same seeds.

Example:
    >>> from unlearnkit.running.populations import PopulationConfig
    >>> PopulationConfig(dataset="digits", forget_classes=(3,)).member_key("seen", 0)[:4]  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from unlearnkit.core.artifacts import save_tensors_atomic
from unlearnkit.core.models import MODELS, build_model_for
from unlearnkit.core.training import TrainConfig, fit
from unlearnkit.data.datasets import DATASETS, cached_dataset
from unlearnkit.data.splits import ForgetRequest, Splits, View, split_dataset
from unlearnkit.errors import ParameterError
from unlearnkit.evaluation.outputs import outputs_of
from unlearnkit.files import write_json_atomic
from unlearnkit.methods import make_method
from unlearnkit.running.executor import Executor, LocalExecutor, Task, TaskResult

SIDES = ("seen", "not_seen")


@dataclass(frozen=True)
class PopulationConfig:
    """What every member of a population shares.

    Attributes:
        dataset, model, model_kwargs: Registry names and model options.
        train: The training recipe of every member.
        forget_classes: The classes C the ``not_seen`` side never sees and the ``seen`` side unlearns.
        holdout_fraction, train_size, data_seed: The fixed data split (see :func:`split_dataset`).
        eval_per_class: Outputs are collected on the first this-many test samples of each
            class (None: the whole test split).
        data_dir: Where datasets that need files live (not part of the cache key).
    """

    dataset: str = "mnist"
    model: str = "mlp"
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    forget_classes: tuple[int, ...] = (0,)
    holdout_fraction: float = 0.1
    train_size: int | None = None
    data_seed: int = 0
    eval_per_class: int | None = None
    data_dir: str | None = None

    def __post_init__(self) -> None:
        DATASETS.get(self.dataset)
        MODELS.get(self.model)
        if not self.forget_classes:
            raise ParameterError("The 'forget_classes' parameter of PopulationConfig must name at least one class.")
        if self.eval_per_class is not None and (
            isinstance(self.eval_per_class, bool) or not isinstance(self.eval_per_class, int) or self.eval_per_class < 1
        ):
            raise ParameterError(
                f"The 'eval_per_class' parameter of PopulationConfig must be None or an int >= 1; "
                f"got {self.eval_per_class!r}."
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["train"] = self.train.to_dict()
        d["model_kwargs"] = dict(self.model_kwargs)
        d["forget_classes"] = list(self.forget_classes)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PopulationConfig:
        d = dict(d)
        d["train"] = TrainConfig.from_dict(dict(d["train"])) if isinstance(d.get("train"), Mapping) else d["train"]
        d["forget_classes"] = tuple(d.get("forget_classes", (0,)))
        return cls(**d)

    def member_key(self, side: str, seed: int) -> str:
        """Content key of one trained member (the eval subset and data folder do not change training)."""
        _check_side(side)
        d = self.to_dict()
        d.pop("data_dir"), d.pop("eval_per_class")
        return _digest({"member": d, "side": side, "seed": int(seed)})


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _check_side(side: str) -> None:
    if side not in SIDES:
        raise ParameterError(f"The 'side' parameter must be one of {', '.join(SIDES)}; got {side!r}.")


@functools.lru_cache(maxsize=4)
def _prepared(config_json: str) -> tuple[Splits, View]:
    """Splits and the evaluation view of a config, built once per process (workers reuse them)."""
    config = PopulationConfig.from_dict(json.loads(config_json))
    ds = cached_dataset(config.dataset, config.data_dir)
    split = split_dataset(
        ds, seed=config.data_seed, holdout_fraction=config.holdout_fraction, train_size=config.train_size
    )
    splits = Splits.from_request(split, ForgetRequest.from_classes(config.forget_classes), seed=config.data_seed)
    test = split.test
    if config.eval_per_class is not None:
        labels = test.labels
        rows = [torch.nonzero(labels == c).flatten()[: config.eval_per_class] for c in range(ds.num_classes)]
        test = test.subset(torch.cat(rows).sort().values, "eval")
    return splits, test


def _json(config: PopulationConfig) -> str:
    return json.dumps(config.to_dict(), sort_keys=True)


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return dict(load_file(str(path)))


def member_path(cache_dir: str | Path, config: PopulationConfig, side: str, seed: int) -> Path:
    return Path(cache_dir) / "members" / f"{config.member_key(side, seed)}.safetensors"


def outputs_path(
    cache_dir: str | Path,
    config: PopulationConfig,
    side: str,
    seed: int,
    method: str | None,
    settings: Mapping[str, Any],
) -> Path:
    key = _digest({
        "member": config.member_key(side, seed), "method": method, "settings": dict(settings),
        "eval_per_class": config.eval_per_class,
    })  # fmt: skip
    return Path(cache_dir) / "outputs" / f"{key}.safetensors"


def train_member(config: dict[str, Any], side: str, seed: int, cache_dir: str) -> dict[str, Any]:
    """Task: train one member (all training data for ``seen``, the retain set for ``not_seen``) unless cached."""
    cfg = PopulationConfig.from_dict(config)
    path = member_path(cache_dir, cfg, side, seed)
    facts = path.with_suffix(".json")
    if path.exists():
        seconds = json.loads(facts.read_text())["seconds"] if facts.exists() else None
        return {"path": str(path), "cached": True, "seconds": seconds}
    splits, _ = _prepared(_json(cfg))
    ds = cached_dataset(cfg.dataset, cfg.data_dir)
    model = build_model_for(ds, cfg.model, seed=seed, **dict(cfg.model_kwargs))
    data = splits.train if side == "seen" else splits.retain
    stats = fit(model, data, cfg.train, seed=seed)
    # the sidecar first: a member counts as cached once its weights exist, and then its facts do too
    write_json_atomic(facts, {"config": cfg.to_dict(), "side": side, "seed": seed, "seconds": stats.seconds})
    save_tensors_atomic(path, dict(model.state_dict()))
    return {"path": str(path), "cached": False, "seconds": stats.seconds}


def load_member(config: PopulationConfig, side: str, seed: int, cache_dir: str | Path) -> torch.nn.Module:
    """Rebuild a cached member (safetensors only; nothing is unpickled)."""
    path = member_path(cache_dir, config, side, seed)
    if not path.exists():
        raise ParameterError(f"member ({side}, seed {seed}) is not in the cache {str(cache_dir)!r}; train it first.")
    ds = cached_dataset(config.dataset, config.data_dir)
    model = build_model_for(ds, config.model, seed=seed, **dict(config.model_kwargs))
    model.load_state_dict(_load_tensors(path))
    return model.eval()


def member_outputs(
    config: dict[str, Any],
    side: str,
    seed: int,
    cache_dir: str,
    method: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Task: logits of one member on the evaluation view, after ``method`` (None: as trained), cached."""
    cfg = PopulationConfig.from_dict(config)
    settings = dict(settings or {})
    path = outputs_path(cache_dir, cfg, side, seed, method, settings)
    if path.exists():
        cached = _load_tensors(path)
        secs = float(cached["seconds"][0])
        return {"logits": cached["logits"], "cached": True, "seconds": None if secs != secs else secs}
    model = load_member(cfg, side, seed, cache_dir)
    splits, view = _prepared(_json(cfg))
    seconds = None
    if method is not None:
        outcome = make_method(method, **settings).unlearn(model, splits, seed=seed, recipe=cfg.train)
        model, seconds = outcome.model, outcome.seconds
    logits = outputs_of(model, view).logits
    # the unlearning time is kept with the outputs (NaN: no method), so cached reruns still report it
    stored_seconds = torch.tensor([float("nan") if seconds is None else seconds])
    save_tensors_atomic(path, {"logits": logits, "seconds": stored_seconds})
    return {"logits": logits, "cached": False, "seconds": seconds}


@dataclass
class PopulationOutputs:
    """Stacked logits of the members that succeeded, and what happened to the others."""

    logits: torch.Tensor  # (M, n, outputs)
    labels: torch.Tensor  # (n,)
    seeds: list[int]
    failures: list[TaskResult]
    method_seconds: list[float]


class Population:
    """Trains and queries the two populations of one :class:`PopulationConfig`.

    Args:
        config: What all members share.
        cache_dir: Folder for cached members and outputs (created on demand).
        executor: Where tasks run (default: the local executor).
        progress: Show progress bars.
    """

    def __init__(
        self,
        config: PopulationConfig,
        cache_dir: str | Path,
        *,
        executor: Executor | None = None,
        progress: bool = False,
    ) -> None:
        self.config = config
        self.cache_dir = Path(cache_dir)
        self.executor = executor or LocalExecutor()
        self.progress = progress
        self.trained: list[tuple[str, int]] = []  # members this object trained (not from the cache)
        self.train_seconds: dict[tuple[str, int], float] = {}  # training time of every member seen so far

    def data(self) -> tuple[Splits, View]:
        """The fixed splits (train / retain / forget / holdout / test) and the evaluation view."""
        return _prepared(_json(self.config))

    def eval_labels(self) -> torch.Tensor:
        return self.data()[1].labels

    def train(self, side: str, seeds: Sequence[int]) -> list[TaskResult]:
        """Train every member of ``side`` not yet cached; returns one result per seed (failures included)."""
        _check_side(side)
        cfg = self.config.to_dict()
        where = str(self.cache_dir)
        tasks = [
            Task(f"{side}/{s}", train_member, {"config": cfg, "side": side, "seed": int(s), "cache_dir": where})
            for s in seeds
        ]
        missing = [
            t
            for t, s in zip(tasks, seeds, strict=True)
            if not member_path(self.cache_dir, self.config, side, s).exists()
        ]
        results = {r.key: r for r in self.executor.map(missing, progress=self.progress, desc=f"train {side}")}
        out = []
        for t, s in zip(tasks, seeds, strict=True):
            r = results.get(t.key) or TaskResult(t.key, train_member(cfg, side, int(s), where), attempts=0)
            if r.ok and not r.value["cached"]:
                self.trained.append((side, int(s)))
            if r.ok and r.value["seconds"] is not None:
                self.train_seconds[(side, int(s))] = float(r.value["seconds"])
            out.append(r)
        return out

    def outputs(
        self, side: str, seeds: Sequence[int], *, method: str | None = None, settings: Mapping[str, Any] | None = None
    ) -> PopulationOutputs:
        """Train what is missing, then collect (cached) outputs of every member after ``method``."""
        trained = self.train(side, seeds)
        failures = [r for r in trained if not r.ok]
        ok_seeds = [int(s) for s, r in zip(seeds, trained, strict=True) if r.ok]
        cfg = self.config.to_dict()
        tasks = [
            Task(f"{side}/{s}/{method}", member_outputs, {"config": cfg, "side": side, "seed": s,
                 "cache_dir": str(self.cache_dir), "method": method, "settings": dict(settings or {})})
            for s in ok_seeds
        ]  # fmt: skip
        results = self.executor.map(tasks, progress=self.progress, desc=f"outputs {side} {method or ''}".strip())
        failures += [r for r in results if not r.ok]
        good = [(s, r) for s, r in zip(ok_seeds, results, strict=True) if r.ok]
        if not good:
            raise ParameterError(f"no member of the {side!r} population produced outputs; failures: {failures[:3]}")
        logits = torch.stack([r.value["logits"] for _, r in good])
        secs = [float(r.value["seconds"]) for _, r in good if r.value["seconds"] is not None]
        return PopulationOutputs(logits, self.eval_labels(), [s for s, _ in good], failures, secs)


def remaining_predictions(logits: torch.Tensor, num_classes: int, forget_classes: Sequence[int]) -> torch.Tensor:
    """Predicted class ids among the remaining classes, for outputs of width k or k − |C|."""
    remaining = torch.tensor([c for c in range(num_classes) if c not in set(forget_classes)])
    if logits.shape[-1] == num_classes:
        logits = logits[..., remaining]
    elif logits.shape[-1] != remaining.numel():
        raise ParameterError(
            f"The 'logits' parameter must have {num_classes} or {remaining.numel()} outputs; got {logits.shape[-1]}."
        )
    return remaining[logits.argmax(-1)]


def weak_unlearning(
    population: Population,
    variants: Mapping[str, tuple[str | None, Mapping[str, Any]]],
    *,
    seen_seeds: Sequence[int],
    not_seen_seeds: Sequence[int],
    classifiers: Sequence[str] = ("knn", "random_forest", "adaboost"),
    train_fraction: float = 0.7,
    n_boot: int = 1000,
    seed: int = 0,
    features: Sequence[str] = ("logits",),
) -> dict[str, Any]:
    """The weak-unlearning test for any registered method(s): 004's Figure 4 set-up.

    Args:
        population: Members are trained (or taken from the cache) on its executor.
        variants: ``label -> (method name, settings)``; each is applied to every
            ``seen`` member (e.g. ``{"naive": ("filtration", {"z": "naive"})}``);
            method ``None`` tests the members as trained.
        seen_seeds, not_seen_seeds: Training seeds of the two populations (use disjoint seeds).
        classifiers, train_fraction, n_boot, seed: Passed to :func:`~unlearnkit.evaluation.weak.bayes_advantage`.
        features: The classifiers' inputs, each tested: ``"logits"`` (004) and/or ``"probabilities"``.

    Returns:
        A JSON-ready dict: per variant the advantages (with intervals), the
        accuracy of the members on test samples of the remaining classes, the
        unlearning time, and any failed tasks (key and error); the same facts
        for the ``not_seen`` population.
    """
    from unlearnkit.evaluation.weak import bayes_advantage

    cfg = population.config
    forget = list(cfg.forget_classes)
    not_seen = population.outputs("not_seen", not_seen_seeds)
    labels = not_seen.labels
    num_classes = max(int(labels.max()) + 1, not_seen.logits.shape[-1])
    rem_mask = ~torch.isin(labels, torch.tensor(forget))

    def accuracy(logits: torch.Tensor) -> list[float]:
        pred = remaining_predictions(logits, num_classes, forget)
        return [float(v) for v in (pred[:, rem_mask] == labels[rem_mask]).double().mean(1)]

    def failures(out: PopulationOutputs) -> list[dict[str, Any]]:
        return [{"task": r.key, "attempts": r.attempts, "error": r.error} for r in out.failures]

    result: dict[str, Any] = {
        "config": cfg.to_dict(),
        "not_seen": {
            "models": len(not_seen.seeds),
            "accuracy": accuracy(not_seen.logits),
            "failures": failures(not_seen),
        },
        "variants": {},
    }
    for label, (method, settings) in variants.items():
        seen = population.outputs("seen", seen_seeds, method=method, settings=settings)
        result["variants"][label] = {
            "method": method,
            "settings": dict(settings),
            "models": len(seen.seeds),
            "accuracy": accuracy(seen.logits),
            "unlearn_seconds": seen.method_seconds,
            "failures": failures(seen),
            "advantage": [
                {**row, "features": feats}
                for feats in features
                for row in bayes_advantage(
                    seen.logits, not_seen.logits, labels, forget, classifiers=classifiers,
                    train_fraction=train_fraction, n_boot=n_boot, seed=seed, features=feats,
                )
            ],
        }  # fmt: skip
    return result
