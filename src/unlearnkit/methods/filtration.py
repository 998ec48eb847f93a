"""``filtration``: class-wide unlearning by a linear map absorbed into the last layer.

004 (Baumhauer, Schöttle, Zeppelzauer: Linear Filtration for Logit-based
Classifiers), §4. For a classifier ``h(x) = W f(x) + b`` with k outputs and
classes C to forget:

* ``A`` (k x k): column j = mean logit vector over samples of class j
  (``samples_per_class`` per class, seeded, from the holdout split or from an
  extra view named ``"filtration"`` the user supplies — never the test split);
* ``π`` drops the rows of C; ``B_z`` ((k-|C|) x k): column j = π(a_j) for
  j ∉ C, and ``z_c`` for c ∈ C;
* ``F_z = B_z A⁻¹`` maps column a_j of A to column j of B_z;
* absorbed: ``W_z = F_z W``, ``b_z = F_z b`` — exact, because F_z is applied
  to the logits and the logits are affine in f(x).

Choices of z (the ``z`` setting): ``naive`` (z_c = π(a_c): F_z = π, i.e. delete
the rows), ``normalization`` (the paper's main method: π(a_c) shifted so its mean
equals the mean of all entries of π(a_j), j ∉ C), ``randomization``
(z_c ~ N(0, I), seeded), ``zeroing`` (z_c = 0).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import torch
from torch import nn

from unlearnkit.core.models import find_head, set_module
from unlearnkit.errors import ParameterError, UnlearnkitError
from unlearnkit.evaluation.outputs import outputs_of
from unlearnkit.methods.base import Context, Unlearner
from unlearnkit.validation import Boolean, Constraint, Interval, Options


class IllConditionedError(UnlearnkitError):
    """The matrix of mean logits A is too ill-conditioned to invert reliably."""


def class_means(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A: column j = mean logit vector of the samples of class j. Shape (k, k), float64."""
    k = num_classes
    if logits.dim() != 2 or logits.shape[1] != k:
        raise ParameterError(
            f"filtration needs a model with one logit per class ({k}); its outputs have shape {tuple(logits.shape)}."
        )
    a = torch.empty(k, k, dtype=torch.float64)
    for j in range(k):
        rows = logits[labels == j]
        if rows.shape[0] == 0:
            raise ParameterError(f"filtration needs samples of every class to estimate A; class {j} has none.")
        a[:, j] = rows.double().mean(0)
    return a


def choose_z(a: torch.Tensor, forget: list[int], how: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Columns z_c (one per forgotten class), shape (k - |C|, |C|).

    ``normalization`` generalises 004 §4.1 to |C| >= 1: each π(a_c) is shifted
    so that its mean equals the mean of all entries of π(a_j) for j ∉ C.
    """
    k = a.shape[0]
    keep = [i for i in range(k) if i not in forget]
    pa = a[keep]  # π applied to every column: (k - |C|, k)
    cols = []
    for c in forget:
        if how == "naive":
            cols.append(pa[:, c])
        elif how == "normalization":
            others = pa[:, keep]  # π(a_j), j not in C
            cols.append(pa[:, c] - pa[:, c].mean() + others.mean())
        elif how == "randomization":
            cols.append(torch.randn(len(keep), generator=generator, dtype=torch.float64))
        elif how == "zeroing":
            cols.append(torch.zeros(len(keep), dtype=torch.float64))
        else:
            raise ParameterError(
                f"The 'z' parameter must be one of naive, normalization, randomization, zeroing; got {how!r}."
            )
    return torch.stack(cols, dim=1)


def filtration_matrix(
    a: torch.Tensor, forget: list[int], z: torch.Tensor, *, regularization: float = 0.0, max_condition: float = 1e8
) -> tuple[torch.Tensor, float]:
    """F_z = B_z A⁻¹ (shape (k - |C|, k)) and cond(A).

    With ``regularization`` λ > 0 the ridge solution B_z Aᵀ (A Aᵀ + λI)⁻¹ is used
    instead of the inverse, and the condition check is skipped.
    """
    k = a.shape[0]
    keep = [i for i in range(k) if i not in forget]
    b = a[keep].clone()  # columns π(a_j)
    for idx, c in enumerate(forget):
        b[:, c] = z[:, idx]
    cond = float(torch.linalg.cond(a))
    if regularization > 0:
        gram = a @ a.T + regularization * torch.eye(k, dtype=a.dtype)
        f = torch.linalg.solve(gram, (b @ a.T).T).T  # gram is symmetric
    else:
        if not cond < max_condition:
            raise IllConditionedError(
                f"The mean-logit matrix A has condition number {cond:.3g} (> max_condition {max_condition:.3g}); "
                "use more samples per class or set 'regularization' > 0."
            )
        f = torch.linalg.solve(a.T, b.T).T  # F A = B
    return f, cond


class LinearFiltration(Unlearner):
    """Forget whole classes by a filtration matrix absorbed into the final linear layer.

    Tags: needs samples of every class (holdout split, or an extra view
    ``"filtration"``) and a final ``nn.Linear``; supports classes only; no
    identity setting (it rewrites the output layer).

    Example:
        >>> LinearFiltration(z="normalization", samples_per_class=50).name
        'filtration'
    """

    name: ClassVar[str] = "filtration"
    needs: ClassVar[frozenset[str]] = frozenset({"holdout", "linear_head"})
    supports: ClassVar[frozenset[str]] = frozenset({"classes"})
    defaults: ClassVar[dict[str, Any]] = {
        "z": "normalization",
        "samples_per_class": 100,
        "keep_outputs": True,
        "regularization": 0.0,
        "max_condition": 1e8,
    }
    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        "z": Options(("naive", "normalization", "randomization", "zeroing")),
        "samples_per_class": Interval(int, 1, None),
        "keep_outputs": Boolean(),
        "regularization": Interval(float, 0, None),
        "max_condition": Interval(float, 1, None, closed="neither"),
    }
    identity_exempt: ClassVar[str | None] = (
        "rewrites the output layer (forgotten logits become -inf or are dropped); no setting returns the input"
    )

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        splits = ctx.splits
        k, forget = splits.num_classes, list(splits.forget_classes)
        source = splits.extras.get("filtration", splits.holdout)
        picks = []
        labels = source.labels
        for j in range(k):  # ℓ samples per class, seeded; fewer if the source has fewer
            members = torch.nonzero(labels == j).flatten()
            picks.append(members[torch.randperm(members.numel(), generator=ctx.generator)[: self.samples_per_class]])
        sample = source.subset(torch.cat(picks), "filtration")
        out = outputs_of(model, sample, device=ctx.device)
        ctx.count("holdout" if "filtration" not in splits.extras else "extra", len(sample))
        start = time.perf_counter()
        a = class_means(out.logits, out.labels, k)
        z = choose_z(a, forget, self.z, ctx.generator)
        f, cond = filtration_matrix(a, forget, z, regularization=self.regularization, max_condition=self.max_condition)
        name, head = find_head(model, sample.x[:1].to(ctx.device))  # the Linear applied last, traced
        w = head.weight.detach().double()  # (k, p)
        b = head.bias.detach().double() if head.bias is not None else torch.zeros(k, dtype=torch.float64)
        keep = [i for i in range(k) if i not in forget]
        out_features = k if self.keep_outputs else len(keep)
        new = nn.Linear(head.in_features, out_features, bias=True).to(
            device=head.weight.device, dtype=head.weight.dtype
        )
        with torch.no_grad():
            wz, bz = f @ w, f @ b
            if self.keep_outputs:  # drop-in: k outputs, forgotten ones fixed at -inf
                new.weight.zero_()
                new.bias.fill_(float("-inf"))
                new.weight[keep] = wz.to(new.weight.dtype)
                new.bias[keep] = bz.to(new.bias.dtype)
            else:
                new.weight.copy_(wz.to(new.weight.dtype))
                new.bias.copy_(bz.to(new.bias.dtype))
        set_module(model, name, new)
        ctx.diagnostics.update(
            condition_number=cond, forward_passes=len(sample), solve_seconds=time.perf_counter() - start,
            samples_per_class=[int(p.numel()) for p in picks], outputs=out_features,
        )  # fmt: skip
        return model
