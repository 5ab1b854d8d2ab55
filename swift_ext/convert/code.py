"""The ``code`` input format: rows of public code datasets, read into prompts plus a ``tests`` column that
the ``code_tests`` reward reads.

=====================  ========================================  ==============================================
dataset                prompt                                    tests / reference solution
=====================  ========================================  ==============================================
open-r1 (verifiable)   ``problem`` (or ``prompt``, ``question``)  ``verification_info``; ``gold_standard_solution``
APPS / TACO            ``question``                              ``input_output``; first of ``solutions``
LiveCodeBench          ``question_content`` + ``starter_code``   ``public_test_cases`` + ``private_test_cases``
HumanEval              ``prompt`` (the function to complete)     ``test`` + ``entry_point``; ``canonical_solution``
MBPP                   ``text`` (or ``prompt``) + its asserts    ``test_list``; ``code``
KodCode                ``question``                              ``test`` (pytest file); ``solution``
=====================  ========================================  ==============================================

The ``tests`` column is a JSON string (Arrow keeps one type per column; test arguments mix types) in
swift-ext's own form (:meth:`swift_ext.sandbox.cases.TestSet.to_json`); ``solution`` is the reference
program in a fenced block when the dataset has one, else the same JSON. verl rows (``reward_model.
ground_truth`` with inputs/outputs) stay with the ``verl`` format: their ``solution`` is that ground truth,
which ``code_tests`` reads as it is.

>>> from swift_ext.convert.code import read_code
>>> c = read_code({"problem": "Add two numbers.", "verification_info": {"language": "python",
...     "test_cases": [{"input": "1 2", "output": "3", "type": "stdin_stdout"}]}})
>>> c["messages"][0]["content"], json.loads(c["extra"]["tests"])["cases"][0]["expected"]
('Add two numbers.', '3')
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from ..sandbox.cases import TestsError, read_tests
from .rows import RowError, canonical

#: columns that mark a code row (any one of them)
MARKERS = ("verification_info", "public_test_cases", "input_output", "test_list")
_PROMPTS = ("problem", "question_content", "question", "text", "prompt")
_REFERENCES = ("gold_standard_solution", "canonical_solution", "code", "solution", "solutions")


def is_code_row(row: Dict[str, Any]) -> bool:
    return any(k in row for k in MARKERS) or ("test" in row and ("entry_point" in row or "question" in row))


def _prompt(row: Dict[str, Any]) -> str:
    key = next((k for k in _PROMPTS if isinstance(row.get(k), str) and row[k].strip()), None)
    if key is None:
        raise RowError("a code row needs the problem text in one of " + ", ".join(_PROMPTS))
    text = row[key]
    if key == "prompt" and row.get("entry_point"):         # HumanEval: the function to complete
        return f"Complete the following Python function.\n\n```python\n{text.rstrip()}\n```"
    if key == "question_content" and isinstance(row.get("starter_code"), str) and row["starter_code"].strip():
        return f"{text.rstrip()}\n\nStart from this code:\n```python\n{row['starter_code'].rstrip()}\n```"
    if key in ("text", "prompt") and isinstance(row.get("test_list"), list):   # MBPP's own prompt
        return text.rstrip() + "\nYour code should pass these tests:\n\n" + "\n".join(map(str, row["test_list"]))
    return text


def _reference(row: Dict[str, Any]) -> Optional[str]:
    for key in _REFERENCES:
        value = row.get(key)
        if key == "solutions" and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        if isinstance(value, list):
            value = next((v for v in value if isinstance(v, str) and v.strip()), None)
        if isinstance(value, str) and value.strip():
            if key == "canonical_solution" and isinstance(row.get("prompt"), str):
                value = row["prompt"] + value                   # HumanEval's body completes the prompt
            return value
    return None


_USED = set(MARKERS) | set(_PROMPTS) | set(_REFERENCES) | {"test", "entry_point", "private_test_cases", "metadata",
                                                              "starter_code", "test_setup_code", "test_imports",
                                                              "challenge_test_list", "tests"}


def read_code(row: Dict[str, Any]) -> Dict[str, Any]:
    try:
        tests = read_tests(row)
    except TestsError as exc:
        raise RowError(f"code row: {exc}") from None
    language = tests.language or "python"
    tests.language = language
    reference = _reference(row)
    tests_json = json.dumps(tests.to_json(), ensure_ascii=False)
    solution = f"```{language}\n{reference.rstrip()}\n```" if reference else tests_json
    msgs = [{"role": "user", "content": _prompt(row)}]
    if reference:
        msgs.append({"role": "assistant", "content": solution})
    extra = {k: v for k, v in row.items() if k not in _USED}
    extra["tests"] = tests_json
    return canonical(msgs, solution=solution, extra=extra)


__all__ = ["read_code", "is_code_row", "MARKERS"]
