"""Memorisation scores (Feldman 2020) from models trained on random halves, and the splits of a unit that needs them.

``mem(x) = P[correct | x trained] − P[correct | x not trained]``: K models of
the unit's architecture and recipe are each trained on a seeded random half
of the training split (seed ``MEMO_SEED + k``; half ``k`` drawn from the data
seed and ``k``), and each one's correctness on every training sample is kept.
A sample is in about K/2 halves and out of the others, so with K = 32 each
probability is estimated from about 16 models (a standard error near 0.12 at
p = 0.5): enough to rank the most memorised samples, not to read one score to
two decimals. Feldman & Zhang (2020) use thousands of models.

Each member is one executor task whose result is cached by content under
``cache_dir/memorization/`` (a killed run resumes without retraining it).
:func:`prepare_splits` is how the running layer builds any unit's
:class:`~unlearnkit.data.splits.Splits`: for a scenario that ``needs``
memorisation (``memorized``) it computes the scores first and passes the
scenario's selection as the request.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnkit.core.artifacts import save_tensors_atomic
from unlearnkit.core.models import build_model_for
from unlearnkit.core.training import TrainConfig, fit
from unlearnkit.data.datasets import cached_dataset
from unlearnkit.data.scenarios import make_scenario
from unlearnkit.data.splits import DataSplit, Splits, split_dataset
from unlearnkit.errors import ParameterError
from unlearnkit.evaluation import evidence as ev
from unlearnkit.evaluation.outputs import outputs_of
from unlearnkit.running.executor import Executor, Task, raise_failures

#: model seeds of the half-models (distinct from originals, retrained and audit populations)
MEMO_SEED = 300_000


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:24]


@functools.lru_cache(maxsize=4)
def _split(spec_json: str, seed: int) -> DataSplit:
    spec = json.loads(spec_json)
    ds = cached_dataset(spec["dataset"], spec["data_dir"])
    return split_dataset(ds, seed=seed, holdout_fraction=spec["holdout_fraction"], train_size=spec["train_size"])


def _key(spec: Mapping[str, Any], seed: int, index: int) -> str:
    ds = cached_dataset(spec["dataset"], spec["data_dir"])
    ident = {k: spec[k] for k in ("holdout_fraction", "train_size", "model", "train")}
    return _digest({"dataset": ds.content_hash, **ident, "data_seed": seed, "index": index, "what": "memorization"})


def half(n: int, seed: int, index: int) -> torch.Tensor:
    """Sorted positions of half-model ``index``'s training half (seeded by the data seed and the index)."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + 7 * int(index) + 11)
    return torch.randperm(n, generator=g)[: n // 2].sort().values


def member_task(spec: dict[str, Any], seed: int, index: int, cache_dir: str) -> dict[str, Any]:
    """Task: half-model ``index`` of the unit at data seed ``seed``; its correctness on every training sample."""
    path = Path(cache_dir) / "memorization" / f"{_key(spec, seed, index)}.safetensors"
    if path.exists():
        from safetensors.torch import load_file

        stored = load_file(str(path))
        return {"correct": stored["correct"].bool(), "trained": stored["trained"].bool(), "cached": True}
    split = _split(json.dumps(spec, sort_keys=True), seed)
    train = split.train
    positions = half(len(train), seed, index)
    ds = cached_dataset(spec["dataset"], spec["data_dir"])
    model = build_model_for(ds, spec["model"]["name"], seed=MEMO_SEED + index, **spec["model"]["options"])
    fit(model, train.subset(positions, "train"), TrainConfig.from_dict(spec["train"]), seed=MEMO_SEED + index)
    model.eval()
    out = outputs_of(model, train)
    correct = out.logits.argmax(1) == out.labels
    trained = torch.zeros(len(train), dtype=torch.bool)
    trained[positions] = True
    save_tensors_atomic(path, {"correct": correct.to(torch.uint8), "trained": trained.to(torch.uint8)})
    return {"correct": correct, "trained": trained, "cached": False}


def memorization_tasks(spec: dict[str, Any], seed: int, cache_dir: str | Path, models: int) -> list[Task]:
    """One task per half-model (run them on an executor before :func:`prepare_splits` reads the cache)."""
    kw = {"spec": spec, "seed": seed, "cache_dir": str(cache_dir)}
    return [Task(f"memorization/{seed}/{k}", member_task, {**kw, "index": k}) for k in range(models)]


def memorization_scores(spec: dict[str, Any], seed: int, cache_dir: str | Path, *, models: int,
                        executor: Executor | None = None) -> np.ndarray:  # fmt: skip
    """Per-training-sample memorisation scores of the unit at data seed ``seed`` (NaN: never in, or never out)."""
    tasks = memorization_tasks(spec, seed, cache_dir, models)
    if executor is not None:
        results = executor.map(tasks)
        raise_failures(results)
        values = [r.value for r in results]
    else:
        values = [t.fn(**t.kwargs) for t in tasks]
    correct = np.stack([v["correct"].numpy() for v in values])
    trained = np.stack([v["trained"].numpy() for v in values])
    return ev.memorization(correct, trained)


def prepare_splits(spec: dict[str, Any], seed: int, cache_dir: str | Path | None = None, *,
                   executor: Executor | None = None) -> Splits:  # fmt: skip
    """The unit's :class:`Splits` at ``seed``, computing first what its scenario ``needs``."""
    split = _split(json.dumps(spec, sort_keys=True), seed)
    scenario = make_scenario(spec["scenario"]["name"], **spec["scenario"]["options"])
    if "memorization" not in scenario.needs:
        return scenario.prepare(split, seed=seed)
    if cache_dir is None:
        raise ParameterError(
            f"The 'cache_dir' parameter is needed for scenario {scenario.name!r}: "
            "its memorisation models are cached there."
        )
    scores = memorization_scores(spec, seed, cache_dir, models=scenario.models, executor=executor)  # type: ignore[attr-defined]
    return scenario.prepare(split, seed=seed, request=scenario.select(scores, seed=seed))  # type: ignore[attr-defined]
