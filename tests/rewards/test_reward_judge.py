"""The judge reward against a scripted OpenAI-compatible stand-in (a real HTTP server process on 127.0.0.1):
each score format, retries, failures, deadlines, the circuit breaker, the cache across processes, concurrency."""

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest
from PIL import Image

from swift_ext.rewards import build

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/: the helper modules


class Standin:
    def __init__(self, latency=0.0):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "judge_standin.py"), "--latency",
                                      str(latency)], stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def stats(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def server():
    s = Standin()
    yield s
    s.stop()


def judge(server, tmp_path, **params):
    spec = {"base_url": server.url if server else "http://127.0.0.1:9/v1", "rubric": "helpfulness",
            "cache": str(tmp_path / "cache.sqlite"), "backoff": 0.01, **params}
    return build("judge:" + ",".join(f"{k}={v}" for k, v in spec.items()))


def call(reward, completions, **columns):
    columns.setdefault("messages", [[{"role": "user", "content": "Describe the picture."}]] * len(completions))
    return asyncio.run(reward(completions, **columns))


def test_each_score_format(server, tmp_path, caplog):
    replies = ["Fine. [[7]]", "Score: 3/4", '{"score": 0.7, "why": "ok"}', "Yes.", "8", "[[9/10]]",
               "Rating: 6 out of 10", "I refuse to grade this"]
    comps = [f"REPLY{r}END" for r in replies]
    with caplog.at_level(logging.WARNING, logger="swift_ext.rewards"):
        out = call(judge(server, tmp_path), comps)
    assert out == [0.7, 0.75, 0.7, 1.0, 0.8, 0.9, 0.6, None]
    assert "I refuse to grade this" in caplog.text                 # the raw reply of an unparseable verdict


def test_rationale_is_kept(server, tmp_path):
    r = judge(server, tmp_path)
    call(r, ["REPLYClear and correct. [[8]]END"])
    assert r.last_details[0]["rationale"] == "Clear and correct. [[8]]"


def test_429_then_success_and_500s(server, tmp_path):
    r = judge(server, tmp_path, retries=3)
    before = server.stats()["requests"]
    assert call(r, ["FAIL429x2 REPLY[[5]]END", "FAIL500x1 REPLY[[4]]END"]) == [0.5, 0.4]
    assert server.stats()["requests"] - before == 3 + 2
    before = server.stats()["requests"]
    assert call(judge(server, tmp_path, retries=2), ["ALWAYS500 a"]) == [None]
    assert server.stats()["requests"] - before == 3                  # one try and two retries


def test_malformed_reply_abstains(server, tmp_path):
    r = judge(server, tmp_path)
    assert call(r, ["MALFORMED"]) == [None]
    assert "malformed" in r.last_details[0]["error"]


def test_slow_judge_is_cut_at_the_deadline(server, tmp_path):
    r = judge(server, tmp_path, timeout=0.5, retries=0)
    t0 = time.monotonic()
    assert call(r, ["SLEEP5 x", "REPLY[[10]]END"]) == [None, 1.0]
    assert time.monotonic() - t0 < 0.5 + 1.0
    r = judge(server, tmp_path, request_timeout=0.3, retries=1)
    t0 = time.monotonic()
    assert call(r, ["SLEEP3 y"]) == [None]                           # two attempts of 0.3 s
    assert time.monotonic() - t0 < 2.0


def test_refused_connection_opens_the_breaker(tmp_path, caplog):
    with socket.socket() as s:                                       # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = build(f"judge:base_url=http://127.0.0.1:{port}/v1,model=m,rubric=helpfulness,backoff=0.01,"
              f"cache={tmp_path / 'c.sqlite'}")
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="swift_ext.rewards"):
        assert call(r, ["a"] * 16) == [None] * 16
        assert call(r, ["b"] * 16) == [None] * 16                    # open: abstains at once, no new message
    assert time.monotonic() - t0 < 5
    assert caplog.text.count("every judge row abstains") == 1


def test_images_reach_a_vlm_judge_as_data_urls(server, tmp_path):
    img = tmp_path / "cat.png"
    Image.new("RGB", (8, 8), "red").save(img)
    before = server.stats()["images"]
    out = call(judge(server, tmp_path, rubric="faithfulness"), ["a red square", "a blue square"],
               images=[[str(img)], [{"bytes": img.read_bytes(), "path": None}]])
    assert out == [0.7, 0.7] and server.stats()["images"] - before == 2


def test_reference_rubric_and_pairwise(server, tmp_path):
    r = judge(server, tmp_path, rubric="correctness")
    assert call(r, ["REPLY[[10]]END", "x"], solution=["42", None]) == [1.0, None]   # no reference: abstains
    p = judge(server, tmp_path, mode="pairwise")
    assert call(p, ["REPLY[[A]]END", "REPLY[[C]]END", "REPLY[[B]]END"], solution=["ref"] * 3) == [1.0, 0.5, 0.0]


def test_api_key_comes_from_the_named_variable(server, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MY_JUDGE_KEY", "s3cret")
    with caplog.at_level(logging.DEBUG):
        call(judge(server, tmp_path, api_key_env="MY_JUDGE_KEY"), ["REPLY[[1]]END key"])
    assert server.stats()["auth"] == "Bearer s3cret"
    assert "s3cret" not in caplog.text


def test_model_name_comes_from_the_endpoint(server, tmp_path):
    call(judge(server, tmp_path), ["model?"])
    assert server.stats()["models"][-1] == "standin-judge"


def test_concurrency_is_reached(tmp_path):
    slow = Standin(latency=0.5)
    try:
        r = judge(slow, tmp_path, concurrency=32)
        t0 = time.monotonic()
        assert call(r, [f"c{i}" for i in range(64)]) == [0.7] * 64
        elapsed = time.monotonic() - t0
        assert slow.stats()["peak_in_flight"] >= 24
        assert elapsed < 64 * 0.5 / 8                                 # sequential would take 32 s
    finally:
        slow.stop()


def test_cache_hits_across_processes(server, tmp_path):
    cache = tmp_path / "shared.sqlite"
    script = textwrap.dedent(f"""
        import asyncio, json, sys
        from swift_ext.rewards import build
        r = build("judge:base_url={server.url},rubric=helpfulness,cache={cache}")
        comps = [f"REPLY[[{{i % 10}}]]END " + sys.argv[1] + str(i) for i in range(20)]
        out = asyncio.run(r(comps, messages=[[{{"role": "user", "content": "q"}}]] * 20))
        print(json.dumps([out, sum(1 for d in r.last_details if d.get("cached"))]))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}

    def run_all(tags):
        procs = [subprocess.Popen([sys.executable, "-c", script, t], stdout=subprocess.PIPE, text=True, env=env)
                 for t in tags]
        outs = [p.communicate(timeout=120)[0] for p in procs]
        assert all(p.returncode == 0 for p in procs)
        return [json.loads(o) for o in outs]

    before = server.stats()["requests"]
    first = run_all(["a", "b"])                                      # two writers at once, distinct rows
    assert server.stats()["requests"] - before == 40 and [c for _, c in first] == [0, 0]
    second = run_all(["a", "b"])                                     # every verdict from the cache
    assert server.stats()["requests"] - before == 40
    assert [c for _, c in second] == [20, 20] and [o for o, _ in second] == [o for o, _ in first]


def test_hits_on_another_processs_verdicts_are_counted_per_process(server, tmp_path):
    """The ranks of a run share one cache file: each process adds its hits, the hits on verdicts another
    process wrote (shared_hits) and its misses to the file's stats table."""
    import sqlite3

    cache = tmp_path / "ranks.sqlite"
    with sqlite3.connect(cache) as db:  # a cache file from before the writer column keeps working
        db.execute("CREATE TABLE verdicts (key TEXT PRIMARY KEY, score REAL, rationale TEXT, model TEXT, "
                   "created REAL)")
    script = textwrap.dedent(f"""
        import asyncio, json
        from swift_ext.rewards import build
        r = build("judge:base_url={server.url},rubric=helpfulness,cache={cache}")
        comps = [f"REPLY[[{{i % 10}}]]END same{{i}}" for i in range(6)]
        asyncio.run(r(comps, messages=[[{{"role": "user", "content": "q"}}]] * 6))
        print(json.dumps([d.get("cached_by") for d in r.last_details]))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}

    def rank(r):
        out = subprocess.run([sys.executable, "-c", script], env={**env, "RANK": str(r)}, capture_output=True,
                             text=True, timeout=120, check=True).stdout
        return json.loads(out)

    assert rank(0) == [None] * 6                          # rank 0 judged all six
    by = rank(1)                                          # rank 1 found all six, written by rank 0
    assert len(set(by)) == 1 and by[0].startswith("rank0@")
    with sqlite3.connect(cache) as db:
        stats = {w.split("@")[0]: (h, sh, m) for w, h, sh, m in
                 db.execute("SELECT writer, hits, shared_hits, misses FROM stats")}
    assert stats == {"rank0": (0, 0, 6), "rank1": (6, 6, 0)}


def test_without_endpoint_every_row_abstains_at_once(tmp_path):
    t0 = time.monotonic()
    assert call(build("judge"), ["x"] * 8) == [None] * 8
    assert time.monotonic() - t0 < 0.5


def test_rewards_score_writes_the_rationale(server, tmp_path):
    from click.testing import CliRunner

    from swift_ext.cli import cli

    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": "q", "completions": ["REPLYGood. [[9]]END", "REPLYhmEND"]}) + "\n")
    spec = f"judge:base_url={server.url},rubric=helpfulness,cache={tmp_path / 'c.sqlite'}"
    out = tmp_path / "scored.jsonl"
    res = CliRunner().invoke(cli, ["rewards", "score", str(rows), "-r", spec, "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x[spec] for x in lines] == [0.9, None]
    assert [x["details"][spec]["rationale"] for x in lines] == ["Good. [[9]]", "hm"]
