"""Rollout-server checks used by the runner: free ports, proxy-free ``/health`` polling, real-port detection.

ms-swift's ``swift rollout`` moves *silently* to the next free port when its port is busy
(``find_free_port`` in ``DeployArguments.__post_init__``) and the trainer then opens an NCCL group on
port 51216+; so both ports are checked before starting, and the port uvicorn really bound is read back
from the server's log.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request
from typing import Callable, Iterable, List, Optional

from ..errors import SwiftExtError

UVICORN_PORT = re.compile(r"Uvicorn running on https?://\S+?:(\d+)")
# what a crash log says -> what to do about it
HINTS = (
    (re.compile(r"No module named '?(vllm|deepspeed)\b"),
     "{0} is not installed in the environment that runs swift: pip install 'swift-ext[gpu]' "
     "(installs vllm and deepspeed; needs Linux with CUDA), or run GRPO without vLLM: "
     "--set rollout.mode=none -- --use_vllm false"),
)


def crash_hint(log_text: str) -> str:
    """An actionable hint for a known cause in a crash log, or ''.

    >>> print(crash_hint("ModuleNotFoundError: No module named 'vllm'").split(":")[0])
    vllm is not installed in the environment that runs swift
    """
    for pattern, hint in HINTS:
        m = pattern.search(log_text)
        if m:
            return hint.format(m.group(1))
    return ""


class RolloutError(SwiftExtError):
    """The rollout server could not be started or never became healthy."""


class PortBusy(RolloutError):
    pass


class ServerCrashed(RolloutError):
    pass


class ServerTimeout(RolloutError):
    pass


def port_free(port: int, host: str = "") -> bool:
    """True when ``port`` can be bound (the test ms-swift's own ``find_free_port`` uses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports_free(ports: Iterable[int], who: str = "rollout server") -> None:
    busy: List[int] = [p for p in ports if not port_free(p)]
    if busy:
        p = busy[0]
        raise PortBusy(f"port {p} is already in use, so the {who} cannot start there (ms-swift would move it "
                       f"silently to another port; the NCCL weight-sync group uses 51216+). Free it "
                       f"(`ss -ltnp | grep :{p}` shows who holds it) or choose another with "
                       f"--set rollout.port=N / --set rollout.group_port=N")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def healthy(url: str, timeout: float = 2.0) -> bool:
    """One ``GET /health`` without any proxy (env proxies break localhost polling)."""
    try:
        with _NO_PROXY_OPENER.open(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_healthy(url: str, timeout: float, *, alive: Optional[Callable[[], Optional[int]]] = None,
                 log_tail: Callable[[], str] = lambda: "", url_now: Optional[Callable[[], str]] = None,
                 interval: float = 1.0, name: str = "rollout server") -> str:
    """Poll ``url`` until 200. ``alive()`` returns the exit code once the server process has ended: a crash
    is reported at once with the log tail (not as a timeout). ``url_now()`` may return an updated URL (the
    real port read from the log). Returns the URL that answered."""
    deadline = time.monotonic() + timeout
    while True:
        current = url_now() if url_now else url
        if healthy(current):
            return current
        code = alive() if alive else None
        if code is not None:
            tail = log_tail()
            hint = crash_hint(tail)
            raise ServerCrashed(f"the {name} exited with code {code} before becoming healthy; "
                                f"last log lines:\n{tail}" + (f"\nhint: {hint}" if hint else ""))
        if time.monotonic() >= deadline:
            raise ServerTimeout(f"the {name} did not answer {current} within {timeout:.0f}s "
                                f"(raise --set rollout.health_timeout=SECONDS for big models); "
                                f"last log lines:\n{log_tail()}")
        time.sleep(interval)


def port_from_log(line: str) -> Optional[int]:
    """The port uvicorn reports in ms-swift's rollout log.

    >>> port_from_log("INFO:     Uvicorn running on http://127.0.0.1:8001 (Press CTRL+C to quit)")
    8001
    """
    m = UVICORN_PORT.search(line)
    return int(m.group(1)) if m else None
