"""The report page: which charts a run gets, the completion browser's data, and the one HTML file.

The page is self-contained: plotly.js (from the ``plotly`` Python package's own bundle) and the report's
JavaScript are inlined, the data are JSON blocks in the file, images are thumbnails as ``data:`` URIs. The
completions of each logged step sit in their own ``<script type="application/json">`` block that the browser
parses only when that step is opened, so a run with 100k completions opens as fast as one with ten.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import ConfigError
from ..runs import Completion, Run, dataset_images, gold_text, group_by_prompt, prompt_text

#: metric prefixes of swift-ext's callbacks (``swift_ext.trainer.callbacks``) and of audits
CALLBACK_PREFIXES = ("eval_ext/", "train_sanity/", "audit/")
PLANNED_MU_KEY = "chord/mu (planned)"
THUMB_SIZE = 96
_ASSETS = Path(__file__).resolve().parent / "assets"


@dataclass
class Chart:
    id: str
    title: str
    section: str
    keys: List[str]
    bands: Dict[str, str]  # mean key -> std key
    note: str = ""

    def as_dict(self) -> Dict[str, Any]:
        return {"id": self.id, "title": self.title, "section": self.section, "keys": self.keys,
                "bands": self.bands, "note": self.note}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def planned_mu(run: Run) -> List[List[float]]:
    """CHORD mu per step as ms-swift's native warmup + cosine plans it from the run's ``--chord_mu_*``
    arguments (``args.json``); empty when the run is not a CHORD run or the arguments are unset. A custom
    shape applied with ``SWIFT_EXT_CHORD_SCHEDULE`` is not in ``args.json``: its logged ``chord/mu`` is the
    truth."""
    from ..chord import plan as chord

    args = run.args
    names = chord.SWIFT_ARG_OF_PARAM.values()
    if not args.get("chord_sft_dataset") or any(args.get(n) is None for n in names) or not run.max_steps:
        return []
    try:
        sched = chord.resolve("warmup_cosine", args)
        return [[s + 1, mu] for s, mu in sched.table(run.max_steps)]
    except Exception:  # an inconsistent setting: the logged values still show what happened
        return []


def run_series(run: Run) -> Dict[str, List[List[float]]]:
    series = dict(run.series)
    planned = planned_mu(run)
    if planned:
        series[PLANNED_MU_KEY] = planned
    return series


def chart_specs(runs: Sequence[Run]) -> List[Chart]:
    """The charts for these runs, in page order; a chart appears when some run logged one of its keys."""
    present = set()
    for run in runs:
        present |= set(run_series(run))
    rewards: List[str] = []
    for run in runs:
        rewards += [r for r in run.reward_names if r not in rewards]
    charts: List[Chart] = []
    used = set()

    def add(section, title, keys, bands=None, note="", cid=None):
        keys = [k for k in keys if k in present]
        if not keys:
            return
        bands = {k: s for k, s in (bands or {}).items() if k in keys and s in present}
        charts.append(Chart(cid or slug(title), title, section, keys, bands, note))
        used.update(keys, bands.values())

    for name in rewards:
        add("Rewards", name, [f"rewards/{name}/mean"], {f"rewards/{name}/mean": f"rewards/{name}/std"},
            "mean over the step's completions; band: ± std", cid=f"reward-{slug(name)}")
    add("Rewards", "reward (weighted total)", ["reward"], {"reward": "reward_std"},
        "ms-swift's weighted sum of the reward means; band: ± std", cid="reward-total")
    add("Rewards", "frac_reward_zero_std", ["frac_reward_zero_std"], note="share of prompt groups whose "
        "completions all scored the same: they give GRPO no advantage, so no learning signal")
    add("Rollouts", "completions clipped at max length", ["completions/clipped_ratio"], cid="clipped-ratio",
        note="share of completions cut off by --max_completion_length")
    add("Rollouts", "policy ratio clipping", ["clip_ratio/region_mean", "clip_ratio/low_mean",
                                              "clip_ratio/high_mean"], cid="clip-ratio")
    add("Rollouts", "completion length", ["completions/mean_length", "completions/min_length",
                                          "completions/max_length"], cid="completion-length")
    for key in ("loss", "kl", "grad_norm", "learning_rate"):
        add("Optimisation", key, [key])
    add("CHORD", "CHORD mu (SFT weight)", ["chord/mu", PLANNED_MU_KEY], cid="chord-mu",
        note="logged: swift-ext's chord_mu callback; planned: warmup + cosine from the run's --chord_mu_*")
    for key in sorted(k for k in present if k.startswith(CALLBACK_PREFIXES)):
        add("swift-ext callbacks", key, [key], cid=f"cb-{slug(key)}")
    for key in sorted(present - used):
        if re.match(r"rewards/.+/std$", key) or key == "reward_std":
            continue
        add("Other metrics", key, [key], cid=f"other-{slug(key)}")
    return charts


# -- completions --------------------------------------------------------------------------------------
class Thumbnails:
    """image path -> id, with a small PNG ``data:`` URI per id (made once per path)."""

    def __init__(self, size: int = THUMB_SIZE):
        self.size = size
        self.ids: Dict[str, str] = {}
        self.uris: Dict[str, str] = {}

    def id_of(self, path: str) -> Optional[str]:
        if path in self.ids:
            return self.ids[path]
        uri = self._thumbnail(path)
        if uri is None:
            self.ids[path] = None  # type: ignore[assignment]
            return None
        key = f"i{len(self.uris)}"
        self.ids[path], self.uris[key] = key, uri
        return key

    def _thumbnail(self, path: str) -> Optional[str]:
        try:
            from PIL import Image

            with Image.open(path) as img:
                img = img.convert("RGB")
                img.thumbnail((self.size, self.size))
                buf = io.BytesIO()
                img.save(buf, format="PNG")
        except Exception:  # a missing or unreadable image: the row shows its path instead
            return None
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def completion_rewards(items: Sequence[Completion], run: Run) -> List[str]:
    """The reward columns of a run's completions: the run's reward order first, then any others."""
    seen: List[str] = [r for r in run.reward_names if any(r in c.scores for c in items[:1000])]
    for c in items:
        seen += [k for k in c.scores if k not in seen]
    return seen


def step_chunks(run: Run, thumbs: Thumbnails, items: Optional[List[Completion]] = None
                ) -> Tuple[List[str], Dict[int, Dict[str, Any]]]:
    """``(reward columns, {step: {"groups": [...]}})`` for a run's completion browser."""
    items = run.completions() if items is None else items
    if not items:
        return [], {}
    rewards = completion_rewards(items, run)
    images = dataset_images(run.dataset_files())
    chunks: Dict[int, Dict[str, Any]] = {}
    for members in group_by_prompt(items):
        first = items[members[0]]
        gold = gold_text(first.gold)
        group: Dict[str, Any] = {"prompt": first.prompt, "gold": gold, "images": [], "paths": [],
                                 "items": []}
        if images:
            text = prompt_text(first.prompt)
            candidates = images.get((text, gold)) or images.get((text, "")) or []
            group["paths"] = candidates
            group["images"] = [[thumbs.id_of(p) for p in c] for c in candidates]
        for i in members:
            c = items[i]
            group["items"].append({"n": i, "text": c.text, "s": [c.scores.get(r) for r in rewards],
                                   "adv": c.advantage})
        chunks.setdefault(first.step, {"groups": []})["groups"].append(group)
    return rewards, chunks


# -- the page -----------------------------------------------------------------------------------------
def plotly_js() -> str:
    """plotly.min.js as shipped inside the ``plotly`` Python package (installed with swift-ext's ``report``
    extra, which ``all`` includes)."""
    try:
        from importlib.resources import files

        return (files("plotly") / "package_data" / "plotly.min.js").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        raise ConfigError("the report needs plotly.js from the 'plotly' package: pip install 'swift-ext[report]' "
                          "(or pip install plotly)") from None


def json_block(element_id: str, data: Any) -> str:
    """A ``<script type="application/json">`` block; ``<`` is escaped so no text can close the element."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    return f'<script type="application/json" id="{html.escape(element_id)}">{text}</script>\n'


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def run_summary(run: Run) -> Dict[str, Any]:
    args = run.args
    keep = ("model", "rlhf_type", "reward_funcs", "reward_weights", "num_generations", "max_completion_length",
            "learning_rate", "beta", "tuner_type", "per_device_train_batch_size", "chord_sft_dataset", "dataset")
    return {k: args[k] for k in keep if args.get(k) not in (None, [], "")}


@dataclass
class PageData:
    """Everything the page shows: ``model`` (runs, charts, series) and the completion chunks."""

    model: Dict[str, Any]
    chunks: List[Tuple[int, int, Dict[str, Any]]]  # (run index, step, chunk)
    images: Dict[str, str]
    completions: int


def collect(runs: Sequence[Run], title: Optional[str] = None, live: bool = False) -> PageData:
    thumbs = Thumbnails()
    runs_out, chunks, total = [], [], 0
    for index, run in enumerate(runs):
        items = run.completions()
        total += len(items)
        rewards, by_step = step_chunks(run, thumbs, items)
        runs_out.append({"name": run.name, "path": str(run.path), "rewards": run.reward_names,
                         "completion_rewards": rewards, "completion_steps": sorted(by_step),
                         "completions": len(items), "steps": len(run.steps), "max_steps": run.max_steps,
                         "summary": run_summary(run)})
        chunks += [(index, step, by_step[step]) for step in sorted(by_step)]
    model = {"title": title or "swift-ext run report: " + ", ".join(r.name for r in runs),
             "generated": time.strftime("%Y-%m-%d %H:%M:%S"), "live": live, "runs": runs_out,
             "charts": [c.as_dict() for c in chart_specs(runs)], "series": [run_series(r) for r in runs]}
    return PageData(model=_clean(model), chunks=chunks, images=thumbs.uris, completions=total)


def render(data: PageData) -> str:
    """The HTML text of the report."""
    css = (_ASSETS / "report.css").read_text(encoding="utf-8")
    js = (_ASSETS / "report.js").read_text(encoding="utf-8")
    parts = ["<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n",
             f"<title>{html.escape(data.model['title'])}</title>\n",
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
             # first script: record errors before anything else runs
             "<script>window.__reportErrors=[];window.addEventListener('error',function(e){"
             "window.__reportErrors.push(String(e.message||e));});(function(){var o=console.error;"
             "console.error=function(){window.__reportErrors.push(Array.prototype.join.call(arguments,' '));"
             "return o.apply(console,arguments);};})();</script>\n",
             f"<style>{css}</style>\n",
             f"<script>{plotly_js()}</script>\n",
             "</head><body>\n",
             json_block("report-model", data.model),
             json_block("report-images", data.images),
             ]
    # the script comes before the completion blocks: it draws the charts while the browser is still reading
    # the (possibly large) rest of the file, and opens the completion browser once the file is read
    parts.append(f"<script>{js}</script>\n")
    for run_index, step, chunk in data.chunks:
        parts.append(json_block(f"c-{run_index}-{step}", _clean(chunk)))
    parts.append("</body></html>\n")
    return "".join(parts)


@dataclass
class ReportInfo:
    path: str
    runs: List[str]
    charts: int
    completions: int
    bytes: int
    seconds: float

    def to_json(self) -> Dict[str, Any]:
        return dict(self.__dict__)


def write_report(run_paths: Sequence["str | Path"], out: "str | Path", title: Optional[str] = None) -> ReportInfo:
    """Read the runs under ``run_paths`` and write the report to ``out`` (atomically)."""
    from ..io import atomic_write
    from ..runs import load_runs

    start = time.perf_counter()
    runs = load_runs(run_paths)
    data = collect(runs, title)
    text = render(data)
    with atomic_write(str(out)) as fh:
        fh.write(text)
    return ReportInfo(path=str(Path(out).resolve()), runs=[str(r.path) for r in runs],
                      charts=len(data.model["charts"]), completions=data.completions,
                      bytes=len(text.encode("utf-8")), seconds=round(time.perf_counter() - start, 3))


def save_curves_png(runs: Sequence[Run], path: "str | Path", columns: int = 3) -> str:
    """The report's curves (every chart but the 'Other metrics' ones) as one PNG grid, for terminals and
    papers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import save_png

    charts = [c for c in chart_specs(runs) if c.section != "Other metrics"]
    if not charts:
        raise ConfigError("no metric to plot: the runs have no logging.jsonl rows")
    rows = math.ceil(len(charts) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.2 * rows), squeeze=False)
    series = [run_series(r) for r in runs]
    for ax, chart in zip(axes.flat, charts):
        for ri, run in enumerate(runs):
            for key in chart.keys:
                points = series[ri].get(key)
                if not points:
                    continue
                xs, ys = [p[0] for p in points], [p[1] for p in points]
                label = (f"{run.name}: " if len(runs) > 1 else "") + (key if len(chart.keys) > 1 else run.name)
                line, = ax.plot(xs, ys, label=label, linewidth=1.3)
                std = series[ri].get(chart.bands.get(key, ""))
                if std:
                    sd = dict((p[0], p[1]) for p in std)
                    ax.fill_between(xs, [y - sd.get(x, 0) for x, y in zip(xs, ys)],
                                    [y + sd.get(x, 0) for x, y in zip(xs, ys)], color=line.get_color(), alpha=0.2)
        ax.set_title(chart.title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        if len(runs) > 1 or len(chart.keys) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(charts):]:
        ax.axis("off")
    return save_png(fig, str(path))


__all__ = ["chart_specs", "collect", "render", "write_report", "save_curves_png", "step_chunks", "planned_mu",
           "ReportInfo", "PageData", "Chart", "plotly_js"]

