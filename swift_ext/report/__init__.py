"""``swift-ext report``: one self-contained HTML page per training run (or several runs side by side):
reward curves with their spread, the GRPO health metrics, CHORD mu, swift-ext callback metrics and a
completion browser. It reads ms-swift's own files (``logging.jsonl``, ``completions.jsonl`` from
``--log_completions true``, ``args.json``), so it works on runs that never loaded swift-ext.

    >>> from swift_ext.report import write_report
    >>> info = write_report(["output/v0-20260101-120000"], "report.html")   # doctest: +SKIP
    >>> info.completions, info.bytes                                         # doctest: +SKIP
    (320, 4987123)

:func:`serve` watches a run while it trains; :func:`save_curves_png` draws the curves as one PNG.
"""

from .page import ReportInfo, chart_specs, collect, render, save_curves_png, write_report
from ..runs import Completion, Run, find_run_dirs, iter_completions, load_run, load_runs
from .live import serve
from .options import ReportOptions, run_report

__all__ = ["write_report", "save_curves_png", "serve", "load_run", "load_runs", "find_run_dirs",
           "iter_completions", "chart_specs", "collect", "render", "ReportInfo", "ReportOptions", "run_report", "Run",
           "Completion"]
