"""``cnncli summary --verify`` on channels-last Keras models: built with Keras 3 layers.

The oracle is Keras itself: each model file is built as a Keras user writes it (keras.Input,
Conv2D, BatchNormalization, … in the functional API, weights built, never trained) by
:mod:`cnncli.model.keras_check`, and every layer's output shape and (trainable, non-trainable)
weight counts must equal cnncli's. The zoo's Keras models are also held to the totals Keras
reports for ``keras.applications`` (tests/test_zoo_keras.py, which checks them against Keras).

Keras runs on the torch backend unless ``KERAS_BACKEND`` says otherwise (the backend is chosen
once per process, as tests/test_zoo_keras.py does); the verdict names the backend either way.
"""

from __future__ import annotations

import builtins
import functools
import importlib.util
import os
import re
import subprocess
import sys
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from clirun import run  # tests/clirun.py
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_zoo_keras import KERAS_ZOO

import cnncli.model.layers as layers
from cnncli.model import Summary, summarize, summarize_text
from cnncli.model import keras_check as kc

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _model(body: str, head: str = "input: [12, 10, 4]") -> str:
    return f"{head}\nlayout: channels_last\nframework: keras\nlayers:\n{body}"


def _summary(body: str, head: str = "input: [12, 10, 4]") -> Summary:
    return summarize_text(_model(body, head), "case.yaml")


# -- which builder -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "keras"),
    [
        ("mnist-convnet", True),
        ("keras-resnet50", True),
        ("lenet5", False),
        ("resnet18", False),
    ],
)
def test_keras_builds_channels_last_keras_models_only(source: str, keras: bool) -> None:
    assert kc.applies(summarize(source)) is keras


def test_channels_last_tf_and_channels_first_keras_go_to_pytorch() -> None:
    body = "  - {type: conv2d, filters: 2, kernel: 3}\n"
    tf = summarize_text(f"input: [8, 8, 1]\nlayout: channels_last\nframework: tf\nlayers:\n{body}")
    first = summarize_text(f"input: [1, 8, 8]\nframework: keras\nlayers:\n{body}")
    assert not kc.applies(tf) and not kc.applies(first)


def test_importing_the_builder_imports_no_keras() -> None:
    code = (
        "import sys\n"
        "import cnncli.model.keras_check\n"
        "from cnncli.cli import main\n"
        "try:\n    main(['summary', 'keras-efficientnetb0', '--json'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow', 'torch')), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip() == "[]"


# -- without Keras -------------------------------------------------------------------------------


def test_verify_without_keras(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "keras", None)  # import keras now raises ImportError
    code, out, err = run(["summary", "mnist-convnet", "--verify"], capsys)
    assert (code, out) == (1, "")
    assert err == (
        "cnncli: error: --verify builds channels-last Keras models with Keras, which is not "
        "installed; install it (pip install keras) or drop --verify\n"
    )


def test_verify_with_a_backend_that_is_not_installed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # What `import keras` raises when KERAS_BACKEND names a backend that is not installed
    # (checked by hand with KERAS_BACKEND=jax: "No module named 'jax'").
    real = builtins.__import__

    def fake(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "keras":
            raise ModuleNotFoundError("No module named 'jax'", name="jax")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    code, out, err = run(["summary", "mnist-convnet", "--verify"], capsys)
    assert (code, out) == (1, "")
    assert err == (
        "cnncli: error: --verify builds channels-last Keras models with Keras, whose backend "
        "cannot be imported (No module named 'jax'); install it, or choose an installed one "
        "with KERAS_BACKEND=torch, jax or tensorflow\n"
    )


def test_verify_with_keras_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old = types.ModuleType("keras")
    old.__version__ = "2.15.0"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keras", old)
    code, out, err = run(["summary", "mnist-convnet", "--verify"], capsys)
    assert (code, out) == (1, "")
    assert err == (
        "cnncli: error: --verify builds channels-last Keras models with Keras 3, but Keras "
        "2.15.0 is installed; upgrade it (pip install -U keras) or drop --verify\n"
    )


@pytest.mark.oracle
def test_the_users_channels_first_setting_is_not_used_and_is_kept() -> None:
    keras = _keras()
    before = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        assert all(c.ok for c in kc.check(summarize("mnist-convnet")))
        assert keras.config.image_data_format() == "channels_first"
    finally:
        keras.config.set_image_data_format(before)


# -- the zoo -------------------------------------------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(KERAS_ZOO))
def test_every_keras_zoo_model_verifies(name: str) -> None:
    keras = _keras()
    s = summarize(name)
    model, checks = kc.build_model(s)
    bad = [c for c in checks if not c.ok]
    assert not bad, bad[:3]
    assert [c.name for c in checks] == [r.name for r in s.layers()]
    # The built model holds exactly the weights keras.applications reports for this model.
    want = KERAS_ZOO[name]
    assert model.count_params() == want.total
    assert kc._count(model.trainable_weights) == want.trainable
    assert kc._count(model.non_trainable_weights) == want.non_trainable
    assert [tuple(t.shape[1:]) for t in model.outputs] == [want.output]
    assert kc.verdict(s, model, checks) == (
        f"verified with Keras {keras.__version__} ({keras.backend.backend()} backend): all "
        f"{want.layers} layers agree on output shape and parameters (Total params "
        f"{want.total:,}: trainable {want.trainable:,}, non-trainable {want.non_trainable:,}; "
        "shapes channels last, as Keras computes them)"
    )


@pytest.mark.oracle
def test_mnist_convnet_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    keras = _keras()
    code, out, err = run(["summary", "mnist-convnet", "--verify"], capsys)
    assert code == 0, err
    assert out.rstrip().splitlines()[-1] == (
        f"verified with Keras {keras.__version__} ({keras.backend.backend()} backend): all 7 "
        "layers agree on output shape and parameters (Total params 34,826: trainable 34,826, "
        "non-trainable 0; shapes channels last, as Keras computes them)"
    )
    # Machine-readable output stays clean: the verdict goes to stderr.
    code, out, err = run(["summary", "mnist-convnet", "--verify", "--csv"], capsys)
    assert code == 0 and err.startswith("verified with Keras") and "verified" not in out


# -- small models, every type ----------------------------------------------------------------------

#: One small channels-last Keras model per group of layer types (input 12x10x4 unless given).
CASES: dict[str, tuple[str, str]] = {
    "normalisation, activations and pixel shuffles": (
        "input: [8, 8, 4]",
        """
  - {type: groupnorm, groups: 2, eps: 0.001}
  - {type: instancenorm, affine: true}
  - {type: prelu, shared_axes: [1, 2]}
  - {type: elu}
  - {type: selu}
  - {type: softplus}
  - {type: mish}
  - {type: pixel_shuffle, factor: 2}
  - {type: pixel_unshuffle, factor: 2}
""",
    ),
    "conv1d": (
        "input: [20, 3]",
        """
  - {type: conv1d, filters: 4, kernel: 3}
  - {type: conv1d, filters: 4, kernel: 4, stride: 2, padding: same}
  - {type: conv1d, filters: 6, kernel: 3, padding: causal, dilation: 2, groups: 2}
  - {type: Conv1D, filters: 2, kernel_size: 1, use_bias: false, activation: relu}
""",
    ),
    "conv2d": (
        "input: [12, 10, 4]",
        """
  - {type: conv2d, filters: 8, kernel: [3, 5], stride: [2, 1], padding: same}
  - {type: conv2d, filters: 8, kernel: 3, dilation: [2, 1], groups: 4, bias: false, activation: gelu}
  - {type: Conv2D, filters: 4, kernel_size: 2, strides: 3, padding: valid, activation: hard_swish}
""",
    ),
    "conv3d": (
        "input: [6, 9, 10, 2]",
        """
  - {type: conv3d, filters: 3, kernel: [1, 3, 3], stride: [1, 2, 2], padding: same}
  - {type: conv3d, filters: 4, kernel: 2, activation: sigmoid}
""",
    ),
    "depthwise and separable": (
        "input: [15, 11, 6]",
        """
  - {type: depthwise_conv2d, kernel: 3, depth_multiplier: 2, stride: 2, padding: same}
  - {type: DepthwiseConv2D, kernel_size: [1, 3], use_bias: false, activation: relu6}
  - {type: separable_conv2d, filters: 5, kernel: 3, depth_multiplier: 3, padding: same, bias: false}
  - {type: SeparableConv2D, filters: 7, kernel_size: 2, strides: 2, activation: silu}
  - {type: reshape, shape: [-1, 7]}
  - {type: depthwise_conv1d, kernel: 3, padding: same}
  - {type: separable_conv1d, filters: 4, kernel: 2, depth_multiplier: 2}
""",
    ),
    "transposed": (
        "input: [4, 3, 2]",
        """
  - {type: convtranspose2d, filters: 4, kernel: 3, stride: 2}
  - {type: Conv2DTranspose, filters: 4, kernel_size: [3, 4], strides: [2, 3], padding: same}
  - {type: convtranspose2d, filters: 2, kernel: 3, stride: 2, output_padding: 1, bias: false}
  - {type: convtranspose2d, filters: 2, kernel: 2, dilation: 2}
  - {type: adaptive_avgpool, output_size: [4, 3]}
  - {type: reshape, shape: [-1, 2]}
  - {type: convtranspose1d, filters: 3, kernel: 3, stride: 2, padding: same}
  - {type: reshape, shape: [2, 3, 4, 3]}
  - {type: convtranspose3d, filters: 2, kernel: 2, stride: [1, 2, 2]}
""",
    ),
    "pooling": (
        "input: [13, 11, 3]",
        """
  - {type: maxpool2d, kernel: 2}
  - {type: MaxPooling2D, pool_size: 3, strides: 1, padding: same}
  - {type: avgpool2d, kernel: [2, 3], stride: [1, 2], padding: same}
  - {type: AveragePooling2D, pool_size: 2}
  - {type: reshape, shape: [-1, 3]}
  - {type: maxpool1d, kernel: 3, stride: 2, padding: same}
  - {type: avgpool1d, kernel: 2}
  - {type: reshape, shape: [1, 1, -1, 3]}
  - {type: maxpool3d, kernel: 1}
  - {type: avgpool3d, kernel: [1, 1, 2], padding: same}
""",
    ),
    "global and adaptive pooling": (
        "input: [12, 10, 4]",
        """
  - {type: adaptive_avgpool, output_size: 3}
  - {type: adaptive_maxpool, output_size: [2, 1]}
  - {type: global_maxpool, keepdims: true}
  - {type: GlobalAveragePooling2D}
""",
    ),
    "normalisation": (
        "input: [12, 10, 4]",
        """
  - {type: Rescaling, scale: [0.5, 0.25, 2, 1], offset: -1}
  - {type: normalization}
  - {type: Normalization, axis: null}
  - {type: normalization, axis: [1, 3]}
  - {type: normalization, mean: 0.5, variance: 2}
  - {type: batchnorm}
  - {type: BatchNormalization, scale: false, eps: 0.001, momentum: 0.9}
  - {type: batchnorm, center: false}
  - {type: batchnorm, affine: false}
  - {type: batchnorm, trainable: false}
  - {type: layernorm, eps: 1e-6}
  - {type: LayerNormalization, affine: false}
  - {type: dense, units: 3, trainable: false}
""",
    ),
    "dense, flatten, dropout, identity": (
        "input: [6, 5, 4]",
        """
  - {type: dense, units: 7}
  - {type: dense, units: 3, bias: false, activation: softmax}
  - {type: dropout, rate: 0.25}
  - {type: identity}
  - {type: flatten}
  - {type: Dense, units: 10, activation: tanh}
""",
    ),
    "padding and cropping": (
        "input: [12, 10, 4]",
        """
  - {type: zeropad2d, padding: [[0, 1], [2, 3]]}
  - {type: ZeroPadding2D, padding: 2}
  - {type: cropping2d, cropping: [[1, 0], [2, 1]]}
  - {type: Cropping2D, cropping: 2}
  - {type: reshape, shape: [-1, 4]}
  - {type: zeropad1d, padding: [[3, 1]]}
  - {type: cropping1d, cropping: [2, 0]}
  - {type: cropping1d}
  - {type: reshape, shape: [3, -1, 2, 4]}
  - {type: zeropad3d, padding: [1, [0, 2], 0]}
  - {type: cropping3d, cropping: [[0, 1], 0, [1, 0]]}
  - {type: cropping3d, cropping: 0}
""",
    ),
    "reshape, permute, mean": (
        "input: [12, 10, 4]",
        """
  - {type: permute, dims: [2, 1, 3]}
  - {type: Permute, dims: [0, 3, 1, 2]}
  - {type: mean, axes: [1], keepdims: true}
  - {type: mean, axes: -1}
  - {type: reshape, shape: [5, 2, -1]}
  - {type: mean, axes: [1, 2]}
""",
    ),
    "split and concat": (
        "input: [8, 8, 6]",
        """
  - {type: split, name: halves, chunks: 2}
  - {type: conv2d, name: branch, input: halves.1, filters: 3, kernel: 3, padding: same}
  - {type: concat, name: joined, input: [halves.0, branch]}
  - {type: split, name: parts, sizes: [1, 2, 3]}
  - {type: Concatenate, input: [parts.2, parts.0, joined]}
""",
    ),
    "merges with two inputs": (
        "inputs: {image: [8, 8, 3], mask: [8, 8, 1]}",
        """
  - {type: conv2d, name: a, input: image, filters: 4, kernel: 3, padding: same}
  - {type: conv2d, name: b, input: mask, filters: 4, kernel: 1}
  - {type: add, name: sum, input: [a, b]}
  - {type: global_avgpool, name: squeeze, keepdims: true}
  - {type: multiply, name: gated, input: [sum, squeeze]}
  - {type: Multiply, name: again, input: [gated, a, b]}
  - {type: concat, input: [again, image, mask]}
""",
    ),
    "activations": (
        "input: [6, 5, 4]",
        """
  - {type: relu}
  - {type: relu6}
  - {type: leaky_relu, negative_slope: 0.2}
  - {type: sigmoid}
  - {type: tanh}
  - {type: softmax}
  - {type: gelu}
  - {type: silu}
  - {type: hardswish}
  - {type: hardsigmoid}
  - {type: activation, function: swish}
  - {type: Activation, function: linear}
""",
    ),
    "upsampling": (
        "input: [6, 5, 4]",
        """
  - {type: upsample}
  - {type: UpSampling2D, scale: [2, 3], mode: bilinear}
  - {type: upsample, size: [30, 20], mode: nearest}
  - {type: reshape, shape: [-1, 4]}
  - {type: upsample, scale: 3}
  - {type: reshape, shape: [10, 12, -1, 4]}
  - {type: upsample, scale: [1, 2, 1]}
""",
    ),
    "switched off and blocks": (
        "input: [12, 10, 4]",
        """
  - {type: conv2d, filters: 4, kernel: 3, if: false}
  - {block: unit, repeat: 2, first: {stride: 2}}
""",
    ),
}
_BLOCKS = """blocks:
  unit:
    params: {stride: 1}
    layers:
      - {type: conv2d, filters: $in_channels * 2, kernel: 3, stride: $stride, padding: same}
      - {type: batchnorm, eps: 1e-3}
      - {type: relu}
      - {type: conv2d, filters: $in_channels, kernel: 1, if: $stride - 1}
"""


def _case(name: str) -> Summary:
    head, body = CASES[name]
    if name == "switched off and blocks":
        head = f"{head}\n{_BLOCKS}"
    return _summary(body, head)


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(CASES))
def test_small_models_agree_with_keras_layer_by_layer(name: str) -> None:
    _keras()
    s = _case(name)
    model, checks = kc.build_model(s)
    assert [c.name for c in checks] == [r.name for r in s.layers()]
    bad = [c for c in checks if not c.ok]
    assert not bad, bad[:3]
    t = s.totals
    assert f"(Total params {t.params:,}: trainable {t.trainable_params:,}, non-trainable " in (
        kc.verdict(s, model, checks)
    )


def test_the_cases_cover_every_type_keras_has_a_layer_for() -> None:
    text = "\n".join(body for _, body in CASES.values()) + _BLOCKS
    used = {layers.layer_type(t).name for t in _types(text)}
    without = {
        "channel_shuffle",
        "layer_scale",
        "stochastic_depth",
        "depthwise_conv3d",
        "opaque",
        "lrn",
    }
    assert set(layers.LAYER_TYPES) - used == without


def _types(text: str) -> list[str]:
    return re.findall(r"type: (\w+)", text)


# -- what Keras has no layer for -------------------------------------------------------------------


@pytest.mark.oracle
def test_types_with_no_keras_layer_are_named_before_anything_is_built(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    keras = _keras()
    body = """
  - {type: channel_shuffle, name: shuffle, groups: 2}
  - {type: layer_scale, name: scale}
  - {type: conv2d, filters: 4, kernel: 1}
  - {type: stochastic_depth, name: drop, rate: 0.1}
  - {type: batchnorm, name: bn, track_running_stats: false}
"""
    path = tmp_path / "odd.yaml"
    path.write_text(_model(body), encoding="utf-8")
    code, out, err = run(["summary", path, "--verify"], capsys)
    assert (code, out) == (1, "")
    who = f"Keras {keras.__version__} ({keras.backend.backend()} backend)"
    assert err == (
        f"cnncli: error: {path}: --verify: {who} cannot build 4 layers of this model: "
        "'shuffle' (channel_shuffle, line 6: Keras has no channel shuffle layer); "
        "'scale' (layer_scale, line 7: Keras has no public LayerScale layer); "
        "'drop' (stochastic_depth, line 9: Keras has no public StochasticDepth layer) and 1 more; "
        "--verify builds channels-last Keras models with Keras layers only (remove them to "
        "verify the rest)\n"
    )


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("head", "layer", "reason"),
    [
        (
            "input: [4, 4, 2]",
            "{type: convtranspose2d, filters: 4, kernel: 1, groups: 2}",
            "Keras's Conv2DTranspose has no groups",
        ),
        (
            "input: [4, 2]",
            "{type: upsample, scale: 2, mode: linear}",
            "Keras's UpSampling1D repeats values only (mode: nearest)",
        ),
        (
            "input: [4, 2]",
            "{type: upsample, size: 9}",
            "Keras resizes to a given size in 2-D only (Resizing), not 1-D",
        ),
    ],
)
def test_each_missing_keras_layer_says_why(head: str, layer: str, reason: str) -> None:
    _keras()
    with pytest.raises(layers.ModelError) as err:
        kc.check(_summary(f"  - {layer}\n", head))
    assert f"line 5: {reason});" in str(err.value)


def test_a_keras_model_with_a_3d_depthwise_layer_is_refused_before_verify() -> None:
    # Keras has no DepthwiseConv3D: the summary refuses the layer itself (the shape rule of
    # framework: keras), so --verify never gets to build it.
    with pytest.raises(layers.ModelError) as err:
        _summary("  - {type: depthwise_conv3d, kernel: 1}\n", "input: [4, 4, 4, 2]")
    assert "case.yaml:5:5: layer 'depthwise_conv3d' (depthwise_conv3d): Keras has no " in str(
        err.value
    )
    assert "framework torch" in str(err.value) or "framework: torch" in str(err.value)


# -- a wrong answer is caught ----------------------------------------------------------------------


@pytest.mark.oracle
def test_a_wrong_rule_is_reported_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    keras = _keras()
    # Break the dense rule (bias forgotten): --verify must name the first layer and both answers.
    real = layers.LAYER_TYPES["dense"]

    def no_bias(o: dict[str, Any], i: list[layers.TShape], n: list[str], c: layers.Ctx) -> Any:
        out = real.compute(o, i, n, c)
        return replace(out, trainable=out.trainable - o["units"])

    broken = layers.LayerType("dense", no_bias, real.options, real.required)
    monkeypatch.setitem(layers.LAYER_TYPES, "dense", broken)
    code, out, err = run(["summary", "mnist-convnet", "--verify"], capsys)
    assert (code, out) == (1, "")
    who = f"Keras {keras.__version__} ({keras.backend.backend()} backend)"
    assert err.endswith(
        "mnist-convnet.yaml:12: --verify: layer 'dense' (dense): cnncli gives output (10,) and "
        f"16,000 trainable + 0 non-trainable params, {who} gives (10,) and 16,010 + 0\n"
    )
    assert err.startswith("cnncli: error: ") and err.count("\n") == 1


@pytest.mark.oracle
def test_a_wrong_shape_rule_is_reported_with_how_many_more_differ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keras = _keras()
    # Keras's valid pooling floors; a rule that took the ceiling would be off by one.
    real = layers.LAYER_TYPES["maxpool2d"]

    def ceil(o: dict[str, Any], i: list[layers.TShape], n: list[str], c: layers.Ctx) -> Any:
        out = real.compute(o, i, n, c)
        return replace(out, shape=layers.TShape(out.shape.channels, (6, 6)))

    monkeypatch.setitem(
        layers.LAYER_TYPES,
        "maxpool2d",
        layers.LayerType("maxpool2d", ceil, real.options, ("kernel",)),
    )
    text = _model(
        "  - {type: maxpool2d, name: pool, kernel: 2}\n  - {type: conv2d, filters: 2, kernel: 1}\n",
        "input: [11, 11, 3]",
    )
    with pytest.raises(layers.ModelError) as err:
        kc.verify_summary(summarize_text(text, "wrong.yaml"))
    who = f"Keras {keras.__version__} ({keras.backend.backend()} backend)"
    assert str(err.value) == (
        "wrong.yaml:5: --verify: layer 'pool' (maxpool2d): cnncli gives output (6, 6, 3) and 0 "
        f"trainable + 0 non-trainable params, {who} gives (5, 5, 3) and 0 + 0 (1 more layer differs)"
    )


@pytest.mark.oracle
def test_a_combination_keras_refuses_is_reported_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keras = _keras()
    from cnncli import arithmetic

    # Forget every framework refusal: cnncli then accepts a Keras Conv2D with stride 2 and
    # dilation 2, which Keras refuses when the layer is made.
    monkeypatch.setattr(arithmetic, "_REFUSALS", ())
    s = _summary(
        "  - {type: conv2d, name: strided, filters: 2, kernel: 3, stride: 2, dilation: 2}\n"
    )
    with pytest.raises(layers.ModelError) as err:
        kc.verify_summary(s)
    who = f"Keras {keras.__version__} ({keras.backend.backend()} backend)"
    text = str(err.value)
    assert text.startswith(
        f"case.yaml:5:5: --verify: {who} refuses layer 'strided' (conv2d), which cnncli accepts: "
    )
    assert "dilation" in text and "\n" not in text


@pytest.mark.oracle
def test_the_tensorflow_backend_verifies_quietly() -> None:
    _keras()
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    done = subprocess.run(
        [sys.executable, "-m", "cnncli", "summary", "mnist-convnet", "--verify", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    # TensorFlow's start-up log is kept off stderr: the verdict is the one line there.
    assert done.stderr.startswith("verified with Keras 3.") and done.stderr.count("\n") == 1
    assert "(tensorflow backend): all 7 layers agree" in done.stderr


# -- random sliding-window layers ----------------------------------------------------------------

_OPS = ("conv", "convtranspose", "maxpool", "avgpool", "depthwise_conv", "separable_conv")


@st.composite
def _window_layer(draw: st.DrawFn) -> tuple[list[int], dict[str, Any]]:
    """One sliding-window layer of a channels-last Keras model, and its input's spatial sizes."""
    op = draw(st.sampled_from(_OPS))
    nd = draw(st.integers(1, 2 if op in ("depthwise_conv", "separable_conv") else 3))
    each = functools.partial(st.lists, min_size=nd, max_size=nd)
    sizes = draw(each(st.integers(1, 16)))
    stride = draw(each(st.integers(1, 3)))
    # Causal: Conv1D only. Keras's DepthwiseConv1D and SeparableConv1D refuse it, and cnncli
    # accepts it for them (a disagreement reported, not modelled here yet).
    modes = ["valid", "same"] + (["causal"] if nd == 1 and op == "conv" else [])
    layer: dict[str, Any] = {
        "type": f"{op}{nd}d",
        "kernel": draw(each(st.integers(1, 5))),
        "stride": stride,
        "padding": draw(st.sampled_from(modes)),
    }
    if op.endswith("conv") or op == "convtranspose":
        layer["dilation"] = draw(each(st.integers(1, 3)))
    if op in ("conv", "convtranspose", "separable_conv"):
        layer["filters"] = draw(st.integers(1, 4))
    if op == "depthwise_conv" or op == "separable_conv":
        layer["depth_multiplier"] = draw(st.integers(1, 2))
    if op == "convtranspose" and draw(st.booleans()):
        layer["output_padding"] = [draw(st.integers(0, s - 1)) for s in stride]
    return sizes, layer


@pytest.mark.oracle
@settings(max_examples=80, deadline=None)
@given(_window_layer(), st.integers(1, 4))
def test_random_window_layers_agree_with_keras(
    case: tuple[list[int], dict[str, Any]], channels: int
) -> None:
    """Whatever cnncli accepts for a Keras model, Keras builds with the same shape and weights."""
    _keras()
    sizes, layer = case
    options = ", ".join(f"{k}: {v}" for k, v in layer.items())
    try:
        s = _summary(f"  - {{{options}}}\n", f"input: {[*sizes, channels]}")
    except layers.ModelError:
        assume(False)  # refused by cnncli (kernel larger than the input, stride with dilation…)
        return
    checks = kc.check(s)
    assert all(c.ok for c in checks), checks


@pytest.mark.oracle
def test_the_docs_example_is_what_verify_prints() -> None:
    keras = _keras()
    doc = (ROOT / "docs" / "model-format.md").read_text(encoding="utf-8")
    found = re.search(
        r"^\$ cnncli summary (\S+) --verify \| tail -1\n(verified with Keras .*)$", doc, re.M
    )
    assert found, "docs/model-format.md shows a Keras --verify example"
    # The docs show one version and backend; the rest of the line is what this run prints.
    shown = re.sub(r"Keras \S+ \(\w+ backend\)", kc.framework_label(keras), found[2])
    assert kc.verify_summary(summarize(found[1])) == shown
