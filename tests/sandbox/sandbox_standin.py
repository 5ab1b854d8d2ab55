"""A stand-in for the SandboxFusion and Piston services (neither can run here: no container images). It
implements the documented subset of each run API on a real socket and runs the programs it receives with
swift-ext's real local sandbox, answering in the service's own reply format; ``behaviour`` makes it answer
429 (with Retry-After), 500, slowly, or with a malformed body, for the first ``times`` requests."""

import http.server
import json
import threading
import time

from swift_ext.sandbox import Limits, Program
from swift_ext.sandbox.local import LocalSandbox


class SandboxStandin:
    def __init__(self, api, behaviour="ok", times=10 ** 9, delay=0.0, redirect_to=None):
        self.api, self.behaviour, self.times, self.delay, self.redirect_to = api, behaviour, times, delay, redirect_to
        self.box = LocalSandbox()
        self.requests, self.headers = [], []
        self.in_flight = self.peak = 0
        lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, data, extra=None):
                data = data if isinstance(data, bytes) else json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):   # the client gave up (its deadline)
                    pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    outer.requests.append((self.path, body))
                    outer.headers.append(dict(self.headers))
                    n = len(outer.requests)
                    outer.in_flight += 1
                    outer.peak = max(outer.peak, outer.in_flight)
                try:
                    reply = self._answer(body, n)
                finally:
                    with lock:
                        outer.in_flight -= 1         # before replying: the client may send its next request
                self._send(*reply)

            def _answer(self, body, n):
                expected = "/run_code" if outer.api == "fusion" else "/api/v2/execute"
                if self.path != expected:
                    return 404, {"message": f"no route {self.path}"}
                if outer.redirect_to:
                    return 302, b"", {"Location": outer.redirect_to}
                misbehave = n <= outer.times
                if misbehave and outer.behaviour == "429":
                    return 429, {"message": "slow down"}, {"Retry-After": "0.05"}
                if misbehave and outer.behaviour == "500":
                    return 500, {"message": "internal error"}
                if misbehave and outer.behaviour == "malformed":
                    return 200, b"<html>not json"
                if outer.delay:
                    time.sleep(outer.delay)
                return 200, outer.run(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def run(self, body):
        if self.api == "fusion":
            r = self.box.run(Program(body["code"], body["language"], body.get("stdin") or ""),
                             Limits(time=body["run_timeout"], memory_mb=body["memory_limit_MB"]))
            run_status = "TimeLimitExceeded" if r.status == "timeout" else "Finished" if r.exit_code is not None \
                else "Error"
            return {"status": "Success" if r.status == "ok" else "Failed", "message": "", "compile_result": None,
                    "run_result": {"status": run_status, "execution_time": r.seconds, "return_code": r.exit_code,
                                   "stdout": r.stdout, "stderr": r.stderr}, "files": {}}
        main = body["files"][0]
        r = self.box.run(Program(main["content"], body["language"], body.get("stdin") or ""),
                         Limits(time=body["run_timeout"] / 1000, memory_mb=body["run_memory_limit"] >> 20))
        status = {"timeout": "TO", "output_limit": "OL", "killed": "SG", "error": "RE"}.get(r.status)
        return {"language": body["language"], "version": "3.11.0",
                "run": {"stdout": r.stdout, "stderr": r.stderr, "output": r.stdout + r.stderr,
                        "code": None if status == "TO" else r.exit_code,
                        "signal": "SIGKILL" if status == "TO" else None, "status": status,
                        "wall_time": int(r.seconds * 1000)}}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.box.close()
