"""Build a summarised model as a real ``torch.nn`` network and compare every layer with PyTorch.

One generator serves the zoo, the tests and any file a user writes (``cnncli summary model.yaml
--verify``). Each layer becomes the PyTorch module a PyTorch user would write for it; the input
runs through the graph, and every layer's output shape (without the batch axis, channels first
as PyTorch computes) and parameter count (parameters plus batchnorm running statistics) must
equal cnncli's. torch is imported only here, and only when asked for.

By default the network is built on PyTorch's ``meta`` device: PyTorch's own shape rules run, but
no weights are allocated and nothing is computed, so VGG-16 verifies in a fraction of a second.
``device="cpu"`` runs it for real.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cnncli import arithmetic as ar
from cnncli.errors import ModelError
from cnncli.model.build import Summary
from cnncli.model.graph import Node
from cnncli.model.layers import (
    SPLIT_OUTPUT,
    Ctx,
    LayerOut,
    TShape,
    axis_indices,
    crop_pairs,
    stats_size,
    torch_momentum,
)


@dataclass(frozen=True)
class Check:
    """One layer as cnncli and as PyTorch see it."""

    name: str
    type: str
    line: int
    #: A split's are the shapes of its outputs.
    ours_shape: tuple[int, ...] | tuple[tuple[int, ...], ...]
    torch_shape: tuple[int, ...] | tuple[tuple[int, ...], ...]
    ours_params: int
    torch_params: int

    @property
    def ok(self) -> bool:
        return self.ours_shape == self.torch_shape and self.ours_params == self.torch_params


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ModelError(
            "{opt:verify} needs PyTorch, which is not installed; install it (pip install torch) "
            "or drop {opt:verify}"
        ) from None
    return torch


def _act(name: str | None, nn: Any, opts: dict[str, Any]) -> Any:
    if name is None:
        return None
    table: dict[str, Callable[[], Any]] = {
        "relu": nn.ReLU,
        "relu6": nn.ReLU6,
        "leaky_relu": lambda: nn.LeakyReLU(opts.get("negative_slope", 0.01)),
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "softmax": lambda: nn.Softmax(dim=1),
        "gelu": nn.GELU,
        "silu": nn.SiLU,
        "hardswish": nn.Hardswish,
        "hardsigmoid": nn.Hardsigmoid,
    }
    return table[name]()


def _pad_module(nn: Any, geom: ar.Geometry) -> Any:
    # F.pad order: last axis first, (before, after) each.
    flat: list[int] = []
    for a in reversed(geom.axes):
        flat += [a.pad_before, a.pad_after]
    return _Pad(nn, tuple(flat))


def _Pad(nn: Any, flat: tuple[int, ...]) -> Any:  # noqa: N802 - a module factory
    import torch.nn.functional as F  # noqa: N812

    class Pad(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.flat = flat

        def forward(self, x: Any) -> Any:
            return F.pad(x, self.flat)

    return Pad()


def _channels_last(nn: Any, inner: Any) -> Any:
    """Apply ``inner`` (Linear, LayerNorm) to the channel axis of a channels-first tensor."""

    class ChannelsLast(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            if x.dim() <= 2:
                return self.inner(x)
            return self.inner(x.movedim(1, -1)).movedim(-1, 1)

    return ChannelsLast()


def _symmetric(geom: ar.Geometry) -> bool:
    return all(a.pad_before == a.pad_after for a in geom.axes)


@dataclass(frozen=True)
class _Layer:
    """What a module factory needs: the node, its (first) input shape and torch's ``nn``."""

    node: Node
    x: TShape
    nn: Any
    ctx: Ctx  # the model's layout and framework
    kw: dict[str, Any]  # device=…, for modules that hold tensors

    @property
    def torch_rules(self) -> bool:
        """The model follows PyTorch's framework rules."""
        return self.ctx.framework is ar.Framework.TORCH

    @property
    def opts(self) -> dict[str, Any]:
        return self.node.opts

    @property
    def out(self) -> LayerOut:
        assert self.node.out is not None
        return self.node.out

    @property
    def geometry(self) -> ar.Geometry:
        assert self.node.out is not None and self.node.out.geometry is not None
        return self.node.out.geometry


def module_for(node: Node, inputs: list[TShape], summary: Summary, torch: Any, device: str) -> Any:
    """The ``torch.nn`` module a PyTorch user would write for one layer (None for merges)."""
    nn = torch.nn
    kind = node.kind.name
    assert node.out is not None
    if node.hidden or kind == "identity":
        return nn.Identity()
    if kind in ("add", "multiply", "concat"):
        return None
    layer = _Layer(node, inputs[0], nn, summary.ctx, {"device": device})
    for prefixes, make in _FACTORIES:
        if kind.startswith(prefixes):
            return make(layer)
    act = _act(kind, nn, node.opts)
    if act is not None:
        return act
    raise ModelError(f"{{opt:verify}} cannot build a {kind} layer yet")


def _sequence(nn: Any, *parts: Any) -> Any:
    """One module, or the non-empty ``parts`` in a Sequential."""
    kept = [m for m in parts if m is not None]
    return kept[0] if len(kept) == 1 else nn.Sequential(*kept)


def _conv_padding(layer: _Layer) -> tuple[Any, Any, dict[str, Any]]:
    """A conv's padding as PyTorch takes it: (a pad module or None, ``padding=``, extra args)."""
    nn, o, geom = layer.nn, layer.opts, layer.geometry
    if layer.node.kind.name.startswith("convtranspose"):
        # PyTorch crops p on both sides; an uneven crop (Keras SAME) is the larger crop
        # on both sides plus output padding for the difference.
        crop = tuple(max(a.pad_before, a.pad_after) for a in geom.axes)
        extra = tuple(a.output_padding + abs(a.pad_before - a.pad_after) for a in geom.axes)
        return None, crop, {"output_padding": extra}
    if layer.torch_rules and isinstance(o["padding"], str) and o["padding"] in ("same", "valid"):
        return None, o["padding"], {}  # PyTorch's own rule for its named modes
    if _symmetric(geom):
        return None, tuple(a.pad_before for a in geom.axes), {}
    return _pad_module(nn, geom), 0, {}


def _conv_module(layer: _Layer) -> Any:
    nn, o, x, geom = layer.nn, layer.opts, layer.x, layer.geometry
    kind = layer.node.kind.name
    nd = len(x.spatial)
    transposed = kind.startswith("convtranspose")
    cls = getattr(nn, f"{'ConvTranspose' if transposed else 'Conv'}{nd}d")
    groups = x.channels if kind.startswith("depthwise") else o["groups"]
    pre, padding, extra = _conv_padding(layer)
    conv = cls(
        x.channels,
        layer.out.shape.channels,
        geom.spec.kernel,
        stride=geom.spec.stride,
        padding=padding,
        dilation=geom.spec.dilation,
        groups=groups,
        bias=o["bias"],
        **extra,
        **layer.kw,
    )
    return _sequence(nn, pre, conv, _act(o.get("activation"), nn, o))


def _separable_module(layer: _Layer) -> Any:
    """Keras SeparableConv as PyTorch users write it: depthwise conv (no bias), then 1×1 conv."""
    nn, o, x, geom = layer.nn, layer.opts, layer.x, layer.geometry
    cls = getattr(nn, f"Conv{len(x.spatial)}d")
    pre, padding, _ = _conv_padding(layer)
    mid = x.channels * o["depth_multiplier"]
    depthwise = cls(
        x.channels,
        mid,
        geom.spec.kernel,
        stride=geom.spec.stride,
        padding=padding,
        dilation=geom.spec.dilation,
        groups=x.channels,
        bias=False,
        **layer.kw,
    )
    pointwise = cls(mid, o["filters"], 1, bias=o["bias"], **layer.kw)
    return _sequence(nn, pre, depthwise, pointwise, _act(o.get("activation"), nn, o))


def _pool_module(layer: _Layer) -> Any:
    nn, o, geom = layer.nn, layer.opts, layer.geometry
    nd = len(layer.x.spatial)
    pre = None
    if _symmetric(geom):
        padding: Any = tuple(a.pad_before for a in geom.axes)
    else:
        pre, padding = _pad_module(nn, geom), 0
    spec = geom.spec
    if layer.node.kind.name.startswith("maxpool"):
        pool = getattr(nn, f"MaxPool{nd}d")(
            spec.kernel, spec.stride, padding, spec.dilation, ceil_mode=o["ceil_mode"]
        )
    else:
        pool = getattr(nn, f"AvgPool{nd}d")(
            spec.kernel, spec.stride, padding, ceil_mode=o["ceil_mode"]
        )
    return _sequence(nn, pre, pool)


def _global_pool_module(layer: _Layer) -> Any:
    nn = layer.nn
    which = "Avg" if layer.node.kind.name == "global_avgpool" else "Max"
    cls = getattr(nn, f"Adaptive{which}Pool{len(layer.x.spatial)}d")
    return nn.Sequential(cls(1), *(() if layer.opts["keepdims"] else (nn.Flatten(),)))


def _adaptive_pool_module(layer: _Layer) -> Any:
    which = "Avg" if layer.node.kind.name == "adaptive_avgpool" else "Max"
    cls = getattr(layer.nn, f"Adaptive{which}Pool{len(layer.x.spatial)}d")
    return cls(layer.out.shape.spatial)


def _batchnorm_module(layer: _Layer) -> Any:
    nn: Any = layer.nn
    o, c = layer.opts, layer.x.channels
    cls = getattr(nn, f"BatchNorm{max(len(layer.x.spatial), 1)}d")
    both = o["scale"] and o["center"]
    norm = cls(
        c,
        eps=o["eps"],
        momentum=torch_momentum(o["momentum"], layer.ctx),
        affine=o["affine"] and both,
        track_running_stats=o["track_running_stats"],
        **layer.kw,
    )
    if both or not o["affine"]:
        return norm
    torch = _torch()
    shape = (c,) + (1,) * len(layer.x.spatial)

    class KerasBatchNorm(nn.Module):  # type: ignore[misc]
        """Keras BatchNormalization with only gamma (``center=False``) or only beta
        (``scale=False``): PyTorch's BatchNorm without affine, then the one kept parameter."""

        def __init__(self) -> None:
            super().__init__()
            self.norm = norm
            kept = torch.ones(shape, **layer.kw) if o["scale"] else torch.zeros(shape, **layer.kw)
            self.weight = nn.Parameter(kept) if o["scale"] else None
            self.bias = nn.Parameter(kept) if o["center"] else None

        def forward(self, x: Any) -> Any:
            y = self.norm(x)
            return y * self.weight if self.weight is not None else y + self.bias

    return KerasBatchNorm()


def _normalization_module(layer: _Layer) -> Any:
    """Keras Normalization: (x − mean) / √variance with mean, variance and count as buffers."""
    nn: Any = layer.nn
    o, torch = layer.opts, _torch()
    size = 0 if o["mean"] is not None else stats_size(o, layer.x, layer.ctx)

    class Normalization(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            if size:
                self.register_buffer("mean", torch.zeros(size, **layer.kw))
                self.register_buffer("variance", torch.ones(size, **layer.kw))
                self.register_buffer("count", torch.zeros((), **layer.kw))

        def forward(self, x: Any) -> Any:
            return x  # the statistics' values do not change any shape or count

    return Normalization()


def _layout_module(layer: _Layer, fn: Callable[[Any], Any]) -> Any:
    """A module applying ``fn`` to the tensor in the model's layout order (batch first)."""
    nn: Any = layer.nn
    last = layer.ctx.channels_last

    class InLayout(nn.Module):  # type: ignore[misc]
        def forward(self, x: Any) -> Any:
            y = fn(x.movedim(1, -1) if last else x)
            return y.movedim(-1, 1) if last else y

    return InLayout()


def _reshape_module(layer: _Layer) -> Any:
    target = tuple(layer.opts["shape"])
    return _layout_module(layer, lambda x: x.reshape(x.shape[0], *target))


def _permute_module(layer: _Layer) -> Any:
    order = list(layer.opts["dims"])
    rank = len(layer.x.dims(False))
    order = order if len(order) == rank + 1 else [0, *order]
    return _layout_module(layer, lambda x: x.permute(*order))


def _mean_module(layer: _Layer) -> Any:
    x, o, ctx = layer.x, layer.opts, layer.ctx
    rank = len(x.dims(False))
    dims = [i + 1 for i in axis_indices(o["axes"], rank, "axes", ctx)]
    return _layout_module(layer, lambda t: t.mean(dim=dims, keepdim=o["keepdims"]))


def _rescaling_module(layer: _Layer) -> Any:
    o, torch = layer.opts, _torch()
    nd = len(layer.x.spatial)

    def per_channel(v: Any) -> Any:
        if not isinstance(v, list):
            return v
        return torch.tensor(v, device=layer.kw["device"]).reshape(-1, *(1,) * nd)

    scale, offset = per_channel(o["scale"]), per_channel(o["offset"])
    return _Elementwise(layer.nn, lambda x: x * scale + offset)


def _cropping_module(layer: _Layer) -> Any:
    pairs = crop_pairs(layer.opts["cropping"], len(layer.x.spatial))
    cuts = tuple(slice(a, n - b) for (a, b), n in zip(pairs, layer.x.spatial, strict=True))
    return _Elementwise(layer.nn, lambda x: x[(slice(None), slice(None), *cuts)])


def _split_module(layer: _Layer) -> Any:
    """torch.chunk for ``chunks``, torch.split for ``sizes``: a tuple of tensors."""
    o = layer.opts
    if o["sizes"] is None:
        return _Elementwise(layer.nn, lambda x: x.chunk(o["chunks"], dim=1))
    return _Elementwise(layer.nn, lambda x: x.split(list(o["sizes"]), dim=1))


def _layer_scale_module(layer: _Layer) -> Any:
    """torchvision's ConvNeXt layer scale: a learnable (C, 1, 1) multiplier."""
    nn: Any = layer.nn
    torch = _torch()
    shape = (layer.x.channels,) + (1,) * len(layer.x.spatial)
    init = layer.opts["init"]

    class LayerScale(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.gamma = nn.Parameter(torch.full(shape, float(init), **layer.kw))

        def forward(self, x: Any) -> Any:
            return x * self.gamma

    return LayerScale()


def _stochastic_depth_module(layer: _Layer) -> Any:
    """torchvision.ops.StochasticDepth at inference: the identity (no torchvision needed)."""
    return layer.nn.Identity()


def _Elementwise(nn: Any, fn: Callable[[Any], Any]) -> Any:  # noqa: N802 - a module factory
    """A module without parameters that applies ``fn``."""

    class Fn(nn.Module):  # type: ignore[misc]
        def forward(self, x: Any) -> Any:
            return fn(x)

    return Fn()


def _layernorm_module(layer: _Layer) -> Any:
    nn, o = layer.nn, layer.opts
    norm = nn.LayerNorm(layer.x.channels, eps=o["eps"], elementwise_affine=o["affine"], **layer.kw)
    return _channels_last(nn, norm)


def _dense_module(layer: _Layer) -> Any:
    nn, o, x = layer.nn, layer.opts, layer.x
    lin = nn.Linear(x.channels, o["units"], bias=o["bias"], **layer.kw)
    return _sequence(
        nn, _channels_last(nn, lin) if x.spatial else lin, _act(o.get("activation"), nn, o)
    )


def _upsample_module(layer: _Layer) -> Any:
    mode = layer.opts["mode"]
    corners: dict[str, Any] = {} if mode == "nearest" else {"align_corners": False}
    return layer.nn.Upsample(size=layer.out.shape.spatial, mode=mode, **corners)


#: Layer type prefixes → the factory of their torch module (first match wins).
_FACTORIES: tuple[tuple[tuple[str, ...], Callable[[_Layer], Any]], ...] = (
    (("conv", "depthwise_conv"), _conv_module),
    (("separable_conv",), _separable_module),
    (("cropping",), _cropping_module),
    (("reshape",), _reshape_module),
    (("permute",), _permute_module),
    (("mean",), _mean_module),
    (("rescaling",), _rescaling_module),
    (("normalization",), _normalization_module),
    (("split",), _split_module),
    (("channel_shuffle",), lambda layer: layer.nn.ChannelShuffle(layer.opts["groups"])),
    (("layer_scale",), _layer_scale_module),
    (("stochastic_depth",), _stochastic_depth_module),
    (("maxpool", "avgpool"), _pool_module),
    (("global_avgpool", "global_maxpool"), _global_pool_module),
    (("adaptive_avgpool", "adaptive_maxpool"), _adaptive_pool_module),
    (("batchnorm",), _batchnorm_module),
    (("layernorm",), _layernorm_module),
    (("dropout",), lambda layer: layer.nn.Dropout(layer.opts["rate"])),
    (("flatten",), lambda layer: layer.nn.Flatten()),
    (("dense",), _dense_module),
    (("zeropad",), lambda layer: _pad_module(layer.nn, layer.geometry)),
    (("upsample",), _upsample_module),
    (("activation",), lambda layer: _act(layer.opts["function"], layer.nn, layer.opts)),
)


def _count(module: Any) -> int:
    """Parameters and buffers (batchnorm's running statistics, Keras Normalization's mean,
    variance and count): cnncli's total. PyTorch's ``num_batches_tracked`` is not counted."""
    if module is None:
        return 0
    n = sum(p.numel() for p in module.parameters())
    for name, buf in module.named_buffers():
        if not name.endswith("num_batches_tracked"):
            n += buf.numel()
    return int(n)


def _shape_of(y: Any) -> tuple[int, ...] | tuple[tuple[int, ...], ...]:
    """A tensor's shape without the batch; for a split's tuple of tensors, each one's."""
    if isinstance(y, tuple):
        return tuple(tuple(int(d) for d in t.shape[1:]) for t in y)
    return tuple(int(d) for d in y.shape[1:])


def check(summary: Summary, device: str = "meta") -> list[Check]:
    """Build ``summary`` with torch and compare every layer (hidden pass-throughs included)."""
    torch = _torch()
    values: dict[str, Any] = {}
    checks: list[Check] = []
    label = summary.source
    with torch.no_grad():
        for node in summary.nodes:
            out = node.out
            assert out is not None
            if node.is_input:
                values[node.name] = torch.zeros((1, *out.shape.dims(False)), device=device)
                continue
            ins = [values[i] for i in node.inputs]
            if node.kind is SPLIT_OUTPUT:
                # The split's i-th tensor (a switched-off split passed one tensor on).
                split = ins[0]
                values[node.name] = split[node.opts["index"]] if isinstance(split, tuple) else split
                continue
            shapes = [TShape(int(t.shape[1]), tuple(int(d) for d in t.shape[2:])) for t in ins]
            try:
                module = module_for(node, shapes, summary, torch, device)
                if module is not None:
                    module.eval()
                    y = module(ins[0]) if not node.hidden else ins[0]
                elif node.kind.name == "add":
                    y = ins[0]
                    for t in ins[1:]:
                        y = y + t
                elif node.kind.name == "multiply":
                    y = ins[0]
                    for t in ins[1:]:
                        y = y * t
                else:
                    y = torch.cat(ins, dim=1)
            except ModelError:
                raise
            except Exception as err:  # torch's own refusal is the finding
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise ModelError(
                    f"{label}:{node.line}:{node.col}: {{opt:verify}}: PyTorch refuses layer {node.name!r} "
                    f"({node.kind.name}): {first}"
                ) from None
            values[node.name] = y
            if node.hidden:
                continue
            checks.append(
                Check(
                    node.name,
                    node.kind.name,
                    node.line,
                    tuple(p.dims(False) for p in out.outputs) or out.shape.dims(False),
                    _shape_of(y),
                    out.trainable + out.non_trainable,
                    # A shared layer (shared: true) reuses weights counted at its first call.
                    0 if node.opts.get("shared") else _count(module),
                )
            )
    return checks


def verify_summary(summary: Summary, device: str = "meta") -> str:
    """One line saying PyTorch agrees, or a ModelError naming the first layer that differs."""
    torch = _torch()
    checks = check(summary, device)
    bad = [c for c in checks if not c.ok]
    if bad:
        c = bad[0]
        more = f" ({len(bad) - 1} more layers differ)" if len(bad) > 1 else ""
        raise ModelError(
            f"{summary.source}:{c.line}: {{opt:verify}}: layer {c.name!r} ({c.type}): cnncli gives "
            f"output {c.ours_shape} and {c.ours_params:,} params, PyTorch {torch.__version__} gives "
            f"{c.torch_shape} and {c.torch_params:,}{more}"
        )
    total = sum(c.torch_params for c in checks)
    return (
        f"verified with PyTorch {torch.__version__}: all {len(checks)} layers agree on output shape "
        f"and parameters ({total:,} parameters and batchnorm running statistics; shapes "
        "channels first, as PyTorch computes them)"
    )
