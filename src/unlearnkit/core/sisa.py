"""SISA ensembles prepared at training time: the model behind the ``sisa`` / ``sisa_dp`` methods (003's baselines).

Bourtoule et al.'s SISA, as 003 uses it (§VI): the training set is cut into
``shards`` disjoint shards, one constituent model per shard; each shard is cut
into ``slices`` slices that are added incrementally — stage r trains
``epochs_per_slice`` epochs on slices 0..r — with a checkpoint after every stage.
Unlearning a sample retrains only its shard, from the checkpoint before the
first slice that held a forgotten sample, on the same slices minus the
forgotten samples. Prediction is a majority vote of the constituents; the
posterior is the mean posterior of the constituents that voted for the winner
(the model returns its log, so softmax gives it back).

Exactness: each stage uses a fresh optimizer and a shuffle seed derived from
``(seed, shard, slice)`` (the stage's RNG state), so resuming from a checkpoint
is exactly what training from scratch on the remaining data would have done.

``sisa_dp`` trains the constituents with DP-SGD (Opacus): per-sample gradients
clipped to ``max_grad_norm`` and Gaussian noise whose multiplier is found, per
shard, so that the composition of all stages a slice-0 sample takes part in
stays within (ε, δ) under Opacus' RDP accountant. Batches are shuffled
fixed-size batches, not Poisson samples, so the accounting is the usual
approximation of DP-SGD practice, not a proof.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.core.models import init_weights
from unlearnkit.core.preparation import PREPARATIONS, PreparedModel
from unlearnkit.core.training import TrainConfig, fit, make_optimizer, to_device
from unlearnkit.data.splits import View
from unlearnkit.errors import ParameterError
from unlearnkit.optional import optional_import
from unlearnkit.progress import progress_bar
from unlearnkit.validation import Constraint, Interval, validate_parameters


@dataclass(frozen=True)
class DPSettings:
    """DP-SGD settings of a ``sisa_dp`` ensemble (ε, δ, clipping norm) and the noise found per shard."""

    epsilon: float
    delta: float = 1e-5
    max_grad_norm: float = 1.0

    constraints: ClassVar[dict[str, Constraint]] = {
        "epsilon": Interval(float, 0, None, closed="neither"),
        "delta": Interval(float, 0, 1, closed="neither"),
        "max_grad_norm": Interval(float, 0, None, closed="neither"),
    }

    def __post_init__(self) -> None:
        validate_parameters("sisa DP", {k: getattr(self, k) for k in self.constraints}, self.constraints)


def stage_seed(seed: int, shard: int, stage: int) -> int:
    """The RNG seed of one training stage: a pure function of (seed, shard, slice)."""
    return (int(seed) * 1_000_003 + shard * 10_007 + stage * 101 + 17) % (2**31 - 1)


def noise_multiplier(epsilon: float, delta: float, stages: list[tuple[float, int]]) -> float:
    """The smallest Gaussian noise multiplier whose RDP composition over ``stages`` stays within (ε, δ).

    Args:
        stages: ``(sample_rate, steps)`` of each stage a sample takes part in.
    """
    RDPAccountant = optional_import("opacus.accountants").RDPAccountant

    def eps(sigma: float) -> float:
        acc = RDPAccountant()
        acc.history = [(sigma, q, n) for q, n in stages if n > 0]
        with warnings.catch_warnings():  # trial noise levels far below the answer sit at the edge of the alphas
            warnings.filterwarnings("ignore", message="Optimal order is the smallest alpha")
            return float(acc.get_epsilon(delta)) if acc.history else 0.0

    from scipy.optimize import brentq

    lo, hi = 0.05, 1.0
    while eps(hi) > epsilon:
        hi *= 2
        if hi > 1e4:
            raise ParameterError(f"The 'epsilon' parameter of sisa_dp is too small to reach; got {epsilon!r}.")
    if eps(lo) <= epsilon:
        return lo
    sigma = float(brentq(lambda s: eps(s) - epsilon, lo, hi, xtol=1e-7))
    while eps(sigma) > epsilon:  # the root may sit a hair below the budget's edge; the budget must hold
        sigma *= 1 + 1e-7
    return sigma


def dp_fit(
    model: nn.Module,
    data: View,
    config: TrainConfig,
    *,
    seed: int,
    sigma: float,
    max_grad_norm: float,
    device: torch.device,
) -> int:
    """DP-SGD on ``data`` in place (Opacus per-sample clipping + seeded noise); returns the steps taken."""
    GradSampleModule = optional_import("opacus").GradSampleModule
    DPOptimizer = optional_import("opacus.optimizers").DPOptimizer

    data = to_device(data, device)
    gsm = GradSampleModule(model, loss_reduction="mean")
    opt = DPOptimizer(
        make_optimizer(gsm.parameters(), config),
        noise_multiplier=sigma,
        max_grad_norm=max_grad_norm,
        expected_batch_size=config.batch_size,
        generator=torch.Generator(device).manual_seed(seed),
    )
    generator = torch.Generator().manual_seed(seed)
    steps = 0
    model.train()
    try:
        with torch.random.fork_rng(devices=[]):  # dropout etc. draw from a seeded, private RNG state
            torch.manual_seed(seed)
            for _ in range(config.epochs):
                for xb, yb in data.batches(config.batch_size, generator=generator, shuffle=True):
                    opt.zero_grad(set_to_none=True)
                    with warnings.catch_warnings():  # Opacus' hooks fire on inputs that need no grad: harmless
                        warnings.filterwarnings("ignore", message="Full backward hook is firing")
                        F.cross_entropy(gsm(xb), yb).backward()
                    opt.step()
                    steps += 1
    finally:
        gsm._close()  # removes Opacus' hooks and per-sample buffers; ``model`` is plain again
        for p in model.parameters():
            p.grad = None
    return steps


def _stage_plan(sizes: list[int], batch_size: int, epochs: int) -> list[tuple[float, int]]:
    """(sample rate, steps) of each cumulative stage for a shard whose slices have ``sizes``."""
    plan, total = [], 0
    for n in sizes:
        total += n
        if total:
            plan.append((min(1.0, batch_size / total), epochs * math.ceil(total / batch_size)))
    return plan


class SISAEnsemble(PreparedModel):
    """A SISA ensemble: constituents, the shard / slice of every training row, and stage checkpoints.

    Build one with :func:`train_sisa`. ``rows`` are dataset row indices (the
    ``indices`` of the training :class:`~unlearnkit.data.View`).
    """

    preparation: ClassVar[str] = "sisa"
    how: ClassVar[str] = "`unlearnkit train --sisa-shards S --sisa-slices R` or unlearnkit.methods.sisa.train_sisa"

    def __init__(
        self,
        constituents: list[nn.Module],
        rows: torch.Tensor,
        shard: torch.Tensor,
        slice_: torch.Tensor,
        *,
        slices: int,
        config: TrainConfig,
        epochs_per_slice: int,
        seed: int,
        dp: DPSettings | None = None,
        sigmas: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.constituents = nn.ModuleList(constituents)
        self.rows, self.shard, self.slice = rows.long(), shard.long(), slice_.long()
        self.slices = int(slices)
        self.config = config
        self.epochs_per_slice = int(epochs_per_slice)
        self.seed = int(seed)
        self.dp = dp
        self.sigmas = list(sigmas or [])
        # (shard, stage) -> weights; stage -1 = initial weights, r = after slices 0..r
        self.checkpoints: dict[tuple[int, int], dict[str, torch.Tensor]] = {}

    @property
    def shards(self) -> int:
        return len(self.constituents)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([m(x).float().softmax(-1) for m in self.constituents])  # (S, B, C)
        votes = probs.argmax(-1)  # (S, B)
        counts = F.one_hot(votes, probs.shape[-1]).sum(0)  # (B, C)
        winner = counts.argmax(-1)  # ties -> lowest class id
        agree = (votes == winner).unsqueeze(-1).float()  # (S, B, 1)
        posterior = (probs * agree).sum(0) / agree.sum(0)
        return posterior.clamp_min(1e-30).log()

    # -- training ----------------------------------------------------------------

    def shard_view(self, s: int, upto: int, data: View) -> View:
        """Rows of shard ``s`` in slices 0..``upto`` (a stage's training data), in stored order."""
        keep = (self.shard == s) & (self.slice <= upto)
        return View(data.x, data.y, self.rows[keep], f"shard {s}")

    def train_shard(self, s: int, first: int, data: View, device: torch.device) -> int:
        """(Re)train shard ``s`` from the checkpoint before stage ``first``; returns optimiser steps."""
        model = self.constituents[s]
        model.load_state_dict(self.checkpoints[(s, first - 1)])
        config = TrainConfig(**{**self.config.to_dict(), "epochs": self.epochs_per_slice})
        steps = 0
        for r in range(first, self.slices):
            view = self.shard_view(s, r, data)
            seed = stage_seed(self.seed, s, r)
            if len(view):
                if self.dp is None:
                    steps += fit(model, view, config, seed=seed, device=device).steps
                else:
                    steps += dp_fit(
                        model,
                        view,
                        config,
                        seed=seed,
                        sigma=self.sigmas[s],
                        max_grad_norm=self.dp.max_grad_norm,
                        device=device,
                    )
            self.checkpoints[(s, r)] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.eval()
        return steps

    # -- saving ------------------------------------------------------------------

    def prepared_meta(self) -> dict[str, Any]:
        return {
            "shards": self.shards,
            "slices": self.slices,
            "epochs_per_slice": self.epochs_per_slice,
            "seed": self.seed,
            "training": self.config.to_dict(),
            "dp": None if self.dp is None else {**vars(self.dp), "noise_multipliers": self.sigmas},
        }

    def prepared_tensors(self) -> dict[str, torch.Tensor]:
        out = {"rows": self.rows, "shard": self.shard, "slice": self.slice}
        for (s, r), state in self.checkpoints.items():
            for k, v in state.items():
                out[f"checkpoint.{s}.{r}.{k}"] = v
        return out

    @classmethod
    def restore(
        cls, build: Callable[[], nn.Module], meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
    ) -> SISAEnsemble:
        dp = meta.get("dp")
        ens = cls(
            [build() for _ in range(int(meta["shards"]))],
            tensors["rows"],
            tensors["shard"],
            tensors["slice"],
            slices=int(meta["slices"]),
            config=TrainConfig.from_dict(meta["training"]),
            epochs_per_slice=int(meta["epochs_per_slice"]),
            seed=int(meta["seed"]),
            dp=None if dp is None else DPSettings(dp["epsilon"], dp["delta"], dp["max_grad_norm"]),
            sigmas=None if dp is None else dp["noise_multipliers"],
        )
        for key, v in tensors.items():
            if key.startswith("checkpoint."):
                _, s, r, name = key.split(".", 3)
                ens.checkpoints.setdefault((int(s), int(r)), {})[name] = v
        expected = {(s, r) for s in range(ens.shards) for r in range(-1, ens.slices)}
        if set(ens.checkpoints) != expected:
            raise ValueError("checkpoints are missing")
        return ens

    def storage_bytes(self) -> int:
        """Bytes held by the checkpoints (the price of exact, partial retraining)."""
        return sum(v.numel() * v.element_size() for st in self.checkpoints.values() for v in st.values())


def train_sisa(
    model: nn.Module,
    data: View,
    config: TrainConfig,
    *,
    shards: int,
    slices: int = 1,
    epochs_per_slice: int | None = None,
    seed: int = 0,
    dp_epsilon: float | None = None,
    dp_delta: float = 1e-5,
    max_grad_norm: float = 1.0,
    assignment: tuple[torch.Tensor, torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> SISAEnsemble:
    """Train a SISA ensemble of copies of ``model`` (never modified) on ``data``.

    Args:
        model: The architecture; each constituent is a copy re-initialised with its own seed.
        data: Training rows.
        config: Recipe of each stage (its ``epochs`` is replaced by ``epochs_per_slice``).
        shards, slices: S and R.
        epochs_per_slice: Epochs of each stage; default ``max(1, round(config.epochs / slices))``.
        seed: Seeds the assignment, initial weights and every stage.
        dp_epsilon: Train with DP-SGD to this ε (``sisa_dp``); ``None`` trains normally.
        assignment: ``(shard, slice)`` of each row of ``data`` instead of the seeded one.

    Example:
        >>> from unlearnkit.data import load_dataset, split_dataset
        >>> from unlearnkit.core.models import build_model
        >>> s = split_dataset(load_dataset("digits"), seed=0)
        >>> m = build_model("mlp", (1, 8, 8), 10, seed=0, widths=(16,))
        >>> ens = train_sisa(m, s.train, TrainConfig(epochs=1), shards=3, slices=2)
        >>> ens(s.test.x[:4]).shape
        torch.Size([4, 10])
    """
    for name, value, low in (("shards", shards, 1), ("slices", slices, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ParameterError(f"The {name!r} parameter of train_sisa must be an int >= {low}; got {value!r}.")
    n = len(data)
    if shards > n:
        raise ParameterError(
            f"The 'shards' parameter of train_sisa must be at most the {n} training rows; got {shards}."
        )
    eps = epochs_per_slice if epochs_per_slice is not None else max(1, round(config.epochs / slices))
    if isinstance(eps, bool) or not isinstance(eps, int) or eps < 1:
        raise ParameterError(f"The 'epochs_per_slice' parameter of train_sisa must be an int >= 1; got {eps!r}.")
    dp = None if dp_epsilon is None else DPSettings(float(dp_epsilon), float(dp_delta), float(max_grad_norm))
    if assignment is None:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
        shard = torch.empty(n, dtype=torch.long)
        slice_ = torch.empty(n, dtype=torch.long)
        for s in range(shards):
            pos = perm[s::shards]
            shard[pos] = s
            for r, chunk in enumerate(torch.tensor_split(pos, slices)):
                slice_[chunk] = r
    else:
        shard, slice_ = (torch.as_tensor(t, dtype=torch.long) for t in assignment)
        if shard.shape != (n,) or slice_.shape != (n,) or int(shard.max()) >= shards or int(slice_.max()) >= slices:
            raise ParameterError(
                "The 'assignment' parameter of train_sisa must give each row a shard < S and slice < R."
            )
    sigmas: list[float] = []
    if dp is not None:
        for s in range(shards):
            sizes = [int(((shard == s) & (slice_ == r)).sum()) for r in range(slices)]
            sigmas.append(noise_multiplier(dp.epsilon, dp.delta, _stage_plan(sizes, config.batch_size, eps)))
    constituents = []
    for s in range(shards):
        m = copy.deepcopy(model)
        init_weights(m, stage_seed(seed, s, -1))
        constituents.append(m)
    ens = SISAEnsemble(
        constituents,
        data.indices.clone(),
        shard,
        slice_,
        slices=slices,
        config=config,
        epochs_per_slice=eps,
        seed=seed,
        dp=dp,
        sigmas=sigmas,
    )
    dev = torch.device(device)
    ens.to(dev)
    for s in progress_bar(range(shards), enabled=progress, desc="sisa shards", unit="shard"):
        ens.checkpoints[(s, -1)] = {k: v.detach().clone() for k, v in ens.constituents[s].state_dict().items()}
        ens.train_shard(s, 0, data, dev)
    ens.eval()
    return ens


PREPARATIONS.register("sisa", SISAEnsemble)
