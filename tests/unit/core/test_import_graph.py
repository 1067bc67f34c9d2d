"""kefu_core's modules import each other without a cycle.

The graph is read from the source (every ``import`` statement: at module level, under
``TYPE_CHECKING`` and inside functions), so a cycle cannot hide behind a lazy import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kefu_core

ROOT = Path(kefu_core.__file__).resolve().parent


def module_names(package: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module of the package below ``package``."""
    found = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative: resolved against the importing module's package
        anchor = module.split(".")
        anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
        base = ".".join([*anchor, base] if base else anchor)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports, wherever the import stands."""
    modules = module_names(package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _imported(node, name, is_package):
                while target and target not in modules:  # a name imported from a module
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(f"{target}."):
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules in order, the first repeated at the end), or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_check_finds_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    # GIVEN a package whose modules import each other, one of them only inside a function
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub.b import thing\n")
    (package / "sub" / "b.py").write_text("def thing():\n    from pkg import a\n    return a\n")
    (package / "c.py").write_text("from .a import thing\n")
    # WHEN its graph is checked
    graph = import_graph(package)
    # THEN both edges are seen (absolute and relative imports alike) and the cycle is found
    assert graph["pkg.c"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.a"]


def test_kefu_core_has_no_import_cycle() -> None:
    # GIVEN every module of kefu_core and every import in it
    graph = import_graph(ROOT)
    assert "kefu_core.deps" in graph and "kefu_core.product.handoff.moves" in graph
    # WHEN cycles are looked for THEN there is none
    assert find_cycle(graph) is None


# What each package of kefu_core may import at run time (docs/design-notes.md, "How kefu_core is
# arranged"); imports under TYPE_CHECKING only name types. gateway, admin, local, the
# composition root's callers and the top-level entry points (cli, lambda_runtime) stand above.
MAY_IMPORT = {
    "infra": set(),
    "security": {"infra"},
    "chat": {"infra", "security"},
    "product": {"chat", "security", "infra"},
    "answers": {"product", "chat", "security", "infra"},
    "deps": {"answers", "product", "chat", "security", "infra"},
    "flows": {"deps", "answers", "product", "chat", "security", "infra"},
}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except the bodies of ``if TYPE_CHECKING:`` blocks."""
    found: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        found.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return found


def package_edges(package: Path) -> dict[str, set[str]]:
    """Top-level part of kefu_core (a sub-package or a top-level module) -> the parts it
    imports at run time."""
    modules = module_names(package)
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        part = name.split(".")[1] if "." in name else name
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _imported(node, name, path.name == "__init__.py"):
                if target.startswith("kefu_core.") and (other := target.split(".")[1]) != part:
                    if f"kefu_core.{other}" in modules:
                        edges.setdefault(part, set()).add(other)
    return edges


def test_each_package_imports_only_the_layers_below_it() -> None:
    # GIVEN the run-time imports between kefu_core's packages
    edges = package_edges(ROOT)
    assert edges["flows"] >= {"chat", "product"}  # the scan sees imports at all
    # WHEN each is compared with the table of the design notes
    beyond = {part: sorted(edges.get(part, set()) - allowed)
              for part, allowed in MAY_IMPORT.items()}
    # THEN no package reaches above its layer
    assert beyond == {part: [] for part in MAY_IMPORT}
