"""``anls``, ``cer``, ``wer``, ``relaxed_accuracy`` against their references on generated pairs.

References: lmms-eval's ``anls`` and ChartQA ``relaxed_correctness`` (vendored verbatim in
``tests/lmms_eval_reference.py``: lmms-eval itself cannot be installed as a test dependency, see that file),
jiwer's ``cer`` / ``wer`` and ``editdistance`` (an edit distance independent of the rapidfuzz one swift-ext
uses), both installed from the ``test`` extra. The pairs cover the tau boundary (normalised distance exactly
0.5), empty and blank strings, case, runs of whitespace, tabs and newlines, and unicode whose upper-case form
has another length (``ß`` -> ``SS``), combining marks, CJK and emoji.
"""

import random

import editdistance
import jiwer
import pytest

import lmms_eval_reference as ref
from swift_ext.extract import extract_answer
from swift_ext.rewards import build
from swift_ext.rewards.documents import anls, edit_distance, error_rate, gold_answers, relaxed_correct

WORDS = ["invoice", "total", "Date", "12/03/1998", "$1,250.00", "Smith", "ß-straße", "İstanbul", "ﬁnance", "東京都",
         "価格", "🙂", "café", "cafe\u0301", "naïve", "Ωmega", "x", "A", "42", "0.5", "N/A", "\u00a0", "e\u0301"]
SPACES = [" ", "  ", "\t", "\n", " \u3000", "\u00a0", ""]


def text(rng, max_words=4):
    n = rng.randint(0, max_words)
    out = ""
    for i in range(n):
        w = rng.choice(WORDS)
        w = w.upper() if rng.random() < 0.15 else w
        out += (rng.choice(SPACES) if i else "") + w
    if rng.random() < 0.2:
        out = rng.choice(SPACES) + out + rng.choice(SPACES)
    return out


def mutate(rng, s, k):
    chars = list(s)
    alphabet = "abcxyzßİ東🙂 \t"
    for _ in range(k):
        op = rng.random()
        if op < 0.33 and chars:
            del chars[rng.randrange(len(chars))]
        elif op < 0.66 and chars:
            chars[rng.randrange(len(chars))] = rng.choice(alphabet)
        else:
            chars.insert(rng.randint(0, len(chars)), rng.choice(alphabet))
    return "".join(chars)


def pairs(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        golds = [text(rng) for _ in range(rng.choice([1, 1, 2, 3]))]
        g = rng.choice(golds)
        kind = rng.random()
        if kind < 0.25:                    # on the tau boundary: half of the (even) length edited
            word = "".join(rng.choice("abcdefgh") for _ in range(2 * rng.randint(1, 6)))
            golds = [word] + golds[1:]
            pred = "".join(("z" if i < len(word) // 2 else c) for i, c in enumerate(word))
        elif kind < 0.35:
            pred = ""
        elif kind < 0.45:
            pred = g.upper() if rng.random() < 0.5 else "  " + g.lower() + "\n"
        elif kind < 0.65:                  # word-level edits: a word dropped, repeated or replaced
            words = g.split(" ")
            i = rng.randrange(len(words))
            op = rng.random()
            words[i:i + 1] = [] if op < 0.33 else [words[i]] * 2 if op < 0.66 else [rng.choice(WORDS)]
            pred = " ".join(words)
        else:
            pred = mutate(rng, g, rng.randint(0, max(1, len(g))))
        out.append((pred, golds))
    return out


PAIRS = pairs(3000, seed=11)


def test_edit_distance_equals_two_independent_references():
    for pred, golds in PAIRS:
        for g in golds:
            a, b = " ".join(g.strip().lower().split()), " ".join(pred.strip().lower().split())
            d = edit_distance(a, b)
            assert d == ref.levenshtein_distance(a, b) == editdistance.eval(a, b)
            words_a, words_b = g.split(), pred.split()
            assert edit_distance(words_a, words_b) == editdistance.eval(words_a, words_b)


def test_anls_equals_lmms_eval_exactly():
    boundary = zero = 0
    for pred, golds in PAIRS:
        want = ref.anls(golds, [pred])["anls"]
        got = anls(pred, golds)
        assert got == want, (pred, golds)
        boundary += want == 0.5
        zero += want == 0
    assert boundary >= 500 and zero >= 300            # the tau boundary and the cut-off were both exercised


def test_strict_threshold_only_differs_at_the_boundary():
    """``strict`` is the paper's NL < tau: it zeroes exactly the pairs whose similarity equals 0.5."""
    for pred, golds in PAIRS:
        loose, strict = anls(pred, golds), anls(pred, golds, strict=True)
        assert strict == (0.0 if loose == 0.5 else loose)


@pytest.mark.parametrize("tau", [0.0, 0.3, 0.75, 1.0])
def test_anls_threshold_parameter_is_lmms_eval_thresh_hold(tau):
    for pred, golds in PAIRS[:800]:
        assert anls(pred, golds, tau) == ref.anls(golds, [pred], thresh_hold=tau)["anls"]


def test_anls_reward_scores_the_extracted_answer_as_lmms_eval():
    reward = build("anls")
    comps, cols, want = [], [], []
    for pred, golds in PAIRS:
        if not any(g.strip() for g in golds):
            continue
        comp = f"<think>reading the page</think><answer>{pred}</answer>"
        comps.append(comp)
        cols.append(golds)
        want.append(ref.anls([g for g in golds if g.strip()], [extract_answer(comp)])["anls"])
    assert len(comps) >= 2500
    assert reward(comps, solution=cols) == pytest.approx(want, abs=0)


def test_unicode_whose_upper_case_changes_length_follows_the_reference():
    # 'ß'.upper() == 'SS': lmms-eval divides the one edit (ß -> s) by len('STRASSE') = 7, not by 6
    assert anls("strase", ["straße"]) == ref.anls(["straße"], ["strase"])["anls"] == 1 - 1 / 7


def jiwer_score(measure, golds, pred):
    return max(0.0, 1.0 - min(measure(g, pred) for g in golds))


@pytest.mark.parametrize("unit,measure", [("char", jiwer.cer), ("word", jiwer.wer)])
def test_error_rate_equals_jiwer(unit, measure):
    empty_refs = 0
    for pred, golds in PAIRS:
        for g in golds:
            assert error_rate(g, pred, unit) == pytest.approx(measure(g, pred), abs=1e-12), (g, pred)
            empty_refs += not g.strip()
    assert empty_refs >= 100                          # jiwer's empty-reference convention exercised


@pytest.mark.parametrize("spec,measure", [("cer", jiwer.cer), ("wer", jiwer.wer),
                                          ("cer:lowercase=true", None), ("wer:lowercase=true", None)])
def test_cer_wer_rewards_are_one_minus_jiwer_clipped(spec, measure):
    reward = build(spec + ("," if ":" in spec else ":") + "extract=none")
    lower = "lowercase" in spec
    base = jiwer.cer if spec.startswith("cer") else jiwer.wer
    comps, cols, want = [], [], []
    for pred, golds in PAIRS:
        golds = [g for g in golds if g.strip()]
        if not golds:
            continue
        comps.append(pred)
        cols.append(golds)
        if lower:
            want.append(jiwer_score(base, [g.lower() for g in golds], pred.lower()))
        else:
            want.append(jiwer_score(measure, golds, pred))
    got = reward(comps, solution=cols)
    assert got == pytest.approx(want, abs=1e-12)
    assert sum(w == 0 for w in want) >= 200 and sum(0 < w < 1 for w in want) >= 250


NUMBERS = ["0", "0.0", "-0", "12", "12.5", "-7.25", "100", "1e3", "1E-2", "3.14159", "50%", "12.5%", "0%", "%", "5%%",
           "1,000", "$5", " 12 ", "12 %", "nan", "NaN", "inf", "-inf", "1_000", "0x10", "١٢", "１２", "12.", ".5", "+5"]


def chart_pairs(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.4:                                   # near the 5 % boundary
            t = rng.choice([20, 100, 40, 0.2, 250, -60, 8, 1e-3])
            f = rng.choice([0.95, 1.05, 0.949, 1.051, 1.0, 1.02, 0.5, 2.0, 1.0499999, 1.0500001])
            fmt = rng.choice(["{}", "{:.2f}", "{:g}", "{}%"])
            pred = fmt.format(t * f)
            target = fmt.format(t) if not fmt.endswith("%") else f"{t}%"
        elif kind < 0.7:
            pred, target = rng.choice(NUMBERS), rng.choice(NUMBERS)
        else:
            word = rng.choice(["Yes", "no", "Brazil", "2019", "Q3", "iPhone", "ß", "東京"])
            pred = rng.choice([word, word.lower(), word.upper(), word + " ", word + "."])
            target = word
        out.append((pred, target))
    return out


CHART = chart_pairs(3000, seed=5)


@pytest.mark.parametrize("tol", [0.05, 0.0, 0.1])
def test_relaxed_correct_equals_the_chartqa_formula(tol):
    hits = 0
    for pred, target in CHART:
        want = ref.relaxed_correctness(pred, target, max_relative_change=tol)
        assert relaxed_correct(pred, target, tol) == want, (pred, target)
        hits += want
    assert 300 < hits < len(CHART) - 300


def test_relaxed_accuracy_reward_on_completions():
    reward = build("relaxed_accuracy")
    comps = [f"<answer>{p}</answer>" for p, _ in CHART]
    want = [float(ref.relaxed_correctness(extract_answer(c), t)) for c, (_, t) in zip(comps, CHART)]
    assert reward(comps, solution=[t for _, t in CHART]) == want
    # several gold answers: any one counts (ChartQA has one; the list form comes from converted data)
    assert reward(["<answer>10.3</answer>", "<answer>ten</answer>"], solution=[["ten", "10"], '["ten", "10"]']) == \
        [1.0, 1.0]


def test_gold_forms_and_abstaining():
    assert gold_answers('["a", "b"]') == ["a", "b"] and gold_answers(["a", 3, None, True]) == ["a", "3"]
    assert gold_answers("[not json") == ["[not json"] and gold_answers("  ") is None and gold_answers([]) is None
    for spec in ("anls", "cer", "wer", "relaxed_accuracy"):
        assert build(spec)(["x", "y", "z"], solution=[None, "", [" "]]) == [None, None, None]


@pytest.mark.parametrize("spec", ["anls", "cer", "wer", "relaxed_accuracy"])
def test_explanations_recompute_the_score(spec):
    reward = build(spec)
    for pred, golds in PAIRS[:200]:
        golds = [g for g in golds if g.strip()]
        if not golds:
            continue
        comp = f"<answer>{pred}</answer>"
        ex = reward.explain(comp, solution=golds)
        assert ex["score"] == reward([comp], solution=[golds])[0]
        if spec == "anls":
            best = ex["best"]
            sim = 1 - best["distance"] / best["length"] if best["length"] else 1.0
            assert ex["score"] == (sim if sim >= 0.5 else 0.0)
        elif spec in ("cer", "wer"):
            err = ex["distance"] / ex["reference_units"]
            assert ex["score"] == pytest.approx(max(0.0, 1 - err))
        else:
            assert ex["score"] == float(any(x["correct"] for x in ex["per_gold"]))
