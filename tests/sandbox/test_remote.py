"""The sandbox_fusion and piston backends through the real code_tests reward, against a local stand-in of
each service (tests/sandbox/sandbox_standin.py: the documented run API on a real socket, the programs run by
the real local sandbox): success, 429 with Retry-After, 500, a slow service, a malformed reply, the
concurrency limit, the API key, a redirect."""

import re
import time

import pytest

from swift_ext.rewards import build
from swift_ext.net import client as net_client

from .sandbox_standin import SandboxStandin

GT = {"inputs": ["1 2", "5 7"], "outputs": ["3", "12"]}
ADD = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
CALL = {"fn_name": "add", "inputs": ["1\n2", "3\n4"], "outputs": ["3", "7"]}
ADD_FN = "```python\ndef add(a, b):\n    return a + b\n```"
HANG = "```python\nimport time\ntime.sleep(30)\n```"
APIS = [("fusion", "sandbox_fusion"), ("piston", "piston")]


@pytest.fixture(autouse=True)
def fresh_breakers():
    net_client._BREAKERS.clear()
    yield
    net_client._BREAKERS.clear()


@pytest.fixture
def service(request):
    made = []

    def start(api, **kwargs):
        s = SandboxStandin(api, **kwargs)
        made.append(s)
        return s
    yield start
    for s in made:
        s.close()


def reward(backend, url, extra=""):
    return build(f"code_tests:backend={backend},url={url},case_timeout=1,timeout=6{extra}")


@pytest.mark.parametrize("api, backend", APIS)
def test_success_stdin_call_based_and_timeouts(service, api, backend):
    s = service(api)
    r = reward(backend, s.url)
    assert r([ADD, "```python\nprint(3)\n```", HANG], ground_truth=[GT] * 3) == [1.0, 0.5, 0.0]
    assert [c["outcome"] for c in r.last_details[2].cases] == ["timeout", "timeout"]
    assert r([ADD_FN, "```python\ndef add(a, b):\n    return 3\n```"], ground_truth=[CALL] * 2) == [1.0, 0.5]
    for _, body in s.requests:                    # the expected outputs never leave this process
        assert body["stdin"] in ("1 2", "5 7") or re.fullmatch(r"[0-9a-f]{32}\n", body["stdin"])   # input or nonce
        assert not {"output", "outputs", "expected"} & set(body)


@pytest.mark.parametrize("api, backend", APIS)
def test_429_is_retried_after_retry_after(service, api, backend):
    s = service(api, behaviour="429", times=2)
    r = reward(backend, s.url, ",concurrency=1")
    assert r([ADD], ground_truth=[GT]) == [1.0]
    assert len(s.requests) == 4                   # two 429s, then both cases


@pytest.mark.parametrize("api, backend", APIS)
def test_500_everywhere_abstains_and_opens_the_breaker(service, api, backend):
    s = service(api, behaviour="500")
    r = reward(backend, s.url, ",concurrency=1")
    start = time.monotonic()
    assert r([ADD, ADD.replace("a + b", "b + a")], ground_truth=[GT] * 2) == [None, None]
    assert time.monotonic() - start <= r.budget(2) + 1
    assert "sandbox failed on every case" in r.last_details[0].reason
    sent = len(s.requests)
    assert sent <= 5                              # the breaker opened after 5 failures: no more requests
    assert r([ADD], ground_truth=[GT]) == [None] and len(s.requests) == sent
    assert "circuit breaker open" in r.last_details[0].cases[0]["message"]


@pytest.mark.parametrize("api, backend", APIS)
def test_a_slow_service_keeps_the_deadline(service, api, backend):
    s = service(api, delay=8.0)
    r = build(f"code_tests:backend={backend},url={s.url},case_timeout=1,timeout=6")
    start = time.monotonic()
    assert r([ADD], ground_truth=[GT]) == [None]              # no answer within the run's own limit: abstain
    assert time.monotonic() - start <= 1 + 1.5 + 1.0
    short = build(f"code_tests:backend={backend},url={s.url},case_timeout=5,timeout=1")
    start = time.monotonic()
    assert short([ADD], ground_truth=[GT]) == [0.0]            # the call's deadline came first: the cases fail
    assert time.monotonic() - start <= short.budget(1) + 1.0


@pytest.mark.parametrize("api, backend", APIS)
def test_malformed_replies_abstain(service, api, backend):
    s = service(api, behaviour="malformed")
    r = reward(backend, s.url)
    assert r([ADD], ground_truth=[GT]) == [None]
    assert "malformed reply" in r.last_details[0].cases[0]["message"]


def test_concurrency_limit(service):
    s = service("fusion", delay=0.3)
    r = build(f"code_tests:backend=sandbox_fusion,url={s.url},concurrency=3,timeout=20")
    gt = {"inputs": ["1 2", "2 3", "3 4", "4 5"], "outputs": ["3", "5", "7", "9"]}
    assert r([ADD, ADD.replace("a + b", "b + a")], ground_truth=[gt] * 2) == [1.0] * 2
    assert s.peak == 3


def test_api_key_from_the_environment_and_never_to_another_origin(service, monkeypatch):
    monkeypatch.setenv("MY_SANDBOX_KEY", "sk-sandbox")
    s = service("fusion")
    r = build(f"code_tests:backend=sandbox_fusion,url={s.url},api_key_env=MY_SANDBOX_KEY")
    assert r([ADD], ground_truth=[GT]) == [1.0]
    assert s.headers[0]["Authorization"] == "Bearer sk-sandbox"
    target = service("fusion")
    hop = service("fusion", redirect_to=target.url + "/run_code")
    r = build(f"code_tests:backend=sandbox_fusion,url={hop.url},api_key_env=MY_SANDBOX_KEY")
    r([ADD], ground_truth=[GT])
    # a redirect to another origin (another port) never carries the key (swift_ext.net, the one client)
    assert all("Authorization" not in h for h in target.headers)
    assert hop.headers and all(h.get("Authorization") == "Bearer sk-sandbox" for h in hop.headers)
