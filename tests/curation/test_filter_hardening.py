"""``swift-ext filter`` against hostile rows, hostile endpoints and a second process (issue 17 findings 6, 7, 8
and the checkpoint lows), through the public command with real local HTTP servers (tests/http_recorder.py)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from http_recorder import Recorder

from swift_ext.cli import cli
from swift_ext.curation import filter as flt

ROOT = Path(__file__).resolve().parents[2]
RED_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c49444154789c63f8cf"
                        "c000000301010018dd8db00000000049454e44ae426082")
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "SWIFT_EXT_TEST_SECRET": "hunter2-do-not-send"}


def rows_file(tmp_path, rows):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def plain(n):
    return [{"messages": [{"role": "user", "content": f"q{i}"}], "solution": str(i % 3)} for i in range(n)]


def filter_argv(data, out, url, *extra):
    return [sys.executable, "-m", "swift_ext", "filter", data, "-o", str(out), "-r", "numeric", "--endpoint", url,
            "-k", "3", "--json", *extra]


def test_rows_naming_system_files_never_reach_the_endpoint(tmp_path):
    """images: /proc/self/environ, /etc/passwd, /dev/zero, a FIFO -> rejected with a reason, nothing sent; the
    real image goes as a data URL (issue 17 finding 7)."""
    img = tmp_path / "red.png"
    img.write_bytes(RED_PNG)
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    hostile = ["/proc/self/environ", "/etc/passwd", "/dev/zero", str(fifo), "iVBORw0KGgo" + "/" * 2000 + "etc/passwd"]
    rows = [{"messages": [{"role": "user", "content": "<image>what?"}], "images": [p], "solution": "1"}
            for p in hostile + [str(img)]]
    with Recorder() as rec:
        run = subprocess.run(filter_argv(rows_file(tmp_path, rows), tmp_path / "o.jsonl", rec.url), env=ENV,
                             capture_output=True, text=True, timeout=120)
        sent = rec.bodies()
        posts = [r for r in rec.requests if r["method"] == "POST"]
    assert run.returncode == 0, run.stderr
    rep = json.loads(run.stdout)
    assert rep["rows_rejected"] == len(hostile) and [r["line"] for r in rep["rejected"]] == [1, 2, 3, 4, 5]
    reasons = [r["reason"] for r in rep["rejected"]]
    assert "kernel file" in reasons[0] and "not an image" in reasons[1] and "not a regular file" in reasons[2]
    assert "not a regular file" in reasons[3] and "file not found" in reasons[4]
    assert len(posts) == 1 and "data:image/png;base64," in posts[0]["body"]
    assert "hunter2" not in sent and "root:" not in sent and "cm9vdD" not in sent   # cm9vdD: base64 of "root"


def test_the_api_key_does_not_follow_a_redirect_to_another_origin(tmp_path):
    """filter --endpoint A, A answers 307 / 303 to B: B never sees the key (issue 17 finding 8)."""
    with Recorder() as a, Recorder() as b:
        a.script["/v1/models"] = ("redirect", 303, b.url + "/models")
        a.script["/v1/chat/completions"] = ("redirect", 307, b.url + "/chat/completions")
        run = subprocess.run(filter_argv(rows_file(tmp_path, plain(2)), tmp_path / "o.jsonl", a.url,
                                         "--api-key", "sk-live-123"), env=ENV, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, run.stderr
        assert {r["headers"].get("Authorization") for r in a.requests} == {"Bearer sk-live-123"}
        assert len(b.requests) == 3 and all("Authorization" not in r["headers"] for r in b.requests)


def test_a_server_trickling_its_reply_is_cut_at_the_request_timeout(tmp_path):
    """One byte every 50 ms would keep a per-read timeout waiting forever; --request-timeout is the total."""
    with Recorder() as rec:
        rec.script["/v1/models"] = ("trickle", 0.05)
        t0 = time.monotonic()
        run = subprocess.run(filter_argv(rows_file(tmp_path, plain(2)), tmp_path / "o.jsonl", rec.url,
                                         "--request-timeout", "1"), env=ENV, capture_output=True, text=True,
                             timeout=120)
        took = time.monotonic() - t0
    assert run.returncode == 1 and "no complete reply within 1 s" in run.stderr
    assert took < 10 + 1 * 3 * 2                   # startup, then three attempts of 1 s and backoff (not 11 s x 3)


def test_two_processes_on_one_output_the_second_refuses_the_first_completes_a_rerun_resumes(tmp_path):
    """Started together on one output (issue 17 finding 6): one takes the checkpoint's lock, the other refuses
    naming its PID and writes nothing; the first completes with an intact checkpoint; a rerun resumes it all."""
    data = rows_file(tmp_path, plain(16))
    out = tmp_path / "o.jsonl"
    with Recorder(delay=0.5) as rec:                 # sampling takes ~4 s: both processes start well within it
        argv = filter_argv(data, out, rec.url, "--concurrency", "2")
        procs = [subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outs = [p.communicate(timeout=180) for p in procs]
        codes = [p.returncode for p in procs]
        assert sorted(codes) == [0, 1], outs
        loser = codes.index(1)
        winner = 1 - loser
        assert f"in use by another filter process (PID {procs[winner].pid})" in outs[loser][1]
        rep = json.loads(outs[winner][0])
        assert rep["sampled_now"] == 16 and rep["rows_in"] == 16
        lines = (tmp_path / "o.ckpt.jsonl").read_text().splitlines()
        assert len(lines) == 17 and all(json.loads(line) for line in lines)
        again = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        rep2 = json.loads(again.stdout)
        assert rep2["resumed"] == 16 and rep2["sampled_now"] == 0


class Fixed:
    label = "fixed"

    def sample(self, items, n, temperature, max_tokens, top_p, on_done):
        for key, *_ in items:
            on_done(key, ["<answer>0</answer>"] * n)


@pytest.mark.parametrize("completions, why", [(["<answer>0</answer>"], "1 completions, this run samples 3"),
                                              ([], "0 completions, this run samples 3"),
                                              ([1, 2, 3], "a completion that is not a string")])
def test_checkpoint_lines_that_are_json_but_wrong_are_refused_with_the_reason(tmp_path, completions, why):
    data = rows_file(tmp_path, plain(3))
    out = str(tmp_path / "o.jsonl")
    opts = flt.FilterOptions(rewards=("numeric",), sampling=flt.Sampling(num_generations=3))
    flt.run(data, out, Fixed(), opts)
    ckpt = tmp_path / "o.ckpt.jsonl"
    lines = ckpt.read_text().splitlines()
    bad = json.loads(lines[2])
    bad["completions"] = completions
    lines[2] = json.dumps(bad)
    ckpt.write_text("\n".join(lines) + "\n")
    with pytest.raises(Exception, match=f"o.ckpt.jsonl:3: .*{why}"):
        flt.run(data, out, Fixed(), opts)


def test_the_endpoint_url_is_part_of_the_checkpoint_identity(tmp_path):
    data = rows_file(tmp_path, plain(2))
    with Recorder() as a, Recorder() as b:
        first = subprocess.run(filter_argv(data, tmp_path / "o.jsonl", a.url), env=ENV, capture_output=True,
                               text=True, timeout=120)
        assert first.returncode == 0, first.stderr
        other = subprocess.run(filter_argv(data, tmp_path / "o.jsonl", b.url), env=ENV, capture_output=True,
                               text=True, timeout=120)
    assert other.returncode == 1 and "made with source=" in other.stderr and b.url in other.stderr
    assert not [r for r in b.requests if r["method"] == "POST"]


def test_the_help_lists_the_rate_limit_flags():
    res = CliRunner().invoke(cli, ["filter", "--help"])
    assert "--rpm" in res.output and "--tpm" in res.output and "--request-timeout" in res.output
