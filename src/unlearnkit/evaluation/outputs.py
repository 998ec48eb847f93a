"""Collect a model's outputs once per split; every metric reads these arrays.

:func:`collect` runs the model once over each split (in eval mode, without
gradients, restoring the model's mode afterwards) and keeps logits and labels.
Metrics and attacks are pure functions of the resulting :class:`Collected`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.core.models import evaluating
from unlearnkit.data.splits import Splits, View, request_kind
from unlearnkit.errors import ParameterError
from unlearnkit.registry import Registry


@dataclass(frozen=True, eq=False)
class Outputs:
    """Logits ``(n, k)`` and labels ``(n,)`` of one model on one split (on CPU).

    ``grad_norms`` ``(n, L)``, collected only on request (``outputs_of(..., white_box=True)``): each
    sample's loss-gradient norm per trainable parameter tensor, the white-box oracle's features.
    """

    logits: torch.Tensor
    labels: torch.Tensor
    grad_norms: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.numel())

    @cached_property
    def losses(self) -> torch.Tensor:
        """Per-sample cross-entropy, ``(n,)``; ``inf`` where the label's logit is masked to -inf."""
        if len(self) == 0:
            return torch.zeros(0)
        return F.cross_entropy(self.logits.double(), self.labels, reduction="none").float()

    def select(self, mask: torch.Tensor) -> Outputs:
        return Outputs(self.logits[mask], self.labels[mask], None if self.grad_norms is None else self.grad_norms[mask])

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
    info: dict[str, Any] = field(default_factory=dict)  # scenario facts, e.g. {"confused_classes": (0, 1)}

    def __contains__(self, split: str) -> bool:
        return split in self.outputs

    def __getitem__(self, split: str) -> Outputs:
        return self.outputs[split]

    @property
    def remaining_classes(self) -> list[int]:
        return [c for c in range(self.num_classes) if c not in self.forget_classes]

    @property
    def kind(self) -> str:
        """The request kind, as :attr:`Splits.kind <unlearnkit.data.Splits.kind>` gives it."""
        return request_kind(self.forget_classes, self.info)


def _hflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def _vflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-2)


def _crop90(x: torch.Tensor) -> torch.Tensor:
    """Centre crop keeping 90% of height and width, resized back (bilinear)."""
    h, w = x.shape[-2:]
    ch, cw = max(1, round(0.9 * h)), max(1, round(0.9 * w))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[..., top : top + ch, left : left + cw]
    return F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)


# Test-time augmentations of 002 (two-stage paper): a split name "forget@hflip"
# means the forget set with that transform applied to every input.
INPUT_TRANSFORMS: Registry[Callable[[torch.Tensor], torch.Tensor]] = Registry("input transform")
INPUT_TRANSFORMS.register("hflip", _hflip)
INPUT_TRANSFORMS.register("vflip", _vflip)
INPUT_TRANSFORMS.register("crop90", _crop90)


@torch.no_grad()
def outputs_of(
    model: nn.Module,
    view: View,
    *,
    batch_size: int = 2048,
    device: str | torch.device = "cpu",
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    white_box: bool = False,
) -> Outputs:
    """Run ``model`` over ``view`` (inputs passed through ``transform``) in eval
    mode; every submodule's mode is restored. ``white_box`` also collects each
    sample's gradient norms (:func:`~unlearnkit.core.gradients.per_sample_grad_norms`)."""
    chunks = []
    with evaluating(model):
        for xb, _ in view.batches(batch_size):
            xb = xb.to(device)
            chunks.append(model(transform(xb) if transform is not None else xb).float().cpu())
    logits = torch.cat(chunks) if chunks else torch.zeros(0, 0)
    norms = None
    if white_box:
        if transform is not None:
            raise ParameterError("The 'white_box' and 'transform' parameters of outputs_of cannot be combined.")
        from unlearnkit.core.gradients import per_sample_grad_norms

        norms = per_sample_grad_norms(model, view, device=device)
    return Outputs(logits, view.labels.cpu(), norms)


def split_views(splits: Splits) -> dict[str, View]:
    """Every named view of ``splits``: the four standard ones plus its extras."""
    return {
        "forget": splits.forget,
        "retain": splits.retain,
        "test": splits.test,
        "holdout": splits.holdout,
        **splits.extras,
    }


def expand_outputs(out: Outputs, num_classes: int, forget_classes: Sequence[int]) -> Outputs:
    """Map a model that dropped the forgotten classes' outputs back onto all k classes.

    A model with k - |C| outputs (output i = the i-th remaining class) is
    compared on the remaining classes' logits; the forgotten ones become -inf,
    exactly as for a model that masks them.
    """
    width = out.logits.shape[1] if out.logits.dim() == 2 else num_classes
    if width == num_classes or not forget_classes or width != num_classes - len(forget_classes):
        return out
    keep = [c for c in range(num_classes) if c not in forget_classes]
    full = torch.full((out.logits.shape[0], num_classes), float("-inf"))
    full[:, keep] = out.logits
    return Outputs(full, out.labels)
