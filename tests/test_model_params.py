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

from cnncli.errors import ModelError
from cnncli.model import Summary, load, summarize, summarize_text, zoo_names
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
            "m.yaml:1:9: the model declares the parameter in_channels, but $in_channels is the block input's size (computed, never declared); rename it",
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
            "m.yaml:3:15: block 'b' declares the parameter in_width, but $in_width is the block input's size (computed, never declared); rename it",
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
        "tiny-a? (zoo: plain, tiny-a, tiny-b, tiny-c)"
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
