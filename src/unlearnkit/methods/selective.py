"""000 (selective forgetting at a finer level than samples): RND, RLD, truncation and eq. 9.

All trained methods minimise, by SGD with momentum 0.9,

    λ_c·L_c(D_f,clean) + λ_f·L_f(D_f) + λ_KL·R,   R = Σ_i F_ii (θ_i − θ_old,i)²

* ``L_f`` — the forgetting term: ``rnd`` (squared error between the model's
  outputs and those of a freshly initialised network of the same architecture,
  eq. 1) or ``rld`` (cross-entropy to labels drawn uniformly, per batch, from a
  subset of the classes — by default all but the true one; eq. 3);
* ``L_c`` — the correction term: cross-entropy on D_f,clean (eq. 5), which is
  row-aligned with D_f (the same images without the feature);
* ``R`` — the remembering term (EWC, eq. 6) with the diagonal Fisher F of the
  pretrained model (eq. 7). By default (``ewc_step="proximal"``) R is applied by
  its exact proximal step after each SGD step on the other terms — the same
  objective, stable at any ``lr·λ_KL``; ``ewc_step="gradient"`` adds R to the
  loss and differentiates it, as a literal reading of 000 does, which diverges
  once ``2·lr·λ_KL·max F`` exceeds about 2 (most of 000's searched λ_KL range on
  the project's models).

``rnd`` and ``rld`` are pattern A (eq. 8: λ_c = 0, λ_f = 1); ``selective_forgetting``
is eq. 9 with the forgetting term chosen by name; 000's baselines are
``CE`` = λ_f = λ_KL = 0 and ``CE+Fisher`` = λ_f = 0 (the paper's figure caption
has the two swapped). ``truncation`` trains nothing: the forgotten class's
logit is masked to −inf (eq. 4).

**Which Fisher.** F needs the pretraining data, so it is a training-time
artifact: ``unlearnkit train --scenario backdoor`` computes it on the training
data except the target class (000's experiments; eq. 7 uses all of it —
``--fisher-data all``) and saves it beside the model; the method uses the
attached one. A model without one gets F computed from the retain set it is
given, and ``diagnostics["fisher_source"]`` says which was used.
"""

from __future__ import annotations

import copy
import time
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.core.gradients import attached_fisher, fisher_diagonal
from unlearnkit.core.models import find_head, init_weights
from unlearnkit.core.training import to_device
from unlearnkit.data.splits import Splits, View
from unlearnkit.errors import DivergenceError, ParameterError
from unlearnkit.methods.base import Context, Unlearner
from unlearnkit.validation import Constraint, Interval, Options

FORGETTING_TERMS = ("rld", "rnd", "none")


def random_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator, subset: str) -> torch.Tensor:
    """RLD targets: uniform over all classes but the true one (``"others"``) or over all (``"all"``)."""
    if subset == "all":
        return torch.randint(0, num_classes, y.shape, generator=generator).to(y.device)
    u = torch.randint(0, num_classes - 1, y.shape, generator=generator).to(y.device)
    return u + (u >= y).long()


def unlearning_time_fisher(
    model: nn.Module, splits: Splits, *, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], str, View]:
    """The Fisher of a model that has none attached: from the extra view ``fisher`` if given, else the retain set.

    Returns the Fisher, a line saying where it came from, and the data used.
    """
    start = time.perf_counter()
    data = splits.extras.get("fisher", splits.retain)
    fisher = fisher_diagonal(model, data, device=device)
    name = "fisher" if "fisher" in splits.extras else "retain"
    source = (
        f"computed at unlearning time from the {name} view ({len(data)} samples, {time.perf_counter() - start:.1f}s)"
    )
    return fisher, source, data


class _Objective(Unlearner):
    """The shared SGD loop of eqs. 8 and 9 (subclasses fix the terms)."""

    lam_c: ClassVar[float] = 0.0
    term: ClassVar[str] = "rld"
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 10,
        "lr": 1e-5,
        "lam_kl": 1e5,
        "batch_size": 64,
        "momentum": 0.9,
        "rld_classes": "others",
        "ewc_step": "proximal",
    }
    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        "epochs": Interval(int, 0, None),
        "lr": Interval(float, 0, None, closed="neither"),
        "lam_kl": Interval(float, 0, None),
        "batch_size": Interval(int, 1, None),
        "momentum": Interval(float, 0, 1, closed="left"),
        "rld_classes": Options(("others", "all")),
        "ewc_step": Options(("proximal", "gradient")),
    }
    identity_params: ClassVar[dict[str, Any] | None] = {"epochs": 0}

    def _lam_f(self) -> float:
        return 1.0

    def _term(self) -> str:
        return self.term

    def _clean(self, ctx: Context) -> View | None:
        return None

    def _fisher(self, model: nn.Module, ctx: Context) -> dict[str, torch.Tensor]:
        found = attached_fisher(ctx.original)
        if found is not None:
            ctx.diagnostics["fisher_source"] = f"attached at training time: {found[1]}"
            return {n: f.to(ctx.device) for n, f in found[0].items()}
        fisher, source, data = unlearning_time_fisher(model, ctx.splits, device=ctx.device)
        ctx.count("extra" if "fisher" in ctx.splits.extras else "retain", len(data))
        ctx.diagnostics["fisher_source"] = source
        return {n: f.to(ctx.device) for n, f in fisher.items()}

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        if self.epochs == 0:
            return model
        splits = ctx.splits
        forget = to_device(splits.forget, ctx.device)
        clean = self._clean(ctx)
        clean = to_device(clean, ctx.device) if clean is not None else None
        term, lam_f = self._term(), self._lam_f()
        fisher = self._fisher(model, ctx) if self.lam_kl > 0 else {}
        old = {n: p.detach().clone() for n, p in model.named_parameters() if n in fisher}
        if fisher and self.ewc_step == "gradient":
            self._check_gradient_stability(fisher)
        target = None
        if term == "rnd" and lam_f > 0:
            target = init_weights(copy.deepcopy(model), ctx.seed + 7919).eval()
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=self.lr, momentum=self.momentum)
        n = len(forget)
        history: list[dict[str, float]] = []
        self._track(model, ctx, history)
        model.train()
        for _ in range(self.epochs):
            perm = torch.randperm(n, generator=ctx.generator)
            for start in range(0, n, self.batch_size):
                pos = perm[start : start + self.batch_size].to(ctx.device)
                rows = forget.indices[pos]
                xf, yf = forget.x[rows], forget.y[rows]
                loss = torch.zeros((), device=ctx.device)
                if lam_f > 0 and term != "none":
                    out = model(xf)
                    if term == "rnd":
                        assert target is not None
                        with torch.no_grad():
                            goal = target(xf)
                        loss = loss + lam_f * (out - goal).pow(2).sum(1).mean()
                    else:
                        u = random_labels(yf, out.shape[1], ctx.generator, self.rld_classes)
                        loss = loss + lam_f * F.cross_entropy(out, u)
                    ctx.count("forget", pos.numel())
                if clean is not None and self.lam_c > 0:
                    crow = clean.indices[pos]
                    loss = loss + self.lam_c * F.cross_entropy(model(clean.x[crow]), clean.y[crow])
                    ctx.count("extra", pos.numel())
                if fisher and self.ewc_step == "gradient":
                    ewc = sum(
                        (fisher[k] * (p - old[k]).pow(2)).sum() for k, p in model.named_parameters() if k in fisher
                    )
                    loss = loss + self.lam_kl * ewc
                if not loss.requires_grad:
                    continue
                if not torch.isfinite(loss):
                    raise DivergenceError(f"{self.name} diverged (non-finite loss); lower 'lr' or 'lam_kl'.")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if fisher and self.ewc_step == "proximal":
                    self._ewc_prox(model, fisher, old)
                ctx.steps += 1
            self._track(model, ctx, history)
            model.train()
        if history:
            ctx.diagnostics["epoch_accuracy"] = history
        return model

    def _check_gradient_stability(self, fisher: dict[str, torch.Tensor]) -> None:
        """Refuse a gradient step on R that cannot be stable: heavy-ball SGD on a quadratic of curvature
        h = 2·λ_KL·F converges only if lr·h < 2·(1 + momentum). Past it, the weights grow without bound —
        sometimes to 1e12 with a loss that stays finite, so no later check would catch it.
        """
        f_max = max((float(f.max()) for f in fisher.values() if f.numel()), default=0.0)
        curvature = 2.0 * self.lam_kl * f_max
        limit = 2.0 * (1.0 + self.momentum)
        if self.lr * curvature >= limit:
            raise DivergenceError(
                f"{self.name} with ewc_step='gradient' is unstable: lr·2·lam_kl·max(F) = {self.lr * curvature:.3g} "
                f">= 2·(1 + momentum) = {limit:.3g}; use ewc_step='proximal' or lower 'lr' or 'lam_kl'."
            )

    def _ewc_prox(self, model: nn.Module, fisher: dict[str, torch.Tensor], old: dict[str, torch.Tensor]) -> None:
        """The remembering term's exact (proximal) step after the SGD step on the other terms.

        θ ← argmin_θ ‖θ − θ'‖²/(2·η) + λ_KL·Σ F_i (θ_i − θ_old,i)²  =  (θ' + c·θ_old) / (1 + c),  c = 2·η·λ_KL·F,

        with η = lr / (1 − momentum), the step heavy-ball SGD takes on a steady gradient.
        With that η the fixed points are the objective's own (g + 2·λ_KL·F·(θ − θ_old) = 0,
        g the other terms' gradient); with η = lr they would be those of λ_KL·(1 − momentum).
        Unlike a gradient step on R, which multiplies θ − θ_old by (1 − c) and diverges
        once lr·2·λ_KL·F exceeds 2·(1 + momentum) — what made most of 000's searched range
        (λ_KL up to 1e6) fail on this project's models — it is stable for any lr·λ_KL·F.
        """
        eta = self.lr / (1.0 - self.momentum)
        with torch.no_grad():
            for k, p in model.named_parameters():
                if k in fisher:
                    c = (2.0 * eta * self.lam_kl) * fisher[k]
                    p.copy_((p + c * old[k]) / (1.0 + c))

    @staticmethod
    def _track(model: nn.Module, ctx: Context, history: list[dict[str, float]]) -> None:
        """With ``track_validation``: accuracy on the four test datasets after each epoch (000 Fig. 4; not timed)."""
        if not ctx.track_validation or "test_extra" not in ctx.splits.extras:
            return
        from unlearnkit.evaluation.metrics import FEATURE_VIEWS
        from unlearnkit.evaluation.outputs import outputs_of
        from unlearnkit.evaluation.scores import accuracy

        start = time.perf_counter()
        row = {}
        for key, view in FEATURE_VIEWS.items():
            acc = accuracy(outputs_of(model, ctx.splits.extras[view], device=ctx.device))
            row[key] = float("nan") if acc is None else acc
        history.append(row)
        ctx.excluded_seconds += time.perf_counter() - start


class RND(_Objective):
    """000's random network distillation (pattern A, eq. 8): match a fresh network's outputs on D_f, with EWC.

    Tags: needs forget (+ retain only when the model has no Fisher attached);
    supports classes, samples and features; identity at ``epochs=0``.
    """

    name: ClassVar[str] = "rnd"
    needs: ClassVar[frozenset[str]] = frozenset({"forget", "retain"})
    supports: ClassVar[frozenset[str]] = frozenset({"classes", "samples", "features"})
    term: ClassVar[str] = "rnd"


class RLD(_Objective):
    """000's random label distillation (pattern A, eq. 8): cross-entropy to random labels on D_f, with EWC.

    Tags: needs forget (+ retain only when the model has no Fisher attached);
    supports classes, samples and features; identity at ``epochs=0``.
    """

    name: ClassVar[str] = "rld"
    needs: ClassVar[frozenset[str]] = frozenset({"forget", "retain"})
    supports: ClassVar[frozenset[str]] = frozenset({"classes", "samples", "features"})
    term: ClassVar[str] = "rld"


class SelectiveForgetting(_Objective):
    """000's eq. 9: CE on D_f,clean + λ_f·(RLD or RND) on D_f + λ_KL·EWC — forget a feature, keep the samples.

    Tags: needs forget (D_f), the extra view ``forget_clean`` (D_f,clean) (+ retain
    only when the model has no Fisher attached); supports features; identity at
    ``epochs=0``.
    """

    name: ClassVar[str] = "selective_forgetting"
    needs: ClassVar[frozenset[str]] = frozenset({"forget", "extra", "retain"})
    supports: ClassVar[frozenset[str]] = frozenset({"features"})
    lam_c: ClassVar[float] = 1.0
    # 000 Table S1's optimum for Fashion-MNIST, tile, pattern B (the paper's λ_KL = 1e5, lr = 1e-5 are pattern A's)
    defaults: ClassVar[dict[str, Any]] = {
        **_Objective.defaults,
        "lr": 1e-4,
        "lam_kl": 3.5e4,
        "lam_f": 1.7,
        "forgetting": "rld",
    }
    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **_Objective.parameter_constraints,
        "lam_f": Interval(float, 0, None),
        "forgetting": Options(FORGETTING_TERMS),
    }

    def _lam_f(self) -> float:
        return float(self.lam_f)

    def _term(self) -> str:
        return str(self.forgetting)

    def _clean(self, ctx: Context) -> View | None:
        clean = ctx.splits.extras.get("forget_clean")
        if clean is None or len(clean) != len(ctx.splits.forget):
            raise ParameterError(
                "The 'splits' parameter of SelectiveForgetting.unlearn must carry an extra view 'forget_clean' "
                f"(D_f,clean) row-aligned with the {len(ctx.splits.forget)} forget samples; got "
                f"{'none' if clean is None else len(clean)}."
            )
        return clean


class Truncation(Unlearner):
    """000's truncation (eq. 4): mask the forgotten class's logit to −inf; no training.

    Tags: needs a linear head; supports classes only (it cannot forget anything
    finer than a class); no identity setting.
    """

    name: ClassVar[str] = "truncation"
    needs: ClassVar[frozenset[str]] = frozenset({"linear_head"})
    supports: ClassVar[frozenset[str]] = frozenset({"classes"})
    defaults: ClassVar[dict[str, Any]] = {}
    parameter_constraints: ClassVar[dict[str, Constraint]] = {}
    identity_exempt: ClassVar[str | None] = "has no settings; it always masks the forgotten classes' logits"

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        _, head = find_head(model, ctx.splits.train.x[:1].to(ctx.device))
        classes = list(ctx.splits.forget_classes)
        with torch.no_grad():
            head.weight[classes] = 0.0
            if head.bias is None:
                head.bias = nn.Parameter(torch.zeros(head.out_features, device=head.weight.device))
            head.bias[classes] = float("-inf")
        ctx.diagnostics["masked_classes"] = classes
        return model
