"""Property tests against PyTorch: same output shape, and an error exactly where PyTorch raises."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cnncli import arithmetic as ar
from cnncli.errors import CnnCliError

torch = pytest.importorskip("torch")
nn = torch.nn

pytestmark = pytest.mark.oracle

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def per_axis(draw: Any, ndim: int, lo: int, hi: int) -> list[int]:
    return [draw(st.integers(lo, hi)) for _ in range(ndim)]


@st.composite
def layers(draw: Any) -> dict[str, Any]:
    ndim = draw(st.integers(1, 3))
    op = draw(st.sampled_from(["conv", "convtranspose", "maxpool", "avgpool"]))
    size = per_axis(draw, ndim, 1, 12 if ndim == 3 else 20)
    kernel = per_axis(draw, ndim, 1, 5)
    stride = per_axis(draw, ndim, 1, 4)
    dilation = (
        per_axis(draw, ndim, 1, 3) if op in ("conv", "convtranspose", "maxpool") else [1] * ndim
    )
    padding: Any = per_axis(draw, ndim, 0, 4)
    if op == "conv" and draw(st.booleans()):
        padding = draw(st.sampled_from(["valid", "same"]))
    layer = dict(
        ndim=ndim,
        op=op,
        size=size,
        kernel=kernel,
        stride=stride,
        dilation=dilation,
        padding=padding,
    )
    if op == "convtranspose":
        layer["output_padding"] = per_axis(draw, ndim, 0, 3)
    if op in ("maxpool", "avgpool"):
        layer["ceil_mode"] = draw(st.booleans())
    return layer


def torch_shape(layer: dict[str, Any]) -> tuple[int, ...] | None:
    """The spatial output shape PyTorch gives, or None where it raises."""
    ndim, op = layer["ndim"], layer["op"]
    kw: dict[str, Any] = dict(
        kernel_size=layer["kernel"], stride=layer["stride"], padding=layer["padding"]
    )
    try:
        if op == "conv":
            module = getattr(nn, f"Conv{ndim}d")(1, 1, dilation=layer["dilation"], **kw)
        elif op == "convtranspose":
            module = getattr(nn, f"ConvTranspose{ndim}d")(
                1, 1, dilation=layer["dilation"], output_padding=layer["output_padding"], **kw
            )
        elif op == "maxpool":
            module = getattr(nn, f"MaxPool{ndim}d")(
                dilation=layer["dilation"], ceil_mode=layer["ceil_mode"], **kw
            )
        else:
            module = getattr(nn, f"AvgPool{ndim}d")(ceil_mode=layer["ceil_mode"], **kw)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = module(torch.zeros(1, 1, *layer["size"]))
    except (RuntimeError, ValueError):
        return None
    if 0 in y.shape[2:]:
        # ConvTranspose2d/3d return an empty tensor for an output size of 0 where
        # ConvTranspose1d raises; cnncli refuses an empty output for every layer.
        return None
    return tuple(y.shape[2:])


def ours(layer: dict[str, Any]) -> tuple[int, ...] | None:
    try:
        spec = ar.make_spec(
            layer["size"],
            layer["kernel"],
            stride=layer["stride"],
            dilation=layer["dilation"],
            padding=layer["padding"],
            op=layer["op"],
            ceil_mode=layer.get("ceil_mode", False),
            output_padding=layer.get("output_padding"),
        )
        return ar.resolve(spec).output_size
    except CnnCliError:
        return None


@SETTINGS
@given(layers())
@example(  # found in CI: torch gives an empty output here instead of raising
    {
        "ndim": 3,
        "op": "convtranspose",
        "size": [1, 1, 1],
        "kernel": [1, 5, 4],
        "stride": [1, 4, 1],
        "dilation": [1, 1, 1],
        "padding": [0, 4, 0],
        "output_padding": [0, 3, 0],
    }
)
def test_shape_and_refusals_match_torch(layer: dict[str, Any]) -> None:
    assert ours(layer) == torch_shape(layer), layer


@pytest.mark.parametrize(
    "layer",
    [
        # The fixed cases, straight through PyTorch.
        dict(
            ndim=1,
            op="maxpool",
            size=[6],
            kernel=[3],
            stride=[2],
            dilation=[1],
            padding=[0],
            ceil_mode=True,
        ),
        dict(
            ndim=1,
            op="maxpool",
            size=[32],
            kernel=[1],
            stride=[2],
            dilation=[1],
            padding=[0],
            ceil_mode=True,
        ),
        dict(
            ndim=1,
            op="maxpool",
            size=[5],
            kernel=[2],
            stride=[2],
            dilation=[1],
            padding=[1],
            ceil_mode=True,
        ),
        dict(
            ndim=2,
            op="maxpool",
            size=[112, 112],
            kernel=[3, 3],
            stride=[2, 2],
            dilation=[1, 1],
            padding=[0, 0],
            ceil_mode=True,
        ),
        dict(ndim=1, op="conv", size=[7], kernel=[3], stride=[1], dilation=[2], padding=[0]),
        dict(ndim=1, op="conv", size=[7], kernel=[4], stride=[1], dilation=[1], padding="same"),
        dict(
            ndim=1,
            op="convtranspose",
            size=[4],
            kernel=[3],
            stride=[2],
            dilation=[1],
            padding=[1],
            output_padding=[1],
        ),
        dict(
            ndim=1,
            op="convtranspose",
            size=[4],
            kernel=[3],
            stride=[2],
            dilation=[1],
            padding=[1],
            output_padding=[0],
        ),
        dict(ndim=1, op="conv", size=[7], kernel=[5], stride=[1], dilation=[1], padding=[4]),
        dict(ndim=1, op="conv", size=[7], kernel=[3], stride=[2], dilation=[1], padding="same"),
    ],
)
def test_fixed_cases_match_torch(layer: dict[str, Any]) -> None:
    assert ours(layer) == torch_shape(layer)


def test_same_padding_split_matches_torch() -> None:
    # PyTorch pads 'same' with the odd pixel after: compare values, not only shapes.
    x = torch.arange(7.0).reshape(1, 1, 7)
    conv = nn.Conv1d(1, 1, 4, padding="same", bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        y = conv(x)
    ((before, after),) = ar.resolve(ar.make_spec([7], 4, padding="same")).padding
    manual = torch.nn.functional.conv1d(torch.nn.functional.pad(x, (before, after)), conv.weight)
    assert torch.equal(y, manual)


@pytest.mark.parametrize(
    ("cin", "cout", "groups", "bias"), [(3, 64, 1, True), (32, 32, 32, False), (64, 128, 4, True)]
)
def test_params_match_torch(cin: int, cout: int, groups: int, bias: bool) -> None:
    for ndim, op, cls in [
        (2, "conv", nn.Conv2d),
        (2, "convtranspose", nn.ConvTranspose2d),
        (3, "conv", nn.Conv3d),
    ]:
        module = cls(cin, cout, 3, groups=groups, bias=bias)
        geom = ar.resolve(ar.make_spec([9] * ndim, 3, op=op))
        cost = ar.layer_cost(geom, cin, cout, groups, bias)
        assert cost.params == sum(p.numel() for p in module.parameters())
