"""The bridge's CHORD section: argument checks at plugin-import time and the real mu lever inside ms-swift.

ms-swift's arguments object is stood in for by a namespace with the same attribute names (building a
real RLHFArguments loads a model); the real object is exercised by the e2e test in test_chord_e2e.py.
"""

import json
import types

import pytest

from swift_ext import cpu_compat
from swift_ext.chord import plan as chord
from swift_ext.bridge.callbacks import install_callbacks
from swift_ext.bridge.chord import RUNTIME, install_chord
from swift_ext.bridge.context import RunContext
from swift_ext.errors import ConfigError

cpu_compat.apply()


def _args(tmp_path, **over):
    sft = tmp_path / "sft.jsonl"
    sft.write_text(json.dumps({"messages": [{"role": "user", "content": "q"},
                                            {"role": "assistant", "content": "a"}]}) + "\n")
    base = dict(chord_sft_dataset=[str(sft)], chord_sft_per_device_train_batch_size=1, chord_mu_warmup_steps=0,
                chord_mu_decay_steps=3, chord_mu_peak=0.5, chord_mu_valley=0.5, dataset=[])
    base.update(over)
    return RunContext.from_args(types.SimpleNamespace(**base))


@pytest.fixture
def no_spec(monkeypatch):
    monkeypatch.delenv(chord.SCHEDULE_ENV, raising=False)
    yield
    RUNTIME.spec = None


def test_no_chord_dataset_does_nothing(tmp_path, no_spec, monkeypatch):
    monkeypatch.setenv(chord.SCHEDULE_ENV, "linear_decay")
    assert install_chord(_args(tmp_path, chord_sft_dataset=[])) == []


def test_unset_mu_arguments_refused(tmp_path, no_spec):
    with pytest.raises(ConfigError, match="needs --chord_mu_peak, --chord_mu_valley.*"
                                          "--chord_sft_per_device_train_batch_size.*TypeError"):
        install_chord(_args(tmp_path, chord_mu_peak=None, chord_mu_valley=None,
                                              chord_sft_per_device_train_batch_size=None))


def test_valley_above_peak_refused(tmp_path, no_spec):
    with pytest.raises(ConfigError, match=r"valley \(0.9\) > peak \(0.2\)"):
        install_chord(_args(tmp_path, chord_mu_peak=0.2, chord_mu_valley=0.9))


def test_sft_without_answers_refused(tmp_path, no_spec):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n")
    with pytest.raises(ConfigError, match="no assistant answer.*bad.jsonl:1"):
        install_chord(_args(tmp_path, chord_sft_dataset=[str(bad)]))


def test_custom_shape_replaces_ms_swift_schedule(tmp_path, no_spec, monkeypatch):
    pytest.importorskip("msgspec")
    monkeypatch.setenv(chord.SCHEDULE_ENV, "linear_decay:peak=0.9,valley=0.1,decay_steps=2")
    applied = install_chord(_args(tmp_path))
    assert applied == ["linear_decay:decay_steps=2,peak=0.9,valley=0.1,warmup_steps=0"]
    import swift.rlhf_trainers.grpo_trainer as grpo_mod
    import swift.rlhf_trainers.utils as utils_mod

    # compute_chord_loss looks the function up in this module at call time
    fn = utils_mod.mu_schedule_function
    assert fn == RUNTIME.mu and grpo_mod.compute_chord_loss.__wrapped__ is not None
    # ms-swift passes its own arguments (peak = valley = 0.5); the spec wins: 0.9, 0.5, 0.1
    assert [fn(s, 0, 3, 0.5, 0.5) for s in range(3)] == pytest.approx([0.9, 0.5, 0.1])
    assert RUNTIME.trace[1] == pytest.approx(0.5)
    # without a spec the lever is transparent: ms-swift's cosine, (0.9-0.1)*0.5*(1+cos(pi/2)) + 0.1 = 0.5
    RUNTIME.spec = None
    assert fn(1, 0, 2, 0.9, 0.1) == pytest.approx(0.5)


def test_parametrised_callbacks_registered():
    from swift.callbacks import callbacks_map

    install_callbacks()  # every built-in under its plain name
    ctx = RunContext.from_argv(["--callbacks", "reward_eval:threshold=0.5", "sample_logger"])
    added = install_callbacks(ctx.callbacks)
    assert "reward_eval:threshold=0.5" in added and "sample_logger" not in added
    cb = callbacks_map["reward_eval:threshold=0.5"](types.SimpleNamespace(output_dir="."), None)
    assert cb.threshold == 0.5
