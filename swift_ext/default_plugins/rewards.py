"""The built-in rewards."""

from ..hookspecs import hookimpl


@hookimpl
def register_rewards(register):
    from ..rewards.accuracy import ExactMatch, MathAccuracy
    from ..rewards.debug import RandomReward
    from ..rewards.format import ThinkFormat

    for cls in (ThinkFormat, ExactMatch, MathAccuracy, RandomReward):
        register(cls.name, cls)
