"""The ridge package's modules import one another in one direction only (issue 29), and the sweep uses the
ridge package's public names, not its private modules.

Imports are read from the source (module level and inside functions), so a circle hidden in a function body
counts too.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path, package):
    """Modules of the project that ``path`` imports, as dotted names (``encoding.ridge._folds``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found |= {module} | {f"{module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def _graph(package):
    folder = ROOT.joinpath(*package.split("."))
    modules = {f"{package}.{path.stem}": path for path in folder.glob("*.py") if path.stem != "__init__"}
    return {name: {m for m in _imports(path, package) if m in modules and m != name}
            for name, path in modules.items()}


def _cycle(graph):
    """One import circle of ``graph`` as a list of modules, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_the_cycle_finder_sees_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_ridge_package_has_no_import_circle():
    graph = _graph("encoding.ridge")
    assert {"encoding.ridge._folds", "encoding.ridge._kernel", "encoding.ridge._fast"} <= set(graph)
    assert _cycle(graph) is None
    # the fold library is below both forms, and the driver above them
    assert "encoding.ridge._fast" not in graph["encoding.ridge._kernel"]
    assert "encoding.ridge._kernel" in graph["encoding.ridge._fast"]


def test_the_sweep_uses_no_private_ridge_module():
    for path in (ROOT / "encoding" / "sweep").glob("*.py"):
        imported = _imports(path, "encoding.sweep")
        private = sorted(m for m in imported if m.startswith("encoding.ridge._"))
        assert private == [], (path.name, private)
