"""unlearnkit: make a trained PyTorch classifier forget, and measure that it forgot.

The public API in one screen::

    from unlearnkit import ForgetRequest, Splits, make_method, collect, evaluate

    splits = Splits.from_tensors(x_train, y_train, ForgetRequest.from_indices(idx),
                                 x_holdout=x_val, y_holdout=y_val, x_test=x_test, y_test=y_test)
    outcome = make_method("neggrad_plus").unlearn(model, splits, seed=0)
    print(evaluate(collect(outcome.model, splits)))
"""

from unlearnkit import _moved
from unlearnkit._version import __version__
from unlearnkit.core.models import MODELS, build_model, find_head
from unlearnkit.core.training import TrainConfig, fit
from unlearnkit.data import (
    DATASETS,
    Dataset,
    DataSplit,
    ForgetRequest,
    Splits,
    View,
    load_dataset,
    split_dataset,
)
from unlearnkit.data.scenarios import SCENARIOS, make_scenario
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
from unlearnkit.evaluation.collection import collect
from unlearnkit.evaluation.metrics import METRICS, evaluate
from unlearnkit.evaluation.outputs import Collected, Outputs
from unlearnkit.methods import METHODS, Outcome, Unlearner, make_method
from unlearnkit.running.experiment import ExperimentConfig, run_experiment

_moved.install()  # old module paths (unlearnkit.metrics, ...) keep working for one release, with a warning

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
    "run_experiment",
    "split_dataset",
]
