"""The layer types of #11 against the real layers: Keras 3 (torch backend) builds each Keras type
and PyTorch / torchvision each PyTorch type, for many option combinations; output shape and
trainable / non-trainable counts must equal cnncli's, and where the framework refuses a layer
cnncli refuses it too."""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnncli.errors import ModelError
from cnncli.model import summarize_text

pytestmark = pytest.mark.oracle

BOUNDED = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def ours(layer: dict[str, Any], shape: tuple[int, ...], last: bool = True) -> tuple[Any, ...]:
    """cnncli's last row for one layer on ``shape``: (output shape, trainable, non-trainable)."""
    text = (
        f"input: {list(shape)}\nlayout: {'channels_last' if last else 'channels_first'}\n"
        f"layers:\n  - {json.dumps(layer)}\n"
    )
    row = summarize_text(text, "o.yaml").layers()[-1]
    return row.output_shape, row.trainable_params, row.non_trainable_params


def of_keras(keras: Any, layer: Any, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """The same for a Keras layer called on ``keras.Input(shape)``."""
    y = layer(keras.Input(shape))
    count = lambda ws: sum(math.prod(w.shape) for w in ws)  # noqa: E731
    return tuple(y.shape[1:]), count(layer.trainable_weights), count(layer.non_trainable_weights)


def agree(keras_make: Any, layer: dict[str, Any], shape: tuple[int, ...], keras: Any) -> None:
    """Equal answers, or both refuse."""
    try:
        want = of_keras(keras, keras_make(), shape)
    except ValueError:
        with pytest.raises(ModelError):
            ours(layer, shape)
        return
    assert ours(layer, shape) == want, (layer, shape)


# ---- Keras types ---------------------------------------------------------------------------


@BOUNDED
@given(
    nd=st.sampled_from([1, 2]),
    size=st.integers(3, 16),
    cin=st.integers(1, 5),
    filters=st.integers(1, 6),
    kernel=st.integers(1, 5),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    padding=st.sampled_from(["valid", "same"]),
    multiplier=st.integers(1, 3),
    bias=st.booleans(),
)
def test_separable_conv(
    keras: Any, nd: int, size: int, cin: int, filters: int, kernel: int, stride: int,
    dilation: int, padding: str, multiplier: int, bias: bool,
) -> None:  # fmt: skip
    shape = (*(size + i for i in range(nd)), cin)
    cls = getattr(keras.layers, f"SeparableConv{nd}D")
    args = {
        "filters": filters,
        "kernel_size": kernel,
        "strides": stride,
        "padding": padding,
        "dilation_rate": dilation,
        "depth_multiplier": multiplier,
        "use_bias": bias,
    }
    layer = {"type": f"SeparableConv{nd}D", **args}
    # Stride > 1 with dilation > 1 included: Keras 3.15's SeparableConv computes it (on the
    # TensorFlow backend at stride 1, then subsampled; tests/test_shape_tf.py runs it there).
    agree(lambda: cls(**args), layer, shape, keras)


def test_separable_conv_macs() -> None:
    # Depthwise (each output position: k·k·Cin·m) plus pointwise (Cin·m·filters), bias excluded.
    s = summarize_text(
        "input: [9, 9, 3]\nlayout: channels_last\nlayers:\n"
        "  - {type: separable_conv2d, filters: 8, kernel: 3, depth_multiplier: 2}\n",
        "m.yaml",
    )
    assert s.totals.macs == 7 * 7 * (3 * 3 * 3 * 2) + 7 * 7 * (3 * 2 * 8)


CROPS = st.one_of(
    st.integers(0, 4),
    st.lists(st.integers(0, 4), min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=3),
)


@BOUNDED
@given(nd=st.sampled_from([1, 2, 3]), sizes=st.lists(st.integers(1, 9), min_size=3, max_size=3),
       cropping=st.one_of(st.none(), CROPS))  # fmt: skip
def test_cropping(keras: Any, nd: int, sizes: list[int], cropping: Any) -> None:
    shape = (*sizes[:nd], 2)
    cls = getattr(keras.layers, f"Cropping{nd}D")
    arg = {} if cropping is None else {"cropping": cropping}
    keras_arg = {k: _tuples(v) for k, v in arg.items()}
    try:
        make = cls(**keras_arg)
    except (ValueError, TypeError):
        # Keras refuses the form itself (e.g. three numbers for Cropping2D).
        with pytest.raises(ModelError):
            ours({"type": f"Cropping{nd}D", **arg}, shape)
        return
    agree(lambda: make, {"type": f"Cropping{nd}D", **arg}, shape, keras)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list | tuple) else value


@pytest.mark.parametrize(
    ("shape", "target"),
    [
        ((4, 6, 8), (48, 4)),
        ((4, 6, 8), (-1, 8)),
        ((4, 6, 8), (1, 1, 192)),
        ((4, 6, 8), (-1,)),
        ((4, 6, 8), (2, -1, 3, 4)),
        ((12,), (1, 1, 12)),
        ((12,), (2, 3, 2)),
        ((4, 6, 8), (5, -1)),
        ((4, 6, 8), (7, 7)),
    ],
)
def test_reshape(keras: Any, shape: tuple[int, ...], target: tuple[int, ...]) -> None:
    layer = {"type": "Reshape", "shape": list(target)}
    agree(lambda: keras.layers.Reshape(target), layer, shape, keras)


@BOUNDED
@given(data=st.data(), rank=st.integers(1, 4))
def test_permute(keras: Any, data: st.DataObject, rank: int) -> None:
    shape = tuple(2 + i for i in range(rank))
    dims = data.draw(st.permutations(list(range(1, rank + 1))))
    agree(
        lambda: keras.layers.Permute(tuple(dims)), {"type": "Permute", "dims": dims}, shape, keras
    )
    # PyTorch's spelling (batch included) gives the same.
    assert ours({"type": "permute", "dims": [0, *dims]}, shape) == ours(
        {"type": "permute", "dims": dims}, shape
    )


@pytest.mark.parametrize(
    "axis", [-1, None, 1, 2, 3, [1, 2], (1, 3), -2, 4, 0], ids=lambda a: f"axis={a}"
)
@pytest.mark.parametrize("given_stats", [False, True])
def test_normalization(keras: Any, axis: Any, given_stats: bool) -> None:
    stats = {"mean": 0.5, "variance": 2.0} if given_stats else {}
    ours_axis = list(axis) if isinstance(axis, tuple) else axis
    try:
        layer = keras.layers.Normalization(axis=axis, **stats)
    except ValueError:
        with pytest.raises(ModelError):
            ours({"type": "Normalization", "axis": ours_axis, **stats}, (5, 6, 3))
        return
    agree(lambda: layer, {"type": "Normalization", "axis": ours_axis, **stats}, (5, 6, 3), keras)


@pytest.mark.parametrize("scale", [1 / 255, 2, [0.5, 1.0, 2.0]])
def test_rescaling(keras: Any, scale: Any) -> None:
    agree(
        lambda: keras.layers.Rescaling(scale, offset=-1.0),
        {"type": "Rescaling", "scale": scale, "offset": -1.0},
        (5, 6, 3),
        keras,
    )


@pytest.mark.parametrize("shape", [(7,), (5, 7), (4, 5, 7), (3, 4, 5, 7)])
@pytest.mark.parametrize(
    ("scale", "center"), [(True, True), (False, True), (True, False), (False, False)]
)
def test_batchnorm_scale_center(
    keras: Any, shape: tuple[int, ...], scale: bool, center: bool
) -> None:
    agree(
        lambda: keras.layers.BatchNormalization(scale=scale, center=center),
        {"type": "BatchNormalization", "scale": scale, "center": center},
        shape,
        keras,
    )


@BOUNDED
@given(rank=st.integers(1, 4), data=st.data(), keepdims=st.booleans())
def test_mean_as_keras_ops(keras: Any, rank: int, data: st.DataObject, keepdims: bool) -> None:
    shape = tuple(2 + i for i in range(rank))
    chosen = sorted(data.draw(st.sets(st.integers(1, rank), min_size=1)))
    # Each axis by its number or counted from the end (-1 is the last).
    axes = [a - rank - 1 if data.draw(st.booleans()) else a for a in chosen]
    layer = {"type": "mean", "axes": axes, "keepdims": keepdims}
    x = keras.Input(shape)
    want = tuple(keras.ops.mean(x, axis=tuple(axes), keepdims=keepdims).shape[1:])
    if not want:  # a scalar per sample: cnncli refuses (no shape without an axis to show)
        with pytest.raises(ModelError):
            ours(layer, shape)
        return
    assert ours(layer, shape) == (want, 0, 0)


# ---- PyTorch types -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch() -> Any:
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def torchvision(torch: Any) -> Any:
    # torchvision's compiled ops do not load with this torch; its Python modules are plain nn.
    torch.library.register_fake = lambda *args, **kwargs: lambda fn: fn
    return pytest.importorskip("torchvision.ops")


def split_model(option: str, value: Any, shape: tuple[int, ...]) -> str:
    """A model reading every output of a split (``NAME.i``) in a concat, in reverse order."""
    count = value if option == "chunks" else len(value)
    reads = ", ".join(f"s.{i}" for i in reversed(range(count)))
    return (
        f"input: {list(shape)}\nlayers:\n  - {{type: split, name: s, {option}: {json.dumps(value)}}}\n"
        f"  - {{type: {'concat' if count > 1 else 'identity'}, input: [{reads}]}}\n"
    )


@BOUNDED
@given(channels=st.integers(1, 40), chunks=st.integers(1, 12), spatial=st.integers(1, 5))
def test_split_chunks_as_torch_chunk(torch: Any, channels: int, chunks: int, spatial: int) -> None:
    shape = (channels, spatial, spatial + 1)
    pieces = torch.zeros(1, *shape, device="meta").chunk(chunks, dim=1)
    text = split_model("chunks", chunks, shape)
    if len(pieces) != chunks:  # torch.chunk gave fewer pieces: cnncli asks for sizes instead
        with pytest.raises(ModelError, match=r"not \d+; give the sizes instead"):
            summarize_text(text, "s.yaml")
        return
    split = summarize_text(text, "s.yaml").layers()[0]
    assert split.output_shapes == tuple(tuple(p.shape[1:]) for p in pieces)
    assert split.output_shape == shape and split.params == 0 and split.macs == 0


@BOUNDED
@given(sizes=st.lists(st.integers(1, 9), min_size=1, max_size=6), extra=st.integers(-2, 2))
def test_split_sizes_as_torch_split(torch: Any, sizes: list[int], extra: int) -> None:
    channels = max(1, sum(sizes) + extra)
    shape = (channels, 3)
    text = split_model("sizes", sizes, shape)
    try:
        pieces = torch.zeros(1, *shape, device="meta").split(sizes, dim=1)
    except RuntimeError:
        with pytest.raises(ModelError, match="must add up to the channels"):
            summarize_text(text, "s.yaml")
        return
    split = summarize_text(text, "s.yaml").layers()[0]
    assert split.output_shapes == tuple(tuple(p.shape[1:]) for p in pieces)


@BOUNDED
@given(channels=st.integers(1, 24), groups=st.integers(1, 8))
def test_channel_shuffle_as_torch(torch: Any, channels: int, groups: int) -> None:
    layer = {"type": "ChannelShuffle", "groups": groups}
    try:
        y = torch.nn.ChannelShuffle(groups)(torch.zeros(1, channels, 4, 5))
    except RuntimeError:
        with pytest.raises(ModelError, match="divisible by groups"):
            ours(layer, (channels, 4, 5), last=False)
        return
    assert ours(layer, (channels, 4, 5), last=False) == (tuple(y.shape[1:]), 0, 0)


@pytest.mark.parametrize("channels", [1, 16, 96, 768])
def test_layer_scale_as_torchvision_convnext(torchvision: Any, channels: int) -> None:
    from torchvision.models.convnext import CNBlock

    block = CNBlock(channels, layer_scale=1e-6, stochastic_depth_prob=0.1)
    want = block.layer_scale.numel()
    layer = {"type": "layer_scale", "layer_scale": 1e-6}
    assert ours(layer, (channels, 7, 7), last=False) == ((channels, 7, 7), want, 0)


@pytest.mark.parametrize("shape", [(5,), (3, 8), (6, 5, 4)])
def test_layer_scale_and_stochastic_depth_as_keras_convnext(
    keras: Any, shape: tuple[int, ...]
) -> None:
    from keras.src.applications.convnext import LayerScale, StochasticDepth

    c = shape[-1]
    assert ours({"type": "LayerScale", "init_values": 1e-6}, shape) == of_keras(
        keras, LayerScale(1e-6, c), shape
    )
    assert ours({"type": "StochasticDepth", "drop_path_rate": 0.1}, shape) == of_keras(
        keras, StochasticDepth(0.1), shape
    )


@pytest.mark.parametrize("mode", ["row", "batch"])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5])
def test_stochastic_depth_as_torchvision(
    torchvision: Any, torch: Any, mode: str, rate: float
) -> None:
    y = torchvision.StochasticDepth(rate, mode).eval()(torch.zeros(2, 6, 4, 5))
    module = torchvision.StochasticDepth(rate, mode)
    want = (tuple(y.shape[1:]), sum(p.numel() for p in module.parameters()), 0)
    assert ours({"type": "StochasticDepth", "p": rate, "mode": mode}, (6, 4, 5), last=False) == want


def test_split_outputs_verified_by_torch(torch: Any) -> None:
    """A ShuffleNetV2 unit (split, a branch on one half, concat, shuffle) built by --verify."""
    from cnncli.model.torch_check import check

    text = (
        "input: [24, 14, 14]\nlayers:\n"
        "  - {type: chunk, chunks: 2, name: halves}\n"
        "  - {type: conv2d, input: halves.1, filters: 12, kernel: 1, bias: false}\n"
        "  - {type: batchnorm}\n  - {type: relu}\n"
        "  - {type: depthwise_conv2d, kernel: 3, padding: 1, bias: false}\n"
        "  - {type: batchnorm}\n"
        "  - {type: conv2d, filters: 12, kernel: 1, bias: false, name: branch}\n"
        "  - {type: concat, input: [halves.0, branch]}\n"
        "  - {type: channel_shuffle, groups: 2}\n"
        "  - {type: split, sizes: [4, 20], name: uneven}\n"
        "  - {type: layer_scale, input: uneven.1}\n"
        "  - {type: stochastic_depth, rate: 0.2}\n"
        "  - {type: mean, axes: [2, 3]}\n"
    )
    s = summarize_text(text, "u.yaml")
    for device in ("meta", "cpu"):
        checks = check(s, device)
        assert len(checks) == len(s.layers()) and all(c.ok for c in checks), checks
    assert s.layers()[0].output_shapes == ((12, 14, 14), (12, 14, 14))


def test_default_names_are_keras_names(keras: Any) -> None:
    """A channels-last model names its layers as Keras does (separable_conv2d, cropping2d, …)."""
    from keras.src.applications.convnext import LayerScale, StochasticDepth

    made = [
        ("SeparableConv1D", keras.layers.SeparableConv1D(2, 1), (5, 2)),
        ("SeparableConv2D", keras.layers.SeparableConv2D(2, 1), (5, 5, 2)),
        ("Cropping1D", keras.layers.Cropping1D(), (5, 2)),
        ("Cropping2D", keras.layers.Cropping2D(), (5, 5, 2)),
        ("Cropping3D", keras.layers.Cropping3D(), (5, 5, 5, 2)),
        ("Reshape", keras.layers.Reshape((-1,)), (5, 2)),
        ("Permute", keras.layers.Permute((2, 1)), (5, 2)),
        ("Rescaling", keras.layers.Rescaling(0.5), (5, 2)),
        ("Normalization", keras.layers.Normalization(), (5, 2)),
        ("BatchNormalization", keras.layers.BatchNormalization(scale=False), (5, 2)),
        ("LayerScale", LayerScale(1e-6, 2), (5, 2)),
        ("StochasticDepth", StochasticDepth(0.1), (5, 2)),
    ]
    for type_name, layer, shape in made:
        extra = {
            "SeparableConv1D": ", filters: 2, kernel: 1",
            "SeparableConv2D": ", filters: 2, kernel: 1",
            "Reshape": ", shape: [-1]",
            "Permute": ", dims: [2, 1]",
            "Rescaling": ", scale: 0.5",
        }.get(type_name, "")
        text = (
            f"input: {list(shape)}\nlayout: channels_last\nlayers:\n"
            f"  - {{type: {type_name}{extra}}}\n"
        )
        row = summarize_text(text, "n.yaml").layers()[0]
        # Keras numbers later instances of a class name_1, name_2 …: compare the base name.
        assert row.name == re.sub(r"_\d+$", "", layer.name), type_name
