"""Structured-output rewards: json_valid and json_schema, including the malformed-JSON cases."""

import doctest
import json
import pickle

import pytest

from swift_ext.errors import ParamError
from swift_ext.rewards import build, configure, structured
from swift_ext.rewards.structured import JsonSchema, JsonValid, json_candidate, parse_json

SCHEMA = {
    "type": "object",
    "required": ["name", "age", "tags"],
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0},
                   "tags": {"type": "array", "items": {"type": "string"}}},
    "additionalProperties": False,
}


def test_doctests():
    result = doctest.testmod(structured)
    assert result.attempted > 0 and result.failed == 0


class TestParse:
    @pytest.mark.parametrize("text,value,how", [
        ('{"a": 1}', {"a": 1}, "ok"),
        ('```json\n{"a": 1}\n```', {"a": 1}, "ok"),                          # fenced
        ('```\n[1, 2]\n```', [1, 2], "ok"),                                   # fence without language
        ('Sure! ```json\n{"a": 1}', {"a": 1}, "ok"),                          # unclosed fence runs to the end
        ('<think>{"no": 0}</think>{"a": 1}', {"a": 1}, "ok"),                 # JSON in reasoning ignored
        ('<answer>{"a": 1}</answer>', {"a": 1}, "ok"),
        ('Here you go: {"a": {"b": [1, {"c": "}"}]}} -- done', {"a": {"b": [1, {"c": "}"}]}}, "ok"),  # brace in string
        ('{"a": 1', None, "invalid"),                                          # missing bracket
        ('{"a": 1,}', None, "invalid"),                                        # trailing comma
        ("{'a': 1}", None, "invalid"),                                         # single quotes
        ('{"a": }', None, "invalid"),                                          # missing value
        ("", None, "invalid"),
        ("no json at all", None, "invalid"),
        ("[" * 100_000, None, "invalid"),                                      # deep nesting: no RecursionError
    ])
    def test_strict(self, text, value, how):
        assert parse_json(text) == (value, how)

    @pytest.mark.parametrize("text,value", [
        ('{"a": 1', {"a": 1}),                                                 # the missing bracket
        ('{"a": [1, 2', {"a": [1, 2]}),
        ('{"a": "unterminated', {"a": "unterminated"}),
        ('{"a": 1,', {"a": 1}),                                                # dangling comma dropped
        ('[{"x": 1}, {"y": 2', [{"x": 1}, {"y": 2}]),
    ])
    def test_repair(self, text, value):
        assert parse_json(text, repair=True) == (value, "repaired")

    def test_repair_gives_up_on_wrong_closers(self):
        assert parse_json('{"a": [1}', repair=True) == (None, "invalid")       # mismatched brackets

    def test_candidate(self):
        assert json_candidate(None) is None
        assert json_candidate("text { x") == "{ x"


class TestJsonValid:
    def test_table(self):
        cases = [
            ('{"name": "cat"}', 1.0),
            ('```json\n{"name": "cat"}\n```', 1.0),
            ('[1, 2, 3]', 1.0),
            ('"just a string"', 1.0),                 # any JSON value by default
            ("42", 1.0),
            ('{"name": "cat"', 0.0),                  # missing bracket
            ('{"name": "cat",}', 0.0),
            ("{'name': 'cat'}", 0.0),
            ("not json", 0.0),
            ("", 0.0),
            ('Result: {"a": 1} hope this helps', 1.0),  # surrounding text allowed by default
        ]
        assert JsonValid()([c for c, _ in cases]) == [e for _, e in cases]

    def test_require_and_trailing(self):
        assert JsonValid(require="object")(['{"a": 1}', "[1]", "3"]) == [1.0, 0.0, 0.0]
        assert JsonValid(require="array")(['{"a": 1}', "[1]"]) == [0.0, 1.0]
        strict = JsonValid(allow_trailing=False)
        assert strict(['{"a": 1}', '{"a": 1} trailing', 'lead {"a": 1}']) == [1.0, 0.0, 1.0]

    def test_repaired_score(self):
        r = build("json_valid:repaired_score=0.3")
        assert r(['{"a": [1, 2', '{"a": 1}', "nothing"]) == [0.3, 1.0, 0.0]
        with pytest.raises(ParamError):
            configure("json_valid:repaired_score=2")


class TestJsonSchema:
    def test_table_schema_per_row(self):
        cases = [
            ('{"name": "Ann", "age": 3, "tags": ["a"]}', 1.0),             # valid
            ('```json\n{"name": "Ann", "age": 3, "tags": []}\n```', 1.0),
            ('{"name": "Ann", "age": 3, "tags": [], "x": 1}', 0.5),         # extra field: invalid, 3/3 required ok
            ('{"name": "Ann", "age": -1, "tags": []}', 0.5 * 2 / 3),        # age breaks minimum: 2/3 well typed
            ('{"name": "Ann", "age": "3", "tags": []}', 0.5 * 2 / 3),       # age is a string
            ('{"name": "Ann"}', 0.5 * 1 / 3),                                # 1 of 3 required present
            ('{"name": 5, "age": "x", "tags": "y"}', 0.0),                   # all present, none well typed
            ("[1, 2]", 0.0),                                                 # not an object: no partial credit
            ('{"name": "Ann", "age": 3, "tags": ["a"]', 0.0),                # missing bracket: does not parse
            ("no json", 0.0),
        ]
        got = JsonSchema()([c for c, _ in cases], schema=[SCHEMA] * len(cases))
        assert got == pytest.approx([e for _, e in cases])

    def test_schema_as_json_text_column(self):
        r = JsonSchema()
        assert r(['{"name": "A", "age": 1, "tags": []}'], schema=[json.dumps(SCHEMA)]) == [1.0]

    def test_abstains_without_usable_schema(self):
        r = JsonSchema()
        assert r(['{"a": 1}'] * 4, schema=[None, "", "{not json", {"type": "no-such-type"}]) == [None] * 4
        assert r(['{"a": 1}']) == [None]                                   # no column, no parameter
        assert r(['{"a": 1}'], schema=[{"$ref": "#/nope"}]) == [None]       # passes check_schema, cannot resolve
        assert not r._warned                                               # handled, not the base-class fallback

    def test_schema_param_file_and_inline(self, tmp_path):
        path = tmp_path / "schema.json"
        path.write_text(json.dumps(SCHEMA))
        r = build(f"json_schema:schema={path}")
        assert r(['{"name": "A", "age": 1, "tags": []}', '{"name": "A"}']) == pytest.approx([1.0, 0.5 / 3])
        # a row's own schema wins over the parameter
        assert r(['{"b": 1}'], schema=[{"type": "object", "required": ["b"]}]) == [1.0]
        inline = JsonSchema(schema='{"type": "array"}')
        assert inline(["[1]", "{}"]) == [1.0, 0.0]

    def test_schema_param_errors(self, tmp_path):
        with pytest.raises(ParamError):
            JsonSchema(schema=str(tmp_path / "missing.json"))
        bad = tmp_path / "bad.json"
        bad.write_text("{oops")
        with pytest.raises(ParamError):
            JsonSchema(schema=str(bad))
        with pytest.raises(ParamError):
            JsonSchema(schema='{"type": 12}')                               # not a valid schema
        with pytest.raises(ParamError):
            configure("json_schema:partial_max=1.5")

    def test_partial_max_and_repair(self):
        r = JsonSchema(partial_max=0.9, repair=True)
        # repaired '{"name": "A"' -> {"name": "A"}: 1 of 3 required -> .9 / 3
        assert r(['{"name": "A"'], schema=[SCHEMA]) == pytest.approx([0.3])

    def test_validator_cache_and_pickle(self):
        r = JsonSchema()
        r(['{"name": "A", "age": 1, "tags": []}'] * 3, schema=[SCHEMA] * 3)
        assert len(r._validators) == 1                                     # compiled once for the group
        again = pickle.loads(pickle.dumps(r))
        assert again(['{"name": "A", "age": 1, "tags": []}'], schema=[SCHEMA]) == [1.0]
