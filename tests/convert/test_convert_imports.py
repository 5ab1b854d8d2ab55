"""The import graph of swift_ext.convert, read from the source (ast; cycles: tests/meta/test_import_graph.py):
no private names imported across modules; the rewards package imported once, lazily (--reward)."""

import ast
from pathlib import Path

import swift_ext

PKG = Path(swift_ext.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """(imported module, names, in a function?) for every import statement of ``path``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    funcs = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(f)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], id(node) in funcs
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            names = [a.name for a in node.names]
            if node.level and not node.module:  # from . import x: x may be a module
                for n in names:
                    yield f"{target}.{n}", [], id(node) in funcs
            else:
                yield target, names, id(node) in funcs


def _graph(package: str):
    files = sorted((PKG / package.split(".", 1)[1]).glob("*.py"))
    mods = {_module_name(p): p for p in files}
    graph = {m: set() for m in mods}
    for mod, path in mods.items():
        for target, _, _ in _imports(path):
            if target in mods and target != mod:
                graph[mod].add(target)
    return mods, graph


def test_no_private_names_across_modules():
    mods, _ = _graph("swift_ext.convert")
    bad = [(mod, target, n) for mod, path in mods.items() for target, names, _ in _imports(path)
           if target.startswith("swift_ext") and target != mod for n in names if n.startswith("_")]
    assert bad == []


def test_convert_imports_rewards_only_lazily():
    # negatives score sampled completions; the ifeval format checks a row's instructions with the reward's registry
    mods, _ = _graph("swift_ext.convert")
    uses = [(mod, lazy) for mod, path in mods.items() for target, _, lazy in _imports(path)
            if target == "swift_ext.rewards" or target.startswith("swift_ext.rewards.")]
    assert sorted(uses) == [("swift_ext.convert.instructions", True), ("swift_ext.convert.negatives", True)]
