"""The :class:`Unlearner` contract shared by every method.

One verb: ``unlearn(model, splits, *, seed=...) -> Outcome``. It returns a NEW
model; the input model stays bit-identical, and its train/eval modes and hooks
are restored even when the method raises.

Each method declares, as class attributes:

* ``needs`` — the data it reads: ``"forget"``, ``"retain"``, ``"retain_subset"``,
  ``"holdout"``, ``"extra"``, the original training ``"recipe"``, a model
  ``"prepared"`` at training time, a ``"linear_head"``;
* ``supports`` — request kinds it handles: ``"classes"``, ``"samples"``
  (later: ``"features"``);
* ``parameter_constraints`` — its settings, checked with the project's one
  error template;
* ``identity_params`` — settings under which it must return the input model
  unchanged (e.g. 0 epochs), or ``identity_exempt`` saying why none exists.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from unlearnkit.core.models import evaluating
from unlearnkit.core.training import TrainConfig
from unlearnkit.data.splits import Splits, View
from unlearnkit.errors import ParameterError, UnsupportedRequestError
from unlearnkit.validation import SEED_MAX, Constraint, Interval, NoneOr, Options, validate_parameters

#: The composable saliency mask (SalUn, Fan et al. 2024): a method that trains with torch optimizers adds these
#: settings to its defaults and constraints; ``mask="saliency"`` then lets only the top ``mask_ratio`` share of
#: weights by forget-gradient magnitude change (every optimizer step is followed by restoring the others).
MASK_DEFAULTS: dict[str, Any] = {"mask": None, "mask_ratio": 0.5}
MASK_CONSTRAINTS: dict[str, Constraint] = {
    "mask": NoneOr(Options(("saliency",))),
    "mask_ratio": Interval(float, 0, 1, closed="right"),
}

#: The trainer settings most training-based methods share (their constraints, declared once).
TRAINER_CONSTRAINTS: dict[str, Constraint] = {
    "epochs": Interval(int, 0, None),
    "lr": Interval(float, 0, None, closed="neither"),
    "batch_size": Interval(int, 1, None),
    "optimizer": Options(("sgd", "adam")),
    "momentum": Interval(float, 0, 1, closed="left"),
}

NEEDS = frozenset({"forget", "retain", "retain_subset", "holdout", "extra", "recipe", "prepared", "linear_head"})
KINDS = frozenset({"classes", "samples", "features"})


@dataclass
class Outcome:
    """What :meth:`Unlearner.unlearn` returns.

    Attributes:
        model: The new, unlearned model (the input model is untouched).
        method: Registry name of the method.
        params: The settings used.
        seconds: Wall time of the unlearning call.
        steps: Optimiser steps taken (0 for closed-form methods).
        samples_seen: Forward passes per split ("forget", "retain", ...): the
            data the method touched.
        diagnostics: Method-specific extras (loss history, ...).
    """

    model: nn.Module
    method: str
    params: dict[str, Any]
    seconds: float
    steps: int = 0
    samples_seen: dict[str, int] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """Everything a method's ``_unlearn`` may use besides the working copy.

    ``original`` is the caller's model: read it (e.g. as a teacher), never
    train it. ``count(split, n)`` records data touched.
    """

    original: nn.Module
    splits: Splits
    seed: int
    device: torch.device
    progress: bool
    recipe: TrainConfig | None
    generator: torch.Generator
    track_validation: bool = False
    steps: int = 0
    touched: Counter[str] = field(default_factory=Counter)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    excluded_seconds: float = 0.0
    val_accuracy: list[float] = field(default_factory=list)

    def count(self, split: str, n: int) -> None:
        self.touched[split] += int(n)

    def end_epoch(self, model: nn.Module) -> None:
        """Record holdout (validation) accuracy after an epoch, when tracking is on.

        Its cost is excluded from the method's reported seconds. For class
        requests it is measured on the remaining classes only.
        """
        if not self.track_validation:
            return
        from unlearnkit.evaluation.outputs import outputs_of
        from unlearnkit.evaluation.scores import accuracy

        start = time.perf_counter()
        splits = self.splits
        out = outputs_of(model, splits.holdout, device=self.device)
        if splits.forget_classes:
            out = out.of_classes(splits.remaining_classes)
        acc = accuracy(out, splits.remaining_classes if splits.forget_classes else None)
        self.val_accuracy.append(float("nan") if acc is None else acc)
        self.excluded_seconds += time.perf_counter() - start


class _Guard:
    """Snapshot of a module tree's train/eval flags and hooks; restores both.

    Hooks a method registered on the caller's model and forgot to remove are
    removed; flags are set back. Used in a ``finally`` so it holds on errors.
    """

    _HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")

    def __init__(self, model: nn.Module) -> None:
        self.modes = [(m, m.training) for m in model.modules()]
        self.hooks = [
            (m, name, set(getattr(m, name).keys()))
            for m in model.modules()
            for name in self._HOOK_DICTS
            if hasattr(m, name)
        ]

    def restore(self) -> None:
        for m, mode in self.modes:
            m.training = mode
        for m, name, keys in self.hooks:
            d = getattr(m, name)
            for k in list(d.keys()):
                if k not in keys:
                    del d[k]


class Unlearner:
    """Base class of all unlearning methods.

    Subclasses set the class attributes below and implement
    :meth:`_unlearn`, which receives a private copy of the model to change.
    Constructor arguments are the method's settings, stored as given and
    validated when :meth:`unlearn` (or :meth:`validate_params`) runs.
    """

    name: ClassVar[str] = "unlearner"
    needs: ClassVar[frozenset[str]] = frozenset()
    supports: ClassVar[frozenset[str]] = frozenset({"classes", "samples"})
    defaults: ClassVar[dict[str, Any]] = {}
    parameter_constraints: ClassVar[dict[str, Constraint]] = {}
    identity_params: ClassVar[dict[str, Any] | None] = None
    identity_exempt: ClassVar[str | None] = None
    #: The search space every method is tuned over with the same budget (``unlearnkit tune``, the fair
    #: leaderboard): ``{setting: {"low", "high", "log"?} | {"choices": [...]}}``, declared beside the defaults.
    #: None derives one from the defaults (:func:`unlearnkit.running.tuning.default_space`).
    search_space: ClassVar[dict[str, dict[str, Any]] | None] = None
    #: Input kinds it can handle: ``"continuous"`` (images, features) and ``"tokens"`` (token ids). A method that
    #: perturbs inputs (FGSM, learned noise) declares continuous only, so a text model is refused in one line.
    input_kinds: ClassVar[frozenset[str]] = frozenset({"continuous", "tokens"})
    #: Whether it handles a language model's per-position outputs ``(B, V, L)`` and labels ``(N, L)``. A method that
    #: reads one output vector per sample (a confusion matrix, a teacher of another width) says False.
    sequence_outputs: ClassVar[bool] = True
    #: For ``"prepared"`` in ``needs``: the :class:`~unlearnkit.core.preparation.PreparedModel` subclass required.
    prepared_type: ClassVar[type[nn.Module] | None] = None

    def __init__(self, **params: Any) -> None:
        unknown = set(params) - set(self.defaults)
        if unknown:
            name = sorted(unknown)[0]
            valid = ", ".join(sorted(self.defaults)) or "none"
            raise ParameterError(
                f"{type(self).__name__} got an unexpected parameter {name!r}; valid parameters: {valid}."
            )
        self.params: dict[str, Any] = {**self.defaults, **params}

    def __getattr__(self, key: str) -> Any:
        params = self.__dict__.get("params")
        if params is not None and key in params:
            return params[key]
        raise AttributeError(key)

    def __repr__(self) -> str:
        changed = ", ".join(f"{k}={v!r}" for k, v in self.params.items() if self.defaults.get(k) != v)
        return f"{type(self).__name__}({changed})"

    def get_params(self) -> dict[str, Any]:
        return dict(self.params)

    def validate_params(self) -> None:
        """Check the settings against ``parameter_constraints`` (one error template)."""
        validate_parameters(type(self).__name__, self.params, self.parameter_constraints)

    def check_request(self, splits: Splits) -> None:
        if splits.kind not in self.supports:
            raise UnsupportedRequestError(
                f"method {self.name!r} does not support {splits.kind} requests; it supports: "
                f"{', '.join(sorted(self.supports))}."
            )

    def check_model(self, model: nn.Module) -> None:
        """Refuse a plain model when the method needs one prepared at training time."""
        kind = self.prepared_type
        if "prepared" in self.needs and kind is not None and not isinstance(model, kind):
            how = getattr(kind, "how", "")
            raise ParameterError(
                f"The 'model' parameter of {type(self).__name__}.unlearn must be a {kind.__name__} prepared at "
                f"training time ({how}); got a {type(model).__name__}."
            )

    def unlearn(
        self,
        model: nn.Module,
        splits: Splits,
        *,
        seed: int = 0,
        recipe: TrainConfig | None = None,
        device: str | torch.device = "cpu",
        progress: bool = False,
        track_validation: bool = False,
    ) -> Outcome:
        """Return an :class:`Outcome` whose model has forgotten ``splits.forget``.

        Args:
            model: The trained model; never modified.
            splits: Retain / forget / holdout / test views for the request.
            seed: Seeds all randomness of the method (same seed, same result).
            recipe: The original training recipe (required by ``retrain``).
            device: Where to compute.
            progress: Show a progress bar on long work.
            track_validation: Record holdout accuracy after every epoch (its
                time is not counted) and report ``epochs_to_best`` in diagnostics.
        """
        self.validate_params()
        check_seed(seed)
        self.check_request(splits)
        kind = "continuous" if splits.train.x.is_floating_point() else "tokens"
        if kind not in self.input_kinds:
            raise UnsupportedRequestError(
                f"method {self.name!r} perturbs its inputs and supports {', '.join(sorted(self.input_kinds))} inputs; "
                f"these splits hold {kind} ({splits.train.x.dtype})."
            )
        if not self.sequence_outputs and splits.train.y.dim() > 1:
            raise UnsupportedRequestError(
                f"method {self.name!r} reads one output vector per sample; these splits hold a language model's "
                f"per-position labels (shape {tuple(splits.train.y.shape)})."
            )
        self.check_model(model)
        check_inputs(model, splits, needs=self.needs)
        if "recipe" in self.needs and recipe is None:
            raise ParameterError(
                f"The 'recipe' parameter of {type(self).__name__}.unlearn must be the original TrainConfig; got None."
            )
        guard = _Guard(model)
        dev = torch.device(device)
        start = time.perf_counter()
        try:
            cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
            with torch.random.fork_rng(devices=cuda):  # manual_seed seeds CUDA too: its state is put back
                torch.manual_seed(int(seed))
                work = copy.deepcopy(model).to(dev)
                ctx = Context(
                    original=model,
                    splits=splits,
                    seed=int(seed),
                    device=dev,
                    progress=progress,
                    recipe=recipe,
                    generator=torch.Generator().manual_seed(int(seed)),
                    track_validation=track_validation,
                )
                with _masked(work, splits, self.params, ctx):
                    new_model = self._unlearn(work, ctx)
                if kind == "tokens":
                    _retire_forgotten_tokens(new_model, splits, ctx)
            new_model.eval()
        finally:
            guard.restore()
        seconds = time.perf_counter() - start - ctx.excluded_seconds
        if ctx.val_accuracy:
            best = max(range(len(ctx.val_accuracy)), key=lambda i: ctx.val_accuracy[i])
            ctx.diagnostics["val_accuracy"] = ctx.val_accuracy
            ctx.diagnostics["epochs_to_best"] = best + 1
        return Outcome(
            model=new_model,
            method=self.name,
            params=self.get_params(),
            seconds=seconds,
            steps=ctx.steps,
            samples_seen=dict(ctx.touched),
            diagnostics=ctx.diagnostics,
        )

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        raise NotImplementedError


@contextlib.contextmanager
def _masked(model: nn.Module, splits: Splits, params: dict[str, Any], ctx: Context) -> Iterator[None]:
    """With ``mask="saliency"``: after every optimizer step, put back the weights outside the saliency mask."""
    if params.get("mask") != "saliency":
        yield
        return
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from unlearnkit.core.gradients import saliency_mask, trainable

    masks = saliency_mask(model, splits.forget, float(params["mask_ratio"]), device=ctx.device)
    ctx.count("forget", len(splits.forget))
    frozen = {id(p): (p, masks[n], p.detach().clone()) for n, p in trainable(model).items()}
    kept = sum(int(m.sum()) for m in masks.values())
    ctx.diagnostics["mask_kept"] = kept / max(sum(m.numel() for m in masks.values()), 1)

    def restore(optimizer: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    entry = frozen.get(id(p))
                    if entry is not None and entry[0] is p:
                        p.copy_(torch.where(entry[1], p, entry[2]))

    handle = register_optimizer_step_post_hook(restore)
    try:
        yield
    finally:
        handle.remove()


def check_seed(seed: Any) -> None:
    """A seed is an int in [0, 2**32 - 1]: ``None`` would make a run irreproducible without a word."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ParameterError(f"The 'seed' parameter must be an int in [0, {SEED_MAX}]; got {seed!r}.")


def _retire_forgotten_tokens(model: nn.Module, splits: Splits, ctx: Context) -> None:
    """After any method on text: tokens that occur in forgotten rows and no retained row become UNK to the model.

    Their weights were learned from forgotten documents only; a reference retrained
    with a vocabulary refitted on the retain set would not know them at all. The ids
    go to ``diagnostics["retired_tokens"]`` so that the saved vocabulary blanks them.
    """
    from unlearnkit.core.text import retire_tokens
    from unlearnkit.data.text import forgotten_only_ids

    if len(splits.forget) == 0:
        return
    ids = forgotten_only_ids(splits.retain.tensors()[0], splits.forget.tensors()[0])
    if retire_tokens(model, ids):
        ctx.diagnostics["retired_tokens"] = ids


def _vocab_size(model: nn.Module) -> int | None:
    """The vocabulary size of a text model, or of the one a prepared model (SISA, SMU) wraps; None for others."""
    for m in model.modules():
        size = getattr(m, "vocab_size", None)
        if isinstance(size, int):
            return size
    return None


def _check_token_ids(model: nn.Module, view: View, name: str) -> None:
    """Token-id inputs: no empty document (a row of padding only), no id the model has no row for."""
    from unlearnkit.core.text import PAD_ID

    rows = view.x[view.indices]
    if rows.numel() == 0:
        return
    empty = (rows == PAD_ID).all(dim=tuple(range(1, rows.dim()))) if rows.dim() > 1 else rows == PAD_ID
    if bool(empty.any()):
        first = int(view.indices[empty.nonzero()[0, 0]])
        raise ParameterError(
            f"The 'splits' {name} inputs must not hold an empty document (a row of padding only); row {first} is "
            f"empty ({int(empty.sum())} of {len(view)} rows)."
        )
    size = _vocab_size(model)
    lo, hi = int(rows.min()), int(rows.max())
    if lo < 0 or (isinstance(size, int) and hi >= size):
        raise ParameterError(
            f"The 'splits' {name} token ids must lie in [0, {size}) for the model's vocabulary of {size}; got "
            f"{lo}..{hi} (a vocabulary that does not match the model?)."
        )


def check_inputs(model: nn.Module, splits: Splits, *, needs: frozenset[str] = frozenset()) -> None:
    """Refuse, in one line, data and models that would fail deep inside a method or give silent NaNs.

    Inputs must be floating point and finite, labels in [0, k), the holdout split
    non-empty when the method reads it, and the model must run on the inputs
    (same dtype) with at least k outputs (or k minus the forgotten classes, for a
    model that dropped them).
    """
    # The test split is not read here: a method never sees it (Splits.from_tensors checks a user's test tensors).
    views = {"train": splits.train, "holdout": splits.holdout}
    tokens = splits.train.x.dtype == torch.int64
    if tokens and _vocab_size(model) is None and not any(isinstance(m, nn.Embedding) for m in model.modules()):
        raise ParameterError(
            f"The 'splits' train inputs must be floating point (e.g. x.float() / 255) for a {type(model).__name__}; "
            f"got {splits.train.x.dtype} (int64 token ids need a text model, e.g. text_cnn)."
        )
    if not splits.train.x.is_floating_point():  # token ids: every view a method may read, row by row
        for name, view in {**views, **splits.extras}.items():
            _check_token_ids(model, view, name)
    k = splits.num_classes
    checked: set[int] = set()
    for name, view in views.items():
        x, y = view.x, view.y[view.indices]  # views share their dataset's tensor: check each tensor once, uncopied
        if not x.is_floating_point():
            if x.dtype != torch.int64:
                raise ParameterError(
                    f"The 'splits' {name} inputs must be floating point (e.g. x.float() / 255) or int64 token ids; "
                    f"got {x.dtype}."
                )
            checked.add(id(x))  # checked row by row above
        elif id(x) not in checked and x.numel() and not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x[view.indices])).flatten(1).any(1).sum())
            if bad:
                raise ParameterError(
                    f"The 'splits' {name} inputs must be finite; {bad} of {len(view)} rows hold NaN or inf."
                )
        else:
            checked.add(id(x))
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
            raise ParameterError(
                f"The 'splits' {name} labels must lie in [0, {k}) for {k} classes; got {int(y.min())}..{int(y.max())}."
            )
    if "holdout" in needs and len(splits.holdout) == 0:
        raise ParameterError(
            f"The 'splits' holdout split must not be empty: this method reads it; got {len(splits.holdout)} rows."
        )
    example = splits.train.tensors()[0][:2]
    params = [p for p in model.parameters() if p.is_floating_point()]
    if params and example.is_floating_point() and params[0].dtype != example.dtype:
        raise ParameterError(
            f"The 'model' parameter's weights are {params[0].dtype} but the inputs are {example.dtype}; "
            f"convert one of them (model.to({example.dtype}) or x.to({params[0].dtype}))."
        )
    try:
        with evaluating(model):
            width = model(example.to(params[0].device) if params else example).shape[1]  # (B, k) or (B, k, L)
    except RuntimeError as exc:
        raise ParameterError(
            f"The 'model' parameter cannot run on the inputs of shape {tuple(example.shape[1:])}: "
            f"{' '.join(str(exc).split())[:200]}"
        ) from None
    if width != k and width != k - len(splits.forget_classes):
        raise ParameterError(
            f"The 'model' parameter must have one output per class ({k}); it has {width} "
            "(labels outside the model's outputs cannot be learned or forgotten)."
        )
