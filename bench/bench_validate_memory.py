"""Benchmark: memory per row of `swift-ext validate`'s duplicate detection (the docs' "bytes per row").

1. The structure alone (tracemalloc, net bytes after N fingerprints): the Python ``set`` of 8-byte
   ``bytes`` digests used before, a ``set`` of ints, and :class:`swift_ext.convert.validate.FingerprintSet`.
2. The whole command: ``validate_file`` on an N-row JSONL file (half of the rows duplicates) in a fresh
   process, with and without duplicate detection: the difference of the peak of traced Python memory
   (tracemalloc) divided by N, and of peak RSS (``ru_maxrss``; coarse: the peak may come from elsewhere).

Not a test; prints a markdown table.

    python bench/bench_validate_memory.py --rows 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def digests(n: int):
    for i in range(n):
        yield hashlib.blake2b(str(i).encode(), digest_size=8).digest()


def structure_bytes(kind: str, n: int) -> float:
    from swift_ext.convert.validate import FingerprintSet

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    if kind == "set of bytes (before)":
        s = set()
        for d in digests(n):
            s.add(d)
    elif kind == "set of ints":
        s = set()
        for d in digests(n):
            s.add(int.from_bytes(d, "little"))
    else:
        s = FingerprintSet()
        for d in digests(n):
            s.add(int.from_bytes(d, "little"))
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del s
    return used / n


def child(path: str, duplicates: bool) -> None:
    from swift_ext.convert.validate import ValidateOptions, validate_file

    tracemalloc.start()
    report = validate_file(path, ValidateOptions(task="sft", check_media=False, duplicates=duplicates))
    peak = tracemalloc.get_traced_memory()[1]
    assert report.rows > 0
    print(peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # ru_maxrss: KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1] == "1")
        return
    n = args.rows
    print(f"| duplicate structure, {n:,} fingerprints | bytes per row (tracemalloc) |\n|---|---|")
    for kind in ("set of bytes (before)", "set of ints", "FingerprintSet (now)"):
        print(f"| {kind} | {structure_bytes(kind, n):.1f} |")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rows.jsonl")
        with open(path, "w") as fh:
            for i in range(n):
                fh.write(json.dumps({"messages": [{"role": "user", "content": f"question {i}"},
                                                  {"role": "assistant", "content": f"answer {i % (n // 2 or 1)}"}]})
                         + "\n")
        peak, rss = {}, {}
        for dup in (False, True):
            out = subprocess.run([sys.executable, __file__, "--child", path, "1" if dup else "0"], check=True,
                                 capture_output=True, text=True).stdout
            peak[dup], rss[dup] = map(int, out.split()[-2:])
    print(f"\n| validate_file, {n:,} rows | traced peak MiB | peak RSS MiB |\n|---|---|---|")
    print(f"| --no-duplicates | {peak[False] / 2**20:.1f} | {rss[False] / 2**20:.1f} |")
    print(f"| duplicates (default) | {peak[True] / 2**20:.1f} | {rss[True] / 2**20:.1f} |")
    print(f"| difference per row | {(peak[True] - peak[False]) / n:.1f} bytes "
          f"| {(rss[True] - rss[False]) / n:.1f} bytes |")


if __name__ == "__main__":
    main()
