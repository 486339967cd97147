"""Hostile model files and options (issue #9): every one ends in one line and the right exit code,
within the work budget, and nothing from a model file reaches the terminal raw."""

from __future__ import annotations

import errno
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from clirun import run  # tests/clirun.py
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnncli import limits
from cnncli.errors import CnnCliError
from cnncli.model import ZOO_DIR, summarize_text
from cnncli.model.layers import LAYER_TYPES, OPTION_ALIASES

ESC = "\x1b"


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")
    # A CLI run's --limit stays in force until the next run: never let it reach other tests.
    limits.configure()
    yield
    limits.configure()


def _model(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _fails(args: list[str], capsys: pytest.CaptureFixture[str], code: int = 1) -> str:
    """Run, expect failure ``code`` with nothing on stdout and one line on stderr; the message."""
    got, out, err = run(args, capsys)
    assert got == code, err
    assert out == ""
    assert err.startswith("cnncli: error: ") and err.count("\n") == 1, err
    return err[len("cnncli: error: ") : -1]


# ---- 1. YAML bounded before the work ---------------------------------------------------------

BOMB = "".join(
    f"{a}: &{a} [{', '.join(['*' + b] * 9) if b else ', '.join(['lol'] * 9)}]\n"
    for a, b in zip("abcdefghi", ["", *"abcdefgh"], strict=True)
)


def test_alias_bomb_refused_by_the_node_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path, BOMB)
    assert len(BOMB) < 600  # 9^9 = 387 million strings once expanded
    start = time.perf_counter()
    message = _fails(["summary", str(model)], capsys)
    assert time.perf_counter() - start < 10  # refused on the way (the full work takes minutes)
    assert message == (
        f"{model}:7:8: the file has at least 1,270,483 YAML nodes (aliases counted each time "
        "they are used), over the yaml-nodes limit of 1,000,000; raise it with --limit "
        "yaml-nodes=1270483 if you mean it"
    )


def test_alias_bomb_inside_an_option_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # 8,300 nodes written, and one alias standing for 7,381 more: the alias counts as all of them.
    text = BOMB.split("e:")[0] + "input: [3, 8, 8]\nlayers:\n  - {type: relu, input: *d}\n"
    with limits.override(yaml_nodes=10_000), pytest.raises(limits.LimitError) as exc:
        summarize_text(text, "m.yaml")
    assert str(exc.value) == (
        "m.yaml:7:25: the file has at least 15,699 YAML nodes (aliases counted each time they "
        "are used), over the yaml-nodes limit of 10,000; raise it with --limit "
        "yaml-nodes=15699 if you mean it"
    )


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[" * 1000 + "]" * 1000, "1:61"),
        ("a:\n" + "".join(" " * i + "- b:\n" for i in range(1, 1000, 2)) + "x: 1\n", "31:62"),
        ("x: &x " + "[" * 50 + "]" * 50 + "\ny: [[[[[[[[[[[*x]]]]]]]]]]]\n", "2:15"),
    ],
    ids=["flow", "block", "alias"],
)
def test_deep_nesting_refused_before_recursion(
    text: str, where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path, text)
    message = _fails(["summary", str(model), "--limit", "nesting=60"], capsys)
    assert re.fullmatch(
        rf"{re.escape(str(model))}:{where}: lists and mappings nest 6[12] deep here \(aliases "
        r"included\), over the nesting limit of 60; raise it with --limit nesting=6[12] if you "
        "mean it",
        message,
    ), message


def test_default_nesting_limit_stops_1000_deep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path, "[" * 1000 + "]" * 1000)
    assert _fails(["summary", str(model)], capsys) == (
        f"{model}:1:101: lists and mappings nest 101 deep here (aliases included), over the "
        "nesting limit of 100; raise it with --limit nesting=101 if you mean it"
    )


def test_raised_nesting_limit_still_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Composition never recurses: 999 levels (more than Python's stack) end in the model's
    # own message; libyaml itself stops at 1,000.
    model = _model(tmp_path, "[" * 999 + "]" * 999)
    message = _fails(["summary", str(model), "--limit", "nesting=1000000"], capsys)
    assert message == (
        f"{model}: a model file is a mapping with input: and layers: (see docs/model-format.md)"
    )
    model = _model(tmp_path, "[" * 100_000 + "]" * 100_000)
    message = _fails(["summary", str(model), "--limit", "nesting=1000000"], capsys)
    assert message == (
        f"{model}:1:1001: YAML syntax error: exceeded maximum nesting depth (while increasing "
        "flow level at line 1)"
    )


def test_long_flow_list_refused_after_the_node_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path, "input: [1, 4, 4]\nlayers: [" + "0, " * 200_000 + "0]\n")
    start = time.perf_counter()
    message = _fails(["summary", str(model), "--limit", "yaml-nodes=20000"], capsys)
    assert time.perf_counter() - start < 10  # refused on the way (the full work takes minutes)
    assert message == (
        f"{model}:2:59986: the file has at least 20,001 YAML nodes (aliases counted each time "
        "they are used), over the yaml-nodes limit of 20,000; raise it with --limit "
        "yaml-nodes=20001 if you mean it"
    )


def test_file_bytes_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path, "input: [1, 4, 4]\nlayers: [{type: relu}]\n" + "#" * 2000)
    assert _fails(["summary", str(model), "--limit", "file-bytes=1000"], capsys) == (
        f"{model}: the file has 2,040 bytes, over the file-bytes limit of 1,000; raise it with "
        "--limit file-bytes=2040 if you mean it"
    )


def test_python_tags_still_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path, "input: !!python/object/apply:os.system [echo hi]\nlayers: []\n")
    assert _fails(["summary", str(model)], capsys) == (
        f"{model}:1:8: the YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is "
        "refused; model files hold plain data only (no object tags)"
    )


def test_merge_keys_still_work(capsys: pytest.CaptureFixture[str]) -> None:
    s = summarize_text(
        "input: [3, 8, 8]\nlayers:\n  - &c {type: conv2d, filters: 4, kernel: 3}\n"
        "  - {<<: *c, name: second, kernel: 1}\n",
        "m.yaml",
    )
    assert [(r.name, r.kernel) for r in s.layers()] == [("conv2d", (3, 3)), ("second", (1, 1))]


# ---- 2. expanded work bounded ----------------------------------------------------------------

EMPTY_BLOCKS = """input: [3, 8, 8]
blocks:
  a: {layers: []}
  b: {layers: [{block: a, repeat: 10000}]}
  c: {layers: [{block: b, repeat: 10000}]}
layers:
  - {block: c, repeat: 10000}
"""


def test_nested_empty_blocks_refused_by_block_calls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path, EMPTY_BLOCKS)
    start = time.perf_counter()
    message = _fails(["summary", str(model)], capsys)
    assert time.perf_counter() - start < 10  # refused on the way (the full work takes minutes)
    assert message == (
        f"{model}:4:16: block 'a' repeated 10,000 times brings the model to at least 110,000 "
        "block instances, over the block-calls limit of 100,000; raise it with --limit "
        "block-calls=110000 if you mean it"
    )


def test_switched_off_calls_count_too() -> None:
    text = (
        "input: [3, 8, 8]\nblocks:\n  a: {layers: [{type: relu}]}\n"
        "  b: {layers: [" + ", ".join(["{block: a, if: false}"] * 50) + "]}\n"
        "layers:\n  - {block: b, repeat: 100}\n"
    )
    with limits.override(block_calls=1000), pytest.raises(limits.LimitError) as exc:
        summarize_text(text, "m.yaml")
    assert str(exc.value).startswith("m.yaml:4:")
    assert "over the block-calls limit of 1,000" in str(exc.value)


def test_layers_limit_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert _fails(["summary", "lenet5", "--limit", "layers=5"], capsys).endswith(
        "the model expands to at least 6 layers, over the layers limit of 5; raise it with "
        "--limit layers=6 if you mean it"
    )


def test_blocks_calling_blocks_too_deep() -> None:
    chain = "".join(f"  b{i}: {{layers: [{{block: b{i + 1}}}]}}\n" for i in range(30))
    text = f"input: [3, 8, 8]\nblocks:\n{chain}  b30: {{layers: [{{type: relu}}]}}\n"
    text += "layers:\n  - {block: b0}\n"
    with limits.override(nesting=10), pytest.raises(limits.LimitError) as exc:
        summarize_text(text, "m.yaml")
    assert str(exc.value) == (
        "m.yaml:12:17: blocks call blocks 11 deep here (… -> b9 -> b10), over the nesting "
        "limit of 10; raise it with --limit nesting=11 if you mean it"
    )


def test_repeated_big_items_count_their_nodes() -> None:
    # One layer with a 5,000-item input list, repeated: the expansion costs every node again.
    names = ", ".join(["input"] * 5000)
    text = (
        f"input: [3, 8, 8]\nblocks:\n  a: {{layers: [{{type: add, input: [{names}]}}]}}\n"
        "layers:\n  - {block: a, repeat: 500}\n"
    )
    with pytest.raises(limits.LimitError) as exc:
        summarize_text(text, "m.yaml")
    assert re.fullmatch(
        r"m\.yaml:3:16: the layers expand to at least 1,00\d,\d+ YAML nodes through blocks and "
        r"repeat, over the yaml-nodes limit of 1,000,000; raise it with --limit "
        r"yaml-nodes=\d+ if you mean it",
        str(exc.value),
    ), str(exc.value)


def test_deep_expression_refused() -> None:
    text = (
        "input: [3, 8, 8]\nblocks:\n  a: {params: {c: 4}, layers: [{type: conv2d, kernel: 3, "
        f"filters: '{'(' * 5000}$c{')' * 5000}'}}]}}\nlayers:\n  - {{block: a}}\n"
    )
    with pytest.raises(limits.LimitError) as exc:
        summarize_text(text, "m.yaml")
    assert str(exc.value) == (
        "m.yaml:3:32: the expression '((((((((((((((((((((((((((((((((((((((((((((((((((((((((((("
        "…' has 5,000 parentheses and signs, over the nesting limit of 100; raise it with "
        "--limit nesting=5000 if you mean it"
    )


# ---- 3. wrong types --------------------------------------------------------------------------

SIZES = "a whole number ≥ 1 or a list of 1 to 3 of them, e.g. 3 or [3, 3]"


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("{type: conv2d, filters: 4, kernel: 3.5}", f"3:5: kernel must be {SIZES}, got 3.5"),
        ("{type: conv2d, filters: 4, kernel: .nan}", f"3:5: kernel must be {SIZES}, got nan"),
        (
            "{type: conv2d, filters: .inf, kernel: 3}",
            "3:5: filters must be a whole number ≥ 1, got inf",
        ),
        ("{type: upsample, scale: 0.5}", f"3:5: scale must be {SIZES}, got 0.5"),
        ("{type: maxpool2d, pool_size: [2, 2.0]}", f"3:5: pool_size must be {SIZES}, got [2, 2.0]"),
        ("{type: dropout, rate: .nan}", "3:5: rate must be a number from 0 to below 1, got nan"),
        ("{type: batchnorm, affine: 1}", "3:5: affine must be true or false, got 1"),
        ("{type: relu, if: [a]}", "3:5: if must be true, false or a number (0 is off), got ['a']"),
        (
            "{type: conv2d, filters: 4, kernel: 3, padding: {a: 1}}",
            "3:5: padding must be a whole number ≥ 0, a list like [1, 2] or [[0, 1], [1, 0]], or "
            "same/valid/full, got {'a': 1}",
        ),
        (
            "{type: conv2d, filters: " + "9" * 5000 + ", kernel: 3}",
            "3:29: the number 99999999999999999999999… has 5,000 digits; sizes in a model file "
            "are whole numbers below 2**62",
        ),
        (
            "{type: conv2d, filters: " + "9" * 4000 + ", kernel: 3}",
            "3:5: filters 999999999999…(4,000 digits) is absurdly large; use a realistic size",
        ),
    ],
    ids=[
        "float-kernel",
        "nan",
        "inf",
        "float-scale",
        "float-in-list",
        "nan-rate",
        "int-bool",
        "list-if",
        "dict-padding",
        "int-over-4300-digits",
        "int-4000-digits",
    ],
)
def test_wrong_types_name_key_value_and_line(
    layer: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path, f"input: [3, 8, 8]\nlayers:\n  - {layer}\n")
    assert _fails(["summary", str(model)], capsys) == f"{model}:{message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "input: [3, 8, 8]\nblocks:\n  a: {layers: [{type: relu}]}\nlayers:\n  - {block: [a]}\n",
            "5:5: block must name a block defined under blocks:, got ['a']",
        ),
        (
            "input: [3, 8, 8]\nblocks:\n  a: {layers: [{type: relu}], output: [x]}\n"
            "layers:\n  - {block: a}\n",
            "3:6: output of block 'a' must name one of its layers, got ['x']",
        ),
        (
            "params: {c: 4.5}\ninput: [3, 8, 8]\nblocks:\n  a: {layers: [{type: relu}]}\n"
            "layers:\n  - {block: a, repeat: $c * 3}\n",
            "6:5: repeat must be a whole number, got 13.5 (= $c * 3; use round(), floor() or "
            "ceil())",
        ),
        (
            "name: [a]\ninput: [3, 8, 8]\nlayers: [{type: relu}]\n",
            "1:1: name must be text, got ['a']",
        ),
        (
            "framework: [a]\ninput: [3, 8, 8]\nlayers: [{type: relu}]\n",
            "1:1: framework ['a'] is not known; use torch, keras or tf",
        ),
        (
            "input: [3, 8, 8]\n? [a]\n: 1\nlayers: [{type: relu}]\n",
            "2:3: mapping keys must be plain words",
        ),
        ("a: 1\n---\nb: 2\n", "2:1: a model file holds one YAML document; remove the second '---'"),
        (
            "input: &a [3, *a]\nlayers: [{type: relu}]\n",
            "1:15: the alias *a has no finished anchor before it (an alias cannot refer to what "
            "contains it)",
        ),
    ],
    ids=["block-list", "output-list", "float-param", "name", "framework", "key", "docs", "alias"],
)
def test_wrong_structure(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path, text)
    assert _fails(["summary", str(model)], capsys) == f"{model}:{message}"


# ---- 4. control characters never reach the terminal ------------------------------------------

EVIL = (
    'name: "e\\e]52;c;aGk=\\a\\e]0;t\\a\\e[2J\\u202e"\n'
    'description: "\\e[2J"\n'
    'inputs: {"i\\e[2J": [3, 8, 8]}\n'
    'blocks:\n  "b\\e]0;t\\a": {layers: [{type: relu}]}\n'
    'layers:\n  - {block: "b\\e]0;t\\a", name: stage}\n'
)


@pytest.mark.parametrize(
    "args", [[], ["-c", "all"], ["--csv"], ["--markdown", "-c", "connected"], ["--json"]]
)
def test_control_characters_escaped(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path, EVIL)
    code, out, err = run(["summary", str(model), *args], capsys)
    assert code == 0, err
    assert ESC not in out and "\x07" not in out and "\u202e" not in out
    if "--json" in args:
        assert "e\\u001b]52;c;aGk=" in out
    elif "--csv" in args:
        assert "i\\x1b[2J" in out
    else:
        assert "e\\x1b]52;c;aGk=\\x07" in out  # shown, harmless
        assert "i\\x1b[2J" in out if args else "b\\x1b]0;t\\x07" in out


def test_control_characters_escaped_in_svg(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path, EVIL)
    svg = tmp_path / "m.svg"
    code, out, err = run(["summary", str(model), "--svg", str(svg)], capsys)
    assert code == 0, err
    text = svg.read_text()
    assert ESC not in text and "\x07" not in text and ESC not in out
    assert "e\\x1b]52;c;aGk=\\x07" in text.replace("&#160;", " ")


def test_control_characters_escaped_in_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path, 'input: [3, 8, 8]\nlayers:\n  - {type: "\\e]0;t\\a"}\n')
    assert _fails(["summary", str(model)], capsys) == (
        f"{model}:3:5: unknown layer type '\\x1b]0;t\\x07' (layer types: "
        f"{', '.join(sorted(LAYER_TYPES))}; see docs/model-format.md)"
    )


# ---- 5. --svg refused before any work --------------------------------------------------------


def test_svg_over_the_model_refused_even_with_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path, "input: [3, 8, 8]\nlayers: [{type: relu}]\n")
    before = model.read_text()
    assert _fails(["summary", str(model), "--svg", str(model), "--force"], capsys) == (
        f"{model}: is an input of this run; refusing to overwrite it, even with --force; "
        "choose another output name"
    )
    assert model.read_text() == before


def test_svg_to_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _fails(["summary", "lenet5", "--svg", str(tmp_path)], capsys) == (
        f"{tmp_path}: is a directory; give a file name"
    )


def test_svg_to_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "no" / "t.svg"
    assert _fails(["summary", "lenet5", "--svg", str(target)], capsys) == (
        f"{target}: the folder {target.parent} does not exist"
    )


def test_svg_to_a_pipe_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A device or FIFO must never be replaced by a picture (as root, a rename over /dev/null
    # would replace the device); a FIFO in tmp_path stands in for it.
    import os

    fifo = tmp_path / "p.svg"
    os.mkfifo(fifo)
    assert _fails(["summary", "lenet5", "--svg", str(fifo), "--force"], capsys) == (
        f"{fifo}: is a named pipe, not a regular file; give a file name"
    )
    assert fifo.is_fifo()


def test_svg_read_only_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cnncli import outputs

    def denied(parent: Path, name: str) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(outputs, "_temp_path", denied)
    target = tmp_path / "t.svg"
    assert _fails(["summary", "lenet5", "--svg", str(target)], capsys) == (
        f"{target}: cannot write (Permission denied)"
    )
    assert list(tmp_path.iterdir()) == []


def test_svg_under_proc(capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc")
    message = _fails(["summary", "lenet5", "--svg", "/proc/self/cnncli-test.svg"], capsys)
    assert message.startswith("/proc/self/cnncli-test.svg: ")


def test_svg_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cnncli import outputs

    def full(path: Path, text: str, make_dir: bool = False) -> None:
        def write(tmp: Path) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        outputs.atomic_write(path, write, make_dir)

    monkeypatch.setattr(outputs, "write_text", full)
    target = tmp_path / "t.svg"
    assert _fails(["summary", "lenet5", "--svg", str(target)], capsys) == (
        f"{target}: cannot write (No space left on device)"
    )
    assert list(tmp_path.iterdir()) == []


# ---- 6, 7. options ---------------------------------------------------------------------------


def test_columns_all_next_to_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert _fails(["summary", "lenet5", "--columns", "all,foo"], capsys, code=2) == (
        "unknown column 'foo' in --columns (columns: kernel, stride, input, rf, memory, "
        "connected, all)"
    )


def test_bad_limit_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert _fails(["summary", "lenet5", "--limit", "nesting=x"], capsys, code=2) == (
        "--limit 'nesting=x': give NAME=N with a whole number, e.g. --limit nesting=100"
    )


# ---- 8. fuzzing: only expected errors --------------------------------------------------------

ZOO_TEXTS = [p.read_text() for p in sorted(ZOO_DIR.glob("*.yaml"))]
LOW = {
    "yaml_nodes": 3000,
    "layers": 400,
    "block_calls": 200,
    "nesting": 20,
    "file_bytes": 50_000,
}


def _summarize_bounded(text: str) -> None:
    with limits.override(**LOW):
        try:
            summarize_text(text, "f.yaml")
        except CnnCliError as err:
            message = str(err)
            assert "\n" not in message, message
            assert "internal error" not in message


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.sampled_from(range(len(ZOO_TEXTS))),
    st.lists(
        st.tuples(
            st.floats(0, 1, exclude_max=True),
            st.sampled_from(["delete", "insert", "replace"]),
            st.sampled_from(list("[]{}:,-&*!'\"$#|>\n\t 0123456789.e") + ["\x1b", "<<", "~"]),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_fuzz_mutated_zoo_files(which: int, edits: list[tuple[float, str, str]]) -> None:
    text = ZOO_TEXTS[which]
    for where, op, piece in edits:
        i = int(where * len(text))
        if op == "delete":
            text = text[:i] + text[i + 1 :]
        elif op == "insert":
            text = text[:i] + piece + text[i:]
        else:
            text = text[:i] + piece + text[i + 1 :]
    _summarize_bounded(text)


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["relu", "conv2d", "same", "channels", "$c", "$c * 2", "input", "a", "b"]),
)
KEYS = st.sampled_from(
    [
        "type",
        "name",
        "input",
        "block",
        "repeat",
        "first",
        "if",
        "layers",
        "params",
        "output",
        "c",
        "trainable",
        *sorted({o for t in LAYER_TYPES.values() for o in t.options}),
        *sorted(OPTION_ALIASES),
    ]
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=20,
)
LAYER = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(LAYER_TYPES))},
    optional=dict.fromkeys(["name", "input", "if", "trainable", "kernel", "filters"], VALUES),
).flatmap(
    lambda base: st.dictionaries(
        st.sampled_from(sorted(LAYER_TYPES[base["type"]].options) or ["name"]),
        st.one_of(SCALARS, st.lists(st.integers(-3, 9), max_size=3)),
        max_size=4,
    ).map(lambda extra: {**base, **extra})
)
CALL = st.fixed_dictionaries(
    {"block": st.sampled_from(["a", "b"])},
    optional={"repeat": VALUES, "c": VALUES, "first": VALUES, "if": VALUES, "input": VALUES},
)
MODEL = st.fixed_dictionaries(
    {
        "input": st.one_of(st.lists(st.integers(1, 12), min_size=1, max_size=4), VALUES),
        "layers": st.lists(st.one_of(LAYER, CALL, VALUES), max_size=6),
    },
    optional={
        "blocks": st.fixed_dictionaries(
            {
                "a": st.fixed_dictionaries(
                    {"layers": st.lists(st.one_of(LAYER, CALL), max_size=3)},
                    optional={"params": st.dictionaries(st.just("c"), SCALARS), "output": VALUES},
                ),
                "b": st.fixed_dictionaries(
                    {"layers": st.lists(st.one_of(LAYER, CALL), max_size=3)}
                ),
            }
        ),
        "layout": st.sampled_from(["channels_first", "channels_last", "x"]),
        "framework": st.sampled_from(["torch", "keras", "tf", "x"]),
        "name": VALUES,
    },
)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(MODEL)
def test_fuzz_random_models(model: dict[str, object]) -> None:
    _summarize_bounded(yaml.safe_dump(model, allow_unicode=True))


@settings(max_examples=100, deadline=None, derandomize=True)
@given(VALUES)
def test_fuzz_random_structures(value: object) -> None:
    _summarize_bounded(yaml.safe_dump(value, allow_unicode=True))


def test_pure_python_parser_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without libyaml (a source install), PyYAML's own parser feeds the same composer.
    from cnncli.model import yaml_text

    text = (ZOO_DIR / "resnet.yaml").read_text()  # its first variant: resnet18
    fast = summarize_text(text, "r.yaml")
    monkeypatch.setattr(yaml_text, "_EventLoader", yaml.SafeLoader)
    slow = summarize_text(text, "r.yaml")
    assert slow.rows == fast.rows and slow.totals == fast.totals
    with limits.override(nesting=5), pytest.raises(limits.LimitError) as exc:
        summarize_text("[[[[[[[1]]]]]]]", "m.yaml")
    assert str(exc.value).startswith("m.yaml:1:6: lists and mappings nest 6 deep here")


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    which=st.sampled_from(range(len(ZOO_TEXTS))),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.binary(max_size=3)), max_size=4),
)
def test_fuzz_cli_mutated_bytes(
    which: int,
    edits: list[tuple[float, bytes]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = ZOO_TEXTS[which].encode()
    for where, piece in edits:
        i = int(where * len(data))
        data = data[:i] + piece + data[i + len(piece) :]
    model = tmp_path / "fuzz.yaml"
    model.write_bytes(data)
    args = ["summary", str(model), *[f"--limit={k.replace('_', '-')}={v}" for k, v in LOW.items()]]
    code, out, err = run(args, capsys)
    assert code in (0, 1, 2)
    assert "internal error" not in err and "Traceback" not in err
    if code:
        assert out == "" and err.count("\n") == 1 and err.startswith("cnncli: error: ")


@pytest.mark.parametrize("fmt", [[], ["--json"], ["--markdown"]])
def test_stdout_on_a_full_disk(fmt: list[str]) -> None:
    import subprocess
    import sys

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    root = Path(__file__).resolve().parent.parent
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "cnncli", "summary", "resnet50", *fmt],
            cwd=root,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr == (
        "cnncli: error: cannot write to standard output (No space left on device)\n"
    )


# ---- #11: every option has a type and a range ------------------------------------------------


def test_every_option_of_every_type_has_a_type_and_range() -> None:
    from cnncli.model.layers import option_type

    missing = [
        (t.name, o) for t in LAYER_TYPES.values() for o in t.options if not option_type(t, o)
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("{type: batchnorm, eps: 1e-6}", None),
        ("{type: batchnorm, eps: 0}", "eps must be a finite number > 0, e.g. 1e-5, got 0"),
        ("{type: batchnorm, epsilon: -1e-3}", "epsilon must be a finite number > 0, e.g. 1e-5, got -0.001"),
        ("{type: batchnorm, eps: abc}", "eps must be a finite number > 0, e.g. 1e-5, got 'abc'"),
        ("{type: batchnorm, eps: [1]}", "eps must be a finite number > 0, e.g. 1e-5, got [1]"),
        ("{type: batchnorm, momentum: xyz}", "momentum must be a number from 0 to 1, got 'xyz'"),
        ("{type: batchnorm, momentum: 1.5}", "momentum must be a number from 0 to 1, got 1.5"),
        ("{type: batchnorm, momentum: -0.1}", "momentum must be a number from 0 to 1, got -0.1"),
        ("{type: dropout, rate: 1}", "rate must be a number from 0 to below 1, got 1"),
        ("{type: dropout, p: -0.5}", "p must be a number from 0 to below 1, got -0.5"),
        ("{type: stochastic_depth, drop_path_rate: 1.0}", "drop_path_rate must be a number from 0 to below 1, got 1.0"),
        ("{type: conv2d, filters: 4, kernel: 3, groups: 0}", "groups must be a whole number ≥ 1, got 0"),
        ("{type: conv2d, filters: -4, kernel: 3}", "filters must be a whole number ≥ 1, got -4"),
        ("{type: conv2d, filters: 4, kernel: 0}", f"kernel must be {SIZES}, got 0"),
        ("{type: conv2d, filters: 4, kernel: 3, stride: [1, 0]}", f"stride must be {SIZES}, got [1, 0]"),
        ("{type: conv2d, filters: 4, kernel: 3, padding: -1}", "padding must be a whole number ≥ 0, a list like [1, 2] or [[0, 1], [1, 0]], or same/valid/full, got -1"),
        ("{type: leaky_relu, negative_slope: .inf}", "negative_slope must be a finite number, got inf"),
        ("{type: leaky_relu, alpha: -0.2}", None),
        ("{type: upsample, mode: cubic}", "mode must be nearest, linear, bilinear, bicubic or trilinear, got 'cubic'"),
        ("{type: split, chunks: 0}", "chunks must be a whole number ≥ 1, got 0"),
        ("{type: split, sizes: [0, 3]}", "sizes must be a list of channel counts ≥ 1, e.g. [58, 58], got [0, 3]"),
        ("{type: channel_shuffle, groups: 1.5}", "groups must be a whole number ≥ 1, got 1.5"),
        ("{type: layer_scale, init: .nan}", "init must be a finite number, got nan"),
        ("{type: rescaling, scale: '1/255'}", "scale must be a finite number or a list of them (one per channel), got '1/255'"),
        ("{type: upsample, scale: 0.5}", f"scale must be {SIZES}, got 0.5"),
        ("{type: batchnorm, scale: 2}", "scale must be true or false, got 2"),
        ("{type: normalization, mean: 0, variance: -1}", "variance must be a finite number ≥ 0 or a list of them (one per channel), got -1"),
        ("{type: cropping2d, cropping: -1}", "cropping must be a whole number ≥ 0, a list of them, or [before, after] pairs, e.g. [[0, 1], [0, 1]], got -1"),
        ("{type: reshape, shape: [0, -1]}", "shape must be a list of 1 to 4 sizes ≥ 1 without the batch (one may be -1), e.g. [1, 1, 32], got [0, -1]"),
        ("{type: permute, dims: 2}", "dims must be a list of axis numbers without the batch, e.g. [2, 1] (Keras) or [0, 2, 1] (PyTorch), got 2"),
        ("{type: mean, axes: [1.5]}", "axes must be an axis number, channels, or a list of them, e.g. [2, 3], got [1.5]"),
        ("{type: mean, dim: [2, 9]}", "layer 'mean' (mean): axes [2, 9] does not fit a shape of 3 axes without the batch; use axes 1 to 3 (0 is the batch) or -1 to -3"),
    ],
)  # fmt: skip
def test_option_values_have_a_range(
    layer: str, message: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path, f"input: [4, 6, 6]\nlayers:\n  - {layer}\n")
    if message is None:
        code, _, err = run(["summary", str(model)], capsys)
        assert code == 0 and err == ""
        return
    assert _fails(["summary", str(model)], capsys) == f"{model}:3:5: {message}"


@pytest.mark.parametrize(
    ("head", "momentum", "other", "mine", "warned"),
    [
        ("", 0.99, "Keras", "PyTorch", True),
        ("", 0.1, "", "", False),
        ("", 0.5, "", "", False),
        ("layout: channels_last\n", 0.1, "PyTorch", "Keras", True),
        ("layout: channels_last\n", 0.99, "", "", False),
        ("framework: tf\n", 0.01, "PyTorch", "Keras", True),
    ],
)
def test_momentum_in_the_other_convention_is_one_warning(
    head: str,
    momentum: float,
    other: str,
    mine: str,
    warned: bool,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bn = f"  - {{type: batchnorm, momentum: {momentum}}}\n"
    text = f"input: [4, 6, 6]\n{head}layers:\n{bn * 3}"
    model = _model(tmp_path, text)
    plain = _model(tmp_path, text.replace(f", momentum: {momentum}", ""), "plain.yaml")
    code, out, err = run(["summary", str(model), "--json"], capsys)
    assert code == 0
    _, plain_out, plain_err = run(["summary", str(plain), "--json"], capsys)
    assert plain_err == ""
    # Not a number changes: the same JSON apart from the file name.
    assert out.replace(str(model), "") == plain_out.replace(str(plain), "").replace(
        '"plain"', '"m"'
    )
    if not warned:
        assert err == ""
        return
    line = 3 + head.count("\n")
    fw = "torch" if not head else ("keras" if "channels_last" in head else "tf")
    name = "batch_normalization" if "channels_last" in head else "batchnorm"
    assert err == (
        f"cnncli: warning: {model}:{line}:5: layer '{name}' (batchnorm): momentum {momentum:g} "
        f"looks like {other}'s convention, but this is a {fw} model: PyTorch's momentum = 1 − "
        f"Keras's ({other}'s {momentum:g} is {mine}'s {1 - momentum:.6g}); the counts are the "
        "same either way (and 2 more layers)\n"
    )
