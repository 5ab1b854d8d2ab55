"""Benchmark: `swift-ext rewards score` memory and throughput at sizes where holding the file would not fit.

Writes completion files of N completions (8 per prompt, `completion` rows as `swift infer` writes them), runs
`swift-ext rewards score FILE -r think_format -r exact_match -o scores.jsonl --json` as a user does (a
subprocess), and reports its peak RSS (the child's ru_maxrss) and completions per second. A streamed reader has
the same peak at every size; the 0.2 reader held every row (210 MB at 100 k, 1,456 MB at 800 k).

Not a test; prints a markdown table.

    python bench/bench_score_rss.py --sizes 200000 1000000 4000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def run(path: Path, out: Path) -> tuple:
    exe = Path(sys.executable).with_name("swift-ext")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run([str(exe), "rewards", "score", str(path), "-r", "think_format", "-r", "exact_match",
                           "-o", str(out), "--json"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, the largest child so far
    return wall, peak, before, json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000, 4_000_000])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        # smallest first: ru_maxrss of children is a running maximum, so each size's figure is its own only
        # while sizes grow; a streamed reader keeps it flat
        for n in sorted(args.sizes):
            path = Path(d) / f"c{n}.jsonl"
            write_file(path, n)
            wall, peak, before, report = run(path, Path(d) / "scores.jsonl")
            assert report["completions"] == n
            rows.append((n, path.stat().st_size / 1e6, peak / 1024, n / wall, wall, peak > before))
            os.unlink(path)
    print("| completions | file MB | peak RSS MB | completions/s | wall s |")
    print("|---:|---:|---:|---:|---:|")
    for n, mb, rss, rate, wall, grew in rows:
        print(f"| {n:,} | {mb:.0f} | {rss:.0f}{'' if grew or n == rows[0][0] else ' (= earlier)'} | {rate:,.0f} | {wall:.1f} |")


if __name__ == "__main__":
    main()
