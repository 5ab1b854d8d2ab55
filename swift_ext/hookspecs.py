"""Hook specifications. Plugins implement them with ``@swift_ext.hookimpl``.

Every hook is ``register_*(register)``: the plugin calls ``register(name, obj)`` once per thing it
provides. The host's ``register`` validates the object and refuses a name that is already taken,
naming both sources (see :mod:`swift_ext.plugins`).
"""

import pluggy

hookspec = pluggy.HookspecMarker("swift_ext")
hookimpl = pluggy.HookimplMarker("swift_ext")


@hookspec
def register_rewards(register):
    """Register reward classes: ``register(RewardSubclass)`` (registered under its ``name``) or
    ``register(name, RewardSubclass)``."""


@hookspec
def register_converters(register):
    """Register dataset readers/writers: ``register(name, converter)`` (see ``swift_ext.convert``)."""


@hookspec
def register_negatives(register):
    """Register DPO negative generators (rule-based corruptions): ``register(name, callable)``."""


@hookspec
def register_schedules(register):
    """Register CHORD mu schedules: ``register(name, fn(step, total_steps, **params) -> float)``."""


@hookspec
def register_callbacks(register):
    """Register ms-swift trainer callbacks: ``register(name, TrainerCallbackClass)`` (selected with ``--callbacks``);
    an ``ExtCallback`` subclass may be registered as ``register(cls)`` under its ``name``."""


@hookspec
def register_metrics(register):
    """Register offline evaluation metrics for ``swift-ext eval``: ``register(MetricSubclass)`` (under its
    ``name``) or ``register(name, MetricSubclass)``."""


@hookspec
def register_runners(register):
    """Register code-sandbox language runners: ``register(runner)`` (an instance of
    ``swift_ext.sandbox.runners.Runner``, registered under its ``name``) or ``register(name, runner)``."""


@hookspec
def register_tools(register):
    """Register agent tools (``swift_ext.tools.base.Tool`` subclasses) for the ``tools`` multi-turn scheduler:
    ``register(ToolSubclass)`` (under its ``name``) or ``register(name, ToolSubclass)``."""


@hookspec
def register_commands(cli):
    """Add click commands to the ``swift-ext`` CLI group ``cli``."""
