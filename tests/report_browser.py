"""Load a report in a real headless Chromium (Debian's ``chromium`` package; ``.ci/run`` installs it) and read
back what it rendered: the DOM after the page's scripts ran, Chromium's own log, a screenshot."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Optional, Tuple

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def chromium() -> Optional[str]:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _flags() -> List[str]:
    return [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000"]


def load(url: str, timeout: float = 180) -> Tuple[str, str]:
    """(the DOM after the page's scripts ran, Chromium's stderr) for ``url`` (``file://...#state``)."""
    proc = subprocess.run([*_flags(), "--dump-dom", url], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, proc.stderr


def screenshot(url: str, out: Path, size=(1400, 2600), timeout: float = 180) -> Path:
    proc = subprocess.run([*_flags(), "--hide-scrollbars", f"--window-size={size[0]},{size[1]}",
                           f"--screenshot={out}", url], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-3000:]
    return out


def console_errors(stderr: str) -> List[str]:
    """Lines where Chromium logged a page error (uncaught exceptions, console.error)."""
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line and ("Uncaught" in line or "ERROR:CONSOLE" in line or ":ERROR:" in line)]


@dataclass
class Page:
    """What the report rendered, read from the DOM dump."""

    points: Dict[str, List[int]] = field(default_factory=dict)  # chart id -> markers per trace
    rows: List[Dict[str, object]] = field(default_factory=list)  # completion rows: n, text, scores
    groups: List[Dict[str, object]] = field(default_factory=list)  # prompt, gold, thumbnails
    turns: List[Dict[str, object]] = field(default_factory=list)  # multi-turn rows: n, role, text, calls, crops
    status: str = ""
    selfcheck: dict = field(default_factory=dict)
    ready: bool = False


class _Reader(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.stack: List[Tuple[str, Dict[str, str]]] = []
        self.text_target: Optional[Tuple[dict, str]] = None

    def _inside(self, pred) -> Optional[Dict[str, str]]:
        for tag, attrs in reversed(self.stack):
            if pred(tag, attrs):
                return attrs
        return None

    def handle_starttag(self, tag, attr_list):
        attrs = {k: (v or "") for k, v in attr_list}
        classes = attrs.get("class", "").split()
        if tag == "body" and attrs.get("data-ready") == "1":
            self.page.ready = True
        chart = self._inside(lambda t, a: a.get("id", "").startswith("chart-"))
        if chart is not None and tag == "g" and "trace" in classes:
            self.page.points.setdefault(chart["id"][len("chart-"):], []).append(0)
        if chart is not None and tag == "path" and "point" in classes:
            self.page.points[chart["id"][len("chart-"):]][-1] += 1
        if tag == "div" and "group" in classes:
            self.page.groups.append({"step": attrs.get("data-step"), "prompt": "", "gold": "", "thumbs": 0})
        if tag == "img" and "thumb" in classes and self.page.groups:
            self.page.groups[-1]["thumbs"] += 1
        if tag == "div" and "prompt" in classes and self.page.groups:
            self.text_target = (self.page.groups[-1], "prompt")
        if tag == "span" and "gold-text" in classes and self.page.groups:
            self.text_target = (self.page.groups[-1], "gold")
        if tag == "div" and "turn" in classes:
            row = self._inside(lambda t, a: t == "tr" and "turns" in a.get("class", "").split())
            self.page.turns.append({"n": int(row["data-n"]) if row else None, "role": attrs.get("data-role"),
                                    "text": "", "calls": [], "crops": []})
        if tag == "div" and "turn-text" in classes and self.page.turns:
            self.text_target = (self.page.turns[-1], "text")
        if tag == "div" and "call" in classes and self.page.turns:
            self.page.turns[-1]["calls"].append("")
            self.text_target = (self.page.turns[-1]["calls"], len(self.page.turns[-1]["calls"]) - 1)
        if tag == "img" and "crop" in classes and self.page.turns:
            self.page.turns[-1]["crops"].append(attrs.get("src", ""))
        if tag == "tr" and "completion" in classes:
            self.page.rows.append({"n": int(attrs["data-n"]), "text": "", "scores": {}, "step": None})
            group = self._inside(lambda t, a: "group" in a.get("class", "").split())
            self.page.rows[-1]["step"] = int(group["data-step"]) if group else None
        if tag == "td" and "text" in classes and self.page.rows:
            self.text_target = (self.page.rows[-1], "text")
        if tag == "td" and "score" in classes and self.page.rows:
            value = attrs.get("data-value", "")
            self.page.rows[-1]["scores"][attrs["data-reward"]] = float(value) if value else None
        if attrs.get("id") == "cb-status":
            self.text_target = (self.page.__dict__, "status")
        if attrs.get("id") == "selfcheck":
            self.text_target = (self.page.__dict__, "selfcheck_text")
        if tag not in VOID:
            self.stack.append((tag, attrs))

    def handle_endtag(self, tag):
        while self.stack:
            open_tag, _ = self.stack.pop()
            if open_tag == tag:
                break
        self.text_target = None

    def handle_data(self, data):
        if self.text_target is not None:
            holder, key = self.text_target
            if isinstance(holder, list):
                holder[key] += data
            else:
                holder[key] = holder.get(key, "") + data


def read(dom: str) -> Page:
    reader = _Reader()
    reader.feed(dom)
    page = reader.page
    raw = page.__dict__.pop("selfcheck_text", "")
    page.selfcheck = json.loads(raw) if raw else {}
    return page
