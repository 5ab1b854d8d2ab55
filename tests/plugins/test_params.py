import pytest

from swift_ext.errors import ParamError
from swift_ext.params import Param, bind, format_spec, parse_spec


class TestParseSpec:
    @pytest.mark.parametrize("spec,expected", [
        ("think_format", ("think_format", {})),                                   # plain name
        ("iou:threshold=0.7", ("iou", {"threshold": "0.7"})),                     # one parameter
        ("len:max_tokens=512,mode=soft", ("len", {"max_tokens": "512", "mode": "soft"})),
        (" len : a = 1 , b = x ", ("len", {"a": "1", "b": "x"})),                 # spaces are trimmed
        ("kw:keywords=cat|dog", ("kw", {"keywords": "cat|dog"})),                 # list values keep |
        ("x:", ("x", {})),                                                         # empty parameter list
    ])
    def test_ok(self, spec, expected):
        assert parse_spec(spec) == expected

    @pytest.mark.parametrize("spec", ["", "   ", "iou:threshold", "iou:=3", "iou:a=1,a=2", None])
    def test_bad(self, spec):
        with pytest.raises(ParamError):
            parse_spec(spec)

    def test_format_round_trip(self):
        spec = format_spec("len", {"mode": "soft", "max_tokens": 512, "strict": True, "words": ["a", "b"]})
        assert spec == "len:max_tokens=512,mode=soft,strict=true,words=a|b"   # keys sorted, bools lower-case
        assert parse_spec(spec)[1] == {"max_tokens": "512", "mode": "soft", "strict": "true", "words": "a|b"}


class TestCoerce:
    @pytest.mark.parametrize("param,raw,expected", [
        (Param(1), "512", 512),
        (Param(1), "1e3", 1000),                 # an integral float string is an int
        (Param(0.5), "0.75", 0.75),
        (Param(0.5), 2, 2.0),
        (Param(True), "false", False),
        (Param(True), "YES", True),
        (Param("a"), 3, "3"),
        (Param(["x"], type=list), "a|b|c", ["a", "b", "c"]),
        (Param(["x"], type=list), '["a|b", "c"]', ["a|b", "c"]),   # JSON list when | is data
        (Param(None, type=int), "7", 7),
        (Param({}, type=dict), '{"k": 1}', {"k": 1}),
    ])
    def test_ok(self, param, raw, expected):
        assert param.coerce("p", raw) == expected

    @pytest.mark.parametrize("param,raw,fragment", [
        (Param(1), "abc", "expected int"),
        (Param(1), "1.5", "expected int"),
        (Param(0.5), "nan", "finite"),
        (Param(0.5), "inf", "finite"),
        (Param(True), "maybe", "expected bool"),
        (Param("a", choices=("a", "b")), "c", "choose one of"),
        (Param(0.5, min=0, max=1), "1.5", "<= 1"),
        (Param(0.5, min=0, max=1), "-0.1", ">= 0"),
        (Param(1), True, "expected int"),       # bool is not accepted as a number
    ])
    def test_bad(self, param, raw, fragment):
        with pytest.raises(ParamError, match=fragment):
            param.coerce("p", raw)


def test_bind_defaults_and_unknown():
    declared = {"a": Param(1), "b": Param("x")}
    assert bind(declared, {"a": "2"}, "r") == {"a": 2, "b": "x"}
    with pytest.raises(ParamError, match="unknown parameter.*zz.*known: a, b"):
        bind(declared, {"zz": 1}, "r")


def test_a_bad_value_names_its_owner():
    from swift_ext.errors import ParamError
    from swift_ext.rewards import configure

    with pytest.raises(ParamError, match=r"^reward iou: parameter frame='qwen25': choose one of"):
        configure("iou:frame=qwen25")
