"""The memorized scenario and the memorisation scores behind it (real half-models on digits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unlearnkit.core.models import build_model
from unlearnkit.core.training import TrainConfig, fit
from unlearnkit.data.scenarios import make_scenario
from unlearnkit.errors import ParameterError
from unlearnkit.evaluation.outputs import outputs_of
from unlearnkit.running.benchconfig import load_config
from unlearnkit.running.memorization import memorization_scores, prepare_splits

ROOT = Path(__file__).resolve().parents[1]
RECIPE = TrainConfig(epochs=40, lr=0.05, batch_size=32)


def _spec(options: dict) -> dict:
    return {"dataset": "digits", "data_dir": None, "holdout_fraction": 0.2, "train_size": 300,
            "model": {"name": "mlp", "options": {"widths": [64]}},
            "scenario": {"name": "memorized", "options": options}, "train": RECIPE.to_dict(),
            "metrics": None}  # fmt: skip


def _accuracy(out) -> float:
    return float((out.logits.argmax(1) == out.labels).float().mean())


def test_select_takes_the_highest_scores_breaks_ties_by_seed_and_ranks_missing_scores_last():
    scores = np.array([0.1, 0.9, np.nan, 0.5, 0.9, 0.9, 0.0, 0.2])
    top = make_scenario("memorized", count=2)
    picks = {top.select(scores, seed=s).indices for s in range(20)}  # type: ignore[attr-defined]
    assert picks <= {(1, 4), (1, 5), (4, 5)} and len(picks) > 1  # two of the three 0.9s, which ones by seed
    assert top.select(scores, seed=3).indices == top.select(scores, seed=3).indices  # type: ignore[attr-defined]
    four = make_scenario("memorized", count=4).select(scores, seed=0)  # type: ignore[attr-defined]
    assert four.indices == (1, 3, 4, 5)
    every = make_scenario("memorized", count=7).select(scores, seed=0)  # type: ignore[attr-defined]
    assert 2 not in every.indices  # NaN (no score) is ranked last
    mix = make_scenario("memorized", count=4, random_share=0.5)
    got = [set(mix.select(scores, seed=s).indices) for s in range(20)]  # type: ignore[attr-defined]
    assert all(len(g & {1, 4, 5}) >= 2 for g in got)  # two from the top ...
    assert len({frozenset(g) for g in got}) > 3  # ... and two drawn at random from the rest


@pytest.mark.parametrize(("options", "word"), [({"count": 0}, "count"), ({"random_share": 1.5}, "random_share"),
                                               ({"models": 1}, "models"), ({"count": True}, "count")])  # fmt: skip
def test_memorized_options_are_checked(options, word):
    with pytest.raises(ParameterError, match=f"'{word}' parameter of scenario 'memorized'"):
        make_scenario("memorized", **options)


def test_the_scenario_says_where_its_scores_come_from(digits_split):
    with pytest.raises(ParameterError, match="needs memorisation scores"):
        make_scenario("memorized").prepare(digits_split, seed=0)


def test_the_most_memorised_samples_are_the_ones_a_model_trained_without_them_gets_wrong(tmp_path, digits):
    spec = _spec({"count": 20, "models": 8})
    scores = memorization_scores(spec, 0, tmp_path, models=8)
    assert scores.shape == (300,) and np.nanmax(scores) > 0.5 and abs(np.nanmedian(scores)) < 0.1
    again = memorization_scores(spec, 0, tmp_path, models=8)  # from the cache: the same numbers
    np.testing.assert_array_equal(scores, again)
    assert len(list((tmp_path / "memorization").glob("*.safetensors"))) == 8
    splits = prepare_splits(spec, 0, tmp_path)
    assert len(splits.forget) == 20 and len(splits.retain) == 280
    # a model trained on the retain set only: the memorised forget set is far harder than typical unseen data
    model = build_model("mlp", digits.input_shape, 10, seed=5, widths=(64,))
    fit(model, splits.retain, RECIPE, seed=5)
    forget_acc = _accuracy(outputs_of(model.eval(), splits.forget))
    random20 = prepare_splits({**spec, "scenario": {"name": "random", "options": {"count": 20}}}, 0, tmp_path)
    model_r = build_model("mlp", digits.input_shape, 10, seed=5, widths=(64,))
    fit(model_r, random20.retain, RECIPE, seed=5)
    random_acc = _accuracy(outputs_of(model_r.eval(), random20.forget))
    assert forget_acc < random_acc - 0.3, (forget_acc, random_acc)
    with pytest.raises(ParameterError, match="'cache_dir' parameter"):
        prepare_splits(spec, 0, None)


def test_the_shipped_memorized_benchmark_loads_with_its_audit_table():
    cfg = load_config(ROOT / "benchmarks" / "mnist_memorized.toml")  # its scenario is checked against the data
    assert cfg.scenarios[0].name == "memorized" and cfg.audit["models"] == 32
