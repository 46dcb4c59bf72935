"""The project's import graph keeps its layering (docs/architecture.md, Parts).

Read with ``ast`` (nothing is imported): no cycle among project modules; no upward import
(``catalog`` imports nothing above it, ``api`` and ``streaming``/``orchestration`` never import
each other, ``streaming`` never imports ``orchestration``); no project module imported inside a
function unless a comment on that line or the one before gives a reason that is not a cycle.
The checker functions are tested on small synthetic module maps too, so a planted violation
fails them.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "catalog", "streaming", "orchestration", "bench")
# package → the project packages it must not import
FORBIDDEN = {
    "catalog": {"api", "streaming", "orchestration", "bench"},
    "api": {"streaming", "orchestration", "bench"},
    "streaming": {"api", "orchestration", "bench"},
    "orchestration": {"api", "bench"},
}
_CYCLE_WORDS = re.compile(r"cycle|circular|imports this module", re.IGNORECASE)


@dataclass(frozen=True)
class Import:
    """One import of a project module by another."""

    source: str
    target: str
    line: int
    in_function: bool
    reason: str | None  # the comment on the import's line or the line before


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path, packages: Iterable[str]) -> dict[str, str]:
    """``{module name: source text}`` of every module of ``packages`` under ``root``."""
    found: dict[str, str] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(path, root)] = path.read_text()
    return found


def _comment(lines: list[str], line: int) -> str | None:
    """The comment on line ``line`` (1-based) or, failing that, on the line before."""
    for number in (line, line - 1):
        if 1 <= number <= len(lines):
            text = lines[number - 1]
            if "#" in text:
                comment = text.split("#", 1)[1].strip()
                if comment and not comment.startswith(("noqa", "type:", "fmt:")):
                    return comment
    return None


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: str, source: str, known: Iterable[str],
               is_package: bool = False) -> list[Import]:
    """The project modules ``module`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    modules = set(known)
    roots = {name.split(".")[0] for name in modules}
    lines = source.splitlines()
    found: list[Import] = []

    def add(target: str, node: ast.stmt, in_function: bool) -> None:
        if target.split(".")[0] in roots and target != module:
            found.append(Import(module, target, node.lineno, in_function,
                                _comment(lines, node.lineno)))

    def visit(node: ast.AST, in_function: bool, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # never run: no import at run time
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef
                                               | ast.Lambda)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(alias.name, child, in_function)
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(child, module, is_package)
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    add(full if full in modules else base, child, in_function)
            visit(child, inner, type_checking)

    visit(ast.parse(source), False, False)
    return found


def graph_of(sources: Mapping[str, str], packages: set[str] | None = None) -> list[Import]:
    """Every project import among ``sources`` (``{module: text}``); ``packages`` names the
    modules that are packages (``__init__``), for relative imports."""
    known = set(sources)
    packages = packages or set()
    return [imp for name, text in sources.items()
            for imp in imports_of(name, text, known, name in packages)]


def cycles(imports: Iterable[Import]) -> list[list[str]]:
    """The import cycles among top-level imports (Tarjan's strongly connected components)."""
    edges: dict[str, set[str]] = {}
    for imp in imports:
        if not imp.in_function:
            edges.setdefault(imp.source, set()).add(imp.target)
            edges.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in edges[node]:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def upward(imports: Iterable[Import]) -> list[Import]:
    """Imports that run against the layering (``FORBIDDEN``)."""
    return [imp for imp in imports
            if imp.target.split(".")[0] in FORBIDDEN.get(imp.source.split(".")[0], set())]


def hidden(imports: Iterable[Import]) -> list[Import]:
    """Function-level imports of project modules without a reason, or whose reason is a cycle."""
    return [imp for imp in imports if imp.in_function
            and (imp.reason is None or _CYCLE_WORDS.search(imp.reason))]


def _show(imps: Iterable[Import]) -> list[str]:
    return [f"{i.source}:{i.line} imports {i.target} ({i.reason or 'no reason given'})"
            for i in imps]


@pytest.fixture(scope="module")
def project() -> list[Import]:
    sources = project_modules(ROOT, PACKAGES)
    packages = {module_name(p, ROOT) for pkg in PACKAGES for p in (ROOT / pkg).rglob("__init__.py")}
    return graph_of(sources, packages)


def test_the_project_has_no_import_cycle(project: list[Import]) -> None:
    assert cycles(project) == []


def test_no_import_runs_against_the_layering(project: list[Import]) -> None:
    assert _show(upward(project)) == []


def test_no_function_level_import_hides_a_cycle(project: list[Import]) -> None:
    assert _show(hidden(project)) == []


def test_the_graph_sees_the_layers_it_checks(project: list[Import]) -> None:
    """Guards the checks above against an empty graph (a wrong root or parser)."""
    targets = {(i.source.split(".")[0], i.target.split(".")[0]) for i in project}
    assert {("api", "catalog"), ("streaming", "catalog"), ("orchestration", "catalog")} <= targets


# --- the checkers on planted violations -------------------------------------------------------

def test_a_planted_cycle_is_found() -> None:
    sources = {"streaming.a": "from streaming.b import x\n", "streaming.b": "import streaming.c\n",
               "streaming.c": "from streaming import a\n", "streaming.d": "import streaming.a\n"}
    assert cycles(graph_of(sources)) == [["streaming.a", "streaming.b", "streaming.c"]]


def test_a_cycle_through_a_function_level_import_is_not_a_top_level_cycle() -> None:
    sources = {"streaming.a": "import streaming.b\n",
               "streaming.b": "def f():\n    import streaming.a\n"}
    imports = graph_of(sources)
    assert cycles(imports) == []
    assert _show(hidden(imports)) == ["streaming.b:2 imports streaming.a (no reason given)"]


def test_planted_upward_imports_are_found() -> None:
    sources = {"catalog.x": "from streaming.y import z\n",
               "streaming.y": "import orchestration.w\n", "api.v": "from streaming import y\n",
               "orchestration.w": "import catalog.x\n", "streaming.ok": "from catalog import x\n"}
    found = {(i.source, i.target) for i in upward(graph_of(sources))}
    assert found == {("catalog.x", "streaming.y"), ("streaming.y", "orchestration.w"),
                     ("api.v", "streaming.y")}


def test_a_function_level_import_needs_a_reason_other_than_a_cycle() -> None:
    sources = {
        "streaming.a": "def f():\n    import streaming.b\n",
        "streaming.b": "def f():\n    # here: streaming.a imports this module\n"
                       "    from streaming import a\n",
        "streaming.c": "def f():\n    from streaming import a  # avoids a circular import\n",
        "streaming.d": "def f():\n    # the CLI alone needs Spark: keep --help fast\n"
                       "    from streaming import a\n",
        "streaming.e": "def f():\n    import json  # not a project module\n",
    }
    assert sorted(i.source for i in hidden(graph_of(sources))) == [
        "streaming.a", "streaming.b", "streaming.c"]


def test_type_checking_imports_and_relative_imports() -> None:
    sources = {
        "orchestration.lake": "",
        "orchestration.lake.a": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                "    from orchestration.lake import b\n",
        "orchestration.lake.b": "from . import a\nfrom .a import thing\n",
    }
    imports = graph_of(sources, {"orchestration.lake"})
    assert [(i.source, i.target) for i in imports] == [
        ("orchestration.lake.b", "orchestration.lake.a"),
        ("orchestration.lake.b", "orchestration.lake.a")]
    assert cycles(imports) == []
