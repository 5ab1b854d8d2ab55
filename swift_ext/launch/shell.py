"""Render a :class:`~swift_ext.launch.plan.LaunchPlan` as a copy-pasteable bash script (``--dry-run``).

The script does what the runner does, in plain bash: servers start in their own process group
(``setsid``) with their log in ``$LOG_DIR``, a ``trap`` stops them on exit / Ctrl-C / SIGTERM, ``/health`` is
polled with a timeout while checking the server is still alive, and the trainer's exit code is the
script's.
"""

from __future__ import annotations

import shlex
from typing import List

from .plan import LaunchPlan, Step

INDENT = "    "


def _cmd(step: Step, prefix: str = "") -> str:
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in step.env.items() if k not in ("NO_PROXY", "no_proxy"))
    head = " ".join(filter(None, [env, prefix, *map(shlex.quote, step.argv[:2])]))
    lines = [head]
    rest = step.argv[2:]
    i = 0
    while i < len(rest):  # one flag (with its values) per line
        j = i + 1
        while j < len(rest) and not rest[j].startswith("--"):
            j += 1
        lines.append(INDENT + " ".join(shlex.quote(a) for a in rest[i:j]))
        i = j
    return " \\\n".join(lines)


def render_plan(plan: LaunchPlan, log_dir: str = "swift-ext-logs") -> str:
    out: List[str] = ["#!/usr/bin/env bash",
                      f"# swift-ext launch {plan.recipe} --dry-run: the exact commands it runs",
                      "set -euo pipefail", f"LOG_DIR={shlex.quote(log_dir)}", 'mkdir -p "$LOG_DIR"']
    out += [f"# warning: {w}" for w in plan.warnings]
    unset = sorted({v for s in plan.steps for v in s.unset})
    if unset:
        out.append("# proxies break the trainer's localhost polling of /health (ms-swift issue #5545)")
        out.append("unset " + " ".join(unset))
    no_proxy = next((s.env["NO_PROXY"] for s in plan.steps if "NO_PROXY" in s.env), None)
    if no_proxy:
        out.append(f"export NO_PROXY={shlex.quote(no_proxy)} no_proxy={shlex.quote(no_proxy)}")
    pids: List[str] = []
    for step in plan.steps:
        out.append("")
        out.append(f"# {step.name}" + (f": {step.note}" if step.note else ""))
        out += _port_checks(step)
        if step.kind == "serve":
            var = f"{step.name.upper()}_PID"
            out.append(_cmd(step, "setsid") + f' \\\n{INDENT}> "$LOG_DIR/{step.name}.log" 2>&1 &')
            out.append(f"{var}=$!")
            pids.append(var)
            stop = "; ".join(f'kill -TERM -- -"${v}" 2>/dev/null || true' for v in pids)
            out.append(f"trap '{stop}' EXIT INT TERM")
            out += _wait(step, var)
        elif step.kind == "wait":
            out += _wait(step, None)
        else:
            out.append(_cmd(step) + f' \\\n{INDENT}2>&1 | tee "$LOG_DIR/{step.name}.log"')
    return "\n".join(out) + "\n"


def _port_checks(step: Step) -> List[str]:
    lines = []
    for port in step.free_ports:
        lines.append(f"! (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null || "
                     f"{{ echo 'port {port} is busy: free it or pick another' >&2; exit 1; }}")
    return lines


def _wait(step: Step, pid_var) -> List[str]:
    t = int(step.health_timeout)
    alive = (f'\n{INDENT}kill -0 "${pid_var}" 2>/dev/null || '
             f'{{ echo "{step.name} server died during start:" >&2; tail -n 40 "$LOG_DIR/{step.name}.log" >&2; exit 1; }}'
             if pid_var else "")
    return [f"for _ in $(seq 1 {max(1, t // 2)}); do",
            f"{INDENT}curl -sf --noproxy '*' -o /dev/null {shlex.quote(step.health_url)} && break{alive}",
            f"{INDENT}sleep 2",
            "done",
            f"curl -sf --noproxy '*' -o /dev/null {shlex.quote(step.health_url)} || "
            f"{{ echo '{step.name} server not healthy after {t}s' >&2; exit 1; }}"]
