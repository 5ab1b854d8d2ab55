"""One rule set: what `convert --to T` writes passes `validate --task T`, and a row convert rejects for a rule
carries the validator's own message. Real files, the library and the CLI; every built-in target."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from swift_ext.convert import ConvertOptions, RowConverter, RowError, convert_file, convert_rows, targets
from swift_ext.convert.rules import first_error
from swift_ext.convert.validate import ValidateOptions, check_row, validate_file

DATA = Path(__file__).resolve().parents[1] / "data" / "convert"
RED = str(DATA / "images" / "red.png")


def m(*pairs):
    return [{"role": r, "content": c} for r, c in pairs]


Q, A = "What is 6 times 7?", "The answer is 42 because six sevens make forty-two."
# (id, row): each row carries its id through to the output (extra columns pass through)
EDGE_ROWS = [
    ("good", {"messages": m(("system", "Be brief."), ("user", Q), ("assistant", A))}),
    ("good_solution", {"messages": m(("user", "Capital of France?"), ("assistant", "It is Paris, 100 percent.")),
                       "solution": "Paris"}),
    ("good_tools", {"messages": m(("user", "Weather in Oslo?"), ("assistant", "call weather(Oslo) 1"),
                                  ("tool_response", "rain, 7 degrees"), ("assistant", "Rainy and 7 degrees."))}),
    ("good_image", {"messages": m(("user", "<image>What colour is it?"), ("assistant", "It is red, 255 of it.")),
                    "images": [RED]}),
    ("image_tag_missing", {"messages": m(("user", "What colour is it?"), ("assistant", "Red, 200 units.")),
                           "images": [RED]}),
    ("pair", {"messages": m(("user", "Pick a number above 10."), ("assistant", "I pick 12 today.")),
              "rejected_response": "I pick 3 today."}),
    ("labelled", {"messages": m(("user", "Is 9 prime?"), ("assistant", "No, 9 = 3 x 3.")), "label": True}),
    ("reserved_column", {"messages": m(("user", "2 + 2?"), ("assistant", "2 + 2 = 4")), "request_id": "r1",
                         "dataset": "d"}),
    ("assistant_first", {"messages": m(("assistant", "Hello 1"), ("user", Q), ("assistant", A))}),
    ("assistant_only", {"messages": m(("assistant", "Only 5 words here, really."))}),
    ("two_users", {"messages": m(("user", Q), ("user", "Please answer."), ("assistant", A))}),
    ("system_not_first", {"messages": m(("user", Q), ("system", "Be brief."), ("assistant", A))}),
    ("two_systems", {"messages": m(("system", "a"), ("system", "b"), ("user", Q), ("assistant", A))}),
    ("empty_user", {"messages": m(("user", ""), ("assistant", A))}),
    ("whitespace_user", {"messages": m(("user", "  \n\t"), ("assistant", A))}),
    ("whitespace_answer", {"messages": m(("user", Q), ("assistant", "   "))}),
    ("two_assistants", {"messages": m(("user", Q), ("assistant", "Let me think, 6 x 7."), ("assistant", A))}),
    ("missing_content", {"messages": [{"role": "user"}, {"role": "assistant", "content": A}]}),
    ("null_content", {"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": A}]}),
    ("prompt_only", {"messages": m(("user", Q)), "solution": "42"}),
    ("no_user", {"messages": m(("system", "Be brief."))}),
    ("too_many_tags", {"messages": m(("user", "<image><image>Compare them."), ("assistant", "Both 1 red.")),
                       "images": [RED]}),
    ("tag_without_image", {"messages": m(("user", "<image>What is it?"), ("assistant", "A thing, 1 of them."))}),
    ("video_tag", {"messages": m(("user", "<video>What happens?"), ("assistant", "Nothing, 0 events."))}),
    ("image_missing_file", {"messages": m(("user", "<image>What colour?"), ("assistant", "Blue, 12 units.")),
                            "images": [str(DATA / "images" / "absent.png")]}),
    ("same_pair", {"messages": m(("user", "Say 7."), ("assistant", "7 it is.")), "rejected_response": "7 it is."}),
]

# what `validate --task sft` says about each bad row, written out (the bugs of issue 9: convert wrote these)
SFT_REASONS = {
    "assistant_first": "messages[0]: assistant turn without a user turn before it",
    "assistant_only": "messages[0]: assistant turn without a user turn before it",
    "two_users": "messages[1]: two user turns in a row",
    "system_not_first": "messages[1]: system turn not at the start",
    "two_systems": "messages[1]: system turn not at the start",
    "empty_user": "messages[0]: the user turn is empty",
    "whitespace_user": "messages[0]: the user turn is empty",
    "whitespace_answer": "messages[1]: the assistant turn is empty",
    "two_assistants": "messages[2]: assistant turn without a user turn before it",
    "missing_content": "messages[0].content is missing (null)",
    "null_content": "messages[0].content is missing (null)",
    "prompt_only": "sft: the last turn is not an assistant response",
    "no_user": "no user turn",
    "too_many_tags": "messages: 2 <image> tag(s) but 1 images (ms-swift would replace only the first ones and "
                     "leave the rest as text)",
    "tag_without_image": "messages: 1 <image> tag(s) but 0 images (ms-swift would replace only the first ones "
                         "and leave the rest as text)",
    "video_tag": "messages: 1 <video> tag(s) but 0 videos (ms-swift would replace only the first ones "
                 "and leave the rest as text)",
    "image_missing_file": f"images[0]: file not found: {str(DATA / 'images' / 'absent.png')!r}",
}

TARGETS = [t.name for t in targets() if t.task is not None]


def options(to):
    return ConvertOptions(to=to, negatives="auto", n_choices=3, seed=1)


@pytest.fixture(scope="module")
def edge_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("edge") / "edge.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for rid, row in EDGE_ROWS:
            fh.write(json.dumps({**row, "id": rid}) + "\n")
    return path


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def test_every_builtin_target_declares_its_task():
    assert sorted(TARGETS) == ["dpo", "grpo", "judge", "kto", "mcq", "sft", "trl"]


@pytest.mark.parametrize("to", TARGETS)
def test_convert_output_passes_validate_and_rejects_carry_its_reason(to, edge_file, tmp_path):
    out, rej = tmp_path / f"{to}.jsonl", tmp_path / f"{to}.rejected.jsonl"
    report = convert_file(str(edge_file), str(out), options(to).replace(reject_path=str(rej)))
    rows_out, rejects = read_jsonl(out), read_jsonl(rej)
    # counts: in = converted + rejected, the files hold what the report says
    assert report.rows_in == len(EDGE_ROWS) == report.rows_converted + report.rows_rejected
    assert len(rows_out) == report.rows_out and len(rejects) == report.rows_rejected
    assert report.rows_converted >= 6, report.reasons  # the good rows make it through every target

    # the library validator: zero errors on what convert wrote
    v = validate_file(str(out), ValidateOptions(task=to))
    assert v.rows == report.rows_out and v.rows_with_errors == 0 and v.ok, v.checks

    # each reject carries the reason the validator gives for the row convert would have written
    conv = RowConverter(options(to))
    if conv.target.needs_pool:
        conv.ctx.pool = conv.collect_pool(row for _, row in EDGE_ROWS)
    by_id = dict(EDGE_ROWS)
    rule_rejects = 0
    for rec in rejects:
        row = json.loads(rec["original"])
        try:
            built = conv.build(row, rec["line"] - 1)
        except RowError as exc:  # the row cannot be read or built: validate says the same about a read failure
            assert rec["reason"] == exc.reason
            if exc.check == "format":
                assert first_error(check_row(row, check_media=False)) == rec["reason"]
            continue
        reasons = [first_error(check_row(r, task=to, check_media=False)) for r in built]
        assert rec["reason"] == next(r for r in reasons if r is not None), (row["id"], reasons)
        rule_rejects += 1
    assert rule_rejects, "no row was rejected by the rules"
    if to == "sft":
        assert {json.loads(r["original"])["id"]: r["reason"] for r in rejects} == SFT_REASONS
    # no row of a good id is lost, and the ids that came out are rows of the input
    out_ids = {r["id"] for r in rows_out}
    assert {"good", "good_solution", "good_image"} <= out_ids <= set(by_id)

    # the CLI agrees: exit code 0 and no errors in the JSON report
    proc = subprocess.run([sys.executable, "-m", "swift_ext", "validate", str(out), "--task", to, "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    cli = json.loads(proc.stdout)
    assert cli["ok"] and cli["rows_with_errors"] == 0 and cli["rows"] == report.rows_out


def test_validate_flags_exactly_the_rows_convert_rejects_with_the_same_reason(edge_file, tmp_path):
    """On an SFT file, `validate --task sft` and `convert --to sft` name the same rows with the same words."""
    out = tmp_path / "sft.jsonl"
    proc = subprocess.run([sys.executable, "-m", "swift_ext", "convert", str(edge_file), "--to", "sft", "-o", str(out),
                           "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rejects = {r["line"]: r["reason"] for r in read_jsonl(tmp_path / "sft.rejected.jsonl")}
    proc = subprocess.run([sys.executable, "-m", "swift_ext", "validate", str(edge_file), "--task", "sft", "--json",
                           "--max-examples", "100"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    flagged = {int(ex["where"].rsplit(":", 1)[1]) for check in report["checks"].values()
               if check["severity"] == "error" for ex in check["examples"]}
    assert flagged == set(rejects)
    lines = edge_file.read_text().splitlines()
    for line, reason in rejects.items():
        assert first_error(check_row(json.loads(lines[line - 1]), task="sft")) == reason


@pytest.mark.parametrize("to", ["dpo", "mcq"])
def test_in_memory_and_num_proc_go_through_the_same_loop(to, edge_file, tmp_path):
    """convert_rows and --num-proc give the file conversion's rows and reasons."""
    opts = options(to)
    convert_file(str(edge_file), str(tmp_path / "a.jsonl"), opts)
    rejects = []
    rows = list(convert_rows([row | {"id": rid} for rid, row in EDGE_ROWS], opts, strict=False, rejects=rejects))
    assert rows == read_jsonl(tmp_path / "a.jsonl")
    assert [(i + 1, reason) for i, reason, _ in rejects] == [
        (r["line"], r["reason"]) for r in read_jsonl(tmp_path / "a.rejected.jsonl")]
    if to == "dpo":  # negatives are seeded by the row index: a blank line must not shift it in either mode
        lines = edge_file.read_text().splitlines()
        blank = tmp_path / "blank.jsonl"
        blank.write_text("\n".join(lines[:5] + [""] + lines[5:]) + "\n")
        convert_file(str(blank), str(tmp_path / "b.jsonl"), opts)
        convert_file(str(blank), str(tmp_path / "c.jsonl"), opts.replace(num_proc=2))
        assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "c.jsonl").read_bytes()
        assert read_jsonl(tmp_path / "b.rejected.jsonl") == read_jsonl(tmp_path / "c.rejected.jsonl")


def test_allow_no_solution_is_the_one_rule_convert_skips(tmp_path):
    rows = [{"messages": m(("user", "Open question, no answer"))}]
    with pytest.raises(Exception, match="no reference answer"):
        list(convert_rows(rows, "grpo"))
    assert list(convert_rows(rows, "grpo", require_solution=False)) == rows


def test_openai_image_blocks_keep_their_media():
    """A swift row whose only media are OpenAI image_url blocks: the image is kept and the row validates."""
    row = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": RED}},
                                                     {"type": "text", "text": "Colour?"}]},
                        {"role": "assistant", "content": "Red."}]}
    out = list(convert_rows([row], "sft"))
    assert out == [{"messages": m(("user", "<image>Colour?"), ("assistant", "Red.")), "images": [RED]}]
    assert check_row(out[0], task="sft") == []
