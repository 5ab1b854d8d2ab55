"""Wall time of ``swift-ext demo`` and of its phases, against running the same ``swift rlhf`` by hand.

    python bench/bench_demo.py --quick         # the 2-step smoke run (tiny Qwen2-VL), 1 repeat
    python bench/bench_demo.py --repeats 2     # the default learning run (tiny Qwen3 text, 40 steps)

Runs, in one process:
  * cold  - ``swift-ext demo --json`` in a fresh work folder (builds the tiny model);
  * warm  - the same command again (model cached in the work folder);
  * raw   - the exact ``swift rlhf`` command line the demo ran (first line of its log), run directly with
            the same environment: the obvious alternative, i.e. what the demo costs on top of swift itself.
Prints a markdown table (median of the repeats) with the demo's own per-phase timings and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWIFT_EXT = str(Path(sys.executable).with_name("swift-ext"))


def run_demo(workdir: Path, kind: str, quick: bool = False) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([SWIFT_EXT, "demo", "--workdir", str(workdir), "--tiny-kind", kind, "--json",
                           *(["--quick"] if quick else [])],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"swift-ext demo failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout)
    return {"wall": wall, **result["timings"], "log": result["log"], "steps": len(result["steps"])}


def run_raw(log: str, workdir: Path) -> float:
    """Re-run the demo's own swift command (read back from its log) with the demo's environment."""
    from swift_ext import cpu_compat
    from swift_ext.testing import tiny

    argv = shlex.split(Path(log).read_text().splitlines()[0][2:])
    out = workdir / "raw" / str(time.time_ns())
    argv[argv.index("--output_dir") + 1] = str(out)
    out.mkdir(parents=True)
    env = tiny.offline_env(cpu_compat.subprocess_env(os.environ))
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=out, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"raw swift rlhf failed:\n{proc.stderr[-3000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", default=None, choices=["text", "qwen2_vl", "qwen2_5_vl", "qwen3_vl"],
                        help="tiny model kind [default: text; --quick: qwen2_vl]")
    parser.add_argument("--quick", action="store_true", help="the 2-step smoke run (swift-ext demo --quick)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    args.kind = args.kind or ("qwen2_vl" if args.quick else "text")

    cold, warm, raw = [], [], []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="swift-ext-bench-") as tmp:
            workdir = Path(tmp)
            print(f"[{i + 1}/{args.repeats}] cold demo ...", file=sys.stderr)
            cold.append(run_demo(workdir, args.kind, args.quick))
            print(f"[{i + 1}/{args.repeats}] warm demo ...", file=sys.stderr)
            warm.append(run_demo(workdir, args.kind, args.quick))
            print(f"[{i + 1}/{args.repeats}] raw swift rlhf ...", file=sys.stderr)
            raw.append(run_raw(warm[-1]["log"], workdir))

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    raw_med = statistics.median(raw)
    print(f"### `swift-ext demo` wall time (tiny {args.kind}, {cold[0]['steps']} GRPO steps, CPU, "
          f"median of {args.repeats})\n")
    print("| run | total wall (s) | env check (s) | model build (s) | data (s) | swift rlhf (s) | vs raw swift |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, rows in (("demo, cold (builds model)", cold), ("demo, warm (model cached)", warm)):
        print(f"| {name} | {med(rows, 'wall'):.1f} | {med(rows, 'environment'):.1f} | {med(rows, 'model'):.1f} | "
              f"{med(rows, 'data'):.2f} | {med(rows, 'grpo'):.1f} | {med(rows, 'wall') / raw_med:.2f}x |")
    print(f"| raw `swift rlhf` (same argv and env) | {raw_med:.1f} | - | - | - | {raw_med:.1f} | 1.00x |")
    print(f"\ncpu count: {os.cpu_count()}; load average at the end: {os.getloadavg()[0]:.1f}; "
          f"python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
