"""Pass-rate filtering and curricula: sample k completions per prompt, score them, keep what GRPO can learn from.

GRPO learns nothing from a prompt whose k completions all score the same (every advantage is zero).
:func:`run` samples ``num_generations`` completions for each prompt of a GRPO dataset (ms-swift's own
inference engines in-process, see :mod:`swift_ext.bridge.infer`, or any OpenAI-compatible endpoint such as
``swift deploy`` or a vLLM server, see :class:`EndpointSampler`), scores them with swift-ext rewards through
the one scoring path (:func:`swift_ext.scoring.score.score_results`), and writes every row back with

* ``pass_rate``: the fraction of its completions that pass (score at least ``pass_threshold`` on the chosen
  reward, or on the weighted sum of all rewards as ms-swift computes it);
* ``reward_means``: each reward's mean over the row's completions;

then keeps a pass-rate band (``keep=(0.1, 0.9)``), orders rows easy to hard (``curriculum``) or splits them
into difficulty buckets.

Long runs are safe to interrupt: each prompt's completions are appended to a checkpoint (JSONL, one line per
prompt, flushed and fsynced) keyed by the prompt; a rerun with the same settings reads it and samples only
the prompts it lacks. A prompt's seed is derived from ``seed`` and its key, so its samples do not depend on
the order or the company it was sampled in. Outputs are written atomically at the end; rows that cannot be
used go to a reject file as ``file:line: reason``; ``rows_in == rows_kept + rows_dropped + rows_rejected``.

Data-parallel: :func:`sample_shard` samples shard ``I`` of ``N`` (every ``N``-th prompt in dataset order,
from ``I``) into its own checkpoint, resumable like the whole run, so ``N`` processes (one per GPU, node or
endpoint) sample at once; :func:`merge_shards` joins the shard checkpoints into the run's checkpoint and
:func:`run` then scores and selects without sampling anything: the outputs are byte for byte what one
process writes, since a prompt's samples depend only on its seed. An :class:`EndpointSampler` given several
base URLs spreads its prompts over them.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..scoring import results as results_mod
from ..scoring import score as scoring
from ..errors import ConfigError, SwiftExtError
from ..io import BadLine, JsonlAppender, JsonlWriter, RejectFile, default_reject_path, iter_jsonl
from ..io.media import MediaError, check_value
from ..net import Client, NetError, image_url

CHECKPOINT_VERSION = 2     # 2: the sampler's source (endpoint URL) is part of the identity; lines are checked
#: the columns filter writes into each row
OUTPUT_COLUMNS = ("pass_rate", "reward_means", "difficulty_bucket")
PROMPT_TEXT_KEYS = ("query", "prompt", "question", "problem")


# -- settings ---------------------------------------------------------------------------------------------
@dataclass
class Sampling:
    """How completions are drawn: the GRPO run's ``num_generations``, ``temperature``,
    ``max_completion_length`` and ``top_p``, plus the seed prompts' seeds derive from."""

    num_generations: int = 8
    temperature: float = 1.0
    max_tokens: Optional[int] = 512
    top_p: Optional[float] = None
    seed: int = 42

    def as_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


def recipe_defaults(recipe: str) -> Dict[str, Any]:
    """What a launch recipe (``templates/*.yaml`` or a path) says about sampling and rewards:
    ``num_generations``, ``temperature``, ``max_tokens`` (``max_completion_length``), ``top_p``,
    ``reward_funcs``, ``reward_weights`` and ``model`` (only the keys the recipe sets)."""
    from ..launch.templates import load_template

    args = load_template(recipe)["args"]
    out: Dict[str, Any] = {}
    for ours, theirs in (("num_generations", "num_generations"), ("temperature", "temperature"),
                         ("max_tokens", "max_completion_length"), ("top_p", "top_p"), ("model", "model"),
                         ("reward_funcs", "reward_funcs"), ("reward_weights", "reward_weights")):
        if args.get(theirs) is not None:
            value = args[theirs]
            if theirs in ("reward_funcs", "reward_weights") and not isinstance(value, list):
                value = str(value).split()
            out[ours] = value
    return out


def parse_band(text: str) -> Tuple[float, float]:
    """``"0.1:0.9"`` -> ``(0.1, 0.9)``: the pass rates kept (both ends included).

    >>> parse_band("0.1:0.9"), parse_band(":0.5"), parse_band("0.2:")
    ((0.1, 0.9), (0.0, 0.5), (0.2, 1.0))
    """
    lo, sep, hi = str(text).partition(":")
    try:
        band = (float(lo) if lo.strip() else 0.0, float(hi) if hi.strip() else 1.0)
    except ValueError:
        band = None
    if not sep or band is None or not (0.0 <= band[0] <= band[1] <= 1.0):
        raise ConfigError(f"--keep {text!r}: expected LOW:HIGH pass rates with 0 <= LOW <= HIGH <= 1 (e.g. 0.1:0.9)")
    return band


def parse_buckets(text: str) -> List[float]:
    """Bucket edges: ``"3"`` -> three equal pass-rate intervals, ``"0.2,0.8"`` -> [0, .2), [.2, .8), [.8, 1].

    >>> parse_buckets("4"), parse_buckets("0.2,0.8")
    ([0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.2, 0.8, 1.0])
    """
    text = str(text).strip()
    try:
        if "," not in text and "." not in text:
            n = int(text)
            if not 2 <= n <= 100:
                raise ValueError
            return [i / n for i in range(n)] + [1.0]
        inner = sorted(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--buckets {text!r}: expected a count (2-100) or inner edges like 0.2,0.8") from None
    if not inner or any(not 0.0 < x < 1.0 for x in inner) or len(set(inner)) != len(inner):
        raise ConfigError(f"--buckets {text!r}: inner edges must be distinct and strictly between 0 and 1")
    return [0.0, *inner, 1.0]


def bucket_of(rate: float, edges: Sequence[float]) -> int:
    """Index of the bucket holding ``rate`` (intervals closed on the left; the last one also on the right)."""
    for i in range(len(edges) - 1):
        if rate < edges[i + 1]:
            return i
    return len(edges) - 2


# -- rows -------------------------------------------------------------------------------------------------
def prompt_of(row: Any) -> Tuple[List[Dict[str, Any]], List[Any]]:
    """``(messages, images)`` to sample from for a GRPO row: its ``messages`` without trailing assistant turns,
    or a ``query`` / ``prompt`` / ``question`` / ``problem`` text (after an optional ``system``). Raises
    ValueError with the reason when the row has no usable prompt."""
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    images = row.get("images")
    if images is None:
        images = [row["image"]] if row.get("image") else []
    elif isinstance(images, (str, dict)):
        images = [images]
    elif not isinstance(images, list):
        raise ValueError(f"'images' must be a list, got {type(images).__name__}")
    for j, item in enumerate(images):          # the one media check: no /proc/self/environ, /dev/zero, FIFO, ...
        try:
            check_value(item, kind="image")
        except MediaError as exc:
            raise ValueError(f"images[{j}]: {exc}") from None
    if "messages" in row:
        msgs = row["messages"]
        if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
            raise ValueError("'messages' must be a list of {role, content} objects")
        turns = results_mod.prompt_turns(msgs)
        if not turns or turns[-1].get("role") not in ("user", "tool"):
            raise ValueError("'messages' has no user turn to answer")
        bad = [m for m in turns if m.get("role") not in ("system", "user", "assistant", "tool")]
        if bad:
            raise ValueError(f"'messages' has a turn with role {bad[0].get('role')!r}")
        return [{"role": m["role"], "content": m.get("content", "")} for m in turns], images
    for key in PROMPT_TEXT_KEYS:
        text = row.get(key)
        if isinstance(text, str) and text.strip():
            msgs = [{"role": "system", "content": row["system"]}] if isinstance(row.get("system"), str) else []
            return msgs + [{"role": "user", "content": text}], images
    raise ValueError(f"no prompt: neither 'messages' nor one of {', '.join(PROMPT_TEXT_KEYS)}")


def row_key(row: Dict[str, Any], occurrence: int = 0) -> str:
    """A row's checkpoint key: a digest of its columns (filter's own output columns left out, so a filtered
    file keys like its source) and, for repeated identical rows, the occurrence number."""
    data = {k: v for k, v in row.items() if k not in OUTPUT_COLUMNS}
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()
    return digest[:24] + (f"#{occurrence}" if occurrence else "")


def prompt_seed(seed: int, key: str) -> int:
    """The seed of one prompt: fixed by the run's seed and the prompt's key, whatever else runs with it."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "big") & 0x7FFFFFFF


@dataclass
class Prompt:
    key: str
    line: int
    row: Dict[str, Any]
    messages: List[Dict[str, Any]]
    images: List[Any]


def read_dataset(path: str) -> Tuple[List[Prompt], List[Tuple[int, str]], int, Dict[int, Any]]:
    """``(prompts, rejected (line, reason), rows_in, rejected rows by line)`` of a GRPO dataset; a bad JSON line
    is an error."""
    prompts: List[Prompt] = []
    rejected: List[Tuple[int, str]] = []
    originals: Dict[int, Any] = {}
    seen: Dict[str, int] = {}
    rows_in = 0
    try:
        for line, row in iter_jsonl(path):
            rows_in += 1
            try:
                messages, images = prompt_of(row)
            except ValueError as exc:
                rejected.append((line, str(exc)))
                originals[line] = row
                continue
            base = row_key(row)
            occurrence = seen.get(base, 0)
            seen[base] = occurrence + 1
            prompts.append(Prompt(row_key(row, occurrence), line, row, messages, images))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    return prompts, rejected, rows_in, originals


# -- checkpoint -------------------------------------------------------------------------------------------
class CheckpointBusy(SwiftExtError):
    """Another process holds the checkpoint (is filtering into the same output)."""


class Checkpoint:
    """Append-only JSONL: a header with the settings, then ``{"key", "line", "completions"}`` per prompt.

    One process at a time: :meth:`open` takes an exclusive lock (``flock`` on ``PATH.lock``, which holds the
    owner's PID) and a second process refuses with :class:`CheckpointBusy` naming the first. Lines are
    appended with ``O_APPEND``, each in one write, flushed and fsynced. A line cut short by a kill (no trailing
    newline, or not JSON at the very end) is dropped on reading and cut off before appending; a bad line
    anywhere else, or a line that is JSON but not a checkpoint line of this run (a completion count other
    than ``num_generations``, a completion that is not a string), is an error with file:line and the reason."""

    def __init__(self, path: str, header: Dict[str, Any]):
        self.path = path
        self.header = header
        self.done: Dict[str, List[str]] = {}
        self._out: Optional[JsonlAppender] = None
        self._lock: Optional[int] = None

    def _acquire(self) -> None:
        import fcntl

        lock_path = self.path + ".lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            try:
                owner = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise CheckpointBusy(f"{self.path} is in use by another filter process (PID {owner}) writing the same "
                                 f"output; wait for it to finish, or pass another -o / --checkpoint") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock = fd

    def open(self, restart: bool = False) -> "Checkpoint":
        p = Path(self.path)
        p.parent.mkdir(parents=True, exist_ok=True)
        self._acquire()
        try:
            if restart and p.exists():
                p.unlink()
            good_end = self._read() if p.exists() else 0
            self._out = JsonlAppender(self.path, fsync=True, keep=good_end)
            if good_end == 0:
                self._write({"swift_ext_filter_checkpoint": CHECKPOINT_VERSION, **self.header})
        except BaseException:
            self.close()
            raise
        return self

    def _read(self) -> int:
        """Read the prompts done (streamed line by line); returns the offset after the last good line."""
        size = os.path.getsize(self.path)
        good_end = 0
        header_seen = False
        with open(self.path, "rb") as fh:
            for i, raw in enumerate(fh, 1):
                end = good_end + len(raw)
                if not raw.strip():
                    good_end = end if raw.endswith(b"\n") else good_end
                    continue
                try:
                    if not raw.endswith(b"\n"):  # the write was cut short
                        raise ValueError("no newline")
                    obj = json.loads(raw)
                except ValueError:
                    if end >= size:
                        break  # a torn final line: that prompt is sampled again
                    raise BadLine(self.path, i, "not a checkpoint line (invalid JSON); delete the file or use "
                                                "--restart") from None
                if not header_seen:
                    self._check_header(obj)
                    header_seen = True
                else:
                    why = self._line_error(obj)
                    if why:
                        raise BadLine(self.path, i, f"not a checkpoint line of this run ({why}); delete the line "
                                                    f"or use --restart")
                    self.done[obj["key"]] = obj["completions"]
                good_end = end
        return good_end

    def _line_error(self, obj: Any) -> Optional[str]:
        if not isinstance(obj, dict) or not isinstance(obj.get("key"), str) or \
                not isinstance(obj.get("completions"), list):
            return "expected key and completions"
        if obj["key"] in self.done:
            return f"prompt {obj['key']} appears twice"
        k = self.header.get("num_generations")
        if k is not None and len(obj["completions"]) != k:
            return f"{len(obj['completions'])} completions, this run samples {k} per prompt"
        if not all(isinstance(c, str) for c in obj["completions"]):
            return "a completion that is not a string"
        return None

    def _check_header(self, obj: Any) -> None:
        if not isinstance(obj, dict) or obj.get("swift_ext_filter_checkpoint") != CHECKPOINT_VERSION:
            raise ConfigError(f"{self.path}: not a swift-ext filter checkpoint (version {CHECKPOINT_VERSION}); "
                              f"delete it or use --restart")
        for key, value in self.header.items():
            if obj.get(key) != value:
                raise ConfigError(f"{self.path}: made with {key}={obj.get(key)!r}, this run has {value!r}; rerun "
                                  f"with the same settings to resume, or use --restart to sample again")

    def _write(self, obj: Dict[str, Any]) -> None:
        self._out.write(obj)             # one O_APPEND write per line, fsynced

    def add(self, key: str, line: int, completions: List[str]) -> None:
        if key in self.done:
            raise SwiftExtError(f"prompt {key} (line {line}) was sampled twice")
        self._write({"key": key, "line": line, "completions": completions})
        self.done[key] = completions

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        if self._lock is not None:
            os.close(self._lock)            # releases the flock
            self._lock = None


# -- OpenAI-compatible endpoint ---------------------------------------------------------------------------
class EndpointSampler:
    """Completions from OpenAI-compatible ``/v1/chat/completions`` endpoints (``swift deploy``, vLLM, ...):
    ``base_url`` is one URL or several serving the same model, ``concurrency`` prompts in flight at once per
    endpoint (daemon threads: an interrupted run does not wait for them), each thread bound to one endpoint.

    Requests go through the one HTTP client (:class:`swift_ext.net.Client`, one per endpoint): ``timeout`` is a
    total deadline per attempt, 429 / 5xx / dropped connections are retried ``retries`` times with backoff
    (``Retry-After`` honoured), ``rpm`` / ``tpm`` cap requests and tokens per minute (per endpoint), and the key
    never follows a redirect to another origin. Each request asks for ``n`` completions with the prompt's seed;
    a server that returns fewer is asked again for the rest. Images are sent as ``image_url`` parts (local
    files as data URLs, each through the one media check)."""

    def __init__(self, base_url: Any, model: Optional[str] = None, api_key: Optional[str] = None,
                 concurrency: int = 8, timeout: float = 600.0, retries: int = 2, backoff: float = 0.5,
                 rpm: Optional[float] = None, tpm: Optional[float] = None, api_key_env: Optional[str] = None):
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ConfigError("no endpoint: pass --endpoint URL (repeatable)")
        self.base_urls = [self._v1(u) for u in urls]
        if len(set(self.base_urls)) != len(self.base_urls):
            raise ConfigError(f"an endpoint is listed twice: {', '.join(self.base_urls)}")
        self.base_url = self.base_urls[0]
        self.concurrency = max(1, int(concurrency))
        self.timeout = timeout
        self.clients = [Client(u, api_key=api_key, api_key_env=api_key_env, concurrency=self.concurrency,
                               retries=retries, backoff=backoff, timeout=timeout, rpm=rpm, tpm=tpm)
                        for u in self.base_urls]
        self.client = self.clients[0]
        self.model = model or self._first_model()

    @staticmethod
    def _v1(url: str) -> str:
        url = url.rstrip("/")
        return url if url.endswith("/v1") else url + "/v1"

    @property
    def label(self) -> str:
        return f"endpoint:{self.model}"

    @property
    def source(self) -> str:
        """What the checkpoint records as the samples' origin: the endpoint URL(s) and the model."""
        return f"{' '.join(self.base_urls)} {self.model}"

    def _call(self, path: str, body: Optional[Dict[str, Any]] = None, client: Optional[Client] = None) -> Any:
        client = client or self.client
        try:
            if body is None:
                return client.get_json(path)
            return client.post_json(path, body, tokens=body.get("max_tokens") or 0)
        except NetError as exc:
            raise SwiftExtError(str(exc)) from None

    def _first_model(self) -> str:
        data = self._call("/models")
        data = data.get("data") if isinstance(data, dict) else None
        if not data or not isinstance(data[0], dict) or "id" not in data[0]:
            raise SwiftExtError(f"{self.base_url}/models lists no model; pass --served-model")
        return data[0]["id"]

    def complete(self, messages, images, seed: int, n: int, temperature: float, max_tokens: Optional[int],
                 top_p: Optional[float], client: Optional[Client] = None) -> List[str]:
        msgs = openai_messages(messages, images)
        got: List[str] = []
        while len(got) < n:
            body = {"model": self.model, "messages": msgs, "n": n - len(got), "temperature": temperature,
                    "seed": seed + len(got)}
            if max_tokens is not None:
                body["max_tokens"] = max_tokens
            if top_p is not None:
                body["top_p"] = top_p
            reply = self._call("/chat/completions", body, client)
            choices = reply.get("choices") if isinstance(reply, dict) else None
            choices = sorted([c for c in choices or [] if isinstance(c, dict)], key=lambda c: c.get("index", 0))
            if not choices:
                where = self.base_urls[self.clients.index(client)] if client in self.clients else self.base_url
                raise SwiftExtError(f"{where}/chat/completions returned no choices")
            got += [(c.get("message") or {}).get("content") or "" for c in choices][:n - len(got)]
        return got

    def sample(self, items, n, temperature, max_tokens, top_p, on_done) -> None:
        todo: "queue.Queue" = queue.Queue()
        done: "queue.Queue" = queue.Queue()
        for it in items:
            todo.put(it)

        def worker(client):
            while True:
                try:
                    key, messages, images, seed = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    done.put((key, self.complete(messages, images, seed, n, temperature, max_tokens, top_p, client),
                              None))
                except BaseException as exc:  # reported to the main thread
                    done.put((key, None, exc))

        for t in range(min(self.concurrency * len(self.clients), len(items))):
            threading.Thread(target=worker, args=(self.clients[t % len(self.clients)],), daemon=True).start()
        for _ in range(len(items)):
            key, comps, exc = done.get()
            if exc is not None:
                while True:  # stop the workers from taking more
                    try:
                        todo.get_nowait()
                    except queue.Empty:
                        break
                raise exc
            on_done(key, comps)


def openai_messages(messages: List[Dict[str, Any]], images: Sequence[Any]) -> List[Dict[str, Any]]:
    """ms-swift messages (``<image>`` tags + an ``images`` list) as OpenAI chat messages with image parts."""
    if not images:
        return messages
    pending = list(images)
    out = []
    for m in messages:
        content = m.get("content")
        if not isinstance(content, str) or "<image>" not in content:
            out.append(m)
            continue
        parts: List[Dict[str, Any]] = []
        pieces = content.split("<image>")
        for i, text in enumerate(pieces):
            if i:
                parts.append({"type": "image_url", "image_url": {"url": _image_url(pending.pop(0) if pending else "")}})
            if text:
                parts.append({"type": "text", "text": text})
        out.append({"role": m["role"], "content": parts})
    return out


def _image_url(image: Any) -> str:
    return image_url(image) or ""


# -- scoring and selection --------------------------------------------------------------------------------
@dataclass
class FilterReport:
    rows_in: int = 0
    rows_kept: int = 0
    rows_dropped: int = 0
    rows_rejected: int = 0
    sampled_now: int = 0
    resumed: int = 0
    generations_per_prompt: int = 0
    measure: str = ""
    pass_threshold: float = 1.0
    zero_variance_prompts: int = 0
    zero_variance_by_reward: Dict[str, int] = field(default_factory=dict)
    reward_means: Dict[str, Optional[float]] = field(default_factory=dict)
    buckets: List[Dict[str, Any]] = field(default_factory=list)
    outputs: Dict[str, str] = field(default_factory=dict)
    rejected: List[Tuple[int, str]] = field(default_factory=list)
    pass_rates: List[float] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("rejected", "pass_rates")}
        scored = self.rows_in - self.rows_rejected
        d["frac_zero_variance"] = self.zero_variance_prompts / scored if scored else None
        d["generations_in_zero_variance_groups"] = self.zero_variance_prompts * self.generations_per_prompt
        d["rejected"] = [{"line": n, "reason": r} for n, r in self.rejected]
        return d


def measure_values(scores: Dict[str, List[Optional[float]]], by: Optional[str],
                   weights: Dict[str, float]) -> List[Optional[float]]:
    """Per completion, the value pass rates are computed on: reward ``by``, or the weighted sum of every
    reward as ms-swift forms it (abstentions leave their term out; all abstaining gives None)."""
    if by is not None:
        return list(scores[by])
    n = len(next(iter(scores.values()))) if scores else 0
    out: List[Optional[float]] = []
    for i in range(n):
        terms = [weights[s] * v[i] for s, v in scores.items() if v[i] is not None]
        out.append(math.fsum(terms) if terms else None)
    return out


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    got = [v for v in values if v is not None]
    return math.fsum(got) / len(got) if got else None


@dataclass(frozen=True)
class FilterOptions:
    """Every setting of one filter run (``swift-ext filter`` declares a flag per field, by the same name; a test
    checks that the two agree). ``sampling``: how completions are drawn; the rest: scoring and selection."""

    rewards: Tuple[str, ...]                          # reward specs (-r), at least one
    sampling: Sampling = field(default_factory=Sampling)
    weights: Optional[Tuple[float, ...]] = None       # one per reward, for the weighted sum (default 1 each)
    by: Optional[str] = None                          # compute pass rates on this one reward
    pass_threshold: Optional[float] = None            # a completion passes at this score or above
    keep: Optional[Tuple[float, float]] = None        # the pass-rate band kept, ends included
    curriculum: bool = False                          # keep every row, easy to hard
    buckets: Optional[Tuple[float, ...]] = None       # difficulty bucket edges (0 .. 1)
    plugin_files: Tuple[str, ...] = ()                # ms-swift ORM plugin files
    ref_key: Optional[str] = None                     # column handed to rewards as ``solution``
    checkpoint: Optional[str] = None                  # default OUTPUT-stem.ckpt.jsonl
    samples: Optional[str] = None                     # default OUTPUT-stem.samples.jsonl
    rejects: Optional[str] = None                     # default OUTPUT-stem.rejected.jsonl
    restart: bool = False                             # discard the checkpoint
    chunk: int = 1024                                 # prompts handed to the sampler at a time

    def __post_init__(self):
        for name in ("rewards", "plugin_files"):
            object.__setattr__(self, name, tuple(getattr(self, name) or ()))
        for name in ("weights", "buckets", "keep"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(getattr(self, name)))


def run(dataset: str, output: str, sampler: Any, options: FilterOptions, *,
        on_start: Optional[Callable[[int, int], None]] = None,
        on_prompt: Optional[Callable[[], None]] = None) -> FilterReport:
    """Sample, score and select (see the module docstring) with the settings in ``options``. ``sampler`` has
    ``label`` and ``sample(items, n, temperature, max_tokens, top_p, on_done)`` (and optionally ``source``, the
    endpoint it samples from, part of the checkpoint's identity); ``on_start(total, already_done)`` and
    ``on_prompt()`` report progress; prompts go to the sampler ``options.chunk`` at a time. Returns the report;
    writes ``output``, the samples file (a completion file ``swift-ext rewards score`` reads), the reject file
    and, with ``buckets``, one file per bucket."""
    o = options
    rewards, sampling, weights, by, pass_threshold = o.rewards, o.sampling, o.weights, o.by, o.pass_threshold
    keep, curriculum, buckets, plugin_files, ref_key = o.keep, o.curriculum, o.buckets, o.plugin_files, o.ref_key
    checkpoint, samples, rejects, restart, chunk = o.checkpoint, o.samples, o.rejects, o.restart, o.chunk
    rewards = list(rewards)
    if not rewards:
        raise ConfigError("filter needs at least one reward (-r NAME)")
    if weights is not None and len(weights) != len(rewards):
        raise ConfigError(f"--reward-weights has {len(weights)} values for {len(rewards)} rewards")
    w = dict(zip(rewards, weights if weights is not None else [1.0] * len(rewards)))
    if by is not None and by not in w:
        raise ConfigError(f"--by {by!r} is not one of the rewards ({', '.join(rewards)})")
    if by is None and len(rewards) == 1:
        by = rewards[0]
    if sum([keep is not None, bool(buckets), bool(curriculum)]) > 1:
        raise ConfigError("choose one of --keep, --curriculum, --buckets")
    threshold = pass_threshold if pass_threshold is not None else \
        (1.0 if by is not None else math.fsum(x for x in w.values() if x > 0))
    if sampling.num_generations < 1:
        raise ConfigError("num_generations must be at least 1")
    # rewards are built before any sampling: a typo or a bad parameter fails in a second, not after an hour
    built = {spec: scoring.resolve(spec, plugin_files) for spec in rewards}

    stem = Path(output)
    checkpoint = checkpoint or str(stem.with_name(stem.stem + ".ckpt.jsonl"))
    samples = samples or str(stem.with_name(stem.stem + ".samples.jsonl"))
    rejects_default = rejects is None
    rejects = rejects or default_reject_path(output)

    prompts, rejected, rows_in, raw_rows = read_dataset(dataset)
    ckpt = Checkpoint(checkpoint, {"dataset": os.path.basename(dataset), "sampler": sampler.label,
                                   "source": getattr(sampler, "source", sampler.label),
                                   **sampling.as_dict()}).open(restart=restart)
    report = FilterReport(rows_in=rows_in, generations_per_prompt=sampling.num_generations)
    try:
        wanted = {p.key for p in prompts}
        report.resumed = sum(1 for k in ckpt.done if k in wanted)
        todo = [p for p in prompts if p.key not in ckpt.done]
        if on_start:
            on_start(len(prompts), report.resumed)
        lines = {p.key: p.line for p in todo}

        def done(key: str, comps: List[str]) -> None:
            ckpt.add(key, lines[key], comps)
            report.sampled_now += 1
            if on_prompt:
                on_prompt()

        for start in range(0, len(todo), max(1, chunk)):
            part = todo[start:start + chunk]
            sampler.sample([(p.key, p.messages, p.images, prompt_seed(sampling.seed, p.key)) for p in part],
                           sampling.num_generations, sampling.temperature, sampling.max_tokens, sampling.top_p,
                           done)
    finally:
        ckpt.close()

    # score every prompt's group through the one scoring path
    group_rows = [{**{k: v for k, v in p.row.items() if k not in OUTPUT_COLUMNS}, "completions": ckpt.done[p.key]}
                  for p in prompts]
    res = results_mod.from_rows([(p.line, r) for p, r in zip(prompts, group_rows)], path=dataset, ref_key=ref_key,
                                completion_key="completions")
    rejected += res.rejected  # an empty completion list
    scores = scoring.score_results(res, rewards, plugin_files, rewards=built) if res.completions else \
        {s: [] for s in rewards}
    values = measure_values(scores, by, w)
    report.measure = by or "weighted sum (" + ", ".join(f"{w[s]:g}*{s}" for s in rewards) + ")"
    report.pass_threshold = threshold
    for spec in rewards:
        report.zero_variance_by_reward[spec] = scoring.summarise(spec, scores[spec], res.groups).zero_std_groups
        report.reward_means[spec] = _mean(scores[spec])
    report.zero_variance_prompts = scoring.summarise("measure", values, res.groups).zero_std_groups

    by_line = {p.line: p for p in prompts}
    # (prompt, output row, samples row, mean of the measure)
    scored: List[Tuple[Prompt, Dict[str, Any], Dict[str, Any], float]] = []
    for members in res.groups:
        p = by_line[res.lines[members[0]]]
        vals = [values[i] for i in members if values[i] is not None]
        means = {s: _mean([scores[s][i] for i in members]) for s in rewards}
        sample_row = {**{k: v for k, v in p.row.items() if k not in OUTPUT_COLUMNS},
                      "completions": [res.completions[i] for i in members],
                      "scores": {s: [scores[s][i] for i in members] for s in rewards}}
        if not vals:
            rejected.append((p.line, f"every completion abstained on {report.measure} (is the gold column "
                                     f"missing or unusable?)"))
            continue
        rate = sum(v >= threshold - 1e-12 for v in vals) / len(vals)
        out_row = {**p.row, "pass_rate": rate, "reward_means": means}
        out_row.pop("difficulty_bucket", None)
        sample_row.update(pass_rate=rate, line=p.line)
        scored.append((p, out_row, sample_row, math.fsum(vals) / len(vals)))
        report.pass_rates.append(rate)
    rejected.sort()
    report.rejected = rejected
    report.rows_rejected = len(rejected)

    kept = scored
    if keep is not None:
        kept = [s for s in scored if keep[0] - 1e-12 <= s[1]["pass_rate"] <= keep[1] + 1e-12]
    if curriculum:  # easy -> hard: pass rate, then the mean of the measure, then dataset order
        kept = sorted(kept, key=lambda s: (-s[1]["pass_rate"], -s[3], s[0].line))
    report.rows_kept = len(kept)
    report.rows_dropped = len(scored) - len(kept)
    assert report.rows_in == report.rows_kept + report.rows_dropped + report.rows_rejected, report

    _write_rows(samples, [srow for _, _, srow, _ in scored])
    _write_rejects(rejects, rejects_default, dataset, rejected, {p.line: p.row for p in prompts}, raw_rows)
    report.outputs = {"output": output, "samples": samples, "rejects": rejects, "checkpoint": checkpoint}
    if buckets:
        files: List[List[Dict[str, Any]]] = [[] for _ in range(len(buckets) - 1)]
        for _, row, _, _ in kept:
            b = bucket_of(row["pass_rate"], buckets)
            row["difficulty_bucket"] = b
            files[b].append(row)
        for b, rows in enumerate(files):
            path = str(stem.with_name(f"{stem.stem}.bucket{b}{stem.suffix or '.jsonl'}"))
            _write_rows(path, rows)
            report.buckets.append({"bucket": b, "pass_rate": [buckets[b], buckets[b + 1]], "rows": len(rows),
                                   "path": path})
    _write_rows(output, [row for _, row, _, _ in kept])
    return report


def _write_rows(path: str, rows: Sequence[Dict[str, Any]]) -> None:
    with JsonlWriter(path) as w:
        for row in rows:
            w.write(row)


def _write_rejects(path: str, default: bool, dataset: str, rejected: Sequence[Tuple[int, str]],
                   *rows_by_line: Dict[int, Any]) -> None:
    """The reject file in the one format (:class:`swift_ext.io.RejectFile`: a JSON object per rejected row with
    file, line, reason and the original row); written always, empty when nothing was rejected."""
    out = RejectFile(path, default=default)
    for line, why in rejected:
        row = next((m[line] for m in rows_by_line if line in m), None)
        out.add(dataset, "line", line, why, obj=row)
    if out.n:
        out.finish()
    else:
        out.file.commit()


# -- data-parallel sampling: shards and their merge ------------------------------------------------------
def parse_shard(text: str) -> Tuple[int, int]:
    """``"I/N"`` -> ``(I, N)``: shard ``I`` (0-based) of ``N``.

    >>> parse_shard("0/4"), parse_shard("3/4")
    ((0, 4), (3, 4))
    """
    i, sep, n = str(text).partition("/")
    try:
        shard = (int(i), int(n))
    except ValueError:
        shard = None
    if not sep or shard is None or not 0 <= shard[0] < shard[1]:
        raise ConfigError(f"--shard {text!r}: expected I/N with 0 <= I < N (e.g. 0/4 ... 3/4)")
    return shard


def shard_checkpoint(output: str, shard: Tuple[int, int], checkpoint: Optional[str] = None) -> str:
    """Shard ``I/N``'s checkpoint: ``OUTPUT-stem.shardIofN.ckpt.jsonl`` (next to the run's checkpoint when one
    is named)."""
    base = Path(checkpoint) if checkpoint else Path(output).with_name(Path(output).stem + ".ckpt.jsonl")
    name = base.name[:-len(".ckpt.jsonl")] if base.name.endswith(".ckpt.jsonl") else base.stem
    return str(base.with_name(f"{name}.shard{shard[0]}of{shard[1]}.ckpt.jsonl"))


def _header(dataset: str, sampler: Any, sampling: Sampling) -> Dict[str, Any]:
    """A checkpoint's identity (the header :func:`run` writes and checks)."""
    return {"dataset": os.path.basename(dataset), "sampler": sampler.label,
            "source": getattr(sampler, "source", sampler.label), **sampling.as_dict()}


@dataclass
class ShardReport:
    shard: Tuple[int, int]
    prompts: int
    sampled_now: int
    resumed: int
    checkpoint: str

    def as_dict(self) -> Dict[str, Any]:
        return {"shard": f"{self.shard[0]}/{self.shard[1]}", "prompts": self.prompts,
                "sampled_now": self.sampled_now, "resumed": self.resumed, "checkpoint": self.checkpoint}


def sample_shard(dataset: str, output: str, sampler: Any, options: FilterOptions, shard: Tuple[int, int], *,
                 on_start: Optional[Callable[[int, int], None]] = None,
                 on_prompt: Optional[Callable[[], None]] = None) -> ShardReport:
    """Sample shard ``(I, N)`` (prompts ``I, I+N, I+2N, ...`` in dataset order) into its own checkpoint
    (:func:`shard_checkpoint`); a rerun resumes it. Scoring and selection wait for :func:`merge_shards`; the
    rewards of ``options`` are built now all the same, so a typo fails before any sampling."""
    for spec in options.rewards:
        scoring.resolve(spec, options.plugin_files)
    sampling = options.sampling
    i, n = shard
    prompts = read_dataset(dataset)[0]
    mine = prompts[i::n]
    path = shard_checkpoint(output, shard, options.checkpoint)
    ckpt = Checkpoint(path, {**_header(dataset, sampler, sampling), "shard": f"{i}/{n}"}).open(restart=options.restart)
    try:
        resumed = sum(1 for p in mine if p.key in ckpt.done)
        todo = [p for p in mine if p.key not in ckpt.done]
        if on_start:
            on_start(len(mine), resumed)
        lines = {p.key: p.line for p in todo}
        count = [0]

        def done(key: str, comps: List[str]) -> None:
            ckpt.add(key, lines[key], comps)
            count[0] += 1
            if on_prompt:
                on_prompt()

        for start in range(0, len(todo), max(1, options.chunk)):
            part = todo[start:start + options.chunk]
            sampler.sample([(p.key, p.messages, p.images, prompt_seed(sampling.seed, p.key)) for p in part],
                           sampling.num_generations, sampling.temperature, sampling.max_tokens, sampling.top_p,
                           done)
    finally:
        ckpt.close()
    return ShardReport(shard, len(mine), count[0], resumed, path)


class MergedSampler:
    """The sampler of a merged run: label and source are the shards'; it is never asked to sample (every
    prompt is in the merged checkpoint)."""

    def __init__(self, label: str, source: str):
        self.label, self.source = label, source

    def sample(self, items, *args, **kwargs) -> None:
        raise SwiftExtError(f"{len(items)} prompt(s) missing from the merged shards")


def merge_shards(dataset: str, output: str, n: int, *, checkpoint: Optional[str] = None
                 ) -> Tuple[MergedSampler, Sampling]:
    """Join the ``n`` shard checkpoints of ``output`` into its run checkpoint (written atomically, prompts in
    dataset order), after checking they belong to one run (the same dataset, model and sampling settings; the
    endpoints may differ) and hold every prompt of the dataset. Returns the sampler and the sampling settings
    for :func:`run`, which then samples nothing. A missing or unfinished shard is an error naming it and the
    command that completes it."""
    if n < 1:
        raise ConfigError(f"--merge-shards {n}: expected the number of shards (N of --shard I/N)")
    prompts = read_dataset(dataset)[0]
    headers: List[Dict[str, Any]] = []
    sources: List[str] = []
    done: Dict[str, List[str]] = {}
    for i in range(n):
        path = shard_checkpoint(output, (i, n), checkpoint)
        if not Path(path).exists():
            raise ConfigError(f"shard {i}/{n}: no checkpoint {path}; run it with --shard {i}/{n}")
        with open(path, "rb") as fh:
            first = fh.readline()
        try:
            header = json.loads(first)
        except ValueError:
            raise BadLine(path, 1, "not a filter checkpoint header") from None
        if not isinstance(header, dict) or header.get("shard") != f"{i}/{n}":
            raise ConfigError(f"{path}: not the checkpoint of shard {i}/{n} (its header says "
                              f"{header.get('shard') if isinstance(header, dict) else header!r})")
        ckpt = Checkpoint(path, {k: v for k, v in header.items() if k != "swift_ext_filter_checkpoint"})
        ckpt._read()                                    # checks the version and every line
        sources.append(str(header.get("source")))
        header = {k: v for k, v in header.items() if k not in ("shard", "source", "swift_ext_filter_checkpoint")}
        if headers and header != headers[0]:
            diff = sorted(k for k in set(header) | set(headers[0]) if header.get(k) != headers[0].get(k))
            raise ConfigError(f"shard {i}/{n} was sampled with other settings than shard 0/{n} ({', '.join(diff)}); "
                              f"every shard must use the same dataset, model and sampling options")
        headers.append(header)
        missing = [p for p in prompts[i::n] if p.key not in ckpt.done]
        if missing:
            raise ConfigError(f"shard {i}/{n} lacks {len(missing)} of its {len(prompts[i::n])} prompts (first: line "
                              f"{missing[0].line}); rerun it with --shard {i}/{n} to finish it")
        done.update({p.key: ckpt.done[p.key] for p in prompts[i::n]})
    header = headers[0]
    if header.get("dataset") != os.path.basename(dataset):
        raise ConfigError(f"the shards sampled {header.get('dataset')!r}, not {os.path.basename(dataset)!r}")
    sampler = MergedSampler(str(header["sampler"]), f"{n} shards: " + " | ".join(sources))
    sampling = Sampling(**{k: header[k] for k in Sampling().as_dict()})
    main = checkpoint or str(Path(output).with_name(Path(output).stem + ".ckpt.jsonl"))
    with JsonlWriter(main) as w:
        w.write({"swift_ext_filter_checkpoint": CHECKPOINT_VERSION, **_header(dataset, sampler, sampling)})
        for p in prompts:
            w.write({"key": p.key, "line": p.line, "completions": done[p.key]})
    return sampler, sampling


__all__ = ["Sampling", "FilterOptions", "EndpointSampler", "Checkpoint", "CheckpointBusy", "FilterReport", "run", "recipe_defaults", "parse_band",
           "parse_buckets", "bucket_of", "prompt_of", "row_key", "prompt_seed", "read_dataset", "measure_values",
           "openai_messages", "parse_shard", "shard_checkpoint", "sample_shard", "merge_shards", "MergedSampler",
           "ShardReport"]
