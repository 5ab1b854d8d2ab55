"""swift-ext: rewards, dataset converters, CHORD schedules, evaluation hooks and launchers for ms-swift 4.x.

Importing this package is cheap: it does not import ``swift``, ``torch`` or ``transformers``.
"""

from .hookspecs import hookimpl

__version__ = "0.2.0"
__all__ = ["hookimpl", "__version__"]
