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


# -- the lows: hostile logging.jsonl lines, a lone surrogate, a FIFO named as an image ---------------------
def cli(*args, timeout=120):
    return subprocess.run([SWIFT_EXT, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def with_line(run, line, at=2):
    """Put ``line`` into the run's logging.jsonl after its ``at``-th row."""
    rows = (run / "logging.jsonl").read_text().splitlines(keepends=True)
    rows.insert(at, line + "\n")
    (run / "logging.jsonl").write_text("".join(rows))
    return run


HOSTILE_LINES = {
    "huge-int": '{"loss": ' + "9" * 400 + ', "reward": 1, "global_step/max_steps": "' + "9" * 400 + '/4"}',
    "deep": "[" * 100_000 + "]" * 100_000,
    "deep-in-row": '{"loss": ' + "[" * 100_000 + "]" * 100_000 + ', "global_step/max_steps": "3/4"}',
    "torn": '{"loss": 0.5, "global_st',
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_LINES))
def test_a_hostile_logging_line_is_skipped_with_its_place_named(tmp_path, kind):
    run = with_line(write_run(tmp_path / "v0", steps=4), HOSTILE_LINES[kind])
    for proc in (cli("report", run, "-o", tmp_path / "r.html", "--json"), cli("audit", run, "--json")):
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert json.loads(proc.stdout)
        if kind in ("deep", "deep-in-row", "torn"):  # not a JSON row: skipped, and said where
            assert "logging.jsonl:3: invalid JSON" in proc.stderr and "line skipped" in proc.stderr
    loaded = report_runs.load_run(run)
    assert loaded.steps == [1, 2, 3, 4] and loaded.series["loss"][:2] == [[1, 0.1], [2, 0.2]]


def test_a_1e308_std_is_not_a_traceback(tmp_path):
    run = write_run(tmp_path / "v0", steps=8, rewards=("acc", "fmt"))
    rows = [json.loads(line) for line in (run / "logging.jsonl").read_text().splitlines()]
    for r in rows[:-1]:
        r["rewards/acc/std"] = r["reward_std"] = 1e308
    (run / "logging.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = cli("audit", run, "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    found = {f["detector"]: f for f in json.loads(proc.stdout)["findings"]}
    assert found["std_collapse"]["value"] == 1.0  # 1e308 -> 1e308: no collapse, computed without overflow
    proc = cli("report", run, "-o", tmp_path / "r.html", "--png", tmp_path / "c.png")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_a_lone_surrogate_in_a_completion_renders(tmp_path):
    run = write_run(tmp_path / "v0", steps=2)
    lines = (run / "completions.jsonl").read_text().splitlines()
    lines[0] = lines[0].replace("step 1 prompt 0 sample 0", "half a pair \\ud800 here", 1)
    (run / "completions.jsonl").write_text("\n".join(lines) + "\n")
    proc = cli("report", run, "-o", tmp_path / "r.html")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    text = (tmp_path / "r.html").read_bytes().decode("utf-8")  # valid UTF-8
    assert "half a pair \ufffd here" in text  # shown as the replacement mark
    if report_browser.chromium():
        page = report_browser.read(report_browser.load((tmp_path / "r.html").as_uri() + "#step=1")[0])
        assert page.ready and page.rows[0]["text"] == "half a pair \ufffd here"


def test_a_fifo_named_as_an_image_does_not_hang_the_report(tmp_path):
    fifo = tmp_path / "image.png"
    os.mkfifo(fifo)
    run = write_run(tmp_path / "v0", steps=2, images=[str(fifo)])
    proc = cli("report", run, "-o", tmp_path / "r.html", "--json", timeout=60)  # before the fix: hangs here
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["completions"] == 8
    assert '"report-images">{}' in (tmp_path / "r.html").read_text()  # no thumbnail: the row shows the path
