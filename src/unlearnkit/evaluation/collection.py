"""Collect a model's outputs once, on every split that the applicable metrics read.

:func:`required_splits` asks the metric registry which splits (and test-time
transforms) a forget request's metrics read; :func:`collect` runs the model once
over each of them. Metrics and attacks are then pure functions of the result.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from unlearnkit.data.splits import Splits
from unlearnkit.errors import ParameterError
from unlearnkit.evaluation.metrics import METRICS, applicable
from unlearnkit.evaluation.outputs import INPUT_TRANSFORMS, Collected, expand_outputs, outputs_of, split_views


def required_splits(splits: Splits, metrics: Sequence[str] | None = None) -> list[str]:
    """Split names (with transforms, e.g. ``forget@hflip``) the metrics read on ``splits``."""
    available = split_views(splits)
    names = list(metrics) if metrics is not None else applicable(splits.kind, available, splits.info)
    if metrics is None and splits.train.x.dim() != 4:  # test-time image transforms need (N, C, H, W) inputs
        names = [n for n in names if not any("@" in r for r in METRICS.get(n).requires)]
    needed: list[str] = ["forget", "retain", "test"] if metrics is None else []  # facts every record reports
    for n in names:
        for r in METRICS.get(n).requires:
            if r not in needed:
                needed.append(r)
    return needed


def collect(
    model: nn.Module,
    splits: Splits,
    *,
    names: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
) -> Collected:
    """Collect ``model``'s outputs on each named split of ``splits``, once.

    ``names`` are view names, optionally with a test-time transform
    (``"forget@hflip"``); by default every split some registered metric
    applicable to ``splits`` reads (see :func:`required_splits`).
    """
    if names is None:
        names = required_splits(splits)
    views = split_views(splits)
    outputs = {}
    for name in names:
        base, _, tname = name.partition("@")
        if base not in views:
            raise KeyError(f"no split named {base!r}; available: {', '.join(views)}")
        transform = INPUT_TRANSFORMS.get(tname) if tname else None
        if transform is not None and (not views[base].x.is_floating_point() or views[base].x.dim() != 4):
            raise ParameterError(
                f"The split {name!r} asks for the test-time image transform {tname!r}, which needs (N, C, H, W) "
                f"floating-point inputs; {base!r} holds {views[base].x.dtype} {tuple(views[base].x.shape[1:])}."
            )
        out = outputs_of(model, views[base], device=device, transform=transform)
        outputs[name] = expand_outputs(out, splits.num_classes, splits.forget_classes)
    return Collected(outputs, splits.num_classes, splits.forget_classes, dict(splits.info))
