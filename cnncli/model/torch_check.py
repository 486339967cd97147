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
from cnncli.model.layers import LayerOut, TShape


@dataclass(frozen=True)
class Check:
    """One layer as cnncli and as PyTorch see it."""

    name: str
    type: str
    line: int
    ours_shape: tuple[int, ...]
    torch_shape: tuple[int, ...]
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
    torch_rules: bool  # the model follows PyTorch's framework rules
    kw: dict[str, Any]  # device=…, for modules that hold tensors

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
    layer = _Layer(
        node, inputs[0], nn, summary.ctx.framework is ar.Framework.TORCH, {"device": device}
    )
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


def _conv_module(layer: _Layer) -> Any:
    nn, o, x, geom = layer.nn, layer.opts, layer.x, layer.geometry
    kind = layer.node.kind.name
    nd = len(x.spatial)
    transposed = kind.startswith("convtranspose")
    cls = getattr(nn, f"{'ConvTranspose' if transposed else 'Conv'}{nd}d")
    groups = x.channels if kind.startswith("depthwise") else o["groups"]
    pre = None
    extra: dict[str, Any] = {}
    if transposed:
        # PyTorch crops p on both sides; an uneven crop (Keras SAME) is the larger crop
        # on both sides plus output padding for the difference.
        padding: Any = tuple(max(a.pad_before, a.pad_after) for a in geom.axes)
        extra["output_padding"] = tuple(
            a.output_padding + abs(a.pad_before - a.pad_after) for a in geom.axes
        )
    elif layer.torch_rules and isinstance(o["padding"], str) and o["padding"] in ("same", "valid"):
        padding = o["padding"]  # PyTorch's own rule for its named modes
    elif _symmetric(geom):
        padding = tuple(a.pad_before for a in geom.axes)
    else:
        pre, padding = _pad_module(nn, geom), 0
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
    o = layer.opts
    cls = getattr(layer.nn, f"BatchNorm{max(len(layer.x.spatial), 1)}d")
    return cls(
        layer.x.channels,
        eps=o["eps"],
        momentum=o["momentum"],
        affine=o["affine"],
        track_running_stats=o["track_running_stats"],
        **layer.kw,
    )


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
    if module is None:
        return 0
    n = sum(p.numel() for p in module.parameters())
    for name, buf in module.named_buffers():
        if name.endswith(("running_mean", "running_var")):
            n += buf.numel()
    return int(n)


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
                    out.shape.dims(False),
                    tuple(int(d) for d in y.shape[1:]),
                    out.trainable + out.non_trainable,
                    _count(module),
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
