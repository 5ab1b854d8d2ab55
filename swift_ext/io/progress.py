"""The one rich progress bar of swift-ext, on stderr."""

from __future__ import annotations

from typing import Any, Callable, Optional


# -- progress ---------------------------------------------------------------------------------------
def rich_progress(console: Any = None, unit: str = "items", rate: bool = False, **kwargs: Any) -> Any:
    """The one rich progress bar of swift-ext, on stderr: description, bar, done/total (``unit="bytes"``: sizes),
    elapsed; ``rate=True`` adds items per second and the time left. rich disables it when stderr is not a
    terminal."""
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.2f}/s" if speed else "-/s")

    columns = [TextColumn("{task.description}"), BarColumn(),
               DownloadColumn() if unit == "bytes" else MofNCompleteColumn(), TimeElapsedColumn()]
    if rate:
        columns += [Rate()] if unit != "bytes" else []
        columns += [TextColumn("eta"), TimeRemainingColumn()]
    kwargs.setdefault("transient", True)
    return Progress(*columns, console=console or Console(stderr=True), **kwargs)


class Progress:
    """A rich bar on stderr (only when ``enabled`` and stderr is a terminal), advanced in chunks.
    ``on_bytes`` is the callback to hand to readers (None when no bar is shown)."""

    def __init__(self, enabled: bool, total: int, unit: str, description: str):
        self.bar = None
        if enabled:
            from rich.console import Console

            console = Console(stderr=True)
            if console.is_terminal:
                self.bar = rich_progress(console, unit=unit, rate=True)
                self.task = self.bar.add_task(description, total=total)
                self.bar.start()
        self.pending = 0

    @property
    def on_bytes(self) -> Optional[Callable[[int], None]]:
        return self.advance if self.bar is not None else None

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.pending += n
            if self.pending >= 1 << 20 or n >= 1000:
                self.bar.advance(self.task, self.pending)
                self.pending = 0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


