"""Collect a model's outputs once per split; every metric reads these arrays.

:func:`collect` runs the model once over each split (in eval mode, without
gradients, restoring the model's mode afterwards) and keeps logits and labels.
Metrics and attacks are pure functions of the resulting :class:`Collected`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.data.splits import Splits, View


@dataclass(frozen=True, eq=False)
class Outputs:
    """Logits ``(n, k)`` and labels ``(n,)`` of one model on one split (on CPU)."""

    logits: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.numel())

    @cached_property
    def losses(self) -> torch.Tensor:
        """Per-sample cross-entropy, ``(n,)``; ``inf`` where the label's logit is masked to -inf."""
        if len(self) == 0:
            return torch.zeros(0)
        return F.cross_entropy(self.logits.double(), self.labels, reduction="none").float()

    def select(self, mask: torch.Tensor) -> Outputs:
        return Outputs(self.logits[mask], self.labels[mask])

    def of_classes(self, classes: Sequence[int]) -> Outputs:
        """Only the samples whose label is in ``classes``."""
        return self.select(torch.isin(self.labels, torch.as_tensor(list(classes), dtype=torch.long)))

    def predictions(self, classes: Sequence[int] | None = None) -> torch.Tensor:
        """Arg-max predictions, restricted to ``classes`` when given."""
        if classes is None:
            return self.logits.argmax(1)
        cls = torch.as_tensor(list(classes), dtype=torch.long)
        return cls[self.logits[:, cls].argmax(1)]


@dataclass(frozen=True, eq=False)
class Collected:
    """A model's outputs on every split of one forget request.

    Attributes:
        outputs: Split name ("forget", "retain", "test", "holdout", ...) -> outputs.
        num_classes: ``k``.
        forget_classes: Classes forgotten whole (empty for sample requests).
    """

    outputs: dict[str, Outputs]
    num_classes: int
    forget_classes: tuple[int, ...] = ()
    extra: dict[str, object] = field(default_factory=dict)

    def __getitem__(self, split: str) -> Outputs:
        return self.outputs[split]

    @property
    def remaining_classes(self) -> list[int]:
        return [c for c in range(self.num_classes) if c not in self.forget_classes]


@torch.no_grad()
def outputs_of(model: nn.Module, view: View, *, batch_size: int = 2048, device: str | torch.device = "cpu") -> Outputs:
    """Run ``model`` over ``view`` in eval mode; the model's mode is restored."""
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for xb, _ in view.batches(batch_size):
            chunks.append(model(xb.to(device)).float().cpu())
    finally:
        model.train(was_training)
    logits = torch.cat(chunks) if chunks else torch.zeros(0, 0)
    return Outputs(logits, view.labels.cpu())


DEFAULT_SPLITS = ("forget", "retain", "test", "holdout")


def collect(
    model: nn.Module,
    splits: Splits,
    *,
    names: Sequence[str] = DEFAULT_SPLITS,
    device: str | torch.device = "cpu",
) -> Collected:
    """Collect ``model``'s outputs on each named split of ``splits``."""
    views: dict[str, View] = {
        "forget": splits.forget,
        "retain": splits.retain,
        "test": splits.test,
        "holdout": splits.holdout,
        **splits.extras,
    }
    return Collected(
        {n: outputs_of(model, views[n], device=device) for n in names},
        splits.num_classes,
        splits.forget_classes,
    )
