"""The Python API keeps the README's promise: a user's bad input is one UnlearnkitError line, never a crash deep
inside a method or a silent NaN; a user's own module works whatever order it registers its layers in."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from unlearnkit import ForgetRequest, Splits, TrainConfig, UnlearnkitError, View, collect, evaluate, fit, make_method


@pytest.fixture(scope="module")
def data(digits):
    x, y = digits.train_x.flatten(1)[:900], digits.train_y[:900]
    return x, y


def _mlp(outputs: int = 10, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, outputs)).to(dtype)


def _splits(x, y, **kw):
    return Splits.from_tensors(x[:600], y[:600], ForgetRequest.from_indices(range(30)), x_holdout=x[600:750],
                               y_holdout=y[600:750], x_test=x[750:], y_test=y[750:], **kw)  # fmt: skip


def _one_line(exc: pytest.ExceptionInfo, match: str) -> None:
    text = str(exc.value)
    assert "\n" not in text and match in text, text


def test_nan_or_inf_inputs_are_refused_not_trained_into_nan_weights(data):
    x, y = data
    bad = x.clone()
    bad[3, 5] = float("nan")
    bad[7, 1] = float("inf")
    with pytest.raises(UnlearnkitError) as exc:
        make_method("neggrad_plus").unlearn(_mlp(), _splits(bad, y), seed=0)
    _one_line(exc, "The 'splits' train inputs must be finite; 2 of 600 rows hold NaN or inf")


def test_labels_outside_the_models_outputs_are_refused(data):
    x, y = data
    with pytest.raises(UnlearnkitError) as exc:  # a model with fewer outputs than classes
        make_method("finetune").unlearn(_mlp(outputs=5), _splits(x, y), seed=0)
    _one_line(exc, "must have one output per class (10); it has 5")
    y_bad = y.clone()
    y_bad[0] = 12
    with pytest.raises(UnlearnkitError) as exc:  # a label beyond k
        make_method("finetune").unlearn(_mlp(), _splits(x, y_bad, num_classes=10), seed=0)
    _one_line(exc, "train labels must lie in [0, 10) for 10 classes; got 0..12")


INT64_FOR_AN_IMAGE_MODEL = "The 'splits' train inputs must be floating point (e.g. x.float() / 255) for a Sequential"


def test_integer_inputs_float_labels_and_an_empty_holdout_are_refused(data):
    x, y = data
    with pytest.raises(UnlearnkitError) as exc:  # int64 are token ids: refused for an image model when it unlearns
        make_method("finetune").unlearn(_mlp(), _splits((x * 16).long(), y), seed=0)
    _one_line(exc, INT64_FOR_AN_IMAGE_MODEL)
    with pytest.raises(UnlearnkitError) as exc:  # other integer pixels are refused when the splits are made
        _splits((x * 16).to(torch.int32), y)
    _one_line(exc, "The 'x_train' parameter must be floating-point inputs (e.g. x.float() / 255) or int64 token ids")
    splits = _splits(x, y)
    ints = dataclasses.replace(splits, train=View.of((x[:600] * 16).long(), y[:600], "train"))
    with pytest.raises(UnlearnkitError) as exc:  # and when a Splits is built another way
        make_method("finetune").unlearn(_mlp(), ints, seed=0)
    _one_line(exc, INT64_FOR_AN_IMAGE_MODEL)
    with pytest.raises(UnlearnkitError) as exc:
        _splits(x, y.float())
    _one_line(exc, "The 'y_train' parameter must be a 1-D integer tensor of labels; got torch.float32")
    with pytest.raises(UnlearnkitError) as exc:
        Splits.from_tensors(x[:600], y[:600], ForgetRequest.from_indices([1]), x_holdout=x[:0], y_holdout=y[:0])
    _one_line(exc, "The 'x_holdout' parameter must hold at least one sample")


@pytest.mark.parametrize("seed", [None, -1, 1.5, True, 2**40])
def test_a_seed_is_a_non_negative_int(data, seed):
    x, y = data
    with pytest.raises(UnlearnkitError) as exc:
        make_method("finetune").unlearn(_mlp(), _splits(x, y), seed=seed)
    _one_line(exc, "The 'seed' parameter must be an int in [0, 4294967295]")


def test_a_float64_model_works_with_float64_data_and_is_refused_with_float32(data):
    x, y = data
    with pytest.raises(UnlearnkitError) as exc:
        make_method("finetune").unlearn(_mlp(dtype=torch.float64), _splits(x, y), seed=0)
    _one_line(exc, "weights are torch.float64 but the inputs are torch.float32")
    model = _mlp(dtype=torch.float64)
    splits = _splits(x.double(), y)
    out = make_method("neggrad_plus").unlearn(model, splits, seed=0)
    assert all(p.dtype == torch.float64 and bool(torch.isfinite(p).all()) for p in out.model.parameters())
    assert evaluate(collect(out.model, splits))["forget_accuracy"] is not None


class HeadFirst(nn.Module):
    """Registers its output layer first and applies it last: registration order is not application order."""

    def __init__(self) -> None:
        super().__init__()
        self.out = nn.Linear(32, 10)
        self.body = nn.Linear(64, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.body(x.flatten(1))))


def test_filtration_finds_the_head_a_users_module_applies_last(data):
    from unlearnkit.core.models import find_head

    x, y = data
    torch.manual_seed(0)
    model = HeadFirst()
    fit(model, View.of(x[:600], y[:600]), TrainConfig(epochs=15, lr=0.1), seed=0)
    assert find_head(model)[0] == "body"  # what registration order alone gives
    assert find_head(model, x[:1])[0] == "out"  # what the forward pass shows
    splits = Splits.from_tensors(x[:600], y[:600], ForgetRequest.from_classes([3]), x_holdout=x[600:750],
                                 y_holdout=y[600:750], x_test=x[750:], y_test=y[750:])  # fmt: skip
    out = make_method("filtration", samples_per_class=10).unlearn(model, splits, seed=0)
    m = evaluate(collect(out.model, splits))
    assert m["forget_accuracy"] == 0.0 and m["test_accuracy"] > 0.8
