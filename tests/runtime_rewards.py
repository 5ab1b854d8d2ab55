"""Rewards that misbehave on purpose, for the deadline tests (importable by the pool's worker processes,
which get the test process's sys.path)."""

import asyncio
import os
import subprocess
import time

from swift_ext.params import Param
from swift_ext.rewards import AsyncReward, Reward


class Sleeper(Reward):
    """Sleeps ``seconds`` on completions containing "hang" (forever by default); 1.0 otherwise."""

    name = "test_sleeper"
    may_hang = True
    params = {"seconds": Param(1e6, "how long a 'hang' completion sleeps"),
              "child_file": Param("", "start a grandchild process and write its pid here first")}

    def score(self, completion, **row):
        if "hang" in completion:
            if self.child_file:
                child = subprocess.Popen(["sleep", "1000"])
                with open(self.child_file, "w") as fh:
                    fh.write(str(child.pid))
            time.sleep(self.seconds)
        return float(len(completion) % 3)


class PidReward(Reward):
    """The pid of the process that scores (tells whether a reward ran in a worker)."""

    name = "test_pid"

    def score(self, completion, **row):
        return float(os.getpid())


class SlowAsync(AsyncReward):
    """Waits ``seconds`` per completion; counts how many are in flight at once (``peak``)."""

    name = "test_slow_async"
    concurrency = 16
    params = {"seconds": Param(0.2, "wait per completion")}

    def setup(self):
        self.live = self.peak = 0

    async def ascore(self, completion, **row):
        self.live += 1
        self.peak = max(self.peak, self.live)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.live -= 1
        return 1.0


class Counted(Reward):
    """1.0 for every completion; counts the completions it scored (class-wide, ``seen``)."""

    name = "test_counted"
    seen = []

    def score(self, completion, **row):
        Counted.seen.append(completion)
        return 1.0
