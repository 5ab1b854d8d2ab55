"""The one HTTP client for every OpenAI-compatible or sandbox service swift-ext calls, and the one image
encoder for such requests.

API (everything here is stable for the judge, ``filter --endpoint``, the sandbox and rollout backends):

* :class:`Client` ``(base_url, *, api_key_env=None, api_key=None, concurrency=8, rpm=None, tpm=None, retries=3,
  backoff=0.5, timeout=60.0, breaker=None, use_breaker=True, max_response_bytes=64 MiB, headers=None)``

  - ``post_json(path, body, *, tokens=0, timeout=None, deadline=None, retries=None) -> Any``
  - ``get_json(path, *, timeout=None, deadline=None, retries=None) -> Any``
  - ``await apost_json(...)``, ``await aget_json(...)``: the same off the event loop
  - ``url(path)``, ``close()``

* errors (all :class:`~swift_ext.errors.SwiftExtError`): :class:`NetError` (``retryable``), :class:`HTTPError`
  (``status``, ``body``), :class:`DeadlineExceeded`, :class:`BreakerOpen`
* :class:`Breaker`, :func:`breaker_for` (one per origin, shared by a process), :class:`RateLimit`,
  :func:`origin`, :func:`retry_after`
* :func:`image_url` (a path, bytes, base64 or URL -> an ``image_url`` URL, through the one media check),
  :func:`data_url` (image bytes -> a data URL)
"""

from .client import (Breaker, BreakerOpen, Client, DeadlineExceeded, HTTPError, NetError, RateLimit, breaker_for,
                     origin, retry_after)
from .images import data_url, image_url

__all__ = ["Client", "NetError", "HTTPError", "DeadlineExceeded", "BreakerOpen", "Breaker", "breaker_for",
           "RateLimit", "origin", "retry_after", "image_url", "data_url"]
