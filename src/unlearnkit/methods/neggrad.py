"""``neggrad`` and ``neggrad_plus``: gradient ascent on the forget set.

001 (SCRUB) eq. 1: NegGrad moves the weights up the loss gradient of D_f,
``w <- w + eps * grad L(x_f, w)``. Eq. 2, NegGrad+: the same ascent on D_f
plus descent on D_r, ``w <- w + eps * grad L(x_f) - alpha * grad L(x_r)``;
here written as one loss, ``beta * CE(retain) - (1 - beta) * CE(forget)``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.core.training import TrainConfig, endless_batches, make_optimizer, to_device
from unlearnkit.methods.base import MASK_CONSTRAINTS, MASK_DEFAULTS, TRAINER_CONSTRAINTS, Context, Unlearner
from unlearnkit.progress import progress_bar
from unlearnkit.validation import AnyOf, Constraint, Interval, NoneOr, Options

_COMMON: dict[str, Constraint] = {
    **TRAINER_CONSTRAINTS,
    "max_grad_norm": NoneOr(Interval(float, 0, None, closed="neither")),
    "forget_loss_cap": NoneOr(AnyOf((Interval(float, 0, None, closed="neither"), Options(("chance",))))),
}


def forget_loss(logits: torch.Tensor, labels: torch.Tensor, cap: float | str | None) -> torch.Tensor:
    """Mean cross-entropy on a forget batch, each sample's loss capped at ``cap``.

    Ascent on an unbounded loss never stops on its own: once a sample is
    forgotten, pushing its loss further only wrecks shared features. Capping
    the per-sample loss zeroes the gradient of samples already past ``cap``.
    ``"chance"`` means ln(k), the loss of a uniform prediction over the k
    outputs; ``None`` is the paper's unbounded update.
    """
    losses = F.cross_entropy(logits, labels, reduction="none")
    if cap is not None:
        limit = math.log(logits.shape[1]) if cap == "chance" else float(cap)
        losses = losses.clamp(max=limit)
    return losses.mean()


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, max_norm: float | None) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_norm is not None:
        # Ascent on an unbounded loss can explode; clipping keeps steps sane.
        nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()


class NegGrad(Unlearner):
    """Gradient ascent on the forget set's cross-entropy for ``epochs`` epochs.

    Tags: needs forget; supports classes and samples; identity at ``epochs=0``.

    Example:
        >>> NegGrad(epochs=1, lr=1e-3).name
        'neggrad'
    """

    name: ClassVar[str] = "neggrad"
    needs: ClassVar[frozenset[str]] = frozenset({"forget"})
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 1,
        "lr": 0.002,
        "batch_size": 128,
        "optimizer": "sgd",
        "momentum": 0.9,
        "max_grad_norm": 5.0,
        "forget_loss_cap": "chance",
    }
    parameter_constraints: ClassVar[dict[str, Constraint]] = _COMMON
    identity_params: ClassVar[dict[str, Any] | None] = {"epochs": 0}

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        config = TrainConfig.from_dict(self.params)  # the optimiser settings this method shares with the trainer
        optimizer = make_optimizer(model.parameters(), config)
        forget = to_device(ctx.splits.forget, ctx.device)
        model.train()
        for _ in progress_bar(range(self.epochs), enabled=ctx.progress, desc="neggrad", unit="epoch"):
            for xb, yb in forget.batches(self.batch_size, generator=ctx.generator, shuffle=True):
                _step(model, optimizer, -forget_loss(model(xb), yb, self.forget_loss_cap), self.max_grad_norm)
                ctx.steps += 1
                ctx.count("forget", yb.shape[0])
            ctx.end_epoch(model)
        return model


class NegGradPlus(Unlearner):
    """Ascent on the forget set plus descent on the retain set, weighted by ``beta``.

    Loss per step: ``beta * CE(retain batch) - (1 - beta) * CE(forget batch)``.
    One epoch is one pass over the forget set, each forget batch paired with
    the next batch of a seeded, endlessly reshuffled retain stream, so the cost
    scales with the forget set, not the training set.

    Tags: needs forget + retain; supports classes and samples; identity at ``epochs=0``.

    Example:
        >>> NegGradPlus(beta=0.9).get_params()["beta"]
        0.9
    """

    name: ClassVar[str] = "neggrad_plus"
    needs: ClassVar[frozenset[str]] = frozenset({"forget", "retain"})
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 2,
        "lr": 0.02,
        "beta": 0.8,
        "batch_size": 128,
        "retain_batch_size": 128,
        "optimizer": "sgd",
        "momentum": 0.9,
        "max_grad_norm": 5.0,
        "forget_loss_cap": "chance",
        **MASK_DEFAULTS,
    }
    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **_COMMON,
        "beta": Interval(float, 0, 1),
        "retain_batch_size": Interval(int, 1, None),
        **MASK_CONSTRAINTS,
    }
    identity_params: ClassVar[dict[str, Any] | None] = {"epochs": 0}

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        config = TrainConfig.from_dict(self.params)  # the optimiser settings this method shares with the trainer
        optimizer = make_optimizer(model.parameters(), config)
        forget = to_device(ctx.splits.forget, ctx.device)
        retain_stream = endless_batches(to_device(ctx.splits.retain, ctx.device), self.retain_batch_size, ctx.generator)
        beta = float(self.beta)
        model.train()
        for _ in progress_bar(range(self.epochs), enabled=ctx.progress, desc="neggrad_plus", unit="epoch"):
            for xf, yf in forget.batches(self.batch_size, generator=ctx.generator, shuffle=True):
                xr, yr = next(retain_stream)
                loss = beta * F.cross_entropy(model(xr), yr) - (1.0 - beta) * forget_loss(
                    model(xf), yf, self.forget_loss_cap
                )
                _step(model, optimizer, loss, self.max_grad_norm)
                ctx.steps += 1
                ctx.count("forget", yf.shape[0])
                ctx.count("retain", yr.shape[0])
            ctx.end_epoch(model)
        return model
