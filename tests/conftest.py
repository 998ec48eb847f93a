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
