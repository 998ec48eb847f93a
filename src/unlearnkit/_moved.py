"""Old module paths of 0.1 that keep working for one release, with a DeprecationWarning; short public paths.

Before the layered layout (docs/architecture.md) every module sat directly in
``unlearnkit/``. ``import unlearnkit.metrics`` (or ``from unlearnkit.metrics
import evaluate``) now warns once and hands back the module at its new home —
the same module object, so state and monkeypatching are shared. A leaf module:
it imports nothing of the package.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

# old path -> new path (removed in 0.3)
MOVED: dict[str, str] = {
    "unlearnkit.scenarios": "unlearnkit.data.scenarios",
    "unlearnkit.features": "unlearnkit.data.features",
    "unlearnkit.models": "unlearnkit.core.models",
    "unlearnkit.training": "unlearnkit.core.training",
    "unlearnkit.gradients": "unlearnkit.core.gradients",
    "unlearnkit.distillation": "unlearnkit.core.distillation",
    "unlearnkit.artifacts": "unlearnkit.core.artifacts",
    "unlearnkit.preparation": "unlearnkit.core.preparation",
    "unlearnkit.outputs": "unlearnkit.evaluation.outputs",
    "unlearnkit.metrics": "unlearnkit.evaluation.metrics",
    "unlearnkit.attacks": "unlearnkit.evaluation.attacks",
    "unlearnkit.weak": "unlearnkit.evaluation.weak",
    "unlearnkit.inversion": "unlearnkit.evaluation.inversion",
    "unlearnkit.experiment": "unlearnkit.running.experiment",
    "unlearnkit.benchmark": "unlearnkit.running.benchmark",
    "unlearnkit.benchconfig": "unlearnkit.running.benchconfig",
    "unlearnkit.executor": "unlearnkit.running.executor",
    "unlearnkit.populations": "unlearnkit.running.populations",
    "unlearnkit.tuning": "unlearnkit.running.tuning",
    "unlearnkit.report": "unlearnkit.reporting.report",
    "unlearnkit.tables": "unlearnkit.reporting.tables",
}


# short public paths (no warning): the module lives in its layer, users import it by its short name
SHORT: dict[str, str] = {
    "unlearnkit.evidence": "unlearnkit.evaluation.evidence",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path and loads it as the module at its new path."""

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED and fullname not in SHORT:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED.get(spec.name) or SHORT[spec.name]
        if spec.name in MOVED:
            warnings.warn(
                f"{spec.name} moved to {new} (see docs/architecture.md); the old path goes away in unlearnkit 0.3.",
                DeprecationWarning,
                stacklevel=2,
            )
        module = importlib.import_module(new)
        self._specs[spec.name] = module.__spec__  # the import system sets the alias spec on it next
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (the module at the new path is imported); give it back its own spec."""
        for old, spec in self._specs.items():
            if sys.modules.get(MOVED.get(old) or SHORT[old]) is module:
                module.__spec__ = spec


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
