"""The built-in rewards."""

from ..hookspecs import hookimpl


@hookimpl
def register_rewards(register):
    from ..rewards.accuracy import ExactMatch, MathAccuracy
    from ..rewards.answers import Counting, MultipleChoice, Numeric, SetAccuracy, YesNo
    from ..rewards.code import CodeTests
    from ..rewards.combine import CosineScaled, Gated
    from ..rewards.debug import RandomReward
    from ..rewards.detection import AP50, MeanAP
    from ..rewards.documents import ANLS, CER, WER, RelaxedAccuracy
    from ..rewards.distill import TeacherSimilarity
    from ..rewards.format import ThinkFormat
    from ..rewards.grounding import BoxF1, GIoU, IoU, IoUThreshold, PointInBox
    from ..rewards.ifeval import IFEval
    from ..rewards.judge import Judge
    from ..rewards.shaping import LanguageConsistency, LengthBudget, NgramRepetition, ReasoningSteps, TagCount
    from ..rewards.structured import JsonSchema, JsonValid
    from ..rewards.tool_call import ToolCallReward
    from ..rewards.trajectory import FinalAnswer, ToolSuccess, TurnBudget

    for cls in (ThinkFormat, ExactMatch, MathAccuracy, RandomReward,
                Numeric, MultipleChoice, YesNo, Counting, SetAccuracy,
                IoU, GIoU, IoUThreshold, BoxF1, PointInBox, MeanAP, AP50,
                ANLS, CER, WER, RelaxedAccuracy,
                JsonValid, JsonSchema, ToolCallReward, IFEval,
                NgramRepetition, LengthBudget, ReasoningSteps, LanguageConsistency, TagCount,
                TeacherSimilarity, Judge, Gated, CosineScaled, CodeTests,
                FinalAnswer, ToolSuccess, TurnBudget):
        register(cls)
