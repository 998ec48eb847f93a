"""Model inversion: what image does a model associate with a class? (004 §5.5, Figures 1 and 5.)

Gradient ascent on the input (Fredrikson et al., 2015) with a simple image
prior. The attack maximises the projection of the model's raw (pre-softmax)
outputs onto a *class template* — the model's own mean output on samples of
that class — minus a total-variation and an L2 penalty, with the image kept in
the data's value range:

    maximise  ⟨g(x), t_c⟩ / ‖t_c‖  −  λ_tv·TV(x)  −  λ_2·‖x‖²,   t_c = mean g(x') over x' of class c

For a model that still has output c the template is dominated by that logit,
so this is close to the classic "maximise logit c". Its point is that it
also applies after a class was unlearned: a filtered model has no output c,
but an attacker who holds a few images of c still knows how the model reacts
to them (t_c is column c of B_z for linear filtration). Raw outputs are used
on purpose: naive deletion and normalising filtration differ by a per-sample
shift of all logits, which any softmax-based attack cannot see.

The figure helpers write an 8-bit PNG with Pillow.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unlearnkit.data.splits import View
from unlearnkit.errors import ParameterError
from unlearnkit.evaluation.outputs import outputs_of


def class_templates(model: nn.Module, view: View, classes: Sequence[int]) -> torch.Tensor:
    """Mean raw output of ``model`` on the samples of each class in ``classes``; shape (len(classes), outputs).

    Outputs fixed at −inf (dropped classes kept for shape) are set to 0 so they do not poison the template.
    """
    out = outputs_of(model, view)
    rows = []
    for c in classes:
        sel = out.logits[out.labels == c]
        if sel.shape[0] == 0:
            raise ParameterError(
                f"The 'view' parameter must hold samples of class {c} to build its template; none found."
            )
        rows.append(torch.nan_to_num(sel, neginf=0.0).mean(0))
    return torch.stack(rows)


def _total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def invert(
    model: nn.Module,
    template: torch.Tensor,
    input_shape: Sequence[int],
    *,
    steps: int = 300,
    lr: float = 0.05,
    tv_weight: float = 30.0,
    l2_weight: float = 0.1,
    bounds: tuple[float, float] = (0.0, 1.0),
    seed: int = 0,
) -> torch.Tensor:
    """Reconstruct an input the model associates with ``template`` (see the module docstring).

    Starts from a seeded uniform-noise image at a quarter of the value range;
    Adam on the input; the model's parameters and mode are left as they were.
    Returns a ``(*input_shape)`` tensor in ``bounds``.
    """
    if steps < 1:
        raise ParameterError(f"The 'steps' parameter of invert must be an int >= 1; got {steps!r}.")
    lo, hi = bounds
    g = torch.Generator().manual_seed(int(seed))
    x = (lo + 0.25 * (hi - lo) * torch.rand(1, *input_shape, generator=g)).requires_grad_(True)
    t = torch.nan_to_num(template.detach().float(), neginf=0.0)
    t = t / t.norm().clamp_min(1e-12)
    finite = torch.isfinite(template)
    opt = torch.optim.Adam([x], lr=lr)
    was_training = model.training
    model.eval()
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            opt.zero_grad()
            out = model(x)[0]
            out = torch.where(finite, out, torch.zeros_like(out))
            loss = -(out * t).sum() + tv_weight * _total_variation(x) + l2_weight * x.pow(2).sum()
            loss.backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(lo, hi)
    finally:
        for p, f in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(f)
        model.train(was_training)
    return x.detach()[0]


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """A (C, H, W) image, min-max scaled to 0..255, as (H, W) or (H, W, 3) uint8."""
    img = image.detach().float()
    lo, hi = float(img.min()), float(img.max())
    scaled = (img - lo) / (hi - lo) if hi > lo else torch.zeros_like(img)
    arr = (scaled * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    if arr.shape[0] == 1:
        return np.asarray(arr[0])
    if arr.shape[0] == 3:
        return np.asarray(arr.transpose(1, 2, 0))
    raise ParameterError(f"The 'image' parameter must have 1 or 3 channels; got shape {tuple(image.shape)}.")


def grid(rows: Sequence[Sequence[torch.Tensor | None]], *, pad: int = 2, scale: int = 3) -> np.ndarray:
    """Tile images (each scaled on its own) into one uint8 array; ``None`` leaves a blank cell."""
    cells = [[to_uint8(im) if im is not None else None for im in row] for row in rows]
    first = next(c for row in cells for c in row if c is not None)
    h, w = first.shape[:2]
    rgb = any(c is not None and c.ndim == 3 for row in cells for c in row)
    ncol = max(len(r) for r in cells)
    shape = (len(cells) * (h + pad) + pad, ncol * (w + pad) + pad) + ((3,) if rgb else ())
    out = np.full(shape, 255, dtype=np.uint8)
    for i, row in enumerate(cells):
        for j, c in enumerate(row):
            if c is None:
                continue
            if rgb and c.ndim == 2:
                c = np.repeat(c[:, :, None], 3, axis=2)
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y : y + h, x : x + w] = c
    return np.asarray(out.repeat(scale, axis=0).repeat(scale, axis=1))


def png_bytes(array: np.ndarray) -> bytes:
    """Encode an (H, W) grayscale or (H, W, 3) RGB uint8 array as PNG (Pillow)."""
    from PIL import Image

    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ParameterError(
            f"The 'array' parameter must be uint8 (H, W) or (H, W, 3); got {array.dtype} {array.shape}."
        )
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG")  # uint8 (H, W) -> L, (H, W, 3) -> RGB
    return buf.getvalue()


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as a PNG, atomically."""
    from unlearnkit.files import write_bytes_atomic

    write_bytes_atomic(path, png_bytes(array))


def model_inversion(
    models: Sequence[tuple[str, nn.Module]],
    view: View,
    classes: Sequence[int],
    *,
    out: str | Path | None = None,
    steps: int = 300,
    lr: float = 0.05,
    tv_weight: float = 30.0,
    l2_weight: float = 0.1,
    seed: int = 0,
) -> tuple[np.ndarray, list[str]]:
    """The paper's figure: one training image per class, then one row of reconstructions per model.

    Args:
        models: ``(row label, model)`` pairs, e.g. original, naive-unlearned, normalization-filtered.
        view: Labelled samples (e.g. the holdout split) for the first row and the class templates.
        classes: The columns.
        out: Write the grid as a PNG here (atomically) when given.

    Returns:
        The uint8 grid and the row labels (first: ``"training image"``).
    """
    first = []
    for c in classes:
        pos = torch.nonzero(view.labels == c).flatten()
        if pos.numel() == 0:
            raise ParameterError(f"The 'view' parameter must hold samples of class {c}; none found.")
        first.append(view.subset(pos[:1]).tensors()[0][0])
    input_shape = tuple(first[0].shape)
    bounds = (float(view.tensors()[0].min()), float(view.tensors()[0].max()))
    rows: list[list[torch.Tensor | None]] = [list(first)]
    labels = ["training image"]
    for label, model in models:
        templates = class_templates(model, view, classes)
        rows.append([
            invert(model, templates[i], input_shape, steps=steps, lr=lr, tv_weight=tv_weight, l2_weight=l2_weight,
                   bounds=bounds, seed=seed + i)
            for i in range(len(classes))
        ])  # fmt: skip
        labels.append(label)
    array = grid(rows)
    if out is not None:
        write_png(out, array)
    return array, labels
