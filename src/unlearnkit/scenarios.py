"""Scenarios: how an experiment's training data and forget set are built.

A scenario turns a :class:`~unlearnkit.data.DataSplit` into the data the
original model is trained on (:meth:`Scenario.training_data`) and the default
forget request (:meth:`Scenario.default_request`). The foundation registers
``class`` and ``random``, which leave the training data as it is; scenarios
that alter it before training (mislabelled labels, inserted or poisoned
samples, backdoor triggers) override :meth:`training_data` and may add extra
views through :meth:`extras`, without changes anywhere else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from unlearnkit.data.splits import DataSplit, ForgetRequest, Splits, View
from unlearnkit.registry import Registry


@dataclass(frozen=True)
class Scenario:
    """Base class; subclasses are frozen dataclasses of their options."""

    name: ClassVar[str] = "scenario"

    def training_data(self, split: DataSplit, *, seed: int) -> View:
        """The data the original model is trained on (default: the train split)."""
        return split.train

    def default_request(self) -> ForgetRequest:
        raise NotImplementedError

    def extras(self, split: DataSplit, *, seed: int) -> dict[str, View]:
        """Extra named views a scenario provides to methods (none by default)."""
        return {}

    def prepare(self, split: DataSplit, *, seed: int, request: ForgetRequest | None = None) -> Splits:
        """Build :class:`Splits` for ``request`` (default: the scenario's own)."""
        train = self.training_data(split, seed=seed)
        splits = Splits.from_request(split, request or self.default_request(), seed=seed, train=train)
        extra = self.extras(split, seed=seed)
        return splits.with_extras(**extra) if extra else splits

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class ClassScenario(Scenario):
    """Forget whole classes (default: class 3)."""

    name: ClassVar[str] = "class"
    forget_classes: tuple[int, ...] = (3,)

    def default_request(self) -> ForgetRequest:
        return ForgetRequest.from_classes(self.forget_classes)


@dataclass(frozen=True)
class RandomScenario(Scenario):
    """Forget a seeded random fraction (or count) of the training set, stratified by class."""

    name: ClassVar[str] = "random"
    fraction: float | None = 0.1
    count: int | None = None
    stratified: bool = True

    def default_request(self) -> ForgetRequest:
        if self.count is not None:
            return ForgetRequest.random_count(self.count, stratified=self.stratified)
        return ForgetRequest.random_fraction(self.fraction or 0.1, stratified=self.stratified)


SCENARIOS: Registry[type[Scenario]] = Registry("scenario")
SCENARIOS.register("class", ClassScenario)
SCENARIOS.register("random", RandomScenario)


def make_scenario(name: str, **options: Any) -> Scenario:
    """Build a registered scenario from its options (unknown options are errors)."""
    from unlearnkit.errors import ParameterError

    cls = SCENARIOS.get(name)
    fields = set(cls.__dataclass_fields__)
    for key in options:
        if key not in fields:
            raise ParameterError(
                f"The {key!r} option does not apply to scenario {name!r}; "
                f"valid options: {', '.join(sorted(fields)) or 'none'}."
            )
    return cls(**options)
