"""``ssd`` and ``lfssd``: selective synaptic dampening — no training, a per-parameter shrink.

Foster, Schoepf, Brintrup, "Fast machine unlearning without retraining through
selective synaptic dampening" (AAAI 2024), eq. 3–4: with importances I_f on
the forget set and I_D on the training data, every parameter that matters far
more to the forget set than to the data, ``I_f > α · I_D``, is multiplied by
``β = min(λ · I_D / I_f, 1)``; every other parameter is left exactly as it is.
``lfssd`` (Foster, Schoepf, Brintrup, "Loss-free machine unlearning", ICLR 2024
Tiny Paper) dampens the same way with label-free importances: the sensitivity
of the squared L2 norm of the output (as in Memory Aware Synapses).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from unlearnkit.core.gradients import batch_importances, trainable
from unlearnkit.data.splits import View
from unlearnkit.methods.base import Context, Unlearner
from unlearnkit.validation import Constraint, Interval


def dampen(weight: torch.Tensor, forget_imp: torch.Tensor, data_imp: torch.Tensor, alpha: float,
           lam: float) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """SSD's rule on one tensor: ``(new weight, selected mask)``; selected where ``I_f > α I_D``."""
    f, d = forget_imp.to(weight.device, torch.float64), data_imp.to(weight.device, torch.float64)
    selected = f > alpha * d
    beta = torch.clamp(lam * d / f.clamp_min(torch.finfo(torch.float64).tiny), max=1.0)
    return torch.where(selected, (weight.double() * beta).to(weight.dtype), weight), selected


def _training_data(retain: View, forget: View) -> View:
    """Retain ∪ forget as one view (without copying when both index the same tensors)."""
    if retain.x is forget.x and retain.y is forget.y:
        return View(retain.x, retain.y, torch.cat([retain.indices, forget.indices]).sort().values, "train")
    (xr, yr), (xf, yf) = retain.tensors(), forget.tensors()
    return View.of(torch.cat([xr, xf]), torch.cat([yr, yf]), "train")


class SSD(Unlearner):
    """Selective synaptic dampening: shrink the parameters specialised to the forget set.

    Importances (:func:`~unlearnkit.core.gradients.batch_importances`, ``kind="fisher"``):
    squared gradients of the mean cross-entropy per batch of ``batch_size``, averaged
    over batches, on the forget set (I_f) and on the training data — retain ∪ forget —
    (I_D). Diagnostics: ``selected`` (share of parameters dampened) and ``mean_beta``
    of the dampened ones. Deterministic: it draws nothing, so every seed gives the
    same model.

    Tags: needs forget + retain; supports classes and samples; identity at ``lam=1e30``
    (β clips to 1: nothing moves).

    Example:
        >>> SSD().get_params()["alpha"]
        10.0
    """

    name: ClassVar[str] = "ssd"
    importance: ClassVar[str] = "fisher"
    needs: ClassVar[frozenset[str]] = frozenset({"forget", "retain"})
    defaults: ClassVar[dict[str, Any]] = {"alpha": 10.0, "lam": 1.0, "batch_size": 64}
    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        "alpha": Interval(float, 0, None, closed="neither"),
        "lam": Interval(float, 0, None, closed="neither"),
        "batch_size": Interval(int, 1, None),
    }
    search_space: ClassVar[dict[str, dict[str, Any]] | None] = {
        "alpha": {"low": 1.0, "high": 100.0, "log": True},
        "lam": {"low": 0.1, "high": 10.0, "log": True},
    }
    identity_params: ClassVar[dict[str, Any] | None] = {"lam": 1e30}

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        forget, retain = ctx.splits.forget, ctx.splits.retain
        data = _training_data(retain, forget)
        i_f = batch_importances(model, forget, self.importance, batch_size=self.batch_size, device=ctx.device)
        i_d = batch_importances(model, data, self.importance, batch_size=self.batch_size, device=ctx.device)
        ctx.count("forget", 2 * len(forget))  # once for I_f, once inside I_D
        ctx.count("retain", len(retain))
        chosen, total, betas = 0, 0, []
        with torch.no_grad():
            for n, p in trainable(model).items():
                new, sel = dampen(p, i_f[n], i_d[n], float(self.alpha), float(self.lam))
                if sel.any():
                    betas.append((new[sel] / p[sel].where(p[sel] != 0, torch.ones_like(p[sel]))).detach())
                p.copy_(new)
                chosen += int(sel.sum())
                total += sel.numel()
        ctx.diagnostics["selected"] = chosen / max(total, 1)
        ctx.diagnostics["mean_beta"] = float(torch.cat(betas).mean()) if betas else None
        return model


class LFSSD(SSD):
    """Loss-free SSD: SSD's dampening with importances from the output's squared L2 norm (no labels).

    Importances: ``kind="output_norm"`` — the absolute gradient of the batch's mean
    ``||f(x)||²₂`` (Memory Aware Synapses' sensitivity), averaged over batches.

    Tags: needs forget + retain; supports classes and samples; identity at ``lam=1e30``.
    """

    name: ClassVar[str] = "lfssd"
    importance: ClassVar[str] = "output_norm"
