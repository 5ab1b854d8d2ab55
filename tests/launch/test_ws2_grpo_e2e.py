"""One real world-size-2 GRPO run on CPU, started as a user does (``swift-ext launch grpo --device cpu --nproc 2``:
torchrun, two gloo ranks), shared by every test of this module: swift-ext's rewards, the judge and its shared
cache, the callbacks, the audit and the report, each checked for what changes with several ranks.

What it runs: the tiny local Qwen3, 2 steps, 2 completions per prompt, 2 prompts per step (one per rank),
greedy decoding (``top_k 1``: every rank writes the same completion for the same prompt, so the two ranks
judge the same text and can hit each other's cached verdicts). Rewards: ``think_format``, the ``judge``
against ``tests/judge_standin.py`` (a real HTTP server standing in for a GPU-served judge model) and
``rank_probe``, a test plugin installed as a real package: it scores in the reward worker pool, returns
rank + 1, records each call (rank side) and each job (worker side), and sleeps through its first call on
rank 1, so the deadline must end it. Callbacks: ``reward_eval``, ``train_sanity``, ``sample_logger``,
``audit``; evaluation after each step on 2 validation prompts.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from swift_ext.curation import audit
from swift_ext.runs import Run, load_run, metric_series, step_of
from swift_ext.testing import install_package, plugin_package, tiny, with_path

pytestmark = pytest.mark.e2e

TESTS = Path(__file__).resolve().parent.parent
PROBE_TIMEOUT = 4.0  # seconds per GRPO group of rank_probe: each rank scores one group per step

PROBE = '''
import json, os, time
from pathlib import Path

from swift_ext import hookimpl
from swift_ext.params import Param
from swift_ext.rewards import Reward, pool


def _append(path, record):
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\\n")


class RankProbe(Reward):
    """rank + 1, scored in the reward worker pool; the first job on rank ``hang_rank`` sleeps."""

    name = "rank_probe"
    may_hang = True
    params = {"dir": Param("", "where to record"), "hang_rank": Param(1, "rank whose first job hangs", type=int)}

    def score(self, completion, **row):             # in a worker process
        rank = int(os.environ["RANK"])
        keeper = os.getppid()   # each worker is forked by its keeper process, which the rank started
        with open(f"/proc/{keeper}/stat") as fh:
            owner = int(fh.read().rsplit(")", 1)[1].split()[1])
        _append(Path(self.dir) / f"worker-{os.getpid()}.jsonl", {"pid": os.getpid(), "ppid": keeper,
                                                                   "owner": owner, "rank": rank})
        marker = Path(self.dir) / f"hung-rank{rank}"
        if rank == self.hang_rank and not marker.exists():
            marker.touch()
            time.sleep(60)   # far past the deadline: the pool must end it
        return float(rank + 1)

    def __call__(self, completions, **kwargs):       # in the rank
        if not getattr(self, "_warm", False):        # the pool's start is not part of a call's deadline
            self._warm = self.warm_workers()
        t0 = time.monotonic()
        out = super().__call__(completions, **kwargs)
        p = pool.get_pool()
        _append(Path(self.dir) / f"rank{os.environ['RANK']}.jsonl", {
            "rank": int(os.environ["RANK"]), "pid": os.getpid(), "n": len(completions),
            "seconds": time.monotonic() - t0, "budget": self.budget(len(completions)), "pool_size": p.size,
            "kills": p.kills, "local_world_size": int(os.environ["LOCAL_WORLD_SIZE"]),
            "cpus": len(os.sched_getaffinity(0)), "scores": out})
        return out


@hookimpl
def register_rewards(register):
    register(RankProbe)
'''


def _rows(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def ws2(tiny_models, swift_env, tmp_path_factory):
    work = tmp_path_factory.mktemp("ws2")
    model = tiny_models["text"]
    probe_dir = work / "probe"
    probe_dir.mkdir()
    target = work / "site"
    install_package(plugin_package(work / "src", "rankprobe", PROBE), target)
    # every training row asks the same question: both ranks judge the same (greedy) completion at every step
    same = {"messages": [{"role": "user", "content": "What is 2 + 3? Think, then give the number."}], "solution": "5"}
    data = tiny.write_jsonl(work / "grpo.jsonl", [same] * 16)
    val = tiny.write_jsonl(work / "val.jsonl", tiny.grpo_rows(10)[8:])
    standin = subprocess.Popen([sys.executable, str(TESTS / "judge_standin.py")], stdout=subprocess.PIPE, text=True)
    port = int(standin.stdout.readline())
    cache = work / "judge.sqlite"
    judge = f"judge:base_url=http://127.0.0.1:{port}/v1,rubric=helpfulness,max_tokens=8,cache={cache}"
    out = work / "out"
    probe = f"rank_probe:dir={probe_dir},timeout={PROBE_TIMEOUT}"  # ms-swift names the reward by this spec
    env = {**with_path(swift_env, target), "SWIFT_EXT_LOAD_PLUGINS": "rankprobe"}
    cmd = [sys.executable, "-m", "swift_ext", "launch", "grpo", "--device", "cpu", "--nproc", "2",
           "--log-dir", str(work / "logs"), "--set", "use_vllm=false", "--set", "gradient_checkpointing=false",
           "--set", f"dataset={data}", "--set", f"val_dataset={val}", "--",
           *tiny.common_flags(model), "--reward_funcs", "think_format", judge,
           probe,
           "--callbacks", "reward_eval:threshold=0.5", "train_sanity:n=2,k=2", "sample_logger",
           "audit:every_steps=1",
           "--num_generations", "2", "--num_generations_eval", "2", "--per_device_train_batch_size", "2",
           "--per_device_eval_batch_size", "2", "--gradient_accumulation_steps", "1", "--top_k", "1",
           "--max_completion_length", "8", "--max_length", "256", "--max_steps", "2", "--eval_strategy", "steps",
           "--eval_steps", "1", "--save_strategy", "no", "--logging_steps", "1", "--lora_rank", "4",
           "--lora_alpha", "8", "--learning_rate", "1e-3", "--output_dir", str(out)]
    try:
        res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as resp:
            stats = json.loads(resp.read())
    finally:
        standin.kill()
        standin.wait()
    yield {"res": res, "out": out, "probe": probe_dir, "spec": probe, "cache": cache, "judge": judge, "standin": stats,
           "log": (work / "logs" / "train.log").read_text(errors="replace") if (work / "logs").exists() else ""}


def _ok(ws2):
    res = ws2["res"]
    assert res.returncode == 0, (res.stdout + res.stderr)[-5000:]


def _train_rows(out):
    return [r for r in tiny.logging_rows(out) if "loss" in r and "train_runtime" not in r]


def test_two_gloo_ranks_train_once_and_end_cleanly(ws2):
    _ok(ws2)
    log = ws2["log"]
    assert "world_size: 2" in log and "--use_cpu true --ddp_backend gloo" in log
    assert "SIGABRT" not in log and "terminate called" not in log
    rows = _train_rows(ws2["out"])
    # one row per step (rank 0 writes logging.jsonl; an undistributed run would have each rank write its own)
    assert [step_of(r) for r in rows] == [1, 2]
    # 2 prompts per step (one per rank) of 16 rows: 1/8 epoch per step, so the ranks split the data
    assert rows[-1]["epoch"] == pytest.approx(2 * 2 / 16)


def test_each_rank_has_its_own_pool_sized_by_local_ranks_and_keeps_its_deadline(ws2):
    _ok(ws2)
    calls = {r: _rows(ws2["probe"] / f"rank{r}.jsonl") for r in (0, 1)}
    workers = [rec for f in ws2["probe"].glob("worker-*.jsonl") for rec in _rows(f)]
    for rank, recs in calls.items():
        assert len(recs) >= 2, recs  # 2 training steps (+ sanity and evaluation calls)
        first = recs[0]
        assert first["local_world_size"] == 2
        # per-rank pool: the CPUs this rank may use over the ranks on the node (1..8)
        assert all(c["pool_size"] == max(1, min(8, c["cpus"] // 2)) for c in recs)
        mine = {w["pid"] for w in workers if w["rank"] == rank}
        assert mine and all(w["owner"] == first["pid"] for w in workers if w["rank"] == rank)
    assert not {w["pid"] for w in workers if w["rank"] == 0} & {w["pid"] for w in workers if w["rank"] == 1}
    hung, fast = calls[1][0], calls[0][0]
    # rank 1's first call hung in its worker: ended at its deadline, every row abstained, the worker killed
    assert hung["budget"] == PROBE_TIMEOUT and hung["scores"] == [None] * hung["n"]
    assert PROBE_TIMEOUT * 0.9 <= hung["seconds"] <= PROBE_TIMEOUT + 10 and hung["kills"] == 1
    # rank 0 did not wait on rank 1's pool: its own call was scored, well within the deadline
    assert fast["scores"] == [1.0] * fast["n"] and fast["seconds"] < PROBE_TIMEOUT and fast["kills"] == 0
    assert all(c["scores"] == [2.0] * c["n"] for c in calls[1][1:])  # later calls on rank 1 score


def test_ranks_share_the_judge_cache(ws2):
    _ok(ws2)
    with sqlite3.connect(ws2["cache"]) as db:
        stats = {w.split("@")[0]: (h, sh, m) for w, h, sh, m in
                 db.execute("SELECT writer, hits, shared_hits, misses FROM stats")}
        writers = {w.split("@")[0] for (w,) in db.execute("SELECT writer FROM verdicts")}
    assert set(stats) == {"rank0", "rank1"} and writers <= {"rank0", "rank1"}
    hits = sum(h for h, _, _ in stats.values())
    misses = sum(m for _, _, m in stats.values())
    # each rank judged the same greedy completion of the same question at every step: after the first
    # verdict, its owner's hits are its own and the other rank's hits are shared (a verdict has one writer)
    assert sum(sh for _, sh, _ in stats.values()) >= 1, stats
    # every miss became exactly one request to the judge; every hit saved one
    assert ws2["standin"]["requests"] == misses and hits > misses


def _recompute(rows, names):
    """mean / accuracy (>= 0.5) / pass@2 per reward from sample-logger rows (groups of 2)."""
    out = {}
    groups = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r)
    for name in names:
        scores = [r["rewards"][name] for r in rows]
        out[f"{name}/mean"] = sum(scores) / len(scores)
        out[f"{name}/accuracy"] = sum(s >= 0.5 for s in scores) / len(scores)
        out[f"{name}/pass@2"] = sum(any(x["rewards"][name] >= 0.5 for x in g) for g in groups.values()) / len(groups)
    return out, len(groups)


def test_callbacks_log_once_per_step_with_values_of_all_ranks(ws2):
    _ok(ws2)
    out = ws2["out"]
    (samples_file,) = out.rglob("swift_ext_samples.jsonl")  # one file, written by rank 0 only
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]  # never interleaved
    logs = tiny.logging_rows(out)
    for step in (1, 2):
        evals = [r for r in samples if r["split"] == "eval" and r["step"] == step]
        # both ranks' evaluation completions (2 val prompts x 2 generations, one prompt per rank), once each
        assert len(evals) == 4 and sorted(Counter(r["group"] for r in evals).values()) == [2, 2]
        assert {r["solution"] for r in evals} == {"35", "39"}
        logged = [r for r in logs if "eval_ext/prompts" in r and step_of(r) == step]
        assert len(logged) == 1, logged
        spec = ws2["spec"]
        expect, prompts = _recompute(evals, ["think_format", spec])
        assert logged[0]["eval_ext/prompts"] == prompts == 2
        for key, value in expect.items():
            assert logged[0][f"eval_ext/{key}"] == pytest.approx(value, abs=1e-6), key
        # ms-swift's own eval mean, computed over every rank, agrees
        own = next(r for r in logs if step_of(r) == step and "eval_reward" in r)
        assert own[f"eval_rewards/{spec}/mean"] == pytest.approx(expect[f"{spec}/mean"], abs=1e-6)
        # the eval rows of rank 1 score 2.0, rank 0's 1.0: both ranks are in the metric
        assert sorted(r["rewards"][spec] for r in evals) == [1.0, 1.0, 2.0, 2.0]
        sanity = [r for r in samples if r["split"] == "train_sanity" and r["step"] == step]
        assert len(sanity) == 4  # n=2 rows x k=2, once (rank 0's), not once per rank
        row = [r for r in logs if "train_sanity/prompts" in r and step_of(r) == step]
        assert len(row) == 1 and row[0]["train_sanity/prompts"] == 2
    # audit: the detectors ran inside training on every rank; rank 0 alone warned, once per detector, and
    # what it warned of is what the detectors find offline on the logged rows
    train = _train_rows(out)
    clean = [{k: v for k, v in r.items() if not k.startswith("audit/")} for r in train]
    full = Run(path=out, name="x", rows=clean)
    full.series = metric_series(full.rows)
    offline = {f.detector: f for f in (d(full) for d in audit.METRIC_DETECTORS)}
    warned = re.findall(r"audit (warn|error) at step (\d+): (\w+):", ws2["log"])
    assert warned, "no audit warning in the training log"
    assert len(warned) == len({d for _, _, d in warned})           # once each: not once per rank
    for status, step, detector in warned:
        assert step == "2" and offline[detector].status == status, (detector, status, offline[detector])
    # a value logged at step N is the detector on the rows before it (it runs in on_log; its metrics join
    # the next row) and equal on both ranks, or ms-swift's mean over ranks would differ
    for i in range(1, len(train)):
        upto = Run(path=out, name="x", rows=clean[:i])
        upto.series = metric_series(upto.rows)
        for detector in audit.METRIC_DETECTORS:
            f = detector(upto)
            if f"audit/{f.detector}" in train[i]:
                assert train[i][f"audit/{f.detector}"] == pytest.approx(f.value, abs=1e-6), f.detector
                assert train[i][f"audit/{f.detector}/level"] == audit.SEVERITY[f.status]


def test_report_and_audit_read_every_ranks_completions_once(ws2):
    _ok(ws2)
    out = ws2["out"]
    run = load_run(next(p.parent for p in out.rglob("completions.jsonl")))
    comps = run.completions()
    # ms-swift logs the evaluation's completions in the same file under the same step: 2 validation prompts
    # x 2 generations (one prompt per rank); the training rows all ask "2 + 3"
    evals = {s: [c for c in comps if c.step == s and "2 + 3" not in c.prompt] for s in (1, 2)}
    by_step = {s: [c for c in comps if c.step == s and "2 + 3" in c.prompt] for s in (1, 2)}
    # 2 prompts x 2 generations per step: both ranks' completions, once each (ms-swift writes each step's
    # table several times: every log() call while it is buffered)
    assert [len(v) for v in by_step.values()] == [4, 4] and [len(v) for v in evals.values()] == [4, 4]
    assert len(comps) == 16
    assert all(sorted(c.gold for c in evals[s]) == ["35", "35", "39", "39"] for s in (1, 2))
    spec = ws2["spec"]
    assert sorted(c.scores[spec] for c in by_step[2]) == [1.0, 1.0, 2.0, 2.0]
    # step 1: rank 1's rows abstained (its first call hung until the deadline)
    assert sorted(c.scores[spec] for c in by_step[1] if c.scores.get(spec) is not None) == [1.0, 1.0]
    exe = Path(sys.executable).with_name("swift-ext")
    res = subprocess.run([str(exe), "report", str(out), "-o", str(out / "report.html"), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["completions"] == 16
    res = subprocess.run([str(exe), "audit", str(out), "--json"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["steps"] == 2
