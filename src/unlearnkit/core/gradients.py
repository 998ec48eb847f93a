"""Per-sample gradients and the diagonal Fisher information, shared by ``smu`` and 000's EWC term.

:func:`fisher_diagonal` is 000's eq. 7: ``F_ii = |D|⁻¹ Σ (∂θ_i L_cls(f(x), ℓ))²``
over a dataset, computed from exact per-sample gradients (``torch.func``), in
chunks sized so that one chunk's gradients stay under about 128 MB.

A Fisher is a training-time artifact (it needs the pretraining data): attach
it to the model with :func:`attach_fisher` — ``save_model`` then writes it to
``fisher.safetensors`` beside the weights and ``load_model`` attaches it again —
and read it with :func:`attached_fisher`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from unlearnkit.data.splits import Splits, View
from unlearnkit.errors import ParameterError

FISHER_ATTR = "_unlearnkit_fisher"
FISHER_FILE = "fisher.safetensors"


def trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    """The trainable parameters by name, in ``named_parameters`` order."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def per_sample_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(n, P)``: the cross-entropy gradient of each sample, flattened over the trainable parameters.

    Taken in eval mode (exact for models without dropout or batch norm) and in
    a forked RNG state, so it neither draws from nor changes the caller's RNG.
    """
    params = {n: p.detach() for n, p in trainable(model).items()}

    def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, p, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    was = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            g = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    finally:
        model.train(was)
    return torch.cat([g[n].reshape(x.shape[0], -1) for n in params], dim=1)


def fisher_diagonal(model: nn.Module, data: View, *, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """000 eq. 7: the mean squared per-sample gradient of each trainable parameter over ``data``.

    Example:
        >>> from unlearnkit.data import load_dataset, split_dataset
        >>> from unlearnkit.core.models import build_model
        >>> s = split_dataset(load_dataset("digits"), seed=0)
        >>> m = build_model("mlp", (1, 8, 8), 10, seed=0, widths=(8,))
        >>> f = fisher_diagonal(m, s.train.subset(range(20)))
        >>> sorted(f) == sorted(n for n, _ in m.named_parameters()) and bool(f["head.bias"].ge(0).all())
        True
    """
    if len(data) == 0:
        raise ParameterError("The 'data' parameter of fisher_diagonal must hold at least one sample; got 0.")
    dev = torch.device(device)
    params = trainable(model)
    fast = _linear_fisher(model, data, dev, params)
    if fast is not None:
        return fast
    return {
        n: f.float().cpu() for n, f in unflatten(per_sample_mean(model, data, torch.square, device=dev), params).items()
    }


def per_sample_mean(
    model: nn.Module,
    data: View,
    reduce: Callable[[torch.Tensor], torch.Tensor],
    *,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """``mean_i reduce(g_i)`` over ``data``'s per-sample gradients, flat (float64), in memory-bounded chunks.

    ``torch.square`` gives eq. 7's Fisher; ``torch.abs`` Forsaken's ω (003 eq. 6).
    """
    dev = torch.device(device)
    total = sum(p.numel() for p in trainable(model).values())
    chunk = max(1, (1 << 25) // max(total, 1))  # one chunk's gradients stay under about 128 MB
    acc = torch.zeros(total, dtype=torch.float64, device=dev)
    for rows in data.index_batches(chunk):
        acc += reduce(per_sample_gradients(model, data.x[rows].to(dev), data.y[rows].to(dev)).double()).sum(0)
    return acc / max(len(data), 1)


def unflatten(flat: torch.Tensor, params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Split a flat vector over ``params`` (in their order) into tensors of their shapes."""
    out, offset = {}, 0
    for n, p in params.items():
        out[n] = flat[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    return out


def _linear_fisher(
    model: nn.Module, data: View, dev: torch.device, params: dict[str, nn.Parameter]
) -> dict[str, torch.Tensor] | None:
    """Exact eq. 7 for models whose trainable parameters all sit in ``nn.Linear`` layers fed (B, in) inputs.

    A sample's weight gradient is the outer product δ_i a_iᵀ (δ_i: gradient at the
    layer's output, a_i: its input), so Σ_i (δ_i a_iᵀ)² = (δ²)ᵀ(a²): one batched
    forward / backward per chunk instead of one per sample. Returns ``None`` when
    the model has other trainable parameters (the caller then uses per-sample gradients).
    """
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    owned = {f"{name}.{p}" for name, m in linears.items() for p, q in m.named_parameters() if q.requires_grad}
    if set(params) != owned:
        return None
    sums = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in params.items()}
    captured: dict[str, tuple[torch.Tensor, list[torch.Tensor]]] = {}
    ok = True

    def hook(name: str) -> Any:
        def fn(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            nonlocal ok
            if inputs[0].dim() != 2:
                ok = False
                return
            grads: list[torch.Tensor] = []
            output.register_hook(lambda g: grads.append(g.detach()))
            captured[name] = (inputs[0].detach(), grads)

        return fn

    handles = [m.register_forward_hook(hook(name)) for name, m in linears.items()]
    was = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            for rows in data.index_batches(256):
                captured.clear()
                x, y = data.x[rows].to(dev), data.y[rows].to(dev)
                model.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y, reduction="sum").backward()
                if not ok:
                    return None
                for name, (a, grads) in captured.items():
                    d = grads[0].double()
                    sums[f"{name}.weight"] += d.pow(2).T @ a.double().pow(2)
                    if f"{name}.bias" in sums:
                        sums[f"{name}.bias"] += d.pow(2).sum(0)
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
        model.train(was)
    return {n: (v / len(data)).float().cpu() for n, v in sums.items()}


def attach_fisher(model: nn.Module, fisher: Mapping[str, torch.Tensor], source: str) -> nn.Module:
    """Attach a Fisher (and a line saying which data it came from) to ``model``; returns ``model``."""
    names = dict(model.named_parameters())
    for n, f in fisher.items():
        if n not in names or tuple(f.shape) != tuple(names[n].shape):
            raise ParameterError(
                f"The 'fisher' parameter must match the model's parameters; {n!r} does not (shape {tuple(f.shape)})."
            )
    setattr(model, FISHER_ATTR, ({n: f.detach().cpu() for n, f in fisher.items()}, str(source)))
    return model


def attached_fisher(model: nn.Module) -> tuple[dict[str, torch.Tensor], str] | None:
    """``(fisher, source)`` attached to ``model`` (see :func:`attach_fisher`), or ``None``."""
    value: Any = getattr(model, FISHER_ATTR, None)
    return value if isinstance(value, tuple) else None


FISHER_DATA = ("except-target", "all")


def training_fisher(model: nn.Module, splits: Splits, *, data: str = "except-target",
                    device: str | torch.device = "cpu") -> nn.Module:  # fmt: skip
    """Compute 000's Fisher on the pretraining data and attach it to ``model`` (a training-time artifact).

    ``data="except-target"`` uses the training data except the target class
    (D_r — 000's experiments); ``"all"`` uses D_r ∪ D_f (000's eq. 7).
    """
    if data not in FISHER_DATA:
        raise ParameterError(f"The 'fisher_data' parameter must be one of {', '.join(FISHER_DATA)}; got {data!r}.")
    if data == "all":
        view, source = splits.train, f"all {len(splits.train)} pretraining samples (D_r and D_f, 000 eq. 7)"
    else:
        target = splits.info.get("target_class")
        what = f"except class {target}" if target is not None else "except the forget set"
        view, source = splits.retain, f"the {len(splits.retain)} pretraining samples {what} (000's experiments)"
    return attach_fisher(model, fisher_diagonal(model, view, device=device), source)


def _batch_gradients(model: nn.Module, data: View, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
                     batch_size: int, device: str | torch.device) -> Iterator[dict[str, torch.Tensor]]:  # fmt: skip
    """Per batch of ``data`` (in order): the float64 gradient of ``loss(outputs, labels)`` per trainable parameter.

    Eval mode and a forked RNG state; the model's mode and gradients are restored after the last batch.
    """
    dev = torch.device(device)
    params = trainable(model)
    was = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            for rows in data.index_batches(batch_size):
                model.zero_grad(set_to_none=True)
                loss(model(data.x[rows].to(dev)), data.y[rows].to(dev)).backward()
                yield {n: p.grad.detach().double() for n, p in params.items() if p.grad is not None}
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was)


def saliency_mask(model: nn.Module, data: View, ratio: float, *, batch_size: int = 256,
                  device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:  # fmt: skip
    """SalUn's weight saliency (Fan et al., ICLR 2024, eq. 5): keep the top ``ratio`` share of weights by
    the magnitude of the forget loss's gradient.

    The gradient is that of the summed cross-entropy over ``data`` (the forget set), taken in eval mode
    in a forked RNG state. One global threshold over every trainable parameter: exactly
    ``round(ratio · P)`` entries are kept; ties at the threshold are broken by position in the flattened
    parameter order (earlier first), so the mask is deterministic.

    Returns:
        ``{name: bool tensor}`` per trainable parameter, True where the weight may change.
    """
    if not 0 < ratio <= 1:
        raise ParameterError(f"The 'ratio' parameter of saliency_mask must be in (0, 1]; got {ratio!r}.")
    if len(data) == 0:
        raise ParameterError("The 'data' parameter of saliency_mask must hold at least one sample; got 0.")
    params = trainable(model)
    total = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in params.items()}

    def summed_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, y, reduction="sum")

    for grads in _batch_gradients(model, data, summed_loss, batch_size=batch_size, device=device):
        for n, gr in grads.items():
            total[n] += gr
    flat = torch.cat([t.abs().flatten() for t in total.values()])
    keep = round(ratio * flat.numel())
    order = torch.sort(-flat, stable=True).indices  # largest first; ties by position
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[order[:keep].cpu()] = True
    return {n: m.to(params[n].device) for n, m in unflatten(chosen, params).items()}


def batch_importances(model: nn.Module, data: View, kind: str = "fisher", *, batch_size: int = 64,
                      device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:  # fmt: skip
    """Per-parameter importances as the SSD and LFSSD code computes them: a mean over batches.

    ``kind="fisher"`` (SSD, Foster et al. AAAI 2024): the squared gradient of each batch's mean
    cross-entropy. ``kind="output_norm"`` (LFSSD, Foster et al. ICLR 2024 Tiny Paper; Memory Aware
    Synapses' sensitivity): the absolute gradient of each batch's mean squared L2 norm of the model's
    output — no labels needed. Batches in data order, eval mode, forked RNG state.
    """
    if kind not in ("fisher", "output_norm"):
        raise ParameterError(f"The 'kind' parameter of batch_importances must be fisher or output_norm; got {kind!r}.")
    if len(data) == 0:
        raise ParameterError("The 'data' parameter of batch_importances must hold at least one sample; got 0.")
    params = trainable(model)
    total = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in params.items()}
    batches = 0

    def batch_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, y) if kind == "fisher" else out.pow(2).sum(1).mean()

    for grads in _batch_gradients(model, data, batch_loss, batch_size=batch_size, device=device):
        for n, gr in grads.items():
            total[n] += gr.square() if kind == "fisher" else gr.abs()
        batches += 1
    return {n: t / batches for n, t in total.items()}  # float64: float32 could round a tiny I_D to 0


def per_sample_grad_norms(model: nn.Module, data: View, *, device: str | torch.device = "cpu") -> torch.Tensor:
    """``(n, L)``: the L2 norm of each sample's cross-entropy gradient on each trainable parameter tensor.

    The white-box membership features of Nasr, Shokri, Houmansadr (S&P 2019) reduced to their norms: a
    member's loss sits at a minimum, so its gradients are small. Memory-bounded chunks, eval mode.
    """
    dev = torch.device(device)
    params = trainable(model)
    sizes = [p.numel() for p in params.values()]
    chunk = max(1, (1 << 25) // max(sum(sizes), 1))
    out = []
    with torch.enable_grad():
        for rows in data.index_batches(chunk):
            g = per_sample_gradients(model, data.x[rows].to(dev), data.y[rows].to(dev))
            out.append(torch.stack([part.norm(dim=1) for part in g.split(sizes, dim=1)], dim=1).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, len(sizes))
