"""Debug rewards."""

from __future__ import annotations

import random as _random
from typing import Any, Dict, List, Sequence

from ..params import Param
from .contract import Example
from .base import Reward, Score


class RandomReward(Reward):
    """A uniform random score in [low, high): the seed recipe's ``RandomReward``, for checking a pipeline.

    With ``seed`` set, the sequence of scores is reproducible run to run.

    On the command line: ``--reward_funcs random:seed=7`` (``swift-ext demo`` uses it so that a random
    tiny model still gives GRPO some reward variance).

    Example:
        >>> RandomReward(seed=0)(["a", "b"]) == RandomReward(seed=0)(["a", "b"])
        True
    """

    name = "random"
    examples = (
        Example("full", "anything", 1.0, params="seed=0,low=1.0,high=1.0"),
        Example("zero", "anything", 0.0, params="seed=0,low=0.0,high=0.0"),
        Example("malformed", None, 0.0, params="seed=0,low=0.0,high=0.0"),
    )
    columns = ()
    params = {
        "seed": Param(None, "seed for reproducible scores (unset: random)", type=int),
        "low": Param(0.0, "lowest score"),
        "high": Param(1.0, "highest score"),
    }

    def setup(self) -> None:
        from ..errors import ParamError

        if self.high < self.low:
            raise ParamError(f"reward random: high={self.high} is below low={self.low}")
        self._rng = _random.Random(self.seed)

    def score_batch(self, completions: Sequence[str], rows: List[Dict[str, Any]]) -> List[Score]:
        return [self.low + (self.high - self.low) * self._rng.random() for _ in completions]

    def score(self, completion: str, **row: Any) -> Score:
        return self.score_batch([completion], [row])[0]
