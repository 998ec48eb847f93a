"""Input attributions (which pixels a model's decision rests on), by Captum.

001's remark after its Fig. 3 — on mislabelled classes the unlearned models
"focus on more explainable features" — is read from attribution maps of the
original, retrained and unlearned models on forgotten and retained samples.
The maps come from Captum (``pip install 'unlearnkit[explain]'``), not from
hand-written gradients:

* ``saliency`` — |∂ f_t(x) / ∂x| (Simonyan et al. 2014), Captum's ``Saliency``;
* ``integrated_gradients`` — (x − x₀) · ∫ ∂ f_t(x₀ + α(x − x₀)) / ∂x dα with a
  zero baseline x₀ (Sundararajan et al. 2017), Captum's ``IntegratedGradients``.

The model is put in eval mode for the computation and its modes are restored.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unlearnkit.errors import ParameterError
from unlearnkit.optional import optional_import

ATTRIBUTIONS = ("saliency", "integrated_gradients")


def attributions(model: nn.Module, x: torch.Tensor, target: torch.Tensor, method: str = "saliency", *,
                 steps: int = 50) -> torch.Tensor:  # fmt: skip
    """Attribution of each input element to output ``target[i]`` for sample ``x[i]`` (same shape as ``x``).

    Args:
        method: ``saliency`` (absolute gradient) or ``integrated_gradients`` (zero baseline, ``steps`` steps).
    """
    if method not in ATTRIBUTIONS:
        raise ParameterError(f"The 'method' parameter must be one of {', '.join(ATTRIBUTIONS)}; got {method!r}.")
    if x.shape[0] != target.shape[0]:
        raise ParameterError(
            f"The 'target' parameter must have one class per sample ({x.shape[0]}); got {target.shape[0]}."
        )
    attr: Any = optional_import("captum.attr", extra="explain")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        inputs = x.detach().clone().requires_grad_(True)
        if method == "saliency":
            out = attr.Saliency(model).attribute(inputs, target=target.tolist(), abs=True)
        else:
            out = attr.IntegratedGradients(model).attribute(inputs, baselines=torch.zeros_like(inputs),
                                                            target=target.tolist(), n_steps=steps)  # fmt: skip
    finally:
        for m, t in modes:
            m.training = t
        model.zero_grad(set_to_none=True)
    result: torch.Tensor = out.detach()
    return result
