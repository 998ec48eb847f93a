"""Distillation terms shared by methods: response (softened KL) and feature distillation.

Options that compose: any method can add :func:`distill_kl` or
:func:`feature_distance` to its loss, and read intermediate features through
:class:`FeatureTaps`, whose hooks are always removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.core.models import find_head
from unlearnkit.errors import ParameterError

PENULTIMATE = "penultimate"  # the input of the final linear layer (last hidden features)


def distill_kl(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    *,
    cap: float | None = None,
) -> torch.Tensor:
    """KL(softmax(t / T) || softmax(s / T)) * T², averaged over the batch (Hinton et al.).

    The T² factor keeps gradient magnitudes comparable across temperatures.
    With ``cap``, each sample's KL is clamped at ``cap`` before averaging, so
    samples already that far from the teacher stop contributing gradient (used
    to bound an ascent on this loss).
    """
    t = float(temperature)
    log_s = F.log_softmax(student_logits / t, dim=1)
    p_t = F.softmax(teacher_logits.detach() / t, dim=1)
    per_sample = F.kl_div(log_s, p_t, reduction="none").sum(1) * (t * t)
    if cap is not None:
        per_sample = per_sample.clamp(max=float(cap))
    return per_sample.mean()


def feature_distance(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the mean squared distance between L2-normalised features.

    001 eq. 6-7: MSE(F_o / ||F_o||, F_u / ||F_u||) per layer. Each sample's
    feature map is flattened and normalised to unit length; the squared
    Euclidean distance (in [0, 4]) is averaged over the batch. This equals the
    elementwise MSE times the feature size, which keeps layers of different
    widths on the same scale.
    """
    total = torch.zeros((), device=student[0].device if student else None)
    for s, t in zip(student, teacher, strict=True):
        s_n = F.normalize(s.flatten(1), dim=1)
        t_n = F.normalize(t.detach().flatten(1), dim=1)
        total = total + (s_n - t_n).pow(2).sum(1).mean()
    return total


def default_feature_layers(model: nn.Module, style: str) -> list[str]:
    """Default layers: ``"attention"`` = every Conv2d output plus the last hidden
    features; ``"similarity"`` = the topmost Conv2d (or the last hidden features
    for a model without convolutions)."""
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if style == "similarity":
        return [convs[-1]] if convs else [PENULTIMATE]
    return [*convs, PENULTIMATE]


class FeatureTaps:
    """Record the outputs of named layers during forward passes.

    Use as a context manager; hooks are removed on exit, also on error.

    Example:
        >>> from unlearnkit.core.models import build_model
        >>> m = build_model("lenet", (1, 28, 28), 10)
        >>> with FeatureTaps(m, ["conv.3", "penultimate"]) as taps:
        ...     _ = m(torch.zeros(2, 1, 28, 28))
        ...     [tuple(f.shape) for f in taps.take()]
        [(2, 16, 10, 10), (2, 84)]
    """

    def __init__(self, model: nn.Module, layers: Sequence[str]) -> None:
        modules = dict(model.named_modules())
        self.model = model
        self.layers = list(layers)
        self._targets: list[tuple[str, nn.Module]] = []
        for name in self.layers:
            if name == PENULTIMATE:
                self._targets.append((name, find_head(model)[1]))
            elif name in modules and name != "":
                self._targets.append((name, modules[name]))
            else:
                valid = ", ".join([PENULTIMATE, *(n for n in modules if n)])
                raise ParameterError(
                    f"The 'layers' parameter must name modules of the model; got {name!r}. Valid: {valid}."
                )
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._seen: dict[str, torch.Tensor] = {}

    def __enter__(self) -> FeatureTaps:
        for name, module in self._targets:
            if name == PENULTIMATE:
                self._handles.append(module.register_forward_pre_hook(self._pre_hook(name)))
            else:
                self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook(self, name: str):  # type: ignore[no-untyped-def]
        def hook(_m: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            self._seen[name] = out

        return hook

    def _pre_hook(self, name: str):  # type: ignore[no-untyped-def]
        def hook(_m: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
            self._seen[name] = inp[0]

        return hook

    def take(self) -> list[torch.Tensor]:
        """Features of the last forward pass, in layer order; clears them."""
        missing = [n for n in self.layers if n not in self._seen]
        if missing:
            raise RuntimeError(f"layers {missing} produced no output in the last forward pass")
        out = [self._seen[n] for n in self.layers]
        self._seen.clear()
        return out
