import torch
import torch.nn.functional as F

from unlearnkit import TrainConfig, build_model, fit
from unlearnkit.core.models import model_hash
from unlearnkit.errors import ParameterError


def _bare_loop(model, view, config, seed):
    """Independent reference: a plain PyTorch loop over the same tensors and order."""
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(config.epochs):
        order = view.indices[torch.randperm(len(view), generator=g)]
        for i in range(0, len(order), config.batch_size):
            b = order[i : i + config.batch_size]
            opt.zero_grad()
            F.cross_entropy(model(view.x[b]), view.y[b]).backward()
            opt.step()
    return model


def test_trainer_matches_bare_loop_exactly(digits, digits_split):
    cfg = TrainConfig(epochs=3, lr=0.05, batch_size=64)
    a = build_model("mlp", digits.input_shape, 10, seed=0)
    b = build_model("mlp", digits.input_shape, 10, seed=0)
    stats = fit(a, digits_split.train, cfg, seed=4)
    _bare_loop(b, digits_split.train, cfg, seed=4)
    for (ka, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), ka
    n = len(digits_split.train)
    assert stats.steps == 3 * -(-n // 64) and stats.samples_seen == 3 * n and len(stats.epoch_loss) == 3


def test_trainer_is_deterministic_and_seed_sensitive(digits, digits_split):
    def train(seed):
        m = build_model("lenet", digits.input_shape, 10, seed=0)
        fit(m, digits_split.train, TrainConfig(epochs=1, batch_size=128), seed=seed)
        return model_hash(m)

    assert train(0) == train(0) != train(1)


def test_trainer_learns_and_restores_mode(digits, digits_split):
    m = build_model("mlp", digits.input_shape, 10, seed=0).eval()
    stats = fit(m, digits_split.train, TrainConfig(epochs=5, optimizer="adam", lr=0.01), seed=0)
    assert not m.training
    assert stats.epoch_loss[-1] < 0.5 * stats.epoch_loss[0]


def test_trainer_leaves_global_rng_alone(digits, digits_split):
    torch.manual_seed(7)
    expected = torch.rand(2)
    torch.manual_seed(7)
    fit(build_model("mlp", digits.input_shape, 10), digits_split.train, TrainConfig(epochs=1), seed=0)
    assert torch.equal(torch.rand(2), expected)


def test_train_config_validation():
    import pytest

    with pytest.raises(ParameterError, match="'lr' parameter of TrainConfig must be a float in \\(0, inf\\); got 0"):
        TrainConfig(lr=0)
    with pytest.raises(ParameterError, match="'optimizer'.*one of 'sgd', 'adam'; got 'rmsprop'"):
        TrainConfig(optimizer="rmsprop")
    assert TrainConfig.from_dict(TrainConfig(epochs=2).to_dict() | {"junk": 1}) == TrainConfig(epochs=2)


def test_the_progress_bar_counts_batches(digits_split, capsys):
    """A long single epoch must move: the bar counts batches over all epochs, not epochs."""
    from unlearnkit.core.models import build_model
    from unlearnkit.core.training import TrainConfig, fit

    model = build_model("mlp", (1, 8, 8), 10, seed=0)
    n = len(digits_split.train)
    batches = -(-n // 128)
    stats = fit(model, digits_split.train, TrainConfig(epochs=2), seed=0, progress=True, desc="train")
    err = capsys.readouterr().err
    assert stats.steps == 2 * batches
    assert f"0/{2 * batches} " in err and "batch/s" in err  # the total is batches (it used to be 0/2 epochs)
