"""``split_trajectory`` on the edges ms-swift's logs and hostile files can hold (the ms-swift-rendered logs are
in ``test_trajectories.py``), and the ``tool_spam`` audit detector from the metrics alone (``num_turns``, what
the in-training audit callback sees)."""

import json
from pathlib import Path

from swift_ext.curation import audit
from swift_ext.runs import Run
from swift_ext.scoring.results import MAX_TURNS, from_rows, split_trajectory

U = "<|im_start|>user\n{}<|im_end|>\n"
A = "<|im_start|>assistant\n{}<|im_end|>\n"
T = "<|im_start|>user\n<tool_response>\n{}\n</tool_response><|im_end|>\n"
GEN = "<|im_start|>assistant\n"
CALL = '<tool_call>\n{"name": "zoom", "arguments": {"bbox_2d": [1, 2, 30, 40]}}\n</tool_call>'


def test_single_turn_prompt_is_unchanged():
    prompt = U.format("q") + GEN
    for num_turns in (1, None, 0):
        t = split_trajectory(prompt, num_turns)
        assert (t.prompt, t.turns) == (prompt, [])


def test_history_in_the_dataset_prompt_is_not_taken_for_the_trajectory():
    """A few-shot prompt holds an assistant turn of its own: num_turns says how many the rollout added."""
    prompt = U.format("shot q") + A.format("shot a") + U.format("q") + A.format(CALL) + T.format("crop") + GEN
    t = split_trajectory(prompt, 2)
    assert t.prompt == U.format("shot q") + A.format("shot a") + U.format("q") + GEN
    assert [x["role"] for x in t.turns] == ["assistant", "tool"]
    assert t.turns[0]["calls"] == [{"name": "zoom", "arguments": {"bbox_2d": [1, 2, 30, 40]}}]
    # without num_turns, a prompt ending with a tool result is a trajectory back to the last user turn
    assert split_trajectory(prompt).prompt == t.prompt


def test_tool_images_are_counted_and_marked():
    vision = "<|vision_start|>" + "<|image_pad|>" * 4 + "<|vision_end|>"
    prompt = U.format(vision + "q") + A.format(CALL) + T.format(vision + "zoomed 28x28") + GEN
    t = split_trajectory(prompt, 2)
    assert t.turns[1] == {"role": "tool", "content": "<image>zoomed 28x28", "images": [None]}
    assert t.messages == [{"role": "user", "content": "<image>q"}]


def test_message_list_prompts_carry_image_paths():
    msgs = [{"role": "user", "content": "<image>q"}, {"role": "assistant", "content": CALL},
            {"role": "tool", "content": "<image>crop", "images": ["/runs/t1/zoom-1.png"]}]
    t = split_trajectory(msgs, 2)
    assert t.turns[1]["images"] == ["/runs/t1/zoom-1.png"] and t.prompt == msgs[:1]


def test_malformed_calls_and_hostile_prompts():
    bad = "<tool_call>{not json</tool_call>"
    t = split_trajectory(U.format("q") + A.format(bad) + T.format("error: bad call") + GEN, 2)
    assert t.turns[0]["calls"][0]["error"].startswith("invalid JSON")
    # more turns than MAX_TURNS: read as a plain prompt, in bounded time
    huge = U.format("q") + (A.format("x") + T.format("y")) * (MAX_TURNS // 2 + 1) + GEN
    assert split_trajectory(huge, 3).turns == []
    for prompt in (None, 7, "", "<|im_start|>", {"a": 1}):
        assert split_trajectory(prompt, 2).turns == []
    # a num_turns that is not a count (text, bool, negative, more turns than the prompt holds)
    prompt = U.format("q") + A.format(CALL) + T.format("r") + GEN
    assert split_trajectory(prompt, "2").turns == split_trajectory(prompt).turns   # heuristic
    assert split_trajectory(prompt, True).turns == split_trajectory(prompt).turns
    assert split_trajectory(prompt, -1).turns == []
    assert [x["role"] for x in split_trajectory(prompt, 50).turns] == ["assistant", "tool"]


def test_column_table_with_unequal_columns_is_a_rejected_row_not_a_crash():
    res = from_rows([{"step": ["1", "1"], "prompt": ["p"], "completion": ["a", "b"]},
                     {"step": ["2"], "prompt": ["p"], "completion": ["c"], "solution": ["c"]}])
    assert res.completions == ["c"] and res.rejected[0][0] == 1 and "'prompt'" in res.rejected[0][1]


def _run(rows, **args):
    run = Run(path=Path("."), name="t", rows=[{"step": i + 1, "loss": 0, **r} for i, r in enumerate(rows)],
              args=args)
    run.refresh()
    return run


def test_tool_spam_from_num_turns_when_no_completions_were_logged():
    # num_turns 1,1,2,2,3,3,4,4: first quarter 1 -> last quarter 4, calls rise by 3.0; accuracy flat at 0.3
    rows = [{"num_turns": n, "rewards/final_answer/mean": 0.3} for n in (1, 1, 2, 2, 3, 3, 4, 4)]
    f = audit.tool_spam(_run(rows))
    assert (f.status, f.value) == ("error", 3.0) and "num_turns" in f.message
    # the same calls with accuracy rising 0.3 -> 0.6: the tools help, no finding
    rising = [{**r, "rewards/final_answer/mean": 0.3 + 0.05 * i} for i, r in enumerate(rows)]
    assert audit.tool_spam(_run(rising)).status == "ok"
    # a rise of 0.5 .. 1.5 calls warns
    mild = [{"num_turns": n, "rewards/final_answer/mean": 0.3} for n in (1, 1, 1, 1, 1, 1, 2, 2)]
    assert (audit.tool_spam(_run(mild)).status, audit.tool_spam(_run(mild)).value) == ("warn", 1.0)


def test_tool_spam_skips_without_turns_or_accuracy():
    assert audit.tool_spam(_run([{"rewards/final_answer/mean": 0.3}] * 8)).status == "skipped"
    f = audit.tool_spam(_run([{"num_turns": 1 + i} for i in range(8)]))
    assert f.status == "skipped" and "accuracy-type" in f.message
    assert audit.tool_spam in audit.METRIC_DETECTORS  # the in-training audit callback runs it too
    assert json.dumps(f.as_dict())


def _agent_run(tmp_path, calls_per_step, accuracy):
    """A run folder in ms-swift 4.6's layout: per step, 4 trajectories with that many zoom calls each."""
    from swift_ext import runs

    tables, logs = [], []
    for step, (n, acc) in enumerate(zip(calls_per_step, accuracy), 1):
        prompt = U.format("q") + (A.format(CALL) + T.format("crop")) * n + GEN
        tables.append({"step": [str(step)] * 4, "prompt": [prompt] * 4, "completion": ["A cat."] * 4,
                       "final_answer": [acc] * 4, "advantages": [0.0] * 4, "num_turns": [n + 1] * 4})
        logs.append({"global_step/max_steps": f"{step}/{len(calls_per_step)}", "loss": 0.0,
                     "rewards/final_answer/mean": acc})
    (tmp_path / "completions.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tables))
    (tmp_path / "logging.jsonl").write_text("".join(json.dumps(r) + "\n" for r in logs))
    return runs.load_run(tmp_path)


def test_tool_spam_counts_the_calls_in_logged_trajectories(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    spam = _agent_run(tmp_path / "a", [0, 0, 1, 1, 2, 2, 3, 3], [0.5] * 8)
    f = {x.detector: x for x in audit.audit(spam)}["tool_spam"]
    assert (f.status, f.value) == ("error", 3.0) and f.message.startswith("tool calls per trajectory 0.00 -> 3.00")
    # the same rise in calls while final_answer rises 0.2 -> 0.9: the zooms pay off, no finding
    fine = _agent_run(tmp_path / "b", [0, 0, 1, 1, 2, 2, 3, 3], [0.2, 0.2, 0.4, 0.5, 0.6, 0.7, 0.9, 0.9])
    assert {x.detector: x for x in audit.audit(fine)}["tool_spam"].status == "ok"


def test_completion_file_reader_hands_rewards_the_trajectory():
    """``rewards explain`` / ``rewards score`` on ms-swift's table: one row per completion, ``messages`` the whole
    trajectory as training hands it to a reward, groups by step and starting prompt."""
    traj = U.format("<image>q") + A.format(CALL) + T.format("crop") + GEN
    table = {"step": ["3"] * 3, "prompt": [traj, traj, U.format("<image>q") + GEN], "completion": ["a", "b", "c"],
             "solution": ["a"] * 3, "num_turns": [2, 2, 1], "acc": [1.0, 0.0, 0.0]}
    res = from_rows([table, {**table, "step": ["4"] * 3}])
    assert res.completions == ["a", "b", "c"] * 2 and res.groups == [[0, 1, 2], [3, 4, 5]]
    assert res.rows[0]["messages"] == [{"role": "user", "content": "<image>q"},
                                       {"role": "assistant", "content": CALL},
                                       {"role": "tool", "content": "crop"}, {"role": "assistant", "content": "a"}]
    assert "messages" not in res.rows[2]  # a single-turn prompt reads as before: the prompt text only
    assert res.rows[0]["prompt"] == res.rows[2]["prompt"] == U.format("<image>q") + GEN


def test_ms_swift_double_end_marks_are_not_content():
    """ms-swift 4.6 logs a token-backed assistant turn with its own decoded ``<|im_end|>`` before the template's."""
    prompt = U.format("q") + "<|im_start|>assistant\n" + CALL + "<|im_end|><|im_end|>\n" + T.format("r") + GEN
    assert split_trajectory(prompt, 2).turns[0]["content"] == CALL
