"""Run a benchmark file: every (dataset, model, scenario, method) cell for every seed.

Work is split in two phases of executor tasks:

1. per (dataset, model, scenario, seed): train the original and the retrained
   reference — both cached by content (dataset hash + split + request + model +
   training recipe + seed) under the cache folder, so they are reused across
   methods, benchmark files and runs — and evaluate them (rows ``original``
   and ``retrain``), plus a second retraining with another seed scored like a
   method (row ``retrain_other``: the noise floor);
2. per (cell, seed): run the method on the cached original and evaluate it.

Each finished row is appended to ``records.jsonl`` as one JSON line (in the
result shape of ``unlearnkit run``, plus the cell's identity and a status).
A run folder is never reused unless ``resume`` is set; a resumed run skips the
rows already recorded as ``ok`` and reruns the rest, so its final records equal
an uninterrupted run's. A failing cell is recorded with its error; the others
continue.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnkit.core.artifacts import save_tensors_atomic
from unlearnkit.core.models import build_model_for
from unlearnkit.core.training import TrainConfig, fit
from unlearnkit.data.datasets import cached_dataset
from unlearnkit.data.scenarios import make_scenario
from unlearnkit.data.splits import Splits
from unlearnkit.env import environment
from unlearnkit.errors import OutputExistsError
from unlearnkit.evaluation.collection import collect
from unlearnkit.evaluation.metrics import evaluate, gap
from unlearnkit.files import clean_json, write_json_atomic
from unlearnkit.methods import Retrain, make_method
from unlearnkit.reporting.records import RECORDS, damaged_lines, read_records, repair_records
from unlearnkit.running.benchconfig import BenchConfig, Entry
from unlearnkit.running.executor import Task, TaskResult, make_executor
from unlearnkit.running.experiment import GAP_METRICS, original_facts, summarize_diagnostics
from unlearnkit.running.memorization import memorization_tasks, prepare_splits

PHASE_ROWS = ("original", "retrain", "retrain_other")
#: the noise floor's seed offset: a second retraining with another initialisation and data order
OTHER_SEED = 1_000_003


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def unit_spec(config: BenchConfig, dataset: str, model: Entry, scenario: Entry) -> dict[str, Any]:
    """Everything a worker needs to rebuild one (dataset, model, scenario) unit (plain, picklable)."""
    return {
        "dataset": dataset,
        "data_dir": config.data_dir,
        "holdout_fraction": config.holdout_fraction,
        "train_size": config.train_size,
        "model": model.to_dict(),
        "scenario": scenario.to_dict(),
        "train": config.train.to_dict(),
        "metrics": list(config.metrics) if config.metrics else None,
    }


def cell_id(spec: Mapping[str, Any], method: str, settings: Mapping[str, Any] | None = None) -> str:
    """Readable identity of a cell: ``dataset/model/scenario/method`` (+ a hash when options are set)."""
    parts = [spec["dataset"], spec["model"]["name"], spec["scenario"]["name"], method]
    opts = {"model": spec["model"]["options"], "scenario": spec["scenario"]["options"], "method": dict(settings or {})}
    suffix = _digest(opts)[:8] if any(opts.values()) else ""
    return "/".join(parts) + (f"#{suffix}" if suffix else "")


@functools.lru_cache(maxsize=8)
def _splits(spec_json: str, seed: int, cache_dir: str) -> Splits:
    return prepare_splits(json.loads(spec_json), seed, cache_dir)


def _model_key(spec: Mapping[str, Any], seed: int, which: str, cache_dir: str) -> str:
    ds = cached_dataset(spec["dataset"], spec["data_dir"])
    splits = _splits(json.dumps(spec, sort_keys=True), seed, cache_dir)
    ident = {k: spec[k] for k in ("holdout_fraction", "train_size", "model", "scenario", "train")}
    return _digest({"dataset": ds.content_hash, **ident, "forget": splits.request_hash(), "seed": seed, "which": which})


def _build(spec: Mapping[str, Any], seed: int) -> torch.nn.Module:
    ds = cached_dataset(spec["dataset"], spec["data_dir"])
    return build_model_for(ds, spec["model"]["name"], seed=seed, **spec["model"]["options"])


def _model_path(cache_dir: str, spec: Mapping[str, Any], seed: int, which: str) -> Path:
    return Path(cache_dir) / "models" / f"{_model_key(spec, seed, which, cache_dir)}.safetensors"


def _load_model(cache_dir: str, spec: Mapping[str, Any], seed: int, which: str) -> tuple[torch.nn.Module, float] | None:
    """A cached model and its training seconds (weights via safetensors; nothing is unpickled)."""
    from safetensors.torch import load_file

    path = _model_path(cache_dir, spec, seed, which)
    meta = path.with_suffix(".json")
    if not (path.exists() and meta.exists()):
        return None
    model = _build(spec, seed)
    model.load_state_dict(load_file(str(path)))
    return model.eval(), float(json.loads(meta.read_text())["seconds"])


def _cached_model(
    cache_dir: str, spec: Mapping[str, Any], seed: int, which: str, make: Callable[[], tuple[torch.nn.Module, float]]
) -> tuple[torch.nn.Module, float, bool]:
    """Load ``which`` (original / retrain) from the cache, or make and store it. Returns (model, seconds, cached)."""
    loaded = _load_model(cache_dir, spec, seed, which)
    if loaded is not None:
        return loaded[0], loaded[1], True
    model, seconds = make()
    path = _model_path(cache_dir, spec, seed, which)
    write_json_atomic(path.with_suffix(".json"), {"which": which, "seed": seed, "seconds": seconds, "spec": dict(spec)})
    save_tensors_atomic(path, dict(model.state_dict()))  # the weights last: cached only once both files exist
    return model.eval(), seconds, False


def _evaluate(model: torch.nn.Module, splits: Splits, spec: Mapping[str, Any], seed: int) -> dict[str, Any]:
    return evaluate(collect(model, splits), spec["metrics"], seed=seed)


def _gaps(metrics: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, float | None]:
    return {k: gap(metrics.get(k), reference.get(k)) for k in GAP_METRICS}


def avg_gap(gaps: Mapping[str, float | None]) -> float | None:
    """Avg. Gap to Retrain in percentage points (SalUn): mean of the defined gaps, x100."""
    vals = [v for v in gaps.values() if v is not None]
    return 100 * sum(vals) / len(vals) if vals else None


def reference_models(
    spec: dict[str, Any], seed: int, cache_dir: str
) -> tuple[torch.nn.Module, torch.nn.Module, float, float, bool, bool]:
    """The original and the retrained reference of a unit (trained once, then from the cache).

    Returns (original, reference, original seconds, reference seconds, original cached, reference cached).
    """
    splits = _splits(json.dumps(spec, sort_keys=True), seed, cache_dir)
    recipe = TrainConfig.from_dict(spec["train"])

    def train_original() -> tuple[torch.nn.Module, float]:
        model = _build(spec, seed)
        stats = fit(model, splits.train, recipe, seed=seed)
        return model, stats.seconds

    original, orig_s, orig_cached = _cached_model(cache_dir, spec, seed, "original", train_original)

    def train_reference() -> tuple[torch.nn.Module, float]:
        outcome = Retrain().unlearn(original, splits, seed=seed, recipe=recipe)
        return outcome.model, outcome.seconds

    reference, ref_s, ref_cached = _cached_model(cache_dir, spec, seed, "retrain", train_reference)
    return original, reference, orig_s, ref_s, orig_cached, ref_cached


ORACLE_SAMPLES = 2000


def _oracle_views(splits: Splits, seed: int) -> tuple[Any, Any]:
    """Seeded subsets (at most ORACLE_SAMPLES each) of the retain set and the holdout split."""
    g = torch.Generator().manual_seed(int(seed) + 2_147_483)
    r = torch.randperm(len(splits.retain), generator=g)[:ORACLE_SAMPLES].sort().values
    h = torch.randperm(len(splits.holdout), generator=g)[:ORACLE_SAMPLES].sort().values
    return splits.retain.subset(r, "oracle_retain"), splits.holdout.subset(h, "oracle_holdout")


def fit_oracle(original: torch.nn.Module, splits: Splits, seed: int) -> dict[str, Any]:
    """The loss-threshold membership oracle of one original and its "before" verdicts.

    Fitted on the original's retain samples vs holdout samples (at most 2,000 of
    each); stored with the reference so every method cell of the unit reuses it.
    """
    from unlearnkit.evaluation.attacks import make_attack
    from unlearnkit.evaluation.outputs import outputs_of

    retain, holdout = _oracle_views(splits, seed)
    oracle = make_attack("threshold_loss").fit(outputs_of(original, retain), outputs_of(original, holdout))
    return {
        "threshold": oracle.threshold,  # type: ignore[attr-defined]
        "forget": oracle.predict(outputs_of(original, splits.forget)).tolist(),
        "retain": oracle.predict(outputs_of(original, retain)).tolist(),
    }


def forgetting_rates(oracle: Mapping[str, Any], model: torch.nn.Module, splits: Splits, seed: int) -> dict[str, Any]:
    """003's FR on the forget set and CFR on retained training samples: ``oracle`` (from :func:`fit_oracle`)
    applied to the original ("before", stored) and to ``model`` ("after"); counts are reported with the rates."""
    from unlearnkit.evaluation.attacks import catastrophic_forgetting_rate, forgetting_rate
    from unlearnkit.evaluation.outputs import outputs_of
    from unlearnkit.evaluation.scores import sample_scores

    retain, _ = _oracle_views(splits, seed)

    def member(view: Any) -> np.ndarray:
        return np.asarray(sample_scores(outputs_of(model, view), "loss") >= oracle["threshold"])

    fr = forgetting_rate(np.asarray(oracle["forget"]), member(splits.forget))
    cfr = catastrophic_forgetting_rate(np.asarray(oracle["retain"]), member(retain))
    n_forget, n_train = fr.pop("n"), cfr.pop("n")
    return {"oracle": "threshold_loss", **fr, **cfr, "n_forget": n_forget, "n_train": n_train}


def reference_unit(spec: dict[str, Any], seed: int, cache_dir: str) -> dict[str, Any]:
    """Task: the original, the retrained reference and a second retraining (another seed) of one unit, evaluated.

    The second retraining (row ``retrain_other``, seed + ``OTHER_SEED``) is scored against the reference like a
    method: its Avg. Gap is the noise floor — what retraining itself differs from retraining.
    """
    splits = _splits(json.dumps(spec, sort_keys=True), seed, cache_dir)
    original, reference, orig_s, ref_s, orig_cached, ref_cached = reference_models(spec, seed, cache_dir)
    collected = collect(original, splits)  # once: the metrics and the memorisation facts read the same outputs
    orig_m, ref_m = evaluate(collected, spec["metrics"], seed=seed), _evaluate(reference, splits, spec, seed)
    facts = {**original_facts(collected, orig_m), "n_forget": len(splits.forget), "n_retain": len(splits.retain)}
    rows = {}
    recipe = TrainConfig.from_dict(spec["train"])

    def train_other() -> tuple[torch.nn.Module, float]:  # the noise floor: what retraining differs from retraining
        outcome = Retrain().unlearn(original, splits, seed=seed + OTHER_SEED, recipe=recipe)
        return outcome.model, outcome.seconds

    other, other_s, other_cached = _cached_model(cache_dir, spec, seed, "retrain_other", train_other)
    other_m = _evaluate(other, splits, spec, seed)
    for which, m, secs, cached in (("original", orig_m, orig_s, orig_cached), ("retrain", ref_m, ref_s, ref_cached),
                                   ("retrain_other", other_m, other_s, other_cached)):  # fmt: skip
        g = _gaps(m, ref_m)
        rows[which] = {"metrics": m, "gap": g, "avg_gap": avg_gap(g), "seconds": secs, "cached_model": cached,
                       "speedup": (ref_s / secs) if which != "original" and secs else None}  # fmt: skip
    rows["original"]["original_facts"] = facts
    oracle = fit_oracle(original, splits, seed)
    rows["original"]["forgetting"] = forgetting_rates(oracle, original, splits, seed)
    rows["retrain"]["forgetting"] = forgetting_rates(oracle, reference, splits, seed)
    rows["retrain_other"]["forgetting"] = forgetting_rates(oracle, other, splits, seed)
    write_json_atomic(_reference_metrics_path(cache_dir, spec, seed),
                      clean_json({"metrics": ref_m, "seconds": ref_s, "oracle": oracle}))  # fmt: skip
    return {"rows": rows}


def _reference_metrics_path(cache_dir: str, spec: Mapping[str, Any], seed: int) -> Path:
    """Where :func:`reference_unit` leaves the reference's metrics and seconds for the method cells."""
    return _model_path(cache_dir, spec, seed, "retrain").with_suffix(".metrics.json")


def _reference_cached(cache_dir: str, spec: Mapping[str, Any], seed: int) -> bool:
    """Are the original and the reference's metrics that :func:`method_cell` reads in the cache?"""
    original = _model_path(cache_dir, spec, seed, "original")
    return original.exists() and original.with_suffix(".json").exists() and _reference_metrics_path(
        cache_dir, spec, seed).exists()  # fmt: skip


def method_cell(
    spec: dict[str, Any], seed: int, method: str, settings: dict[str, Any], cache_dir: str
) -> dict[str, Any]:
    """Task: one method on the cached original of its unit, evaluated against the cached reference."""
    ref_path = _reference_metrics_path(cache_dir, spec, seed)
    loaded = _load_model(cache_dir, spec, seed, "original")
    if loaded is None or not ref_path.exists():
        raise RuntimeError("the original or the retrained reference of this cell is missing (its reference row failed)")
    ref = json.loads(ref_path.read_text())
    original = loaded[0]
    splits = _splits(json.dumps(spec, sort_keys=True), seed, cache_dir)
    recipe = TrainConfig.from_dict(spec["train"])
    outcome = make_method(method, **settings).unlearn(original, splits, seed=seed, recipe=recipe)
    m = _evaluate(outcome.model, splits, spec, seed)
    g = _gaps(m, ref["metrics"])
    return {
        "metrics": m,
        "gap": g,
        "avg_gap": avg_gap(g),
        "seconds": outcome.seconds,
        "speedup": ref["seconds"] / outcome.seconds if outcome.seconds > 0 else None,
        "steps": outcome.steps,
        "samples_seen": outcome.samples_seen,
        "params": outcome.params,
        "diagnostics": summarize_diagnostics(outcome.diagnostics),
        "forgetting": forgetting_rates(ref["oracle"], outcome.model, splits, seed),
    }


@dataclass
class BenchRun:
    """A finished (or partly finished) run: its folder and its final records (last per key)."""

    out: Path
    records: list[dict[str, Any]]
    skipped_cells: list[dict[str, Any]]


def run_benchmark(
    config: BenchConfig,
    out: str | Path,
    *,
    resume: bool = False,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> BenchRun:
    """Run every cell of ``config`` into the folder ``out`` (see the module docstring)."""
    out = Path(out)
    say = log or (lambda _m: None)
    if out.exists() and any(out.iterdir()) and not resume:
        raise OutputExistsError(
            f"The '--out' folder {str(out)!r} already holds a run; pass --resume to continue it, "
            "or choose a new folder."
        )
    out.mkdir(parents=True, exist_ok=True)
    cache = str(cache_dir or out / "cache")
    meta: dict[str, Any] = {
        "config": config.to_dict(),
        "config_hash": config.content_hash(),
        "config_file": config.path,
        "settings_files": list(config.settings_files),
        "environment": environment("cpu"),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    previous = out / "run.json"
    old_meta = json.loads(previous.read_text()) if resume and previous.exists() else None
    if old_meta is not None and old_meta.get("config_hash") != meta["config_hash"]:
        raise OutputExistsError(
            f"The '--resume' run in {str(out)!r} was made from a different benchmark file "
            f"(config hash {old_meta.get('config_hash', '?')[:12]} vs {meta['config_hash'][:12]}); use a new --out."
        )
    units = [(d, m, s) for d in config.datasets for m in config.models for s in config.scenarios]
    meta["expected_rows"] = sum(
        len(config.seeds) * (len(PHASE_ROWS) + sum(1 for scen, _ in config.pairs() if scen == s)) for _, _, s in units
    )
    if old_meta is None:
        write_json_atomic(previous, meta)
    if resume:
        cut = repair_records(out)
        if cut:
            say(f"resume: dropped a partial last line ({cut} bytes) of {RECORDS}, cut by the interruption; it reruns")
        bad = damaged_lines(out)
        if bad:
            say(f"resume: {len(bad)} damaged line(s) in {RECORDS} (line {', '.join(map(str, bad[:5]))}); they rerun")
    done = {(r["cell"], r["seed"]) for r in read_records(out) if r.get("status") == "ok"}

    memo_tasks: list[Task] = []  # memorisation half-models of scenarios that need them (cached; phase 0)
    ref_tasks: list[Task] = []
    cell_tasks: list[Task] = []
    ident: dict[str, tuple[dict[str, Any], int, str | None, dict[str, Any]]] = {}
    ref_rows = 0  # reference rows still to record (a reference may also run only to rebuild the model cache)
    for d, m, s in units:
        spec = unit_spec(config, d, m, s)
        for seed in config.seeds:
            ids = [cell_id(spec, w) for w in PHASE_ROWS]
            scenario = make_scenario(spec["scenario"]["name"], **spec["scenario"]["options"])
            if "memorization" in scenario.needs:
                memo_tasks += memorization_tasks(spec, seed, cache, scenario.models)  # type: ignore[attr-defined]
            cells_before = len(cell_tasks)
            for scen, meth in config.pairs():
                if scen != s:
                    continue
                cid = cell_id(spec, meth.name, meth.options)
                if (cid, seed) in done:
                    continue
                key = f"cell|{cid}|{seed}"
                kwargs = {
                    "spec": spec,
                    "seed": seed,
                    "method": meth.name,
                    "settings": dict(meth.options),
                    "cache_dir": cache,
                }
                cell_tasks.append(Task(key, method_cell, kwargs))
                ident[key] = (spec, seed, meth.name, dict(meth.options))
            # the reference runs when one of its rows is missing, and also when a method cell still to run needs
            # its models and the cache lacks them (a resume in a fresh checkout: the rows survive, the cache not)
            if any((i, seed) not in done for i in ids) or (len(cell_tasks) > cells_before
                                                           and not _reference_cached(cache, spec, seed)):
                key = f"ref|{ids[0]}|{seed}"
                ref_tasks.append(Task(key, reference_unit, {"spec": spec, "seed": seed, "cache_dir": cache}))
                ident[key] = (spec, seed, None, {})
                ref_rows += sum((i, seed) not in done for i in ids)
    total = ref_rows + len(cell_tasks)
    say(f"{config.name}: {total} rows to run ({len(done)} already recorded), cache {cache}")
    if old_meta is not None and total:
        # A resume keeps the run's first start and machine, and appends its own: rows computed on another
        # machine stay visible as such instead of silently relabelling the whole run.
        resumes = [*old_meta.get("resumes", []), {"started": meta["started"], "environment": meta["environment"]}]
        first = {k: old_meta.get(k, meta[k]) for k in ("environment", "started")}
        write_json_atomic(previous, {**meta, **first, "resumes": resumes})
    records_path = out / RECORDS
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=config.name, unit="row", dynamic_ncols=True)

    def write(rows: list[dict[str, Any]]) -> None:
        with open(records_path, "a") as f:
            for row in rows:
                f.write(json.dumps(clean_json(row), sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if bar is not None:
            bar.update(len(rows))

    def base(spec: Mapping[str, Any], seed: int, method: str, settings: Mapping[str, Any]) -> dict[str, Any]:
        return {"cell": cell_id(spec, method, settings), "seed": seed, "dataset": spec["dataset"],
                "model": spec["model"]["name"], "scenario": spec["scenario"]["name"], "method": method}  # fmt: skip

    def on_ref(r: TaskResult) -> None:
        spec, seed, _, _ = ident[r.key]
        rows = []
        for which in PHASE_ROWS:
            row = base(spec, seed, which, {})
            if (row["cell"], seed) in done:
                continue
            row.update({"status": "ok", **r.value["rows"][which]} if r.ok else {"status": "error", "error": r.error})
            rows.append(row)
        write(rows)

    def on_cell(r: TaskResult) -> None:
        spec, seed, method, settings = ident[r.key]
        row = base(spec, seed, str(method), settings)
        row.update({"status": "ok", **r.value} if r.ok else {"status": "error", "error": r.error, "params": settings})
        write([row])

    ex_options = {k: v for k, v in config.executor.items() if k != "name"}
    if config.cell_time_limit is not None:
        ex_options["time_limit"] = config.cell_time_limit
    try:
        with make_executor(str(config.executor["name"]), **ex_options) as executor:
            if memo_tasks:  # a failed one is retried inside the reference task, whose row then records the error
                say(f"{config.name}: {len(memo_tasks)} memorisation half-models (cached once trained)")
                executor.map(memo_tasks)
            executor.map(ref_tasks, on_result=on_ref)
            executor.map(cell_tasks, on_result=on_cell)
    finally:
        if bar is not None:
            bar.close()
    skipped = [vars(s) for s in config.skipped]
    return BenchRun(out, read_records(out), skipped)
