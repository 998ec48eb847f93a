"""``retrain``: train from scratch on the retain set — the gold reference.

001 (SCRUB) §2.1: the retrained network is the optimal unlearned model. It uses
the original's architecture, recipe (:class:`~unlearnkit.training.TrainConfig`)
and seed: the same initial weights and a fresh seeded shuffle of the retain set.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from unlearnkit.errors import ParameterError
from unlearnkit.methods.base import Context, Unlearner
from unlearnkit.models import init_weights
from unlearnkit.training import fit
from unlearnkit.validation import Constraint


class Retrain(Unlearner):
    """Retrain from the initial weights on the retain set with the original recipe.

    Tags: needs retain + recipe; supports classes and samples.

    Example:
        >>> from unlearnkit.data import ForgetRequest, Splits, load_dataset, split_dataset
        >>> from unlearnkit.models import build_model
        >>> from unlearnkit.training import TrainConfig
        >>> s = Splits.from_request(split_dataset(load_dataset("digits")), ForgetRequest.from_classes([3]))
        >>> m = build_model("mlp", (1, 8, 8), 10, seed=0)
        >>> out = Retrain().unlearn(m, s, seed=0, recipe=TrainConfig(epochs=1))
        >>> out.samples_seen["retain"] == len(s.retain)
        True
    """

    name: ClassVar[str] = "retrain"
    needs: ClassVar[frozenset[str]] = frozenset({"retain", "recipe"})
    defaults: ClassVar[dict[str, Any]] = {}
    parameter_constraints: ClassVar[dict[str, Constraint]] = {}
    identity_exempt: ClassVar[str | None] = "starts from fresh initial weights; no setting returns the input model"

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        if ctx.recipe is None:  # Unlearner.unlearn already refuses this ("recipe" in needs)
            raise ParameterError("The 'recipe' parameter must be the original TrainConfig; got None.")
        init_weights(model, ctx.seed)
        stats = fit(
            model,
            ctx.splits.retain,
            ctx.recipe,
            seed=ctx.seed,
            device=ctx.device,
            progress=ctx.progress,
            on_epoch_end=lambda _epoch, m: ctx.end_epoch(m),
            desc="retrain",
        )
        ctx.steps += stats.steps
        ctx.count("retain", stats.samples_seen)
        ctx.diagnostics["epoch_loss"] = stats.epoch_loss
        return model
