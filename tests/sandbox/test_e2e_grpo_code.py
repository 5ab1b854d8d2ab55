"""A real tiny GRPO run (ms-swift 4.6 ``swift rlhf``, CPU, LoRA) with ``code_tests`` in ``--reward_funcs``, on
rows that ``swift-ext convert`` made from open-r1-style code rows. The tiny random model writes no working
code: the run completes, ``rewards/code_tests/mean`` is logged (0: no completion passes a case), the sandbox
was used during the run (its folder appeared), and afterwards no sandbox process or folder is left."""

import json
import math
import os
import threading
import time

import pytest
from click.testing import CliRunner

from swift_ext.cli import cli
from swift_ext.sandbox.isolation import UID_BASE
from swift_ext.testing import grpo_args, step_rows

pytestmark = pytest.mark.e2e


def _sandbox_processes():
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            uid = os.stat(f"/proc/{pid}").st_uid
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if UID_BASE <= uid < UID_BASE + (1 << 28) or b"swift-ext-sandbox-" in cmd:
            found.append(pid)
    return found


def test_grpo_with_code_tests(tiny_models, run_swift, tmp_path):
    rows = [{"problem": f"Read n and print n + {i}.", "gold_standard_solution": f"print(int(input()) + {i})",
             "verification_info": {"language": "python", "test_cases": [
                 {"input": "1\n", "output": f"{1 + i}\n", "type": "stdin_stdout"},
                 {"input": "2\n", "output": f"{2 + i}\n", "type": "stdin_stdout"}]}} for i in range(8)]
    src = tmp_path / "code.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    dataset = tmp_path / "grpo.jsonl"
    res = CliRunner().invoke(cli, ["convert", str(src), "--to", "grpo", "-o", str(dataset)], catch_exceptions=False)
    assert res.exit_code == 0, res.output

    sandbox_tmp = tmp_path / "sandbox-tmp"
    sandbox_tmp.mkdir()
    seen = []
    stop = threading.Event()

    def watch():                         # the sandbox's folder exists from its first run to the trainer's exit
        while not stop.is_set():
            seen.extend(p.name for p in sandbox_tmp.iterdir())
            time.sleep(0.05)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    # extract=whole: every completion is run as a program, so the sandbox runs the model's text for real
    rewards = ["code_tests:extract=whole,case_timeout=2", "random:seed=1"]
    run = run_swift("rlhf", grpo_args(tiny_models["text"], str(dataset), tmp_path / "out", rewards), cwd=tmp_path,
                    env={"SWIFT_EXT_SANDBOX_TMP": str(sandbox_tmp)})
    stop.set()
    watcher.join()
    assert run.returncode == 0, run.tail()

    steps = step_rows(tmp_path / "out")
    assert len(steps) == 2
    for row in steps:
        value = row["rewards/code_tests:extract=whole,case_timeout=2/mean"]
        assert math.isfinite(value) and value == 0.0
    assert any(name.startswith("swift-ext-sandbox-") for name in seen)
    assert list(sandbox_tmp.iterdir()) == []          # removed at the trainer's exit
    assert _sandbox_processes() == []
