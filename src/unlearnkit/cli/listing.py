"""`unlearnkit list`: the registries (methods, datasets, models, metrics, scenarios).

``unlearnkit list`` alone lists the registries with their entries;
``unlearnkit list NAME`` prints one registry as a table.

It reads ``catalogue.json`` beside this file — the registries' names, tags and
one-line summaries — so it answers without importing torch. The catalogue is
generated from the real registries (``make catalogue``) and a
test fails when it drifts from them.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unlearnkit.cli.common import EXIT_OK

CATALOGUE = Path(__file__).with_name("catalogue.json")
DIRECTIONS = {"higher": "higher is better", "lower": "lower is better", "retrain": "closest to retrain"}
WHAT = ("methods", "datasets", "models", "metrics", "scenarios")


# The seed papers by file number (shared/seeds), as a reader of `list` knows them.
PAPERS = {
    "000": "the selective-forgetting paper",
    "001": "the SCRUB paper",
    "002": "the two-stage paper",
    "003": "the Forsaken paper",
    "004": "the linear-filtration paper",
}


def readable(text: str) -> str:
    """Plain text for a terminal: no reStructuredText backticks, paper names instead of file numbers."""
    text = re.sub(r"``([^`]*)``", r"\1", text).replace(":class:", "").replace(":func:", "").replace("`", "")
    code = r"(?<![\d,.])\b(00[0-4])\b"  # a paper's file number, not the end of "5,000"
    text = re.sub(code + "'s", lambda m: PAPERS[m.group(1)] + "'s", text)
    return re.sub(code, lambda m: PAPERS[m.group(1)], text)


def _summary(obj: Any) -> str:
    """The docstring's first sentence, whole (not its first line, which a wrapped sentence cuts)."""
    paragraph = " ".join((obj.__doc__ or "").strip().split("\n\n")[0].split())
    sentence = re.split(r"(?<=\.)\s+(?=[A-Z])", paragraph, maxsplit=1)[0]  # not at "eq. 8" or "e.g. x"
    text = readable(sentence)
    return text[:1].upper() + text[1:]


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
        "datasets": (DATASETS, ["dataset", "description"], lambda n, s: [n, readable(s.description)]),
        "models": (MODELS, ["model", "description"], lambda n, s: [n, readable(s.description)]),
        "metrics": (
            METRICS,
            ["metric", "direction", "definition"],
            lambda n, m: [n, DIRECTIONS.get(m.direction, m.direction), readable(m.description)],
        ),
        "scenarios": (SCENARIOS, ["scenario", "description"], lambda n, c: [n, _summary(c)]),
    }


def build_catalogue() -> dict[str, dict[str, Any]]:
    """Every registry as ``{"header": [...], "rows": [[...], ...]}``, from the real registries (imports torch)."""
    return {
        name: {"header": header, "rows": [row(n, entry) for n, entry in registry.items()]}
        for name, (registry, header, row) in _registries().items()
    }


def add_list(sub: Any) -> None:
    p = sub.add_parser("list", help="list the registries, or the entries of one (methods, datasets, ...)")
    p.add_argument("what", nargs="?", choices=WHAT, default=None, help="the registry (default: all, by name)")


def cmd_list(args: argparse.Namespace) -> int:
    from unlearnkit.reporting.tables import render

    catalogue = json.loads(CATALOGUE.read_text(encoding="utf-8"))
    if args.what is None:
        rows = [[name, str(len(c["rows"])), ", ".join(r[0] for r in c["rows"])] for name, c in catalogue.items()]
        print(render(["registry", "entries", "names (unlearnkit list REGISTRY for details)"], rows, left=3))
        return EXIT_OK
    entry = catalogue[args.what]
    print(render(entry["header"], entry["rows"], left=len(entry["header"])))
    return EXIT_OK


def write_catalogue() -> Path:
    """Regenerate ``catalogue.json`` from the registries (``make catalogue``) after adding or changing an entry."""
    from unlearnkit.files import write_text_atomic

    write_text_atomic(CATALOGUE, json.dumps(build_catalogue(), indent=1, ensure_ascii=False) + "\n")
    return CATALOGUE
