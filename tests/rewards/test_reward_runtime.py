"""The reward runtime: every call bounded by its deadline, the pool of killable workers, async concurrency.

Real worker processes throughout; leaks are checked in /proc."""

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from runtime_rewards import PidReward, Sleeper, SlowAsync
from swift_ext.rewards import build
from swift_ext.rewards.pool import get_pool

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/: the helper modules
math_verify = pytest.importorskip("math_verify")


def alive(pid):
    """True while ``pid`` is a live process (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children(pid=None):
    """Live child pids of ``pid`` (this process by default), from /proc."""
    pid = pid or os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry))
    return out


@pytest.fixture(autouse=True)
def warm_pool():
    """Each test starts with every worker ready (a previous test's kills leave replacements starting)."""
    pool = get_pool()
    pool.need(["swift_ext.rewards._math_worker"])
    assert pool.wait_ready()
    yield


def no_leak():
    """Every child of this process is a current pool worker (killed workers are reaped and gone)."""
    pool = get_pool()
    assert set(children()) <= set(pool.pids())


def test_a_reward_that_sleeps_forever_returns_within_its_deadline(tmp_path):
    child_file = tmp_path / "grandchild.pid"
    r = Sleeper(timeout=0.5, child_file=str(child_file))
    assert r(["ok"]) == [2.0]                                     # starts the pool outside the timing
    before = set(get_pool().pids())
    t0 = time.monotonic()
    out = r(["hang", "ab", "hang", "abc"] * 2)
    elapsed = time.monotonic() - t0
    assert elapsed < 0.5 + 1.0, elapsed
    assert None in out                                           # a chunk with a hang abstains (timeout_score)
    grandchild = int(child_file.read_text())
    killed = before - set(get_pool().pids())
    assert killed and not any(alive(p) for p in killed)          # the stuck workers are gone ...
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:     # ... and so is what they started
        time.sleep(0.05)
    assert not alive(grandchild)
    no_leak()
    t0 = time.monotonic()
    assert r(["ab"]) == [2.0]                                    # the warm spare serves the next call at once,
    assert time.monotonic() - t0 < 0.5                           # while the replacements still start


def test_the_deadline_is_per_group_of_the_call():
    r = Sleeper(timeout=0.4)
    assert r.budget(8) == pytest.approx(0.4) and r.budget(9) == pytest.approx(0.8)
    r.args = type("Args", (), {"num_generations": 4})()
    assert r.budget(8) == pytest.approx(0.8)


def test_isolate_scores_in_a_worker_and_agrees_with_in_process():
    assert PidReward()(["x"]) == [float(os.getpid())]
    pids = set(PidReward(isolate=True)(["x"] * 6))
    assert os.getpid() not in {int(p) for p in pids}
    assert {int(p) for p in pids} <= set(get_pool().pids())
    comps = ["<think>a</think><answer>b</answer>", "no tags", "<think>x</think>"] * 3
    assert build("think_format:isolate=true")(comps) == build("think_format")(comps)


def test_a_killed_trainer_leaves_no_worker(tmp_path):
    script = textwrap.dedent(f"""
        import json, os, sys, time
        sys.path.insert(0, {HERE!r})
        from runtime_rewards import Sleeper
        from swift_ext.rewards.pool import get_pool
        Sleeper(timeout=30)(["ok"])
        print(json.dumps(get_pool().pids()), flush=True)
        Sleeper(timeout=30)(["hang"])
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    pids = json.loads(proc.stdout.readline())
    assert pids and all(alive(p) for p in pids)
    proc.kill()                                                  # SIGKILL: no atexit, no cleanup code runs
    proc.wait()
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)


class TestMath:
    def test_a_group_of_eight_bombs_costs_about_one_timeout(self):
        r = build("math_accuracy:timeout=1")
        assert r(["<answer>x</answer>"], solution=["\\frac{1}{2}"]) == [0.0]     # pool up, outside the timing
        bombs = [f"<answer>{h}</answer>" for h in (r"2^{2^{2^{2^{30}}}}", r"(10^{10})!", r"9^{9^{9^{9}}}-1",
                                                   r"\sum_{k=1}^{10^{9}} k^{k}")] * 2
        t0 = time.monotonic()
        out = r(bombs, solution=["\\frac{1}{2}"] * 8)
        elapsed = time.monotonic() - t0
        assert out == [0.0] * 8
        assert elapsed < 1.0 + 1.0, elapsed
        no_leak()

    def test_gold_in_words_abstains_whatever_the_completion(self):
        r = build("math_accuracy")
        comps = ["<answer>forty two</answer>", "<answer>two forty</answer>", "<answer>42</answer>", "", "forty two"]
        assert r(comps, solution=["forty two"] * 5) == [None] * 5
        assert r(["<answer>\\frac{</answer>"], solution=["\\frac{"]) == [None]   # identical, unparseable

    def test_sign_and_fraction_are_not_dropped(self):
        r = build("math_accuracy")
        assert r(["<answer>3</answer>", "<answer>-3</answer>", "<answer>12</answer>", "<answer>0.5</answer>"],
                 solution=["-3", "-3", "1/2", "1/2"]) == [0.0, 1.0, 0.0, 1.0]

    def test_algebra_still_parses(self):
        r = build("math_accuracy")
        assert r(["<answer>x+1</answer>", "<answer>1+x</answer>", "<answer>\\pi r^2</answer>"],
                 solution=["1+x", "x + 2", "\\pi r^2"]) == [1.0, 0.0, 1.0]

    def test_isolate_false_gives_the_same_scores(self):
        comps = ["<answer>\\frac{2}{4}</answer>", "<answer>0.25</answer>", "\\boxed{2^{10}}", "<answer>x</answer>"]
        golds = ["0.5", "1/4", "1024", "forty"]
        assert build("math_accuracy:isolate=false")(comps, solution=golds) == \
            build("math_accuracy")(comps, solution=golds) == [1.0, 1.0, 1.0, None]


def test_row_schema_pattern_backtracking_is_bounded():
    r = build("json_schema:timeout=0.5")
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a|aa)+$"}}}
    comp = json.dumps({"s": "a" * 60 + "!"})
    t0 = time.monotonic()
    out = r([comp] * 8, schema=[schema] * 8)
    assert time.monotonic() - t0 < 0.5 + 1.0
    assert out == [None] * 8                                     # the schema cannot be evaluated in time
    assert r([json.dumps({"s": "aaa"})], schema=[schema]) == [1.0]


class TestAsync:
    def test_completions_run_concurrently(self):
        r = SlowAsync(seconds=0.2)
        t0 = time.monotonic()
        assert asyncio.run(r(["x"] * 32)) == [1.0] * 32
        assert time.monotonic() - t0 < 0.2 * 4                   # two waves of 16, not 32 in a row
        assert r.peak == 16

    def test_the_process_limit_is_shared(self, monkeypatch):
        monkeypatch.setenv("SWIFT_EXT_ASYNC_CONCURRENCY", "4")
        a, b = SlowAsync(seconds=0.1), SlowAsync(seconds=0.1)

        async def both():
            return await asyncio.gather(a(["x"] * 8), b(["x"] * 8))

        asyncio.run(both())
        assert a.peak + b.peak <= 8 and max(a.peak, b.peak) <= 4

    def test_a_call_ends_at_its_deadline(self):
        r = SlowAsync(seconds=1e6, timeout=0.3)
        t0 = time.monotonic()
        assert asyncio.run(r(["x"] * 4)) == [None] * 4
        assert time.monotonic() - t0 < 0.3 + 1.0


def test_a_lone_score_call_is_bounded_too():
    """Outside a call (no pool) each pattern match still stops: the regex engine's limit counts CPU time."""
    from swift_ext.rewards.structured import MATCH_TIMEOUT

    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a|aa)+$"}}}
    t0 = time.process_time()
    assert build("json_schema").score(json.dumps({"s": "a" * 60 + "!"}), schema=schema) is None
    assert time.process_time() - t0 < MATCH_TIMEOUT + 1.0


def test_schemas_with_patterns_go_to_the_pool_and_others_stay():
    r = build("json_schema")
    plain = {"type": "object"}
    with_pattern = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^a+$"}}}
    from swift_ext.rewards.base import Rows

    assert not r.use_pool(Rows(2, {"schema": [plain, plain]}))
    assert r.use_pool(Rows(2, {"schema": [plain, with_pattern]}))
    assert r(['{"s": "aa"}', '{"s": "b"}'], schema=[with_pattern] * 2) == [1.0, 0.0]


def test_workers_that_cannot_start_are_not_restarted_for_ever(monkeypatch):
    from swift_ext.rewards import pool as pool_mod

    p = pool_mod.Pool(size=1)
    p.need(["swift_ext.rewards.no_such_module_at_all"])      # imported at start: a failure there is tolerated ...
    monkeypatch.setattr(pool_mod.sys, "executable", "/bin/false")   # ... but a worker that exits is not
    with pytest.raises(RuntimeError, match=r"died \d+ times before starting"):
        p.run([("os:getpid", ())], 1.0)
    deadline = time.monotonic() + 10                          # a spare just spawned may still be exiting
    while p.pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(p.pids()) == 0 and p.started <= 5              # a few tries, not a spawn storm
