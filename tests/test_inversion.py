"""Model inversion: the attack raises its objective, leaves the model alone, and writes a valid PNG."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from unlearnkit.errors import ParameterError
from unlearnkit.evaluation.inversion import class_templates, grid, invert, model_inversion, png_bytes, write_png
from unlearnkit.methods import make_method


def decode_png(data: bytes) -> np.ndarray:
    """Decode a PNG with Pillow: 8-bit grayscale or RGB, as written by :func:`png_bytes`."""
    from PIL import Image

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG" and img.mode in ("L", "RGB")
        return np.asarray(img)


def test_png_round_trip_gray_and_rgb(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    rgb = np.stack([gray, 255 - gray, gray // 2], axis=2)
    assert np.array_equal(decode_png(png_bytes(gray)), gray)
    assert np.array_equal(decode_png(png_bytes(rgb)), rgb)
    write_png(tmp_path / "g.png", gray)
    assert np.array_equal(decode_png((tmp_path / "g.png").read_bytes()), gray)
    with pytest.raises(ParameterError, match="'array' parameter must be uint8"):
        png_bytes(gray.astype(np.float32))


def test_grid_layout_and_blank_cells():
    a, b = torch.zeros(1, 4, 4), torch.ones(1, 4, 4)
    b[0, 0, 0] = 0.0
    out = grid([[a, b], [None, b]], pad=1, scale=1)
    assert out.shape == (2 * 5 + 1, 2 * 5 + 1)
    assert (out[6:10, 1:5] == 255).all()  # the None cell stays white
    assert out[1, 6] == 0 and out[1, 7] == 255  # b is min-max scaled on its own


def test_invert_raises_the_template_projection_and_leaves_the_model_alone(trained_mlp, digits_split):
    model = trained_mlp
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    t = class_templates(model, digits_split.holdout, [4])[0]
    direction = t / t.norm()
    g = torch.Generator().manual_seed(0)
    start = 0.25 * torch.rand(1, 1, 8, 8, generator=g)  # invert's own starting point for seed 0
    x = invert(model, t, (1, 8, 8), steps=100, seed=0)
    assert x.shape == (1, 8, 8) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    with torch.no_grad():
        before = float(model(start)[0] @ direction)
        after = float(model(x[None])[0] @ direction)
    assert after > before + 5.0
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert torch.equal(x, invert(model, t, (1, 8, 8), steps=100, seed=0))  # seeded


def test_model_inversion_figure_after_filtration(trained_mlp, class_splits, digits_split, tmp_path):
    naive = make_method("filtration", z="naive", keep_outputs=False, samples_per_class=20)
    norm = make_method("filtration", z="normalization", keep_outputs=True, samples_per_class=20)
    models = [
        ("original", trained_mlp),
        ("naive", naive.unlearn(trained_mlp, class_splits, seed=0).model),
        ("normalization", norm.unlearn(trained_mlp, class_splits, seed=0).model),  # -inf output is ignored
    ]
    array, labels = model_inversion(models, digits_split.holdout, [3, 5], out=tmp_path / "inv.png", steps=20)
    assert labels == ["training image", "original", "naive", "normalization"]
    assert np.array_equal(decode_png((tmp_path / "inv.png").read_bytes()), array)
    assert array.shape == (3 * (4 * (8 + 2) + 2), 3 * (2 * (8 + 2) + 2))  # 4 rows, 2 columns of 8x8, x3
    with pytest.raises(ParameterError, match="samples of class 11"):
        model_inversion(models[:1], digits_split.holdout, [11], steps=1)
