"""The hostile suite: programs that attack the runner, each scored by the real ``code_tests`` reward on the
real local backend, once per isolation mode this machine offers (bwrap, unshare, rlimits).

Every program would beat a naive ``subprocess.run([python, "-c", code])`` runner: it takes the machine
down (fork bomb, 8 GB, 10 GB file, 1 GB of output), hangs it (busy loop), reads the answer from the network
or from a file outside its folder or the trainer's environment, passes without running the asserts
(``sys.exit(0)``, ``os._exit(0)``, ``raise SystemExit``, a patched ``assertEqual``, an always-equal object,
killing its parent) or leaves a daemon behind. Each must score 0 (or, where this machine cannot isolate
what the attack needs, the score the attack earns: that test says so), the call must return within its
deadline + 1 s, and afterwards no process, file or listening socket of the runs may be left (``/proc`` and
the disk are read).

All programs of one mode run in one reward call, concurrently (as a GRPO call would run them); each test
then reads its own program's verdict.
"""

import ctypes  # noqa: F401  (the programs use it; imported here to fail early where it is missing)
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid

import pytest

from swift_ext.rewards import build
from swift_ext.sandbox import isolation
from swift_ext.sandbox.isolation import UID_BASE

TOKEN = "swxh" + uuid.uuid4().hex[:8]          # the process name every hostile program takes (comm, 15 chars)
SECRET = "secret-" + uuid.uuid4().hex
FAKE_KEY = "sk-test-" + uuid.uuid4().hex
DEADLINE = 8.0                                  # the call's timeout parameter (one GRPO group)
CASE_TIMEOUT = 1.5
NAME = f"import ctypes\nctypes.CDLL(None).prctl(15, {TOKEN.encode()!r}, 0, 0, 0)\n"

MODES = [m for m in isolation.MODES if isolation.probe(m) is None]


def fenced(code: str) -> str:
    return f"My solution:\n```python\n{NAME}{code}\n```"


def stdio(expected: str) -> dict:
    return {"verification_info": {"language": "python", "test_cases": [
        {"input": "", "output": expected, "type": "stdin_stdout"}]}}


def humaneval(test: str, entry: str = "f") -> dict:
    return {"test": test, "entry_point": entry}


FAILING_CHECK = "def check(candidate):\n    assert candidate(1) == 100\n    assert candidate(2) == 200\n"


def programs(port: int, secret_path: str, daemon_port: int):
    """name -> (completion, row, score the attack earns when not isolated)."""
    return {
        "fork_bomb": (fenced("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"),
                      stdio("done"), 0.0),
        "busy_loop": (fenced("while True:\n    pass"), stdio("done"), 0.0),
        "alloc_8gb": (fenced("x = bytearray(8 * 1024 ** 3)\nprint('done')"), stdio("done"), 0.0),
        "file_10gb": (fenced("with open('big.bin', 'wb') as f:\n    for _ in range(10 * 1024):\n"
                             "        f.write(b'\\0' * (1 << 20))\nprint('done')"), stdio("done"), 0.0),
        "tmp_litter": (fenced(f"open('/tmp/{TOKEN}.litter', 'w').write('x')\nprint('littered')"), stdio("done"),
                       0.0),
        "output_1gb": (fenced("import sys\nblock = 'x' * (1 << 20)\nfor _ in range(1024):\n"
                              "    sys.stdout.write(block)"), stdio("done"), 0.0),
        "network": (fenced(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
                           "print(s.recv(100).decode())"), stdio(SECRET), 1.0),
        "read_outside": (fenced(f"print(open({secret_path!r}).read())"), stdio(SECRET), 1.0),
        "environment": (fenced("import os\nprint(os.environ.get('SWIFT_EXT_FAKE_API_KEY', 'no key'))"),
                        stdio(FAKE_KEY), 0.0),
        "sys_exit": (fenced("import sys\ndef f(x):\n    return 0\nsys.exit(0)"), humaneval(FAILING_CHECK), 0.0),
        "os_exit": (fenced("import os\ndef f(x):\n    return 0\nos._exit(0)"), humaneval(FAILING_CHECK), 0.0),
        "raise_systemexit": (fenced("def f(x):\n    raise SystemExit(0)"), humaneval(FAILING_CHECK), 0.0),
        "exit_in_atexit": (fenced("import atexit, os\natexit.register(lambda: os._exit(0))\ndef f(x):\n    return 0"),
                           humaneval(FAILING_CHECK), 0.0),
        "patched_assert_equal": (
            fenced("import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\ndef f(x):\n    return 0"),
            humaneval("import unittest\ndef check(candidate):\n    unittest.TestCase().assertEqual(candidate(1), 100)\n"),
            0.0),
        "always_equal": (fenced("class Eq:\n    def __eq__(self, other):\n        return True\n"
                                "    def __ne__(self, other):\n        return False\ndef f(x):\n    return Eq()"),
                         humaneval(FAILING_CHECK), 0.0),
        "patched_builtin": (fenced("import builtins\nbuiltins.isinstance = lambda *a: True\ndef f(x):\n    return 0"),
                            humaneval("def check(candidate):\n    assert isinstance(candidate(1), str)\n"), 0.0),
        "kill_parent": (fenced("import os\ntry:\n    os.kill(os.getppid(), 9)\nexcept OSError:\n    pass\n"
                               "def f(x):\n    return 0"), humaneval(FAILING_CHECK), 0.0),
        "daemon": (fenced("import os, socket, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                          f"        s = socket.socket()\n        s.bind(('127.0.0.1', {daemon_port}))\n"
                          "        s.listen()\n        time.sleep(60)\n        open('/tmp/' + 'daemon-left', 'w')\n"
                          "    os._exit(0)\ntime.sleep(0.3)\nprint('parent done')"), stdio("done"), 0.0),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening() -> set:
    """(file, local address) of every listening TCP socket of this network namespace."""
    out = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as fh:
                for line in fh.readlines()[1:]:
                    parts = line.split()
                    if parts[3] == "0A":
                        out.add((name, parts[1]))
        except OSError:
            pass
    return out


def _leftover_processes() -> list:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as fh:
                comm = fh.read().strip()
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
            uid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue
        # a zombie (Z) is dead, waiting for the machine's init to reap it: it runs nothing and holds nothing
        if (comm == TOKEN or UID_BASE <= uid < UID_BASE + (1 << 28)) and state != "Z":
            found.append((pid, comm, uid, state))
    return found


def _leftover_files() -> list:
    found = []
    for top in ("/tmp", "/var/tmp", "/dev/shm"):
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if TOKEN in e.name or e.name == "daemon-left" or UID_BASE <= st.st_uid < UID_BASE + (1 << 28):
                found.append(e.path)
    return found


class _AnswerServer:
    """A listening socket on the host's loopback that hands the secret to whoever connects."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.sendall(SECRET.encode())
            conn.close()

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module", params=MODES)
def attacked(request):
    """Every hostile program run once in one reward call under isolation ``request.param``."""
    mode = request.param
    secret_dir = tempfile.mkdtemp(prefix="swift-ext-outside-")   # every user may reach it: only a namespace hides it
    secret_path = os.path.join(secret_dir, "answer.txt")
    with open(secret_path, "w") as fh:
        fh.write(SECRET)
    os.chmod(secret_dir, 0o755)
    os.chmod(secret_path, 0o644)                  # readable by any user: only a namespace can hide it
    os.environ["SWIFT_EXT_FAKE_API_KEY"] = FAKE_KEY
    server = _AnswerServer()
    daemon_port = _free_port()
    table = programs(server.port, secret_path, daemon_port)
    reward = build(f"code_tests:isolation={mode},timeout={DEADLINE},case_timeout={CASE_TIMEOUT},concurrency=8")
    rows = [row for _, row, _ in table.values()]
    columns = sorted({k for r in rows for k in r})
    start = time.monotonic()
    try:
        scores = reward([c for c, _, _ in table.values()], **{k: [r.get(k) for r in rows] for k in columns})
        took = time.monotonic() - start
        verdicts = dict(zip(table, reward.last_details))
        box = reward.sandbox()
        iso = box.iso
        root = box.root()
        left_in_root = os.listdir(root)
        # the PID namespace or the sweep ends stragglers at once; give the kernel a moment to reap them
        end = time.monotonic() + 5.0
        while _leftover_processes() and time.monotonic() < end:
            time.sleep(0.05)
        yield {"mode": mode, "iso": iso, "scores": dict(zip(table, scores)), "verdicts": verdicts,
               "expected_unisolated": {k: v for k, (_, _, v) in table.items()}, "took": took,
               "processes": _leftover_processes(), "files": _leftover_files(), "root_left": left_in_root,
               "daemon_address": f"0100007F:{daemon_port:04X}", "listening_after": _listening(),
               "connections": server.connections, "budget": reward.budget(len(rows))}
    finally:
        server.close()
        os.environ.pop("SWIFT_EXT_FAKE_API_KEY", None)
        reward.sandbox().close()
        shutil.rmtree(secret_dir, ignore_errors=True)


def _verdict(attacked, name):
    v = attacked["verdicts"][name]
    return f"{attacked['mode']}/{name}: {v.reason} {[(c.get('outcome'), c.get('message'), c.get('stderr', '')[-200:]) for c in v.cases]}"


def _zero(attacked, name):
    assert attacked["scores"][name] == 0.0, _verdict(attacked, name)


def test_call_returns_within_deadline(attacked):
    assert attacked["took"] <= attacked["budget"] + 1.0, attacked["took"]


def test_no_process_left(attacked):
    assert attacked["processes"] == []


def test_no_file_left(attacked):
    assert attacked["files"] == [] and attacked["root_left"] == []


def test_no_listening_socket_left(attacked):
    # the daemon listened on this port (in the host's network namespace where there is no other)
    assert not [a for _, a in attacked["listening_after"] if a == attacked["daemon_address"]]


def test_fork_bomb(attacked):
    _zero(attacked, "fork_bomb")
    outcome = attacked["verdicts"]["fork_bomb"].cases[0]["outcome"]
    assert outcome in ("timeout", "runtime_error", "killed"), outcome


def test_busy_loop(attacked):
    _zero(attacked, "busy_loop")
    case = attacked["verdicts"]["busy_loop"].cases[0]
    assert case["outcome"] == "timeout" and case["seconds"] <= CASE_TIMEOUT + 1.0


def test_allocate_8gb(attacked):
    _zero(attacked, "alloc_8gb")
    assert "MemoryError" in attacked["verdicts"]["alloc_8gb"].cases[0]["stderr"]


def test_write_10gb_file(attacked):
    _zero(attacked, "file_10gb")
    assert attacked["verdicts"]["file_10gb"].cases[0]["outcome"] in ("killed", "runtime_error")


def test_litter_in_tmp_is_removed(attacked):
    _zero(attacked, "tmp_litter")
    assert not [f for f in attacked["files"] if TOKEN in f]


def test_1gb_of_output(attacked):
    _zero(attacked, "output_1gb")
    case = attacked["verdicts"]["output_1gb"].cases[0]
    assert case["outcome"] == "output_limit" and len(case["got"]) < 2000


def test_socket_to_the_host(attacked):
    if not attacked["iso"].network:
        # reported, not hidden: without namespaces the program reaches the host's loopback
        assert attacked["scores"]["network"] == 1.0 and attacked["connections"] >= 1
        pytest.skip(f"isolation={attacked['mode']} does not isolate the network (the program fetched the answer)")
    _zero(attacked, "network")
    assert attacked["connections"] == 0


def test_read_file_outside_working_directory(attacked):
    if not attacked["iso"].filesystem:
        assert attacked["scores"]["read_outside"] == 1.0
        pytest.skip(f"isolation={attacked['mode']} does not isolate the file system (the program read the answer)")
    _zero(attacked, "read_outside")


def test_environment_holds_no_parent_variable(attacked):
    _zero(attacked, "environment")
    assert FAKE_KEY not in attacked["verdicts"]["environment"].cases[0]["got"]


@pytest.mark.parametrize("name", ["sys_exit", "os_exit", "raise_systemexit", "exit_in_atexit"])
def test_exit_before_the_asserts(attacked, name):
    _zero(attacked, name)


@pytest.mark.parametrize("name", ["patched_assert_equal", "always_equal", "patched_builtin"])
def test_monkeypatched_assert_helpers(attacked, name):
    _zero(attacked, name)


def test_kill_the_parent(attacked):
    _zero(attacked, "kill_parent")
    assert os.getpid() > 0                      # this process (the trainer's stand-in) is still here


def test_daemon_outliving_the_program(attacked):
    _zero(attacked, "daemon")
    assert attacked["processes"] == []
