"""GPU list parsing and detection (pure; ``detect_gpus`` is given an explicit environment)."""

from __future__ import annotations

import pytest

from swift_ext.errors import ConfigError
from swift_ext.launch.gpus import GpuSplit, detect_gpus, parse_devices, plan_split


@pytest.mark.parametrize("spec, expected", [
    ("0-3", (0, 1, 2, 3)),
    ("0,2,4-5", (0, 2, 4, 5)),
    (3, (0, 1, 2)),            # an int is a count
    ("3,", (3,)),              # a single device id
    ("0", (0,)),               # the only bare number with one reading (a count of 0 is no GPU at all)
    (" 6 , 7 ", (6, 7)),
    (2, (0, 1)),
])
def test_parse_devices(spec, expected):
    assert parse_devices(spec) == expected


def test_counts_take_from_the_available_devices():
    assert parse_devices(2, available=(4, 5, 6)) == (4, 5)
    with pytest.raises(ConfigError, match="asked for 4 GPUs but only 3 are available"):
        parse_devices(4, available=(4, 5, 6))


@pytest.mark.parametrize("spec, message", [("a,b", "bad GPU list"), (0, "at least 1"), (",", "no device ids"),
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
    split = plan_split((0, 1, 2, 3), 1, mode="server")
    assert split == GpuSplit(train=(0, 1, 2), rollout=(3,), nproc=3, rollout_tp=1, rollout_dp=1)
    assert split.train_env() == {"CUDA_VISIBLE_DEVICES": "0,1,2", "NPROC_PER_NODE": "3"}
    assert split.rollout_env() == {"CUDA_VISIBLE_DEVICES": "3"}
    assert split.describe() == "trainer: 3 process(es) on GPUs 0,1,2; rollout: GPUs 3 (TP 1 x DP 1)"
    with pytest.raises(ConfigError, match="unknown rollout mode"):
        plan_split((0, 1), mode="remote")


# -- issue 10: ids and counts have separate spellings ------------------------------------------------
def test_a_bare_number_is_refused_with_both_readings():
    with pytest.raises(ConfigError) as exc:
        parse_devices("4")
    assert str(exc.value) == "--gpus 4 is ambiguous: write --gpus 4, for the single GPU id 4, or --num-gpus 4 " \
                             "for 4 GPUs (ids 0,1,2,3)"
    with pytest.raises(ConfigError) as exc:
        plan_split(tuple(range(8)), "4", mode="server")
    assert str(exc.value) == "--rollout-gpus 4 is ambiguous: write --rollout-gpus 4, for GPU id 4, or " \
                             "--num-rollout-gpus 4 for the last 4 of --gpus (GPUs 4,5,6,7)"


def test_rollout_gpu_id_and_count_spellings():
    gpus = tuple(range(8))
    by_id = plan_split(gpus, "4,", mode="server")  # the user who means GPU 4 gets GPU 4
    assert by_id.rollout == (4,) and by_id.train == (0, 1, 2, 3, 5, 6, 7)
    by_count = plan_split(gpus, 4, mode="server")
    assert by_count.rollout == (4, 5, 6, 7) and by_count.train == (0, 1, 2, 3)
    assert plan_split(gpus, "6,7", mode="server").rollout == (6, 7)  # unambiguous lists keep working
    assert plan_split(gpus, mode="server").rollout == (6, 7)  # default: the last quarter


def test_cli_spellings(tmp_path):
    import json

    from click.testing import CliRunner

    from swift_ext.cli import cli

    def run(*args):
        return CliRunner().invoke(cli, ["launch", *args, "--json", "--swift", "swift"])

    res = run("rollout", "--gpus", "4")
    assert res.exit_code != 0 and "--gpus 4 is ambiguous" in res.output and "--num-gpus 4" in res.output
    res = run("rollout", "--gpus", "4,")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["steps"][0]["env"]["CUDA_VISIBLE_DEVICES"] == "4"
    res = run("rollout", "--num-gpus", "4")
    assert json.loads(res.stdout)["steps"][0]["env"]["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"
    res = run("grpo", "--set", "dataset=hub/ds", "--gpus", "0-7", "--rollout-gpus", "4")
    assert res.exit_code != 0 and "--rollout-gpus 4 is ambiguous" in res.output
    res = run("grpo", "--set", "dataset=hub/ds", "--gpus", "0-7", "--rollout-gpus", "4,")
    steps = json.loads(res.stdout)["steps"]
    assert [s["env"]["CUDA_VISIBLE_DEVICES"] for s in steps] == ["4", "0,1,2,3,5,6,7"]
    res = run("grpo", "--set", "dataset=hub/ds", "--num-gpus", "8", "--num-rollout-gpus", "2")
    assert [s["env"]["CUDA_VISIBLE_DEVICES"] for s in json.loads(res.stdout)["steps"]] == ["6,7", "0,1,2,3,4,5"]
    res = run("grpo", "--set", "dataset=hub/ds", "--gpus", "0-7", "--num-gpus", "8")
    assert res.exit_code == 2 and "not both" in res.output
