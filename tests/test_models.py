import pytest
import torch
from torch import nn

from unlearnkit import MODELS, ParameterError, build_model, find_head
from unlearnkit.core.models import Classifier, init_weights, model_hash, penultimate

IMAGE_MODELS = [n for n in MODELS.names() if MODELS.get(n).input_kind == "continuous"]
TEXT_MODELS = [n for n in MODELS.names() if MODELS.get(n).input_kind == "tokens" and MODELS.get(n).outputs == "classes"]


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_registered_text_models_expose_features_and_head(name):
    m = build_model(name, (12,), 7, seed=0, vocab_size=50).eval()  # dropout off: one forward equals another
    x = torch.randint(1, 50, (4, 12))
    assert isinstance(m, Classifier) and isinstance(m.head, nn.Linear)
    feats = m.features(x)
    assert feats.shape == (4, m.head.in_features)
    assert torch.allclose(m(x), m.head(feats)) and m(x).shape == (4, 7)
    assert find_head(m) == ("head", m.head)


def test_an_image_model_on_text_is_refused_in_one_line():
    from unlearnkit.core.models import build_model_for
    from unlearnkit.data.text import make_text_dataset

    ds = make_text_dataset("t", ["a b c", "b c d"] * 3, [0, 1] * 3, ["a b"], [0], 2, min_df=1)
    with pytest.raises(ParameterError, match="model of tokens inputs.*'lenet' reads continuous"):
        build_model_for(ds, "lenet")
    assert build_model_for(ds, "bow_mlp").vocab_size == ds.vocabulary.size


@pytest.mark.parametrize("name", IMAGE_MODELS)
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (3, 32, 32)])
def test_registered_models_expose_features_and_head(name, shape):
    m = build_model(name, shape, 7, seed=0)
    x = torch.randn(4, *shape)
    assert isinstance(m, Classifier) and isinstance(m.head, nn.Linear)
    feats = m.features(x)
    assert feats.shape == (4, m.head.in_features)
    assert torch.allclose(m(x), m.head(feats)) and m(x).shape == (4, 7)
    assert find_head(m) == ("head", m.head)


def test_build_is_seeded():
    a, b, c = (build_model("lenet", (1, 28, 28), 10, seed=s) for s in (0, 0, 1))
    assert model_hash(a) == model_hash(b) != model_hash(c)


def test_init_weights_reproduces_construction():
    m = build_model("cnn", (3, 32, 32), 10, seed=5)
    h = model_hash(m)
    init_weights(m, 9)
    assert model_hash(m) != h
    init_weights(m, 5)
    assert model_hash(m) == h


def test_init_weights_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model("mlp", (1, 8, 8), 10, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_model_kwargs_are_validated():
    assert build_model("mlp", (1, 8, 8), 10, widths=(16, 8)).head.in_features == 8
    assert build_model("cnn", (1, 8, 8), 10, width=64).head.in_features == 64
    with pytest.raises(ParameterError, match="'widths' parameter of model 'mlp'"):
        build_model("mlp", (1, 8, 8), 10, widths=(0,))
    with pytest.raises(ParameterError, match="unexpected parameter 'depth'"):
        build_model("lenet", (1, 28, 28), 10, depth=3)
    with pytest.raises(ParameterError, match="input_shape"):
        build_model("lenet", (784,), 10)


def test_user_model_head_and_penultimate():
    user = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 5))
    name, head = find_head(user)
    assert name == "3" and head is user[3]
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(penultimate(user, x), user[2](user[1](user[0](x))))
    assert not head._forward_pre_hooks


def test_penultimate_removes_hook_on_error():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            self.fc(x)
            raise RuntimeError("boom")

    m = Boom()
    with pytest.raises(RuntimeError):
        penultimate(m, torch.randn(1, 4))
    assert not m.fc._forward_pre_hooks


def test_model_without_linear_layer_is_refused():
    with pytest.raises(ParameterError, match="final nn.Linear"):
        find_head(nn.Sequential(nn.Conv2d(1, 2, 3)))
