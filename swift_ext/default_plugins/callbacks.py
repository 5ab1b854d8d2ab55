"""Built-in trainer callbacks: reward_eval, train_sanity, sample_logger, chord_mu, plateau_stop.

The classes live in :mod:`swift_ext.trainer.callbacks`; the swift-ext plugin file registers them into
``swift.callbacks.callbacks_map`` (select with ``--callbacks NAME[:key=value,...]``).
"""

from swift_ext.hookspecs import hookimpl


@hookimpl
def register_callbacks(register):
    from swift_ext import cpu_compat

    cpu_compat.apply()  # CPU-only torch + CUDA torchvision wheel: transformers would fail to import otherwise
    from swift_ext.trainer.callbacks import BUILTIN_CALLBACKS

    for cls in BUILTIN_CALLBACKS.values():
        register(cls)
