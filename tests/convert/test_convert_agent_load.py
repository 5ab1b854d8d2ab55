"""Function-calling and IFEval conversions, read by ms-swift itself, then graded by the rewards from what ms-swift hands
them; and a real tiny GRPO run with ``tool_call`` and ``ifeval`` in ``--reward_funcs``.

ms-swift runs in a real subprocess: ``load_dataset`` on each converted file, then the Qwen3 template with the
``hermes`` agent template encodes every row (SFT: the tool calls are the trained response; GRPO: the prompt, with
the tools in the system prompt). The GRPO rows' columns, as ms-swift's dataset gives them (``tools`` parsed to
dicts, Arrow-padded ``kwargs``), are then scored by the rewards: the gold calls score 1, and the IFEval rows read
their instructions.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from swift_ext.testing import tiny
from swift_ext.convert import convert_file
from swift_ext.rewards import build
from swift_ext.testing import grpo_args, step_rows

pytestmark = pytest.mark.e2e
DATA = Path(__file__).resolve().parents[1] / "data" / "convert"

SCRIPT = r'''
import json, sys
from swift_ext import cpu_compat
cpu_compat.apply()
from swift import get_processor, get_template, load_dataset

cases, model = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
proc = get_processor(model["path"], model_type=model["model_type"], download_model=False)
out = []
for case in cases:
    ds, _ = load_dataset([case["file"]], remove_unused_columns=case["task"] != "grpo", num_proc=1)
    template = get_template(proc, template_type=model["template"], agent_template="hermes",
                            remove_unused_columns=case["task"] != "grpo")
    template.set_mode("train" if case["task"] == "sft" else "transformers")
    rows, texts, errors = [], [], []
    for i, row in enumerate(ds):
        try:
            enc = template.encode(row)
            texts.append(proc.decode(enc["input_ids"]))
            if case["task"] == "sft":
                texts[-1] = proc.decode([t for t in enc["labels"] if t != -100])
        except Exception as exc:
            errors.append(f"row {i}: {type(exc).__name__}: {exc}")
        rows.append({k: row[k] for k in ("tools", "solution", "instruction_id_list", "kwargs") if k in row})
    out.append({"file": case["file"], "task": case["task"], "rows": rows, "texts": texts, "errors": errors})
print("RESULTS=" + json.dumps(out, default=str))
'''


def _convert(tmp_path, name, task):
    out = tmp_path / f"{Path(name).stem}.{task}.jsonl"
    report = convert_file(str(DATA / name), str(out), task)
    assert report.rows_rejected == 0, report.reasons
    return out


def test_ms_swift_reads_function_calling_and_ifeval_conversions(tmp_path, tiny_models, swift_env):
    model = tiny_models["text"]
    cases = [{"file": str(_convert(tmp_path, "function_calling.jsonl", t)), "task": t} for t in ("sft", "grpo")]
    cases.append({"file": str(_convert(tmp_path, "ifeval.jsonl", "grpo")), "task": "grpo"})
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    (tmp_path / "model.json").write_text(json.dumps({"path": model.path, "model_type": model.model_type,
                                                     "template": model.template}))
    (tmp_path / "check.py").write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(tmp_path / "check.py"), str(tmp_path / "cases.json"),
                           str(tmp_path / "model.json")], capture_output=True, text=True, env=swift_env,
                          timeout=600, cwd=tmp_path)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULTS=")), None)
    assert line, proc.stdout[-3000:] + proc.stderr[-3000:]
    sft, fc_grpo, if_grpo = json.loads(line[len("RESULTS="):])
    for res in (sft, fc_grpo, if_grpo):
        assert res["errors"] == [] and len(res["rows"]) == 4, (res["file"], res["errors"])
    # SFT: ms-swift trains on the gold calls, rendered as Hermes <tool_call> blocks
    gold = [json.loads(r["solution"]) for r in fc_grpo["rows"]]
    reward = build("tool_call")
    assert reward(sft["texts"], solution=[r["solution"] for r in fc_grpo["rows"]]) == [1.0] * 4
    assert all("<tool_call>" in t for t in sft["texts"])
    # GRPO: the tools reach the prompt, and the rewards read the columns as ms-swift passes them
    assert all("# Tools" in t and "<tools>" in t for t in fc_grpo["texts"])
    completions = ["".join(f"<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in g) for g in gold]
    columns = {k: [r[k] for r in fc_grpo["rows"]] for k in ("tools", "solution")}
    assert all(isinstance(t, list) and isinstance(t[0], dict) for t in columns["tools"])   # parsed by ms-swift
    assert build("tool_call")(completions, **columns) == [1.0] * 4
    assert build("tool_call:mode=schema")(completions, **columns) == [1.0] * 4
    ids = [r["instruction_id_list"] for r in if_grpo["rows"]]
    kwargs = [r["kwargs"] for r in if_grpo["rows"]]
    assert ids == [json.loads(x)["instruction_id_list"] for x in (DATA / "ifeval.jsonl").open()]
    answers = ["rivers run to the sea", "Paris has a river. " + "The river is long. " * 5,
               "<<Paris>> *one* and *two*", "short and lowercase here. any other questions?"]
    assert build("ifeval")(answers, instruction_id_list=ids, kwargs=kwargs) == [1.0] * 4
    assert build("ifeval")(["Rivers, yes"] * 4, instruction_id_list=ids, kwargs=kwargs) == [0.0, 0.0, 0.0, 0.0]


def test_grpo_with_tool_call_and_ifeval_rewards(tiny_models, run_swift, tmp_path):
    model = tiny_models["text"]
    fc = [json.loads(x) for x in _convert(tmp_path, "function_calling.jsonl", "grpo").read_text().splitlines()]
    ife = [json.loads(x) for x in _convert(tmp_path, "ifeval.jsonl", "grpo").read_text().splitlines()]
    rows = [r for pair in zip(fc, ife) for r in pair]                 # one of each kind in every batch
    dataset = tiny.write_jsonl(tmp_path / "mixed.jsonl", rows)
    rewards = ["tool_call:mode=partial", "ifeval:mode=loose"]
    run = run_swift("rlhf", [*grpo_args(model, dataset, tmp_path / "out", rewards), "--agent_template", "hermes",
                             "--dataset_shuffle", "false", "--train_dataloader_shuffle", "false",
                             "--log_completions", "true"], cwd=tmp_path)
    assert run.returncode == 0, run.tail()
    steps = step_rows(tmp_path / "out")
    assert len(steps) == 2
    for step in steps:
        for name in rewards:
            # each reward abstains on the other kind's rows; its mean is over the rows it scored
            assert 0.0 <= step[f"rewards/{name}/mean"] <= 1.0, (name, step)
    logged = [json.loads(line) for path in (tmp_path / "out").rglob("completions.jsonl")
              for line in path.read_text().splitlines() if line.strip()]
    assert logged
    # the scores logged in training are the rewards' scores of the logged completions with the rows' columns
    by_prompt = {r["messages"][-1]["content"]: r for r in rows}
    checked = 0
    for entry in logged:
        for i, completion in enumerate(entry["completion"]):
            prompt = entry["prompt"][i] if isinstance(entry["prompt"], list) else entry["prompt"]
            row = next((r for p, r in by_prompt.items() if p in json.dumps(prompt)), None)
            if row is None:
                continue
            got = build(rewards[0])([completion], **{k: [row.get(k)] for k in ("solution", "tools")})[0]
            want = build(rewards[1])([completion], **{k: [row.get(k)] for k in ("instruction_id_list", "kwargs")})[0]
            for name, value in ((rewards[0], got), (rewards[1], want)):
                logged_value = entry[name][i]
                if value is None:
                    assert logged_value is None or logged_value != logged_value, (name, completion, logged_value)
                else:
                    assert logged_value == pytest.approx(value), (name, completion, row)
            checked += 1
    assert checked >= 4
