"""unlearnkit: make a trained PyTorch classifier forget, and measure that it forgot.

The public API in one screen::

    from unlearnkit import ForgetRequest, Splits, make_method, collect, evaluate

    splits = Splits.from_tensors(x_train, y_train, ForgetRequest.from_indices(idx),
                                 x_holdout=x_val, y_holdout=y_val, x_test=x_test, y_test=y_test)
    outcome = make_method("neggrad_plus").unlearn(model, splits, seed=0)
    print(evaluate(collect(outcome.model, splits)))

The names below are imported on first use (PEP 562), so ``import unlearnkit``
and the command line's help, ``list`` and argument errors start without
importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from unlearnkit import _moved
from unlearnkit._version import __version__
from unlearnkit.errors import (
    CheckpointError,
    DataError,
    OutputExistsError,
    ParameterError,
    RequestError,
    UnknownNameError,
    UnlearnkitError,
    UnsupportedRequestError,
)

_moved.install()  # old module paths (unlearnkit.metrics, ...) keep working for one release, with a warning

# public name -> the module that defines it
_LAZY: dict[str, str] = {
    "MODELS": "unlearnkit.core.models",
    "build_model": "unlearnkit.core.models",
    "find_head": "unlearnkit.core.models",
    "TrainConfig": "unlearnkit.core.training",
    "fit": "unlearnkit.core.training",
    "DATASETS": "unlearnkit.data.datasets",
    "Dataset": "unlearnkit.data.datasets",
    "load_dataset": "unlearnkit.data.datasets",
    "DataSplit": "unlearnkit.data.splits",
    "ForgetRequest": "unlearnkit.data.splits",
    "Splits": "unlearnkit.data.splits",
    "View": "unlearnkit.data.splits",
    "split_dataset": "unlearnkit.data.splits",
    "SCENARIOS": "unlearnkit.data.scenarios",
    "make_scenario": "unlearnkit.data.scenarios",
    "collect": "unlearnkit.evaluation.collection",
    "METRICS": "unlearnkit.evaluation.metrics",
    "evaluate": "unlearnkit.evaluation.metrics",
    "Collected": "unlearnkit.evaluation.outputs",
    "Outputs": "unlearnkit.evaluation.outputs",
    "METHODS": "unlearnkit.methods",
    "Outcome": "unlearnkit.methods",
    "Unlearner": "unlearnkit.methods",
    "make_method": "unlearnkit.methods",
    "metrics_table": "unlearnkit.reporting.tables",
    "ExperimentConfig": "unlearnkit.running.experiment",
    "run_experiment": "unlearnkit.running.experiment",
}

if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from unlearnkit.core.models import MODELS, build_model, find_head
    from unlearnkit.core.training import TrainConfig, fit
    from unlearnkit.data.datasets import DATASETS, Dataset, load_dataset
    from unlearnkit.data.scenarios import SCENARIOS, make_scenario
    from unlearnkit.data.splits import DataSplit, ForgetRequest, Splits, View, split_dataset
    from unlearnkit.evaluation.collection import collect
    from unlearnkit.evaluation.metrics import METRICS, evaluate
    from unlearnkit.evaluation.outputs import Collected, Outputs
    from unlearnkit.methods import METHODS, Outcome, Unlearner, make_method
    from unlearnkit.reporting.tables import metrics_table
    from unlearnkit.running.experiment import ExperimentConfig, run_experiment


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'unlearnkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "DATASETS",
    "METHODS",
    "METRICS",
    "MODELS",
    "SCENARIOS",
    "CheckpointError",
    "Collected",
    "DataError",
    "DataSplit",
    "Dataset",
    "ExperimentConfig",
    "ForgetRequest",
    "Outcome",
    "OutputExistsError",
    "Outputs",
    "ParameterError",
    "RequestError",
    "Splits",
    "TrainConfig",
    "UnknownNameError",
    "Unlearner",
    "UnlearnkitError",
    "UnsupportedRequestError",
    "View",
    "__version__",
    "build_model",
    "collect",
    "evaluate",
    "find_head",
    "fit",
    "load_dataset",
    "make_method",
    "make_scenario",
    "metrics_table",
    "run_experiment",
    "split_dataset",
]
