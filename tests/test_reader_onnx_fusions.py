"""The ONNX reader's If folding and the chains it reads as one layer (LocalResponseNorm), against
onnxruntime and against the same PyTorch model read by the torch reader.

``If`` on a constant condition: TorchScript's exporter writes ``squeeze(dim)`` of a size it does
not see as an If on ``Shape(x)[dim] == 1`` (``nn.LocalResponseNorm`` has one); graphs built with
``onnx.helper`` add conditions stored as initializers, nested Ifs, branches that pass an outer
tensor on, and conditions known only at run time (which stay as they were).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from clirun import run  # tests/clirun.py
from test_reader_onnx import (  # tests/test_reader_onnx.py
    _check_shapes_with_ort,
    _model,
    _n,
    _one_line_error,
    _ort_shapes,
    _save,
    _summary,
    _w,
)


def _convert(path: Path, **options: Any) -> Any:
    from cnncli.model.readers import ReadOptions
    from cnncli.model.readers.onnx_file import convert

    return convert(str(path), ReadOptions(**options))


def _with_weights(path: Path, model: Any) -> Any:
    """The graph the reader read (its Ifs replaced by their branches), with the file's weights
    put back (the reader leaves their data unread)."""
    onnx = pytest.importorskip("onnx")
    read = onnx.ModelProto()
    read.CopyFrom(model)
    whole = {t.name: t for t in onnx.load(str(path)).graph.initializer}
    kept = [whole.get(t.name, t) for t in read.graph.initializer]
    del read.graph.initializer[:]
    read.graph.initializer.extend(kept)
    return read


def _outputs(path: Path, batch: int) -> list[Any]:
    ort = pytest.importorskip("onnxruntime")
    np = pytest.importorskip("numpy")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {}
    for i in session.get_inputs():
        dims = [batch if not isinstance(d, int) else d for d in i.shape]
        feeds[i.name] = np.random.default_rng(1).standard_normal(dims).astype(np.float32)
    return list(session.run(None, feeds))


def _check_read_graph(path: Path, tmp_path: Path, batch: int) -> Any:
    """The graph the reader read computes what the file computes (onnxruntime, the same random
    input, the same outputs), and every layer's shape is onnxruntime's in that graph (a layer
    inside a branch has no tensor in the file's main graph). The summary."""
    np = pytest.importorskip("numpy")
    converted = _convert(path)
    assert not any(n.op_type == "If" for n in converted.model.graph.node)
    read_path = _save(_with_weights(path, converted.model), tmp_path / "read.onnx")
    for ours, theirs in zip(_outputs(read_path, batch), _outputs(path, batch), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    summary = _summary(path)
    rows = {r.name: r for r in summary.layers()}
    shapes = _ort_shapes(read_path, sorted(set(converted.tensors.values())), batch)
    for name, tensor in converted.tensors.items():
        assert rows[name].output_shape == shapes[tensor][1:], (name, tensor)
    return summary


# ------------------------------------------------------------------ If on a constant


def _branch(nodes: list[Any], outputs: list[str], inits: dict[str, Any] | None = None) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    return helper.make_graph(
        nodes,
        "branch",
        [],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(v, name=k) for k, v in (inits or {}).items()],
    )


def _if_model(flag: bool) -> tuple[Any, list[str]]:
    """Conv → If(flag stored as an initializer): then a nested If on ``Shape(c)[1] == 8`` (a
    MaxPool, or the outer tensor passed on), else a Sigmoid and a per-channel scale stored in
    the branch → Relu → GlobalAveragePool."""
    np = pytest.importorskip("numpy")
    inner = _n(
        "If",
        ["same"],
        ["p"],
        then_branch=_branch(
            [_n("MaxPool", ["c"], ["mp"], kernel_shape=[2, 2], strides=[2, 2])], ["mp"]
        ),
        else_branch=_branch([_n("Identity", ["c"], ["ci"])], ["ci"]),
    )
    then = _branch([inner, _n("Relu", ["p"], ["t"])], ["t"])
    other = _branch(
        [_n("Sigmoid", ["c"], ["s"]), _n("Mul", ["s", "gamma"], ["e"])],
        ["e"],
        {"gamma": _w(8, 1, 1)},
    )
    nodes = [
        _n("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        _n("Shape", ["c"], ["shape"]),
        _n("Gather", ["shape", "one"], ["channels"], axis=0),
        _n("Equal", ["channels", "eight"], ["same"]),
        _n("If", ["flag"], ["y"], then_branch=then, else_branch=other),
        _n("Relu", ["y"], ["r"]),
        _n("GlobalAveragePool", ["r"], ["g"]),
    ]
    inits = {
        "w": _w(8, 3, 3, 3),
        "one": np.array(1, dtype=np.int64),
        "eight": np.array(8, dtype=np.int64),
        "flag": np.array(flag),
    }
    model = _model(nodes, {"x": ["N", 3, 8, 8]}, ["g"], inits)
    if flag:
        return model, ["conv2d", "maxpool2d", "relu", "relu", "global_avgpool"]
    return model, ["conv2d", "sigmoid", "layer_scale", "relu", "global_avgpool"]


@pytest.mark.oracle
@pytest.mark.parametrize("flag", [True, False])
def test_if_on_a_constant_reads_the_branch_taken(flag: bool, tmp_path: Path) -> None:
    model, types = _if_model(flag)
    path = _save(model, tmp_path / "if.onnx")
    summary = _check_read_graph(path, tmp_path, batch=2)
    assert [r.type for r in summary.rows] == types
    n = 2 if flag else 1  # the nested If is read too
    assert f"{n} If node{'s' if n > 1 else ''} on a condition known before the model runs" in (
        "\n".join(summary.notes)
    )
    assert summary.totals.params == 8 * 27 + (0 if flag else 8)


def test_if_branch_passing_an_outer_tensor_on(tmp_path: Path) -> None:
    """A branch whose output is a tensor of the outer graph (which ONNX allows and onnxruntime
    refuses): an identity row writes the If's output."""
    np = pytest.importorskip("numpy")
    nodes = [
        _n("Relu", ["x"], ["r"]),
        _n("If", ["flag"], ["y"], then_branch=_branch([], ["r"]), else_branch=_branch([], ["x"])),
        _n("Sigmoid", ["y"], ["s"]),
    ]
    model = _model(nodes, {"x": [1, 4, 6]}, ["s"], {"flag": np.array([True])})
    converted = _convert(_save(model, tmp_path / "pass.onnx"))
    layers = converted.read.data["layers"]
    assert [(x["type"], x["input"]) for x in layers] == [
        ("relu", "x"),
        ("identity", layers[0]["name"]),
        ("sigmoid", layers[1]["name"]),
    ]
    assert [n.op_type for n in converted.model.graph.node] == ["Relu", "Identity", "Sigmoid"]
    assert converted.read.notes[-1].endswith("(3 outputs compared)")


def _runtime_if(tmp_path: Path, cond_nodes: list[Any], ranks_differ: bool = False) -> Path:
    np = pytest.importorskip("numpy")
    flat = [_n("Flatten", ["x"], ["o"])] if ranks_differ else [_n("Sigmoid", ["x"], ["o"])]
    nodes = [
        *cond_nodes,
        _n(
            "If",
            ["cond"],
            ["y"],
            then_branch=_branch([_n("Relu", ["x"], ["t"])], ["t"]),
            else_branch=_branch(flat, ["o"]),
        ),
        _n("Sigmoid", ["y"], ["out"]),
    ]
    inits = {"zero": np.array(0.0, dtype=np.float32), "one": np.array([0], dtype=np.int64)}
    inits["batch_one"] = np.array([1], dtype=np.int64)
    return _save(_model(nodes, {"x": ["N", 4, 6]}, ["out"], inits), tmp_path / "runtime.onnx")


@pytest.mark.oracle
def test_if_on_a_runtime_value_stays_opaque(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A condition computed from the input's values, or from the size of a symbolic batch, is
    known only when the model runs: the If is an opaque row (ONNX's shape), as before, or an
    error when ONNX gives its output no shape."""
    on_values = [
        _n("ReduceSum", ["x"], ["sum"], keepdims=1),
        _n("Greater", ["sum", "zero"], ["cond"]),
    ]
    on_batch = [
        _n("Shape", ["x"], ["shape"]),
        _n("Gather", ["shape", "one"], ["n"], axis=0),
        _n("Equal", ["n", "batch_one"], ["cond1"]),
        _n("Squeeze", ["cond1"], ["cond"]),
    ]
    summary = _check_shapes_with_ort(_runtime_if(tmp_path, on_values), batch=2)
    assert [(r.type, r.op) for r in summary.rows][-2:] == [("opaque", "If"), ("sigmoid", None)]
    assert not any("If node" in n for n in summary.notes)
    path = _runtime_if(tmp_path, on_values, ranks_differ=True)
    err = _one_line_error(*run(["summary", path], capsys))
    assert "ONNX shape inference gives no shape for its output 'y'" in err
    path = _runtime_if(tmp_path, on_batch)
    err = _one_line_error(*run(["summary", path], capsys))
    assert err == (
        f"cnncli: error: {path}: node 'If' (If): its condition depends on the batch size, which "
        "the file leaves open ('N'): the branch taken is known only when the model runs; export "
        "the model with a fixed batch\n"
    )


# ------------------------------------------------------------------ LocalResponseNorm


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``exported(module, shape, exporter)`` → the ONNX file (a symbolic batch)."""

    def export(model: Any, shape: tuple[int, ...], exporter: str) -> Path:
        torch = pytest.importorskip("torch")
        pytest.importorskip("onnx")
        pytest.importorskip("onnxscript")
        path = tmp_path_factory.mktemp("onnx") / f"{exporter}.onnx"
        x = torch.zeros(2, *shape)
        if exporter == "dynamo":
            dyn = {"dynamic_shapes": ({0: torch.export.Dim("batch")},)}
            torch.onnx.export(
                model, (x,), path, dynamo=True, opset_version=18, input_names=["image"], **dyn
            )
        else:
            dyn = {"dynamic_axes": {"image": {0: "batch"}}}
            torch.onnx.export(
                model, (x,), path, dynamo=False, opset_version=17, input_names=["image"], **dyn
            )
        return path

    return export


@pytest.mark.oracle
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_local_response_norm_is_one_lrn_row(ndim: int, exporter: str, exported: Any) -> None:
    torch = pytest.importorskip("torch")
    nn = torch.nn
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[ndim - 1](3, 8, 3)
    model = nn.Sequential(conv, nn.LocalResponseNorm(5, alpha=1e-3, beta=0.6, k=2.0)).eval()
    path = exported(model, (3, *[7] * ndim), exporter)
    summary = _check_shapes_with_ort(path, batch=2)
    assert [r.type for r in summary.rows] == [f"conv{ndim}d", "lrn"]
    lrn = _convert(path).read.data["layers"][1]
    assert {k: lrn[k] for k in ("size", "alpha", "beta", "k")} == pytest.approx(
        {"size": 5, "alpha": 1e-3, "beta": 0.6, "k": 2.0}
    )
    joined = "\n".join(summary.notes)
    assert "read as one lrn layer: 1 time" in joined
    # TorchScript squeezes the pooled axis inside an If on its size.
    assert ("1 If node on a condition" in joined) == (exporter == "torchscript")


ALEXNET = """
import torch.nn as nn


class AlexNetStyle(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 24, 11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(24, 64, 5, padding=2), nn.ReLU(inplace=True),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(64, 96, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(96 * 3 * 3, 10))

    def forward(self, x):
        return self.classifier(self.features(x))
"""


@pytest.mark.oracle
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_alexnet_style_reads_as_the_torch_model(
    exporter: str, exported: Any, tmp_path: Path
) -> None:
    """Both exporters' files give the rows (type, shape, parameters, MACs) and totals the torch
    reader gives for the module itself; every shape is onnxruntime's."""
    torch = pytest.importorskip("torch")
    source = tmp_path / "alexnet_style.py"
    source.write_text(textwrap.dedent(ALEXNET), encoding="utf-8")
    namespace: dict[str, Any] = {}
    exec(compile(source.read_text(), str(source), "exec"), namespace)  # the module for export
    model = namespace["AlexNetStyle"]().eval()
    path = exported(model, (3, 127, 127), exporter)
    summary = _check_shapes_with_ort(path, batch=2)
    torch_summary = _summary(Path(f"{source}:AlexNetStyle"), input_shape=(3, 127, 127))

    def rows(s: Any) -> list[tuple[Any, ...]]:
        return [(r.type, r.output_shape, r.params, r.macs) for r in s.layers()]

    assert rows(summary) == rows(torch_summary)
    assert summary.totals.params == torch_summary.totals.params
    assert summary.totals.macs == torch_summary.totals.macs
    assert [r.type for r in summary.layers()].count("lrn") == 2
    out = _ort_shapes(path, [o.name for o in _convert(path).model.graph.output], batch=1)
    assert list(summary.outputs.values()) == [v[1:] for v in out.values()]
    assert list(summary.outputs.values()) == [tuple(model(torch.zeros(1, 3, 127, 127)).shape[1:])]
