"""Benchmark: `swift-ext rewards score` and `swift-ext eval` memory and throughput at sizes where holding the file
would not fit.

Writes completion files of N completions (8 per prompt, `completion` rows as `swift infer` writes them), runs
as a user does (a subprocess, the same two rewards in both commands)

    swift-ext rewards score FILE -r think_format -r exact_match -o scores.jsonl --json
    swift-ext eval FILE -m accuracy -m reward:think_format --per-item items.jsonl -o report.json

and reports each run's peak RSS (that child's own ``ru_maxrss``, from ``os.wait4``) and completions per second. A
streamed reader has the same peak at every size; the 0.2 reader held every row (210 MB at 100 k, 1,456 MB at
800 k). ``--baseline SRC`` also runs eval from another checkout (``PYTHONPATH=SRC``, e.g. a worktree of main before
the streamed eval) at the sizes up to ``--baseline-max``.

Not a test; prints a markdown table.

    python bench/bench_score_rss.py --sizes 200000 1000000 4000000 --commands score eval
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_file(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            p = i // 8
            fh.write(json.dumps({"messages": [{"role": "user", "content": f"What is {p} + 1?"}],
                                 "solution": str(p + 1),
                                 "completion": f"<think>add</think><answer>{p + (i % 3 == 0)}</answer>"}) + "\n")


COMMANDS = {
    "score": lambda path, out: ["rewards", "score", str(path), "-r", "think_format", "-r", "exact_match",
                                "-o", str(out / "scores.jsonl"), "--json"],
    "eval": lambda path, out: ["eval", str(path), "-m", "accuracy", "-m", "reward:think_format",
                               "--per-item", str(out / "items.jsonl"), "-o", str(out / "report.json")],
}


def run(command: str, path: Path, out: Path, src: Path = ROOT) -> tuple:
    """(wall s, peak RSS KiB of this child alone, its JSON output)."""
    argv = [sys.executable, "-c", "from swift_ext.cli import main; main()", *COMMANDS[command](path, out)]
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        # cwd: the output folder, since `python -c` puts the current directory first on sys.path (a run from a
        # checkout's root would import that checkout whatever PYTHONPATH says)
        proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env, cwd=out)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        if proc.returncode:
            raise SystemExit(f"{command} failed ({proc.returncode}): {stderr.read()[-2000:].decode()}")
        return wall, usage.ru_maxrss, json.loads(stdout.read())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000, 4_000_000])
    ap.add_argument("--commands", nargs="+", default=["score", "eval"], choices=sorted(COMMANDS))
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout whose eval to run too")
    ap.add_argument("--baseline-max", type=int, default=1_000_000, help="largest size the baseline runs at")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for n in sorted(args.sizes):
            path = Path(d) / f"c{n}.jsonl"
            write_file(path, n)
            runs = [(c, "this checkout", ROOT) for c in args.commands]
            if args.baseline and n <= args.baseline_max:
                runs.append(("eval", "baseline", args.baseline.resolve()))
            for command, label, src in runs:
                wall, peak, report = run(command, path, Path(d), src)
                assert report["completions"] == n, report.get("completions")
                rows.append((command, label, n, path.stat().st_size / 1e6, peak / 1024, n / wall, wall))
            os.unlink(path)
    print("| command | checkout | completions | file MB | peak RSS MB | completions/s | wall s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for command, label, n, mb, rss, rate, wall in rows:
        print(f"| `{command}` | {label} | {n:,} | {mb:.0f} | {rss:.0f} | {rate:,.0f} | {wall:.1f} |")
    print(f"\ncpu count: {os.cpu_count()}; load average at the end: {os.getloadavg()[0]:.1f}; "
          f"python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
