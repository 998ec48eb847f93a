"""``unsir``: UNSIR — error-maximising noise, one impair epoch, one repair epoch (class requests).

Tarun, Chundawat, Mandal, Kankanhalli, "Fast yet effective machine unlearning"
(IEEE TNNLS 2023), §III. For each forgotten class c, a batch of noise inputs N
is learned that *maximises* the model's loss on label c, with an L2 penalty
keeping it bounded: ``min_N −CE(f(N), c) + λ · mean ||N||²``. Then

* **impair**: one epoch on the noise (labelled c) together with a small retain
  subset, at a high learning rate (Adam, 0.02, as the paper's code) — the noise
  drives the weights that serve class c away;
* **repair**: one epoch on the retain subset alone, at a lower rate (Adam,
  0.01) — what the impair step damaged for the other classes comes back.

It learns inputs, so it declares continuous inputs only.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.core.training import TrainConfig, make_optimizer
from unlearnkit.methods.base import Context, Unlearner
from unlearnkit.validation import Constraint, Interval


def error_maximising_noise(model: nn.Module, shape: tuple[int, ...], label: int, count: int, *, steps: int,
                           lr: float, reg: float, generator: torch.Generator,
                           device: torch.device) -> tuple[torch.Tensor, float, float]:  # fmt: skip
    """Learn ``count`` noise inputs maximising the loss on ``label``; returns (noise, CE before, CE after)."""
    dtype = next(model.parameters()).dtype
    noise = torch.randn((count, *shape), generator=generator, dtype=dtype).to(device).requires_grad_(True)
    target = torch.full((count,), label, dtype=torch.long, device=device)
    opt = torch.optim.Adam([noise], lr=lr)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            before = float(F.cross_entropy(model(noise), target))
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            out = model(noise)
            loss = -F.cross_entropy(out, target) + reg * noise.square().flatten(1).sum(1).mean()
            loss.backward()
            opt.step()
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            after = float(F.cross_entropy(model(noise), target))
    finally:
        for m, t in modes:
            m.training = t
    return noise.detach(), before, after


class UNSIR(Unlearner):
    """Learn error-maximising noise per forgotten class; impair on noise + retain subset; repair on the subset.

    The impair epoch sees each noise batch ``noise_repeats`` times (this
    project's choice: the paper's notebook adds a few noise samples per step). The
    retain subset is a seeded ``retain_per_class`` samples of each retained
    class (the paper uses a small subset: the method is meant to run without the
    full retain set). Diagnostics: ``noise_loss`` — the model's cross-entropy on
    each class's noise, before and after learning it (it rises).

    Tags: needs forget + retain; supports classes; continuous inputs; no identity
    setting (the impair and repair epochs always move the weights).
    """

    name: ClassVar[str] = "unsir"
    needs: ClassVar[frozenset[str]] = frozenset({"forget", "retain"})
    supports: ClassVar[frozenset[str]] = frozenset({"classes"})
    input_kinds: ClassVar[frozenset[str]] = frozenset({"continuous"})
    defaults: ClassVar[dict[str, Any]] = {
        "noise_count": 128,
        "noise_steps": 50,
        "noise_lr": 0.1,
        "noise_reg": 1.0,
        "noise_repeats": 20,
        "retain_per_class": 100,
        "impair_lr": 0.02,
        "repair_lr": 0.01,
        "batch_size": 32,
    }
    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        "noise_count": Interval(int, 1, None),
        "noise_steps": Interval(int, 0, None),
        "noise_lr": Interval(float, 0, None, closed="neither"),
        "noise_reg": Interval(float, 0, None),
        "noise_repeats": Interval(int, 1, None),
        "retain_per_class": Interval(int, 1, None),
        "impair_lr": Interval(float, 0, None, closed="neither"),
        "repair_lr": Interval(float, 0, None, closed="neither"),
        "batch_size": Interval(int, 1, None),
    }
    search_space: ClassVar[dict[str, dict[str, Any]] | None] = {
        "noise_reg": {"low": 0.1, "high": 10.0, "log": True},
        "noise_repeats": {"low": 1, "high": 40},
        "impair_lr": {"low": 1e-3, "high": 0.1, "log": True},
        "repair_lr": {"low": 1e-3, "high": 0.1, "log": True},
    }
    identity_exempt: ClassVar[str | None] = "its impair and repair epochs always train the model"

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        splits = ctx.splits
        retain = splits.retain
        labels = retain.labels
        picks = []
        for c in sorted({int(v) for v in labels.unique()}):
            rows = torch.nonzero(labels == c).flatten()
            picks.append(rows[torch.randperm(rows.numel(), generator=ctx.generator)[: self.retain_per_class]])
        subset = retain.subset(torch.cat(picks).sort().values)
        x_r, y_r = (t.to(ctx.device) for t in subset.tensors())
        shape = tuple(splits.forget.x.shape[1:])
        noises, noise_labels, losses = [], [], {}
        for c in splits.forget_classes:
            n, before, after = error_maximising_noise(model, shape, int(c), self.noise_count, steps=self.noise_steps,
                                                      lr=self.noise_lr, reg=self.noise_reg,
                                                      generator=ctx.generator, device=ctx.device)  # fmt: skip
            noises.append(n)
            noise_labels.append(torch.full((self.noise_count,), int(c), dtype=torch.long, device=ctx.device))
            losses[str(c)] = {"before": before, "after": after}
        ctx.diagnostics["noise_loss"] = losses
        reps = int(self.noise_repeats)  # the paper's code feeds its noise batch many times in the impair epoch
        x_i = torch.cat([*(n.repeat(reps, *[1] * (n.dim() - 1)) for n in noises), x_r])
        y_i = torch.cat([*(y.repeat(reps) for y in noise_labels), y_r])
        self._epoch(model, x_i, y_i, self.impair_lr, ctx, noise=len(x_i) - len(x_r))
        self._epoch(model, x_r, y_r, self.repair_lr, ctx, noise=0)
        return model

    def _epoch(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float, ctx: Context,
               noise: int) -> None:  # fmt: skip
        opt = make_optimizer(model.parameters(), TrainConfig(lr=lr, optimizer="adam"))  # the paper's code: Adam
        model.train()
        order = torch.randperm(len(x), generator=ctx.generator).to(x.device)
        for rows in order.split(self.batch_size):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[rows]), y[rows]).backward()
            opt.step()
            ctx.steps += 1
            ctx.count("retain", int((rows >= noise).sum()))
        ctx.end_epoch(model)
