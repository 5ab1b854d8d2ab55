"""``swift-ext report --serve``: the report of a run that is still training, from a small HTTP server on
127.0.0.1. The page polls the server every 5 s; each poll reads what was appended to the runs' logging.jsonl,
a completions.jsonl again when it changed, and picks up new run folders under the given paths. Requests
whose ``Host`` header is not 127.0.0.1, localhost or [::1] with the server's port are refused (403).

Endpoints: ``/`` (the page, no completions inlined), ``/api/model`` (runs, charts, series; with
``?since=VERSION`` a 204 when the page already shows that version),
``/api/completions?run=I&step=S`` (one step's completion groups and their thumbnails).
"""

from __future__ import annotations

import errno
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlparse

from .page import PageData, Thumbnails, collect, model_json, render
from ..errors import ConfigError
from ..runs import COMPLETIONS_FILE, LOGGING_FILE, MetricLog, Points, Run, find_run_dirs, load_runs


class SeriesText:
    """Each metric's JSON text, kept between polls and extended by the points appended since the last one
    (a metric's :class:`~swift_ext.runs.Points` only grows; a run read anew has new ones), so a poll writes
    what is new instead of every point of the run again."""

    def __init__(self) -> None:
        self._text: Dict[int, Tuple[Points, int, str]] = {}

    def __call__(self, points: Points) -> str:
        held = self._text.get(id(points))
        n, text = (held[1], held[2]) if held is not None and held[0] is points else (0, "")
        if len(points) > n:
            new = json.dumps(points[n:], allow_nan=False, separators=(",", ":"))[1:-1]
            text = text + "," + new if text else new
            self._text[id(points)] = (points, len(points), text)
        return "[" + text + "]"

    def keep_only(self, series: Sequence[Dict[str, Any]]) -> None:
        """Forget the metrics no longer in ``series`` (a run read anew)."""
        alive = {id(p) for s in series for p in s.values()}
        self._text = {k: v for k, v in self._text.items() if k in alive}


class LiveReport:
    """The runs under ``paths``, kept up to date as they train: each poll reads only what was appended to a
    run's ``logging.jsonl`` (:class:`swift_ext.runs.MetricLog`), reads a run's ``completions.jsonl`` again
    only when that file changed, and loads the runs anew only when a run folder appears or goes."""

    def __init__(self, paths: Sequence["str | Path"], title: Optional[str] = None):
        self.paths, self.title = list(paths), title
        self._lock = threading.Lock()
        self._folders: Optional[List[Path]] = None
        self._runs: List[Run] = []
        self._completions: List[Optional[Tuple[int, int]]] = []
        self._thumbs = Thumbnails()
        self._data: Optional[PageData] = None
        self._series_text = SeriesText()
        self._body: Optional[Tuple[int, bytes]] = None
        #: bumped each time the page's data is recomputed; the page polls ``/api/model?since=VERSION``
        self.version = 0
        #: bytes of logging.jsonl read by the last poll, and completions.jsonl reads so far (for tests)
        self.logging_bytes_read = 0
        self.completion_reads = 0

    def _completion_signature(self, run: Run) -> Optional[Tuple[int, int]]:
        path = run.path / COMPLETIONS_FILE
        try:
            st = path.stat()
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns)

    def data(self) -> PageData:
        with self._lock:
            folders = [folder for path in self.paths for folder in find_run_dirs(path)]
            if folders != self._folders:  # a run appeared (or went): load them all
                self._runs, self._folders = load_runs(self.paths), folders
                self._completions = [None] * len(self._runs)
                self._data = None
                self.logging_bytes_read = sum(r.log.offset for r in self._runs if r.log)
            else:
                self.logging_bytes_read = 0
                for run in self._runs:
                    if run.log is None and (run.path / LOGGING_FILE).is_file():
                        run.log = MetricLog(run.path / LOGGING_FILE)
                    self.logging_bytes_read += run.reload()
                    if run.completions_path is None and (run.path / COMPLETIONS_FILE).is_file():
                        run.completions_path = run.path / COMPLETIONS_FILE
            reuse = {}
            changed = self._data is None or self.logging_bytes_read > 0
            for index, run in enumerate(self._runs):
                signature = self._completion_signature(run)
                if self._data is not None and signature == self._completions[index]:
                    reuse[index] = self._data.per_run[index]
                else:
                    self._completions[index] = signature
                    self.completion_reads += 1
                    changed = True
            if changed:
                self._data = collect(self._runs, self.title, live=True, reuse=reuse, thumbs=self._thumbs)
                self.version += 1
                self._data.model["version"] = self.version
            return self._data

    def model_body(self, since: Optional[int] = None) -> Optional[bytes]:
        """``/api/model``'s JSON, written again only when the data changed (and then only the points appended
        since the last poll are new text); ``None`` when the page already has version ``since``."""
        data = self.data()
        with self._lock:
            version = data.model["version"]
            if since == version:
                return None
            if self._body is None or self._body[0] != version:
                self._series_text.keep_only(data.model["series"])
                self._body = (version, model_json(data.model, self._series_text).encode("utf-8"))
            return self._body[1]

    def page(self) -> str:
        data = self.data()
        return render(PageData(model=data.model, chunks=[], images={}, completions=data.completions))

    def chunk(self, run: int, step: int) -> Dict[str, Any]:
        data = self.data()
        for ri, s, chunk in data.chunks:
            if ri == run and s == step:
                chunk = chunk.data() if hasattr(chunk, "data") else chunk
                ids = {i for g in chunk["groups"] for c in g["images"] for i in c if i}
                ids |= {i for g in chunk["groups"] for it in g["items"] for t in it.get("turns") or ()
                        for i in t["img"] if i}
                return {**chunk, "images": {i: data.images[i] for i in ids if i in data.images}}
        return {"groups": [], "images": {}}


LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")


def host_allowed(header: Optional[str], port: int, bind_host: str = "") -> bool:
    """Whether a request's ``Host`` header names this server: 127.0.0.1, localhost or [::1] (or the address it
    was bound to) with its port. Anything else is refused, so a page that DNS-rebinds its own name to
    127.0.0.1 cannot read the run.

    >>> host_allowed("localhost:8765", 8765), host_allowed("evil.example:8765", 8765), host_allowed(None, 8765)
    (True, False, False)
    """
    if not header:
        return False
    names = {n for n in (*LOCAL_NAMES, bind_host) if n and n not in ("0.0.0.0", "::")}
    names |= {f"[{n}]" for n in names if ":" in n and not n.startswith("[")}
    allowed = {f"{n}:{port}".lower() for n in names}
    if port == 80:
        allowed |= {n.lower() for n in names}
    return header.strip().lower() in allowed


def make_handler(live: LiveReport) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            bound = getattr(self.server, "bind_host", "")
            if not host_allowed(self.headers.get("Host"), self.server.server_port, bound):
                # DNS rebinding: a web page whose name now resolves to 127.0.0.1 sends its own name as Host
                self._send(403, b"forbidden: unknown Host header", "text/plain")
                return
            url = urlparse(self.path)
            try:
                if url.path in ("/", "/index.html"):
                    self._send(200, live.page().encode("utf-8"), "text/html; charset=utf-8")
                elif url.path == "/api/model":
                    since = parse_qs(url.query).get("since", [""])[0]
                    body = live.model_body(int(since) if since else None)
                    if body is None:  # the page is up to date
                        self.send_response(204)
                        self.send_header("Cache-Control", "no-store")
                        self.end_headers()
                    else:
                        self._send(200, body, "application/json")
                elif url.path == "/api/completions":
                    query = parse_qs(url.query)
                    chunk = live.chunk(int(query["run"][0]), int(query["step"][0]))
                    self._send(200, json.dumps(chunk).encode("utf-8"), "application/json")
                else:
                    self._send(404, b"not found", "text/plain")
            except (KeyError, ValueError) as exc:
                self._send(400, f"bad request: {exc}".encode(), "text/plain")
            except Exception as exc:  # a run file mid-write or unreadable: say so, keep serving
                self._send(500, f"{type(exc).__name__}: {exc}".encode(), "text/plain")

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows the URL only
            return

    return Handler


def make_server(paths: Sequence["str | Path"], port: int = 0, host: str = "127.0.0.1",
                title: Optional[str] = None) -> ThreadingHTTPServer:
    """A server for the live report (not started); ``port=0`` picks a free port (``server.server_port``)."""
    live = LiveReport(paths, title)
    live.data()  # fail now, with the reason, on a path that holds no run
    try:
        server = ThreadingHTTPServer((host, port), make_handler(live))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is already in use (another report --serve?): "
                              f"pass --port N, or --port 0 for any free port") from None
        raise ConfigError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    server.daemon_threads = True
    server.bind_host = host  # type: ignore[attr-defined]
    return server


def serve(paths: Sequence["str | Path"], port: int = 8765, host: str = "127.0.0.1", title: Optional[str] = None,
          ready: Optional[Callable[[str], None]] = None) -> None:
    """Serve the live report until interrupted (Ctrl-C propagates after the socket is closed: the CLI exits
    130); ``ready(url)`` is called once the server listens."""
    server = make_server(paths, port, host, title)
    url = f"http://{host}:{server.server_port}/"
    (ready or (lambda u: print(u, file=sys.stderr)))(url)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()


__all__ = ["LiveReport", "make_server", "serve"]

