"""Exact oracles: each method against an independent re-computation."""

import copy
import math

import torch
import torch.nn.functional as F

from conftest import RECIPE
from unlearnkit import TrainConfig, build_model, fit, make_method
from unlearnkit.core.models import init_weights


def _equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_retrain_equals_true_retraining(trained_mlp, class_splits, digits):
    out = make_method("retrain").unlearn(trained_mlp, class_splits, seed=0, recipe=RECIPE)
    fresh = build_model("mlp", digits.input_shape, 10, seed=0, widths=(64,))
    fit(fresh, class_splits.retain, RECIPE, seed=0)
    assert _equal(out.model, fresh)
    assert out.samples_seen == {"retain": RECIPE.epochs * len(class_splits.retain)}


def test_retrain_of_user_model_reinitialises_with_seed(class_splits):
    user = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    out = make_method("retrain").unlearn(user, class_splits, seed=5, recipe=TrainConfig(epochs=1))
    ref = init_weights(copy.deepcopy(user), 5)
    fit(ref, class_splits.retain, TrainConfig(epochs=1), seed=5)
    assert _equal(out.model, ref)


def test_finetune_equals_fit_on_retain(trained_mlp, sample_splits):
    out = make_method("finetune", epochs=2, lr=0.01).unlearn(trained_mlp, sample_splits, seed=1)
    ref = copy.deepcopy(trained_mlp)
    fit(ref, sample_splits.retain, TrainConfig(epochs=2, lr=0.01, batch_size=128), seed=1)
    assert _equal(out.model, ref)


def _one_step(model, loss_fn, lr):
    ref = copy.deepcopy(model).train()
    ref.zero_grad()
    loss_fn(ref).backward()
    with torch.no_grad():
        for p in ref.parameters():
            p -= lr * p.grad
    return ref


def test_neggrad_is_one_ascent_step(trained_mlp, class_splits):
    xf, yf = class_splits.forget.tensors()
    out = make_method("neggrad", epochs=1, lr=0.01, momentum=0.0, batch_size=len(xf), max_grad_norm=None,
                      forget_loss_cap=None).unlearn(trained_mlp, class_splits, seed=0)  # fmt: skip
    ref = _one_step(trained_mlp, lambda m: -F.cross_entropy(m(xf), yf), 0.01)
    for a, b in zip(out.model.parameters(), ref.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_neggrad_plus_is_one_weighted_step_with_capped_forget_loss(trained_mlp, class_splits):
    xf, yf = class_splits.forget.tensors()
    xr, yr = class_splits.retain.tensors()
    beta, lr = 0.7, 0.05
    out = make_method("neggrad_plus", epochs=1, lr=lr, beta=beta, momentum=0.0, batch_size=len(xf),
                      retain_batch_size=len(xr), max_grad_norm=None,
                      forget_loss_cap="chance").unlearn(trained_mlp, class_splits, seed=0)  # fmt: skip

    def loss(m):
        capped = F.cross_entropy(m(xf), yf, reduction="none").clamp(max=math.log(10)).mean()
        return beta * F.cross_entropy(m(xr), yr) - (1 - beta) * capped

    ref = _one_step(trained_mlp, loss, lr)
    for a, b in zip(out.model.parameters(), ref.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert out.samples_seen == {"forget": len(xf), "retain": len(xr)} and out.steps == 1


def test_forget_loss_cap_stops_ascent_on_forgotten_samples(trained_mlp, class_splits):
    """With a cap below every forget loss, ascent has no gradient: only retain descent moves."""
    capped = make_method("neggrad_plus", epochs=1, beta=0.0, forget_loss_cap=1e-9, momentum=0.0,
                         max_grad_norm=None).unlearn(trained_mlp, class_splits, seed=0)  # fmt: skip
    assert _equal(capped.model, trained_mlp)
