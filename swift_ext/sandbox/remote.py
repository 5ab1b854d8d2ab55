"""The HTTP backends: SandboxFusion's ``/run_code`` and Piston's ``/api/v2/execute``.

The program (for call-based and assert-style cases, the harness holding it) is sent as source text with its
standard input; the service runs it in its own isolation and answers with the exit status and output; the
comparison with the expected output happens here, as for the local backend. A failed service (refused
connections, 5xx after retries, malformed replies, an open circuit breaker, no answer before the deadline)
gives ``sandbox_error``, never a score of the program.

SandboxFusion request: ``{code, language, stdin, compile_timeout, run_timeout, memory_limit_MB, files}``;
reply: ``{status: Success | Failed | SandboxError, message, compile_result, run_result: {status: Finished |
TimeLimitExceeded | Error, return_code, stdout, stderr, execution_time}}``.
Piston request: ``{language, version, files: [{name, content}], stdin, args, compile_timeout, run_timeout
(ms), run_memory_limit (bytes)}``; reply: ``{run: {stdout, stderr, code, signal, status?, message?},
compile?: {...}}`` (``status``: ``TO`` timeout, ``OL`` / ``EL`` output limit, ``SG`` signal, ``RE``).
"""

from __future__ import annotations

import base64
import time
from typing import Any, Dict, Optional

from .base import ERROR, KILLED, OK, OUTPUT_LIMIT, SANDBOX_ERROR, TIMEOUT, Limits, Program, RunResult, Sandbox
from ..net import Client, NetError
from .runners import get_runner

#: seconds an HTTP run may take beyond its own time limit (the service's start-up, network, queueing); the
#: call's deadline still holds: run_many returns at its deadline whatever is in flight
SLACK = 1.5


def _cap(result: RunResult, limits: Limits) -> RunResult:
    if len(result.stdout) > limits.output_bytes or len(result.stderr) > limits.output_bytes:
        result.stdout, result.stderr = result.stdout[:limits.output_bytes], result.stderr[:limits.output_bytes]
        result.truncated = True
        if result.status == OK:
            result.status, result.message = OUTPUT_LIMIT, f"more than {limits.output_bytes} bytes of output"
    return result


class _Remote(Sandbox):
    path = ""

    def __init__(self, url: str, concurrency: int = 16, retries: int = 3, backoff: float = 0.5,
                 api_key_env: Optional[str] = None):
        base = url.rstrip("/")
        self.url = base if base.endswith(self.path) else base + self.path
        # the one HTTP client (swift_ext.net): concurrency limit, retries with backoff and Retry-After, a total
        # deadline per attempt, one circuit breaker per origin, the key from api_key_env and never across origins
        self.client = Client(self.url, concurrency=concurrency, retries=retries, backoff=backoff,
                             api_key_env=api_key_env)

    def run(self, program: Program, limits: Limits) -> RunResult:
        start = time.monotonic()
        try:
            body = self.request(program, limits)
        except Exception as exc:  # an unknown language, a runner the service lacks
            return RunResult(SANDBOX_ERROR, message=str(exc))
        try:
            budget = limits.time + SLACK - (time.monotonic() - start)
            reply = self.client.post_json(self.url, body, timeout=budget, deadline=budget)
            result = self.result(reply)
        except NetError as exc:
            return RunResult(SANDBOX_ERROR, message=str(exc), seconds=time.monotonic() - start)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return RunResult(SANDBOX_ERROR, message=f"unexpected reply from {self.url}: {exc!r}",
                             seconds=time.monotonic() - start)
        result.seconds = result.seconds or time.monotonic() - start
        return _cap(result, limits)

    def request(self, program: Program, limits: Limits) -> Dict[str, Any]:
        raise NotImplementedError

    def result(self, reply: Any) -> RunResult:
        raise NotImplementedError


class FusionSandbox(_Remote):
    """SandboxFusion (``POST <url>/run_code``)."""

    name = "sandbox_fusion"
    isolation = "what the SandboxFusion service isolates (its own per-run sandbox); nothing runs here"
    path = "/run_code"

    def request(self, program: Program, limits: Limits) -> Dict[str, Any]:
        runner = get_runner(program.language)
        if not runner.fusion_language:
            raise ValueError(f"runner {runner.name} has no SandboxFusion language")
        files = {name: base64.b64encode(text.encode("utf-8")).decode("ascii") for name, text in program.files.items()}
        return {"code": program.code, "language": runner.fusion_language, "stdin": program.stdin,
                "compile_timeout": limits.time, "run_timeout": limits.time, "memory_limit_MB": limits.memory_mb,
                "files": files, "fetch_files": []}

    def result(self, reply: Any) -> RunResult:
        status = reply.get("status")
        if status == "SandboxError":
            return RunResult(SANDBOX_ERROR, message=str(reply.get("message") or "SandboxError"))
        run = reply.get("run_result") or {}
        comp = reply.get("compile_result") or {}
        if not run:
            if comp and (comp.get("status") != "Finished" or comp.get("return_code") not in (0, None)):
                return RunResult(ERROR, exit_code=comp.get("return_code"), stdout=comp.get("stdout") or "",
                                 stderr=comp.get("stderr") or "", message="compile error")
            if status not in ("Success", "Failed"):
                raise ValueError(f"status {status!r}")
            return RunResult(SANDBOX_ERROR, message=str(reply.get("message") or "no run_result"))
        out = RunResult(OK, exit_code=run.get("return_code"), stdout=run.get("stdout") or "",
                        stderr=run.get("stderr") or "", seconds=float(run.get("execution_time") or 0.0))
        if run.get("status") == "TimeLimitExceeded":
            out.status, out.message = TIMEOUT, "time limit (SandboxFusion)"
        elif run.get("status") != "Finished":
            out.status, out.message = ERROR, f"run status {run.get('status')}"
        elif out.exit_code != 0:
            out.status = ERROR
        return out


class PistonSandbox(_Remote):
    """Piston (``POST <url>/api/v2/execute``)."""

    name = "piston"
    isolation = "what the Piston server isolates (isolate: namespaces and cgroups per run); nothing runs here"
    path = "/execute"

    def __init__(self, url: str, **kwargs: Any):
        base = url.rstrip("/")
        if not base.endswith(("/api/v2", "/execute")):
            base += "/api/v2"
        super().__init__(base, **kwargs)

    def request(self, program: Program, limits: Limits) -> Dict[str, Any]:
        runner = get_runner(program.language)
        if not runner.piston_language:
            raise ValueError(f"runner {runner.name} has no Piston language")
        files = [{"name": runner.main_file, "content": program.code}] + \
                [{"name": n, "content": t} for n, t in program.files.items()]
        ms = int(limits.time * 1000)
        return {"language": runner.piston_language, "version": runner.piston_version, "files": files,
                "stdin": program.stdin, "args": [], "compile_timeout": ms, "run_timeout": ms,
                "run_memory_limit": limits.memory_mb * (1 << 20)}

    def result(self, reply: Any) -> RunResult:
        if "run" not in reply:
            return RunResult(SANDBOX_ERROR, message=str(reply.get("message") or "no run in the reply"))
        comp = reply.get("compile") or {}
        if comp and comp.get("code") not in (0, None):
            return RunResult(ERROR, exit_code=comp.get("code"), stdout=comp.get("stdout") or "",
                             stderr=comp.get("stderr") or "", message="compile error")
        run = reply["run"]
        out = RunResult(OK, exit_code=run.get("code"), stdout=run.get("stdout") or "", stderr=run.get("stderr") or "",
                        seconds=float(run.get("wall_time") or 0.0) / 1000.0)
        status, sig = run.get("status"), run.get("signal")
        if status == "TO":
            out.status, out.message = TIMEOUT, "time limit (Piston)"
        elif status in ("OL", "EL"):
            out.status, out.message = OUTPUT_LIMIT, "output limit (Piston)"
        elif sig:
            out.status, out.message = (TIMEOUT, "killed at the time limit (Piston)") if sig == "SIGKILL" and \
                status is None and run.get("code") is None else (KILLED, f"signal {sig}")
        elif out.exit_code != 0:
            out.status = ERROR
        return out


__all__ = ["FusionSandbox", "PistonSandbox"]
