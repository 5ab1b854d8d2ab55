"""Data hardening (issue 10): every row judged even behind 200 unparseable lines, no 0-row output, reject
reasons printed verbatim, the right JSON error column, media confined to --root, media paths written
absolute / relative, and a dataset's relative media made absolute for a run in another folder."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from swift_ext.convert import ConvertOptions, convert_file
from swift_ext.convert.media import absolutize_media_file
from swift_ext.convert.validate import ValidateOptions, validate_file
from swift_ext.errors import ConfigError

DATA = Path(__file__).resolve().parents[1] / "data" / "convert"
RED = DATA / "images" / "red.png"
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def write_lines(path, lines):
    with open(path, "wb") as fh:
        for line in lines:
            fh.write((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n")
    return str(path)


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "swift_ext", *map(str, args)], capture_output=True, text=True,
                          env=ENV, cwd=cwd)


def sft(i, images=None):
    row = {"messages": [{"role": "user", "content": ("<image>" * len(images or [])) + f"q{i}"},
                        {"role": "assistant", "content": f"a{i}"}]}
    if images is not None:
        row["images"] = images
    return json.dumps(row)


# -- every row judged, no 0-row output --------------------------------------------------------------
def test_rows_behind_250_unparseable_lines_are_converted_and_every_row_judged(tmp_path):
    lines = [f"{{broken {i}" for i in range(250)] + [sft(i) for i in range(10)] + ["not json either"]
    src = write_lines(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    report = convert_file(src, str(out), "sft")
    assert (report.rows_in, report.rows_converted, report.rows_rejected) == (261, 10, 251)
    assert report.format == "swift" and report.written
    assert len(read_jsonl(out)) == 10
    rej = read_jsonl(report.reject_file)
    assert [r["line"] for r in rej] == list(range(1, 251)) + [261]
    assert all(r["reason"].startswith("invalid JSON") for r in rej)


@pytest.mark.parametrize("lines", [
    [f"{{broken {i}" for i in range(300)],                                 # nothing parses
    ['{"messages": [{"role": "user", "content": "q"}]}'] * 5 + ["[1, 2]"],  # parses, no row converts to sft
])
def test_no_output_when_every_row_is_rejected(tmp_path, lines):
    src = write_lines(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    report = convert_file(src, str(out), "sft")
    assert report.rows_in == report.rows_rejected == len(lines) and report.rows_out == 0
    assert not report.written and not out.exists()
    assert len(read_jsonl(report.reject_file)) == len(lines)
    run = cli("convert", src, "--to", "sft", "-o", out, "--json")
    assert run.returncode == 1
    assert "not written" in run.stderr and not out.exists()
    summary = json.loads(run.stdout)
    assert summary["written"] is False and summary["rows_rejected"] == len(lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.rejected.jsonl"]


def test_reject_reasons_are_printed_verbatim(tmp_path):
    """A reason holding ``[query, response]`` is printed as it is, not eaten as rich markup."""
    row = json.loads(sft(0))
    row["label"] = "[query, response]"
    src = write_lines(tmp_path / "in.jsonl", [json.dumps(row)])
    run = cli("convert", src, "--to", "kto", "-o", tmp_path / "out.jsonl")
    assert "got '[query, response]'" in run.stderr, run.stderr
    assert read_jsonl(tmp_path / "out.rejected.jsonl")[0]["reason"].endswith("got '[query, response]'")
    run = cli("validate", "in.jsonl", "--task", "kto", cwd=tmp_path)  # a short name: the table does not wrap
    assert run.returncode == 1 and "'[query, response]'" in run.stderr, run.stderr


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_truncated_line_reason_names_the_column_where_the_line_ends(tmp_path, ending):
    whole = sft(0)
    cuts = [i + 1 for i, ch in enumerate(whole) if ch in "[{,:"] + [len(whole) - 1]  # cut after a token
    with open(tmp_path / "in.jsonl", "w", newline="") as fh:
        fh.write(whole + ending)
        for cut in cuts:
            fh.write(whole[:cut] + ending)
    report = convert_file(str(tmp_path / "in.jsonl"), str(tmp_path / "out.jsonl"), "sft")
    reasons = [r["reason"] for r in read_jsonl(report.reject_file)]
    # the text ends at column len+1 (1-based): that is where the parser ran out
    assert [r.rsplit("(column ", 1)[1].rstrip(")") for r in reasons] == [str(c + 1) for c in cuts], reasons


# -- media: --root confinement -----------------------------------------------------------------------
@pytest.fixture()
def tree(tmp_path):
    """root/ with an image, a sub folder, a symlink to a system file, a symlink inside; an image outside."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    shutil.copy(RED, root / "a.png")
    shutil.copy(RED, tmp_path / "outside.png")
    os.symlink("/etc/hostname" if os.path.exists("/etc/hostname") else "/etc/passwd", root / "sys.png")
    os.symlink(root / "a.png", root / "sub" / "inner.png")
    os.symlink(tmp_path, root / "up")  # a folder link leading out
    return root


INSIDE = ["a.png", "sub/../a.png", "sub/inner.png"]
OUTSIDE_EXISTING = ["../outside.png", "sys.png", "up/outside.png", "/etc/passwd"]
OUTSIDE_MISSING = ["../missing.png", "up/missing.png", "/etc/no-such-file-here"]


def test_root_confines_media_paths_and_the_reason_does_not_tell_existence(tree, tmp_path):
    paths = INSIDE + OUTSIDE_EXISTING + OUTSIDE_MISSING
    src = write_lines(tmp_path / "in.jsonl", [sft(i, [p]) for i, p in enumerate(paths)])
    for to in ("sft", "grpo"):  # grpo too: its fast path must not let a path through
        out = tmp_path / f"{to}.jsonl"
        report = convert_file(src, str(out), ConvertOptions(to=to, root=str(tree), require_solution=False))
        assert report.rows_converted == len(INSIDE)
        assert [r["images"][0] for r in read_jsonl(out)] == INSIDE
        reasons = {r["line"]: r["reason"] for r in read_jsonl(report.reject_file)}
        for i, p in enumerate(OUTSIDE_EXISTING + OUTSIDE_MISSING, start=len(INSIDE) + 1):
            assert reasons[i] == f"images[0]: {p!r} is outside --root (resolved, symlinks followed)"
    # validate says the same, by path only
    v = validate_file(src, ValidateOptions(task="sft", root=str(tree), max_examples=100))
    outside = v.checks["media_outside"]
    assert outside["severity"] == "error" and outside["count"] == len(OUTSIDE_EXISTING + OUTSIDE_MISSING)
    assert "media_missing" not in v.checks
    run = cli("validate", src, "--task", "sft", "--root", tree, "--json")
    assert run.returncode == 1 and json.loads(run.stdout)["checks"]["media_outside"]["count"] == 7


def test_allow_outside_root_keeps_root_as_the_base_only(tree, tmp_path):
    src = write_lines(tmp_path / "in.jsonl", [sft(0, ["a.png"]), sft(1, ["../outside.png"]),
                                              sft(2, [str(tmp_path / "outside.png")]), sft(3, ["/etc/passwd"])])
    report = convert_file(src, str(tmp_path / "out.jsonl"),
                          ConvertOptions(to="sft", root=str(tree), allow_outside_root=True))
    assert report.rows_converted == 3               # /etc/passwd is no image, root or not (the one media check)
    run = cli("convert", src, "--to", "sft", "--root", tree, "-o", tmp_path / "cli.jsonl")
    assert run.returncode == 0 and len(read_jsonl(tmp_path / "cli.rejected.jsonl")) == 3
    run = cli("convert", src, "--to", "sft", "--root", tree, "--allow-outside-root", "-o", tmp_path / "cli2.jsonl")
    assert run.returncode == 0 and len(read_jsonl(tmp_path / "cli2.jsonl")) == 3
    assert "is not an image" in read_jsonl(tmp_path / "cli2.rejected.jsonl")[0]["reason"]


# -- media: paths written absolute / relative --------------------------------------------------------
@pytest.mark.parametrize("to", ["sft", "grpo"])
def test_media_paths_absolute_work_from_any_working_directory(tree, tmp_path, to):
    src = write_lines(tmp_path / "in.jsonl", [sft(0, ["a.png"]), sft(1, ["sub/inner.png"])])
    out = tmp_path / "deep" / "out" / "conv.jsonl"
    run = cli("convert", src, "--to", to, "--root", tree, "--media-paths", "absolute", "-o", out,
              *(["--allow-no-solution"] if to == "grpo" else []))
    assert run.returncode == 0, run.stderr
    images = [r["images"][0] for r in read_jsonl(out)]
    assert images == [str(tree / "a.png"), str(tree / "sub" / "inner.png")]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = cli("validate", out, "--task", to, "--json", cwd=elsewhere)  # no --root, another directory
    assert json.loads(run.stdout)["checks"].get("media_missing") is None


def test_media_paths_relative_to_the_output(tree, tmp_path):
    src = write_lines(tmp_path / "in.jsonl", [sft(0, ["a.png"]), sft(1, [str(tree / "sub" / "inner.png")])])
    out = tmp_path / "out" / "conv.jsonl"
    report = convert_file(src, str(out), ConvertOptions(to="sft", root=str(tree), media_paths="relative"))
    assert [r["images"][0] for r in read_jsonl(out)] == ["../root/a.png", "../root/sub/inner.png"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = cli("validate", out, "--task", "sft", "--root", out.parent, "--allow-outside-root", "--json",
              cwd=elsewhere)  # the output's folder as ROOT_IMAGE_DIR, from anywhere
    assert run.returncode == 0, run.stdout
    assert report.rows_converted == 2


def test_num_proc_confines_and_rewrites_like_the_serial_path(tree, tmp_path):
    paths = INSIDE + OUTSIDE_EXISTING + OUTSIDE_MISSING
    src = write_lines(tmp_path / "in.jsonl", [sft(i, [p]) for i, p in enumerate(paths * 3)])
    opts = ConvertOptions(to="sft", root=str(tree), media_paths="absolute")
    serial = convert_file(src, str(tmp_path / "serial.jsonl"), opts)
    parallel = convert_file(src, str(tmp_path / "parallel.jsonl"), opts.replace(num_proc=2))
    assert (tmp_path / "serial.jsonl").read_bytes() == (tmp_path / "parallel.jsonl").read_bytes()
    assert Path(serial.reject_file).read_bytes() == Path(parallel.reject_file).read_bytes()
    assert serial.rows_converted == parallel.rows_converted == 3 * len(INSIDE)
    assert all(os.path.isabs(r["images"][0]) for r in read_jsonl(tmp_path / "parallel.jsonl"))


def test_media_paths_keep_is_the_default(tree, tmp_path):
    src = write_lines(tmp_path / "in.jsonl", [sft(0, ["a.png"])])
    convert_file(src, str(tmp_path / "out.jsonl"), ConvertOptions(to="sft", root=str(tree)))
    assert read_jsonl(tmp_path / "out.jsonl")[0]["images"] == ["a.png"]
    with pytest.raises(ConfigError, match="--media-paths"):
        ConvertOptions(to="sft", media_paths="absolut")


# -- a dataset's relative media made absolute (swift-ext demo --dataset) ------------------------------
def test_absolutize_media_file(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "img").mkdir(parents=True)
    shutil.copy(RED, data / "img" / "a.png")
    (tmp_path / "shared").mkdir()
    shutil.copy(RED, tmp_path / "shared" / "b.png")
    rows = [json.loads(sft(0, ["img/a.png"])),                                       # next to the dataset
            json.loads(sft(1, ["shared/b.png", {"path": "img/a.png", "bytes": None}])),  # the working directory
            json.loads(sft(2, ["https://example.com/x.png"])), json.loads(sft(3))]
    rows[1]["messages"][0]["content"] = "<image><image>q1"
    ds = write_lines(data / "rows.jsonl", [json.dumps(r) for r in rows])
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    copy = absolutize_media_file(ds, str(run_dir))
    assert copy == str(run_dir / "rows.jsonl")
    got = read_jsonl(copy)
    assert got[0]["images"] == [str(data / "img" / "a.png")]
    assert got[1]["images"] == [str(tmp_path / "shared" / "b.png"), {"path": str(data / "img" / "a.png"),
                                                                      "bytes": None}]
    assert got[2] == rows[2] and got[3] == rows[3]
    assert [p.name for p in run_dir.iterdir()] == ["rows.jsonl"]  # written atomically: no temp file left
    # the copy validates from inside the run folder, where relative paths would not resolve
    monkeypatch.chdir(run_dir)
    assert validate_file(copy, ValidateOptions(task="sft")).ok
    assert not validate_file(ds, ValidateOptions(task="sft")).ok
    # a JSON array too; a path found nowhere names the line
    arr = data / "rows.json"
    arr.write_text(json.dumps(rows[:1]))
    monkeypatch.chdir(tmp_path)
    copy = Path(absolutize_media_file(str(arr), str(run_dir)))
    assert json.loads(copy.read_text())[0]["images"] == [str(data / "img" / "a.png")]  # still an array
    bad = write_lines(data / "bad.jsonl", [sft(0), sft(1, ["img/missing.png"])])
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: media file 'img/missing.png' not found"):
        absolutize_media_file(bad, str(run_dir))
    assert not (run_dir / "bad.jsonl").exists()


# -- validate's memory per row ------------------------------------------------------------------------
def test_fingerprint_set_finds_the_same_duplicates_as_a_set():
    import random

    from swift_ext.convert.validate import FingerprintSet

    rng = random.Random(3)
    values = [rng.getrandbits(64) for _ in range(30_000)] + [0, 1, 1 << 63]
    stream = values + rng.sample(values, 5_000) + [0, 1]  # repeats, and 0 (the empty mark) next to 1
    fs, seen = FingerprintSet(slots=8), set()
    for v in stream:
        assert fs.add(v) == (v in seen or (v == 0 and 1 in seen) or (v == 1 and 0 in seen))
        seen.add(v)
    assert len(fs) == len({v or 1 for v in values})


def test_validate_duplicate_detection_memory_per_row(tmp_path):
    """The docs' bytes per row, measured (tracemalloc peak with duplicates minus without): the old set of
    8-byte digests took about 75."""
    import tracemalloc

    n = 40_000
    src = write_lines(tmp_path / "rows.jsonl", [sft(i % (n // 2)) for i in range(n)])
    peaks = {}
    for dup in (False, True):
        tracemalloc.start()
        report = validate_file(src, ValidateOptions(task="sft", check_media=False, duplicates=dup))
        peaks[dup] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert report.rows == n
    assert report.checks["duplicate"]["count"] == n // 2
    per_row = (peaks[True] - peaks[False]) / n
    assert per_row < 32, per_row  # at most 22 held, 32 while the table grows


# -- media: no shortcut around the one media check (issue 17 finding 5) -------------------------------------
def _base64_prefixed(rest):
    """A path whose first 64 characters decode as base64 of a PNG header, padded to a multiple of 4."""
    head = "iVBORw0KGgo" + "A" * 53
    while (len(head) + len(rest)) % 4:
        rest = "./" + rest if rest.startswith("..") else rest + "/"
    return head + rest


def test_long_paths_base64_prefixes_audios_and_nul_bytes_do_not_skip_the_media_check(tree, tmp_path):
    long_path = "/" * 2500 + str(tmp_path / "outside.png").lstrip("/")
    b64_path = _base64_prefixed("/../../outside.png")
    assert os.path.realpath(os.path.join(tree, b64_path)) == str(tmp_path / "outside.png")
    audio = json.loads(sft(3))
    audio["audios"] = ["../outside.png"]
    src = write_lines(tmp_path / "in.jsonl", [sft(0, ["a.png"]), sft(1, [long_path]), sft(2, [b64_path]),
                                              json.dumps(audio), sft(4, ["a\x00b.png"])])
    for to in ("sft", "grpo"):
        out = tmp_path / f"{to}.jsonl"
        report = convert_file(src, str(out), ConvertOptions(to=to, root=str(tree), require_solution=False))
        assert report.rows_converted == 1, to
        reasons = {r["line"]: r["reason"] for r in read_jsonl(report.reject_file)}
        assert "is outside --root" in reasons[2] and "is outside --root" in reasons[3]
        assert reasons[4].startswith("audios[0]:") and "is outside --root" in reasons[4]
        assert "NUL byte" in reasons[5]
    run = cli("validate", src, "--task", "sft", "--root", tree, "--json")
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    checks = json.loads(run.stdout)["checks"]
    assert checks["media_outside"]["count"] == 3 and checks["media_invalid"]["count"] == 1
