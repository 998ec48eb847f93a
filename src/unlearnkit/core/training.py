"""One seeded, deterministic trainer for originals, retraining and method inner loops.

The data stays resident as tensors (:class:`~unlearnkit.data.View`); a batch is
one index gather, so the loop does no per-sample Python work and runs at the
speed of a bare PyTorch loop over the same tensors (see ``bench/``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.data.splits import View
from unlearnkit.progress import Counter
from unlearnkit.registry import Registry
from unlearnkit.validation import Constraint, Interval, Options, validate_parameters

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")


def _sgd(params: Iterable[nn.Parameter], *, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def _adam(params: Iterable[nn.Parameter], *, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    # momentum is SGD's; Adam keeps its default betas.
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


OPTIMIZERS.register("sgd", _sgd)
OPTIMIZERS.register("adam", _adam)


@dataclass(frozen=True)
class TrainConfig:
    """A training recipe. Retraining reuses the original's recipe and seed.

    Attributes:
        epochs: Passes over the training data.
        batch_size: Samples per step.
        lr: Learning rate.
        optimizer: ``"sgd"`` or ``"adam"``.
        momentum: SGD momentum (ignored by Adam).
        weight_decay: L2 penalty.
    """

    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0

    constraints: ClassVar[dict[str, Constraint]] = {
        "epochs": Interval(int, 0, None),
        "batch_size": Interval(int, 1, None),
        "lr": Interval(float, 0, None, closed="neither"),
        "optimizer": Options(("sgd", "adam")),
        "momentum": Interval(float, 0, 1, closed="left"),
        "weight_decay": Interval(float, 0, None),
    }

    def __post_init__(self) -> None:
        validate_parameters("TrainConfig", asdict(self), self.constraints)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def make_optimizer(params: Iterable[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(config.optimizer)(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


@dataclass
class TrainStats:
    """What a training run did: steps, samples seen, time and per-epoch loss."""

    epochs: int = 0
    steps: int = 0
    samples_seen: int = 0
    seconds: float = 0.0
    epoch_loss: list[float] = field(default_factory=list)


def fit(
    model: nn.Module,
    data: View,
    config: TrainConfig,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    desc: str = "train",
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
    on_batch: Callable[[nn.Module, torch.Tensor], None] | None = None,
    penalty: Callable[[nn.Module, int], torch.Tensor] | None = None,
) -> TrainStats:
    """Train ``model`` in place with cross-entropy on ``data``.

    The shuffle order comes from a generator seeded with ``seed``; any other
    randomness (dropout) from the global RNG, re-seeded with ``seed`` inside a
    forked RNG state, so the caller's RNG is untouched and runs repeat exactly.
    ``on_batch(model, rows)`` is called with each batch's row indices before its
    step (``smu`` records its candidates' contributions there). ``penalty(model,
    epoch)`` is added to every batch's loss (``l1_sparse``'s decaying ℓ1 term).

    Example:
        >>> from unlearnkit.data import load_dataset, split_dataset
        >>> from unlearnkit.core.models import build_model
        >>> s = split_dataset(load_dataset("digits"), seed=0)
        >>> m = build_model("mlp", (1, 8, 8), 10, seed=0)
        >>> fit(m, s.train, TrainConfig(epochs=1), seed=0).steps
        10
    """
    stats = TrainStats()
    start = time.perf_counter()
    optimizer = make_optimizer(model.parameters(), config)
    device = torch.device(device)
    data = to_device(data, device)
    generator = torch.Generator().manual_seed(int(seed))
    was_training = model.training
    model.train()
    per_epoch = -(-len(data) // config.batch_size)
    bar = Counter(config.epochs * per_epoch, enabled=progress, desc=desc, unit="batch")
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            for epoch in range(config.epochs):
                total = torch.zeros((), device=device)
                for rows in data.index_batches(config.batch_size, generator=generator, shuffle=True):
                    xb, yb = data.x[rows], data.y[rows]
                    if on_batch is not None:
                        on_batch(model, rows)
                    optimizer.zero_grad(set_to_none=True)
                    loss = F.cross_entropy(model(xb), yb)
                    if penalty is not None:
                        loss = loss + penalty(model, epoch)
                    loss.backward()
                    optimizer.step()
                    total += loss.detach() * yb.shape[0]
                    stats.steps += 1
                    stats.samples_seen += int(yb.shape[0])
                    bar.update(1, epoch=epoch + 1)
                stats.epochs += 1
                stats.epoch_loss.append(float(total) / max(1, len(data)))
                if on_epoch_end is not None:
                    on_epoch_end(epoch, model)
    finally:
        bar.close()
        model.train(was_training)
    stats.seconds = time.perf_counter() - start
    return stats


def to_device(view: View, device: torch.device) -> View:
    """The same view with its tensors on ``device`` (no copy when already there)."""
    if view.x.device == device:
        return view
    return View(view.x.to(device), view.y.to(device), view.indices.to(device), view.name)


def endless_batches(
    view: View, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Reshuffled batches of ``view`` forever (for pairing a second data stream)."""
    while True:
        yield from view.batches(batch_size, generator=generator, shuffle=True)
