"""The layout rules of the source tree (docs/architecture.md), checked on the syntax tree of src/.

- no import cycles between modules, lazy (function-level) imports included;
- no cycles between packages either, counting each aggregate of `services/` and each part of
  `engine/` as its own package (they are the units a reader navigates by);
- `services/` holds only packages, one per aggregate.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = SRC / "strataflow"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in known)
    return found


def module_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    known = set(paths)
    return {name: _imports(path, known) - {name} for name, path in paths.items()}


def package_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in ("services", "engine"):
        return ".".join(parts[:3])
    return ".".join(parts[:2])


def package_graph(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, targets in modules.items():
        source = package_of(module)
        graph.setdefault(source, set())
        for target in targets:
            if package_of(target) not in (source, "strataflow"):  # the package root holds only __version__
                graph[source].add(package_of(target))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_back() -> None:
    assert cycles(module_graph()) == []


def test_no_package_imports_itself_back() -> None:
    assert cycles(package_graph(module_graph())) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_services_holds_one_package_per_aggregate() -> None:
    loose = sorted(p.name for p in (ROOT / "services").glob("*.py") if p.name != "__init__.py")
    assert loose == []
    for package in (ROOT / "services").iterdir():
        if package.is_dir() and package.name != "__pycache__":
            assert (package / "__init__.py").is_file(), package.name
