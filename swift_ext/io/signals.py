"""Catchable termination signals: SIGTERM / SIGHUP raised as an exception so temporary files go on the way out."""

from __future__ import annotations

import contextlib
import os
import signal


# -- catchable signals ------------------------------------------------------------------------------
class Terminated(KeyboardInterrupt):
    """A termination signal (SIGTERM, SIGHUP: what Slurm pre-emption and a closed terminal send) raised as an
    exception, so ``except BaseException`` / ``finally`` blocks delete temporary files on the way out.
    A KeyboardInterrupt, so code that catches ``Exception`` does not swallow it. ``exit_code``: 128 + signal."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(signal.Signals(signum).name)


def exit_code(exc: KeyboardInterrupt) -> int:
    """The shell's exit status for a run stopped by ``exc``: 128 + the signal (SIGINT 130, SIGTERM 143,
    SIGHUP 129)."""
    return getattr(exc, "exit_code", 128 + signal.SIGINT)


@contextlib.contextmanager
def signals_raise(signums=(signal.SIGTERM, signal.SIGHUP)):
    """Inside the block, the signals in ``signums`` raise :class:`Terminated` in this process (SIGINT already
    raises KeyboardInterrupt), and the block ends with it even if clean-up code replaced it by another
    exception. Only one is raised: a second signal during the clean-up is ignored, so the
    clean-up finishes. Child processes forked inside the block (``--num-proc`` workers) get the default action
    back (they die, and the parent sees it). A signal already ignored (``nohup``) stays ignored. Outside the main
    thread this does nothing."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()
    fired = []

    def handler(signum, frame):
        if os.getpid() != owner:  # a forked child: die as the signal says
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if fired:
            return
        fired.append(signum)
        raise Terminated(signum)

    # a signal the caller ignores stays ignored (``nohup`` sets SIGHUP to SIG_IGN: the run must go on)
    previous = {s: signal.signal(s, handler) for s in signums if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    except BaseException as exc:
        # code on the way out may replace the exception (datasets' pool clean-up raises a TimeoutError):
        # a run a signal stopped still ends as Terminated
        if fired and not isinstance(exc, Terminated):
            raise Terminated(fired[0]) from exc
        raise
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


