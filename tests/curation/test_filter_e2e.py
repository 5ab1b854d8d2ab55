"""``swift-ext filter`` on real engines: ms-swift's transformers engine in-process and a real ``swift deploy``
endpoint of the tiny text model. Runs are killed halfway (SIGTERM, then SIGKILL) and resumed.

The reward is a third-party ms-swift ORM plugin (even completion length: about half of a random model's
completions pass, so pass rates vary); the tests recompute every pass rate from the written samples."""

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from swift_ext.testing import tiny
from swift_ext.launch.rollout import free_port

pytestmark = pytest.mark.e2e

PLUGIN = '''
from swift.rewards import ORM, orms


class EvenLength(ORM):
    def __call__(self, completions, **kwargs):
        return [float(len(c) % 2 == 0) for c in completions]


orms["even_length"] = EvenLength
'''


#: prompts of the in-process run: enough that the kill points (4 lines, then two more) sit well before the end
N_PROMPTS = 16


def setup_files(tmp_path, n):
    (tmp_path / "even.py").write_text(PLUGIN)
    return tiny.write_jsonl(tmp_path / "data.jsonl", tiny.grpo_rows(n))


def filter_argv(workdir, data, *extra):
    return [sys.executable, "-m", "swift_ext", "filter", data, "-o", str(workdir / "out.jsonl"), "-r", "even_length",
            "--plugin", str(Path(data).parent / "even.py"), "-k", "4", "--max-tokens", "16", "--seed", "3",
            "--keep", "0.1:0.9", "--json", *extra]


def read(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def ckpt_lines(workdir):
    path = workdir / "out.ckpt.jsonl"
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def kill_after(argv, env, workdir, lines, sig, timeout=300):
    """Start a run, send ``sig`` once its checkpoint holds ``lines`` lines; returns the exit code.

    The run is stopped (SIGSTOP) the moment the count is seen, so a fast engine cannot finish the remaining
    prompts between the check and the signal; a stopped process still receives SIGKILL, and SIGTERM arrives
    when it is continued."""
    proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while ckpt_lines(workdir) < lines and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before its checkpoint held {lines} lines"
    proc.send_signal(signal.SIGSTOP)
    proc.send_signal(sig)
    proc.send_signal(signal.SIGCONT)
    return proc.wait(timeout=120)


def finish(argv, env, workdir):
    run = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout), run.stderr


def check_samples(workdir, n):
    """Every prompt sampled once; pass rates recomputed from the written completions."""
    keys = [r["key"] for r in read(workdir / "out.ckpt.jsonl")[1:]]
    assert len(keys) == len(set(keys)) == n
    samples = read(workdir / "out.samples.jsonl")
    assert len(samples) == n
    for s in samples:
        assert len(s["completions"]) == 4
        assert s["pass_rate"] == sum(len(c) % 2 == 0 for c in s["completions"]) / 4
    kept = read(workdir / "out.jsonl")
    assert [r["messages"] for r in kept] == [s["messages"] for s in samples if 0.1 <= s["pass_rate"] <= 0.9]
    return samples


def test_in_process_engine_resumes_after_sigterm_and_sigkill_to_the_same_output(tiny_models, swift_env, tmp_path):
    model = tiny_models["text"]
    data = setup_files(tmp_path, N_PROMPTS)
    engine = ["--model", model.path, "--model-type", model.model_type, "--template", model.template,
              "--torch-dtype", "float32"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    whole.mkdir(), broken.mkdir()
    report, _ = finish(filter_argv(whole, data, *engine), swift_env, whole)
    assert report["sampled_now"] == N_PROMPTS and report["rows_in"] == report["rows_kept"] + report["rows_dropped"]
    samples = check_samples(whole, N_PROMPTS)
    assert len({s["pass_rate"] for s in samples}) > 1  # a filter with something to filter

    argv = filter_argv(broken, data, *engine)
    assert kill_after(argv, swift_env, broken, 4, signal.SIGTERM) == 143   # header + 3 prompts
    after_term = ckpt_lines(broken)
    assert 4 <= after_term < N_PROMPTS + 1 and not (broken / "out.jsonl").exists()
    kill_after(argv, swift_env, broken, after_term + 2, signal.SIGKILL)
    after_kill = ckpt_lines(broken)
    assert after_term + 2 <= after_kill < N_PROMPTS + 1
    report, err = finish(argv, swift_env, broken)
    assert "resuming" in err
    assert report["resumed"] == after_kill - 1 and report["resumed"] + report["sampled_now"] == N_PROMPTS
    check_samples(broken, N_PROMPTS)
    for name in ("out.jsonl", "out.samples.jsonl", "out.rejected.jsonl"):
        assert (broken / name).read_text() == (whole / name).read_text(), name


def test_swift_deploy_endpoint_with_concurrency_and_resume(tiny_models, swift_env, tmp_path):
    model = tiny_models["text"]
    data = setup_files(tmp_path, 8)
    port = free_port()
    log = open(tmp_path / "deploy.log", "w")
    server = subprocess.Popen([str(Path(sys.executable).with_name("swift")), "deploy", "--model", model.path,
                               "--model_type", model.model_type, "--template", model.template, "--infer_backend",
                               "transformers", "--torch_dtype", "float32", "--port", str(port)],
                              cwd=tmp_path, env=swift_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.time() + 300
        while True:
            assert server.poll() is None, (tmp_path / "deploy.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(url + "/models", timeout=2).read()
                break
            except OSError:
                assert time.time() < deadline, "swift deploy did not come up"
                time.sleep(1)
        argv = filter_argv(tmp_path, data, "--endpoint", url, "--concurrency", "4")
        kill_after(argv, swift_env, tmp_path, 3, signal.SIGKILL)
        done_before = ckpt_lines(tmp_path) - 1
        assert 2 <= done_before < 8
        report, _ = finish(argv, swift_env, tmp_path)
        assert report["resumed"] == done_before and report["sampled_now"] == 8 - done_before
        check_samples(tmp_path, 8)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
