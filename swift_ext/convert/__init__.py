"""Dataset conversion between SFT, GRPO, DPO, KTO and TRL formats, validation and mixing.

>>> from swift_ext.convert import convert_rows
>>> next(convert_rows([{"instruction": "Add", "input": "2+3", "output": "5"}], to="grpo", extract="last_number"))
{'messages': [{'role': 'user', 'content': 'Add\\n2+3'}], 'solution': '5'}

Modules, bottom-up: :mod:`.rows` (the canonical row), :mod:`.registry` (the converter kinds and plugin
registries), :mod:`.formats` (readers + detection), :mod:`.rules` (row validity, shared by convert and
validate), :mod:`.rewrite` (mcq / judge), :mod:`.targets` (writers), :mod:`.negatives` (DPO negatives),
:mod:`.options` (:class:`ConvertOptions`), :mod:`.engine` (the row loop: serial, ``--num-proc``, in memory),
:mod:`.media`, :mod:`.sources` (input files), :mod:`.validate`, :mod:`.mix`. Output files, reject files and
progress come from :mod:`swift_ext.io`.
"""

from . import registry as _registry  # noqa: F401  (installs the plugin validators)
from .engine import ConvertError, Report, RowConverter, convert_file, convert_rows, print_summary
from .formats import InputFormat, detect, formats, get_format
from .mix import MixOptions, mix_files
from .options import ConvertOptions
from .rows import RowError
from .targets import Options, Target, get_target, targets
from .validate import ValidateOptions, validate_file

__all__ = ["convert_file", "convert_rows", "ConvertOptions", "Report", "ConvertError", "RowError", "RowConverter",
           "InputFormat", "Target", "Options", "detect", "formats", "get_format", "get_target", "targets",
           "print_summary", "validate_file", "ValidateOptions", "mix_files", "MixOptions"]
