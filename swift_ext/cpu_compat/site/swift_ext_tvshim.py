"""Self-contained torchvision-on-CPU shim (no swift_ext import, so it also works from ``sitecustomize``).

The torchvision wheel that fits torch 2.13 on PyPI is a CUDA build: with CPU-only torch its ``_C``
extension cannot load, and ``torchvision/_meta_registrations.py`` then fails on its unguarded
``register_fake("torchvision::nms")`` / ``("torchvision::qnms")`` with
``RuntimeError: operator torchvision::nms does not exist``. Defining those two operator *schemas*
before torchvision's first import is enough for ``import torchvision`` (and everything transformers /
qwen_vl_utils use from it) to work; the C++ kernels stay unavailable.

:func:`install` puts a finder at the front of ``sys.meta_path`` that acts once, just before the first
``import torchvision``, so a process that never imports torchvision never pays for importing torch.
It defines the schemas only where torchvision's ops really cannot load (it is a no-op on a CUDA node).

    >>> import swift_ext_tvshim
    >>> swift_ext_tvshim.install()          # idempotent
    >>> import torchvision                  # works on CPU-only torch + CUDA torchvision wheel
"""

import importlib.machinery
import importlib.util
import sys

# the schemas torchvision's C++ library declares (csrc/ops/nms.cpp, strings of _C.so)
SCHEMAS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
MARK = "_swift_ext_tvshim"

# what happened in this process: None (not decided yet), "defined", "not-needed", "no-torchvision", "error: ..."
state = None


def _extension_path(pkg_dir):
    finder = importlib.machinery.FileFinder(
        pkg_dir, (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES))
    spec = finder.find_spec("_C")
    return spec.origin if spec is not None else None


def _torchvision_dir():
    """torchvision's package folder, found without importing it (None when not installed)."""
    spec = importlib.machinery.PathFinder.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def _has_schema(torch, name):
    try:
        torch._C._dispatch_find_schema_or_throw("torchvision::" + name, "")
        return True
    except RuntimeError:
        return False


def ops_loadable(torch, pkg_dir):
    """True when torchvision's compiled ops load with this torch (what torchvision itself tries first)."""
    path = _extension_path(pkg_dir)
    if path is None:
        return False
    try:
        torch.ops.load_library(path)
        return True
    except (ImportError, OSError):
        return False


def cpu_only(torch):
    return getattr(torch.version, "cuda", None) is None and getattr(torch.version, "hip", None) is None


def needed():
    """True where torch is CPU-only and torchvision is installed but its compiled ops cannot load."""
    pkg_dir = _torchvision_dir()
    if pkg_dir is None:
        return False
    import torch

    if state == "defined":
        return True
    return cpu_only(torch) and not ops_loadable(torch, pkg_dir)


def define_schemas():
    """Define the missing operator schemas now (imports torch). Returns the new ``state``."""
    global state
    try:
        pkg_dir = _torchvision_dir()
        if pkg_dir is None:
            state = "no-torchvision"
            return state
        import torch

        if not cpu_only(torch) or ops_loadable(torch, pkg_dir):
            state = "not-needed"
            return state
        for name, schema in SCHEMAS.items():
            if not _has_schema(torch, name):
                torch.library.define("torchvision::" + name, schema)
        state = "defined"
    except Exception as exc:  # never break the import that triggered us; torchvision reports its own error
        state = "error: %s: %s" % (type(exc).__name__, exc)
    return state


class TorchvisionShimFinder:
    """A meta-path finder that never finds anything: it runs :func:`define_schemas` before torchvision loads."""

    _swift_ext_tvshim = True

    def __init__(self):
        self._busy = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torchvision" or self._busy:
            return None
        self._busy = True
        try:
            define_schemas()
        finally:
            self._busy = False
            uninstall()
        return None  # let the normal finders import torchvision

    def find_module(self, fullname, path=None):  # pragma: no cover - legacy protocol
        return None


def installed():
    return any(getattr(f, MARK, False) for f in sys.meta_path)


def install():
    """Arrange for the shim to run before torchvision's first import (or now, if it is half-imported)."""
    if state is not None or installed():
        return
    if "torchvision" in sys.modules:  # already imported: nothing a schema can fix any more
        return
    if "torchvision.extension" in sys.modules or "torch" in sys.modules:
        define_schemas()  # torch is loaded anyway: do it eagerly, cheaper than a hook
        return
    sys.meta_path.insert(0, TorchvisionShimFinder())


def uninstall():
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, MARK, False)]
