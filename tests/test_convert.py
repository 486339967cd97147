"""``cnncli convert``: YAML that counts as the source (every zoo model, flat and with blocks found
again), the blocks it finds, PyTorch source that builds and agrees with ``--verify`` layer by
layer, and the command's refusals."""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from clirun import run  # tests/clirun.py
from hypothesis import given, settings
from hypothesis import strategies as st

from cnncli.model import Summary, load_yaml, summarize, summarize_text, zoo_names
from cnncli.model.convert import model_data
from cnncli.render.convert import pytorch_source, write_yaml, yaml_text

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "samples" / "models" / "example.yaml"
PYTHON = sys.executable


def plain(value: Any) -> Any:
    """Options as plain values (an expression's decimal result is a float subclass)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float):
        return float(value)
    return value


def numbers(summary: Summary) -> dict[str, Any]:
    """What a conversion must keep: totals, inputs, output shapes, and per layer (dependency
    order) its type, canonical options, flags, output, parameters and MACs."""
    rows = {r.name: r for r in summary.layers()}
    layers = []
    for node in summary.nodes:
        row = rows.get(node.name)
        if row is None:
            continue
        options = plain({k: v for k, v in node.opts.items() if k != "_type"})
        layers.append(
            (
                row.type,
                repr(options),
                node.trainable,
                row.training_only,
                row.output_shape,
                row.output_shapes,
                row.params,
                row.trainable_params,
                row.macs,
                row.bias_macs,
            )
        )
    return {
        "totals": summary.totals,
        "inputs": summary.inputs,
        "layout": (summary.layout, summary.framework),
        "outputs": list(summary.outputs.values()),
        "layers": layers,
    }


def converted(summary: Summary, blocks: bool = True) -> tuple[str, Summary]:
    text = yaml_text(model_data(summary, blocks), [])
    return text, summarize_text(text, f"{summary.name}.yaml")


def _blocks(text: str) -> dict[str, Any]:
    return dict(load_yaml(text, "converted").get("blocks") or {})


# -- YAML: every zoo model --------------------------------------------------------------------


@pytest.mark.parametrize("name", zoo_names())
def test_zoo_model_flattened_and_blocked_again_counts_the_same(name: str) -> None:
    original = summarize(name)
    want = numbers(original)
    flat_text, flat = converted(original, blocks=False)
    assert not _blocks(flat_text)
    assert numbers(flat) == want
    # From the flat file (as an ONNX or PyTorch reader gives it): blocks found again.
    blocked_text, blocked = converted(flat)
    assert numbers(blocked) == want
    assert blocked.totals.params == original.totals.params  # spelled out for the reader


def test_resnet50_flattened_comes_back_with_blocks(tmp_path: Path) -> None:
    flat_text, flat = converted(summarize("resnet50"), blocks=False)
    assert flat_text.count("\n  - {type:") == 175  # every layer listed
    data = load_yaml(yaml_text(model_data(flat), []), "r50")
    blocks = data["blocks"]
    # A projecting bottleneck (first of each stage) and the plain one, each with its width.
    assert sorted(blocks) == ["residual", "residual_2"]
    assert blocks["residual"]["params"] == {"filters": 64, "stride": 1}
    assert blocks["residual_2"]["params"] == {"filters": 64}
    conv3 = next(layer for layer in blocks["residual_2"]["layers"] if layer.get("name") == "conv3")
    assert conv3["filters"] == "$filters * 4"
    calls = [(c["block"], c.get("repeat", 1), c["filters"]) for c in data["layers"] if "block" in c]
    assert calls == [
        ("residual", 1, 64),
        ("residual_2", 2, 64),
        ("residual", 1, 128),
        ("residual_2", 3, 128),
        ("residual", 1, 256),
        ("residual_2", 5, 256),
        ("residual", 1, 512),
        ("residual_2", 2, 512),
    ]
    assert len(data["layers"]) == 4 + 8 + 3  # stem, the calls, head


def test_dense_layers_repeat_without_parameters() -> None:
    data = model_data(summarize("densenet121"))
    repeats = [c.get("repeat") for c in data["layers"] if c.get("block") == "dense"]
    assert repeats == [6, 12, 24, 16]  # DenseNet-121's (6, 12, 24, 16)
    assert "params" not in data["blocks"]["dense"]


def test_first_differs_and_then_repeats() -> None:
    # SqueezeNet 1.0: fire5 (32) then fire6, fire7 (48, 48): one call with first:.
    data = model_data(summarize("squeezenet1_0"))
    call = next(c for c in data["layers"] if c.get("first"))
    assert (call["repeat"], call["filters"], call["first"]) == (3, 48, {"filters": 32})


def test_keras_default_names_are_left_out() -> None:
    data = model_data(summarize("mnist-convnet"))
    assert [item.get("name") for item in data["layers"]] == [None] * 7
    assert data["layout"] == "channels_last" and data["framework"] == "keras"


SMALL = """
name: small
inputs: {image: [3, 32, 32], mask: [1, 32, 32]}
layers:
  - {type: concat, name: both, input: [image, mask]}
  - {type: conv2d, filters: 8, kernel: 3, padding: 1}
  - {type: relu}
  - {type: conv2d, filters: 8, kernel: 3, padding: 1}
  - {type: relu}
  - {type: conv2d, filters: 8, kernel: 3, padding: 1, trainable: false}
  - {type: relu}
  - {type: split, name: halves, chunks: 2}
  - {type: conv2d, name: branch, input: halves.1, filters: 4, kernel: 1}
  - {type: concat, input: [halves.0, branch]}
  - {type: channel_shuffle, groups: 2}
  - {type: dropout, name: aux_drop, input: relu_1, training_only: true}
  - {type: global_avgpool, input: channel_shuffle}
  - {type: dense, units: 10, activation: softmax}
"""


def test_inputs_splits_and_flags_survive() -> None:
    original = summarize_text(SMALL, "small.yaml")
    for blocks in (True, False):
        text, again = converted(original, blocks)
        assert numbers(again) == numbers(original), text
    data = model_data(original, blocks=False)
    assert list(data["inputs"]) == ["image", "mask"]
    frozen = [i for i, item in enumerate(data["layers"]) if item.get("trainable") is False]
    assert frozen == [5]  # the third conv2d (its default name conv2d_2 is left out)
    flags = {item.get("name"): item for item in data["layers"]}
    assert flags["aux_drop"]["training_only"] is True
    assert flags["branch"]["input"] == "halves.1"


SHUFFLE = """
input: [16, 16, 16]
layers:
""" + "".join(
    f"""  - {{type: split, name: halves{i}, chunks: 2}}
  - {{type: conv2d, name: branch{i}, input: halves{i}.1, filters: 8, kernel: 3, padding: 1}}
  - {{type: relu, name: act{i}}}
  - {{type: concat, name: join{i}, input: [halves{i}.0, act{i}]}}
  - {{type: channel_shuffle, name: shuffle{i}, groups: 2}}
"""
    for i in range(4)
)


def test_a_block_holding_a_split() -> None:
    original = summarize_text(SHUFFLE, "shuffle.yaml")
    text, again = converted(original)
    assert numbers(again) == numbers(original)
    data = load_yaml(text, "shuffle")
    (block,) = data["blocks"].values()
    assert [layer.get("input") for layer in block["layers"]] == [
        None,
        "halves0.1",
        None,
        ["halves0.0", "act0"],
        None,
    ]
    assert (
        data["layers"] == [{"block": "split_conv2d_relu", "repeat": 4}] or len(data["layers"]) == 1
    )


def test_reader_notes_go_into_the_header() -> None:
    summary = summarize("lenet5")
    summary.notes = ["batchnorm folded into the convolutions by the exporter"]
    text = write_yaml(summary, "lenet5.onnx").text
    assert (
        "# Read from the source: batchnorm folded into the convolutions by the exporter\n" in text
    )


#: Pieces of a random model: each a few layers in the format (``{w}`` a width, ``{n}`` a number
#: that keeps names unique).
PIECES = {
    "conv": "  - {{type: conv2d, filters: {w}, kernel: 3, padding: same}}\n",
    "bn": "  - {{type: batchnorm}}\n",
    "relu": "  - {{type: relu}}\n",
    "pool": "  - {{type: maxpool2d, kernel: 3, stride: 1, padding: same}}\n",
    "res": "  - {{type: conv2d, name: a{n}, filters: {w}, kernel: 1}}\n"
    "  - {{type: conv2d, name: b{n}, filters: {w}, kernel: 3, padding: same}}\n"
    "  - {{type: add, name: s{n}, input: [a{n}, b{n}]}}\n",
}


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.sampled_from(sorted(PIECES)), min_size=1, max_size=4),
    st.lists(st.integers(1, 4), min_size=1, max_size=4),
    st.integers(2, 4),
    st.booleans(),
)
def test_random_repeated_models_count_the_same(
    unit: list[str], widths: list[int], times: int, last: bool
) -> None:
    shape = "[8, 8, 3]" if last else "[3, 8, 8]"
    layout = "channels_last" if last else "channels_first"
    text = f"input: {shape}\nlayout: {layout}\nframework: tf\nlayers:\n"
    n = 0
    for w in widths * times:
        for piece in unit:
            text += PIECES[piece].format(w=4 * w, n=n)
            n += 1
    original = summarize_text(text, "random.yaml")
    for blocks in (True, False):
        assert numbers(converted(original, blocks)[1]) == numbers(original)


def test_random_models_get_blocks() -> None:
    # The property above is not vacuous: such a model is written with a repeated block.
    text = "input: [3, 8, 8]\nlayers:\n" + "".join(
        PIECES["res"].format(w=8, n=n) + PIECES["relu"].format() for n in range(4)
    )
    data = model_data(summarize_text(text, "res.yaml"))
    assert [c.get("repeat") for c in data["layers"]] == [4]


def test_parameters_name_differing_values_and_multiples() -> None:
    text = """
input: [3, 64, 64]
layers:
""" + "".join(
        f"  - {{type: conv2d, filters: {w}, kernel: 1}}\n"
        f"  - {{type: conv2d, filters: {w * 2}, kernel: 3, padding: 1}}\n"
        "  - {type: relu}\n"
        for w in (8, 24, 40, 56, 72, 88)
    )
    data = model_data(summarize_text(text, "widths.yaml"))
    block = next(iter(data["blocks"].values()))
    assert block["params"] == {"filters": 8}
    assert [layer.get("filters") for layer in block["layers"]] == ["$filters", "$filters * 2", None]
    assert [c["filters"] for c in data["layers"]] == [8, 24, 40, 56, 72, 88]


def test_write_yaml_reads_back_and_says_so() -> None:
    written = write_yaml(summarize("vgg16"), "vgg16")
    assert written.text.startswith("# vgg16: written by `cnncli convert` from vgg16")
    assert "138,357,544 params" in written.text
    assert written.report.endswith("the same when read back")
    assert max(len(line) for line in written.text.splitlines()) <= 100


def test_long_layers_wrap_inside_the_flow_mapping() -> None:
    text = write_yaml(summarize("googlenet"), "googlenet").text
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert any(line.startswith("         ") and line.rstrip().endswith("}") for line in lines)


# -- PyTorch source ---------------------------------------------------------------------------

#: Models whose written module is built and compared: every helper class, split, merges,
#: training-only layers, both layouts.
PYTORCH_MODELS = [
    "mnist-convnet",
    "lenet5",
    "resnet50",
    "googlenet",
    "inception_v3",
    "mobilenet_v2",
    "convnext_tiny",
    "regnet_y_400mf",
    "keras-efficientnetb0",
    "keras-xception",
    "keras-nasnetmobile",
    str(EXAMPLE),
]

LAYOUT = """
input: [16, 16, 4]
layout: channels_last
framework: keras
layers:
  - {type: BatchNormalization, scale: false}
  - {type: BatchNormalization, center: false}
  - {type: Rescaling, scale: [1, 2, 3, 4], offset: 0.5}
  - {type: Normalization}
  - {type: cropping2d, cropping: [[1, 0], [0, 1]]}
  - {type: zeropad2d, padding: [[0, 1], [1, 0]]}
  - {type: conv2d, filters: 8, kernel: 3, strides: 2, padding: same}
  - {type: Conv2DTranspose, filters: 4, kernel: 3, strides: 2, padding: same}
  - {type: permute, dims: [2, 1, 3]}
  - {type: reshape, shape: [16, 64]}
  - {type: dense, units: 6}
  - {type: mean, axes: [1]}
"""

TORCH_ODDS = """
input: [4, 12, 12]
layers:
  - {type: split, name: s, sizes: [1, 3]}
  - {type: conv2d, input: s.1, filters: 3, kernel: 3, padding: 1}
  - {type: concat, input: [s.0, conv2d]}
  - {type: channel_shuffle, groups: 2}
  - {type: upsample, scale: 2, mode: bilinear}
  - {type: avgpool2d, kernel: 3, stride: 2, padding: 1, ceil_mode: true}
  - {type: layernorm}
  - {type: layer_scale}
  - {type: zeropad2d, padding: [[0, 1], [1, 0]]}
  - {type: maxpool2d, kernel: 2, dilation: 1}
  - {type: global_maxpool, keepdims: true}
  - {type: flatten}
  - {type: leaky_relu, negative_slope: 0.2}
"""


def _import(path: Path, cls: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"written_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, cls)


def _summary(model: str) -> Summary:
    if model in ("layout", "torch-odds"):
        return summarize_text(LAYOUT if model == "layout" else TORCH_ODDS, f"{model}.yaml")
    return summarize(model)


@pytest.mark.oracle
@pytest.mark.parametrize("model", [*PYTORCH_MODELS, "layout", "torch-odds"])
def test_written_module_builds_and_agrees_with_verify(model: str, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from cnncli.model.torch_check import check

    summary = _summary(model)
    source = pytorch_source(summary, model)
    path = tmp_path / "written.py"
    path.write_text(source.text)
    with torch.device("meta"):
        net = _import(path, source.class_name)().eval()
    seen: dict[str, Any] = {}

    def hook(name: str) -> Any:
        def record(module: Any, args: Any, out: Any) -> None:
            seen[name] = (
                tuple(tuple(t.shape[1:]) for t in out)
                if isinstance(out, tuple)
                else tuple(out.shape[1:])
            )

        return record

    for name, child in net.named_children():
        child.register_forward_hook(hook(name))
    inputs = [
        torch.zeros((1, *s.out.shape.dims(False)), device="meta")
        for s in summary.nodes
        if s.is_input
    ]
    with torch.no_grad():
        out = net(*inputs)
    checks = {c.name: c for c in check(summary)}
    rows = {r.name: r for r in summary.layers()}
    assert set(source.attributes) == set(checks) == set(rows)
    for layer, attribute in source.attributes.items():
        c = checks[layer]
        assert c.ok, c
        if attribute is None:  # a merge, computed in forward
            assert rows[layer].type in ("add", "multiply", "concat")
            continue
        module = getattr(net, attribute)
        count = sum(p.numel() for p in module.parameters()) + sum(
            b.numel() for n, b in module.named_buffers() if not n.endswith("num_batches_tracked")
        )
        assert count == c.torch_params == rows[layer].params, layer
        if not rows[layer].training_only:  # auxiliary branches do not run in eval mode
            assert seen[attribute] == c.torch_shape, layer
    outs = out if isinstance(out, tuple) else (out,)
    assert [tuple(t.shape[1:]) for t in outs] == [
        next(n for n in summary.nodes if n.name == name).out.shape.dims(False)
        for name in summary.outputs
    ]
    total = sum(p.numel() for p in net.parameters()) + sum(
        b.numel() for n, b in net.named_buffers() if not n.endswith("num_batches_tracked")
    )
    assert total == summary.totals.params


NORM_ACT_DEFAULTS = """\
input: [16, 8, 8]
layers:
  - {type: groupnorm, groups: 4}
  - {type: instancenorm}
  - {type: elu}
  - {type: softplus}
  - {type: lrn, size: 5}
  - {type: groupnorm, groups: 2, eps: 0.001, affine: false}
  - {type: instancenorm, affine: true, track_running_stats: true}
  - {type: elu, alpha: 0.5}
  - {type: softplus, beta: 2, threshold: 10}
  - {type: lrn, size: 3, alpha: 0.001, beta: 0.5, k: 2}
"""


def test_written_module_leaves_out_torch_defaults_of_the_norms_and_activations() -> None:
    """Each module at torch.nn's defaults is written without keywords (the defaults are
    torch.nn's: test_torch_defaults_are_torchs); the others with the keywords that differ."""
    families = {"GroupNorm", "InstanceNorm", "ELU", "Softplus", "LocalResponseNorm"}
    text = pytorch_source(summarize_text(NORM_ACT_DEFAULTS, "m.yaml"), "m").text
    calls = re.findall(r"nn\.(\w+)\((.*)\)", text)
    written = [(cls, args) for cls, args in calls if re.sub(r"[123]d$", "", cls) in families]
    assert written[:5] == [
        ("GroupNorm", "4, 16"),
        ("InstanceNorm2d", "16"),
        ("ELU", ""),
        ("Softplus", ""),
        ("LocalResponseNorm", "5"),
    ]
    assert written[5:] == [
        ("GroupNorm", "2, 16, eps=0.001, affine=False"),
        ("InstanceNorm2d", "16, affine=True, track_running_stats=True"),
        ("ELU", "alpha=0.5"),
        ("Softplus", "beta=2.0, threshold=10.0"),
        ("LocalResponseNorm", "3, alpha=0.001, beta=0.5, k=2.0"),
    ]


@pytest.mark.oracle
def test_written_module_runs_for_real(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = tmp_path / "mnist.py"
    path.write_text(pytorch_source(summarize("mnist-convnet"), "mnist-convnet").text)
    done = subprocess.run([PYTHON, str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 10)"


@pytest.mark.oracle
def test_written_module_trains_its_aux_branch_only_in_training(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    source = pytorch_source(summarize("inception_v3"), "inception_v3")
    path = tmp_path / "inception.py"
    path.write_text(source.text)
    with torch.device("meta"):
        net = _import(path, source.class_name)()
    x = torch.zeros(2, 3, 299, 299, device="meta")
    with torch.no_grad():
        main, aux = net.train()(x)
        only = net.eval()(x)
    assert tuple(main.shape) == tuple(aux.shape) == tuple(only.shape) == (2, 1000)


def test_written_source_is_readable() -> None:
    text = pytorch_source(summarize("resnet50"), "resnet50").text
    assert "class Resnet50(nn.Module):" in text
    assert (
        "        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)"
        in text
    )
    assert "        x = self.conv1(x)  # (64, 112, 112)" in text
    assert "        layer1_0_relu3 = self.layer1_0_relu3(x)  # (256, 56, 56)" in text  # read twice
    assert "        x = x + layer1_0_relu3  # (256, 56, 56)" in text
    assert "import torch.nn.functional" not in text  # only what the file uses
    assert "class Pad" not in text
    keras = pytorch_source(summarize("keras-efficientnetb0"), "keras-efficientnetb0").text
    assert "class Pad(nn.Module):" in keras and "import torch.nn.functional as F" in keras


@pytest.mark.oracle
def test_written_source_passes_ruff(tmp_path: Path) -> None:
    ruff = Path(PYTHON).parent / "ruff"
    if not ruff.exists():
        pytest.skip("ruff is not installed next to this Python")
    for model in ("mnist-convnet", "keras-efficientnetb0", "inception_v3"):
        path = tmp_path / f"{model.replace('-', '_')}.py"
        path.write_text(pytorch_source(summarize(model), model).text)
    done = subprocess.run(
        [
            str(ruff),
            "check",
            "--isolated",
            "--select",
            "E,W,F,I,B,UP",
            "--ignore",
            "E501",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout


@pytest.mark.oracle
def test_torch_defaults_are_torchs() -> None:
    torch = pytest.importorskip("torch")
    from cnncli.render.convert import MODULE_ATTRIBUTES, TORCH_DEFAULTS

    for family, defaults in TORCH_DEFAULTS.items():
        cls = getattr(torch.nn, family, None) or getattr(torch.nn, f"{family}2d")
        signature = inspect.signature(cls.__init__).parameters
        for key, value in defaults.items():
            assert signature[key].default == value, (family, key)
    public = {n for n in dir(torch.nn.Module) if not n.startswith("_")}
    assert public <= MODULE_ATTRIBUTES


@pytest.mark.oracle
def test_helper_sources_are_the_helper_classes() -> None:
    pytest.importorskip("torch")
    from cnncli.model.torch_modules import HELPERS
    from cnncli.render.convert import helper_sources

    assert list(helper_sources()) == [h.__name__ for h in HELPERS]
    for helper in HELPERS:
        assert helper_sources()[helper.__name__] == inspect.getsource(helper).rstrip()


def test_names_become_python_identifiers() -> None:
    from cnncli.render.convert import class_name

    assert class_name("mnist-convnet") == "MnistConvnet"
    assert class_name("3d-net") == "Model3dNet"
    assert class_name("pad") == "PadModel"  # not a helper class's name
    text = """
input: [3, 8, 8]
layers:
  - {type: conv2d, name: class, filters: 4, kernel: 1}
  - {type: relu, name: forward}
  - {type: relu, name: x}
  - {type: relu, name: training}
"""
    source = pytorch_source(summarize_text(text, "odd.yaml"), "odd.yaml")
    assert list(source.attributes.values()) == ["class_", "forward_", "x_", "training_"]


# -- the command ------------------------------------------------------------------------------


def test_convert_writes_yaml_and_python(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r50.yaml"
    code, stdout, err = run(["convert", "resnet50", "-o", out], capsys)
    assert code == 0, err
    assert err == ""
    assert stdout == (
        f"resnet50 → {out}: 15 entries using 2 blocks; 25,610,152 params, 4,089,184,256 MACs, "
        "the same when read back\n"
    )
    assert numbers(summarize(str(out))) == numbers(summarize("resnet50"))
    py = tmp_path / "r50.py"
    code, stdout, err = run(["convert", out, "-o", py], capsys)
    assert code == 0, err
    assert stdout == (
        f"{out} → {py}: class Resnet50, 159 modules; 25,610,152 params, 4,089,184,256 MACs "
        f"(run it: python {py})\n"
    )
    compile(py.read_text(), str(py), "exec")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r50.py", "r50.yaml"]  # no temp files


def test_convert_flat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "flat.yml"
    code, stdout, _ = run(["convert", "lenet5", "-o", out, "--flat"], capsys)
    assert code == 0
    assert "12 layers;" in stdout
    assert "blocks:" not in out.read_text()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-o", "{tmp}/x.txt"], 2, "cannot tell what to write from the name"),
        (["-o", "{tmp}/x.py", "--flat"], 2, "--flat is for YAML output"),
        (["-o", "{tmp}/missing/x.yaml"], 1, "does not exist"),
        (["-o", "{tmp}/exists.yaml"], 1, "already exists; use --force"),
    ],
)
def test_convert_refusals(
    args: list[str], code: int, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "exists.yaml").write_text("keep me\n")
    got, stdout, err = run(["convert", "lenet5", *[a.format(tmp=tmp_path) for a in args]], capsys)
    assert got == code
    assert stdout == ""
    assert err.startswith("cnncli: error: ") and message in err and err.count("\n") == 1
    assert (tmp_path / "exists.yaml").read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.yaml"]


def test_convert_never_writes_over_its_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.yaml"
    model.write_text(EXAMPLE.read_text())
    code, _, err = run(["convert", model, "-o", model, "--force"], capsys)
    assert code == 1
    assert "is an input of this run" in err
    assert model.read_text() == EXAMPLE.read_text()


def test_convert_unknown_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["convert", "resnet5", "-o", tmp_path / "x.yaml"], capsys)
    assert code == 1
    assert "unknown model 'resnet5'" in err
    assert not (tmp_path / "x.yaml").exists()


def test_convert_help_lists_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["convert", "--help"], capsys)
    assert code == 0
    assert "cnncli convert resnet50 -o resnet50.yaml" in out
    assert "its code runs" in " ".join(out.split())


def test_convert_does_not_import_heavy_modules(tmp_path: Path) -> None:
    script = (
        "import sys; from cnncli.cli import main\n"
        "try:\n"
        f"    main(['convert', 'resnet18', '-o', {str(tmp_path / 'x.py')!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('numpy', 'numba', 'PIL', 'torch', 'onnx') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert re.search(r"class Resnet18\(nn.Module\)", (tmp_path / "x.py").read_text())
