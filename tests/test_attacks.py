"""Membership oracles and 003's forgetting rates: hand-made outputs, and a shadow oracle on real data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from unlearnkit.errors import DataError, ParameterError, UnknownNameError
from unlearnkit.evaluation.attacks import (
    ATTACKS,
    catastrophic_forgetting_rate,
    confidence_features,
    forgetting_rate,
    make_attack,
    oracle_quality,
    roc_summary,
    sample_scores,
    train_shadow_oracle,
)
from unlearnkit.evaluation.outputs import Outputs


def _outputs(probs: list[list[float]], labels: list[int]) -> Outputs:
    return Outputs(torch.log(torch.tensor(probs, dtype=torch.float64)).float(), torch.tensor(labels))


def test_sample_scores_on_hand_made_probabilities():
    o = _outputs([[0.7, 0.2, 0.1], [0.25, 0.5, 0.25], [1 / 3, 1 / 3, 1 / 3]], [0, 0, 2])
    assert sample_scores(o, "confidence") == pytest.approx([0.7, 0.25, 1 / 3], abs=1e-6)
    assert sample_scores(o, "loss") == pytest.approx([math.log(0.7), math.log(0.25), math.log(1 / 3)], abs=1e-6)
    h0 = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    assert sample_scores(o, "entropy")[0] == pytest.approx(-h0, abs=1e-6)
    # modified entropy (Song & Mittal): -(1-p_y) log p_y - sum_{i != y} p_i log(1 - p_i)
    me0 = -(0.3 * math.log(0.7)) - (0.2 * math.log(0.8) + 0.1 * math.log(0.9))
    assert sample_scores(o, "modified_entropy")[0] == pytest.approx(-me0, abs=1e-6)
    feats = confidence_features(o, with_loss=True)
    assert feats.shape == (3, 5) and feats[0, :3] == pytest.approx([0.7, 0.2, 0.1], abs=1e-6)
    assert feats[1, 3] == pytest.approx(0.25, abs=1e-6) and feats[1, 4] == pytest.approx(-math.log(0.25), abs=1e-6)


def test_threshold_attack_separates_and_reports_roc():
    members = _outputs([[0.95, 0.05]] * 30 + [[0.6, 0.4]] * 10, [0] * 40)
    nonmembers = _outputs([[0.55, 0.45]] * 30 + [[0.9, 0.1]] * 10, [0] * 40)
    attack = make_attack("threshold_confidence").fit(members, nonmembers)
    # thresholds 0.6 and 0.95 both reach balanced accuracy 0.875; the first (0.6) is kept
    assert attack.threshold == pytest.approx(0.6, abs=1e-6)
    assert attack.predict(members).mean() == 1.0 and attack.predict(nonmembers).mean() == 0.25
    q = oracle_quality(attack, members, nonmembers)
    assert q["accuracy"] == 0.875 and q["precision"] == 0.8 and q["recall"] == 1.0
    roc = roc_summary(attack.score(members), attack.score(nonmembers))
    assert roc["auc"] == pytest.approx(1500 / 1600)  # member beats non-member in 1,500 of 1,600 pairs
    assert roc["tpr_at_fpr"] == {"0.01": None, "0.001": None}  # 40 non-members resolve 2.5% at best
    assert "40 non-members cannot resolve an FPR of 0.01" in roc["reasons"]["0.01"]
    many = roc_summary(np.linspace(0.5, 1.5, 200), np.linspace(0.0, 1.0, 2000))
    assert many["tpr_at_fpr"]["0.01"] == pytest.approx(0.5, abs=0.02) and many["tpr_at_fpr"]["0.001"] is not None


def test_forgetting_rates_follow_the_paper():
    # 003's worked example: 100 forget samples, BF = 10 before, AF = 90 after: FR = (90 - 10) / 90
    before = np.array([True] * 90 + [False] * 10)
    after = np.array([False] * 90 + [True] * 10)
    fr = forgetting_rate(before, after)
    assert (fr["BT"], fr["BF"], fr["AF"]) == (90, 10, 90) and fr["fr"] == pytest.approx(80 / 90)
    none = forgetting_rate(np.zeros(5, bool), np.zeros(5, bool))
    assert none["fr"] is None and "BT = 0" in none["reason"]  # undefined, not 0
    assert forgetting_rate(before, before)["fr"] == 0.0
    cfr = catastrophic_forgetting_rate(np.array([True, True, True, False]), np.array([True, False, False, False]))
    assert (cfr["BT_train"], cfr["AT_train"], cfr["cfr"]) == (3, 1, pytest.approx(2 / 3))
    assert catastrophic_forgetting_rate(np.zeros(3, bool), np.ones(3, bool))["cfr"] is None
    with pytest.raises(ParameterError, match="same samples"):
        forgetting_rate(before, after[:5])


def test_registry_and_validation():
    assert set(ATTACKS.names()) == {
        "threshold_loss", "threshold_confidence", "threshold_entropy", "threshold_modified_entropy",
        "shadow", "shadow_loss", "shadow_whitebox",
    }  # fmt: skip
    with pytest.raises(UnknownNameError, match="attack"):
        make_attack("shadoww")
    with pytest.raises(ParameterError, match="'classifier' parameter of attack 'shadow' must be one of"):
        make_attack("shadow", classifier="svm")
    with pytest.raises(ParameterError, match="must be fitted before it scores"):
        make_attack("threshold_loss").predict(_outputs([[0.5, 0.5]], [0]))
    with pytest.raises(ParameterError, match="needs members and non-members"):
        make_attack("threshold_loss").fit(_outputs([[0.5, 0.5]], [0]), _outputs([[0.5, 0.5]], [0]).select(
            torch.zeros(1, dtype=torch.bool)))  # fmt: skip


def _overfit_fashion(width: int):
    """An MLP that memorises 500 Fashion-MNIST images, its split, recipe and builder (skips if not installed)."""
    pytest.importorskip("xgboost")
    from unlearnkit import TrainConfig, build_model, fit, load_dataset, split_dataset

    try:
        ds = load_dataset("fashion_mnist")
    except DataError as exc:
        pytest.skip(f"Fashion-MNIST is not installed: {exc}")
    split = split_dataset(ds, seed=0, holdout_fraction=0.1, train_size=500)
    recipe = TrainConfig(epochs=60, lr=0.05, batch_size=64)

    def build(seed: int) -> torch.nn.Module:
        return build_model("mlp", ds.input_shape, 10, seed=seed, widths=(width,))

    target = build(0)
    fit(target, split.train, recipe, seed=0)
    return split, recipe, build, target


def test_shadow_oracle_beats_chance_on_an_overfit_model():
    from unlearnkit.evaluation.outputs import outputs_of

    split, recipe, build, target = _overfit_fashion(256)
    members = outputs_of(target, split.train)
    nonmembers = outputs_of(target, split.test.subset(torch.arange(500)))
    # the shadow never sees the target's data: it trains on half of 1,000 holdout samples
    oracle, facts = train_shadow_oracle(build, recipe, split.holdout, seed=1, pool_size=1000)
    assert facts["shadow_members"] == 500 and facts["shadow_train_accuracy"] == 1.0
    quality = oracle_quality(oracle, members, nonmembers)
    # measured: accuracy 0.654 (precision 0.63, recall 0.74), AUC 0.705 with XGBoost
    assert quality["accuracy"] > 0.60
    assert roc_summary(oracle.score(members), oracle.score(nonmembers))["auc"] > 0.65


def test_macforget_client_update_becomes_the_forsaken_step_under_plain_sgd():
    from unlearnkit.methods.forsaken import federated_update

    g = torch.Generator().manual_seed(0)
    theta = {"w": torch.randn(3, 4, generator=g), "b": torch.randn(4, generator=g)}
    mu = {"w": torch.randn(3, 4, generator=g), "b": torch.randn(4, generator=g)}
    n0, eta = 32, 0.05
    update = federated_update(mu, client_batch_size=n0, server_lr=eta)
    params = [torch.nn.Parameter(theta[k].clone()) for k in ("w", "b")]
    opt = torch.optim.SGD(params, lr=eta)
    for p, k in zip(params, ("w", "b"), strict=True):
        p.grad = update[k] / n0  # the server averages the client's summed update over its batch
    opt.step()
    for p, k in zip(params, ("w", "b"), strict=True):
        assert torch.allclose(p.detach(), theta[k] - mu[k], atol=1e-6)


def test_forsaken_pulls_forget_posteriors_toward_non_member_posteriors(trained_mlp, sample_splits):
    from unlearnkit.evaluation.outputs import outputs_of
    from unlearnkit.methods import make_method
    from unlearnkit.methods.forsaken import class_posteriors

    p = class_posteriors(outputs_of(trained_mlp, sample_splits.holdout).logits, 10)
    assert p.shape == (10, 10) and torch.allclose(p.sum(1), torch.ones(10, dtype=torch.float64))

    def kl(model):
        out = outputs_of(model, sample_splits.forget)
        logq = torch.log_softmax(out.logits.double(), 1)
        target = p[out.labels]
        return float((target * (torch.log(target.clamp_min(1e-12)) - logq)).sum(1).mean())

    outcome = make_method("forsaken", iterations=5, lam=0.0).unlearn(trained_mlp, sample_splits, seed=0)
    history = outcome.diagnostics["loss_history"]
    # measured on the digits fixture: KL 0.266 before, 0.079 after 5 iterations without the penalty
    assert kl(outcome.model) < 0.5 * kl(trained_mlp)
    assert history[-1] < history[0]
    assert outcome.samples_seen["retain"] == 100 and outcome.samples_seen["holdout"] == len(sample_splits.holdout)


def test_forsaken_refuses_class_requests(trained_mlp, class_splits):
    from unlearnkit.errors import UnsupportedRequestError
    from unlearnkit.methods import make_method

    with pytest.raises(UnsupportedRequestError, match="'forsaken' does not support classes requests"):
        make_method("forsaken").unlearn(trained_mlp, class_splits, seed=0)


def test_gradient_norms_are_per_sample_and_per_layer(trained_mlp, sample_splits):
    from unlearnkit.core.gradients import per_sample_grad_norms, trainable
    from unlearnkit.evaluation.outputs import outputs_of

    view = sample_splits.forget.subset(torch.arange(5))
    norms = per_sample_grad_norms(trained_mlp, view)
    assert norms.shape == (5, len(trainable(trained_mlp)))
    x, y = view.tensors()
    trained_mlp.zero_grad()
    torch.nn.functional.cross_entropy(trained_mlp(x[2:3]), y[2:3]).backward()  # sample 2 alone, by autograd
    want = torch.stack([p.grad.norm() for p in trainable(trained_mlp).values()])
    trained_mlp.zero_grad(set_to_none=True)
    torch.testing.assert_close(norms[2], want, rtol=1e-4, atol=1e-7)
    out = outputs_of(trained_mlp, view, white_box=True)
    torch.testing.assert_close(out.grad_norms, norms)
    assert out.select(torch.tensor([True, False, True, False, False])).grad_norms.shape == (2, norms.shape[1])
    with pytest.raises(ParameterError, match="must carry gradient norms"):
        make_attack("shadow_whitebox").fit(outputs_of(trained_mlp, view), outputs_of(trained_mlp, view))


def test_white_box_oracle_separates_members_of_an_overfit_model():
    from unlearnkit.evaluation.outputs import outputs_of

    split, recipe, build, target = _overfit_fashion(64)
    members = outputs_of(target, split.train, white_box=True)
    nonmembers = outputs_of(target, split.test.subset(torch.arange(500)), white_box=True)
    oracle, facts = train_shadow_oracle(build, recipe, split.holdout, seed=1, pool_size=1000,
                                        attack="shadow_whitebox")  # fmt: skip
    auc = roc_summary(oracle.score(members), oracle.score(nonmembers))["auc"]
    assert facts["attack"] == "shadow_whitebox" and auc > 0.65, auc


def test_attributions_are_captums_saliency_and_integrated_gradients(trained_mlp, class_splits):
    pytest.importorskip("captum")
    from unlearnkit.evaluation.attribution import attributions

    x, y = class_splits.forget.subset(torch.arange(4)).tensors()
    sal = attributions(trained_mlp, x, y, "saliency")
    xi = x.clone().requires_grad_(True)
    trained_mlp(xi).gather(1, y[:, None]).sum().backward()  # |d f_y / dx| by autograd
    torch.testing.assert_close(sal, xi.grad.abs())
    trained_mlp.zero_grad(set_to_none=True)
    ig = attributions(trained_mlp, x, y, "integrated_gradients", steps=200)
    with torch.no_grad():  # completeness: the attributions add up to f_y(x) - f_y(0)
        gap = trained_mlp(x).gather(1, y[:, None])[:, 0] - trained_mlp(torch.zeros_like(x)).gather(1, y[:, None])[:, 0]
    torch.testing.assert_close(ig.flatten(1).sum(1), gap, rtol=0.02, atol=0.02)
    with pytest.raises(ParameterError, match="'method' parameter must be one of"):
        attributions(trained_mlp, x, y, "lime")
