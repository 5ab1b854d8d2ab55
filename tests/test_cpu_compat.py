"""swift_ext.cpu_compat with real subprocesses: the CUDA torchvision wheel next to CPU-only torch.

These tests are about this CPU box (torch 2.13.0+cpu with the CUDA-13 torchvision 0.28.0 wheel); where
the shim is not needed (a CUDA node, or no torchvision) the tests that need the broken setup skip.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from swift_ext import cpu_compat

IMPORT_BOTH = "import torchvision, transformers.trainer_utils; print('OK', torchvision.__version__)"


def _py(code, env, cwd=None):
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def _clean_env():
    env = dict(os.environ)
    site = str(cpu_compat.SITE_DIR)
    env["PYTHONPATH"] = os.pathsep.join(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != site)
    return env


needs_shim = pytest.mark.skipif("not cpu_compat.needed()", reason="torchvision ops load here: no shim needed")


@needs_shim
def test_without_the_shim_torchvision_and_transformers_fail():
    proc = _py(IMPORT_BOTH, _clean_env())
    assert proc.returncode != 0
    assert "torchvision::nms" in proc.stderr


@needs_shim
def test_subprocess_env_makes_torchvision_and_transformers_import():
    env = cpu_compat.subprocess_env(_clean_env())
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(cpu_compat.SITE_DIR)
    proc = _py(IMPORT_BOTH + "; import swift_ext_tvshim as s; print(s.state)", env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[0] == "OK"
    assert proc.stdout.split()[-1] == "defined"


@needs_shim
def test_transforms_v2_work_with_the_shim_but_cpp_ops_stay_unavailable():
    code = textwrap.dedent("""
        import torch
        import torchvision.transforms.v2.functional as F
        img = torch.zeros(3, 8, 8, dtype=torch.uint8)
        print(tuple(F.resize(img, [4, 4]).shape))
        from torchvision.ops import nms
        try:
            nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
            print("nms ran")
        except RuntimeError as exc:
            print("nms unavailable")
    """)
    proc = _py(code, cpu_compat.subprocess_env(_clean_env()))
    assert proc.returncode == 0, proc.stderr[-3000:]
    # (3, 8, 8) resized to 4x4 keeps the 3 channels
    assert proc.stdout.splitlines() == ["(3, 4, 4)", "nms unavailable"]


def test_the_hook_does_not_import_torch_in_processes_that_never_import_torchvision():
    env = cpu_compat.subprocess_env(_clean_env(), force=True)
    proc = _py("import sys, swift_ext_tvshim as s; print('torch' in sys.modules, s.installed(), s.state)", env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True", "None"]


def test_an_existing_sitecustomize_further_on_the_path_still_runs(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import os\nos.environ['OTHER_SITECUSTOMIZE_RAN'] = 'yes'\n")
    env = cpu_compat.subprocess_env(_clean_env(), force=True)
    env["PYTHONPATH"] = env["PYTHONPATH"] + os.pathsep + str(other)
    proc = _py("import os, swift_ext_tvshim as s; print(os.environ.get('OTHER_SITECUSTOMIZE_RAN'), s.installed())",
               env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["yes", "True"]


def test_subprocess_env_is_unchanged_where_not_needed_and_never_duplicates(monkeypatch):
    monkeypatch.setattr(cpu_compat, "_needed", False)
    env = {"PYTHONPATH": "/a", "X": "1"}
    assert cpu_compat.subprocess_env(env) == env
    monkeypatch.setattr(cpu_compat, "_needed", True)
    once = cpu_compat.subprocess_env(env)
    twice = cpu_compat.subprocess_env(once)
    assert once["PYTHONPATH"] == os.pathsep.join([str(cpu_compat.SITE_DIR), "/a"])
    assert twice == once
    assert env["PYTHONPATH"] == "/a"  # the input mapping is not modified


@needs_shim
def test_apply_in_process_is_idempotent_and_lazy():
    code = textwrap.dedent("""
        import sys
        from swift_ext import cpu_compat
        first = cpu_compat.apply(); second = cpu_compat.apply()
        hooks = sum(1 for f in sys.meta_path if getattr(f, "_swift_ext_tvshim", False))
        print(first, second, hooks, "torch" in sys.modules)
        import torchvision
        print(cpu_compat.shim().state, sum(1 for f in sys.meta_path if getattr(f, "_swift_ext_tvshim", False)))
    """)
    proc = _py(code, _clean_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == ["hooked hooked 1 False", "defined 0"]


@needs_shim
def test_apply_after_torch_is_imported_defines_the_schemas_at_once():
    code = "import torch; from swift_ext import cpu_compat; print(cpu_compat.apply()); import torchvision; print('OK')"
    proc = _py(code, _clean_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["defined", "OK"]


@needs_shim
def test_needed_is_true_here_because_torch_is_cpu_only_and_ops_do_not_load():
    shim = cpu_compat.shim()
    import torch

    assert shim.cpu_only(torch)
    assert not shim.ops_loadable(torch, shim._torchvision_dir())


def test_needed_is_false_without_torchvision(tmp_path):
    # a child whose sys.path has no torchvision: the meta-path lookup finds nothing
    code = textwrap.dedent("""
        import sys
        sys.path[:] = [p for p in sys.path if 'site-packages' not in p]
        sys.path.insert(0, %r)
        import swift_ext_tvshim as s
        print(s._torchvision_dir(), s.needed())
    """ % str(cpu_compat.SITE_DIR))
    proc = _py(code, _clean_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["None", "False"]


def test_explanation_is_one_line():
    text = cpu_compat.explanation()
    assert "\n" not in text and "torchvision" in text and "untouched" in text


@needs_shim
@pytest.mark.e2e
def test_a_real_swift_run_dies_without_the_shim(tiny_models, run_swift, tmp_path):
    # the same text-only command that tests/test_e2e_grpo.py runs successfully with the shim
    from swift_ext.testing import tiny

    model = tiny_models["text"]
    dataset = tiny.write_jsonl(tmp_path / "rows.jsonl", tiny.grpo_rows(4))
    run = run_swift("rlhf", ["--rlhf_type", "grpo", *tiny.common_flags(model), "--dataset", dataset,
                             "--reward_funcs", "format", "--use_vllm", "false", "--max_steps", "1",
                             "--output_dir", str(tmp_path / "out")],
                    cwd=tmp_path, env={"PYTHONPATH": _clean_env().get("PYTHONPATH", "")})
    assert run.returncode != 0
    assert "torchvision::nms" in run.output or "enable_full_determinism" in run.output, run.tail()
