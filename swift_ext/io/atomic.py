"""Atomic outputs: a temporary file next to the target, renamed into place only on success; temp files of dead
runs swept."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import List, Optional


# -- atomic outputs ---------------------------------------------------------------------------------
def _host() -> str:
    """This host and PID namespace (two containers may share a host name, not PIDs): ``node1-4026531836``."""
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0])[:40] or "host"
    try:
        ns = re.sub(r"\D", "", os.readlink("/proc/self/ns/pid"))
    except OSError:
        ns = ""
    return f"{host}-{ns}" if ns else host


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


#: a temp file whose name carries no owner (written before owners were recorded) is stale after this long
#: without a write
STALE_UNOWNED_SECONDS = 3600


def sweep_stale_temps(path: str) -> List[str]:
    """Delete the temporary files that dead runs left next to ``path`` (``.NAME.PID@HOST.XXXX.tmp``, the
    owner a process of this host and PID namespace that no longer exists; or an owner-less ``.NAME.XXXX.tmp`` untouched for
    :data:`STALE_UNOWNED_SECONDS`). Files of live runs and of other hosts are left alone. Returns the paths
    deleted."""
    p = Path(path)
    prefix, host = f".{p.name}.", _host()
    removed = []
    try:
        names = [n for n in os.listdir(p.parent or ".") if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return removed
    now = time.time()
    for name in names:
        middle = name[len(prefix):-4]
        m = re.fullmatch(r"(\d+)@([A-Za-z0-9_-]+)\.[^.]+", middle)
        full = p.parent / name
        if m:
            if m.group(2) != host or _pid_alive(int(m.group(1))):
                continue
        else:
            if not re.fullmatch(r"[a-z0-9_]{8}", middle):  # tempfile's 8 random characters
                continue  # not a name this module writes
            try:
                if now - full.stat().st_mtime < STALE_UNOWNED_SECONDS:
                    continue
            except OSError:
                continue
        with contextlib.suppress(OSError):
            full.unlink()
            removed.append(str(full))
    return removed


class _Transaction:
    """``with`` commits on success and aborts (nothing left behind) on any exception."""

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class AtomicFile(_Transaction):
    """A temporary file next to ``path`` (``.fh``), renamed into place by ``commit()``, deleted by ``abort()``.
    As a context manager: commit on success, abort on an exception.

    The temporary file is ``.NAME.PID@HOST.XXXX.tmp``: a run killed without a chance to clean up (SIGKILL,
    power loss) leaves it, and the next writer of the same ``path`` deletes it (``sweep=True``,
    :func:`sweep_stale_temps`). Catchable signals are cleaned up by :func:`signals_raise` + ``abort()``."""

    def __init__(self, path: str, mode: str = "wb", encoding: Optional[str] = None, sweep: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if sweep:
            sweep_stale_temps(str(self.path))
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.{os.getpid()}@{_host()}.", suffix=".tmp",
                                        dir=str(self.path.parent))
        if "b" in mode:
            self.fh = os.fdopen(fd, mode, buffering=1 << 20)
        else:
            self.fh = os.fdopen(fd, mode, encoding=encoding or "utf-8")

    def commit(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self.fh.close()
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", encoding: str = "utf-8"):
    """Write to a temporary file next to ``path`` and rename it into place only on success."""
    with AtomicFile(path, mode, encoding) as f:
        yield f.fh


def save_png(fig, path: str) -> str:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)
    return path
