"""Views, the train/holdout/test split, forget requests and :class:`Splits`.

Everything here refers to rows of resident tensors by index; nothing copies
image data until a batch is drawn.

* :func:`split_dataset` splits a dataset once, seeded, into train / holdout /
  test. The holdout part is never trained on: validation, tuning and methods
  that need "data the model never saw" draw from it, so the test split is used
  only for final evaluation.
* :class:`ForgetRequest` says what to forget: whole classes, explicit training
  indices, or a seeded random fraction / count.
* :class:`Splits` resolves a request against the training set into retain /
  forget / holdout / test views, plus any extra views a method needs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from unlearnkit.data.datasets import Dataset
from unlearnkit.errors import ParameterError, RequestError


@dataclass(frozen=True, eq=False)
class View:
    """Rows ``indices`` of the tensors ``x`` and ``y``, without copying them.

    Args:
        x: Inputs, shape ``(N, ...)``.
        y: Integer labels, shape ``(N,)``.
        indices: ``int64`` row indices into ``x`` / ``y``, shape ``(n,)``.
        name: What the view is ("retain", "forget", ...), for messages.
    """

    x: torch.Tensor
    y: torch.Tensor
    indices: torch.Tensor
    name: str = "view"

    @classmethod
    def of(cls, x: torch.Tensor, y: torch.Tensor, name: str = "view") -> View:
        """A view over all rows of ``x`` / ``y`` (e.g. a user's own tensors)."""
        if x.shape[0] != y.shape[0]:
            raise ParameterError(
                f"The 'y' parameter must have one label per row of x ({x.shape[0]}); got {y.shape[0]}."
            )
        return cls(x, y.long(), torch.arange(x.shape[0]), name)

    def __len__(self) -> int:
        return int(self.indices.numel())

    @property
    def labels(self) -> torch.Tensor:
        return self.y[self.indices]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Materialise the rows (a copy): ``(x[indices], y[indices])``."""
        return self.x[self.indices], self.y[self.indices]

    def subset(self, positions: torch.Tensor | Sequence[int], name: str | None = None) -> View:
        """The rows at ``positions`` of this view (positions are 0..len-1)."""
        pos = torch.as_tensor(positions, dtype=torch.long)
        return View(self.x, self.y, self.indices[pos], name or self.name)

    def batches(
        self, batch_size: int, *, generator: torch.Generator | None = None, shuffle: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` batches; shuffled with ``generator`` when ``shuffle``."""
        for b in self.index_batches(batch_size, generator=generator, shuffle=shuffle):
            yield self.x[b], self.y[b]

    def index_batches(
        self, batch_size: int, *, generator: torch.Generator | None = None, shuffle: bool = False
    ) -> Iterator[torch.Tensor]:
        """The row indices of each batch :meth:`batches` yields (same order, same RNG use)."""
        idx = self.indices
        if shuffle:
            idx = idx[torch.randperm(idx.numel(), generator=generator)]
        for start in range(0, idx.numel(), batch_size):
            yield idx[start : start + batch_size]

    def classes(self) -> list[int]:
        return sorted(int(c) for c in torch.unique(self.labels))


@dataclass(frozen=True, eq=False)
class DataSplit:
    """A dataset split once into train / holdout / test views.

    ``train`` is the training set an original model is trained on (possibly a
    seeded subset of size ``train_size``); indices in forget requests are
    positions 0..len(train)-1 into it.
    """

    dataset: Dataset
    train: View
    holdout: View
    test: View
    seed: int
    holdout_fraction: float
    train_size: int | None

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    def train_rows_sha256(self) -> str:
        """SHA-256 of the dataset rows the train split holds (int64, in order).

        Stored in a model's sidecar and checked when the split is rebuilt, so an
        edited split seed, size or dataset (which would make forget indices name
        other samples) is caught. It catches accidents and naive edits, not a
        determined forger, who can recompute it.
        """
        return hashlib.sha256(self.train.indices.numpy().astype(np.int64).tobytes()).hexdigest()

    def describe(self) -> dict[str, object]:
        return {
            "dataset": self.dataset.name,
            "seed": self.seed,
            "holdout_fraction": self.holdout_fraction,
            "train_size": self.train_size,
            "n_train": len(self.train),
            "n_holdout": len(self.holdout),
            "n_test": len(self.test),
        }


def split_dataset(
    dataset: Dataset,
    *,
    seed: int = 0,
    holdout_fraction: float = 0.1,
    train_size: int | None = None,
) -> DataSplit:
    """Split ``dataset``'s training partition into train and holdout, seeded.

    Args:
        dataset: The loaded dataset; its test partition is the test split.
        seed: Seed of the permutation (the same seed always gives the same split).
        holdout_fraction: Share of the training partition kept out of training.
        train_size: Train on a seeded subset of this many samples (small
            training sets make a model memorise, which random forgetting needs).

    Example:
        >>> from unlearnkit.data import load_dataset
        >>> s = split_dataset(load_dataset("digits"), seed=0, train_size=500)
        >>> len(s.train), len(s.holdout)
        (500, 134)
    """
    n = dataset.train_x.shape[0]
    if not (0.0 < holdout_fraction < 1.0):
        raise ParameterError(f"The 'holdout_fraction' parameter must be a float in (0, 1); got {holdout_fraction!r}.")
    n_holdout = max(1, round(n * holdout_fraction))
    available = n - n_holdout
    if train_size is not None and not (isinstance(train_size, int) and 1 < train_size <= available):
        raise ParameterError(
            f"The 'train_size' parameter must be an int in [2, {available}] for {dataset.name} "
            f"with holdout_fraction={holdout_fraction}; got {train_size!r}."
        )
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=g)
    holdout_rows = perm[:n_holdout].sort().values
    train_rows = perm[n_holdout:]
    if train_size is not None:
        train_rows = train_rows[:train_size]
    train_rows = train_rows.sort().values
    return DataSplit(
        dataset=dataset,
        train=View(dataset.train_x, dataset.train_y, train_rows, "train"),
        holdout=View(dataset.train_x, dataset.train_y, holdout_rows, "holdout"),
        test=View(dataset.test_x, dataset.test_y, torch.arange(dataset.test_x.shape[0]), "test"),
        seed=int(seed),
        holdout_fraction=float(holdout_fraction),
        train_size=train_size,
    )


@dataclass(frozen=True)
class ForgetRequest:
    """What to forget. Build it with one of the constructors.

    Exactly one of ``classes``, ``indices``, ``fraction`` or ``count`` is set.
    Indices are positions into the training set (0..n_train-1). Random
    requests are drawn with the seed given to :meth:`resolve`, per class when
    ``stratified``.

    Example:
        >>> ForgetRequest.random_fraction(0.1).kind
        'samples'
        >>> ForgetRequest.from_classes([3]).kind
        'classes'
    """

    classes: tuple[int, ...] | None = None
    indices: tuple[int, ...] | None = None
    fraction: float | None = None
    count: int | None = None
    stratified: bool = True

    def __post_init__(self) -> None:
        set_fields = [f for f in ("classes", "indices", "fraction", "count") if getattr(self, f) is not None]
        if len(set_fields) != 1:
            raise RequestError(
                f"a forget request needs exactly one of classes, indices, fraction or count; got {set_fields or 'none'}"
            )
        if self.fraction is not None and (isinstance(self.fraction, bool) or not (0.0 < float(self.fraction) < 1.0)):
            raise RequestError(f"The 'forget_fraction' parameter must be a float in (0, 1); got {self.fraction!r}.")
        if self.count is not None and (isinstance(self.count, bool) or int(self.count) < 1):
            raise RequestError(f"The 'forget_count' parameter must be an int >= 1; got {self.count!r}.")
        if self.classes is not None and len(self.classes) == 0:
            raise RequestError("The 'forget_classes' parameter must name at least one class; got [].")
        if self.indices is not None and len(self.indices) == 0:
            raise RequestError("The 'forget_indices' parameter must hold at least one index; got an empty list.")

    # -- constructors ------------------------------------------------------
    @classmethod
    def from_classes(cls, classes: Sequence[int]) -> ForgetRequest:
        return cls(classes=tuple(int(c) for c in classes))

    @classmethod
    def from_indices(cls, indices: Sequence[int] | np.ndarray | torch.Tensor) -> ForgetRequest:
        arr = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices)
        if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise RequestError(
                "The 'forget_indices' parameter must be a 1-D sequence of ints; "
                f"got dtype {arr.dtype}, shape {arr.shape}."
            )
        return cls(indices=tuple(int(i) for i in arr))

    @classmethod
    def from_file(cls, path: str | Path) -> ForgetRequest:
        """Read indices from a text file (one integer per line) or a ``.npy`` array."""
        return cls.from_indices(read_integers(path, param="forget_indices"))

    @classmethod
    def from_rows(cls, rows: Sequence[int] | np.ndarray, train_rows: torch.Tensor) -> ForgetRequest:
        """Positions of dataset ``rows`` (what a user holds) in a training set whose rows are ``train_rows``.

        ``train_rows`` is the training view's ``indices`` (sorted dataset rows; saved by
        ``unlearnkit train`` as ``training_rows.json``). A row the model was not trained on is refused.
        """
        want = np.asarray(rows, dtype=np.int64).reshape(-1)
        have = np.asarray(train_rows.cpu(), dtype=np.int64)
        order = np.argsort(have, kind="stable")
        pos = np.searchsorted(have[order], want)
        found = (pos < have.size) & (have[order][np.minimum(pos, have.size - 1)] == want)
        if not found.all():
            missing = want[~found]
            raise RequestError(
                f"The 'forget_rows' parameter must name rows of the model's training set; {missing.size} of "
                f"{want.size} are not in it (e.g. row {int(missing[0])}: a holdout or test row, or out of range)."
            )
        return cls.from_indices(order[pos])

    @classmethod
    def random_fraction(cls, fraction: float, *, stratified: bool = True) -> ForgetRequest:
        return cls(fraction=float(fraction) if not isinstance(fraction, bool) else fraction, stratified=stratified)

    @classmethod
    def random_count(cls, count: int, *, stratified: bool = True) -> ForgetRequest:
        return cls(count=count, stratified=stratified)

    # -- behaviour ---------------------------------------------------------
    @property
    def kind(self) -> str:
        """``"classes"`` for whole-class requests, else ``"samples"``."""
        return "classes" if self.classes is not None else "samples"

    def describe(self) -> dict[str, object]:
        d: dict[str, object] = {"kind": self.kind}
        if self.classes is not None:
            d["classes"] = list(self.classes)
        elif self.indices is not None:
            d["indices_count"] = len(self.indices)
            d["indices_sha256"] = hashlib.sha256(np.asarray(sorted(self.indices), dtype=np.int64).tobytes()).hexdigest()
        elif self.fraction is not None:
            d.update(fraction=self.fraction, stratified=self.stratified)
        else:
            d.update(count=self.count, stratified=self.stratified)
        return d

    def resolve(self, labels: torch.Tensor, num_classes: int, *, seed: int = 0) -> torch.Tensor:
        """Sorted positions (``int64``) of the samples to forget among ``labels``.

        Raises:
            RequestError: indices out of range, negative or duplicated; an
                unknown class; an empty forget set; or all of the training set.
        """
        n = int(labels.shape[0])  # one label per sample, or (n, L) next tokens per language-model window
        if self.classes is not None:
            for c in self.classes:
                if not (0 <= c < num_classes):
                    raise RequestError(
                        f"The 'forget_classes' parameter must hold classes in [0, {num_classes}); got {c}."
                    )
            if len(set(self.classes)) != len(self.classes):
                raise RequestError(f"The 'forget_classes' parameter must not repeat a class; got {list(self.classes)}.")
            if num_classes - len(self.classes) < 2:
                raise RequestError(
                    f"The 'forget_classes' parameter must leave at least two of the {num_classes} classes (a class "
                    f"request needs a dataset of three or more classes); got {list(self.classes)}."
                )
            mask = torch.isin(labels, torch.tensor(self.classes, dtype=labels.dtype))
            positions = torch.nonzero(mask).flatten()
            if positions.numel() == 0:
                raise RequestError(
                    f"The 'forget_classes' parameter names classes with no training samples; got {list(self.classes)}."
                )
        elif self.indices is not None:
            arr = torch.tensor(self.indices, dtype=torch.long)
            if int(arr.min()) < 0:
                raise RequestError(
                    f"The 'forget_indices' parameter must hold non-negative indices; got {int(arr.min())}."
                )
            if int(arr.max()) >= n:
                raise RequestError(
                    f"The 'forget_indices' parameter must hold indices in [0, {n}) (the training set size); "
                    f"got {int(arr.max())}."
                )
            uniq, counts = torch.unique(arr, return_counts=True)
            if bool((counts > 1).any()):
                raise RequestError(
                    f"The 'forget_indices' parameter must not repeat an index; got {int(uniq[counts > 1][0])} "
                    f"{int(counts.max())} times."
                )
            positions = uniq
        else:
            positions = self._draw(labels, num_classes, seed)
        if positions.numel() >= n:
            raise RequestError(
                f"The forget set must leave some training data to retain; it covers all {n} training samples."
            )
        return positions.sort().values

    def _draw(self, labels: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
        n = int(labels.shape[0])
        total = round(n * float(self.fraction)) if self.fraction is not None else int(self.count or 0)
        if total < 1:
            raise RequestError(f"The 'forget_fraction' parameter selects no sample of {n}; got {self.fraction!r}.")
        if total >= n:
            raise RequestError(
                f"The 'forget_count' parameter must be smaller than the training set ({n}); got {total}."
            )
        g = torch.Generator().manual_seed(int(seed) + 7919)  # offset: request draw != model init stream
        if not self.stratified:
            return torch.randperm(n, generator=g)[:total]
        # Stratified: each class contributes in proportion to its size, the
        # leftover picks going to the largest remainders (ties by class id).
        counts = torch.bincount(labels, minlength=num_classes).double()
        exact = counts * total / n
        take = exact.floor().long()
        rest = total - int(take.sum())
        if rest > 0:
            order = torch.argsort(-(exact - take.double()), stable=True)[:rest]
            take[order] += 1
        chosen = []
        for c in range(num_classes):
            if int(take[c]) == 0:
                continue
            members = torch.nonzero(labels == c).flatten()
            chosen.append(members[torch.randperm(members.numel(), generator=g)[: int(take[c])]])
        return torch.cat(chosen)


_INTEGER = re.compile(r"-?[0-9]+")  # ASCII digits only: no "1_000", "+5", "1e3" or full-width digits
NPY_MAGIC = b"\x93NUMPY"


def read_integers(path: str | Path, *, param: str) -> np.ndarray:
    """Integers from a text file (one per line; blank lines and ``#`` comments skipped; a UTF-8 BOM is fine)
    or a ``.npy`` array (read without pickle)."""
    p = Path(path)
    if not p.is_file():
        raise RequestError(f"The '{param}' file {str(p)!r} does not exist.")
    if p.suffix == ".npy":
        with open(p, "rb") as f:
            head = f.read(len(NPY_MAGIC))
        if head != NPY_MAGIC:
            raise RequestError(
                f"The '{param}' file {str(p)!r} is not a .npy array (it does not start with the NumPy file "
                "signature); write it with numpy.save, or give a text file with one integer per line."
            )
        try:
            arr = np.load(p, allow_pickle=False)  # never unpickle user files
        except Exception as exc:
            reason = "it holds Python objects, which are never unpickled" if "pickle" in str(exc) else str(exc)
            raise RequestError(
                f"The '{param}' file {str(p)!r} is not a readable .npy integer array: {reason}."
            ) from None
        return np.asarray(arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestError(
            f"The '{param}' file {str(p)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})."
        ) from None
    values = []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if not _INTEGER.fullmatch(s):
            raise RequestError(
                f"The '{param}' file {str(p)!r} must hold one integer (ASCII digits) per line; line {lineno} is {s!r}."
            )
        values.append(int(s))
    return np.asarray(values, dtype=np.int64)


def request_kind(forget_classes: Sequence[int], info: Mapping[str, Any]) -> str:
    """The request kind: ``"features"`` when a scenario says so (000), else classes or samples."""
    if info.get("request_kind") == "features":
        return "features"
    return "classes" if forget_classes else "samples"


@dataclass(frozen=True, eq=False)
class Splits:
    """Retain / forget / holdout / test views for one forget request.

    Args:
        train: The data the original model was trained on.
        forget_positions: Sorted positions (into ``train``) to forget.
        holdout: Never-trained data from the training distribution.
        test: The test split, for final evaluation only.
        num_classes: Number of model outputs ``k``.
        forget_classes: Classes forgotten whole (empty for sample requests).
        extras: Extra named views some methods need (e.g. out-of-distribution data).
        request: The request that produced this forget set (for records).
        forgotten: Sorted positions (into ``train``) forgotten by earlier requests: in neither
            the forget nor the retain set, so a later request never trains on them again.

    Example:
        >>> from unlearnkit.data import load_dataset, split_dataset
        >>> ds = split_dataset(load_dataset("digits"), seed=0)
        >>> s = Splits.from_request(ds, ForgetRequest.from_classes([3]), seed=0)
        >>> s.forget.classes()
        [3]
    """

    train: View
    forget_positions: torch.Tensor
    holdout: View
    test: View
    num_classes: int
    forget_classes: tuple[int, ...] = ()
    extras: Mapping[str, View] = field(default_factory=lambda: MappingProxyType({}))
    request: ForgetRequest | None = None
    info: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    forgotten: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    @classmethod
    def from_request(
        cls,
        split: DataSplit,
        request: ForgetRequest,
        *,
        seed: int = 0,
        train: View | None = None,
        forgotten: torch.Tensor | Sequence[int] | None = None,
    ) -> Splits:
        """Resolve ``request`` against ``train`` (default: ``split.train``).

        ``forgotten``: positions already forgotten by earlier requests; they leave
        both the forget and the retain set (see :meth:`without`).
        """
        train = train if train is not None else split.train
        positions = request.resolve(train.labels, split.num_classes, seed=seed)
        splits = cls(
            train=train,
            forget_positions=positions,
            holdout=split.holdout,
            test=split.test,
            num_classes=split.num_classes,
            forget_classes=tuple(sorted(request.classes)) if request.classes is not None else (),
            request=request,
        )
        return splits.without(forgotten) if forgotten is not None and len(forgotten) else splits

    def without(self, forgotten: torch.Tensor | Sequence[int]) -> Splits:
        """A copy in which the positions ``forgotten`` (earlier deletions) are in neither forget nor retain.

        Positions of the request that an earlier one already forgot are dropped
        from the forget set (they are gone already); a request made only of such
        positions is refused.
        """
        prev = torch.as_tensor(forgotten, dtype=torch.long).flatten().unique()
        n = len(self.train)
        if prev.numel() and (int(prev.min()) < 0 or int(prev.max()) >= n):
            raise RequestError(f"The 'forgotten' positions must lie in [0, {n}); got {prev.min()}..{prev.max()}.")
        prev = torch.cat([self.forgotten, prev]).unique()
        keep = ~torch.isin(self.forget_positions, prev)
        if not bool(keep.any()):
            raise RequestError(
                f"The forget request names only samples that earlier requests already forgot "
                f"({self.forget_positions.numel()} of them); there is nothing left to forget."
            )
        return dataclasses.replace(self, forget_positions=self.forget_positions[keep], forgotten=prev)

    @property
    def n_already_forgotten(self) -> int:
        """How many positions earlier requests forgot (excluded from every split here)."""
        return int(self.forgotten.numel())

    @classmethod
    def from_tensors(
        cls,
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        forget: ForgetRequest,
        *,
        x_holdout: torch.Tensor,
        y_holdout: torch.Tensor,
        x_test: torch.Tensor | None = None,
        y_test: torch.Tensor | None = None,
        num_classes: int | None = None,
        seed: int = 0,
    ) -> Splits:
        """Build splits from a user's own tensors (no registered dataset needed).

        ``x_test``/``y_test`` default to the holdout tensors when not given.
        """
        for name, y in (("y_train", y_train), ("y_holdout", y_holdout), ("y_test", y_test)):
            if y is not None and (y.is_floating_point() or y.dtype == torch.bool or y.dim() != 1):
                raise ParameterError(
                    f"The '{name}' parameter must be a 1-D integer tensor of labels; got {y.dtype} {tuple(y.shape)}."
                )
        if len(y_holdout) == 0:
            raise ParameterError(
                "The 'x_holdout' parameter must hold at least one sample: tuning, membership tests and "
                "never-seen references come from the holdout split; got 0 rows."
            )
        k = int(num_classes if num_classes is not None else int(y_train.max()) + 1)
        kinds = {xs.is_floating_point() for xs in (x_train, x_holdout, x_test) if xs is not None}
        for name, xs in (("x_train", x_train), ("x_holdout", x_holdout), ("x_test", x_test)):
            if xs is not None and not xs.is_floating_point() and xs.dtype != torch.int64:
                raise ParameterError(
                    f"The '{name}' parameter must be floating-point inputs (e.g. x.float() / 255) or int64 token "
                    f"ids; got {xs.dtype}."
                )
        if len(kinds) > 1:
            raise ParameterError(
                "The 'x_train', 'x_holdout' and 'x_test' parameters must all be floating point or all int64 token "
                "ids; got a mix."
            )
        if x_test is not None and y_test is not None:  # the methods never read the test split: check it here
            if x_test.is_floating_point() and not bool(torch.isfinite(x_test).all()):
                raise ParameterError("The 'x_test' parameter must be finite; it holds NaN or inf.")
            if y_test.numel() and (int(y_test.min()) < 0 or int(y_test.max()) >= k):
                raise ParameterError(
                    f"The 'y_test' labels must lie in [0, {k}); got {int(y_test.min())}..{int(y_test.max())}."
                )
        train = View.of(x_train, y_train, "train")
        holdout = View.of(x_holdout, y_holdout, "holdout")
        test = View.of(x_test, y_test, "test") if x_test is not None and y_test is not None else holdout
        positions = forget.resolve(train.labels, k, seed=seed)
        return cls(
            train,
            positions,
            holdout,
            test,
            k,
            tuple(sorted(forget.classes)) if forget.classes is not None else (),
            request=forget,
        )

    @property
    def kind(self) -> str:
        """``"classes"``, ``"samples"`` or (a feature scenario's) ``"features"``."""
        return request_kind(self.forget_classes, self.info)

    @cached_property
    def forget(self) -> View:
        return self.train.subset(self.forget_positions, "forget")

    @cached_property
    def retain(self) -> View:
        keep = torch.ones(len(self.train), dtype=torch.bool)
        keep[self.forget_positions] = False
        keep[self.forgotten] = False  # earlier deletions stay deleted
        return self.train.subset(torch.nonzero(keep).flatten(), "retain")

    @property
    def remaining_classes(self) -> list[int]:
        return [c for c in range(self.num_classes) if c not in self.forget_classes]

    def request_hash(self) -> str:
        """SHA-256 of the forget positions: identifies the exact forget set."""
        return hashlib.sha256(self.forget_positions.numpy().astype(np.int64).tobytes()).hexdigest()

    def with_extras(self, **views: View) -> Splits:
        """A copy with extra named views added (e.g. ``ood=View.of(x, y)``)."""
        return dataclasses.replace(self, extras=MappingProxyType({**self.extras, **views}))

    def with_info(self, **info: Any) -> Splits:
        """A copy with scenario facts added (e.g. ``confused_classes=(0, 1)``) that metrics read."""
        return dataclasses.replace(self, info=MappingProxyType({**self.info, **info}))
