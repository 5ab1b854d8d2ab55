"""Benchmark: the ``judge`` reward's throughput against a stand-in OpenAI-compatible endpoint with a fixed
latency, at several concurrency limits, against a sequential loop; the cost of a cache hit.

    python bench/bench_judge.py [--latency 0.2] [--n 256]

The stand-in is ``tests/judge_standin.py`` (a real HTTP server process on 127.0.0.1 that answers ``[[7]]``
after ``--latency`` seconds), standing in for a GPU-served judge whose answer takes that long. Markdown goes to
stdout; progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from swift_ext.rewards import build  # noqa: E402


def standin(latency: float):
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "..", "tests", "judge_standin.py"),
                             "--latency", str(latency)], stdout=subprocess.PIPE, text=True)
    return proc, f"http://127.0.0.1:{int(proc.stdout.readline())}/v1"


def sequential(url: str, prompts, model: str = "standin-judge") -> float:
    """What a hand-written ORM does: one blocking request per completion, in a loop."""
    t0 = time.perf_counter()
    for p in prompts:
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": p}]}).encode()
        req = urllib.request.Request(url + "/chat/completions", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            json.loads(resp.read())
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.2, help="seconds the stand-in takes per answer")
    ap.add_argument("--n", type=int, default=256, help="completions per judged call")
    ap.add_argument("--sequential-n", type=int, default=32, help="requests of the sequential loop")
    args = ap.parse_args(argv)
    proc, url = standin(args.latency)
    tmp = tempfile.mkdtemp(prefix="bench-judge-")
    msgs = [[{"role": "user", "content": "Describe the image."}]]
    try:
        seq = sequential(url, [f"s{i}" for i in range(args.sequential_n)])
        seq_rate = args.sequential_n / seq
        print(f"sequential: {seq_rate:.1f} completions/s", file=sys.stderr)
        rows = []
        for conc in (1, 8, 32, 128):
            n = min(args.n, max(16, conc * 4))
            r = build(f"judge:base_url={url},model=standin-judge,rubric=helpfulness,concurrency={conc},cache=")
            comps = [f"c{conc}-{i}" for i in range(n)]
            t0 = time.perf_counter()
            out = asyncio.run(r(comps, messages=msgs * n))
            t = time.perf_counter() - t0
            assert out == [0.7] * n, out[:4]
            ideal = -(-n // conc) * args.latency
            rows.append((conc, n, n / t, (n / t) / seq_rate, (t - ideal) * 1000))
            print(f"concurrency {conc}: {n / t:.1f} completions/s", file=sys.stderr)
        # cache hits: a second call on the same completions answers from sqlite
        cache = os.path.join(tmp, "judge.sqlite")
        r = build(f"judge:base_url={url},model=standin-judge,rubric=helpfulness,concurrency=128,cache={cache}")
        comps = [f"h{i}" for i in range(args.n)]
        asyncio.run(r(comps, messages=msgs * args.n))
        r2 = build(f"judge:base_url={url},model=standin-judge,rubric=helpfulness,concurrency=128,cache={cache}")
        t0 = time.perf_counter()
        asyncio.run(r2(comps, messages=msgs * args.n))
        hit_call = (time.perf_counter() - t0) / args.n
        row = {"messages": msgs[0]}
        asyncio.run(r2.judge_one("h0", row))
        t0 = time.perf_counter()
        reps = 2000

        async def hits():
            for i in range(reps):
                await r2.judge_one(f"h{i % args.n}", row)

        asyncio.run(hits())
        hit_one = (time.perf_counter() - t0) / reps
    finally:
        proc.kill()
        proc.wait()
    out = [f"Stand-in latency {args.latency * 1000:.0f} ms per answer; sequential loop (one blocking request per "
           f"completion): {seq_rate:.1f} completions/s.\n",
           "| judge concurrency | completions | completions/s | vs sequential | overhead per call ms (wall - waves x latency) |",
           "|---:|---:|---:|---:|---:|"]
    for conc, n, rate, ratio, over in rows:
        out.append(f"| {conc} | {n} | {rate:.1f} | {ratio:.1f}x | {over:.0f} |")
    out.append("")
    out.append(f"Cache hit: {hit_one * 1e6:.0f} us per lookup (key hash + sqlite read), {hit_call * 1e6:.0f} us per "
               f"completion in a call of {args.n} answered from the cache.")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
