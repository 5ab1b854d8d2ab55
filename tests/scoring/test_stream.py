"""Streamed reads (issue "Beyond one process", part 3): `rewards score` and `rewards explain --limit` read their
input in bounded memory and give the numbers the whole-file reader gives."""

import json
import random
import tracemalloc

import pytest
from click.testing import CliRunner

from swift_ext.errors import ConfigError
from swift_ext.scoring import results, score


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _rows(n_prompts, k, seed=0, interleave=False):
    rnd = random.Random(seed)
    rows = []
    for p in range(n_prompts):
        gold = str(rnd.randint(0, 9))
        for _ in range(k):
            ans = gold if rnd.random() < 0.4 else str(rnd.randint(0, 9))
            fmt = f"<think>t</think><answer>{ans}</answer>" if rnd.random() < 0.7 else ans
            rows.append({"messages": [{"role": "user", "content": f"q{p}"}], "solution": gold, "completion": fmt})
    if interleave:  # ranks writing alternately: a prompt's rows are spread over a few neighbouring groups
        rnd.shuffle(rows[: len(rows) // 2])
    return rows


@pytest.mark.parametrize("interleave", [False, True])
def test_streamed_scores_and_statistics_equal_the_whole_file_reader(tmp_path, interleave):
    path = _write(tmp_path / "c.jsonl", _rows(300, 6, interleave=interleave) + ["not a row", {"solution": "1"}])
    specs = ["exact_match", "think_format"]
    whole = score.score_file(path, specs)
    got = []
    streamed = score.score_stream(path, specs, batch_size=7, sink=got.append)
    assert [{k: r[k] for k in ("line", *specs)} for r in got] == whole.scores
    assert (streamed.rows, streamed.completions, streamed.rejected) == (whole.rows, whole.completions, whole.rejected)
    for a, b in zip(streamed.stats, whole.stats):
        assert (a.name, a.n, a.abstained, a.mean, a.min, a.max, a.groups, a.zero_std_groups) == \
            (b.name, b.n, b.abstained, b.mean, b.min, b.max, b.groups, b.zero_std_groups)
        assert a.std == pytest.approx(b.std, rel=1e-12)
    assert whole.stats[0].zero_std_groups not in (0, whole.stats[0].groups)  # the numbers are not trivial


def _peak(path):
    tracemalloc.start()
    score.score_stream(path, ["think_format"], sink=lambda row: None)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_memory_of_a_streamed_score_does_not_grow_with_the_file(tmp_path, monkeypatch):
    from swift_ext.io import jsonl

    monkeypatch.setattr(results, "OPEN_GROUPS", 256)  # both files hold more groups than stay open
    monkeypatch.setattr(jsonl, "READ_CHUNK", 1 << 16)  # and more bytes than one read
    small = _write(tmp_path / "s.jsonl", _rows(1000, 8))
    large = _write(tmp_path / "l.jsonl", _rows(8000, 8))
    _peak(small)  # imports and caches out of the way
    p_small, p_large = _peak(small), _peak(large)
    # 8x the rows; the whole-file reader holds every row (several MB here), the stream a few batches and groups
    assert p_large < 1.3 * p_small, (p_small, p_large)
    res = results.load(large)
    assert len(res.completions) == 64000


def test_a_group_too_large_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "MAX_GROUP", 10)
    path = _write(tmp_path / "g.jsonl", _rows(1, 11))
    with pytest.raises(ConfigError, match=r"g.jsonl:11: the prompt group .* more than 10 completions"):
        score.score_stream(path, ["think_format"])


def test_explain_limit_reads_only_the_first_rows(tmp_path):
    from swift_ext.cli import cli

    rows = _rows(5, 2)
    path = tmp_path / "e.jsonl"
    # a broken line after the first rows: a reader that goes past --limit fails on it
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["rewards", "explain", str(path), "-r", "think_format", "-n", "3"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert [g["line"] for g in got] == [1, 2, 3]
    full = CliRunner().invoke(cli, ["rewards", "explain", str(path), "-r", "think_format", "-n", "0"])
    assert full.exit_code != 0 and "e.jsonl:11" in full.output
