"""The field's baselines (issue 15): what makes each one that method, on real digits models."""

from __future__ import annotations

import pytest
import torch

from unlearnkit import make_method
from unlearnkit.core.gradients import saliency_mask, trainable
from unlearnkit.errors import ParameterError
from unlearnkit.methods.random_label import random_labels


def _changed(before: torch.nn.Module, after: torch.nn.Module) -> dict[str, torch.Tensor]:
    a, b = trainable(before), trainable(after)
    return {n: a[n].detach() != b[n].detach() for n in a}


@pytest.mark.parametrize("ratio", [0.1, 0.5, 1.0])
def test_the_saliency_mask_keeps_exactly_the_requested_share_by_gradient_magnitude(trained_mlp, class_splits, ratio):
    masks = saliency_mask(trained_mlp, class_splits.forget, ratio)
    total = sum(m.numel() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == round(ratio * total)
    if ratio < 1:  # every kept weight's forget gradient is at least every dropped one's
        trained_mlp.zero_grad()
        x, y = class_splits.forget.tensors()
        torch.nn.functional.cross_entropy(trained_mlp(x), y, reduction="sum").backward()
        g = {n: p.grad.abs() for n, p in trainable(trained_mlp).items()}
        kept = torch.cat([g[n][m] for n, m in masks.items()])
        dropped = torch.cat([g[n][~m] for n, m in masks.items()])
        trained_mlp.zero_grad(set_to_none=True)
        assert kept.min() >= dropped.max() * (1 - 1e-5)
    with pytest.raises(ParameterError, match="'ratio' parameter of saliency_mask must be in"):
        saliency_mask(trained_mlp, class_splits.forget, 0.0)


@pytest.mark.parametrize(("name", "extra"), [("salun", {}), ("random_label", {"mask": "saliency", "mask_ratio": 0.2}),
                                             ("finetune", {"mask": "saliency", "mask_ratio": 0.3}),
                                             ("neggrad_plus", {"mask": "saliency", "mask_ratio": 0.3})])  # fmt: skip
def test_with_the_mask_no_unmasked_weight_changes(trained_mlp, class_splits, name, extra):
    out = make_method(name, epochs=2, **extra).unlearn(trained_mlp, class_splits, seed=1)
    ratio = extra.get("mask_ratio", 0.5)
    masks = saliency_mask(trained_mlp, class_splits.forget, ratio)
    changed = _changed(trained_mlp, out.model)
    assert not any(bool((c & ~masks[n]).any()) for n, c in changed.items())  # nothing outside the mask moved
    moved = sum(int(c.sum()) for c in changed.values())
    assert moved > 0.5 * sum(int(m.sum()) for m in masks.values())  # and most of the mask did
    assert out.diagnostics["mask_kept"] == pytest.approx(ratio, abs=1e-4)
    plain = make_method(name, epochs=2, **{**extra, "mask": None}).unlearn(trained_mlp, class_splits, seed=1)
    assert sum(int(c.sum()) for c in _changed(trained_mlp, plain.model).values()) > moved  # the mask is what held them


def test_random_labels_other_never_draw_the_true_class_and_all_sometimes_do():
    y = torch.arange(10).repeat(300)
    g = torch.Generator().manual_seed(0)
    other = random_labels(y, 10, "other", g)
    assert not bool((other == y).any()) and set(other.tolist()) == set(range(10))
    same = (random_labels(y, 10, "all", torch.Generator().manual_seed(0)) == y).float().mean()
    assert 0.05 < float(same) < 0.15  # about 1/k


def test_random_label_forgets_a_class_that_finetuning_keeps(trained_mlp, class_splits):
    x, y = class_splits.forget.tensors()

    def forget_acc(model):
        with torch.no_grad():
            return float((model(x).argmax(1) == y).float().mean())

    rl = make_method("random_label", epochs=3).unlearn(trained_mlp, class_splits, seed=0)
    ft = make_method("finetune", epochs=3).unlearn(trained_mlp, class_splits, seed=0)
    assert forget_acc(trained_mlp) > 0.9 and forget_acc(rl.model) < 0.3 < forget_acc(ft.model)
    assert rl.samples_seen["forget"] == 3 * len(class_splits.forget)


def test_l1_sparse_penalty_weight_falls_linearly_to_0_and_shrinks_the_weights(trained_mlp, sample_splits):
    from unlearnkit.methods.l1_sparse import l1_weight

    assert [l1_weight(1.0, e, 4) for e in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    out = make_method("l1_sparse", epochs=4, gamma=0.05).unlearn(trained_mlp, sample_splits, seed=0)
    assert out.diagnostics["l1_weights"] == pytest.approx([0.05, 0.0375, 0.025, 0.0125])
    plain = make_method("l1_sparse", epochs=4, gamma=0.0).unlearn(trained_mlp, sample_splits, seed=0)
    ft = make_method("finetune", epochs=4, lr=0.01).unlearn(trained_mlp, sample_splits, seed=0)
    # gamma = 0 is fine-tuning exactly; the penalty shrinks the l1 norm below it
    assert all(torch.equal(a, b) for a, b in zip(plain.model.state_dict().values(), ft.model.state_dict().values(),
                                                 strict=True))  # fmt: skip
    assert out.diagnostics["l1_norm"] < 0.9 * plain.diagnostics["l1_norm"]


def test_bad_teacher_moves_forget_outputs_toward_the_random_teacher_and_keeps_the_rest(trained_mlp, class_splits):
    out = make_method("bad_teacher", epochs=10, lr=1e-3, batch_size=64).unlearn(trained_mlp, class_splits, seed=0)
    kl = out.diagnostics["forget_kl_to_bad"]
    assert kl["after"] < 0.5 * kl["before"]  # the forget outputs now look like the random model's
    x, y = class_splits.forget.tensors()
    xr, yr = class_splits.retain.tensors()
    with torch.no_grad():
        f_acc = float((out.model(x).argmax(1) == y).float().mean())
        r_acc = float((out.model(xr).argmax(1) == yr).float().mean())
        r0 = float((trained_mlp(xr).argmax(1) == yr).float().mean())
    assert f_acc < 0.3 and r_acc > r0 - 0.05
    assert out.samples_seen["forget"] == 10 * len(class_splits.forget)
    assert out.samples_seen["retain"] == 10 * round(0.3 * len(class_splits.retain))


@pytest.mark.parametrize(("name", "kind"), [("ssd", "fisher"), ("lfssd", "output_norm")])
def test_ssd_leaves_unselected_parameters_untouched_and_scales_the_others_by_its_factor(trained_mlp, class_splits,
                                                                                       name, kind):
    from unlearnkit.core.gradients import batch_importances
    from unlearnkit.methods.ssd import _training_data

    alpha, lam = 5.0, 0.5
    out = make_method(name, alpha=alpha, lam=lam).unlearn(trained_mlp, class_splits, seed=0)
    i_f = batch_importances(trained_mlp, class_splits.forget, kind)
    i_d = batch_importances(trained_mlp, _training_data(class_splits.retain, class_splits.forget), kind)
    before, after = trainable(trained_mlp), trainable(out.model)
    selected = 0
    for n, p in before.items():
        sel = i_f[n] > alpha * i_d[n]
        selected += int(sel.sum())
        assert torch.equal(after[n][~sel], p[~sel])  # exactly untouched
        beta = torch.clamp(lam * i_d[n][sel] / i_f[n][sel], max=1.0)
        torch.testing.assert_close(after[n][sel], (p[sel].double() * beta).to(p.dtype))
    assert selected > 0 and out.diagnostics["selected"] == pytest.approx(selected / sum(p.numel() for p in
                                                                                         before.values()))  # fmt: skip
    x, y = class_splits.forget.tensors()
    with torch.no_grad():
        after_acc = float((out.model(x).argmax(1) == y).float().mean())
        assert after_acc < float((trained_mlp(x).argmax(1) == y).float().mean())
    again = make_method(name, alpha=alpha, lam=lam).unlearn(trained_mlp, class_splits, seed=9)
    assert all(torch.equal(a, b) for a, b in zip(trainable(again.model).values(), after.values(), strict=True))


def test_boundary_shrink_labels_are_never_the_true_class_even_when_the_attack_fails(trained_mlp, class_splits):
    from unlearnkit.methods.boundary import nearest_wrong_labels

    x, y = class_splits.forget.tensors()
    tiny = nearest_wrong_labels(trained_mlp, x, y, 1e-6)  # too small to flip anything: the runner-up class
    with torch.no_grad():
        runner_up = trained_mlp(x).topk(2, dim=1).indices[:, 1]
    assert not bool((tiny == y).any()) and torch.equal(tiny[trained_mlp(x).argmax(1) == y],
                                                       runner_up[trained_mlp(x).argmax(1) == y])  # fmt: skip
    big = nearest_wrong_labels(trained_mlp, x, y, 0.5)
    assert not bool((big == y).any())
    out = make_method("boundary_shrink", epochs=5).unlearn(trained_mlp, class_splits, seed=0)
    with torch.no_grad():
        assert float((out.model(x).argmax(1) == y).float().mean()) < 0.2
    assert sum(out.diagnostics["neighbour_classes"]) == len(y) and out.diagnostics["neighbour_classes"][3] == 0


def test_boundary_expand_trains_onto_a_shadow_class_then_prunes_it(trained_mlp, class_splits):
    out = make_method("boundary_expand", epochs=5).unlearn(trained_mlp, class_splits, seed=0)
    assert out.diagnostics["shadow_share"] > 0.9  # the forget set went to the shadow output ...
    x, y = class_splits.forget.tensors()
    with torch.no_grad():
        logits = out.model(x)
    assert logits.shape[1] == 10  # ... which is gone again
    assert float((logits.argmax(1) == y).float().mean()) < 0.5


def test_fisher_forgetting_noise_follows_the_formula(trained_mlp, sample_splits):
    from unlearnkit.core.gradients import fisher_diagonal
    from unlearnkit.methods.fisher_forgetting import noise_std

    f = torch.tensor([1e-8, 1e-4, 1.0, 16.0])
    # std = scale * F^(-1/4), clipped at max_std (a tiny floor, so the exact powers)
    torch.testing.assert_close(noise_std(f, 0.1, None, 1e-30), torch.tensor([10.0, 1.0, 0.1, 0.05]))
    torch.testing.assert_close(noise_std(f, 0.1, 0.5, 1e-30), torch.tensor([0.5, 0.5, 0.1, 0.05]))
    torch.testing.assert_close(noise_std(torch.zeros(1), 1.0), torch.tensor([100.0]))  # F = 0: (1e-8)^(-1/4)
    scale = 1e-2
    out = make_method("fisher_forgetting", scale=scale, max_std=None, fisher_samples=10_000).unlearn(
        trained_mlp, sample_splits, seed=0)  # fmt: skip
    fisher = fisher_diagonal(trained_mlp, sample_splits.retain)
    before, after = trainable(trained_mlp), trainable(out.model)
    z = torch.cat([((after[n] - before[n]).detach() / noise_std(fisher[n], scale)).flatten() for n in before])
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1.0) < 0.05  # standard normal after the scaling


def test_fisher_forgetting_auto_scale_is_the_largest_that_keeps_holdout_accuracy(trained_mlp, class_splits):
    out = make_method("fisher_forgetting").unlearn(trained_mlp, class_splits, seed=0)
    d = out.diagnostics
    tried = [float(s) for s in d["holdout_accuracy"]]
    assert len(tried) > 1  # the largest scales were refused ...
    floor = d["holdout_accuracy_original"] - 0.02
    assert d["scale"] == pytest.approx(tried[-1], rel=1e-5) and d["holdout_accuracy"][f"{d['scale']:g}"] >= floor
    assert all(d["holdout_accuracy"][f"{s:g}"] < floor for s in tried[:-1])


def test_unsir_noise_raises_the_forget_loss_and_the_class_is_forgotten(trained_mlp, class_splits):
    out = make_method("unsir").unlearn(trained_mlp, class_splits, seed=0)
    loss = out.diagnostics["noise_loss"]["3"]
    assert loss["after"] > loss["before"] + 1.0  # the learned noise is far worse for class 3 than random noise
    x, y = class_splits.forget.tensors()
    xr, yr = class_splits.retain.tensors()
    with torch.no_grad():
        assert float((out.model(x).argmax(1) == y).float().mean()) < 0.3
        assert float((out.model(xr).argmax(1) == yr).float().mean()) > 0.8
    assert "forget" not in out.samples_seen  # it never reads the forget samples themselves
