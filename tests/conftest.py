"""Shared fixtures: tiny real data (scikit-learn digits) and a trained MLP."""

from __future__ import annotations

import pytest
import torch

from unlearnkit import ForgetRequest, Splits, TrainConfig, build_model, fit, load_dataset, split_dataset

torch.set_num_threads(2)
RECIPE = TrainConfig(epochs=8, lr=0.05, batch_size=64)


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_split(digits):
    return split_dataset(digits, seed=0)


@pytest.fixture(scope="session")
def class_splits(digits_split):
    return Splits.from_request(digits_split, ForgetRequest.from_classes([3]), seed=0)


@pytest.fixture(scope="session")
def sample_splits(digits_split):
    return Splits.from_request(digits_split, ForgetRequest.random_fraction(0.1), seed=0)


@pytest.fixture(scope="session")
def feature_splits(digits_split):
    """000's four datasets on digits: class 0 stamped with the tile feature."""
    from unlearnkit.data.scenarios import make_scenario

    return make_scenario("backdoor", transform="tile", target_class=0).prepare(digits_split, seed=0)


@pytest.fixture(scope="session")
def _trained_state(digits, digits_split):
    model = build_model("mlp", digits.input_shape, digits.num_classes, seed=0, widths=(64,))
    fit(model, digits_split.train, RECIPE, seed=0)
    return model.state_dict()


@pytest.fixture()
def trained_mlp(digits, _trained_state):
    """A fresh copy of an MLP trained on digits (eval mode); tests may not share mutations."""
    model = build_model("mlp", digits.input_shape, digits.num_classes, seed=0, widths=(64,))
    model.load_state_dict(_trained_state)
    return model.eval()


PREPARE_RECIPE = TrainConfig(epochs=2, lr=0.05, batch_size=64)


@pytest.fixture(scope="session")
def _prepared_cache():
    return {}


@pytest.fixture()
def prepare(digits, digits_split, sample_splits, _trained_state, _prepared_cache):
    """``prepare(name)``: a fresh model that method ``name`` can unlearn (prepared at training time if it needs it).

    SISA ensembles (2 shards x 2 slices) and SMU models (candidates = the
    sample request's forget set plus 20 more) are built once per session from
    the same MLP architecture; plain methods get a copy of the trained MLP.
    """
    import copy

    from unlearnkit.methods import METHODS, train_sisa, train_smu

    def make(name: str):
        if "prepared" not in METHODS.get(name).needs:
            model = build_model("mlp", digits.input_shape, digits.num_classes, seed=0, widths=(64,))
            model.load_state_dict(_trained_state)
            return model.eval()
        if name not in _prepared_cache:
            base = build_model("mlp", digits.input_shape, digits.num_classes, seed=0, widths=(64,))
            train = digits_split.train
            if name == "smu":
                pos = torch.isin(train.indices, sample_splits.forget.indices).nonzero().flatten()
                extra = torch.arange(len(train))[~torch.isin(torch.arange(len(train)), pos)][:20]
                _prepared_cache[name] = train_smu(base, train, PREPARE_RECIPE, candidates=torch.cat([pos, extra]))
            else:
                eps = 16.0 if name == "sisa_dp" else None
                _prepared_cache[name] = train_sisa(base, train, PREPARE_RECIPE, shards=2, slices=2, dp_epsilon=eps)
        return copy.deepcopy(_prepared_cache[name]).eval()

    return make
