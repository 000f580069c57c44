"""No import cycles anywhere in ``src/flagstone``: a module never imports, even lazily inside a
function, a module that (through any chain) imports it. Registries are filled from a package's
``__init__`` or by explicit registration instead.

The import graph is read from the source with ``ast`` (every ``import`` statement except those
under ``if TYPE_CHECKING:``), so a cycle hidden in a function body counts too. Importing ``a.b.c``
runs the ``__init__`` of ``a.b`` first, so that is an edge as well, except for the packages the
importing module is itself inside (they are already being imported when it runs).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "flagstone"


def module_names() -> dict[str, Path]:
    """Every module of the package: dotted name -> file (a package is its ``__init__``)."""
    out: dict[str, Path] = {}
    for path in (SRC / ROOT).rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (``from pkg import name`` is ``pkg.name`` when that
    is a module, else ``pkg``)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            edges.update(t for t in targets if t in modules and t != name)
        edges.update(p for t in list(edges) for p in _packages_run_first(t, name) if p in modules)
        graph[name] = edges
    return graph


def _packages_run_first(target: str, importer: str) -> list[str]:
    """The packages whose ``__init__`` an import of ``target`` runs, but ``importer``'s own do not."""
    own = {importer.rsplit(".", n)[0] for n in range(1, importer.count(".") + 1)}
    parts = target.split(".")
    return [p for p in (".".join(parts[:i]) for i in range(1, len(parts))) if p not in own]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_source_has_no_import_cycles() -> None:
    found = cycles(import_graph(module_names()))
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_cycle_finder_sees_a_lazy_cycle_and_relative_imports(tmp_path: Path) -> None:
    # The oracle of the test above: a cycle made by a function-level import is found, a chain is not.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    tree = ast.parse("def f():\n    from flagstone.x import y\nif TYPE_CHECKING:\n    import flagstone.z\n")
    assert [n.module for n in _imports(tree) if isinstance(n, ast.ImportFrom)] == ["flagstone.x"]
    # Importing a module of another package runs that package's __init__; one's own is not counted.
    assert _packages_run_first("flagstone.oversight.schema", "flagstone.audit.keys") == ["flagstone.oversight"]
    assert _packages_run_first("flagstone.engines.profiles", "flagstone.engines.duckdb.sql") == []
