"""Linear filtration (004) against its formulas on hand-sized matrices, and on a trained model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unlearnkit import ForgetRequest, ParameterError, Splits, collect, evaluate, make_method
from unlearnkit.methods.filtration import IllConditionedError, choose_z, class_means, filtration_matrix


def _a(k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(k, k, generator=g, dtype=torch.float64) + 3 * torch.eye(k, dtype=torch.float64)


@pytest.mark.parametrize("how", ["naive", "normalization", "randomization", "zeroing"])
@pytest.mark.parametrize("forget", [[0], [2], [1, 3]])
def test_filtration_maps_columns_of_a_to_columns_of_b(how, forget):
    a = _a()
    z = choose_z(a, forget, how, torch.Generator().manual_seed(1))
    f, cond = filtration_matrix(a, forget, z)
    keep = [i for i in range(4) if i not in forget]
    b = a[keep].clone()
    for idx, c in enumerate(forget):
        b[:, c] = z[:, idx]
    assert f.shape == (4 - len(forget), 4)
    assert torch.allclose(f @ a, b, atol=1e-10)  # F_z a_j = column j of B_z
    assert cond == pytest.approx(float(torch.linalg.cond(a)))


def test_naive_is_deleting_the_rows():
    a = _a()
    f, _ = filtration_matrix(a, [1], choose_z(a, [1], "naive"))
    expected = torch.eye(4, dtype=torch.float64)[[0, 2, 3]]  # π
    assert torch.allclose(f, expected, atol=1e-10)


def test_normalization_matches_the_papers_formula():
    # 004 §4.1 with C = {0}: z = π(a0) - 1/(k-1) Σ_i (a0)_i + 1/(k-1)^2 Σ_{i,j>=1} (a_j)_i
    a, k = _a(5, seed=3), 5
    z = choose_z(a, [0], "normalization")[:, 0]
    a0 = a[:, 0]
    paper = a0[1:] - a0[1:].sum() / (k - 1) + a[1:, 1:].sum() / (k - 1) ** 2
    assert torch.allclose(z, paper, atol=1e-12)
    assert float(z.mean()) == pytest.approx(float(a[1:, 1:].mean()))


def test_class_means():
    logits = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 5.0]])
    labels = torch.tensor([0, 0, 1])
    assert torch.allclose(class_means(logits, labels, 2), torch.tensor([[2.0, 0.0], [1.0, 5.0]], dtype=torch.float64))
    with pytest.raises(ParameterError, match="class 2 has none"):
        class_means(torch.zeros(3, 3), labels, 3)
    with pytest.raises(ParameterError, match="one logit per class"):
        class_means(logits, labels, 3)


def test_ill_conditioned_a_is_refused_unless_regularised():
    a = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0 + 1e-12, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    z = choose_z(a, [2], "zeroing")
    with pytest.raises(IllConditionedError, match=r"condition number .*regularization"):
        filtration_matrix(a, [2], z)
    f, _ = filtration_matrix(a, [2], z, regularization=1e-3)
    assert torch.isfinite(f).all()


# -- on a trained model ------------------------------------------------------------


def test_affine_absorption_equals_filtering_the_logits(trained_mlp, class_splits):
    out = make_method("filtration", keep_outputs=False).unlearn(trained_mlp, class_splits, seed=0)
    x = class_splits.test.x[:64]
    with torch.no_grad():
        logits = trained_mlp(x).double()
        filtered = out.model(x).double()
    # rebuild F_z the same way (same seed -> same samples) and apply it to the old logits
    d = out.diagnostics
    assert d["outputs"] == 9 and d["forward_passes"] == sum(d["samples_per_class"])
    src = class_splits.holdout
    g = torch.Generator().manual_seed(0)
    picks = [torch.nonzero(src.labels == j).flatten() for j in range(10)]
    picks = [p[torch.randperm(p.numel(), generator=g)[:100]] for p in picks]
    sample = src.subset(torch.cat(picks))
    with torch.no_grad():
        a = class_means(trained_mlp(sample.x[sample.indices]), sample.labels, 10)
    f, _ = filtration_matrix(a, [3], choose_z(a, [3], "normalization"))
    assert torch.allclose(filtered, logits @ f.T, atol=1e-4)


def test_naive_filtration_keeps_remaining_logits_and_masks_the_class(trained_mlp, class_splits):
    out = make_method("filtration", z="naive").unlearn(trained_mlp, class_splits, seed=0)
    x = class_splits.test.x[:50]
    with torch.no_grad():
        before, after = trained_mlp(x), out.model(x)
    keep = [c for c in range(10) if c != 3]
    assert torch.allclose(after[:, keep], before[:, keep], atol=1e-5)
    assert bool(torch.isneginf(after[:, 3]).all())
    assert out.model.head.out_features == 10 and trained_mlp.head.out_features == 10


@pytest.mark.parametrize("how", ["naive", "normalization", "randomization", "zeroing"])
def test_never_predicts_the_forgotten_class(trained_mlp, class_splits, how):
    for keep in (True, False):
        out = make_method("filtration", z=how, keep_outputs=keep).unlearn(trained_mlp, class_splits, seed=0)
        names = ["forget_accuracy", "forgotten_class_test_accuracy", "test_accuracy"]
        m = evaluate(collect(out.model, class_splits), names)
        assert m["forget_accuracy"] == 0.0 and m["forgotten_class_test_accuracy"] == 0.0
        assert m["test_accuracy"] > 0.8


def test_label_changes_vs_naive(trained_mlp, class_splits):
    """004 Table 6: normalization changed no predicted label on the remaining classes.

    Measured here (digits MLP, class 3, 100 samples per class): 0 changes for
    normalization on the test samples of the remaining classes.
    """
    test = class_splits.test
    keep = [c for c in range(10) if c != 3]
    x = test.x[torch.isin(test.y, torch.tensor(keep))]
    preds = {}
    for how in ("naive", "normalization"):
        model = make_method("filtration", z=how).unlearn(trained_mlp, class_splits, seed=0).model
        with torch.no_grad():
            preds[how] = model(x).argmax(1)
    assert int((preds["naive"] != preds["normalization"]).sum()) == 0


def test_filtration_uses_user_supplied_samples(trained_mlp, class_splits):
    from unlearnkit import View

    extra = View(class_splits.holdout.x, class_splits.holdout.y, class_splits.holdout.indices[:200], "filtration")
    splits = class_splits.with_extras(filtration=extra)
    out = make_method("filtration", samples_per_class=5).unlearn(trained_mlp, splits)
    assert "extra" in out.samples_seen and sum(out.diagnostics["samples_per_class"]) <= 50


def test_refuses_sample_requests(trained_mlp, sample_splits):
    from unlearnkit import UnsupportedRequestError

    with pytest.raises(UnsupportedRequestError, match="does not support samples"):
        make_method("filtration").unlearn(trained_mlp, sample_splits)


def test_user_model_without_bias(class_splits):
    user = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10, bias=False))
    out = make_method("filtration").unlearn(user, class_splits, seed=0)
    assert isinstance(out.model[3], nn.Linear) and out.model[3].bias is not None
    assert user[3].bias is None


def test_multi_class_request(trained_mlp, digits_split):
    s = Splits.from_request(digits_split, ForgetRequest.from_classes([1, 7]), seed=0)
    out = make_method("filtration", keep_outputs=False).unlearn(trained_mlp, s, seed=0)
    assert out.model.head.out_features == 8
    m = evaluate(collect(out.model, s), ["forget_accuracy", "test_accuracy"])
    assert m["forget_accuracy"] == 0.0 and m["test_accuracy"] > 0.8
