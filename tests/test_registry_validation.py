import math

import pytest

from unlearnkit import DATASETS, METHODS, METRICS, MODELS, SCENARIOS, UnknownNameError
from unlearnkit.errors import ParameterError
from unlearnkit.registry import Registry
from unlearnkit.validation import AnyOf, Interval, IntSequence, NoneOr, Options, validate_parameters


@pytest.mark.parametrize(
    "registry, typo, suggestion",
    [
        (METHODS, "neggrad_plu", "neggrad_plus"),
        (DATASETS, "minst", "mnist"),
        (MODELS, "lenett", "lenet"),
        (METRICS, "forget_acc", "forget_accuracy"),
        (SCENARIOS, "randm", "random"),
    ],
)
def test_unknown_name_lists_valid_and_closest(registry, typo, suggestion):
    with pytest.raises(UnknownNameError) as err:
        registry.get(typo)
    msg = str(err.value)
    assert f"did you mean {suggestion!r}" in msg
    for name in registry.names():
        assert name in msg
    assert isinstance(err.value, ValueError)


def test_registry_rejects_duplicates_and_bad_names():
    reg: Registry[int] = Registry("thing")
    reg.register("a_b", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a_b", 2)
    with pytest.raises(ValueError, match="snake_case"):
        reg.register("Not Snake", 3)
    assert "a_b" in reg and len(reg) == 1 and list(reg) == ["a_b"]


def test_unknown_name_without_close_match_has_no_hint():
    with pytest.raises(UnknownNameError) as err:
        METHODS.get("zzzzzz")
    assert "did you mean" not in str(err.value)


@pytest.mark.parametrize(
    "constraint, good, bad",
    [
        (Interval(float, 0, None, closed="neither"), [1e-9, 3, 2.5], [0, -1, math.nan, True, "1"]),
        (Interval(int, 0, 10), [0, 10, 5], [-1, 11, 2.5, False]),
        (Interval(float, 0, 1, closed="left"), [0.0, 0.99], [1.0, -0.1]),
        (Options(("sgd", "adam")), ["sgd"], ["SGD", 1, None]),
        (NoneOr(Interval(int, 1, None)), [None, 1], [0]),
        (AnyOf((Interval(float, 0, None, closed="neither"), Options(("chance",)))), [1.0, "chance"], ["x", -1]),
        (IntSequence(1), [(1, 2), [3]], [(), [0], "12", [1.5]]),
    ],
)
def test_constraints(constraint, good, bad):
    for v in good:
        assert constraint.is_satisfied_by(v), v
    for v in bad:
        assert not constraint.is_satisfied_by(v), v


def test_error_template_names_parameter_constraint_and_value():
    with pytest.raises(ParameterError) as err:
        validate_parameters("SCRUB", {"lr": -1}, {"lr": Interval(float, 0, None, closed="neither")})
    assert str(err.value) == "The 'lr' parameter of SCRUB must be a float in (0, inf); got -1."


def test_unexpected_parameter_lists_valid_ones():
    with pytest.raises(ParameterError, match="unexpected parameter 'lrr'; valid parameters: lr"):
        validate_parameters("X", {"lrr": 1}, {"lr": Interval(float, 0, None)})
