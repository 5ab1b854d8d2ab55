"""Benchmark: the local code sandbox against a bare ``subprocess.run([python, "-c", code])`` loop, and a
GRPO-shaped ``code_tests`` call.

    python bench/bench_sandbox.py                      # 40 programs x 4 cases, best of 3
    python bench/bench_sandbox.py --n 40 --repeat 3 --markdown .notes/bench-sandbox.md

1. Throughput on a trivial program (read two numbers, print the sum) with 4 stdin/stdout cases, one run at a
   time: the bare loop (what a hand-written reward does: no limits, no isolation, the trainer's environment)
   and ``LocalSandbox.run`` in each isolation mode this machine offers, each against the bare loop with the
   same interpreter (as root without bwrap the sandbox runs the system Python: see docs/sandbox.md). Then the
   same cases through ``run_many`` with all cores.
2. A GRPO-shaped call: ``code_tests`` on 8 completions x 10 cases (correct, wrong, crashing and slow programs):
   wall time, against the sum over completions of each one's slowest case (what running the cases of a
   completion in parallel can reach) and the sum of all cases (one at a time).
Markdown goes to stdout (and ``--markdown``); progress to stderr.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from swift_ext.rewards import build  # noqa: E402
from swift_ext.sandbox import Limits, Program, default_concurrency, isolation  # noqa: E402
from swift_ext.sandbox.local import LocalSandbox  # noqa: E402

CODE = "a, b = map(int, input().split())\nprint(a + b)"
CASES = [("1 2\n", "3"), ("10 20\n", "30"), ("-4 4\n", "0"), ("123 877\n", "1000")]


def bare(python: str, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        for stdin, expected in CASES:
            out = subprocess.run([python, "-c", CODE], input=stdin, capture_output=True, text=True, timeout=30)
            assert out.stdout.strip() == expected
    return time.perf_counter() - start


def sandboxed(box: LocalSandbox, n: int) -> float:
    limits = Limits(time=10)
    start = time.perf_counter()
    for _ in range(n):
        for stdin, expected in CASES:
            r = box.run(Program(CODE, stdin=stdin), limits)
            assert r.ok and r.stdout.strip() == expected, r
    return time.perf_counter() - start


def many(box: LocalSandbox, n: int) -> float:
    programs = [Program(CODE, stdin=s) for _ in range(n) for s, _ in CASES]
    start = time.perf_counter()
    results = box.run_many(programs, Limits(time=10), deadline=600)
    assert all(r.ok for r in results)
    return time.perf_counter() - start


def best(fn, repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def throughput(n: int, repeat: int) -> list:
    lines = ["| runner | interpreter | programs/s (4 cases each) | time per case (ms) | vs bare loop, same interpreter |",
             "|---|---|---:|---:|---:|"]
    bare_cache = {}
    for mode in [m for m in isolation.MODES if isolation.probe(m) is None]:
        box = LocalSandbox(isolation=mode)
        python = box.runner("python").python
        if python not in bare_cache:
            print(f"bare loop with {python}", file=sys.stderr)
            bare_cache[python] = best(lambda: bare(python, n), repeat)
            t = bare_cache[python]
            lines.append(f"| bare `subprocess.run([python, -c])` | `{python}` | {n / t:.1f} | "
                         f"{1000 * t / (n * len(CASES)):.1f} | 1.00x |")
        print(f"sandbox isolation={mode}", file=sys.stderr)
        sandboxed(box, 2)                                # warm: probe, interpreter folders
        t = best(lambda: sandboxed(box, n), repeat)
        lines.append(f"| `LocalSandbox` isolation={mode}, one at a time | `{python}` | {n / t:.1f} | "
                     f"{1000 * t / (n * len(CASES)):.1f} | {t / bare_cache[python]:.2f}x |")
        if mode == "bwrap":
            cores = default_concurrency()
            t = best(lambda: many(box, n), repeat)
            lines.append(f"| `LocalSandbox` isolation={mode}, `run_many` on {cores} cores | `{python}` | "
                         f"{n / t:.1f} | {1000 * t / (n * len(CASES)):.1f} | {t / bare_cache[python]:.2f}x |")
        box.close()
    return lines


def grpo_call(repeat: int) -> list:
    gt = {"inputs": [f"{i} {2 * i}\n" for i in range(10)], "outputs": [str(3 * i) for i in range(10)]}
    fast = "a, b = map(int, input().split())\nprint(a + b)"
    slow = "import time\ntime.sleep(0.2)\n" + fast
    programs = [fast, fast.replace("a + b", "b + a"), "print(0)", "raise SystemExit(2)", slow,
                slow.replace("0.2", "0.25"), fast.replace("print(a + b)", "print(a + b if a < 5 else a)"),
                "import sys\nsys.exit(0)"]
    completions = [f"```python\n{p}\n```" for p in programs]
    reward = build("code_tests:timeout=60")
    walls = []
    for _ in range(repeat):
        start = time.perf_counter()
        scores = reward(completions, ground_truth=[gt] * 8)
        walls.append(time.perf_counter() - start)
    details = reward.last_details
    slowest = sum(max(c["seconds"] for c in v.cases) for v in details)
    total = sum(c["seconds"] for v in details for c in v.cases)
    wall = min(walls)
    reward.sandbox().close()
    return ["| GRPO-shaped call | wall (s) | sum of each completion's slowest case (s) | sum of all cases (s) | "
            "wall / slowest-sum | wall / all-sum |", "|---|---:|---:|---:|---:|---:|",
            f"| `code_tests`, 8 completions x 10 cases, {default_concurrency()} runs at once | {wall:.2f} | "
            f"{slowest:.2f} | {total:.2f} | {wall / slowest:.2f}x | {wall / total:.2f}x |",
            "", f"scores: {[round(s, 2) for s in scores]}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="programs per measurement (4 cases each)")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many")
    ap.add_argument("--markdown", help="also write the tables here")
    args = ap.parse_args()
    out = ["*local sandbox vs a bare subprocess loop, trivial program, 4 stdin/stdout cases, best of "
           f"{args.repeat}*", "", *throughput(args.n, args.repeat), "", *grpo_call(args.repeat), "",
           f"cpu count: {os.cpu_count()}; load average at the end: {os.getloadavg()[0]:.1f}; "
           f"python {sys.version.split()[0]}; root: {os.geteuid() == 0}"]
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
