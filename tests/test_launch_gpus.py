"""GPU list parsing and detection (pure; ``detect_gpus`` is given an explicit environment)."""

from __future__ import annotations

import pytest

from swift_ext.errors import ConfigError
from swift_ext.launch.gpus import GpuSplit, detect_gpus, parse_devices, plan_split


@pytest.mark.parametrize("spec, expected", [
    ("0-3", (0, 1, 2, 3)),
    ("0,2,4-5", (0, 2, 4, 5)),
    ("3", (0, 1, 2)),          # a bare integer is a count
    ("3,", (3,)),              # a single device id
    (" 6 , 7 ", (6, 7)),
    (2, (0, 1)),
])
def test_parse_devices(spec, expected):
    assert parse_devices(spec) == expected


def test_counts_take_from_the_available_devices():
    assert parse_devices("2", available=(4, 5, 6)) == (4, 5)
    with pytest.raises(ConfigError, match="asked for 4 GPUs but only 3 are available"):
        parse_devices("4", available=(4, 5, 6))


@pytest.mark.parametrize("spec, message", [("a,b", "bad GPU list"), ("0", "at least 1"), (",", "no device ids"),
                                           ("1,1", "listed twice"), ("5-2", "backwards")])
def test_bad_device_lists(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_devices(spec)


def test_detect_gpus_provider_chain_without_nvidia_smi(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi on this machine anyway
    assert detect_gpus({"SWIFT_EXT_GPUS": "0-3", "CUDA_VISIBLE_DEVICES": "5"}) == (0, 1, 2, 3)
    assert detect_gpus({"CUDA_VISIBLE_DEVICES": "5"}) == (5,)  # one visible device id, not a count
    assert detect_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == (2, 3)
    assert detect_gpus({"CUDA_VISIBLE_DEVICES": ""}) is None
    warnings = []
    assert detect_gpus({"CUDA_VISIBLE_DEVICES": "GPU-8a1b"}, warn=warnings.append) is None
    assert warnings and "ignoring CUDA_VISIBLE_DEVICES='GPU-8a1b'" in warnings[0]


def test_split_env_and_description():
    split = plan_split((0, 1, 2, 3), "1", mode="server")
    assert split == GpuSplit(train=(0, 1, 2), rollout=(3,), nproc=3, rollout_tp=1, rollout_dp=1)
    assert split.train_env() == {"CUDA_VISIBLE_DEVICES": "0,1,2", "NPROC_PER_NODE": "3"}
    assert split.rollout_env() == {"CUDA_VISIBLE_DEVICES": "3"}
    assert split.describe() == "trainer: 3 process(es) on GPUs 0,1,2; rollout: GPUs 3 (TP 1 x DP 1)"
    with pytest.raises(ConfigError, match="unknown rollout mode"):
        plan_split((0, 1), mode="remote")
