"""SISA, SISA-DP and SMU: models prepared at training time, and their exactness."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch

from unlearnkit import ForgetRequest, ParameterError, Splits, TrainConfig, build_model, fit
from unlearnkit.core.artifacts import load_model, save_model
from unlearnkit.core.models import model_hash
from unlearnkit.core.sisa import noise_multiplier
from unlearnkit.data import View
from unlearnkit.errors import CheckpointError
from unlearnkit.methods import SISAEnsemble, SMUModel, make_method, train_sisa, train_smu

CFG = TrainConfig(epochs=2, lr=0.05, batch_size=32)


def _mlp(digits):
    return build_model("mlp", digits.input_shape, digits.num_classes, seed=0, widths=(32,))


def _positions(train: View, rows: torch.Tensor) -> list[int]:
    return torch.isin(train.indices, rows).nonzero().flatten().tolist()


def _equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.fixture(scope="module")
def ensemble(digits, digits_split):
    return train_sisa(_mlp(digits), digits_split.train, CFG, shards=3, slices=3, seed=5)


def test_sisa_forgets_by_retraining_only_the_shard_exactly_as_from_scratch(ensemble, digits, digits_split):
    train = digits_split.train
    # one sample from shard 1, slice 1
    row = ensemble.rows[(ensemble.shard == 1) & (ensemble.slice == 1)][0]
    splits = Splits.from_request(digits_split, ForgetRequest.from_indices(_positions(train, row.view(1))))
    out = make_method("sisa").unlearn(ensemble, splits, seed=0)
    after = out.model
    assert out.diagnostics["shards_retrained"] == 1
    assert out.diagnostics["retrained"] == [{"shard": 1, "from_slice": 1}]
    assert len(after.rows) == len(ensemble.rows) - 1 and not bool(torch.isin(row, after.rows))
    for s in (0, 2):  # untouched shards are bit-identical
        assert _equal(after.constituents[s], ensemble.constituents[s])
    assert not _equal(after.constituents[1], ensemble.constituents[1])
    # slice-0 checkpoint of shard 1 is reused as is; later ones are replaced
    assert all(
        torch.equal(after.checkpoints[(1, 0)][k], ensemble.checkpoints[(1, 0)][k]) for k in after.checkpoints[(1, 0)]
    )
    # retraining shard 1 from scratch on the same slices and seed gives the same weights
    scratch = train_sisa(
        _mlp(digits),
        View(train.x, train.y, after.rows, "retain"),
        CFG,
        shards=3,
        slices=3,
        seed=5,
        assignment=(after.shard, after.slice),
    )
    assert _equal(scratch.constituents[1], after.constituents[1])
    # only the retrained shard's remaining rows were touched, once per stage epoch
    shard1 = after.shard == 1
    expected = sum(int((shard1 & (after.slice <= r)).sum()) for r in (1, 2)) * after.epochs_per_slice
    assert out.samples_seen == {"retain": expected}


def test_sisa_request_in_two_shards_retrains_two_and_votes(ensemble, digits_split):
    train = digits_split.train
    rows = torch.stack([ensemble.rows[(ensemble.shard == 0) & (ensemble.slice == 2)][0],
                        ensemble.rows[(ensemble.shard == 2) & (ensemble.slice == 0)][0]])  # fmt: skip
    splits = Splits.from_request(digits_split, ForgetRequest.from_indices(_positions(train, rows)))
    out = make_method("sisa").unlearn(ensemble, splits, seed=0)
    assert out.diagnostics["retrained"] == [{"shard": 0, "from_slice": 2}, {"shard": 2, "from_slice": 0}]
    # the vote: log-posterior rows are distributions whose argmax is the majority class
    x = digits_split.test.x[:50]
    with torch.no_grad():
        logp = out.model(x)
        votes = torch.stack([m(x).argmax(1) for m in out.model.constituents])
    assert torch.allclose(logp.exp().sum(1), torch.ones(50), atol=1e-5)
    majority = torch.mode(votes, dim=0).values
    agree = (votes == majority).sum(0) >= 2  # a strict majority of 3 is unambiguous
    assert torch.equal(logp.argmax(1)[agree], majority[agree])


def test_sisa_refuses_rows_it_never_trained_on(ensemble, digits_split, digits):
    other = train_sisa(_mlp(digits), digits_split.train.subset(range(200)), CFG, shards=2, slices=1)
    splits = Splits.from_request(digits_split, ForgetRequest.from_indices([500]))
    with pytest.raises(ParameterError, match=r"^The 'splits' parameter of SISA.unlearn must forget rows .* 1 of 1"):
        make_method("sisa").unlearn(other, splits)


def test_sisa_and_smu_save_and_load(ensemble, digits, digits_split, tmp_path):
    meta = {"architecture": {"name": "mlp", "input_shape": list(digits.input_shape), "num_classes": 10,
                             "kwargs": {"widths": [32]}}}  # fmt: skip
    save_model(ensemble, tmp_path / "sisa", meta)
    loaded, side = load_model(tmp_path / "sisa")
    assert isinstance(loaded, SISAEnsemble) and side["prepared"]["shards"] == 3
    assert model_hash(loaded) == model_hash(ensemble)
    assert set(loaded.checkpoints) == set(ensemble.checkpoints) and torch.equal(loaded.slice, ensemble.slice)
    x = digits_split.test.x[:20]
    assert torch.equal(loaded(x), ensemble.eval()(x))
    smu = train_smu(_mlp(digits), digits_split.train, CFG, candidates=15, seed=1)
    save_model(smu, tmp_path / "smu", meta)
    back, _ = load_model(tmp_path / "smu")
    assert isinstance(back, SMUModel) and torch.equal(back.contributions, smu.contributions)
    # a modified side file is refused, not loaded
    path = tmp_path / "smu" / "prepared.safetensors"
    path.write_bytes(path.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(CheckpointError, match="does not match the hash"):
        load_model(tmp_path / "smu")


def test_smu_training_is_plain_fit_and_contributions_sum_to_the_displacement(digits, digits_split):
    train = digits_split.train.subset(range(300))
    cfg = TrainConfig(epochs=3, lr=0.05, batch_size=64, momentum=0.9)
    model = _mlp(digits)
    smu = train_smu(model, train, cfg, candidates=list(range(300)), seed=2)
    plain = copy.deepcopy(model)
    fit(plain, train, cfg, seed=2)
    assert _equal(smu.inner, plain) and not _equal(smu.inner, model)
    start = torch.cat([p.detach().flatten() for p in model.parameters()])
    end = torch.cat([p.detach().flatten() for p in smu.inner.parameters()])
    total = smu.contributions.sum(0)  # every sample recorded: the contributions add up to the whole trip
    assert torch.allclose(total, start - end, atol=2e-5, rtol=1e-3)
    assert float((total - (start - end)).abs().max()) < 1e-3 * float((start - end).abs().max())


def test_smu_with_zero_contributions_is_one_plain_epoch(digits, digits_split, sample_splits):
    train = digits_split.train
    pos = _positions(train, sample_splits.forget.indices)
    smu = train_smu(_mlp(digits), train, CFG, candidates=pos, seed=0)
    smu.contributions.zero_()
    out = make_method("smu").unlearn(smu, sample_splits, seed=4)
    ref = copy.deepcopy(smu.inner)
    fit(ref, sample_splits.retain, TrainConfig(**{**CFG.to_dict(), "epochs": 1}), seed=4)
    assert _equal(out.model.inner, ref)
    assert out.model.candidates.numel() == 0 and smu.candidates.numel() == len(pos)  # the input is untouched


def test_smu_refuses_requests_outside_the_candidates_and_adam(digits, digits_split, sample_splits):
    smu = train_smu(_mlp(digits), digits_split.train, CFG, candidates=10, seed=0)
    with pytest.raises(ParameterError, match=r"must forget only the 10 deletion candidates .*e\.g\. row \d+\)\.$"):
        make_method("smu").unlearn(smu, sample_splits)
    with pytest.raises(ParameterError, match=r"'optimizer' parameter of train_smu's recipe must be 'sgd'; got 'adam'"):
        train_smu(_mlp(digits), digits_split.train, TrainConfig(optimizer="adam"), candidates=3)
    with pytest.raises(ParameterError, match="distinct positions in 0..1211"):
        train_smu(_mlp(digits), digits_split.train, CFG, candidates=[5, 5])


def test_dp_noise_meets_the_budget_and_sisa_dp_refuses_a_plain_ensemble(ensemble, sample_splits):
    from opacus.accountants import RDPAccountant

    stages = [(0.1, 40), (0.05, 80)]
    sigmas = [noise_multiplier(eps, 1e-5, stages) for eps in (2.0, 8.0, 16.0)]
    assert sigmas[0] > sigmas[1] > sigmas[2] > 0
    acc = RDPAccountant()
    acc.history = [(sigmas[2], q, n) for q, n in stages]
    assert 15.0 < acc.get_epsilon(1e-5) <= 16.0 + 1e-6
    with pytest.raises(ParameterError, match="must be trained with DP-SGD"):
        make_method("sisa_dp").unlearn(ensemble, sample_splits)


def test_cli_train_sisa_and_smu_then_unlearn(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "unlearnkit", *args], capture_output=True, text=True, cwd=tmp_path)

    base = ["train", "--dataset", "digits", "--model", "mlp", "--epochs", "2"]
    r = run(*base, "--sisa-shards", "3", "--sisa-slices", "2", "--out", "sisa")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "sisa" / "model.json").read_text())["prepared"]["shards"] == 3
    r = run("unlearn", "--model", "sisa", "--method", "sisa", "--forget-count", "5", "--out", "sisa2")
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "sisa2" / "record.json").read_text())
    assert rec["results"][0]["method"] == "sisa"
    r = run(*base, "--out", "plain")
    r = run("unlearn", "--model", "plain", "--method", "smu", "--forget-count", "5", "--out", "p2")
    assert r.returncode != 0 and "--smu-candidates" in r.stderr and not (tmp_path / "p2").exists()
    r = run(*base, "--sisa-shards", "2", "--smu-candidates", "5", "--out", "both")
    assert r.returncode != 0 and "exclude each other" in r.stderr and not (tmp_path / "both").exists()
