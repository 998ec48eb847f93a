"""Federated learning with deletion requests: FedAvg over client shards and 003's MacForget (Alg. 2).

A simulated federation: ``clients`` hold disjoint shards of the training set;
each communication round the server sends the global model to every client,
each client trains it locally for ``local.epochs`` (its own data only) and
sends it back, and the server replaces the global model by the average of the
clients' models weighted by shard size (FedAvg). The clients' local trainings
of one round are independent, so they run as tasks on the project's executor
(``local`` or ``ray``); a client's training uses its own seed, so both
executors give the same models.

**MacForget (003 Alg. 2).** The client that receives a deletion request runs
Forsaken on the current global model with the rows to forget, a few of its
retained rows as D_0 and a non-member reference set for P, and sends the
scaled mask gradient ``μ' = n₀·μ/η`` (:func:`~unlearnkit.methods.forsaken.federated_update`),
where μ is Forsaken's total displacement. The server treats it as it treats
any client gradient — averages it over the batch (÷ n₀) and takes a plain SGD
step of size η — which moves the model by exactly μ (eq. 7). One upload, one
round, no retraining; the other clients' data is never touched.

Why not Flower: Flower's simulation engine (``flwr[simulation]``) pins one
exact Ray release (2.55.1 for flwr 1.42), while the project's Ray extra is
``ray>=2.9`` and this machine runs 2.60; it also brings a web stack (FastAPI,
SQLAlchemy, gRPC) a simulation does not need. The federation is therefore
simulated on the project's executor, which already runs many independent
trainings locally or on Ray.

Example:
    >>> from unlearnkit.running.federated import FederationConfig
    >>> FederationConfig(clients=4).rounds
    10
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from unlearnkit.core.models import evaluating
from unlearnkit.core.training import TrainConfig, fit
from unlearnkit.data.splits import ForgetRequest, Splits, View
from unlearnkit.errors import ParameterError
from unlearnkit.methods import make_method
from unlearnkit.methods.forsaken import federated_update
from unlearnkit.running.executor import Task, make_executor, raise_failures

DEFAULT_LOCAL = TrainConfig(epochs=1, batch_size=64, lr=0.05, momentum=0.0)


@dataclass(frozen=True)
class FederationConfig:
    """How the federation trains.

    Attributes:
        clients: Number of clients (disjoint shards).
        rounds: Communication rounds of FedAvg.
        local: Each client's local recipe per round (plain SGD by default, as a
            server that "collects user gradients" assumes).
    """

    clients: int = 5
    rounds: int = 10
    local: TrainConfig = DEFAULT_LOCAL

    def __post_init__(self) -> None:
        for name in ("clients", "rounds"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ParameterError(f"The {name!r} parameter of FederationConfig must be an int >= 1; got {v!r}.")
        if not isinstance(self.local, TrainConfig):
            raise ParameterError(
                f"The 'local' parameter of FederationConfig must be a TrainConfig; got {self.local!r}."
            )


@dataclass
class FederatedRun:
    """What a federated training or deletion cost: rounds, bytes moved, seconds, per-round notes."""

    rounds: int = 0
    uploads: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def partition(n: int, clients: int, *, seed: int, first: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Split positions ``0..n-1`` into ``clients`` disjoint, near-equal, seeded shards.

    ``first``: positions that must all go to client 0 (e.g. a user's own
    samples, which a deletion request will later name); the rest is dealt out
    so the shards stay near-equal.
    """
    if isinstance(clients, bool) or not isinstance(clients, int) or not 1 <= clients <= n:
        raise ParameterError(f"The 'clients' parameter must be an int in [1, {n}]; got {clients!r}.")
    g = torch.Generator().manual_seed(int(seed) + 2_147_483)
    fixed = torch.as_tensor(first if first is not None else [], dtype=torch.long).unique()
    rest = torch.arange(n)[~torch.isin(torch.arange(n), fixed)]
    rest = rest[torch.randperm(rest.numel(), generator=g)]
    size = n // clients
    need0 = max(0, size - fixed.numel())
    shards = [torch.cat([fixed, rest[:need0]]).sort().values]
    others = torch.tensor_split(rest[need0:], clients - 1) if clients > 1 else []
    shards += [s.sort().values for s in others]
    return shards


def _state_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def client_round(model: nn.Module, data: View, recipe: TrainConfig, seed: int) -> dict[str, torch.Tensor]:
    """One client's local training in one round (module level, so Ray can run it)."""
    fit(model, data, recipe, seed=seed)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def fed_average(states: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[int]) -> dict[str, torch.Tensor]:
    """FedAvg: the weighted mean of the clients' floating-point tensors (others are taken from the first)."""
    total = float(sum(weights))
    out: dict[str, torch.Tensor] = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            out[k] = sum((s[k].double() * (w / total) for s, w in zip(states, weights, strict=True)),
                         torch.zeros_like(v, dtype=torch.float64)).to(v.dtype)  # fmt: skip
        else:
            out[k] = v.clone()
    return out


class Federation:
    """A simulated federation over ``shards`` (views of the clients' data).

    Args:
        shards: One view per client; they should be disjoint.
        config: Clients, rounds and the local recipe (``config.clients`` must equal ``len(shards)``).
        executor: ``"local"`` or ``"ray"`` (or an executor instance) for the clients' local trainings.
    """

    def __init__(self, shards: Sequence[View], config: FederationConfig, *, executor: Any = "local") -> None:
        if len(shards) != config.clients:
            raise ParameterError(
                f"The 'shards' parameter must hold one view per client ({config.clients}); got {len(shards)}."
            )
        if any(len(s) == 0 for s in shards):
            raise ParameterError("The 'shards' parameter must not hold an empty client shard.")
        self.shards = list(shards)
        self.config = config
        self.executor = make_executor(executor) if isinstance(executor, str) else executor

    def fit(self, model: nn.Module, *, seed: int = 0, rounds: int | None = None) -> tuple[nn.Module, FederatedRun]:
        """FedAvg for ``rounds`` (default ``config.rounds``) from ``model`` (copied; the input is not changed)."""
        rounds = self.config.rounds if rounds is None else rounds
        model = copy.deepcopy(model)
        run = FederatedRun()
        size = _state_bytes(model)
        weights = [len(s) for s in self.shards]
        start = time.perf_counter()
        for r in range(rounds):
            tasks = [
                Task(f"round{r}-client{c}", client_round, {
                    "model": copy.deepcopy(model), "data": shard, "recipe": self.config.local,
                    "seed": int(seed) * 1_000_003 + r * 1009 + c,
                })
                for c, shard in enumerate(self.shards)
            ]  # fmt: skip
            results = self.executor.map(tasks)
            raise_failures(results)
            model.load_state_dict(fed_average([res.value for res in results], weights))
            run.rounds += 1
            run.uploads += len(tasks)
            run.bytes_sent += 2 * size * len(tasks)  # the model down to each client and back
        run.seconds = time.perf_counter() - start
        return model.eval(), run

    def forget(
        self,
        model: nn.Module,
        client: int,
        positions: torch.Tensor | Sequence[int],
        reference: View,
        *,
        seed: int = 0,
        server_lr: float | None = None,
        forsaken: Mapping[str, Any] | None = None,
    ) -> tuple[nn.Module, FederatedRun]:
        """MacForget: ``client`` forgets the rows at ``positions`` of its shard; the server applies its update.

        ``reference`` holds non-member samples for Forsaken's P (e.g. a public
        held-out set); ``server_lr`` is the server's step η (default the local
        recipe's lr); ``forsaken`` overrides Forsaken's settings. Returns the new
        global model (the input is not changed) and the cost: one round, one upload.
        """
        if isinstance(client, bool) or not isinstance(client, int) or not 0 <= client < len(self.shards):
            raise ParameterError(f"The 'client' parameter must be an int in [0, {len(self.shards)}); got {client!r}.")
        shard = self.shards[client]
        pos = torch.as_tensor(positions, dtype=torch.long).flatten()
        if pos.numel() == 0 or int(pos.min()) < 0 or int(pos.max()) >= len(shard):
            raise ParameterError(
                f"The 'positions' parameter must name rows of client {client}'s shard, in [0, {len(shard)}); "
                f"got {pos.numel()} positions" + (f" in {int(pos.min())}..{int(pos.max())}." if pos.numel() else ".")
            )
        eta = self.config.local.lr if server_lr is None else float(server_lr)
        n0 = self.config.local.batch_size
        start = time.perf_counter()
        # the client: Forsaken on its copy of the global model, its own data and the reference set
        k = model_classes(model, shard)
        splits = Splits(train=shard, forget_positions=pos.unique(), holdout=reference, test=reference,
                        num_classes=k, request=ForgetRequest.from_indices(pos))  # fmt: skip
        outcome = make_method("forsaken", **dict(forsaken or {})).unlearn(model, splits, seed=seed)
        before = dict(model.named_parameters())
        mu = {n: (before[n] - p).detach() for n, p in outcome.model.named_parameters() if p.requires_grad}
        upload = federated_update(mu, client_batch_size=n0, server_lr=eta)
        # the server: treats the upload as a client gradient summed over a batch of n0 (Alg. 2, line 8)
        server = copy.deepcopy(model)
        params = dict(server.named_parameters())
        opt = torch.optim.SGD([params[n] for n in upload], lr=eta)
        for n, g in upload.items():
            params[n].grad = g / n0
        opt.step()
        run = FederatedRun(rounds=1, uploads=1, bytes_sent=2 * _state_bytes(model),
                           seconds=time.perf_counter() - start,
                           history=[{"client": client, "forgotten": int(pos.unique().numel()),
                                     "forsaken": outcome.diagnostics.get("loss_history", [])}])  # fmt: skip
        return server.eval(), run


def model_classes(model: nn.Module, data: View) -> int:
    """The model's output width on one sample of ``data``."""
    with evaluating(model):
        return int(model(data.x[data.indices[:1]]).shape[1])
