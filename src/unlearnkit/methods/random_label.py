"""``random_label`` and ``salun``: fine-tune on the forget set with random labels, together with the retain set.

Graves, Nagisetty, Ganesh, "Amnesiac machine learning" (AAAI 2021) relabel the
deleted samples at random and train on them; Jia et al. (NeurIPS 2023) and Fan
et al. (SalUn, ICLR 2024) use it as the random-label baseline, training on the
relabelled forget set and the retain set together. SalUn is that baseline with
its weight-saliency mask on: only the top ``mask_ratio`` share of weights by the
forget loss's gradient magnitude may change (the mask is the shared option of
:mod:`unlearnkit.methods.base`, which ``finetune`` and ``neggrad_plus`` take too).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from unlearnkit.core.training import TrainConfig, fit
from unlearnkit.data.splits import View
from unlearnkit.methods.base import MASK_CONSTRAINTS, MASK_DEFAULTS, TRAINER_CONSTRAINTS, Context, Unlearner
from unlearnkit.validation import Constraint, Options


def random_labels(labels: torch.Tensor, num_classes: int, how: str, generator: torch.Generator) -> torch.Tensor:
    """Seeded random labels: ``"other"`` draws uniformly among the k − 1 wrong classes, ``"all"`` among all k."""
    if how == "other":
        shift = torch.randint(1, num_classes, labels.shape, generator=generator)
        return (labels + shift) % num_classes
    return torch.randint(0, num_classes, labels.shape, generator=generator)


class RandomLabel(Unlearner):
    """Train on the forget set relabelled at random plus the retain set, for ``epochs`` epochs.

    One epoch is one shuffled pass over forget ∪ retain (the SalUn code's combined
    loader); the random labels are drawn once per run from the seed. ``labels``:
    ``"other"`` (default) never draws a sample's own label — a draw of the true
    class is a plain fine-tuning step on the very sample to forget, which happens
    to 1/k of the forget set under ``"all"`` (the SalUn code's choice, kept as an
    option so its numbers can be matched).

    Tags: needs forget + retain; supports classes and samples; identity at ``epochs=0``.

    Example:
        >>> RandomLabel(epochs=2).get_params()["labels"]
        'other'
    """

    name: ClassVar[str] = "random_label"
    needs: ClassVar[frozenset[str]] = frozenset({"forget", "retain"})
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 5,
        "lr": 0.01,
        "batch_size": 128,
        "optimizer": "sgd",
        "momentum": 0.9,
        "labels": "other",
        **MASK_DEFAULTS,
    }
    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **TRAINER_CONSTRAINTS,
        "labels": Options(("other", "all")),
        **MASK_CONSTRAINTS,
    }
    search_space: ClassVar[dict[str, dict[str, Any]] | None] = {
        "epochs": {"low": 1, "high": 10},
        "lr": {"low": 1e-3, "high": 0.1, "log": True},
        "labels": {"choices": ["other", "all"]},
    }
    identity_params: ClassVar[dict[str, Any] | None] = {"epochs": 0}

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        forget, retain = ctx.splits.forget, ctx.splits.retain
        k = ctx.splits.num_classes
        relabelled = random_labels(forget.labels, k, self.labels, ctx.generator)
        x_f, _ = forget.tensors()
        x_r, y_r = retain.tensors()
        data = View.of(torch.cat([x_f, x_r]), torch.cat([relabelled, y_r]), "forget+retain")
        stats = fit(model, data, TrainConfig.from_dict(self.params), seed=ctx.seed, device=ctx.device,
                    progress=ctx.progress, on_epoch_end=lambda _e, m: ctx.end_epoch(m), desc=self.name)  # fmt: skip
        ctx.steps += stats.steps
        share = len(forget) / max(len(data), 1)
        ctx.count("forget", round(stats.samples_seen * share))
        ctx.count("retain", stats.samples_seen - round(stats.samples_seen * share))
        return model


class SalUn(RandomLabel):
    """SalUn (Fan et al., ICLR 2024): random-label unlearning updating only the salient weights.

    ``random_label`` with ``mask="saliency"`` and ``mask_ratio=0.5`` (the paper's
    default sparsity): the top half of the weights by |∇ forget loss|, one global
    threshold over every parameter, ties broken by position.

    Tags: needs forget + retain; supports classes and samples; identity at ``epochs=0``.
    """

    name: ClassVar[str] = "salun"
    defaults: ClassVar[dict[str, Any]] = {**RandomLabel.defaults, "mask": "saliency"}
    search_space: ClassVar[dict[str, dict[str, Any]] | None] = {
        **(RandomLabel.search_space or {}),
        "mask_ratio": {"low": 0.1, "high": 0.9},
    }
