"""`swift-ext doctor` on this machine, as a user runs it (a subprocess), and its version rules."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from swift_ext import cpu_compat
from swift_ext.launch import doctor


def _doctor(*args):
    exe = Path(sys.executable).with_name("swift-ext")
    return subprocess.run([str(exe), "doctor", *args], capture_output=True, text=True, env=dict(os.environ),
                          timeout=300)


def test_doctor_reports_this_machine():
    import importlib.metadata as md

    import torch

    res = _doctor("--json")
    assert res.returncode == 0, res.stderr
    checks = {c["name"]: c for c in json.loads(res.stdout)}
    assert checks["torch"]["status"] == "ok" and checks["torch"]["value"].startswith(torch.__version__)
    assert checks["ms-swift"] == {"name": "ms-swift", "status": "ok", "value": md.version("ms-swift"), "detail": ""}
    assert checks["cpu shim"]["value"] == ("needed" if cpu_compat.needed() else "not needed")
    assert {"port 8000", "port 51216", "plugins", "vllm", "deepspeed", "gpus"} <= set(checks)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU machine passes --gpu")
def test_gpu_node_check_fails_without_gpus():
    res = _doctor("--gpu", "--json")
    assert res.returncode == 1
    checks = {c["name"]: c for c in json.loads(res.stdout)}
    assert checks["gpus"]["status"] == "fail"
    assert "required check(s) failed" in res.stderr and "gpus" in res.stderr.splitlines()[-1]


def test_a_busy_port_is_reported():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = _doctor("--port", str(port), "--json")
    checks = {c["name"]: c for c in json.loads(res.stdout)}
    assert checks[f"port {port}"]["status"] == "warn" and checks[f"port {port}"]["value"] == "in use"


def test_versions_are_judged_by_swift_exts_own_requirements():
    assert doctor._in_range("ms-swift", "4.6.0") is None
    assert doctor._in_range("ms-swift", "3.9.0") == "ms-swift<5,>=4.6"
    assert doctor.torchvision_for("2.13.0+cpu") == "0.28"
