"""The one package that talks to ms-swift.

ms-swift loads extensions only from files passed as ``--external_plugins``; the file swift-ext ships
(``swift-ext plugin-path``) calls :func:`install`, which reads the run's arguments once
(:class:`~swift_ext.bridge.context.RunContext`) and hands them to each part:

* :mod:`.rewards`: every swift-ext reward, every alias and each parametrised ``--reward_funcs`` name into
  ``swift.rewards.orms``;
* :mod:`.callbacks`: every swift-ext callback and each parametrised ``--callbacks`` name into
  ``swift.callbacks.callbacks_map``;
* :mod:`.multi_turn`: the ``tools`` multi-turn scheduler and each ``--multi_turn_scheduler tools:...`` spec into
  ``swift.rollout.multi_turn.multi_turns``;
* :mod:`.chord`: the ``--chord_*`` checks and the μ schedule lever (:class:`~swift_ext.bridge.chord.ChordRuntime`);
* :mod:`.grpo`: what the evaluation callbacks read from ms-swift's GRPO trainer.

Importing this package imports nothing from ms-swift; each function imports what it needs when called.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .. import cpu_compat
from .callbacks import install_callbacks
from .chord import install_chord
from .context import RunContext
from .multi_turn import install_schedulers
from .rewards import install_rewards

logger = logging.getLogger("swift_ext.bridge")

PLUGIN_FILE = Path(__file__).resolve().parent.parent / "_swift_plugin" / "swift_ext_plugin.py"

#: the context the last :func:`install` read (None before the plugin is loaded)
CURRENT: Optional[RunContext] = None


def plugin_path() -> str:
    """Absolute path of the file to pass to ``--external_plugins``."""
    return str(PLUGIN_FILE)


def swift_version() -> Optional[str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ms-swift")
    except PackageNotFoundError:
        return None


def install(argv: Optional[Sequence[str]] = None, ctx: Optional[RunContext] = None) -> Dict[str, List[str]]:
    """Everything the ``--external_plugins`` file does. Safe to call more than once.

    ``ctx`` defaults to :meth:`RunContext.discover` (the importing arguments object, else ``argv``)."""
    global CURRENT
    cpu_compat.apply()  # CPU-only torch + CUDA torchvision: before anything imports transformers' vision parts
    ctx = ctx or RunContext.discover(argv)
    CURRENT = ctx
    done = {"rewards": install_rewards(ctx.reward_funcs, strict=ctx.env_rewards), "callbacks": install_callbacks(ctx.callbacks),
            "chord": install_chord(ctx), "multi_turns": install_schedulers(ctx.multi_turn_scheduler)}
    logger.info("swift-ext installed into ms-swift (arguments read from %s): %s", ctx.source, done)
    return done


__all__ = ["install", "plugin_path", "swift_version", "RunContext", "PLUGIN_FILE"]
