"""A minimal JSON-over-HTTP client for the sandbox services (stdlib only, called from worker threads).

TEMPORARY: swift-ext's one HTTP client is ``swift_ext.net`` (being built); this module keeps the sandbox
backends working until then and must move onto it. It has the habits every swift-ext client needs: a
concurrency limit, retries with exponential backoff and jitter on 429 (honouring ``Retry-After``), 5xx,
timeouts and refused connections, a deadline no attempt or wait goes past, a circuit breaker per address, an
API key read from an environment variable and sent as a Bearer token, and no redirects followed (a sandbox
API never redirects; following one could hand the key to another origin).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Dict, Optional

logger = logging.getLogger("swift_ext.sandbox")


class HttpError(Exception):
    """The service did not give a usable answer (after retries, or at once for a 4xx / malformed reply)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise HttpError(f"HTTP {code}: the service redirects to {newurl}; not followed")


_OPENER = urllib.request.build_opener(_NoRedirect)


class Breaker:
    """``failures`` failed requests in a row open the breaker for ``cooldown`` seconds: calls fail at once."""

    def __init__(self, failures: int = 5, cooldown: float = 30.0):
        self.limit, self.cooldown = failures, cooldown
        self.failures = 0
        self.open_until = 0.0
        self.lock = threading.Lock()

    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    def success(self) -> None:
        with self.lock:
            self.failures = 0

    def failure(self, url: str, why: str) -> None:
        with self.lock:
            self.failures += 1
            if self.failures >= self.limit and not self.is_open():
                self.open_until = time.monotonic() + self.cooldown
                self.failures = self.limit - 1
                logger.warning("sandbox service %s is failing (%s): its runs fail at once for the next %.0f s",
                               url, why, self.cooldown)


_BREAKERS: Dict[str, Breaker] = {}
_BREAKERS_LOCK = threading.Lock()


def breaker_for(url: str) -> Breaker:
    with _BREAKERS_LOCK:
        return _BREAKERS.setdefault(url, Breaker())


class JsonClient:
    """POST JSON, get JSON: at most ``concurrency`` requests in flight, ``retries`` retries, one breaker per
    address, the API key from ``api_key_env`` (when set)."""

    def __init__(self, url: str, concurrency: int = 16, retries: int = 3, backoff: float = 0.5,
                 api_key_env: Optional[str] = None):
        self.url = url
        self.slots = threading.BoundedSemaphore(max(1, concurrency))
        self.retries, self.backoff, self.api_key_env = retries, backoff, api_key_env
        self.breaker = breaker_for(url)

    def headers(self) -> Dict[str, str]:
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        return {"Content-Type": "application/json", "Accept": "application/json",
                **({"Authorization": f"Bearer {key}"} if key else {})}

    def post(self, body: Dict[str, Any], deadline: float) -> Any:
        """The decoded reply to ``body``, within ``deadline`` (a ``time.monotonic()`` value); HttpError else."""
        if self.breaker.is_open():
            raise HttpError(f"circuit breaker open for {self.url}")
        data = json.dumps(body).encode("utf-8")
        attempt = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HttpError(f"no answer from {self.url} before the deadline")
            try:
                if not self.slots.acquire(timeout=left):
                    raise HttpError(f"no free connection to {self.url} before the deadline")
                try:
                    return self._once(data, deadline - time.monotonic())
                finally:
                    self.slots.release()
            except _Retry as exc:
                if exc.counts:
                    self.breaker.failure(self.url, str(exc))
                attempt += 1
                wait = self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
                if exc.after is not None:                # the service says when: believe it
                    wait = min(exc.after, 30.0)
                if attempt > self.retries or self.breaker.is_open() or time.monotonic() + wait >= deadline:
                    raise HttpError(f"gave up after {attempt} attempt(s): {exc}") from None
                time.sleep(wait)

    def _once(self, data: bytes, timeout: float) -> Any:
        req = urllib.request.Request(self.url, data=data, headers=self.headers(), method="POST")
        try:
            with _OPENER.open(req, timeout=max(0.01, timeout)) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            text = exc.read()[:300].decode("utf-8", "replace")
            if exc.code == 429:
                after = exc.headers.get("Retry-After", "") if exc.headers else ""
                raise _Retry("HTTP 429", float(after) if re.fullmatch(r"\d+(\.\d+)?", after) else None,
                             counts=False) from None
            if exc.code >= 500:
                raise _Retry(f"HTTP {exc.code}: {text}") from None
            raise HttpError(f"HTTP {exc.code}: {text}") from None
        except HttpError:
            raise
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            raise _Retry(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from None
        try:
            reply = json.loads(raw)
        except ValueError:
            self.breaker.failure(self.url, "malformed reply")
            raise HttpError(f"malformed reply from {self.url}: {raw[:200]!r}") from None
        self.breaker.success()
        return reply


class _Retry(Exception):
    def __init__(self, why: str, after: Optional[float] = None, counts: bool = True):
        super().__init__(why)
        self.after, self.counts = after, counts


__all__ = ["JsonClient", "HttpError", "Breaker", "breaker_for"]
