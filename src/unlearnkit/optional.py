"""Import heavier optional dependencies where they are used, naming the extra.

Example:
    >>> np = optional_import("numpy", extra="core")
"""

from __future__ import annotations

import importlib
from types import ModuleType

from unlearnkit.errors import UnlearnkitError

EXTRAS = {
    "xgboost": "xgboost",
    "optuna": "tune",
    "ray": "ray",
    "opacus": "dp",
    "yaml": "yaml",
    "captum": "explain",
    "arff": "text",
}


class MissingDependencyError(UnlearnkitError):
    """An optional dependency is not installed; the message names the extra."""


def optional_import(module: str, *, extra: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        name = extra or EXTRAS.get(top, top)
        raise MissingDependencyError(
            f"{top} is needed for this feature but is not installed; install it with: pip install 'unlearnkit[{name}]'"
        ) from None
