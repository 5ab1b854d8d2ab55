"""The ``code_tests`` reward: program extraction, the test-case formats, output comparison, modes, deadlines
and concurrency, explanations, the runner hook, and the data path (``swift-ext convert`` then ``swift-ext
filter``), all on the real local sandbox."""

import base64
import json
import pickle
import time
import zlib

import pytest
from click.testing import CliRunner

from swift_ext.cli import cli
from swift_ext.extract import extract_code
from swift_ext.rewards import build
from swift_ext.sandbox.cases import TestsError, read_tests
from swift_ext.sandbox.compare import same_output, same_value


def py(code):
    return f"```python\n{code}\n```"


ADD = "a, b = map(int, input().split())\nprint(a + b)"
GT = {"inputs": ["1 2", "5 7", "0 0"], "outputs": ["3", "12", "0"]}


# -- extraction --------------------------------------------------------------------------------------
class TestExtract:
    def test_last_block_of_the_language(self):
        text = "draft:\n```python\nprint(1)\n```\nfinal:\n```py\nprint(2)\n```\n```bash\nls\n```"
        assert extract_code(text, ("python", "py")) == ("print(2)\n", "fence")

    def test_after_reasoning_wins_over_code_in_the_reasoning(self):
        text = "<think>```python\nprint('draft')\n```</think>```python\nprint('final')\n```"
        assert extract_code(text)[0] == "print('final')\n"

    def test_unclosed_fence_of_a_truncated_completion(self):
        assert extract_code("```python\nprint(1)") == ("print(1)", "unclosed_fence")

    def test_untagged_fence_answer_tag_and_whole_text(self):
        assert extract_code("```\nprint(3)\n```") == ("print(3)\n", "untagged_fence")
        assert extract_code("<answer>print(4)</answer>") == ("print(4)", "answer_tag")
        assert extract_code("print(5)", whole_ok=lambda t: True) == ("print(5)", "whole_text")

    def test_none_says_why(self):
        assert extract_code("I do not know.", whole_ok=lambda t: False) == \
            (None, "no fenced code block, no <answer> and the text is not a program")
        assert extract_code("", whole_ok=lambda t: True) == (None, "the completion is empty")
        assert extract_code("```python\nx\n```", mode="answer") == (None, "no <answer> in the completion")
        assert extract_code("```\nx\n```", mode="fence")[0] is None       # open-r1 needs the language tag


# -- formats -----------------------------------------------------------------------------------------
class TestFormats:
    def test_open_r1_as_a_json_string(self):
        info = json.dumps({"language": "python", "test_cases": [{"input": "1", "output": "2", "type": "stdin_stdout"}]})
        t = read_tests({"verification_info": info})
        assert (t.source, t.language, t.cases[0].stdin) == ("open-r1", "python", "1")

    def test_verl_stdin_call_based_and_assert_cases(self):
        t = read_tests({"reward_model": {"ground_truth": json.dumps(GT)}})
        assert t.source == "verl" and [c.mode for c in t.cases] == ["stdio"] * 3
        call = read_tests({"ground_truth": {"fn_name": "f", "inputs": ["[1, 2]\n\"x\"", [3]], "outputs": ["[3]", 4]}})
        assert call.cases[0].args == [[1, 2], "x"] and call.cases[0].expected == [3] and call.cases[1].args == [3]
        asserts = read_tests({"ground_truth": {"assert_case": ["assert f(1) == 2"]}})
        assert asserts.cases[0].spec == {"call": "assert f(1) == 2"}

    def test_livecodebench_json_and_compressed(self):
        tests = [{"input": "1\n2", "output": "3", "testtype": "functional"}]
        packed = base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()
        t = read_tests({"public_test_cases": "[]", "private_test_cases": packed, "metadata": '{"func_name": "add"}'})
        assert (t.source, t.cases[0].fn, t.cases[0].args, t.cases[0].expected) == ("livecodebench", "add", [1, 2], 3)

    def test_compressed_cases_never_unpickle_objects(self):
        class Evil:
            def __reduce__(self):
                return (print, ("pwned",))

        packed = base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode()
        with pytest.raises(TestsError, match="only plain data"):
            read_tests({"public_test_cases": "[]", "private_test_cases": packed})

    def test_humaneval_mbpp_and_pytest(self):
        he = read_tests({"test": "def check(candidate):\n    assert candidate(1) == 1\n", "entry_point": "f"})
        assert he.source == "humaneval" and he.cases[0].spec["call"] == "check(f)"
        mbpp = read_tests({"test_list": ["assert f(1) == 2", "assert f(2) == 3"], "test_setup_code": "import math"})
        assert mbpp.source == "mbpp" and len(mbpp.cases) == 2 and mbpp.cases[0].spec["setup"] == "import math"
        kod = read_tests({"test": "from solution import f\n\ndef test_a():\n    assert f()\n\ndef test_b():\n    pass\n"})
        assert kod.source == "pytest" and [c.name for c in kod.cases] == ["test_a", "test_b"]

    def test_column_name_is_a_parameter(self):
        t = read_tests({"my_tests": json.dumps(GT)}, key="my_tests")
        assert len(t.cases) == 3
        with pytest.raises(TestsError, match="no column 'other'"):
            read_tests({"my_tests": "{}"}, key="other")

    @pytest.mark.parametrize("row, why", [
        ({}, "no test cases in the row"),
        ({"verification_info": {"test_cases": []}}, "holds no test cases"),
        ({"ground_truth": {"inputs": ["1"], "outputs": []}}, "1 inputs but 0 outputs"),
        ({"ground_truth": "{not json"}, "not valid JSON"),
        ({"verification_info": {"test_cases": [{"input": "1", "output": "2", "type": "file"}]}}, "type 'file'"),
        ({"test": "def check(:\n", "entry_point": "f"}, "does not parse"),
    ])
    def test_bad_rows_say_why(self, row, why):
        with pytest.raises(TestsError, match=why):
            read_tests(row)


# -- comparison --------------------------------------------------------------------------------------
class TestCompare:
    def test_whitespace_per_line(self):
        assert same_output("  3  \r\n4\n\n\n", "3\n4")           # stripped lines, trailing blank lines
        assert not same_output("3\n\n4", "3\n4")                  # an inner blank line counts
        assert not same_output("3", "3\n4") and not same_output("3 4", "34")

    def test_float_tolerance(self):
        assert not same_output("0.3333333", "0.333333")            # text only by default of the function
        assert same_output("0.3333333 7", "0.333333 7", 1e-6)      # |d| <= tol * max(1, |expected|)
        assert same_output("1000000.5", "1000000", 1e-6)           # relative for large values
        assert not same_output("0.34", "0.333333", 1e-6) and not same_output("nan", "nan", 1e-6) is False

    def test_values(self):
        assert same_value((1, 2), [1, 2]) and same_value(7, [7]) and not same_value(7, [7, 8])
        assert same_value({"1": 2}, {1: 2}) and not same_value("1", 1)
        assert same_value(0.1 + 0.2, 0.3, 1e-9) and not same_value(0.1 + 0.2, 0.3)


# -- the reward --------------------------------------------------------------------------------------
class TestReward:
    def test_fraction_and_all(self):
        comps = [py(ADD), py("print(3)"), py("raise SystemExit(1)"), "no program at all"]
        assert build("code_tests")(comps, ground_truth=[GT] * 4) == [1.0, pytest.approx(1 / 3), 0.0, 0.0]
        assert build("code_tests:mode=all")(comps, ground_truth=[GT] * 4) == [1.0, 0.0, 0.0, 0.0]

    def test_mode_all_is_open_r1_binary_code_reward(self):
        """binary_code_reward: 1.0 when code_reward > 0.99 (open-r1 rewards.py)."""
        comps = [py(ADD), py("print(3)"), py("import sys\nx = sys.stdin.read()\nprint(0 if x == '0 0' else 3)")]
        fractions = build("code_tests")(comps, ground_truth=[GT] * 3)
        assert build("code_tests:mode=all")(comps, ground_truth=[GT] * 3) == [1.0 if f > 0.99 else 0.0 for f in fractions]

    def test_abstains_without_tests_and_says_why(self):
        r = build("code_tests")
        assert r([py(ADD)], solution=["42"]) == [None]
        assert "no test cases" in r.explain(py(ADD), solution="42")["reason"]

    def test_language_comes_from_the_row(self):
        info = {"language": "cobol", "test_cases": [{"input": "", "output": "1", "type": "stdin_stdout"}]}
        r = build("code_tests")
        assert r(["```cobol\nDISPLAY 1\n```"], verification_info=[info]) == [None]   # no cobol runner: abstain
        assert "runner" in r.last_details[0].cases[0]["message"]

    def test_the_call_keeps_its_deadline_and_timed_out_cases_score_zero(self):
        r = build("code_tests:timeout=2,case_timeout=1,concurrency=2")
        hang = py("import time\ntime.sleep(30)")
        start = time.monotonic()
        scores = r([hang] * 4 + [py(ADD)] * 4, ground_truth=[GT] * 8)
        took = time.monotonic() - start
        assert took <= r.budget(8) + 1.0
        assert scores[:4] == [0.0] * 4
        outcomes = {c["outcome"] for v in r.last_details[:4] for c in v.cases}
        assert outcomes <= {"timeout", "not_run (deadline)"}

    def test_cases_run_in_parallel(self):
        sleepy = py("import time\ntime.sleep(0.6)\n" + ADD)
        r = build("code_tests:concurrency=6")
        start = time.monotonic()
        assert r([sleepy, sleepy.replace("0.6", "0.61")], ground_truth=[GT] * 2) == [1.0, 1.0]
        assert time.monotonic() - start < 6 * 0.6          # 6 runs of 0.6 s, 6 at a time: about one slot

    def test_identical_programs_run_once(self):
        r = build("code_tests")
        sandbox = r.sandbox()
        calls = []
        real = sandbox.run_many
        sandbox.run_many = lambda programs, *a, **k: calls.append(len(programs)) or real(programs, *a, **k)
        assert r([py(ADD)] * 8, ground_truth=[GT] * 8) == [1.0] * 8
        assert calls == [3]

    def test_pickles_and_scores_after_unpickling(self):
        r = build("code_tests:mode=all")
        r.sandbox()
        again = pickle.loads(pickle.dumps(r))
        assert again([py(ADD)], ground_truth=[GT]) == [1.0]

    def test_explain_shows_each_case(self):
        gt = {"inputs": ["1 2", "5 7", "1 1"], "outputs": ["3", "12", "2"]}
        code = py("import sys, time\na, b = map(int, input().split())\nif a == 5:\n    print('x' * 5000)\n"
                  "elif a == 1 and b == 1:\n    time.sleep(30)\nelse:\n    print(a + b)")
        ex = build("code_tests:case_timeout=1").explain(code, ground_truth=gt)
        assert ex["score"] == pytest.approx(1 / 3) and ex["extracted_by"] == "fence" and ex["tests"] == "verl"
        outcomes = [c["outcome"] for c in ex["cases"]]
        assert outcomes == ["passed", "wrong_answer", "timeout"]
        wrong = ex["cases"][1]
        assert wrong["expected"] == "12" and "chars cut" in wrong["got"] and len(wrong["got"]) < 400

    def test_cli_explain(self):
        res = CliRunner().invoke(cli, ["rewards", "explain", "-r", "code_tests", "--completion", py("print(3)"),
                                       "-c", "ground_truth=" + json.dumps(GT)], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        ex = json.loads(res.stdout)[0]["explanations"]["code_tests"]
        assert ex["score"] == pytest.approx(1 / 3)
        assert [c["outcome"] for c in ex["cases"]] == ["passed", "wrong_answer", "wrong_answer"]

    def test_bad_parameters_fail_before_training(self):
        from swift_ext.errors import ParamError

        with pytest.raises(ParamError, match="needs url"):
            build("code_tests:backend=piston")
        with pytest.raises(ParamError, match="mode"):
            build("code_tests:mode=most")


# -- the runner hook ---------------------------------------------------------------------------------
def test_a_plugin_runner_adds_a_language(register_plugin):
    from swift_ext.sandbox.runners import Runner
    from swift_ext.testing import make_plugin

    class Shell(Runner):
        name, fences, main_file = "sh", ("sh", "bash"), "main.sh"

        def command(self, main):
            return ["/bin/sh", main]

    register_plugin(make_plugin("shell_runner", register_runners=lambda register: register(Shell())))
    info = {"language": "sh", "test_cases": [{"input": "4\n", "output": "8", "type": "stdin_stdout"}]}
    r = build("code_tests")
    assert r(["```sh\nread x\necho $((x * 2))\n```", "```sh\necho 7\n```"], verification_info=[info] * 2) == [1.0, 0.0]


# -- data: convert, then filter with code_tests unchanged --------------------------------------------
def test_convert_then_filter_by_pass_rate(tmp_path):
    from swift_ext.curation import filter as flt

    rows = [{"problem": f"Print {i} plus the input.", "gold_standard_solution": f"print(int(input()) + {i})",
             "verification_info": {"language": "python", "test_cases": [
                 {"input": "1\n", "output": f"{1 + i}\n", "type": "stdin_stdout"},
                 {"input": "5\n", "output": f"{5 + i}\n", "type": "stdin_stdout"}]}} for i in range(4)]
    src = tmp_path / "code.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "grpo.jsonl"
    res = CliRunner().invoke(cli, ["convert", str(src), "--to", "grpo", "-o", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    grpo = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["messages"][0]["content"] for r in grpo] == [r["problem"] for r in rows]
    assert all(json.loads(r["tests"])["source"] == "open-r1" for r in grpo)

    class Sampler:                       # stands in for the policy: prompt i gets i correct programs of 4
        label = "fixed"

        def sample(self, items, n, temperature, max_tokens, top_p, on_done):
            for key, messages, images, seed in items:
                i = int(messages[-1]["content"].split()[1])
                good, bad = py(f"print(int(input()) + {i})"), py("print(-1)")
                on_done(key, [good] * i + [bad] * (n - i))

    kept = tmp_path / "kept.jsonl"
    flt.run(str(out), str(kept), Sampler(), flt.FilterOptions(rewards=("code_tests",), keep=(0.25, 0.75),
                                                              sampling=flt.Sampling(num_generations=4)))
    got = [json.loads(line) for line in kept.read_text().splitlines()]
    assert sorted(r["pass_rate"] for r in got) == [0.25, 0.5, 0.75]


def test_doctor_reports_the_sandbox():
    from swift_ext.launch.doctor import check_sandbox
    from swift_ext.sandbox import isolation

    c = check_sandbox()
    assert c.value == isolation.detect("auto").mode and c.status in ("ok", "warn")
