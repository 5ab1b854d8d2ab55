"""``swift-ext doctor --smoke``: the end-to-end smoke run for a fresh (GPU) node, without network.

On a GPU node with vLLM it runs, on the tiny local model (built here, no hub): a ``swift rollout`` vLLM
server started through the launcher, 5 GRPO steps with swift-ext rewards generating with vLLM, and
``filter --backend vllm`` on 32 prompts, then prints one table of what passed, with timings. Where there
is no GPU or no vLLM (this CPU machine, CI) the vLLM parts are skipped with a line saying so, and the same
steps run on CPU (GRPO with generation inside the trainer, ``filter --backend transformers``), so the
script cannot rot unnoticed.

GPU layouts: with two GPUs or more the GRPO step is ``swift-ext launch grpo --gpus 0,1 --rollout-gpus 1,``
(the launcher starts ``swift rollout`` on GPU 1, waits for ``/health`` and trains on GPU 0). With one GPU a
rollout server cannot share the trainer's device (NCCL weight sync needs two devices), so the rollout step
is a stand-alone ``swift-ext launch rollout --gpus 0,`` asked for one real rollout over ``/infer/`` and then
stopped, and GRPO generates with vLLM colocated in the trainer (``rollout.mode=colocate``).

Everything runs as subprocesses of the real CLI (``python -m swift_ext ...``): :func:`plan_smoke` is pure
(the commands), :func:`run_smoke` runs them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

GRPO_STEPS = 5
FILTER_PROMPTS = 32
REWARDS = ("think_format", "teacher_similarity:metric=chrf")
SKIP_VLLM = "skipped: no GPU with vLLM here (the vLLM parts run on a GPU node: pip install 'swift-ext[gpu]')"


@dataclass
class SmokeStep:
    """One line of the smoke table."""

    name: str
    status: str = "pending"  # passed | failed | skipped
    seconds: float = 0.0
    detail: str = ""
    argv: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class SmokePlan:
    """What the smoke run does on this node."""

    gpus: int
    vllm: bool
    work: Path
    model: Dict[str, str]  # path, model_type, template
    rollout: List[str] = field(default_factory=list)  # the stand-alone rollout server (one GPU only)
    grpo: List[str] = field(default_factory=list)
    filter: List[str] = field(default_factory=list)
    rollout_port: int = 0

    @property
    def on_gpu(self) -> bool:
        return self.gpus >= 1 and self.vllm


def _cli(*args: str) -> List[str]:
    return [sys.executable, "-m", "swift_ext", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plan_smoke(model: Dict[str, str], work: Path, gpus: int, vllm: bool, *, rollout_port: Optional[int] = None,
               group_port: Optional[int] = None) -> SmokePlan:
    """The commands of the smoke run (pure): ``model`` is the tiny model (``path``, ``model_type``,
    ``template``), ``gpus`` the GPUs of this node, ``vllm`` whether vLLM is importable."""
    plan = SmokePlan(gpus=gpus, vllm=vllm, work=work, model=model)
    dtype = "bfloat16" if plan.on_gpu else "float32"
    common = ["--model", model["path"], "--model_type", model["model_type"], "--template", model["template"],
              "--torch_dtype", dtype, "--check_model", "false", "--report_to", "none",
              "--dataloader_num_workers", "0", "--dataset_num_proc", "1"]
    data, out = str(work / "grpo.jsonl"), str(work / "grpo-out")
    sets = ["--set", f"dataset={data}", "--set", "gradient_checkpointing=false", "--set", "env.MAX_PIXELS="]
    train = [*common, "--reward_funcs", *REWARDS, "--num_generations", "4", "--per_device_train_batch_size", "4",
             "--gradient_accumulation_steps", "1", "--max_completion_length", "16", "--max_length", "256",
             "--max_steps", str(GRPO_STEPS), "--save_strategy", "no", "--logging_steps", "1", "--lora_rank", "4",
             "--lora_alpha", "8", "--learning_rate", "1e-3", "--output_dir", out]
    vllm_args = ["--set", "rollout.args.vllm_gpu_memory_utilization=0.3", "--set", "rollout.args.vllm_max_model_len=512",
                 "--set", "rollout.args.vllm_enforce_eager=true"]
    launch = ["launch", "grpo", "--log-dir", str(work / "logs-grpo"), "--grace", "5", *sets]
    if not plan.on_gpu:
        plan.grpo = _cli(*launch, "--device", "cpu", "--set", "use_vllm=false", "--", *train)
    elif gpus >= 2:
        plan.rollout_port = rollout_port or free_port()
        plan.grpo = _cli(*launch, "--gpus", "0,1", "--rollout-gpus", "1,", "--set", f"rollout.port={plan.rollout_port}",
                         *(["--set", f"rollout.group_port={group_port}"] if group_port else []), *vllm_args,
                         "--", *train)
    else:
        plan.rollout_port = rollout_port or free_port()
        plan.rollout = _cli("launch", "rollout", "--gpus", "0,", "--log-dir", str(work / "logs-rollout"), "--grace", "5",
                            "--set", f"model={model['path']}", "--set", f"model_type={model['model_type']}",
                            "--set", f"template={model['template']}", "--set", f"torch_dtype={dtype}",
                            "--set", "host=127.0.0.1", "--set", f"port={plan.rollout_port}", "--set", "env.MAX_PIXELS=",
                            "--set", "vllm_gpu_memory_utilization=0.3", "--set", "vllm_max_model_len=512",
                            "--set", "vllm_enforce_eager=true")
        plan.grpo = _cli(*launch, "--gpus", "0,", "--set", "rollout.mode=colocate",
                         "--set", "rollout.args.vllm_gpu_memory_utilization=0.3",
                         "--set", "rollout.args.vllm_max_model_len=512", "--", *train)
    plan.filter = _cli("filter", str(work / "filter.jsonl"), "-o", str(work / "filter-out.jsonl"),
                       "-r", REWARDS[0], "-k", "4", "--max-tokens", "16", "--model", model["path"],
                       "--model-type", model["model_type"], "--template", model["template"], "--torch-dtype", dtype,
                       "--backend", "vllm" if plan.on_gpu else "transformers", "--restart", "--json")
    return plan


def write_data(work: Path) -> None:
    """The smoke datasets: GRPO rows (arithmetic with a ``solution``) and the filter's prompts."""
    work.mkdir(parents=True, exist_ok=True)
    rows = [{"messages": [{"role": "user", "content": f"What is {i} + {i + 1}? Think, then give the number."}],
             "solution": str(2 * i + 1)} for i in range(max(GRPO_STEPS, FILTER_PROMPTS))]
    for name, n in (("grpo.jsonl", 4 * GRPO_STEPS), ("filter.jsonl", FILTER_PROMPTS)):
        with open(work / name, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in (rows * 2)[:n])


def _run(step: SmokeStep, argv: List[str], env: Dict[str, str], log: Path, timeout: float,
         check: Callable[[str, str], Optional[str]]) -> str:
    """Run ``argv`` to completion (stderr in ``log``); ``check(stdout, log text)`` returns what is wrong, or
    None. Returns the log text."""
    step.argv = argv
    t0 = time.monotonic()
    with open(log, "w", encoding="utf-8") as fh:
        try:
            res = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=fh, text=True, timeout=timeout)
            rc, stdout = res.returncode, res.stdout
        except subprocess.TimeoutExpired:
            rc, stdout = None, ""
    step.seconds = round(time.monotonic() - t0, 1)
    text = log.read_text(errors="replace")
    problem = f"timed out after {timeout:.0f} s" if rc is None else \
        (f"exit code {rc}" if rc != 0 else check(stdout, text))
    step.status = "failed" if problem else "passed"
    if problem:
        step.detail = f"{problem} (log: {log})"
    return text


def _grpo_check(work: Path) -> Callable[[str, str], Optional[str]]:
    def check(stdout: str, log: str) -> Optional[str]:
        rows = []
        for f in (work / "grpo-out").rglob("logging.jsonl"):
            rows += [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        steps = [r for r in rows if "loss" in r and "train_runtime" not in r]
        if len(steps) != GRPO_STEPS:
            return f"{len(steps)} logged steps, expected {GRPO_STEPS}"
        missing = [n for n in REWARDS if f"rewards/{n}/mean" not in steps[-1]]
        return f"no swift-ext reward logged: {missing}" if missing else None
    return check


def _filter_check(stdout: str, log: str) -> Optional[str]:
    try:
        report = json.loads(stdout)
    except ValueError:
        return "no JSON summary on stdout"
    return None if report.get("rows_in") == FILTER_PROMPTS else f"rows_in {report.get('rows_in')}"


def _rollout_once(step: SmokeStep, argv: List[str], env: Dict[str, str], port: int, log: Path,
                  timeout: float, model: str) -> None:
    """Start the stand-alone rollout server through the launcher, wait for /health, ask one rollout, stop it."""
    step.argv = argv
    t0 = time.monotonic()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the launcher exited with code {proc.returncode}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"not healthy after {timeout:.0f} s")
            try:
                with urllib.request.urlopen(base + "/health", timeout=2):
                    break
            except OSError:
                time.sleep(2)
        body = {"infer_requests": [{"messages": [{"role": "user", "content": "What is 1 + 1?"}]}],
                "request_config": {"max_tokens": 8, "temperature": 1.0}}
        req = urllib.request.Request(base + "/infer/", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as resp:
            answer = json.loads(resp.read())
        if not answer:
            raise RuntimeError("/infer/ returned nothing")
        step.status, step.detail = "passed", f"healthy at {base}, one rollout answered ({model})"
    except Exception as exc:  # reported in the table, with the log
        step.status, step.detail = "failed", f"{exc} (log: {log})"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)  # the launcher stops its process groups
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        step.seconds = round(time.monotonic() - t0, 1)


def run_smoke(plan: SmokePlan, env: Optional[Dict[str, str]] = None, *, timeout: float = 1200.0,
              say: Callable[[str], None] = lambda msg: None) -> List[SmokeStep]:
    """Run ``plan`` (each step even when an earlier one failed); returns the table's rows."""
    env = dict(os.environ if env is None else env)
    write_data(plan.work)
    steps: List[SmokeStep] = []
    ro = SmokeStep("rollout server (swift rollout, vLLM)")
    if not plan.on_gpu:
        ro.status, ro.detail = "skipped", SKIP_VLLM
    elif plan.rollout:
        say("starting the rollout server through the launcher ...")
        _rollout_once(ro, plan.rollout, env, plan.rollout_port, plan.work / "rollout.log", timeout, plan.model["path"])
    steps.append(ro)
    name = (f"GRPO {GRPO_STEPS} steps, swift-ext rewards, " +
            ("vLLM server via the launcher" if plan.on_gpu and plan.gpus >= 2 else
             "vLLM colocated" if plan.on_gpu else "CPU, generation in the trainer"))
    grpo = SmokeStep(name, detail=("" if plan.on_gpu else "vLLM generation " + SKIP_VLLM.split(":", 1)[0]))
    say(f"running {name} ...")
    out = _run(grpo, plan.grpo, env, plan.work / "grpo.log", timeout, _grpo_check(plan.work))
    if plan.on_gpu and plan.gpus >= 2:
        healthy = "rollout server healthy at" in out
        ro.status = "passed" if healthy else "failed"
        ro.detail = "started by the launcher for the GRPO step" + ("" if healthy else f" (log: {plan.work / 'grpo.log'})")
        ro.seconds = grpo.seconds
    steps.append(grpo)
    flt = SmokeStep(f"filter --backend {'vllm' if plan.on_gpu else 'transformers'}, {FILTER_PROMPTS} prompts",
                    detail="" if plan.on_gpu else "--backend vllm " + SKIP_VLLM.split(":", 1)[0])
    say(f"running {flt.name} ...")
    _run(flt, plan.filter, env, plan.work / "filter.log", timeout, _filter_check)
    steps.append(flt)
    return steps


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


__all__ = ["SmokeStep", "SmokePlan", "plan_smoke", "run_smoke", "write_data", "vllm_available", "SKIP_VLLM",
           "GRPO_STEPS", "FILTER_PROMPTS"]
