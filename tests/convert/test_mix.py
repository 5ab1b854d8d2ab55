"""swift-ext mix: ratios, determinism, train/val split, per-source report, rejects, upsampling."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from swift_ext.convert.mix import MixOptions, allocate, mix_files, parse_source
from swift_ext.errors import ConfigError


def write(path, rows, extra_lines=()):
    with open(path, "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
        for line in extra_lines:
            fh.write(line + "\n")
    return str(path)


def lines(path):
    return Path(path).read_text().splitlines()


@pytest.fixture
def sources(tmp_path):
    dom = write(tmp_path / "domain.jsonl", [{"src": "d", "i": i} for i in range(200)], ["{bad"])
    gen = write(tmp_path / "general.jsonl", [{"src": "g", "i": i} for i in range(1000)])
    return dom, gen


def test_allocate_by_hand():
    # limiting source used whole: domain 200 rows at ratio 10 -> scale 20 -> general 20
    assert allocate([200, 1000], [10, 1], None) == [200, 20]
    # 5:1 with a total of 60 -> 50 + 10
    assert allocate([200, 1000], [5, 1], 60) == [50, 10]
    # 1:1:1 with total 10 -> 3.33 each, the remainder 1 goes to the first largest fraction
    assert allocate([9, 9, 9], [1, 1, 1], 10) == [4, 3, 3]


def test_parse_source():
    assert parse_source("a.jsonl:10") == ("a.jsonl", 10.0)
    assert parse_source("a.jsonl") == ("a.jsonl", 1.0)
    assert parse_source("C:/x/a.jsonl:2") == ("C:/x/a.jsonl", 2.0)
    with pytest.raises(ConfigError):
        parse_source("a.jsonl:0")


def test_mix_counts_split_and_report(tmp_path, sources):
    dom, gen = sources
    out = tmp_path / "mix.jsonl"
    report = mix_files([f"{dom}:10", f"{gen}:1"], str(out), MixOptions(seed=1, val_ratio=0.1))
    rows = [json.loads(x) for x in lines(out)] + [json.loads(x) for x in lines(tmp_path / "mix.val.jsonl")]
    # 200 domain + 20 general = 220; val = round(220 * 0.1) = 22
    assert len(rows) == 220 and report.rows_val == 22 and report.rows_train == 198
    assert sum(r["src"] == "d" for r in rows) == 200 and sum(r["src"] == "g" for r in rows) == 20
    assert len({(r["src"], r["i"]) for r in rows}) == 220  # no repeats without --upsample
    s = {x["path"]: x for x in report.sources}
    assert s[dom]["rows_available"] == 200 and s[dom]["rows_taken"] == 200
    assert s[gen]["rows_taken"] == 20 and s[gen]["train"] + s[gen]["val"] == 20
    assert report.rows_rejected == 1
    rej = [json.loads(x) for x in lines(report.reject_file)]
    assert rej[0]["line"] == 201 and rej[0]["file"] == dom


def test_mix_is_deterministic(tmp_path, sources):
    dom, gen = sources
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        mix_files([f"{dom}:5", f"{gen}:1"], str(tmp_path / f"{name}.jsonl"), MixOptions(seed=seed, total=60))
    a, b, c = ((tmp_path / f"{n}.jsonl").read_bytes() for n in "abc")
    assert a == b and a != c
    rows = [json.loads(x) for x in lines(tmp_path / "a.jsonl")]
    assert sum(r["src"] == "d" for r in rows) == 50 and sum(r["src"] == "g" for r in rows) == 10


def test_too_few_rows_needs_upsample(tmp_path, sources):
    dom, gen = sources
    with pytest.raises(ConfigError, match="only 200 usable rows"):
        mix_files([f"{dom}:1", f"{gen}:1"], str(tmp_path / "m.jsonl"), MixOptions(total=1000))
    assert not (tmp_path / "m.jsonl").exists()
    report = mix_files([f"{dom}:1", f"{gen}:1"], str(tmp_path / "m.jsonl"), MixOptions(total=1000, upsample=True))
    rows = [json.loads(x) for x in lines(tmp_path / "m.jsonl")]
    # 500 from domain = 2 full copies (400) + 100 sampled; every domain row appears 2 or 3 times
    dom_counts = {}
    for r in rows:
        if r["src"] == "d":
            dom_counts[r["i"]] = dom_counts.get(r["i"], 0) + 1
    assert sum(dom_counts.values()) == 500 and set(dom_counts.values()) == {2, 3}
    assert report.sources[0]["upsampled"] is True


def test_cli(tmp_path, sources):
    dom, gen = sources
    res = subprocess.run([sys.executable, "-m", "swift_ext", "mix", f"{dom}:10", f"{gen}:1", "-o",
                          str(tmp_path / "m.jsonl"), "--json"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["rows_train"] == 220
