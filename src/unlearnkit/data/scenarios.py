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

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from unlearnkit.data.splits import DataSplit, ForgetRequest, Splits, View
from unlearnkit.errors import ParameterError
from unlearnkit.registry import Registry


@dataclass(frozen=True)
class Scenario:
    """Base class; subclasses are frozen dataclasses of their options."""

    name: ClassVar[str] = "scenario"
    kind: ClassVar[str] = "samples"  # the request kind it produces: "classes", "samples" or "features"
    needs: ClassVar[tuple[str, ...]] = ()  # inputs the running layer computes first (e.g. "memorization")

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

    def prepare(
        self, split: DataSplit, *, seed: int, request: ForgetRequest | None = None, forgotten: Any = None
    ) -> Splits:
        """Build :class:`Splits` for ``request`` (default: the scenario's own).

        ``forgotten``: training positions earlier requests forgot; they are in
        neither the forget nor the retain set (:meth:`Splits.without`).
        """
        train = self.training_data(split, seed=seed)
        splits = Splits.from_request(
            split, request or self.request(split, seed=seed), seed=seed, train=train, forgotten=forgotten
        )
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

    def __post_init__(self) -> None:
        # Validated here, when the scenario is made (train records it), not when a request is drawn later.
        self.default_request()

    def default_request(self) -> ForgetRequest:
        if self.count is not None:
            return ForgetRequest.random_count(self.count, stratified=self.stratified)
        if self.fraction is None:
            raise ParameterError("The 'random' scenario needs a 'fraction' in (0, 1) or a 'count' >= 1; got neither.")
        return ForgetRequest.random_fraction(self.fraction, stratified=self.stratified)


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

    def prepare(
        self, split: DataSplit, *, seed: int, request: ForgetRequest | None = None, forgotten: Any = None
    ) -> Splits:
        splits = super().prepare(split, seed=seed, request=request, forgotten=forgotten)
        true = View(split.train.x, split.train.y, splits.forget.indices, "forget_true")
        return splits.with_extras(forget_true=true).with_info(confused_classes=(self.source, self.target))


def _seeded_rows(n: int, count: int, seed: int, salt: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(seed) + salt)  # its own stream: independent of init / order
    return torch.randperm(n, generator=g)[:count].sort().values


def _check_count(name: str, key: str, value: Any, available: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= available:
        raise ParameterError(
            f"The {key!r} parameter of scenario {name!r} must be an int in [1, {available}]; got {value!r}."
        )


@dataclass(frozen=True)
class InDistributionScenario(Scenario):
    """003's in-distribution unlearning: forget ``count`` random training samples.

    Adds the extra view ``reference`` (non-members whose posteriors Forsaken pulls
    toward): the holdout split by default; ``reference="test"`` follows the paper
    (test samples), at the price of letting a method read the test split.
    """

    name: ClassVar[str] = "id"
    count: int = 200
    reference: str = "holdout"

    def request(self, split: DataSplit, *, seed: int) -> ForgetRequest:
        _check_count(self.name, "count", self.count, len(split.train))
        return ForgetRequest.from_indices(_seeded_rows(len(split.train), self.count, seed, 7919))

    def default_request(self) -> ForgetRequest:
        return ForgetRequest.random_count(self.count, stratified=False)

    def extras(self, split: DataSplit, *, seed: int) -> dict[str, View]:
        if self.reference not in ("holdout", "test"):
            raise ParameterError(
                f"The 'reference' parameter of scenario 'id' must be 'holdout' or 'test'; got {self.reference!r}."
            )
        view = split.holdout if self.reference == "holdout" else split.test
        return {"reference": View(view.x, view.y, view.indices, "reference")}


@dataclass(frozen=True)
class PoisonScenario(Scenario):
    """003's poisoning: relabel a ``share`` of class ``source``'s training samples as ``target``; forget them.

    The paper flips 5 → 3 at 2%, 4% and 10%. The forget set is exactly the
    flipped samples (with the labels they were trained with); the metric
    ``poisoned_class_test_recall`` reads the recall of class ``source``. The
    extra view ``reference`` holds clean holdout samples (never flipped) and
    ``forget_true`` the forget set with its true labels (``forsaken`` pulls a
    flipped sample toward them, 003 §V-F; ``forget_true_label_accuracy`` reads them).
    """

    name: ClassVar[str] = "poison"
    source: int = 5
    target: int = 3
    share: float = 0.1

    def _positions(self, split: DataSplit, *, seed: int) -> torch.Tensor:
        k = split.num_classes
        for key in ("source", "target"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < k:
                raise ParameterError(
                    f"The {key!r} parameter of scenario 'poison' must be a class in [0, {k}); got {v!r}."
                )
        if self.source == self.target:
            raise ParameterError(
                f"The 'target' parameter of scenario 'poison' must differ from source; got {self.target}."
            )
        if isinstance(self.share, bool) or not isinstance(self.share, (int, float)) or not 0 < self.share <= 1:
            raise ParameterError(
                f"The 'share' parameter of scenario 'poison' must be a float in (0, 1]; got {self.share!r}."
            )
        members = torch.nonzero(split.train.labels == self.source).flatten()
        count = max(1, round(self.share * members.numel()))
        return members[_seeded_rows(members.numel(), count, seed, 15485863)].sort().values

    def training_data(self, split: DataSplit, *, seed: int) -> View:
        train = split.train
        y = train.y.clone()  # labels only: images are shared, not copied
        y[train.indices[self._positions(split, seed=seed)]] = self.target
        return View(train.x, y, train.indices, "train")

    def request(self, split: DataSplit, *, seed: int) -> ForgetRequest:
        return ForgetRequest.from_indices(self._positions(split, seed=seed))

    def default_request(self) -> ForgetRequest:
        raise ParameterError("the 'poison' scenario's forget set depends on the data; use request(split, seed=...)")

    def extras(self, split: DataSplit, *, seed: int) -> dict[str, View]:
        h = split.holdout
        return {"reference": View(h.x, h.y, h.indices, "reference")}

    def prepare(
        self, split: DataSplit, *, seed: int, request: ForgetRequest | None = None, forgotten: Any = None
    ) -> Splits:
        splits = super().prepare(split, seed=seed, request=request, forgotten=forgotten)
        true = View(split.train.x, split.train.y, splits.forget.indices, "forget_true")
        return splits.with_extras(forget_true=true).with_info(poisoned_class=self.source)


@dataclass(frozen=True)
class OODScenario(Scenario):
    """003's out-of-distribution unlearning: insert ``count`` images of another dataset, forget them.

    Each inserted image gets a label drawn uniformly (seeded) from the target's
    classes; the forget set is exactly the inserted samples. The extra view
    ``reference`` holds ``reference_count`` other, never-trained images of the
    inserted dataset (labelled the same way): the non-members Forsaken's P comes
    from. Default: Fashion-MNIST images into MNIST (the paper's 200 and 1,000);
    ``source_dataset="mnist"`` on Fashion-MNIST is the reverse. On text, the other
    corpus's documents are encoded with the target's vocabulary (``source_dataset=
    "rotten_tomatoes"`` into ``reuters``, ``"reuters"`` into ``rotten_tomatoes``).
    """

    name: ClassVar[str] = "ood"
    source_dataset: str = "fashion_mnist"
    count: int = 200
    reference_count: int = 1000

    def _inserted(
        self, split: DataSplit, *, seed: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        from unlearnkit.data.datasets import cached_dataset

        other = cached_dataset(self.source_dataset)  # training_data and extras both need it: loaded once
        target = split.dataset
        if target.input_kind != other.input_kind:
            raise ParameterError(
                f"The 'source_dataset' parameter of scenario 'ood' must hold {target.input_kind} like {target.name!r}; "
                f"{self.source_dataset!r} holds {other.input_kind}."
            )
        if target.input_kind == "tokens":  # text: the other corpus's documents in the target's vocabulary
            return self._inserted_text(split, other, seed=seed)
        if tuple(other.input_shape) != tuple(split.dataset.input_shape):
            raise ParameterError(
                f"The 'source_dataset' parameter of scenario 'ood' must have the target's input shape "
                f"{tuple(split.dataset.input_shape)}; {self.source_dataset!r} has {tuple(other.input_shape)}."
            )
        n = other.train_x.shape[0]
        _check_count(self.name, "count", self.count, n // 2)
        _check_count(self.name, "reference_count", self.reference_count, n - self.count)
        g = torch.Generator().manual_seed(int(seed) + 32452843)
        rows = torch.randperm(n, generator=g)[: self.count + self.reference_count]
        labels = torch.randint(0, split.num_classes, (rows.numel(),), generator=g)
        ins, ref = rows[: self.count], rows[self.count :]
        return other.train_x[ins], labels[: self.count], other.train_x[ref], labels[self.count :]

    def _inserted_text(
        self, split: DataSplit, other: Any, *, seed: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """003's OOD text: documents of another corpus, encoded with the target's vocabulary (words it lacks are
        unknown), each with a seeded random label of the target's classes."""
        n = len(other.train_text)
        _check_count(self.name, "count", self.count, n // 2)
        _check_count(self.name, "reference_count", self.reference_count, n - self.count)
        g = torch.Generator().manual_seed(int(seed) + 32452843)
        rows = torch.randperm(n, generator=g)[: self.count + self.reference_count]
        labels = torch.randint(0, split.num_classes, (rows.numel(),), generator=g)
        vocabulary = getattr(split.dataset, "vocabulary", None)
        assert vocabulary is not None  # a dataset of token inputs is a TextDataset
        x = vocabulary.encode([other.train_text[int(i)] for i in rows], what=f"{other.name} documents")
        return x[: self.count], labels[: self.count], x[self.count :], labels[self.count :]

    def training_data(self, split: DataSplit, *, seed: int) -> View:
        x_in, y_in, _, _ = self._inserted(split, seed=seed)
        train = split.train
        x = torch.cat([train.x[train.indices], x_in])
        y = torch.cat([train.y[train.indices], y_in])
        return View.of(x, y, "train")

    def request(self, split: DataSplit, *, seed: int) -> ForgetRequest:
        n = len(split.train)
        return ForgetRequest.from_indices(torch.arange(n, n + self.count))

    def default_request(self) -> ForgetRequest:
        raise ParameterError("the 'ood' scenario's forget set depends on the data; use request(split, seed=...)")

    def extras(self, split: DataSplit, *, seed: int) -> dict[str, View]:
        _, _, x_ref, y_ref = self._inserted(split, seed=seed)
        return {"reference": View.of(x_ref, y_ref, "reference")}


@dataclass(frozen=True)
class BackdoorScenario(Scenario):
    """000 pattern B: class ``target_class``'s training images carry a feature (a backdoor); forget the feature.

    The original trains on D_r ∪ D_f (class c stamped with ``transform``); the
    forget set is D_f (those rows). Extra views: ``forget_clean`` (D_f,clean,
    row-aligned with the forget set), the test versions of the four datasets
    (``test_retain``, ``test_forget``, ``test_forget_clean``, ``test_extra``) and
    the holdout versions used to choose settings (``holdout_retain``,
    ``holdout_extra``). ``leakage`` is the same data read as pattern C.
    """

    name: ClassVar[str] = "backdoor"
    kind: ClassVar[str] = "features"
    pattern: ClassVar[str] = "B"
    transform: str = "tile"
    target_class: int = 0

    def _check(self, split: DataSplit) -> float:
        from unlearnkit.data.features import TRANSFORMS

        TRANSFORMS.get(self.transform)
        if split.dataset.input_kind != "continuous":
            raise ParameterError(
                f"The {self.name!r} scenario stamps a pixel pattern into images; the {split.dataset.name!r} dataset "
                f"holds {split.dataset.input_kind} (text has no pixels to stamp)."
            )
        k = split.num_classes
        c = self.target_class
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < k or not bool((split.train.labels == c).any()):
            raise ParameterError(
                f"The 'target_class' parameter of scenario {self.name!r} must be a class present in the training "
                f"data (0..{k - 1}); got {c!r}."
            )
        return float(split.dataset.train_x.max())

    def training_data(self, split: DataSplit, *, seed: int) -> View:
        from unlearnkit.data.features import apply_transform

        high = self._check(split)
        x, y = split.train.tensors()
        mask = y == self.target_class
        stamped = apply_transform(self.transform, View.of(x[mask], y[mask]), high=high, label="D_f")
        x[mask] = stamped.x
        return View.of(x, y, "train")

    def request(self, split: DataSplit, *, seed: int) -> ForgetRequest:
        return ForgetRequest.from_indices(torch.nonzero(split.train.labels == self.target_class).flatten())

    def default_request(self) -> ForgetRequest:
        raise ParameterError(
            f"the {self.name!r} scenario's forget set depends on the data; use request(split, seed=...)"
        )

    def extras(self, split: DataSplit, *, seed: int) -> dict[str, View]:
        from unlearnkit.data.features import apply_transform, class_rows

        high = self._check(split)
        c, t = self.target_class, self.transform
        test_other, holdout_other = class_rows(split.test, c, other=True), class_rows(split.holdout, c, other=True)
        x, y = class_rows(split.train, c).tensors()
        return {
            "forget_clean": View.of(x, y, "forget_clean"),
            "test_retain": View.of(*test_other.tensors(), "test_retain"),
            "test_forget": apply_transform(t, class_rows(split.test, c), high=high, label="test_forget"),
            "test_forget_clean": View.of(*class_rows(split.test, c).tensors(), "test_forget_clean"),
            "test_extra": apply_transform(t, test_other, high=high, label="test_extra"),
            "holdout_retain": View.of(*holdout_other.tensors(), "holdout_retain"),
            "holdout_extra": apply_transform(t, holdout_other, high=high, label="holdout_extra"),
        }

    def prepare(
        self, split: DataSplit, *, seed: int, request: ForgetRequest | None = None, forgotten: Any = None
    ) -> Splits:
        splits = super().prepare(split, seed=seed, request=request, forgotten=forgotten)
        return splits.with_info(request_kind="features", target_class=self.target_class, transform=self.transform,
                                pattern=self.pattern)  # fmt: skip


@dataclass(frozen=True)
class LeakageScenario(BackdoorScenario):
    """000 pattern C: the same four datasets, read as leaked information to forget (keep D_f accurate)."""

    name: ClassVar[str] = "leakage"
    pattern: ClassVar[str] = "C"


@dataclass(frozen=True)
class MemorizedScenario(Scenario):
    """Forget the training samples the model memorises most (Feldman's memorisation score).

    On a model that generalises, a random forget set is trivial — doing nothing
    already matches retraining — but its most memorised samples are not: a
    model trained without them gets them wrong. The forget set is the
    ``count`` samples of highest ``mem(x) = P[correct | x trained] −
    P[correct | x not trained]``, estimated from ``models`` models of the unit's
    architecture and recipe, each trained on a seeded random half of the
    training set; ``random_share`` of the ``count`` is instead drawn at random
    (seeded) from the rest, for a mix of hard and typical samples. Ties in the
    score are broken in a seeded random order (with 32 half-models, hundreds of
    MNIST images score exactly 1: always right when trained on, always wrong
    when not — ranking them by position would favour the first rows); a sample
    no half-model left out (or none trained on) has no score and is ranked last.

    The scores need trained models, which this layer does not make: the
    running layer computes them (:func:`unlearnkit.running.memorization.prepare_splits`,
    used by ``unlearnkit bench`` and ``audit``) and passes ``select(scores)`` as
    the request.
    """

    name: ClassVar[str] = "memorized"
    needs: ClassVar[tuple[str, ...]] = ("memorization",)
    count: int = 100
    random_share: float = 0.0
    models: int = 32

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ParameterError(
                f"The 'count' parameter of scenario 'memorized' must be an int >= 1; got {self.count!r}."
            )
        share = self.random_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise ParameterError(
                f"The 'random_share' parameter of scenario 'memorized' must be a float in [0, 1]; got {share!r}."
            )
        if isinstance(self.models, bool) or not isinstance(self.models, int) or self.models < 2:
            raise ParameterError(
                f"The 'models' parameter of scenario 'memorized' must be an int >= 2; got {self.models!r}."
            )

    def select(self, scores: Any, *, seed: int) -> ForgetRequest:
        """The forget request from per-training-sample memorisation ``scores`` (NaN: no score, ranked last)."""
        s = torch.as_tensor(np.asarray(scores, dtype=np.float64))
        if s.ndim != 1:
            raise ParameterError(
                f"The 'scores' parameter must be 1-D (one per training sample); got shape {tuple(s.shape)}."
            )
        _check_count(self.name, "count", self.count, s.numel() - 1)
        n_random = round(self.random_share * self.count)
        ranked = torch.where(torch.isnan(s), torch.full_like(s, -math.inf), s)
        shuffle = torch.randperm(s.numel(), generator=torch.Generator().manual_seed(int(seed) + 49979687))
        order = shuffle[torch.sort(-ranked[shuffle], stable=True).indices]  # highest first; ties in seeded order
        top = order[: self.count - n_random]
        rest = order[self.count - n_random :]
        extra = rest[_seeded_rows(rest.numel(), n_random, seed, 32452843)] if n_random else rest[:0]
        return ForgetRequest.from_indices(torch.cat([top, extra]).sort().values)

    def request(self, split: DataSplit, *, seed: int) -> ForgetRequest:
        raise ParameterError(
            "The 'memorized' scenario needs memorisation scores from models trained on halves of the training set; "
            "run it through a benchmark file (unlearnkit bench / audit), or pass "
            "request=scenario.select(scores, seed=...) with scores from unlearnkit.running.memorization."
        )

    def default_request(self) -> ForgetRequest:
        return self.request(None, seed=0)  # type: ignore[arg-type]


SCENARIOS: Registry[type[Scenario]] = Registry("scenario")
SCENARIOS.register("class", ClassScenario)
SCENARIOS.register("random", RandomScenario)
SCENARIOS.register("mislabel", MislabelScenario)
SCENARIOS.register("id", InDistributionScenario)
SCENARIOS.register("poison", PoisonScenario)
SCENARIOS.register("ood", OODScenario)
SCENARIOS.register("backdoor", BackdoorScenario)
SCENARIOS.register("leakage", LeakageScenario)
SCENARIOS.register("memorized", MemorizedScenario)


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
