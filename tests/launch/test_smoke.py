"""``swift-ext doctor --smoke`` (bench/gpu_smoke.sh): its CPU mode runs for real here, the vLLM parts skipped with
a line saying so; the GPU layouts' launch commands are checked by the launcher itself (``--dry-run``: flags
against the installed ms-swift 4.6, batch arithmetic), since no GPU is available to run them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from swift_ext.launch import smoke
from swift_ext.testing import run_cli

MODEL = {"path": "/models/tiny", "model_type": "qwen3", "template": "qwen3"}


@pytest.mark.parametrize("gpus", [1, 2, 8])
def test_gpu_layouts_render_launches_the_launcher_accepts(gpus, tmp_path):
    plan = smoke.plan_smoke(MODEL, tmp_path, gpus, vllm=True, rollout_port=8123)
    assert plan.on_gpu and "--backend" in plan.filter and plan.filter[plan.filter.index("--backend") + 1] == "vllm"
    if gpus >= 2:  # the launcher starts swift rollout on GPU 1 and trains on GPU 0
        assert plan.rollout == [] and plan.grpo[plan.grpo.index("--rollout-gpus") + 1] == "1,"
    else:  # one GPU: a stand-alone server through the launcher; GRPO with vLLM colocated
        assert plan.rollout[3:5] == ["launch", "rollout"] and "rollout.mode=colocate" in plan.grpo
    for argv in filter(None, (plan.rollout, plan.grpo)):
        res = subprocess.run([*argv[:5], "--dry-run", *argv[5:]], capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-3000:]
        script = res.stdout
        if argv is plan.grpo:
            assert "--use_vllm true" in script.replace("\\\n    ", " ")
            assert ("swift rollout" in script) == (gpus >= 2)


def test_cpu_plan_skips_vllm():
    plan = smoke.plan_smoke(MODEL, Path("/w"), gpus=0, vllm=False)
    assert not plan.on_gpu and plan.rollout == []
    assert "--device" in plan.grpo and "use_vllm=false" in plan.grpo
    assert plan.filter[plan.filter.index("--backend") + 1] == "transformers"
    assert not smoke.plan_smoke(MODEL, Path("/w"), gpus=4, vllm=False).on_gpu  # GPUs without vLLM: CPU mode


@pytest.mark.e2e
def test_smoke_runs_on_cpu_with_the_vllm_parts_skipped(tmp_path):
    res = run_cli(["doctor", "--smoke", "--work", str(tmp_path), "--json"], timeout=900,
                  env={**__import__("os").environ, "CUDA_VISIBLE_DEVICES": ""})
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    report = json.loads(res.stdout)
    steps = {s["name"].split(",")[0]: s for s in report["steps"]}
    assert report["gpus"] == 0
    assert steps["tiny model built locally (no hub)"]["status"] == "passed"
    ro = steps["rollout server (swift rollout"]
    assert ro["status"] == "skipped" and ro["detail"] == smoke.SKIP_VLLM
    assert smoke.SKIP_VLLM in res.stderr  # the clear line
    assert steps[f"GRPO {smoke.GRPO_STEPS} steps"]["status"] == "passed"
    assert steps["filter --backend transformers"]["status"] == "passed"
    rows = [json.loads(x) for x in (tmp_path / "filter-out.samples.jsonl").read_text().splitlines()]
    assert len(rows) == smoke.FILTER_PROMPTS and all(len(r["completions"]) == 4 for r in rows)
    assert "swift-ext smoke" in res.stderr and "passed" in res.stderr  # the table
