"""Helpers shared by the CLI commands: the stderr console, JSON output, progress bars."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

# wide tables stay readable in logs and pipes (rich falls back to 80 columns when stderr is not a terminal)
console = Console(stderr=True, width=None if sys.stderr.isatty() else 150)


def echo_json(data: Any) -> None:
    """Machine-readable output: one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def progress(*, rate: bool = False, **kwargs):
    """:func:`swift_ext.io.rich_progress` on the CLI's console; ``rate=True`` adds items/s and the time left."""
    from ..io import rich_progress

    return rich_progress(console, rate=rate, **kwargs)
