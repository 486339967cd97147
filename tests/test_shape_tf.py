"""``cnncli shape --framework tf|keras`` against TensorFlow 2.21 and Keras 3.15, both with and
without oneDNN.

The oracle (tests/tf_oracle.py) runs each layer forward in two TensorFlow processes, one with
``TF_ENABLE_ONEDNN_OPTS=0`` and one with ``=1``, on a probe input, and reports the output shape,
an empty tensor, an error or a crash. For every layer cnncli answers, it also says whether the
output equals a NumPy computation of the same layer with cnncli's padding (transposed: crop)
before each axis, so the padding placement is checked, not only the size.

What must hold for each layer (:func:`judge`):

- cnncli gives a shape: TensorFlow with oneDNN gives the same shape, with cnncli's padding
  placement. Without oneDNN, TensorFlow gives the same too, unless cnncli says otherwise in
  ``Geometry.without_onednn``: then it refuses with the message cnncli quotes, or places the
  padding where cnncli says.
- cnncli refuses: TensorFlow raises, crashes or returns an empty tensor in both settings. The
  message says "returns an empty tensor here" exactly when TensorFlow without oneDNN does, and
  mentions oneDNN when the two settings disagree (for max pooling, whose oneDNN failure depends
  on the sizes in ways not modelled, it may mention it anyway).

Property tests draw several hundred layers (batches of :data:`BATCH`, sizes 1-40, kernels 1-7,
strides 1-4, dilations 1-3, every padding mode and explicit pairs, output padding 0-3); a
regression table keeps the cases issue #13 names, with their answers written out, so they are
checked without TensorFlow too.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from typing import Any

import pytest
from clirun import run  # tests/clirun.py
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cnncli import arithmetic as ar
from cnncli.errors import CnnCliError

#: Layers per Hypothesis example: each example is one round trip through both oracles.
BATCH = 10

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _tensorflow_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "keras"))


@pytest.fixture(scope="module")
def oracle() -> Iterator[Any]:
    """Both TensorFlow processes, started once for the module (TensorFlow takes seconds to load)."""
    if not _tensorflow_installed():
        pytest.skip("TensorFlow 2.21 and Keras 3 are not installed (pip install -e '.[test]')")
    from tf_oracle import Oracle  # tests/tf_oracle.py

    found = Oracle()
    yield found
    found.close()


# ------------------------------------------------------------------------------------------------
# cnncli's answer and the judgement
# ------------------------------------------------------------------------------------------------


def ours(case: dict[str, Any]) -> ar.Geometry | str:
    """cnncli's geometry of the case, or its refusal message."""
    op = case["op"]
    try:
        spec = ar.make_spec(
            case["size"],
            case["kernel"],
            stride=case["stride"],
            dilation=case["dilation"],
            padding=case["padding"],
            op="conv" if op in ("depthwise", "separable") else op,
            framework=case["api"],
            output_padding=case["output_padding"],
            depthwise=op in ("depthwise", "separable"),
        )
        return ar.resolve(spec)
    except CnnCliError as err:
        return str(err)


def with_claims(case: dict[str, Any], geom: ar.Geometry | str) -> dict[str, Any]:
    """The case with cnncli's padding to check (and its padding without oneDNN, if another)."""
    claims: dict[str, Any] = {"claim": None, "claim_without_onednn": None}
    if isinstance(geom, ar.Geometry):
        claims["claim"] = {"padding": [list(p) for p in geom.padding]}
        plain = geom.without_onednn
        if plain is not None and plain.padding is not None:
            claims["claim_without_onednn"] = {"padding": [list(p) for p in plain.padding]}
    return {**case, **claims}


def _kind(answer: dict[str, Any]) -> str:
    if "crash" in answer:
        return "crash"
    if "error" in answer:
        return "error"
    return "empty" if 0 in answer["shape"] else "shape"


def _same_answer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("shape", "placement")
    return _kind(a) == _kind(b) and all(a.get(k) == b.get(k) for k in keys)


def _judge_refusal(
    case: dict[str, Any], message: str, off: dict[str, Any], on: dict[str, Any]
) -> str | None:
    plain, onednn = _kind(off), _kind(on)
    if plain == "shape":
        return f"cnncli refuses; TensorFlow without oneDNN gives {off['shape']}"
    if onednn == "shape" and plain != "empty":
        return f"cnncli refuses; TensorFlow with oneDNN gives {on['shape']}"
    if (plain == "empty") != ("returns an empty tensor here" in message):
        return f"the message {'misses' if plain == 'empty' else 'claims'} TensorFlow's empty tensor"
    differ = not _same_answer(off, on)
    if differ and "oneDNN" not in message:
        return f"TensorFlow's answer depends on oneDNN ({plain} / {onednn}); the message is silent"
    if not differ and "oneDNN" in message and case["op"] != "maxpool":
        return "the message mentions oneDNN, but TensorFlow answers the same without it"
    return None


def _judge_geometry(geom: ar.Geometry, off: dict[str, Any], on: dict[str, Any]) -> str | None:
    shape = list(geom.output_size)
    if _kind(on) != "shape" or on["shape"] != shape:
        return f"cnncli gives {shape}; TensorFlow with oneDNN: {on}"
    if on.get("placement") is not True:
        return f"TensorFlow with oneDNN does not pad (crop) where cnncli says: {geom.padding}"
    plain = geom.without_onednn
    if plain is None:
        return None if _same_answer(off, on) else f"without oneDNN TensorFlow answers {off}"
    if plain.refusal is not None:
        if "error" not in off or plain.refusal not in off["error"]:
            return (
                f"cnncli says TensorFlow without oneDNN refuses ({plain.refusal}); it answers {off}"
            )
        return None
    if _kind(off) != "shape" or off["shape"] != shape or off.get("placement") is not True:
        return f"without oneDNN cnncli says padding {plain.padding}; TensorFlow answers {off}"
    return None


def judge(case: dict[str, Any], oracle: Any, events: bool = False) -> str | None:
    """None when cnncli agrees with TensorFlow on the case, else what differs. With
    ``events``, what kind of answer it was goes to Hypothesis's statistics."""
    geom = ours(case)
    off, on = oracle.ask(with_claims(case, geom))
    what = f"{case['api']} {case['op']}: " + (
        "refused" + (" (oneDNN in the message)" if "oneDNN" in geom else "")
        if isinstance(geom, str)
        else "a shape" + (", oneDNN-dependent" if geom.without_onednn else "")
    )
    if events:
        event(what)
    if isinstance(geom, str):
        return _judge_refusal(case, geom, off, on)
    return _judge_geometry(geom, off, on)


def check_all(cases: list[dict[str, Any]], oracle: Any, events: bool = False) -> None:
    """Every case agrees with TensorFlow; else one line per case that does not."""
    problems = [(case, why) for case in cases if (why := judge(case, oracle, events)) is not None]
    assert not problems, "\n".join(f"{json.dumps(c)}: {why}" for c, why in problems)


# ------------------------------------------------------------------------------------------------
# Random layers
# ------------------------------------------------------------------------------------------------

_DEPTHWISE: tuple[str, ...] = ("depthwise", "separable")


_OPS = ("conv", "convtranspose", "maxpool", "avgpool")


@st.composite
def layers(draw: Any, apis: tuple[str, ...], ops: tuple[str, ...] = _OPS) -> dict[str, Any]:
    """One random layer the oracle can build: an op, 1-3 axes with their own values each."""
    api = draw(st.sampled_from(apis))
    op = draw(st.sampled_from(ops + _DEPTHWISE if api == "keras" and ops == _OPS else ops))
    ndim = draw(st.integers(1, 2 if op in _DEPTHWISE else 3))
    # A 3-D transposed convolution of 40³ with stride 4 is 10⁸ outputs: too slow to check.
    biggest = 12 if (op == "convtranspose" and ndim == 3) else 40

    def axes(lo: int, hi: int) -> list[int]:
        return [draw(st.integers(lo, hi)) for _ in range(ndim)]

    pool = op in ("maxpool", "avgpool")
    # valid and same twice as often: the other modes are mostly refusals outside tf.nn.conv2d.
    modes = ["valid", "same", "valid", "same", "causal", "full", "explicit"]
    padding: Any = draw(st.sampled_from(modes))
    if padding == "explicit":
        padding = [[draw(st.integers(0, 4)), draw(st.integers(0, 4))] for _ in range(ndim)]
    stride = axes(1, 4)
    # Undilated half the time: Keras refuses stride > 1 with dilation > 1 in Conv layers.
    dilated = not pool and draw(st.booleans())
    output_padding = None
    if op == "convtranspose":
        # None, within the stride (what Keras takes), or anything 0-3 (what tf.nn may take).
        kind = draw(st.sampled_from(["none", "within", "any"]))
        if kind == "within":
            output_padding = [draw(st.integers(0, s - 1)) for s in stride]
        elif kind == "any":
            output_padding = axes(0, 3)
    return {
        "api": api,
        "op": op,
        "size": axes(1, biggest),
        "kernel": axes(1, 7),
        "stride": stride,
        # tf.nn and Keras have no dilated pooling: make_spec refuses it up front.
        "dilation": axes(1, 3) if dilated else [1] * ndim,
        "padding": padding,
        "output_padding": output_padding,
    }


@pytest.mark.oracle
@SETTINGS
@given(st.lists(layers(("tf",)), min_size=BATCH, max_size=BATCH))
def test_tf_ops_agree(oracle: Any, cases: list[dict[str, Any]]) -> None:
    check_all(cases, oracle, events=True)


@pytest.mark.oracle
@SETTINGS
@given(st.lists(layers(("keras",)), min_size=BATCH, max_size=BATCH))
def test_keras_layers_agree(oracle: Any, cases: list[dict[str, Any]]) -> None:
    check_all(cases, oracle, events=True)


@pytest.mark.oracle
@settings(SETTINGS, max_examples=30)
@given(st.lists(layers(("tf", "keras"), ("convtranspose",)), min_size=BATCH, max_size=BATCH))
def test_transposed_convolutions_agree(oracle: Any, cases: list[dict[str, Any]]) -> None:
    # The most intricate rules (output length, which lengths TensorFlow takes, where it crops)
    # get a test of their own, so that they are not a sixth of a mixed sample.
    check_all(cases, oracle, events=True)


# ------------------------------------------------------------------------------------------------
# The cases issue #13 names, with their answers written out (checked against TensorFlow above)
# ------------------------------------------------------------------------------------------------


def layer(
    api: str,
    op: str,
    size: list[int],
    kernel: int | list[int],
    *,
    stride: int = 1,
    dilation: int = 1,
    padding: Any = "valid",
    output_padding: list[int] | None = None,
) -> dict[str, Any]:
    """A case as the oracle takes it, one value broadcast to every axis."""
    ndim = len(size)
    kernels = kernel if isinstance(kernel, list) else [kernel] * ndim
    return {
        "api": api,
        "op": op,
        "size": size,
        "kernel": kernels,
        "stride": [stride] * ndim,
        "dilation": [dilation] * ndim,
        "padding": padding,
        "output_padding": output_padding,
    }


#: (case, what cnncli answers): a refusal's words, or output, padding (transposed: crop),
#: output padding, and what TensorFlow does without oneDNN where that differs.
RECORDED: list[tuple[dict[str, Any], dict[str, Any]]] = [
    # Keras Conv*Transpose, same, output_padding: Keras crops ⌊max(2⌊k'/2⌋ − op, 0)/2⌋ before.
    (
        layer("keras", "convtranspose", [4], 3, stride=2, padding="same", output_padding=[1]),
        {"output": [8], "padding": [[0, 1]], "output_padding": [0]},
    ),
    (
        layer("keras", "convtranspose", [4, 5], 4, stride=2, padding="same", output_padding=[1, 1]),
        {"output": [7, 9], "padding": [[1, 2], [1, 2]], "output_padding": [0, 0]},
    ),
    (
        layer("keras", "convtranspose", [13], 6, stride=4, padding="same", output_padding=[1]),
        {"output": [49], "padding": [[2, 3]], "output_padding": [0]},
    ),
    # ... and an even effective kernel with same and output_padding 0: the output Keras asks
    # for, (n−1)·s, is not one TensorFlow's SAME convolution maps back to n.
    (
        layer("keras", "convtranspose", [4], 4, stride=2, padding="same", output_padding=[0]),
        {"refused": "Size of out_backprop doesn't match computed"},
    ),
    # An output length of 0 on one axis: oneDNN returns an empty tensor without checking the
    # lengths, so the size mismatch on another axis is refused only without it (found by
    # HYPOTHESIS_PROFILE=explore).
    (
        layer(
            "tf", "convtranspose", [1, 1, 1], [1, 1, 2], padding="same", output_padding=[0, 1, 0]
        ),
        {"refused": "doesn't match computed\"; with oneDNN it returns an empty tensor instead"},
    ),
    # tf.nn.conv2d_transpose applies explicit padding; conv1d/conv3d_transpose take none.
    (
        layer("tf", "convtranspose", [4, 4], 3, stride=2, padding=[[1, 1], [0, 2]]),
        {"output": [7, 7], "padding": [[1, 1], [0, 2]], "output_padding": [0, 0]},
    ),
    (
        layer("tf", "convtranspose", [9], 3, padding=[[1, 1]]),
        {"refused": "tf.nn.conv1d_transpose takes padding 'VALID' or 'SAME' only"},
    ),
    (
        layer("tf", "convtranspose", [4, 4, 4], 3, stride=2, padding=[[1, 1]] * 3),
        {"refused": "tf.nn.conv3d_transpose takes padding 'VALID' or 'SAME' only"},
    ),
    # Stride > 1 with dilation > 1: tf.nn.conv1d/conv2d take it, Keras Conv refuses it,
    # Keras DepthwiseConv runs it (stride 1, then every s-th output).
    (
        layer("tf", "conv", [9], 3, stride=2, dilation=2),
        {"output": [3], "padding": [[0, 0]]},
    ),
    (
        layer("tf", "conv", [9, 9], 3, stride=2, dilation=2, padding="same"),
        {"output": [5, 5], "padding": [[2, 2], [2, 2]]},
    ),
    (
        layer("keras", "conv", [9], 3, stride=2, dilation=2),
        {"refused": "Keras refuses stride > 1 together with dilation > 1 in Conv1D"},
    ),
    (
        layer("keras", "depthwise", [9, 9], 3, stride=2, dilation=2, padding="same"),
        {"output": [5, 5], "padding": [[2, 2], [2, 2]]},
    ),
    # tf.nn.max_pool refuses explicit padding as large as the window.
    (
        layer("tf", "maxpool", [9, 9], 3, stride=2, padding=[[3, 1], [1, 1]]),
        {"refused": "needs to be smaller than the window size 3"},
    ),
    (
        layer("tf", "maxpool", [9, 9], 3, stride=2, padding=[[2, 1], [1, 1]]),
        {"output": [5, 5], "padding": [[2, 1], [1, 1]]},
    ),
    # Explicit padding where tf.nn takes none; causal, which tf.nn does not have.
    (
        layer("tf", "conv", [7], 3, padding=[[1, 1]]),
        {"refused": "tf.nn.conv1d takes padding 'VALID' or 'SAME' only"},
    ),
    (
        layer("tf", "conv", [7, 7, 7], 3, padding=[[1, 1]] * 3),
        {"refused": "tf.nn.conv3d takes padding 'VALID' or 'SAME' only"},
    ),
    (
        layer("tf", "maxpool", [7, 7, 7], 3, stride=1, padding=[[1, 1]] * 3),
        {"refused": "tf.nn.max_pool3d takes padding 'VALID' or 'SAME' only"},
    ),
    (
        layer("tf", "conv", [7, 7, 7], 3, padding="full"),
        {"refused": "tf.nn.conv3d takes padding 'VALID' or 'SAME' only, not 'full'"},
    ),
    (
        layer("tf", "conv", [7, 7], 3, padding="full"),
        {"output": [9, 9], "padding": [[2, 2], [2, 2]]},
    ),
    (layer("tf", "conv", [10], 3, padding="causal"), {"refused": "tf.nn.conv1d has no causal"}),
    (
        layer("keras", "conv", [10], 3, dilation=2, padding="causal"),
        {"output": [10], "padding": [[4, 0]]},
    ),
    # Where TensorFlow's CPU answer depends on oneDNN: dilated transposed convolution and
    # tf.nn.conv3d run only with it ...
    (
        layer("tf", "convtranspose", [4, 4], 3, dilation=2),
        {
            "output": [8, 8],
            "padding": [[0, 0], [0, 0]],
            "output_padding": [0, 0],
            "without": "Current CPU implementations do not yet support dilation rates larger than 1",
        },
    ),
    (
        layer("tf", "conv", [9, 9, 9], 3, stride=2, dilation=2),
        {
            "output": [3, 3, 3],
            "padding": [[0, 0]] * 3,
            "without": "CPU implementation of Conv3D currently only supports dilated rates of 1",
        },
    ),
    # ... while Keras's Conv3D runs a dilated convolution without it (tf.nn.convolution).
    (
        layer("keras", "conv", [9, 9, 9], 3, dilation=2, padding="same"),
        {"output": [9, 9, 9], "padding": [[2, 2]] * 3},
    ),
    # Keras's DepthwiseConv2D with unequal strides runs only with oneDNN.
    (
        layer("keras", "depthwise", [9, 9], 3, padding="same") | {"stride": [1, 2]},
        {
            "output": [9, 5],
            "padding": [[1, 1], [1, 1]],
            "without": "only supports equal length strides in the row and column dimensions",
        },
    ),
    # A VALID window one past the input: an empty tensor without oneDNN, the input's shape with.
    (
        layer("tf", "conv", [3, 3], 4),
        {
            "refused": "returns an empty tensor here, and with oneDNN returns a tensor of the input's"
        },
    ),
    (layer("tf", "conv", [3, 3], 5), {"refused": "Computed output size would be negative"}),
    (layer("tf", "avgpool", [3], 4, stride=1), {"refused": "tf.nn.avg_pool1d returns an empty"}),
    (
        layer("keras", "maxpool", [3], 4, stride=1),
        {"refused": "returns an empty tensor here, and with oneDNN may fail or kill the process"},
    ),
    # The 3-D kernels without oneDNN do not clip a negative SAME padding (kernel < stride).
    (
        layer("tf", "maxpool", [8, 8, 8], 1, stride=4, padding="same"),
        {"output": [2, 2, 2], "padding": [[0, 0]] * 3, "without": [[-1, -2]] * 3},
    ),
    (
        layer("keras", "conv", [8, 9, 10], 1, stride=4, padding="same"),
        {"output": [2, 3, 3], "padding": [[0, 0]] * 3, "without": [[-1, -2], [0, 0], [0, -1]]},
    ),
]


def _recorded_id(item: tuple[dict[str, Any], dict[str, Any]]) -> str:
    case = item[0]
    return f"{case['api']}-{case['op']}-{'x'.join(map(str, case['size']))}"


@pytest.mark.parametrize(("case", "expected"), RECORDED, ids=[_recorded_id(r) for r in RECORDED])
def test_recorded_answers(case: dict[str, Any], expected: dict[str, Any]) -> None:
    geom = ours(case)
    if "refused" in expected:
        assert isinstance(geom, str), geom
        assert expected["refused"] in geom
        return
    assert isinstance(geom, ar.Geometry), geom
    assert [list(geom.output_size), [list(p) for p in geom.padding]] == [
        expected["output"],
        expected["padding"],
    ]
    if "output_padding" in expected:
        assert [a.output_padding for a in geom.axes] == expected["output_padding"]
    without = expected.get("without")
    plain = geom.without_onednn
    if without is None:
        assert plain is None
    elif isinstance(without, str):
        assert plain is not None and plain.refusal is not None and without in plain.refusal
    else:
        assert plain is not None and plain.padding == tuple(tuple(p) for p in without)


@pytest.mark.oracle
def test_recorded_cases_agree_with_tensorflow(oracle: Any) -> None:
    check_all([case for case, _ in RECORDED], oracle)


# ------------------------------------------------------------------------------------------------
# What the command prints: the oneDNN answer in the panel and in JSON, refusals on one line
# ------------------------------------------------------------------------------------------------


def test_json_gives_both_tensorflow_answers_where_they_differ(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(
        ["shape", "9", "9", "9", "-k", "3", "-s", "2", "-d", "2", "-f", "tf", "--json"], capsys
    )
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["onednn"] == {
        "with_onednn": {"output_shape": [3, 3, 3], "padding": [[0, 0]] * 3},
        "without_onednn": {
            "refused": "CPU implementation of Conv3D currently only supports dilated rates of 1"
        },
    }
    code, out, _ = run(
        [
            "shape",
            "8",
            "8",
            "8",
            "-k",
            "1",
            "-s",
            "4",
            "-p",
            "same",
            "--op",
            "avgpool",
            "-f",
            "keras",
            "--json",
        ],
        capsys,
    )
    assert code == 0
    assert json.loads(out)["onednn"]["without_onednn"] == {
        "output_shape": [2, 2, 2],
        "padding": [[-1, -2]] * 3,
    }


def test_json_onednn_is_null_where_tensorflow_agrees_and_absent_for_torch(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(["shape", "28", "28", "-k", "3", "-f", "keras", "--json"], capsys)
    assert code == 0 and json.loads(out)["onednn"] is None
    code, out, _ = run(["shape", "28", "28", "-k", "3", "--json"], capsys)
    assert code == 0 and "onednn" not in json.loads(out)


def test_panel_says_what_tensorflow_does_without_onednn(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        ["shape", "4", "4", "-k", "3", "-d", "2", "--op", "convtranspose", "-f", "tf"], capsys
    )
    assert code == 0
    text = " ".join(line.strip("│ ") for line in out.splitlines())
    assert "TensorFlow's CPU answer depends on oneDNN (TF_ENABLE_ONEDNN_OPTS)" in text
    assert "Current CPU implementations do not yet support dilation rates larger than 1" in text


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["3", "3", "-k", "4", "-f", "tf"],
            "tf.nn.conv2d returns an empty tensor here, and with oneDNN",
        ),
        (
            ["9", "-k", "3", "-s", "2", "-d", "2", "-f", "keras"],
            "Keras refuses stride > 1 together",
        ),
        (
            [
                "4",
                "-k",
                "4",
                "-s",
                "2",
                "-p",
                "same",
                "--op",
                "convtranspose",
                "-f",
                "keras",
                "--output-padding",
                "0",
            ],
            "use --output-padding 1",
        ),
        (
            ["9", "9", "-k", "3", "-s", "2", "-p", "3:1,1:1", "--op", "maxpool", "-f", "tf"],
            "use --padding 2 or less",
        ),
    ],
)
def test_refusals_are_one_line_naming_the_fix(
    capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    code, out, err = run(["shape", *args], capsys)
    assert (code, out) == (1, "")
    assert err.startswith("cnncli: error: ") and err.count("\n") == 1
    assert words in err
