"""What the ``local`` backend can isolate on this machine, and the command line that does it.

Three modes, the strongest available chosen once per process (``isolation=auto``):

``bwrap``
    bubblewrap: new mount, PID, network, IPC and UTS namespaces. The program sees a read-only ``/usr`` (and
    the interpreter's own folders), an empty ``/tmp``, its working directory and nothing else of the file
    system; no network (not even the host's loopback); every process it starts dies with it (the PID
    namespace ends with the program).
``unshare``
    util-linux ``unshare``: new network and PID namespaces (plus a user namespace when not root). No network,
    every process dies with the program; the file system is the host's (read and written as the run's user).
``rlimits``
    resource limits alone: no network or file-system isolation. One warning says so.

Every mode adds: resource limits (``prlimit``: CPU seconds, address space, processes, file size, open files,
no core files), an empty environment, a fresh working directory and, when swift-ext runs as root, a user id
of its own per concurrent run (``setpriv``), so the process limit counts only that run's processes, the run
cannot signal the trainer, and anything it leaves behind (processes, files in ``/tmp``) is found by owner.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import SwiftExtError

logger = logging.getLogger("swift_ext.sandbox")

MODES = ("bwrap", "unshare", "rlimits")
#: where the working directory appears inside a bwrap sandbox
SANDBOX_CWD = "/sandbox"
#: first user id handed to runs when swift-ext runs as root (one id per process and concurrent run)
UID_BASE = 1 << 30
_SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives")


class SandboxUnavailable(SwiftExtError):
    """The isolation asked for cannot run on this machine."""


@dataclass(frozen=True)
class Isolation:
    """The mode in force and what it isolates (see the module docstring)."""

    mode: str
    filesystem: bool
    network: bool
    processes: bool
    drop_user: bool
    tools: Dict[str, str] = field(default_factory=dict)
    notes: Tuple[str, ...] = ()

    @property
    def missing(self) -> List[str]:
        out = []
        if not self.filesystem:
            out.append("the file system (the program can read what the run's user can read)")
        if not self.network:
            out.append("the network (the program can open connections)")
        if not self.processes:
            out.append("processes (a program that starts its own session can outlive the run)")
        return out

    def describe(self) -> str:
        done = [w for w, ok in (("file system", self.filesystem), ("network", self.network),
                                ("processes", self.processes)) if ok]
        who = "a user id of its own per run" if self.drop_user else "the trainer's user"
        text = (f"{self.mode}: isolates {', '.join(done) or 'nothing beyond resource limits'}; "
                f"rlimits (CPU, memory, processes, file size, open files, no core); empty environment; "
                f"runs as {who}")
        return text + "".join(f"; {n}" for n in self.notes)

    def as_dict(self) -> Dict[str, object]:
        return {"mode": self.mode, "filesystem": self.filesystem, "network": self.network,
                "processes": self.processes, "own_user": self.drop_user, "missing": self.missing,
                "notes": list(self.notes), "describe": self.describe()}


def is_root() -> bool:
    return os.geteuid() == 0


# -- interpreters ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def interpreter_dirs(exe: str) -> Tuple[str, ...]:
    """Folders an interpreter needs besides ``/usr`` (its prefixes: a venv, a pyenv build), for bwrap to
    mount read-only. Asked of the interpreter itself once."""
    real = os.path.realpath(exe)
    dirs = {os.path.dirname(os.path.dirname(real)), os.path.dirname(os.path.dirname(os.path.abspath(exe)))}
    try:
        out = subprocess.run([exe, "-I", "-c", "import sys, json; print(json.dumps([sys.prefix, "
                              "sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]))"],
                             capture_output=True, text=True, timeout=30, env={"PATH": os.defpath})
        dirs.update(json.loads(out.stdout))
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    keep = sorted(d for d in {os.path.realpath(d) for d in dirs if d}
                  if os.path.isdir(d) and not _under(d, "/usr") and d != "/")
    return tuple(d for d in keep if not any(d != o and _under(d, o) for o in keep))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def reachable_by_others(path: str) -> bool:
    """Whether a user other than the owner may execute ``path`` (every folder on the way searchable)."""
    path = os.path.realpath(path)
    parts = path.split("/")
    for i in range(2, len(parts) + 1):
        try:
            mode = os.stat("/".join(parts[:i]) or "/").st_mode
        except OSError:
            return False
        if not mode & stat.S_IXOTH:
            return False
    return True


# -- command lines ---------------------------------------------------------------------------------
def rlimit_args(prlimit: str, cpu: int, memory_mb: int, processes: int, file_mb: int, open_files: int) -> List[str]:
    mb = 1 << 20
    return [prlimit, f"--cpu={cpu}", f"--as={memory_mb * mb}", f"--nproc={processes}", f"--fsize={file_mb * mb}",
            f"--nofile={open_files}", "--core=0", "--"]


def setpriv_args(setpriv: str, uid: int) -> List[str]:
    return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


def _bind_with_parents(path: str, made: set) -> List[str]:
    """``--dir`` (mode 0755) for each missing parent of ``path`` (bwrap makes them 0700), then the bind."""
    out: List[str] = []
    parts = path.strip("/").split("/")
    for i in range(1, len(parts)):
        parent = "/" + "/".join(parts[:i])
        if parent not in made:
            out += ["--perms", "0755", "--dir", parent]
            made.add(parent)
    made.add(path)
    return out + ["--ro-bind", path, path]


def bwrap_args(bwrap: str, workdir: str, ro_dirs: Sequence[str]) -> List[str]:
    """bubblewrap's part of the command: namespaces, the read-only system, the working directory."""
    args = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try"]
    if is_root():                       # no user namespace: setpriv inside drops to the run's own user id
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--disable-userns"]
    args += ["--ro-bind", "/usr", "/usr"]
    made = {"/usr"}
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
        made.add(d)
    for f in _ETC_FILES:
        if os.path.exists(f):
            args += _bind_with_parents(f, made)
    # the empty /tmp first: the interpreter's folders may live under /tmp (a CI clone's .venv), and a bind made
    # before the tmpfs would be hidden by it
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    made |= {"/proc", "/dev", "/tmp"}
    for d in ro_dirs:
        if not any(_under(d, m) for m in ("/usr",) + _SYSTEM_DIRS):
            args += _bind_with_parents(d, made)
    args += ["--bind", workdir, SANDBOX_CWD, "--chdir", SANDBOX_CWD, "--"]
    return args


def unshare_args(unshare: str) -> List[str]:
    args = [unshare, "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
    if not is_root():
        args[1:1] = ["--user", "--map-root-user"]
    return args + ["--"]


# -- detection -------------------------------------------------------------------------------------
def _tools() -> Dict[str, str]:
    return {name: path for name in ("bwrap", "unshare", "prlimit", "setpriv", "kill")
            if (path := shutil.which(name, path=os.defpath + ":/usr/sbin:/sbin"))}


def _probe(cmd: List[str]) -> Optional[str]:
    """None when ``cmd`` (which runs ``true`` in the mode tried) works here, else why not."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                             env={"PATH": os.defpath})
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    return None if out.returncode == 0 else (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]


def probe(mode: str, tools: Optional[Dict[str, str]] = None) -> Optional[str]:
    """None when ``mode`` works on this machine, else the reason it does not."""
    tools = _tools() if tools is None else tools
    true = shutil.which("true", path=os.defpath) or "/bin/true"
    if mode == "rlimits":
        return None
    if mode not in MODES:
        raise SandboxUnavailable(f"unknown isolation {mode!r}; choose one of auto, {', '.join(MODES)}")
    if mode not in tools:
        return f"{mode} is not installed" + (" (apt-get install bubblewrap)" if mode == "bwrap" else "")
    if mode == "bwrap":
        import tempfile

        with tempfile.TemporaryDirectory(prefix="swift-ext-probe-") as d:
            return _probe(bwrap_args(tools["bwrap"], d, ()) + [true])
    return _probe(unshare_args(tools["unshare"]) + [true])


_DETECTED: Dict[str, Isolation] = {}


def detect(want: str = "auto") -> Isolation:
    """The isolation this process uses: ``want`` (``auto``: the strongest mode that works here, warning once
    when that is ``rlimits``). Probed once per process."""
    if want in _DETECTED:
        return _DETECTED[want]
    tools = _tools()
    notes: List[str] = []
    if want == "auto":
        mode, why = "rlimits", []
        for candidate in ("bwrap", "unshare"):
            reason = probe(candidate, tools)
            if reason is None:
                mode = candidate
                break
            why.append(f"{candidate}: {reason}")
        if mode == "rlimits":
            notes.append("no namespaces here (" + "; ".join(why) + ")")
    else:
        reason = probe(want, tools)
        if reason is not None:
            raise SandboxUnavailable(f"sandbox isolation {want!r} does not work on this machine: {reason}")
        mode = want
    if "prlimit" not in tools:
        notes.append("prlimit not found: limits set in the parent before the program starts")
    drop = is_root() and "setpriv" in tools
    iso = Isolation(mode=mode, filesystem=mode == "bwrap", network=mode in ("bwrap", "unshare"),
                    processes=mode in ("bwrap", "unshare") or drop, drop_user=drop, tools=tools,
                    notes=tuple(notes))
    if want == "auto" and mode == "rlimits":
        logger.warning("code sandbox: no bubblewrap and no user namespaces on this machine; programs run with "
                       "resource limits only, NOT isolated from %s. Install bubblewrap (apt-get install "
                       "bubblewrap) for file-system and network isolation.", " or ".join(iso.missing) or "-")
    _DETECTED[want] = iso
    return iso


def doctor_line() -> Tuple[str, str, str]:
    """(status, value, detail) for ``swift-ext doctor``: what the local backend isolates here."""
    try:
        iso = detect("auto")
    except Exception as exc:  # noqa: BLE001 - the doctor reports, it does not crash
        return "fail", "error", str(exc)
    others = ", ".join(f"{m}: {probe(m, iso.tools) or 'works'}" for m in MODES if m != iso.mode)
    detail = iso.describe() + (f"; not isolated: {'; '.join(iso.missing)}" if iso.missing else "") + f" ({others})"
    if iso.mode != "bwrap":
        detail += "; apt-get install bubblewrap for file-system and network isolation"
    return ("ok" if iso.mode == "bwrap" else "warn"), iso.mode, detail


__all__ = ["Isolation", "doctor_line", "SandboxUnavailable", "MODES", "detect", "probe", "interpreter_dirs"]
