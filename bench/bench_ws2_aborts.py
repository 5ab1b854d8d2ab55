"""Benchmark (not in the suite): world-size-2 GRPO on CPU with swift-ext rewards, N times in a row, counting the
runs that end with SIGABRT at teardown (issue 21).

    flock /tmp/swift-ext-heavy.lock python bench/bench_ws2_aborts.py --runs 20
    flock /tmp/swift-ext-heavy.lock python bench/bench_ws2_aborts.py --runs 20 --no-teardown   # the rate before

Each run is ``swift-ext launch grpo --device cpu --nproc 2`` (torchrun, two gloo ranks, ``--use_cpu true``)
of the tiny local Qwen3 for ``--steps`` steps with ``teacher_similarity:metric=chrf`` and ``think_format``,
completions logged, a checkpoint saved at the end. ``--no-teardown`` sets ``SWIFT_EXT_DIST_TEARDOWN=0``: the
plugin then leaves the process group to interpreter exit, as ms-swift 4.6 does (``swift/pipelines/base.py``
``SwiftPipeline.main``), and a gloo rank can abort with ``terminate called without an active exception``.
``--via swift`` runs ``swift rlhf`` directly (NPROC_PER_NODE=2) instead of the launcher.

Every run's log is kept under ``--keep`` (default: a temporary folder, printed). A summary table goes to
stderr, one JSON object to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from swift_ext import cpu_compat  # noqa: E402
from swift_ext.testing import tiny  # noqa: E402
from swift_ext.bridge import plugin_path  # noqa: E402

REWARDS = ["teacher_similarity:metric=chrf", "think_format"]
ABORT = re.compile(r"SIGABRT|Signal 6 |exitcode\s*:\s*-6|terminate called")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flags(model, data: Path, out: Path, steps: int, rewards) -> list:
    return [*tiny.common_flags(model), "--dataset", str(data), "--reward_funcs", *rewards,
            "--num_generations", "2", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
            "--max_completion_length", "16", "--max_steps", str(steps), "--save_steps", str(steps),
            "--max_length", "256", "--lora_rank", "4", "--lora_alpha", "8", "--learning_rate", "1e-3",
            "--logging_steps", "1", "--log_completions", "true", "--output_dir", str(out)]


def one_run(i: int, args, model, data: Path, work: Path, env) -> dict:
    out, log = work / f"run{i}", work / f"run{i}.log"
    run_env = dict(env, MASTER_PORT=str(free_port()))
    if args.no_teardown:
        run_env["SWIFT_EXT_DIST_TEARDOWN"] = "0"
    extra = flags(model, data, out, args.steps, args.rewards)
    if args.via == "launch":
        cmd = [sys.executable, "-m", "swift_ext", "launch", "grpo", "--device", "cpu", "--nproc", "2",
               "--log-dir", str(work / f"launch{i}"), "--set", "use_vllm=false",
               "--set", "gradient_checkpointing=false", "--set", f"dataset={data}", "--", *extra]
    else:
        run_env["NPROC_PER_NODE"] = "2"
        cmd = [str(Path(sys.executable).with_name("swift")), "rlhf", "--rlhf_type", "grpo", "--use_vllm", "false",
               "--external_plugins", plugin_path(), "--use_cpu", "true", "--ddp_backend", "gloo", *extra]
    t0 = time.monotonic()
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, env=run_env, cwd=work, stdout=fh, stderr=subprocess.STDOUT,
                            timeout=args.timeout).returncode
    text = log.read_text(errors="replace")
    steps = len(set(re.findall(r"'global_step/max_steps': '(\d+)/", text)))
    return {"run": i, "rc": rc, "abort": bool(ABORT.search(text)), "steps": steps,
            "destroyed": len(re.findall(r"\[swift-ext teardown\] rank \d+: process group destroyed", text)),
            "seconds": round(time.monotonic() - t0, 1), "log": str(log)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rewards", nargs="+", default=REWARDS)
    ap.add_argument("--via", choices=("launch", "swift"), default="launch")
    ap.add_argument("--no-teardown", action="store_true", help="SWIFT_EXT_DIST_TEARDOWN=0: the rate without the fix")
    ap.add_argument("--keep", help="folder for the runs' outputs and logs (default: a new temporary folder)")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args(argv)
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-ws2-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    model = tiny.ensure("text")
    data = tiny.write_jsonl(work / "grpo.jsonl", tiny.grpo_rows(16))
    env = tiny.offline_env(cpu_compat.subprocess_env(os.environ))
    env["PYTHONFAULTHANDLER"] = "1"  # an abort prints every thread's Python stack
    env["SWIFT_EXT_TEARDOWN_TRACE"] = "1"  # each rank says when it destroyed its process group
    results = []
    for i in range(1, args.runs + 1):
        r = one_run(i, args, model, Path(data), work, env)
        results.append(r)
        print(f"run {i:2d}/{args.runs}: rc={r['rc']} abort={r['abort']} steps={r['steps']} "
              f"groups destroyed={r['destroyed']} {r['seconds']}s",
              file=sys.stderr, flush=True)
    aborts = sum(r["abort"] for r in results)
    failed = sum(r["rc"] != 0 for r in results)
    print(f"{args.runs} runs via {args.via}, teardown {'off' if args.no_teardown else 'on'}: {aborts} aborted, "
          f"{failed} failed, mean {sum(r['seconds'] for r in results) / len(results):.1f}s; logs in {work}",
          file=sys.stderr)
    print(json.dumps({"runs": args.runs, "via": args.via, "teardown": not args.no_teardown, "aborts": aborts,
                      "failed": failed, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
