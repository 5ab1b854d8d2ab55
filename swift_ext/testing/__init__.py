"""A pytest kit for swift-ext and for people who write swift-ext plugins: tiny local models, sample images,
real ``swift`` subprocesses, and in-process plugin registration. Opt in from a ``conftest.py``::

    pytest_plugins = ["swift_ext.testing"]

Fixtures:

* ``tiny_models`` (session): mapping kind -> :class:`swift_ext.testing.tiny.TinyModel` (``.path``, ``.model_type``,
  ``.template``); kinds ``"text"``, ``"qwen2_vl"``, ``"qwen2_5_vl"``, ``"qwen3_vl"``. Each kind is built on first
  access only (random weights, no network) and cached across sessions in ``$SWIFT_EXT_TINY_CACHE`` (default
  ``~/.cache/swift-ext/tiny``). VL kinds skip the test when the Qwen-VL stack (qwen-vl-utils, torchvision) is
  not importable.
* ``sample_images`` (session): four 56x56 PNG paths.
* ``swift_env`` (session): environment for ``swift`` subprocesses (offline variables; the CPU torchvision
  shim on PYTHONPATH where :func:`swift_ext.cpu_compat.needed`).
* ``run_swift(subcommand, args, cwd=None, timeout=900, env=None)``: runs ``swift <subcommand> *args`` in
  ``cwd`` (default the test's ``tmp_path``), returns a :class:`SwiftRun` with ``.returncode``, ``.output``
  (merged stdout+stderr) and ``.log`` (the log file written in ``cwd``).
* ``register_plugin(module_or_object)``: registers a plugin object (hookimpls as attributes, see
  :func:`make_plugin`) into swift-ext's plugin manager for one test, and forgets it afterwards.

Helpers: :func:`grpo_args` (a 2-step GRPO run of a tiny model with the plugin file), :func:`step_rows`,
:func:`plugin_package` (write a minimal plugin package), :func:`install_package` (a real ``pip install`` of it
into its own folder), :func:`with_path`,
:func:`run_cli` (``swift-ext`` as a subprocess).

Markers: ``e2e`` (runs real ms-swift processes) and ``vl`` (needs the Qwen-VL stack).

Example::

    @pytest.mark.e2e
    def test_grpo(tiny_models, run_swift, tmp_path):
        model = tiny_models["text"]
        run = run_swift("rlhf", ["--rlhf_type", "grpo", *tiny.common_flags(model), ...], cwd=tmp_path)
        assert run.returncode == 0, run.tail()

    def test_my_reward_is_listed(register_plugin):
        register_plugin(make_plugin("mine", register_rewards=lambda register: register(MyReward)))
        assert "my_reward" in swift_ext.plugins.registry("reward")
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import pytest

from .. import cpu_compat, plugins
from . import tiny
from ..hookspecs import hookimpl


def pytest_configure(config):
    for line in ("e2e: runs real ms-swift processes on tiny local models (slow)",
                 "vl: needs the Qwen-VL stack (qwen-vl-utils, torchvision)"):
        config.addinivalue_line("markers", line)
    # a lazy sys.meta_path hook: acts only if this process imports torchvision, and only where needed
    cpu_compat.apply()


def vl_stack_missing() -> Optional[str]:
    """Why the Qwen-VL stack cannot be used here (None when it can)."""
    import importlib.util

    for name in ("qwen_vl_utils", "torchvision"):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed"
    return None


class _LazyModels(Mapping):
    """kind -> TinyModel, building each kind on first access (a text-only test never pays for VL)."""

    def __init__(self):
        self._built: Dict[str, tiny.TinyModel] = {}

    def __getitem__(self, kind: str) -> tiny.TinyModel:
        if kind not in tiny.KINDS:
            raise KeyError(kind)
        if kind not in self._built:
            if kind != "text":
                reason = vl_stack_missing()
                if reason:
                    pytest.skip(f"tiny {kind} model needs the Qwen-VL stack: {reason}")
            self._built[kind] = tiny.ensure(kind)
        return self._built[kind]

    def __iter__(self):
        return iter(tiny.KINDS)

    def __len__(self):
        return len(tiny.KINDS)


@pytest.fixture(scope="session")
def tiny_models():
    return _LazyModels()


@pytest.fixture(scope="session")
def sample_images() -> List[str]:
    return tiny.sample_images(tiny.cache_root() / "images")


@pytest.fixture(scope="session")
def swift_env() -> Dict[str, str]:
    return tiny.offline_env(cpu_compat.subprocess_env(os.environ))


@dataclass
class SwiftRun:
    """The outcome of one ``swift`` subprocess."""

    args: List[str]
    returncode: int
    output: str
    log: Path
    cwd: Path

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-lines:])

    def output_dirs(self) -> List[Path]:
        """``<cwd>/**/v<N>-<timestamp>`` run folders that hold a ``logging.jsonl``."""
        return sorted({p.parent for p in self.cwd.rglob("logging.jsonl")})


def swift_executable() -> str:
    candidate = Path(sys.executable).with_name("swift")
    return str(candidate) if candidate.exists() else "swift"


_counter = itertools.count(1)


@pytest.fixture
def run_swift(swift_env, tmp_path):
    def run(subcommand: str, args: Sequence[str], cwd: Optional[os.PathLike] = None, timeout: float = 900,
            env: Optional[Dict[str, str]] = None) -> SwiftRun:
        workdir = Path(cwd) if cwd is not None else tmp_path
        workdir.mkdir(parents=True, exist_ok=True)
        argv = [swift_executable(), subcommand, *map(str, args)]
        log = workdir / f"swift-{subcommand}-{next(_counter)}.log"
        with open(log, "w", encoding="utf-8") as fh:
            fh.write("$ " + " ".join(argv) + "\n")
            fh.flush()
            try:
                code = subprocess.run(argv, cwd=workdir, env={**swift_env, **(env or {})}, stdout=fh,
                                      stderr=subprocess.STDOUT, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                code = -9
        output = log.read_text(encoding="utf-8", errors="replace")
        if code == -9:
            output += f"\n[conftest] TIMEOUT after {timeout}s\n"
        return SwiftRun(args=argv, returncode=code, output=output, log=log, cwd=workdir)

    return run


def make_plugin(name: str, **hooks: Callable[..., Any]) -> types.ModuleType:
    """A plugin module object carrying ``hooks`` as hookimpls: ``make_plugin("p", register_rewards=fn)``."""
    mod = types.ModuleType(name)
    for hook, fn in hooks.items():
        setattr(mod, hook, hookimpl(fn))
    return mod


@pytest.fixture
def register_plugin():
    """Register plugin objects into the real plugin manager for one test (registries are rebuilt)."""
    plugins.reset()
    manager = plugins.get_pm()
    added = []

    def add(plugin: Any) -> Any:
        manager.register(plugin, name=getattr(plugin, "__name__", None) or repr(plugin))
        added.append(plugin)
        plugins.reset_registries()
        return plugin

    yield add
    for p in added:
        manager.unregister(p)
    plugins.reset()


# -- helpers for tests that run swift-ext and swift as a user does -----------------------------------
def grpo_args(model: "tiny.TinyModel", dataset: str, output_dir: os.PathLike, rewards: Sequence[str],
              *extra: str) -> List[str]:
    """``swift rlhf`` arguments for a 2-step GRPO run of a tiny model with swift-ext's plugin file loaded
    (``--reward_funcs`` = ``rewards``; ``extra`` last, so it overrides)."""
    from ..bridge import plugin_path

    return ["--rlhf_type", "grpo", *tiny.common_flags(model), "--dataset", dataset,
            "--external_plugins", plugin_path(), "--reward_funcs", *rewards,
            "--use_vllm", "false", "--num_generations", "2", "--max_completion_length", "16",
            "--temperature", "1.0", "--tuner_type", "lora", "--lora_rank", "4", "--lora_alpha", "8",
            "--max_steps", "2", "--per_device_train_batch_size", "4", "--learning_rate", "1e-3",
            "--max_length", "256", "--logging_steps", "1", "--save_steps", "2", "--save_total_limit", "1",
            "--beta", "0.04", "--output_dir", str(output_dir), *extra]


def step_rows(output_dir: os.PathLike) -> List[dict]:
    """Per-step training rows of a run's ``logging.jsonl`` (the final summary row has no rewards)."""
    return [r for r in tiny.logging_rows(output_dir) if "reward" in r]


def install_package(src: os.PathLike, target: os.PathLike) -> None:
    """A real ``pip install`` of a plugin package into its own folder (kept off the test venv)."""
    import shutil

    src, target = Path(src), Path(target)
    build_copy = target.parent / f"src-{src.name}"
    shutil.copytree(src, build_copy)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(build_copy)], check=True)


def plugin_package(folder: os.PathLike, name: str, module_source: str) -> Path:
    """Write a minimal plugin package ``swift-ext-NAME`` (module ``swift_ext_NAME``, entry point ``NAME`` in
    group ``swift_ext``) whose module is ``module_source``, under ``folder``; returns its source folder, ready
    for :func:`install_package`."""
    import textwrap

    src = Path(folder) / f"swift-ext-{name}"
    (src / f"swift_ext_{name}").mkdir(parents=True)
    (src / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "swift-ext-{name}"
        version = "0.0.1"
        [project.entry-points.swift_ext]
        {name} = "swift_ext_{name}"
        [tool.setuptools]
        packages = ["swift_ext_{name}"]
    """))
    (src / f"swift_ext_{name}" / "__init__.py").write_text(textwrap.dedent(module_source))
    return src


def with_path(env: Dict[str, str], *paths: os.PathLike) -> Dict[str, str]:
    """``env`` with ``paths`` in front of its PYTHONPATH (where :func:`install_package` put a plugin)."""
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_cli(args: Sequence[str], env: Optional[Dict[str, str]] = None, **kw: Any) -> subprocess.CompletedProcess:
    """``swift-ext ARGS`` as a user runs it: the installed console script in a fresh process."""
    exe = Path(sys.executable).with_name("swift-ext")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ) if env is None else env, **kw)
