import dataclasses

import pytest

from unlearnkit import ExperimentConfig, ParameterError, TrainConfig, UnknownNameError, run_experiment
from unlearnkit.optional import MissingDependencyError, optional_import

TINY = ExperimentConfig(
    dataset="digits", model="mlp", scenario="random", scenario_options={"fraction": 0.1},
    methods=("finetune", "neggrad_plus"), seeds=(0, 1), train=TrainConfig(epochs=4),
)  # fmt: skip


def _strip_timing(results):
    return [{k: v for k, v in r.items() if k not in ("seconds", "speedup")} for r in results]


def test_same_seed_same_results(digits):
    a = run_experiment(TINY, dataset=digits)
    b = run_experiment(TINY, dataset=digits)
    assert _strip_timing(a.results) == _strip_timing(b.results)
    assert a.data == b.data
    seed0 = next(r for r in a.results if r["seed"] == 0 and r["method"] == "original")
    seed1 = next(r for r in a.results if r["seed"] == 1 and r["method"] == "original")
    assert seed0["metrics"] != seed1["metrics"]


def test_rows_and_reference(digits):
    result = run_experiment(dataclasses.replace(TINY, seeds=(0,)), dataset=digits)
    methods = [r["method"] for r in result.results]
    assert methods == ["original", "retrain", "finetune", "neggrad_plus"]
    retrain = result.results[1]
    assert retrain["gap"]["forget_accuracy"] == 0.0 and retrain["speedup"] == 1.0
    assert "original: train acc" in result.table() and "speed-up" in result.table()


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"dataset": "mnits"}, UnknownNameError, "did you mean 'mnist'"),
        ({"methods": ("scrubb",)}, UnknownNameError, "unknown method"),
        ({"scenario_options": {"forget_classes": (1,)}}, ParameterError, "does not apply to scenario 'random'"),
        ({"seeds": ()}, ParameterError, "at least one seed"),
        ({"seeds": (-1,)}, ParameterError, "ints >= 0"),
        ({"method_params": {"finetune": {"epochs": -1}}}, ParameterError, "'epochs' parameter of Finetune"),
        ({"method_params": {"finetun": {}}}, UnknownNameError, "did you mean 'finetune'"),
        ({"device": "tpu"}, ParameterError, "'--device'"),
    ],
)
def test_config_validated_before_any_work(change, error, match):
    with pytest.raises(error, match=match):
        dataclasses.replace(TINY, **change).validate()


def test_optional_import_names_the_extra():
    assert optional_import("json").dumps([1]) == "[1]"
    with pytest.raises(MissingDependencyError, match=r"pip install 'unlearnkit\[tune\]'"):
        optional_import("definitely_not_installed_pkg", extra="tune")
