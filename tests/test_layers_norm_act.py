"""groupnorm, instancenorm, prelu, elu, selu, softplus, mish, lrn, pixel_shuffle, pixel_unshuffle.

Oracles: each layer's output shape and parameter count against the real ``torch.nn`` module and
the real Keras layer; the ONNX reader against both of torch's exporters and graphs built with
``onnx.helper`` (LRN, DepthToSpace in both modes, SpaceToDepth, GroupNormalization), every shape
against onnxruntime; the DCR modules ``--verify`` builds against onnxruntime's values; the torch
reader against PyTorch (it checks every layer itself); ``--verify`` with PyTorch and with Keras.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from clirun import run  # tests/clirun.py

from cnncli.model import summarize, summarize_text

os.environ.setdefault("KERAS_BACKEND", "torch")

#: Every new type, channels first: (YAML layer, the torch module a PyTorch user writes for it).
TORCH_CASES = [
    ("{type: groupnorm, groups: 4}", "nn.GroupNorm(4, 16)"),
    ("{type: GroupNorm, num_groups: 2, affine: false}", "nn.GroupNorm(2, 16, affine=False)"),
    ("{type: instancenorm}", "nn.InstanceNorm2d(16)"),
    ("{type: InstanceNorm2d, affine: true}", "nn.InstanceNorm2d(16, affine=True)"),
    (
        "{type: instancenorm, track_running_stats: true, affine: true}",
        "nn.InstanceNorm2d(16, affine=True, track_running_stats=True)",
    ),
    ("{type: prelu}", "nn.PReLU()"),
    ("{type: PReLU, num_parameters: 16}", "nn.PReLU(16)"),
    ("{type: elu, alpha: 0.5}", "nn.ELU(0.5)"),
    ("{type: selu}", "nn.SELU()"),
    ("{type: softplus, beta: 2, threshold: 10}", "nn.Softplus(2, 10)"),
    ("{type: mish}", "nn.Mish()"),
    (
        "{type: lrn, size: 5, alpha: 0.001, beta: 0.5, k: 2}",
        "nn.LocalResponseNorm(5, 0.001, 0.5, 2)",
    ),
    ("{type: PixelShuffle, upscale_factor: 2}", "nn.PixelShuffle(2)"),
    ("{type: pixel_unshuffle, factor: 2}", "nn.PixelUnshuffle(2)"),
]


def _one(layer: str, head: str = "input: [16, 8, 6]") -> Any:
    return summarize_text(f"{head}\nlayers:\n  - {layer}\n", "case.yaml")


def _torch_counts(module: Any) -> int:
    n = sum(p.numel() for p in module.parameters())
    return int(n + sum(b.numel() for k, b in module.named_buffers() if "num_batches" not in k))


@pytest.mark.oracle
@pytest.mark.parametrize(("layer", "module"), TORCH_CASES)
def test_shapes_and_params_equal_torch(layer: str, module: str) -> None:
    torch = pytest.importorskip("torch")
    nn = torch.nn  # noqa: F841 - read by eval
    summary = _one(layer)
    row = summary.rows[-1]
    built = eval(module).eval()  # a fixed table above, no user input
    y = built(torch.randn(1, 16, 8, 6))
    assert row.output_shape == tuple(y.shape[1:])
    assert row.params == _torch_counts(built)
    assert row.macs == 0


#: Channels last, framework keras: (YAML layer, the Keras layer).
KERAS_CASES = [
    ("{type: GroupNormalization, groups: 4}", "L.GroupNormalization(groups=4)"),
    (
        "{type: groupnorm, groups: 8, affine: false}",
        "L.GroupNormalization(8, center=False, scale=False)",
    ),
    ("{type: instancenorm, affine: true}", "L.GroupNormalization(groups=-1)"),
    ("{type: prelu}", "L.PReLU()"),
    ("{type: PReLU, shared_axes: [1, 2]}", "L.PReLU(shared_axes=[1, 2])"),
    ("{type: prelu, shared_axes: 2}", "L.PReLU(shared_axes=2)"),
    ("{type: ELU, alpha: 0.5}", "L.ELU(alpha=0.5)"),
    ("{type: selu}", "L.Activation('selu')"),
    ("{type: softplus}", "L.Activation('softplus')"),
    ("{type: mish}", "L.Activation('mish')"),
]


@pytest.mark.oracle
@pytest.mark.parametrize(("layer", "keras_layer"), KERAS_CASES)
def test_shapes_and_params_equal_keras(layer: str, keras_layer: str) -> None:
    keras = pytest.importorskip("keras")
    L = keras.layers  # noqa: N806, F841 - read by eval
    summary = _one(layer, "input: [8, 6, 16]\nlayout: channels_last\nframework: keras")
    row = summary.rows[-1]
    built = eval(keras_layer)  # a fixed table above
    y = built(keras.Input((8, 6, 16)))
    assert row.output_shape == tuple(y.shape[1:])
    assert row.params == built.count_params()


def test_prelu_defaults_follow_the_framework() -> None:
    # PyTorch's nn.PReLU() holds one slope; Keras's PReLU() one per position and channel.
    assert _one("{type: prelu}").rows[-1].params == 1
    keras = _one("{type: prelu}", "input: [8, 6, 16]\nlayout: channels_last\nframework: keras")
    assert keras.rows[-1].params == 8 * 6 * 16
    assert _one("{type: prelu, shared_axes: []}").rows[-1].params == 16 * 8 * 6


ALL_TORCH = """
input: [3, 16, 16]
layers:
  - {type: conv2d, filters: 16, kernel: 3, padding: 1, activation: elu}
  - {type: groupnorm, groups: 4}
  - {type: instancenorm, affine: true, track_running_stats: true}
  - {type: prelu, num_parameters: 16}
  - {type: prelu, shared_axes: [2, 3]}
  - {type: prelu, shared_axes: []}
  - {type: elu, alpha: 0.3}
  - {type: selu}
  - {type: softplus, beta: 2}
  - {type: mish}
  - {type: activation, function: softplus}
  - {type: lrn, size: 3}
  - {type: pixel_shuffle, factor: 2}
  - {type: pixel_unshuffle, factor: 2}
  - {type: pixel_shuffle, factor: 2, mode: dcr}
  - {type: pixel_unshuffle, factor: 2, mode: dcr}
"""

ALL_KERAS = """
input: [16, 16, 3]
layout: channels_last
framework: keras
layers:
  - {type: conv2d, filters: 16, kernel: 3, padding: same, activation: mish}
  - {type: groupnorm, groups: 4, eps: 0.001}
  - {type: instancenorm, affine: true}
  - {type: prelu}
  - {type: prelu, shared_axes: [1, 2]}
  - {type: prelu, num_parameters: 1}
  - {type: prelu, num_parameters: 16}
  - {type: elu}
  - {type: selu}
  - {type: softplus}
  - {type: activation, function: elu}
  - {type: pixel_shuffle, factor: 2}
  - {type: pixel_unshuffle, factor: 2}
"""


@pytest.mark.oracle
def test_verify_with_pytorch_builds_every_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    path = tmp_path / "all.yaml"
    path.write_text(ALL_TORCH)
    code, out, err = run(["summary", path, "--verify"], capsys)
    assert code == 0, err
    assert "verified with PyTorch" in out and "all 16 layers agree" in out


@pytest.mark.oracle
def test_verify_with_keras_builds_what_keras_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("keras")
    path = tmp_path / "all.yaml"
    path.write_text(ALL_KERAS)
    code, out, err = run(["summary", path, "--verify"], capsys)
    assert code == 0, err
    assert "verified with Keras" in out and "all 13 layers agree" in out


@pytest.mark.oracle
def test_channels_last_model_built_with_torch_agrees() -> None:
    # A Keras model's layers also have PyTorch builds (convert -o model.py, --weights): Keras's
    # per-position PReLU slopes and the DCR order become small modules.
    pytest.importorskip("torch")
    from cnncli.model import torch_check

    summary = summarize_text(ALL_KERAS, "all.yaml")
    bad = [c for c in torch_check.check(summary) if not c.ok]
    assert not bad


@pytest.mark.oracle
def test_verify_with_keras_refuses_what_keras_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("keras")
    path = tmp_path / "m.yaml"
    path.write_text(
        "input: [8, 8, 16]\nlayout: channels_last\nframework: keras\nlayers:\n"
        "  - {type: lrn, size: 3}\n  - {type: pixel_shuffle, factor: 2, mode: crd}\n"
        "  - {type: softplus, beta: 2}\n"
    )
    code, out, err = run(["summary", path, "--verify"], capsys)
    assert code == 1 and not out
    assert err.count("\n") == 1
    assert "Keras has no local response normalization layer" in err
    assert "mode: dcr" in err and "only beta: 1" in err


@pytest.mark.oracle
@pytest.mark.parametrize(("block", "mode"), [("DepthToSpace", "DCR"), ("SpaceToDepth", None)])
def test_dcr_modules_equal_onnxruntime_values(block: str, mode: str | None) -> None:
    """The DepthToSpace/SpaceToDepth modules --verify and convert -o model.py use for mode dcr
    move every value where onnxruntime moves it."""
    torch = pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    from cnncli.model import torch_modules

    shape_in = [1, 8, 3, 4] if block == "DepthToSpace" else [1, 2, 6, 8]
    attrs = {"blocksize": 2} | ({"mode": mode} if mode else {})
    graph = helper.make_graph(
        [helper.make_node(block, ["x"], ["y"], **attrs)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape_in)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = torch.arange(int(torch.tensor(shape_in).prod()), dtype=torch.float32).reshape(shape_in)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x.numpy()})[0]
    module = getattr(torch_modules, block)(2)
    assert module(x).numpy().tolist() == expected.tolist()
    assert onnx.__version__


# -- readers ---------------------------------------------------------------------------------------


def _ort_check(path: Path) -> Any:
    from test_reader_onnx import _check_shapes_with_ort  # tests/test_reader_onnx.py

    return _check_shapes_with_ort(path)


class _Net:
    """Every torch module the readers map, in one network (a tuple of modules for export)."""

    @staticmethod
    def build(affine: bool = True) -> Any:
        torch = pytest.importorskip("torch")
        nn = torch.nn
        return nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.GroupNorm(4, 16, affine=affine),
            nn.InstanceNorm2d(16, affine=affine),
            nn.PReLU(16),
            nn.PReLU(),
            nn.ELU(0.5),
            nn.SELU(),
            nn.Softplus(2.0, 10.0),
            nn.Softplus(),
            nn.Mish(),
            nn.PixelShuffle(2),
            nn.PixelUnshuffle(2),
        ).eval()


TYPES = [
    "conv2d",
    "groupnorm",
    "instancenorm",
    "prelu",
    "prelu",
    "elu",
    "selu",
    "softplus",
    "softplus",
    "mish",
    "pixel_shuffle",
    "pixel_unshuffle",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Any:
    done: dict[tuple[str, bool], Path] = {}

    def export(exporter: str, affine: bool) -> Path:
        if (exporter, affine) not in done:
            torch = pytest.importorskip("torch")
            pytest.importorskip("onnx")
            pytest.importorskip("onnxscript")
            path = tmp_path_factory.mktemp("onnx") / f"net-{exporter}-{affine}.onnx"
            x = torch.zeros(1, 3, 8, 8)
            model = _Net.build(affine)
            if exporter == "dynamo":
                torch.onnx.export(model, (x,), path, dynamo=True)
            else:
                torch.onnx.export(model, (x,), path, dynamo=False, opset_version=18)
            done[(exporter, affine)] = path
        return done[(exporter, affine)]

    return export


@pytest.mark.oracle
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_both_exporters_read_as_the_torch_model(exporter: str, exported: Any) -> None:
    torch = pytest.importorskip("torch")
    summary = _ort_check(exported(exporter, True))
    assert [r.type for r in summary.rows] == TYPES
    model = _Net.build()
    assert summary.totals.params == sum(p.numel() for p in model.parameters())
    assert summary.rows[-1].output_shape == tuple(model(torch.zeros(1, 3, 8, 8)).shape[1:])


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("exporter", "norm_params"),
    # The TorchScript exporter writes affine=False's constants as Constant nodes (no weights);
    # the dynamo exporter stores them as initializers, which the file then holds as weights.
    [("torchscript", 0), ("dynamo", 2 * 16 + 2 * 16)],
)
def test_exported_norms_without_affine(exporter: str, norm_params: int, exported: Any) -> None:
    summary = _ort_check(exported(exporter, False))
    assert [r.type for r in summary.rows] == TYPES
    rows = {r.type: r for r in summary.rows}
    assert rows["groupnorm"].params + rows["instancenorm"].params == norm_params


def _helper_model(
    tmp_path: Path, op: str, shape: list[int], inits: dict[str, Any], opset: int = 21, **attrs: Any
) -> Path:
    onnx = pytest.importorskip("onnx")
    np = pytest.importorskip("numpy")
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node(op, ["x", *inits], ["y"], **attrs)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.full(d, 0.5, dtype=np.float32), n) for n, d in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / f"{op}.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("op", "inits", "attrs", "kind", "params", "options"),
    [
        ("LRN", {}, {"size": 5, "alpha": 2e-4, "beta": 0.75, "bias": 2.0}, "lrn", 0, {"k": 2.0}),
        ("DepthToSpace", {}, {"blocksize": 2}, "pixel_shuffle", 0, {"mode": "dcr"}),
        ("DepthToSpace", {}, {"blocksize": 2, "mode": "CRD"}, "pixel_shuffle", 0, {"mode": "crd"}),
        ("SpaceToDepth", {}, {"blocksize": 2}, "pixel_unshuffle", 0, {"mode": "dcr"}),
        ("GroupNormalization", {"s": [8], "b": [8]}, {"num_groups": 2}, "groupnorm", 16, {}),
        ("InstanceNormalization", {"s": [8], "b": [8]}, {}, "instancenorm", 16, {}),
        ("PRelu", {"slope": [8, 1, 1]}, {}, "prelu", 8, {"num_parameters": 8}),
        ("PRelu", {"slope": [1]}, {}, "prelu", 1, {"num_parameters": 1}),
        ("PRelu", {"slope": [6, 4]}, {}, "prelu", 24, {"shared_axes": [1]}),
        ("Elu", {}, {"alpha": 0.5}, "elu", 0, {"alpha": 0.5}),
        ("Selu", {}, {}, "selu", 0, {}),
        ("Mish", {}, {}, "mish", 0, {}),
    ],
)
def test_onnx_operators_built_with_helper(
    tmp_path: Path,
    op: str,
    inits: dict[str, Any],
    attrs: dict[str, Any],
    kind: str,
    params: int,
    options: dict[str, Any],
) -> None:
    path = _helper_model(tmp_path, op, [1, 8, 6, 4], inits, **attrs)
    summary = _ort_check(path)
    row = summary.rows[-1]
    assert (row.type, row.params) == (kind, params)
    layer = summary_layer(path)
    assert options.items() <= layer.items()


def summary_layer(path: Path) -> dict[str, Any]:
    from cnncli.model.readers import ReadOptions
    from cnncli.model.readers.onnx_file import read_onnx

    data = read_onnx(str(path), ReadOptions())
    return dict(data.data["layers"][-1])


@pytest.mark.oracle
def test_opset18_group_normalization_per_group_is_opaque(tmp_path: Path) -> None:
    # Opset 18's GroupNormalization scales per group: no layer type holds that.
    path = _helper_model(
        tmp_path, "GroupNormalization", [1, 8, 6, 4], {"s": [2], "b": [2]}, 18, num_groups=2
    )
    summary = summarize(str(path))
    row = summary.rows[-1]
    assert (row.type, row.params, row.output_shape) == ("opaque", 4, (8, 6, 4))


@pytest.mark.oracle
def test_torch_reader_reads_modules_and_functions(tmp_path: Path) -> None:
    """The torch reader checks every layer's shape and parameters against PyTorch itself."""
    pytest.importorskip("torch")
    path = tmp_path / "net.py"
    path.write_text(
        textwrap.dedent(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F


            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.body = nn.Sequential(
                        nn.Conv2d(3, 16, 3, padding=1), nn.GroupNorm(4, 16),
                        nn.InstanceNorm2d(16, affine=True, track_running_stats=True),
                        nn.PReLU(16), nn.PReLU(), nn.ELU(0.5), nn.SELU(), nn.Softplus(2.0),
                        nn.Mish(), nn.LocalResponseNorm(5), nn.PixelShuffle(2),
                        nn.PixelUnshuffle(2),
                    )
                    self.w = nn.Parameter(torch.ones(16))
                    self.b = nn.Parameter(torch.zeros(16))
                    self.a = nn.Parameter(torch.full((16,), 0.25))

                def forward(self, x):
                    x = F.group_norm(self.body(x), 8, self.w, self.b)
                    x = F.softplus(F.selu(F.elu(F.prelu(x, self.a), 0.3)), beta=3)
                    x = F.local_response_norm(F.mish(x), 3)
                    return F.pixel_unshuffle(F.pixel_shuffle(x, 2), 2)
            """
        )
    )
    summary = summarize(f"{path}:Net", options=_options((3, 8, 8)))
    types = [r.type for r in summary.rows if r.depth == 1] + [
        r.type for r in summary.rows if r.depth == 0 and r.type != "[Sequential]"
    ]
    assert "opaque" not in types
    assert types.count("prelu") == 3 and types.count("groupnorm") == 2
    assert {"lrn", "mish", "softplus", "elu", "selu", "pixel_shuffle"} <= set(types)
    assert summary.totals.params == 16 * 27 + 16 + 32 + 64 + 16 + 1 + 32 + 16


def _options(shape: tuple[int, ...]) -> Any:
    from cnncli.model.readers import ReadOptions

    return ReadOptions(input_shape=shape)


@pytest.mark.oracle
def test_keras_reader(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    L = keras.layers  # noqa: N806
    x = keras.Input((8, 8, 16))
    y = L.GroupNormalization(groups=4)(x)
    y = L.PReLU()(y)
    y = L.PReLU(shared_axes=[1, 2])(y)
    y = L.ELU(alpha=0.5)(y)
    for name in ("elu", "selu", "softplus", "mish"):
        y = L.Activation(name)(y)
    y = L.Conv2D(4, 1, activation="selu")(y)
    model = keras.Model(x, y)
    path = tmp_path / "m.keras"
    model.save(path)
    summary = summarize(str(path))
    assert [r.type for r in summary.rows] == [
        "groupnorm",
        "prelu",
        "prelu",
        "elu",
        "elu",
        "selu",
        "softplus",
        "mish",
        "conv2d",
    ]
    assert summary.totals.params == model.count_params()
    for row, layer in zip(summary.rows, model.layers[1:], strict=True):
        assert row.output_shape == tuple(layer.output.shape[1:])
        assert row.params == layer.count_params()


# -- convert and errors ---------------------------------------------------------------------------


def test_convert_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "all.yaml"
    src.write_text(ALL_TORCH)
    code, out, err = run(["convert", src, "-o", tmp_path / "back.yaml"], capsys)
    assert code == 0, err
    assert "the same when read back" in out + err
    a, b = summarize(str(src)), summarize(str(tmp_path / "back.yaml"))
    assert [(r.type, r.output_shape, r.params) for r in a.rows] == [
        (r.type, r.output_shape, r.params) for r in b.rows
    ]


@pytest.mark.oracle
def test_convert_to_pytorch_builds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    import importlib.util

    src = tmp_path / "all.yaml"
    src.write_text(ALL_TORCH)
    code, _, err = run(["convert", src, "-o", tmp_path / "all_model.py"], capsys)
    assert code == 0, err
    spec = importlib.util.spec_from_file_location("all_model", tmp_path / "all_model.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.All().eval()
    y = model(torch.randn(1, 3, 16, 16))
    summary = summarize(str(src))
    assert tuple(y.shape[1:]) == summary.rows[-1].output_shape
    assert sum(p.numel() for p in model.parameters()) + 32 == summary.totals.params


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("{type: groupnorm, groups: 3}", "groupnorm needs channels divisible by groups"),
        ("{type: groupnorm}", "groupnorm needs the option 'groups'"),
        ("{type: prelu, num_parameters: 3}", "num_parameters 3 is neither 1 nor the 16 channels"),
        ("{type: prelu, num_parameters: 1, shared_axes: [1]}", "not both"),
        ("{type: prelu, shared_axes: [4]}", "shared_axes [4] does not fit"),
        ("{type: softplus, beta: 0}", "beta must be a finite number > 0"),
        ("{type: elu, alpha: x}", "alpha must be a finite number"),
        ("{type: lrn}", "lrn needs the option 'size'"),
        ("{type: lrn, size: 0}", "size must be a whole number ≥ 1"),
        ("{type: pixel_shuffle, factor: 3}", "needs channels divisible by 3² = 9"),
        ("{type: pixel_unshuffle, factor: 4}", "pixel_unshuffle by 4 needs sizes divisible by 4"),
        ("{type: pixel_shuffle, factor: 2, mode: abc}", "mode must be crd (PyTorch's order)"),
        ("{type: instancenorm, affine: 1}", "affine must be true or false"),
    ],
)
def test_bad_options_are_one_line_errors(
    layer: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"input: [16, 8, 6]\nlayers:\n  - {layer}\n")
    code, out, err = run(["summary", path], capsys)
    assert code == 1 and not out
    assert err.startswith("cnncli: error: ") and err.count("\n") == 1
    assert message in err, err


def test_instancenorm_and_lrn_need_spatial_axes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for layer in ("{type: instancenorm}", "{type: lrn, size: 3}"):
        path = tmp_path / "flat.yaml"
        path.write_text(f"input: [16]\nlayers:\n  - {layer}\n")
        code, _, err = run(["summary", path, "--json"], capsys)
        assert code == 1 and "needs spatial axes" in err


def test_json_counts_no_macs() -> None:
    data = json.loads(json.dumps([r.macs for r in summarize_text(ALL_TORCH, "a.yaml").rows]))
    assert data[0] > 0 and not any(data[1:])
