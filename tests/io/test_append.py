"""The one append-mode JSONL writer (:class:`swift_ext.io.JsonlAppender`): whole lines at the end of the file, a torn
tail cut before appending, several real processes appending to one file without mixing their lines."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from swift_ext.io import JsonlAppender, iter_jsonl, iter_jsonl_rows


def lines(path):
    return [obj for _, obj in iter_jsonl(str(path))]


def test_a_torn_tail_is_cut_before_the_next_row(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2, "b": "cut sho')          # killed in the middle of its second row
    with JsonlAppender(str(path)) as log:
        log.write({"a": 3})
        log.write_many([{"a": 4}, {"a": 5}])
    assert lines(path) == [{"a": 1}, {"a": 3}, {"a": 4}, {"a": 5}]
    assert log.n == 3


def test_a_file_that_is_one_torn_line_starts_empty(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"no newline": ' + b"x" * 200_000)          # longer than one backwards read
    with JsonlAppender(str(path)) as log:
        log.write({"a": 1})
    assert path.read_bytes() == b'{"a":1}\n'


def test_keep_truncates_to_the_last_good_line_a_reader_found(tmp_path):
    path = tmp_path / "ckpt.jsonl"
    path.write_bytes(b'{"h": 1}\n{"k": "a"}\n{"k": "b"}\n')
    with JsonlAppender(str(path), keep=len(b'{"h": 1}\n{"k": "a"}\n'), fsync=True) as log:
        log.write({"k": "c"})
    assert lines(path) == [{"h": 1}, {"k": "a"}, {"k": "c"}]


def test_values_json_cannot_hold_are_written_as_text(tmp_path):
    path = tmp_path / "d" / "sub" / "log.jsonl"                      # folders are made
    with JsonlAppender(str(path)) as log:
        log.write({"path": Path("/x/y.png"), "n": 1, "text": "naïve ✓"})
    assert lines(path) == [{"path": "/x/y.png", "n": 1, "text": "naïve ✓"}]


def test_processes_appending_to_one_file_never_mix_their_lines(tmp_path):
    """Four real processes append 50 rows of 100 KB each (well above PIPE_BUF) to one file at once, each opening
    the file for every row: every line parses and every row is there once (an appender that opened the file while
    another was half-way through a line took that line for a torn one and cut it off, before the flock)."""
    path = tmp_path / "shared.jsonl"
    script = textwrap.dedent("""
        import sys
        from swift_ext.io import JsonlAppender
        who = sys.argv[1]
        for i in range(50):                          # opened per write, as the sample log does
            with JsonlAppender(sys.argv[2]) as log:
                log.write_many([{"who": who, "i": i, "pad": who * 100_000}])
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    procs = [subprocess.Popen([sys.executable, "-c", script, w, str(path)], env=env) for w in "abcd"]
    assert all(p.wait(120) == 0 for p in procs)
    rows = list(iter_jsonl_rows(str(path)))
    assert all(err is None for _, _, _, err in rows)
    got = sorted((obj["who"], obj["i"]) for _, obj, _, _ in rows)
    assert got == sorted((w, i) for w in "abcd" for i in range(50))
    assert all(obj["pad"] == obj["who"] * 100_000 for _, obj, _, _ in rows)


def test_a_closed_appender_refuses(tmp_path):
    log = JsonlAppender(str(tmp_path / "x.jsonl"))
    log.close()
    with pytest.raises(ValueError, match="closed"):
        log.write({"a": 1})
