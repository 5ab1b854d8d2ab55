"""``swift-ext report`` and ``swift-ext audit`` on a big ``logging.jsonl``: peak RSS of each command, in a
fresh process, for this checkout and (``--baseline SRC``) another checkout of swift-ext, e.g. main before the
streaming reader:

    git worktree add /tmp/swift-ext-before <commit>
    flock /tmp/swift-ext-heavy.lock python bench/bench_stream.py --mb 300 --baseline /tmp/swift-ext-before

The run folder is written in ms-swift 4.6's layout: one GRPO step row per line (about 30 metrics: loss, KL,
grad norm, three rewards' mean and std, clipping, completion lengths, swift-ext callback metrics), as many
steps as make ``--mb`` megabytes, plus a small ``completions.jsonl``. Each command runs as
``python -c 'from swift_ext.cli import main; main()' ...`` in a child of a small wrapper process that
reports the child's peak RSS (``getrusage(RUSAGE_CHILDREN).ru_maxrss``). The baseline runs with ``PYTHONPATH=SRC``, so the same
interpreter and packages import the other checkout's ``swift_ext``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WRAPPER = ("import resource, subprocess, sys, time\n"
           "t = time.perf_counter()\n"
           "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
           "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
           "print(p.returncode, r.ru_maxrss, round(time.perf_counter() - t, 1))\n"
           "sys.stderr.write(p.stderr.decode()[-2000:])\n")


def write_run(folder: Path, megabytes: float, seed: int = 0) -> int:
    """A GRPO run folder whose logging.jsonl is about ``megabytes`` MB; returns its step count."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    target, steps, size = megabytes * 1e6, 0, 0
    rewards = ("accuracy", "think_format", "ngram_repetition")
    (folder / "args.json").write_text(json.dumps({"reward_funcs": list(rewards), "num_generations": 8}))
    with open(folder / "logging.jsonl", "w") as fh:
        while size < target:
            steps += 1
            row = {"loss": rng.random(), "grad_norm": rng.random() * 3, "learning_rate": 1e-6,
                   "kl": rng.random() / 100, "reward": rng.random() * 2, "reward_std": rng.random() / 3,
                   "frac_reward_zero_std": rng.random(), "completions/clipped_ratio": rng.random() / 4,
                   "completions/mean_length": 100 + rng.random() * 50, "completions/min_length": 20.0,
                   "completions/max_length": 512.0, "clip_ratio/region_mean": 0.0, "clip_ratio/low_mean": 0.0,
                   "clip_ratio/high_mean": 0.0, "entropy/mean": rng.random(), "epoch": steps / 1e5,
                   "train_sanity/loss": rng.random(), "eval_ext/accuracy/mean": rng.random(),
                   "memory(GiB)": 3.2, "train_speed(iter/s)": 0.5, "elapsed_time": f"{steps}s",
                   "remaining_time": "1h"}
            for name in rewards:
                row[f"rewards/{name}/mean"] = rng.random()
                row[f"rewards/{name}/std"] = rng.random() / 3
            row["global_step/max_steps"] = f"{steps}/10000000"
            line = json.dumps(row) + "\n"
            fh.write(line)
            size += len(line)
    with open(folder / "completions.jsonl", "w") as fh:
        for s in range(1, 9):
            n = 16
            fh.write(json.dumps({"step": [str(s)] * n, "prompt": [f"prompt {i // 8}" for i in range(n)],
                                 "completion": [f"answer {i} at step {s}" for i in range(n)],
                                 "accuracy": [float(i % 2) for i in range(n)], "advantages": [0.0] * n}) + "\n")
    return steps


def measure(src: Path, args, workdir: Path):
    env = {**os.environ, "PYTHONPATH": str(src)}
    cli = [sys.executable, "-c", "from swift_ext.cli import main; main()", *args]
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *cli], capture_output=True, text=True, env=env, cwd=workdir)
    code, rss_kb, seconds = proc.stdout.split()
    return int(code), int(rss_kb) / 1024, float(seconds), proc.stderr.strip().splitlines()[-1:] if int(code) else []


POLL = """
import json, sys, threading, time, urllib.request
from swift_ext.report.live import make_server
run, out = sys.argv[1], sys.argv[2]
server = make_server([out], port=0)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_port}/api/model"
def poll():
    t = time.perf_counter()
    urllib.request.urlopen(url, timeout=600).read()
    return time.perf_counter() - t
first = poll()
with open(run + "/logging.jsonl", "a") as fh:
    fh.write(json.dumps({"loss": 9.0, "global_step/max_steps": "99999999/100000000"}) + "\\n")
after = [poll() for _ in range(3)]
print(round(first, 3), round(after[0], 3), round(min(after[1:]), 3))
server.shutdown()
"""


def measure_poll(src: Path, run: Path, workdir: Path):
    """``report --serve``: seconds of the first ``/api/model`` request (reads the whole run), of the poll after
    one appended line, and of a poll with nothing new, in a fresh process importing ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run([sys.executable, "-c", POLL, str(run), str(run.parent)], capture_output=True, text=True,
                          env=env, cwd=workdir)
    if proc.returncode:
        return None, proc.stderr.strip().splitlines()[-1:]
    return [float(x) for x in proc.stdout.split()], []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=300, help="size of logging.jsonl in MB")
    ap.add_argument("--baseline", type=Path, default=None, help="another swift-ext checkout to compare with")
    ap.add_argument("--keep", type=Path, default=None, help="write the run here and keep it")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-stream-")) if a.keep is None else a.keep
    run = work / "out" / "v0-20260101-000000"
    start = time.perf_counter()
    steps = write_run(run, a.mb)
    mb = (run / "logging.jsonl").stat().st_size / 1e6
    print(f"logging.jsonl: {mb:.0f} MB, {steps} steps (written in {time.perf_counter() - start:.0f} s)\n")
    print("| command | checkout | exit | peak RSS (MB) | wall (s) |\n|---|---|---:|---:|---:|")
    sources = [("this branch", ROOT)] + ([("baseline", a.baseline.resolve())] if a.baseline else [])
    for label, args in (("report", ["report", str(run), "-o", str(work / "r.html")]),
                        ("audit", ["audit", str(run), "--json"])):
        for name, src in sources:
            code, rss, seconds, err = measure(src, args, work)
            print(f"| `{label}` | {name} | {code} | {rss:,.0f} | {seconds:.1f} |" + (f" {err}" if err else ""),
                  flush=True)
    print("\n| `report --serve` | checkout | first request (s) | poll after one appended line (s) | "
          "poll, nothing new (s) |\n|---|---|---:|---:|---:|")
    for name, src in sources:
        times, err = measure_poll(src, run, work)
        cells = " | ".join(f"{t:.3f}" for t in times) if times else f"failed | | {err}"
        print(f"| poll | {name} | {cells} |", flush=True)
    print(f"\ncpu count: {os.cpu_count()}; load average at the end: {os.getloadavg()[0]:.1f}; "
          f"python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
