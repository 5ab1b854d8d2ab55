"""Tiny random-weight Qwen models built locally (no hub), for tests, the demo and CPU smoke runs.

Everything is deterministic: a byte-level BPE tokenizer trained with ``tokenizers`` on a synthetic corpus
generated here, wrapped as ``transformers.Qwen2Tokenizer`` with a ChatML chat template, and models
initialised under a fixed seed. Kinds:

=============  ==========================================  ===============  ==========
kind           architecture                                model_type       vocab rows
=============  ==========================================  ===============  ==========
``text``       ``Qwen3ForCausalLM`` (hidden 64, 2 layers)   ``qwen3``        3072
``qwen2_vl``   ``Qwen2VLForConditionalGeneration``          ``qwen2_vl``     151936
``qwen2_5_vl`` ``Qwen2_5_VLForConditionalGeneration``       ``qwen2_5_vl``   151936
``qwen3_vl``   ``Qwen3VLForConditionalGeneration``          ``qwen3_vl``     151936
=============  ==========================================  ===============  ==========

The VL kinds use the *Qwen-id layout*: filler vocabulary entries put the special tokens on their real
Qwen ids (``<|image_pad|>`` = 151655), because ms-swift hard-codes ``Qwen2VLTemplate.image_token_id``.

Built models are cached in ``$SWIFT_EXT_TINY_CACHE`` (default ``~/.cache/swift-ext/tiny``) under
``<BUILD_VERSION>/<kind>``; a build goes to a temporary folder that is renamed into place, so parallel
builders never see half a model.

    >>> from swift_ext.testing import tiny
    >>> model = tiny.ensure("text")                     # ~2 s the first time, instant afterwards
    >>> model.path, model.model_type, model.template      # path under the cache folder
    ('.../v1/text', 'qwen3', 'qwen3')
    >>> tiny.common_flags(model)[:4]
    ['--model', '.../v1/text', '--model_type', 'qwen3']

Importing this module is cheap; torch/transformers/tokenizers are imported by the builders only.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

from ..runs import logging_rows  # noqa: F401  (the run reader, re-exported for tests that build tiny runs)

# bump when anything below changes what is built (cache key)
BUILD_VERSION = "v1"
CACHE_ENV = "SWIFT_EXT_TINY_CACHE"
SEED = 1234
LEARNED_VOCAB = 3000
QWEN_FIRST_SPECIAL_ID = 151643
QWEN_VOCAB_ROWS = 151936
COMPACT_VOCAB_ROWS = 3072
IMAGE_SIZE = 56

# Qwen2/2.5/3 added tokens in id order from 151643 (the first 14 are "special")
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]
PLAIN_ADDED_TOKENS = [
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
]
# Qwen2's pre-tokenizer split pattern
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}{%- for item in message['content'] %}"
    "{%- if item['type'] == 'image' or 'image' in item %}{{- '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif item['type'] == 'video' or 'video' in item %}{{- '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in item %}{{- item['text'] }}{%- endif %}"
    "{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


@dataclass(frozen=True)
class TinyModel:
    """A built tiny model: pass ``path``/``model_type``/``template`` to swift (see :func:`common_flags`)."""

    kind: str
    path: str
    model_type: str
    template: str

    @property
    def is_vl(self) -> bool:
        return self.kind != "text"


KINDS: Dict[str, Dict[str, str]] = {
    "text": {"model_type": "qwen3", "template": "qwen3"},
    "qwen2_vl": {"model_type": "qwen2_vl", "template": "qwen2_vl"},
    "qwen2_5_vl": {"model_type": "qwen2_5_vl", "template": "qwen2_5_vl"},
    "qwen3_vl": {"model_type": "qwen3_vl", "template": "qwen3_vl"},
}


# -- cache ------------------------------------------------------------------------------------------
def cache_root() -> Path:
    """``$SWIFT_EXT_TINY_CACHE`` or ``~/.cache/swift-ext/tiny``, with the build version appended."""
    base = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "swift-ext", "tiny")
    return Path(base) / BUILD_VERSION


def _complete(path: Path) -> bool:
    return (path / ".swift-ext-tiny.json").is_file()


def ensure(kind: str, root: Optional[os.PathLike] = None) -> TinyModel:
    """The tiny model of ``kind``, built into ``root`` (default :func:`cache_root`) unless already there."""
    if kind not in KINDS:
        raise ValueError(f"unknown tiny model kind {kind!r}; known: {', '.join(KINDS)}")
    root = Path(root) if root is not None else cache_root()
    target = root / kind
    if not _complete(target):
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=root))
        try:
            BUILDERS[kind](tmp)
            (tmp / ".swift-ext-tiny.json").write_text(json.dumps({"kind": kind, "version": BUILD_VERSION,
                                                                  **KINDS[kind]}))
            try:
                os.rename(tmp, target)
            except OSError:
                if not _complete(target):  # a stale half-built folder from a killed build: replace it
                    shutil.rmtree(target, ignore_errors=True)
                    os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return TinyModel(kind=kind, path=str(target), **KINDS[kind])


def common_flags(model: TinyModel) -> List[str]:
    """The flags every ``swift`` command on a tiny model needs on CPU (see cpu-recipe)."""
    return ["--model", str(model.path), "--model_type", model.model_type, "--template", model.template,
            "--torch_dtype", "float32", "--check_model", "false", "--report_to", "none",
            "--dataloader_num_workers", "0", "--dataset_num_proc", "1"]


def offline_env(env: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """``env`` (default ``os.environ``) plus the defensive offline/CPU variables of the CPU recipe."""
    out = dict(os.environ if env is None else env)
    out.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "USE_HF": "1",
                "TOKENIZERS_PARALLELISM": "false", "MAX_PIXELS": "12544", "MIN_PIXELS": "3136"})
    out.setdefault("CUDA_VISIBLE_DEVICES", "")
    return out


# -- tokenizer --------------------------------------------------------------------------------------
def corpus(n_lines: int = 4000, seed: int = SEED) -> List[str]:
    """A deterministic synthetic corpus: arithmetic, shapes, chat words and pronounceable pseudo-words."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "de", "ga", "vu", "ze", "shi", "mo", "an", "el",
                 "or", "ix", "qua", "tre", "bla", "fro", "gli", "stu"]
    words = ("the a is of and to in what how many sides does shape have answer think image circle square "
             "triangle red green blue yellow number sum plus minus times equals solve question please step "
             "first then final result because therefore user assistant system hello world true false yes no "
             "count colour color picture show small large left right top bottom").split()
    lines = []
    for i in range(n_lines):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        pseudo = " ".join("".join(rng.choice(syllables) for _ in range(rng.randint(1, 4)))
                          for _ in range(rng.randint(3, 9)))
        plain = " ".join(rng.choice(words) for _ in range(rng.randint(4, 12)))
        kind = i % 4
        if kind == 0:
            lines.append(f"What is {a} + {b}? <think>{a} plus {b} is {a + b}</think> The answer is {a + b}.")
        elif kind == 1:
            lines.append(f"{plain.capitalize()}, {pseudo}.")
        elif kind == 2:
            lines.append(f"{pseudo.capitalize()}: {a * b}; {plain}!\n")
        else:
            lines.append(f"\\boxed{{{a - b}}} {plain} ({a}/{b + 1}) {pseudo}")
    return lines


def build_tokenizer(qwen_ids: bool):
    """A ``transformers.Qwen2Tokenizer``; ``qwen_ids`` puts the added tokens on their real Qwen ids."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=LEARNED_VOCAB, min_frequency=1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer=trainer)
    if qwen_ids:
        data = json.loads(tok.to_str())
        vocab = data["model"]["vocab"]
        # unreachable filler entries (no merge produces them) that decode to readable ASCII
        for i in range(len(vocab), QWEN_FIRST_SPECIAL_ID):
            vocab[f"<f{i}>"] = i
        tok = Tokenizer.from_str(json.dumps(data))
    from tokenizers import AddedToken

    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in PLAIN_ADDED_TOKENS])
    hf = Qwen2Tokenizer(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                        unk_token=None, bos_token=None, add_prefix_space=False)
    hf.chat_template = CHAT_TEMPLATE
    if qwen_ids:
        assert hf.convert_tokens_to_ids("<|image_pad|>") == 151655, "Qwen-id layout broken"
    return hf


def _check_roundtrip(tokenizer) -> None:
    text = "What is 12 + 30? <think>12 plus 30</think> The answer is 42.\n<|im_end|>"
    ids = tokenizer(text)["input_ids"]
    back = tokenizer.decode(ids)
    if back != text:
        raise RuntimeError(f"tiny tokenizer round-trip failed: {text!r} -> {back!r}")


# -- models -----------------------------------------------------------------------------------------
TEXT_SIZES = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, max_position_embeddings=4096, rms_norm_eps=1e-6)


def _vl_prerequisites() -> None:
    """The VL processors need torchvision: make it importable next to CPU-only torch (no-op elsewhere)."""
    from .. import cpu_compat

    cpu_compat.apply()


def _seed():
    import torch

    random.seed(SEED)
    torch.manual_seed(SEED)


def _save(model, tokenizer, out: Path, processor=None) -> None:
    from transformers import GenerationConfig

    eos = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=eos[1], do_sample=True,
                                               temperature=1.0, top_p=1.0, top_k=0)
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Writing model shards" bar for a 1 MB file
    try:
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        if processor is not None:
            processor.save_pretrained(out)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    _check_roundtrip(tokenizer)


def build_text(out: Path) -> None:
    """``Qwen3ForCausalLM``, compact vocab (3026 tokens, 3072 rows), tied embeddings, float32 (~1 MB)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = build_tokenizer(qwen_ids=False)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>")}
    config = Qwen3Config(vocab_size=COMPACT_VOCAB_ROWS, tie_word_embeddings=True, bos_token_id=ids["<|endoftext|>"],
                         eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], dtype="float32",
                         **TEXT_SIZES)
    _seed()
    model = Qwen3ForCausalLM(config).to(torch.float32)
    _save(model, tokenizer, out)


def _image_processor(cls_name: str = "Qwen2VLImageProcessor", patch_size: int = 14):
    import transformers

    cls = getattr(transformers, cls_name)
    merged = (patch_size * 2) ** 2  # pixels per merged patch
    return cls(min_pixels=4 * merged, max_pixels=16 * merged, patch_size=patch_size, merge_size=2,
               temporal_patch_size=2, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
               size={"shortest_edge": 4 * merged, "longest_edge": 16 * merged})


def _vl_text_config() -> dict:
    return dict(vocab_size=QWEN_VOCAB_ROWS, bos_token_id=151643, eos_token_id=151645, pad_token_id=151643,
                rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1000000.0},
                **{k: v for k, v in TEXT_SIZES.items() if k != "head_dim"})


def build_qwen2_vl(out: Path) -> None:
    """``Qwen2VLForConditionalGeneration``: vision depth 2 / dim 32, Qwen-id tokenizer (~40 MB)."""
    _vl_prerequisites()
    import torch
    from transformers import (Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor,
                              Qwen2VLVideoProcessor)

    tokenizer = build_tokenizer(qwen_ids=True)
    config = Qwen2VLConfig(
        text_config=_vl_text_config(),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=TEXT_SIZES["hidden_size"], num_heads=2, mlp_ratio=2,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
        image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653,
        tie_word_embeddings=True, dtype="float32")
    _seed()
    model = Qwen2VLForConditionalGeneration(config).to(torch.float32)
    processor = Qwen2VLProcessor(image_processor=_image_processor(), tokenizer=tokenizer,
                                 video_processor=Qwen2VLVideoProcessor(), chat_template=CHAT_TEMPLATE)
    _save(model, tokenizer, out, processor)


def build_qwen2_5_vl(out: Path) -> None:
    """``Qwen2_5_VLForConditionalGeneration``: vision hidden 32, window 112, Qwen-id tokenizer (~40 MB)."""
    _vl_prerequisites()
    import torch
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                              Qwen2VLVideoProcessor)

    tokenizer = build_tokenizer(qwen_ids=True)
    config = Qwen2_5_VLConfig(
        text_config=_vl_text_config(),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                           out_hidden_size=TEXT_SIZES["hidden_size"], patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2, window_size=112, fullatt_block_indexes=[1]),
        image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653,
        tie_word_embeddings=True, dtype="float32")
    _seed()
    model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32)
    processor = Qwen2_5_VLProcessor(image_processor=_image_processor(), tokenizer=tokenizer,
                                    video_processor=Qwen2VLVideoProcessor(), chat_template=CHAT_TEMPLATE)
    _save(model, tokenizer, out, processor)


def build_qwen3_vl(out: Path) -> None:
    """``Qwen3VLForConditionalGeneration``: vision hidden 32, patch 16, deepstack [0], Qwen-id tokenizer."""
    _vl_prerequisites()
    import torch
    from transformers import (Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor,
                              Qwen3VLVideoProcessor)

    tokenizer = build_tokenizer(qwen_ids=True)
    text = _vl_text_config()
    text["head_dim"] = TEXT_SIZES["head_dim"]
    text["rope_parameters"] = {**text["rope_parameters"], "mrope_interleaved": True}
    config = Qwen3VLConfig(
        text_config=text,
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                           out_hidden_size=TEXT_SIZES["hidden_size"], patch_size=16, spatial_merge_size=2,
                           temporal_patch_size=2, num_position_embeddings=64, deepstack_visual_indexes=[0]),
        image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653,
        tie_word_embeddings=True, dtype="float32")
    _seed()
    model = Qwen3VLForConditionalGeneration(config).to(torch.float32)
    processor = Qwen3VLProcessor(image_processor=_image_processor(patch_size=16), tokenizer=tokenizer,
                                 video_processor=Qwen3VLVideoProcessor(), chat_template=CHAT_TEMPLATE)
    _save(model, tokenizer, out, processor)


BUILDERS = {"text": build_text, "qwen2_vl": build_qwen2_vl, "qwen2_5_vl": build_qwen2_5_vl,
            "qwen3_vl": build_qwen3_vl}


# -- images and rows --------------------------------------------------------------------------------
SHAPES = [("circle", (220, 40, 40), 0), ("square", (40, 160, 40), 4), ("triangle", (40, 60, 220), 3),
          ("circle", (230, 200, 30), 0)]


def sample_images(out_dir: os.PathLike, size: int = IMAGE_SIZE) -> List[str]:
    """Four deterministic ``size``x``size`` PNGs (a shape on white); returns their absolute paths."""
    from PIL import Image, ImageDraw

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (shape, colour, _sides) in enumerate(SHAPES):
        path = out / f"{i}_{shape}.png"
        if not path.is_file():
            img = Image.new("RGB", (size, size), "white")
            draw = ImageDraw.Draw(img)
            box = (size // 8, size // 8, size - size // 8, size - size // 8)
            if shape == "circle":
                draw.ellipse(box, fill=colour)
            elif shape == "square":
                draw.rectangle(box, fill=colour)
            else:
                draw.polygon([(size // 2, box[1]), (box[2], box[3]), (box[0], box[3])], fill=colour)
            tmp = path.with_suffix(".tmp")
            img.save(tmp, format="PNG")
            os.replace(tmp, path)
        paths.append(str(path.resolve()))
    return paths


def grpo_rows(n: int = 8, images: Sequence[str] = ()) -> List[dict]:
    """GRPO rows in swift's standard format; ground truth in ``solution``.

    Without ``images``: arithmetic questions (``solution`` = the sum). With ``images``: one ``<image>``
    question per row about the shape's number of sides (``solution`` = 0, 4 or 3), cycling the images.

        >>> grpo_rows(2)[1]
        {'messages': [{'role': 'user', 'content': 'What is 3 + 4? Think, then give the number.'}], 'solution': '7'}
    """
    rows = []
    for i in range(n):
        if images:
            path = images[i % len(images)]
            sides = _sides_of(path)
            rows.append({"messages": [{"role": "user", "content": "<image>How many sides does this shape have? "
                                       "Answer with a number."}], "images": [path], "solution": str(sides)})
        else:
            a, b = 1 + 2 * i, 2 + 2 * i
            rows.append({"messages": [{"role": "user", "content": f"What is {a} + {b}? Think, then give the number."}],
                         "solution": str(a + b)})
    return rows


def _sides_of(path: str) -> int:
    name = Path(path).stem.split("_", 1)[-1]
    return {"circle": 0, "square": 4, "triangle": 3}.get(name, 0)


def write_jsonl(path: os.PathLike, rows: Iterable[dict]) -> str:
    """Write ``rows`` as JSON lines (atomically); returns the absolute path."""
    from ..io import JsonlWriter

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with JsonlWriter(str(path)) as w:
        for row in rows:
            w.write(row)
    return str(path.resolve())
