"""The report page: which charts a run gets, the completion browser's data, and the one HTML file.

The page is self-contained: plotly.js (from the ``plotly`` Python package's own bundle) and the report's
JavaScript are inlined, the data are JSON blocks in the file, images are thumbnails as ``data:`` URIs. The
completions of each logged step sit in their own ``<script type="application/json">`` block that the browser
parses only when that step is opened, so a run with 100k completions opens as fast as one with ten.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, TextIO, Tuple

from ..errors import ConfigError
from ..io.media import read_media
from ..runs import Completion, Points, Run, dataset_images, gold_text, iter_completions, prompt_text

#: metric prefixes of swift-ext's callbacks (``swift_ext.trainer.callbacks``) and of audits
CALLBACK_PREFIXES = ("eval_ext/", "train_sanity/", "audit/")
PLANNED_MU_KEY = "chord/mu (planned)"
THUMB_SIZE = 96
_SURROGATE = re.compile("[\ud800-\udfff]")
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
    ids: set = set()

    def add(section, title, keys, bands=None, note="", cid=None):
        keys = [k for k in keys if k in present]
        if not keys:
            return
        bands = {k: s for k, s in (bands or {}).items() if k in keys and s in present}
        cid = cid or slug(title)
        if cid in ids:  # slugs collide ("Acc" and "acc", a reward named "total"): every chart keeps its own id
            cid = next(f"{cid}-{n}" for n in range(2, len(ids) + 3) if f"{cid}-{n}" not in ids)
        ids.add(cid)
        charts.append(Chart(cid, title, section, keys, bands, note))
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

            # the one media check: a regular image file within the cap (a FIFO, /dev/zero or /proc file is refused)
            with Image.open(io.BytesIO(read_media(path, kind="image"))) as img:
                img = img.convert("RGB")
                img.thumbnail((self.size, self.size))
                buf = io.BytesIO()
                img.save(buf, format="PNG")
        except Exception:  # a missing or unreadable image: the row shows its path instead
            return None
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def turn_view(turn: Dict[str, Any], thumbs: Thumbnails) -> Dict[str, Any]:
    """One turn of a multi-turn completion as the browser shows it: ``role``, ``text``, the tool calls read from
    it (``calls``: ``name(arguments)`` or the parse error) and its images (``img``: thumbnail ids, None where the
    image is not in the log or not readable; ``paths``)."""
    calls = []
    for call in turn.get("calls") or ():
        if call.get("error"):
            calls.append(f"unreadable call: {call['error']}")
        else:
            calls.append(f"{call.get('name')}({json.dumps(call.get('arguments'), ensure_ascii=False)})")
    paths = [p if isinstance(p, str) else "" for p in turn.get("images") or ()]
    return {"role": str(turn.get("role")), "text": turn.get("content") or "", "calls": calls,
            "img": [thumbs.id_of(p) if p else None for p in paths], "paths": paths}


def completion_rewards(items: Iterable[Completion], run: Run) -> List[str]:
    """The reward columns of a run's completions: the run's reward order first (those among the first 1000
    completions' scores), then any others in order of appearance."""
    early: set = set()
    later: Dict[str, None] = {}
    for n, c in enumerate(items):
        if n < 1000:
            early.update(c.scores)
        for k in c.scores:
            later.setdefault(k)
    seen = [r for r in run.reward_names if r in early]
    return seen + [k for k in later if k not in seen]


#: completions one prompt group of one step may hold (the report keeps one step's groups in memory)
MAX_GROUP = 1 << 16


class SpooledChunk:
    """One step's completion groups, kept as their JSON text in a temporary file (the run's spool) until the
    page is written or ``--serve`` is asked for them: a run's completions are never all in memory."""

    __slots__ = ("spool", "offset", "length")

    def __init__(self, spool: Any, offset: int, length: int):
        self.spool, self.offset, self.length = spool, offset, length

    def text(self) -> str:
        return os.pread(self.spool.fileno(), self.length, self.offset).decode("utf-8")  # thread-safe (--serve)

    def data(self) -> Dict[str, Any]:
        return json.loads(self.text())


def step_chunks(run: Run, thumbs: Thumbnails) -> Tuple[List[str], Dict[int, SpooledChunk], int]:
    """``(reward columns, {step: chunk of {"groups": [...]}}, completions)`` for a run's completion browser,
    read in two streaming passes over ``completions.jsonl`` (the reward columns, then the groups). Groups are
    formed by (step, prompt) as completions arrive; each step's groups are spooled when the next step starts
    (a step that comes back later is read back and merged). A prompt group of more than :data:`MAX_GROUP`
    completions is an error that names it."""
    if not run.completions_path:
        return [], {}, 0
    path = run.completions_path
    count = sum(1 for _ in iter_completions(path))
    if not count:
        return [], {}, 0
    rewards = completion_rewards(iter_completions(path), run)
    images = dataset_images(run.dataset_files())
    spool = tempfile.TemporaryFile()
    chunks: Dict[int, SpooledChunk] = {}
    step: Optional[int] = None
    groups: Dict[str, Dict[str, Any]] = {}

    def flush() -> None:
        if step is None or not groups:
            return
        body = json_text({"groups": list(groups.values())}).encode("utf-8")
        spool.seek(0, 2)
        chunks[step] = SpooledChunk(spool, spool.tell(), len(body))
        spool.write(body)
        spool.flush()  # read back with os.pread

    for i, c in enumerate(iter_completions(path)):
        if c.step != step:
            flush()
            step, groups = c.step, {}
            if step in chunks:  # the step came back (not the usual order): merge with what was spooled
                groups = {g["prompt"]: g for g in chunks.pop(step).data()["groups"]}
        group = groups.get(c.prompt)
        if group is None:
            gold = gold_text(c.gold)
            group = groups[c.prompt] = {"prompt": c.prompt, "gold": gold, "images": [], "paths": [], "items": []}
            if images:
                text = prompt_text(c.prompt)
                candidates = images.get((text, gold)) or images.get((text, "")) or []
                group["paths"] = candidates
                group["images"] = [[thumbs.id_of(p) for p in cand] for cand in candidates]
        if len(group["items"]) >= MAX_GROUP:
            raise ConfigError(f"{path}:{c.line}: the prompt group {c.prompt[:80]!r} of step {c.step} has more than "
                              f"{MAX_GROUP} completions (too many to show; is the prompt column constant?)")
        item = {"n": i, "text": c.text, "s": [c.scores.get(r) for r in rewards], "adv": c.advantage}
        if c.turns:
            item["turns"] = [turn_view(t, thumbs) for t in c.turns]
        group["items"].append(item)
    flush()
    return rewards, chunks, count


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


def json_text(data: Any) -> str:
    """JSON for a block of the page: ``<`` escaped so no text can close the element, NaN/inf as null, a lone
    surrogate (not a character, not UTF-8) as the replacement mark."""
    text = json.dumps(_clean(data), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _SURROGATE.sub("\ufffd", text.replace("<", "\\u003c"))


def json_block(element_id: str, data: Any) -> str:
    """A ``<script type="application/json">`` block of :func:`json_text` (or of a spooled chunk's text)."""
    text = data.text() if isinstance(data, SpooledChunk) else json_text(data)
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
    chunks: List[Tuple[int, int, Any]]  # (run index, step, chunk: a SpooledChunk or {"groups": [...]})
    images: Dict[str, str]
    completions: int
    #: per run: (completion reward columns, {step: chunk}, completions); ``--serve`` reuses them while the
    #: run's completions.jsonl is unchanged
    per_run: List[Tuple[List[str], Dict[int, SpooledChunk], int]] = dataclasses.field(default_factory=list)


def collect(runs: Sequence[Run], title: Optional[str] = None, live: bool = False,
            reuse: Optional[Dict[int, Tuple[List[str], Dict[int, SpooledChunk], int]]] = None,
            thumbs: Optional[Thumbnails] = None) -> PageData:
    """The page's data for ``runs``. ``reuse`` maps a run index to its completion data from an earlier call
    (``PageData.per_run``): that run's completions are not read again."""
    thumbs = thumbs or Thumbnails()
    runs_out, chunks, total, per_run = [], [], 0, []
    for index, run in enumerate(runs):
        if reuse and index in reuse:
            rewards, by_step, count = reuse[index]
        else:
            rewards, by_step, count = step_chunks(run, thumbs)
        per_run.append((rewards, by_step, count))
        total += count
        runs_out.append({"name": run.name, "path": str(run.path), "rewards": run.reward_names,
                         "completion_rewards": rewards, "completion_steps": sorted(by_step),
                         "completions": count, "steps": len(run.steps), "max_steps": run.max_steps,
                         "summary": run_summary(run)})
        chunks += [(index, step, by_step[step]) for step in sorted(by_step)]
    model = {"title": title or "swift-ext run report: " + ", ".join(r.name for r in runs),
             "generated": time.strftime("%Y-%m-%d %H:%M:%S"), "live": live, "runs": runs_out,
             "charts": [c.as_dict() for c in chart_specs(runs)], "series": [run_series(r) for r in runs]}
    return PageData(model=_clean(model), chunks=chunks, images=thumbs.uris, completions=total, per_run=per_run)


def render(data: PageData) -> str:
    """The HTML text of the report."""
    out = io.StringIO()
    render_to(out, data)
    return out.getvalue()


def series_block(element_id: str, series: Dict[str, Any]) -> Iterator[str]:
    """A run's metric series as a JSON block, in pieces (one metric at a time: a long run's series are never
    one string in memory)."""
    yield f'<script type="application/json" id="{html.escape(element_id)}">{{'
    for i, (key, points) in enumerate(series.items()):
        text = points.json() if isinstance(points, Points) else json.dumps(_clean(points), allow_nan=False,
                                                                            separators=(",", ":"))
        name = json.dumps(key, ensure_ascii=False).replace("<", "\\u003c")
        yield ("," if i else "") + name + ":" + text
    yield "}</script>\n"


def render_to(fh: TextIO, data: PageData) -> None:
    """Write the HTML of the report to ``fh`` piece by piece."""
    css = (_ASSETS / "report.css").read_text(encoding="utf-8")
    js = (_ASSETS / "report.js").read_text(encoding="utf-8")
    parts = ["<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n",
             f"<title>{html.escape(_SURROGATE.sub(chr(0xFFFD), data.model['title']))}</title>\n",
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
             # first script: record errors before anything else runs
             "<script>window.__reportErrors=[];window.addEventListener('error',function(e){"
             "window.__reportErrors.push(String(e.message||e));});(function(){var o=console.error;"
             "console.error=function(){window.__reportErrors.push(Array.prototype.join.call(arguments,' '));"
             "return o.apply(console,arguments);};})();</script>\n",
             f"<style>{css}</style>\n",
             f"<script>{plotly_js()}</script>\n",
             "</head><body>\n",
             json_block("report-model", {k: v for k, v in data.model.items() if k != "series"}),
             json_block("report-images", data.images),
             ]
    for part in parts:
        fh.write(part)
    for index, series in enumerate(data.model["series"]):
        for part in series_block(f"report-series-{index}", series):
            fh.write(part)
    # the script comes before the completion blocks: it draws the charts while the browser is still reading
    # the (possibly large) rest of the file, and opens the completion browser once the file is read
    fh.write(f"<script>{js}</script>\n")
    for run_index, step, chunk in data.chunks:
        fh.write(json_block(f"c-{run_index}-{step}", chunk))
    fh.write("</body></html>\n")


def model_json(model: Dict[str, Any], points_json: Optional[Callable[[Points], str]] = None) -> str:
    """The page model as JSON (``--serve``'s ``/api/model``). The series are written one metric at a time, each
    by ``points_json`` (default :meth:`Points.json`; ``--serve`` passes a cache that extends each metric's text
    by the points appended since the last poll instead of writing all of them again)."""
    points_json = points_json or Points.json
    rest = json.dumps({k: v for k, v in model.items() if k != "series"}, allow_nan=False, default=str)
    runs = []
    for series in model.get("series", ()):
        items = (json.dumps(key) + ":" + (points_json(points) if isinstance(points, Points) else
                                          json.dumps(_clean(points), allow_nan=False, separators=(",", ":")))
                 for key, points in series.items())
        runs.append("{" + ",".join(items) + "}")
    if "series" not in model:
        return rest
    return rest[:-1] + (", " if len(rest) > 2 else "") + '"series": [' + ",".join(runs) + "]}"


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
    with atomic_write(str(out)) as fh:
        render_to(fh, data)
    return ReportInfo(path=str(Path(out).resolve()), runs=[str(r.path) for r in runs],
                      charts=len(data.model["charts"]), completions=data.completions,
                      bytes=os.path.getsize(out), seconds=round(time.perf_counter() - start, 3))


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
                    low = [y - sd.get(x, 0) for x, y in zip(xs, ys)]
                    high = [y + sd.get(x, 0) for x, y in zip(xs, ys)]
                    if math.isfinite(max(high) - min(low)):  # a std near 1e308 overflows the axis: no band
                        ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2)
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

