"""Issue 17 (findings 4 and 9, and the report's lows): what a hostile run folder or a hostile web page could do
with ``swift-ext report``. Each test reproduces the attack through the real parts: the page opened in a real
headless Chromium with a local beacon server counting the requests it makes, ``--serve`` asked with a foreign
``Host`` header over a raw socket, the CLI run on hostile ``logging.jsonl`` files."""

import json
import os
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import report_browser
from swift_ext import runs as report_runs
from swift_ext.report import live as report_live
from swift_ext.report import page as report_page
from swift_ext.report import write_report

sys.path.insert(0, str(Path(__file__).parent))
from test_report import write_run  # noqa: E402  (the ms-swift 4.6 run-folder writer the report tests share)

SWIFT_EXT = str(Path(sys.executable).with_name("swift-ext"))
needs_chromium = pytest.mark.skipif(report_browser.chromium() is None, reason="chromium is not installed "
                                    "(apt-get install chromium; .ci/run installs it)")


class Beacon:
    """A local HTTP server that counts every request made to it (the page must make none)."""

    def __init__(self):
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                hits.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def beacon():
    b = Beacon()
    yield b
    b.close()


def hostile_names(url):
    return [f'<span style="fill:url({url}/fill#f)">styled</span>',
            f'<a href="{url}/link">click me</a>',
            f'<img src="{url}/img">',
            "total", "Acc", "acc"]


# -- finding 4: the offline report fetches URLs and renders links from names -------------------------------
def test_chart_ids_are_injective(tmp_path):
    run = report_runs.load_run(write_run(tmp_path / "v0", rewards=("total", "Acc", "acc", "acc-2")))
    charts = report_page.chart_specs([run])
    ids = [c.id for c in charts]
    assert len(ids) == len(set(ids)), ids
    # every reward keeps its chart, and the weighted total keeps its own
    titles = [c.title for c in charts if c.section == "Rewards"]
    assert titles[:5] == ["total", "Acc", "acc", "acc-2", "reward (weighted total)"]


@needs_chromium
def test_hostile_names_fetch_nothing_and_every_chart_is_drawn(tmp_path, beacon):
    names = hostile_names(beacon.url)
    run = write_run(tmp_path / "v0", steps=4, rewards=names)
    with open(run / "logging.jsonl") as fh:  # a callback metric with a hostile name (an open section too)
        rows = [json.loads(line) for line in fh]
    for r in rows[:-1]:
        r[f'audit/<span style="fill:url({beacon.url}/cb#f)">x</span>'] = 1.0
    (run / "logging.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "r.html"
    write_report([run], out, title=f'<a href="{beacon.url}/title">t</a>')
    charts = report_page.chart_specs([report_runs.load_run(run)])
    dom, stderr = report_browser.load(out.as_uri())
    page = report_browser.read(dom)
    assert page.ready and page.selfcheck["errors"] == [] and not report_browser.console_errors(stderr)
    assert beacon.hits == [], f"the offline report made requests: {beacon.hits}"
    # no link to anywhere in the charts, and every chart is on the page with its points
    url = re.escape(beacon.url)
    assert not re.search(r'<a\s[^>]*href="' + url, dom) and not re.search(r'<img\s[^>]*src="' + url, dom)
    open_charts = [c for c in charts if c.section != "Other metrics"]
    for chart in open_charts:
        assert page.points.get(chart.id), (chart.id, chart.title)
    for i, name in enumerate(names):  # each hostile reward: its own chart, 4 markers on its mean trace
        assert charts[i].title == name and page.points[charts[i].id][-1] == 4
    # the names are shown as text
    assert "click me" in dom and "&lt;a href=" in dom


# -- finding 9: --serve answers any Host header (DNS rebinding) -------------------------------------------
def raw_get(port, host_header, path="/api/model"):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.fixture
def served(tmp_path):
    write_run(tmp_path / "out" / "v0", steps=2)
    server = report_live.make_server([tmp_path / "out"], port=0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_serve_refuses_a_foreign_host_header(served):
    port = served.server_port
    for path in ("/", "/api/model", "/api/completions?run=0&step=1"):
        code, body = raw_get(port, "evil.example", path)
        assert code == 403 and b"step 1 prompt" not in body and b"loss" not in body
        assert raw_get(port, f"evil.example:{port}", path)[0] == 403
    for name in ("127.0.0.1", "localhost", "LOCALHOST", "[::1]"):
        code, body = raw_get(port, f"{name}:{port}")
        assert code == 200 and b'"series"' in body, name
    assert raw_get(port, f"localhost:{port + 1}")[0] == 403  # another port is another origin


def test_a_taken_port_is_a_one_line_error(served, tmp_path):
    proc = subprocess.run([SWIFT_EXT, "report", str(tmp_path / "out"), "--serve", "--port", str(served.server_port)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"port {served.server_port} on 127.0.0.1 is already in use" in proc.stderr
