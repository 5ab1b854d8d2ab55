"""The code sandbox: run untrusted programs (a policy's completions) with one interface and three backends.

- ``local`` (default): a child process per program, isolated with bubblewrap, else ``unshare`` namespaces,
  else resource limits alone (:mod:`.isolation`, :mod:`.local`);
- ``sandbox_fusion`` and ``piston``: the run APIs of those HTTP services (:mod:`.remote`).

>>> from swift_ext.sandbox import Limits, Program, get_sandbox
>>> box = get_sandbox("local")
>>> box.run(Program("print(input()[::-1])", stdin="abc"), Limits(time=10)).stdout
'cba\\n'
"""

from __future__ import annotations

from typing import Any

from .base import Limits, Program, RunResult, Sandbox, default_concurrency
from .isolation import SandboxUnavailable

BACKENDS = ("local", "sandbox_fusion", "piston")


def get_sandbox(backend: str = "local", **options: Any) -> Sandbox:
    """A sandbox backend: ``local`` (options ``isolation``, ``python``, ``tmp``), ``sandbox_fusion`` or
    ``piston`` (options ``url``, ``concurrency``, ``retries``, ``api_key_env``...)."""
    if backend == "local":
        from .local import LocalSandbox

        return LocalSandbox(**options)
    if backend in ("sandbox_fusion", "piston"):
        from .remote import FusionSandbox, PistonSandbox

        return (FusionSandbox if backend == "sandbox_fusion" else PistonSandbox)(**options)
    raise SandboxUnavailable(f"unknown sandbox backend {backend!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["Limits", "Program", "RunResult", "Sandbox", "get_sandbox", "default_concurrency", "BACKENDS",
           "SandboxUnavailable"]
