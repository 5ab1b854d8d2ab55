"""The one HTTP client for the services swift-ext calls (OpenAI-compatible endpoints, sandboxes): JSON in,
JSON out, with every guard a training job needs against a slow, failing or hostile server.

* **Total deadline per attempt** (``timeout``): connect, headers and body together. A watchdog shuts the
  socket when it passes, so a server that sends one byte a second cannot hold a request past it. An optional
  ``deadline`` per call bounds every attempt and every backoff sleep together.
* **Retries** (``retries``) with exponential backoff and +-50 % jitter on 429, 5xx, timeouts and refused or
  reset connections; ``Retry-After`` (seconds or an HTTP date) is honoured up to 30 s and the deadline.
* **Concurrency limit** (``concurrency`` requests in flight per client, sync and async callers together).
* **Rate limits**: ``rpm`` requests and ``tpm`` tokens per minute (a sliding 60 s window; the caller says
  how many tokens a request may use, e.g. prompt estimate + ``max_tokens``), the idea of verl's
  rate-limited reward manager.
* **Circuit breaker** per origin (:class:`Breaker`): after ``failures`` failed attempts in a row every call
  fails at once for ``cooldown`` seconds (:class:`BreakerOpen`), with one log line a minute at most.
* **Credentials**: the API key is read from the environment variable ``api_key_env`` at each request (or
  given as ``api_key``), sent as ``Authorization: Bearer``, never logged; redirects (at most 5, http(s) only)
  keep it only while the origin (scheme, host, port) stays the same.
* **Response cap** (``max_response_bytes``): a longer body is an error, not an out-of-memory.

Sync calls run on the caller's thread; the async ones (``apost_json``, ``aget_json``) run the same code on
the client's own thread pool, so both share one implementation and one set of limits.

>>> c = Client("http://127.0.0.1:9/v1", retries=0, timeout=1)
>>> c.url("/models"), c.url("chat/completions")
('http://127.0.0.1:9/v1/models', 'http://127.0.0.1:9/v1/chat/completions')
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import random
import socket
import threading
import time
import urllib.parse
from typing import Any, Dict, Optional, Tuple

from ..errors import SwiftExtError

logger = logging.getLogger("swift_ext.net")

MAX_REDIRECTS = 5
RETRY_AFTER_CAP = 30.0


class NetError(SwiftExtError):
    """A request that did not produce a usable reply: ``retryable`` says whether another attempt might."""

    def __init__(self, message: str, retryable: bool = True, after: Optional[float] = None):
        super().__init__(message)
        self.retryable, self.after = retryable, after


class HTTPError(NetError):
    """The server answered with an error status: ``status``, the first 500 characters of ``body``."""

    def __init__(self, url: str, status: int, body: str, after: Optional[float] = None):
        self.url, self.status, self.body = url, status, body
        super().__init__(f"{url}: HTTP {status}: {body[:500]}", retryable=status == 429 or status >= 500,
                         after=after)


class DeadlineExceeded(NetError):
    """An attempt ran past its total deadline (connect + headers + body)."""


class BreakerOpen(NetError):
    """The origin's circuit breaker is open: the call failed without a request."""

    def __init__(self, message: str):
        super().__init__(message, retryable=False)


def origin(url: str) -> Tuple[str, str, int]:
    """``(scheme, host, port)`` of a URL: what must stay the same for credentials to follow a redirect.

    >>> origin("http://A.example/x"), origin("https://a.example:443/y")
    (('http', 'a.example', 80), ('https', 'a.example', 443))
    """
    p = urllib.parse.urlsplit(url)
    scheme = p.scheme.lower()
    return scheme, (p.hostname or "").lower(), p.port or (443 if scheme == "https" else 80)


class Breaker:
    """Per origin: ``failures`` consecutive failed attempts (refused, 5xx, timeout) open it for ``cooldown``
    seconds, during which calls fail at once; then one attempt may try again (one more failure reopens it)."""

    def __init__(self, failures: int = 5, cooldown: float = 30.0, name: str = ""):
        self.limit, self.cooldown, self.name = failures, cooldown, name
        #: what an open breaker means to its users, in the one message it logs (a client may set it)
        self.note = "calls to it fail at once"
        self.failures = 0
        self.open_until = 0.0
        self.last_message = 0.0
        self.lock = threading.Lock()

    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    def success(self) -> None:
        with self.lock:
            self.failures = 0

    def failure(self, why: str) -> None:
        with self.lock:
            self.failures += 1
            if self.failures >= self.limit and not self.is_open():
                self.open_until = time.monotonic() + self.cooldown
                self.failures = self.limit - 1
                now = time.monotonic()
                if now - self.last_message >= 60:
                    self.last_message = now
                    logger.warning("endpoint %s is failing (%s): %s for the next %.0f s (this message repeats at "
                                   "most once a minute)", self.name, why, self.note, self.cooldown)


_BREAKERS: Dict[Tuple[str, str, int], Breaker] = {}
_BREAKERS_LOCK = threading.Lock()


def breaker_for(url: str, failures: int = 5, cooldown: float = 30.0) -> Breaker:
    """The process-wide breaker of ``url``'s origin (every client of one server shares it)."""
    key = origin(url)
    with _BREAKERS_LOCK:
        b = _BREAKERS.get(key)
        if b is None:
            b = _BREAKERS[key] = Breaker(failures, cooldown, name="%s://%s:%d" % key)
        return b


class RateLimit:
    """At most ``rpm`` requests and ``tpm`` tokens in any 60 s window (None: no limit). ``acquire`` blocks
    until the request fits, or raises :class:`DeadlineExceeded` when it would not fit before ``until``."""

    WINDOW = 60.0

    def __init__(self, rpm: Optional[float] = None, tpm: Optional[float] = None):
        self.rpm, self.tpm = rpm, tpm
        self._log: "collections.deque[Tuple[float, float]]" = collections.deque()
        self._tokens = 0.0
        self._lock = threading.Lock()

    def _wait_for(self, tokens: float, now: float) -> float:
        while self._log and self._log[0][0] <= now - self.WINDOW:
            self._tokens -= self._log.popleft()[1]
        wait = 0.0
        if self.rpm is not None and len(self._log) >= self.rpm:
            wait = max(wait, self._log[len(self._log) - int(self.rpm)][0] + self.WINDOW - now)
        if self.tpm is not None and self._log and self._tokens + tokens > self.tpm:
            need, acc = self._tokens + tokens - self.tpm, 0.0
            for t, k in self._log:
                acc += k
                if acc >= need:
                    wait = max(wait, t + self.WINDOW - now)
                    break
        return wait

    def acquire(self, tokens: float = 0.0, until: Optional[float] = None) -> None:
        if self.rpm is None and self.tpm is None:
            return
        while True:
            with self._lock:
                now = time.monotonic()
                wait = self._wait_for(tokens, now)
                if wait <= 0:
                    self._log.append((now, float(tokens)))
                    self._tokens += tokens
                    return
            if until is not None and now + wait > until:
                raise DeadlineExceeded(f"rate limit: the request would wait {wait:.1f} s, past its deadline")
            time.sleep(min(wait, 1.0))


def retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date), None when absent or unreadable.

    >>> retry_after("2"), retry_after("1.5"), retry_after(None), retry_after("soon")
    (2.0, 1.5, None, None)
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when is not None else None


class Client:
    """A JSON client of one service (see the module docstring for what each setting guards against).

    ``base_url`` is joined with each call's path (``"/chat/completions"``); a full ``http(s)://`` URL as the
    path is used as it is. ``headers`` are added to every request."""

    def __init__(self, base_url: str, *, api_key_env: Optional[str] = None, api_key: Optional[str] = None,
                 concurrency: int = 8, rpm: Optional[float] = None, tpm: Optional[float] = None,
                 retries: int = 3, backoff: float = 0.5, timeout: float = 60.0,
                 breaker: Optional[Breaker] = None, use_breaker: bool = True,
                 max_response_bytes: int = 64 * 1024 * 1024, headers: Optional[Dict[str, str]] = None):
        if not str(base_url).startswith(("http://", "https://")):
            raise SwiftExtError(f"{base_url!r}: expected an http:// or https:// URL")
        self.base_url = str(base_url).rstrip("/")
        self.api_key_env, self._api_key = api_key_env, api_key
        self.concurrency = max(1, int(concurrency))
        self.limit = RateLimit(rpm, tpm)
        self.retries, self.backoff, self.timeout = max(0, int(retries)), max(0.0, float(backoff)), float(timeout)
        self.breaker = breaker if breaker is not None else (breaker_for(self.base_url) if use_breaker else None)
        self.max_response_bytes = int(max_response_bytes)
        self.headers = dict(headers or {})
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._pool: Any = None                     # a ThreadPoolExecutor, made on the first async call
        self._pool_lock = threading.Lock()

    def __getstate__(self):  # picklable: locks and threads are rebuilt
        state = self.__dict__.copy()
        state.update(_slots=None, _pool=None, _pool_lock=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._pool_lock = threading.Lock()
        if self.breaker is not None:
            self.breaker = breaker_for(self.base_url, self.breaker.limit, self.breaker.cooldown)

    # -- public API ----------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + "/" + path.lstrip("/")

    def post_json(self, path: str, body: Any, *, tokens: float = 0.0, timeout: Optional[float] = None,
                  deadline: Optional[float] = None, retries: Optional[int] = None) -> Any:
        """POST ``body`` as JSON and return the decoded JSON reply. ``tokens``: what the request counts against
        ``tpm``; ``timeout``: this call's per-attempt deadline; ``deadline``: seconds for every attempt and
        backoff together. Raises :class:`HTTPError` (a 4xx at once, 429/5xx after the retries),
        :class:`DeadlineExceeded`, :class:`BreakerOpen` or :class:`NetError`."""
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return self._call("POST", path, data, tokens, timeout, deadline, retries)

    def get_json(self, path: str, *, timeout: Optional[float] = None, deadline: Optional[float] = None,
                 retries: Optional[int] = None) -> Any:
        """GET ``path`` and return the decoded JSON reply (errors as :meth:`post_json`)."""
        return self._call("GET", path, None, 0.0, timeout, deadline, retries)

    async def apost_json(self, path: str, body: Any, **kw: Any) -> Any:
        """:meth:`post_json` without blocking the event loop (on the client's thread pool)."""
        return await self._in_pool(self.post_json, path, body, **kw)

    async def aget_json(self, path: str, **kw: Any) -> Any:
        """:meth:`get_json` without blocking the event loop."""
        return await self._in_pool(self.get_json, path, **kw)

    def close(self) -> None:
        """Stop the async thread pool (requests in flight finish within their deadline)."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
                self._pool = None

    # -- internals -----------------------------------------------------------------------------------
    async def _in_pool(self, fn, *args, **kw):
        from concurrent.futures import ThreadPoolExecutor

        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="swift-ext-net")
            pool = self._pool
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, lambda: fn(*args, **kw))

    def _auth(self) -> Optional[str]:
        key = self._api_key
        if key is None and self.api_key_env:
            key = os.environ.get(self.api_key_env) or None
        return key

    def _call(self, method, path, data, tokens, timeout, deadline, retries):
        url = self.url(path)
        timeout = self.timeout if timeout is None else float(timeout)
        retries = self.retries if retries is None else max(0, int(retries))
        until = None if deadline is None else time.monotonic() + float(deadline)
        attempt = 0
        while True:
            if self.breaker is not None and self.breaker.is_open():
                raise BreakerOpen(f"{url}: circuit breaker open after repeated failures")
            budget = timeout if until is None else min(timeout, until - time.monotonic())
            if budget <= 0:
                raise DeadlineExceeded(f"{url}: deadline passed after {attempt} attempt(s)")
            try:
                self.limit.acquire(tokens, time.monotonic() + budget)
                with self._slots:
                    budget = timeout if until is None else min(timeout, until - time.monotonic())
                    result = self._attempt(method, url, data, max(budget, 0.001))
            except NetError as exc:
                counts = exc.retryable and not (isinstance(exc, HTTPError) and exc.status == 429)
                if self.breaker is not None and counts:
                    self.breaker.failure(str(exc)[:200])
                attempt += 1
                if not exc.retryable or attempt > retries or (self.breaker is not None and self.breaker.is_open()):
                    if attempt > 1 and exc.retryable:
                        exc.args = (f"{exc.args[0]} (gave up after {attempt} attempts)",)
                    raise
                delay = self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
                if exc.after is not None:
                    delay = max(delay, min(exc.after, RETRY_AFTER_CAP))
                if until is not None and time.monotonic() + delay >= until:
                    raise DeadlineExceeded(f"{url}: deadline passed after {attempt} attempt(s): {exc}") from None
                time.sleep(delay)
                continue
            if self.breaker is not None:
                self.breaker.success()
            return result

    def _attempt(self, method: str, url: str, data: Optional[bytes], budget: float) -> Any:
        """One request (following redirects) within ``budget`` seconds in all."""
        start_origin = origin(url)
        end = time.monotonic() + budget
        for _ in range(MAX_REDIRECTS + 1):
            headers = {"Accept": "application/json", "User-Agent": "swift-ext", **self.headers}
            if data is not None:
                headers["Content-Type"] = "application/json"
            key = self._auth()
            if key and origin(url) == start_origin:      # credentials never follow a redirect to another origin
                headers["Authorization"] = f"Bearer {key}"
            status, resp_headers, body = _exchange(method, url, data, headers, end, self.max_response_bytes)
            if status in (301, 302, 303, 307, 308) and resp_headers.get("location"):
                target = urllib.parse.urljoin(url, resp_headers["location"])
                if urllib.parse.urlsplit(target).scheme not in ("http", "https"):
                    raise NetError(f"{url}: redirect to a non-HTTP URL refused", retryable=False)
                if status in (301, 302, 303) and method == "POST":
                    method, data = "GET", None
                url = target
                continue
            text = body.decode("utf-8", "replace")
            if status >= 400:
                raise HTTPError(url, status, text, after=retry_after(resp_headers.get("retry-after")))
            try:
                return json.loads(text)
            except ValueError:
                raise NetError(f"{url}: malformed reply (not JSON): {text[:200]!r}", retryable=False) from None
        raise NetError(f"{url}: more than {MAX_REDIRECTS} redirects", retryable=False)


def _exchange(method: str, url: str, data: Optional[bytes], headers: Dict[str, str], end: float,
              cap: int) -> Tuple[int, Dict[str, str], bytes]:
    """One HTTP exchange that cannot outlive ``end`` (a monotonic time): a watchdog closes the socket then."""
    import http.client  # imported here: importing a reward that may use the client stays light

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NetError(f"{url}: not an http(s) URL", retryable=False)
    remaining = end - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceeded(f"{url}: no time left for the request")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    kw = {}
    if parts.scheme == "https":
        import ssl

        kw = {"context": ssl.create_default_context()}
    conn = cls(parts.hostname, parts.port, timeout=remaining, **kw)
    expired = threading.Event()

    def kill():
        expired.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(remaining, kill)
    timer.daemon = True
    timer.start()
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request(method, target, body=data, headers=headers)
        resp = conn.getresponse()
        chunks, got = [], 0
        while True:
            chunk = resp.read(65536)
            if not chunk:
                break
            got += len(chunk)
            if got > cap:
                raise NetError(f"{url}: reply larger than {cap} bytes", retryable=False)
            chunks.append(chunk)
            if expired.is_set():
                break
        if expired.is_set():
            raise DeadlineExceeded(f"{url}: no complete reply within {remaining:.3g} s")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, b"".join(chunks)
    except NetError:
        raise
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set() or isinstance(exc, socket.timeout):
            raise DeadlineExceeded(f"{url}: no complete reply within {remaining:.3g} s") from None
        raise NetError(f"{url}: {type(exc).__name__}: {exc}") from None
    finally:
        timer.cancel()
        conn.close()
