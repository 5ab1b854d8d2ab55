"""``swift-ext filter``'s library: pass rates, bands, curricula, buckets, rejects, checkpoint and resume.

The sampler here is a deterministic stand-in (completions fixed by each prompt's seed) so these tests pin the
selection and checkpoint logic; the real engines (ms-swift's transformers engine in-process, a real
``swift deploy`` endpoint) run in tests/test_filter_e2e.py."""

import ast
import json
import os
import random
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from swift_ext.curation import filter as flt
from swift_ext.cli import cli
from swift_ext.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


class SeededSampler:
    """Completions '<answer>N</answer>' drawn from the prompt's seed: a prompt's samples depend on nothing
    else. Counts every prompt it samples; ``stop_after`` raises KeyboardInterrupt (an interrupted run)."""

    label = "seeded"

    def __init__(self, stop_after=None):
        self.sampled = []
        self.stop_after = stop_after

    def sample(self, items, n, temperature, max_tokens, top_p, on_done):
        for key, messages, images, seed in items:
            if self.stop_after is not None and len(self.sampled) >= self.stop_after:
                raise KeyboardInterrupt
            rng = random.Random(seed)
            self.sampled.append(key)
            on_done(key, [f"<answer>{rng.randint(0, 3)}</answer>" for _ in range(n)])


def dataset(tmp_path, n=12, extra=()):
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}], "solution": str(i % 4)} for i in range(n)]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [*rows, *extra]) + "\n")
    return str(path)


def read(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def numeric_pass_rate(sample_row):
    """Independent of the reward code: the share of completions whose answer equals the solution."""
    comps = sample_row["completions"]
    return sum(c == f"<answer>{sample_row['solution']}</answer>" for c in comps) / len(comps)


def frun(data, out, rewards, sampler, sampling, **kw):
    return flt.run(data, out, sampler, flt.FilterOptions(rewards=rewards, sampling=sampling, **kw))


def test_pass_rates_recompute_from_the_samples_and_counts_add_up(tmp_path):
    data = dataset(tmp_path, extra=[{"no_prompt": 1}, {"messages": "hi"}, {"messages": [{"role": "user",
                                    "content": "no gold"}]}])
    out = str(tmp_path / "out.jsonl")
    rep = frun(data, out, ["numeric"], SeededSampler(), flt.Sampling(num_generations=6, seed=1),
                  keep=(0.1, 0.9))
    samples = read(tmp_path / "out.samples.jsonl")
    assert len(samples) == 12
    for s in samples:
        assert len(s["completions"]) == 6 and s["pass_rate"] == numeric_pass_rate(s)
    kept = read(out)
    assert [r["messages"] for r in kept] == [s["messages"] for s in samples if 0.1 <= s["pass_rate"] <= 0.9]
    assert all("completions" not in r and r["reward_means"]["numeric"] == r["pass_rate"] for r in kept)
    assert rep.rows_in == 15 == rep.rows_kept + rep.rows_dropped + rep.rows_rejected
    rejects = read(tmp_path / "out.rejected.jsonl")       # the one reject format (io.RejectFile)
    assert [r["line"] for r in rejects] == [13, 14, 15] and all(r["file"] == data for r in rejects)
    assert "abstained" in rejects[2]["reason"] and "no prompt" in rejects[0]["reason"]
    assert all(isinstance(json.loads(r["original"]), dict) for r in rejects)
    zero = sum(1 for s in samples if s["pass_rate"] in (0.0, 1.0))
    assert rep.zero_variance_prompts == zero and rep.as_dict()["generations_in_zero_variance_groups"] == 6 * zero


def test_weighted_sum_curriculum_and_buckets(tmp_path):
    data = dataset(tmp_path)
    out = str(tmp_path / "cur.jsonl")
    rep = frun(data, out, ["numeric", "think_format"], SeededSampler(), flt.Sampling(num_generations=5),
                  weights=[1.0, 0.5], curriculum=True)
    rows = read(out)
    assert len(rows) == 12 and rep.pass_threshold == 1.5  # full marks on both
    assert all(r["pass_rate"] == 0.0 for r in rows)           # no <think>: nothing reaches 1.5
    rep = frun(data, out, ["numeric", "think_format"], SeededSampler(), flt.Sampling(num_generations=5),
                  weights=[1.0, 0.5], pass_threshold=1.0, curriculum=True, restart=True)
    rows = read(out)
    rates = [r["pass_rate"] for r in rows]
    assert rates == sorted(rates, reverse=True)
    rep = frun(data, out, ["numeric"], SeededSampler(), flt.Sampling(num_generations=5),
                  buckets=flt.parse_buckets("0.2,0.8"), restart=True)
    sizes = [b["rows"] for b in rep.buckets]
    assert sum(sizes) == 12
    for b in rep.buckets:
        lo, hi = b["pass_rate"]
        assert all(lo <= r["pass_rate"] < hi or r["pass_rate"] == hi == 1.0 for r in read(b["path"]))


def test_an_interrupted_run_resumes_without_sampling_a_prompt_twice(tmp_path):
    data = dataset(tmp_path)
    full = str(tmp_path / "full.jsonl")
    frun(data, full, ["numeric"], SeededSampler(), flt.Sampling(num_generations=4, seed=7), chunk=3)
    out = str(tmp_path / "out.jsonl")
    first = SeededSampler(stop_after=5)
    with pytest.raises(KeyboardInterrupt):
        frun(data, out, ["numeric"], first, flt.Sampling(num_generations=4, seed=7), chunk=3)
    assert not Path(out).exists()  # nothing half-written
    ckpt = tmp_path / "out.ckpt.jsonl"
    with open(ckpt, "a") as fh:  # a kill in the middle of a write leaves a torn last line
        fh.write('{"key": "abc", "compl')
    second = SeededSampler()
    rep = frun(data, out, ["numeric"], second, flt.Sampling(num_generations=4, seed=7), chunk=3)
    assert rep.resumed == 5 and rep.sampled_now == 7
    assert not set(first.sampled) & set(second.sampled) and len(first.sampled + second.sampled) == 12
    assert Path(out).read_text() == Path(full).read_text()
    assert (tmp_path / "out.samples.jsonl").read_text() == (tmp_path / "full.samples.jsonl").read_text()
    keys = [r["key"] for r in read(ckpt)[1:]]
    assert len(keys) == len(set(keys)) == 12


def test_changed_settings_refuse_to_resume(tmp_path):
    data = dataset(tmp_path, n=3)
    out = str(tmp_path / "out.jsonl")
    frun(data, out, ["numeric"], SeededSampler(), flt.Sampling(num_generations=4))
    with pytest.raises(ConfigError, match="temperature"):
        frun(data, out, ["numeric"], SeededSampler(), flt.Sampling(num_generations=4, temperature=0.5))
    again = SeededSampler()
    frun(data, out, ["numeric"], again, flt.Sampling(num_generations=4, temperature=0.5), restart=True)
    assert len(again.sampled) == 3


def test_bad_checkpoint_line_is_reported_with_file_and_line(tmp_path):
    data = dataset(tmp_path, n=3)
    out = str(tmp_path / "out.jsonl")
    frun(data, out, ["numeric"], SeededSampler(), flt.Sampling(num_generations=2))
    ckpt = tmp_path / "out.ckpt.jsonl"
    lines = ckpt.read_text().splitlines()
    lines[2] = "garbage"
    ckpt.write_text("\n".join(lines) + "\n")
    with pytest.raises(Exception, match=r"out.ckpt.jsonl:3:"):
        frun(data, out, ["numeric"], SeededSampler(), flt.Sampling(num_generations=2))


def test_settings_come_from_a_recipe():
    d = flt.recipe_defaults("grpo")
    assert d["num_generations"] == 8 and d["temperature"] == 1.0 and d["max_tokens"] == 2048
    assert d["reward_funcs"] == ["think_format", "math_accuracy"]


def test_bad_arguments_are_clear_errors(tmp_path):
    data = dataset(tmp_path, n=2)
    with pytest.raises(ConfigError, match="LOW:HIGH"):
        flt.parse_band("0.9:0.1")
    with pytest.raises(ConfigError, match="one of --keep"):
        frun(data, str(tmp_path / "o.jsonl"), ["numeric"], SeededSampler(), flt.Sampling(), keep=(0, 1),
                curriculum=True)
    with pytest.raises(Exception, match="unknown reward"):
        frun(data, str(tmp_path / "o.jsonl"), ["numerik"], SeededSampler(), flt.Sampling())
    res = CliRunner().invoke(cli, ["filter", data, "-o", str(tmp_path / "o.jsonl"), "-r", "numeric"])
    assert res.exit_code != 0 and "no model" in res.output


def test_images_become_openai_image_parts(tmp_path):
    img = tmp_path / "a.png"
    img.write_bytes(b"\x89PNG fake")
    msgs = flt.openai_messages([{"role": "user", "content": "<image>What is it?"}], [str(img)])
    parts = msgs[0]["content"]
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,") and parts[1]["text"] == "What is it?"


def test_only_the_bridge_imports_ms_swift():
    """swift_ext/bridge/ is the one package that talks to ms-swift (import graph of every module)."""
    offenders = []
    for path in (ROOT / "swift_ext").rglob("*.py"):
        rel = path.relative_to(ROOT / "swift_ext").as_posix()
        if rel.startswith(("bridge/", "_swift_plugin/", "cpu_compat/")):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            offenders += [f"{rel}: {n}" for n in names if n == "swift" or n.startswith("swift.")]
    assert not offenders, offenders


class _Server:
    """A small OpenAI-style chat server on a real socket (stdlib http.server): answers after ``delay`` seconds
    with at most ``max_n`` choices, records the most requests in flight at once."""

    def __init__(self, delay=0.2, max_n=10, fail=False):
        import http.server
        import threading

        self.delay, self.max_n, self.fail = delay, max_n, fail
        self.in_flight = self.peak = 0
        self.bodies = []
        lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"data": [{"id": "served-model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    outer.bodies.append(body)
                    outer.in_flight += 1
                    outer.peak = max(outer.peak, outer.in_flight)
                time.sleep(outer.delay)
                with lock:
                    outer.in_flight -= 1
                if outer.fail:
                    return self._send(500, {"error": "model exploded"})
                n = min(body["n"], outer.max_n)
                text = body["messages"][-1]["content"]
                self._send(200, {"choices": [{"index": i, "message": {"content": f"{text}|{body['seed'] + i}"}}
                                             for i in range(n)]})

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()



def test_endpoint_sampler_runs_prompts_concurrently_and_asks_again_for_missing_choices(tmp_path):
    server = _Server(delay=0.3, max_n=3)
    try:
        sampler = flt.EndpointSampler(server.url, concurrency=4)
        assert sampler.model == "served-model"
        data = dataset(tmp_path, n=8)
        t = time.perf_counter()
        rep = frun(data, str(tmp_path / "o.jsonl"), ["numeric"], sampler, flt.Sampling(num_generations=5, seed=2))
        took = time.perf_counter() - t
    finally:
        server.close()
    assert server.peak == 4 and took < 8 * 2 * 0.3   # 8 prompts x 2 requests each, 4 at a time
    assert rep.sampled_now == 8 and len(server.bodies) == 16
    assert sorted(b["n"] for b in server.bodies) == [2] * 8 + [5] * 8       # 3 came back, then 2 more
    for s in read(tmp_path / "o.samples.jsonl"):
        seeds = [int(c.rsplit("|", 1)[1]) for c in s["completions"]]
        assert seeds == list(range(seeds[0], seeds[0] + 5))                   # seed, seed+1, ... once each


def test_endpoint_errors_stop_the_run_with_the_server_message(tmp_path):
    server = _Server(delay=0.0, fail=True)
    try:
        sampler = flt.EndpointSampler(server.url, model="m", concurrency=2)
        with pytest.raises(Exception, match="HTTP 500.*model exploded"):
            frun(dataset(tmp_path, n=4), str(tmp_path / "o.jsonl"), ["numeric"], sampler, flt.Sampling())
    finally:
        server.close()
    assert not (tmp_path / "o.jsonl").exists()


def test_sigterm_stops_an_endpoint_run_at_once_and_the_rerun_resumes(tmp_path):
    import signal
    import subprocess
    import sys

    server = _Server(delay=1.0)
    try:
        data = dataset(tmp_path, n=12)
        argv = [sys.executable, "-m", "swift_ext", "filter", data, "-o", str(tmp_path / "o.jsonl"), "-r", "numeric",
                "--endpoint", server.url, "--concurrency", "2", "-k", "2", "--json"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ckpt = tmp_path / "o.ckpt.jsonl"
        deadline = time.time() + 60
        while (not ckpt.exists() or len(ckpt.read_text().splitlines()) < 3) and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        t = time.time()
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 143 and "run the same command again to resume" in err
        assert time.time() - t < 1.0          # did not wait for the requests in flight (1 s each)
        done = len(ckpt.read_text().splitlines()) - 1
        assert 2 <= done < 12
        run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        rep = json.loads(run.stdout)
        assert rep["resumed"] == done and rep["sampled_now"] == 12 - done
    finally:
        server.close()


def test_cli_reward_weights_against_a_local_server(tmp_path):
    server = _Server(delay=0.0)
    try:
        data = dataset(tmp_path, n=4)
        out = tmp_path / "o.jsonl"
        res = CliRunner().invoke(cli, ["filter", data, "-o", str(out), "-r", "numeric", "-r", "think_format",
                                       "--reward-weights", "1,0.5", "--endpoint", server.url, "-k", "3",
                                       "--curriculum", "--json"])
    finally:
        server.close()
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["measure"] == "weighted sum (1*numeric, 0.5*think_format)" and rep["pass_threshold"] == 1.5
    assert rep["rows_in"] == 4 == rep["rows_kept"]
    bad = CliRunner().invoke(cli, ["filter", data, "-o", str(out), "-r", "numeric", "--reward-weights", "x",
                                   "--endpoint", "http://127.0.0.1:9/v1"])
    assert bad.exit_code != 0 and "expected numbers" in bad.output


# -- data-parallel: shards, their merge, several endpoints ---------------------------------------------
def _files(out):
    out = Path(out)
    names = (out.name, out.stem + ".samples.jsonl", out.stem + ".rejected.jsonl")
    return {name: (out.parent / name).read_text() for name in names if (out.parent / name).exists()}


def test_shards_merged_write_exactly_what_one_process_writes(tmp_path):
    data = dataset(tmp_path, n=13, extra=[{"messages": "not a list"}])
    one = tmp_path / "one" / "out.jsonl"
    one.parent.mkdir()
    sampling = flt.Sampling(num_generations=4, seed=3)
    frun(data, str(one), ["numeric"], SeededSampler(), sampling, keep=(0.0, 0.75))
    par = tmp_path / "par" / "out.jsonl"
    par.parent.mkdir()
    samplers = [SeededSampler() for _ in range(3)]
    opts = flt.FilterOptions(rewards=["numeric"], sampling=sampling)
    reports = [flt.sample_shard(data, str(par), s, opts, (i, 3)) for i, s in enumerate(samplers)]
    # shard i takes prompts i, i+3, ...: 13 prompts -> 5 + 4 + 4, none twice
    assert [r.prompts for r in reports] == [5, 4, 4]
    assert not set(samplers[0].sampled) & set(samplers[1].sampled) and sum(len(s.sampled) for s in samplers) == 13
    assert not par.exists()  # shards only sample
    merged, merged_sampling = flt.merge_shards(data, str(par), 3)
    assert merged.label == "seeded" and merged_sampling == sampling
    rep = frun(data, str(par), ["numeric"], merged, merged_sampling, keep=(0.0, 0.75))
    assert rep.sampled_now == 0 and rep.resumed == 13 and rep.rows_rejected == 1
    files = _files(par)
    assert len(files) == 3 and files == _files(one)


def test_a_shard_resumes_and_unfinished_or_mismatched_shards_are_refused(tmp_path):
    data = dataset(tmp_path, n=8)
    out = str(tmp_path / "out.jsonl")
    sampling = flt.Sampling(num_generations=2, seed=1)
    opts = flt.FilterOptions(rewards=["numeric"], sampling=sampling)
    flt.sample_shard(data, out, SeededSampler(), opts, (0, 2))
    with pytest.raises(ConfigError, match=r"shard 1/2: no checkpoint .*out.shard1of2.ckpt.jsonl; run it with --shard 1/2"):
        flt.merge_shards(data, out, 2)
    first = SeededSampler(stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        flt.sample_shard(data, out, first, flt.FilterOptions(rewards=["numeric"], sampling=sampling, chunk=1), (1, 2))
    with pytest.raises(ConfigError, match=r"shard 1/2 lacks 2 of its 4 prompts .*rerun it with --shard 1/2"):
        flt.merge_shards(data, out, 2)
    again = SeededSampler()
    rep = flt.sample_shard(data, out, again, opts, (1, 2))
    assert rep.resumed == 2 and rep.sampled_now == 2 and not set(first.sampled) & set(again.sampled)
    assert flt.merge_shards(data, out, 2)[1] == sampling
    other = flt.FilterOptions(rewards=["numeric"], sampling=flt.Sampling(num_generations=3, seed=1), restart=True)
    flt.sample_shard(data, out, SeededSampler(), other, (1, 2))
    with pytest.raises(ConfigError, match="shard 1/2 was sampled with other settings than shard 0/2 "
                                          r"\(num_generations\)"):
        flt.merge_shards(data, out, 2)
    with pytest.raises(ConfigError, match="expected I/N"):
        flt.parse_shard("2/2")
    with pytest.raises(Exception, match="nope"):  # a misspelt reward fails before a shard samples anything
        flt.sample_shard(data, out, SeededSampler(), flt.FilterOptions(rewards=["nope"], sampling=sampling), (0, 2))


def _cli_filter(*args):
    """``swift-ext filter`` in its own process, as each node of a data-parallel run starts it."""
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("swift-ext")
    return subprocess.Popen([str(exe), "filter", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_cli_two_shard_processes_and_two_endpoints_match_one_process(tmp_path):
    servers = [_Server(delay=0.05), _Server(delay=0.05)]
    try:
        data = dataset(tmp_path, n=10)
        common = ["-r", "numeric", "-k", "3", "--keep", "0:0.9", "--model", "served-model"]
        one = tmp_path / "one" / "out.jsonl"
        one.parent.mkdir()
        res = CliRunner().invoke(cli, ["filter", data, "-o", str(one), *common, "--endpoint", servers[0].url])
        assert res.exit_code == 0, res.output
        # two processes at once, one shard each, each on its own server (as on two nodes)
        par = tmp_path / "par" / "out.jsonl"
        par.parent.mkdir()
        procs = [_cli_filter(data, "-o", par, *common, "--endpoint", servers[i].url, "--shard", f"{i}/2", "--json")
                 for i in (0, 1)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        assert [json.loads(o)["prompts"] for o, _ in outs] == [5, 5]
        res = CliRunner().invoke(cli, ["filter", data, "-o", str(par), *common, "--merge-shards", "2", "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["sampled_now"] == 0
        assert _files(par) == _files(one)
        # one process, two endpoints: both serve, the result is the same
        before = [len(s.bodies) for s in servers]
        two = tmp_path / "two" / "out.jsonl"
        two.parent.mkdir()
        res = CliRunner().invoke(cli, ["filter", data, "-o", str(two), *common, "--concurrency", "2",
                                       "--endpoint", servers[0].url, "--endpoint", servers[1].url])
        assert res.exit_code == 0, res.output
        assert all(len(s.bodies) > b for s, b in zip(servers, before))
        assert _files(two) == _files(one)
    finally:
        for s in servers:
            s.close()
