"""``boundary_shrink`` and ``boundary_expand``: Boundary Unlearning (Chen et al., CVPR 2023), class requests.

Chen, Gao, Liu, Peng, Zhou, "Boundary unlearning: rapid forgetting of deep
networks via shifting the decision space" (CVPR 2023), §3.2–3.3.

* **Shrink** (Alg. 1): each forget sample gets its *nearest but incorrect*
  class, found by a one-step FGSM attack on the original
  (``x' = x + ε · sign(∇_x CE(f(x), y))``, label ``argmax f(x')``; when the
  attack's prediction is still the true class, the next most likely class of
  ``f(x')`` is taken). The model is fine-tuned on the forget set with those
  labels: the forgotten class's decision space shrinks into its neighbours.
* **Expand** (Alg. 2): a shadow output is added to the final linear layer, the
  model is fine-tuned to put every forget sample in the shadow class, and the
  shadow output is then pruned: the forget samples' evidence went into a class
  that no longer exists.

Both perturb nothing but inputs or outputs of an image classifier; shrink
perturbs inputs, so it declares continuous inputs only.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.core.models import evaluating, find_head
from unlearnkit.core.training import TrainConfig, make_optimizer
from unlearnkit.methods.base import TRAINER_CONSTRAINTS, Context, Unlearner
from unlearnkit.progress import progress_bar
from unlearnkit.validation import Constraint, Interval

_TRAIN: dict[str, Constraint] = TRAINER_CONSTRAINTS


def nearest_wrong_labels(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Boundary shrink's labels: the class an FGSM step of size ``epsilon`` pushes each sample into, never its own.

    When the perturbed prediction is still the true class, the perturbed output's next most likely
    class is taken.
    """
    was = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        xa = x.clone().requires_grad_(True)
        loss = F.cross_entropy(model(xa), y)
        (g,) = torch.autograd.grad(loss, xa)
        with torch.no_grad():  # kept inside the inputs' range (the reference clamps images to [0, 1])
            out = model((x + epsilon * g.sign()).clamp(float(x.min()), float(x.max())))
            top2 = out.topk(2, dim=1).indices
            return torch.where(top2[:, 0] == y, top2[:, 1], top2[:, 0])
    finally:
        for m, t in was:
            m.training = t


def _fit_labels(model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: dict[str, Any], ctx: Context,
                desc: str) -> None:  # fmt: skip
    """Fine-tune ``model`` on ``(x, y)`` (the forget set, relabelled) for ``params['epochs']`` epochs."""
    optimizer = make_optimizer(model.parameters(), TrainConfig.from_dict(params))
    model.train()
    for _ in progress_bar(range(params["epochs"]), enabled=ctx.progress, desc=desc, unit="epoch"):
        order = torch.randperm(len(x), generator=ctx.generator).to(x.device)
        for rows in order.split(params["batch_size"]):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[rows]), y[rows]).backward()
            optimizer.step()
            ctx.steps += 1
            ctx.count("forget", int(rows.numel()))
        ctx.end_epoch(model)


def _resize(head: nn.Linear, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    head.weight = nn.Parameter(weight.detach().clone())
    if bias is not None:
        head.bias = nn.Parameter(bias.detach().clone())
    head.out_features = weight.shape[0]


class BoundaryShrink(Unlearner):
    """Fine-tune on the forget set relabelled with each sample's nearest wrong class (FGSM).

    Diagnostics: ``neighbour_classes`` — how many forget samples went to each class.

    Tags: needs forget; supports classes; continuous inputs (it perturbs them);
    identity at ``epochs=0``.

    Example:
        >>> BoundaryShrink().get_params()["epsilon"]
        0.1
    """

    name: ClassVar[str] = "boundary_shrink"
    needs: ClassVar[frozenset[str]] = frozenset({"forget"})
    supports: ClassVar[frozenset[str]] = frozenset({"classes"})
    input_kinds: ClassVar[frozenset[str]] = frozenset({"continuous"})
    defaults: ClassVar[dict[str, Any]] = {"epochs": 5, "lr": 0.01, "batch_size": 64, "optimizer": "sgd",
                                          "momentum": 0.9, "epsilon": 0.1}  # fmt: skip
    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **_TRAIN,
        "epsilon": Interval(float, 0, None, closed="neither"),
    }
    search_space: ClassVar[dict[str, dict[str, Any]] | None] = {
        "epochs": {"low": 1, "high": 20},
        "lr": {"low": 1e-4, "high": 0.1, "log": True},
        "epsilon": {"low": 0.01, "high": 1.0, "log": True},
    }
    identity_params: ClassVar[dict[str, Any] | None] = {"epochs": 0}

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        x, y = (t.to(ctx.device) for t in ctx.splits.forget.tensors())
        labels = nearest_wrong_labels(model, x, y, float(self.epsilon))  # the working copy: still the original
        ctx.count("forget", len(y))
        ctx.diagnostics["neighbour_classes"] = torch.bincount(labels.cpu(), minlength=ctx.splits.num_classes).tolist()
        _fit_labels(model, x, labels, self.params, ctx, self.name)
        return model


class BoundaryExpand(Unlearner):
    """Add a shadow output, fine-tune the forget set onto it, prune it.

    The final ``nn.Linear`` gains one output (its new row initialised like the
    layer, from the run's seed); the model is fine-tuned on the forget set with
    every label set to the shadow class; the shadow row is then removed, so the
    model has its original outputs. Diagnostics: ``shadow_share`` — share of the
    forget set predicted as the shadow class before pruning.

    Tags: needs forget and a final linear layer; supports classes; identity at ``epochs=0``.
    """

    name: ClassVar[str] = "boundary_expand"
    needs: ClassVar[frozenset[str]] = frozenset({"forget", "linear_head"})
    supports: ClassVar[frozenset[str]] = frozenset({"classes"})
    defaults: ClassVar[dict[str, Any]] = {"epochs": 5, "lr": 0.01, "batch_size": 64, "optimizer": "sgd",
                                          "momentum": 0.9}  # fmt: skip
    parameter_constraints: ClassVar[dict[str, Constraint]] = dict(_TRAIN)
    search_space: ClassVar[dict[str, dict[str, Any]] | None] = {
        "epochs": {"low": 1, "high": 20},
        "lr": {"low": 1e-4, "high": 0.1, "log": True},
    }
    identity_params: ClassVar[dict[str, Any] | None] = {"epochs": 0}

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        x = ctx.splits.forget.tensors()[0].to(ctx.device)
        _, head = find_head(model, x[:1])
        k = head.out_features
        # The head is widened in place (not swapped for a new module), so a model that refers to it under
        # two names keeps using the one it trains.
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=ctx.generator)))
            row = nn.Linear(head.in_features, 1, bias=head.bias is not None).to(head.weight.device,
                                                                                head.weight.dtype)  # fmt: skip
            _resize(head, torch.cat([head.weight, row.weight]),
                    None if head.bias is None else torch.cat([head.bias, row.bias]))  # fmt: skip
        shadow = torch.full((len(x),), k, dtype=torch.long, device=x.device)
        _fit_labels(model, x, shadow, self.params, ctx, self.name)
        with evaluating(model):
            ctx.diagnostics["shadow_share"] = float((model(x).argmax(1) == k).float().mean())
        with torch.no_grad():  # prune the shadow output
            _resize(head, head.weight[:k].clone(), None if head.bias is None else head.bias[:k].clone())
        return model
