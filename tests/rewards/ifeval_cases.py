"""Generated IFEval cases: (instruction ids, kwargs, response) triples covering all 25 ids near their boundaries.

The responses are random compositions of snippets that each instruction reacts to (sentence ends and
abbreviations, paragraphs split by ``***`` and blank lines, bullets, highlights, titles, sections, postscripts,
placeholders, JSON, quotes, capitals, commas, other languages), and the thresholds are drawn around what such
responses hold, so every id sees both verdicts. The verdicts come from the reference (lm-eval), not from here.
"""

from __future__ import annotations

import json
import random
from typing import Any, Dict, List, Tuple

VOCAB = ["apple", "banana", "river", "cloud", "code", "Paris", "data", "music"]
ENGLISH = [
    "The cat sat on the mat.", "Dr. Smith went home.", "It costs $3.50 today!", "Is this right?",
    "The U.S.A. is big.", 'He said "hello."', "Mr. Brown arrived at 5 p.m. yesterday.", "We like apple pie, a lot.",
    "The river runs past the data center.", "Music is everywhere... really.", "Code it, test it, ship it.",
    "i think so.", "Visit example.com for more.", "Paris is lovely in spring, they say.", "banana bread? yes!",
    "Prof. Lee et al. wrote it in 2021.", "This is the end", "e.g. the cloud.", "NASA launched it.",
    "it was 3.14 or so.", "A B C D.", "One more thing: the apple.", "THE END.", "ok", "Hmm",
]
UPPER = ["THIS IS ALL IN CAPITAL LETTERS AND IT IS ENGLISH.", "WE LOVE THE RIVER AND THE CLOUD.",
         "DON'T STOP NOW, IT'S FINE.", "U.S. AND U.K. TEAMS WON."]
LOWER = ["this is all lowercase english text about the river.", "we went to the market and bought apples.",
         "nothing here is capitalised at all."]
FOREIGN = {
    "es": "El gato está en la casa y come pescado todos los días con su familia.",
    "fr": "Le chat est dans la maison et il mange du poisson tous les jours avec plaisir.",
    "de": "Die Katze ist im Haus und frisst jeden Tag Fisch mit großer Freude.",
    "ru": "Кошка находится в доме и каждый день ест рыбу с большим удовольствием.",
    "ja": "猫は家の中にいて、毎日魚を食べています。とても幸せです。",
    "ko": "고양이는 집에 있고 매일 생선을 먹습니다. 아주 행복합니다.",
    "ar": "القطة في المنزل وتأكل السمك كل يوم بسعادة كبيرة.",
    "hi": "बिल्ली घर में है और हर दिन मछली खाती है।",
    "it": "Il gatto è in casa e mangia pesce ogni giorno con grande piacere.",
    "pt": "O gato está em casa e come peixe todos os dias com muito prazer.",
}
FORMAT = ["* bullet one", "- bullet two", "*highlighted*", "**bold part**", "* *", "***", "<<A Title>>", "<< >>",
          "SECTION 1", "Section 2", "SECTION 3 text", "P.S. remember this", "p.p.s more", "P. S. spaced",
          "[name]", "[address] and [date]", "My answer is yes.", "My answer is maybe.", '{"a": 1}',
          '```json\n{"k": [1, 2]}\n```', "******", "Any other questions?", "Is there anything else I can help with?",
          "a, b, c", "WOW", "OK!", "\"quoted\"", "**", "*", "-"]
PROMPTS = ["Write a poem about apples.", "Tell me about Paris", "Explain the river cycle in two lines."]
ENDS = ["Any other questions?", "Is there anything else I can help with?"]
RELATIONS = ["less than", "at least"]
LANGS = ["en", "es", "fr", "de", "ru", "ja", "ko", "ar", "hi", "it", "pt", "fi"]

ALL_KWARG_KEYS = ["keywords", "keyword", "frequency", "relation", "forbidden_words", "letter", "let_frequency",
                  "let_relation", "language", "num_sentences", "num_paragraphs", "num_words", "nth_paragraph",
                  "first_word", "num_placeholders", "postscript_marker", "num_bullets", "num_highlights",
                  "section_spliter", "num_sections", "prompt_to_repeat", "end_phrase", "capital_frequency",
                  "capital_relation"]


def _kwargs(rng: random.Random, iid: str) -> Dict[str, Any]:
    r = rng.choice
    table = {
        "keywords:existence": lambda: {"keywords": rng.sample(VOCAB, rng.randint(1, 3))},
        "keywords:frequency": lambda: {"keyword": r(VOCAB), "frequency": rng.randint(1, 4), "relation": r(RELATIONS)},
        "keywords:forbidden_words": lambda: {"forbidden_words": rng.sample(VOCAB, rng.randint(1, 3))},
        "keywords:letter_frequency": lambda: {"letter": r("aeiostnrlxzAE"), "let_frequency": rng.randint(1, 15),
                                              "let_relation": r(RELATIONS)},
        "language:response_language": lambda: {"language": r(LANGS)},
        "length_constraints:number_sentences": lambda: {"num_sentences": rng.randint(1, 8), "relation": r(RELATIONS)},
        "length_constraints:number_paragraphs": lambda: {"num_paragraphs": rng.randint(1, 5)},
        "length_constraints:number_words": lambda: {"num_words": rng.randint(3, 60), "relation": r(RELATIONS)},
        "length_constraints:nth_paragraph_first_word": lambda: (lambda n: {
            "num_paragraphs": n, "nth_paragraph": rng.randint(1, n),
            "first_word": r(["the", "dr", "it", "is", "apple", "this", "we", "i", "paris", "music"])})(rng.randint(1, 4)),
        "detectable_content:number_placeholders": lambda: {"num_placeholders": rng.randint(1, 3)},
        "detectable_content:postscript": lambda: {"postscript_marker": r(["P.S.", "P.P.S", "Note:", " P.S. "])},
        "detectable_format:number_bullet_lists": lambda: {"num_bullets": rng.randint(1, 4)},
        "detectable_format:number_highlighted_sections": lambda: {"num_highlights": rng.randint(1, 4)},
        "detectable_format:multiple_sections": lambda: {"section_spliter": r(["Section", "SECTION", " Section "]),
                                                        "num_sections": rng.randint(1, 3)},
        "combination:repeat_prompt": lambda: {"prompt_to_repeat": r(PROMPTS)},
        "startend:end_checker": lambda: {"end_phrase": r(ENDS)},
        "change_case:capital_word_frequency": lambda: {"capital_frequency": rng.randint(1, 6),
                                                       "capital_relation": r(RELATIONS)},
    }
    return table.get(iid, dict)()


def _nudge(rng: random.Random, iid: str, kw: Dict[str, Any]) -> str:
    """A response aimed at ``iid`` (so rare verdicts such as a JSON-only response occur)."""
    if iid == "detectable_format:json_format":
        return rng.choice(['{"a": [1, 2, {"b": null}]}', '```json\n{"x": "y"}\n```', '```JSON\n[1, 2]\n```',
                           '{"a": 1', "```\n42\n```", '  "text"  '])
    if iid == "startend:quotation":
        return '"' + rng.choice(ENGLISH) + rng.choice(['"', '" ', "", '"\n'])
    if iid == "combination:two_responses":
        a, b = rng.choice(ENGLISH), rng.choice(ENGLISH)
        return rng.choice([f"{a}\n******\n{b}", f"{a}******{a}", f"******{a}******{b}******", f"{a}\n******\n\n******{b}"])
    if iid == "change_case:english_capital":
        return " ".join(rng.sample(UPPER, rng.randint(1, 2))) + rng.choice(["", " ok", "\nFINE"])
    if iid == "change_case:english_lowercase":
        return " ".join(rng.sample(LOWER, rng.randint(1, 2))) + rng.choice(["", " OK", "\nfine"])
    if iid == "language:response_language":
        lang = kw.get("language", "en")
        return FOREIGN.get(lang, " ".join(rng.sample(ENGLISH, 4))) if rng.random() < 0.7 else rng.choice(
            list(FOREIGN.values()))
    if iid == "combination:repeat_prompt":
        return kw["prompt_to_repeat"].lower() + rng.choice(["\n", " "]) + rng.choice(ENGLISH)
    if iid == "detectable_format:constrained_response":
        return rng.choice(["My answer is yes.", "My answer is no", "  My answer is maybe.  ", "my answer is yes."])
    if iid == "startend:end_checker":
        return rng.choice(ENGLISH) + " " + kw["end_phrase"] + rng.choice(["", '"', " ", ".", "\n*"])
    if iid == "length_constraints:nth_paragraph_first_word":
        paras = [rng.choice(ENGLISH) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.6:
            paras[min(kw["nth_paragraph"], len(paras)) - 1] = (rng.choice(["", '"', "'"]) + kw["first_word"].title()
                                                               + rng.choice([",", ".", "", "!"]) + " more words.")
        return rng.choice(["\n\n", "\n\n\n\n", "\n"]).join(paras)
    return _compose(rng)


def _compose(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 9)):
        pick = rng.random()
        if pick < 0.45:
            parts.append(rng.choice(ENGLISH))
        elif pick < 0.8:
            parts.append(rng.choice(FORMAT))
        elif pick < 0.88:
            parts.append(rng.choice(UPPER + LOWER))
        else:
            parts.append(rng.choice(list(FOREIGN.values())))
        parts.append(rng.choice([" ", "\n", "\n\n", " ", "", "\n*** \n"]))
    text = "".join(parts)
    if rng.random() < 0.2:
        text = rng.choice(["Sure! Here you go:\n", "**Answer**\n", "*\n"]) + text
    if rng.random() < 0.2:
        text = text + rng.choice(["\nHope this helps!", "\n**", "\n*Any other questions?*"])
    if rng.random() < 0.1:
        text = text.upper() if rng.random() < 0.5 else text.lower()
    return text


def generate(n: int, seed: int = 0) -> List[Tuple[List[str], List[Dict[str, Any]], str]]:
    """``n`` triples; ids cycle so each of the 25 appears first in n/25 of them (others ride along)."""
    from swift_ext.rewards.ifeval.instructions import INSTRUCTION_IDS

    rng = random.Random(seed)
    ids = list(INSTRUCTION_IDS)
    out = []
    for k in range(n):
        main = ids[k % len(ids)]
        chosen = [main] + [i for i in rng.sample(ids, rng.randint(0, 2)) if i != main]
        kwargs = []
        for iid in chosen:
            kw = _kwargs(rng, iid)
            if rng.random() < 0.5:                      # as in the IFEval data: every key, None where unused
                kw = {**{key: None for key in ALL_KWARG_KEYS}, **kw}
            kwargs.append(kw)
        pick = rng.random()
        if pick < 0.03:
            response = rng.choice(["", "   ", "\n\n"])
        elif pick < 0.55:
            response = _nudge(rng, main, kwargs[0])
        else:
            response = _compose(rng)
        out.append((chosen, kwargs, response))
    return out


if __name__ == "__main__":  # a look at a few cases
    for case in generate(5):
        print(json.dumps(case, ensure_ascii=False))
