"""``swift-ext doctor``: can this machine run what the user wants?

Each check gives a status (``ok``, ``warn``: works but worth knowing, ``fail``: something required is
missing or mismatched), the value found and one line saying what to do. Version ranges are read from
swift-ext's own package metadata (its dependencies and the ``gpu`` extra), so the doctor and ``pip`` never
disagree about what fits ms-swift 4.6.

Example::

    >>> c = Check("torch", "ok", "2.13.0+cpu")
    >>> c.as_dict()["status"]
    'ok'
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import platform
import socket
import sys
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence

from .. import plugins

#: packages a GPU node needs for vLLM rollouts and DeepSpeed (the ``gpu`` extra)
GPU_PACKAGES = ("vllm", "deepspeed")
#: optional packages and what needs them
OPTIONAL = {"flash_attn": ("flash-attn", "--attn_impl flash_attn on GPU nodes"),
            "math_verify": ("math-verify", "the math_accuracy reward (extra: math)"),
            "qwen_vl_utils": ("qwen-vl-utils", "Qwen-VL image preprocessing (extra: vision)")}


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail
    value: str = ""
    detail: str = ""

    def as_dict(self) -> Dict[str, str]:
        return asdict(self)


def _version(dist: str) -> Optional[str]:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _own_requirement(dist: str, extra: Optional[str] = None):
    """swift-ext's declared requirement on ``dist`` (in ``extra``), as a packaging Requirement, or None."""
    from packaging.requirements import Requirement

    for text in md.requires("swift-ext") or []:
        req = Requirement(text)
        if req.name.lower().replace("_", "-") != dist:
            continue
        in_extra = req.marker is not None and "extra" in str(req.marker)
        if (extra is None and not in_extra) or (extra is not None and in_extra
                                                and req.marker.evaluate({"extra": extra})):
            return req
    return None


def _in_range(dist: str, version: str, extra: Optional[str] = None) -> Optional[str]:
    """None when ``version`` fits swift-ext's requirement on ``dist``, else the requirement text."""
    req = _own_requirement(dist, extra)
    if req is None or not str(req.specifier):
        return None
    return None if req.specifier.contains(version, prereleases=True) else f"{dist}{req.specifier}"


def torchvision_for(torch_version: str) -> Optional[str]:
    """The torchvision minor release built for a torch release (torch 2.N pairs with torchvision 0.(N+15)).

    >>> torchvision_for("2.13.0+cpu"), torchvision_for("2.5.1")
    ('0.28', '0.20')
    """
    major, minor = (int(x) for x in torch_version.split("+")[0].split(".")[:2])
    return f"0.{minor + 15}" if major == 2 else None


def check_python() -> Check:
    v = platform.python_version()
    ok = sys.version_info >= (3, 10)
    return Check("python", "ok" if ok else "fail", v, "" if ok else "swift-ext needs Python >= 3.10")


def check_torch() -> List[Check]:
    tv, tvv = _version("torch"), _version("torchvision")
    if tv is None:
        return [Check("torch", "fail", "not installed",
                      "pip install torch==2.13.0 torchvision==0.28.0 (CPU), or your CUDA build of the pair")]
    import torch

    cuda = torch.version.cuda
    out = [Check("torch", "ok", f"{torch.__version__} ({'CUDA ' + cuda if cuda else 'CPU-only build'})")]
    if tvv is None:
        out.append(Check("torchvision", "warn", "not installed", "Qwen-VL models need torchvision matching torch"))
        return out
    want = torchvision_for(tv)
    got = ".".join(tvv.split("+")[0].split(".")[:2])
    if want and got != want:
        out.append(Check("torchvision", "fail", tvv, f"torch {tv} needs torchvision {want}.x: "
                                                       f"pip install 'torchvision=={want}.*' (and keep torch)"))
    else:
        out.append(Check("torchvision", "ok", tvv))
    from .. import cpu_compat

    if cpu_compat.needed():
        out.append(Check("cpu shim", "warn", "needed", cpu_compat.explanation()
                         + "; swift-ext applies it to its own commands and the demo; for your own `swift` "
                           "commands prepend the shim with swift_ext.cpu_compat.subprocess_env"))
    else:
        out.append(Check("cpu shim", "ok", "not needed"))
    return out


def check_gpus(require_gpu: bool) -> Check:
    try:
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        names = sorted({torch.cuda.get_device_name(i) for i in range(n)})
    except Exception as exc:  # a broken driver must not stop the other checks
        return Check("gpus", "fail" if require_gpu else "warn", "error", f"torch.cuda failed: {exc}")
    if n:
        return Check("gpus", "ok", f"{n} x {', '.join(names)}")
    return Check("gpus", "fail" if require_gpu else "ok", "none visible",
                 "no CUDA device: CPU runs only (tiny models, the demo)" if not require_gpu else
                 "no CUDA device visible: check CUDA_VISIBLE_DEVICES and the driver (nvidia-smi)")


def check_package(dist: str, import_name: str, required: bool, extra: Optional[str] = None,
                  why: str = "") -> Check:
    version = _version(dist)
    if version is None:
        hint = f"pip install 'swift-ext[{extra}]'" if extra else f"pip install {dist}"
        return Check(dist, "fail" if required else "warn", "not installed",
                     f"{hint}" + (f" ({why})" if why else ""))
    bad = _in_range(dist, version, extra)
    if bad:
        return Check(dist, "fail" if required else "warn", version, f"swift-ext expects {bad}")
    if importlib.util.find_spec(import_name) is None:
        return Check(dist, "fail" if required else "warn", version, f"installed but `import {import_name}` fails")
    return Check(dist, "ok", version)


def check_port(port: int, what: str) -> Check:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return Check(f"port {port}", "warn", "in use", f"{what}: pass another port (--port / --group-port)")
    return Check(f"port {port}", "ok", "free", what)


def check_plugins() -> Check:
    try:
        loaded = [p for p in plugins.list_plugins() if not p["source"].startswith("swift-ext built-in")]
    except Exception as exc:
        return Check("plugins", "fail", "error", str(exc))
    return Check("plugins", "ok", ", ".join(p["name"] for p in loaded) or "none installed",
                 "; ".join(p["source"] for p in loaded))


def check_sandbox() -> Check:
    from ..sandbox.isolation import doctor_line

    return Check("code sandbox", *doctor_line())


def run_checks(gpu: bool = False, ports: Sequence[int] = ()) -> List[Check]:
    """Every check; ``gpu=True`` makes CUDA devices, vLLM and DeepSpeed required (a GPU training node)."""
    from .plan import DEFAULT_GROUP_PORT, DEFAULT_PORT

    out = [check_python(), *check_torch(), check_gpus(gpu),
           check_package("ms-swift", "swift", required=True),
           check_package("transformers", "transformers", required=True)]
    for dist in GPU_PACKAGES:
        out.append(check_package(dist, dist, required=gpu, extra="gpu",
                                 why="vLLM rollouts (--use_vllm, swift rollout)" if dist == "vllm" else "ZeRO"))
    for module, (dist, why) in OPTIONAL.items():
        extra = {"math_verify": "math", "qwen_vl_utils": "vision"}.get(module)
        out.append(check_package(dist, module, required=False, extra=extra, why=why))
    for port, what in [(DEFAULT_PORT, "rollout server"), (DEFAULT_GROUP_PORT, "NCCL weight-sync group"),
                       *[(p, "requested") for p in ports]]:
        out.append(check_port(port, what))
    out.append(check_plugins())
    out.append(check_sandbox())
    return out


def failed(checks: Sequence[Check]) -> List[Check]:
    return [c for c in checks if c.status == "fail"]


__all__ = ["Check", "run_checks", "failed"]
