"""The package's import structure, read from its source with ``ast``: no cycles between modules, and only
``swift_ext.bridge`` imports ms-swift (``swift``)."""

import ast
from pathlib import Path

import swift_ext

PKG = Path(swift_ext.__file__).resolve().parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in PKG.rglob("*.py") if "_data" not in p.parts and "site" not in p.parts}


def _imports(name: str, path: Path, known) -> set:
    """Package modules ``name`` imports anywhere in its body (module level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                stem = base[:len(base) - node.level + 1] if node.level > 1 else base
                mod = ".".join(stem + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def _external(path: Path) -> set:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out


def _graph():
    mods = _modules()
    return {name: {t for t in _imports(name, path, mods) if not name.startswith(t + ".")}
            for name, path in mods.items()}


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    graph = _graph()
    assert "swift_ext.bridge.rewards" in graph and "swift_ext.plugins" in graph["swift_ext.bridge.rewards"]
    assert "swift_ext.results" in graph["swift_ext.scoring"]


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_between_package_modules():
    # a package's __init__ re-exporting its own submodules is not a cycle of the design
    graph = _graph()
    assert _cycles(graph) == []


def test_only_the_bridge_imports_ms_swift():
    offenders = sorted(name for name, path in _modules().items()
                       if "swift" in _external(path) and not name.startswith("swift_ext.bridge"))
    assert offenders == []
