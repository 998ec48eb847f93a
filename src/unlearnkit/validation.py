"""Parameter constraints declared as data, with one error template.

Each configurable object declares ``parameter_constraints``: a mapping from
parameter name to a :class:`Constraint`. :func:`validate_parameters` checks
them all and raises :class:`~unlearnkit.errors.ParameterError` with the message

    The 'lr' parameter of NegGradPlus must be a float in (0, inf); got -1.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from unlearnkit.errors import ParameterError

SEED_MAX = 2**32 - 1  # seeds are ints in [0, SEED_MAX]: what torch, numpy and the derived stage seeds accept


class Constraint:
    """A rule a parameter value must satisfy."""

    def is_satisfied_by(self, value: Any) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Interval(Constraint):
    """A real or integer value in an interval.

    Args:
        kind: ``int`` or ``float`` (an int is accepted where a float is asked).
        low, high: Bounds; ``None`` means unbounded.
        closed: Which ends are included: "both", "left", "right" or "neither".
    """

    kind: type
    low: float | None
    high: float | None
    closed: str = "both"

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind is int and not isinstance(value, numbers.Integral):
            return False
        if self.kind is float and not isinstance(value, numbers.Real):
            return False
        v = float(value)
        if not math.isfinite(v):  # NaN and ±inf are no setting (an "unbounded" end is open: inf is excluded)
            return False
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and (v < self.low or (v == self.low and not left)):
            return False
        return not (self.high is not None and (v > self.high or (v == self.high and not right)))

    def describe(self) -> str:
        lo = "-inf" if self.low is None else _fmt(self.low)
        hi = "inf" if self.high is None else _fmt(self.high)
        lb = "[" if self.closed in ("both", "left") and self.low is not None else "("
        rb = "]" if self.closed in ("both", "right") and self.high is not None else ")"
        return f"{'an int' if self.kind is int else 'a float'} in {lb}{lo}, {hi}{rb}"


@dataclass(frozen=True)
class Options(Constraint):
    """One of a fixed set of values."""

    values: tuple[Any, ...]

    def is_satisfied_by(self, value: Any) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class Boolean(Constraint):
    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, bool)

    def describe(self) -> str:
        return "a bool"


@dataclass(frozen=True)
class NoneOr(Constraint):
    """``None`` or a value satisfying ``inner``."""

    inner: Constraint

    def is_satisfied_by(self, value: Any) -> bool:
        return value is None or self.inner.is_satisfied_by(value)

    def describe(self) -> str:
        return f"None or {self.inner.describe()}"


@dataclass(frozen=True)
class AnyOf(Constraint):
    """A value satisfying at least one of ``constraints``."""

    constraints: tuple[Constraint, ...]

    def is_satisfied_by(self, value: Any) -> bool:
        return any(c.is_satisfied_by(value) for c in self.constraints)

    def describe(self) -> str:
        return " or ".join(c.describe() for c in self.constraints)


@dataclass(frozen=True)
class IntSequence(Constraint):
    """A non-empty sequence of ints in [low, inf), of exactly ``length`` items when given."""

    low: int = 1
    length: int | None = None

    def is_satisfied_by(self, value: Any) -> bool:
        return (
            isinstance(value, Sequence)
            and not isinstance(value, str)
            and len(value) > 0
            and (self.length is None or len(value) == self.length)
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) >= self.low for v in value)
        )

    def describe(self) -> str:
        if self.length is not None:
            return f"a sequence of {self.length} ints >= {self.low}"
        return f"a non-empty sequence of ints >= {self.low}"


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def parameter_error(owner: str, name: str, constraint: str, value: Any) -> ParameterError:
    """Build the single error template used across the project."""
    return ParameterError(f"The {name!r} parameter of {owner} must be {constraint}; got {value!r}.")


def validate_parameters(owner: str, params: Mapping[str, Any], constraints: Mapping[str, Constraint]) -> None:
    """Check every parameter against its constraint; unknown names are errors too."""
    for name, value in params.items():
        if name not in constraints:
            valid = ", ".join(sorted(constraints)) or "none"
            raise ParameterError(f"{owner} got an unexpected parameter {name!r}; valid parameters: {valid}.")
        c = constraints[name]
        if not c.is_satisfied_by(value):
            raise parameter_error(owner, name, c.describe(), value)
