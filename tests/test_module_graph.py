"""No import circles among pasl's modules, and the generic weight code imports no network.

The graph counts every ``import`` in a module, also those inside functions: a circle made of
late imports still ties two topics together, it just fails later.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pasl"


def _module_files() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imported(module: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """pasl modules that one import statement loads (``from .x import name`` counts ``x.name`` when a module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = package[: len(package) - node.level + 1] if node.level else []
        target = ".".join(base + ([node.module] if node.module else []))
        names = [f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target for alias in node.names]
    return {name for name in names if name in modules and name != module}


def import_graph() -> dict[str, set[str]]:
    """pasl module -> the pasl modules it imports, anywhere in its body."""
    modules = _module_files()
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[module] = set().union(
            *(_imported(module, path, node, modules) for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)))
        )
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as ``[a, b, ..., a]``, or ``None`` (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 1:
                return path[path.index(child):] + [child]
            if child not in state and (found := visit(child)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_graph_sees_late_and_relative_imports():
    graph = import_graph()
    assert "pasl.weights" in graph["pasl.aeg_files"] and "pasl.aeg" in graph["pasl.aeg_files"]
    assert "pasl.aeg_files" in graph["pasl.csg.encoder"]  # imported inside read_deca_state


def test_no_import_cycle_in_pasl():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


@pytest.mark.parametrize(
    "module, forbidden",
    [
        ("pasl.weights", ("pasl.aeg", "pasl.aeg_files", "pasl.flame", "pasl.flame_files", "pasl.csg")),
        ("pasl.aeg", ("pasl.aeg_files",)),
        ("pasl.flame", ("pasl.flame_files", "pasl.weights", "pasl.safe_pickle")),
    ],
)
def test_lower_layers_do_not_import_upper_ones(module, forbidden):
    imported = import_graph()[module]
    assert not {name for name in imported if name.startswith(forbidden)}, f"{module} imports {sorted(imported)}"


@pytest.mark.parametrize("module", ["pasl.weights", "pasl.aeg_files", "pasl.flame_files", "pasl.csg.encoder"])
def test_imports_first_in_a_fresh_interpreter(module):
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
