"""Multi-turn completions: the one record (``scoring.results.split_trajectory``) read by the run reader, the
completion-file reader behind ``rewards explain`` and the audit.

The logs are ms-swift's own: a subprocess renders each trajectory exactly as ``GRPOTrainer._log_rollout`` does in
ms-swift 4.6 (``messages[:-1]`` through ``_apply_chat_template_to_messages_list``: ``remove_response``,
``TemplateInputs.from_dict``, ``template.encode``, ``safe_decode``; the Qwen3 template with the ``hermes`` agent
template, on the tiny text model's tokenizer) and writes the step's table with ms-swift's ``JsonlWriter``, in the
columns ``GRPOTrainer.log`` writes (``step``, ``prompt``, ``completion``, rewards, ``advantages``, ``solution``,
``num_turns``)."""

import json
import subprocess
import sys

import pytest

from swift_ext import runs
from swift_ext.scoring import explain, results

RENDER = r'''
import json, sys
from swift_ext import cpu_compat
cpu_compat.apply()
from copy import deepcopy
from swift import get_processor, get_template
from swift.template import TemplateInputs
from swift.utils import JsonlWriter, remove_response

cases, model, out = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
proc = get_processor(model["path"], model_type=model["model_type"], download_model=False)
template = get_template(proc, template_type=model["template"], agent_template="hermes")
template.set_mode("transformers")
writer = JsonlWriter(out)
for step in cases:
    table = {"step": [], "prompt": [], "completion": [], "accuracy": [], "advantages": [], "solution": [],
             "num_turns": []}
    for case in step:
        messages = deepcopy(case["messages"][:-1])        # GRPOTrainer._log_rollout: s.messages[:-1]
        remove_response(messages)                          # _apply_chat_template_to_messages_list
        res = template.encode(TemplateInputs.from_dict({"messages": messages}))
        table["step"].append(str(case["step"]))
        table["prompt"].append(template.safe_decode(res["input_ids"]))
        table["completion"].append(case["messages"][-1]["content"])
        table["accuracy"].append(case["accuracy"])
        table["advantages"].append(0.0)
        table["solution"].append(case["solution"])
        table["num_turns"].append(case["num_turns"])
    writer.append(table)
'''

CALL = '<tool_call>\n{{"name": "calculator", "arguments": {{"expression": "{}"}}}}\n</tool_call>'


def _trajectory(question, calls, answer):
    """A tools-scheduler trajectory: one call per model turn, its result as a tool turn, then the answer."""
    msgs = [{"role": "system", "content": "Use the tools."}, {"role": "user", "content": question}]
    for expr, result in calls:
        msgs += [{"role": "assistant", "content": CALL.format(expr)}, {"role": "tool", "content": result}]
    return msgs + [{"role": "assistant", "content": answer}]


def _cases(steps=8, spam=False):
    """Two prompts x two samples per step; with ``spam`` the calls per trajectory grow 0 -> 3 while accuracy
    stays at 0.5; without, one call each and accuracy rising."""
    out = []
    for step in range(1, steps + 1):
        n_calls = (step - 1) * 3 // (steps - 1) if spam else 1
        rows = []
        for q, gold in (("What is 2+3?", "5"), ("What is 7*6?", "42")):
            for i in range(2):
                calls = [("2+3" if gold == "5" else "7*6", gold)] * n_calls
                right = i == 0 if spam else (i == 0 or step > steps // 2)
                rows.append({"step": step, "messages": _trajectory(q, calls, f"The answer is {gold if right else 0}"),
                             "accuracy": 1.0 if right else 0.0, "solution": gold, "num_turns": n_calls + 1})
        out.append(rows)
    return out


@pytest.fixture(scope="module")
def swift_logs(tmp_path_factory, tiny_models, swift_env):
    """``{name: completions.jsonl}`` rendered by ms-swift (one subprocess for every log of this module)."""
    tmp = tmp_path_factory.mktemp("logs")
    model = tiny_models["text"]
    (tmp / "model.json").write_text(json.dumps({"path": model.path, "model_type": model.model_type,
                                                "template": model.template}))
    (tmp / "render.py").write_text(RENDER)
    logs = {}
    for name, cases in (("spam", _cases(spam=True)), ("sound", _cases(spam=False))):
        (tmp / f"{name}.json").write_text(json.dumps(cases))
        run_dir = tmp / name
        run_dir.mkdir()
        proc = subprocess.run([sys.executable, str(tmp / "render.py"), str(tmp / f"{name}.json"),
                               str(tmp / "model.json"), str(run_dir / "completions.jsonl")],
                              capture_output=True, text=True, env=swift_env, timeout=600, cwd=tmp)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        logs[name] = run_dir
    return logs


def _rows(log):
    return [json.loads(line) for line in (log / "completions.jsonl").read_text().splitlines()]


pytestmark = pytest.mark.e2e


def test_run_reader_splits_ms_swift_trajectories(swift_logs):
    items = list(runs.iter_completions(swift_logs["spam"] / "completions.jsonl"))
    assert len(items) == 8 * 4
    last = [c for c in items if c.step == 8]
    # 3 calls: 3 assistant turns with one parsed call each, 3 tool turns with the results, in order
    roles = [t["role"] for t in last[0].turns]
    assert roles == ["assistant", "tool"] * 3
    assert [t["calls"] for t in last[0].turns if t["role"] == "assistant"] == \
        [[{"name": "calculator", "arguments": {"expression": "2+3"}}]] * 3
    assert [t["content"] for t in last[0].turns if t["role"] == "tool"] == ["5"] * 3
    assert last[0].text == "The answer is 5" and last[0].num_turns == 4 and last[0].tool_calls == 3
    # the group's prompt is what a single-turn run logs: its two samples share it, it ends at the generation
    # prompt and holds none of the trajectory
    first = [c for c in items if c.step == 1]
    assert first[0].turns == [] and first[0].tool_calls == 0
    assert last[0].prompt == last[1].prompt == first[0].prompt and last[0].prompt != last[2].prompt
    assert "<tool_call>" not in last[0].prompt and "<tool_response>" not in last[0].prompt
    # (the Qwen3 template's generation prompt, kept as the single-turn log has it)
    assert last[0].prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert runs.group_by_prompt(last) == [[0, 1], [2, 3]]


def test_rewards_explain_reads_the_same_records(swift_logs):
    """The completion-file reader expands ms-swift's tables and hands rewards the whole trajectory as
    ``messages`` (what ms-swift passes in training), grouped by the starting prompt."""
    res = results.load(str(swift_logs["spam"] / "completions.jsonl"))
    assert len(res.completions) == 32 and res.ref_key == "solution"
    i = len(res.completions) - 4                      # step 8, first sample
    msgs = res.rows[i]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user"] + ["assistant", "tool"] * 3 + ["assistant"]
    assert msgs[1]["content"] == "What is 2+3?" and msgs[-1]["content"] == "The answer is 5"
    assert res.rows[i]["solution"] == "5" and res.rows[i]["num_turns"] == 4
    assert res.groups[-2:] == [[28, 29], [30, 31]]
    got = explain.explain_results(res, ["exact_match:extract=last_number"], limit=None)
    assert got[i]["explanations"]["exact_match:extract=last_number"]["score"] == 1.0
    assert got[i + 1]["explanations"]["exact_match:extract=last_number"]["score"] == 0.0


def test_tool_spam_fires_on_rising_calls_with_flat_accuracy(swift_logs):
    from swift_ext.curation import audit

    for name in ("spam", "sound"):
        cases = _cases(spam=name == "spam")
        (swift_logs[name] / "logging.jsonl").write_text("".join(json.dumps(
            {"global_step/max_steps": f"{s}/8", "loss": 0.0,
             "rewards/accuracy/mean": sum(c["accuracy"] for c in cases[s - 1]) / 4,
             "num_turns": sum(c["num_turns"] for c in cases[s - 1]) / 4}) + "\n" for s in range(1, 9)))
    spam = {f.detector: f for f in audit.audit(runs.load_run(swift_logs["spam"]))}["tool_spam"]
    # calls per trajectory: steps 1-2 (first quarter) 0 calls, steps 7-8 (last quarter) 2 and 3 -> +2.5;
    # accuracy 0.5 every step
    assert (spam.status, spam.value) == ("error", 2.5), spam
    assert "tool calls per trajectory 0.00 -> 2.50" in spam.message
    sound = {f.detector: f for f in audit.audit(runs.load_run(swift_logs["sound"]))}["tool_spam"]
    assert (sound.status, sound.value) == ("ok", 0.0), sound      # one call throughout, accuracy 0.5 -> 1.0
