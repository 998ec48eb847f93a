"""``smu``: summation-based unlearning (003's baseline, after Cao & Yang).

The model records, while it trains (:mod:`unlearnkit.core.smu`), the total displacement
each declared deletion candidate's gradient terms caused. Unlearning adds those
displacements back — "subtracts the recorded contributions" — and trains one more
epoch on the retained data, as 003 describes. A request outside the candidates is refused.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from unlearnkit.core.gradients import trainable, unflatten
from unlearnkit.core.smu import SMUModel
from unlearnkit.core.training import TrainConfig, fit
from unlearnkit.errors import ParameterError
from unlearnkit.methods.base import Context, Unlearner
from unlearnkit.validation import Constraint, Interval


class SMU(Unlearner):
    """Add back the recorded contributions of the forgotten samples, then train one more epoch.

    Tags: needs a model prepared at training time (an :class:`SMUModel`), the
    forget set's rows and the retain set (the extra epoch); supports sample
    requests within the declared candidates.
    """

    name: ClassVar[str] = "smu"
    needs: ClassVar[frozenset[str]] = frozenset({"prepared", "forget", "retain"})
    supports: ClassVar[frozenset[str]] = frozenset({"samples"})
    defaults: ClassVar[dict[str, Any]] = {"extra_epochs": 1}
    parameter_constraints: ClassVar[dict[str, Constraint]] = {"extra_epochs": Interval(int, 0, None)}
    identity_exempt: ClassVar[str | None] = (
        "subtracting the forgotten samples' contributions always changes the weights"
    )
    prepared_type: ClassVar[type[nn.Module] | None] = SMUModel

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        assert isinstance(model, SMUModel)
        forget = ctx.splits.forget.indices.cpu()
        inside = torch.isin(forget, model.candidates)
        if not bool(inside.all()):
            outside = forget[~inside]
            raise ParameterError(
                f"The 'splits' parameter of SMU.unlearn must forget only the {model.candidates.numel()} deletion "
                f"candidates recorded at training time; {outside.numel()} rows are not candidates "
                f"(e.g. row {int(outside[0])})."
            )
        chosen = torch.isin(model.candidates, forget)
        delta = model.contributions[chosen].sum(0).to(ctx.device)
        params = trainable(model.inner)
        with torch.no_grad():
            for n, d in unflatten(delta, params).items():
                params[n].add_(d)
        model.candidates, model.contributions = model.candidates[~chosen], model.contributions[~chosen]
        if self.extra_epochs:
            config = TrainConfig(**{**model.config.to_dict(), "epochs": self.extra_epochs})
            stats = fit(model.inner, ctx.splits.retain, config, seed=ctx.seed, device=ctx.device, desc="smu epoch")
            ctx.steps += stats.steps
            ctx.count("retain", stats.samples_seen)
        ctx.diagnostics.update(subtracted=int(chosen.sum()), displacement_norm=float(delta.norm()))
        return model
