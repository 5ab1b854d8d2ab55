"""Where DPO/KTO negatives come from when the input has none.

(a) Rule-based corruption of the chosen answer, deterministic under a seed: every corruption is
``fn(text, rng) -> str | None`` (None: does not apply to this text), registered as a ``negative``.

>>> import random
>>> number("so the total is 12 apples", random.Random(0)) != "so the total is 12 apples"
True
>>> option_letter("The answer is (B).", random.Random(0))[-3]  # one of A, C, D
'C'
>>> truncate("ab", random.Random(0)) is None
True

(b) Sampled completions ranked by a swift-ext reward (:class:`CompletionPicker`): best becomes
chosen, worst rejected, ties are skipped (the row goes to the reject file with the scores).
"""

from __future__ import annotations

import json
import random
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..scoring import results
from ..errors import ConfigError
from .formats import trl_part
from .registry import negatives as _negatives
from .rows import RowError, prompt_part

_NUM_RE = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")
_LETTER_RE = re.compile(r"\(([A-H])\)|\b([A-H])\b(?=[\s.,:;)\]]|$)")
_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
_BOX_RE = re.compile(r"\[" + ",".join([_NUM] * 4) + r"\]")
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.S)


def _answer_span(text: str) -> Tuple[int, int]:
    """The span to corrupt: inside the last ``<answer>`` tag when there is one, else the whole text."""
    found = list(_ANSWER_RE.finditer(text))
    return (found[-1].start(1), found[-1].end(1)) if found else (0, len(text))


def _fmt_like(old: str, value: float) -> str:
    if "." in old:
        return f"{value:.{len(old.split('.')[1])}f}"
    return str(int(value))


def number(text: str, rng: random.Random) -> Optional[str]:
    """Change the last number (a count, a result) by a non-zero amount; keeps sign and decimals."""
    a, b = _answer_span(text)
    found = list(_NUM_RE.finditer(text, a, b))
    if not found:
        return None
    m = found[-1]
    old = m.group(0)
    value = float(old)
    step = max(1, int(abs(value) * rng.uniform(0.1, 0.5)))
    new_value = value + step * (1 if value <= 0 or rng.random() < 0.5 else -1)
    new = _fmt_like(old, new_value)
    if new == old:
        new = _fmt_like(old, value + 1)
    return text[:m.start()] + new + text[m.end():]


def option_letter(text: str, rng: random.Random) -> Optional[str]:
    """Swap the last option letter (``(B)``, ``B.``) for another one in A..D (or up to the letter used)."""
    a, b = _answer_span(text)
    found = list(_LETTER_RE.finditer(text, a, b))
    if not found:
        return None
    m = found[-1]
    group = 1 if m.group(1) else 2
    old = m.group(group)
    pool = [chr(c) for c in range(ord("A"), max(ord("D"), ord(old)) + 1) if chr(c) != old]
    return text[:m.start(group)] + rng.choice(pool) + text[m.end(group):]


def bbox(text: str, rng: random.Random) -> Optional[str]:
    """Jitter the last ``[x1, y1, x2, y2]`` box by 30-80 % of its size, or drop it when there are several."""
    found = list(_BOX_RE.finditer(text))
    if not found:
        return None
    m = found[-1]
    if len(found) > 1 and rng.random() < 0.3:  # drop one box (remove the list item and a neighbouring comma)
        start, end = m.start(), m.end()
        before = text[:start].rstrip()
        if before.endswith(","):
            before = before[:-1]
        return before + text[end:]
    x1, y1, x2, y2 = (float(m.group(i)) for i in range(1, 5))
    w, h = max(abs(x2 - x1), 1.0), max(abs(y2 - y1), 1.0)
    dx = w * rng.uniform(0.3, 0.8) * rng.choice((-1, 1))
    dy = h * rng.uniform(0.3, 0.8) * rng.choice((-1, 1))
    vals = [x1 + dx, y1 + dy, x2 + dx, y2 + dy]
    olds = [m.group(i) for i in range(1, 5)]
    new = "[" + ", ".join(_fmt_like(o, max(v, 0.0)) for o, v in zip(olds, vals)) + "]"
    if new.replace(" ", "") == m.group(0).replace(" ", ""):
        return None
    return text[:m.start()] + new + text[m.end():]


def broken_json(text: str, rng: random.Random) -> Optional[str]:
    """Break a JSON answer (the whole text or the ``<answer>`` content): drop a closing bracket or a quote."""
    a, b = _answer_span(text)
    body = text[a:b].strip()
    if not body or body[0] not in "[{":
        return None
    try:
        json.loads(body)
    except ValueError:
        return None
    start = text.index(body, a)
    if rng.random() < 0.5 and '"' in body:
        quotes = [i for i, ch in enumerate(body) if ch == '"']
        i = rng.choice(quotes)
        broken = body[:i] + body[i + 1:]
    else:
        broken = body[:-1]
    return text[:start] + broken + text[start + len(body):]


def truncate(text: str, rng: random.Random) -> Optional[str]:
    """Cut the answer to 30-70 % of its length (texts under 8 characters are left alone)."""
    if len(text) < 8:
        return None
    cut = max(1, int(len(text) * rng.uniform(0.3, 0.7)))
    return text[:cut]


BUILTIN_NEGATIVES: Dict[str, Callable[[str, random.Random], Optional[str]]] = {
    "bbox": bbox, "json": broken_json, "option_letter": option_letter, "number": number, "truncate": truncate,
}
AUTO_ORDER = ("bbox", "json", "option_letter", "number", "truncate")


class Corruptor:
    """Apply the first applicable corruption of ``names`` (``"auto"``: the task-specific ones first).

    >>> Corruptor("number", seed=1)("x = 3", 0) == Corruptor("number", seed=1)("x = 3", 0)
    True
    """

    def __init__(self, names: str = "auto", seed: int = 0):
        reg = _negatives()
        order = []
        for name in [n.strip() for n in names.split(",") if n.strip()]:
            if name == "auto":
                order += [n for n in AUTO_ORDER if n in reg]
            else:
                reg.get(name)  # UnknownNameError lists the known ones
                order.append(name)
        if not order:
            raise ConfigError("--negatives needs at least one corruption name (or 'auto')")
        self.names = order
        self.fns = [(n, reg.get(n)) for n in order]
        self.seed = seed

    def __call__(self, text: str, index: int) -> str:
        rng = random.Random(f"{self.seed}:{index}")  # string seeds are stable across processes
        for name, fn in self.fns:
            try:
                out = fn(text, rng)
            except Exception as exc:  # a plugin corruption must not kill the conversion
                raise RowError(f"negative {name!r} raised {exc!r}") from None
            if isinstance(out, str) and out != text:
                return out
        raise RowError(f"no corruption applies to the chosen answer (tried {', '.join(self.names)})")


# -- sampled completions ranked by a reward ---------------------------------------------------------
def load_completions(path: str) -> Dict[str, List[str]]:
    """Completions per prompt (:func:`swift_ext.scoring.results.messages_key`) from a completion file, read by
    :func:`swift_ext.scoring.results.load`: ``swift infer`` output (``response``), one sampled conversation per row
    (``messages`` ending with the completion), or grouped rows (``completions``); the prompt is ``messages``
    or a TRL ``prompt``. Any row it cannot use is an error with its line."""
    res = results.load(path)
    if res.rejected:
        line, why = res.rejected[0]
        raise ConfigError(f"{path}:{line}: {why}")
    out: Dict[str, List[str]] = {}
    for line, completion, row in zip(res.lines, res.completions, res.rows):
        msgs = row.get("messages")
        if msgs is None and row.get("prompt") is not None:
            try:
                msgs = trl_part(row["prompt"], "prompt", "user")
            except RowError as exc:
                raise ConfigError(f"{path}:{line}: {exc.reason}") from None
        if not isinstance(msgs, list) or not results.prompt_turns(msgs):
            raise ConfigError(f"{path}:{line}: needs 'messages' (or 'prompt') with the prompt turns")
        out.setdefault(results.messages_key(msgs, row.get("images")), []).append(completion)
    return out


class CompletionPicker:
    """Choose chosen/rejected among sampled completions with a reward spec (``exact_match:extract=last_number``)."""

    def __init__(self, completions_path: str, reward: str):
        from .. import rewards  # the only import of the rewards package under convert/: only for --reward

        self.completions = load_completions(completions_path)
        self.reward_spec = reward
        self.reward = rewards.build(reward)

    def pick(self, c: Dict[str, Any]) -> Tuple[str, str]:
        key = results.messages_key(c["messages"], c["images"])
        comps = self.completions.get(key)
        if not comps:
            raise RowError("no sampled completions for this prompt in the completions file")
        if len(comps) < 2:
            raise RowError("only one sampled completion for this prompt (need 2 to compare)")
        prompt = prompt_part(c["messages"])
        n = len(comps)
        kwargs = {"messages": [prompt] * n, "solution": [c["solution"]] * n}
        if c["images"]:
            kwargs["images"] = [c["images"]] * n
        for k, v in c["extra"].items():
            kwargs.setdefault(k, [v] * n)
        scores = self.reward(comps, **kwargs)
        scored = [(s, i) for i, s in enumerate(scores) if s is not None]
        if len(scored) < 2:
            raise RowError(f"reward {self.reward_spec} abstained on {n - len(scored)} of {n} completions")
        best = max(scored, key=lambda t: (t[0], -t[1]))
        worst = min(scored, key=lambda t: (t[0], t[1]))
        if best[0] == worst[0]:
            raise RowError(f"tie: all {len(scored)} completions scored {best[0]:g} with {self.reward_spec}")
        return comps[best[1]], comps[worst[1]]
