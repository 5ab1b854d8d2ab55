"""LLM / VLM-as-judge rewards: score open-ended answers with a model served behind any OpenAI-compatible
chat endpoint (``swift deploy``, vLLM, an API).

One judge request per completion, sent concurrently (the reward is an async ms-swift ``AsyncORM``), each
bounded by ``request_timeout`` and by the call's deadline, retried with backoff and jitter on 429, 5xx,
timeouts and refused connections. A circuit breaker per endpoint stops a run from waiting on a judge that
is down: every row abstains, with one message at most once a minute. Verdicts are cached on disk (sqlite,
shared safely by every rank of a node) under a key of the model, the rendered prompt and the images.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import mimetypes
import os
import random
import re
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import ParamError
from ..params import Param
from .base import AsyncReward, Score, as_text
from ..extract import strip_think

logger = logging.getLogger("swift_ext.rewards")

_FORMAT_POINTWISE = ("First explain your judgement in one to three sentences. Then give the score on its own "
                     "line as [[N]], where N is a whole number from 1 (worst) to 10 (best).")
#: built-in rubrics; placeholders: {question}, {answer}, {reference}
RUBRICS: Dict[str, str] = {
    "correctness": ("You are grading an answer against a reference answer.\n\nQuestion:\n{question}\n\n"
                    "Reference answer:\n{reference}\n\nAnswer to grade:\n{answer}\n\nIs the answer correct and "
                    "complete with respect to the reference? Ignore style; penalise wrong or missing facts. "
                    + _FORMAT_POINTWISE),
    "helpfulness": ("You are grading how helpful an assistant's answer is.\n\nUser request:\n{question}\n\n"
                    "Answer:\n{answer}\n\nJudge whether the answer addresses the request, is accurate, clear and "
                    "appropriately detailed. " + _FORMAT_POINTWISE),
    "faithfulness": ("You are checking a description of the attached image(s) for hallucination.\n\nRequest:\n"
                     "{question}\n\nAnswer:\n{answer}\n\nLook at the image(s). Every object, attribute, count and "
                     "relation the answer states must be visible; any claim not supported by the image is a "
                     "hallucination. " + _FORMAT_POINTWISE),
    "instruction_following": ("You are checking whether an answer follows every instruction of a request.\n\n"
                              "Request:\n{question}\n\nAnswer:\n{answer}\n\nList the explicit constraints of the "
                              "request (format, length, language, content) and check each. " + _FORMAT_POINTWISE),
}
PAIRWISE = ("You are comparing two answers to the same request.\n\nRequest:\n{question}\n\n[Answer A]\n{answer}\n\n"
            "[Answer B]\n{reference}\n\nWhich answer is better (more correct, more helpful, better grounded)? "
            "Explain briefly, then give the verdict on its own line: [[A]] if A is better, [[B]] if B is better, "
            "[[C]] for a tie.")

_BRACKETS = re.compile(r"\[\[\s*([+-]?\d+(?:\.\d+)?)\s*(?:/\s*(\d+(?:\.\d+)?))?\s*\]\]")
_LABELLED = re.compile(r"(?i)\b(?:score|rating|grade)\b\s*(?:is|of)?\s*[:=]?\s*\**\s*([+-]?\d+(?:\.\d+)?)"
                       r"(?:\s*(?:/|out of)\s*(\d+(?:\.\d+)?))?")
_FRACTION = re.compile(r"(?<![\w.])([+-]?\d+(?:\.\d+)?)\s*/\s*(10|100|5)\b")
_VERDICT = re.compile(r"(?i)(?:^|\bverdict\b\s*[:=]?\s*|\banswer\b\s*[:=]\s*)\W*(yes|no)\b")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
_PAIR = re.compile(r"\[\[\s*([ABC])\s*\]\]")


def parse_score(text: Any, scale: float = 10.0) -> Optional[float]:
    """A judge's reply as a score in 0..1, or None when it holds no score. The first rule that matches wins:

    1. ``[[N]]`` (the last one) -> N / ``scale``; ``[[N/M]]`` -> N / M;
    2. a JSON object with a ``"score"`` key -> the value: as it is when in 0..1, else divided by ``scale``;
    3. ``Score: N/M`` or ``Rating: N out of M`` -> N / M; ``Score: N`` -> N / ``scale``;
    4. ``N/10`` (or ``/100``, ``/5``) anywhere -> N / M (the last one);
    5. a yes / no verdict (``Yes.``, ``Verdict: no``) -> 1.0 / 0.0;
    6. a bare number as the whole reply -> N / ``scale``.

    A value outside 0..1 after this is not a score (None).

    >>> parse_score("Good. [[7]]"), parse_score("Score: 3/4"), parse_score('{"score": 0.7}')
    (0.7, 0.75, 0.7)
    >>> parse_score("yes"), parse_score(" 8 "), parse_score("I cannot judge"), parse_score("[[12]]")
    (1.0, 0.8, None, None)
    """
    if not isinstance(text, str):
        return None
    value: Optional[float] = None
    found = _BRACKETS.findall(text)
    if found:
        num, den = found[-1]
        value = float(num) / (float(den) if den else scale)
    if value is None:
        value = _json_score(text, scale)
    if value is None:
        found = _LABELLED.findall(text)
        if found:
            num, den = found[-1]
            value = float(num) / (float(den) if den else scale)
    if value is None:
        found = _FRACTION.findall(text)
        if found:
            num, den = found[-1]
            value = float(num) / float(den)
    if value is None:
        m = _VERDICT.search(text.strip())
        if m:
            value = 1.0 if m.group(1).lower() == "yes" else 0.0
    if value is None and _NUMBER.fullmatch(text.strip()):
        value = float(text.strip()) / scale
    if value is None or not 0.0 <= value <= 1.0:
        return None
    return value


def _json_score(text: str, scale: float) -> Optional[float]:
    start = text.find("{")
    while start >= 0:
        end = text.find("}", start)
        if end < 0:
            return None
        try:
            obj = json.loads(text[start:end + 1])
        except ValueError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("score"), (int, float)) and not isinstance(obj["score"], bool):
            v = float(obj["score"])
            return v if 0.0 <= v <= 1.0 else v / scale
        start = text.find("{", start + 1)
    return None


def parse_pairwise(text: Any) -> Optional[float]:
    """A pairwise verdict: ``[[A]]`` (the completion is better) 1.0, ``[[C]]`` (tie) 0.5, ``[[B]]`` 0.0.

    >>> parse_pairwise("A is clearer. [[A]]"), parse_pairwise("[[C]]"), parse_pairwise("no idea")
    (1.0, 0.5, None)
    """
    found = _PAIR.findall(text) if isinstance(text, str) else []
    return {"A": 1.0, "B": 0.0, "C": 0.5}[found[-1]] if found else None


# -- row contents ---------------------------------------------------------------------------------
def question_of(row: Dict[str, Any]) -> str:
    """The request the completion answers: the last user turn of ``messages`` (ms-swift), else ``prompt``
    (a string or a message list, as TRL passes it), else ``query``."""
    for key in ("messages", "prompt", "prompts", "query"):
        value = row.get(key)
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, (list, tuple)):
            for msg in reversed(value):
                if isinstance(msg, dict) and msg.get("role") == "user":
                    return _content_text(msg.get("content"))
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type", "text") == "text")
    return as_text(content)


_MAGIC = [(b"\x89PNG", "image/png"), (b"\xff\xd8", "image/jpeg"), (b"GIF8", "image/gif"), (b"RIFF", "image/webp"),
          (b"BM", "image/bmp")]


def image_url(item: Any) -> Optional[str]:
    """An image as an OpenAI ``image_url``: a data URL for a path or bytes (ms-swift's ``{"bytes", "path"}``
    dicts included), http(s) and data URLs as they are; None for what is not an image reference.

    >>> image_url("https://x.org/a.png"), image_url({"bytes": b"\\x89PNG...", "path": None})[:22]
    ('https://x.org/a.png', 'data:image/png;base64,')
    """
    if isinstance(item, dict):
        if item.get("bytes"):
            return image_url(item["bytes"])
        return image_url(item.get("path") or item.get("url") or item.get("image"))
    if isinstance(item, (bytes, bytearray)):
        data = bytes(item)
        mime = next((m for magic, m in _MAGIC if data.startswith(magic)), "image/png")
        return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    if isinstance(item, str) and item:
        if item.startswith(("http://", "https://", "data:")):
            return item
        if os.path.isfile(item):
            with open(item, "rb") as fh:
                data = fh.read()
            mime = mimetypes.guess_type(item)[0] or next((m for magic, m in _MAGIC if data.startswith(magic)),
                                                        "image/png")
            return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return None


def images_of(row: Dict[str, Any], key: str) -> List[str]:
    value = row.get(key)
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    return [u for u in (image_url(i) for i in items) if u]


# -- the on-disk cache ----------------------------------------------------------------------------
def process_id() -> str:
    """Who wrote a verdict: ``rank<R>@<host>:<pid>`` under torchrun, else ``<host>:<pid>``."""
    import socket

    rank = os.environ.get("RANK")
    return (f"rank{rank}@" if rank is not None else "") + f"{socket.gethostname()}:{os.getpid()}"


class JudgeCache:
    """Verdicts in a sqlite file (WAL, a busy timeout): safe with every rank of a node reading and writing.

    Each verdict records the process that wrote it (:func:`process_id`). Every process counts its lookups
    (``hits``, ``shared_hits``: verdicts another process wrote, ``misses``) and adds them, once per judged
    call (:meth:`flush`), to the file's ``stats`` table, one row per process: how much the ranks of a run
    saved each other is ``SELECT * FROM stats``."""

    def __init__(self, path: str):
        self.path = os.path.abspath(os.path.expanduser(path))
        self._conn: Any = None
        self._pid = 0
        self.broken = False
        self.hits = self.shared_hits = self.misses = 0
        self._unflushed = [0, 0, 0]

    def _db(self) -> Any:
        if self.broken:
            return None
        if self._conn is None or self._pid != os.getpid():
            import sqlite3

            try:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, score REAL, "
                             "rationale TEXT, model TEXT, created REAL, writer TEXT)")
                if "writer" not in {row[1] for row in conn.execute("PRAGMA table_info(verdicts)")}:
                    try:  # a cache file from before the writer column
                        conn.execute("ALTER TABLE verdicts ADD COLUMN writer TEXT")
                    except sqlite3.OperationalError:  # another rank added it first
                        pass
                conn.execute("CREATE TABLE IF NOT EXISTS stats (writer TEXT PRIMARY KEY, hits INTEGER, "
                             "shared_hits INTEGER, misses INTEGER, updated REAL)")
            except sqlite3.Error as exc:
                self._fail(exc)
                return None
            self._conn, self._pid, self._me = conn, os.getpid(), process_id()
        return self._conn

    def _fail(self, exc: Exception) -> None:
        logger.warning("judge cache %s unusable (%s): judging without a cache", self.path, exc)
        self.broken = True

    def get(self, key: str) -> Optional[Tuple[Optional[float], str, str]]:
        """``(score, rationale, writer)`` of a cached verdict, or None (counted as a hit or a miss)."""
        db = self._db()
        if db is None:
            return None
        try:
            row = db.execute("SELECT score, rationale, writer FROM verdicts WHERE key = ?", (key,)).fetchone()
        except Exception as exc:  # sqlite3.Error: locked beyond the busy timeout, a broken file
            self._fail(exc)
            return None
        if row is None:
            self.misses += 1
            self._unflushed[2] += 1
            return None
        shared = bool(row[2]) and row[2] != self._me
        self.hits += 1
        self.shared_hits += shared
        self._unflushed[0] += 1
        self._unflushed[1] += shared
        return row[0], row[1] or "", row[2] or ""

    def put(self, key: str, score: Optional[float], rationale: str, model: str) -> None:
        db = self._db()
        if db is None:
            return
        try:
            db.execute("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?)",
                       (key, score, rationale, model, time.time(), self._me))
        except Exception as exc:  # sqlite3.Error
            self._fail(exc)

    def flush(self) -> None:
        """Add this process's counts since the last flush to the ``stats`` table (one statement)."""
        hits, shared, misses = self._unflushed
        db = self._db() if hits or misses else None
        if db is None:
            return
        try:
            db.execute("INSERT INTO stats VALUES (?, ?, ?, ?, ?) ON CONFLICT(writer) DO UPDATE SET "
                       "hits = hits + excluded.hits, shared_hits = shared_hits + excluded.shared_hits, "
                       "misses = misses + excluded.misses, updated = excluded.updated",
                       (self._me, hits, shared, misses, time.time()))
        except Exception as exc:  # sqlite3.Error
            self._fail(exc)
            return
        self._unflushed = [0, 0, 0]


# -- the circuit breaker --------------------------------------------------------------------------
class Breaker:
    """Per endpoint: ``failures`` consecutive failed attempts (refused, 5xx, timeout) open it for ``cooldown``
    seconds, during which every row abstains at once; then one request may try again."""

    def __init__(self, failures: int = 5, cooldown: float = 30.0):
        self.limit, self.cooldown = failures, cooldown
        self.failures = 0
        self.open_until = 0.0
        self.last_message = 0.0
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
                self.failures = self.limit - 1            # after the cooldown one more failure reopens it
                now = time.monotonic()
                if now - self.last_message >= 60:
                    self.last_message = now
                    logger.warning("judge endpoint %s is failing (%s): every judge row abstains for the next "
                                   "%.0f s; training goes on (this message repeats at most once a minute)",
                                   url, why, self.cooldown)


_BREAKERS: Dict[str, Breaker] = {}


class _Retry(Exception):
    def __init__(self, why: str, after: Optional[float] = None, counts: bool = True):
        super().__init__(why)
        self.after, self.counts = after, counts


class Judge(AsyncReward):
    """An LLM or VLM judge's score (0..1) of each completion, from any OpenAI-compatible chat endpoint.

    The judge gets a rubric filled with the request (the last user turn of ``messages``, or ``prompt``), the
    completion (its text after any ``</think>``) and, where the rubric uses it, the row's reference answer
    (``reference_key``), plus the row's images (paths, bytes or URLs, sent as data URLs) when ``images=true``.
    Built-in rubrics: ``correctness`` (against the reference), ``helpfulness``, ``faithfulness`` (hallucination
    against the image, in the RLAIF-V sense) and ``instruction_following``; any other value of ``rubric`` is a
    path to a text file with ``{question}``, ``{answer}`` and ``{reference}`` placeholders. ``mode=pairwise``
    compares the completion with the reference completion instead (``[[A]]`` 1.0, tie 0.5, ``[[B]]`` 0.0).

    Scores are read from the reply by :func:`parse_score` (``[[7]]``, ``{"score": 0.7}``, ``Score: 7/10``, a
    yes/no verdict, a bare number) and divided by ``scale``. Requests run concurrently (``concurrency`` per
    reward, ``SWIFT_EXT_ASYNC_CONCURRENCY`` per process), each within ``request_timeout`` and the call's
    deadline, retried ``retries`` times with exponential backoff and jitter on 429 (honouring
    ``Retry-After``), 5xx, timeouts and refused connections. After 5 failed attempts in a row the endpoint's
    circuit breaker opens for 30 s: every row abstains at once, with one message at most once a minute. The
    API key is read from the environment variable named by ``api_key_env`` (never from the spec, never
    logged). Verdicts are cached in a sqlite file (``cache``, empty for none) keyed by the model, the rendered
    prompt and the image hashes; the judge's rationale is kept with it and in ``last_details`` (shown by
    ``swift-ext rewards score -o``).

    Abstains (``None``) when ``base_url`` is empty, the rubric needs a reference the row lacks, the reply holds
    no score (logged with the raw text), or the endpoint failed after its retries or is cut off by the breaker.

    On the command line: ``--reward_funcs judge:base_url=http://127.0.0.1:8000/v1,rubric=helpfulness``; a
    long rubric goes in a file, or in an alias in ``SWIFT_EXT_CONFIG``.

    Example:
        >>> import asyncio
        >>> asyncio.run(Judge()(["an answer"], messages=[[{"role": "user", "content": "q"}]]))  # no endpoint
        [None]
    """

    name = "judge"
    abstains = ("when base_url is empty, the rubric needs a reference the row lacks, the judge's reply holds no "
                "score, or the endpoint failed after its retries (or its circuit breaker is open)")
    default_timeout = 120.0
    params = {
        "base_url": Param("", "OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (empty: every row abstains)"),
        "model": Param("", "model name sent to the endpoint (empty: the first of its /v1/models)"),
        "rubric": Param("correctness", "correctness, helpfulness, faithfulness, instruction_following, "
                        "or a path to a rubric file with {question} {answer} {reference}"),
        "mode": Param("pointwise", "score the completion alone, or compare it with the reference completion",
                      choices=("pointwise", "pairwise")),
        "reference_key": Param("solution", "dataset column holding the reference answer"),
        "images": Param(True, "send the row's images to the judge (a VLM judge)"),
        "images_key": Param("images", "dataset column holding the row's images"),
        "scale": Param(10.0, "the rubric's top score: N out of scale is N/scale", min=1e-9),
        "api_key_env": Param("OPENAI_API_KEY", "environment variable holding the API key (sent as a Bearer token)"),
        "concurrency": Param(32, "requests in flight at once for this reward", type=int, min=1, max=4096),
        "request_timeout": Param(60.0, "seconds one request may take (also bounded by the call's deadline)",
                                 min=0.01),
        "retries": Param(3, "retries of one request on 429, 5xx, timeouts and refused connections", type=int,
                         min=0, max=20),
        "backoff": Param(0.5, "first retry delay in seconds (doubled each retry, with +-50% jitter)", min=0.0),
        "max_tokens": Param(512, "tokens the judge may write", type=int, min=1),
        "temperature": Param(0.0, "judge sampling temperature", min=0.0, max=2.0),
        "cache": Param("~/.cache/swift-ext/judge.sqlite", "sqlite file of cached verdicts (empty: no cache)"),
    }

    def needed_columns(self):
        return ("messages", "prompt", "prompts", "query", self.reference_key, self.images_key)

    def setup(self) -> None:
        if self.rubric in RUBRICS:
            self._template = RUBRICS[self.rubric]
        elif os.path.isfile(os.path.expanduser(self.rubric)):
            with open(os.path.expanduser(self.rubric), encoding="utf-8") as fh:
                self._template = fh.read()
            if "{answer}" not in self._template:
                raise ParamError(f"reward judge: rubric file {self.rubric} has no {{answer}} placeholder")
        else:
            raise ParamError(f"reward judge: rubric={self.rubric!r} is neither a built-in rubric "
                             f"({', '.join(RUBRICS)}) nor a file")
        if self.mode == "pairwise":
            self._template = PAIRWISE
        self._needs_reference = "{reference}" in self._template
        self._cache = JudgeCache(self.cache) if self.cache else None
        self._model: Optional[str] = self.model or None
        self._warned_empty = False
        self._raw_logged = 0
        self.last_details: List[Optional[Dict[str, Any]]] = []

    def __getstate__(self):
        state = super().__getstate__()
        state["_cache"] = JudgeCache(self.cache) if self.cache else None
        state["_session"] = None
        return state

    # -- endpoint --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        base = self.base_url.rstrip("/")
        if base.endswith("/chat/completions"):
            return base
        if not re.search(r"/v\d+$", base):
            base += "/v1"
        return base + "/chat/completions"

    def _headers(self) -> Dict[str, str]:
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        return {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}

    def _breaker(self) -> Breaker:
        b = _BREAKERS.get(self.url)
        if b is None:
            b = _BREAKERS[self.url] = Breaker()
        return b

    async def _model_name(self, session) -> str:
        if self._model is None:
            url = self.url.rsplit("/chat/completions", 1)[0] + "/models"
            import aiohttp

            async with session.get(url, headers=self._headers(), timeout=aiohttp.ClientTimeout(total=10)) as resp:
                data = await resp.json(content_type=None)
            self._model = data["data"][0]["id"]
        return self._model

    # -- one request -----------------------------------------------------------------------------
    def render(self, completion: str, row: Dict[str, Any]) -> Optional[Tuple[str, List[str]]]:
        """``(prompt, image URLs)`` for one completion, or None when the rubric needs a missing reference."""
        reference = row.get(self.reference_key)
        if self._needs_reference:
            if reference is None or (isinstance(reference, str) and not reference.strip()):
                return None
            if not isinstance(reference, str):
                reference = json.dumps(reference, ensure_ascii=False)
        answer = strip_think(completion).strip()
        prompt = self._template.replace("{question}", question_of(row)).replace("{answer}", answer) \
            .replace("{reference}", reference if isinstance(reference, str) else "")
        return prompt, images_of(row, self.images_key) if self.images else []

    def begin_call(self, n: int) -> None:
        self.last_details = [None] * n
        self._raw_logged = 0

    async def __call__(self, completions: Sequence[Any], **kwargs: Any) -> List[Score]:  # type: ignore[override]
        """The batch, with one HTTP session (connection pool) shared by its requests."""
        if not self.base_url:
            return await super().__call__(completions, **kwargs)
        import aiohttp

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            self._session = session
            try:
                return await super().__call__(completions, **kwargs)
            finally:
                self._session = None
                if self._cache is not None:
                    self._cache.flush()

    async def ascore_at(self, index: int, completion: str, row: Dict[str, Any]) -> Score:
        score, details = await self.judge_one(completion, row)
        if index < len(self.last_details):
            self.last_details[index] = details
        return score

    async def ascore(self, completion: str, **row: Any) -> Score:
        return (await self.judge_one(completion, row))[0]

    async def judge_one(self, completion: str, row: Dict[str, Any]) -> Tuple[Score, Optional[Dict[str, Any]]]:
        if not self.base_url:
            if not self._warned_empty:
                logger.warning("reward judge has no base_url: every row abstains")
                self._warned_empty = True
            return None, None
        rendered = self.render(completion, row)
        if rendered is None:
            return None, {"error": f"no reference in column {self.reference_key!r}"}
        prompt, images = rendered
        key = hashlib.sha256(json.dumps([self.model or self.base_url, self.mode, self.max_tokens, self.temperature,
                                         prompt, [hashlib.sha256(u.encode()).hexdigest() for u in images]]
                                        ).encode()).hexdigest()
        if self._cache is not None:
            hit = self._cache.get(key)
            if hit is not None:
                return hit[0], {"rationale": hit[1], "cached": True, "cached_by": hit[2]}
        breaker = self._breaker()
        if breaker.is_open():
            return None, {"error": "circuit breaker open"}
        try:
            text = await self._request(prompt, images, breaker)
        except _Retry as exc:
            return None, {"error": str(exc)}
        except Exception as exc:  # a malformed reply, a 4xx: this row abstains
            return None, {"error": f"{type(exc).__name__}: {exc}"}
        score = parse_pairwise(text) if self.mode == "pairwise" else parse_score(text, self.scale)
        if score is None:
            if self._raw_logged < 3:
                self._raw_logged += 1
                logger.warning("reward judge: no score in the judge's reply (row abstains): %r", text[:300])
        elif self._cache is not None:
            self._cache.put(key, score, text, self._model or "")
        return score, {"rationale": text}

    async def _request(self, prompt: str, images: List[str], breaker: Breaker) -> str:
        """The judge's reply text, retried with backoff; raises :class:`_Retry` when it gives up."""
        import aiohttp

        session = self.__dict__.get("_session")
        if session is None or session.closed:
            async with aiohttp.ClientSession() as own:             # a single ascore() outside a call
                self._session = own
                try:
                    return await self._request(prompt, images, breaker)
                finally:
                    self._session = None
        content: Any = prompt
        if images:
            content = [{"type": "text", "text": prompt}] + [{"type": "image_url", "image_url": {"url": u}}
                                                            for u in images]
        attempt = 0
        while True:
            try:
                return await self._post(session, content, breaker)
            except (_Retry, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError) as exc:
                why = str(exc) or type(exc).__name__
                if not isinstance(exc, _Retry) or exc.counts:       # 429: the endpoint is alive, only busy
                    breaker.failure(self.base_url, why)
                attempt += 1
                if attempt > self.retries or breaker.is_open():
                    raise _Retry(f"gave up after {attempt} attempt(s): {why}") from None
                delay = self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
                after = exc.after if isinstance(exc, _Retry) else None
                if after is not None:
                    delay = max(delay, min(after, 30.0))
                await asyncio.sleep(delay)

    async def _post(self, session: Any, content: Any, breaker: Breaker) -> str:
        import aiohttp

        body = {"model": await self._model_name(session), "messages": [{"role": "user", "content": content}],
                "max_tokens": self.max_tokens, "temperature": self.temperature}
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        async with session.post(self.url, json=body, headers=self._headers(), timeout=timeout) as resp:
            raw = await resp.text()
            if resp.status == 429:
                after = resp.headers.get("Retry-After", "")
                raise _Retry("HTTP 429", float(after) if re.fullmatch(r"\d+(\.\d+)?", after) else None, counts=False)
            if resp.status >= 500:
                raise _Retry(f"HTTP {resp.status}")
            if resp.status >= 400:
                raise RuntimeError(f"HTTP {resp.status}: {raw[:200]}")
        try:
            text = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise RuntimeError(f"malformed reply: {raw[:200]!r}") from None
        breaker.success()
        return text if isinstance(text, str) else as_text(text)
