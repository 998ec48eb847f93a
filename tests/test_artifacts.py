import json

import pytest
import torch
from torch import nn

from unlearnkit import CheckpointError, OutputExistsError, build_model
from unlearnkit.core.artifacts import load_model, load_state, save_model
from unlearnkit.core.models import model_hash
from unlearnkit.files import write_json_atomic


def _meta(model_name="mlp", kwargs=None):
    return {"architecture": {"name": model_name, "input_shape": [1, 8, 8], "num_classes": 10, "kwargs": kwargs or {}}}


def test_roundtrip_is_bit_identical(tmp_path):
    m = build_model("lenet", (1, 8, 8), 10, seed=3)
    save_model(m, tmp_path / "m", _meta("lenet"))
    loaded, meta = load_model(tmp_path / "m")
    assert model_hash(loaded) == model_hash(m)
    assert meta["format"] == "unlearnkit-model" and len(meta["weights_sha256"]) == 64
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "model.safetensors"]


def test_refuses_existing_model_and_nonempty_folder(tmp_path):
    m = build_model("mlp", (1, 8, 8), 10)
    save_model(m, tmp_path / "m", _meta())
    before = (tmp_path / "m" / "model.safetensors").read_bytes()
    with pytest.raises(OutputExistsError, match="already holds a model"):
        save_model(build_model("mlp", (1, 8, 8), 10, seed=9), tmp_path / "m", _meta())
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(OutputExistsError, match="not empty"):
        save_model(m, tmp_path / "other", _meta())
    (tmp_path / "empty").mkdir()
    save_model(m, tmp_path / "empty", _meta())  # an empty folder is fine


def test_failed_save_leaves_nothing(tmp_path):
    m = build_model("mlp", (1, 8, 8), 10)
    with pytest.raises(TypeError):
        save_model(m, tmp_path / "m", {"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_truncated_weights_detected(tmp_path):
    save_model(build_model("mlp", (1, 8, 8), 10), tmp_path / "m", _meta())
    w = tmp_path / "m" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated or modified"):
        load_model(tmp_path / "m")
    with pytest.raises(CheckpointError, match="damaged"):
        load_state(tmp_path / "m", build_model("mlp", (1, 8, 8), 10), verify=False)


def test_pickle_disguised_as_weights_is_not_executed(tmp_path):
    save_model(build_model("mlp", (1, 8, 8), 10), tmp_path / "m", _meta())
    marker = tmp_path / "pwned"
    payload = torch.nn.Module()
    torch.save({"x": payload}, tmp_path / "m" / "model.safetensors")  # a pickle, not safetensors
    with pytest.raises(CheckpointError):
        load_state(tmp_path / "m", build_model("mlp", (1, 8, 8), 10), verify=False)
    assert not marker.exists()


def test_wrong_architecture_detected(tmp_path):
    save_model(build_model("mlp", (1, 8, 8), 10), tmp_path / "m", _meta())
    with pytest.raises(CheckpointError, match="does not fit the MLP architecture: shape of"):
        load_state(tmp_path / "m", build_model("mlp", (1, 8, 8), 10, widths=(20,)))
    with pytest.raises(CheckpointError, match="does not fit the LeNet architecture"):
        load_state(tmp_path / "m", build_model("lenet", (1, 8, 8), 10))


def test_missing_and_damaged_folders(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope")
    (tmp_path / "e").mkdir()
    with pytest.raises(CheckpointError, match="not a saved model"):
        load_model(tmp_path / "e")
    save_model(build_model("mlp", (1, 8, 8), 10), tmp_path / "m", _meta())
    (tmp_path / "m" / "model.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(tmp_path / "m")


def test_user_module_loads_state(tmp_path):
    user = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    save_model(user, tmp_path / "u", {"note": "user model"})
    other = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    load_state(tmp_path / "u", other)
    assert torch.equal(other[1].weight, user[1].weight)


def test_atomic_json_write(tmp_path):
    write_json_atomic(tmp_path / "a" / "r.json", {"x": 1.0, "y": float("nan")})
    assert json.loads((tmp_path / "a" / "r.json").read_text()) == {"x": 1.0, "y": None}
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["r.json"]


def test_outputs_get_normal_permissions(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        save_model(build_model("mlp", (1, 8, 8), 10), tmp_path / "m", _meta())
        write_json_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644
