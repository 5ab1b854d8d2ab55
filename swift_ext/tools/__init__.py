"""Tool calls: the one parser (:mod:`.parse`) and the one comparison (:mod:`.match`) of function calls.

Rewards (``tool_call``), converters and the agent scheduler read tool calls through these modules only.
"""

from .match import calls_equal, match_exact, values_equal
from .parse import ToolCall, parse_calls, parse_gold, parse_messages, parse_text, parse_tools

__all__ = ["ToolCall", "parse_text", "parse_messages", "parse_calls", "parse_gold", "parse_tools",
           "values_equal", "calls_equal", "match_exact"]
