"""A real HTTP server on 127.0.0.1 (stdlib, in a thread) that records every request it receives and answers as
an OpenAI-compatible endpoint, or as a hostile one: slow (one byte at a time), redirecting, rate-limiting.

    with Recorder() as rec:          # rec.url == "http://127.0.0.1:PORT/v1"
        rec.script["/v1/chat/completions"] = ("redirect", 307, other.url + "/chat/completions")
        ...
        rec.requests                 # [{"method", "path", "headers", "body"}]

A script entry per path (the default answers chat completions with ``n`` choices and lists one model):
``("redirect", status, location)``, ``("trickle", seconds_per_byte)`` (a 200 whose body arrives one byte at a
time), ``("status", code, headers, times)`` (that answer for the first ``times`` requests, then the default).
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def send_json(handler, code, obj, headers=()):
    """Answer a ``BaseHTTPRequestHandler`` request with ``obj`` (JSON, or bytes as they are)."""
    data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for k, v in headers:
        handler.send_header(k, v)
    handler.end_headers()
    handler.wfile.write(data)


class Recorder:
    def __init__(self, delay: float = 0.0):
        self.requests = []
        self.script = {}
        self.delay = delay
        self.in_flight = self.peak = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            _send = send_json

            def _handle(self, method):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                with outer.lock:
                    outer.requests.append({"method": method, "path": self.path, "headers": dict(self.headers),
                                           "body": raw.decode("utf-8", "replace")})
                    outer.in_flight += 1
                    outer.peak = max(outer.peak, outer.in_flight)
                    entry = outer.script.get(self.path)
                    if entry and entry[0] == "status":
                        if entry[3] <= 0:
                            entry = None
                        else:
                            outer.script[self.path] = (*entry[:3], entry[3] - 1)
                try:
                    time.sleep(outer.delay)
                    if entry and entry[0] == "redirect":
                        return self._send(entry[1], b"", [("Location", entry[2])])
                    if entry and entry[0] == "status":
                        return self._send(entry[1], {"error": f"scripted {entry[1]}"}, entry[2])
                    if entry and entry[0] == "trickle":
                        body = json.dumps({"data": [{"id": "m"}]}).encode() + b" " * 200
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        for i in range(len(body)):
                            self.wfile.write(body[i:i + 1])
                            self.wfile.flush()
                            time.sleep(entry[1])
                        return
                    if self.path.endswith("/models"):
                        return self._send(200, {"data": [{"id": "served-model"}]})
                    body = json.loads(raw or b"{}")
                    k = body.get("n", 1)
                    self._send(200, {"choices": [{"index": i, "message": {"content": f"<answer>{i}</answer>"}}
                                                 for i in range(k)]})
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with outer.lock:
                        outer.in_flight -= 1

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.url = self.origin + "/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def bodies(self):
        return "\n".join(r["body"] for r in self.requests)
