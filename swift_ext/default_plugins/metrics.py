"""Built-in offline evaluation metrics for ``swift-ext eval``: accuracy, yes_no, mcq, iou.

The metric classes live in :mod:`swift_ext.scoring.evaluation`; ``reward:SPEC`` uses any registered reward.
"""

from swift_ext.hookspecs import hookimpl


@hookimpl
def register_metrics(register):
    from swift_ext.scoring.evaluation import BUILTIN_METRICS

    for cls in BUILTIN_METRICS.values():
        register(cls)
