"""Per-sample scores and accuracies: pure functions of collected outputs.

Both the metrics and the membership attacks read these, so they live below
both (``outputs`` → ``scores`` → ``metrics`` / ``attacks``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from unlearnkit.errors import ParameterError
from unlearnkit.evaluation.outputs import Outputs


def accuracy(outputs: Outputs, classes: Sequence[int] | None = None) -> float | None:
    """Share of correct arg-max predictions (restricted to ``classes``); None if empty."""
    if len(outputs) == 0:
        return None
    return float((outputs.predictions(classes) == outputs.labels).double().mean())


def per_class_accuracy(outputs: Outputs, num_classes: int, classes: Sequence[int] | None = None) -> list[float | None]:
    """Accuracy on the samples of each true class (None for a class with no samples)."""
    preds = outputs.predictions(classes)
    result: list[float | None] = []
    for c in range(num_classes):
        mask = outputs.labels == c
        result.append(float((preds[mask] == c).double().mean()) if bool(mask.any()) else None)
    return result


EPS = 1e-12


def _probs(o: Outputs) -> torch.Tensor:
    return torch.nan_to_num(o.logits.double(), neginf=-1e9).softmax(-1)


def sample_scores(o: Outputs, kind: str) -> np.ndarray:
    """Per-sample membership scores, higher = more member-like."""
    p = _probs(o)
    true = p.gather(1, o.labels.view(-1, 1)).squeeze(1)
    if kind == "loss":
        return np.asarray(-(-torch.log(true.clamp_min(EPS))).clamp(max=50.0).numpy())
    if kind == "confidence":
        return np.asarray(true.numpy())
    if kind == "entropy":
        return np.asarray((p * torch.log(p.clamp_min(EPS))).sum(1).numpy())  # = −entropy
    if kind == "modified_entropy":  # Song & Mittal (2021): low for confident, correct predictions
        wrong = p.clone()
        wrong.scatter_(1, o.labels.view(-1, 1), 0.0)
        me = -(1 - true) * torch.log(true.clamp_min(EPS)) - (wrong * torch.log((1 - wrong).clamp_min(EPS))).sum(1)
        return np.asarray((-me).numpy())
    raise ParameterError(f"The 'kind' parameter must be loss, confidence, entropy or modified_entropy; got {kind!r}.")


def confidence_features(o: Outputs, *, with_loss: bool = False) -> np.ndarray:
    """Sorted probability vector plus the true-label probability (and the loss): the shadow attack's input."""
    p = _probs(o)
    true = p.gather(1, o.labels.view(-1, 1))
    cols = [p.sort(1, descending=True).values, true]
    if with_loss:
        cols.append(-torch.log(true.clamp_min(EPS)).clamp(max=50.0))
    return np.asarray(torch.cat(cols, 1).numpy())
