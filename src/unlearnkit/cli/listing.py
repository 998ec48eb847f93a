"""`unlearnkit list`: the registries (methods, datasets, models, metrics, scenarios).

``unlearnkit list`` alone lists the registries with their entries;
``unlearnkit list NAME`` prints one registry as a table.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from unlearnkit.cli.common import EXIT_OK


def _summary(obj: Any) -> str:
    return (obj.__doc__ or "").strip().splitlines()[0] if (obj.__doc__ or "").strip() else ""


def _registries() -> dict[str, tuple[Any, list[str], Callable[[str, Any], list[str]]]]:
    """Registry name -> (registry, table header, row of one entry)."""
    from unlearnkit.core.models import MODELS
    from unlearnkit.data import DATASETS
    from unlearnkit.data.scenarios import SCENARIOS
    from unlearnkit.evaluation.metrics import METRICS
    from unlearnkit.methods import METHODS

    return {
        "methods": (
            METHODS,
            ["method", "supports", "needs", "what it does"],
            lambda n, c: [n, ",".join(sorted(c.supports)), ",".join(sorted(c.needs)), _summary(c)],
        ),
        "datasets": (DATASETS, ["dataset", "description"], lambda n, s: [n, s.description]),
        "models": (MODELS, ["model", "description"], lambda n, s: [n, s.description]),
        "metrics": (METRICS, ["metric", "direction", "definition"], lambda n, m: [n, m.direction, m.description]),
        "scenarios": (SCENARIOS, ["scenario", "description"], lambda n, c: [n, _summary(c)]),
    }


WHAT = ("methods", "datasets", "models", "metrics", "scenarios")


def add_list(sub: Any) -> None:
    p = sub.add_parser("list", help="list the registries, or the entries of one (methods, datasets, ...)")
    p.add_argument("what", nargs="?", choices=WHAT, default=None, help="the registry (default: all, by name)")


def cmd_list(args: argparse.Namespace) -> int:
    from unlearnkit.reporting.tables import render

    registries = _registries()
    if args.what is None:
        rows = [[name, str(len(reg)), ", ".join(reg)] for name, (reg, _, _) in registries.items()]
        print(render(["registry", "entries", "names (unlearnkit list REGISTRY for details)"], rows, left=3))
        return EXIT_OK
    registry, header, row = registries[args.what]
    print(render(header, [row(n, entry) for n, entry in registry.items()], left=len(header)))
    return EXIT_OK
