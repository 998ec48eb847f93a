"""Model populations: cached by content, and the weak-unlearning test on real digits MLPs."""

from __future__ import annotations

import pytest
import torch

from unlearnkit.core.training import TrainConfig
from unlearnkit.errors import ParameterError, UnknownNameError
from unlearnkit.running.executor import make_executor
from unlearnkit.running.populations import (
    Population,
    PopulationConfig,
    load_member,
    member_path,
    remaining_predictions,
    weak_unlearning,
)

CONFIG = PopulationConfig(
    dataset="digits",
    model="mlp",
    model_kwargs={"widths": [32]},
    train=TrainConfig(epochs=20, batch_size=32, lr=0.1),
    forget_classes=(0,),
    holdout_fraction=0.2,
)
NAIVE = ("filtration", {"z": "naive", "keep_outputs": False, "samples_per_class": 20})
NORMALIZATION = ("filtration", {"z": "normalization", "keep_outputs": False, "samples_per_class": 20})
N = 20


def test_config_validation_and_keys():
    with pytest.raises(UnknownNameError, match="dataset"):
        PopulationConfig(dataset="mnsit")
    with pytest.raises(ParameterError, match="'eval_per_class' parameter of PopulationConfig"):
        PopulationConfig(dataset="digits", eval_per_class=0)
    with pytest.raises(ParameterError, match="'side' parameter must be one of seen, not_seen; got 'both'"):
        CONFIG.member_key("both", 0)
    assert CONFIG.member_key("seen", 0) != CONFIG.member_key("not_seen", 0) != CONFIG.member_key("seen", 1)
    # the evaluation subset and the data folder do not change what is trained
    same = PopulationConfig.from_dict({**CONFIG.to_dict(), "eval_per_class": 5, "data_dir": "/elsewhere"})
    assert same.member_key("seen", 3) == CONFIG.member_key("seen", 3)
    assert PopulationConfig.from_dict(CONFIG.to_dict()) == CONFIG


def test_remaining_predictions_for_both_output_widths():
    full = torch.tensor([[5.0, 1.0, 2.0], [9.0, 3.0, -1.0]])
    assert remaining_predictions(full, 3, [0]).tolist() == [2, 1]
    assert remaining_predictions(full[:, 1:], 3, [0]).tolist() == [2, 1]
    with pytest.raises(ParameterError, match="must have 3 or 2 outputs; got 1"):
        remaining_predictions(full[:, :1], 3, [0])


def test_members_are_cached_and_not_seen_members_never_saw_the_class(tmp_path):
    pop = Population(CONFIG, tmp_path)
    first = pop.train("not_seen", [0, 1])
    assert all(r.ok and not r.value["cached"] for r in first)
    assert pop.trained == [("not_seen", 0), ("not_seen", 1)]
    rerun = Population(CONFIG, tmp_path)
    again = rerun.train("not_seen", [0, 1])  # a rerun trains nothing
    assert all(r.value["cached"] for r in again) and rerun.trained == []
    assert rerun.train_seconds == pop.train_seconds  # training times survive in the cache's sidecars
    assert all(t > 0 for t in rerun.train_seconds.values())
    assert member_path(tmp_path, CONFIG, "not_seen", 0).exists()
    outs = pop.outputs("not_seen", [0, 1])
    assert outs.logits.shape == (2, len(outs.labels), 10)
    assert not (outs.logits.argmax(-1) == 0).any()  # class 0 was never a training label
    model = load_member(CONFIG, "not_seen", 0, tmp_path)
    assert model.head.out_features == 10
    with pytest.raises(ParameterError, match="not in the cache"):
        load_member(CONFIG, "seen", 7, tmp_path)


@pytest.fixture(scope="module")
def weak(tmp_path_factory):
    pop = Population(CONFIG, tmp_path_factory.mktemp("pop"), executor=make_executor("local"))
    result = weak_unlearning(
        pop,
        {"naive": NAIVE, "normalization": NORMALIZATION},
        seen_seeds=range(N),
        not_seen_seeds=range(1000, 1000 + N),
        classifiers=("knn",),
        n_boot=200,
        features=("logits", "probabilities"),
    )
    return pop, result


def test_normalization_advantage_on_the_unlearned_class_is_below_naive(weak):
    # measured (seed 0, 20 + 20 digits MLPs, k-NN): naive 1.00 [1.00, 1.00], normalization 0.66 [0.51, 0.78]
    _, result = weak
    adv = {
        k: {a["group"]: a for a in v["advantage"] if a["features"] == "logits"} for k, v in result["variants"].items()
    }
    assert adv["naive"]["unlearned"]["advantage"] > 0.9
    assert adv["normalization"]["unlearned"]["advantage"] < adv["naive"]["unlearned"]["advantage"] - 0.2
    assert adv["normalization"]["unlearned"]["ci"][1] < adv["naive"]["unlearned"]["ci"][0]
    for v in result["variants"].values():
        assert v["models"] == N and v["failures"] == [] and len(v["unlearn_seconds"]) == N


def test_on_probabilities_normalization_is_naive(weak):
    # normalization shifts all remaining logits of a sample by the same amount: softmax outputs are naive's
    _, result = weak
    probs = {
        k: {a["group"]: a["advantage"] for a in v["advantage"] if a["features"] == "probabilities"}
        for k, v in result["variants"].items()
    }
    # measured: 0.226 for both on the unlearned class (vs 1.00 / 0.66 on logits), -0.001 on the remaining ones
    assert probs["normalization"] == pytest.approx(probs["naive"], abs=1e-9)
    assert 0.05 < probs["naive"]["unlearned"] < 0.5


def test_normalization_changes_no_label_of_the_remaining_classes(weak):
    pop = Population(CONFIG, weak[0].cache_dir)  # same cache: nothing is trained or recomputed
    naive = pop.outputs("seen", range(N), method=NAIVE[0], settings=NAIVE[1])
    norm = pop.outputs("seen", range(N), method=NORMALIZATION[0], settings=NORMALIZATION[1])
    changed = remaining_predictions(naive.logits, 10, [0]) != remaining_predictions(norm.logits, 10, [0])
    assert int(changed.sum()) == 0  # measured: 0 of 20 x 450 predictions
    assert not torch.allclose(naive.logits, norm.logits)  # the logits themselves do differ
    assert pop.trained == []  # everything came from the cache
