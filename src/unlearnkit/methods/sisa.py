"""``sisa`` / ``sisa_dp``: retrain only the shards that held a forgotten sample (003's baselines, Bourtoule et al.).

The ensemble, its shards, slices and checkpoints, and its (DP-SGD) training are the
preparation in :mod:`unlearnkit.core.sisa`, made at training time. Unlearning restarts
each affected shard from the checkpoint before its first slice that held a forgotten
sample and retrains it on the same slices without them — exactly what training from
scratch without them does. ``sisa_dp`` requires an ensemble trained with DP-SGD.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from unlearnkit.core.sisa import SISAEnsemble
from unlearnkit.errors import ParameterError
from unlearnkit.methods.base import Context, Unlearner
from unlearnkit.validation import Constraint


class SISA(Unlearner):
    """Retrain only the shards that held forgotten samples, from their last clean checkpoint.

    Tags: needs a model prepared at training time (a :class:`SISAEnsemble`),
    the forget set and the retain rows of the affected shards; supports
    sample and class requests; identity when no shard holds a forgotten sample.
    """

    name: ClassVar[str] = "sisa"
    needs: ClassVar[frozenset[str]] = frozenset({"prepared", "forget", "retain"})
    supports: ClassVar[frozenset[str]] = frozenset({"classes", "samples"})
    defaults: ClassVar[dict[str, Any]] = {}
    parameter_constraints: ClassVar[dict[str, Constraint]] = {}
    identity_exempt: ClassVar[str | None] = "has no settings; it is the identity only for a request no shard holds"
    prepared_type: ClassVar[type[nn.Module] | None] = SISAEnsemble
    requires_dp: ClassVar[bool] = False

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        assert isinstance(model, SISAEnsemble)
        if self.requires_dp and model.dp is None:
            raise ParameterError(
                "The 'model' parameter of SISADP.unlearn must be trained with DP-SGD "
                "(`unlearnkit train --sisa-epsilon E` or train_sisa(dp_epsilon=E)); got a non-private SISA ensemble."
            )
        forget = ctx.splits.forget.indices.to(model.rows.device)
        hit = torch.isin(model.rows, forget)
        if int(hit.sum()) != forget.numel():
            missing = int(forget.numel() - hit.sum())
            raise ParameterError(
                f"The 'splits' parameter of {type(self).__name__}.unlearn must forget rows this SISA model was "
                f"trained on; {missing} of {forget.numel()} forget rows are not among them."
            )
        retain = ctx.splits.retain
        keep = ~hit
        if not bool(torch.isin(model.rows[keep], retain.indices.to(model.rows.device)).all()):
            raise ParameterError(
                f"The 'splits' parameter of {type(self).__name__}.unlearn must hold, in its retain set, every "
                "other row this SISA model was trained on; some are missing (different data or split?)."
            )
        first = {int(s): int(model.slice[hit & (model.shard == s)].min()) for s in model.shard[hit].unique()}
        model.rows, model.shard, model.slice = model.rows[keep], model.shard[keep], model.slice[keep]
        retrained = []
        for s, r0 in sorted(first.items()):
            ctx.steps += model.train_shard(s, r0, retain, ctx.device)
            ctx.count(
                "retain",
                sum(len(model.shard_view(s, r, retain)) for r in range(r0, model.slices)) * model.epochs_per_slice,
            )
            retrained.append({"shard": s, "from_slice": r0})
        ctx.diagnostics.update(
            shards_retrained=len(retrained),
            retrained=retrained,
            checkpoint_bytes=model.storage_bytes(),
        )
        return model


class SISADP(SISA):
    """SISA whose constituents were trained, and are retrained, with DP-SGD (Opacus).

    Tags: as ``sisa``, but the ensemble must come from ``train_sisa(dp_epsilon=...)``.
    """

    name: ClassVar[str] = "sisa_dp"
    requires_dp: ClassVar[bool] = True
