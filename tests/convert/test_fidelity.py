"""Converter fidelity: a file run through ``swift-ext convert`` trains exactly as ms-swift reads the original.

Generated rows in every format ms-swift 4.6 reads natively (messages with role/content or from/value keys,
ShareGPT ``conversations`` and its pair style, LLaVA rows, Alpaca, legacy query/response, problem/answer)
are read twice by ms-swift's own ``load_dataset``: the original file, and what ``swift-ext convert --to T``
wrote from it. Row by row (matched on a ``rid`` column) the messages and images must be identical, except for
the documented deliberate differences (docs/datasets.md, "Fidelity to ms-swift"): each one is a reject whose
reason is checked, and whose cause is checked on ms-swift's own reading of the row.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from swift_ext.cli import cli

TEXTS = ["What is 2+2?", "Résumé ✓ naïve café", "你好，世界。请回答。", "مرحبا بالعالم", "emoji 🚀🔥 ok",
         "line1\nline2", " leading space", "trailing space ", "tab\tinside", "e\u0301 combining", "<b>html</b>",
         '{"json": 1}', "Answer: 4", "a" * 50]
BLANKS = ["", " ", "\n", "\t  "]
# the role spellings ms-swift's MessagesPreprocessor knows (case-sensitive)
MS_ROLES = {"user", "human", "assistant", "gpt", "bot", "system", "function_call", "observation", "tool_call",
            "tool_response", "tool", "function_response", "observations"}
FROM = {"user": "human", "assistant": "gpt", "system": "system", "tool_call": "function_call",
        "tool_response": "observation", "tool": "observation"}

# The deliberate differences: (name, reject reason pattern, the cause as seen in ms-swift's reading of the
# original (messages, images) or in the raw row). A row swift-ext rejects must match one of them.
DELIBERATE = [
    ("empty_turn", r"the (user|assistant) turn is empty",
     lambda raw, ms: ms and any(m["role"] in ("user", "assistant") and not m["content"].strip()
                                for m in ms["messages"])),
    ("system_not_first", r"system turn not at the start",
     lambda raw, ms: ms and any(m["role"] == "system" for m in ms["messages"])),
    ("role_order", r"two user turns in a row|assistant turn without a user turn",
     lambda raw, ms: ms and _bad_order(ms["messages"])),
    ("image_tags", r"<image> tag\(s\) but \d+ images",
     lambda raw, ms: ms and sum(m["content"].count("<image>") for m in ms["messages"]) > len(ms["images"])),
    ("response_list", r"is a list: ms-swift would train on its first item",
     lambda raw, ms: isinstance(raw.get("response", raw.get("output")), list)),
]
# targets' own requirements (not fidelity differences): the row has nothing to train that task on
NEEDS = {
    "sft": [("no_response", r"the last turn is not an assistant response",
             lambda raw, ms: ms and ms["messages"][-1]["role"] != "assistant")],
    "grpo": [("no_answer", r"no reference answer|the reference answer \((response|solution)\) is empty",
              lambda raw, ms: ms and not (raw.get("solution", raw.get("answer", _answer(ms))) or "").strip()),
             ("prompt_end", r"no user turn to use as the GRPO prompt",
              lambda raw, ms: ms and _prompt(ms)[-1]["role"] not in ("user", "tool", "tool_response"))],
}


def _bad_order(msgs):
    prev = None
    for m in msgs:
        if m["role"] == "system":
            continue
        if (m["role"] == "user" and prev == "user") or (m["role"] == "assistant" and prev in (None, "assistant")):
            return True
        prev = m["role"]
    return False


def _prompt(ms):
    return ms["messages"][:-1] if _answer(ms) is not None else ms["messages"]


def _answer(ms):
    return ms["messages"][-1]["content"] if ms["messages"][-1]["role"] == "assistant" else None


# -- generation ---------------------------------------------------------------------------------------
def text(rng, blank=0.04):
    return rng.choice(BLANKS) if rng.random() < blank else rng.choice(TEXTS)


def dialogue(rng, tools=False, tool_role="tool_response", odd=True):
    """Abstract turns [(role, content)]: 1-3 exchanges, tool calls, rare structural oddities."""
    turns = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        turns.append(["user", text(rng)])
        if tools and rng.random() < 0.4:
            turns.append(["tool_call", json.dumps({"name": "calc", "arguments": {"x": rng.randint(0, 9)}})])
            turns.append([rng.choice([tool_role, "tool_response"]), text(rng)])
        turns.append(["assistant", text(rng)])
    if odd and rng.random() < 0.03:
        turns.insert(len(turns) - 1, ["system", "mid-conversation system"])
    if odd and rng.random() < 0.03:
        turns.insert(1, ["user", text(rng)])
    return turns


def add_images(rng, turns, paths):
    n = rng.choice([0, 0, 1, 2])
    tags = max(0, n + rng.choice([1] + [0] * 16 + [-1]))  # rarely one tag too many, or one missing
    if tags:
        first = next(t for t in turns if t[0] == "user")
        first[1] = "<image>" * tags + first[1]
    return rng.sample(paths, n)


def system_source(rng, row, turns, with_turn=True, key="system"):
    """A system prompt from every source: none, the column (text, empty, blank, null), a first turn, both."""
    kind = rng.choice(["none", "col", "col_empty", "col_blank", "col_null"]
                      + (["turn", "turn+col", "turn_empty"] if with_turn else []))
    if kind in ("col", "turn+col"):
        row[key] = rng.choice(["You are terse.", "Tu es un assistant ✓", "系统提示"])
    elif kind == "col_empty":
        row[key] = ""
    elif kind == "col_blank":
        row[key] = " "
    elif kind == "col_null":
        row[key] = None
    if kind.startswith("turn"):
        turns.insert(0, ["system", "" if kind == "turn_empty" else "Turn system prompt."])


def gen_messages(rng, rid, paths, keys=("role", "content"), system_key="system"):
    turns = dialogue(rng, tools=True, tool_role="tool" if keys[0] == "role" else "tool_response")
    row = {"rid": rid}
    system_source(rng, row, turns, key=system_key)
    images = add_images(rng, turns, paths)
    msgs = []
    for role, content in turns:
        if keys[0] == "from":
            role = FROM[role]
        msgs.append({keys[0]: role, keys[1]: content})
    if keys[0] == "role" and rng.random() < 0.1:
        msgs[-1]["loss"] = rng.choice([True, False])
    if rng.random() < 0.04:  # a spelling ms-swift does not know (it drops the row)
        msgs[-1][keys[0]] = "model" if keys[0] == "role" else "Gpt"
    row["messages"] = msgs
    if images:
        row["images"] = images
    if rng.random() < 0.2:
        row["solution"] = rng.choice(TEXTS)
    return row


def gen_openai_tools(rng, rid, paths):
    """OpenAI chat rows: assistant ``tool_calls`` (content null, empty or text), ``tool`` results with
    ``tool_call_id`` (sometimes out of call order), a ``name``."""
    msgs = [{"role": "user", "content": text(rng)}]
    for _ in range(rng.choice([1, 2])):
        ids = [f"call_{rid}_{k}" for k in range(rng.choice([1, 2, 3]))]
        msgs.append({"role": "assistant", "content": rng.choice([None, "", "Let me check ✓."]),
                     "tool_calls": [{"id": i, "type": "function",
                                     "function": {"name": rng.choice(["calc", "météo"]),
                                                  "arguments": json.dumps({"x": k, "city": "Zürich"})}}
                                    for k, i in enumerate(ids)]})
        results = [{"role": "tool", "tool_call_id": i, "name": "calc", "content": text(rng, 0)} for i in ids]
        rng.shuffle(results)
        msgs += results
        msgs.append({"role": "assistant", "content": text(rng)})
    row = {"rid": rid, "messages": msgs}
    system_source(rng, row, [], with_turn=False)
    return row


def gen_sharegpt(rng, rid, paths, key="conversations"):
    row = gen_messages(rng, rid, paths, keys=("from", "value"))
    row[key] = row.pop("messages")
    return row


def gen_pairs(rng, rid, paths):
    turns = dialogue(rng, odd=False)
    row = {"rid": rid}
    system_source(rng, row, turns, with_turn=False)
    images = add_images(rng, turns, paths)
    user_key, answer_key = rng.choice([("human", "assistant"), ("user", "assistant"), ("human", "gpt")])
    row["conversation"] = [{user_key: turns[i][1], answer_key: turns[i + 1][1]} for i in range(0, len(turns), 2)]
    if images:
        row["images"] = images
    return row


def gen_llava(rng, rid, paths):
    turns = dialogue(rng, odd=False)
    turns[0][1] = "<image>\n" + turns[0][1]
    return {"rid": rid, "image": rng.choice(paths),
            "conversations": [{"from": FROM[r], "value": c} for r, c in turns]}


def _history(rng):
    return [[text(rng), text(rng)] for _ in range(rng.choice([0, 0, 1, 2]))]


def gen_alpaca(rng, rid, paths):
    kind = rng.choice(["both", "both", "no_input", "no_instruction", "blank_input"])
    row = {"rid": rid, "instruction": "" if kind == "no_instruction" else text(rng),
           "input": {"no_input": "", "blank_input": " "}.get(kind, text(rng)), "output": text(rng)}
    system_source(rng, row, [], with_turn=False)
    if rng.random() < 0.3:
        row["history"] = _history(rng)
    turns = [["user", row["instruction"]]]
    images = add_images(rng, turns, paths)
    row["instruction"] = turns[0][1]
    if images:
        row["images"] = images
    return row


def gen_query_response(rng, rid, paths, str_history=False):
    row = {"rid": rid, "query": text(rng), "response": text(rng) if rng.random() < 0.9 else None}
    system_source(rng, row, [], with_turn=False)
    history = _history(rng)
    if history or str_history:
        row["history"] = repr(history) if str_history else history
    if row["response"] is None or rng.random() < 0.2:
        row["solution"] = rng.choice(TEXTS)
    turns = [["user", row["query"]]]
    images = add_images(rng, turns, paths)
    row["query"] = turns[0][1]
    if images:
        row["images"] = images
    return row


def gen_problem_answer(rng, rid, paths):
    row = {"rid": rid, "problem": text(rng), "answer": text(rng)}
    system_source(rng, row, [], with_turn=False)
    return row


SFT_FILES = {  # name: (generator, rows)
    "messages": (gen_messages, 90),
    "messages_from_value": (lambda rng, rid, p: gen_messages(rng, rid, p, keys=("from", "value")), 40),
    "messages_openai_tools": (gen_openai_tools, 30),
    "messages_system_prompt": (lambda rng, rid, p: gen_messages(rng, rid, p, system_key="system_prompt"), 30),
    "sharegpt": (gen_sharegpt, 70),
    "sharegpt_conversation": (lambda rng, rid, p: gen_sharegpt(rng, rid, p, key="conversation"), 20),
    "sharegpt_pairs": (gen_pairs, 40),
    "llava": (gen_llava, 30),
    "alpaca": (gen_alpaca, 60),
    "query_response": (gen_query_response, 60),
    "query_response_str_history": (lambda rng, rid, p: gen_query_response(rng, rid, p, str_history=True), 20),
    "problem_answer": (gen_problem_answer, 20),
    "query_answer": (lambda rng, rid, p: {"rid": rid, "query": text(rng), "answer": text(rng)}, 10),
    "query_output_solution": (lambda rng, rid, p: {"rid": rid, "query": text(rng), "output": text(rng, 0),
                                                   "solution": text(rng, 0)}, 10),  # no response: a prompt
    "query_response_list": (lambda rng, rid, p: {"rid": rid, "query": text(rng, 0),
                                                 "response": [text(rng, 0), text(rng, 0)]}, 5),
}


ISSUE_14 = {  # the rows of issue 14, added to the generated files
    "sharegpt": [{"rid": -1, "conversations": [{"from": "system", "value": "turn"}, {"from": "human", "value": "q"},
                                               {"from": "gpt", "value": "a"}], "system": "column"},
                 {"rid": -2, "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
                  "system": ""}],
    "alpaca": [{"rid": -3, "instruction": "", "input": "2+2", "output": "4", "system": ""}],
}


def write(path: Path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# -- reading ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ms_read(tmp_path_factory):
    """``path -> {rid: row}`` as ms-swift's load_dataset reads the file (in process, one worker)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MODELSCOPE_CACHE", str(tmp_path_factory.mktemp("ms_cache")))
    mp.setenv("HF_DATASETS_OFFLINE", "1")
    from swift_ext import cpu_compat

    cpu_compat.apply()
    from swift.dataset import load_dataset

    def read(path):
        ds, _ = load_dataset([str(path)], num_proc=1, remove_unused_columns=False, load_from_cache_file=False)
        return {row["rid"]: row for row in ds}

    yield read
    mp.undo()


def norm(row):
    """What ms-swift's template sees of a loaded row (its own ``StdTemplateInputs.from_dict`` and default
    ``<image>`` tags): the system prompt (None: the template's default; "": none), the messages (None-valued
    keys dropped: Arrow pads every turn with every key of the file) and the image paths."""
    from swift.template import StdTemplateInputs, Template

    inputs = StdTemplateInputs.from_dict({"messages": row["messages"], "images": row.get("images")})
    Template._add_default_tags(inputs)
    return {"system": inputs.system,
            "messages": [{k: v for k, v in m.items() if v is not None} for m in inputs.messages],
            "images": [im["path"] if isinstance(im, dict) else im for im in inputs.images]}


def convert(src: Path, to: str, *args):
    """``swift-ext convert SRC --to TO``: (output path, {rid: reject reason})."""
    out = src.with_name(f"{src.stem}.{to}.jsonl")
    res = CliRunner().invoke(cli, ["convert", str(src), "--to", to, "-o", str(out), *args])
    if res.exit_code == 1 and "no row converted" in res.output:  # every row rejected: convert writes no file
        out.write_text("", encoding="utf-8")
    else:
        assert res.exit_code == 0, res.output
        res = CliRunner().invoke(cli, ["validate", str(out), "--task", to, "--no-duplicates"])
        assert res.exit_code == 0, res.output  # what convert --to T writes passes validate --task T
    rejects = {}
    rej = out.with_name(f"{out.stem}.rejected.jsonl")
    if rej.exists():
        for line in rej.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            rejects[json.loads(rec["original"])["rid"]] = rec["reason"]
    return out, rejects


def justify(rid, reason, raw, ms, extra=()):
    """The deliberate difference a reject is: its reason matches one, and so does the row's content."""
    for name, pattern, cause in list(DELIBERATE) + list(extra):
        if re.search(pattern, reason):
            assert cause(raw, ms), f"rid {rid}: rejected as {name} ({reason!r}) but ms-swift reads {ms}"
            return name
    raise AssertionError(f"rid {rid}: rejected for an undocumented reason {reason!r}; ms-swift reads {ms}")


def dropped_by_ms(raw):
    """Rows ms-swift drops that swift-ext reads: role spellings outside its vocabulary, a pair without answer."""
    turns = raw.get("messages") or raw.get("conversations") or []
    return any((t.get("role") or t.get("from")) not in MS_ROLES for t in turns if "role" in t or "from" in t)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("img")
    paths = []
    for i, colour in enumerate(["red", "green", "blue"]):
        p = root / f"img{i}.png"
        Image.new("RGB", (8, 8), colour).save(p)
        paths.append(str(p))
    return paths


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, images, ms_read):
    """Every generated file read by ms-swift, and converted to sft and grpo; the outputs of all files are read by
    ms-swift in one file per target (they are all messages rows)."""
    root = tmp_path_factory.mktemp("fidelity")
    files, raws, original = {}, {}, {}
    outputs = {"sft": [], "grpo": []}
    rejects = {"sft": {}, "grpo": {}}
    for i, (name, (gen, n)) in enumerate(SFT_FILES.items()):
        rng = random.Random(1000 + i)
        rows = ISSUE_14.get(name, []) + [gen(rng, i * 1000 + j, images) for j in range(n)]
        files[name] = [r["rid"] for r in rows]
        raws.update({r["rid"]: r for r in rows})
        src = write(root / f"{name}.jsonl", rows)
        original.update({rid: norm(r) for rid, r in ms_read(src).items()})
        for to in outputs:
            out, rej = convert(src, to)
            outputs[to].append(out.read_text(encoding="utf-8"))
            rejects[to].update(rej)
    converted = {}
    for to, texts in outputs.items():
        all_out = root / f"all.{to}.jsonl"
        all_out.write_text("".join(texts), encoding="utf-8")
        converted[to] = ms_read(all_out)
    return files, raws, original, converted, rejects


def compare(name, to, sft_run):
    """(rows compared identical, deliberate differences met) for one generated file and target."""
    files, raws, original, converted, rejects = sft_run
    compared, differences = 0, set()
    for rid in files[name]:
        raw, ms = raws[rid], original.get(rid)
        if rid in rejects[to]:
            if ms is not None:  # ms-swift trains on it: the reject must be a documented deliberate one
                differences.add(justify(rid, rejects[to][rid], raw, ms, NEEDS[to]))
            continue
        if ms is None:
            assert dropped_by_ms(raw), f"rid {rid}: ms-swift drops {raw}"
            differences.add("ms_swift_drops")
            continue
        row = converted[to][rid]
        got = norm(row)
        if to == "sft":
            assert got == ms, f"rid {rid}: {raw}"
        else:  # the sft row minus its last assistant turn; that turn (or the solution column) in solution
            assert got == {**ms, "messages": _prompt(ms)}, f"rid {rid}: {raw}"
            expected = raw["solution"] if isinstance(raw.get("solution"), str) else _answer(ms)
            assert row["solution"] == expected, f"rid {rid}"
        compared += 1
    return compared, differences


@pytest.mark.parametrize("name", list(SFT_FILES))
def test_sft_and_grpo_train_as_ms_swift_reads_the_original(name, sft_run):
    compared = sum(compare(name, to, sft_run)[0] for to in ("sft", "grpo"))
    if name != "query_response_list":  # every row of that one is a deliberate difference
        assert compared >= len(sft_run[0][name]), compared  # most rows trained identically in both targets


def test_every_deliberate_difference_is_exercised(sft_run):
    seen = set().union(*(compare(name, to, sft_run)[1] for name in SFT_FILES for to in ("sft", "grpo")))
    assert {name for name, _, _ in DELIBERATE} | {"ms_swift_drops"} <= seen, seen


def test_grpo_with_extract_puts_the_extracted_answer_in_solution(tmp_path, ms_read):
    rng = random.Random(3)
    rows = []
    for rid in range(20):
        gold = rng.choice(["42", "-3.5", "x = 7", "東京"])
        rows.append({"rid": rid, "gold": gold, "messages": [
            {"role": "user", "content": text(rng, 0)},
            {"role": "assistant", "content": f"{text(rng, 0)}\n<answer>{gold}</answer>"}]})
    src = write(tmp_path / "tagged.jsonl", rows)
    original = {rid: norm(r) for rid, r in ms_read(src).items()}
    out, rejects = convert(src, "grpo", "--extract", "answer_tag")
    assert not rejects
    converted = ms_read(out)
    assert sorted(converted) == sorted(original) == list(range(20))
    for rid, row in converted.items():
        assert norm(row) == {**original[rid], "messages": _prompt(original[rid])}
        assert row["solution"] == row["gold"] == rows[rid]["gold"]


# -- the three classes of issue 14 -------------------------------------------------------------------
def test_the_issue_14_rows(sft_run):
    files, raws, original, converted, rejects = sft_run
    read = {rid: norm(converted["sft"][rid]) for rid in (-1, -2, -3)}
    assert read[-1] == {"system": "turn", "images": [],  # the turn wins, the column is ignored
                        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert read[-2]["system"] == ""  # no system prompt, not the template's default (None)
    assert read[-3]["messages"][0] == {"role": "user", "content": "2+2"}  # no leading newline
    assert all(read[rid] == original[rid] for rid in read)  # as ms-swift reads the originals


# -- preference formats ms-swift reads natively -------------------------------------------------------
def gen_dpo(rng, rid, paths, style):
    row = {"messages": gen_messages, "query_response": gen_query_response, "alpaca": gen_alpaca,
           "sharegpt": gen_sharegpt, "rejected_messages": gen_messages}[style](rng, rid, paths)
    row.pop("solution", None)
    if style == "rejected_messages":  # a whole rejected conversation: the same prompt, another answer
        row["rejected_messages"] = row["messages"][:-1] + [{"role": "assistant", "content": text(rng) + " (worse)"}]
        return row
    if style == "query_response" and row["response"] is None:
        row["response"] = text(rng)
    chosen = row.get("response", row.get("output"))
    if chosen is None:
        turns = row.get("messages") or row["conversations"]
        chosen = turns[-1].get("content", turns[-1].get("value"))
    row["rejected_response"] = chosen if rng.random() < 0.1 else rng.choice(TEXTS) + " (worse)"
    return row


PREF_STYLES = ["messages", "query_response", "alpaca", "sharegpt", "rejected_messages"]


@pytest.fixture(scope="module")
def pref_run(tmp_path_factory, images, ms_read):
    """DPO rows (``rejected_response``) and KTO rows (boolean ``label``) in each style, read by ms-swift and
    converted; the outputs of all styles read in one file per target (``rejected_messages`` rows in their own:
    in a file where other rows have ``rejected_response``, Arrow gives them a null one, which ms-swift drops)."""
    root = tmp_path_factory.mktemp("pref")
    raws, original, rejects, outputs = {}, {}, {"dpo": {}, "kto": {}}, {}
    for i, style in enumerate(PREF_STYLES):
        rng = random.Random(7 + i)
        dpo = [gen_dpo(rng, 100 * i + j, images, style) for j in range(40)]
        kto = [{**{k: v for k, v in r.items() if not k.startswith("rejected_")}, "rid": r["rid"] + 50,
                "label": bool(r["rid"] % 2)} for r in dpo]
        for to, rows in (("dpo", dpo), ("kto", kto)):
            raws.update({r["rid"]: r for r in rows})
            src = write(root / f"{to}_{style}.jsonl", rows)
            original.update(ms_read(src))
            out, rej = convert(src, to)
            rejects[to].update(rej)
            group = f"{to}_rejected_messages" if to == "dpo" and style == "rejected_messages" else to
            outputs.setdefault(group, []).append(out.read_text(encoding="utf-8"))
    converted = {"dpo": {}, "kto": {}}
    for group, texts in outputs.items():
        rows = [json.loads(x) for t in texts for x in t.splitlines()]
        converted[group.split("_")[0]].update(ms_read(write(root / f"all.{group}.jsonl", rows)))
    return raws, original, converted, rejects


@pytest.mark.parametrize("style", PREF_STYLES)
@pytest.mark.parametrize("to", ["dpo", "kto"])
def test_dpo_and_kto_train_as_ms_swift_reads_the_original(style, to, pref_run):
    raws, original, converted, rejects = pref_run
    i = PREF_STYLES.index(style)
    rids = [100 * i + j + (50 if to == "kto" else 0) for j in range(40)]
    compared = 0
    for rid in rids:
        raw, ms = raws[rid], original.get(rid)
        if rid in rejects[to]:
            if ms is not None:  # else ms-swift drops it too (e.g. rejected_response equal to the chosen one)
                justify(rid, rejects[to][rid], raw, norm(ms))
            continue
        if ms is None:
            assert dropped_by_ms(raw), f"rid {rid}: ms-swift drops {raw}"
            continue
        row = converted[to][rid]
        assert norm(row) == norm(ms), f"rid {rid}: {raw}"
        if to == "dpo" and style == "rejected_messages":
            assert norm({"messages": row["rejected_messages"]}) == norm({"messages": ms["rejected_messages"]})
        elif to == "dpo":
            assert row["rejected_response"] == ms["rejected_response"] == raw["rejected_response"]
        else:
            assert row["label"] == ms["label"] == raw["label"]
        compared += 1
    assert compared >= len(rids) // 2
