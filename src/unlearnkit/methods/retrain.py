"""``retrain``: train from scratch on the retain set — the gold reference.

For a feature request (000's backdoor / leakage scenarios) the reference is
trained on clean data: the retain set plus D_f,clean (the samples without the
feature), since the samples themselves are kept.

001 (SCRUB) §2.1: the retrained network is the optimal unlearned model. It uses
the original's architecture, recipe (:class:`~unlearnkit.core.training.TrainConfig`)
and seed: the same initial weights and a fresh seeded shuffle of the retain set.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from unlearnkit.core.models import init_weights
from unlearnkit.core.training import fit
from unlearnkit.data.splits import Splits, View
from unlearnkit.errors import ParameterError
from unlearnkit.methods.base import Context, Unlearner
from unlearnkit.validation import Constraint


def clean_training_data(splits: Splits) -> View:
    """What the reference trains on: the retain set, plus D_f,clean for a feature request (000).

    Forgetting a feature keeps the samples, so the reference is a model trained
    on clean data — the forget rows without the feature (extra view
    ``forget_clean``) — not one trained without those samples.
    """
    clean = splits.extras.get("forget_clean") if splits.kind == "features" else None
    if clean is None:
        return splits.retain
    xr, yr = splits.retain.tensors()
    xc, yc = clean.tensors()
    return View.of(torch.cat([xr, xc]), torch.cat([yr, yc]), "retain+forget_clean")


class Retrain(Unlearner):
    """Retrain from the initial weights on the retain set with the original recipe.

    Tags: needs retain + recipe (+ the extra view ``forget_clean`` for features);
    supports classes, samples and features.

    Example:
        >>> from unlearnkit.data import ForgetRequest, Splits, load_dataset, split_dataset
        >>> from unlearnkit.core.models import build_model
        >>> from unlearnkit.core.training import TrainConfig
        >>> s = Splits.from_request(split_dataset(load_dataset("digits")), ForgetRequest.from_classes([3]))
        >>> m = build_model("mlp", (1, 8, 8), 10, seed=0)
        >>> out = Retrain().unlearn(m, s, seed=0, recipe=TrainConfig(epochs=1))
        >>> out.samples_seen["retain"] == len(s.retain)
        True
    """

    name: ClassVar[str] = "retrain"
    needs: ClassVar[frozenset[str]] = frozenset({"retain", "recipe"})
    supports: ClassVar[frozenset[str]] = frozenset({"classes", "samples", "features"})
    defaults: ClassVar[dict[str, Any]] = {}
    parameter_constraints: ClassVar[dict[str, Constraint]] = {}
    identity_exempt: ClassVar[str | None] = "starts from fresh initial weights; no setting returns the input model"

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        if ctx.recipe is None:  # Unlearner.unlearn already refuses this ("recipe" in needs)
            raise ParameterError("The 'recipe' parameter must be the original TrainConfig; got None.")
        init_weights(model, ctx.seed)
        stats = fit(
            model,
            clean_training_data(ctx.splits),
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
