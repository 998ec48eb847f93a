"""``l1_sparse``: fine-tune on the retain set with a decaying ℓ1 penalty (Jia et al., NeurIPS 2023).

Jia, Liu, Ram, Yao, Liu, Liu, Sharma, Liu, "Model sparsity can simplify machine
unlearning" (NeurIPS 2023), eq. 4: ``min_θ L_FT(θ; D_r) + γ ||θ||_1``, with the
penalty weight scheduled to decrease linearly over the unlearning epochs (their
"ℓ1-sparse MU"): sparsity is encouraged early, when the model moves away from
what it memorised, and released as fine-tuning restores accuracy.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from unlearnkit.core.gradients import trainable
from unlearnkit.core.training import TrainConfig, fit
from unlearnkit.methods.base import MASK_CONSTRAINTS, MASK_DEFAULTS, TRAINER_CONSTRAINTS, Context, Unlearner
from unlearnkit.validation import Constraint, Interval


def l1_weight(gamma: float, epoch: int, epochs: int) -> float:
    """The penalty weight in ``epoch`` (0-based) of ``epochs``: ``γ (1 − epoch / epochs)``, linear toward 0."""
    return float(gamma) * (1.0 - epoch / max(epochs, 1))


class L1Sparse(Unlearner):
    """Fine-tune on the retain set with ``γ_e ||θ||_1`` added to the loss, ``γ_e = γ (1 − e / epochs)``.

    The norm runs over every trainable parameter (weights and biases), as in the
    paper's code. Diagnostics: ``l1_weights`` (γ per epoch) and ``l1_norm`` after
    unlearning.

    Tags: needs retain; supports classes and samples; identity at ``epochs=0``.

    Example:
        >>> L1Sparse(gamma=1e-4).get_params()["gamma"]
        0.0001
    """

    name: ClassVar[str] = "l1_sparse"
    needs: ClassVar[frozenset[str]] = frozenset({"retain"})
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 5,
        "lr": 0.01,
        "gamma": 5e-4,
        "batch_size": 128,
        "optimizer": "sgd",
        "momentum": 0.9,
        **MASK_DEFAULTS,
    }
    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **TRAINER_CONSTRAINTS,
        "gamma": Interval(float, 0, None),
        **MASK_CONSTRAINTS,
    }
    search_space: ClassVar[dict[str, dict[str, Any]] | None] = {
        "epochs": {"low": 1, "high": 10},
        "lr": {"low": 1e-3, "high": 0.1, "log": True},
        "gamma": {"low": 1e-6, "high": 1e-2, "log": True},
    }
    identity_params: ClassVar[dict[str, Any] | None] = {"epochs": 0}

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        params = list(trainable(model).values())
        weights: list[float] = []

        def penalty(m: nn.Module, epoch: int) -> torch.Tensor:
            w = l1_weight(self.gamma, epoch, self.epochs)
            if len(weights) <= epoch:
                weights.append(w)
            return w * sum(p.abs().sum() for p in params)  # type: ignore[return-value]

        stats = fit(model, ctx.splits.retain, TrainConfig.from_dict(self.params), seed=ctx.seed, device=ctx.device,
                    progress=ctx.progress, on_epoch_end=lambda _e, m: ctx.end_epoch(m), desc=self.name,
                    penalty=penalty)  # fmt: skip
        ctx.steps += stats.steps
        ctx.count("retain", stats.samples_seen)
        ctx.diagnostics["l1_weights"] = weights
        ctx.diagnostics["l1_norm"] = float(sum(float(p.detach().abs().sum()) for p in params))
        return model
