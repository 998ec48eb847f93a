"""Models prepared at training time for a specific unlearning method.

Some baselines cannot unlearn an arbitrary trained model: SISA (003's
baseline, Bourtoule et al.) needs an ensemble trained on shards with
checkpoints, SMU needs gradient contributions recorded while training. Such a
model is a :class:`PreparedModel`: an ``nn.Module`` that predicts like any
other classifier and also carries what its method needs.

A prepared model saves and loads through :func:`unlearnkit.core.artifacts.save_model`
/ :func:`~unlearnkit.core.artifacts.load_model` like a plain one: its side data goes
to ``prepared.safetensors`` (tensors only, nothing pickled) and its settings to
the sidecar's ``prepared`` entry. Each kind is registered in
:data:`PREPARATIONS` under the name stored in the sidecar.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from unlearnkit.registry import Registry

PREPARED_WEIGHTS = "prepared.safetensors"


class PreparedModel(nn.Module):
    """Base class of models that carry training-time data for one unlearning method.

    Subclasses set ``preparation`` (their registry name) and ``how`` (the
    command or function that produces one, quoted in errors), and implement
    the three methods below.
    """

    preparation: ClassVar[str] = "prepared"
    how: ClassVar[str] = ""

    def prepared_meta(self) -> dict[str, Any]:
        """JSON-able settings stored in the sidecar's ``prepared`` entry."""
        raise NotImplementedError

    def prepared_tensors(self) -> dict[str, torch.Tensor]:
        """Side data (beyond ``state_dict``) stored in ``prepared.safetensors``."""
        raise NotImplementedError

    @classmethod
    def restore(
        cls, build: Callable[[], nn.Module], meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
    ) -> PreparedModel:
        """Rebuild the prepared model (weights are loaded afterwards from ``state_dict``).

        Args:
            build: Returns one fresh base model of the saved architecture.
            meta: The sidecar's ``prepared`` entry.
            tensors: The contents of ``prepared.safetensors``.
        """
        raise NotImplementedError


PREPARATIONS: Registry[type[PreparedModel]] = Registry("preparation")
