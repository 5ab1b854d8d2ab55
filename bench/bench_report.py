"""``swift-ext report`` on a big run: build time, file size, and how long the page takes to open in a real
headless Chromium, for a run with 100 000 logged completions.

    python bench/bench_report.py                          # 100k completions (500 steps x 200)
    python bench/bench_report.py --steps 50 --per-step 64  # smaller

The run folder is written in ms-swift 4.6's own layout (``logging.jsonl`` step rows, ``completions.jsonl``
column tables, ``args.json``) with completions of realistic length (~60 words); the report reads it like
any other run; a second run with 8 completions per step shows what the completions cost. "charts drawn" and
"completion browser ready" are the page's own ``performance.now()`` (real time since navigation) when its
script has drawn the curves, and when it has shown the last step's completions after reading the whole file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def write_run(folder: Path, steps: int, per_step: int, group: int = 8, seed: int = 0) -> int:
    rng = random.Random(seed)
    words = ("the answer is think step so we get total count shape circle square triangle therefore "
             "first then plus minus equals").split()
    folder.mkdir(parents=True)
    rewards = ["accuracy", "think_format", "teacher_similarity:metric=chrf"]
    with open(folder / "logging.jsonl", "w") as log, open(folder / "completions.jsonl", "w") as comp:
        for s in range(1, steps + 1):
            table = {k: [] for k in ("step", "prompt", "completion", *rewards, "advantages", "solution")}
            for i in range(per_step):
                p = (s * per_step + i) // group
                table["step"].append(str(s))
                table["prompt"].append(f"<|im_start|>user\nQuestion {p}: what is {p} + {p}?<|im_end|>\n"
                                       f"<|im_start|>assistant\n")
                table["completion"].append("<think>" + " ".join(rng.choice(words) for _ in range(60)) +
                                           f"</think><answer>{rng.randint(0, 2 * p + 1)}</answer>")
                for r in rewards:
                    table[r].append(round(rng.random(), 4))
                table["advantages"].append(round(rng.gauss(0, 1), 4))
                table["solution"].append(str(2 * p))
            comp.write(json.dumps(table) + "\n")
            row = {"loss": rng.random(), "grad_norm": rng.random(), "learning_rate": 1e-6, "kl": rng.random() / 10,
                   "reward": 0.0, "reward_std": 0.3, "frac_reward_zero_std": rng.random() / 4,
                   "completions/clipped_ratio": rng.random() / 10, "completions/mean_length": 80.0,
                   "global_step/max_steps": f"{s}/{steps}"}
            for r in rewards:
                row[f"rewards/{r}/mean"] = min(1.0, s / steps + rng.random() / 5)
                row[f"rewards/{r}/std"] = 0.2
            log.write(json.dumps(row) + "\n")
    (folder / "args.json").write_text(json.dumps({"reward_funcs": rewards, "num_generations": group}))
    return steps * per_step


def measure(tmp: Path, steps: int, per_step: int) -> dict:
    from swift_ext.report import write_report

    import report_browser

    run = tmp / f"run-{per_step}" / "v0-bench"
    if run.exists():
        shutil.rmtree(run)
    n = write_run(run, steps, per_step)
    out = tmp / f"report-{per_step}.html"
    info = write_report([run], out)
    t0 = time.perf_counter()
    info = write_report([run], out)  # second build: files in the page cache
    rebuild = time.perf_counter() - t0
    row = {"n": n, "jsonl_mb": (run / "completions.jsonl").stat().st_size / 1e6, "build": info.seconds,
           "rebuild": rebuild, "mb": info.bytes / 1e6, "charts_ms": None, "ready_ms": None}
    if report_browser.chromium():
        # no virtual time: performance.now() is the real time since navigation started
        proc = subprocess.run([report_browser.chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                               "--disable-dev-shm-usage", "--dump-dom", out.as_uri()], capture_output=True,
                              text=True, timeout=600)
        page = report_browser.read(proc.stdout)
        assert page.selfcheck.get("errors") == [], page.selfcheck
        row["charts_ms"], row["ready_ms"] = page.selfcheck.get("charts_ms"), page.selfcheck.get("ready_ms")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--per-step", type=int, default=200)
    parser.add_argument("--keep", default=None, help="keep the runs and reports in this folder")
    args = parser.parse_args()

    tmp = Path(args.keep or tempfile.mkdtemp(prefix="swift-ext-bench-report-"))
    rows = [measure(tmp, args.steps, per) for per in (8, args.per_step)]
    print(f"### `swift-ext report`, {args.steps} logged steps\n")
    print("| completions | completions.jsonl (MB) | build (s) | rebuild (s) | report.html (MB) "
          "| charts drawn (ms) | completion browser ready (ms) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n']:,} | {r['jsonl_mb']:.1f} | {r['build']:.1f} | {r['rebuild']:.1f} | {r['mb']:.1f} | "
              f"{r['charts_ms'] if r['charts_ms'] is not None else 'n/a'} | "
              f"{r['ready_ms'] if r['ready_ms'] is not None else 'n/a'} |")
    print(f"\ncpu count: {os.cpu_count()}; load average at the end: {os.getloadavg()[0]:.1f}; "
          f"python {sys.version.split()[0]}")
    if not args.keep:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
