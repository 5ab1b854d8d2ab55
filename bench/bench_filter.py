"""Benchmark: what `swift-ext filter` costs beyond generation, and what resuming costs.

1. Overhead: the tiny text model through ms-swift's transformers engine in-process (the real sampler);
   the time spent inside the engine is measured apart from the whole run, so the rest (checkpoint writes,
   scoring through the one scoring path, output files) is the filter's own overhead, per prompt.
2. Resume: a finished run rerun with the same settings samples nothing: its time is the cost of reading
   the checkpoint, scoring and writing. Measured on the real run's checkpoint and on a large checkpoint
   (``--resume-prompts`` prompts x k completions, written here; the sampler is never called).

Not a test; prints a markdown table.

    python bench/bench_filter.py --prompts 16 -k 8 --max-tokens 32 --resume-prompts 20000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REWARDS = ["numeric", "exact_match:extract=last_number", "think_format"]


class Timed:
    """The real sampler, with the time spent inside it added up."""

    def __init__(self, sampler):
        self.sampler, self.label, self.seconds = sampler, sampler.label, 0.0

    def sample(self, items, *args):
        t = time.perf_counter()
        try:
            self.sampler.sample(items, *args)
        finally:
            self.seconds += time.perf_counter() - t


class NeverCalled:
    label = "synthetic"

    def sample(self, items, *args):
        raise AssertionError(f"a resumed run sampled {len(items)} prompts")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("-k", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--resume-prompts", type=int, default=20000)
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    from swift_ext import cpu_compat
    from swift_ext.testing import tiny
    from swift_ext.curation import filter as flt

    cpu_compat.apply()
    from swift_ext.bridge.infer import EngineSampler

    work = Path(tempfile.mkdtemp(prefix="bench-filter-"))
    data = tiny.write_jsonl(work / "rows.jsonl", tiny.grpo_rows(args.prompts))
    model = tiny.ensure("text")
    t = time.perf_counter()
    engine = EngineSampler(model.path, model_type=model.model_type, template=model.template, torch_dtype="float32")
    load = time.perf_counter() - t
    sampling = flt.Sampling(num_generations=args.k, max_tokens=args.max_tokens, seed=1)

    sampler = Timed(engine)
    t = time.perf_counter()
    flt.run(data, str(work / "out.jsonl"), REWARDS, sampler, sampling, keep=(0.1, 0.9))
    total = time.perf_counter() - t
    gen = sampler.seconds
    over = total - gen

    t = time.perf_counter()
    rep = flt.run(data, str(work / "out.jsonl"), REWARDS, Timed(engine), sampling, keep=(0.1, 0.9))
    resume_small = time.perf_counter() - t
    assert rep.sampled_now == 0

    # a large checkpoint: what reading it back costs per prompt
    n = args.resume_prompts
    rng = random.Random(0)
    big = tiny.write_jsonl(work / "big.jsonl", tiny.grpo_rows(n))
    header = {"swift_ext_filter_checkpoint": 1, "dataset": "big.jsonl", "sampler": "synthetic", **sampling.as_dict()}
    prompts, _, _ = flt.read_dataset(big)
    with open(work / "big.ckpt.jsonl", "w", encoding="utf-8") as fh:
        fh.write(json.dumps(header) + "\n")
        for p in prompts:
            comps = [f"<think>step {rng.random():.6f}</think><answer>{rng.randint(0, 99)}</answer>" + " pad" * 20
                     for _ in range(args.k)]
            fh.write(json.dumps({"key": p.key, "line": p.line, "completions": comps}) + "\n")
    t = time.perf_counter()
    checkpoint = flt.Checkpoint(str(work / "big.ckpt.jsonl"), {k: v for k, v in header.items()
                                                                 if k != "swift_ext_filter_checkpoint"}).open()
    checkpoint.close()
    read_ckpt = time.perf_counter() - t
    t = time.perf_counter()
    rep = flt.run(big, str(work / "big.jsonl.out"), REWARDS, NeverCalled(), sampling, checkpoint=str(work / "big.ckpt.jsonl"),
                  keep=(0.1, 0.9))
    resume_big = time.perf_counter() - t
    assert rep.resumed == n and rep.sampled_now == 0

    p = args.prompts
    print(f"tiny text model, transformers engine on CPU; {p} prompts x {args.k} completions x {args.max_tokens} "
          f"tokens; rewards {', '.join(REWARDS)}\n")
    print("| measure | seconds | per prompt |")
    print("|---|---|---|")
    print(f"| engine load (once) | {load:.2f} | |")
    print(f"| whole run | {total:.2f} | {total / p * 1000:.1f} ms |")
    print(f"| generation (inside the engine) | {gen:.2f} | {gen / p * 1000:.1f} ms |")
    print(f"| filter overhead (checkpoint, scoring, outputs) | {over:.3f} | {over / p * 1000:.2f} ms "
          f"({over / gen:.1%} of generation) |")
    print(f"| resume of the finished run (nothing to sample) | {resume_small:.3f} | {resume_small / p * 1000:.2f} ms |")
    print(f"| read a {n}-prompt checkpoint (x{args.k} completions) | {read_ckpt:.2f} | "
          f"{read_ckpt / n * 1e6:.1f} us |")
    print(f"| resume a {n}-prompt run (read, score, write) | {resume_big:.2f} | {resume_big / n * 1e6:.1f} us |")


if __name__ == "__main__":
    main()
