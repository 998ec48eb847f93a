"""``scrub``, ``scrub_attention``, ``scrub_similarity``: teacher-student unlearning.

001 (SCRUB workshop paper), Algorithms 1-3 and eq. 3-7. The teacher is the
original model; the student starts as a copy and selectively disobeys it:

* max-epoch over the forget set: ascend ``d(x_f) = KL(teacher || student)``
  (gradient ascent on the distillation loss, Alg. 2);
* min-epoch over the retain set: descend ``alpha * d(x_r) + gamma * CE(x_r)`` (Alg. 3);
* Alg. 1: ``steps`` rounds; a max-epoch precedes the min-epoch in the first
  ``max_steps`` rounds, the remaining rounds only restore retain performance.
* ``early_stop=True`` adds 001 §3's stopping rule: after each round, stop once
  the forget error is above the original's and the holdout error (standing in
  for retain error, which the training data cannot measure honestly) is at most
  ``stop_tolerance`` above the original's. Off by default (the paper's
  experiments fix the number of rounds); its checks are counted in the cost.

The feature variants (eq. 6-7) add the distance between L2-normalised
intermediate features of teacher and student to BOTH the max loss and the min
loss: ``scrub_attention`` over several layers (default: every conv layer and
the last hidden layer), ``scrub_similarity`` over the topmost conv layer (or
the last hidden layer of a model without convolutions).
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.core.distillation import FeatureTaps, default_feature_layers, distill_kl, feature_distance
from unlearnkit.core.training import TrainConfig, make_optimizer, to_device
from unlearnkit.errors import DivergenceError, ParameterError
from unlearnkit.evaluation.outputs import outputs_of
from unlearnkit.evaluation.scores import accuracy
from unlearnkit.methods.base import Context, Unlearner
from unlearnkit.progress import progress_bar
from unlearnkit.validation import Boolean, Constraint, Interval, NoneOr, Options


def _check_finite(loss: torch.Tensor, name: str, round_: int) -> None:
    if not bool(torch.isfinite(loss)):
        raise DivergenceError(
            f"{name} diverged in round {round_ + 1} (non-finite loss); lower 'max_lr' or 'max_steps', "
            "or set 'forget_kl_cap' to bound the ascent."
        )


class _NoTaps:
    """Stand-in for :class:`FeatureTaps` when no feature term is used."""

    def take(self) -> list[torch.Tensor]:
        return []


class SCRUB(Unlearner):
    """SCRUB: alternate max-epochs on the forget set and min-epochs on the retain set.

    Tags: needs forget + retain (and the original model as teacher); supports
    classes and samples; identity at ``steps=0, max_steps=0``.

    Example:
        >>> SCRUB(max_steps=2, steps=4).get_params()["steps"]
        4
    """

    name: ClassVar[str] = "scrub"
    needs: ClassVar[frozenset[str]] = frozenset({"forget", "retain"})
    feature_style: ClassVar[str | None] = None  # None: response distillation only
    defaults: ClassVar[dict[str, Any]] = {
        "alpha": 0.5,
        "gamma": 1.0,
        "temperature": 4.0,
        "max_steps": 2,
        "steps": 4,
        "min_lr": 0.01,
        "max_lr": 0.01,
        "retain_batch_size": 128,
        "forget_batch_size": 32,
        "optimizer": "sgd",
        "momentum": 0.9,
        "forget_kl_cap": None,
        "early_stop": False,
        "stop_tolerance": 0.01,
    }
    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        "alpha": Interval(float, 0, None),
        "gamma": Interval(float, 0, None),
        "temperature": Interval(float, 0, None, closed="neither"),
        "max_steps": Interval(int, 0, None),
        "steps": Interval(int, 0, None),
        "min_lr": Interval(float, 0, None, closed="neither"),
        "max_lr": Interval(float, 0, None, closed="neither"),
        "retain_batch_size": Interval(int, 1, None),
        "forget_batch_size": Interval(int, 1, None),
        "optimizer": Options(("sgd", "adam")),
        "momentum": Interval(float, 0, 1, closed="left"),
        "forget_kl_cap": NoneOr(Interval(float, 0, None, closed="neither")),
        "early_stop": Boolean(),
        "stop_tolerance": Interval(float, 0, 1),
    }
    identity_params: ClassVar[dict[str, Any] | None] = {"steps": 0, "max_steps": 0}

    def validate_params(self) -> None:
        super().validate_params()
        if self.max_steps > self.steps:
            raise ParameterError(
                f"The 'max_steps' parameter of {type(self).__name__} must be at most steps ({self.steps}); "
                f"got {self.max_steps}."
            )

    def _layers(self, model: nn.Module) -> list[str]:
        return []

    def _errors(self, model: nn.Module, ctx: Context) -> tuple[float, float]:
        """(forget error, holdout error) for the stopping rule; the holdout split stands in for retain error."""
        errors = []
        for name, view in (("forget", ctx.splits.forget), ("holdout", ctx.splits.holdout)):
            acc = accuracy(outputs_of(model, view, device=ctx.device))
            ctx.count(name, len(view))
            errors.append(1.0 - (acc or 0.0))
        return errors[0], errors[1]

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        teacher = ctx.original
        teacher.eval()  # the guard in Unlearner.unlearn restores the caller's mode
        base = TrainConfig.from_dict(self.params)
        max_opt = make_optimizer(model.parameters(), TrainConfig.from_dict({**base.to_dict(), "lr": self.max_lr}))
        min_opt = make_optimizer(model.parameters(), TrainConfig.from_dict({**base.to_dict(), "lr": self.min_lr}))
        forget = to_device(ctx.splits.forget, ctx.device)
        retain = to_device(ctx.splits.retain, ctx.device)
        layers = self._layers(model)
        weight = float(self.params.get("feature_weight", 1.0))
        with contextlib.ExitStack() as stack:
            s_taps: Any = stack.enter_context(FeatureTaps(model, layers)) if layers else _NoTaps()
            t_taps: Any = stack.enter_context(FeatureTaps(teacher, layers)) if layers else _NoTaps()

            def losses(x: torch.Tensor, cap: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
                s_logits = model(x)
                s_feats = s_taps.take()
                with torch.no_grad():
                    t_logits = teacher(x)
                    t_feats = t_taps.take()
                kd = distill_kl(s_logits, t_logits, self.temperature, cap=cap)
                feat = weight * feature_distance(s_feats, t_feats) if layers else torch.zeros((), device=x.device)
                return s_logits, kd, feat

            stop_at = self._errors(model, ctx) if self.early_stop else None
            if stop_at is not None:
                ctx.diagnostics["errors_before"] = {"forget": stop_at[0], "holdout": stop_at[1]}
            model.train()
            history: list[dict[str, float]] = []
            for i in progress_bar(range(self.steps), enabled=ctx.progress, desc=self.name, unit="round"):
                record: dict[str, float] = {}
                if i < self.max_steps:  # Alg. 2: ascend the distance to the teacher on the forget set
                    total = 0.0
                    for xf, _ in forget.batches(self.forget_batch_size, generator=ctx.generator, shuffle=True):
                        _, kd, feat = losses(xf, self.forget_kl_cap)
                        _check_finite(kd + feat, self.name, i)
                        max_opt.zero_grad(set_to_none=True)
                        (-(kd + feat)).backward()
                        max_opt.step()
                        ctx.steps += 1
                        ctx.count("forget", xf.shape[0])
                        total += float(kd.detach()) * xf.shape[0]
                    record["max_kl"] = total / max(1, len(forget))
                total = 0.0
                for xr, yr in retain.batches(self.retain_batch_size, generator=ctx.generator, shuffle=True):
                    logits, kd, feat = losses(xr)  # Alg. 3: stay close to the teacher and fit the labels
                    loss = self.alpha * kd + self.gamma * F.cross_entropy(logits, yr) + feat
                    _check_finite(loss, self.name, i)
                    min_opt.zero_grad(set_to_none=True)
                    loss.backward()
                    min_opt.step()
                    ctx.steps += 1
                    ctx.count("retain", xr.shape[0])
                    total += float(loss.detach()) * xr.shape[0]
                record["min_loss"] = total / max(1, len(retain))
                history.append(record)
                ctx.end_epoch(model)
                if stop_at is not None and i + 1 < self.steps:
                    forget_err, holdout_err = self._errors(model, ctx)
                    record.update(forget_error=forget_err, holdout_error=holdout_err)
                    model.train()
                    # 001 §3: stop "when the forget error has increased without harming the retain set error"
                    if forget_err > stop_at[0] and holdout_err <= stop_at[1] + self.stop_tolerance:
                        ctx.diagnostics["stopped_after_round"] = i + 1
                        break
        ctx.diagnostics["rounds"] = history
        if self.early_stop:
            ctx.diagnostics.setdefault("stopped_after_round", None)
        if layers:
            ctx.diagnostics["feature_layers"] = layers
        return model


class _StrSequence(Constraint):
    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(v, str) and v for v in value)

    def describe(self) -> str:
        return "a non-empty list of module names (see model.named_modules(), or 'penultimate')"


class _FeatureSCRUB(SCRUB):
    defaults: ClassVar[dict[str, Any]] = {**SCRUB.defaults, "layers": None, "feature_weight": 1.0}
    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **SCRUB.parameter_constraints,
        "layers": NoneOr(_StrSequence()),
        "feature_weight": Interval(float, 0, None),
    }

    def _layers(self, model: nn.Module) -> list[str]:
        if self.layers is not None:
            return list(self.layers)
        return default_feature_layers(model, self.feature_style or "attention")


class AttentionSCRUB(_FeatureSCRUB):
    """SCRUB plus feature distillation over several layers (001 "attention based", eq. 6-7).

    Default ``layers``: every Conv2d output and the last hidden features.

    Tags: needs forget + retain; supports classes and samples; identity at ``steps=0, max_steps=0``.

    Example:
        >>> AttentionSCRUB(layers=["conv.3"]).name
        'scrub_attention'
    """

    name: ClassVar[str] = "scrub_attention"
    feature_style: ClassVar[str | None] = "attention"


class SimilaritySCRUB(_FeatureSCRUB):
    """SCRUB plus feature distillation on the topmost conv layer (001 "similarity based").

    Default ``layers``: the topmost Conv2d (the last hidden layer if there is none).

    Tags: needs forget + retain; supports classes and samples; identity at ``steps=0, max_steps=0``.

    Example:
        >>> SimilaritySCRUB().name
        'scrub_similarity'
    """

    name: ClassVar[str] = "scrub_similarity"
    feature_style: ClassVar[str | None] = "similarity"
