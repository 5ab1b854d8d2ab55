"""A scripted OpenAI-compatible chat endpoint (a real HTTP server process) standing in for a GPU-served judge.

    python judge_standin.py [--latency S]      # prints its port on stdout, serves until killed

What each request gets is scripted by directives in the prompt text (the completion is part of it):

- ``REPLY<text>END``  the judge's reply is <text> (default ``[[7]]``)
- ``FAIL429xN``       the first N requests carrying this prompt get 429 (with ``Retry-After: 0``), then success
- ``FAIL500xN``       the same with 500
- ``ALWAYS500``       every request gets 500
- ``SLEEP<S>``        wait S seconds before answering
- ``MALFORMED``       a 200 whose body is not JSON

``GET /stats`` returns ``{"requests", "peak_in_flight", "images", "models", "auth"}``; ``GET /v1/models`` lists one model.
"""

import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from http_recorder import send_json     # tests/ is this script's folder, first on sys.path

STATE = {"requests": 0, "in_flight": 0, "peak_in_flight": 0, "images": 0, "models": [], "auth": None, "seen": {}}
LOCK = threading.Lock()
LATENCY = 0.0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True        # keep-alive replies are not held back by delayed ACKs

    def log_message(self, *args):
        pass

    _send = send_json

    def do_GET(self):
        if self.path.endswith("/models"):
            return self._send(200, {"object": "list", "data": [{"id": "standin-judge", "object": "model"}]})
        if self.path == "/stats":
            with LOCK:
                return self._send(200, {k: v for k, v in STATE.items() if k != "seen"})
        self._send(404, {"error": "not found"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        content = body["messages"][-1]["content"]
        text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content
                                                                  if p.get("type") == "text")
        images = 0 if isinstance(content, str) else sum(1 for p in content if p.get("type") == "image_url"
                                                       and p["image_url"]["url"].startswith("data:image/"))
        with LOCK:
            STATE["requests"] += 1
            STATE["in_flight"] += 1
            STATE["peak_in_flight"] = max(STATE["peak_in_flight"], STATE["in_flight"])
            STATE["images"] += images
            STATE["models"].append(body.get("model"))
            STATE["auth"] = self.headers.get("Authorization")
            n = STATE["seen"][text] = STATE["seen"].get(text, 0) + 1
        try:
            time.sleep(LATENCY)
            m = re.search(r"SLEEP([\d.]+)", text)
            if m:
                time.sleep(float(m.group(1)))
            for code in (429, 500):
                m = re.search(rf"FAIL{code}x(\d+)", text)
                if m and n <= int(m.group(1)):
                    return self._send(code, {"error": "scripted"}, [("Retry-After", "0")] if code == 429 else [])
            if "ALWAYS500" in text:
                return self._send(500, {"error": "scripted"})
            if "MALFORMED" in text:
                return self._send(200, b"{not json")
            m = re.search(r"REPLY(.*?)END", text, re.S)
            reply = m.group(1) if m else "[[7]]"
            self._send(200, {"id": "x", "object": "chat.completion", "model": body.get("model"),
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": reply}}]})
        finally:
            with LOCK:
                STATE["in_flight"] -= 1


class Server(ThreadingHTTPServer):
    request_queue_size = 1024             # the listen backlog (set before listen(), unlike an instance attribute)
    daemon_threads = True


def main():
    global LATENCY
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.0)
    args = ap.parse_args()
    LATENCY = args.latency
    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
