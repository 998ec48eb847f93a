"""The contract every registered method must meet (picked up from the registry).

A new method is enrolled automatically; add an entry to FAST_SETTINGS only to
keep it quick on the tiny data.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import RECIPE
from unlearnkit import METHODS, ParameterError, UnsupportedRequestError, make_method
from unlearnkit.core.models import model_hash
from unlearnkit.methods import Context, Unlearner

FAST_SETTINGS: dict[str, dict] = {
    "finetune": {"epochs": 1},
    "neggrad": {"epochs": 2},
    "neggrad_plus": {"epochs": 1},
    "forsaken": {"iterations": 2, "lbfgs_steps": 2, "penalty_set_size": 10},
    "rnd": {"epochs": 1},
    "rld": {"epochs": 1},
    "selective_forgetting": {"epochs": 1},
}
ALL = METHODS.names()
BAD = "definitely-invalid"


@pytest.fixture()
def supported_splits(request, class_splits, sample_splits, feature_splits):
    """Class splits, or sample splits for a method that forgets samples only, or 000's feature splits."""
    supports = METHODS.get(request.node.callspec.params["name"]).supports
    if "classes" in supports:
        return class_splits
    return sample_splits if "samples" in supports else feature_splits


def _run(name, model, splits, seed=0, **extra):
    method = make_method(name, **{**FAST_SETTINGS.get(name, {}), **extra})
    return method.unlearn(model, splits, seed=seed, recipe=RECIPE)


def _mixed_mode(model: nn.Module) -> list[bool]:
    model.train()
    for i, m in enumerate(model.modules()):
        m.training = i % 2 == 0  # an unusual mix that a careless method would not restore
    return [m.training for m in model.modules()]


def _hook_counts(model: nn.Module) -> list[int]:
    return [len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("splits_name", ["class_splits", "sample_splits", "feature_splits"])
def test_input_untouched_new_model_returned(name, splits_name, prepare, request):
    splits = request.getfixturevalue(splits_name)
    if splits.kind not in METHODS.get(name).supports:
        pytest.skip(f"{name} does not support {splits.kind}")
    trained_mlp = prepare(name)
    modes = _mixed_mode(trained_mlp)
    before = model_hash(trained_mlp)
    out = _run(name, trained_mlp, splits)
    assert model_hash(trained_mlp) == before
    assert [m.training for m in trained_mlp.modules()] == modes
    assert out.model is not trained_mlp and not out.model.training
    assert out.method == name and out.seconds > 0
    assert set(out.samples_seen) <= {"forget", "retain", "holdout", "extra"}
    assert all(v > 0 for v in out.samples_seen.values())


@pytest.mark.parametrize("name", ALL)
def test_deterministic_for_a_seed(name, prepare, supported_splits):
    trained_mlp = prepare(name)
    a = _run(name, trained_mlp, supported_splits, seed=3)
    b = _run(name, trained_mlp, supported_splits, seed=3)
    assert model_hash(a.model) == model_hash(b.model)
    assert a.steps == b.steps and a.samples_seen == b.samples_seen


PREFLIGHT = 1  # forward passes Unlearner.unlearn makes before the method runs (check_inputs)


class _Flaky(nn.Module):
    """Wraps a model; its forward raises on the N-th call across all copies."""

    calls = 0

    def __init__(self, inner: nn.Module, fail_at: int) -> None:
        super().__init__()
        self.inner = inner
        self.fail_at = fail_at
        self.head = inner.head

    def forward(self, x):
        type(self).calls += 1
        if type(self).calls >= self.fail_at:
            raise RuntimeError("injected failure")
        return self.inner(x)


def _flakify(module: nn.Module, fail_at: int) -> None:
    """Make ``module``'s forward fail like :class:`_Flaky`'s, keeping its state-dict keys (for checkpoints)."""
    base = type(module)

    class Flaky(base):  # type: ignore[misc, valid-type]
        def forward(self, x):
            _Flaky.calls += 1
            if _Flaky.calls >= fail_at:
                raise RuntimeError("injected failure")
            return super().forward(x)

    module.__class__ = Flaky


@pytest.mark.parametrize("name", ALL)
def test_modes_and_hooks_restored_after_failure(name, prepare, supported_splits):
    # Fail mid-way (at the method's second forward pass); a method with a single
    # forward pass (closed-form ones) is failed at its first. Unlearner.unlearn's
    # pre-flight check (check_inputs) runs the model once before the method, so the
    # method's passes are calls 2 and 3. A prepared model (SISA, SMU) gets the
    # failing wrapper around its constituents / inner model.
    for fail_at in (2 + PREFLIGHT, 1 + PREFLIGHT):
        model = prepare(name)
        if hasattr(model, "constituents"):
            for c in model.constituents:
                _flakify(c, fail_at)
            body = model.constituents[0].body
        elif hasattr(model, "inner"):
            _flakify(model.inner, fail_at)
            body = model.inner.body
        else:
            model = _Flaky(model, fail_at=fail_at)
            body = model.inner.body
        handle = body.register_forward_hook(lambda *a: None)  # a user's own hook must stay
        modes = _mixed_mode(model)
        hooks = _hook_counts(model)
        before = model_hash(model)
        _Flaky.calls = 0
        try:
            _run(name, model, supported_splits)
            if _Flaky.calls <= PREFLIGHT:  # a method that never runs the model (e.g. truncation): nothing to fail
                assert [m.training for m in model.modules()] == modes and _hook_counts(model) == hooks
                assert model_hash(model) == before
                return
        except RuntimeError as exc:
            assert "injected failure" in str(exc)
            assert [m.training for m in model.modules()] == modes
            assert _hook_counts(model) == hooks
            assert model_hash(model) == before
            return
        finally:
            handle.remove()
    pytest.fail(f"{name} never called the model's forward")


def test_a_model_failing_the_preflight_is_one_line_and_untouched(prepare, class_splits):
    """The pre-flight forward (check_inputs) reports a model that cannot run as one line; modes and hooks stay."""
    model = _Flaky(prepare("finetune"), fail_at=1)
    modes, hooks, before = _mixed_mode(model), _hook_counts(model), model_hash(model)
    _Flaky.calls = 0
    with pytest.raises(ParameterError, match=r"The 'model' parameter cannot run on the inputs .*injected failure"):
        _run("finetune", model, class_splits)
    assert _Flaky.calls == PREFLIGHT
    assert [m.training for m in model.modules()] == modes and _hook_counts(model) == hooks
    assert model_hash(model) == before


@pytest.mark.parametrize("name", ALL)
def test_bad_parameters_rejected_with_template(name, prepare, supported_splits):
    cls = METHODS.get(name)
    trained_mlp = prepare(name)
    for param in cls.parameter_constraints:
        with pytest.raises(ParameterError) as err:
            make_method(name, **{param: BAD})
        assert str(err.value).startswith(f"The {param!r} parameter of {cls.__name__} must be ")
        assert str(err.value).endswith(f"; got {BAD!r}.")
        with pytest.raises(ParameterError):  # the verb validates too (settings changed after construction)
            m = cls()
            m.params[param] = BAD
            m.unlearn(trained_mlp, supported_splits, recipe=RECIPE)
    with pytest.raises(ParameterError, match="unexpected parameter 'no_such_setting'"):
        cls(no_such_setting=1)


@pytest.mark.parametrize("name", ALL)
def test_identity_setting_or_declared_exemption(name, prepare, supported_splits):
    cls = METHODS.get(name)
    trained_mlp = prepare(name)
    if cls.identity_params is None:
        assert isinstance(cls.identity_exempt, str) and len(cls.identity_exempt) > 10
        return
    out = cls(**cls.identity_params).unlearn(trained_mlp, supported_splits, seed=0, recipe=RECIPE)
    for (k, a), (_, b) in zip(out.model.state_dict().items(), trained_mlp.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert out.steps == 0


@pytest.mark.parametrize("name", ALL)
def test_tags_are_from_the_vocabulary(name):
    from unlearnkit.methods import KINDS, NEEDS

    cls = METHODS.get(name)
    assert cls.needs <= NEEDS and cls.supports <= KINDS and cls.supports
    assert cls.name == name
    assert cls.__doc__ and "Tags:" in cls.__doc__
    assert set(cls.defaults) == set(cls.parameter_constraints)


def test_guard_removes_hooks_a_method_leaves_on_the_input(trained_mlp, class_splits):
    class Leaky(Unlearner):
        name = "leaky"
        supports = frozenset({"classes"})

        def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
            ctx.original.head.register_forward_hook(lambda *a: None)
            ctx.original.train()
            raise RuntimeError("oops")

    trained_mlp.eval()
    with pytest.raises(RuntimeError):
        Leaky().unlearn(trained_mlp, class_splits)
    assert not trained_mlp.head._forward_hooks and not trained_mlp.training


def test_unsupported_request_kind(trained_mlp, sample_splits):
    class ClassOnly(Unlearner):
        name = "class_only"
        supports = frozenset({"classes"})

    with pytest.raises(UnsupportedRequestError, match="does not support samples requests"):
        ClassOnly().unlearn(trained_mlp, sample_splits)


@pytest.mark.parametrize("name", [n for n in ALL if "prepared" in METHODS.get(n).needs])
def test_prepared_methods_refuse_a_plain_model(name, trained_mlp, sample_splits):
    with pytest.raises(ParameterError, match=r"^The 'model' parameter of .* prepared at .*; got a MLP\.$"):
        make_method(name).unlearn(trained_mlp, sample_splits, recipe=RECIPE)


def test_retrain_needs_the_recipe(trained_mlp, class_splits):
    with pytest.raises(ParameterError, match="'recipe' parameter"):
        make_method("retrain").unlearn(trained_mlp, class_splits)
