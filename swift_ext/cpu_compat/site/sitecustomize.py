"""swift-ext's CPU torchvision shim, put on PYTHONPATH by ``swift_ext.cpu_compat.subprocess_env``.

It installs a lazy hook that defines torchvision's missing operator schemas just before torchvision's
first import (nothing happens in processes that never import torchvision), then runs the next
``sitecustomize`` found further on ``sys.path``, if any, so an existing one keeps working.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))

try:
    import swift_ext_tvshim

    swift_ext_tvshim.install()
except Exception as _exc:  # a broken shim must never break interpreter start-up
    sys.stderr.write("swift-ext cpu_compat: shim not installed: %r\n" % (_exc,))


def _chain():
    import importlib.machinery
    import importlib.util

    others = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", others)
    if spec is None or spec.origin is None or os.path.abspath(spec.origin) == os.path.abspath(__file__):
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


try:
    chained = _chain()
except Exception as _exc:
    chained = None
    sys.stderr.write("swift-ext cpu_compat: the next sitecustomize failed: %r\n" % (_exc,))
