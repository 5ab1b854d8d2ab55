"""swift_ext.testing.tiny: deterministic local tiny models, images, rows, and the flags swift needs."""

import hashlib
import json
import os
from pathlib import Path

import pytest

from swift_ext.testing import tiny


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


def test_text_build_is_deterministic_and_cached(tmp_path):
    first = tiny.ensure("text", root=tmp_path / "a")
    second = tiny.ensure("text", root=tmp_path / "b")
    files = _digest(Path(first.path))
    assert {"model.safetensors", "tokenizer.json", "config.json"} <= set(files)
    assert files == _digest(Path(second.path))
    stamp = os.stat(Path(first.path) / "model.safetensors").st_mtime_ns
    again = tiny.ensure("text", root=tmp_path / "a")  # cached: not rebuilt
    assert again == first
    assert os.stat(Path(first.path) / "model.safetensors").st_mtime_ns == stamp
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".text-")]  # no temp folders left


def test_a_half_built_folder_is_rebuilt(tmp_path):
    stale = tmp_path / "text"
    stale.mkdir()
    (stale / "config.json").write_text("{}")  # no completion marker: a killed build
    model = tiny.ensure("text", root=tmp_path)
    assert json.loads((Path(model.path) / "config.json").read_text())["hidden_size"] == 64


def test_text_model_and_tokenizer_match_the_recipe(tiny_models):
    from transformers import AutoConfig, AutoTokenizer

    model = tiny_models["text"]
    assert (model.model_type, model.template) == ("qwen3", "qwen3")
    tok = AutoTokenizer.from_pretrained(model.path)
    # 3000 learned tokens + 14 special + 12 plain added tokens = 3026
    assert len(tok) == 3026
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>" and tok.bos_token is None
    text = "What is 12 + 30? <think>12 plus 30</think> The answer is 42."
    assert tok.decode(tok(text)["input_ids"]) == text
    assert len(tok("<think>")["input_ids"]) == 1
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    config = AutoConfig.from_pretrained(model.path)
    assert (config.architectures, config.hidden_size, config.num_hidden_layers, config.vocab_size) == \
        (["Qwen3ForCausalLM"], 64, 2, 3072)


@pytest.mark.vl
@pytest.mark.parametrize("kind", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_vl_models_use_the_qwen_id_layout(tiny_models, kind):
    from transformers import AutoConfig, AutoTokenizer

    model = tiny_models[kind]
    assert (model.model_type, model.template) == (kind, kind)
    tok = AutoTokenizer.from_pretrained(model.path)
    # real Qwen ids: <|endoftext|> = 151643, <|image_pad|> = 151643 + 12 = 151655, </think> = 151643 + 25 = 151668
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|image_pad|>", "</think>"]) == [151643, 151655, 151668]
    config = AutoConfig.from_pretrained(model.path)
    assert config.image_token_id == 151655 and config.text_config.vocab_size == 151936
    processor = json.loads((Path(model.path) / "processor_config.json").read_text())
    if kind == "qwen3_vl":  # patch 16: 4 to 16 merged 32x32 patches = 4 * 1024 = 4096 to 16 * 1024 = 16384 pixels
        assert processor["image_processor"]["size"] == {"shortest_edge": 4096, "longest_edge": 16384}
    else:  # patch 14: 4 to 16 merged 28x28 patches = 4 * 784 = 3136 to 16 * 784 = 12544 pixels
        assert processor["image_processor"]["size"] == {"shortest_edge": 3136, "longest_edge": 12544}


def test_sample_images_are_small_deterministic_pngs(tmp_path):
    from PIL import Image

    a = tiny.sample_images(tmp_path / "a")
    b = tiny.sample_images(tmp_path / "b")
    assert len(a) == 4
    for pa, pb in zip(a, b):
        assert Path(pa).read_bytes() == Path(pb).read_bytes()
        with Image.open(pa) as img:
            assert img.size == (56, 56) and img.format == "PNG"
            # the centre pixel is inside the shape, i.e. not white
            assert img.convert("RGB").getpixel((28, 30)) != (255, 255, 255)


def test_grpo_rows():
    rows = tiny.grpo_rows(3)
    # row i asks (1+2i) + (2+2i): 1+2=3, 3+4=7, 5+6=11
    assert [r["solution"] for r in rows] == ["3", "7", "11"]
    assert rows[2]["messages"] == [{"role": "user", "content": "What is 5 + 6? Think, then give the number."}]
    images = ["/x/0_circle.png", "/x/1_square.png", "/x/2_triangle.png"]
    vl = tiny.grpo_rows(4, images=images)
    assert [r["images"] for r in vl] == [[images[0]], [images[1]], [images[2]], [images[0]]]
    assert [r["solution"] for r in vl] == ["0", "4", "3", "0"]
    assert all(r["messages"][0]["content"].startswith("<image>") for r in vl)


def test_write_jsonl_round_trips(tmp_path):
    rows = tiny.grpo_rows(2)
    path = tiny.write_jsonl(tmp_path / "d" / "rows.jsonl", rows)
    assert [json.loads(line) for line in Path(path).read_text().splitlines()] == rows


def test_common_flags():
    model = tiny.TinyModel(kind="text", path="/m", model_type="qwen3", template="qwen3")
    flags = tiny.common_flags(model)
    pairs = dict(zip(flags[::2], flags[1::2]))
    assert pairs == {"--model": "/m", "--model_type": "qwen3", "--template": "qwen3", "--torch_dtype": "float32",
                     "--check_model": "false", "--report_to": "none", "--dataloader_num_workers": "0",
                     "--dataset_num_proc": "1"}


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(tiny.CACHE_ENV, str(tmp_path))
    assert tiny.cache_root() == tmp_path / tiny.BUILD_VERSION


def test_unknown_kind_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown tiny model kind 'gpt9'"):
        tiny.ensure("gpt9", root=tmp_path)


def test_logging_rows_reads_every_run(tmp_path):
    run = tmp_path / "v0-1"
    run.mkdir()
    (run / "logging.jsonl").write_text('{"a": 1}\n\n{"a": 2}\n')
    assert tiny.logging_rows(tmp_path) == [{"a": 1}, {"a": 2}]
