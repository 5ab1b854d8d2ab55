"""What a conversion is asked to do: one frozen value, built once (by the CLI or the caller) and passed down.

>>> opts = ConvertOptions(to="grpo", extract="last_number")
>>> opts.replace(seed=3).seed, opts.seed
(3, 0)
>>> ConvertOptions(to="grpo", extract="last_word")
Traceback (most recent call last):
...
swift_ext.errors.ConfigError: --extract 'last_word': choose one of auto, answer_tag, boxed, ...
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from ..errors import ConfigError
from ..extract import MODES
from .negatives import CompletionPicker, Corruptor
from .targets import Options

#: targets whose rows may carry a ``tools`` column (``--tools``)
TOOL_TARGETS = ("grpo", "sft")


@dataclass(frozen=True)
class ConvertOptions:
    """Every setting of ``swift-ext convert`` (the CLI flag is named after the field)."""

    to: str                                  # target name (sft, grpo, dpo, kto, trl, mcq, judge, or a plugin's)
    src: Optional[str] = None                # input format (--from); None: detected
    extract: Optional[str] = None            # reference answer extraction mode (grpo/mcq/judge)
    negatives: Optional[str] = None          # rule-based DPO/KTO negatives: "auto" or a comma list
    completions: Optional[str] = None        # JSONL of sampled completions (with ``reward``)
    reward: Optional[str] = None             # reward spec ranking the completions
    seed: int = 0                            # seed of negatives and rewrites
    require_solution: bool = True            # grpo: reject rows without a reference answer
    n_choices: int = 4                       # mcq: options per question
    media_dir: Optional[str] = None          # write bytes/base64 media here as files
    check_media: bool = True                 # reject rows whose media paths do not exist
    root: Optional[str] = None               # base of relative media paths; media must stay inside it
    allow_outside_root: bool = False         # root only as the base: media paths may leave it
    media_paths: str = "keep"                # media paths written: keep, absolute, relative (to the output)
    split: Optional[str] = None              # split of a saved DatasetDict
    num_proc: Optional[int] = None           # convert in N processes
    strict: bool = False                     # stop at the first bad row
    reject_path: Optional[str] = None        # reject file (default: OUTPUT.rejected.jsonl)
    tools: Optional[str] = None              # grpo/sft: write the 'tools' column for these agent tools

    def __post_init__(self):
        if self.extract is not None and self.extract not in MODES:
            raise ConfigError(f"--extract {self.extract!r}: choose one of {', '.join(MODES)}")
        if (self.completions or self.reward) and not (self.completions and self.reward):
            raise ConfigError("--completions and --reward go together (sampled completions ranked by a reward)")
        if self.n_choices < 2 or self.n_choices > 10:
            raise ConfigError("--choices must be between 2 and 10")
        if self.tools is not None and self.to not in TOOL_TARGETS:
            raise ConfigError(f"--tools writes the 'tools' column of {' and '.join(TOOL_TARGETS)} rows, not of "
                              f"--to {self.to}")
        if self.media_paths not in ("keep", "absolute", "relative"):
            raise ConfigError(f"--media-paths {self.media_paths!r}: choose one of keep, absolute, relative")

    def replace(self, **changes) -> "ConvertOptions":
        return dataclasses.replace(self, **changes)

    def tool_schemas(self) -> Optional[list]:
        """The OpenAI function schemas of ``--tools`` (``python,calculator,zoom``, ``+`` works too; a spec's
        parameters after ``:`` may hold commas: ``zoom:frame=qwen2_vl,min_size=8,python``), built by the agent
        scheduler's tool set (:func:`swift_ext.tools.base.tool_schemas`); None without ``--tools``."""
        if self.tools is None:
            return None
        from ..agents.scheduler import split_tools
        from ..errors import SwiftExtError
        from ..tools.base import tool_schemas

        specs: list = []
        for piece in self.tools.split(","):
            piece = piece.strip()
            if not piece:
                continue
            if specs and "=" in piece and ":" not in piece.split("=", 1)[0]:
                specs[-1] += "," + piece  # a parameter of the spec before it
            else:
                specs.append(piece)
        names = split_tools(specs)
        if not names:
            raise ConfigError("--tools names no tool (e.g. --tools python,calculator,zoom)")
        try:
            schemas = tool_schemas(names)
        except SwiftExtError as exc:
            raise ConfigError(f"--tools {self.tools!r}: {exc}") from None
        seen = [s["function"]["name"] for s in schemas]
        if len(set(seen)) != len(seen):
            raise ConfigError(f"--tools {self.tools!r}: a tool is named twice")
        return schemas

    def target_context(self) -> Options:
        """The per-conversion state the targets get (negatives sources built here, the answer pool later)."""
        ctx = Options(extract=self.extract, require_solution=self.require_solution, seed=self.seed,
                      n_choices=self.n_choices)
        if self.negatives:
            ctx.corruptor = Corruptor(self.negatives, seed=self.seed)
        if self.completions:
            ctx.picker = CompletionPicker(self.completions, self.reward)
        return ctx
