"""swift_ext.net.Client against real HTTP servers on 127.0.0.1 (tests/http_recorder.py): the total deadline
against a server trickling its reply, credentials across redirects, Retry-After, the breaker, rate limits,
the concurrency limit, the response cap; and the one image encoder refusing what is not an image file."""

import asyncio
import os
import time

import pytest
from http_recorder import Recorder

from swift_ext.io.media import MediaError
from swift_ext.net import BreakerOpen, Breaker, Client, DeadlineExceeded, HTTPError, NetError, RateLimit, image_url

RED_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c49444154789c63f8cf"
                        "c000000301010018dd8db00000000049454e44ae426082")


def test_a_server_trickling_one_byte_at_a_time_is_cut_at_the_total_deadline():
    with Recorder() as rec:
        rec.script["/v1/models"] = ("trickle", 0.05)          # 230 bytes: ~11 s in all, a byte every 50 ms
        client = Client(rec.url, retries=0, timeout=1.0, use_breaker=False)
        t0 = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="no complete reply within 1 s"):
            client.get_json("/models")
        assert time.monotonic() - t0 < 2.5                      # a per-read timeout would wait ~11 s


@pytest.mark.parametrize("status", [307, 303, 302])
def test_credentials_never_follow_a_redirect_to_another_origin(status):
    with Recorder() as a, Recorder() as b:
        a.script["/v1/chat/completions"] = ("redirect", status, b.url + "/chat/completions")
        client = Client(a.url, api_key="sk-secret", retries=0, use_breaker=False)
        if status == 307:
            assert client.post_json("/chat/completions", {"n": 2})["choices"][1]["index"] == 1
        else:
            client.post_json("/chat/completions", {"n": 2})             # a POST becomes a GET (as browsers do)
        assert a.requests[0]["headers"]["Authorization"] == "Bearer sk-secret"
        assert len(b.requests) == 1 and "Authorization" not in b.requests[0]["headers"]
        assert b.requests[0]["method"] == ("POST" if status == 307 else "GET")


def test_credentials_follow_a_redirect_within_the_origin(monkeypatch):
    monkeypatch.setenv("MY_NET_KEY", "k-123")
    with Recorder() as a:
        a.script["/v1/old"] = ("redirect", 308, "/v1/chat/completions")
        Client(a.url, api_key_env="MY_NET_KEY", retries=0, use_breaker=False).post_json("/old", {"n": 1})
        assert [r["headers"].get("Authorization") for r in a.requests] == ["Bearer k-123"] * 2


def test_retry_after_is_honoured_and_4xx_is_not_retried():
    with Recorder() as rec:
        rec.script["/v1/chat/completions"] = ("status", 429, [("Retry-After", "1")], 1)
        client = Client(rec.url, retries=2, backoff=0.01, use_breaker=False)
        t0 = time.monotonic()
        assert client.post_json("/chat/completions", {"n": 1})["choices"]
        assert time.monotonic() - t0 >= 0.95 and len(rec.requests) == 2
        rec.script["/v1/chat/completions"] = ("status", 400, [], 5)
        with pytest.raises(HTTPError) as err:
            client.post_json("/chat/completions", {"n": 1})
        assert err.value.status == 400 and len(rec.requests) == 3       # one attempt: a 4xx is final


def test_the_breaker_opens_after_repeated_failures_and_fails_at_once():
    with Recorder() as rec:
        rec.script["/v1/x"] = ("status", 500, [], 100)
        client = Client(rec.url, retries=10, backoff=0.0, breaker=Breaker(failures=3, cooldown=60))
        with pytest.raises(HTTPError, match="HTTP 500"):
            client.post_json("/x", {})
        assert len(rec.requests) == 3
        with pytest.raises(BreakerOpen):
            client.post_json("/x", {})
        assert len(rec.requests) == 3


def test_rate_limits_count_requests_and_tokens_per_minute():
    rpm = RateLimit(rpm=2)
    rpm.acquire()
    rpm.acquire()
    with pytest.raises(DeadlineExceeded, match="rate limit"):
        rpm.acquire(until=time.monotonic() + 1.0)               # the third would wait ~60 s
    tpm = RateLimit(tpm=1000)
    tpm.acquire(600)
    with pytest.raises(DeadlineExceeded):
        tpm.acquire(600, until=time.monotonic() + 1.0)
    tpm.acquire(300)                                            # still fits in the window


def test_the_concurrency_limit_holds_for_async_callers():
    with Recorder(delay=0.2) as rec:
        client = Client(rec.url, concurrency=3, retries=0, use_breaker=False)

        async def many():
            return await asyncio.gather(*(client.apost_json("/chat/completions", {"n": 1}) for _ in range(9)))

        assert len(asyncio.run(many())) == 9
        assert rec.peak == 3


def test_a_reply_over_the_cap_is_an_error():
    with Recorder() as rec:
        with pytest.raises(NetError, match="larger than 100 bytes"):
            Client(rec.url, retries=0, use_breaker=False, max_response_bytes=100).post_json("/c", {"n": 20})


def test_the_image_encoder_sends_only_image_files(tmp_path):
    png = tmp_path / "red.png"
    png.write_bytes(RED_PNG)
    assert image_url(str(png)).startswith("data:image/png;base64,")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    for bad, code in (("/proc/self/environ", "media_not_file"), ("/etc/passwd", "media_not_image"),
                      ("/dev/zero", "media_not_file"), (str(fifo), "media_not_file"), (str(tmp_path), "media_not_file"),
                      ("/no/such.png", "media_missing"), ("a\x00b.png", "media_invalid"), (b"root:x:0:0", "media_not_image"),
                      ("data:text/plain;base64,cm9vdA==", "media_not_image")):
        with pytest.raises(MediaError) as err:
            image_url(bad)
        assert err.value.code == code, (bad, err.value)

