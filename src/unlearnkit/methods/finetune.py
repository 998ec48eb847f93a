"""``finetune``: continue training the original model on the retain set.

001 (SCRUB) §2.2 / §4.2: relies on catastrophic interference — training on
D \\ D_f for a few epochs erodes what was specific to D_f.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from unlearnkit.core.training import TrainConfig, fit
from unlearnkit.methods.base import MASK_CONSTRAINTS, MASK_DEFAULTS, TRAINER_CONSTRAINTS, Context, Unlearner
from unlearnkit.validation import Constraint


class Finetune(Unlearner):
    """Fine-tune on the retain set for ``epochs`` epochs.

    Tags: needs retain; supports classes and samples; identity at ``epochs=0``.

    Example:
        >>> Finetune(epochs=2, lr=0.01).get_params()["epochs"]
        2
    """

    name: ClassVar[str] = "finetune"
    needs: ClassVar[frozenset[str]] = frozenset({"retain"})
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 1,
        "lr": 0.02,
        "batch_size": 128,
        "optimizer": "sgd",
        "momentum": 0.9,
        **MASK_DEFAULTS,
    }
    parameter_constraints: ClassVar[dict[str, Constraint]] = {**TRAINER_CONSTRAINTS, **MASK_CONSTRAINTS}
    identity_params: ClassVar[dict[str, Any] | None] = {"epochs": 0}

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        config = TrainConfig.from_dict(self.params)  # the optimiser settings this method shares with the trainer
        stats = fit(
            model,
            ctx.splits.retain,
            config,
            seed=ctx.seed,
            device=ctx.device,
            progress=ctx.progress,
            on_epoch_end=lambda _epoch, m: ctx.end_epoch(m),
            desc="finetune",
        )
        ctx.steps += stats.steps
        ctx.count("retain", stats.samples_seen)
        return model
