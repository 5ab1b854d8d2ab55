"""Issue 21 part 3 for report and audit: the run files are read in bounded memory with the same results as
reading them whole, and a ``--serve`` poll reads only what was appended (counted in bytes the process read,
``/proc/self/io``, not timed)."""

import json
import random
import sys
from pathlib import Path

import pytest

from swift_ext import runs
from swift_ext.curation import audit
from swift_ext.report import live as report_live

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
    for rec in run.completions():  # the in-memory path the detectors had before streaming
        by_step.setdefault(rec.step, []).append(rec)
    in_memory = [audit.repetition(run, by_step), audit.identical_groups(run, by_step)]
    assert [f.as_dict() for f in streamed[-2:]] == [f.as_dict() for f in in_memory]
    assert streamed[-1].status != "skipped" and streamed[-1].value > 0


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
