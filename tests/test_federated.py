"""A simulated federation (FedAvg) and 003's MacForget (Alg. 2) on real digits."""

from __future__ import annotations

import pytest
import torch

from unlearnkit.core.models import build_model
from unlearnkit.core.training import TrainConfig, fit
from unlearnkit.data.splits import ForgetRequest, Splits
from unlearnkit.errors import ParameterError
from unlearnkit.methods import make_method
from unlearnkit.running.federated import Federation, FederationConfig, fed_average, partition

LOCAL = TrainConfig(epochs=2, batch_size=32, lr=0.05, momentum=0.9)


def _shards(train, clients, seed=0, first=None):
    return [train.subset(p, f"client{c}") for c, p in enumerate(partition(len(train), clients, seed=seed, first=first))]


def test_partition_is_disjoint_complete_near_equal_and_keeps_a_users_rows_together():
    first = torch.tensor([3, 50, 97])
    shards = partition(100, 4, seed=0, first=first)
    allpos = torch.cat(shards)
    assert allpos.numel() == 100 and allpos.unique().numel() == 100  # disjoint, complete
    assert sorted(s.numel() for s in shards) == [25, 25, 25, 25]
    assert bool(torch.isin(first, shards[0]).all())
    assert [s.tolist() for s in partition(100, 4, seed=0, first=first)] == [s.tolist() for s in shards]
    assert [s.tolist() for s in partition(100, 4, seed=1, first=first)] != [s.tolist() for s in shards]
    with pytest.raises(ParameterError, match=r"'clients' parameter must be an int in \[1, 100\]; got 0"):
        partition(100, 0, seed=0)


def test_fed_average_weights_clients_by_shard_size():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(7)}
    b = {"w": torch.tensor([4.0, 8.0]), "n": torch.tensor(9)}
    out = fed_average([a, b], [1, 2])
    assert torch.allclose(out["w"], torch.tensor([3.0, 6.0])) and int(out["n"]) == 7


def test_one_client_one_round_is_plain_training_and_the_input_is_not_changed(digits, digits_split):
    model = build_model("mlp", digits.input_shape, 10, seed=0, widths=(32,))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    shards = _shards(digits_split.train, 1)
    fed, run = Federation(shards, FederationConfig(clients=1, rounds=1, local=LOCAL)).fit(model, seed=3)
    plain = build_model("mlp", digits.input_shape, 10, seed=0, widths=(32,))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the executor pins one thread per task
    try:
        fit(plain, shards[0], LOCAL, seed=3 * 1_000_003)  # the client's seed in round 0
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(fed.state_dict().values(), plain.state_dict().values(), strict=True))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert run.rounds == 1 and run.uploads == 1


def test_fedavg_learns_and_is_deterministic(digits, digits_split):
    model = build_model("mlp", digits.input_shape, 10, seed=0, widths=(32,))
    federation = Federation(_shards(digits_split.train, 4), FederationConfig(clients=4, rounds=6, local=LOCAL))
    a, run = federation.fit(model, seed=0)
    b, _ = federation.fit(model, seed=0)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    with torch.no_grad():
        x, y = digits_split.holdout.tensors()
        acc = float((a(x).argmax(1) == y).float().mean())
    assert acc > 0.85  # measured 0.919 on the holdout split after 6 rounds of 4 clients
    assert run.rounds == 6 and run.uploads == 24
    size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert run.bytes_sent == 2 * size * 24


def test_macforget_moves_the_global_model_by_exactly_the_forsaken_displacement(digits, digits_split):
    # 003 eq. 7: the server's plain SGD step on the scaled upload n0·μ/η, averaged over n0, moves θ by μ
    model = build_model("mlp", digits.input_shape, 10, seed=0, widths=(32,))
    shards = _shards(digits_split.train, 3)
    federation = Federation(shards, FederationConfig(clients=3, rounds=3, local=LOCAL))
    global_model, _ = federation.fit(model, seed=0)
    state = {k: v.clone() for k, v in global_model.state_dict().items()}
    rows = torch.arange(0, 40)
    after, run = federation.forget(global_model, 1, rows, digits_split.holdout, seed=5, forsaken={"lam": 0.01})
    client = Splits(train=shards[1], forget_positions=rows, holdout=digits_split.holdout, test=digits_split.holdout,
                    num_classes=10, request=ForgetRequest.from_indices(rows))  # fmt: skip
    direct = make_method("forsaken", lam=0.01).unlearn(global_model, client, seed=5)
    moved = max(float((a - b).detach().abs().max()) for a, b in zip(after.parameters(), global_model.parameters(),
                                                                     strict=True))  # fmt: skip
    assert moved > 1e-3  # the request did change the model
    for a, b in zip(after.parameters(), direct.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert all(torch.equal(v, global_model.state_dict()[k]) for k, v in state.items())  # the input is kept
    assert run.rounds == 1 and run.uploads == 1


def test_federation_refuses_bad_input(digits, digits_split):
    shards = _shards(digits_split.train, 2)
    with pytest.raises(ParameterError, match="one view per client \\(3\\); got 2"):
        Federation(shards, FederationConfig(clients=3))
    with pytest.raises(ParameterError, match="'rounds' parameter of FederationConfig must be an int >= 1; got 0"):
        FederationConfig(rounds=0)
    federation = Federation(shards, FederationConfig(clients=2))
    model = build_model("mlp", digits.input_shape, 10, seed=0, widths=(32,))
    with pytest.raises(ParameterError, match=r"'client' parameter must be an int in \[0, 2\); got 2"):
        federation.forget(model, 2, [0], digits_split.holdout)
    with pytest.raises(ParameterError, match="must name rows of client 0's shard"):
        federation.forget(model, 0, [len(shards[0])], digits_split.holdout)
