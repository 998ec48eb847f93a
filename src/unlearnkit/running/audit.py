"""Audits: populations of unlearned and retrained models for one benchmark unit, and their per-example evidence.

A benchmark unit (dataset, model, scenario) fixes the data split and the forget
set (``data_seed``); population members differ only in their training seed
(initialisation and data order). For N models:

* ``retrained`` — N models trained from scratch on the retain set;
* ``unlearned`` — N runs of a method. Protocol ``per_original`` (default; U-LiRA
  and KLoM are defined on it): N originals with their own seeds, each unlearned
  once with its own seed. Protocol ``challenge`` (the competition's code): ONE
  original and N unlearning runs from it — a method that ignores its seed then
  yields N identical models, ε = 50 and F = 0 *by construction*, which the
  audit reports wherever it happens;
* ``ceiling`` — a second, independent retrained population scored against the
  first: what perfect unlearning scores at this N;
* ``floor`` — the N originals (doing nothing), scored as an unlearned population.

Every member's logits on the forget, retain (a seeded sample of at most
``retain_sample`` rows), holdout and test views are cached under ``cache_dir``
by content (safetensors; originals keep their weights, which the methods
need), so a killed audit resumes without training anything twice. Every
statistic is then a pure function of those arrays (:mod:`unlearnkit.evaluation.evidence`).
Tasks run on the project's executor (local or Ray).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnkit.core.artifacts import save_tensors_atomic
from unlearnkit.core.models import build_model_for
from unlearnkit.core.training import TrainConfig, fit
from unlearnkit.data.datasets import cached_dataset
from unlearnkit.data.scenarios import make_scenario
from unlearnkit.data.splits import Splits, View
from unlearnkit.errors import ParameterError
from unlearnkit.evaluation import evidence as ev
from unlearnkit.evaluation.attacks import roc_summary
from unlearnkit.evaluation.metrics import loss_attack_accuracy
from unlearnkit.evaluation.outputs import outputs_of
from unlearnkit.files import write_json_atomic
from unlearnkit.methods import make_method
from unlearnkit.running.benchconfig import PROTOCOLS, AuditConfig, BenchConfig
from unlearnkit.running.executor import Executor, LocalExecutor, Task, raise_failures
from unlearnkit.running.memorization import memorization_tasks, prepare_splits

__all__ = ["AUDIT_FILE", "PROTOCOLS", "AuditConfig", "audit_unit", "avg_gap", "member_metrics", "member_task",
           "run_audit", "score"]  # fmt: skip

AUDIT_FILE = "audit.json"
VIEWS = ("forget", "retain", "holdout", "test")
#: seed offsets of the populations (originals use 0..N-1; unlearning runs use their index)
RETRAINED_SEED, CEILING_SEED = 100_000, 200_000


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:24]


@functools.lru_cache(maxsize=4)
def _unit(spec_json: str, data_seed: int, retain_sample: int | None, cache_dir: str) -> tuple[Splits, dict[str, View]]:
    """The unit's splits at ``data_seed`` and the four views whose logits are kept (built once per process)."""
    splits = prepare_splits(json.loads(spec_json), data_seed, cache_dir)
    retain = splits.retain
    if retain_sample is not None and len(retain) > retain_sample:
        g = torch.Generator().manual_seed(int(data_seed) + 7)
        retain = retain.subset(torch.randperm(len(retain), generator=g)[:retain_sample].sort().values, "retain")
    return splits, {"forget": splits.forget, "retain": retain, "holdout": splits.holdout, "test": splits.test}


def _identity(spec: Mapping[str, Any], audit: AuditConfig) -> dict[str, Any]:
    ident = {k: spec[k] for k in ("dataset", "holdout_fraction", "train_size", "model", "scenario", "train")}
    return {**ident, "data_seed": audit.data_seed}


def _build(spec: Mapping[str, Any], seed: int) -> torch.nn.Module:
    ds = cached_dataset(spec["dataset"], spec["data_dir"])
    model: torch.nn.Module = build_model_for(ds, spec["model"]["name"], seed=seed, **spec["model"]["options"])
    return model


def _load(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return dict(load_file(str(path)))


def _original(spec: dict[str, Any], audit: AuditConfig, seed: int, cache_dir: Path) -> torch.nn.Module:
    """Original ``seed`` of the unit: from the cache, or trained and stored (weights last: cached once both exist)."""
    splits, _ = _unit(json.dumps(spec, sort_keys=True), audit.data_seed, audit.retain_sample, str(cache_dir))
    path = cache_dir / "audit" / "originals" / f"{_digest({**_identity(spec, audit), 'seed': seed})}.safetensors"
    model = _build(spec, seed)
    if path.exists():
        model.load_state_dict(_load(path))
        return model.eval()  # type: ignore[no-any-return]
    stats = fit(model, splits.train, TrainConfig.from_dict(spec["train"]), seed=seed)
    write_json_atomic(path.with_suffix(".json"), {"seed": seed, "seconds": stats.seconds})
    save_tensors_atomic(path, dict(model.state_dict()))
    return model.eval()  # type: ignore[no-any-return]


def member_task(spec: dict[str, Any], audit: dict[str, Any], role: str, index: int, cache_dir: str,
                method: str | None = None, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Task: one member's logits on the four views, cached. ``role``: original, retrained, ceiling or unlearned."""
    cfg = AuditConfig(**audit)
    settings = dict(settings or {})
    cache = Path(cache_dir)
    key = _digest({
        **_identity(spec, cfg), "role": role, "index": index, "method": method, "settings": settings,
        "protocol": cfg.protocol if role == "unlearned" else None, "retain_sample": cfg.retain_sample,
    })  # fmt: skip
    path = cache / "audit" / "logits" / f"{key}.safetensors"
    if path.exists():
        stored = _load(path)
        secs = float(stored.pop("seconds")[0])
        return {"logits": stored, "seconds": None if math.isnan(secs) else secs, "cached": True}
    splits, views = _unit(json.dumps(spec, sort_keys=True), cfg.data_seed, cfg.retain_sample, cache_dir)
    recipe = TrainConfig.from_dict(spec["train"])
    seconds = float("nan")
    if role == "original":
        model = _original(spec, cfg, index, cache)
    elif role in ("retrained", "ceiling"):
        offset = RETRAINED_SEED if role == "retrained" else CEILING_SEED
        model = _build(spec, offset + index)
        seconds = fit(model, splits.retain, recipe, seed=offset + index).seconds
        model.eval()
    elif role == "unlearned":
        if method is None:
            raise ParameterError("The 'method' parameter must name a method for an unlearned member.")
        source = index if cfg.protocol == "per_original" else 0
        outcome = make_method(method, **settings).unlearn(_original(spec, cfg, source, cache), splits, seed=index,
                                                          recipe=recipe)  # fmt: skip
        model, seconds = outcome.model, outcome.seconds
    else:
        raise ParameterError(f"The 'role' parameter must be original, retrained, ceiling or unlearned; got {role!r}.")
    logits = {v: outputs_of(model, view).logits.float() for v, view in views.items()}
    save_tensors_atomic(path, {**logits, "seconds": torch.tensor([seconds], dtype=torch.float64)})
    return {"logits": logits, "seconds": None if math.isnan(seconds) else seconds, "cached": False}


def _stack(results: Sequence[Any]) -> dict[str, np.ndarray]:
    return {v: np.stack([r.value["logits"][v].numpy() for r in results]).astype(np.float64) for v in VIEWS}


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(axis=2) == labels[None]).mean())


def _losses(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-sample cross-entropy of every member (models × examples)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=-1))
    return np.asarray(lse - np.take_along_axis(z, labels[None, :, None], axis=2)[..., 0])


def member_metrics(pop: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], *, seed: int = 0) -> np.ndarray:
    """Per member: forget, retain and test accuracy and MIA accuracy (members × 4), the Avg. Gap's four metrics.

    MIA accuracy is the benchmark's ``mia_accuracy`` — the loss attack of the forget set against never-seen
    holdout and test samples of its classes — with one 5-fold cross-validation per member instead of the
    benchmark's five (the mean over N members already averages the folds' noise; five repeats made scoring,
    not training, the slowest part of an audit).
    """
    classes = np.unique(labels["forget"])
    neg = {v: np.isin(labels[v], classes) for v in ("holdout", "test")}
    l_f = _losses(pop["forget"], labels["forget"])
    l_n = np.concatenate([_losses(pop[v], labels[v])[:, neg[v]] for v in ("holdout", "test")], axis=1)
    rows = []
    for i in range(l_f.shape[0]):
        accs = [float((pop[v][i].argmax(-1) == labels[v]).mean()) for v in ("forget", "retain", "test")]
        mia = loss_attack_accuracy(torch.from_numpy(l_f[i]), torch.from_numpy(l_n[i]), seed=seed, repeats=1)
        rows.append([*accs, np.nan if mia is None else mia])
    return np.asarray(rows)


def avg_gap(unlearned: np.ndarray, retrained: np.ndarray) -> float:
    """Avg. Gap (points) of paired members: mean over members of the mean |unlearned − retrained| of the 4 metrics."""
    n = min(unlearned.shape[0], retrained.shape[0])
    return float(100 * np.nanmean(np.abs(unlearned[:n] - retrained[:n]), axis=1).mean())


def score(unlearned: Mapping[str, np.ndarray], retrained: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray],
          *, rmia_target: int = 0, seed: int = 0,
          retrained_metrics: np.ndarray | None = None) -> dict[str, Any]:  # fmt: skip
    """Every statistic of one unlearned population against a retrained one (arrays: models × examples × classes).

    ``retrained_metrics``: :func:`member_metrics` of ``retrained`` when already computed (it is the same for
    every row of an audit).
    """
    y_f = labels["forget"]
    s_u = ev.logit_scaled_confidence(unlearned["forget"], y_f)
    s_r = ev.logit_scaled_confidence(retrained["forget"], y_f)
    n = min(s_u.shape[0], s_r.shape[0])
    eps = ev.epsilons(s_u, s_r)
    points = ev.forget_points(eps, n)
    forget = float(points.mean())
    boot = np.random.default_rng(seed).integers(0, points.size, size=(2000, points.size))
    ci = np.percentile(points[boot].mean(axis=1), [2.5, 97.5])
    acc = {f"{side}_{v}": _accuracy(pop[v], labels[v]) for side, pop in (("u", unlearned), ("r", retrained))
           for v in ("forget", "retain", "test")}  # fmt: skip
    identical = bool(all((unlearned[v] == unlearned[v][:1]).all() for v in VIEWS))  # the same model N times
    out: dict[str, Any] = {
        "forget_score": forget,
        "forget_score_ci": [float(ci[0]), float(ci[1])],  # 95% bootstrap over forget examples (models fixed)
        "final_score": ev.final_score(forget, acc["u_retain"], acc["r_retain"], acc["u_test"], acc["r_test"]),
        "epsilon": ev.percentiles(eps),
        "epsilon_histogram": np.histogram(eps, bins=np.arange(0, 51, 0.5))[0].tolist(),
        "accuracy": acc,
        "identical_members": identical,
        # every member gives each forget sample the same signal (e.g. a masked logit: the signal is the cap)
        "zero_width_signal": bool((s_u.max(axis=0) - s_u.min(axis=0)).max() == 0),
        "klom": {
            v: ev.percentiles(ev.klom(ev.margins(unlearned[v], labels[v]), ev.margins(retrained[v], labels[v])))
            for v in ("forget", "retain", "test")
        },
    }
    ref = member_metrics(retrained, labels, seed=seed) if retrained_metrics is None else retrained_metrics
    out["avg_gap"] = avg_gap(member_metrics(unlearned, labels, seed=seed), ref)
    out["ulira"] = None if identical else ev.ulira(s_u, s_r)
    out["rmia"] = _rmia(unlearned, retrained, labels, rmia_target, seed)
    return out


def _true_prob(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    return np.take_along_axis(p, labels[None, :, None], axis=2)[..., 0]


def _rmia(unlearned: Mapping[str, np.ndarray], retrained: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray],
          target: int, seed: int) -> dict[str, Any]:  # fmt: skip
    """Offline RMIA on the shipped model (unlearned member ``target``) with the retrained population as references.

    The holdout split is cut (seeded) into population samples z and never-seen negatives of the forget set's
    classes; AUC and TPR at low FPR of the forget samples against the negatives.
    """
    y_h, y_f = labels["holdout"], labels["forget"]
    g = np.random.default_rng(seed)
    perm = g.permutation(y_h.size)
    z_idx, neg_idx = perm[: y_h.size // 2], perm[y_h.size // 2 :]
    neg_idx = neg_idx[np.isin(y_h[neg_idx], np.unique(y_f))]  # negatives of the forget set's classes
    if neg_idx.size == 0:
        return {"reason": "no holdout sample of the forget set's classes to serve as a negative"}
    p_u_f, p_r_f = _true_prob(unlearned["forget"], y_f), _true_prob(retrained["forget"], y_f)
    p_u_h, p_r_h = _true_prob(unlearned["holdout"], y_h), _true_prob(retrained["holdout"], y_h)
    t = target
    fx = ev.rmia(p_u_f[t], p_r_f, p_u_h[t, z_idx], p_r_h[:, z_idx])
    fn = ev.rmia(p_u_h[t, neg_idx], p_r_h[:, neg_idx], p_u_h[t, z_idx], p_r_h[:, z_idx])
    roc = roc_summary(fx, fn)
    return {"target": f"unlearned member {t}", "auc": roc["auc"], "tpr_at_fpr": roc["tpr_at_fpr"],
            "reasons": roc["reasons"], "negatives": int(neg_idx.size), "population": int(z_idx.size)}  # fmt: skip


def _mean_seconds(results: Sequence[Any]) -> float | None:
    secs = [r.value["seconds"] for r in results if r.value["seconds"] is not None]
    return float(np.mean(secs)) if secs else None


def audit_unit(spec: dict[str, Any], audit: AuditConfig, methods: Sequence[tuple[str, Mapping[str, Any]]],
               cache_dir: str | Path, *, executor: Executor | None = None) -> dict[str, Any]:  # fmt: skip
    """Train (or load) every population of one unit and score each method, the ceiling and the floor."""
    executor = executor or LocalExecutor()
    cache = str(cache_dir)
    a = {"models": audit.models, "protocol": audit.protocol, "data_seed": audit.data_seed,
         "retain_sample": audit.retain_sample}  # fmt: skip  (max_seconds picks methods; it changes no member)
    n = audit.models
    fresh = [0]  # members computed in this call (0 on a resumed, finished audit)

    def population(role: str, method: str | None = None, settings: Mapping[str, Any] | None = None) -> list[Any]:
        kwargs = {"spec": spec, "audit": a, "role": role, "cache_dir": cache, "method": method,
                  "settings": dict(settings or {})}  # fmt: skip
        tasks = [Task(f"{role}/{method}/{i}", member_task, {**kwargs, "index": i}) for i in range(n)]
        results = executor.map(tasks)
        raise_failures(results)
        fresh[0] += sum(not r.value["cached"] for r in results)
        return results

    scenario = make_scenario(spec["scenario"]["name"], **spec["scenario"]["options"])
    if "memorization" in scenario.needs:  # its half-models on the executor first (cached)
        raise_failures(executor.map(memorization_tasks(spec, audit.data_seed, cache, scenario.models)))  # type: ignore[attr-defined]
    _, views = _unit(json.dumps(spec, sort_keys=True), audit.data_seed, audit.retain_sample, cache)
    labels = {v: views[v].labels.numpy() for v in VIEWS}
    retrained_runs = population("retrained")
    retrained = _stack(retrained_runs)
    out: dict[str, Any] = {"models": n, "protocol": audit.protocol, "data_seed": audit.data_seed,
                           "resolution": ev.resolution(n), "forget_size": int(labels["forget"].size), "rows": {},
                           "notes": []}  # fmt: skip
    ref = member_metrics(retrained, labels, seed=audit.data_seed)

    def scored(pop: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return score(pop, retrained, labels, seed=audit.data_seed, retrained_metrics=ref)

    out["retrain_seconds"] = _mean_seconds(retrained_runs)
    out["ceiling"] = scored(_stack(population("ceiling")))
    out["floor"] = scored(_stack(population("original")))
    left_out: dict[str, float] = {}
    if audit.max_seconds is not None:  # member 0 first: a method over the limit is left out, the rest keep it
        for name, settings in methods:
            first = executor.map([Task(f"unlearned/{name}/0", member_task, {
                "spec": spec, "audit": a, "role": "unlearned", "cache_dir": cache, "method": name,
                "settings": dict(settings), "index": 0})])  # fmt: skip
            raise_failures(first)
            fresh[0] += not first[0].value["cached"]
            secs = first[0].value["seconds"]
            if secs is not None and secs > audit.max_seconds:
                left_out[name] = secs
    for name, settings in methods:
        if name in left_out:
            continue
        runs = population("unlearned", name, settings)
        row = scored(_stack(runs))
        row["seconds"] = _mean_seconds(runs)
        if row["identical_members"]:
            out["notes"].append(
                f"{name}: all {n} unlearned members are identical (the method ignores its seed"
                + (" under the challenge protocol" if audit.protocol == "challenge" else "")
                + "): a zero-width population, so ε = 50 and F = 0 by construction, whatever its quality."
            )
        elif row["zero_width_signal"]:
            out["notes"].append(
                f"{name}: all {n} members give every forget sample the same signal (a masked or removed logit "
                "gives the competition's capped value, about −103.6): a zero-width population, so ε = 50 and "
                "F = 0 by construction, whatever its quality (its forget-set KLoM is at its maximum for the same "
                "reason); read its Avg. Gap and its retain and test KLoM instead."
            )
        out["rows"][name] = row
    out["computed"] = fresh[0]
    out["left_out"] = left_out
    return out


def run_audit(config: BenchConfig, out: str | Path, audit: AuditConfig, *, methods: Sequence[str] | None = None,
              cache_dir: str | Path | None = None, executor: str | None = None,
              on_unit: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Audit every unit of a benchmark file; writes ``out/audit.json`` (atomically) and returns its record.

    Args:
        methods: Methods of the file to audit (default: all of them; each unit skips what its scenario cannot run).
        cache_dir: The population cache (default ``out/cache``); shared across audits, content-addressed.
        executor: ``local`` or ``ray`` (default: the file's executor).
        on_unit: Called with each unit's result as it finishes (the CLI prints it).
    """
    from dataclasses import replace

    from unlearnkit.env import environment
    from unlearnkit.files import clean_json
    from unlearnkit.running.benchmark import unit_spec
    from unlearnkit.running.executor import make_executor

    names = [m.name for m in config.methods]
    chosen = names if methods is None else list(methods)
    unknown = [m for m in chosen if m not in names]
    if unknown:
        raise ParameterError(
            f"The 'methods' parameter must name methods of {config.path or config.name} ({', '.join(names)}); "
            f"got {', '.join(unknown)}."
        )
    out = Path(out)
    cache = Path(cache_dir) if cache_dir is not None else out / "cache"
    ex = dict(config.executor)
    kind = str(executor or ex.pop("name", "local"))
    ex.pop("name", None)
    ex.pop("cell_time_limit", None)
    start = time.perf_counter()
    units = []
    skip = {(s.scenario, s.method) for s in config.skipped}
    with make_executor(kind, **ex) as pool:
        for dataset in config.datasets:
            for model in config.models:
                for scenario in config.scenarios:
                    spec = unit_spec(config, dataset, model, scenario)
                    todo = [(m.name, dict(m.options)) for m in config.methods
                            if m.name in chosen and (scenario.name, m.name) not in skip]  # fmt: skip
                    result = audit_unit(spec, audit, todo, cache, executor=pool)
                    units.append({"unit": f"{dataset}/{model.name}/{scenario.name}", "dataset": dataset,
                                  "model": model.name, "scenario": scenario.name, **result})  # fmt: skip
                    if on_unit is not None:
                        on_unit(units[-1])
    record = {"config": replace(config, methods=tuple(m for m in config.methods if m.name in chosen)).to_dict(),
              "config_file": config.path, "audit": vars(audit), "units": units, "seconds": time.perf_counter() - start,
              "env": environment()}  # fmt: skip
    plain: dict[str, Any] = json.loads(json.dumps(clean_json(record)))
    write_json_atomic(out / AUDIT_FILE, plain)
    return plain
