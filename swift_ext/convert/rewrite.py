"""``sft -> mcq`` and ``sft -> judge`` rewrites with distractors drawn deterministically from other rows.

The engine makes a first pass over the input to collect the distinct reference answers
(:class:`AnswerPool`; memory grows with the number of *distinct answers*, not rows), then each row
draws its distractors with ``random.Random(f"{seed}:{row_index}")``: the same seed gives the same file.

>>> pool = AnswerPool(["Paris", "Rome", "Oslo", "Bern", "Paris"])
>>> len(pool)
4
>>> sorted(pool.distractors("Paris", 3, __import__("random").Random(0)))
['Bern', 'Oslo', 'Rome']
"""

from __future__ import annotations

import random
from typing import Any, Dict, Iterable, List

from ..extract import normalize
from .rows import RowError, gold_answer, pass_through, prompt_part, with_media

LETTERS = "ABCDEFGHIJ"


class AnswerPool:
    """Distinct answers (by normalised text), in first-seen order."""

    def __init__(self, answers: Iterable[str] = ()):
        self.answers: List[str] = []
        self._seen = set()
        for a in answers:
            self.add(a)

    def add(self, answer: str) -> None:
        key = normalize(answer)
        if key and key not in self._seen:
            self._seen.add(key)
            self.answers.append(answer)

    def __len__(self) -> int:
        return len(self.answers)

    def distractors(self, gold: str, k: int, rng: random.Random) -> List[str]:
        gold_key = normalize(gold)
        picked, keys = [], {gold_key}
        n = len(self.answers)
        for i in (rng.sample(range(n), n) if n <= 64 else (rng.randrange(n) for _ in range(8 * k + 64))):
            cand = self.answers[i]
            key = normalize(cand)
            if key not in keys:
                keys.add(key)
                picked.append(cand)
                if len(picked) == k:
                    return picked
        raise RowError(f"not enough distinct answers in the input for {k} distractors "
                       f"(the file has {n} distinct answers)")


def _question(c: Dict[str, Any]) -> List[Dict[str, Any]]:
    prompt = prompt_part(c["messages"])
    if not prompt or prompt[-1]["role"] != "user":
        raise RowError("no user question to rewrite")
    return [dict(m) for m in prompt]


def rewrite_row(kind: str, c: Dict[str, Any], index: int, opts) -> List[Dict[str, Any]]:
    gold = gold_answer(c, opts)
    rng = random.Random(f"{opts.seed}:{index}")
    prompt = _question(c)
    question = prompt[-1]["content"]
    if kind == "mcq":
        k = opts.n_choices - 1
        options = opts.pool.distractors(gold, k, rng) + [gold]
        rng.shuffle(options)
        letter = LETTERS[options.index(gold)]
        listing = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))
        prompt[-1]["content"] = f"{question}\n\nOptions:\n{listing}\nAnswer with the option letter."
        answer, extra = letter, {"mcq_choices": options}
    else:
        correct = rng.random() < 0.5
        proposed = gold if correct else opts.pool.distractors(gold, 1, rng)[0]
        prompt[-1]["content"] = (f"{question}\n\nProposed answer: {proposed}\n"
                                 f"Is the proposed answer correct? Answer yes or no.")
        answer, extra = ("yes" if correct else "no"), {"judge_proposed": proposed}
    out = with_media({"messages": prompt + [{"role": "assistant", "content": answer}]}, c)
    out["solution"] = answer
    out["orig_answer"] = gold
    out.update(extra)
    out.update(pass_through(c, opts))
    return [out]
