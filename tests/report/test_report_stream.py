"""Issue 21 part 3 for report and audit: the run files are read in bounded memory with the same results as
reading them whole, and a ``--serve`` poll reads only what was appended (counted in bytes the process read,
``/proc/self/io``, not timed)."""

import json
import random
import statistics
import sys
from pathlib import Path

import pytest

from swift_ext import runs
from swift_ext.curation import audit
from swift_ext.report import live as report_live
from swift_ext.rewards import build
from swift_ext.scoring.results import group_indices

sys.path.insert(0, str(Path(__file__).parent))
from test_report import write_run  # noqa: E402


def test_the_incremental_reader_equals_reading_the_file_whole(tmp_path):
    run = write_run(tmp_path / "v0", steps=40, rewards=("acc", "fmt", "len"), mu=True)
    path = run / "logging.jsonl"
    data = path.read_bytes()
    whole = runs.metric_series(runs.read_logging(path))  # the whole-file oracle: every row in memory
    log = runs.MetricLog(path)
    log.read()
    assert log.series == whole and log.max_steps == 40
    # the same file arriving in random pieces (a run being written), cut anywhere, even inside a line
    rng = random.Random(0)
    grown = tmp_path / "grown.jsonl"
    grown.write_bytes(b"")
    log, at = runs.MetricLog(grown), 0
    while at < len(data):
        cut = min(len(data), at + rng.randint(1, 900))
        with open(grown, "ab") as fh:
            fh.write(data[at:cut])
        at = cut
        log.read()
        assert log.offset == len(data[:cut].rpartition(b"\n")[0]) + (1 if b"\n" in data[:cut] else 0)
    assert log.series == whole


def test_audit_streamed_equals_audit_of_completions_in_memory(tmp_path):
    run_dir = write_run(tmp_path / "v0", steps=8, prompts=3, gens=4)
    with open(run_dir / "completions.jsonl") as fh:  # make some groups identical, some repetitive
        tables = [json.loads(line) for line in fh]
    for t, table in enumerate(tables):
        for i in range(len(table["completion"])):
            if t >= 4 and i < 4:
                table["completion"][i] = "same same same same answer"
            elif t >= 6:
                table["completion"][i] = "la " * (5 + i)
    (run_dir / "completions.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tables))
    run = runs.load_run(run_dir)
    streamed = audit.audit(run)
    by_step = {}
    for rec in run.completions():  # the series computed with every completion in memory, as before streaming
        by_step.setdefault(rec.step, []).append(rec)
    reward = build("ngram_repetition:n=3,max_penalty=-1")
    repeated, identical = [], []
    for step in sorted(by_step):
        recs = by_step[step]
        scores = [s for s in reward([r.text for r in recs]) if s is not None]
        repeated.append((step, -statistics.fmean(scores) if scores else 0.0))
        groups = [g for g in group_indices(r.prompt for r in recs) if len(g) > 1]
        identical.append((step, sum(len({recs[i].text for i in g}) == 1 for g in groups) / len(groups)
                          if groups else 0.0))
    fold = audit.fold_completions(run)
    got = fold.repetition_series()
    assert [st for st, _ in got] == [st for st, _ in repeated]
    assert [v for _, v in got] == pytest.approx([v for _, v in repeated], rel=1e-12)
    assert fold.identical_series() == identical
    assert [f.detector for f in streamed[-2:]] == ["repetition", "identical_groups"]
    assert streamed[-2].status != "skipped" and streamed[-1].status != "skipped" and streamed[-1].value > 0


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux's /proc/self/io (bytes read)")
def test_a_serve_poll_reads_only_what_was_appended(tmp_path):
    run = write_run(tmp_path / "out" / "v0", steps=4)
    rows = [json.loads(line) for line in (run / "logging.jsonl").read_text().splitlines()][:-1]
    filler = {f"other/metric_{i}": 0.5 for i in range(40)}
    with open(run / "logging.jsonl", "w") as fh:  # a run of 20k logged steps: a logging.jsonl of ~20 MB
        for step in range(1, 20_001):
            fh.write(json.dumps({**rows[step % 4], **filler, "global_step/max_steps": f"{step}/30000"}) + "\n")
    size = (run / "logging.jsonl").stat().st_size
    live = report_live.LiveReport([tmp_path / "out"])
    live.data()

    def rchar():
        return int(next(line for line in open("/proc/self/io") if line.startswith("rchar:")).split()[1])

    line = json.dumps({"loss": 9.0, "global_step/max_steps": "20001/30000"}) + "\n"
    with open(run / "logging.jsonl", "a") as fh:
        fh.write(line)
    before = rchar()
    data = live.data()
    read = rchar() - before
    assert data.model["series"][0]["loss"][-1] == [20001, 9.0]
    assert read < 64 * 1024, f"a poll after one appended line read {read} bytes of a {size}-byte run"
    assert live.logging_bytes_read == len(line) and live.completion_reads == 1  # completions not re-read


def test_a_serve_poll_writes_the_model_again_only_when_it_changed_and_equal_to_writing_it_whole(tmp_path):
    """``/api/model``: the cached series text, extended poll by poll, gives the JSON that writing every point
    again gives (the oracle: ``json.dumps`` of the points as plain lists); a poll from a page that already has
    the current version is answered with nothing (204)."""
    from swift_ext.report.page import model_json

    def oracle(model):
        plain = {k: v for k, v in model.items() if k != "series"}
        plain["series"] = [{k: [list(p) for p in pts] for k, pts in s.items()} for s in model["series"]]
        return json.loads(json.dumps(plain, default=str))

    run = write_run(tmp_path / "out" / "v0", steps=30)
    log = run / "logging.jsonl"
    rows = log.read_text().splitlines()
    log.write_text("\n".join(rows[:10]) + "\n")
    live = report_live.LiveReport([tmp_path / "out"])
    body = live.model_body()
    version = json.loads(body)["version"]
    assert json.loads(body) == oracle(live.data().model)
    assert live.model_body(since=version) is None                 # nothing new: 204
    assert live.model_body() is body                              # and nothing written again
    for cut in (11, 17, 30):                                      # training goes on: lines appended
        with open(log, "a") as fh:
            fh.write("\n".join(rows[len(log.read_text().splitlines()):cut]) + "\n")
        grown = live.model_body(since=version)
        model = live.data().model
        assert json.loads(grown) == oracle(model) and json.loads(grown)["version"] > version
        assert json.loads(grown) == json.loads(model_json(model))  # the plain writer agrees too
        version = json.loads(grown)["version"]
    steps = [p[0] for p in json.loads(grown)["series"][0]["loss"]]
    assert steps == sorted(set(steps)) and len(steps) == 30
    log.write_text("\n".join(rows[:5]) + "\n")                  # the file replaced: read over, text anew
    again = json.loads(live.model_body(since=version))
    assert len(again["series"][0]["loss"]) == 5 and again == oracle(live.data().model)


def test_report_completion_blocks_equal_grouping_the_whole_file(tmp_path, monkeypatch):
    import re

    from swift_ext.errors import ConfigError
    from swift_ext.report import page as report_page
    from swift_ext.report import write_report

    run = write_run(tmp_path / "v0", steps=3, prompts=3, gens=3)
    lines = (run / "completions.jsonl").read_text().splitlines()
    extra = json.loads(lines[0])  # step 1 comes back after step 3 (a resumed run): merged into step 1's groups
    extra["completion"] = [f"late {i}" for i in range(len(extra["completion"]))]
    (run / "completions.jsonl").write_text("\n".join(lines + [json.dumps(extra)]) + "\n")
    # the oracle: every completion in memory, grouped by (step, prompt) in order of first appearance
    flat = []
    for line in (run / "completions.jsonl").read_text().splitlines():
        t = json.loads(line)
        flat += [{k: v[i] for k, v in t.items()} for i in range(len(t["completion"]))]
    expected = {}
    for n, c in enumerate(flat):
        groups = expected.setdefault(int(c["step"]), {})
        groups.setdefault(c["prompt"], []).append((n, c["completion"], [c["acc"], c["fmt"]], c["advantages"]))
    write_report([run], tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    got = {}
    for step, body in re.findall(r'<script type="application/json" id="c-0-(\d+)">(.*?)</script>', html):
        got[int(step)] = {g["prompt"]: [(i["n"], i["text"], i["s"], i["adv"]) for i in g["items"]]
                          for g in json.loads(body)["groups"]}
    assert got == expected and [list(g) for g in got.values()] == [list(g) for g in expected.values()]
    assert len(got[1]["<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Q0?<|im_end|>\n"
                   "<|im_start|>assistant\n"]) == 6  # 3 + 3 late ones
    monkeypatch.setattr(report_page, "MAX_GROUP", 5)  # a group too large to show is an error naming it
    with pytest.raises(ConfigError, match=r"completions.jsonl:4: the prompt group .*Q0.* of step 1 has more than 5"):
        write_report([run], tmp_path / "r2.html")


def test_a_replaced_or_truncated_logging_file_is_read_over(tmp_path):
    path = tmp_path / "logging.jsonl"
    path.write_text('{"loss": 1.0, "global_step/max_steps": "1/3"}\n{"loss": 2.0, "global_step/max_steps": "2/3"}\n')
    log = runs.MetricLog(path)
    log.read()
    assert log.series["loss"] == [[1, 1.0], [2, 2.0]]
    path.write_text('{"loss": 5.0, "global_step/max_steps": "1/3"}\n')  # shorter: a new run in the same folder
    log.read()
    assert log.series["loss"] == [[1, 5.0]] and log.offset == path.stat().st_size
    new = tmp_path / "new.jsonl"
    new.write_text('{"loss": 7.0, "global_step/max_steps": "1/3"}\n{"loss": 8.0, "global_step/max_steps": "2/3"}\n')
    new.replace(path)  # another file under the same name (longer than what was read)
    log.read()
    assert log.series["loss"] == [[1, 7.0], [2, 8.0]]
