"""``forsaken``: learn a mask gradient that makes the forget set look like non-members (003).

003 (Forsaken), §IV. A *mask-gradient generator* proposes a perturbation μ_t
of the trainable parameters; the model steps ``θ_t = θ_{t−1} − ξ·μ_t``. The
generator is optimised (L-BFGS, as in the paper) to minimise

    L(μ) = KL(P[y_i] ‖ softmax f_{θ−ξμ}(x_i)) averaged over the forget set  +  λ·Σ_d ω_d·|μ_d|

where ``P[c]`` is the mean posterior of *non-member* samples that the original
model predicts as class ``c`` (what the model outputs on data it never saw).
The KL runs from the target P to the model's posterior (cross-entropy to soft
targets, minus the targets' entropy). The penalty is eq. 5 as the paper writes
it: a sum over every trainable parameter ``d``, with ``ω_d`` (eq. 6) the mean
absolute gradient of the cross-entropy over a small retained set D_0
(``penalty_set_size`` samples), unnormalised; ``weighted_penalty=False`` uses
ω = 1 (eq. 4). So λ is on the paper's scale (003 Table VIII sweeps 0, 0.1, 1,
10, 100) and, as there, a larger λ moves fewer parameters.

Which P row a forget sample is pulled toward (``pull_toward``):

* ``"true_label"`` (default, 003 §V-F): ``P[its true label]`` where the
  splits know it (the extra view ``forget_true`` that the ``poison`` and
  ``mislabel`` scenarios provide), else ``P[its training label]``. For a
  poisoned sample (true 5, trained as 3) this corrects the polluted memory —
  "P is formed by the posteriors of the original data without poisoned labels";
  for OOD / ID unlearning the two labels are the same.
* ``"trained_label"`` (the project's own, kept to show what the paper's choice
  changes): always ``P[its training label]``, which for a flipped sample
  reinforces the poison.

The paper leaves the generator's form open. Here the generator is the mask
itself — one free tensor per trainable parameter, re-initialised at zero each
iteration — so one iteration costs ``lbfgs_steps`` forward/backward passes over
the forget set and nothing that grows with the training set (003's point:
O(t·n₀), not O(K·N)). Non-member samples come from an extra view named
``"reference"`` when the caller supplies one (out-of-distribution data for OOD
unlearning, clean samples for poisoning), otherwise from the holdout split.

On a language model (labels ``(n, L)``, the next tokens of each window; logits
``(n, V, L)``, :mod:`unlearnkit.core.lm`) every position is a sample: ``P[c]`` is the
mean next-token distribution over the reference windows' positions the model predicts
as token ``c`` (:func:`token_posteriors`, only the rows the forget set's tokens need —
``V × V`` would not fit), each forget position is pulled toward ``P[its next token]``,
and the KL is averaged over positions. The ``canary`` scenario's reference windows are
held-out text with non-member canaries of the same format (003 §G, Definition 4).

:func:`federated_update` is 003's Algorithm 2 (MacForget): the client update
that a server running plain SGD turns into ``θ − μ``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from unlearnkit.core.gradients import per_sample_mean, trainable, unflatten
from unlearnkit.core.models import evaluating
from unlearnkit.data.splits import View
from unlearnkit.errors import DataError, DivergenceError
from unlearnkit.evaluation.outputs import outputs_of
from unlearnkit.methods.base import Context, Unlearner
from unlearnkit.validation import Boolean, Constraint, Interval, Options

MOVED = 1e-4
"""A parameter counts as moved (``diagnostics["moved_fraction"]``) when it changed by more than this."""


def class_posteriors(logits: torch.Tensor, num_classes: int) -> torch.Tensor:
    """P: row c = mean softmax of the samples predicted as class c (uniform where none is)."""
    probs = torch.nan_to_num(logits.double(), neginf=-1e9).softmax(-1)
    pred = probs.argmax(1)
    p = torch.full((num_classes, probs.shape[1]), 1.0 / probs.shape[1], dtype=torch.float64)
    for c in range(num_classes):
        rows = probs[pred == c]
        if rows.shape[0]:
            p[c] = rows.mean(0)
    return p


@torch.no_grad()
def token_posteriors(
    model: nn.Module,
    view: View,
    rows: torch.Tensor,
    num_classes: int,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 128,
) -> torch.Tensor:
    """:func:`class_posteriors` of a language model, for the tokens ``rows`` only: ``(len(rows), V)`` float64.

    Row ``i`` is the mean next-token distribution over the positions of ``view``'s
    windows (logits ``(B, V, L)``) that the model predicts as token ``rows[i]``
    (uniform where none is). Streamed over batches, so memory is ``len(rows) × V``,
    never every position's distribution at once (``V × V`` for the whole vocabulary).
    """
    slot = torch.full((num_classes,), -1, dtype=torch.long)
    slot[rows.cpu()] = torch.arange(rows.numel())
    sums = torch.zeros(rows.numel(), num_classes, dtype=torch.float64)
    counts = torch.zeros(rows.numel(), dtype=torch.float64)
    with evaluating(model):
        for xb, _ in view.batches(batch_size):
            logits = model(xb.to(device)).double().cpu()  # (B, V, L)
            probs = logits.softmax(1).permute(0, 2, 1).reshape(-1, logits.shape[1])  # (B·L, V)
            s = slot[probs.argmax(1)]
            keep = s >= 0
            sums.index_add_(0, s[keep], probs[keep])
            counts.index_add_(0, s[keep], torch.ones(int(keep.sum()), dtype=torch.float64))
    uniform = torch.full_like(sums, 1.0 / num_classes)
    return torch.where(counts.unsqueeze(1) > 0, sums / counts.clamp(min=1).unsqueeze(1), uniform)


def federated_update(mu: dict[str, torch.Tensor], client_batch_size: int, server_lr: float) -> dict[str, torch.Tensor]:
    """MacForget (003 Alg. 2): the client update μ' = n₀·μ/η.

    A server that averages client gradients over the batch (÷ n₀) and takes a plain
    SGD step of size η moves θ by η·μ'/n₀ = μ, i.e. applies the Forsaken perturbation.
    """
    return {k: v * (client_batch_size / server_lr) for k, v in mu.items()}


class Forsaken(Unlearner):
    """Forget samples by L-BFGS-optimised mask gradients toward non-member posteriors.

    Tags: needs forget, holdout (or an extra view ``reference``) and a small
    retain subset D_0; supports sample requests (for a whole class, non-members
    predicted as that class look like that class, so there is nothing to pull
    toward); identity at ``iterations=0``.

    Example:
        >>> Forsaken(iterations=5, lam=0.01).get_params()["xi"]
        1.0
    """

    name: ClassVar[str] = "forsaken"
    needs: ClassVar[frozenset[str]] = frozenset({"forget", "holdout", "retain_subset"})
    supports: ClassVar[frozenset[str]] = frozenset({"samples"})
    defaults: ClassVar[dict[str, Any]] = {
        "iterations": 10,
        "xi": 1.0,
        "lam": 0.1,
        "penalty_set_size": 100,
        "weighted_penalty": True,
        "lbfgs_steps": 5,
        "lbfgs_lr": 0.5,
        "pull_toward": "true_label",
    }
    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        "iterations": Interval(int, 0, None),
        "xi": Interval(float, 0, None, closed="neither"),
        "lam": Interval(float, 0, None),
        "penalty_set_size": Interval(int, 1, None),
        "weighted_penalty": Boolean(),
        "lbfgs_steps": Interval(int, 1, None),
        "lbfgs_lr": Interval(float, 0, None, closed="neither"),
        "pull_toward": Options(("true_label", "trained_label")),
    }
    identity_params: ClassVar[dict[str, Any] | None] = {"iterations": 0}

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        splits = ctx.splits
        if self.iterations == 0:
            return model
        reference = splits.extras.get("reference", splits.holdout)
        xf, yf = (t.to(ctx.device) for t in splits.forget.tensors())
        true = splits.extras.get("forget_true") if self.pull_toward == "true_label" else None
        if true is not None:
            if not torch.equal(true.indices, splits.forget.indices):
                raise DataError("The extra view 'forget_true' must hold the forget set's rows; its indices differ.")
            yf = true.y[true.indices].to(ctx.device)  # labels only: the images are the forget set's
        if yf.dim() == 1:
            ref_out = outputs_of(model, reference, device=ctx.device)
            p = class_posteriors(ref_out.logits, splits.num_classes).float().to(ctx.device)
            target = p[yf]
        else:  # a language model: labels (n, L) are next tokens, targets (n, V, L) one distribution per position
            rows, where = torch.unique(yf, return_inverse=True)
            p = token_posteriors(model, reference, rows, splits.num_classes, device=ctx.device).float()
            target = p.to(ctx.device)[where].permute(0, 2, 1).contiguous()
        ctx.count("extra" if "reference" in splits.extras else "holdout", len(reference))
        params = trainable(model)
        start = {n: q.detach().clone() for n, q in params.items()}
        omega = self._omega(model, params, ctx)
        history = []
        model.eval()  # posteriors as the deployed model computes them
        for _ in range(self.iterations):
            mu = {n: torch.zeros_like(q, requires_grad=True) for n, q in params.items()}
            base = {n: q.detach() for n, q in params.items()}
            value = self._lbfgs(model, base, mu, omega, xf, target)
            ctx.count("forget", len(splits.forget) * self.lbfgs_steps)
            ctx.steps += 1
            if not torch.isfinite(torch.tensor(value)):
                raise DivergenceError("forsaken diverged (non-finite loss); lower 'xi' or 'lbfgs_lr', or raise 'lam'.")
            history.append(value)
            with torch.no_grad():
                for n, q in params.items():
                    q.sub_(self.xi * mu[n].detach())
            ctx.end_epoch(model)  # an iteration is Forsaken's epoch (holdout accuracy per iteration, when tracked)
        change = torch.cat([(q.detach() - start[n]).abs().flatten() for n, q in params.items()])
        ctx.diagnostics.update(loss_history=history, penalty_set_size=self.penalty_set_size,
                               weighted_penalty=self.weighted_penalty,
                               mask_l1=float(change.sum()),  # Σ|θ_after − θ_before|: what the penalty shrinks
                               moved_fraction=float((change > MOVED).double().mean()),
                               pulled_toward="true_label" if true is not None else "trained_label")  # fmt: skip
        return model

    def _lbfgs(
        self,
        model: nn.Module,
        base: dict[str, torch.Tensor],
        mu: dict[str, torch.Tensor],
        omega: dict[str, torch.Tensor],
        xf: torch.Tensor,
        target: torch.Tensor,
    ) -> float:
        """Optimise the mask μ in place; returns the final loss."""
        opt = torch.optim.LBFGS(list(mu.values()), lr=self.lbfgs_lr, max_iter=self.lbfgs_steps,
                                line_search_fn="strong_wolfe")  # fmt: skip

        def closure() -> torch.Tensor:
            opt.zero_grad()
            shifted = {n: base[n] - self.xi * mu[n] for n in base}
            logp = F.log_softmax(functional_call(model, shifted, (xf,)), dim=1)
            # mean KL per prediction: per sample for a classifier ("batchmean"), per position of a language model
            kl = F.kl_div(logp, target, reduction="sum") / (target.numel() // target.shape[1])
            # eq. 5: λ·Σ_d ω_d·|μ_d| over every trainable parameter, as the paper writes it
            penalty = torch.stack([(omega[n] * mu[n].abs()).sum() for n in mu]).sum()
            loss: torch.Tensor = kl + self.lam * penalty
            loss.backward()
            return loss

        return float(opt.step(closure).detach())

    def _omega(self, model: nn.Module, params: dict[str, nn.Parameter], ctx: Context) -> dict[str, torch.Tensor]:
        """ω (eq. 6): mean |∂CE/∂θ| over D_0, unnormalised (all ones when the penalty is unweighted, eq. 4)."""
        if not self.weighted_penalty:
            return {n: torch.ones_like(q) for n, q in params.items()}
        retain = ctx.splits.retain
        pick = torch.randperm(len(retain), generator=ctx.generator)[: self.penalty_set_size]
        ctx.count("retain", int(pick.numel()))
        # per-sample |gradient|, as eq. 6 averages absolute values
        omega = per_sample_mean(model, retain.subset(pick), torch.abs, device=ctx.device)
        return {n: w.float() for n, w in unflatten(omega, params).items()}
