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
from cnncli.model.layers import TShape


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
            "--verify needs PyTorch, which is not installed; install it (pip install torch) "
            "or drop --verify"
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


def module_for(node: Node, inputs: list[TShape], summary: Summary, torch: Any, device: str) -> Any:
    """The ``torch.nn`` module a PyTorch user would write for one layer (None for merges)."""
    nn = torch.nn
    kind = node.kind.name
    o = node.opts
    out = node.out
    assert out is not None
    x = inputs[0] if inputs else None
    fw_torch = summary.ctx.framework is ar.Framework.TORCH
    kw = {"device": device}
    if node.hidden or kind == "identity":
        return nn.Identity()
    if kind in ("add", "multiply", "concat"):
        return None
    assert x is not None
    nd = len(x.spatial)
    if kind.startswith(("conv", "depthwise_conv")):
        geom = out.geometry
        assert geom is not None
        transposed = kind.startswith("convtranspose")
        cls = getattr(nn, f"{'ConvTranspose' if transposed else 'Conv'}{nd}d")
        cout = out.shape.channels
        groups = x.channels if kind.startswith("depthwise") else o["groups"]
        pre = None
        extra: dict[str, Any]
        if transposed:
            # PyTorch crops p on both sides; an uneven crop (Keras SAME) is the larger crop
            # on both sides plus output padding for the difference.
            padding: Any = tuple(max(a.pad_before, a.pad_after) for a in geom.axes)
            extra = {
                "output_padding": tuple(
                    a.output_padding + abs(a.pad_before - a.pad_after) for a in geom.axes
                )
            }
        elif fw_torch and isinstance(o["padding"], str) and o["padding"] in ("same", "valid"):
            padding, extra = o["padding"], {}  # PyTorch's own rule for its named modes
        elif _symmetric(geom):
            padding, extra = tuple(a.pad_before for a in geom.axes), {}
        else:
            pre, padding, extra = _pad_module(nn, geom), 0, {}
        conv = cls(
            x.channels,
            cout,
            geom.spec.kernel,
            stride=geom.spec.stride,
            padding=padding,
            dilation=geom.spec.dilation,
            groups=groups,
            bias=o["bias"],
            **extra,
            **kw,
        )
        parts = [m for m in (pre, conv, _act(o.get("activation"), nn, o)) if m is not None]
        return parts[0] if len(parts) == 1 else nn.Sequential(*parts)
    if kind.startswith(("maxpool", "avgpool")):
        geom = out.geometry
        assert geom is not None
        pre = None
        if _symmetric(geom):
            padding = tuple(a.pad_before for a in geom.axes)
        else:
            pre, padding = _pad_module(nn, geom), 0
        if kind.startswith("maxpool"):
            pool = getattr(nn, f"MaxPool{nd}d")(
                geom.spec.kernel,
                geom.spec.stride,
                padding,
                geom.spec.dilation,
                ceil_mode=o["ceil_mode"],
            )
        else:
            pool = getattr(nn, f"AvgPool{nd}d")(
                geom.spec.kernel, geom.spec.stride, padding, ceil_mode=o["ceil_mode"]
            )
        return pool if pre is None else nn.Sequential(pre, pool)
    if kind in ("global_avgpool", "global_maxpool"):
        cls = getattr(nn, f"Adaptive{'Avg' if kind == 'global_avgpool' else 'Max'}Pool{nd}d")
        return nn.Sequential(cls(1), *(() if o["keepdims"] else (nn.Flatten(),)))
    if kind in ("adaptive_avgpool", "adaptive_maxpool"):
        cls = getattr(nn, f"Adaptive{'Avg' if kind == 'adaptive_avgpool' else 'Max'}Pool{nd}d")
        return cls(out.shape.spatial)
    if kind == "batchnorm":
        cls = getattr(nn, f"BatchNorm{max(nd, 1)}d")
        return cls(
            x.channels,
            eps=o["eps"],
            momentum=o["momentum"],
            affine=o["affine"],
            track_running_stats=o["track_running_stats"],
            **kw,
        )
    if kind == "layernorm":
        return _channels_last(
            nn, nn.LayerNorm(x.channels, eps=o["eps"], elementwise_affine=o["affine"], **kw)
        )
    if kind == "dropout":
        return nn.Dropout(o["rate"])
    if kind == "flatten":
        return nn.Flatten()
    if kind == "dense":
        lin = nn.Linear(x.channels, o["units"], bias=o["bias"], **kw)
        parts = [_channels_last(nn, lin) if x.spatial else lin]
        act = _act(o.get("activation"), nn, o)
        return parts[0] if act is None else nn.Sequential(*parts, act)
    if kind.startswith("zeropad"):
        assert out.geometry is not None
        return _pad_module(nn, out.geometry)
    if kind == "upsample":
        mode = o["mode"]
        corners: dict[str, Any] = {} if mode == "nearest" else {"align_corners": False}
        return nn.Upsample(size=out.shape.spatial, mode=mode, **corners)
    if kind == "activation":
        return _act(o["function"], nn, o)
    act = _act(kind, nn, o)
    if act is not None:
        return act
    raise ModelError(f"--verify cannot build a {kind} layer yet")


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
                    f"{label}:{node.line}:{node.col}: --verify: PyTorch refuses layer {node.name!r} "
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
            f"{summary.source}:{c.line}: --verify: layer {c.name!r} ({c.type}): cnncli gives "
            f"output {c.ours_shape} and {c.ours_params:,} params, PyTorch {torch.__version__} gives "
            f"{c.torch_shape} and {c.torch_params:,}{more}"
        )
    total = sum(c.torch_params for c in checks)
    return (
        f"verified with PyTorch {torch.__version__}: all {len(checks)} layers agree on output shape "
        f"and parameters ({total:,} parameters and batchnorm running statistics; shapes "
        "channels first, as PyTorch computes them)"
    )
