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
    """A rich progress bar on stderr (disabled automatically when stderr is not a terminal); ``rate=True``
    adds the rate (items/s) and the time left, for long jobs."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.2f}/s" if speed else "-/s")

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if rate:
        columns += [Rate(), TextColumn("eta"), TimeRemainingColumn()]
    return Progress(*columns, console=console, transient=True, **kwargs)
