"""A real `swift infer` result file from the tiny model, scored and compared by `swift-ext eval`."""

import json
import re

import pytest
from click.testing import CliRunner

from swift_ext.testing import tiny

pytestmark = pytest.mark.e2e


def test_swift_infer_output_scored(tiny_models, run_swift, tmp_path):
    model = tiny_models["text"]
    data = tiny.write_jsonl(tmp_path / "test.jsonl", [
        {"messages": [{"role": "user", "content": f"What is {i} + 1?"}, {"role": "assistant", "content": str(i + 1)}]}
        for i in range(6)])
    result = tmp_path / "result.jsonl"
    infer_flags = [f for f in tiny.common_flags(model) if f not in ("--report_to", "none")]
    infer_flags = infer_flags[:infer_flags.index("--check_model")]  # infer takes model/type/template/dtype only
    run = run_swift("infer", [*infer_flags, "--infer_backend", "transformers", "--val_dataset", data,
                              "--max_new_tokens", "6", "--temperature", "0", "--max_batch_size", "6",
                              "--result_path", str(result)], cwd=tmp_path)
    assert run.returncode == 0, run.tail()
    rows = [json.loads(line) for line in result.read_text().splitlines()]
    assert len(rows) == 6 and all("response" in r and r["labels"] == str(i + 1) for i, r in enumerate(rows))

    # expected accuracy, by hand: the response (after the template's empty <think></think>) equals the label
    def answer(text):
        return re.sub(r"<think>.*?</think>", "", text, flags=re.S).strip()

    expected_before = sum(answer(r["response"]) == r["labels"] for r in rows) / 6
    fixed = [dict(r, response=f"<answer>{r['labels']}</answer>") if i % 2 == 0 else r for i, r in enumerate(rows)]
    fixed_path = tmp_path / "fixed.jsonl"
    fixed_path.write_text("".join(json.dumps(r) + "\n" for r in fixed))
    expected_after = expected_before + sum(answer(r["response"]) != r["labels"] for r in rows[::2]) / 6

    from swift_ext.cli import cli

    res = CliRunner().invoke(cli, ["eval", str(result), "-m", "accuracy", "-m", "reward:think_format",
                                   "--per-item", str(tmp_path / "items.jsonl")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert (report["rows_in"], report["completions"], report["groups"], report["ref_key"]) == (6, 6, 6, "labels")
    assert report["metrics"]["accuracy"]["accuracy"] == pytest.approx(expected_before)
    items = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert [it["line"] for it in items] == [1, 2, 3, 4, 5, 6]

    res = CliRunner().invoke(cli, ["eval", str(result), str(fixed_path), "-m", "accuracy", "--label", "before",
                                   "--label", "after"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    acc = next(r for r in json.loads(res.stdout)["comparison"] if r["stat"] == "accuracy")
    assert (acc["a"], acc["b"]) == (pytest.approx(expected_before), pytest.approx(expected_after))
    assert acc["b"] > acc["a"]
