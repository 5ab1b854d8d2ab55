"""The judge reward against a REAL judge endpoint: ``swift deploy`` of the tiny local model on CPU (transformers
backend) answering ``/v1/chat/completions`` on 127.0.0.1, scored directly and from a real GRPO run.

A random tiny model's verdicts hold no score: every row abstains and the raw reply is kept and logged."""

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from swift_ext import bridge
from swift_ext.testing import tiny
from swift_ext.rewards import build
from swift_ext.testing import swift_executable

pytestmark = pytest.mark.e2e


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deploy(model, swift_env, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("deploy") / "deploy.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([swift_executable(), "deploy", "--model", str(model.path), "--model_type",
                                 model.model_type, "--template", model.template, "--torch_dtype", "float32",
                                 "--infer_backend", "transformers", "--host", "127.0.0.1", "--port", str(port),
                                 "--max_new_tokens", "16"], env=swift_env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as resp:
                    model_id = json.loads(resp.read())["data"][0]["id"]
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(1)
        yield url, model_id
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def deployed(tiny_models, swift_env, tmp_path_factory):
    yield from deploy(tiny_models["text"], swift_env, tmp_path_factory)


@pytest.fixture(scope="module")
def deployed_vl(tiny_models, swift_env, tmp_path_factory):
    yield from deploy(tiny_models["qwen2_vl"], swift_env, tmp_path_factory)


def test_judge_on_a_real_swift_deploy(deployed, tmp_path, caplog):
    url, model_id = deployed
    r = build(f"judge:base_url={url},rubric=helpfulness,max_tokens=16,cache={tmp_path / 'c.sqlite'}")
    with caplog.at_level(logging.WARNING, logger="swift_ext.rewards"):
        out = asyncio.run(r(["a cat on a mat", "two dogs"], messages=[[{"role": "user", "content": "Describe."}]] * 2))
    assert out == [None, None]                                   # a random model's reply holds no score
    assert all(isinstance(d.get("rationale"), str) for d in r.last_details)   # but it did reply
    assert "no score in the judge's reply" in caplog.text
    assert r._model == model_id                                  # the model name came from /v1/models


def test_grpo_with_the_judge_as_a_reward(deployed, tiny_models, run_swift, tmp_path):
    url, _ = deployed
    model = tiny_models["text"]
    dataset = tiny.write_jsonl(tmp_path / "grpo.jsonl", tiny.grpo_rows(4))
    val = tiny.write_jsonl(tmp_path / "val.jsonl", tiny.grpo_rows(6)[4:])
    judge = f"judge:base_url={url},rubric=helpfulness,max_tokens=8,cache="
    out = tmp_path / "out"
    run = run_swift("rlhf", ["--rlhf_type", "grpo", *tiny.common_flags(model), "--dataset", dataset,
                             "--val_dataset", val, "--external_plugins", bridge.plugin_path(),
                             "--callbacks", "sample_logger", "--reward_funcs", judge, "random:seed=1",
                             "--use_vllm", "false", "--num_generations", "2", "--num_generations_eval", "2",
                             "--max_completion_length", "8", "--tuner_type", "lora", "--lora_rank", "4",
                             "--lora_alpha", "8", "--max_steps", "1", "--per_device_train_batch_size", "4",
                             "--per_device_eval_batch_size", "2", "--max_length", "256", "--logging_steps", "1",
                             "--eval_strategy", "steps", "--eval_steps", "1", "--save_strategy", "no",
                             "--output_dir", str(out)], cwd=tmp_path)
    assert run.returncode == 0, run.tail()
    rows = [r for r in tiny.logging_rows(out) if "reward" in r]
    assert rows and "rewards/random:seed=1/mean" in rows[0], sorted(rows[0])
    assert "no score in the judge's reply" in run.output          # the judge was called from the trainer
    # every judge row abstained (NaN): ms-swift leaves the judge out of the weighted sum and of the means
    assert rows[0]["reward"] == rows[0]["rewards/random:seed=1/mean"]
    # the sample logger shows each eval completion's judge rationale (the raw reply)
    samples = [json.loads(x) for f in out.rglob("swift_ext_samples.jsonl") for x in f.read_text().splitlines()]
    assert samples and all(isinstance(s["details"][judge]["rationale"], str) for s in samples), samples[:1]


@pytest.mark.vl
def test_a_vl_judge_receives_the_rows_images(deployed_vl, sample_images, tmp_path):
    url, _ = deployed_vl
    r = build(f"judge:base_url={url},rubric=faithfulness,max_tokens=8,retries=0,cache=")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really an image")
    msgs = [[{"role": "user", "content": "<image>What shape is this?"}]] * 3
    with open(sample_images[0], "rb") as fh:
        out = asyncio.run(r(["a circle", "a square", "a circle"], messages=msgs,
                            images=[[sample_images[0]], [{"bytes": fh.read(), "path": None}], [str(broken)]]))
    assert out == [None, None, None]
    # the real images were decoded and answered; the broken one was refused by the server: it did read them
    assert "rationale" in r.last_details[0] and "rationale" in r.last_details[1], r.last_details
    assert "error" in r.last_details[2], r.last_details
