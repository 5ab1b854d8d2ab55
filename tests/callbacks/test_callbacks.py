"""Callback logic that runs without a training process (the e2e tests run them inside swift sft / rlhf)."""

import pytest

from swift_ext import cpu_compat

cpu_compat.apply()

from transformers import TrainerControl, TrainerState  # noqa: E402

from swift_ext import plugins  # noqa: E402
from swift_ext.trainer import callbacks
from swift_ext.errors import ParamError  # noqa: E402


def rec(group, **scores):
    return {"group": group, "rewards": scores}


def test_reward_metrics_by_hand():
    records = [rec("p1", acc=1.0, fmt=0.0), rec("p1", acc=0.0, fmt=1.0),
               rec("p2", acc=0.0, fmt=None), rec("p2", acc=0.0, fmt=1.0)]
    m = callbacks.reward_metrics(records, ["acc", "fmt"], threshold=1.0, ks=[1, 2], prefix="eval_ext")
    # acc: 1 of 4 correct -> accuracy 0.25; pass@2: p1 has a hit (1), p2 none (0) -> 0.5
    assert m["eval_ext/acc/accuracy"] == 0.25 and m["eval_ext/acc/pass@2"] == 0.5
    assert m["eval_ext/acc/pass@1"] == 0.25 and m["eval_ext/acc/mean@2"] == 0.25
    # fmt: one abstention; scored 0, 1, 1 -> mean 2/3; pass@2 only over groups with 2 scored samples (p1) -> 1.0
    assert m["eval_ext/fmt/mean"] == pytest.approx(2 / 3) and m["eval_ext/fmt/abstained"] == 1
    assert m["eval_ext/fmt/pass@2"] == 1.0
    assert m["eval_ext/prompts"] == 2


def test_reward_metrics_threshold():
    records = [rec("a", r=0.4), rec("a", r=0.6), rec("b", r=0.5), rec("b", r=0.1)]
    m = callbacks.reward_metrics(records, ["r"], threshold=0.5, ks=None, prefix="x")
    # >= 0.5: 0.6 and 0.5 -> 2/4; every group has one hit -> pass@2 = 1; pass@1 = mean over groups of 1/2
    assert (m["x/r/accuracy"], m["x/r/pass@1"], m["x/r/pass@2"]) == (0.5, 0.5, 1.0)


def test_configure_callback():
    cls = callbacks.configure_callback("plateau_stop:metric=eval_loss,mode=min,patience=2")
    cb = cls(None, None)
    assert (cb.metric, cb.mode, cb.patience) == ("eval_loss", "min", 2)
    with pytest.raises(ParamError, match="unknown parameter"):
        callbacks.configure_callback("plateau_stop:speed=2")
    with pytest.raises(ParamError, match="choose one of"):
        callbacks.configure_callback("plateau_stop:mode=sideways")
    with pytest.raises(Exception, match="unknown callback 'nope'"):
        callbacks.configure_callback("nope:x=1")


def test_registered_names():
    assert set(plugins.registry("callback")) >= {"reward_eval", "train_sanity", "sample_logger", "chord_mu",
                                                 "plateau_stop"}


def _log(cb, state, control, step, **logs):
    state.global_step = step
    cb.on_log(None, state, control, logs=dict(logs))


def test_plateau_stop_max():
    cb = callbacks.configure_callback("plateau_stop:metric=eval_reward,patience=2,min_delta=0.01")(None, None)
    state, control = TrainerState(), TrainerControl()
    _log(cb, state, control, 1, eval_reward=0.10)
    _log(cb, state, control, 2, eval_reward=0.20)    # improved
    _log(cb, state, control, 3, loss=1.0)             # other keys are ignored
    _log(cb, state, control, 4, eval_reward=0.205)   # +0.005 < min_delta: 1st bad
    assert not control.should_training_stop
    _log(cb, state, control, 5, eval_reward=0.19)    # 2nd bad -> stop
    assert control.should_training_stop and cb.stopped_at == 5 and cb.best == 0.20


def test_plateau_stop_min():
    cb = callbacks.configure_callback("plateau_stop:metric=eval_loss,mode=min,patience=1")(None, None)
    state, control = TrainerState(), TrainerControl()
    _log(cb, state, control, 1, eval_loss=2.0)
    _log(cb, state, control, 2, eval_loss=1.5)
    assert not control.should_training_stop
    _log(cb, state, control, 3, eval_loss=1.6)
    assert control.should_training_stop


def test_emit_without_swift_trainer_goes_to_next_log():
    # a plain object with no ms-swift logging hooks: metrics wait for the next on_log
    class Plain:
        model = None

    cb = callbacks.ChordMu(None, Plain())
    cb.emit({"chord/mu": 0.25, "bad": float("nan")})
    logs = {"loss": 1.0}
    cb.on_log(None, TrainerState(), TrainerControl(), logs=logs)
    assert logs == {"loss": 1.0, "chord/mu": 0.25}


def test_bad_ks():
    """ks is a Param like every other parameter: a bad value is a ParamError at configure time, naming it."""
    with pytest.raises(ParamError, match="ks=0: must be >= 1"):
        callbacks.configure_callback("reward_eval:ks=0|2")
    with pytest.raises(ParamError, match="expected int"):
        callbacks.configure_callback("reward_eval:ks=1|x")
    assert callbacks.configure_callback("reward_eval:ks=4|1|4")(None, None)._ks == [1, 4]


def test_sample_log_appends_whole_lines_after_a_run_killed_mid_line(tmp_path):
    """The sample log goes through the one append-mode writer: a line torn by a killed run is cut off, not glued
    to the next row, and every row written reads back."""
    from types import SimpleNamespace

    from swift_ext.io import iter_jsonl

    log = tmp_path / "swift_ext_samples.jsonl"
    log.write_bytes(b'{"step": 1, "split": "eval", "completion": "ok"}\n{"step": 2, "split": "ev')
    cb = callbacks.SampleLogger(SimpleNamespace(output_dir=str(tmp_path)), SimpleNamespace(), show=0)
    cb.write("eval", 3, [{"prompt_id": 0, "prompt": "2+2?", "completion": "4", "rewards": {"acc": 1.0},
                          "solution": "4", "images": [{"path": "/a.png", "bytes": b"\x89PNG"}]},
                         {"prompt_id": 0, "prompt": "2+2?", "completion": "5", "rewards": {"acc": 0.0}}])
    rows = [obj for _, obj in iter_jsonl(str(log))]
    assert [(r["step"], r.get("completion")) for r in rows] == [(1, "ok"), (3, "4"), (3, "5")]
    assert rows[1]["images"] == ["/a.png"] and rows[1]["rewards"] == {"acc": 1.0} and cb.rows_written == 2


def test_install_builds_each_spec_once_through_configure():
    """ms-swift's callbacks_map gets the one configured class per spec (the class `configure` returns, parsed and
    checked once); a bad parameter is a ParamError at install; a name swift-ext does not know is left to ms-swift."""
    from swift.callbacks import callbacks_map

    from swift_ext.bridge.callbacks import install_callbacks
    from swift_ext.components import configure

    added = install_callbacks(["reward_eval:ks=1|4", "reward_eval:ks=1|4", "not_ours:x=1", "sample_logger"])
    assert added.count("reward_eval:ks=1|4") <= 1 and "not_ours:x=1" not in callbacks_map
    assert callbacks_map["reward_eval:ks=1|4"] is configure("callback", "reward_eval:ks=1|4")
    with pytest.raises(ParamError, match="ks=0: must be >= 1"):
        install_callbacks(["reward_eval:ks=0"])


def test_eval_completions_of_two_ranks_are_gathered_into_one_record(tmp_path):
    """Two real processes joined by torch.distributed (gloo): each rank holds part of the same prompt groups (as
    ms-swift shards the validation set); gather_results gives every rank all completions in rank order, one group
    per key, so the summary counts a prompt split across ranks once."""
    import json
    import os
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import json, os, sys
        import torch.distributed as dist
        from swift_ext.bridge.grpo import gather_results
        from swift_ext.scoring.results import Results
        rank = int(sys.argv[1])
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:" + sys.argv[2], rank=rank, world_size=2)
        res = Results(path="<eval rollouts>")
        for j, key in enumerate(["1:0", "1:1"]):                # both ranks hold one completion of each prompt
            res.add(f"r{rank}p{j}", {"prompt_id": j}, key, scores={"acc": float(rank == j)})
        out = gather_results(res)
        print(json.dumps({"completions": out.completions, "groups": out.groups, "keys": out.group_keys,
                          "acc": out.summaries(["acc"], 1.0, [2])["acc"].metrics([2])}))
        dist.destroy_process_group()
    """)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(r), port], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    got = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert got[0] == got[1]                                         # every rank sees the same record
    assert got[0]["completions"] == ["r0p0", "r0p1", "r1p0", "r1p1"]
    assert got[0]["groups"] == [[0, 2], [1, 3]] and got[0]["keys"] == ["1:0", "1:1"]
    # each prompt has one correct completion of two: pass@2 = 1, accuracy 1/2
    assert got[0]["acc"]["pass@2"] == 1.0 and got[0]["acc"]["accuracy"] == 0.5
