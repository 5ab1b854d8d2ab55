"""A toy study, on CPU: the same tiny random model and task trained with SFT only, GRPO only, and CHORD
(GRPO + SFT, mu from 0.9 down to 0.1), evaluated on held-back prompts with the same rewards.

    python bench/bench_tiny_study.py                       # 40 optimizer steps each, about 10 minutes on 2 cores
    python bench/bench_tiny_study.py --steps 20 --keep /tmp/study

The task is the demo's (``swift-ext demo``): "Chant the syllable ka three times. Think in <think></think>,
then give the chant in <answer></answer>." Training uses the 8 bundled rows; evaluation uses 8 other
phrasings (held back), answered greedily by ``swift infer`` and scored by ``swift-ext eval`` with the demo's
rewards: ``teacher_similarity:metric=chrf`` (similarity of the answer to the gold chant) and
``think_format`` (the requested format). It is a toy: a 0.27M-parameter random model, 8 training prompts, one
seed. It shows the shape of the comparison people quote (SFT vs RL vs CHORD), not a result about real models.
Prints a markdown table and writes ``report.html`` with the three training runs side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from swift_ext import bridge, cpu_compat
from swift_ext import demo
from swift_ext.testing import tiny
from swift_ext.scoring.evaluation import evaluate

REWARDS = list(demo.DEFAULT_REWARDS)
HELD_BACK = [("Chant ka twice, please.", 2), ("Give me the chant ka, three times.", 3), ("Four times: ka.", 4),
             ("Can you chant ka two times?", 2), ("Chant: ka ka ka.", 3), ("Write the syllable ka four times.", 4),
             ("Say ka, three times over.", 3), ("Repeat ka twice.", 2)]


def held_back_rows():
    rows = []
    for text, n in HELD_BACK:
        chant = " ".join(["ka"] * n)
        prompt = f"{text} Think in <think></think>, then give the chant in <answer></answer>."
        rows.append({"messages": [{"role": "user", "content": prompt},
                                  {"role": "assistant", "content": f"<answer>{chant}</answer>"}],
                     "solution": chant})
    return rows


def swift(args, log: Path, env) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        code = subprocess.run([str(Path(sys.executable).with_name("swift")), *map(str, args)], env=env, stdout=fh,
                              stderr=subprocess.STDOUT).returncode
    if code != 0:
        sys.exit(f"swift {args[0]} failed ({code}); log: {log}")
    return time.perf_counter() - t0


def checkpoint(out: Path) -> Path:
    found = sorted(out.rglob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    if not found:
        sys.exit(f"no checkpoint under {out}")
    return found[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--keep", default=None, help="keep models, runs and results in this folder")
    args = parser.parse_args()

    work = Path(args.keep or tempfile.mkdtemp(prefix="swift-ext-study-"))
    work.mkdir(parents=True, exist_ok=True)
    env = tiny.offline_env(cpu_compat.subprocess_env(os.environ))
    model = tiny.ensure("text")
    flags = tiny.common_flags(model)
    sft_rows = work / "sft.jsonl"
    shutil.copyfile(demo.DATA_DIR / "sft_chant.jsonl", sft_rows)
    grpo_rows, _ = demo.convert_sample_dataset(work / "data", vl=False, task="chant")
    held = tiny.write_jsonl(work / "held_back.jsonl", held_back_rows())
    common = ["--max_steps", args.steps, "--logging_steps", 1, "--save_steps", args.steps, "--save_total_limit", 1,
              "--tuner_type", "full", "--max_length", 256]
    grpo = ["rlhf", "--rlhf_type", "grpo", *flags, "--dataset", grpo_rows, "--external_plugins", bridge.plugin_path(),
            "--reward_funcs", *REWARDS, "--use_vllm", "false", "--num_generations", 8,
            "--per_device_train_batch_size", 8, "--max_completion_length", 12, "--temperature", 1.0,
            "--learning_rate", 3e-2, "--log_completions", "true", *common]
    runs = {
        "sft": ["sft", *flags, "--dataset", sft_rows, "--per_device_train_batch_size", 8, "--learning_rate", 3e-3,
                *common],
        "grpo": grpo,
        "chord": [*grpo, "--chord_sft_dataset", sft_rows, "--chord_sft_per_device_train_batch_size", 2,
                  "--chord_mu_warmup_steps", 0, "--chord_mu_decay_steps", args.steps, "--chord_mu_peak", 0.9,
                  "--chord_mu_valley", 0.1, "--callbacks", "chord_mu"],
    }
    seconds, outputs = {}, {}
    for name, argv in runs.items():
        out = work / "runs" / name
        if out.exists():
            shutil.rmtree(out)
        print(f"training {name} ...", file=sys.stderr)
        seconds[name] = swift([*argv, "--output_dir", out], work / f"{name}.log", env)
        outputs[name] = out
    infer_flags = flags[:flags.index("--check_model")]  # infer takes model/type/template/dtype only
    results = {}
    for name in ["base", *runs]:
        model_flags = infer_flags if name == "base" else \
            ["--model", checkpoint(outputs[name]), *infer_flags[infer_flags.index("--model_type"):]]
        result = work / f"{name}_held_back.jsonl"
        print(f"answering the held-back prompts with {name} ...", file=sys.stderr)
        swift(["infer", *model_flags, "--infer_backend", "transformers", "--val_dataset", held,
               "--max_new_tokens", 24, "--temperature", 0, "--max_batch_size", 8, "--result_path", result],
              work / f"infer_{name}.log", env)
        results[name] = evaluate(str(result), [f"reward:{r}" for r in REWARDS])

    from swift_ext.report import write_report

    report = write_report([outputs[n] for n in runs], work / "report.html", title="tiny study: SFT vs GRPO vs CHORD")
    print(f"### Tiny study: SFT vs GRPO vs CHORD ({args.steps} optimizer steps each, 8 held-back prompts, greedy)\n")
    print("| model | " + " | ".join(f"`{r}` (mean)" for r in REWARDS) + " | swift training run, wall (s) |")
    print("|---|" + "---:|" * (len(REWARDS) + 1))
    for name, rep in results.items():
        cells = [f"{rep.metrics[f'reward:{r}']['mean']:.3f}" for r in REWARDS]
        wall = f"{seconds[name]:.0f}" if name in seconds else "-"
        print(f"| {name} | " + " | ".join(cells) + f" | {wall} |")
    print(f"\nreport: {report.path}")
    print(f"cpu count: {os.cpu_count()}; load average at the end: {os.getloadavg()[0]:.1f}; "
          f"python {sys.version.split()[0]}")
    for name in results:
        first = json.loads((work / f"{name}_held_back.jsonl").read_text().splitlines()[0])
        print(f"{name}: {first.get('response', '')!r}", file=sys.stderr)
    if not args.keep:
        print(f"(work folder {work} removed; --keep keeps it)", file=sys.stderr)
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
