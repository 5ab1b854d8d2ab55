"""bubblewrap's mounts: an interpreter that lives under /tmp (a CI clone's .venv) stays visible inside the sandbox.
Found by a fresh clone under /tmp: the empty /tmp was mounted after the interpreter's folder and hid it, and every
program failed with `prlimit: failed to execute .../.venv/bin/python`."""

import os
import shutil
import subprocess
import sys
import tempfile
import venv

import pytest

from swift_ext.sandbox import isolation


def test_the_empty_tmp_is_mounted_before_the_interpreter_folders():
    args = isolation.bwrap_args("/bin/bwrap", "/work/run", ["/tmp/clone/.venv"])
    tmpfs = args.index("--tmpfs")
    bind = max(i for i, a in enumerate(args) if a == "--ro-bind" and args[i + 1] == "/tmp/clone/.venv")
    assert tmpfs < bind


@pytest.mark.skipif(not shutil.which("bwrap") or isolation.detect("auto").mode != "bwrap",
                    reason="bubblewrap is not usable here")
def test_a_program_runs_with_a_venv_under_tmp():
    from swift_ext.rewards import build

    d = tempfile.mkdtemp(prefix="swift-ext-venv-", dir="/tmp")
    os.chmod(d, 0o755)  # as a clone's folder is: the runs' own user id must reach the interpreter
    try:
        venv.create(d, symlinks=True, with_pip=False)
        py = os.path.join(d, "bin", "python")
        code = ("from swift_ext.rewards import build; r = build('code_tests:isolation=bwrap'); "
                "vi = {'language': 'python', 'test_cases': [{'input': '2\\n', 'output': '4\\n', 'type': 'stdin_stdout'}]}; "
                "print(r(['```python\\nprint(int(input()) * 2)\\n```'], verification_info=[vi]))")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        out = subprocess.run([py, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip().splitlines()[-1] == "[1.0]", out.stdout + out.stderr[-2000:]
    finally:
        shutil.rmtree(d, ignore_errors=True)
    assert build  # the reward the subprocess built is the one this package registers
