"""Layer types: shapes, params and MACs by hand, then every type built by PyTorch."""

from __future__ import annotations

from textwrap import dedent

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnncli.errors import ModelError
from cnncli.model import Summary, summarize_text
from cnncli.model.layers import LAYER_TYPES, Ctx, TShape, canonical_options, compute, layer_type


def run(kind: str, inputs: list[TShape], ctx: Ctx | None = None, **opts: object):  # type: ignore[no-untyped-def]
    t = layer_type(kind)
    return compute(
        t,
        canonical_options(t, dict(opts)),
        inputs,
        [f"x{i}" for i in range(len(inputs))],
        ctx or Ctx(),
    )


def test_aliases_reach_the_same_type() -> None:
    for name in ("Conv2D", "conv2d", "CONV2D"):
        assert layer_type(name).name == "conv2d"
    assert layer_type("BatchNorm2d").name == "batchnorm"
    assert layer_type("Linear").name == "dense"
    assert layer_type("MaxPooling2D").name == "maxpool2d"
    assert layer_type("Conv2DTranspose").name == "convtranspose2d"
    assert layer_type("GlobalAveragePooling2D").name == "global_avgpool"
    assert layer_type("swish").name == "silu"
    assert layer_type("Concatenate").name == "concat"


def test_every_listed_type_exists() -> None:
    wanted = {
        "conv1d", "conv2d", "conv3d", "depthwise_conv2d", "convtranspose2d", "maxpool2d",
        "avgpool2d", "global_avgpool", "global_maxpool", "adaptive_avgpool", "batchnorm",
        "layernorm", "relu", "relu6", "leaky_relu", "sigmoid", "tanh", "softmax", "gelu", "silu",
        "hardswish", "hardsigmoid", "dropout", "flatten", "dense", "zeropad2d", "upsample", "add",
        "concat", "multiply", "identity",
    }  # fmt: skip
    assert wanted <= set(LAYER_TYPES)


def test_conv_counts_from_arithmetic() -> None:
    out = run(
        "conv2d", [TShape(3, (224, 224))], filters=64, kernel=7, stride=2, padding=3, bias=False
    )
    assert out.shape == TShape(64, (112, 112))
    assert (out.trainable, out.macs, out.bias_macs) == (9408, 118_013_952, 0)


def test_grouped_depthwise_and_dilated() -> None:
    g = run("conv2d", [TShape(32, (10, 10))], filters=64, kernel=3, groups=4, padding=1)
    assert g.trainable == 3 * 3 * 8 * 64 + 64
    d = run("depthwise_conv2d", [TShape(32, (10, 10))], kernel=3, depth_multiplier=2)
    assert (d.shape, d.trainable) == (TShape(64, (8, 8)), 9 * 64 + 64)
    dil = run("conv2d", [TShape(1, (10, 10))], filters=1, kernel=3, dilation=2)
    assert dil.shape.spatial == (6, 6)


def test_transposed_counted_on_its_input() -> None:
    out = run(
        "convtranspose2d",
        [TShape(8, (4, 4))],
        filters=4,
        kernel=3,
        stride=2,
        padding=1,
        output_padding=1,
    )
    assert out.shape == TShape(4, (8, 8))
    assert out.macs == 4 * 4 * 8 * 9 * 4


def test_batchnorm_two_and_two() -> None:
    out = run("batchnorm", [TShape(64, (7, 7))])
    assert (out.trainable, out.non_trainable, out.macs) == (128, 128, 0)
    assert run("batchnorm", [TShape(64, ())], affine=False).trainable == 0


def test_dense_flat_and_per_position_channels_last() -> None:
    flat = run("dense", [TShape(1600)], units=10)
    assert (flat.trainable, flat.macs, flat.bias_macs) == (16_010, 16_000, 10)
    per_pos = run("dense", [TShape(6, (8, 8))], Ctx(channels_last=True), units=3)
    assert (per_pos.shape, per_pos.trainable, per_pos.macs) == (TShape(3, (8, 8)), 21, 64 * 18)


def test_dense_over_the_channels_of_a_channels_first_input() -> None:
    # ConvNeXt's Linear between two permutes: the same numbers as channels last, weight (out, in).
    want = run("dense", [TShape(6, (8, 8))], Ctx(channels_last=True), units=3)
    for axis in ("channels", 1):
        out = run("dense", [TShape(6, (8, 8))], units=3, axis=axis)
        assert (out.shape, out.trainable, out.macs, out.bias_macs) == (
            want.shape,
            want.trainable,
            want.macs,
            want.bias_macs,
        )
    assert run("dense", [TShape(6, (8, 8))], Ctx(channels_last=True), units=3, axis=-1) == want
    assert run("dense", [TShape(1600)], units=10, axis=-1).trainable == 16_010
    with pytest.raises(ModelError, match=r"would act on the last axis, not the channels; .* or "):
        run("dense", [TShape(6, (8, 8))], units=3)
    for axis, ctx in ((-1, Ctx()), (2, Ctx()), (1, Ctx(channels_last=True))):
        with pytest.raises(ModelError, match=f"axis {axis} of .* is not the channel axis"):
            run("dense", [TShape(6, (8, 8))], ctx, units=3, axis=axis)


def test_pools_global_adaptive_flatten() -> None:
    assert run(
        "maxpool2d", [TShape(8, (112, 112))], kernel=3, stride=2, padding=1
    ).shape.spatial == (56, 56)
    assert run(
        "maxpool2d", [TShape(8, (112, 112))], kernel=3, stride=2, ceil_mode=True
    ).shape.spatial == (56, 56)
    assert run("global_avgpool", [TShape(8, (7, 7))]).shape == TShape(8, ())
    assert run("global_maxpool", [TShape(8, (7, 7))], keepdims=True).shape == TShape(8, (1, 1))
    assert run("adaptive_avgpool", [TShape(8, (13, 13))], output_size=[6, 4]).shape == TShape(
        8, (6, 4)
    )
    assert run("flatten", [TShape(8, (7, 7))]).shape == TShape(392, ())


def test_zeropad_and_upsample() -> None:
    assert run("zeropad2d", [TShape(3, (5, 5))], padding=[[1, 2], [0, 3]]).shape.spatial == (8, 8)
    assert run("upsample", [TShape(3, (5, 6))], scale=2).shape.spatial == (10, 12)
    assert run("upsample", [TShape(3, (5, 6))], size=[7, 9]).shape.spatial == (7, 9)


def test_merges() -> None:
    a, b = TShape(4, (8, 8)), TShape(4, (1, 1))
    assert run("multiply", [a, b]).shape == a
    assert run("concat", [a, TShape(6, (8, 8))]).shape == TShape(10, (8, 8))
    with pytest.raises(
        ModelError,
        match=r"^add needs equal shapes, but 'x0' is \(4, 8, 8\) and 'x1' is \(4, 1, 1\)$",
    ):
        run("add", [a, b])
    with pytest.raises(ModelError, match="^add needs two or more inputs, got 1"):
        run("add", [a])


def test_dropout_rate_checked() -> None:
    with pytest.raises(ModelError, match="^rate must be a number from 0 to below 1, got 1.5$"):
        run("dropout", [TShape(3)], rate=1.5)


# ---- every type, built by PyTorch -------------------------------------------------------------

MODELS = {
    "every_type": """
        input: [4, 33, 31]
        layers:
          - {type: zeropad2d, padding: [[1, 2], [0, 3]]}
          - {type: conv2d, filters: 8, kernel: [3, 5], stride: 2, padding: [1, 2], dilation: [2, 1]}
          - {type: depthwise_conv2d, kernel: 3, depth_multiplier: 2, padding: same}
          - {type: conv2d, filters: 16, kernel: 3, groups: 4, padding: 1, bias: false}
          - {type: batchnorm}
          - {type: leaky_relu, negative_slope: 0.2}
          - {type: convtranspose2d, filters: 8, kernel: 3, stride: 2, padding: 1, output_padding: 1}
          - {type: avgpool2d, kernel: 3, stride: 2, padding: 1, ceil_mode: true}
          - {type: maxpool2d, kernel: 3, stride: 2, dilation: 2, ceil_mode: true}
          - {type: upsample, scale: 3, mode: bilinear}
          - {type: layernorm}
          - {type: gelu}
          - {type: identity}
          - {type: relu6}
          - {type: adaptive_avgpool, output_size: [5, 3], name: ada}
          - {type: conv2d, name: a, filters: 8, kernel: 1, activation: silu}
          - {type: sigmoid, name: s, input: ada}
          - {type: multiply, input: [a, s]}
          - {type: adaptive_maxpool, output_size: 2}
          - {type: global_maxpool, keepdims: true}
          - {type: tanh}
          - {type: flatten}
          - {type: dense, units: 7, bias: false}
          - {type: hardswish}
          - {type: hardsigmoid}
          - {type: dropout, rate: 0.1}
          - {type: activation, function: swish}
          - {type: dense, units: 5, activation: softmax}
    """,
    "keras_channels_last": """
        input: [17, 19, 3]
        layout: channels_last
        layers:
          - {type: Conv2D, filters: 8, kernel_size: 3, strides: 2, padding: same, activation: relu}
          - {type: MaxPooling2D, pool_size: 3, strides: 2, padding: same}
          - {type: BatchNormalization}
          - {type: Conv2DTranspose, filters: 4, kernel_size: 3, strides: 2, padding: same}
          - {type: DepthwiseConv2D, kernel_size: 3, padding: valid}
          - {type: Dense, units: 6}
          - {type: LayerNormalization}
          - {type: GlobalAveragePooling2D}
          - {type: Dense, units: 3}
    """,
    "keras_issue_11": """
        input: [23, 29, 3]
        layout: channels_last
        layers:
          - {type: Rescaling, scale: 0.00392156862745098, offset: -0.5}
          - {type: Normalization}
          - {type: Rescaling, scale: [0.5, 1.0, 2.0]}
          - {type: SeparableConv2D, filters: 8, kernel_size: 3, strides: 2, padding: same,
             depth_multiplier: 2, activation: relu}
          - {type: BatchNormalization, scale: false}
          - {type: SeparableConv2D, filters: 6, kernel_size: [3, 5], use_bias: false, dilation_rate: 2}
          - {type: BatchNormalization, center: false}
          - {type: Cropping2D, cropping: [[1, 0], [0, 2]], name: crop}
          - {type: ZeroPadding2D, padding: [[1, 1], [1, 1]]}
          - {type: Cropping2D, cropping: 1}
          - {type: mean, axes: [1, 2], keepdims: true, name: squeezed}
          - {type: Reshape, shape: [-1]}
          - {type: Reshape, shape: [1, 1, 6]}
          - {type: Dense, units: 6, activation: sigmoid, name: gate}
          - {type: multiply, input: [crop, gate]}
          - {type: Permute, dims: [2, 1, 3]}
          - {type: Normalization, axis: [1, 3]}
          - {type: Normalization, axis: null}
          - {type: Normalization, mean: 0.5, variance: 4}
          - {type: mean, axes: channels}
          - {type: Reshape, shape: [-1, 5]}
          - {type: Cropping1D}
          - {type: Cropping1D, cropping: [0, 2]}
          - {type: SeparableConv1D, filters: 4, kernel_size: 2, depth_multiplier: 3}
    """,
    "channels_first_issue_11": """
        input: [4, 6, 7, 8]
        layers:
          - {type: Cropping3D}
          - {type: Cropping3D, cropping: [[0, 1], 1, [2, 0]]}
          - {type: batchnorm, scale: false, momentum: 0.1}
          - {type: mean, dim: [2, 3], keepdim: false}
          - {type: permute, dims: [0, 2, 1]}
          - {type: reshape, shape: [2, -1, 4]}
          - {type: batchnorm, center: false}
          - {type: Rescaling, scale: 2}
          - {type: mean, axes: -1}
          - {type: flatten}
    """,
    "torch_issue_11": """
        input: [24, 15, 15]
        blocks:
          shuffle_unit:
            layers:
              - {type: chunk, chunks: 2, name: halves}
              - {type: conv2d, input: halves.1, filters: 12, kernel: 1, bias: false}
              - {type: batchnorm}
              - {type: depthwise_conv2d, kernel: 3, padding: 1, bias: false}
              - {type: conv2d, filters: 12, kernel: 1, bias: false, name: branch}
              - {type: concat, input: [halves.0, branch]}
              - {type: ChannelShuffle, groups: 2}
          convnext:
            layers:
              - {type: depthwise_conv2d, kernel: 7, padding: 3}
              - {type: layernorm, eps: 1e-6}
              - {type: conv2d, filters: 96, kernel: 1}
              - {type: gelu}
              - {type: conv2d, filters: 24, kernel: 1}
              - {type: layer_scale, init: 1e-6}
              - {type: StochasticDepth, p: 0.1, mode: row, name: drop}
              - {type: add, input: [input, drop]}
          tail:
            output: parts.2
            layers:
              - {type: split, sizes: [4, 12, 8], name: parts}
        layers:
          - {block: shuffle_unit, name: stage, repeat: 2}
          - {block: convnext, name: cn}
          - {block: tail, name: t}
          - {type: split, chunks: 4, name: skipped, if: false}
          - {type: relu, input: skipped.3}
          - {type: mean, axes: [-2, -1], keepdims: true}
          - {type: flatten}
    """,
    "one_d": """
        input: [2, 50]
        layers:
          - {type: conv1d, filters: 4, kernel: 5, padding: causal, dilation: 2}
          - {type: maxpool1d, kernel: 2}
          - {type: avgpool1d, kernel: 3, stride: 2, padding: 1}
          - {type: zeropad1d, padding: [[2, 1]]}
          - {type: convtranspose1d, filters: 3, kernel: 4, stride: 3}
          - {type: batchnorm}
          - {type: global_avgpool}
    """,
    "three_d": """
        input: [2, 9, 10, 11]
        layers:
          - {type: conv3d, filters: 4, kernel: 3, stride: [1, 2, 2], padding: 1}
          - {type: batchnorm}
          - {type: avgpool3d, kernel: 2}
          - {type: maxpool3d, kernel: 2, ceil_mode: true}
          - {type: convtranspose3d, filters: 2, kernel: 2, stride: 2}
          - {type: upsample, size: [9, 10, 11], mode: trilinear}
          - {type: global_avgpool}
    """,
}


def _build(name: str) -> Summary:
    return summarize_text(dedent(MODELS[name]), f"{name}.yaml")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_build(name: str) -> None:
    s = _build(name)
    assert s.totals.params == sum(r.params for r in s.layers())


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_every_type_against_torch(name: str, device: str) -> None:
    pytest.importorskip("torch")
    from cnncli.model.torch_check import check

    s = _build(name)
    checks = check(s, device)
    assert len(checks) == len(s.layers())
    assert [c for c in checks if not c.ok] == []


@pytest.mark.oracle
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(5, 40),
    cin=st.sampled_from([1, 2, 4, 6]),
    cout=st.sampled_from([2, 4, 6]),
    kernel=st.integers(1, 5),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    pad=st.integers(0, 2),
    groups=st.sampled_from([1, 2]),
    pool=st.sampled_from(["maxpool2d", "avgpool2d"]),
    ceil=st.booleans(),
    transposed=st.booleans(),
)
def test_random_layers_against_torch(
    size: int, cin: int, cout: int, kernel: int, stride: int, dilation: int, pad: int,
    groups: int, pool: str, ceil: bool, transposed: bool,
) -> None:  # fmt: skip
    pytest.importorskip("torch")
    from cnncli.model.torch_check import check

    kind = "convtranspose2d" if transposed else "conv2d"
    op = f", output_padding: {stride - 1}" if transposed else ""
    text = (
        f"input: [{cin}, {size}, {size + 1}]\nlayers:\n"
        f"  - {{type: {kind}, filters: {cout}, kernel: {kernel}, stride: {stride}, padding: {pad}, "
        f"dilation: {dilation}, groups: {groups if cin % groups == 0 else 1}{op}}}\n"
        f"  - {{type: {pool}, kernel: 2, stride: 2, ceil_mode: {str(ceil).lower()}}}\n"
    )
    try:
        s = summarize_text(text, "r.yaml")
    except ModelError:
        # cnncli refuses: PyTorch must refuse the same layers.
        import torch

        g = groups if cin % groups == 0 else 1
        conv = (
            torch.nn.ConvTranspose2d(
                cin, cout, kernel, stride, pad, stride - 1, g, dilation=dilation
            )
            if transposed
            else torch.nn.Conv2d(cin, cout, kernel, stride, pad, dilation, g)
        )
        pool = getattr(torch.nn, "MaxPool2d" if pool == "maxpool2d" else "AvgPool2d")(
            2, 2, ceil_mode=ceil
        )
        with pytest.raises(RuntimeError):
            pool(conv(torch.zeros(1, cin, size, size + 1)))
        return
    assert all(c.ok for c in check(s))


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("conv2d", {"filters": 4.0, "kernel": 3}, "filters must be a whole number ≥ 1, got 4.0"),
        ("conv2d", {"filters": True, "kernel": 3}, "filters must be a whole number ≥ 1, got True"),
        (
            "conv2d",
            {"filters": 4, "kernel_size": [3, "3"]},
            "kernel_size must be a whole number ≥ 1 or a list of 1 to 3 of them, e.g. 3 or "
            "[3, 3], got [3, '3']",
        ),
        (
            "conv2d",
            {"filters": 4, "kernel": [3, 3, 3, 3]},
            "kernel must be a whole number ≥ 1 or a list of 1 to 3 of them, e.g. 3 or [3, 3], "
            "got [3, 3, 3, 3]",
        ),
        (
            "conv2d",
            {"filters": 4, "kernel": 3, "bias": "yes"},
            "bias must be true or false, got 'yes'",
        ),
        (
            "conv2d",
            {"filters": 4, "kernel": 3, "activation": 1},
            "activation must be a name, got 1",
        ),
        ("batchnorm", {"eps": float("inf")}, "eps must be a finite number > 0, e.g. 1e-5, got inf"),
        ("concat", {"axis": 1.5}, "axis must be channels or an axis number, got 1.5"),
        (
            "upsample",
            {"size": [2**70]},
            "size [1180591620717411303424] is absurdly large; use a realistic size",
        ),
        (
            "dense",
            {"units": list(range(100))},
            "units must be a whole number ≥ 1, got a list of 100 items",
        ),
    ],
)
def test_option_types_checked(kind: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(ModelError) as exc:
        canonical_options(LAYER_TYPES[kind], options)
    assert str(exc.value) == message


# ---- issue #11 types: split outputs and the rest ----------------------------------------------


def test_split_rows_show_every_output() -> None:
    from cnncli.render.summary import outputs_text, to_csv, to_dict

    s = _build("torch_issue_11")
    rows = {r.name: r for r in s.layers()}
    halves = rows["stage.0.halves"]
    assert halves.output_shapes == ((12, 15, 15), (12, 15, 15))
    assert halves.output_shape == (24, 15, 15)  # together: what the activation memory counts
    assert outputs_text(halves) == "2 × (12, 15, 15)"
    assert outputs_text(rows["t.parts"]) == "(4, 15, 15) + (12, 15, 15) + (8, 15, 15)"
    assert rows["stage.0.conv2d"].inputs == ("stage.0.halves.1",)
    assert rows["stage.0.concat"].inputs == ("stage.0.halves.0", "stage.0.branch")
    # The block's output is the split's third output; the switched-off split passes it on.
    assert rows["relu"].input_shapes == ((8, 15, 15),) and rows["relu"].inputs == ("t.parts.2",)
    assert "skipped" not in rows
    layer = next(x for x in to_dict(s)["layers"] if x["name"] == "t.parts")
    assert layer["output_shapes"] == [[4, 15, 15], [12, 15, 15], [8, 15, 15]]
    assert "output_shapes" not in next(x for x in to_dict(s)["layers"] if x["name"] == "relu")
    assert ",4x15x15+12x15x15+8x15x15," in to_csv(s)
    assert rows["cn.layer_scale"].trainable_params == 24


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (
            ["{type: split, chunks: 4}", "{type: relu, input: split.0}"],
            "3:5: layer 'split' (split): torch.chunk cuts 6 channels into 3 pieces of [2, 2, 2], "
            "not 4; give the sizes instead, e.g. sizes: [2, 2, 2]",
        ),
        (
            ["{type: split, sizes: [2, 3]}"],
            "3:5: layer 'split' (split): sizes [2, 3] add up to 5, but the input (6, 4) has 6 "
            "channels; the sizes must add up to the channels",
        ),
        (
            ["{type: split}"],
            "3:5: layer 'split' (split): split takes chunks: N (as torch.chunk) or sizes: "
            "[a, b, …] (as torch.split), one of them",
        ),
        (
            ["{type: split, chunks: 2, sizes: [3, 3]}"],
            "3:5: layer 'split' (split): split takes chunks: N (as torch.chunk) or sizes: "
            "[a, b, …] (as torch.split), one of them",
        ),
        (
            ["{type: split, chunks: 2}", "{type: relu}"],
            "4:5: layer 'relu' (relu): reads the split 'split', which has the outputs split.0, "
            "split.1; name one with input: split.0",
        ),
        (
            ["{type: split, chunks: 2}", "{type: relu, input: split.2}"],
            "4:5: layer 'relu' takes input 'split.2', which is not defined here; did you mean "
            "split.1, split.0, split?",
        ),
        (
            ["{type: split, chunks: 2, axis: 2}"],
            "3:5: layer 'split' (split): split cuts along the channels only; drop axis 2 or use "
            "axis: channels",
        ),
        (
            ["{type: channel_shuffle, groups: 4}"],
            "3:5: layer 'channel_shuffle' (channel_shuffle): channel_shuffle needs channels "
            "divisible by groups, but the input (6, 4) has 6 channels and groups is 4",
        ),
        (
            ["{type: stochastic_depth, mode: col}"],
            "3:5: mode must be row or batch, got 'col'",
        ),
    ],
)
def test_issue_11_torch_types_refuse(layers: list[str], message: str) -> None:
    text = "input: [6, 4]\nlayers:\n" + "".join(f"  - {layer}\n" for layer in layers)
    with pytest.raises(ModelError) as exc:
        summarize_text(text, "m.yaml")
    assert str(exc.value) == f"m.yaml:{message}"
