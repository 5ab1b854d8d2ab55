"""Benchmark: `swift-ext convert --to grpo` vs `datasets.load_dataset('json').map(...)` vs a plain
json.loads/json.dumps loop, plus the raw parse+dump floor (msgspec decode + encode, no conversion).

Each method runs in its own process (so peak RSS is its own, read with os.wait4) on the same generated
SFT file (ms-swift messages with a <think>/<answer> response); all write their GRPO rows to disk. Prints a
markdown table. Not a test; it may take minutes.

    python bench/bench_convert.py                       # 1 M text rows (+ the 100 k run for RSS flatness)
    python bench/bench_convert.py --rows 1000000 --images   # variant with image paths (half the rows)
    python bench/bench_convert.py --rows 200000 --skip datasets
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

# The same conversion (SFT messages -> prompt-only messages + solution) written the obvious ways.
TRANSFORM = r'''
def to_grpo(row):
    msgs = row["messages"]
    out = dict(row)
    out["messages"] = msgs[:-1]
    out["solution"] = msgs[-1]["content"]
    return out
'''

JSON_LOOP = TRANSFORM + r'''
import json, sys
with open(sys.argv[1], encoding="utf-8") as f, open(sys.argv[2], "w", encoding="utf-8") as o:
    for line in f:
        o.write(json.dumps(to_grpo(json.loads(line)), ensure_ascii=False) + "\n")
'''

FLOOR = r'''
import sys, msgspec
dec, enc = msgspec.json.decode, msgspec.json.encode
with open(sys.argv[1], "rb") as f, open(sys.argv[2], "wb") as o:
    for line in f:
        o.write(enc(dec(line)) + b"\n")
'''

DATASETS = TRANSFORM + r'''
import sys, datasets
datasets.disable_progress_bars()
ds = datasets.load_dataset("json", data_files=sys.argv[1], split="train", cache_dir=sys.argv[3])
ds = ds.map(to_grpo)
ds.to_json(sys.argv[2], force_ascii=False)
'''


def make_input(path: Path, rows: int, images: bool, image_dir: Path) -> None:
    rng = random.Random(0)
    imgs = []
    if images:
        from PIL import Image

        image_dir.mkdir(parents=True, exist_ok=True)
        for k in range(8):
            p = image_dir / f"img{k}.png"
            Image.new("RGB", (32, 32), (30 * k, 100, 200)).save(p)
            imgs.append(str(p))
    with open(path, "w", encoding="utf-8") as f:
        for i in range(rows):
            a, b = rng.randrange(1000), rng.randrange(1000)
            with_image = images and i % 2 == 0
            row = {"messages": [
                {"role": "system", "content": "You are a helpful math assistant."},
                {"role": "user", "content": ("<image>" if with_image else "") + f"What is {a} + {b}? Think step by step."},
                {"role": "assistant", "content": f"<think>{a} + {b} = {a + b}</think><answer>{a + b}</answer>"}],
                "id": i}
            if with_image:
                row["images"] = [imgs[i % len(imgs)]]
            f.write(json.dumps(row) + "\n")


def run(argv, env=None):
    """(wall s, cpu s, peak RSS MiB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[:3]} failed:\n{err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=100_000, help="second size for the RSS flatness check (0: skip)")
    ap.add_argument("--images", action="store_true", help="half the rows carry an image path")
    ap.add_argument("--skip", default="", help="comma list of methods to skip: datasets,json,floor")
    ap.add_argument("--repeat", type=int, default=1, help="runs per method (best wall time is reported)")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-convert-"))
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    swift_ext = [py, "-m", "swift_ext", "convert"]
    skip = set(filter(None, args.skip.split(",")))
    sizes = [args.rows] + ([args.small] if args.small and args.small < args.rows else [])
    results = {}
    for n in sizes:
        src = work / f"in_{n}.jsonl"
        print(f"generating {n} rows -> {src}", file=sys.stderr)
        make_input(src, n, args.images, work / "images")
        methods = [("swift-ext convert --to grpo", swift_ext + [str(src), "--to", "grpo", "-o", str(work / "o_se.jsonl")])]
        if n == args.rows:
            if "datasets" not in skip:
                (work / "ds.py").write_text(DATASETS)
                methods.append(("datasets load_dataset('json').map", [py, str(work / "ds.py"), str(src),
                                                                      str(work / "o_ds.jsonl"), str(work / "hf")]))
            if "json" not in skip:
                (work / "jl.py").write_text(JSON_LOOP)
                methods.append(("json.loads/json.dumps loop", [py, str(work / "jl.py"), str(src), str(work / "o_jl.jsonl")]))
            if "floor" not in skip:
                (work / "fl.py").write_text(FLOOR)
                methods.append(("parse+dump floor (msgspec, no conversion)",
                                [py, str(work / "fl.py"), str(src), str(work / "o_fl.jsonl")]))
        for name, argv in methods:
            best = None
            for _ in range(args.repeat):
                shutil.rmtree(work / "hf", ignore_errors=True)
                print(f"running {name} on {n} rows", file=sys.stderr)
                res = run(argv)
                best = res if best is None or res[0] < best[0] else best
            out = Path(argv[argv.index("-o") + 1]) if "-o" in argv else Path(argv[3])
            assert count_lines(out) == n, (name, count_lines(out), n)
            results[(name, n)] = best
        src.unlink()
    n = args.rows
    se = results[("swift-ext convert --to grpo", n)]
    print(f"\n### convert --to grpo, {n:,} {'image-path' if args.images else 'text'} rows "
          f"(each method in its own process; wall time includes start-up)\n")
    print("| method | rows | wall s | CPU s | rows/s (wall) | peak RSS MiB | swift-ext speed-up (wall) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for (name, size), (wall, cpu, rss) in results.items():
        ratio = wall / se[0] if size == n else float("nan")
        print(f"| {name} | {size:,} | {wall:.2f} | {cpu:.2f} | {size / wall:,.0f} | {rss:.0f} | "
              f"{'' if size != n else f'{ratio:.2f}x'} |")
    floor = results.get(("parse+dump floor (msgspec, no conversion)", n))
    ds = results.get(("datasets load_dataset('json').map", n))
    print()
    if ds:
        print(f"- vs datasets.map: {ds[0] / se[0]:.1f}x faster (wall), {ds[1] / se[1]:.1f}x less CPU (target >= 3x)")
    if floor:
        print(f"- vs parse+dump floor: {se[0] / floor[0]:.2f}x the floor's wall time, {se[1] / floor[1]:.2f}x its CPU "
              f"(target <= 2x)")
    if args.small and args.small < n:
        small = results[("swift-ext convert --to grpo", args.small)]
        print(f"- swift-ext peak RSS: {small[2]:.0f} MiB at {args.small:,} rows, {se[2]:.0f} MiB at {n:,} rows")
    print(f"- machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end "
          f"(shared; CPU s is less sensitive to contention than wall s)")
    shutil.rmtree(work, ignore_errors=True) if args.workdir is None else None


if __name__ == "__main__":
    main()
