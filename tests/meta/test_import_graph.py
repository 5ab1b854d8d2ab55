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
    assert "swift_ext.scoring.results" in graph["swift_ext.scoring.score"]


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


# The architecture, bottom to top: a unit imports only units of lower layers. A unit is a top-level module or
# package of swift_ext, except where a package's modules sit at different heights: scoring.results (the completion
# record every layer reads) and rewards.pool (the worker processes, which the sandbox uses too) are units of their
# own, and each module of bridge is (bridge's low modules read ms-swift's
# registries and arguments for the layers above; its package __init__ installs everything into a run).
LAYERS = [
    {"errors"},
    {"params", "resources", "hookspecs", "io", "extract", "cpu_compat",   # foundation
     "bridge.context", "bridge.grpo", "bridge.infer",  # ms-swift facts with no swift_ext deps
     "rewards.pool"},                             # worker processes with deadlines (no swift_ext deps)
    {"net"},                                      # the one HTTP client, the image encoder
    {"tools"},                                    # tool calls: the one parser and matcher (rewards, convert, agents)
    {"bridge.arguments"},                         # ms-swift's argument classes (the torchvision shim first)
    {"plugins"},                                  # the plugin manager and registries
    {"components", "sandbox"},                    # the one spec -> class mechanism; the code sandbox
    {"scoring.results", "bridge.callbacks"},      # the completion record; callbacks -> ms-swift's callbacks_map
    {"rewards"},                                  # reward families and their runtime (pool, deadlines)
    {"tools.builtin"},                            # agent tools: the Tool base, python, calculator, zoom
    {"agents"},                                   # the tool-calling multi-turn scheduler's logic
    {"bridge.rewards", "bridge.multi_turn"},      # rewards -> ms-swift's orms; the scheduler -> multi_turns
    {"scoring"},                                  # the one scoring path, eval metrics, explain
    {"convert", "runs"},                          # dataset conversion; the run reader
    {"chord"},                                    # CHORD plans and mu shapes
    {"bridge.chord"},                             # CHORD inside ms-swift
    {"bridge"},                                   # install(): everything into a swift run
    {"launch", "report", "testing"},              # launch plans, doctor; the run report; the pytest kit, tiny models
    {"curation"},                                 # filter, audit
    {"trainer"},                                  # callbacks inside swift sft / rlhf
    {"demo"},                                     # the learning demo: drives everything above
    {"cli", "default_plugins", "_swift_plugin", "__init__"},  # entry points
    {"__main__"},
]


def _unit(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return "__init__"
    if parts[:2] in (["scoring", "results"], ["rewards", "pool"]) or (parts[0] == "bridge" and len(parts) > 1):
        return ".".join(parts[:2])
    if parts[0] == "tools" and len(parts) > 1 and parts[1] not in ("parse", "match"):
        return "tools.builtin"                    # the tools themselves; tools.parse / tools.match sit low
    return parts[0]


def test_layers_name_every_unit():
    units = {_unit(m) for m in _modules()}
    named = set().union(*LAYERS)
    assert units - named == set(), "a new top-level module or package needs a place in LAYERS"


def test_every_import_goes_down_the_layers():
    layer = {u: i for i, units in enumerate(LAYERS) for u in units}
    upward = sorted((a, b) for a, bs in _graph().items() for b in bs
                    if _unit(a) != _unit(b) and layer[_unit(b)] >= layer[_unit(a)])
    assert upward == []


def test_the_layer_check_sees_an_upward_import():
    layer = {u: i for i, units in enumerate(LAYERS) for u in units}
    assert layer[_unit("swift_ext.rewards.base")] < layer[_unit("swift_ext.scoring.score")]
    assert _unit("swift_ext.scoring.results") == "scoring.results" and _unit("swift_ext.bridge") == "bridge"
