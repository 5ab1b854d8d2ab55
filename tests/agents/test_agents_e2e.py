"""End to end on CPU: a tiny Qwen3 taught to call tools, then a real ``swift rlhf --rlhf_type grpo
--multi_turn_scheduler tools:...`` in colocate mode without vLLM (``--use_vllm false``: ms-swift's
``RolloutTrainerMixin._colocate_multi_turn_infer`` drives the scheduler with the trainer's own engine).

1. ``swift sft`` (full tuning, 100 steps) on two trajectories, repeated: ask 6*7, call the calculator, read
   its result, answer; ask 2**10, call python, read its output, answer. The random tiny model memorises them, so in
   the GRPO rollout it writes ``<tool_call>`` blocks (not always well-formed: that exercises the error turns).
2. ``swift rlhf --rlhf_type grpo`` from that checkpoint with the plugin file, the ``tools`` scheduler and the three
   trajectory rewards. Checked from what the run wrote: ``completions.jsonl`` holds conversations with tool turns
   the scheduler answered (a result or an ``error: ...``), ``num_turns`` above 1; ``logging.jsonl`` has every
   trajectory reward's mean and finite losses.

The masks are checked on the same ms-swift functions the trainer uses (``encode_sample``,
``collate_to_grpo_micro_batch``) in ``test_multi_turn_swift.py``; this run shows they train without error.
"""

import json
import math

import pytest

from swift_ext.bridge import plugin_path
from swift_ext.tools.base import tool_schemas
from swift_ext.testing import tiny

pytestmark = pytest.mark.e2e

SPEC = "tools:tools=calculator+python,max_calls=2"
REWARDS = ["final_answer:reward=numeric", "tool_success", "turn_budget:max_turns=2"]


def _call(name, **arguments):
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


CASES = [("What is 6*7?", _call("calculator", expression="6*7"), "42"),
         ("What is 2**10?", _call("python", code="print(2**10)"), "1024")]


def _data(tmp_path):
    tools = tool_schemas("calculator+python")
    sft, grpo = [], []
    for question, call, answer in CASES:
        sft.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": call},
                                 {"role": "tool", "content": answer},
                                 {"role": "assistant", "content": f"<answer>{answer}</answer>"}], "tools": tools})
        grpo.append({"messages": [{"role": "user", "content": question}], "tools": tools, "solution": answer})
    return (tiny.write_jsonl(tmp_path / "sft.jsonl", sft * 4), tiny.write_jsonl(tmp_path / "grpo.jsonl", grpo * 2))


def test_tool_calling_grpo_from_the_plugin_file(tiny_models, run_swift, tmp_path):
    model = tiny_models["text"]
    sft_data, grpo_data = _data(tmp_path)
    common = ["--model_type", model.model_type, "--template", model.template, "--agent_template", "hermes",
              "--torch_dtype", "float32", "--check_model", "false", "--report_to", "none",
              "--dataloader_num_workers", "0", "--dataset_num_proc", "1"]
    sft = run_swift("sft", ["--model", model.path, *common, "--dataset", sft_data, "--tuner_type", "full",
                            "--max_steps", "100", "--per_device_train_batch_size", "4", "--learning_rate", "5e-3",
                            "--lr_scheduler_type", "constant", "--warmup_ratio", "0", "--max_length", "1024",
                            "--logging_steps", "20", "--save_steps", "100", "--save_total_limit", "1",
                            "--output_dir", str(tmp_path / "sft")], cwd=tmp_path)
    assert sft.returncode == 0, sft.tail()
    checkpoint = next((tmp_path / "sft").glob("*/checkpoint-100"))

    run = run_swift("rlhf", ["--rlhf_type", "grpo", "--model", str(checkpoint), *common, "--dataset", grpo_data,
                             "--external_plugins", plugin_path(), "--reward_funcs", *REWARDS,
                             "--multi_turn_scheduler", SPEC, "--max_turns", "3", "--use_vllm", "false",
                             "--num_generations", "2", "--max_completion_length", "96", "--temperature", "0.1",
                             "--tuner_type", "lora", "--lora_rank", "4", "--lora_alpha", "8", "--max_steps", "2",
                             "--per_device_train_batch_size", "4", "--learning_rate", "1e-3", "--max_length", "2048",
                             "--logging_steps", "1", "--save_steps", "2", "--save_total_limit", "1", "--beta", "0.0",
                             "--log_completions", "true", "--output_dir", str(tmp_path / "grpo")], cwd=tmp_path)
    assert run.returncode == 0, run.tail()
    [out] = [d for d in run.output_dirs() if (tmp_path / "grpo") in d.parents]

    logged = [json.loads(line) for line in open(out / "completions.jsonl", encoding="utf-8")]
    prompts = [p for row in logged for p in row["prompt"]]
    turns = [t for row in logged for t in row["num_turns"]]
    answered = [p for p in prompts if "<tool_response>" in p]
    # the scheduler ran tool calls and the model was given their results (or an error message) in a tool turn
    assert answered, prompts[:4]
    assert any("<tool_response>\n42\n</tool_response>" in p or "<tool_response>\n1024\n</tool_response>" in p
               or "<tool_response>\nerror: " in p for p in answered), answered[:4]
    assert max(turns) >= 2
    for name in REWARDS:
        assert all(name in row for row in logged), name

    steps = [r for r in tiny.logging_rows(out) if "loss" in r and "reward" in r]
    assert len(steps) == 2 and all(math.isfinite(r["loss"]) for r in steps)
    for name in ("final_answer:reward=numeric", "turn_budget:max_turns=2"):
        assert all(f"rewards/{name}/mean" in r for r in steps), (name, steps[0].keys())
    assert any("rewards/tool_success/mean" in r for r in steps)      # NaN (every trajectory abstained) is left out
    assert all("num_turns" in r for r in steps)
