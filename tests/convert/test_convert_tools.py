"""``swift-ext convert --to grpo --tools python,calculator,zoom``: the ``tools`` column written through the convert
engine (fast path, generic path, ``--num-proc``), merged with a row's own tools, refused for other targets; and
ms-swift itself reading the converted file (``load_dataset``, then the Qwen2-VL template with the ``hermes`` agent
template renders the tools into the prompt and the row's image into vision tokens) in a real subprocess."""

import json
import subprocess
import sys

import pytest

from swift_ext.convert import ConvertOptions, convert_file, convert_rows
from swift_ext.errors import ConfigError
from swift_ext.tools.base import build_tool
from swift_ext.testing import run_cli

ROWS = [{"messages": [{"role": "user", "content": "What is 2+3?"}, {"role": "assistant", "content": "5"}]},
        {"messages": [{"role": "user", "content": "7*6?"}], "solution": "42"}]


def _tools(row):
    return json.loads(row["tools"])


def test_tools_column_holds_the_tools_schemas(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    expected = [build_tool(n).schema() for n in ("python", "calculator", "zoom")]
    for extra in ({}, {"num_proc": 2}):
        out = tmp_path / f"out{len(extra)}.jsonl"
        report = convert_file(str(src), str(out), ConvertOptions(to="grpo", tools="python,calculator,zoom", **extra))
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert report.written and len(rows) == 2
        assert [_tools(r) for r in rows] == [expected, expected]
        assert rows[0]["solution"] == "5" and rows[0]["messages"] == ROWS[0]["messages"][:1]
    # a spec's parameters may hold commas; + separates too; the schema is the tool's
    opts = ConvertOptions(to="grpo", tools="zoom:frame=qwen2_vl,min_size=8,python")
    assert [s["function"]["name"] for s in opts.tool_schemas()] == ["zoom", "python"]
    assert [s["function"]["name"] for s in ConvertOptions(to="sft", tools="python+zoom").tool_schemas()] == \
        ["python", "zoom"]


def test_generic_path_rows_get_the_column_too():
    rows = [{"query": "What is 2+3?", "response": "5"}]          # query/response: not the swift fast path
    (out,) = list(convert_rows(rows, ConvertOptions(to="grpo", tools="calculator")))
    assert [s["function"]["name"] for s in _tools(out)] == ["calculator"] and out["solution"] == "5"


def test_a_rows_own_tools_are_kept_and_a_name_clash_is_rejected():
    own = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    rows = [{**ROWS[1], "tools": json.dumps(own)},
            {**ROWS[1], "tools": json.dumps([{"type": "function", "function": {"name": "zoom", "parameters": {}}}])},
            {**ROWS[1], "tools": "not json"}]
    rejects = []
    out = list(convert_rows(rows, ConvertOptions(to="grpo", tools="zoom"), strict=False, rejects=rejects))
    assert len(out) == 1 and [s["function"]["name"] for s in _tools(out[0])] == ["get_weather", "zoom"]
    assert [(i, why.split(":")[0]) for i, why, _ in rejects] == [
        (1, "the row's own tools already define ['zoom']"), (2, "the row's 'tools' column is not a list of function "
                                                                "tools, and --tools would add to it")]


def test_bad_tool_options_are_clear_errors():
    with pytest.raises(ConfigError, match="did you mean 'zoom'"):
        ConvertOptions(to="grpo", tools="zoomz").tool_schemas()
    with pytest.raises(ConfigError, match="not of --to dpo"):
        ConvertOptions(to="dpo", tools="zoom")
    with pytest.raises(ConfigError, match="names no tool"):
        ConvertOptions(to="grpo", tools=" , ").tool_schemas()
    with pytest.raises(ConfigError, match="named twice"):
        ConvertOptions(to="grpo", tools="zoom,zoom").tool_schemas()


def test_cli_flag(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out = tmp_path / "out.jsonl"
    proc = run_cli(["convert", str(src), "--to", "grpo", "--tools", "calculator,zoom", "-o", str(out)])
    assert proc.returncode == 0, proc.stderr
    assert [s["function"]["name"] for s in _tools(json.loads(out.read_text().splitlines()[0]))] == \
        ["calculator", "zoom"]
    proc = run_cli(["convert", str(src), "--to", "grpo", "--tools", "nope", "-o", str(out)])
    assert proc.returncode != 0 and "unknown tool 'nope'" in proc.stderr


SCRIPT = r'''
import json, sys
from swift_ext import cpu_compat
cpu_compat.apply()
from swift import get_processor, get_template, load_dataset

path, model = sys.argv[1], json.load(open(sys.argv[2]))
proc = get_processor(model["path"], model_type=model["model_type"], download_model=False)
ds, _ = load_dataset([path], remove_unused_columns=False, num_proc=1)
template = get_template(proc, template_type=model["template"], agent_template="hermes", remove_unused_columns=False)
template.set_mode("transformers")
out = []
for row in ds:
    enc = template.encode(row)
    ids = enc["input_ids"]
    out.append({"text": proc.decode(ids) if hasattr(proc, "decode") else proc.tokenizer.decode(ids),
                "tools": row["tools"], "image_tokens": int(sum(1 for t in ids if t == 151655))})
print("RESULTS=" + json.dumps(out, default=str))
'''


@pytest.mark.e2e
def test_ms_swift_reads_a_zoom_agent_dataset(tmp_path, tiny_models, sample_images, swift_env):
    model = tiny_models["qwen2_vl"]
    rows = [{"messages": [{"role": "user", "content": "<image>What colour is the top left corner?"},
                          {"role": "assistant", "content": "red"}], "images": [sample_images[0]]}]
    src, out = tmp_path / "in.jsonl", tmp_path / "zoom.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert convert_file(str(src), str(out), ConvertOptions(to="grpo", tools="zoom,calculator")).written
    (tmp_path / "model.json").write_text(json.dumps({"path": model.path, "model_type": model.model_type,
                                                     "template": model.template}))
    (tmp_path / "check.py").write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(tmp_path / "check.py"), str(out), str(tmp_path / "model.json")],
                          capture_output=True, text=True, env=swift_env, timeout=600, cwd=tmp_path)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULTS=")), None)
    assert line, proc.stdout[-3000:] + proc.stderr[-3000:]
    (got,) = json.loads(line[len("RESULTS="):])
    # ms-swift parsed the column into the two tools and the hermes template put their schemas in the prompt
    tools = got["tools"] if isinstance(got["tools"], list) else json.loads(got["tools"])
    names = [(t.get("function") or t)["name"] if isinstance(t, dict) else json.loads(t)["function"]["name"]
             for t in tools]
    assert names == ["zoom", "calculator"]
    assert "<tools>" in got["text"] and '"name": "zoom"' in got["text"] and '"bbox_2d"' in got["text"]
    assert got["image_tokens"] > 0 and got["text"].rstrip().endswith("assistant")
