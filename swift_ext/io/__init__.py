"""File plumbing shared by the CLI and the library: JSON/YAML mappings, JSONL rows (read and write),
atomic outputs, reject files and a progress bar.

Every writer here writes to a temporary file next to its target and renames it into place only on
success, so an interrupted run leaves no half-written output.

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> with JsonlWriter(os.path.join(d, "out.jsonl")) as w:
...     w.write({"a": 1})
>>> open(os.path.join(d, "out.jsonl")).read()
'{"a":1}\\n'
>>> _ = open(os.path.join(d, "in.jsonl"), "wb").write(b'{"a": 1}\\n\\nnot json\\n')
>>> [(n, o, e) for n, o, _, e in iter_jsonl_rows(os.path.join(d, "in.jsonl"))]
[(1, {'a': 1}, None), (3, None, 'invalid JSON: Expecting value (column 1)')]
>>> default_reject_path("data/grpo.jsonl")
'data/grpo.rejected.jsonl'
"""

from .atomic import STALE_UNOWNED_SECONDS, AtomicFile, atomic_write, save_png, sweep_stale_temps
from .config import YAML_MAX_NODES, load_mapping, load_yaml
from .jsonl import (BadLine, Item, JsonlWriter, RejectFile, default_reject_path, encode_json, iter_jsonl,
                    iter_jsonl_rows, parse_json_line, raw_text)
from .progress import Progress, rich_progress
from .signals import Terminated, exit_code, signals_raise

__all__ = ["STALE_UNOWNED_SECONDS", "AtomicFile", "atomic_write", "save_png", "sweep_stale_temps", "YAML_MAX_NODES",
           "load_mapping", "load_yaml", "BadLine", "Item", "JsonlWriter", "RejectFile", "default_reject_path",
           "encode_json", "iter_jsonl", "iter_jsonl_rows", "parse_json_line", "raw_text", "Progress", "rich_progress",
           "Terminated", "exit_code", "signals_raise"]
