"""The method registry. Adding a method = its module + one line here + its doc card."""

from unlearnkit.methods.base import KINDS, NEEDS, Context, Outcome, Unlearner
from unlearnkit.methods.finetune import Finetune
from unlearnkit.methods.neggrad import NegGrad, NegGradPlus
from unlearnkit.methods.retrain import Retrain
from unlearnkit.registry import Registry

METHODS: Registry[type[Unlearner]] = Registry("method")
for _cls in (Retrain, Finetune, NegGrad, NegGradPlus):
    METHODS.register(_cls.name, _cls)


def make_method(name: str, **params: object) -> Unlearner:
    """Build a registered method with its settings; settings are validated here too."""
    method = METHODS.get(name)(**params)
    method.validate_params()
    return method


__all__ = [
    "KINDS",
    "METHODS",
    "NEEDS",
    "Context",
    "Finetune",
    "NegGrad",
    "NegGradPlus",
    "Outcome",
    "Retrain",
    "Unlearner",
    "make_method",
]
