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

import torch

from unlearnkit.data.splits import DataSplit, ForgetRequest, Splits, View
from unlearnkit.errors import ParameterError
from unlearnkit.registry import Registry


@dataclass(frozen=True)
class Scenario:
    """Base class; subclasses are frozen dataclasses of their options."""

    name: ClassVar[str] = "scenario"
    kind: ClassVar[str] = "samples"  # the request kind it produces: "classes" or "samples"

    def training_data(self, split: DataSplit, *, seed: int) -> View:
        """The data the original model is trained on (default: the train split)."""
        return split.train

    def default_request(self) -> ForgetRequest:
        raise NotImplementedError

    def request(self, split: DataSplit, *, seed: int) -> ForgetRequest:
        """The forget request for ``split`` (default: :meth:`default_request`)."""
        return self.default_request()

    def extras(self, split: DataSplit, *, seed: int) -> dict[str, View]:
        """Extra named views a scenario provides to methods (none by default)."""
        return {}

    def prepare(self, split: DataSplit, *, seed: int, request: ForgetRequest | None = None) -> Splits:
        """Build :class:`Splits` for ``request`` (default: the scenario's own)."""
        train = self.training_data(split, seed=seed)
        splits = Splits.from_request(split, request or self.request(split, seed=seed), seed=seed, train=train)
        extra = self.extras(split, seed=seed)
        return splits.with_extras(**extra) if extra else splits

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class ClassScenario(Scenario):
    """Forget whole classes (default: class 3)."""

    name: ClassVar[str] = "class"
    kind: ClassVar[str] = "classes"
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


@dataclass(frozen=True)
class MislabelScenario(Scenario):
    """Resolving confusion: relabel ``count`` training samples of class ``source`` as
    ``target`` and ``count`` of ``target`` as ``source`` before training; forget them.

    001 (SCRUB) §4.4. The forget set is exactly the mislabelled samples;
    ``forget_accuracy`` uses the labels they were trained with (the wrong ones)
    and ``forget_true_label_accuracy`` the true ones (view ``forget_true``);
    ``interclass_confusion`` counts test confusions between the two classes.
    """

    name: ClassVar[str] = "mislabel"
    source: int = 0
    target: int = 1
    count: int = 100

    def _positions(self, split: DataSplit, *, seed: int) -> torch.Tensor:
        self._check(split)
        labels = split.train.labels
        g = torch.Generator().manual_seed(int(seed) + 104729)  # its own stream: independent of init / order
        chosen = []
        for c in (self.source, self.target):
            members = torch.nonzero(labels == c).flatten()
            if members.numel() < self.count:
                raise ParameterError(
                    f"The 'count' parameter of scenario 'mislabel' must be at most the {members.numel()} "
                    f"training samples of class {c}; got {self.count}."
                )
            chosen.append(members[torch.randperm(members.numel(), generator=g)[: self.count]])
        return torch.cat(chosen).sort().values

    def _check(self, split: DataSplit) -> None:
        k = split.num_classes
        for key in ("source", "target"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or not (0 <= v < k):
                raise ParameterError(
                    f"The {key!r} parameter of scenario 'mislabel' must be a class in [0, {k}); got {v!r}."
                )
        if self.source == self.target:
            raise ParameterError(
                f"The 'target' parameter of scenario 'mislabel' must differ from source ({self.source}); "
                f"got {self.target}."
            )
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ParameterError(
                f"The 'count' parameter of scenario 'mislabel' must be an int >= 1; got {self.count!r}."
            )

    def training_data(self, split: DataSplit, *, seed: int) -> View:
        positions = self._positions(split, seed=seed)
        train = split.train
        y = train.y.clone()  # labels only: images are shared, not copied
        rows = train.indices[positions]
        was_source = y[rows] == self.source
        y[rows] = torch.where(was_source, torch.tensor(self.target), torch.tensor(self.source))
        return View(train.x, y, train.indices, "train")

    def request(self, split: DataSplit, *, seed: int) -> ForgetRequest:
        return ForgetRequest.from_indices(self._positions(split, seed=seed))

    def default_request(self) -> ForgetRequest:
        raise ParameterError("the 'mislabel' scenario's forget set depends on the data; use request(split, seed=...)")

    def prepare(self, split: DataSplit, *, seed: int, request: ForgetRequest | None = None) -> Splits:
        splits = super().prepare(split, seed=seed, request=request)
        true = View(split.train.x, split.train.y, splits.forget.indices, "forget_true")
        return splits.with_extras(forget_true=true).with_info(confused_classes=(self.source, self.target))


SCENARIOS: Registry[type[Scenario]] = Registry("scenario")
SCENARIOS.register("class", ClassScenario)
SCENARIOS.register("random", RandomScenario)
SCENARIOS.register("mislabel", MislabelScenario)


def make_scenario(name: str, **options: Any) -> Scenario:
    """Build a registered scenario from its options (unknown options are errors)."""
    cls = SCENARIOS.get(name)
    fields = set(cls.__dataclass_fields__)
    for key in options:
        if key not in fields:
            raise ParameterError(
                f"The {key!r} option does not apply to scenario {name!r}; "
                f"valid options: {', '.join(sorted(fields)) or 'none'}."
            )
    return cls(**options)
