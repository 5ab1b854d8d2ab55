"""An example swift-ext plugin package.

Install it (``pip install plugins/swift-ext-example``) and its reward appears in
``swift-ext rewards list`` and can be used in a GRPO run:

    swift rlhf --rlhf_type grpo --external_plugins "$(swift-ext plugin-path)" \
        --reward_funcs 'keyword_hit:keywords=cat|dog' ...
"""

from typing import Any

import swift_ext
from swift_ext.params import Param
from swift_ext.rewards import Reward


class KeywordHit(Reward):
    """The fraction of ``keywords`` that appear in the completion (case-insensitive).

    Example:
        >>> KeywordHit(keywords="cat|dog")(["A cat.", "A cat and a DOG", "nothing"])
        [0.5, 1.0, 0.0]
    """

    name = "keyword_hit"
    params = {"keywords": Param(["yes"], "words to look for, separated by |", type=list)}

    def score(self, completion: str, **row: Any) -> float:
        text = completion.lower()
        words = [w.lower() for w in self.keywords]
        return sum(w in text for w in words) / len(words) if words else 0.0


@swift_ext.hookimpl
def register_rewards(register):
    register(KeywordHit)
