"""An isolated reward whose trainer arguments take long to import still scores within its deadline.

Inside ms-swift a reward is built with ``args`` (the trainer's arguments); the worker rebuilds it from a pickle,
which imports ms-swift. On a loaded node that import took longer than the call's deadline, the worker was
killed mid-import at every call and nothing was ever scored (found by the world-size-2 GRPO run). The
modules the pickle needs are now imported by each worker before it says ready. A generated module that sleeps
at import stands in for ms-swift's import time; the pool, its workers and the reward are real."""

import os
import sys
import time

import pytest

from swift_ext.rewards import build, pool

SLOW = 3.0


@pytest.fixture
def slow_args(tmp_path, monkeypatch):
    (tmp_path / "slow_trainer_args.py").write_text(
        f"import time\ntime.sleep({SLOW})\n\nclass Arguments:\n    num_generations = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # importable by the workers when they start, as ms-swift is from site-packages
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]))
    import slow_trainer_args
    yield slow_trainer_args.Arguments()
    sys.modules.pop("slow_trainer_args", None)
    pool.shutdown()


def test_an_isolated_reward_with_slow_to_import_arguments_scores_within_its_deadline(slow_args):
    pool.shutdown()                                        # a fresh pool, as in a new training process
    reward = build("think_format:isolate=true,timeout=1.0", args=slow_args)
    comps = ["<think>a</think> 4", "no think"]
    expect = build("think_format")(comps)
    t0 = time.monotonic()
    first = reward(comps)
    assert first == expect                                 # scored, not abstained at the deadline
    assert reward(comps) == expect                         # and again, from the warm workers
    assert time.monotonic() - t0 < 60


def test_warm_workers_moves_the_wait_before_the_first_call(slow_args):
    pool.shutdown()
    reward = build("think_format:isolate=true,timeout=1.0", args=slow_args)
    assert reward.warm_workers() is True
    t0 = time.monotonic()
    assert reward(["<think>a</think> 4"]) == build("think_format")(["<think>a</think> 4"])
    assert time.monotonic() - t0 < SLOW                    # the slow import happened before the call
