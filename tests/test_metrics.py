import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, recall_score

from unlearnkit import METRICS, collect, evaluate
from unlearnkit.evaluation.metrics import (
    gap,
    loss_attack_accuracy,
    mia_efficacy,
    mia_nonmembers,
)
from unlearnkit.evaluation.outputs import Collected, Outputs
from unlearnkit.evaluation.scores import accuracy, per_class_accuracy
from unlearnkit.files import dumps


def _outputs(n=200, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Outputs(torch.randn(n, k, generator=g), torch.randint(0, k, (n,), generator=g))


def test_accuracy_matches_sklearn():
    o = _outputs()
    assert accuracy(o) == pytest.approx(accuracy_score(o.labels.numpy(), o.logits.argmax(1).numpy()))


def test_restricted_accuracy_matches_masked_argmax():
    o = _outputs()
    keep = [0, 2, 4]
    masked = o.logits.clone()
    masked[:, [1, 3]] = -math.inf
    sub = o.of_classes(keep)
    ref = accuracy_score(sub.labels.numpy(), masked[torch.isin(o.labels, torch.tensor(keep))].argmax(1).numpy())
    assert accuracy(sub, keep) == pytest.approx(ref)


def test_per_class_accuracy_is_recall():
    o = _outputs(k=4)
    ref = recall_score(o.labels.numpy(), o.logits.argmax(1).numpy(), average=None, labels=[0, 1, 2, 3])
    assert per_class_accuracy(o, 4) == pytest.approx(list(ref))
    assert per_class_accuracy(Outputs(o.logits[:0], o.labels[:0]), 2) == [None, None]


def test_losses_match_cross_entropy_and_handle_masked_logits():
    o = _outputs()
    assert torch.allclose(o.losses, F.cross_entropy(o.logits, o.labels, reduction="none"), atol=1e-6)
    logits = o.logits.clone()
    logits[:, 0] = -math.inf
    masked = Outputs(logits, o.labels)
    assert bool(torch.isinf(masked.losses[o.labels == 0]).all())
    assert bool(torch.isfinite(masked.losses[o.labels != 0]).all())


def test_loss_attack_separable_and_indistinguishable():
    g = torch.Generator().manual_seed(0)
    members = torch.rand(300, generator=g) * 0.1
    far = 1.0 + torch.rand(300, generator=g)
    assert loss_attack_accuracy(members, far, seed=0) == pytest.approx(1.0)
    same = torch.rand(300, generator=g) * 0.1
    assert abs(loss_attack_accuracy(members, same, seed=0) - 0.5) < 0.06
    assert loss_attack_accuracy(members, torch.tensor([float("inf")] * 300), seed=0) == pytest.approx(1.0)
    assert loss_attack_accuracy(members[:3], far, seed=0) is None


def test_loss_attack_subsamples_larger_side_with_seed():
    g = torch.Generator().manual_seed(1)
    m, n = torch.rand(50, generator=g), torch.rand(5000, generator=g) + 0.3
    a, b = loss_attack_accuracy(m, n, seed=3), loss_attack_accuracy(m, n, seed=3)
    assert a == b and 0.5 < a <= 1.0


def test_mia_nonmembers_come_from_forget_classes(trained_mlp, class_splits, sample_splits):
    c = collect(trained_mlp, class_splits)
    pool = mia_nonmembers(c)
    assert set(pool.labels.tolist()) == {3}
    n3 = int((class_splits.holdout.labels == 3).sum() + (class_splits.test.labels == 3).sum())
    assert len(pool) == n3
    cs = collect(trained_mlp, sample_splits)
    assert set(mia_nonmembers(cs).labels.tolist()) == set(sample_splits.forget.labels.tolist())


def test_evaluate_class_request(trained_mlp, class_splits):
    m = evaluate(collect(trained_mlp, class_splits), seed=0)
    # need the mislabel or poison scenario, or (000's feature metrics) a feature request
    scenario_only = {"forget_true_label_accuracy", "interclass_confusion", "poisoned_class_test_recall"}
    feature_only = {n for n, metric in METRICS.items() if metric.kinds == frozenset({"features"})}
    assert set(m) == set(METRICS.names()) - scenario_only - feature_only
    assert feature_only == {"feature_retain_accuracy", "feature_forget_accuracy", "feature_clean_accuracy",
                            "feature_extra_accuracy", "attack_success_rate", "pattern_score"}  # fmt: skip
    for k in ("forget_accuracy", "retain_accuracy", "test_accuracy", "forgotten_class_test_accuracy", "mia_accuracy"):
        assert 0.0 <= m[k] <= 1.0
    assert m["forget_accuracy"] > 0.8  # trained model still knows class 3
    assert len(m["per_class_test_accuracy"]) == 10


def test_evaluate_sample_request_skips_class_only_metrics(trained_mlp, sample_splits):
    m = evaluate(collect(trained_mlp, sample_splits), seed=0)
    assert "forgotten_class_test_accuracy" not in m


def test_test_accuracy_uses_remaining_classes_only():
    # Forgotten class 1 gets the largest logit everywhere: restricted accuracy ignores it.
    labels = torch.tensor([0, 2, 0, 2, 1])
    logits = torch.tensor([[2.0, 9, 0], [0, 9, 2], [2, 9, 0], [2, 9, 0], [0, 9, 0]])
    out = Outputs(logits, labels)
    c = Collected({"test": out, "forget": out, "retain": out, "holdout": out}, 3, (1,))
    assert METRICS.get("test_accuracy")(c) == pytest.approx(3 / 4)
    assert METRICS.get("forgotten_class_test_accuracy")(c) == pytest.approx(1.0)


def test_directions_declared():
    for name, m in METRICS.items():
        assert m.direction in ("higher", "lower", "retrain"), name
    assert METRICS.get("test_accuracy").higher_is_better is True
    assert METRICS.get("mia_accuracy").higher_is_better is None


def test_gap_and_json_have_no_nan():
    assert gap(0.25, 0.75) == 0.5 and gap(None, 0.1) is None and gap([0.1], 0.1) is None
    text = dumps({"a": float("nan"), "b": [float("inf"), 1.0], "c": np.float64(2.0).item()})
    assert "NaN" not in text and "Infinity" not in text and '"a": null' in text


def test_tta_transforms_and_metrics():
    from unlearnkit.evaluation.outputs import INPUT_TRANSFORMS

    x = torch.arange(2 * 1 * 4 * 5, dtype=torch.float32).reshape(2, 1, 4, 5)
    assert torch.equal(INPUT_TRANSFORMS.get("hflip")(x)[0, 0, 0], torch.tensor([4.0, 3, 2, 1, 0]))
    assert torch.equal(INPUT_TRANSFORMS.get("vflip")(x)[0, 0, :, 0], torch.tensor([15.0, 10, 5, 0]))
    img = torch.zeros(1, 1, 10, 10)
    img[..., 5:, :] = 1.0  # bottom half bright
    crop = INPUT_TRANSFORMS.get("crop90")(img)
    assert crop.shape == img.shape and 0.0 < float(crop.mean()) < 1.0
    const = torch.full((1, 3, 20, 20), 0.7)
    assert torch.allclose(INPUT_TRANSFORMS.get("crop90")(const), const)


def test_tta_metrics_collected_for_images_only(trained_mlp, class_splits):
    from unlearnkit import ForgetRequest, Splits

    c = collect(trained_mlp, class_splits)
    assert {"forget@hflip", "forget@vflip", "forget@crop90"} <= set(c.outputs)
    m = evaluate(c)
    assert 0.0 <= m["forget_accuracy_hflip"] <= 1.0
    flat_x = class_splits.train.x.flatten(1)
    flat = Splits.from_tensors(flat_x, class_splits.train.y, ForgetRequest.from_indices([0, 1, 2, 3, 4, 5]),
                               x_holdout=flat_x[:50], y_holdout=class_splits.train.y[:50])  # fmt: skip
    model = torch.nn.Sequential(torch.nn.Linear(64, 10))
    assert "forget_accuracy_hflip" not in evaluate(collect(model, flat))


def _outputs_with_confidence(conf: torch.Tensor) -> Outputs:
    """Two-class outputs whose true label (0) has softmax probability ``conf``."""
    logit = torch.log(conf / (1 - conf))
    return Outputs(torch.stack([logit, torch.zeros_like(logit)], 1), torch.zeros(len(conf), dtype=torch.long))


def test_mia_efficacy_counts_forget_samples_that_look_unseen():
    g = torch.Generator().manual_seed(0)
    members = _outputs_with_confidence(0.97 + 0.02 * torch.rand(400, generator=g))  # confident
    nonmembers = _outputs_with_confidence(0.3 + 0.4 * torch.rand(400, generator=g))  # unsure
    looks_trained = _outputs_with_confidence(0.98 * torch.ones(50))
    looks_unseen = _outputs_with_confidence(0.5 * torch.ones(50))
    mixed = _outputs_with_confidence(torch.cat([0.98 * torch.ones(30), 0.5 * torch.ones(20)]))
    assert mia_efficacy(members, nonmembers, looks_trained) == 0.0
    assert mia_efficacy(members, nonmembers, looks_unseen) == 1.0
    assert mia_efficacy(members, nonmembers, mixed) == pytest.approx(0.4)
    assert mia_efficacy(members, nonmembers, looks_unseen, max_per_side=20) == 1.0
    assert mia_efficacy(members, nonmembers.select(torch.zeros(400, dtype=torch.bool)), mixed) is None


def test_loss_roc_on_hand_made_losses():
    from unlearnkit.evaluation.metrics import ROC_FPR_GRID, loss_roc

    members = torch.tensor([0.1, 0.2, 0.3, 0.4])
    separated = loss_roc(members, torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert separated[0] == 1.0 and separated[1][0] == 1.0  # every member caught before any false positive
    mixed = loss_roc(members, torch.tensor([0.15, 0.35, 5.0, 6.0]))
    assert mixed[0] == pytest.approx(0.75)  # 12 of 16 member / non-member pairs ranked right
    assert len(mixed[1]) == len(ROC_FPR_GRID) == 51 and mixed[1][-1] == 1.0
    assert all(a <= b for a, b in zip(mixed[1], mixed[1][1:], strict=False))
    assert loss_roc(members, torch.tensor([])) is None


def test_feature_metrics_on_a_feature_request(trained_mlp, feature_splits):
    m = evaluate(collect(trained_mlp, feature_splits), seed=0)
    assert {"feature_retain_accuracy", "attack_success_rate", "pattern_score"} <= set(m)
    assert "mia_accuracy" not in m  # the samples are kept: membership is not the question
    keep = ("feature_retain_accuracy", "feature_clean_accuracy", "feature_extra_accuracy")  # pattern B
    assert m["pattern_score"] == min(m[k] for k in keep)
    # a model trained on clean digits: the stamp barely matters, so the clean images are recognised
    assert m["feature_clean_accuracy"] > 0.9 and m["attack_success_rate"] < 0.2
