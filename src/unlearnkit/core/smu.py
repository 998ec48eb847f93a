"""SMU models prepared at training time: the model behind the ``smu`` method (003's baseline, after Cao & Yang).

SGD training is a sum of per-step updates, and each step's update is a sum of
per-sample gradient terms. :func:`train_smu` trains exactly as
:func:`~unlearnkit.core.training.fit` would and, on the side, records for every
*deletion candidate* declared at training time the total displacement its
gradient terms caused: a sample's gradient g at step t of T moves the weights
by ``lr · g / |batch| · (1 − β^(T−t)) / (1 − β)`` in all (momentum β spreads
it over the later steps; weight decay is not a per-sample term and is left
out). Unlearning adds those displacements back — "subtracts the recorded
contributions" — and runs one more epoch of training on the retained data,
as 003 describes.

Recording per-sample gradients for every training sample does not fit in
memory (one parameter-sized vector per sample), so only candidates are
recorded, and a request outside them is refused. Storage: candidates ×
parameters floats. Gradients are taken at the weights of the step, in eval
mode (exact for models without dropout or batch norm).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from unlearnkit.core.gradients import per_sample_gradients, trainable
from unlearnkit.core.preparation import PREPARATIONS, PreparedModel
from unlearnkit.core.training import TrainConfig, fit
from unlearnkit.data.splits import View
from unlearnkit.errors import ParameterError


class SMUModel(PreparedModel):
    """A trained model plus the recorded displacement of each deletion candidate.

    Attributes:
        inner: The classifier (``forward`` delegates to it).
        candidates: Dataset rows (``View.indices`` values) whose contributions were recorded, shape ``(K,)``.
        contributions: ``(K, P)`` displacement of each candidate over the trainable
            parameters (in ``named_parameters`` order).
        config, seed: The recipe and seed it was trained with (the extra epoch reuses them).
    """

    preparation: ClassVar[str] = "smu"
    how: ClassVar[str] = "`unlearnkit train --smu-candidates N` or unlearnkit.methods.smu.train_smu"

    def __init__(
        self, inner: nn.Module, candidates: torch.Tensor, contributions: torch.Tensor, *, config: TrainConfig, seed: int
    ) -> None:
        super().__init__()
        self.inner = inner
        self.candidates = candidates.long()
        self.contributions = contributions.float()
        self.config = config
        self.seed = int(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)  # type: ignore[no-any-return]

    def prepared_meta(self) -> dict[str, Any]:
        return {"candidates": int(self.candidates.numel()), "training": self.config.to_dict(), "seed": self.seed}

    def prepared_tensors(self) -> dict[str, torch.Tensor]:
        return {"candidates": self.candidates, "contributions": self.contributions}

    @classmethod
    def restore(
        cls, build: Callable[[], nn.Module], meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
    ) -> SMUModel:
        inner = build()
        model = cls(
            inner,
            tensors["candidates"],
            tensors["contributions"],
            config=TrainConfig.from_dict(meta["training"]),
            seed=int(meta["seed"]),
        )
        n_params = sum(p.numel() for p in inner.parameters() if p.requires_grad)
        if model.contributions.shape != (model.candidates.numel(), n_params):
            raise ValueError(f"contributions have shape {tuple(model.contributions.shape)}, expected (K, {n_params})")
        return model


def train_smu(
    model: nn.Module,
    data: View,
    config: TrainConfig,
    *,
    candidates: int | Sequence[int] | torch.Tensor,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> SMUModel:
    """Train a copy of ``model`` like :func:`~unlearnkit.core.training.fit` and record the candidates' contributions.

    Args:
        candidates: A count (that many training samples drawn with ``seed``) or
            the positions in ``data`` (0..n−1, as forget requests use) of the
            samples that may later be forgotten.

    The weights equal ``fit(model, data, config, seed=seed)``'s exactly: the
    recording draws no randomness and touches no ``.grad``.
    """
    if config.optimizer != "sgd":
        raise ParameterError(
            f"The 'optimizer' parameter of train_smu's recipe must be 'sgd'; got {config.optimizer!r}."
        )
    rows = data.indices
    if isinstance(candidates, int) and not isinstance(candidates, bool):
        if not 1 <= candidates <= len(data):
            raise ParameterError(
                f"The 'candidates' parameter of train_smu must be between 1 and {len(data)} (the training rows); "
                f"got {candidates}."
            )
        pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(int(seed) + 1))[:candidates]
        cand = rows[pick.sort().values]
    else:
        if isinstance(candidates, bool):
            raise ParameterError(
                f"The 'candidates' parameter of train_smu must be a count or rows; got {candidates!r}."
            )
        pos = torch.as_tensor(candidates if isinstance(candidates, torch.Tensor) else list(candidates)).long()
        n = len(data)
        if (
            pos.ndim != 1
            or pos.numel() == 0
            or pos.unique().numel() != pos.numel()
            or bool(((pos < 0) | (pos >= n)).any())
        ):
            raise ParameterError(
                f"The 'candidates' parameter of train_smu must list distinct positions in 0..{n - 1} of the training "
                f"set; got {pos.numel()} positions, ranging {int(pos.min()) if pos.numel() else '-'}.."
                f"{int(pos.max()) if pos.numel() else '-'}."
            )
        cand = rows[pos]
    inner = copy.deepcopy(model)
    n_params = sum(p.numel() for p in trainable(inner).values())
    contributions = torch.zeros(cand.numel(), n_params)
    lookup = torch.full((int(rows.max()) + 1,), -1, dtype=torch.long)
    lookup[cand] = torch.arange(cand.numel())
    total_steps = config.epochs * math.ceil(len(data) / config.batch_size)
    beta = config.momentum
    step = 0
    dev = torch.device(device)

    def record(m: nn.Module, batch_rows: torch.Tensor) -> None:
        nonlocal step
        pos = lookup[batch_rows.cpu()]
        hit = pos >= 0
        if bool(hit.any()):
            remaining = total_steps - step
            spread = remaining if beta == 0 else (1 - beta**remaining) / (1 - beta)
            factor = config.lr * spread / batch_rows.numel()
            sel = batch_rows[hit.to(batch_rows.device)]
            g = per_sample_gradients(m, data.x[sel].to(dev), data.y[sel].to(dev))
            contributions[pos[hit]] += factor * g.cpu()
        step += 1

    fit(inner, data, config, seed=seed, device=dev, progress=progress, desc="train (smu)", on_batch=record)
    inner.eval()
    return SMUModel(inner, cand, contributions, config=config, seed=seed)


PREPARATIONS.register("smu", SMUModel)
