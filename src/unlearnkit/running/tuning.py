"""The project's one tuning facility: an Optuna search with a pluggable objective.

:func:`search` runs ``trials`` Optuna trials (TPE, seeded) over a search space
and calls an objective ``f(params, report) -> value``; the objective may call
``report(step, value)`` with intermediate values (e.g. after each tuning seed),
and a median pruner stops unpromising trials. Optuna is imported only here.
Every trial — parameters, value, state, intermediate values — is kept in the
returned history.

Objectives live next to what they tune: :func:`holdout_gap_objective` is the
benchmark's (Avg. Gap to Retrain measured on the HOLDOUT split — the test split
is never read); other searches (e.g. selective forgetting's) plug in theirs.

Search spaces are plain mappings (``{"lr": {"low": 1e-3, "high": 0.1, "log":
true}, "z": {"choices": ["naive", "normalization"]}}``); :func:`default_space`
derives one from a method's defaults and constraints.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch

from unlearnkit.errors import NoTrialCompletedError, ParameterError, UnlearnkitError
from unlearnkit.optional import optional_import
from unlearnkit.validation import Boolean, Interval, NoneOr, Options


@dataclass(frozen=True)
class Param:
    """One dimension of a search space."""

    name: str
    kind: str  # "float" | "int" | "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low or 0), int(self.high or 0), log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices))

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log, "type": self.kind}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse_space(spec: Mapping[str, Any], *, owner: str = "the search space") -> dict[str, Param]:
    """Read ``{name: {"low", "high", "log"?, "type"?} | {"choices": [...]}}`` into :class:`Param` objects."""
    space = {}
    for name, d in spec.items():
        if not isinstance(d, Mapping):
            raise ParameterError(f"The {name!r} entry of {owner} must be a table (low/high or choices); got {d!r}.")
        if "choices" in d:
            choices = d["choices"]
            if not isinstance(choices, (list, tuple)) or not choices:
                raise ParameterError(f"The {name!r} choices of {owner} must be a non-empty list; got {choices!r}.")
            space[name] = Param(name, "categorical", choices=tuple(choices))
            continue
        raw_low, raw_high = d.get("low"), d.get("high")
        if not (_is_number(raw_low) and _is_number(raw_high) and float(raw_low) < float(raw_high)):  # type: ignore[arg-type]
            raise ParameterError(f"The {name!r} entry of {owner} must have numbers low < high; got {dict(d)!r}.")
        low, high = float(raw_low), float(raw_high)  # type: ignore[arg-type]
        kind = d.get("type") or ("int" if isinstance(raw_low, int) and isinstance(raw_high, int) else "float")
        if kind not in ("int", "float"):
            raise ParameterError(f"The {name!r} type of {owner} must be int or float; got {kind!r}.")
        log = bool(d.get("log", False))
        if log and low <= 0:
            raise ParameterError(f"The {name!r} entry of {owner} needs low > 0 for a log scale; got {low!r}.")
        space[name] = Param(name, kind, low, high, log)
    return space


def method_space(method: str) -> dict[str, Param]:
    """The space ``method`` is tuned over: its declared ``search_space``, else :func:`default_space`."""
    from unlearnkit.methods import METHODS

    declared = METHODS.get(method).search_space
    if declared is None:
        return default_space(method)
    return parse_space(declared, owner=f"{method}.search_space")


def defaults_in(method: str, space: Mapping[str, Param], options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings ``method`` runs at — its defaults with ``options`` over them — for the keys of ``space``:
    the first trial of a fair search. A key whose value is None, or not among its choices, is left to the sampler."""
    from unlearnkit.methods import METHODS

    merged = {**METHODS.get(method).defaults, **dict(options or {})}
    out = {}
    for name, p in space.items():
        v = merged.get(name)
        if v is None or (p.kind == "categorical" and v not in p.choices):
            continue
        out[name] = v
    return out


def default_space(method: str) -> dict[str, Param]:
    """A search space from a method's defaults: floats x/10..x*10 (log), ints x/4..x*4, options and flags as choices.

    Settings whose default is None (an option that is off, e.g. the saliency mask with its ratio) or a
    string outside a fixed set of options are left out;
    ranges are clipped to the setting's constraint.
    """
    from unlearnkit.methods import METHODS
    from unlearnkit.methods.base import MASK_DEFAULTS

    cls = METHODS.get(method)
    space: dict[str, Param] = {}
    for name, default in cls.defaults.items():
        if default is None or (name in MASK_DEFAULTS and cls.defaults.get("mask") is None):
            continue  # an option that is off by default (the saliency mask and its ratio) is not searched
        c = cls.parameter_constraints.get(name)
        if isinstance(c, NoneOr):
            c = c.inner
        if isinstance(c, Options):
            space[name] = Param(name, "categorical", choices=tuple(c.values))
        elif isinstance(c, Boolean):
            space[name] = Param(name, "categorical", choices=(True, False))
        elif isinstance(c, Interval) and isinstance(default, (int, float)) and not isinstance(default, bool):
            low: float
            high: float
            if c.kind is int:
                low, high = max(int(default) // 4, 1 if default else 0), max(int(default) * 4, 1)
            else:
                if default <= 0:
                    continue
                low, high = float(default) / 10, float(default) * 10
            if c.low is not None:
                low = max(low, c.low if c.closed in ("both", "left") else c.low + (1 if c.kind is int else 1e-9))
            if c.high is not None:
                high = min(high, c.high if c.closed in ("both", "right") else c.high - (1 if c.kind is int else 1e-9))
            if low < high:
                is_int = c.kind is int
                space[name] = Param(name, "int" if is_int else "float", low, high, log=not is_int and low > 0)
    return space


@dataclass
class SearchResult:
    """The best parameters, their value, and every trial."""

    best_params: dict[str, Any]
    best_value: float
    history: list[dict[str, Any]] = field(default_factory=list)
    direction: str = "minimize"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: ``objective(params, report) -> value`` or ``(value, facts)``: ``facts`` (JSON-able) are kept with the trial,
#: e.g. whether its settings collapsed the model; ``report(step, value)`` returns True when the trial should stop.
Objective = Callable[[dict[str, Any], Callable[[int, float], bool]], "float | tuple[float, dict[str, Any]]"]


def search(
    objective: Objective,
    space: Mapping[str, Param],
    *,
    trials: int = 20,
    seed: int = 0,
    direction: str = "minimize",
    fixed: Mapping[str, Any] | None = None,
    prune: bool = True,
    progress: bool = False,
    start: Sequence[Mapping[str, Any]] = (),
) -> SearchResult:
    """Run an Optuna search; ``fixed`` settings are passed to every trial unchanged.

    ``start`` are settings of the space tried first, in order, within the ``trials`` budget — e.g. the
    method's defaults, so that a search never reports worse than them on its own objective (a value
    outside the declared range is tried as given).
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ParameterError(f"The 'trials' parameter must be an int >= 1; got {trials!r}.")
    if direction not in ("minimize", "maximize"):
        raise ParameterError(f"The 'direction' parameter must be minimize or maximize; got {direction!r}.")
    optuna = optional_import("optuna", extra="tune")
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial is kept in the history with its error
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0) if prune else optuna.pruners.NopPruner()
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    for first in start:
        unknown = sorted(set(first) - set(space))
        if unknown:
            raise ParameterError(f"The 'start' parameter must name settings of the space; got {unknown}.")
        study.enqueue_trial(dict(first))

    def run(trial: Any) -> float:
        params = {**dict(fixed or {}), **{name: p.suggest(trial) for name, p in space.items()}}

        def report(step: int, value: float) -> bool:
            trial.report(value, step)
            return bool(trial.should_prune())

        try:
            value = objective(params, report)
        except UnlearnkitError as exc:  # kept with the trial, so a page can say why it failed
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise
        if isinstance(value, tuple):
            value, facts = value
            for key, fact in facts.items():
                trial.set_user_attr(key, fact)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise optuna.TrialPruned()
        return float(value)

    # a trial whose settings make the method fail (diverge, ill-conditioned...) is recorded as FAIL, not fatal
    with warnings.catch_warnings():  # a start setting outside its range is tried as given, on purpose
        warnings.filterwarnings("ignore", message="Fixed parameter .* is out of range")
        study.optimize(run, n_trials=trials, show_progress_bar=progress, catch=(UnlearnkitError,))
    history = [
        {
            "number": t.number,
            "params": {**dict(fixed or {}), **t.params},
            "value": t.value,
            "state": t.state.name,
            "intermediate": {str(k): v for k, v in t.intermediate_values.items()},
            **({"error": t.user_attrs["error"]} if "error" in t.user_attrs else {}),
            **({"facts": _facts(t.user_attrs)} if _facts(t.user_attrs) else {}),
        }
        for t in study.trials
    ]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not complete:
        raise NoTrialCompletedError(f"no trial of the search completed ({len(study.trials)} tried); widen the space.")
    return SearchResult({**dict(fixed or {}), **study.best_params}, float(study.best_value), history, direction)


def memoized(objective: Objective, path: str | Path) -> Objective:
    """``objective`` with every trial's outcome kept in the JSON file ``path``: a killed search resumes per trial.

    Rerun the same :func:`search` (same space, seed and trials): the seeded
    sampler proposes the same settings again, each already-measured trial is
    replayed from the file — its intermediate reports (so the pruner decides as
    before), then its value and facts, or its error — and the search goes on
    where it stopped, giving the result an uninterrupted search gives. The file
    is rewritten atomically after every trial; each entry keeps the seconds its
    trial took, so the compute of an interrupted search can be added up.
    """
    from unlearnkit import errors
    from unlearnkit.files import write_json_atomic

    target = Path(path)
    memo: dict[str, Any] = json.loads(target.read_text()) if target.exists() else {}

    def replay(entry: dict[str, Any], report: Callable[[int, float], bool]) -> Any:
        for step, value in entry["reports"]:
            if report(step, value):
                prune()
        if "error" in entry:
            kind = getattr(errors, entry["error"][0], UnlearnkitError)
            raise kind(entry["error"][1])
        return entry["value"], entry["facts"]

    def run(params: dict[str, Any], report: Callable[[int, float], bool]) -> Any:
        key = json.dumps(params, sort_keys=True)
        if key in memo:
            return replay(memo[key], report)
        entry: dict[str, Any] = {"reports": []}

        def recording(step: int, value: float) -> bool:
            entry["reports"].append([step, value])
            return report(step, value)

        began = time.perf_counter()

        def keep(**outcome: Any) -> None:
            memo[key] = {**entry, **outcome, "seconds": time.perf_counter() - began}
            write_json_atomic(target, memo)

        try:
            out = objective(params, recording)
        except UnlearnkitError as exc:
            keep(error=[type(exc).__name__, str(exc)])
            raise
        except optional_import("optuna", extra="tune").TrialPruned:
            keep(value=None, facts={})  # the kept reports make the pruner stop it again on replay
            raise
        value, facts = out if isinstance(out, tuple) else (out, {})
        kept = None if value is None or math.isnan(value) else value  # NaN is pruned by search, as None is
        keep(value=kept, facts=facts)
        return kept, facts

    return run


def _facts(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's facts: what its objective attached, without the error message kept beside them."""
    return {k: v for k, v in attrs.items() if k != "error"}


def prune() -> None:
    """Stop the current trial (Optuna's ``TrialPruned``)."""
    raise optional_import("optuna", extra="tune").TrialPruned()


# -- the benchmark's objective -------------------------------------------------------


def holdout_roles(splits: Any, seed: int) -> Any:
    """Splits whose test role is played by half of the holdout split (seeded), the other half staying holdout.

    Tuning measures every metric on these, so the real test split is never read.
    """
    n = len(splits.holdout)
    if n < 4:
        raise ParameterError(
            f"tuning needs a holdout split of at least 4 samples to stand in for the test split; got {n}."
        )
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=g)
    half = n // 2
    as_test = splits.holdout.subset(perm[:half].sort().values, "test")
    holdout = splits.holdout.subset(perm[half:].sort().values, "holdout")
    return dataclasses.replace(splits, test=as_test, holdout=holdout)


def holdout_gap_objective(spec: Mapping[str, Any], method: str, seeds: Sequence[int], cache_dir: str) -> Objective:
    """Avg. Gap to Retrain of ``method`` on the holdout split, averaged over ``seeds`` (one report per seed).

    Originals and references come from the benchmark cache (trained once); the
    reference's holdout metrics are computed once per seed. Each trial also
    records its mean retain accuracy and whether it collapsed the model
    (:func:`collapsed`: retain accuracy at most twice chance on some seed), so a
    method whose every trial collapses is reported as such.
    """
    from unlearnkit.core.training import TrainConfig
    from unlearnkit.evaluation.collection import collect
    from unlearnkit.evaluation.metrics import evaluate, gap
    from unlearnkit.methods import make_method
    from unlearnkit.running.benchmark import _splits, avg_gap, reference_models
    from unlearnkit.running.experiment import GAP_METRICS

    recipe = TrainConfig.from_dict(dict(spec["train"]))
    prepared: dict[int, tuple[Any, Any, dict[str, Any]]] = {}
    for s in seeds:
        original, reference = reference_models(dict(spec), s, cache_dir)[:2]
        splits = holdout_roles(_splits(json.dumps(dict(spec), sort_keys=True), s, cache_dir), s)
        prepared[s] = (original, splits, evaluate(collect(reference, splits), GAP_METRICS, seed=s))

    def objective(params: dict[str, Any], report: Callable[[int, float], bool]) -> tuple[float, dict[str, Any]]:
        gaps, retain, collapse = [], [], False
        for step, s in enumerate(seeds):
            original, splits, ref_m = prepared[s]
            outcome = make_method(method, **params).unlearn(original, splits, seed=s, recipe=recipe)
            collected = collect(outcome.model, splits)
            m = evaluate(collected, GAP_METRICS, seed=s)
            g = avg_gap({k: gap(m.get(k), ref_m.get(k)) for k in GAP_METRICS})
            if g is None:
                return math.nan, {}
            gaps.append(g)
            retain.append(float(cast(float, m["retain_accuracy"])))
            collapse = collapse or collapsed(retain[-1], collected.num_classes)
            if report(step, sum(gaps) / len(gaps)):
                prune()
        return sum(gaps) / len(gaps), {"retain_accuracy": sum(retain) / len(retain), "collapsed": collapse}

    return objective


def collapsed(retain_accuracy: float, num_classes: int) -> bool:
    """Did unlearning collapse the model? Its retain accuracy (a fraction) is at most twice chance (2 / k)."""
    return retain_accuracy <= 2.0 / num_classes


# -- 000's objective: selective forgetting by cross-validation ------------------------

#: 000 Table S1's searched ranges (its optima: lr 4e-5..1e-4, λ_KL 4e4..3e5, λ_f 0.1..1.7).
SELECTIVE_SPACE: dict[str, Param] = {
    "lr": Param("lr", "float", 1e-6, 1e-2, log=True),
    "lam_kl": Param("lam_kl", "float", 1e2, 1e6, log=True),
    "lam_f": Param("lam_f", "float", 1e-2, 1e1, log=True),
}


def selective_objective(
    model: Any,
    splits: Any,
    *,
    pattern: str,
    folds: int = 2,
    seed: int = 0,
    fixed: Mapping[str, Any] | None = None,
    val_size: int = 2000,
) -> Objective:
    """000's cross-validated objective for ``selective_forgetting``: the mean over folds of the minimum of
    the pattern's validation accuracies (B: D_r, D_f,clean, D_r,extra; C: D_r, D_f, D_r,extra).

    Each fold holds out a different fifth of D_f / D_f,clean (000: 80/20), forgets
    with the other four fifths, and scores on that fifth plus ``val_size`` images
    of ``holdout_retain`` (D_r^val) and ``holdout_extra`` (T(D_r^val)). The test
    views are never read. A model without an attached Fisher gets one computed
    once, from the retain set, before the search.
    """
    from unlearnkit.core.gradients import attach_fisher, attached_fisher
    from unlearnkit.evaluation.metrics import PATTERN_TARGETS
    from unlearnkit.evaluation.outputs import outputs_of
    from unlearnkit.evaluation.scores import accuracy
    from unlearnkit.methods import make_method
    from unlearnkit.methods.selective import unlearning_time_fisher

    if pattern not in PATTERN_TARGETS:
        raise ParameterError(f"The 'pattern' parameter must be B or C; got {pattern!r}.")
    if isinstance(folds, bool) or not isinstance(folds, int) or not 1 <= folds <= 5:
        raise ParameterError(f"The 'folds' parameter must be an int in [1, 5]; got {folds!r}.")
    missing = [v for v in ("forget_clean", "holdout_retain") if v not in splits.extras]
    if missing:
        raise ParameterError(f"The 'splits' parameter must carry the feature views; missing {', '.join(missing)}.")
    # without D_r,extra examples (a user's own files may lack them) the score is the minimum of the other two
    targets = [k for k in PATTERN_TARGETS[pattern] if k != "extra" or "holdout_extra" in splits.extras]
    if attached_fisher(model) is None:  # computed once for all trials, not once per trial
        fisher, source, _ = unlearning_time_fisher(model, splits)
        model = attach_fisher(copy.deepcopy(model), fisher, source)
    g = torch.Generator().manual_seed(int(seed))
    n = len(splits.forget)
    perm = torch.randperm(n, generator=g)
    fifths = torch.tensor_split(perm, 5)
    clean = splits.extras["forget_clean"]
    d_r = splits.extras["holdout_retain"]
    pick = torch.randperm(len(d_r), generator=g)[: min(val_size, len(d_r))].sort().values
    val = {"retain": d_r.subset(pick)}
    if "holdout_extra" in splits.extras:
        extra = splits.extras["holdout_extra"]
        val["extra"] = extra.subset(pick) if len(extra) == len(d_r) else extra
    plans = []
    for k in range(folds):
        held = fifths[k].sort().values
        train_pos = perm[~torch.isin(perm, held)].sort().values
        fold = dataclasses.replace(splits, forget_positions=splits.forget_positions[train_pos])
        fold = fold.with_extras(forget_clean=clean.subset(train_pos, "forget_clean"))
        plans.append((fold, {**val, "forget": splits.forget.subset(held), "clean": clean.subset(held)}))

    def objective(params: dict[str, Any], report: Callable[[int, float], bool]) -> float:
        scores = []
        for step, (fold, views) in enumerate(plans):
            outcome = make_method("selective_forgetting", **{**dict(fixed or {}), **params}).unlearn(
                model, fold, seed=seed
            )
            accs = [accuracy(outputs_of(outcome.model, views[key])) for key in targets]
            if any(a is None for a in accs):
                return math.nan
            scores.append(min(a for a in accs if a is not None))
            if report(step, sum(scores) / len(scores)):
                prune()
        return sum(scores) / len(scores)

    return objective
