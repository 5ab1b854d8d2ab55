"""The one module that talks to ms-swift internals.

ms-swift loads extensions only from files passed as ``--external_plugins``; the file swift-ext ships
(``swift-ext plugin-path``) calls :func:`install`, which puts every swift-ext reward into
``swift.rewards.orms`` (``swift.plugin.orms`` on ms-swift 3.x), every swift-ext callback into
``swift.callbacks.callbacks_map``, and applies a custom CHORD mu schedule when one is selected.

Parametrised reward names (``length_budget:max_tokens=512``) cannot be registered ahead of time, so
:func:`install` also registers each such name it finds in the run's ``--reward_funcs`` (read from the
arguments object that is importing the plugin, or from ``sys.argv``), in ``SWIFT_EXT_REWARDS`` and in
the ``SWIFT_EXT_CONFIG`` file's aliases.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from . import plugins
from .errors import BridgeError, DuplicateNameError

logger = logging.getLogger("swift_ext.bridge")

PLUGIN_FILE = Path(__file__).parent / "_swift_plugin" / "swift_ext_plugin.py"
REWARDS_ENV = "SWIFT_EXT_REWARDS"
_MARK = "_swift_ext_source"


def plugin_path() -> str:
    """Absolute path of the file to pass to ``--external_plugins``."""
    return str(PLUGIN_FILE.resolve())


def swift_version() -> Optional[str]:
    try:
        from importlib.metadata import version

        return version("ms-swift")
    except Exception:
        return None


# -- registries -----------------------------------------------------------------------------------
def _is_v3() -> bool:
    import importlib.util

    if importlib.util.find_spec("swift") is None:
        raise BridgeError("ms-swift is not installed: pip install 'ms-swift>=4.6,<5'")
    return importlib.util.find_spec("swift.rewards") is None and importlib.util.find_spec("swift.plugin") is not None


def get_orms() -> Dict[str, Any]:
    """ms-swift's reward registry: ``swift.rewards.orms`` (4.x) or ``swift.plugin.orms`` (3.x).

    Import errors from inside ms-swift (a broken torchvision, say) propagate unchanged.
    """
    if _is_v3():
        from swift.plugin import orms  # ms-swift 3.x
    else:
        from swift.rewards import orms  # ms-swift 4.x
    return orms


def _orm_bases(reward_cls: type) -> tuple:
    """ms-swift's ORM/AsyncORM base, mixed in so that isinstance checks in ms-swift code hold."""
    from .rewards import is_async

    if _is_v3():
        from swift.plugin import ORM

        AsyncORM = getattr(__import__("swift.plugin", fromlist=["AsyncORM"]), "AsyncORM", ORM)
    else:
        from swift.rewards import AsyncORM, ORM
    return (AsyncORM,) if is_async(reward_cls) else (ORM,)


def swift_reward_class(spec: str, alias: Optional[str] = None) -> type:
    """The class ms-swift will instantiate for ``spec`` (named ``alias`` if given): the configured reward
    plus ms-swift's ORM base."""
    from .rewards import configure

    cls = configure(spec, alias=alias)
    bases = tuple(b for b in _orm_bases(cls) if not issubclass(cls, b))
    if bases:
        cls = type(cls.__name__, (cls, *bases), {"__module__": cls.__module__, "__qualname__": cls.__name__})
    setattr(cls, _MARK, True)
    return cls


def _register_orm(orms: Dict[str, Any], name: str, spec: str) -> bool:
    existing = orms.get(name)
    if existing is not None:
        if getattr(existing, _MARK, False):
            return False  # installed already (plugin imported twice, dataloader replay)
        source = plugins.registry("reward").source(spec.split(":", 1)[0]) \
            if spec.split(":", 1)[0] in plugins.registry("reward") else "swift-ext"
        raise DuplicateNameError("reward", name, f"ms-swift's orms ({getattr(existing, '__module__', '?')})",
                                 source)
    orms[name] = swift_reward_class(spec, alias=name if name != spec else None)
    return True


def requested_reward_specs(argv: Optional[List[str]] = None) -> List[str]:
    """Reward names this run asks for: the importing arguments object, ``argv``, ``SWIFT_EXT_REWARDS``."""
    found: List[str] = []
    found += _reward_funcs_from_caller()
    argv = sys.argv[1:] if argv is None else argv
    for i, tok in enumerate(argv):
        if tok == "--reward_funcs":
            for value in argv[i + 1:]:
                if value.startswith("--"):
                    break
                found.append(value)
        elif tok.startswith("--reward_funcs="):
            found += tok.split("=", 1)[1].split()
    found += (os.environ.get(REWARDS_ENV) or "").split()
    seen, out = set(), []
    for spec in found:
        if isinstance(spec, str) and spec not in seen:
            seen.add(spec)
            out.append(spec)
    return out


def _reward_funcs_from_caller() -> List[str]:
    """``reward_funcs`` of the ms-swift arguments object whose ``__post_init__`` imports the plugin file."""
    frame = sys._getframe(1)
    for _ in range(40):
        if frame is None:
            break
        obj = frame.f_locals.get("self")
        funcs = getattr(obj, "reward_funcs", None) if obj is not None else None
        if isinstance(funcs, (list, tuple)):
            return [f for f in funcs if isinstance(f, str)]
        frame = frame.f_back
    return []


def install_rewards(specs: Iterable[str] = ()) -> List[str]:
    """Register every swift-ext reward, every alias and each parametrised ``spec`` into ms-swift's orms."""
    from .rewards import aliases
    from .params import parse_spec

    orms = get_orms()
    added = []
    registry = plugins.registry("reward")
    for name in registry:
        if _register_orm(orms, name, name):
            added.append(name)
    known_aliases = aliases()
    for alias, spec in known_aliases.items():
        if _register_orm(orms, alias, spec):
            added.append(alias)
    for spec in specs:
        name, params = parse_spec(spec)
        if not params or spec in orms:
            continue
        if name in registry or name in known_aliases:
            if _register_orm(orms, spec, spec):
                added.append(spec)
    return added


# -- third-party ORM files (the seed recipe's plugin files) -----------------------------------------
def load_orm_file(path: str) -> List[str]:
    """Import an ms-swift plugin file the way ``--external_plugins`` does; return the orms names it added."""
    orms = get_orms()
    before = set(orms)
    try:
        from swift.utils import import_external_file
    except ImportError:  # 3.x
        import importlib.util

        def import_external_file(file_path):
            spec = importlib.util.spec_from_file_location(Path(file_path).stem, file_path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)

    if not Path(path).is_file():
        raise BridgeError(f"{path}: no such plugin file")
    import_external_file(os.path.abspath(path))
    return sorted(set(orms) - before)


def get_orm(name: str) -> Any:
    """An ms-swift reward class by its ``--reward_funcs`` name (built-in or from a loaded plugin file)."""
    from .errors import UnknownNameError

    orms = get_orms()
    if name not in orms:
        raise UnknownNameError("reward", name, orms)
    return orms[name]


# -- callbacks ----------------------------------------------------------------------------------------
def install_callbacks() -> List[str]:
    """Register swift-ext trainer callbacks into ``swift.callbacks.callbacks_map`` (``--callbacks NAME``)."""
    registry = plugins.registry("callback")
    if not len(registry):
        return []
    try:
        from swift.callbacks import callbacks_map
    except ImportError:
        logger.warning("swift.callbacks not importable (ms-swift < 4?); swift-ext callbacks not registered")
        return []
    added = []
    for name, cls in registry.items():
        existing = callbacks_map.get(name)
        if existing is cls:
            continue
        if existing is not None:
            raise DuplicateNameError("callback", name, "ms-swift's callbacks_map", registry.source(name))
        callbacks_map[name] = cls
        added.append(name)
    return added


def install(argv: Optional[List[str]] = None) -> Dict[str, List[str]]:
    """Everything the ``--external_plugins`` file does. Safe to call more than once."""
    done = {"rewards": install_rewards(requested_reward_specs(argv)), "callbacks": install_callbacks()}
    logger.info("swift-ext installed into ms-swift: %s", done)
    return done
