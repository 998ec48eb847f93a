"""``fisher_forgetting``: Golatkar, Achille, Soatto, "Eternal sunshine of the spotless net" (CVPR 2020).

§4 ("Fisher forgetting"): approximate the optimal scrubbing of a
quadratic loss by Gaussian noise shaped by the retain set's Fisher
information F (its diagonal, as the paper computes it):

    S(w) = w + (λ σ_h²)^{1/4} · F^{-1/4} · n,    n ~ N(0, I).

Directions the retain set constrains strongly (large F) get little noise;
directions only the forget set needed (small F) get much. The constant
(λ σ_h²)^{1/4} is one overall ``scale``. A parameter no data touches has
F = 0 and would get unbounded noise: as in the paper's code, F + 1e-8 is
used (``fisher_floor``); ``max_std`` optionally clips the standard deviation
(the code also clamps the variance).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from unlearnkit.core.gradients import fisher_diagonal, trainable
from unlearnkit.core.models import evaluating
from unlearnkit.methods.base import Context, Unlearner
from unlearnkit.validation import AnyOf, Constraint, Interval, NoneOr, Options

#: the scales ``scale="auto"`` tries, largest first (a log grid, 4 per decade)
AUTO_SCALES = tuple(10.0 ** (-i / 4) for i in range(25))


def noise_std(fisher: torch.Tensor, scale: float, max_std: float | None = None, floor: float = 1e-8) -> torch.Tensor:
    """The per-parameter noise standard deviation ``scale · (F + floor)^{-1/4}``, clipped at ``max_std``."""
    std = float(scale) * (fisher.double() + float(floor)).pow(-0.25)
    return (std if max_std is None else std.clamp(max=float(max_std))).float()


def add_fisher_noise(model: nn.Module, fisher: dict[str, torch.Tensor], scale: float, max_std: float | None,
                     floor: float, generator: torch.Generator) -> None:  # fmt: skip
    """``w ← w + noise_std(F) · n`` in place, ``n`` drawn from ``generator`` in parameter order."""
    with torch.no_grad():
        for n, p in trainable(model).items():
            draw = torch.randn(p.shape, generator=generator, dtype=torch.float32).to(p.device, p.dtype)
            p.add_(noise_std(fisher[n], scale, max_std, floor).to(p.device, p.dtype) * draw)


class FisherForgetting(Unlearner):
    """Add Gaussian noise with standard deviation ``scale · (F_retain + fisher_floor)^{-1/4}``.

    F is the diagonal empirical Fisher (mean squared per-sample gradient) on a
    seeded sample of at most ``fisher_samples`` retain samples. ``scale="auto"``
    chooses it on the holdout split: the largest of :data:`AUTO_SCALES` whose
    noisy model keeps holdout accuracy (on the classes not forgotten) within
    ``max_drop`` of the original's — the paper's constant is data-dependent
    (σ_h, λ) and it reports choosing it so. Diagnostics: ``scale`` (the one used)
    and ``holdout_accuracy`` per scale tried.

    Tags: needs retain + holdout; supports classes and samples; identity at ``scale=0``.
    """

    name: ClassVar[str] = "fisher_forgetting"
    needs: ClassVar[frozenset[str]] = frozenset({"retain", "holdout"})
    defaults: ClassVar[dict[str, Any]] = {"scale": "auto", "max_std": None, "fisher_floor": 1e-8,
                                          "fisher_samples": 2000, "max_drop": 0.02}  # fmt: skip
    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        "scale": AnyOf((Interval(float, 0, None), Options(("auto",)))),
        "max_std": NoneOr(Interval(float, 0, None, closed="neither")),
        "fisher_floor": Interval(float, 0, None, closed="neither"),
        "fisher_samples": Interval(int, 1, None),
        "max_drop": Interval(float, 0, 1),
    }
    search_space: ClassVar[dict[str, dict[str, Any]] | None] = {
        "max_drop": {"low": 0.0, "high": 0.2},
        "fisher_samples": {"choices": [500, 2000, 8000]},
    }
    identity_params: ClassVar[dict[str, Any] | None] = {"scale": 0.0}

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        retain = ctx.splits.retain
        if len(retain) > self.fisher_samples:
            pick = torch.randperm(len(retain), generator=ctx.generator)[: self.fisher_samples].sort().values
            retain = retain.subset(pick)
        fisher = fisher_diagonal(model, retain, device=ctx.device)
        ctx.count("retain", len(retain))
        seed = int(torch.randint(0, 2**31, (1,), generator=ctx.generator))
        if self.scale != "auto":
            add_fisher_noise(model, fisher, float(self.scale), self.max_std, self.fisher_floor,
                             torch.Generator().manual_seed(seed))  # fmt: skip
            ctx.diagnostics["scale"] = float(self.scale)
            return model
        holdout = ctx.splits.holdout
        if ctx.splits.forget_classes:
            keep = ~torch.isin(holdout.labels, torch.tensor(list(ctx.splits.forget_classes)))
            holdout = holdout.subset(torch.nonzero(keep).flatten())
        x, y = (t.to(ctx.device) for t in holdout.tensors())

        def accuracy(m: nn.Module) -> float:
            with evaluating(m):
                return float((m(x).argmax(1) == y).float().mean())

        base = accuracy(model)
        start = {n: p.detach().clone() for n, p in trainable(model).items()}
        tried: dict[str, float] = {}
        chosen = 0.0
        for scale in AUTO_SCALES:  # the same noise draw at every scale: only its size changes
            add_fisher_noise(model, fisher, scale, self.max_std, self.fisher_floor, torch.Generator().manual_seed(seed))
            acc = accuracy(model)
            ctx.count("holdout", len(y))
            tried[f"{scale:g}"] = acc
            with torch.no_grad():
                for n, p in trainable(model).items():
                    p.copy_(start[n])
            if acc >= base - self.max_drop:
                chosen = scale
                break
        if chosen:
            add_fisher_noise(model, fisher, chosen, self.max_std, self.fisher_floor,
                             torch.Generator().manual_seed(seed))  # fmt: skip
        ctx.diagnostics.update(scale=chosen, holdout_accuracy=tried, holdout_accuracy_original=base)
        return model
