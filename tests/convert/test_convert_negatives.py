"""DPO negatives: rule-based corruptions (deterministic under a seed) and sampled completions ranked by a reward."""

import json
import random
from pathlib import Path

import pytest

from swift_ext import plugins
from swift_ext.convert import convert_file, convert_rows
from swift_ext.convert.negatives import (Corruptor, bbox, broken_json, number, option_letter,
                                         truncate)
from swift_ext.errors import ConfigError, UnknownNameError

DATA = Path(__file__).resolve().parents[1] / "data" / "convert"


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def test_number_changes_only_the_last_number_in_the_answer():
    text = "<think>3 boxes of 4</think><answer>12</answer>"
    for seed in range(50):
        out = number(text, random.Random(seed))
        assert out.startswith("<think>3 boxes of 4</think><answer>") and out.endswith("</answer>")
        new = out[len("<think>3 boxes of 4</think><answer>"):-len("</answer>")]
        assert new.lstrip("-").isdigit() and new != "12"
    assert number("no digits here", random.Random(0)) is None
    assert number("pi is 3.14", random.Random(1)).split()[-1].count(".") == 1  # keeps two decimals
    assert len(number("pi is 3.14", random.Random(1)).split()[-1].split(".")[1]) == 2


def test_option_letter_swaps_to_another_letter():
    outs = {option_letter("The answer is (C).", random.Random(s)) for s in range(40)}
    # C replaced by each of A, B, D (pool A..D without C)
    assert outs == {"The answer is (A).", "The answer is (B).", "The answer is (D)."}
    assert option_letter("lowercase only", random.Random(0)) is None


def test_bbox_jitter_and_drop():
    one = "<answer>[10, 20, 110, 220]</answer>"
    for s in range(20):
        out = bbox(one, random.Random(s))
        nums = json.loads(out[len("<answer>"):-len("</answer>")])
        assert len(nums) == 4 and nums != [10, 20, 110, 220]
        # width 100, height 200 kept; shift >= 30 % of the size on each axis (or clamped at 0)
        assert nums[2] - nums[0] in (100, pytest.approx(100, abs=1)) or nums[0] == 0
    two = "[[0, 0, 10, 10], [20, 20, 30, 30]]"
    outs = {bbox(two, random.Random(s)) for s in range(40)}
    assert "[[0, 0, 10, 10]]" in outs  # the drop branch removed the last box
    assert bbox("no box", random.Random(0)) is None


def test_broken_json_is_not_json():
    text = '{"label": "cat", "count": 2}'
    for s in range(20):
        out = broken_json(text, random.Random(s))
        with pytest.raises(ValueError):
            json.loads(out)
    assert broken_json("plain", random.Random(0)) is None


def test_truncate_keeps_a_prefix():
    text = "abcdefghijklmnopqrst"  # 20 characters: cut at 6..14
    out = truncate(text, random.Random(3))
    assert text.startswith(out) and 6 <= len(out) <= 14


def test_corruptor_is_deterministic_and_seed_dependent():
    text = "<answer>1234</answer>"
    a = [Corruptor("number", seed=7)(text, i) for i in range(30)]
    b = [Corruptor("number", seed=7)(text, i) for i in range(30)]
    c = [Corruptor("number", seed=8)(text, i) for i in range(30)]
    assert a == b and a != c


def test_corruptor_auto_order_and_unknown():
    # a box answer gets the bbox corruption first in auto mode
    out = Corruptor("auto", seed=0)("[1, 2, 50, 60]", 0)
    assert out.startswith("[") and out != "[1, 2, 50, 60]"
    with pytest.raises(UnknownNameError, match="unknown negative 'nope'"):
        Corruptor("nope")
    with pytest.raises(ConfigError):
        Corruptor(" , ")


def test_convert_with_negatives_same_seed_same_file(tmp_path):
    src = str(DATA / "swift_messages.jsonl")
    for name in ("a", "b"):
        convert_file(src, str(tmp_path / f"{name}.jsonl"), "dpo", negatives="auto", seed=3, root=str(DATA))
    convert_file(src, str(tmp_path / "c.jsonl"), "dpo", negatives="auto", seed=4, root=str(DATA))
    a, b, c = ((tmp_path / f"{n}.jsonl").read_bytes() for n in "abc")
    assert a == b and a != c
    rows = read_jsonl(tmp_path / "a.jsonl")
    assert len(rows) == 4 and all(r["rejected_response"] != r["messages"][-1]["content"] for r in rows)


def test_no_applicable_corruption_is_a_reject():
    rejects = []
    out = list(convert_rows([{"query": "q", "response": "ok"}], to="dpo", negatives="number", strict=False,
                            rejects=rejects))
    assert out == [] and rejects[0][1] == "no corruption applies to the chosen answer (tried number)"


def test_registered_negatives_and_plugin_validation():
    reg = plugins.registry("negative")
    assert {"bbox", "json", "option_letter", "number", "truncate"} <= set(reg)


def _completions_file(tmp_path):
    rows = [
        # prompt 1: two scores differ (exact_match on solution '19')
        {"messages": [{"role": "system", "content": "You are a careful math tutor."},
                      {"role": "user", "content": "What is 12 + 7?"}], "response": "<answer>18</answer>"},
        {"messages": [{"role": "system", "content": "You are a careful math tutor."},
                      {"role": "user", "content": "What is 12 + 7?"}], "response": "<answer>19</answer>"},
        # prompt 2 (grouped form): both wrong -> tie
        {"prompt": [{"role": "user", "content": "How many legs do 3 spiders have?"}],
         "completions": ["<answer>20</answer>", "<answer>18</answer>"]},
    ]
    p = tmp_path / "sampled.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(p)


def test_completions_best_vs_worst_and_ties(tmp_path):
    comp = _completions_file(tmp_path)
    src = tmp_path / "grpo.jsonl"
    convert_file(str(DATA / "swift_messages.jsonl"), str(src), "grpo", extract="answer_tag", root=str(DATA))
    out = tmp_path / "dpo.jsonl"
    report = convert_file(str(src), str(out), "dpo", completions=comp, reward="exact_match", root=str(DATA))
    rows = read_jsonl(out)
    # row 1: 19 is right (1.0), 18 wrong (0.0) -> chosen 19, rejected 18
    assert len(rows) == 1
    assert rows[0]["messages"][-1] == {"role": "assistant", "content": "<answer>19</answer>"}
    assert rows[0]["rejected_response"] == "<answer>18</answer>"
    reasons = {r["line"]: r["reason"] for r in read_jsonl(report.reject_file)}
    assert reasons[2] == "tie: all 2 completions scored 0 with exact_match"
    assert reasons[3] == reasons[4] == "no sampled completions for this prompt in the completions file"


def test_completions_need_reward(tmp_path):
    with pytest.raises(ConfigError, match="--completions and --reward go together"):
        list(convert_rows([], to="dpo", completions=_completions_file(tmp_path)))


def test_prompt_key_ignores_trailing_assistant():
    from swift_ext.scoring.results import messages_key

    a = [{"role": "user", "content": "x"}]
    assert messages_key(a) == messages_key(a + [{"role": "assistant", "content": "y"}])


def test_one_sampled_conversation_per_row(tmp_path):
    """A sampling file whose rows are whole conversations: the last assistant turn is the completion."""
    from swift_ext.convert.negatives import load_completions
    from swift_ext.scoring.results import messages_key

    prompt = [{"role": "user", "content": "2+2?"}]
    p = tmp_path / "conv.jsonl"
    p.write_text("".join(json.dumps({"messages": prompt + [{"role": "assistant", "content": a}]}) + "\n"
                         for a in ("4", "5")))
    assert load_completions(str(p)) == {messages_key(prompt): ["4", "5"]}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": prompt}) + "\n")
    with pytest.raises(ConfigError, match=r"bad.jsonl: no row with a completion"):
        load_completions(str(bad))


def test_third_party_format_and_negative_through_the_hooks():
    """A plugin registers an input format and a corruption through the pluggy hooks; convert uses both."""
    import types

    from swift_ext import hookimpl
    from swift_ext.convert import InputFormat, RowError
    from swift_ext.convert.rows import canonical

    def read_qa(row):
        if not isinstance(row.get("q"), str):
            raise RowError("'q' must be a string")
        return canonical([{"role": "user", "content": row["q"]}, {"role": "assistant", "content": row["a"]}])

    plugin = types.SimpleNamespace(
        register_converters=hookimpl(lambda register: register(
            "my_qa", InputFormat("my_qa", detect=lambda r: "q" in r and "a" in r, read=read_qa, priority=1))),
        register_negatives=hookimpl(lambda register: register(
            "negate", lambda text, rng: text.replace("yes", "no") if "yes" in text else None)))
    plugins.reset()
    try:
        plugins.get_pm().register(plugin, name="test-convert-plugin")
        rejects = []
        out = list(convert_rows([{"q": "Is it?", "a": "yes"}, {"q": 3, "a": "yes"}], to="dpo", negatives="negate",
                                strict=False, rejects=rejects))
        assert out == [{"messages": [{"role": "user", "content": "Is it?"}, {"role": "assistant", "content": "yes"}],
                        "rejected_response": "no"}]
        assert rejects == [(1, "'q' must be a string", {"q": 3, "a": "yes"})]
        assert "plugin 'test-convert-plugin'" in plugins.registry("converter").source("my_qa")
    finally:
        plugins.reset()
