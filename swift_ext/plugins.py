"""The plugin manager and the registries its hooks fill.

Built-in plugins (``swift_ext.default_plugins.*``) register through the same hooks as third-party
packages, which are found through the entry-point group ``swift_ext``. Loading is lazy and happens
once. ``SWIFT_EXT_LOAD_PLUGINS=a,b`` loads only those entry points (empty: none);
``SWIFT_EXT_DISABLED_PLUGINS=a,b`` blocks them. Inside a test suite that sets ``sys._called_from_test``
(swift-ext's own does), entry points load only when ``SWIFT_EXT_LOAD_PLUGINS`` names them.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional, Tuple

import pluggy

from . import hookspecs
from .errors import DuplicateNameError, PluginError, UnknownNameError

ENTRY_POINT_GROUP = "swift_ext"

DEFAULT_PLUGINS = (
    "swift_ext.default_plugins.rewards",
    "swift_ext.default_plugins.converters",
    "swift_ext.default_plugins.schedules",
    "swift_ext.default_plugins.callbacks",
    "swift_ext.default_plugins.metrics",
    "swift_ext.default_plugins.runners",
    "swift_ext.default_plugins.tools",
)

# ms-swift 4.6's own `swift.rewards.orms` keys: a swift-ext reward may not shadow them.
SWIFT_BUILTIN_REWARDS = frozenset(
    {"toolbench", "math", "accuracy", "format", "react_format", "cosine", "repetition", "soft_overlong"}
)

@dataclass(frozen=True)
class Kind:
    """One kind of registered thing: the hook that fills its registry, the base class(es) a registered
    object must derive from (``instance=True``: be an instance of), and an extra check. Classes and checks
    are named ``"module:attr"`` and imported on first registration, so this table imports nothing."""

    hook: str
    base: Tuple[str, ...] = ()
    instance: bool = False
    check: Optional[str] = None


KINDS: Dict[str, Kind] = {
    "reward": Kind("register_rewards", ("swift_ext.rewards:Reward",), check="swift_ext.components:check_component"),
    "converter": Kind("register_converters", ("swift_ext.convert.registry:InputFormat",
                                              "swift_ext.convert.registry:Target"), instance=True,
                      check="swift_ext.convert.registry:check_converter"),
    "negative": Kind("register_negatives", check="swift_ext.convert.registry:check_negative"),
    "schedule": Kind("register_schedules", check="swift_ext.chord:check_schedule"),
    "callback": Kind("register_callbacks", check="swift_ext.components:check_callback"),
    "metric": Kind("register_metrics", ("swift_ext.scoring.evaluation:Metric",), check="swift_ext.components:check_component"),
    "runner": Kind("register_runners", ("swift_ext.sandbox.runners:Runner",), instance=True,
                   check="swift_ext.sandbox.runners:check_runner"),
    "tool": Kind("register_tools", ("swift_ext.tools.base:Tool",), check="swift_ext.components:check_component"),
}
HOOK_OF_KIND = {kind: k.hook for kind, k in KINDS.items()}


def _resolve(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def validate(kind: str, name: str, obj: Any) -> None:
    """Check what a plugin registers as ``kind`` against the :data:`KINDS` table (PluginError names it)."""
    spec = KINDS[kind]
    if spec.base:
        bases = tuple(_resolve(b) for b in spec.base)
        ok = isinstance(obj, bases) if spec.instance else isinstance(obj, type) and issubclass(obj, bases)
        if not ok:
            wanted = " or ".join(f"{'an instance' if spec.instance else 'a subclass'} of "
                                 f"{b.replace(':', '.')}" for b in spec.base)
            raise PluginError(f"{kind} {name!r} must be {wanted}, got {obj!r}")
    if spec.check:
        _resolve(spec.check)(name, obj)


_pm: Optional[pluggy.PluginManager] = None
_registries: Dict[str, "Registry"] = {}


class Registry:
    """Name -> object, remembering which plugin registered each name."""

    def __init__(self, kind: str, reserved: Optional[Dict[str, str]] = None):
        self.kind = kind
        self._items: Dict[str, Any] = {}
        self._sources: Dict[str, str] = dict(reserved or {})

    def add(self, name: str, obj: Any, source: str) -> None:
        if not isinstance(name, str) or not name or any(c in name for c in " :,=\t\n"):
            raise PluginError(f"{source} registered a {self.kind} with an invalid name {name!r} "
                              f"(no spaces, ':', ',' or '=')")
        if name in self._sources:
            raise DuplicateNameError(self.kind, name, self._sources[name], source)
        validate(self.kind, name, obj)
        self._items[name] = obj
        self._sources[name] = source

    def get(self, name: str) -> Any:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._items) from None

    def source(self, name: str) -> str:
        return self._sources[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> Iterator[Tuple[str, Any]]:
        return ((n, self._items[n]) for n in sorted(self._items))


def _split_env(var: str) -> Optional[list]:
    value = os.environ.get(var)
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def get_pm() -> pluggy.PluginManager:
    """The plugin manager, with built-ins and entry-point plugins loaded (once)."""
    global _pm
    if _pm is not None:
        return _pm
    pm = pluggy.PluginManager("swift_ext")
    pm.add_hookspecs(hookspecs)
    for name in _split_env("SWIFT_EXT_DISABLED_PLUGINS") or []:
        pm.set_blocked(name)  # built-in module names and entry-point names alike
    for modname in DEFAULT_PLUGINS:
        if not pm.is_blocked(modname):
            pm.register(importlib.import_module(modname), name=modname)
    allow = _split_env("SWIFT_EXT_LOAD_PLUGINS")
    if allow is None and getattr(sys, "_called_from_test", False):
        allow = []  # a test suite's own process: installed plugins stay out unless listed (llm's rule)
    for ep in _entry_points(allow):
        _load_entry_point(pm, ep)
    _check_hooks(pm)
    _pm = pm
    return pm


def _entry_points(allow: Optional[list]) -> list:
    from importlib.metadata import entry_points

    eps = list(entry_points(group=ENTRY_POINT_GROUP))
    return eps if allow is None else [ep for ep in eps if ep.name in allow]


def _load_entry_point(pm: pluggy.PluginManager, ep: Any) -> None:
    """Load one entry-point plugin; anything it raises (SystemExit too) becomes one PluginError naming it."""
    dist = getattr(ep, "dist", None)
    where = f"plugin {ep.name!r} ({ep.value}" + (f", from {dist.name} {dist.version})" if dist else ")")
    try:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=ep.name)
    except SystemExit as exc:
        raise PluginError(f"the swift_ext entry-point {where} called sys.exit({exc.code!r}) while loading; "
                          f"uninstall it or block it with SWIFT_EXT_DISABLED_PLUGINS={ep.name}") from None
    except Exception as exc:  # a broken plugin must fail loudly, with its name, in one line
        raise PluginError(f"a swift_ext entry-point plugin failed to load: {where}: "
                          f"{type(exc).__name__}: {exc}; block it with SWIFT_EXT_DISABLED_PLUGINS={ep.name}") \
            from None


def _check_hooks(pm: pluggy.PluginManager) -> None:
    """Every hook a plugin implements must be a swift-ext hook (a typo'd name is named, with the nearest)."""
    import difflib

    known = [name for name in dir(hookspecs) if name.startswith("register_")]
    for plugin in pm.get_plugins():
        for attr in dir(plugin):
            impl = getattr(plugin, attr, None)
            if getattr(impl, "swift_ext_impl", None) is None or attr in known:
                continue
            near = difflib.get_close_matches(attr, known, n=1)
            raise PluginError(f"{plugin_source(pm, plugin)} implements an unknown hook {attr!r}"
                              + (f"; did you mean {near[0]!r}?" if near else "")
                              + f" (swift-ext hooks: {', '.join(known)})")
    pm.check_pending()


def plugin_source(pm: pluggy.PluginManager, plugin: Any) -> str:
    name = pm.get_name(plugin)
    if name in DEFAULT_PLUGINS:
        return f"swift-ext built-in ({name})"
    for p, dist in pm.list_plugin_distinfo():
        if p is plugin:
            return f"plugin {name!r} from {dist.project_name} {dist.version}"
    return f"plugin {name!r}"


def registry(kind: str) -> Registry:
    """The registry of ``kind`` ('reward', 'converter', 'schedule', ...), filled on first use."""
    if kind in _registries:
        return _registries[kind]
    pm = get_pm()
    reserved = {n: "ms-swift's built-in rewards (swift.rewards.orms)" for n in SWIFT_BUILTIN_REWARDS} \
        if kind == "reward" else None
    reg = Registry(kind, reserved)
    hook = getattr(pm.hook, KINDS[kind].hook)
    # call each implementation alone, so that every registered name knows its plugin
    for impl in reversed(hook.get_hookimpls()):
        source = plugin_source(pm, impl.plugin)

        def register(name, obj=None, _source=source):
            if obj is None:  # register(cls): the registered name is the class's own
                name, obj = getattr(name, "name", None), name
            reg.add(name, obj, _source)

        try:
            impl.function(register=register)
        except (PluginError, UnknownNameError):
            raise
        except Exception as exc:
            raise PluginError(f"{source} failed in {KINDS[kind].hook}: {exc!r}") from exc
    _registries[kind] = reg
    return reg


def reset() -> None:
    """Forget loaded plugins and registries (tests, or after installing a plugin in-process)."""
    global _pm
    _pm = None
    _registries.clear()


def reset_registries() -> None:
    """Rebuild the registries from the loaded plugins on next use (after registering a plugin in-process)."""
    _registries.clear()


def list_plugins() -> list:
    """[{name, source, hooks}] for every loaded plugin."""
    pm = get_pm()
    out = []
    for plugin in pm.get_plugins():
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        out.append({"name": pm.get_name(plugin), "source": plugin_source(pm, plugin), "hooks": hooks})
    return sorted(out, key=lambda d: d["name"])
