"""A conversion killed mid-way (real subprocess, SIGKILL) leaves no output and no reject file."""

import json
import os
import signal
import subprocess
import sys
import time


def test_sigkill_leaves_no_partial_output(tmp_path):
    src = tmp_path / "big.jsonl"
    row = {"messages": [{"role": "user", "content": "What is 2 + 2? " * 20},
                        {"role": "assistant", "content": "<answer>4</answer>"}]}
    line = (json.dumps(row) + "\n").encode()
    with open(src, "wb") as fh:
        for i in range(400_000):
            fh.write(line if i % 1000 else b"{bad\n")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "grpo.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "swift_ext", "convert", str(src), "--to", "grpo", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        # wait until the conversion is writing (its temp file exists and has data), then kill it
        while time.time() < deadline:
            tmps = [p for p in out_dir.iterdir() if p.name.startswith(".grpo.jsonl.") and p.stat().st_size > 0]
            if tmps:
                break
            assert proc.poll() is None, "conversion finished before it could be killed; make the input bigger"
            time.sleep(0.05)
        else:
            raise AssertionError("the conversion never started writing")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    assert not (out_dir / "grpo.rejected.jsonl").exists()
    # only hidden temp files remain (a killed process cannot clean up; they never carry the output's name)
    assert all(p.name.startswith(".") and p.name.endswith(".tmp") for p in out_dir.iterdir())
