"""A real stand-in for ``swift`` in the rollout-lifecycle tests (vLLM cannot run on this CPU machine).

Used as ``swift-ext launch grpo --swift "python tests/rollout_standin.py"``, so it is called exactly like
``swift``: ``rollout_standin.py rollout --host H --port P ...`` starts a real HTTP server (Python's
``http.server``) answering ``GET /health`` like ms-swift's rollout server; ``rollout_standin.py rlhf ...``
is a stand-in trainer that calls the server's ``/health`` at ``--vllm_server_host/--vllm_server_port`` the
way ms-swift's VLLMClient does (urllib, honouring the proxy variables it was given) and then exits or sleeps.
Each process also starts a child (``sleep``-like) so the tests can check that no grandchild survives.

Environment:
  STANDIN_MODE    healthy (default) | crash (exit 3 during start) | never (/health answers 503) |
                  die_after=S (healthy, then exits 5 after S seconds)
  STANDIN_DELAY   seconds before the server binds (default 0.5)
  STANDIN_TRAIN   exit=N (default exit=0) | sleep (until killed)
  STANDIN_MOVE_TO serve on this port instead of --port (ms-swift moves silently when its port is busy)
  STANDIN_RECORD  directory; each role writes <role>.json: pid, child pid, argv, relevant env, health result
  STANDIN_SETSID  1: the child leaves the process group with setsid (as some launchers' workers do)
"""

import json
import os
import subprocess
import sys
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def flag(argv, name, default=None):
    if f"--{name}" in argv:
        i = argv.index(f"--{name}")
        if i + 1 < len(argv):
            return argv[i + 1]
    return default


def record(role, **data):
    folder = os.environ.get("STANDIN_RECORD")
    if not folder:
        return
    path = os.path.join(folder, f"{role}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def spawn_child():
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                            start_new_session=os.environ.get("STANDIN_SETSID") == "1")


def env_view():
    keys = ("CUDA_VISIBLE_DEVICES", "NPROC_PER_NODE", "NO_PROXY", "no_proxy", "http_proxy", "HTTP_PROXY",
            "https_proxy", "MAX_PIXELS", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")
    return {k: os.environ[k] for k in keys if k in os.environ}


class Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802
        if self.path.rstrip("/") == "/health":
            body = json.dumps({"status": "ok"} if self.status == 200 else {"status": "loading"}).encode()
            self.send_response(self.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, fmt, *args):
        print("INFO:     " + fmt % args, flush=True)


def serve(argv):
    mode = os.environ.get("STANDIN_MODE", "healthy")
    host, port = flag(argv, "host", "0.0.0.0"), int(flag(argv, "port", "8000"))
    # STANDIN_MOVE_TO=P: bind P instead, like ms-swift's find_free_port when the asked port is busy
    port = int(os.environ.get("STANDIN_MOVE_TO") or port)
    child = spawn_child()
    record("rollout", pid=os.getpid(), child=child.pid, argv=argv, env=env_view())
    print("INFO:     loading model (stand-in)", flush=True)
    time.sleep(float(os.environ.get("STANDIN_DELAY", "0.5")))
    if mode == "crash":
        print("Traceback (most recent call last):", flush=True)
        print("torch.OutOfMemoryError: CUDA out of memory (stand-in)", flush=True)
        child.kill()
        sys.exit(3)
    Health.status = 503 if mode == "never" else 200
    server = ThreadingHTTPServer((host, port), Health)
    print(f"INFO:     Uvicorn running on http://{host}:{port} (Press CTRL+C to quit)", flush=True)
    if mode.startswith("die_after="):
        import threading

        threading.Timer(float(mode.split("=", 1)[1]), lambda: os._exit(5)).start()
    server.serve_forever()


def train(argv):
    host = flag(argv, "vllm_server_host")
    port = flag(argv, "vllm_server_port")
    health = None
    if host and port:
        try:  # like ms-swift's VLLMClient.check_server: plain HTTP, proxies from the environment
            with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=5) as resp:
                health = resp.status
        except Exception as exc:  # the test asserts on this
            health = repr(exc)
    child = spawn_child()
    record("train", pid=os.getpid(), child=child.pid, argv=argv, env=env_view(), health=health)
    print(f"stand-in trainer: /health -> {health}", flush=True)
    behaviour = os.environ.get("STANDIN_TRAIN", "exit=0")
    if behaviour == "sleep":
        while True:
            time.sleep(1)
    child.kill()
    sys.exit(int(behaviour.split("=", 1)[1]))


if __name__ == "__main__":
    command, rest = sys.argv[1], sys.argv[2:]
    (serve if command == "rollout" else train)(rest)
