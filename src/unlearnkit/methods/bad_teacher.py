"""``bad_teacher``: a student distils a competent teacher on retained data and an incompetent one on forgotten data.

Chundawat, Tarun, Mandal, Kankanhalli, "Can bad teaching induce forgetting?
Unlearning in deep networks using an incompetent teacher" (AAAI 2023), eq. 3–4:
the student starts as a copy of the original; the competent teacher is the
original, the incompetent teacher a randomly initialised model of the same
architecture. On a batch of forget ∪ retain-subset samples the student
minimises KL(T_s(x) || S(x)) at temperature T (the project's ``distill_kl``, × T²), where T_s is the incompetent
teacher for forget samples and the competent one for retained samples: the
forget set is pulled toward the outputs of a model that knows nothing, while
the retained knowledge is kept by ordinary distillation.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
from torch import nn

from unlearnkit.core.distillation import distill_kl
from unlearnkit.core.models import evaluating, init_weights
from unlearnkit.core.training import TrainConfig, make_optimizer
from unlearnkit.methods.base import TRAINER_CONSTRAINTS, Context, Unlearner
from unlearnkit.progress import progress_bar
from unlearnkit.validation import Constraint, Interval


class BadTeacher(Unlearner):
    """Distil the original on retained samples and a random model on forgotten ones, by KL.

    Data: the forget set plus a seeded ``retain_share`` of the retain set (the
    paper uses 30%), shuffled together; ``epochs`` passes over it. The
    incompetent teacher is the original's architecture re-initialised with a
    seed drawn from the run's seed. Diagnostics: ``forget_kl_to_bad`` — the
    student's mean KL to the incompetent teacher on the forget set, before and
    after (it falls as the forget outputs move toward the random teacher's).

    Tags: needs forget + retain; supports classes and samples; identity at ``epochs=0``.

    Example:
        >>> BadTeacher(retain_share=0.3).get_params()["temperature"]
        1.0
    """

    name: ClassVar[str] = "bad_teacher"
    needs: ClassVar[frozenset[str]] = frozenset({"forget", "retain"})
    sequence_outputs: ClassVar[bool] = False  # a random teacher of one output vector per sample
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 1,
        "lr": 1e-4,
        "batch_size": 256,
        "optimizer": "adam",
        "momentum": 0.9,
        "temperature": 1.0,
        "retain_share": 0.3,
    }
    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **TRAINER_CONSTRAINTS,
        "temperature": Interval(float, 0, None, closed="neither"),
        "retain_share": Interval(float, 0, 1, closed="right"),
    }
    search_space: ClassVar[dict[str, dict[str, Any]] | None] = {
        "epochs": {"low": 1, "high": 10},
        "lr": {"low": 1e-5, "high": 1e-2, "log": True},
        "retain_share": {"low": 0.05, "high": 1.0},
    }
    identity_params: ClassVar[dict[str, Any] | None] = {"epochs": 0}

    def _unlearn(self, model: nn.Module, ctx: Context) -> nn.Module:
        forget, retain = ctx.splits.forget, ctx.splits.retain
        good = copy.deepcopy(ctx.original).to(ctx.device)
        bad = init_weights(copy.deepcopy(ctx.original), int(torch.randint(0, 2**31, (1,), generator=ctx.generator)))
        bad = bad.to(ctx.device)
        n_keep = max(1, round(self.retain_share * len(retain)))
        keep = torch.randperm(len(retain), generator=ctx.generator)[:n_keep].sort().values
        x_f, _ = forget.tensors()
        x_r, _ = retain.subset(keep).tensors()
        x = torch.cat([x_f, x_r]).to(ctx.device)
        is_forget = torch.cat([torch.ones(len(x_f), dtype=torch.bool), torch.zeros(len(x_r), dtype=torch.bool)])
        is_forget = is_forget.to(ctx.device)
        t = float(self.temperature)
        with evaluating(good), evaluating(bad):
            target = torch.where(is_forget[:, None], bad(x), good(x))  # teachers' logits, fixed per sample
        before = _kl(model, x_f.to(ctx.device), target[: len(x_f)], t)
        optimizer = make_optimizer(model.parameters(), TrainConfig.from_dict(self.params))
        model.train()
        for _ in progress_bar(range(self.epochs), enabled=ctx.progress, desc=self.name, unit="epoch"):
            order = torch.randperm(len(x), generator=ctx.generator).to(ctx.device)
            for rows in order.split(self.batch_size):
                loss = distill_kl(model(x[rows]), target[rows], t)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                ctx.steps += 1
                n_f = int(is_forget[rows].sum())
                ctx.count("forget", n_f)
                ctx.count("retain", int(rows.numel()) - n_f)
            ctx.end_epoch(model)
        ctx.diagnostics["forget_kl_to_bad"] = {"before": before, "after": _kl(model, x_f.to(ctx.device),
                                                                          target[: len(x_f)], t)}  # fmt: skip
        return model


def _kl(model: nn.Module, x: torch.Tensor, teacher: torch.Tensor, t: float) -> float:
    with evaluating(model):
        return float(distill_kl(model(x), teacher, t))
