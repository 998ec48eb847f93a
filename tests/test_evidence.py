"""Per-example evidence over model populations: answers computed by hand, by brute force and by scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy, norm

from unlearnkit.core.models import build_model
from unlearnkit.core.training import TrainConfig, fit
from unlearnkit.errors import ParameterError
from unlearnkit.evaluation.evidence import (
    epsilons,
    final_score,
    forget_score,
    klom,
    logit_scaled_confidence,
    margins,
    memorization,
    resolution,
    rmia,
    rmia_vs_unseen,
    ulira,
)


def test_logit_scaled_confidence_by_hand_and_its_cap():
    logits = np.log(np.array([[[0.7, 0.2, 0.1], [0.25, 0.5, 0.25]]]))
    s = logit_scaled_confidence(logits, np.array([0, 2]))
    assert s[0] == pytest.approx([math.log(0.7 / 0.3), math.log(0.25 / 0.75)])
    # a model certain of the label: Σ_{j≠y} p_j underflows to 0 and the 1e-45 caps the signal at ln(1e45) ≈ 103.6
    sure = logit_scaled_confidence(np.array([[[2000.0, 0.0]]]), np.array([0]))
    assert sure[0, 0] == pytest.approx(-math.log(1e-45), rel=1e-12)
    with pytest.raises(ParameterError, match="'labels' must lie in \\[0, 3\\)"):
        logit_scaled_confidence(logits, np.array([0, 3]))


def test_identical_populations_give_epsilon_0_and_F_1():
    pop = np.random.default_rng(0).normal(size=(32, 50))
    eps = epsilons(pop, pop.copy())
    assert np.all(eps == 0.0) and forget_score(eps, 32) == 1.0


def test_fully_separated_populations_give_epsilon_50_and_F_0():
    rng = np.random.default_rng(1)
    u, r = rng.normal(size=(32, 40)), rng.normal(size=(32, 40)) + 20.0
    eps = epsilons(u, r)
    assert np.all(eps == 50.0) and forget_score(eps, 32) == 0.0


def test_a_zero_width_population_gives_epsilon_50():
    # a method that ignores its seed, under the challenge protocol: N identical models
    r = np.random.default_rng(2).normal(size=(16, 5))
    u = np.repeat(r[:1], 16, axis=0)
    assert np.all(epsilons(u, r) == 50.0)


def test_the_fast_epsilon_equals_the_rule_by_rule_loop():
    rng = np.random.default_rng(3)
    n = 12
    u = rng.normal(size=(16, n)) * rng.uniform(0.2, 3.0, n) + rng.uniform(-2, 2, n)
    r = rng.normal(size=(20, n)) * rng.uniform(0.2, 3.0, n)  # unequal model counts, widths and shifts
    fast, loop = epsilons(u, r), epsilons(u, r, method="loop")
    assert np.max(np.abs(fast - loop)) <= 1e-9
    assert fast.min() > 0 and fast.max() < 50  # the case exercises the rules, not only the shortcuts


def test_forget_score_on_seeded_gaussians_is_pinned_and_small_even_for_one_distribution():
    rng = np.random.default_rng(4)
    same = forget_score(epsilons(rng.normal(size=(32, 400)), rng.normal(size=(32, 400))), 32)
    shifted = forget_score(epsilons(rng.normal(size=(32, 400)), rng.normal(size=(32, 400)) + 1.0), 32)
    # measured: two draws of one Gaussian score F = 0.18 at N = 32 (each ε comes from few samples);
    # a one-standard-deviation shift 0.06
    assert same == pytest.approx(0.1766, abs=5e-4)
    assert shifted == pytest.approx(0.0603, abs=5e-4)
    assert resolution(32) == 4.0 and resolution(64) == 5.0


def test_forget_score_buckets_by_hand():
    # N = 32: buckets of 0.5 up to ceil(ln 31) = 4; ε 0.2 -> 1, 0.5 -> 1/2, 1.9 -> 1/8, 3.99 -> 1/128, 4 -> 0
    assert forget_score([0.2, 0.5, 1.9, 3.99, 4.0], 32) == pytest.approx((1 + 0.5 + 0.125 + 2**-7 + 0) / 5)
    assert final_score(0.5, 0.9, 1.0, 0.8, 1.0) == pytest.approx(0.36)
    with pytest.raises(ParameterError, match="'n_models' parameter must be an int >= 3"):
        forget_score([0.1], 2)


def test_ulira_matches_the_analytical_auc_of_two_gaussians():
    # equal-variance Gaussians d apart: the likelihood ratio is monotone in x and AUC = Φ(d / √2)
    rng = np.random.default_rng(5)
    d = 1.0
    u, r = rng.normal(d, 1.0, size=(64, 300)), rng.normal(0.0, 1.0, size=(64, 300))
    out = ulira(u, r)
    assert out["auc"] == pytest.approx(norm.cdf(d / math.sqrt(2)), abs=0.01)  # 0.760
    assert out["balanced_accuracy"] == pytest.approx(norm.cdf(d / 2), abs=0.01)  # LLR > 0 <=> x > d/2
    same = ulira(rng.normal(size=(64, 300)), rng.normal(size=(64, 300)))
    assert same["auc"] == pytest.approx(0.5, abs=0.02) and same["balanced_accuracy"] == pytest.approx(0.5, abs=0.02)
    assert out["pairs"] == {"unlearned": 64 * 300, "retrained": 64 * 300}


def test_ulira_leaves_the_scored_model_out():
    # one unlearned model far from every other: in its own fit it would explain itself; left out, it cannot
    rng = np.random.default_rng(6)
    r = rng.normal(size=(8, 1))
    u = np.concatenate([rng.normal(size=(7, 1)), [[6.0]]])
    loo = ulira(u, r)
    assert loo["tpr_at_fpr"]["0.01"] is None and "cannot resolve" in loo["reasons"]["0.01"]
    with pytest.raises(ParameterError, match="at least 3 models for U-LiRA"):
        ulira(u[:2], r)


def test_rmia_equals_a_brute_force_count():
    rng = np.random.default_rng(7)
    tx, tz = rng.uniform(0.01, 1, 30), rng.uniform(0.01, 1, 50)
    rx, rz = rng.uniform(0.01, 1, (5, 30)), rng.uniform(0.01, 1, (5, 50))
    a, gamma = 0.3, 1.0
    got = rmia(tx, rx, tz, rz, a=a, gamma=gamma)
    px = (1 + a) / 2 * rx.mean(0) + (1 - a) / 2
    pz = rz.mean(0)
    want = np.array([np.mean([(tx[i] / px[i]) / (tz[j] / pz[j]) > gamma for j in range(50)]) for i in range(30)])
    assert np.array_equal(got, want)
    want2 = [np.mean([(tx[i] / px[i]) / (tz[j] / pz[j]) > 2.0 for j in range(50)]) for i in range(30)]
    assert np.array_equal(rmia(tx, rx, tz, rz, gamma=2.0), want2)



def test_rmia_out_mask_averages_only_the_references_that_never_saw_each_example():
    rng = np.random.default_rng(9)
    tx, tz = rng.uniform(0.01, 1, 20), rng.uniform(0.01, 1, 40)
    rx, rz = rng.uniform(0.01, 1, (4, 20)), rng.uniform(0.01, 1, (4, 40))
    out = rng.uniform(size=(4, 20)) < 0.5
    out[rng.integers(0, 4, 20), np.arange(20)] = True  # at least one OUT reference per example
    a = 0.3
    got = rmia(tx, rx, tz, rz, a=a, out=out)
    ratio_z = tz / rz.mean(0)
    for i in range(20):
        px = (1 + a) / 2 * rx[out[:, i], i].mean() + (1 - a) / 2
        assert got[i] == np.mean(ratio_z < tx[i] / px)
    assert not np.array_equal(got, rmia(tx, rx, tz, rz, a=a))  # the mask is read
    assert np.array_equal(rmia(tx, rx, tz, rz, out=np.ones((4, 20), bool)), rmia(tx, rx, tz, rz))
    out[:, 3] = False
    with pytest.raises(ParameterError, match="example 3 has none"):
        rmia(tx, rx, tz, rz, out=out)
    with pytest.raises(ParameterError, match="shape of reference_x"):
        rmia(tx, rx, tz, rz, out=out[:, :5])


def test_rmia_vs_unseen_is_chance_for_unseen_like_samples_and_high_for_members():
    rng = np.random.default_rng(10)
    refs = 6

    def group(n, boost):  # the target is more confident than the references by `boost` on members
        r = rng.uniform(0.2, 0.8, (refs, n))
        t = np.clip(r.mean(0) * boost * rng.uniform(0.9, 1.1, n), 0, 1)
        return t, r

    groups = {"forget": group(400, 1.0), "unseen": group(400, 1.0), "population": group(400, 1.0),
              "members": group(400, 1.6)}  # fmt: skip
    res = rmia_vs_unseen({k: v[0] for k, v in groups.items()}, {k: v[1] for k, v in groups.items()}, {})
    assert abs(res["auc"] - 0.5) < 0.06 and res["members_auc"] > 0.95 and res["references"] == refs
    assert res["n"] == {"forget": 400, "unseen": 400, "members": 400, "population": 400}
    kept = {**groups, "forget": group(400, 1.6)}  # a forget set the model still holds
    res = rmia_vs_unseen({k: v[0] for k, v in kept.items()}, {k: v[1] for k, v in kept.items()}, {})
    assert res["auc"] > 0.95
    with pytest.raises(ParameterError, match="missing \\['population'\\]"):
        rmia_vs_unseen({"forget": np.ones(3), "unseen": np.ones(3)},
                       {"forget": np.ones((1, 3)), "unseen": np.ones((1, 3))}, {})  # fmt: skip

def test_klom_equals_scipy_entropy_on_the_same_histograms():
    rng = np.random.default_rng(8)
    u, r = rng.normal(0.5, 1.0, size=(40, 25)), rng.normal(0.0, 1.5, size=(50, 25))
    got = klom(u, r)
    for i in range(25):
        edges = np.linspace(min(u[:, i].min(), r[:, i].min()), max(u[:, i].max(), r[:, i].max()), 21)
        pu = np.histogram(u[:, i], edges)[0] / 40
        pr = np.histogram(r[:, i], edges)[0] / 50
        pr = np.where((pu > 0) & (pr < 1e-5), 1e-5, pr)
        assert got[i] == pytest.approx(entropy(pu, pr), abs=1e-12)
    assert np.all(klom(u, u) == 0.0)


def test_margins_clip_at_100():
    z = np.array([[[300.0, 0.0, 0.0], [1.0, 2.0, 0.0]]])
    m = margins(z, np.array([0, 1]))
    assert m[0, 0] == 100.0 and m[0, 1] == pytest.approx(2.0 - np.logaddexp(1.0, 0.0))


def test_memorization_of_a_flipped_label_is_near_1_and_of_a_typical_sample_near_0(digits, digits_split):
    # K models on random halves of a 300-image subset of digits: a flipped label is only ever "right" when
    # trained on; a typical image is right either way
    train = digits_split.train.subset(torch.arange(300), "train")
    x, y = train.tensors()
    y = y.clone()
    flipped = 7
    y[flipped] = (y[flipped] + 5) % 10
    rng = np.random.default_rng(9)
    k = 10
    trained = np.zeros((k, 300), dtype=bool)
    correct = np.zeros((k, 300), dtype=bool)
    for m in range(k):
        half = rng.permutation(300)[:150]
        trained[m, half] = True
        model = build_model("mlp", digits.input_shape, 10, seed=m, widths=(64,))
        fit(model, train.__class__.of(x[half], y[half], "half"), TrainConfig(epochs=40, lr=0.05, batch_size=32),
            seed=m)  # fmt: skip
        with torch.no_grad():
            correct[m] = (model.eval()(x).argmax(1) == y).numpy()
    mem = memorization(correct, trained)
    assert mem[flipped] > 0.8  # measured 1.0
    typical = np.nanmedian(mem)
    assert abs(typical) < 0.1  # measured 0.0
    assert np.isnan(memorization(correct[:, :1] | True, np.ones((k, 1), dtype=bool))[0])
