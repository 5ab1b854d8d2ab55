"""``swift-ext report``'s options (:class:`ReportOptions`) and entry point (:func:`run_report`): the page
(:mod:`.page`), or the live server (:mod:`.live`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from .live import serve
from .page import ReportInfo, save_curves_png, write_report
from ..runs import load_runs


@dataclass
class ReportOptions:
    """What ``swift-ext report`` takes, one field per flag (tests/meta/test_options.py checks they agree)."""

    run_dirs: Tuple[str, ...]                   # run folders, or folders above them (every run below is included)
    output: str = "report.html"                 # the HTML file to write
    title: Optional[str] = None                 # page title (default: the run names)
    png: Optional[str] = None                   # also draw the curves into this PNG file
    serve: bool = False                         # serve a live report on 127.0.0.1 instead (until interrupted)
    port: int = 8765                            # port for ``serve`` (0: any free port)


def run_report(opts: ReportOptions, ready: Optional[Callable[[str], None]] = None) -> Optional[ReportInfo]:
    """``swift-ext report``: :func:`write_report` (and :func:`save_curves_png` with ``opts.png``), or with
    ``opts.serve`` :func:`swift_ext.report.live.serve` until interrupted (``ready(url)`` once it listens;
    returns None)."""
    if opts.serve:
        serve(opts.run_dirs, port=opts.port, title=opts.title, ready=ready)
        return None
    info = write_report(opts.run_dirs, opts.output, title=opts.title)
    if opts.png:
        save_curves_png(load_runs(opts.run_dirs), opts.png)
    return info


__all__ = ["ReportOptions", "run_report"]
