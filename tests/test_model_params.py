"""Top-level ``params:`` and ``variants:`` (one file, a family of models), zoo names by variant,
``cnncli summary --list`` and ``--variant``; every error with its exact message."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest
from clirun import run  # tests/clirun.py
from hypothesis import given
from hypothesis import strategies as st

from cnncli.errors import ModelError
from cnncli.limits import LimitError
from cnncli.model import Summary, load, summarize, summarize_text, zoo_names
from cnncli.model.expressions import (
    BLOCK_INPUT_NAMES,
    FUNCTIONS,
    REPEAT_NAMES,
    Inexact,
    make_divisible,
    substitute,
)
from cnncli.model.load import ZOO_DIR, declared_variants, find_model

FAMILY = """\
# A family of small models: one file, three variants.
description: tiny convnets
params: {width: 8, size: 16, unit: plain, deep: false, ratio: 0.5}
variants:
  tiny-a: {description: the small one}
  tiny-b:
    width: 16
    size: 32
    unit: double
    deep: true
  tiny-c: {width: 4}
input: [3, $size, $size]
blocks:
  plain:
    params: {c: 8}
    layers: [{type: conv2d, filters: $c, kernel: 3, padding: 1}]
  double:
    params: {c: 8}
    layers:
      - {type: conv2d, filters: $c, kernel: 3, padding: 1}
      - {type: conv2d, filters: $c, kernel: 3, padding: 1}
layers:
  - {block: $unit, name: body, c: $width}
  - {type: relu, if: $deep}
  - {type: global_avgpool}
  - {type: dense, units: $width * 2}
"""


def build(text: str, variant: str | None = None) -> Summary:
    return summarize_text(dedent(text), "m.yaml", variant=variant)


def error(text: str, variant: str | None = None) -> str:
    with pytest.raises(ModelError) as exc:
        build(text, variant)
    message = str(exc.value)
    assert "\n" not in message
    return message


def conv_params(cin: int, cout: int, k: int = 3) -> int:
    return k * k * cin * cout + cout


# ------------------------------------------------------------------ variants


def test_first_variant_by_default_and_named_after_it() -> None:
    s = build(FAMILY)
    assert s.name == "tiny-a"
    assert s.inputs == {"input": (3, 16, 16)}
    assert [(r.name, r.output_shape) for r in s.layers()] == [
        ("body.conv2d", (8, 16, 16)),
        ("global_avgpool", (8,)),
        ("dense", (16,)),
    ]
    assert s.totals.params == conv_params(3, 8) + 8 * 16 + 16


def test_a_variant_sets_params_input_block_and_if() -> None:
    s = build(FAMILY, "tiny-b")
    assert s.name == "tiny-b"
    assert s.inputs == {"input": (3, 32, 32)}
    assert [r.name for r in s.layers()] == [
        "body.conv2d",
        "body.conv2d_1",
        "relu",
        "global_avgpool",
        "dense",
    ]
    assert s.totals.params == conv_params(3, 16) + conv_params(16, 16) + 16 * 32 + 32
    assert build(FAMILY, "tiny-c").layers()[0].output_shape == (4, 16, 16)


def test_params_without_variants_are_defaults() -> None:
    s = build(re.sub(r"variants:\n(?:  .*\n)+", "", FAMILY))
    assert s.name == "m"  # no variants, no name: the file's name
    assert s.layers()[0].output_shape == (8, 16, 16)


def test_params_are_optional() -> None:
    s = build("input: [3, 8, 8]\nlayers:\n  - {type: conv2d, filters: 2, kernel: 3}\n")
    assert s.totals.params == conv_params(3, 2)


def test_inputs_take_params_too() -> None:
    s = build(
        """
        params: {side: 12, mask: 1}
        inputs: {image: [3, $side, $side], mask: [$mask, $side, $side]}
        layers:
          - {type: concat, input: [image, mask]}
        """
    )
    assert s.inputs == {"image": (3, 12, 12), "mask": (1, 12, 12)}
    assert s.layers()[0].output_shape == (4, 12, 12)


def test_whole_input_shape_from_a_list_param() -> None:
    s = build("params: {shape: [1, 28, 28]}\ninput: $shape\nlayers: [{type: flatten}]\n")
    assert s.layers()[0].output_shape == (784,)


def test_top_level_params_do_not_reach_inside_blocks() -> None:
    # Block calls pass values on explicitly; a block sees its own parameters only.
    message = error(
        """
        params: {w: 4}
        input: [3, 8, 8]
        blocks:
          b:
            params: {c: 2}
            layers: [{type: conv2d, filters: $w, kernel: 1}]
        layers:
          - {block: b}
        """
    )
    assert message == "m.yaml:7:14: unknown parameter $w (parameters: $c)"


@pytest.mark.parametrize(
    ("text", "variant", "message"),
    [
        (
            FAMILY,
            "tiny-d",
            "m.yaml:5:3: unknown variant 'tiny-d'; did you mean tiny-c, tiny-b, tiny-a? (variants: tiny-a, tiny-b, tiny-c)",
        ),
        (
            FAMILY.replace("tiny-c: {width: 4}", "tiny-c: {widht: 4}"),
            None,
            "m.yaml:11:11: variant 'tiny-c' sets 'widht', which is not a parameter; did you mean width? (parameters: width, size, unit, deep, ratio)",
        ),
        (
            FAMILY.replace("tiny-c: {width: 4}", "tiny-c: {width: wide}"),
            None,
            "m.yaml:11:11: variant 'tiny-c' sets width to 'wide'; the parameter holds a number (its default is 8)",
        ),
        (
            FAMILY.replace("tiny-c: {width: 4}", "tiny-c: {deep: 1}"),
            None,
            "m.yaml:11:11: variant 'tiny-c' sets deep to 1; the parameter holds true or false (its default is False)",
        ),
        (
            FAMILY.replace("tiny-c: {width: 4}", "tiny-c: {ratio: 1}"),
            None,
            "",  # an int for a decimal parameter: both are numbers
        ),
        (
            FAMILY.replace("tiny-c: {width: 4}", "tiny-c: {width: {a: 1}}"),
            None,
            "m.yaml:11:11: variant 'tiny-c', width: a parameter holds a number, true or false, text or a list, got {'a': 1}",
        ),
        (
            FAMILY.replace("tiny-c: {width: 4}", "tiny-c: [4]"),
            None,
            "m.yaml:5:3: variant 'tiny-c' must map parameters to values, e.g. {width: 64}, got [4]",
        ),
        (
            FAMILY.replace("tiny-c: {width: 4}", "tiny-c: {description: [x]}"),
            None,
            "m.yaml:11:11: description of variant 'tiny-c' must be text",
        ),
        (
            FAMILY.replace("tiny-c: {width: 4}", "tiny c: {width: 4}"),
            None,
            "m.yaml:11:11: variant name 'tiny c' must be a word (letters, digits, _ . -)",
        ),
        (
            FAMILY.replace("variants:\n", "variants: []\nx:\n"),
            None,
            "m.yaml:2:1: unknown top-level key 'x' (keys: name, description, params, variants, input, inputs, layout, framework, blocks, layers)",
        ),
        (
            "params: {w: 4}\nvariants: {}\ninput: [3, 8, 8]\nlayers: [{type: relu}]\n",
            None,
            "m.yaml:1:1: variants: must map model names to parameter values, e.g. variants: {resnet50: {depths: [3, 4, 6, 3]}}",
        ),
        (
            "params: [w]\ninput: [3, 8, 8]\nlayers: [{type: relu}]\n",
            None,
            "m.yaml:1:1: params: must map parameter names to default values, e.g. {width: 64}",
        ),
        (
            "params: {in_channels: 4}\ninput: [3, 8, 8]\nlayers: [{type: relu}]\n",
            None,
            "m.yaml:1:9: the model declares the parameter in_channels, but $in_channels is a size of a block's input (computed, never declared); rename it",
        ),
        (
            "params: {2x: 4}\ninput: [3, 8, 8]\nlayers: [{type: relu}]\n",
            None,
            "m.yaml:1:9: the model declares the parameter '2x'; names are words (letters, digits and _, not starting with a digit) that $name can read",
        ),
        (
            "input: [3, 8, 8]\nblocks:\n  b: {params: {in_width: 1}, layers: [{type: relu}]}\n"
            "layers: [{block: b}]\n",
            None,
            "m.yaml:3:15: block 'b' declares the parameter in_width, but $in_width is a size of a block's input (computed, never declared); rename it",
        ),
        (
            "input: [3, 8, 8]\nlayers: [{type: relu}]\n",
            "big",
            "m.yaml:1:1: there is no variant 'big': the file declares no variants:",
        ),
        (
            "params: {s: 8}\ninput: [3, $s, $t]\nlayers: [{type: relu}]\n",
            None,
            "m.yaml:2:8: unknown parameter $t (parameters: $s)",
        ),
        (
            "input: [3, $s, 8]\nlayers: [{type: relu}]\n",
            None,
            "m.yaml:1:8: unknown parameter $s (the file declares no params:)",
        ),
        (
            "params: {u: nope}\ninput: [3, 8, 8]\nblocks: {b: {layers: [{type: relu}]}}\n"
            "layers: [{block: $u}]\n",
            None,
            "m.yaml:4:10: unknown block 'nope' (blocks: b)",
        ),
    ],
)
def test_param_and_variant_errors(text: str, variant: str | None, message: str) -> None:
    if not message:
        build(text, variant)
        return
    assert error(text, variant) == message


# ------------------------------------------------------------------ the zoo by variant


@pytest.fixture
def zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A zoo of two files: a family with variants and a plain model."""
    (tmp_path / "tiny.yaml").write_text(FAMILY, encoding="utf-8")
    (tmp_path / "plain.yaml").write_text(
        "description: one conv\ninput: [3, 8, 8]\nlayers: [{type: conv2d, filters: 2, kernel: 3}]\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(load, "ZOO_DIR", tmp_path)
    load._zoo_index.cache_clear()
    yield tmp_path
    load._zoo_index.cache_clear()


def test_zoo_names_are_models_not_files(zoo: Path) -> None:
    assert zoo_names() == ["plain", "tiny-a", "tiny-b", "tiny-c"]


def test_a_bare_name_finds_the_file_declaring_the_variant(zoo: Path) -> None:
    assert find_model("tiny-b") == load.ModelRef(zoo / "tiny.yaml", "tiny-b")
    s = summarize("tiny-b")
    assert s.name == "tiny-b" and s.inputs == {"input": (3, 32, 32)}
    # The file's own name is a zoo name too: its first variant (or --variant).
    assert summarize("tiny").name == "tiny-a"
    assert summarize("tiny", variant="tiny-c").name == "tiny-c"
    assert summarize("plain").name == "plain"


def test_a_variant_name_and_another_variant_conflict(zoo: Path) -> None:
    with pytest.raises(ModelError) as exc:
        summarize("tiny-b", variant="tiny-c")
    assert str(exc.value) == (
        "tiny-b names one model of the zoo already (variant tiny-b of tiny.yaml); "
        "for the variant tiny-c, give tiny-c instead"
    )
    assert summarize("tiny-b", variant="tiny-b").name == "tiny-b"


def test_unknown_name_lists_models_and_suggests_close_ones(zoo: Path) -> None:
    with pytest.raises(ModelError) as exc:
        summarize("tiny-x")
    assert str(exc.value) == (
        "unknown model 'tiny-x': no such file and not in the zoo; did you mean tiny-c, tiny-b, "
        "tiny-a? (cnncli summary --list shows the 4 zoo models)"
    )


def test_list_prints_the_zoo_without_building(
    zoo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A file whose layers cannot be built is still listed: --list reads, never builds.
    (zoo / "broken.yaml").write_text("description: no layers\ninput: [3, 8, 8]\n", encoding="utf-8")
    load._zoo_index.cache_clear()
    code, out, err = run(["summary", "--list"], capsys)
    assert code == 0, err
    assert out == (
        "model   file         description\n"
        "broken  broken.yaml  no layers\n"
        "plain   plain.yaml   one conv\n"
        "tiny-a  tiny.yaml    the small one\n"
        "tiny-b  tiny.yaml    tiny convnets\n"
        "tiny-c  tiny.yaml    tiny convnets\n"
    )
    code, out, err = run(["summary", "--list", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)[2] == {
        "name": "tiny-a",
        "file": "tiny.yaml",
        "description": "the small one",
    }


def test_variant_option(zoo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        ["summary", str(zoo / "tiny.yaml"), "--variant", "tiny-b", "--json"], capsys
    )
    assert code == 0, err
    assert json.loads(out)["model"] == "tiny-b"
    code, out, err = run(["summary", "tiny-c"], capsys)
    assert code == 0, err
    assert out.startswith("tiny-c  (channels first")
    code, out, err = run(["summary", str(zoo / "tiny.yaml"), "--variant", "huge"], capsys)
    assert (code, out) == (1, "")
    assert err == (
        f"cnncli: error: {zoo / 'tiny.yaml'}:5:3: unknown variant 'huge' "
        "(variants: tiny-a, tiny-b, tiny-c)\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a model YAML file or a zoo name (cnncli summary --list shows the zoo)"),
        (["--list", "resnet50"], "--list takes no model; drop it"),
        (["--list", "--variant", "a"], "--list takes no --variant; drop it"),
    ],
)
def test_list_and_model_usage(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["summary", *args], capsys)
    assert (code, out) == (2, "")
    assert err == f"cnncli: error: {message}\n"


# ------------------------------------------------------------------ the cheap variant scan


def test_the_scan_agrees_with_the_parser_on_every_zoo_file() -> None:
    for path in sorted(ZOO_DIR.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert declared_variants(text, str(path)) == load._parsed_variants(text, str(path)), path


@pytest.mark.parametrize(
    "text",
    [
        FAMILY,
        "variants: {a: {w: 1}, b: {}}\n",
        "variants:\n  a:\n    w: 1\n  # a comment\n\n  b: {w: 2}\nlayers: []\n",
        "variants:\n  'quoted': {w: 1}\n  b: {}\n",
        "variants:\n  a: {w: 1,\n      v: 2}\n  b: {}\n",
        "variants:\n- a\n- b\n",
        "variants:   # the family\n  a: {}\n",
        "x: 1\nvariants: &v\n  a: {}\n",
        "name: no variants here\n",
        "variants:\n    a: {}\n    b:\n      w: 1\n",
    ],
)
def test_the_scan_agrees_with_the_parser(text: str) -> None:
    assert declared_variants(text, "m.yaml") == load._parsed_variants(text, "m.yaml")


def test_every_zoo_name_is_declared_once() -> None:
    seen: dict[str, str] = {}
    for path in sorted(ZOO_DIR.glob("*.yaml")):
        variants = declared_variants(path.read_text(encoding="utf-8"), str(path))
        for name in variants or [path.stem]:
            assert name not in seen, f"{name} in {path.name} and {seen[name]}"
            seen[name] = path.name
    assert sorted(seen) == zoo_names()


def test_finding_a_zoo_name_is_cheap() -> None:
    # Start-up matters: a name is found from the files' text, without parsing YAML.
    load._zoo_index.cache_clear()
    start = time.perf_counter()
    names = zoo_names()
    elapsed = time.perf_counter() - start
    assert names
    assert elapsed < 0.05 + 0.002 * len(names)


# ------------------------------------------------------------------ expressions (decision 3)


def value(text: str, **params: object) -> object:
    """The value of an expression (``$`` marks one: a text without it is not evaluated)."""
    if "$" not in text:
        text, params = f"$zero + {text}", {**params, "zero": 0}
    return substitute(text, dict(params))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$w * 0.75", 48),  # a decimal result with a whole value is a whole number
        ("$w * 0.5 + 0.25 * 4", 33),
        ("$w / 4", 16),
        ("$w // 3", 21),
        ("$w % 10", 4),
        ("-$w + +2", -62),
        ("($w + 2) * 4 // 2", 132),
        ("min($w, 100, 7)", 7),
        ("max(1, $w // 256)", 1),  # the SE squeeze of a narrow input
        ("round($w * 0.039)", 2),
        ("round(2.5) + round(3.5)", 6),  # Python's round: halves to even
        ("floor(-2.5)", -3),
        ("ceil(2.1)", 3),
        ("int(-2.7)", -2),  # truncates, as int()
        ("int($w / 3)", 21),
        ("make_divisible($w * 0.75, 8)", 48),
        ("make_divisible(37 * 0.75, 8)", 32),  # 24 would be > 10 % below 27.75
        ("make_divisible($w * 0.1, 8)", 8),  # at least the divisor
        ("make_divisible($w * 0.1, 8, 4)", 8),
        ("make_divisible(3, 8, 1)", 9),  # 1 would be > 10 % below 3
        ("make_divisible(0.5, 8, 1)", 1),
        ("1e3 / 10", 100),
        (".5 * 4", 2),
        ("1. * 3", 3),
    ],
)
def test_expression_values(text: str, expected: int) -> None:
    got = value(text, w=64)
    assert got == expected and type(got) is int


def test_a_decimal_result_stays_decimal_and_remembers_its_expression() -> None:
    got = value("$w * 0.3", w=7)
    assert isinstance(got, Inexact) and got == 7 * 0.3 and got.expr == "$w * 0.3"
    assert type(value("$w * 0.3", w=50)) is int  # 15.0 in float arithmetic, as in Python
    rate = value("$p * 0.5", p=0.5)
    assert rate == 0.25 and isinstance(rate, Inexact)
    assert repr(rate) == "0.25 (= $p * 0.5; use round(), floor() or ceil())"
    # A reference alone keeps its value and type; a decimal passed on keeps its expression.
    assert value("$a", a="relu") == "relu"
    assert value("$a", a=[3, 5]) == [3, 5]
    assert value("$a", a=2.0) == 2 and type(value("$a", a=2.0)) is int
    assert repr(value("$a", a=rate)) == repr(rate)
    # Too long to quote beside the cure: the value and the cure stay.
    assert repr(value("0.1 * 3 + $z", z=0)) == (
        "0.30000000000000004 (not whole; use round(), floor() or ceil())"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$c ** 2", "cannot read the expression '$c ** 2'"),
        ("$c $c", "cannot read the expression '$c $c'"),
        (
            "$c @ 2",
            "cannot read the expression '$c @ 2' at '@ 2'; use numbers, $params, text, + - * / // %, == != < <= > >=, and, or, not, x if c else y, parentheses and min, max, round, floor, ceil, int, make_divisible",
        ),
        (
            "mx($c, 2)",
            "unknown function 'mx' in 'mx($c, 2)'; did you mean max? (functions: min, max, round, floor, ceil, int, make_divisible; parameters are written $name)",
        ),
        ("c * 2 + $c", "'c' is text, not a number, in 'c * 2 + $c' (parameters are written $name)"),
        ("round($c, 1)", "round takes one number, got 2 in 'round($c, 1)'"),
        ("max($c)", "max takes two or more numbers, got 1 in 'max($c)'"),
        (
            "make_divisible($c)",
            "make_divisible takes (v, divisor) or (v, divisor, min_value), got 1 in 'make_divisible($c)'",
        ),
        (
            "make_divisible($c, 0)",
            "make_divisible's divisor must be a whole number ≥ 1, got 0 in 'make_divisible($c, 0)'",
        ),
        (
            "make_divisible($c, 8, -1)",
            "make_divisible's min_value must be a whole number ≥ 0, got -1 in 'make_divisible($c, 8, -1)'",
        ),
        ("round $c", "round needs its arguments in parentheses, e.g. round(…) in 'round $c'"),
        ("min($c, 2", "missing ')' after the arguments of min in 'min($c, 2'"),
        ("($c + 2", "missing ')' in '($c + 2'"),
        ("$c / ($c - 4)", "division by zero in '$c / ($c - 4)'"),
        ("$c % 0.0", "division by zero in '$c % 0.0'"),
        ("$c * 1e300", "the expression '$c * 1e300' is absurdly large"),
        ("$c * 4611686018427387904", "the expression '$c * 4611686018427387904' is absurdly large"),
        (
            "$c + 1234567890123456789012345",
            "the number 12345678901234567890123… in the expression is absurdly large",
        ),
        ("$s * 2", "parameter $s is 'relu', not a number, in '$s * 2'"),
        ("$t + 1", "parameter $t is True, not a number, in '$t + 1'"),
        ("$x + 1", "unknown parameter $x (parameters: $c, $s, $t)"),
        ("$cc + 1", "unknown parameter $cc; did you mean c? (parameters: $c, $s, $t)"),
    ],
)
def test_expression_errors(text: str, message: str) -> None:
    with pytest.raises(ModelError) as exc:
        value(text, c=4, s="relu", t=True)
    assert str(exc.value) == message


def test_expression_depth_is_bounded_before_parsing() -> None:
    text = "max(" * 150 + "$c" + ", 1)" * 150
    with pytest.raises(LimitError) as exc:
        value(text, c=1)
    assert "has 150 parentheses and signs, over the nesting limit of 100" in str(exc.value)
    assert value("max(" * 90 + "$c" + ", 1)" * 90, c=3) == 3


def test_no_python_is_evaluated() -> None:
    assert substitute("__import__('os')", {}) == "__import__('os')"  # no $: text, as written
    for text in ("__import__('os') + $c", "$c.__class__", "[$c]", "lambda: $c", "'a' + $c"):
        with pytest.raises(ModelError):
            value(text, c=1)


_ATOMS = st.one_of(
    st.integers(-50, 50).map(str),
    st.sampled_from(["$a", "$b", "0.5", "2.25", "1e1", "$h"]),
)


def _expressions(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return _ATOMS
    sub = _expressions(depth - 1)
    return st.one_of(
        sub,
        st.tuples(sub, st.sampled_from(["+", "-", "*", "/", "//", "%"]), sub).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        sub.map(lambda t: f"-{t}"),
        st.tuples(st.sampled_from(["min", "max"]), sub, sub).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"
        ),
        st.tuples(st.sampled_from(["round", "floor", "ceil", "int"]), sub).map(
            lambda t: f"{t[0]}({t[1]})"
        ),
    )


@given(_expressions(3), st.integers(-100, 100), st.integers(1, 100))
def test_arithmetic_is_pythons(text: str, a: int, b: int) -> None:
    # Python itself is the reference here (the test may eval; cnncli never does).
    import math as m

    params = {"a": a, "b": b, "h": 0.5}
    try:
        expected = eval(  # noqa: S307
            text.replace("$", "").replace("floor", "m.floor").replace("ceil", "m.ceil"),
            {"m": m, "a": a, "b": b, "h": 0.5},
        )
    except (ZeroDivisionError, OverflowError, ValueError):
        with pytest.raises(ModelError):
            substitute("$a * 0 + " + text, params)
        return
    if abs(expected) > 2**62:
        return
    try:
        got = substitute("$a * 0 + " + text, params)
    except ModelError as err:
        assert "absurdly large" in str(err)  # an intermediate result past 2**62
        return
    assert got == expected
    assert isinstance(got, int) == (float(expected).is_integer())


# ------------------------------------------------------------------ comparisons and logic


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$s != 1 or $c != $p * 4", True),  # ResNet's projection shortcut (stride 2)
        ("$s == 1 and $c == $p * 4", False),  # a residual add where the shapes agree
        ("$c == $p * 4", True),
        ("$c < 64", False),
        ("$c <= 64", True),
        ("$c > 63.5", True),
        ("$c >= 65", False),
        ("1 < $s < 3", True),  # comparisons chain, as in Python
        ("1 < $s < 2", False),
        ("0 < $s == 2 < $c", True),
        ("not $wide", True),
        ("not $s == 2", False),  # not binds looser than ==
        ("not not $s", True),
        ("$wide or $s", True),  # a number as a truth value: 0 is false
        ("$wide and 1 / 0", False),  # the right side is never evaluated
        ("$s == 2 or $undefined", True),
        ("$s and 0", False),
        ("true or $s", True),  # true, false (and True, False) are the truth values
        ("false or True and $s", True),
        ("$act == relu", True),
        ("$act != 'relu'", False),
        ("$ks != $ks", False),  # two lists compare
        ("$s + 1 == 3 and $c // 16 == 4", True),  # arithmetic binds tighter than comparisons
        ("-$s < 0", True),
    ],
)
def test_comparisons_and_logic_give_true_or_false(text: str, expected: bool) -> None:
    got = value(text, s=2, c=64, p=16, wide=False, act="relu", ks=[1, 5])
    assert got is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("valid if $s == 2 else same", "valid"),  # bare words are text
        ("same if $s == 1 else valid", "valid"),
        ("'a-b c' if $s == 2 else other", "a-b c"),  # quoted text for other characters
        ('"x" if $wide else "y"', "y"),
        ("$c * 2 if $wide else $c", 64),
        ("$c if $wide else $c // 2 if $s == 2 else 1", 32),  # else x if c else y nests
        ("max($c if $s > 1 else 1, 100)", 100),
        ("($c if $wide else 3) * 2", 6),
        ("$act if $s == 2 else sigmoid", "relu"),
        ("$ks if $s == 2 else 3", [1, 5]),
        ("$c / $zero if $wide else 7", 7),  # the branch not taken is never evaluated
        ("$nope if false else 0.5 * 4", 2),  # a whole-valued decimal is a whole number
        ("round and floor if false else 1", 1),  # function names without ( … ) are text
    ],
)
def test_x_if_c_else_y(text: str, expected: object) -> None:
    got = value(text, s=2, c=64, wide=False, act="relu", ks=[1, 5], zero=0)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "$act == 1",
            "== compares two values of one kind (numbers, text, true/false or lists), got text "
            "'relu' and number 1 in '$act == 1'",
        ),
        (
            "$wide != 0",
            "!= compares two values of one kind (numbers, text, true/false or lists), got "
            "true/false False and number 0 in '$wide != 0'",
        ),
        ("$act < 2", "< compares numbers, got 'relu' and 2 in '$act < 2'"),
        ("$wide >= 1", ">= compares numbers, got False and 1 in '$wide >= 1'"),
        ("$act and true", "and takes true/false or numbers, got 'relu' in '$act and true'"),
        ("false or $ks", "or takes true/false or numbers, got [1, 5] in 'false or $ks'"),
        ("not $act", "not takes true/false or numbers, got 'relu' in 'not $act'"),
        ("1 if $act else 2", "if takes true/false or numbers, got 'relu' in '1 if $act else 2'"),
        ("$s if $wide", "x if c needs its else (x if c else y) in '$s if $wide'"),
        ("$s else 1", "cannot read the expression '$s else 1'"),
        ("$wide + 1", "parameter $wide is False, not a number, in '$wide + 1'"),
        ("($s > 1) + 1", "True is true/false, not a number, in '($s > 1) + 1'"),
        (
            "same * $s",
            "'same' is text, not a number, in 'same * $s' (parameters are written $name)",
        ),
        (
            "-relu if $s else 1",
            "'relu' is text, not a number, in '-relu if $s else 1' (parameters are written $name)",
        ),
        (
            "$s + 'a' if true else 1",
            "'a' is text, not a number, in \"$s + 'a' if true else "
            '1" (parameters are written $name)',
        ),
        ("1 + not $s", "cannot read the expression '1 + not $s'"),
        (
            "$s == = 1",
            "cannot read the expression '$s == = 1' at '= 1'; use numbers, $params, text, + - * "
            "/ // %, == != < <= > >=, and, or, not, x if c else y, parentheses and min, max, "
            "round, floor, ceil, int, make_divisible",
        ),
        ("$s if true else", "cannot read the expression '$s if true else'"),
        (
            "$s ! 1",
            "cannot read the expression '$s ! 1' at '! 1'; use numbers, $params, "
            "text, + - * / // %, == != < <= > >=, and, or, not, x if c else y, parentheses and "
            "min, max, round, floor, ceil, int, make_divisible",
        ),
        (
            "'unclosed if $s else 1",
            'cannot read the expression "\'unclosed if $s else 1" at '
            '"\'unclosed if $s els…"; use numbers, $params, text, + - * / // %, == != < <= > >=, '
            "and, or, not, x if c else y, parentheses and min, max, round, floor, ceil, int, "
            "make_divisible",
        ),
    ],
)
def test_logic_errors(text: str, message: str) -> None:
    with pytest.raises(ModelError) as exc:
        value(text, s=2, act="relu", wide=False, ks=[1, 5])
    assert str(exc.value) == message


def test_logic_nesting_is_bounded_before_parsing() -> None:
    text = "not " * 150 + "$c"
    with pytest.raises(LimitError) as exc:
        value(text, c=1)
    assert "has 150 parentheses, signs, nots and ifs, over the nesting limit of 100" in str(
        exc.value
    )
    assert value("not " * 91 + "$c", c=0) is True
    chain = " else ".join(f"{i} if $c == {i}" for i in range(90)) + " else -1"
    assert value(chain, c=89) == 89


_NUMBERS = st.one_of(st.integers(-3, 3).map(str), st.sampled_from(["$a", "$b", "0.5"]))


def _arith(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return _NUMBERS
    sub = _arith(depth - 1)
    return st.one_of(
        sub,
        st.tuples(sub, st.sampled_from(["+", "-", "*", "//", "%"]), sub).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
    )


def _logic(depth: int) -> st.SearchStrategy[str]:
    ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
    comparison = st.one_of(
        st.tuples(_arith(1), ops, _arith(1)).map(" ".join),
        st.tuples(_arith(1), ops, _arith(1), ops, _arith(1)).map(" ".join),  # a chain
    )
    if depth == 0:
        return st.one_of(comparison, st.sampled_from(["true", "false", "$t"]))
    sub = _logic(depth - 1)
    return st.one_of(
        sub,
        sub.map(lambda t: f"not {t}"),
        st.tuples(sub, st.sampled_from(["and", "or"]), sub).map(" ".join),
        sub.map(lambda t: f"({t})"),
    )


@given(
    st.one_of(
        _logic(2),
        st.tuples(_arith(1), _logic(1), _arith(1)).map(lambda t: f"{t[0]} if {t[1]} else {t[2]}"),
    ),
    st.integers(-4, 4),
    st.integers(-4, 4),
    st.booleans(),
)
def test_logic_is_pythons(text: str, a: int, b: int, t: bool) -> None:
    # Python is the reference (the test may eval; cnncli never does), short-circuits included:
    # a division by zero on a side Python skips is skipped here too.
    text += " if $t or not $t else 0"  # the same value, and a $ (text without one is text)
    source = text.replace("$", "").replace("true", "True").replace("false", "False")
    params = {"a": a, "b": b, "t": t}
    try:
        expected = eval(source, dict(params))  # noqa: S307
    except ZeroDivisionError:
        with pytest.raises(ModelError, match="division by zero"):
            substitute(text, params)
        return
    got = substitute(text, params)
    assert got == expected and isinstance(got, bool) == isinstance(expected, bool)


def test_functions_are_the_documented_ones() -> None:
    assert list(FUNCTIONS) == ["min", "max", "round", "floor", "ceil", "int", "make_divisible"]


@pytest.fixture(scope="module")
def torchvision_make_divisible() -> object:
    torch = pytest.importorskip("torch")
    saved = torch.library.register_fake
    # torchvision's compiled ops do not load with this torch; its model code is plain torch.nn.
    torch.library.register_fake = lambda *args, **kwargs: lambda fn: fn
    try:
        utils = pytest.importorskip("torchvision.models._utils")
    finally:
        torch.library.register_fake = saved
    return utils._make_divisible


@pytest.mark.oracle
@pytest.mark.parametrize("divisor", [1, 2, 3, 4, 8, 16, 32])
def test_make_divisible_is_torchvisions(torchvision_make_divisible: object, divisor: int) -> None:
    # The widths torchvision rounds: channels × width multipliers (MobileNet V2/V3, MNASNet,
    # EfficientNet), 2,400 values per divisor, with and without min_value.
    ref = torchvision_make_divisible
    assert callable(ref)
    mismatches = []
    for c in range(1, 1300, 7):
        for m in (0.25, 0.35, 0.5, 0.75, 1.0, 1.1, 1.2, 1.4, 1.6, 1.8, 2.0, 2.2, 3.1):
            params = {"c": c, "m": m, "d": divisor}
            for text, args in (
                ("make_divisible($c * $m, $d)", (c * m, divisor)),
                ("make_divisible($c * $m, $d, $d // 2 + 1)", (c * m, divisor, divisor // 2 + 1)),
                ("make_divisible($c * $m, $d, 64)", (c * m, divisor, 64)),
            ):
                got = substitute(text, params)
                want = ref(*args)
                if got != want or type(got) is not int:
                    mismatches.append((text, params, got, want))
    assert mismatches == []


def test_make_divisible_matches_its_definition() -> None:
    # The rule spelled out: nearest multiple (halves up), at least min_value, never > 10 % down.
    for v in (0.5, 3.0, 7.9, 12.0, 27.75, 37.5, 100.0, 1023.9):
        for d in (1, 4, 8):
            q = int(v + d / 2) // d * d
            expected = max(d, q)
            if expected < 0.9 * v:
                expected += d
            assert make_divisible(v, d) == expected


# ------------------------------------------------------------------ decimals in model files

WIDTH = """
params: {n: 1, s: 8}
input: [3, $s, 8]
blocks:
  b:
    params: {c: 16, ratio: 1.0, n: 1}
    layers:
      - {type: conv2d, filters: $c * $ratio, kernel: 1}
layers:
  - {block: b, ratio: 0.75, repeat: $n}
"""


def test_a_decimal_block_parameter_giving_a_whole_width() -> None:
    s = build(WIDTH)
    assert s.layers()[0].output_shape == (12, 8, 8)
    s = build(WIDTH.replace("ratio: 0.75", "ratio: 0.3, c: 10"))
    assert s.layers()[0].output_shape == (3, 8, 8)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "ratio: 0.75",
            "ratio: 0.7",
            "m.yaml:8:9: filters must be a whole number, got 11.2 (= $c * $ratio; use round(), "
            "floor() or ceil())",
        ),
        (
            "repeat: $n",
            "repeat: $n / 2",
            "m.yaml:10:5: repeat must be a whole number, got 0.5 (= $n / 2; use round(), floor() "
            "or ceil())",
        ),
        (
            "[3, $s, 8]",
            "[3, ($s + 1) / 2, 8]",
            "m.yaml:3:8: input size must be a whole number, got 4.5 (= ($s + 1) / 2; use round(), floor() "
            "or ceil())",
        ),
    ],
)
def test_a_decimal_where_a_whole_number_is_needed(old: str, new: str, message: str) -> None:
    # The option's own words come from layers.py (e.g. "a whole number ≥ 1"); what this
    # module adds is the place, the value, its expression and the cure.
    head, tail = message.split(" a whole number, ")
    got = error(WIDTH.replace(old, new))
    assert got.startswith(head + " a whole number")
    assert got.endswith(", " + tail)


def test_make_divisible_in_a_model() -> None:
    # Inside { } a comma ends the value: the expression is quoted.
    s = build(WIDTH.replace("$c * $ratio", "'make_divisible($c * $ratio, 8)'"))
    assert s.layers()[0].output_shape == (16, 8, 8)  # 12 -> 16: nearest multiple, halves up
    assert error(WIDTH.replace("$c * $ratio", "make_divisible($c * $ratio, 8)")) == (
        "m.yaml:8:9: missing ')' after the arguments of make_divisible in 'make_divisible($c * "
        "$ratio'; inside { } a comma ends the value: quote an expression with commas"
    )


# ------------------------------------------------------------------ blocks see their input (decision 2)

DENSENET121 = """
name: densenet121
input: [3, 224, 224]
blocks:
  dense_layer:
    params: {growth: 32, bn_size: 4}
    layers:
      - {type: batchnorm, name: norm1}
      - {type: relu, name: relu1}
      - {type: conv2d, name: conv1, filters: $bn_size * $growth, kernel: 1, bias: false}
      - {type: batchnorm, name: norm2}
      - {type: relu, name: relu2}
      - {type: conv2d, name: conv2, filters: $growth, kernel: 3, padding: 1, bias: false}
      - {type: concat, input: [input, conv2]}
  transition:            # half the input's channels, as torchvision's _Transition
    layers:
      - {type: batchnorm, name: norm}
      - {type: relu}
      - {type: conv2d, name: conv, filters: $in_channels // 2, kernel: 1, bias: false}
      - {type: avgpool2d, name: pool, kernel: 2}
layers:
  - {type: conv2d, name: conv0, filters: 64, kernel: 7, stride: 2, padding: 3, bias: false}
  - {type: batchnorm, name: norm0}
  - {type: relu}
  - {type: maxpool2d, kernel: 3, stride: 2, padding: 1}
  - {block: dense_layer, name: denseblock1, repeat: 6}
  - {block: transition, name: transition1}
  - {block: dense_layer, name: denseblock2, repeat: 12}
  - {block: transition, name: transition2}
  - {block: dense_layer, name: denseblock3, repeat: 24}
  - {block: transition, name: transition3}
  - {block: dense_layer, name: denseblock4, repeat: 16}
  - {type: batchnorm, name: norm5}
  - {type: relu}
  - {type: adaptive_avgpool, output_size: 1}
  - {type: flatten}
  - {type: dense, name: classifier, units: 1000}
"""


def test_densenet_transitions_halve_their_input() -> None:
    s = build(DENSENET121)
    convs = {r.name: r.output_shape for r in s.layers() if r.name.endswith(".conv")}
    assert convs == {
        "transition1.conv": (128, 56, 56),  # 64 + 6 × 32 = 256 in
        "transition2.conv": (256, 28, 28),  # 128 + 12 × 32 = 512 in
        "transition3.conv": (512, 14, 14),  # 256 + 24 × 32 = 1024 in
    }
    # torchvision's published densenet121: 7,978,856 params, 2.834 GFLOPS (MACs).
    assert s.totals.trainable_params == 7_978_856
    assert f"{s.totals.macs / 1e9:.3f}" == "2.834"


def _torchvision() -> object:
    torch = pytest.importorskip("torch")
    saved = torch.library.register_fake
    torch.library.register_fake = lambda *args, **kwargs: lambda fn: fn
    try:
        return pytest.importorskip("torchvision")
    finally:
        torch.library.register_fake = saved


def _torch_counts(net: object, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Parameters, buffers (num_batches_tracked excluded) and conv + linear MACs (bias
    excluded) of a torch module, the MACs from hooks on a forward pass on the meta device."""
    import torch

    macs = 0

    def hook(module: torch.nn.Module, _: object, out: torch.Tensor) -> None:
        nonlocal macs
        weight = module.weight
        per_output = weight[0].numel() if isinstance(module, torch.nn.Conv2d) else weight.shape[1]
        macs += out.numel() * per_output

    for m in net.modules():  # type: ignore[attr-defined]
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
            m.register_forward_hook(hook)
    with torch.no_grad():
        net(torch.zeros((1, *shape), device="meta"))  # type: ignore[operator]
    params = sum(p.numel() for p in net.parameters())  # type: ignore[attr-defined]
    buffers = sum(
        b.numel()
        for n, b in net.named_buffers()  # type: ignore[attr-defined]
        if not n.endswith("num_batches_tracked")
    )
    return params, buffers, macs


@pytest.mark.oracle
def test_densenet121_with_in_channels_is_torchvisions() -> None:
    tv = _torchvision()
    import torch

    with torch.device("meta"):
        net = tv.models.densenet121()  # type: ignore[attr-defined]
    t = build(DENSENET121).totals
    assert (t.trainable_params, t.non_trainable_params, t.macs) == _torch_counts(net, (3, 224, 224))


SE = """
input: [{c}, 7, 7]
blocks:
  se:                     # torchvision.ops.SqueezeExcitation(C, max(1, C // 4))
    layers:
      - {{type: adaptive_avgpool, output_size: 1}}
      - {{type: conv2d, name: fc1, filters: 'max(1, $in_channels // 4)', kernel: 1}}
      - {{type: relu}}
      - {{type: conv2d, name: fc2, filters: $in_channels, kernel: 1}}
      - {{type: sigmoid}}
      - {{type: multiply, input: [input, sigmoid]}}
layers:
  - {{block: se}}
"""


@pytest.mark.parametrize("c", [1, 2, 3, 4, 5, 16, 17, 96, 1000])
def test_se_block_squeezes_a_quarter_of_its_input(c: int) -> None:
    s = build(SE.format(c=c))
    squeeze = max(1, c // 4)
    rows = {r.local: r for r in s.layers()}
    assert rows["fc1"].output_shape == (squeeze, 1, 1)
    assert rows["fc2"].output_shape == (c, 1, 1)
    assert s.totals.params == (c * squeeze + squeeze) + (squeeze * c + c)
    assert s.layers()[-1].output_shape == (c, 7, 7)


@pytest.mark.oracle
@pytest.mark.parametrize("c", [1, 3, 16, 17, 96])
def test_se_block_is_torchvisions(c: int) -> None:
    tv = _torchvision()
    import torch

    from cnncli.model.torch_check import check

    with torch.device("meta"):
        se = tv.ops.SqueezeExcitation(c, max(1, c // 4))  # type: ignore[attr-defined]
    s = build(SE.format(c=c))
    assert (s.totals.trainable_params, 0, s.totals.macs) == _torch_counts(se, (c, 7, 7))
    assert all(row.ok for row in check(s))  # and --verify agrees layer by layer


def test_each_repetition_sees_its_own_input() -> None:
    s = build(
        """
        input: [4, 8, 8]
        blocks:
          grow:
            layers:
              - {type: conv2d, filters: $in_channels + 1, kernel: 1}
        layers:
          - {block: grow, repeat: 3}
        """
    )
    assert [r.output_shape[0] for r in s.layers()] == [5, 6, 7]


def test_spatial_sizes_per_rank_and_layout() -> None:
    def last_shape(head: str, expr: str, conv: str = "conv2d") -> tuple[int, ...]:
        text = (
            f"{head}\nblocks:\n  b:\n    layers:\n"
            f"      - {{type: {conv}, filters: {expr}, kernel: 1}}\n"
            f"layers:\n  - {{type: {conv}, filters: 2, kernel: 1}}\n  - {{block: b}}\n"
        )
        return build(text).layers()[-1].output_shape

    assert last_shape("input: [3, 10, 6]", "$in_height * 10 + $in_width") == (106, 10, 6)
    assert last_shape(
        "input: [10, 6, 3]\nlayout: channels_last",
        "$in_height * 100 + $in_width * 10 + $in_channels",
    ) == (10, 6, 1062)
    assert last_shape("input: [3, 9]", "$in_length", "conv1d") == (9, 9)
    assert last_shape(
        "input: [3, 4, 5, 6]", "$in_depth * 100 + $in_height * 10 + $in_width", "conv3d"
    ) == (456, 4, 5, 6)


def test_a_nested_call_reads_the_enclosing_blocks_input() -> None:
    # MBConv's squeeze-and-excite squeezes a quarter of the MBConv input, not of its own input.
    s = build(
        """
        input: [16, 8, 8]
        blocks:
          se:
            params: {squeeze: 1}
            layers:
              - {type: global_avgpool, keepdims: true}
              - {type: conv2d, name: reduce, filters: $squeeze, kernel: 1}
              - {type: conv2d, name: expand, filters: $in_channels, kernel: 1}
              - {type: multiply, input: [input, expand]}
          mbconv:
            layers:
              - {type: conv2d, name: expand, filters: $in_channels * 6, kernel: 1}
              - {block: se, squeeze: 'max(1, $in_channels // 4)'}
        layers:
          - {block: mbconv}
        """
    )
    shapes = {r.name: r.output_shape for r in s.layers()}
    assert shapes["mbconv.expand"] == (96, 8, 8)
    assert shapes["mbconv.se.reduce"] == (4, 1, 1)  # 16 // 4, the MBConv's input
    assert shapes["mbconv.se.expand"] == (96, 1, 1)  # the SE block's own input


def test_a_forward_reference_is_fine_unless_the_block_reads_its_size() -> None:
    text = """
        input: [3, 8, 8]
        blocks:
          b:
            layers:
              - {type: conv2d, filters: FILTERS, kernel: 1}
        layers:
          - {block: b, input: later}
          - {type: conv2d, name: later, input: input, filters: 5, kernel: 1}
        """
    assert build(text.replace("FILTERS", "2")).layers()[0].output_shape == (2, 8, 8)
    assert error(text.replace("FILTERS", "$in_channels")) == (
        "m.yaml:6:9: block 'b' reads its input's size ($in_…), so it needs the shape of "
        "'later', which is defined further down (a forward reference); define it above the "
        "block, or pass the size as a parameter"
    )


def test_sizes_are_computed_only_when_read() -> None:
    # A block that does not read $in_… leaves every shape to the pass after expansion.
    s = build(DENSENET121.replace("$in_channels // 2", "128"))
    assert s.totals.layers == build(DENSENET121).totals.layers


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "input: [3, 8, 8]\nlayers:\n  - {type: conv2d, filters: $in_channels, kernel: 1}\n",
            "m.yaml:3:5: $in_channels is a size of a block's input: it exists inside blocks "
            "only; at the top level, use the sizes of input: or a parameter",
        ),
        (
            "input: [3, 8]\nblocks:\n  b: {layers: [{type: conv1d, filters: $in_height, "
            "kernel: 1}]}\nlayers:\n  - {block: b}\n",
            "m.yaml:3:16: $in_height is not defined: the block input has 1 spatial axes (it "
            "has $in_channels, $in_length)",
        ),
        (
            "input: [3]\nblocks:\n  b: {layers: [{type: dense, units: $in_width}]}\n"
            "layers:\n  - {block: b}\n",
            "m.yaml:3:16: $in_width is not defined: the block input has 0 spatial axes (it "
            "has $in_channels)",
        ),
        (
            "input: [3, 8, 8]\nblocks:\n  b: {layers: [{type: relu}]}\n"
            "layers:\n  - {block: b, in_channels: 4}\n",
            "m.yaml:5:5: block 'b' is given in_channels, but $in_channels is a size of a "
            "block's input, computed for each instance; leave it out",
        ),
        (
            "input: [3, 8, 8]\nblocks:\n  b: {layers: [{type: conv2d, filters: $in_channels, "
            "kernel: 9}]}\nlayers:\n  - {type: conv2d, filters: 4, kernel: 9}\n  - {block: b}\n",
            "m.yaml:5:5: layer 'conv2d' (conv2d): kernel 9 is larger than the padded input 8 "
            "on axis H (input 8 + padding 0+0); use padding of at least 1 in total, or a "
            "smaller kernel",
        ),
    ],
)
def test_block_input_errors(text: str, message: str) -> None:
    assert error(text) == message


# ------------------------------------------------------------------ behaviour the docs now state


def test_lists_and_text_as_block_parameters() -> None:
    s = build(
        """
        input: [3, 16, 16]
        blocks:
          b:
            params: {ks: [3, 3], act: relu, pad: valid}
            layers:
              - {type: conv2d, filters: 4, kernel: $ks, padding: $pad, activation: $act}
              - {type: $act}
        layers:
          - {block: b}
          - {block: b, ks: [1, 5], act: sigmoid, pad: same}
        """
    )
    assert [(r.name, r.type, r.output_shape, r.activation) for r in s.layers()] == [
        ("b.conv2d", "conv2d", (4, 14, 14), "relu"),
        ("b.relu", "relu", (4, 14, 14), None),
        ("b_1.conv2d", "conv2d", (4, 14, 14), "sigmoid"),
        ("b_1.sigmoid", "sigmoid", (4, 14, 14), None),
    ]
    assert s.layers()[2].kernel == (1, 5)


@pytest.mark.parametrize(
    ("cond", "on"),
    [
        ("true", True),
        ("false", False),
        ("1", True),
        ("0", False),
        ("2.5", True),
        ("0.0", False),
        ("$stride - 1", True),
        ("$stride - 2", False),
        ("$stride % 2", False),
    ],
)
def test_if_takes_true_false_or_a_number(cond: str, on: bool) -> None:
    s = build(
        f"""
        input: [3, 8, 8]
        blocks:
          b:
            params: {{stride: 2}}
            layers:
              - {{type: conv2d, name: proj, filters: 4, kernel: 1, stride: $stride, if: {cond}}}
              - {{type: relu}}
        layers:
          - {{block: b}}
        """
    )
    assert [r.local for r in s.layers()] == (["proj", "relu"] if on else ["relu"])


@pytest.mark.parametrize(
    ("cond", "message"),
    [
        ("relu", "m.yaml:3:5: if must be true, false or a number (0 is off), got 'relu'"),
        (".nan", "m.yaml:3:5: if must be true, false or a number (0 is off), got nan"),
        ("[1]", "m.yaml:3:5: if must be true, false or a number (0 is off), got [1]"),
    ],
)
def test_if_refuses_anything_else(cond: str, message: str) -> None:
    assert error(f"input: [3, 8, 8]\nlayers:\n  - {{type: relu, if: {cond}}}\n") == message


def test_blocks_without_params() -> None:
    text = "input: [3, 8, 8]\nblocks:\n  b: {layers: [{type: relu}]}\nlayers:\n  - {block: b}\n"
    assert build(text).layers()[0].name == "b.relu"
    assert error(text.replace("{block: b}", "{block: b, c: 1}")) == (
        "m.yaml:5:5: block 'b' has no parameter 'c' (it takes none)"
    )


TWO_INPUTS = """
input: [8, 16, 16]
blocks:
  fit:                     # input.0 brought to input.1's size: halved, projected or as it is
    params: {filters: 8}
    layers:
      - {type: conv2d, name: halve, filters: $filters, kernel: 1, stride: 2,
         if: $in_height != $in_height_1}
      - {type: conv2d, name: project, filters: $filters, kernel: 1,
         if: $in_height == $in_height_1 and $in_channels != $filters}
  cell:
    params: {filters: 8}
    layers:
      - {block: fit, name: p, input: [input.1, input.0], filters: $filters}
      - {type: conv2d, name: h, input: input.0, filters: $filters, kernel: 3, padding: 1}
      - {type: add, name: sum, input: [h, p]}
layers:
  - {type: conv2d, name: stem, filters: 4, kernel: 3, stride: 2, padding: 1}
"""


def test_a_block_reads_several_inputs_and_their_sizes() -> None:
    s = build(TWO_INPUTS + "  - {block: cell, name: c, input: [stem, input], filters: 4}\n")
    rows = {r.name: r for r in s.layers()}
    assert list(rows) == ["stem", "c.p.halve", "c.h", "c.sum"]
    assert rows["c.p.halve"].inputs == ("input",)  # input.1 of the cell: the model input
    assert rows["c.p.halve"].output_shape == (4, 8, 8)
    assert rows["c.h"].inputs == ("stem",)
    assert rows["c.sum"].inputs == ("c.h", "c.p.halve")
    # Same size, other channels: projected; everything equal: p as it is.
    s = build(TWO_INPUTS + "  - {block: cell, name: c, input: [stem, stem], filters: 8}\n")
    assert [r.name for r in s.layers()] == ["stem", "c.p.project", "c.h", "c.sum"]
    s = build(TWO_INPUTS + "  - {block: cell, name: c, input: [stem, stem], filters: 4}\n")
    assert [r.inputs for r in s.layers()][-1] == ("c.h", "stem")


def test_a_single_input_is_input_0_and_a_list_of_one_is_one_input() -> None:
    text = (
        "input: [3, 8, 8]\nblocks:\n  b: {layers: [{type: conv2d, filters: $in_channels_0 + 1, "
        "kernel: 1, input: input.0}]}\nlayers:\n  - {type: relu, name: a}\n  - {block: b, "
        "input: INPUT}\n"
    )
    for spelled in ("a", "[a]"):
        row = build(text.replace("INPUT", spelled)).layers()[-1]
        assert (row.inputs, row.output_shape) == (("a",), (4, 8, 8))


def test_repeat_slides_along_the_chain_and_names_each_output() -> None:
    # Copy k + 1 reads [output k, first input of copy k]: NASNet's cells.
    s = build(
        TWO_INPUTS
        + "  - {block: cell, name: cells, repeat: 3, input: [stem, input], filters: 4}\n"
        + "  - {type: concat, name: cat, input: [cells.0, cells.1, cells.2, cells]}\n"
    )
    sums = {r.name: r.inputs for r in s.layers() if r.name.endswith(".sum")}
    assert sums == {
        "cells.0.sum": ("cells.0.h", "cells.0.p.halve"),  # p: the model input, halved
        "cells.1.sum": ("cells.1.h", "stem"),  # p: stem
        "cells.2.sum": ("cells.2.h", "cells.0.sum"),  # p: copy 0's output
    }
    rows = {r.name: r for r in s.layers()}
    assert rows["cells.1.h"].inputs == ("cells.0.sum",)
    assert rows["cat"].inputs == ("cells.0.sum", "cells.1.sum", "cells.2.sum", "cells.2.sum")
    assert rows["cat"].output_shape == (16, 8, 8)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            # One input given; the cell hands input.1 on to fit.
            "{block: cell, input: stem}",
            "m.yaml:14:9: block call 'p' takes input 'input.1', but the block was given 1 "
            "input (input.0); give the call input: [a, b, …]",
        ),
        (
            "{block: cell, input: []}",
            "m.yaml:19:5: a block's input must be a layer name or a list of names, e.g. input: "
            "[a, b] (inside the block input.0, input.1), got []",
        ),
        (
            "{block: cell, input: [stem, 3]}",
            "m.yaml:19:5: a block's input must be a layer name or a list of names, e.g. input: "
            "[a, b] (inside the block input.0, input.1), got ['stem', 3]",
        ),
        (
            # fit reads the size of input.1 while the model is being expanded.
            "{block: cell, input: [stem, nowhere]}",
            "m.yaml:7:9: block 'p' reads its input's size ($in_…), so it needs the shape of "
            "'nowhere', which is defined further down (a forward reference); define it above "
            "the block, or pass the size as a parameter",
        ),
        (
            "{block: fit, input: [stem, nowhere]}\n  - {type: relu, name: later}",
            "m.yaml:19:5: block call 'fit' takes input 'nowhere', which is not defined here",
        ),
    ],
)
def test_several_inputs_errors(call: str, message: str) -> None:
    text = TWO_INPUTS + f"  - {call}\n"
    if "block: fit" in call:  # a block that does not read its sizes: names resolve at the end
        text = text.replace("$in_height != $in_height_1", "false").replace(
            "$in_height == $in_height_1 and $in_channels != $filters", "false"
        )
    assert error(text) == message


def test_reading_an_input_or_size_the_call_did_not_give() -> None:
    text = (
        "input: [3, 8, 8]\nblocks:\n  b: {layers: [{type: add, input: [input.0, input.2]}]}\n"
        "layers:\n  - {type: relu, name: a}\n  - {block: b, input: [a, input]}\n"
    )
    assert error(text) == (
        "m.yaml:3:16: layer 'add' takes input 'input.2', but the block was given 2 inputs "
        "(input.0 … input.1); give the call input: [a, b, …]"
    )
    sized = text.replace(
        "{type: add, input: [input.0, input.2]}", "{type: dense, units: $in_channels_2}"
    )
    assert error(sized) == (
        "m.yaml:3:16: $in_channels_2 reads the block's input 2, but it has 2 inputs "
        "(input.0 … input.1); give the call input: [a, b, …]"
    )
    flat = "input: [3]\nlayers:\n  - {type: relu, name: a}\n  - {block: b, input: [a, input]}\n"
    flat = flat.replace(
        "input: [3]\n", "input: [3]\nblocks:\n  b: {layers: [{type: dense, units: $in_width_1}]}\n"
    )
    assert error(flat) == (
        "m.yaml:3:16: $in_width_1 is not defined: the block's input 1 has 0 spatial axes (it "
        "has $in_channels_1)"
    )


# ------------------------------------------------------------------ $index and $repeat


def test_index_and_repeat_inside_a_block() -> None:
    s = build(
        """
        input: [3, 8, 8]
        blocks:
          b:
            layers:
              - {type: conv2d, filters: $index * 10 + $repeat, kernel: 1}
        layers:
          - {block: b, name: many, repeat: 3}
          - {block: b, name: one}
        """
    )
    assert [(r.name, r.output_shape[0]) for r in s.layers()] == [
        ("many.0.conv2d", 3),
        ("many.1.conv2d", 13),
        ("many.2.conv2d", 23),
        ("one.conv2d", 1),
    ]


def test_index_is_the_innermost_blocks() -> None:
    s = build(
        """
        input: [3, 8, 8]
        blocks:
          inner:
            params: {outer: 0}
            layers:
              - {type: conv2d, filters: $outer * 10 + $index + 1, kernel: 1}
          outer:
            layers:
              - {block: inner, repeat: 2, outer: $index}
        layers:
          - {block: outer, repeat: 2}
        """
    )
    assert [r.output_shape[0] for r in s.layers()] == [1, 2, 11, 12]


def test_stochastic_depth_grows_with_the_block_index() -> None:
    # torchvision: sd_prob = stochastic_depth_prob * stage_block_id / (total_stage_blocks - 1).
    for name, prob, total in (("convnext_tiny", 0.1, 18), ("convnext_base", 0.5, 36)):
        rates = [n.opts["rate"] for n in summarize(name).nodes if n.kind.name == "stochastic_depth"]
        assert rates == [prob * k / (total - 1.0) for k in range(total)]


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["convnext_tiny", "convnext_small"])
def test_stochastic_depth_rates_are_torchvisions(name: str) -> None:
    tv = _torchvision()
    import torch

    with torch.device("meta"):
        net = getattr(tv.models, name)()  # type: ignore[attr-defined]
    want = [m.p for m in net.modules() if type(m).__name__ == "StochasticDepth"]
    got = [n.opts["rate"] for n in summarize(name).nodes if n.kind.name == "stochastic_depth"]
    assert len(want) == {"convnext_tiny": 18, "convnext_small": 36}[name]
    assert got == want  # exactly: the same float operations in the same order


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "input: [3, 8, 8]\nlayers:\n  - {type: conv2d, filters: $index + 1, kernel: 1}\n",
            "m.yaml:3:5: $index is the repetition's number (0, 1, … within repeat:): it exists "
            "inside blocks only; pass a value to the block as a parameter",
        ),
        (
            "input: [3, 8, 8]\nblocks:\n  b: {params: {index: 0}, layers: [{type: relu}]}\n"
            "layers:\n  - {block: b}\n",
            "m.yaml:3:15: block 'b' declares the parameter index, but $index is the "
            "repetition's number (0, 1, … within repeat:) (computed, never declared); rename it",
        ),
        (
            "input: [3, 8, 8]\nblocks:\n  b: {layers: [{type: relu}]}\n"
            "layers:\n  - {block: b, repeat: 2, first: {index: 1}}\n",
            "m.yaml:5:5: block 'b' is given index, but $index is the repetition's number (0, 1, "
            "… within repeat:), computed for each instance; leave it out",
        ),
        (
            "params: {in_channels_1: 3}\ninput: [3, 8, 8]\nlayers:\n  - {type: relu}\n",
            "m.yaml:1:9: the model declares the parameter in_channels_1, but $in_channels_1 is "
            "a size of a block's input (computed, never declared); rename it",
        ),
    ],
)
def test_computed_names_errors(text: str, message: str) -> None:
    assert error(text) == message


def test_resnets_decide_their_shortcut() -> None:
    # No downsample parameter: each unit projects where stride or channels change, as torchvision.
    text = (ZOO_DIR / "resnet.yaml").read_text(encoding="utf-8")
    assert "downsample:" not in text and "downsample1" not in text
    for name, stages in (("resnet18", (2, 3, 4)), ("resnet50", (1, 2, 3, 4))):
        projected = sorted(
            r.name for r in summarize(name).layers() if r.name.endswith("downsample_conv")
        )
        assert projected == [f"layer{i}.0.downsample_conv" for i in stages]


DOC = Path(__file__).resolve().parent.parent / "docs" / "model-format.md"


def test_the_docs_family_example_builds_every_variant() -> None:
    examples = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    families = [text for text in examples if re.search(r"^variants:", text, re.M)]
    assert families
    for text in families:
        variants = declared_variants(text, "doc.yaml")
        assert len(variants) >= 2
        totals = set()
        for name in variants:
            s = summarize_text(text, "doc.yaml", variant=name)
            assert s.name == name
            totals.add(s.totals.params + s.totals.macs)
        assert len(totals) == len(variants)  # each variant is another model


def test_the_docs_name_every_function_and_block_input_name() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for name in FUNCTIONS:
        assert f"`{name}(" in doc, name
    for name in (*BLOCK_INPUT_NAMES, *REPEAT_NAMES, "in_channels_1", "in_height_1"):
        assert f"`${name}`" in doc, name
