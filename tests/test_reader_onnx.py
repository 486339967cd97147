"""``cnncli summary model.onnx`` and the ``opaque`` layers every reader writes for operators cnncli
does not know.

The opaque tests use YAML models (the layer type belongs to the format, not to one reader).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from clirun import run  # tests/clirun.py


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # Deterministic Rich output: fixed width, no colour.
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")


# ------------------------------------------------------------------ opaque layers (any reader)

OPAQUE_MODEL = """\
input: [3, 32, 32]
layers:
  - {type: conv2d, name: stem, filters: 8, kernel: 3, padding: 1}
  - {type: opaque, name: nms, op: NonMaxSuppression, shape: [0, 3]}
  - {type: opaque, name: roi, op: RoiAlign, shape: [8, 7, 7], params: 10, input: [stem, nms]}
  - {type: opaque, name: nms2, op: NonMaxSuppression, shape: [0, 3]}
"""
#: stem: 3·3·3·8 + 8 weights; 8·32·32 outputs × 27 taps.
STEM_PARAMS, STEM_MACS = 224, 8 * 32 * 32 * 27


def _write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _rows(out: str) -> dict[str, list[str]]:
    """Table rows by layer name."""
    rows = {}
    for line in out.splitlines():
        if line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            rows[cells[0]] = cells
    return rows


def test_opaque_rows_say_not_counted_and_totals_say_incomplete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["summary", _write(tmp_path, OPAQUE_MODEL)], capsys)
    assert code == 0, err
    rows = _rows(out)
    assert rows["nms"][1:] == ["opaque: NonMaxSuppression", "(?, 3)", "0", "not counted"]
    assert rows["roi"][1:] == ["opaque: RoiAlign", "(8, 7, 7)", "10", "not counted"]
    assert rows["stem"][4] == f"{STEM_MACS:,}"
    assert f"Total params:          {STEM_PARAMS + 10:,}" in out
    assert f"MACs:                  {STEM_MACS:,} = 0.221 MMACs + not counted (incomplete)" in out
    assert (
        "Not counted:           NonMaxSuppression ×2, RoiAlign ×1: operators cnncli cannot "
        "count, their MACs are missing from the totals"
    ) in out


def test_opaque_json_null_not_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["summary", _write(tmp_path, OPAQUE_MODEL), "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["totals"]["not_counted"] == {"NonMaxSuppression": 2, "RoiAlign": 1}
    assert data["totals"]["macs"] == STEM_MACS
    assert data["totals"]["params"] == STEM_PARAMS + 10
    layers = {layer["name"]: layer for layer in data["layers"]}
    assert layers["nms"]["macs"] is None and layers["nms"]["flops"] is None
    assert layers["nms"]["op"] == "NonMaxSuppression"
    assert layers["nms"]["output_shape"] == [None, 3]
    assert layers["roi"]["inputs"] == ["stem", "nms"]
    assert layers["stem"]["op"] is None and layers["stem"]["macs"] == STEM_MACS
    assert data["outputs"] == {"nms2": [None, 3]}


def test_complete_model_has_empty_not_counted(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["summary", "lenet5", "--json", "--strict"], capsys)
    assert code == 0
    assert json.loads(out)["totals"]["not_counted"] == {}


def test_strict_refuses_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, OPAQUE_MODEL)
    code, out, err = run(["summary", path, "--strict"], capsys)
    assert code == 1
    assert out == ""
    assert err == (
        f"cnncli: error: {path}: the MACs of 3 layers cannot be counted (opaque: operators "
        "cnncli does not know or cannot express): NonMaxSuppression ×2, RoiAlign ×1\n"
    )


def test_opaque_csv_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, OPAQUE_MODEL)
    code, out, _ = run(["summary", path, "--csv"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[2].startswith("nms,opaque: NonMaxSuppression,,?x3,0,0,0,,")  # macs empty, not 0
    code, out, _ = run(["summary", path, "--markdown"], capsys)
    assert code == 0
    assert "| nms | opaque: NonMaxSuppression | (?, 3) | 0 | not counted |" in out
    assert "- Not counted: NonMaxSuppression ×2, RoiAlign ×1" in out


def test_block_sums_say_what_they_miss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = """\
input: [3, 32, 32]
blocks:
  head:
    layers:
      - {type: conv2d, filters: 8, kernel: 3, padding: 1}
      - {type: opaque, op: TopK, shape: [8, 5]}
layers:
  - {block: head, name: h}
"""
    code, out, err = run(["summary", _write(tmp_path, text), "--depth", "1"], capsys)
    assert code == 0, err
    assert _rows(out)["h"][1:] == ["[head]", "(8, 5)", "224", f"{STEM_MACS:,} (+1 not counted)"]


def test_counted_layer_cannot_read_unknown_sizes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = OPAQUE_MODEL + "  - {type: conv2d, filters: 4, kernel: 1, input: nms}\n"
    code, out, err = run(["summary", _write(tmp_path, text)], capsys)
    assert code == 1 and out == ""
    assert err.startswith("cnncli: error: ")
    assert (
        "layer 'conv2d' (conv2d): reads 'nms', whose sizes are known only when the model runs"
        in err
    )
    assert "make it opaque too" in err


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("{type: opaque, shape: [3]}", "opaque needs the option 'op'"),
        ("{type: opaque, op: X}", "opaque needs the option 'shape'"),
        ("{type: opaque, op: X, shape: [-1, 3]}", "shape must be a list of 1 to 5 sizes"),
        ("{type: opaque, op: X, shape: [3], params: -2}", "params must be a whole number ≥ 0"),
        ("{type: opaque, op: 7, shape: [3]}", "op must be the operator's name"),
    ],
)
def test_opaque_options_checked(
    layer: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = f"input: [3, 8, 8]\nlayers:\n  - {layer}\n"
    code, out, err = run(["summary", _write(tmp_path, text)], capsys)
    assert code == 1 and out == ""
    assert message in err and err.count("\n") == 1


# ------------------------------------------------------------------ ONNX: helpers


def _onnx() -> Any:
    return pytest.importorskip("onnx")


def _model(
    nodes: list[Any],
    inputs: dict[str, list[int | str]],
    outputs: list[str],
    inits: dict[str, Any] | None = None,
    opset: int = 17,
) -> Any:
    """A small ONNX model from nodes (``onnx.helper.make_node``), inputs (name → dims with the
    batch), output names and initializers (name → numpy array)."""
    _onnx()
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, d) for n, d in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(v, name=k) for k, v in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _save(model: Any, path: Path) -> Path:
    _onnx().save(model, path)
    return path


def _summary(path: Path, **options: Any) -> Any:
    from cnncli.model import summarize
    from cnncli.model.readers import ReadOptions

    return summarize(str(path), options=ReadOptions(**options))


def _ort_shapes(path: Path, tensors: list[str], batch: int = 1) -> dict[str, tuple[int, ...]]:
    """onnxruntime on zeros: the shape of every tensor asked for (batch included)."""
    onnx = _onnx()
    ort = pytest.importorskip("onnxruntime")
    np = pytest.importorskip("numpy")
    model = onnx.load(str(path))
    have = {o.name for o in model.graph.output}
    for name in tensors:
        if name not in have:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
            have.add(name)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    feeds = {}
    for i in session.get_inputs():
        dims = [batch if not isinstance(d, int) else d for d in i.shape]
        feeds[i.name] = np.zeros(dims, dtype=np.float32)
    values = session.run(tensors, feeds)
    return {name: tuple(v.shape) for name, v in zip(tensors, values, strict=True)}


def _check_shapes_with_ort(path: Path, batch: int = 1, **options: Any) -> Any:
    """Every layer's output shape against onnxruntime's (without the batch); the summary."""
    from cnncli.model.readers import ReadOptions
    from cnncli.model.readers.onnx_file import convert

    converted = convert(str(path), ReadOptions(**options))
    summary = _summary(path, **options)
    rows = {r.name: r for r in summary.layers()}
    assert set(converted.tensors) <= set(rows)
    shapes = _ort_shapes(path, sorted(set(converted.tensors.values())), batch)
    compared = 0
    for name, tensor in converted.tensors.items():
        row = rows[name]
        ours = row.output_shapes[0] if row.output_shapes else row.output_shape
        if row.op:  # opaque: ONNX's shape, the batch left out if it has one; 0 = known at run time
            theirs = shapes[tensor] if len(shapes[tensor]) == len(ours) else shapes[tensor][1:]
            assert all(o in (0, t) for o, t in zip(ours, theirs, strict=True)), (name, theirs)
            continue
        assert ours == shapes[tensor][1:], (name, tensor, ours, shapes[tensor])
        compared += 1
    assert compared, "nothing compared"
    _same_as_yaml(converted.read.data, summary)
    return summary


def _same_as_yaml(data: Any, summary: Any) -> None:
    """The reader's data is a model file: written out (JSON is YAML) and read back, it
    summarises to the same rows and totals."""
    from cnncli.model import summarize_text

    again = summarize_text(json.dumps(data), summary.source)
    assert again.totals == summary.totals
    assert [(r.name, r.type, r.output_shape, r.params, r.macs) for r in again.rows] == [
        (r.name, r.type, r.output_shape, r.params, r.macs) for r in summary.rows
    ]


# ------------------------------------------------------------------ ONNX: operators, one by one
# Each case is a small graph: cnncli's layer types for it, and every shape against
# onnxruntime on zeros.


def _w(*dims: int) -> Any:
    np = pytest.importorskip("numpy")
    return np.random.default_rng(0).standard_normal(dims).astype(np.float32)


def _i64(*values: int) -> Any:
    np = pytest.importorskip("numpy")
    return np.array(values, dtype=np.int64)


def _f32(*values: float) -> Any:
    np = pytest.importorskip("numpy")
    return np.array(values, dtype=np.float32)


def _n(op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> Any:
    from onnx import helper

    return helper.make_node(op, inputs, outputs, **attrs)


def _case_convs() -> tuple[Any, list[str]]:
    nodes = [
        _n("Conv", ["x", "w1"], ["a"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
        _n("Conv", ["a", "w2", "b2"], ["b"], kernel_shape=[2, 2], auto_pad="SAME_LOWER"),
        _n("Conv", ["b", "w3"], ["c"], group=8, pads=[1, 0, 2, 1], dilations=[2, 1]),
        _n(
            "ConvTranspose",
            ["c", "w4", "b4"],
            ["d"],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
            output_padding=[1, 0],
        ),
        _n("ConvTranspose", ["d", "w5"], ["e"], group=2, strides=[1, 2], kernel_shape=[3, 1]),
    ]
    inits = {
        "w1": _w(8, 3, 3, 3),
        "w2": _w(8, 8, 2, 2),
        "b2": _w(8),
        "w3": _w(8, 1, 3, 3),
        "w4": _w(8, 6, 3, 3),
        "b4": _w(6),
        "w5": _w(6, 2, 3, 1),
    }
    model = _model(nodes, {"x": [1, 3, 15, 15]}, ["e"], inits)
    return model, ["conv2d", "conv2d", "conv2d", "convtranspose2d", "convtranspose2d"]


def _case_conv_1d_3d() -> tuple[Any, list[str]]:
    nodes = [
        _n("Conv", ["x", "w1"], ["a"], dilations=[2], pads=[2, 2]),
        _n("Reshape", ["a", "s"], ["b"]),
        _n("Conv", ["b", "w2", "b2"], ["c"], strides=[1, 2, 2]),
    ]
    inits = {"w1": _w(4, 2, 3), "s": _i64(0, 1, 4, 8, 4), "w2": _w(3, 1, 1, 2, 2), "b2": _w(3)}
    model = _model(nodes, {"x": [1, 2, 32]}, ["c"], inits)
    return model, ["conv1d", "reshape", "conv3d"]


def _case_pools() -> tuple[Any, list[str]]:
    nodes = [
        _n("MaxPool", ["x"], ["a"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        _n("AveragePool", ["a"], ["b"], kernel_shape=[2, 2], pads=[0, 0, 1, 1], strides=[2, 2]),
        _n("MaxPool", ["b"], ["c"], kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 1, 1, 1]),
        _n("GlobalMaxPool", ["c"], ["d"]),
        _n("Flatten", ["d"], ["e"]),
    ]
    model = _model(nodes, {"x": [1, 4, 20, 20]}, ["e"])
    types = ["maxpool2d", "zeropad2d", "avgpool2d", "maxpool2d", "global_maxpool", "flatten"]
    return model, types


def _case_dense() -> tuple[Any, list[str]]:
    nodes = [
        _n("Flatten", ["x"], ["f"]),
        _n("Gemm", ["f", "w1", "b1"], ["a"]),  # transB = 0: weight (in, units)
        _n("MatMul", ["a", "w2"], ["m"]),
        _n("Add", ["m", "b2"], ["b"]),  # MatMul + bias: one dense layer
        _n("MatMul", ["b", "w3"], ["c"]),
        _n("Gemm", ["c", "w4"], ["d"], transB=1),
        _n("Softmax", ["d"], ["e"], axis=-1),
    ]
    inits = {
        "w1": _w(48, 10),
        "b1": _w(10),
        "w2": _w(10, 7),
        "b2": _w(7),
        "w3": _w(7, 5),
        "w4": _w(3, 5),
    }
    model = _model(nodes, {"x": [1, 3, 4, 4]}, ["e"], inits)
    return model, ["flatten", "dense", "dense", "dense", "dense", "softmax"]


def _case_activations() -> tuple[Any, list[str]]:
    nodes = [
        _n("Sigmoid", ["x"], ["s"]),
        _n("Mul", ["x", "s"], ["a"]),  # silu
        _n("HardSigmoid", ["a"], ["h"], alpha=1 / 6, beta=0.5),
        _n("Mul", ["h", "a"], ["b"]),  # hardswish
        _n("Clip", ["b", "zero", "six"], ["c"]),  # relu6
        _n("Clip", ["c", "zero"], ["d"]),  # relu
        _n("Clip", ["d", "minus", "one"], ["e"]),  # hardtanh: no layer type
        _n("LeakyRelu", ["e"], ["f"], alpha=0.2),
        _n("Tanh", ["f"], ["g"]),
        _n("Sigmoid", ["g"], ["s2"]),  # a gate read by two: not silu
        _n("Mul", ["g", "s2"], ["k"]),
        _n("Add", ["k", "s2"], ["l"]),
        _n("HardSwish", ["l"], ["m"]),
        _n("Identity", ["m"], ["n"]),
        _n("Softmax", ["n"], ["o"], axis=1),
    ]
    inits = {"zero": _f32(0)[0], "six": _f32(6)[0], "minus": _f32(-1)[0], "one": _f32(1)[0]}
    model = _model(nodes, {"x": [1, 4, 5, 5]}, ["o"], inits)
    types = [
        "silu",
        "hardswish",
        "relu6",
        "relu",
        "opaque",
        "leaky_relu",
        "tanh",
        "sigmoid",
        "multiply",
        "add",
        "hardswish",
        "identity",
        "softmax",
    ]
    return model, types


def _case_shapes() -> tuple[Any, list[str]]:
    nodes = [
        # ShuffleNet's channel shuffle: (N, 8, 4, 4) → (N, 2, 4, 4, 4) → swap → back.
        _n("Reshape", ["x", "s1"], ["a"]),
        _n("Transpose", ["a"], ["b"], perm=[0, 2, 1, 3, 4]),
        _n("Reshape", ["b", "s2"], ["c"]),
        _n("Split", ["c", "sizes"], ["c0", "c1"], axis=1),
        _n("Concat", ["c1", "c0", "c1"], ["d"], axis=1),
        _n("Pad", ["d", "pads"], ["e"], mode="constant"),
        _n("Unsqueeze", ["e", "ax"], ["f"]),
        _n("Squeeze", ["f", "ax"], ["g"]),
        _n("ReduceMean", ["g"], ["h"], axes=[1], keepdims=1),
        _n("ReduceMean", ["g"], ["i"], axes=[2, 3], keepdims=0),
        _n("Concat", ["g", "g"], ["j"], axis=2),  # along a size: no layer type
    ]
    inits = {
        "s1": _i64(0, 2, 4, 4, 4),
        "s2": _i64(-1, 8, 4, 4),
        "sizes": _i64(3, 5),
        "pads": _i64(0, 0, 1, 0, 0, 0, 2, 3),
        "ax": _i64(2),
    }
    model = _model(nodes, {"x": [1, 8, 4, 4]}, ["h", "i", "j"], inits, opset=13)
    types = [
        "reshape",
        "permute",
        "reshape",
        "split",
        "concat",
        "zeropad2d",
        "reshape",
        "reshape",
        "mean",
        "global_avgpool",
        "opaque",
    ]
    return model, types


def _case_resize_rescale() -> tuple[Any, list[str]]:
    nodes = [
        _n("Resize", ["x", "", "sc"], ["a"], mode="nearest"),
        _n("Resize", ["a", "", "", "sz"], ["b"], mode="linear"),
        _n("Resize", ["b", "", "sc2"], ["c"], mode="cubic"),
        _n("Sub", ["c", "mean"], ["d"]),
        _n("Div", ["d", "std"], ["e"]),
        _n("Mul", ["e", "gamma"], ["f"]),  # per channel, a float tensor of the file
        _n("Add", ["f", "three"], ["g"]),
        _n("Mul", ["g", "half"], ["h"]),
        _n("Dropout", ["h", "ratio"], ["k"]),
    ]
    inits = {
        "sc": _f32(1, 1, 2, 3),
        "sz": _i64(1, 4, 9, 11),
        "sc2": _f32(1, 1, 1.5, 0.5),
        "mean": _f32(0.5),
        "std": _f32(0.25),
        "gamma": _w(4, 1, 1),
        "three": _f32(3),
        "half": _f32(0.5),
        "ratio": _f32(0.2)[0],
    }
    model = _model(nodes, {"x": [1, 4, 3, 4]}, ["k"], inits)
    types = [
        "upsample",
        "upsample",
        "upsample",
        "rescaling",
        "rescaling",
        "layer_scale",
        "rescaling",
        "rescaling",
        "dropout",
    ]
    return model, types


def _case_slices() -> tuple[Any, list[str]]:
    nodes = [
        # torch.chunk as the TorchScript exporter writes it: Slices sharing one split.
        _n("Slice", ["x", "zero", "four", "one"], ["lo"]),
        _n("Slice", ["x", "four", "end", "one"], ["hi"]),
        _n("Slice", ["x", "two", "five", "one"], ["mid"]),  # another cut: its own split
        _n("Concat", ["hi", "lo", "mid"], ["c"], axis=1),
        _n("Slice", ["c", "crop_lo", "crop_hi", "hw"], ["d"]),  # a cropping of H and W
        _n("Slice", ["d", "zero", "end", "one"], ["e"]),  # everything: the identity
    ]
    inits = {
        "zero": _i64(0),
        "one": _i64(1),
        "two": _i64(2),
        "four": _i64(4),
        "five": _i64(5),
        "end": _i64(2**62),
        "crop_lo": _i64(1, 0),
        "crop_hi": _i64(-1, 5),
        "hw": _i64(2, 3),
    }
    model = _model(nodes, {"x": [1, 8, 6, 7]}, ["e"], inits, opset=13)
    return model, ["split", "split", "concat", "cropping2d", "identity"]


def _case_unknown_sizes() -> tuple[Any, list[str]]:
    """Layers after an operator whose output size depends on the data (NonZero) are opaque
    too: only ONNX knows their shapes."""
    nodes = [
        _n("Relu", ["x"], ["r"]),
        _n("NonZero", ["r"], ["nz"]),
        _n("Transpose", ["nz"], ["t"], perm=[1, 0]),
        _n("Cast", ["t"], ["f"], to=1),
        _n("Relu", ["f"], ["y"]),
    ]
    model = _model(nodes, {"x": [1, 2, 3, 3]}, ["y"], {}, opset=13)
    return model, ["relu", "opaque", "opaque", "opaque", "opaque"]


def _case_channels_last() -> tuple[Any, list[str]]:
    """ConvNeXt's block: permute to channels last, LayerNorm, Linear, GELU (as the TorchScript
    and the dynamo exporters write it), Linear, permute back, layer scale, residual."""
    nodes = [
        _n("Transpose", ["x"], ["p"], perm=[0, 2, 3, 1]),
        _n("LayerNormalization", ["p", "w_ln", "b_ln"], ["n"], axis=-1),
        _n("MatMul", ["n", "w1"], ["m1"]),
        _n("Add", ["b1", "m1"], ["l1"]),
        _n("Div", ["l1", "sqrt2"], ["d"]),  # GELU, TorchScript: x · (erf + 1), then · 0.5
        _n("Erf", ["d"], ["e"]),
        _n("Add", ["e", "one"], ["e1"]),
        _n("Mul", ["l1", "e1"], ["g0"]),
        _n("Mul", ["g0", "half"], ["g"]),
        _n("Div", ["g", "sqrt2"], ["d2"]),  # GELU, dynamo: (erf + 1) · 0.5, then · x
        _n("Erf", ["d2"], ["e2"]),
        _n("Add", ["e2", "one"], ["e3"]),
        _n("Mul", ["half", "e3"], ["h"]),
        _n("Mul", ["g", "h"], ["g2"]),
        _n("MatMul", ["g2", "w2"], ["m2"]),
        _n("Add", ["m2", "b2"], ["l2"]),
        _n("Transpose", ["l2"], ["q"], perm=[0, 3, 1, 2]),
        _n("Mul", ["gamma", "q"], ["s"]),
        _n("Add", ["s", "x"], ["r"]),
        _n("Transpose", ["r"], ["t"], perm=[0, 2, 3, 1]),  # channels last, then a layer
        _n("MaxPool", ["t"], ["y"], kernel_shape=[2, 2]),  # that needs them so: a permute row
    ]
    inits = {
        "w_ln": _w(4),
        "b_ln": _w(4),
        "w1": _w(4, 16),
        "b1": _w(16),
        "w2": _w(16, 4),
        "b2": _w(4),
        "gamma": _w(4, 1, 1),
        "sqrt2": _f32(2**0.5)[0],
        "one": _f32(1)[0],
        "half": _f32(0.5)[0],
    }
    model = _model(nodes, {"x": [1, 4, 6, 6]}, ["y"], inits)
    types = [
        "layernorm",
        "dense",
        "gelu",
        "gelu",
        "dense",
        "layer_scale",
        "add",
        "permute",
        "maxpool2d",
    ]
    return model, types


_CASES = {
    "channels_last": _case_channels_last,
    "slices": _case_slices,
    "unknown_sizes": _case_unknown_sizes,
    "convs": _case_convs,
    "conv_1d_3d": _case_conv_1d_3d,
    "pools": _case_pools,
    "dense": _case_dense,
    "activations": _case_activations,
    "shapes": _case_shapes,
    "resize_rescale": _case_resize_rescale,
}


@pytest.mark.oracle
@pytest.mark.parametrize("case", sorted(_CASES))
def test_operators_match_onnxruntime(case: str, tmp_path: Path) -> None:
    model, types = _CASES[case]()
    path = _save(model, tmp_path / f"{case}.onnx")
    summary = _check_shapes_with_ort(path)
    assert [r.type for r in summary.layers()] == types
    # Parameters: the weights (initializers named w*, b*, gamma), not scales, sizes or scalars.
    weights = [i for i in model.graph.initializer if i.name[0] in "wbg"]
    assert summary.totals.params == sum(_size(i.dims) for i in weights)


def _size(dims: Any) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


# ------------------------------------------------------------------ ONNX: real exports
# torchvision's ResNet-18, MobileNetV2 and EfficientNet-B0 and a small U-Net (transposed
# convolution, bilinear upsampling, padding computed from sizes, concat), exported with both of
# torch.onnx.export's exporters: TorchScript (opset 17) and dynamo (opset 18). Checked against
# onnxruntime on zeros (every layer's shape), against the PyTorch model itself (forward hooks:
# every convolution's and linear layer's output shape and MACs, the output, the parameters the
# file must hold) and, for the zoo's models, against the zoo entry at the same input size.

#: (model, input size, exporter, symbolic batch). TorchScript exports get a symbolic batch
#: (Shape → Gather → … chains in the U-Net); dynamo exports one of each.
EXPORTS = [
    ("resnet18", 64, "torchscript", True),
    ("resnet18", 64, "dynamo", True),
    ("mobilenet_v2", 64, "torchscript", True),
    ("mobilenet_v2", 64, "dynamo", False),
    ("efficientnet_b0", 64, "torchscript", True),
    ("efficientnet_b0", 64, "dynamo", False),
    ("unet", 62, "torchscript", True),
    ("unet", 62, "dynamo", True),
    ("convnext_tiny", 64, "torchscript", True),
]


def _unet(torch: Any) -> Any:
    """A small U-Net: two levels down, one transposed-convolution and one bilinear way up, each
    padded to its skip connection's size (sizes computed from x.size() in forward)."""
    nn = torch.nn
    functional = torch.nn.functional

    def double(cin: int, cout: int) -> Any:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class Up(nn.Module):  # type: ignore[misc]
        def __init__(self, cin: int, cout: int, transposed: bool) -> None:
            super().__init__()
            self.up = (
                nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
                if transposed
                else nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            )
            self.conv = double(cin if transposed else cin + cin // 2, cout)

        def forward(self, x: Any, skip: Any) -> Any:
            x = self.up(x)
            dy, dx = skip.size(2) - x.size(2), skip.size(3) - x.size(3)
            x = functional.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
            return self.conv(torch.cat([skip, x], dim=1))

    class UNet(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.inc = double(3, 16)
            self.down1 = nn.Sequential(nn.MaxPool2d(2), double(16, 32))
            self.down2 = nn.Sequential(nn.MaxPool2d(2), double(32, 64))
            self.up1 = Up(64, 32, transposed=True)
            self.up2 = Up(32, 16, transposed=False)
            self.outc = nn.Conv2d(16, 2, 1)

        def forward(self, x: Any) -> Any:
            x1 = self.inc(x)
            x2 = self.down1(x1)
            y = self.up1(self.down2(x2), x2)
            return self.outc(self.up2(y, x1))

    return UNet()


def _torch_model(name: str) -> Any:
    """The model on the CPU with random weights and batchnorm statistics (an untrained model's
    zero biases would be dropped by the dynamo exporter, its equal tensors merged by the
    TorchScript one: a trained model has neither)."""
    from tv_oracle import torchvision_models

    torch = pytest.importorskip("torch")
    model = _unet(torch) if name == "unet" else torchvision_models().get_model(name, weights=None)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``exports(name, size, exporter, symbolic)`` → (ONNX file, the torch model), cached."""
    done: dict[tuple[Any, ...], tuple[Path, Any]] = {}

    def export(name: str, size: int, exporter: str, symbolic: bool) -> tuple[Path, Any]:
        key = (name, size, exporter, symbolic)
        if key not in done:
            torch = pytest.importorskip("torch")
            _onnx()
            pytest.importorskip("onnxscript")
            model = _torch_model(name)
            path = tmp_path_factory.mktemp("onnx") / f"{name}-{exporter}.onnx"
            x = torch.zeros(2, 3, size, size)
            if exporter == "dynamo":
                dyn = {"dynamic_shapes": ({0: torch.export.Dim("batch")},)} if symbolic else {}
                torch.onnx.export(
                    model,
                    (x[:1] if not symbolic else x,),
                    path,
                    dynamo=True,
                    opset_version=18,
                    input_names=["image"],
                    **dyn,
                )
            else:
                dyn = {"dynamic_axes": {"image": {0: "batch"}}} if symbolic else {}
                torch.onnx.export(
                    model, (x,), path, dynamo=False, opset_version=17, input_names=["image"], **dyn
                )
            done[key] = (path, model)
        return done[key]

    return export


def _torch_hooks(model: Any, size: int) -> tuple[int, Counter[tuple[tuple[int, ...], int]], Any]:
    """MACs of every convolution, transposed convolution and linear layer (bias excluded; a
    transposed convolution counted on its input, as cnncli does), each one's (output shape,
    MACs), and the model's output shape - from the real model on one image."""
    torch = pytest.importorskip("torch")
    entries: Counter[tuple[tuple[int, ...], int]] = Counter()

    def hook(module: Any, args: Any, out: Any) -> None:
        if isinstance(module, torch.nn.modules.conv._ConvTransposeNd):
            taps = module.out_channels // module.groups * math.prod(module.kernel_size)
            macs = args[0].numel() * taps
        elif isinstance(module, torch.nn.modules.conv._ConvNd):
            taps = module.in_channels // module.groups * math.prod(module.kernel_size)
            macs = out.numel() * taps
        elif isinstance(module, torch.nn.Linear):
            macs = out.numel() * module.in_features
        else:
            return
        shape = tuple(out.shape[1:])
        if isinstance(module, torch.nn.Linear) and len(shape) > 1:
            shape = (shape[-1], *shape[:-1])  # ConvNeXt's Linear on (H, W, C): cnncli's 1×1 conv
        entries[(shape, int(macs))] += 1

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 3, size, size))
    finally:
        for h in handles:
            h.remove()
    return sum(m * n for (_, m), n in entries.items()), entries, tuple(out.shape[1:])


def _file_params(model: Any) -> tuple[int, int]:
    """The parameters the ONNX file must hold, and how many batchnorms the exporter folds: the
    model's parameters, where each batchnorm (each follows a convolution without bias) leaves
    only the bias it folds into that convolution, C of its 2C parameters."""
    torch = pytest.importorskip("torch")
    total = sum(p.numel() for p in model.parameters())
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    return total - sum(m.num_features for m in norms), len(norms)


def _conv_rows(summary: Any) -> Counter[tuple[tuple[int, ...], int]]:
    kinds = ("conv", "convtranspose", "dense", "depthwise_conv")
    return Counter((r.output_shape, r.macs) for r in summary.layers() if r.type.startswith(kinds))


@pytest.mark.oracle
@pytest.mark.parametrize(("name", "size", "exporter", "symbolic"), EXPORTS)
def test_export_matches_onnxruntime_and_torch(
    name: str, size: int, exporter: str, symbolic: bool, exports: Any
) -> None:
    path, model = exports(name, size, exporter, symbolic)
    summary = _check_shapes_with_ort(path, batch=2 if symbolic else 1)
    macs, entries, output = _torch_hooks(model, size)
    assert summary.totals.macs == macs
    assert _conv_rows(summary) == entries
    assert list(summary.outputs.values()) == [output]
    params, folded = _file_params(model)
    assert summary.totals.params == params
    assert summary.totals.not_counted == {}
    assert (not folded) or any(
        f"batchnorm was folded into {folded} conv" in n for n in summary.notes
    )
    assert summary.notes[-1].startswith("every layer's shape computed by cnncli agrees")
    if symbolic:
        assert any("the batch axis is symbolic ('batch')" in n for n in summary.notes)


@pytest.mark.oracle
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_export_matches_zoo_entry(name: str, exporter: str, exports: Any) -> None:
    """The zoo's model at the same input size: the same convolutions and linear layers (output
    shape and MACs each), the same totals of MACs, the same output."""
    from cnncli.model import ZOO_DIR, summarize_text

    size, symbolic = next((s, b) for n, s, e, b in EXPORTS if (n, e) == (name, exporter))
    path, _ = exports(name, size, exporter, symbolic)
    zoo_file = ZOO_DIR / ("resnet.yaml" if name == "resnet18" else f"{name}.yaml")
    text = zoo_file.read_text(encoding="utf-8")
    assert "input: [3, 224, 224]" in text
    zoo = summarize_text(
        text.replace("input: [3, 224, 224]", f"input: [3, {size}, {size}]"),
        str(zoo_file),
        variant="resnet18" if name == "resnet18" else None,
    )
    summary = _summary(path)
    assert summary.totals.macs == zoo.totals.macs
    assert _conv_rows(summary) == _conv_rows(zoo)
    assert list(summary.outputs.values()) == list(zoo.outputs.values())


# ------------------------------------------------------------------ ONNX: the command, bad files


def _small(tmp_path: Path, name: str = "small.onnx", dims: list[int | str] | None = None) -> Path:
    """Conv → Relu → GlobalAveragePool → Flatten → Gemm on a (N, 3, 8, 8) input."""
    nodes = [
        _n("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        _n("Relu", ["c"], ["r"]),
        _n("GlobalAveragePool", ["r"], ["g"]),
        _n("Flatten", ["g"], ["f"]),
        _n("Gemm", ["f", "fw", "fb"], ["y"], transB=1),
    ]
    inits = {"w": _w(16, 3, 3, 3), "b": _w(16), "fw": _w(10, 16), "fb": _w(10)}
    model = _model(nodes, {"x": dims or ["N", 3, 8, 8]}, ["y"], inits)
    return _save(model, tmp_path / name)


#: conv 16·3·3·3 + 16, dense 10·16 + 10; MACs 16·8·8·27 + 160.
SMALL_PARAMS, SMALL_MACS = 618, 27_808


def _one_line_error(code: int, out: str, err: str) -> str:
    assert code == 1, err
    assert out == ""
    assert err.startswith("cnncli: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_cli_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _small(tmp_path)
    code, out, err = run(["summary", path], capsys)
    assert code == 0, err
    assert err == ""
    rows = _rows(out)
    assert [r[1] for r in rows.values()] == [
        "conv2d",
        "relu",
        "global_avgpool",
        "flatten",
        "dense",
    ]
    assert f"Total params:          {SMALL_PARAMS:,}" in out
    assert f"MACs:                  {SMALL_MACS:,}" in out
    assert "the batch axis is symbolic ('N')" in out
    code, out, err = run(["summary", path, "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["inputs"] == {"x": [3, 8, 8]}
    assert data["outputs"] == {"dense": [10]}
    assert data["totals"]["params"] == SMALL_PARAMS and data["totals"]["macs"] == SMALL_MACS
    assert data["totals"]["not_counted"] == {}
    assert data["reader_notes"][-1] == (
        "every layer's shape computed by cnncli agrees with ONNX shape inference "
        "(5 outputs compared)"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\xff" * 500, "not an ONNX model, or a damaged one"),
        (b"input: [3, 8, 8]\nlayers: []\n", "not an ONNX model, or a damaged one"),
        (b"PK\x03\x04" + b"\x00" * 100, "not an ONNX model, or a damaged one"),
        (b"", "the file is empty"),
        (b"\x08\x07", "not an ONNX model (no graph, operator set or IR version in it)"),
    ],
)
def test_files_that_are_not_onnx(
    content: bytes, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _onnx()
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    err = _one_line_error(*run(["summary", path], capsys))
    assert err.startswith(f"cnncli: error: {path}: {message}")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_file(keep: float, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole = _small(tmp_path).read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(whole[: int(len(whole) * keep)])
    err = _one_line_error(*run(["summary", path], capsys))
    assert str(path) in err
    assert "damaged" in err or "no graph" in err or "defines" in err or "refuses" in err


def test_missing_file_and_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _onnx()
    err = _one_line_error(*run(["summary", tmp_path / "nope.onnx"], capsys))
    assert err == f"cnncli: error: {tmp_path / 'nope.onnx'}: no such file\n"
    (tmp_path / "dir.onnx").mkdir()
    err = _one_line_error(*run(["summary", tmp_path / "dir.onnx"], capsys))
    assert "dir.onnx: is a folder; give an .onnx model file" in err


def test_without_onnx_installed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"anything")
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)  # import onnx now fails
    err = _one_line_error(*run(["summary", path], capsys))
    assert err == (
        'cnncli: error: reading ONNX models needs the onnx package: pip install "cnncli[onnx]" '
        "(or pip install onnx)\n"
    )


def test_yaml_summary_never_imports_onnx() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from cnncli.cli import main\n"
        "try:\n    main(['summary', 'resnet18', '--json'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('onnx', 'onnxruntime', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.splitlines()[-1] == "[]"


ROOT = Path(__file__).resolve().parent.parent


def test_open_sizes_need_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _small(tmp_path, dims=["N", 3, "H", "W"])
    err = _one_line_error(*run(["summary", path], capsys))
    assert err == (
        f"cnncli: error: {path}: input 'x' has open sizes (N, 3, H, W); give its shape without "
        "the batch, 3,?,?, with --input (e.g. --input 3,224,224)\n"
    )
    code, out, err = run(["summary", path, "--input", "3,20,12", "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["inputs"] == {"x": [3, 20, 12]}
    assert data["totals"]["macs"] == 16 * 20 * 12 * 27 + 160
    err = _one_line_error(*run(["summary", path, "--input", "20,12"], capsys))
    assert "--input 20,12 has 2 sizes, but input 'x' (N, 3, H, W) has 3 without the batch" in err
    err = _one_line_error(*run(["summary", path, "--input", "4,20,12"], capsys))
    assert "the file fixes input 'x' to (3, H, W); --input 4,20,12 differs" in err


def test_input_only_for_open_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _small(tmp_path)
    code, out, err = run(["summary", path, "--input", "3,8,8", "--json"], capsys)
    assert code == 0, err  # the file's own sizes again: fine
    err = _one_line_error(*run(["summary", path, "--input", "3,16,16"], capsys))
    assert "the file fixes input 'x' to (3, 8, 8); --input 3,16,16 differs" in err


def test_external_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Weights in another file: not needed for a summary (a note says it is missing); shape
    constants there are needed."""
    onnx = _onnx()
    nodes = [
        _n("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
        _n("Reshape", ["c", "shape"], ["y"]),
    ]
    model = _model(nodes, {"x": [1, 3, 4, 4]}, ["y"], {"w": _w(64, 3, 1, 1), "shape": _i64(1, -1)})
    path = tmp_path / "ext.onnx"
    onnx.save(model, path, save_as_external_data=True, location="ext.data", size_threshold=0)
    code, out, err = run(["summary", path, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["totals"]["params"] == 192
    (tmp_path / "ext.data").rename(tmp_path / "elsewhere.data")
    err = _one_line_error(*run(["summary", path], capsys))
    assert err == (
        f"cnncli: error: {path}: the shapes depend on constants such as 'shape', stored in "
        "'ext.data', which is missing; put that file next to the model\n"
    )
    # Only the weights outside: the summary works and says what is missing.
    model = _model(nodes, {"x": [1, 3, 4, 4]}, ["y"], {"w": _w(64, 3, 1, 1), "shape": _i64(1, -1)})
    onnx.save(model, path, save_as_external_data=True, location="w.data", size_threshold=100)
    (tmp_path / "w.data").unlink()
    code, out, err = run(["summary", path, "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["totals"]["params"] == 192
    assert (
        "the weights of 1 tensor are stored outside the model in 'w.data', which is missing: "
        "the summary needs only their shapes, which the model file holds"
    ) in data["reader_notes"]


def test_unknown_operators_are_opaque(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """NonMaxSuppression (and the Gather of its data-dependent result) are not counted, and
    say so; --strict refuses."""
    onnx = _onnx()
    from onnx import TensorProto

    nodes = [
        _n("Conv", ["x", "w"], ["f"], kernel_shape=[1, 1]),
        _n("Reshape", ["f", "s1"], ["r"]),
        _n("Transpose", ["r"], ["boxes"], perm=[0, 2, 1]),
        _n("Conv", ["x", "w2"], ["g"], kernel_shape=[1, 1]),
        _n("Reshape", ["g", "s2"], ["scores"]),
        _n("NonMaxSuppression", ["boxes", "scores", "most", "iou", "least"], ["sel"]),
        _n("Gather", ["boxes", "sel"], ["picked"], axis=1),
    ]
    inits = {
        "w": _w(4, 3, 1, 1),
        "w2": _w(1, 3, 1, 1),
        "s1": _i64(1, 4, 16),
        "s2": _i64(1, 1, 16),
        "most": _i64(5),
        "iou": _f32(0.5),
        "least": _f32(0.1),
    }
    model = _model(nodes, {"x": [1, 3, 4, 4]}, ["sel", "picked"], inits, opset=13)
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.INT64
    path = _save(model, tmp_path / "nms.onnx")
    summary = _check_shapes_with_ort(path)
    assert summary.totals.not_counted == {"NonMaxSuppression": 1, "Gather": 1}
    assert [(r.type, r.op, r.output_shape) for r in summary.layers()][-2:] == [
        ("opaque", "NonMaxSuppression", (0, 3)),
        ("opaque", "Gather", (0, 3, 4)),
    ]
    assert summary.totals.params == 15 and summary.totals.macs == 192 + 48
    err = _one_line_error(*run(["summary", path, "--strict"], capsys))
    assert err == (
        f"cnncli: error: {path}: the MACs of 2 layers cannot be counted (opaque: operators "
        "cnncli does not know or cannot express): NonMaxSuppression ×1, Gather ×1\n"
    )
    del onnx


def test_custom_operator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An operator of another domain: opaque with the file's shape (value_info), its float
    tensors as parameters; without any shape for it, an error naming it."""
    from onnx import TensorProto, helper

    nodes = [
        _n("Conv", ["x", "w"], ["f"], kernel_shape=[1, 1]),
        helper.make_node("MyOp", ["f", "k"], ["y"], domain="com.example"),
        _n("Relu", ["y"], ["z"]),
    ]
    model = _model(nodes, {"x": [1, 3, 4, 4]}, ["z"], {"w": _w(4, 3, 1, 1), "k": _w(4, 4)})
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    path = _save(model, tmp_path / "custom.onnx")
    err = _one_line_error(*run(["summary", path], capsys))
    assert err == (
        f"cnncli: error: {path}: node 'MyOp' (MyOp): cnncli does not know this operator, and "
        "ONNX shape inference gives no shape for its output 'y'; cnncli cannot go on past it\n"
    )
    model.graph.value_info.append(
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 2, 2])
    )
    path = _save(model, tmp_path / "custom.onnx")
    code, out, err = run(["summary", path, "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert [
        (lay["type"], lay["op"], lay["output_shape"], lay["params"]) for lay in data["layers"]
    ] == [
        ("conv2d", None, [4, 4, 4], 12),
        ("opaque", "MyOp", [4, 2, 2], 16),
        ("relu", None, [4, 2, 2], 0),
    ]
    assert data["totals"]["not_counted"] == {"MyOp": 1}


def test_shape_disagreement_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When ONNX shape inference and cnncli disagree, the reader stops: never a guess."""
    from cnncli.model.readers import onnx_file

    path = _small(tmp_path)
    infer = onnx_file._Converter._infer

    def wrong(self: Any) -> Any:
        shapes = infer(self)
        shapes["c"] = ("N", 16, 8, 9)
        return shapes

    monkeypatch.setattr(onnx_file._Converter, "_infer", wrong)
    err = _one_line_error(*run(["summary", path], capsys))
    assert err == (
        f"cnncli: error: {path}: node 'Conv' (Conv): cnncli computes the shape (N, 16, 8, 8) for "
        "'c', ONNX shape inference (N, 16, 8, 9); one of them is wrong (please report it, with "
        "the file)\n"
    )


def test_gemm_bias(tmp_path: Path) -> None:
    """Gemm's C of one number per unit (broadcast as (1, units)) is the dense layer's bias; a
    single number added to every output is not a bias: no layer type, so the Gemm is opaque
    (its weight still counted)."""
    nodes = [_n("Flatten", ["x"], ["f"]), _n("Gemm", ["f", "w", "c"], ["y"], transB=1)]
    model = _model(nodes, {"x": [1, 4]}, ["y"], {"w": _w(3, 4), "c": _w(1, 3)})
    summary = _check_shapes_with_ort(_save(model, tmp_path / "bias.onnx"))
    assert [r.type for r in summary.layers()] == ["flatten", "dense"]
    assert summary.totals.params == 15 and summary.totals.macs == 12
    model = _model(nodes, {"x": [1, 4]}, ["y"], {"w": _w(3, 4), "c": _f32(0.5)})
    summary = _check_shapes_with_ort(_save(model, tmp_path / "scalar.onnx"))
    assert [(r.type, r.op) for r in summary.layers()] == [("flatten", None), ("opaque", "Gemm")]
    assert summary.totals.params == 12 and summary.totals.not_counted == {"Gemm": 1}


def test_weights_computed_from_constants(tmp_path: Path) -> None:
    """A quantized model's DequantizeLinear(int8 weights): cnncli does not compute it, but the
    convolution needs only its dims (from ONNX shape inference)."""
    np = pytest.importorskip("numpy")
    nodes = [
        _n("DequantizeLinear", ["wq", "ws", "wz"], ["w"]),
        _n("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3]),
    ]
    inits = {
        "wq": np.ones((8, 3, 3, 3), dtype=np.int8),
        "ws": np.array(0.1, dtype=np.float32),
        "wz": np.array(0, dtype=np.int8),
    }
    path = _save(_model(nodes, {"x": [1, 3, 8, 8]}, ["y"], inits, opset=13), tmp_path / "q.onnx")
    summary = _check_shapes_with_ort(path)
    assert [r.type for r in summary.layers()] == ["conv2d"]
    assert summary.totals.params == 8 * 27 and summary.totals.macs == 8 * 6 * 6 * 27
    assert (
        "1 node(s) computing tensors from constants (DequantizeLinear) were read for the shapes "
        "of their results only"
    ) in summary.notes


def test_fixed_batch(tmp_path: Path) -> None:
    summary = _check_shapes_with_ort(_small(tmp_path, dims=[2, 3, 8, 8]), batch=2)
    assert summary.inputs == {"x": (3, 8, 8)}
    assert summary.totals.macs == SMALL_MACS
    assert (
        "the file fixes the batch to 2: shapes leave it out and counts are for one sample"
        in summary.notes
    )


def test_weights_disagreeing_with_the_layer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A convolution whose bias is not one number per filter: cnncli's count and the file's
    differ, and the reader says so rather than print either."""
    nodes = [_n("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3])]
    model = _model(nodes, {"x": [1, 3, 8, 8]}, ["y"], {"w": _w(16, 3, 3, 3), "b": _w(8)})
    path = _save(model, tmp_path / "bad_bias.onnx")
    err = _one_line_error(*run(["summary", path], capsys))
    assert err == (
        f"cnncli: error: {path}: node 'Conv' (Conv): cnncli counts 448 parameters for conv2d, "
        "the file holds 440 ((16, 3, 3, 3), (8))\n"
    )
