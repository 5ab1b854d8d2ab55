"""Make the CUDA-only torchvision wheel importable next to CPU-only torch, without editing it on disk.

The only torchvision on PyPI that fits torch 2.13 is a CUDA build. With ``torch 2.13.0+cpu`` its
compiled ops cannot load, ``import torchvision`` raises ``RuntimeError: operator torchvision::nms does
not exist`` and, because transformers sees torchvision installed, every ``swift`` command dies. Defining
the two operator schemas torchvision's Python code registers fakes for (``torchvision::nms`` and
``torchvision::qnms``) before its first import fixes that; torchvision's C++ kernels (nms, roi_align,
video decoders) stay unavailable, and nothing on the Qwen-VL image path uses them.

    >>> from swift_ext import cpu_compat
    >>> cpu_compat.needed()   # True only on CPU-only torch + un-loadable torchvision ops  # doctest: +SKIP
    True
    >>> cpu_compat.apply()    # this process: lazy hook before torchvision's first import  # doctest: +SKIP
    'hooked'
    >>> env = cpu_compat.subprocess_env(dict(os.environ))   # child processes: sitecustomize on PYTHONPATH

On a CUDA node :func:`needed` is False and :func:`subprocess_env` returns the environment unchanged.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Dict, Mapping, Optional

SITE_DIR = Path(__file__).resolve().parent / "site"
_SHIM_NAME = "swift_ext_tvshim"

EXPLANATION = ("CPU-only torch with a CUDA build of torchvision: defining torchvision's missing nms/qnms "
               "operator schemas before it is imported (swift_ext.cpu_compat; installed packages untouched)")

_needed: Optional[bool] = None


def shim():
    """The self-contained shim module (the same object ``sitecustomize`` uses, if it ran)."""
    module = sys.modules.get(_SHIM_NAME)
    if module is None:
        spec = importlib.util.spec_from_file_location(_SHIM_NAME, SITE_DIR / f"{_SHIM_NAME}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[_SHIM_NAME] = module
        spec.loader.exec_module(module)
    return module


def needed() -> bool:
    """True where torch is CPU-only AND torchvision is installed but its compiled ops cannot load.

    Imports torch (once; the answer is cached). False when torchvision is not installed, on CUDA/ROCm
    torch, and where torchvision's ops load fine.
    """
    global _needed
    if _needed is None:
        _needed = bool(shim().needed())
    return _needed


def apply() -> str:
    """Fix this process (idempotent). Returns what happened: ``"hooked"``, or the shim's state.

    Where torch is not imported yet this only installs a ``sys.meta_path`` hook that acts just before
    torchvision's first import; otherwise it defines the schemas now (when needed).
    """
    module = shim()
    module.install()
    if module.state is None and module.installed():
        return "hooked"
    return module.state or "torchvision already imported"


def subprocess_env(env: Optional[Mapping[str, str]] = None, force: bool = False) -> Dict[str, str]:
    """A copy of ``env`` (default ``os.environ``) whose PYTHONPATH starts with the shim's ``sitecustomize``.

    Only where :func:`needed` (or ``force``); otherwise the copy is unchanged. An existing
    ``sitecustomize`` further on the path still runs (the shim chains to it).
    """
    out = dict(os.environ if env is None else env)
    if not (force or needed()):
        return out
    site = str(SITE_DIR)
    parts = [p for p in out.get("PYTHONPATH", "").split(os.pathsep) if p and p != site]
    out["PYTHONPATH"] = os.pathsep.join([site, *parts])
    return out


def explanation() -> str:
    """One line for humans saying what the shim does and why."""
    return EXPLANATION
