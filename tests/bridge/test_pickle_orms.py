"""The class ms-swift receives for a parametrised reward (``bridge.rewards.swift_reward_class``, what
``install_rewards`` puts in ``orms``) pickles and deep-copies, for every registered reward with parameters, and
unpickles in a fresh process. The shape of TRL's own test (tests/test_rewards.py::TestRepetitionPenaltyReward::
test_reward_is_picklable in huggingface/trl): pickle the reward, unpickle it, call it, check its name."""

import copy
import pickle
import subprocess
import sys

import pytest

from swift_ext import plugins
from swift_ext.bridge.rewards import get_orms, install_rewards, swift_reward_class
from swift_ext.rewards import reward_names

swift_rewards = pytest.importorskip("swift.rewards")


def _specs():
    """One parametrised spec per registered reward with parameters: its first declared example's parameters,
    else ``timeout`` (every reward declares it)."""
    plugins.reset()
    out = []
    for name in reward_names():
        cls = plugins.registry("reward").get(name)
        params = next((e.params for e in cls.examples if e.params), "") or "timeout=7"
        out.append(f"{name}:{params}")
    return out


SPECS = _specs()


@pytest.mark.parametrize("spec", SPECS)
def test_class_ms_swift_receives_pickles_and_deep_copies(spec):
    install_rewards([spec])
    cls = get_orms()[spec]
    assert cls is swift_reward_class(spec)                         # one class per spec, made once
    base = swift_rewards.AsyncORM if spec.startswith("judge") else swift_rewards.ORM
    assert issubclass(cls, base) and cls.__name__ == spec
    assert pickle.loads(pickle.dumps(cls)) is cls
    assert copy.deepcopy(cls) is cls
    inst = cls()
    back = pickle.loads(pickle.dumps(inst))
    assert type(back) is cls and back.config == inst.config
    assert type(copy.deepcopy(inst)) is cls


def test_unpickles_in_a_fresh_process():
    blobs = []
    for spec in SPECS:
        install_rewards([spec])
        cls = get_orms()[spec]
        blobs.append(pickle.dumps((cls, cls())))
    # cpu_compat.apply(): this machine's CPU torch with a CUDA torchvision wheel (as swift_ext's plugin path does)
    code = ("import pickle, sys\nfrom swift_ext import cpu_compat\ncpu_compat.apply()\n"
            "for blob in pickle.load(sys.stdin.buffer):\n"
            "    cls, inst = pickle.loads(blob)\n"
            "    assert type(inst) is cls, (cls, type(inst))\n"
            "    print(cls.__name__, [b.__name__ for b in cls.__mro__ if b.__name__ in ('ORM', 'AsyncORM')])\n")
    proc = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(blobs), capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    lines = proc.stdout.decode().splitlines()
    assert [ln.split(" [")[0] for ln in lines] == SPECS
    assert all("ORM" in ln for ln in lines)


def test_trl_picklability_case():
    """TRL: get_repetition_penalty_reward(ngram_size=2, max_penalty=-1.0) survives pickle, scores
    [[5, 5, 5, 5, 5]] as -0.75 and keeps its name. Ours: ngram_repetition on token ids, same n-gram rule."""
    spec = "ngram_repetition:n=2,max_penalty=-1.0,unit=token"
    install_rewards([spec])
    reward_fn = get_orms()[spec]()
    unpickled = pickle.loads(pickle.dumps(reward_fn))
    completion_ids = [[5, 5, 5, 5, 5]]
    assert unpickled(["5 5 5 5 5"], response_token_ids=completion_ids) == [pytest.approx(-0.75)]
    assert type(unpickled).__name__ == spec
