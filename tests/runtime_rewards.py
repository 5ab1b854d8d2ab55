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


class TextLength(Reward):
    """The completion's length in characters (a reward whose score shows whether the whole text arrived)."""

    name = "test_text_length"

    def score(self, completion, **row):
        return float(len(completion))


# -- module-level functions the pool tests run in workers ---------------------------------------------------
class Unloadable:
    """Pickles in a worker; cannot be unpickled in the parent (its reduce names a function that raises)."""

    def __reduce__(self):
        return (_refuse, ())


def _refuse():
    raise RuntimeError("this object cannot be rebuilt here")


def unloadable():
    return Unloadable()


class UnloadableScores(Reward):
    """Returns scores whose pickle cannot be loaded in the trainer (a ``Checked`` list skips the float check)."""

    name = "test_unloadable_scores"

    def score_batch(self, completions, rows):
        from swift_ext.rewards.base import Checked

        return Checked([Unloadable() for _ in completions])


def fork_and_return():
    """Forks; both processes return (the copy would go on reading jobs if the worker let it)."""
    os.fork()
    return "forked"


def setsid_grandchild(pid_file):
    """Starts ``sleep 1000`` in a new session (out of the worker's process group) and writes its pid."""
    child = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    with open(pid_file, "w") as fh:
        fh.write(str(child.pid))
    return child.pid


def double_fork_grandchild(pid_file):
    """A daemon the classic way: fork, setsid, fork again, the middle process exits (orphans the sleeper)."""
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.setsid()
        grand = os.fork()
        if grand == 0:
            os.execvp("sleep", ["sleep", "1000"])
        os.write(w, str(grand).encode())
        os._exit(0)
    os.close(w)
    pid = int(os.read(r, 64))
    os.close(r)
    os.waitpid(middle, 0)
    with open(pid_file, "w") as fh:
        fh.write(str(pid))
    return pid


def allocate(mib):
    """Allocates ``mib`` MiB and touches it."""
    block = bytearray(mib << 20)
    return len(block)
