"""The package's layers (docs/architecture.md) hold: every import, also those inside functions, goes downwards.

The checker reads the source with :mod:`ast` (nothing is imported), so an
import inside a function, a method or an ``if TYPE_CHECKING:`` block counts
exactly like one at the top of a module.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "unlearnkit"

LEAVES = frozenset({"errors", "validation", "registry", "optional", "env", "progress", "files", "_version", "_moved"})
# layer -> the layers its modules may import (besides their own); the nevers of docs/architecture.md are the rest
ALLOWED: dict[str, frozenset[str]] = {
    "leaf": frozenset({"leaf"}),
    "data": frozenset({"leaf"}),
    "core": frozenset({"leaf", "data"}),
    "evaluation": frozenset({"leaf", "data", "core"}),
    "methods": frozenset({"leaf", "data", "core", "evaluation"}),
    "reporting": frozenset({"leaf", "evaluation.metrics"}),  # metric definitions (names, directions), no models
    "running": frozenset({"leaf", "data", "core", "evaluation", "methods", "reporting"}),
    "cli": frozenset({"leaf", "data", "core", "evaluation", "methods", "reporting", "running", "root"}),
    "root": frozenset({"leaf", "data", "core", "evaluation", "methods", "reporting", "running"}),
    "main": frozenset({"cli"}),
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    if parts[1] == "__main__":
        return "main"
    return "leaf" if parts[1] in LEAVES else parts[1]


def imports(path: Path, module: str, known: set[str]) -> list[tuple[int, str]]:
    """(line, imported package module) for every import anywhere in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for a in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{base}.{a.name}"
                found.append((node.lineno, sub if sub in known else base))
    return [(line, m) for line, m in found if m == "unlearnkit" or m.startswith("unlearnkit.")]


def allowed(src: str, dst: str) -> bool:
    a, b = layer(src), layer(dst)
    if a == b:
        return True
    rules = ALLOWED[a]
    return b in rules or any(dst == f"unlearnkit.{r}" or dst.startswith(f"unlearnkit.{r}.") for r in rules if "." in r)


def graph(root: Path) -> tuple[dict[str, list[tuple[int, str]]], dict[str, Path]]:
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    known = set(files)
    return {m: imports(p, m, known) for m, p in files.items()}, files


def violations(root: Path = PACKAGE) -> list[str]:
    """One line per import that breaks a never: 'file:line: src (layer) imports dst (layer)'."""
    edges, files = graph(root)
    out = []
    for src, targets in edges.items():
        for line, dst in targets:
            if not allowed(src, dst):
                rel = files[src].relative_to(root.parent)
                out.append(f"{rel}:{line}: {src} ({layer(src)}) imports {dst} ({layer(dst)})")
    return out


def cycles(root: Path = PACKAGE) -> list[list[str]]:
    """Strongly connected groups of two or more modules (imports inside functions count)."""
    edges, _ = graph(root)
    adj = {m: sorted({d for _, d in ts if d in edges and d != m}) for m, ts in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in adj[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in adj:
        if v not in index:
            visit(v)
    return groups


def test_no_import_breaks_a_layer_rule():
    assert violations() == []


def test_no_import_cycles_between_modules():
    # `unlearnkit` (the package root) re-exports the API, so package __init__ edges to their own
    # submodules are not cycles unless a submodule imports the root back; none may.
    assert cycles() == []


def test_every_module_has_a_layer():
    edges, _ = graph(PACKAGE)
    assert {layer(m) for m in edges} <= set(ALLOWED)
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert top == LEAVES  # nothing else lies loose in the package root


@pytest.mark.parametrize(
    ("file", "planted", "expected"),
    [
        # a function-level import counts, as the old features -> gradients one did
        ("data/features.py", "\n\ndef _planted():\n    from unlearnkit.core.gradients import fisher_diagonal\n",
         "unlearnkit.data.features (data) imports unlearnkit.core.gradients (core)"),
        ("core/artifacts.py", "\n\ndef _planted():\n    import unlearnkit.methods\n",
         "unlearnkit.core.artifacts (core) imports unlearnkit.methods (methods)"),
        ("evaluation/metrics.py", "\nfrom unlearnkit.methods import make_method\n",
         "unlearnkit.evaluation.metrics (evaluation) imports unlearnkit.methods (methods)"),
        ("env.py", "\n\ndef _planted():\n    from unlearnkit import __version__\n",
         "unlearnkit.env (leaf) imports unlearnkit (root)"),
        ("reporting/report.py", "\nfrom unlearnkit.core.models import build_model\n",
         "unlearnkit.reporting.report (reporting) imports unlearnkit.core.models (core)"),
        ("running/benchmark.py", "\nfrom unlearnkit.cli import main\n",
         "unlearnkit.running.benchmark (running) imports unlearnkit.cli (cli)"),
    ],
)  # fmt: skip
def test_the_checker_catches_a_planted_violation(tmp_path, file, planted, expected):
    copy = tmp_path / "unlearnkit"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / file, "a") as f:
        f.write(planted)
    found = violations(copy)
    assert len(found) == 1 and found[0].endswith(expected), found


def test_the_checker_catches_a_planted_cycle(tmp_path):
    copy = tmp_path / "unlearnkit"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    # the old circle: outputs -> metrics (inside a function) while metrics -> outputs
    with open(copy / "evaluation" / "outputs.py", "a") as f:
        f.write("\n\ndef _planted():\n    from unlearnkit.evaluation.metrics import METRICS\n")
    found = cycles(copy)
    assert len(found) == 1 and {"unlearnkit.evaluation.metrics", "unlearnkit.evaluation.outputs"} <= set(found[0])
    assert violations(copy) == []  # same layer: only the cycle check sees it


def test_old_module_paths_warn_and_give_the_module_at_its_new_home():
    import importlib
    import sys

    from unlearnkit._moved import MOVED

    assert set(MOVED.values()) <= {module_name(p, PACKAGE) for p in PACKAGE.rglob("*.py")}
    for old, new in MOVED.items():
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
            module = importlib.import_module(old)
        assert module is importlib.import_module(new)
        assert module.__spec__.name == new  # the module keeps its own spec (reload, pickling by name)
    with pytest.warns(DeprecationWarning):
        sys.modules.pop("unlearnkit.metrics", None)
        from unlearnkit.metrics import evaluate  # the README's old spelling
    from unlearnkit.evaluation.metrics import evaluate as new_evaluate

    assert evaluate is new_evaluate


def test_short_public_paths_import_without_a_warning(recwarn):
    import importlib
    import sys
    import warnings

    from unlearnkit._moved import SHORT

    for short, home in SHORT.items():
        sys.modules.pop(short, None)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any warning fails the import
            module = importlib.import_module(short)
        assert module is importlib.import_module(home) and module.__spec__.name == home
    from unlearnkit.evidence import epsilons  # the issue's spelling

    from unlearnkit.evaluation.evidence import epsilons as at_home

    assert epsilons is at_home
