"""SCRUB, its feature variants, two-stage and the mislabel scenario, pinned on small cases."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import RECIPE
from unlearnkit import ParameterError, build_model, collect, evaluate, make_method, make_scenario
from unlearnkit.core.distillation import PENULTIMATE, FeatureTaps, default_feature_layers, distill_kl, feature_distance
from unlearnkit.methods.two_stage import accumulate_outputs, contrastive_labels, max_mislabel_labels

INF = math.inf

# -- contrastive labels (002, Alg. 1-2) ------------------------------------------


def _matrix():
    m = torch.tensor(
        [
            [INF, 0.30, 0.10, 0.60],
            [0.20, INF, 0.05, 0.75],
            [0.50, 0.40, INF, 0.10],
            [INF, INF, INF, INF],  # class 3 absent from the forget set
        ],
        dtype=torch.float64,
    )
    return m


def test_accumulate_outputs_alg1():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8]])
    labels = torch.tensor([0, 0, 2])
    m = accumulate_outputs(probs, labels, 3)
    assert m[0, 1].item() == pytest.approx(0.3) and m[0, 2].item() == pytest.approx(0.1)
    assert math.isinf(m[0, 0]) and math.isinf(m[2, 2]) and bool(torch.isinf(m[1]).all())


def test_contrastive_pairing_global_minimum_with_unique_targets():
    # global min 0.05 -> 1->2 (col 2 blocked); then 0.30 -> 0->1 (col 1 blocked); then 2->0.
    assert contrastive_labels(_matrix(), [0, 1, 2]) == {1: 2, 0: 1, 2: 0}


def test_contrastive_single_class_may_target_any_class():
    assert contrastive_labels(_matrix(), [2]) == {2: 3}  # 0.10 at column 3, a class not in the forget set


def test_contrastive_relaxes_uniqueness_when_stuck():
    m = torch.tensor([[INF, 0.05, 0.9], [0.06, INF, 0.9], [0.5, 0.5, INF]], dtype=torch.float64)
    # 0->1, then 1->0, leaving 2 with both targets blocked: it takes its smallest entry (column 0).
    assert contrastive_labels(m, [0, 1, 2]) == {0: 1, 1: 0, 2: 0}


def test_max_mislabel_is_second_highest():
    assert max_mislabel_labels(_matrix(), [0, 1, 2]) == {0: 3, 1: 3, 2: 0}


# -- distillation terms ------------------------------------------------------------


def test_distillation_terms_are_zero_when_student_is_teacher(digits):
    model = build_model("lenet", digits.input_shape, 10, seed=0)
    twin = copy.deepcopy(model)
    x = digits.train_x[:16]
    layers = default_feature_layers(model, "attention")
    assert layers == ["conv.0", "conv.3", PENULTIMATE]
    with FeatureTaps(model, layers) as a, FeatureTaps(twin, layers) as b:
        la, lb = model(x), twin(x)
        fa, fb = a.take(), b.take()
    assert float(feature_distance(fa, fb).detach()) == 0.0
    assert float(distill_kl(la, lb, 4.0).detach()) == pytest.approx(0.0, abs=1e-5)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    other = build_model("lenet", digits.input_shape, 10, seed=1)
    with FeatureTaps(other, layers) as c:
        other(x)
        assert float(feature_distance(c.take(), fb).detach()) > 0.0


def test_feature_distance_matches_normalised_mse():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 3, 4, 4, generator=g), torch.randn(5, 3, 4, 4, generator=g)
    sn, tn = F.normalize(s.flatten(1), dim=1), F.normalize(t.flatten(1), dim=1)
    expected = F.mse_loss(sn, tn, reduction="mean") * sn.shape[1]
    assert float(feature_distance([s], [t])) == pytest.approx(float(expected), rel=1e-5)
    assert float(feature_distance([s, s], [t, t])) == pytest.approx(2 * float(expected), rel=1e-5)


def test_feature_taps_validate_layers_and_remove_hooks_on_error(digits):
    model = build_model("lenet", digits.input_shape, 10, seed=0)
    with pytest.raises(ParameterError, match="'layers' parameter must name modules.*got 'nope'"):
        FeatureTaps(model, ["nope"])
    with pytest.raises(RuntimeError), FeatureTaps(model, ["conv.0", PENULTIMATE]):
        model(torch.zeros(1, 3, 8, 8))  # wrong channel count: forward raises inside the taps
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_similarity_layer_defaults():
    assert default_feature_layers(build_model("cnn", (3, 32, 32), 10), "similarity") == ["conv.3"]
    assert default_feature_layers(build_model("mlp", (1, 8, 8), 10), "similarity") == [PENULTIMATE]


# -- SCRUB ------------------------------------------------------------------------------


def test_scrub_without_max_steps_is_kd_plus_ce_finetuning(trained_mlp, sample_splits):
    settings = dict(max_steps=0, steps=2, alpha=0.7, gamma=1.3, temperature=3.0, min_lr=0.02, momentum=0.9)
    out = make_method("scrub", **settings).unlearn(trained_mlp, sample_splits, seed=5)

    student, teacher = copy.deepcopy(trained_mlp).train(), copy.deepcopy(trained_mlp).eval()
    opt = torch.optim.SGD(student.parameters(), lr=0.02, momentum=0.9)
    g = torch.Generator().manual_seed(5)
    for _ in range(2):
        for x, y in sample_splits.retain.batches(128, generator=g, shuffle=True):
            logits = student(x)
            with torch.no_grad():
                t = teacher(x)
            loss = 0.7 * distill_kl(logits, t, 3.0) + 1.3 * F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    for a, b in zip(out.model.parameters(), student.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert "forget" not in out.samples_seen


def test_scrub_first_max_epoch_has_no_gradient(trained_mlp, sample_splits):
    """At student == teacher the KL is at its minimum: the first max-epoch cannot move."""
    out = make_method("scrub", max_steps=1, steps=1, min_lr=1e-12).unlearn(trained_mlp, sample_splits, seed=0)
    for a, b in zip(out.model.parameters(), trained_mlp.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert out.diagnostics["rounds"][0]["max_kl"] == pytest.approx(0.0, abs=1e-6)


def test_scrub_rejects_more_max_steps_than_steps():
    with pytest.raises(ParameterError, match="'max_steps' parameter of SCRUB must be at most steps \\(2\\); got 3"):
        make_method("scrub", max_steps=3, steps=2)


def test_scrub_variants_use_their_layers(trained_mlp, class_splits):
    att = make_method("scrub_attention", steps=1, max_steps=1).unlearn(trained_mlp, class_splits, seed=0)
    assert att.diagnostics["feature_layers"] == [PENULTIMATE]
    custom = make_method("scrub_attention", steps=1, max_steps=1, layers=["body.1", PENULTIMATE])
    assert custom.unlearn(trained_mlp, class_splits).diagnostics["feature_layers"] == ["body.1", PENULTIMATE]
    with pytest.raises(ParameterError, match="'layers' parameter"):
        make_method("scrub_similarity", layers="body.1")


def test_scrub_moves_away_on_forget_set(trained_mlp, class_splits):
    # measured (seeds 0, 1): forget 94.5% -> 0.0%, retain 97.1% -> 91.9% / 94.2%
    out = make_method("scrub", max_steps=4, steps=8, max_lr=0.02).unlearn(trained_mlp, class_splits, seed=0)
    before = evaluate(collect(trained_mlp, class_splits), ["forget_accuracy"])["forget_accuracy"]
    after = evaluate(collect(out.model, class_splits), ["forget_accuracy", "retain_accuracy"])
    assert after["forget_accuracy"] < before - 0.5
    assert after["retain_accuracy"] > 0.85


# -- two-stage --------------------------------------------------------------------------


def test_two_stage_neutralises_then_recovers(trained_mlp, class_splits):
    # measured (seed 0): neutralised in 4 epochs to 3.9%; after KD retraining forget 8.7%, test 92.8%
    # (seed 1 ends at 59%: the original teacher's soft labels carry the class back; see the card)
    method = make_method("two_stage", epochs=4, neutralize_lr=0.01)
    out = method.unlearn(trained_mlp, class_splits, seed=0, recipe=RECIPE)
    d = out.diagnostics
    assert list(d["label_map"]) == ["3"] and d["label_map"]["3"] != 3
    assert d["forget_accuracy_before"] > 0.8
    assert d["neutralized"] and d["forget_accuracy_after_neutralize"] <= 0.1
    assert 1 <= d["neutralize_epochs"] <= 20 and d["retrain_epochs"] == 4
    m = evaluate(collect(out.model, class_splits), ["forget_accuracy", "test_accuracy"])
    assert m["forget_accuracy"] < d["forget_accuracy_before"] - 0.5 and m["test_accuracy"] > 0.88


def test_two_stage_pairs_classes_on_mean_logits_as_002_section_5_2_says(trained_mlp, digits_split):
    # forgetting digit 4: mean logits pair it with 3, a mean of softmax outputs with 2 (measured)
    from unlearnkit.data.splits import ForgetRequest, Splits
    from unlearnkit.evaluation.outputs import outputs_of

    splits = Splits.from_request(digits_split, ForgetRequest.from_classes([4]), seed=0)
    out = outputs_of(trained_mlp, splits.forget)
    by_logits = contrastive_labels(accumulate_outputs(out.logits, out.labels, 10), [4])
    by_softmax = contrastive_labels(accumulate_outputs(out.logits.softmax(1), out.labels, 10), [4])
    assert by_logits != by_softmax  # the case tells the two readings apart
    method = make_method("two_stage", neutralize_max_epochs=0, epochs=0)
    assert method.unlearn(trained_mlp, splits, seed=0, recipe=RECIPE).diagnostics["label_map"] == {"4": by_logits[4]}


def test_two_stage_neutralisation_stops_on_the_criterion_and_flags_a_spent_budget(trained_mlp, sample_splits):
    # the chance criterion, not the budget, ends stage 1: a large budget stops at the same epoch as an
    # exact one; a budget one epoch short is spent, flagged, and leaves forget accuracy above chance
    run = make_method("two_stage", epochs=0).unlearn(trained_mlp, sample_splits, seed=0, recipe=RECIPE)
    d = run.diagnostics
    assert d["neutralized"] and not d["neutralize_hit_budget"] and d["forget_accuracy_after_neutralize"] <= 0.1
    need = d["neutralize_epochs"]
    assert need >= 2  # measured: 151 epochs at Adam lr 1e-3 (one step per epoch on 121 forget samples)
    exact = make_method("two_stage", epochs=0, neutralize_max_epochs=need).unlearn(
        trained_mlp, sample_splits, seed=0, recipe=RECIPE
    )
    assert exact.diagnostics["neutralize_epochs"] == need and not exact.diagnostics["neutralize_hit_budget"]
    short = make_method("two_stage", epochs=0, neutralize_max_epochs=need - 1).unlearn(
        trained_mlp, sample_splits, seed=0, recipe=RECIPE
    )
    s = short.diagnostics
    assert s["neutralize_hit_budget"] and not s["neutralized"] and s["neutralize_epochs"] == need - 1
    assert s["forget_accuracy_after_neutralize"] > 0.1


def test_two_stage_default_epochs_are_half_the_recipe(trained_mlp, class_splits):
    out = make_method("two_stage").unlearn(trained_mlp, class_splits, seed=0, recipe=RECIPE)
    assert out.diagnostics["retrain_epochs"] == math.ceil(RECIPE.epochs / 2)
    per_epoch = round(0.5 * len(class_splits.retain))
    assert out.samples_seen["retain"] == out.diagnostics["retrain_epochs"] * per_epoch


# -- validation tracking ----------------------------------------------------------------


def test_epochs_to_best_reported_and_not_timed(trained_mlp, sample_splits):
    out = make_method("retrain").unlearn(trained_mlp, sample_splits, seed=0, recipe=RECIPE, track_validation=True)
    d = out.diagnostics
    assert len(d["val_accuracy"]) == RECIPE.epochs and 1 <= d["epochs_to_best"] <= RECIPE.epochs
    assert d["val_accuracy"][d["epochs_to_best"] - 1] == max(d["val_accuracy"])
    plain = make_method("retrain").unlearn(trained_mlp, sample_splits, seed=0, recipe=RECIPE)
    assert "epochs_to_best" not in plain.diagnostics
    assert all(torch.equal(a, b) for a, b in zip(out.model.parameters(), plain.model.parameters(), strict=True))


# -- the mislabel scenario ------------------------------------------------------------------


def test_mislabel_scenario(digits_split):
    s = make_scenario("mislabel", source=0, target=1, count=20).prepare(digits_split, seed=0)
    assert len(s.forget) == 40
    true = s.extras["forget_true"].labels
    trained_with = s.forget.labels
    assert sorted(true.tolist()) == [0] * 20 + [1] * 20
    assert torch.equal(trained_with, 1 - true)  # 0 <-> 1 swapped
    assert torch.equal(s.retain.labels, digits_split.train.labels[torch.isin(
        torch.arange(len(digits_split.train)), s.forget_positions, invert=True)])  # fmt: skip
    assert s.info["confused_classes"] == (0, 1)
    assert digits_split.train.y is not s.train.y and int((digits_split.train.y != s.train.y).sum()) == 40
    again = make_scenario("mislabel", source=0, target=1, count=20).prepare(digits_split, seed=0)
    assert torch.equal(again.forget_positions, s.forget_positions)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"source": 3, "target": 3}, "must differ"),
        ({"source": 12}, r"class in \[0, 10\)"),
        ({"count": 10**5}, "at most"),
    ],
)
def test_mislabel_scenario_rejects(digits_split, options, match):
    with pytest.raises(ParameterError, match=match):
        make_scenario("mislabel", **options).prepare(digits_split, seed=0)


def test_mislabel_metrics(trained_mlp, digits_split):
    s = make_scenario("mislabel", count=20).prepare(digits_split, seed=0)
    m = evaluate(collect(trained_mlp, s))
    assert {"forget_true_label_accuracy", "interclass_confusion"} <= set(m)
    # trained_mlp saw clean labels: it predicts the true labels, not the corrupted ones
    assert m["forget_true_label_accuracy"] > 0.8 and m["forget_accuracy"] < 0.2
    test = digits_split.test
    preds = trained_mlp(test.x).argmax(1)
    expected = int(((test.y == 0) & (preds == 1)).sum() + ((test.y == 1) & (preds == 0)).sum())
    assert m["interclass_confusion"] == expected


def test_capped_kl_matches_clamped_reference():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 4, generator=g) * 3, torch.randn(6, 4, generator=g) * 3
    per = (F.softmax(t / 2, 1) * (F.log_softmax(t / 2, 1) - F.log_softmax(s / 2, 1))).sum(1) * 4
    assert float(distill_kl(s, t, 2.0)) == pytest.approx(float(per.mean()), rel=1e-5)
    assert float(distill_kl(s, t, 2.0, cap=0.5)) == pytest.approx(float(per.clamp(max=0.5).mean()), rel=1e-5)


def test_scrub_divergence_is_a_clear_error_and_recorded_in_runs(trained_mlp, class_splits, digits):
    from unlearnkit import ExperimentConfig, TrainConfig, run_experiment
    from unlearnkit.errors import DivergenceError

    wild = {"max_steps": 3, "steps": 3, "max_lr": 1e4, "forget_batch_size": 8}
    with pytest.raises(DivergenceError, match="scrub diverged in round .*lower 'max_lr'"):
        make_method("scrub", **wild).unlearn(trained_mlp, class_splits, seed=0)
    config = ExperimentConfig(dataset="digits", model="mlp", scenario="class", methods=("scrub", "finetune"),
                              method_params={"scrub": wild}, train=TrainConfig(epochs=3))  # fmt: skip
    rows = {r["method"]: r for r in run_experiment(config, dataset=digits).results}
    assert "diverged" in rows["scrub"]["error"] and rows["scrub"]["metrics"] == {}
    assert rows["finetune"]["metrics"]["forget_accuracy"] is not None
    # a run that does not diverge carries SCRUB's per-round losses into its record (001 Fig. 2 is drawn from them)
    config = ExperimentConfig(dataset="digits", model="mlp", scenario="class", methods=("scrub",),
                              method_params={"scrub": {"max_steps": 2, "steps": 3}},
                              train=TrainConfig(epochs=3))  # fmt: skip
    [row] = [r for r in run_experiment(config, dataset=digits).results if r["method"] == "scrub"]
    rounds = row["diagnostics"]["rounds"]
    assert [sorted(r) for r in rounds] == [["max_kl", "min_loss"]] * 2 + [["min_loss"]]
    assert all(isinstance(v, float) for r in rounds for v in r.values())


def test_scrub_early_stop_ends_when_forget_error_rose_and_holdout_error_held(trained_mlp, class_splits):
    # 001 §3's rule, judged on the holdout split: the run stops at the first round that meets it, and the
    # model is the one of that round (the same as a fixed run of that many rounds)
    settings = dict(max_steps=4, steps=8, max_lr=0.02)
    out = make_method("scrub", early_stop=True, stop_tolerance=0.05, **settings).unlearn(
        trained_mlp, class_splits, seed=0
    )
    d = out.diagnostics
    stopped = d["stopped_after_round"]
    assert stopped is not None and 1 <= stopped < 8 and len(d["rounds"]) == stopped
    last = d["rounds"][-1]
    assert last["forget_error"] > d["errors_before"]["forget"]
    assert last["holdout_error"] <= d["errors_before"]["holdout"] + 0.05
    earlier = [r for r in d["rounds"][:-1]]  # no earlier round met the rule
    assert all(not (r["forget_error"] > d["errors_before"]["forget"]
                    and r["holdout_error"] <= d["errors_before"]["holdout"] + 0.05) for r in earlier)  # fmt: skip
    fixed = make_method("scrub", max_steps=min(4, stopped), steps=stopped, max_lr=0.02).unlearn(
        trained_mlp, class_splits, seed=0
    )
    for a, b in zip(out.model.parameters(), fixed.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert out.samples_seen["holdout"] >= len(class_splits.holdout) * (stopped + 1)
    plain = make_method("scrub", **settings).unlearn(trained_mlp, class_splits, seed=0)
    assert len(plain.diagnostics["rounds"]) == 8 and "stopped_after_round" not in plain.diagnostics
