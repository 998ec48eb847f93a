"""Forsaken (003) as the paper writes it: eq. 5's summed, ω-weighted L1 penalty and §V-F's poison target."""

from __future__ import annotations

import pytest
import torch

from unlearnkit.core.gradients import per_sample_mean, trainable
from unlearnkit.core.models import build_model
from unlearnkit.core.training import TrainConfig, fit
from unlearnkit.data.scenarios import make_scenario
from unlearnkit.errors import DataError
from unlearnkit.evaluation.outputs import outputs_of
from unlearnkit.evaluation.scores import accuracy
from unlearnkit.methods import make_method
from unlearnkit.methods.forsaken import MOVED


def _change(before: torch.nn.Module, after: torch.nn.Module) -> torch.Tensor:
    a, b = trainable(before), trainable(after)
    return torch.cat([(b[n].detach() - a[n].detach()).abs().flatten() for n in a])


def test_a_larger_lambda_moves_fewer_parameters(trained_mlp, sample_splits):
    # measured on the digits fixture (ω on): λ = 0.03 moves 70% of the parameters (Σ|Δθ| 90),
    # λ = 0.3 moves 55% (Σ|Δθ| 4.0), λ = 100 moves none
    state = {k: v.clone() for k, v in trained_mlp.state_dict().items()}
    changes = {}
    for lam in (0.03, 0.3, 100.0):
        outcome = make_method("forsaken", lam=lam).unlearn(trained_mlp, sample_splits, seed=0)
        change = _change(trained_mlp, outcome.model)
        assert outcome.diagnostics["mask_l1"] == pytest.approx(float(change.sum()), rel=1e-6)
        assert outcome.diagnostics["moved_fraction"] == pytest.approx(float((change > MOVED).double().mean()))
        changes[lam] = change
    moved = {lam: float((c > MOVED).double().mean()) for lam, c in changes.items()}
    assert moved[0.03] > moved[0.3] + 0.1 and float(changes[0.03].sum()) > 5 * float(changes[0.3].sum()) > 0
    assert moved[100.0] == 0.0  # the penalty blocks unlearning, as 003 Table VIII reports at λ = 100
    assert all(torch.equal(v, trained_mlp.state_dict()[k]) for k, v in state.items())  # the input is never changed


def test_the_penalty_is_a_sum_over_parameters_not_a_mean(trained_mlp, sample_splits):
    # unweighted (ω = 1, eq. 4), λ = 0.1 summed over ~4,800 parameters outweighs the KL: nothing moves;
    # a mean over parameters (the old form) would make it 4,800 times weaker and let the mask move
    outcome = make_method("forsaken", lam=0.1, weighted_penalty=False).unlearn(trained_mlp, sample_splits, seed=0)
    assert outcome.diagnostics["mask_l1"] == 0.0
    free = make_method("forsaken", lam=0.1 / 4800, weighted_penalty=False).unlearn(trained_mlp, sample_splits, seed=0)
    assert free.diagnostics["moved_fraction"] > 0.3


def test_omega_steers_the_mask_away_from_parameters_the_retained_data_needs(trained_mlp, sample_splits):
    # ω_d = mean |∂CE/∂θ_d| over retained samples (eq. 6). Against ω = 1 at the same total strength
    # (λ_unweighted = λ·mean ω), the weighted mask moves less, and less of it lands where ω is large.
    omega = per_sample_mean(trained_mlp, sample_splits.retain.subset(torch.arange(300)), torch.abs).float()

    def change(weighted: bool, lam: float) -> torch.Tensor:
        outcome = make_method("forsaken", lam=lam, weighted_penalty=weighted).unlearn(
            trained_mlp, sample_splits, seed=0
        )
        return _change(trained_mlp, outcome.model)

    weighted, plain = change(True, 0.1), change(False, 0.1 * float(omega.mean()))
    relative = omega / omega.mean()

    def mean_omega_moved(c: torch.Tensor) -> float:
        return float((relative * c).sum() / c.sum())  # the |Δθ|-weighted mean ω of what moved; 1 = no preference

    # measured: Σ|Δθ| 46 with ω against 62 without; mean ω of what moved 2.17 against 2.63
    assert float(weighted.sum()) < 0.85 * float(plain.sum())
    assert mean_omega_moved(weighted) < 0.9 * mean_omega_moved(plain)


@pytest.fixture(scope="module")
def poisoned(digits, digits_split):
    """An MLP trained on digits with 60% of class 5 relabelled 3; the poison scenario's splits."""
    splits = make_scenario("poison", share=0.6).prepare(digits_split, seed=0)
    model = build_model("mlp", digits.input_shape, digits.num_classes, seed=0, widths=(64,))
    fit(model, splits.train, TrainConfig(epochs=100, lr=0.05, batch_size=64), seed=0)  # memorises the poison
    return model.eval(), splits


def test_poison_target_corrects_the_flipped_labels_rather_than_reinforcing_them(poisoned):
    model, splits = poisoned
    true = splits.extras["forget_true"]
    assert torch.equal(true.indices, splits.forget.indices) and bool((true.y[true.indices] == 5).all())
    assert bool((splits.forget.tensors()[1] == 3).all())

    def on_true_labels(m: torch.nn.Module) -> float:
        return accuracy(outputs_of(m, true))

    before = on_true_labels(model)
    paper = make_method("forsaken", lam=0.0).unlearn(model, splits, seed=0)
    own = make_method("forsaken", lam=0.0, pull_toward="trained_label").unlearn(model, splits, seed=0)
    assert paper.diagnostics["pulled_toward"] == "true_label"
    assert own.diagnostics["pulled_toward"] == "trained_label"
    # measured: the flipped samples are predicted as their true class 5 in 4% before,
    # 100% after the paper's target, 0% after the training-label target
    assert before < 0.2
    assert on_true_labels(paper.model) > 0.8
    assert on_true_labels(own.model) <= before


def test_a_forget_true_view_that_is_not_the_forget_set_is_refused(poisoned):
    model, splits = poisoned
    true = splits.extras["forget_true"]
    wrong = splits.with_extras(forget_true=true.subset(torch.arange(len(true) - 1), "forget_true"))
    with pytest.raises(DataError, match="'forget_true' must hold the forget set's rows"):
        make_method("forsaken").unlearn(model, wrong, seed=0)
