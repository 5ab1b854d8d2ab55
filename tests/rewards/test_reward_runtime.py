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
    """Every child of this process is a current pool worker's keeper (killed workers are reaped and gone)."""
    pool = get_pool()
    assert set(children()) <= set(pool.keepers())


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
    # the first call of a reward whose module the workers lack waits, outside its deadline, for workers that
    # imported it (rewards.pool); the deadline bounds every call after that
    assert r([json.dumps({"s": "aa"})], schema=[schema]) == [1.0]
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
    while p.keepers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(p.keepers()) == 0 and p.started <= 5           # a few tries, not a spawn storm


# -- issue 17: frames, lost workers, unreadable results, forks, escaped grandchildren, memory --------------
@pytest.fixture
def own_pool(monkeypatch):
    """A fresh one-worker pool whose workers can import the helper functions in tests/ (``runtime_rewards``)."""
    from swift_ext.rewards.pool import Pool

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]))
    pools = []

    def make(**kw):
        pools.append(Pool(size=kw.pop("size", 1), **kw))
        return pools[-1]

    yield make
    for p in pools:
        p.close()


def wait_gone(pids, seconds=5.0):
    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(alive(p) for p in pids)


@pytest.mark.parametrize("size", [1024, 65535, 65536, 65537, 10 << 20])
def test_frames_of_any_size_arrive_whole(size):
    """A pipe read returns at most 64 KiB: a job frame is read until complete (it was taken for EOF)."""
    assert get_pool().run([("builtins:len", ("x" * size,))], 30.0) == [("ok", size)]


def test_an_isolated_reward_on_70_kb_completions_scores_as_in_process():
    from runtime_rewards import TextLength

    rng = __import__("random").Random(0)
    comps = ["".join(rng.choice("abc de\n") for _ in range(70_000 + i)) for i in range(8)]
    here = TextLength()(comps)
    assert here == [float(len(c)) for c in comps]
    assert TextLength(isolate=True)(comps) == here


def test_a_worker_that_dies_abstains_as_documented(tmp_path, caplog):
    """A chunk whose worker died is not scored: it gets ``timeout_score`` (None) with one warning, not 0.0."""
    from runtime_rewards import Sleeper

    r = Sleeper(timeout=30)
    assert r(["ok"]) == [2.0]
    workers = get_pool().pids()

    import threading

    def kill_all():                                              # killed from outside (the OOM killer, say)
        for pid in workers:
            os.kill(pid, 9)

    threading.Timer(0.5, kill_all).start()
    t0 = time.monotonic()
    with caplog.at_level("WARNING", logger="swift_ext.rewards"):
        out = r(["hang"] * 16)
    assert out == [None] * 16                                    # 0.2.0: [0.0] * 16
    assert time.monotonic() - t0 < 10                            # at once, not at the 30 s deadline
    assert "not scored in the worker pool" in caplog.text and "reward worker died" in caplog.text


def test_a_result_that_cannot_be_unpickled_here_does_not_escape(own_pool):
    p = own_pool()
    status, why = p.run([("runtime_rewards:unloadable", ())], 10.0)[0]
    assert status == "lost" and "cannot be rebuilt here" in why
    assert p.run([("builtins:len", ("abc",))], 10.0) == [("ok", 3)]      # the pool goes on


def test_a_reward_whose_scores_cannot_be_unpickled_abstains():
    from runtime_rewards import UnloadableScores

    assert UnloadableScores(isolate=True)(["a", "b", "c"]) == [None] * 3
    assert PidReward(isolate=True)(["x"])[0] in get_pool().pids()


def test_a_reward_that_forks_does_not_add_a_worker(own_pool):
    p = own_pool()
    assert p.run([("runtime_rewards:fork_and_return", ())], 10.0) == [("ok", "forked")]
    time.sleep(0.2)
    from swift_ext.rewards.pool import _descendants

    assert [len(_descendants(k)) for k in p.keepers()] == [1] * len(p.keepers())   # the copy exited at once
    answers = {p.run([("os:getpid", ())], 10.0)[0] for _ in range(20)}
    assert answers <= {("ok", w) for w in p.pids()}                                  # only the workers answer


@pytest.mark.parametrize("how", ["setsid_grandchild", "double_fork_grandchild"])
def test_what_a_worker_started_outside_its_group_dies_with_the_pool(own_pool, tmp_path, how):
    p = own_pool()
    pid_file = tmp_path / "grandchild.pid"
    status, pid = p.run([(f"runtime_rewards:{how}", (str(pid_file),))], 10.0)[0]
    assert status == "ok" and alive(pid)
    assert os.getpgid(pid) != os.getpgid(p.pids()[0])                # out of the worker's process group
    p.close()
    assert wait_gone([pid])


def test_what_a_worker_started_outside_its_group_dies_with_a_killed_trainer(tmp_path):
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {HERE!r})
        from swift_ext.rewards.pool import Pool
        p = Pool(size=1)
        got = [p.run([("runtime_rewards:" + how, ({str(tmp_path)!r} + "/" + how,))], 10.0)[0][1]
               for how in ("setsid_grandchild", "double_fork_grandchild")]
        print(json.dumps(got + p.pids() + p.keepers()), flush=True)
        import time; time.sleep(1000)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([HERE] + [p for p in sys.path if p])}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    pids = json.loads(proc.stdout.readline())
    assert len(pids) >= 4 and all(alive(p) for p in pids)            # 2 grandchildren, workers, keepers
    proc.kill()                                                      # SIGKILL: no atexit, no cleanup code runs
    proc.wait()
    assert wait_gone(pids)


def test_workers_have_a_memory_cap(own_pool):
    p = own_pool(memory=256)
    worker = p.run([("os:getpid", ())], 10.0)[0][1]
    with open(f"/proc/{worker}/limits") as fh:
        line = next(x for x in fh if x.startswith("Max address space"))
    assert line.split()[3] == str(256 << 20)
    status, why = p.run([("runtime_rewards:allocate", (1024,))], 10.0)[0]
    assert status == "error" and "MemoryError" in why                  # refused, not taken from the node
    assert p.run([("runtime_rewards:allocate", (16,))], 10.0) == [("ok", 16 << 20)]


def test_the_default_memory_cap_and_its_variable(monkeypatch):
    from swift_ext.rewards import pool as pool_mod

    assert pool_mod.Pool(size=1).memory == pool_mod.DEFAULT_MEMORY
    monkeypatch.setenv(pool_mod.MEMORY_ENV, "0")
    assert pool_mod.Pool(size=1).memory == 0
    monkeypatch.setenv(pool_mod.MEMORY_ENV, "lots")
    with pytest.raises(ValueError, match=pool_mod.MEMORY_ENV):
        pool_mod.Pool(size=1)


def test_workers_start_without_a_runtime_warning(tmp_path):
    """Issue 18: ``python -m swift_ext.rewards.pool`` ran the module twice and printed a RuntimeWarning per worker."""
    script = textwrap.dedent("""
        from swift_ext.rewards.pool import Pool
        p = Pool(size=2)
        assert p.wait_ready()
        print(p.run([("os:getpid", ())] * 4, 10.0))
        p.close()
    """)
    proc = subprocess.run([sys.executable, "-W", "default", "-c", script], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout
    assert "Warning" not in proc.stderr and "found in sys.modules" not in proc.stderr, proc.stderr


def test_math_accuracy_scores_the_same_on_a_pool_another_reward_started(tmp_path):
    """``<answer>42</answer>`` against the gold ``forty two`` scored 0.0 on the first calls and None afterwards: a
    pool started by another isolated reward had workers without math-verify, so the checks paid its import and
    warm-up (a second or more) inside their deadline and timed out (0.0) until every worker had been replaced. Now such
    workers are replaced before the call and the call waits for a warmed one, outside its deadline. A fresh
    process, as a user's run starts."""
    script = textwrap.dedent("""
        from swift_ext.rewards import build
        print(build("exact_match:isolate=true")(["a"], solution=["a"]))   # the pool starts without math-verify
        r = build("math_accuracy:timeout=0.5")
        print([r(["<answer>42</answer>", "<answer>\\\\frac{1}{2}</answer>"], solution=["forty two", "0.5"])
               for _ in range(3)])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    assert proc.returncode == 0, proc.stderr
    first, calls = proc.stdout.strip().splitlines()
    assert first == "[1.0]"
    assert calls == str([[None, 1.0]] * 3), proc.stderr
    assert "not scored within" not in proc.stderr, proc.stderr


def test_a_worker_started_before_a_module_was_needed_gets_no_job(own_pool):
    """Pool level: after ``need`` adds a module, the workers started without it are replaced, and a job runs in a
    worker that imported the module (and ran its ``warm_up``) before it said ready."""
    p = own_pool(size=1)
    assert p.wait_ready()
    before = set(p.pids())
    p.need(["runtime_rewards"])
    (status, pid), = p.run([("os:getpid", ())], 30.0)
    assert status == "ok" and pid not in before
    assert all("runtime_rewards" in w.modules for w in p.workers)
