"""Dataset conversion between SFT, GRPO, DPO, KTO and TRL formats, validation and mixing.

>>> from swift_ext.convert import convert_rows
>>> next(convert_rows([{"instruction": "Add", "input": "2+3", "output": "5"}], to="grpo", extract="last_number"))
{'messages': [{'role': 'user', 'content': 'Add\\n2+3'}], 'solution': '5'}

Modules: :mod:`.formats` (readers + detection), :mod:`.targets` (writers), :mod:`.negatives` (DPO
negatives), :mod:`.rewrite` (mcq / judge), :mod:`.engine` (streaming, accounting, reject file, atomic
output, ``--num-proc``), :mod:`.media`, :mod:`.validate`, :mod:`.mix`.
"""

from . import registry as _registry  # noqa: F401  (installs the plugin validators)
from .engine import ConvertError, Report, convert_file, convert_rows, print_summary
from .formats import InputFormat, detect, formats, get_format
from .rows import RowError
from .targets import Options, Target, get_target, targets

__all__ = ["convert_file", "convert_rows", "Report", "ConvertError", "RowError", "InputFormat", "Target",
           "Options", "detect", "formats", "get_format", "get_target", "targets", "print_summary"]
