"""Build a summarised model as a real ``torch.nn`` network and compare every layer with PyTorch.

One mapping serves ``--verify``, the zoo's tests, ``cnncli convert model.yaml -o model.py`` and
``--weights``: :func:`recipe_for` turns a layer into a :class:`Recipe`, the constructor call of the
PyTorch module a PyTorch user would write for it (``nn.Conv2d(3, 64, kernel_size=7, …)``, or one
of the few classes of :mod:`cnncli.model.torch_modules` for what ``torch.nn`` lacks). A recipe is
plain data: :meth:`Recipe.build` makes the module, :mod:`cnncli.render.convert` prints it as
source, :mod:`cnncli.model.weights` reads the tensors it holds.

:func:`check` runs the input through the built graph, and every layer's output shape (without the
batch axis, channels first as PyTorch computes) and parameter count (parameters plus batchnorm
running statistics) must equal cnncli's. torch is imported only when a module is built.

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
    pixel_mode,
    prelu_alpha_shape,
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


@dataclass(frozen=True)
class Recipe:
    """A torch module as its constructor call: ``cls(*args, **kwargs)``.

    ``cls`` names a class of ``torch.nn`` (``Conv2d``, ``Sequential`` …) or, with ``helper``, of
    :mod:`cnncli.model.torch_modules`. Arguments are plain values or recipes (a Sequential's
    parts, the module a :class:`~cnncli.model.torch_modules.ChannelsLast` wraps).
    """

    cls: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    helper: bool = False

    def arg(self, index: int, name: str, default: Any = None) -> Any:
        """An argument given by position ``index`` or by keyword ``name``."""
        if index < len(self.args):
            return self.args[index]
        return self.option(name, default)

    def option(self, name: str, default: Any = None) -> Any:
        """A keyword argument (``default`` when not given)."""
        return dict(self.kwargs).get(name, default)

    def build(self, torch: Any) -> Any:
        """The module itself (on the device of the caller's ``with torch.device(…)``)."""
        if self.helper:
            from cnncli.model import torch_modules

            cls = getattr(torch_modules, self.cls)
        else:
            cls = getattr(torch.nn, self.cls)
        args = [_built(a, torch) for a in self.args]
        return cls(*args, **{k: _built(v, torch) for k, v in self.kwargs})

    def helpers(self) -> set[str]:
        """The helper classes this recipe uses, its parts' included."""
        found = {self.cls} if self.helper else set()
        for value in (*self.args, *(v for _, v in self.kwargs)):
            if isinstance(value, Recipe):
                found |= value.helpers()
        return found


def _built(value: Any, torch: Any) -> Any:
    return value.build(torch) if isinstance(value, Recipe) else value


def _kw(**kwargs: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(kwargs.items())


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ModelError(
            "{opt:verify} needs PyTorch, which is not installed; install it (pip install torch) "
            "or drop {opt:verify}"
        ) from None
    return torch


#: Activation names of the format → their torch.nn class (and its arguments from the options).
_ACTIVATIONS: dict[str, Callable[[dict[str, Any]], Recipe]] = {
    "relu": lambda o: Recipe("ReLU"),
    "relu6": lambda o: Recipe("ReLU6"),
    "leaky_relu": lambda o: Recipe("LeakyReLU", (o.get("negative_slope", 0.01),)),
    "sigmoid": lambda o: Recipe("Sigmoid"),
    "tanh": lambda o: Recipe("Tanh"),
    "softmax": lambda o: Recipe("Softmax", kwargs=_kw(dim=1)),
    "gelu": lambda o: Recipe("GELU"),
    "silu": lambda o: Recipe("SiLU"),
    "hardswish": lambda o: Recipe("Hardswish"),
    "hardsigmoid": lambda o: Recipe("Hardsigmoid"),
    "elu": lambda o: Recipe("ELU", kwargs=_kw(alpha=float(o.get("alpha", 1.0)))),
    "selu": lambda o: Recipe("SELU"),
    "softplus": lambda o: Recipe(
        "Softplus",
        kwargs=_kw(beta=float(o.get("beta", 1.0)), threshold=float(o.get("threshold", 20.0))),
    ),
    "mish": lambda o: Recipe("Mish"),
}


def _act(name: str | None, opts: dict[str, Any]) -> Recipe | None:
    return None if name is None else _ACTIVATIONS[name](opts)


def _pad_recipe(geom: ar.Geometry) -> Recipe:
    # F.pad order: last axis first, (before, after) each.
    flat: list[int] = []
    for a in reversed(geom.axes):
        flat += [a.pad_before, a.pad_after]
    return Recipe("Pad", (tuple(flat),), helper=True)


def _symmetric(geom: ar.Geometry) -> bool:
    return all(a.pad_before == a.pad_after for a in geom.axes)


@dataclass(frozen=True)
class _Layer:
    """What a recipe factory needs: the node and its (first) input shape."""

    node: Node
    x: TShape
    ctx: Ctx  # the model's layout and framework

    @property
    def torch_rules(self) -> bool:
        """The model follows PyTorch's framework rules."""
        return self.ctx.framework is ar.Framework.TORCH

    @property
    def opts(self) -> dict[str, Any]:
        return self.node.opts

    @property
    def spatial(self) -> int:
        return len(self.x.spatial)

    @property
    def out(self) -> LayerOut:
        assert self.node.out is not None
        return self.node.out

    @property
    def geometry(self) -> ar.Geometry:
        assert self.node.out is not None and self.node.out.geometry is not None
        return self.node.out.geometry


#: Layers computed in ``forward`` from several inputs, without a module of their own.
MERGES = ("add", "multiply", "concat")


def recipe_for(node: Node, inputs: list[TShape], ctx: Ctx) -> Recipe | None:
    """The module a PyTorch user would write for one layer (None for merges)."""
    kind = node.kind.name
    assert node.out is not None
    if node.hidden or kind == "identity":
        return Recipe("Identity")
    if kind in MERGES:
        return None
    layer = _Layer(node, inputs[0], ctx)
    for prefixes, make in _FACTORIES:
        if kind.startswith(prefixes):
            return make(layer)
    act = _act(kind, node.opts) if kind in _ACTIVATIONS else None
    if act is not None:
        return act
    raise ModelError(f"{{opt:verify}} cannot build a {kind} layer yet")


def module_for(node: Node, inputs: list[TShape], summary: Summary, torch: Any, device: str) -> Any:
    """The ``torch.nn`` module of one layer, built on ``device`` (None for merges)."""
    recipe = recipe_for(node, inputs, summary.ctx)
    if recipe is None:
        return None
    with torch.device(device):
        return recipe.build(torch)


def _sequence(*parts: Recipe | None) -> Recipe:
    """One module, or the non-empty ``parts`` in a Sequential."""
    kept = tuple(m for m in parts if m is not None)
    return kept[0] if len(kept) == 1 else Recipe("Sequential", kept)


def _conv_padding(layer: _Layer) -> tuple[Recipe | None, Any, dict[str, Any]]:
    """A conv's padding as PyTorch takes it: (a pad module or None, ``padding=``, extra args)."""
    o, geom = layer.opts, layer.geometry
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
    return _pad_recipe(geom), 0, {}


def _conv_recipe(layer: _Layer) -> Recipe:
    o, x, geom = layer.opts, layer.x, layer.geometry
    kind = layer.node.kind.name
    transposed = kind.startswith("convtranspose")
    cls = f"{'ConvTranspose' if transposed else 'Conv'}{layer.spatial}d"
    groups = x.channels if kind.startswith("depthwise") else o["groups"]
    pre, padding, extra = _conv_padding(layer)
    conv = Recipe(
        cls,
        (x.channels, layer.out.shape.channels),
        _kw(
            kernel_size=geom.spec.kernel,
            stride=geom.spec.stride,
            padding=padding,
            **extra,
            dilation=geom.spec.dilation,
            groups=groups,
            bias=o["bias"],
        ),
    )
    return _sequence(pre, conv, _act(o.get("activation"), o))


def _separable_recipe(layer: _Layer) -> Recipe:
    """Keras SeparableConv as PyTorch users write it: depthwise conv (no bias), then 1×1 conv."""
    o, x, geom = layer.opts, layer.x, layer.geometry
    cls = f"Conv{layer.spatial}d"
    pre, padding, _ = _conv_padding(layer)
    mid = x.channels * o["depth_multiplier"]
    depthwise = Recipe(
        cls,
        (x.channels, mid),
        _kw(
            kernel_size=geom.spec.kernel,
            stride=geom.spec.stride,
            padding=padding,
            dilation=geom.spec.dilation,
            groups=x.channels,
            bias=False,
        ),
    )
    pointwise = Recipe(
        cls, (mid, o["filters"]), _kw(kernel_size=(1,) * layer.spatial, bias=o["bias"])
    )
    return _sequence(pre, depthwise, pointwise, _act(o.get("activation"), o))


def _pool_recipe(layer: _Layer) -> Recipe:
    o, geom = layer.opts, layer.geometry
    pre = None
    if _symmetric(geom):
        padding: Any = tuple(a.pad_before for a in geom.axes)
    else:
        pre, padding = _pad_recipe(geom), 0
    spec = geom.spec
    if layer.node.kind.name.startswith("maxpool"):
        pool = Recipe(
            f"MaxPool{layer.spatial}d",
            (spec.kernel,),
            _kw(
                stride=spec.stride,
                padding=padding,
                dilation=spec.dilation,
                ceil_mode=o["ceil_mode"],
            ),
        )
    else:
        pool = Recipe(
            f"AvgPool{layer.spatial}d",
            (spec.kernel,),
            _kw(stride=spec.stride, padding=padding, ceil_mode=o["ceil_mode"]),
        )
    return _sequence(pre, pool)


def _global_pool_recipe(layer: _Layer) -> Recipe:
    which = "Avg" if layer.node.kind.name == "global_avgpool" else "Max"
    pool = Recipe(f"Adaptive{which}Pool{layer.spatial}d", (1,))
    return _sequence(pool, None if layer.opts["keepdims"] else Recipe("Flatten"))


def _adaptive_pool_recipe(layer: _Layer) -> Recipe:
    which = "Avg" if layer.node.kind.name == "adaptive_avgpool" else "Max"
    return Recipe(f"Adaptive{which}Pool{layer.spatial}d", (layer.out.shape.spatial,))


def _batchnorm_recipe(layer: _Layer) -> Recipe:
    o, c = layer.opts, layer.x.channels
    both = o["scale"] and o["center"]
    norm = Recipe(
        f"BatchNorm{max(layer.spatial, 1)}d",
        (c,),
        _kw(
            eps=o["eps"],
            momentum=torch_momentum(o["momentum"], layer.ctx),
            affine=o["affine"] and both,
            track_running_stats=o["track_running_stats"],
        ),
    )
    if both or not o["affine"]:
        return norm
    return Recipe(
        "KerasBatchNorm",
        (norm, c, layer.spatial),
        _kw(scale=o["scale"], center=o["center"]),
        helper=True,
    )


def _normalization_recipe(layer: _Layer) -> Recipe:
    """Keras Normalization: mean, variance and count as buffers (none for given constants)."""
    o = layer.opts
    size = 0 if o["mean"] is not None else stats_size(o, layer.x, layer.ctx)
    return Recipe("Normalization", (size,), helper=True)


def _reshape_recipe(layer: _Layer) -> Recipe:
    target = tuple(layer.opts["shape"])
    return Recipe("Reshape", (target, layer.ctx.channels_last), helper=True)


def _permute_recipe(layer: _Layer) -> Recipe:
    order = list(layer.opts["dims"])
    rank = len(layer.x.dims(False))
    order = order if len(order) == rank + 1 else [0, *order]
    return Recipe("Permute", (tuple(order), layer.ctx.channels_last), helper=True)


def _mean_recipe(layer: _Layer) -> Recipe:
    x, o, ctx = layer.x, layer.opts, layer.ctx
    rank = len(x.dims(False))
    dims = tuple(i + 1 for i in axis_indices(o["axes"], rank, "axes", ctx))
    return Recipe("Mean", (dims, o["keepdims"], ctx.channels_last), helper=True)


def _rescaling_recipe(layer: _Layer) -> Recipe:
    o = layer.opts
    return Recipe("Rescaling", (o["scale"], o["offset"], layer.spatial), helper=True)


def _cropping_recipe(layer: _Layer) -> Recipe:
    pairs = crop_pairs(layer.opts["cropping"], layer.spatial)
    return Recipe("Cropping", (tuple(pairs),), helper=True)


def _split_recipe(layer: _Layer) -> Recipe:
    """torch.chunk for ``chunks``, torch.split for ``sizes``: a tuple of tensors."""
    o = layer.opts
    if o["sizes"] is None:
        return Recipe("Split", kwargs=_kw(chunks=o["chunks"]), helper=True)
    return Recipe("Split", kwargs=_kw(sizes=list(o["sizes"])), helper=True)


def _layer_scale_recipe(layer: _Layer) -> Recipe:
    """torchvision's ConvNeXt layer scale: a learnable (C, 1, 1) multiplier."""
    return Recipe("LayerScale", (layer.x.channels, layer.spatial, layer.opts["init"]), helper=True)


def _layernorm_recipe(layer: _Layer) -> Recipe:
    o = layer.opts
    norm = Recipe(
        "LayerNorm", (layer.x.channels,), _kw(eps=o["eps"], elementwise_affine=o["affine"])
    )
    return Recipe("ChannelsLast", (norm,), helper=True)


def _groupnorm_recipe(layer: _Layer) -> Recipe:
    o = layer.opts
    return Recipe(
        "GroupNorm", (o["groups"], layer.x.channels), _kw(eps=o["eps"], affine=o["affine"])
    )


def _instancenorm_recipe(layer: _Layer) -> Recipe:
    o = layer.opts
    return Recipe(
        f"InstanceNorm{layer.spatial}d",
        (layer.x.channels,),
        _kw(
            eps=o["eps"],
            momentum=0.1 if o["momentum"] is None else o["momentum"],
            affine=o["affine"],
            track_running_stats=o["track_running_stats"],
        ),
    )


def _prelu_recipe(layer: _Layer) -> Recipe:
    """nn.PReLU for one slope or one per channel; Keras's slopes of another shape (per position,
    by default) are a small module holding them in PyTorch's axis order."""
    x, ctx = layer.x, layer.ctx
    shape = prelu_alpha_shape(layer.opts, x, ctx)
    first = TShape(shape[-1], shape[:-1]) if ctx.channels_last else TShape(shape[0], shape[1:])
    if first.elements == 1:
        return Recipe("PReLU")
    if first.channels == x.channels and first.elements == x.channels:
        return Recipe("PReLU", (x.channels,))
    return Recipe("KerasPReLU", (first.dims(False),), helper=True)


def _lrn_recipe(layer: _Layer) -> Recipe:
    o = layer.opts
    return Recipe(
        "LocalResponseNorm",
        (o["size"],),
        _kw(alpha=float(o["alpha"]), beta=float(o["beta"]), k=float(o["k"])),
    )


def _pixel_recipe(layer: _Layer) -> Recipe:
    """PixelShuffle/PixelUnshuffle for PyTorch's order (CRD); TensorFlow's (DCR) is a small
    module with ONNX's DepthToSpace/SpaceToDepth arithmetic."""
    r = layer.opts["factor"]
    up = layer.node.kind.name == "pixel_shuffle"
    if pixel_mode(layer.opts, layer.ctx) == "crd":
        return Recipe("PixelShuffle" if up else "PixelUnshuffle", (r,))
    return Recipe("DepthToSpace" if up else "SpaceToDepth", (r,), helper=True)


def _dense_recipe(layer: _Layer) -> Recipe:
    o, x = layer.opts, layer.x
    lin = Recipe("Linear", (x.channels, o["units"]), _kw(bias=o["bias"]))
    if x.spatial:
        lin = Recipe("ChannelsLast", (lin,), helper=True)
    return _sequence(lin, _act(o.get("activation"), o))


def _upsample_recipe(layer: _Layer) -> Recipe:
    mode = layer.opts["mode"]
    corners = _kw() if mode == "nearest" else _kw(align_corners=False)
    return Recipe("Upsample", kwargs=_kw(size=layer.out.shape.spatial, mode=mode) + corners)


#: Layer type prefixes → the factory of their recipe (first match wins).
_FACTORIES: tuple[tuple[tuple[str, ...], Callable[[_Layer], Recipe]], ...] = (
    (("conv", "depthwise_conv"), _conv_recipe),
    (("separable_conv",), _separable_recipe),
    (("cropping",), _cropping_recipe),
    (("reshape",), _reshape_recipe),
    (("permute",), _permute_recipe),
    (("mean",), _mean_recipe),
    (("rescaling",), _rescaling_recipe),
    (("normalization",), _normalization_recipe),
    (("split",), _split_recipe),
    (("channel_shuffle",), lambda layer: Recipe("ChannelShuffle", (layer.opts["groups"],))),
    (("layer_scale",), _layer_scale_recipe),
    # torchvision.ops.StochasticDepth at inference: the identity (no torchvision needed).
    (("stochastic_depth",), lambda layer: Recipe("Identity")),
    (("maxpool", "avgpool"), _pool_recipe),
    (("global_avgpool", "global_maxpool"), _global_pool_recipe),
    (("adaptive_avgpool", "adaptive_maxpool"), _adaptive_pool_recipe),
    (("batchnorm",), _batchnorm_recipe),
    (("layernorm",), _layernorm_recipe),
    (("groupnorm",), _groupnorm_recipe),
    (("instancenorm",), _instancenorm_recipe),
    (("prelu",), _prelu_recipe),
    (("lrn",), _lrn_recipe),
    (("pixel_shuffle", "pixel_unshuffle"), _pixel_recipe),
    (("dropout",), lambda layer: Recipe("Dropout", (layer.opts["rate"],))),
    (("flatten",), lambda layer: Recipe("Flatten")),
    (("dense",), _dense_recipe),
    (("zeropad",), lambda layer: _pad_recipe(layer.geometry)),
    (("upsample",), _upsample_recipe),
    (("activation",), lambda layer: _act(layer.opts["function"], layer.opts) or Recipe("Identity")),
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
