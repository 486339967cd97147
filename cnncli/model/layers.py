"""Layer types of the model format: for each, its options, output shape, parameters and MACs.

Spatial arithmetic (output sizes, padding splits, conv parameters and MACs) comes from
:mod:`cnncli.arithmetic`, the same core as ``cnncli shape``; this module only adds what has no
sliding window: dense, normalisation, activations, merges, flatten, upsampling.

A tensor is described without its batch axis as channels plus spatial sizes (:class:`TShape`); the
layout (channels first or last) only changes how a shape is shown.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cnncli import arithmetic as ar
from cnncli.errors import CnnCliError, ModelError, as_model_key

#: Largest channel count, unit count, repeat factor the format accepts (frameworks index int32).
MAX_SIZE = ar.MAX_VALUE


@dataclass(frozen=True)
class TShape:
    """A tensor without its batch axis: ``channels`` and the spatial sizes (empty when flat)."""

    channels: int
    spatial: tuple[int, ...] = ()

    @property
    def elements(self) -> int:
        out = self.channels
        for s in self.spatial:
            out *= s
        return out

    def dims(self, channels_last: bool) -> tuple[int, ...]:
        """The shape as the user's framework shows it."""
        if channels_last:
            return (*self.spatial, self.channels)
        return (self.channels, *self.spatial)


@dataclass(frozen=True)
class Ctx:
    """Model-wide conventions a layer needs."""

    framework: ar.Framework = ar.Framework.TORCH
    channels_last: bool = False

    def show(self, shape: TShape) -> str:
        return "(" + ", ".join(str(d) for d in shape.dims(self.channels_last)) + ")"


@dataclass(frozen=True)
class LayerOut:
    """What one layer does to its input(s)."""

    shape: TShape
    trainable: int = 0
    non_trainable: int = 0
    #: Multiply-accumulates of convolution and dense layers, bias excluded.
    macs: int = 0
    #: The additions of the bias (what ``--count-bias`` adds to ``macs``).
    bias_macs: int = 0
    kernel: tuple[int, ...] | None = None
    stride: tuple[int, ...] | None = None
    dilation: tuple[int, ...] | None = None
    geometry: ar.Geometry | None = None
    #: Receptive field changes: "window" (kernel/stride/dilation above), "global", "keep", "lost".
    rf: str = "keep"
    #: A layer with several outputs (split): each one; ``shape`` is then all of them together.
    outputs: tuple[TShape, ...] = ()
    #: Something the user should hear about that changes no number (one line).
    warning: str = ""


@dataclass(frozen=True)
class LayerType:
    """One layer type: canonical name, accepted options (canonical name -> default) and rule."""

    name: str
    compute: Callable[[dict[str, Any], list[TShape], list[str], Ctx], LayerOut]
    options: dict[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    #: Number of inputs: 1, 0 for "two or more", or :data:`ANY_INPUTS`.
    arity: int = 1
    summary: str = ""
    #: Option spellings of this type only (``dim`` of ``mean`` is ``axes``), before OPTION_ALIASES.
    aliases: dict[str, str] = field(default_factory=dict)


#: ``arity`` of a layer that takes one input or several (an opaque operator reads what it reads).
ANY_INPUTS = -1

#: Option spellings of PyTorch and Keras accepted as the canonical name.
OPTION_ALIASES = {
    "out_channels": "filters",
    "kernel_size": "kernel",
    "pool_size": "kernel",
    "strides": "stride",
    "dilation_rate": "dilation",
    "use_bias": "bias",
    "out_features": "units",
    "p": "rate",
    "scale_factor": "scale",
    "alpha": "negative_slope",
    "epsilon": "eps",
    "num_features": "features",
    "dim": "axis",
}

ACTIVATIONS = (
    "relu",
    "relu6",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "softmax",
    "gelu",
    "silu",
    "hardswish",
    "hardsigmoid",
    "elu",
    "selu",
    "softplus",
    "mish",
    "linear",
)
ACTIVATION_ALIASES = {
    "swish": "silu",
    "hard_swish": "hardswish",
    "hard_silu": "hardswish",
    "hard_sigmoid": "hardsigmoid",
    "leakyrelu": "leaky_relu",
    "re_lu": "relu",
}


def closest(word: str, choices: Sequence[str], n: int = 3) -> str:
    """``; did you mean a, b?`` or an empty string."""
    near = difflib.get_close_matches(word, list(choices), n=n, cutoff=0.5)
    return f"; did you mean {', '.join(near)}?" if near else ""


def shorten(text: str, width: int = 60) -> str:
    """``text`` cut to ``width`` characters with an ellipsis, for quoting values in messages."""
    return text if len(text) <= width else text[: width - 1] + "…"


def show(value: Any, width: int = 60) -> str:
    """``repr(value)``, cut short: a message quotes a value, never a whole megabyte of it."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        digits = str(value)
        return f"{digits[:12]}…({len(digits.lstrip('-')):,} digits)"
    if isinstance(value, list | dict) and len(value) > 20:
        kind = "list" if isinstance(value, list) else "mapping"
        return f"a {kind} of {len(value):,} items"
    try:
        text = repr(value)
    except (RecursionError, ValueError):
        return f"a {type(value).__name__}"
    return shorten(text, width)


def whole(value: Any, what: str, minimum: int = 1) -> int:
    """A whole number within the format's limits, or a ModelError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(f"{what} must be a whole number, got {show(value)}")
    if value < minimum:
        raise ModelError(f"{what} {show(value)} is not allowed; use a whole number ≥ {minimum}")
    if value > MAX_SIZE:
        raise ModelError(f"{what} {show(value)} is larger than {MAX_SIZE}; use a realistic size")
    return value


def flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ModelError(f"{what} must be true or false, got {show(value)}")
    return value


def activation_name(value: Any, what: str = "activation") -> str | None:
    """Canonical activation name (None for none/linear)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ModelError(f"{what} must be a name, got {show(value)}")
    key = value.lower().replace("-", "_")
    key = ACTIVATION_ALIASES.get(key, key)
    if key not in ACTIVATIONS:
        raise ModelError(
            f"unknown {what} {shorten(value)!r}{closest(key, ACTIVATIONS)} (known: {', '.join(ACTIVATIONS)})"
        )
    return None if key == "linear" else key


def _one(inputs: list[TShape]) -> TShape:
    return inputs[0]


def _from_dims(dims: Sequence[int], ctx: Ctx) -> TShape:
    """A shape given in the model's layout order (channels first or last) as a :class:`TShape`."""
    if ctx.channels_last:
        return TShape(dims[-1], tuple(dims[:-1]))
    return TShape(dims[0], tuple(dims[1:]))


def axis_indices(value: Any, rank: int, what: str, ctx: Ctx) -> tuple[int, ...]:
    """Axis numbers as PyTorch and Keras count them with the batch (0 = batch, 1 = the first axis
    of the layout, negatives from the end; ``channels`` is the channel axis), as 0-based indices
    of the shape without its batch, sorted and without repeats."""
    items = value if isinstance(value, list) else [value]
    out: set[int] = set()
    for item in items:
        if item == "channels":
            out.add(rank - 1 if ctx.channels_last else 0)
            continue
        if not _is_int(item) or not (1 <= item <= rank or -rank <= item <= -1):
            raise ModelError(
                f"{what} {show(value)} does not fit a shape of {rank} ax{'is' if rank == 1 else 'es'} "
                f"without the batch; use axes 1 to {rank} (0 is the batch) or -1 to -{rank}"
            )
        out.add(item - 1 if item > 0 else rank + item)
    return tuple(sorted(out))


def _need_spatial(name: str, x: TShape, ndim: int, ctx: Ctx) -> None:
    if len(x.spatial) != ndim:
        axes = " ".join(ar.axis_names(ndim))
        raise ModelError(
            f"{name} needs an input with {ndim} spatial ax{'is' if ndim == 1 else 'es'} ({axes}) "
            f"and channels, got {ctx.show(x)}; use a {len(x.spatial)}-D layer"
            + (" or remove the flatten" if not x.spatial else "")
        )


def _geometry(
    x: TShape, opts: dict[str, Any], op: ar.Op, ctx: Ctx, depthwise: bool = False
) -> ar.Geometry:
    try:
        spec = ar.make_spec(
            x.spatial,
            opts["kernel"],
            stride=opts.get("stride"),
            dilation=opts.get("dilation") or 1,
            padding=opts.get("padding"),
            op=op,
            framework=ctx.framework,
            ceil_mode=bool(opts.get("ceil_mode", False)),
            output_padding=opts.get("output_padding"),
            depthwise=depthwise,
        )
        return ar.resolve(spec)
    except CnnCliError as err:
        raise ModelError(_model_words(err)) from None


def _model_words(err: CnnCliError) -> str:
    """A core message as a model file reads it: options named as keys (``padding:``)."""
    return err.worded(as_model_key)


def _conv(ndim: int, op: ar.Op, depthwise: bool = False) -> Callable[..., LayerOut]:
    def compute(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
        x = _one(inputs)
        _need_spatial(opts["_type"], x, ndim, ctx)
        geom = _geometry(x, opts, op, ctx, depthwise)
        bias = flag(opts["bias"], "bias")
        if depthwise:
            groups = x.channels
            filters = x.channels * whole(opts["depth_multiplier"], "depth_multiplier")
        else:
            groups = whole(opts["groups"], "groups")
            filters = whole(opts["filters"], "filters")
        try:
            cost = ar.layer_cost(geom, x.channels, filters, groups, bias)
        except CnnCliError as err:
            raise ModelError(_model_words(err).replace("in channels", "input channels")) from None
        return LayerOut(
            TShape(cost.out_channels, geom.output_size),
            trainable=cost.params,
            macs=cost.macs,
            bias_macs=cost.output_elements if bias else 0,
            kernel=geom.spec.kernel,
            stride=geom.spec.stride,
            dilation=geom.spec.dilation,
            geometry=geom,
            rf="lost" if op is ar.Op.CONVTRANSPOSE else "window",
        )

    return compute


def _separable(ndim: int) -> Callable[..., LayerOut]:
    """Keras SeparableConv: a depthwise conv (no bias) then a 1×1 conv with the bias."""

    def compute(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
        x = _one(inputs)
        _need_spatial(opts["_type"], x, ndim, ctx)
        geom = _geometry(x, opts, ar.Op.CONV, ctx, depthwise=True)
        bias = flag(opts["bias"], "bias")
        mid = x.channels * whole(opts["depth_multiplier"], "depth_multiplier")
        filters = whole(opts["filters"], "filters")
        try:
            depthwise = ar.layer_cost(geom, x.channels, mid, x.channels, bias=False)
            point = ar.resolve(ar.make_spec(geom.output_size, 1, framework=ctx.framework))
            pointwise = ar.layer_cost(point, mid, filters, 1, bias)
        except CnnCliError as err:
            raise ModelError(_model_words(err).replace("in channels", "input channels")) from None
        return LayerOut(
            TShape(filters, geom.output_size),
            trainable=depthwise.params + pointwise.params,
            macs=depthwise.macs + pointwise.macs,
            bias_macs=pointwise.output_elements if bias else 0,
            kernel=geom.spec.kernel,
            stride=geom.spec.stride,
            dilation=geom.spec.dilation,
            geometry=geom,
            rf="window",
        )

    return compute


def crop_pairs(value: Any, ndim: int) -> tuple[tuple[int, int], ...]:
    """Keras's ``cropping``: one number for every side; for 1-D ``[start, end]``; for 2-D and 3-D
    one number per axis (both sides) or ``[before, after]`` per axis."""
    if _is_int(value):
        return ((value, value),) * ndim
    items = list(value)
    if ndim == 1:
        if len(items) == 2 and all(map(_is_int, items)):
            return ((items[0], items[1]),)
        raise ModelError(
            f"cropping {show(value)} is not one number or [start, end] (Keras's Cropping1D)"
        )
    if len(items) != ndim:
        raise ModelError(
            f"cropping {show(value)} has {len(items)} values for {ndim} spatial axes; give one "
            f"number, {ndim} numbers or {ndim} [before, after] pairs"
        )
    return tuple((v, v) if _is_int(v) else (v[0], v[1]) for v in items)


def _cropping(ndim: int) -> Callable[..., LayerOut]:
    def compute(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
        x = _one(inputs)
        _need_spatial(opts["_type"], x, ndim, ctx)
        pairs = crop_pairs(opts["cropping"], ndim)
        sizes = []
        for n, (a, b), axis in zip(x.spatial, pairs, ar.axis_names(ndim), strict=True):
            if a + b >= n:
                raise ModelError(
                    f"cropping {a}+{b} on axis {axis} leaves nothing of its {n} positions; "
                    "crop less than the size"
                )
            sizes.append(n - a - b)
        return LayerOut(TShape(x.channels, tuple(sizes)))

    return compute


def _reshape(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
    x = _one(inputs)
    target = list(opts["shape"])
    known = math.prod(d for d in target if d != -1)
    if target.count(-1) > 1:
        raise ModelError(f"shape {show(target)} has more than one -1; give every size but one")
    if -1 in target:
        if x.elements % known:
            raise ModelError(
                f"shape {show(target)} cannot hold the input {ctx.show(x)} ({x.elements:,} "
                f"elements are not a multiple of {known:,})"
            )
        target[target.index(-1)] = x.elements // known
    elif known != x.elements:
        raise ModelError(
            f"shape {show(target)} holds {known:,} elements, but the input {ctx.show(x)} has "
            f"{x.elements:,}; the sizes must multiply to the same number"
        )
    return LayerOut(_from_dims(target, ctx), rf="lost")


def _permute(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
    x = _one(inputs)
    dims = x.dims(ctx.channels_last)
    order = list(opts["dims"])
    if len(order) == len(dims) + 1 and order[0] == 0:
        order = order[1:]  # PyTorch's spelling, batch included: [0, 2, 3, 1]
    if sorted(order) != list(range(1, len(dims) + 1)):
        raise ModelError(
            f"dims {show(opts['dims'])} is not an order of the axes 1 to {len(dims)} of the input "
            f"{ctx.show(x)}; e.g. {list(range(len(dims), 0, -1))} (the batch, 0, stays first)"
        )
    return LayerOut(_from_dims([dims[i - 1] for i in order], ctx), rf="lost")


def _per_channel(value: Any, what: str, x: TShape, ctx: Ctx) -> None:
    """A number, or a list of one number per channel (broadcast along the channel axis)."""
    if isinstance(value, list) and len(value) not in (1, x.channels):
        raise ModelError(
            f"{what} has {len(value)} values but the input {ctx.show(x)} has {x.channels} "
            "channels; give one number or one per channel"
        )


def _rescaling(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
    x = _one(inputs)
    _per_channel(opts["scale"], "scale", x, ctx)
    _per_channel(opts["offset"], "offset", x, ctx)
    return LayerOut(x)


def stats_size(opts: dict[str, Any], x: TShape, ctx: Ctx) -> int:
    """Numbers in each of Keras Normalization's mean and variance: the sizes of its kept axes."""
    if opts["axis"] is None:
        return 1
    dims = x.dims(ctx.channels_last)
    return math.prod(dims[i] for i in axis_indices(opts["axis"], len(dims), "axis", ctx))


def _normalization(
    opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx
) -> LayerOut:
    x = _one(inputs)
    size = stats_size(opts, x, ctx)
    given = [k for k in ("mean", "variance") if opts[k] is not None]
    if len(given) == 1:
        raise ModelError(f"normalization takes mean and variance together, got only {given[0]}")
    for k in given:
        if isinstance(opts[k], list) and len(opts[k]) not in (1, size):
            raise ModelError(
                f"{k} has {len(opts[k])} values; give one number or {size} (one per normalised "
                "position)"
            )
    # Keras: mean and variance (one number per kept position) and the sample count are
    # non-trainable weights, unless mean and variance are given as constants.
    return LayerOut(x, non_trainable=0 if given else 2 * size + 1)


def _mean(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
    x = _one(inputs)
    dims = x.dims(ctx.channels_last)
    axes = axis_indices(opts["axes"], len(dims), "axes", ctx)
    keep = flag(opts["keepdims"], "keepdims")
    out = (
        [1 if i in axes else d for i, d in enumerate(dims)]
        if keep
        else [d for i, d in enumerate(dims) if i not in axes]
    )
    if not out:
        raise ModelError(
            f"mean over every axis of {ctx.show(x)} leaves a single number; keep an axis or "
            "use keepdims: true"
        )
    shape = _from_dims(out, ctx)
    return LayerOut(shape, rf="keep" if shape.spatial == x.spatial else "lost")


def split_count(opts: dict[str, Any]) -> int:
    """How many outputs a split has: ``chunks``, or one per entry of ``sizes``."""
    if (opts["chunks"] is None) == (opts["sizes"] is None):
        raise ModelError(
            "split takes chunks: N (as torch.chunk) or sizes: [a, b, …] (as torch.split), one of them"
        )
    return whole(opts["chunks"], "chunks") if opts["sizes"] is None else len(opts["sizes"])


def split_pieces(opts: dict[str, Any], x: TShape, ctx: Ctx) -> tuple[TShape, ...]:
    """The outputs of a split along the channels, as torch.chunk or torch.split gives them."""
    c = x.channels
    n = split_count(opts)
    if opts["sizes"] is not None:
        sizes = list(opts["sizes"])
        if sum(sizes) != c:
            raise ModelError(
                f"sizes {show(sizes)} add up to {sum(sizes)}, but the input {ctx.show(x)} has "
                f"{c} channels; the sizes must add up to the channels"
            )
    else:
        # torch.chunk: pieces of ceil(C / N) channels, the last one smaller; it may give fewer
        # than N pieces (5 channels in 4 chunks are 2, 2, 1), which cnncli refuses.
        each = -(-c // n)
        sizes = [each] * (c // each) + ([c % each] if c % each else [])
        if len(sizes) != n:
            raise ModelError(
                f"torch.chunk cuts {c} channels into {len(sizes)} pieces of {show(sizes)}, not "
                f"{n}; give the sizes instead, e.g. sizes: {show(sizes)}"
            )
    return tuple(TShape(k, x.spatial) for k in sizes)


def _split(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
    x = _one(inputs)
    _channels_only(opts, ctx, "cuts")
    return LayerOut(x, outputs=split_pieces(opts, x, ctx))


def _split_output(
    opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx
) -> LayerOut:
    return LayerOut(split_pieces(opts["split"], _one(inputs), ctx)[opts["index"]])


#: The hidden node ``NAME.i`` that reads output i of the split NAME (not a type users write):
#: every other part of cnncli keeps seeing layers with one output.
SPLIT_OUTPUT = LayerType("split_output", _split_output, {"index": 0, "split": None})


def _channel_shuffle(
    opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx
) -> LayerOut:
    x = _one(inputs)
    groups = whole(opts["groups"], "groups")
    if x.channels % groups:
        raise ModelError(
            f"channel_shuffle needs channels divisible by groups, but the input {ctx.show(x)} has "
            f"{x.channels} channels and groups is {groups}"
        )
    return LayerOut(x)


def _layer_scale(
    opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx
) -> LayerOut:
    x = _one(inputs)
    # torchvision's ConvNeXt: nn.Parameter(torch.ones(C, 1, 1) * layer_scale); Keras's LayerScale:
    # gamma of shape (C,). One learnable multiplier per channel.
    return LayerOut(x, trainable=x.channels)


def _pool(ndim: int, op: ar.Op) -> Callable[..., LayerOut]:
    def compute(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
        x = _one(inputs)
        _need_spatial(opts["_type"], x, ndim, ctx)
        geom = _geometry(x, opts, op, ctx)
        return LayerOut(
            TShape(x.channels, geom.output_size),
            kernel=geom.spec.kernel,
            stride=geom.spec.stride,
            dilation=geom.spec.dilation,
            geometry=geom,
            rf="window",
        )

    return compute


def _global_pool(
    opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx
) -> LayerOut:
    x = _one(inputs)
    if not x.spatial:
        raise ModelError(f"{opts['_type']} needs spatial axes, got the flat shape {ctx.show(x)}")
    keep = flag(opts["keepdims"], "keepdims")
    spatial = (1,) * len(x.spatial) if keep else ()
    return LayerOut(TShape(x.channels, spatial), kernel=x.spatial, rf="global")


def _adaptive_pool(
    opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx
) -> LayerOut:
    x = _one(inputs)
    if not x.spatial:
        raise ModelError(f"{opts['_type']} needs spatial axes, got the flat shape {ctx.show(x)}")
    try:
        size = ar.per_axis(opts["output_size"], len(x.spatial), "output_size")
    except CnnCliError as err:
        raise ModelError(_model_words(err)) from None
    # Window i covers [⌊i·n/out⌋, ⌈(i+1)·n/out⌉): exactly the input when out divides n.
    return LayerOut(TShape(x.channels, size), rf="global" if set(size) == {1} else "lost")


def _batchnorm(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
    x = _one(inputs)
    c = x.channels
    affine = flag(opts["affine"], "affine")
    stats = flag(opts["track_running_stats"], "track_running_stats")
    # PyTorch: weight, bias (trainable); running_mean, running_var (buffers). Keras: gamma (scale),
    # beta (center); moving_mean, moving_variance (non-trainable). num_batches_tracked not counted.
    kept = flag(opts["scale"], "scale") + flag(opts["center"], "center") if affine else 0
    return LayerOut(
        x,
        trainable=kept * c,
        non_trainable=2 * c if stats else 0,
        warning=momentum_warning(opts["momentum"], ctx),
    )


def torch_momentum(momentum: float | None, ctx: Ctx) -> float:
    """The model's batchnorm momentum as PyTorch takes it (the weight of the new batch):
    PyTorch's own 0.1 by default; a Keras or TF model's momentum (the weight of the old
    running value, 0.99 by default) is 1 − PyTorch's."""
    if ctx.framework is ar.Framework.TORCH:
        return 0.1 if momentum is None else momentum
    return 1 - (0.99 if momentum is None else momentum)


def momentum_warning(momentum: float | None, ctx: Ctx) -> str:
    """A word when ``momentum`` looks written in the other framework's convention (it changes
    no number cnncli shows, but a model built from the file would average differently)."""
    if momentum is None:
        return ""
    torch = ctx.framework is ar.Framework.TORCH
    if (momentum > 0.5) if torch else (momentum < 0.5):
        mine, other = ("PyTorch", "Keras") if torch else ("Keras", "PyTorch")
        return (
            f"momentum {momentum:g} looks like {other}'s convention, but this is a {ctx.framework.value} "
            f"model: PyTorch's momentum = 1 − Keras's ({other}'s {momentum:g} is {mine}'s "
            f"{1 - momentum:.6g}); the counts are the same either way"
        )
    return ""


def _layernorm(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
    x = _one(inputs)
    affine = flag(opts["affine"], "affine")
    return LayerOut(x, trainable=2 * x.channels if affine else 0)


def _same(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
    return LayerOut(_one(inputs))


def _activation(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
    activation_name(opts["function"], "activation function")
    return LayerOut(_one(inputs))


def _flatten(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
    x = _one(inputs)
    return LayerOut(TShape(x.elements, ()))


def _dense(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
    """A dense layer combines the channels at every position.

    Without ``axis`` it is nn.Linear or Keras's Dense as written: the last axis, which is the
    channels in a channels-last model or a flat input. On a channels-first shape with spatial
    axes that would be the width (a forgotten flatten, almost always), so it is refused unless
    ``axis: channels`` says the channels are meant: nn.Linear between two permutes (ConvNeXt).
    """
    x = _one(inputs)
    units = whole(opts["units"], "units")
    bias = flag(opts["bias"], "bias")
    axis = opts["axis"]
    rank = 1 + len(x.spatial)
    if axis is not None and axis_indices(axis, rank, "axis", ctx) != (
        (rank - 1,) if ctx.channels_last else (0,)
    ):
        raise ModelError(
            f"dense combines the channels only, and axis {show(axis)} of {ctx.show(x)} is not "
            "the channel axis; use axis: channels (or leave axis out)"
        )
    if x.spatial and not ctx.channels_last and axis is None:
        raise ModelError(
            f"dense on the channels-first shape {ctx.show(x)} would act on the last axis, not the "
            "channels; add a flatten or global_avgpool layer first, or axis: channels to apply it "
            "to the channels at every position (nn.Linear between two permutes)"
        )
    positions = x.elements // x.channels
    return LayerOut(
        TShape(units, x.spatial),
        trainable=x.channels * units + (units if bias else 0),
        macs=positions * x.channels * units,
        bias_macs=positions * units if bias else 0,
    )


def _zeropad(ndim: int) -> Callable[..., LayerOut]:
    def compute(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
        x = _one(inputs)
        _need_spatial(opts["_type"], x, ndim, ctx)
        try:
            # A 1-wide window over the padded input is exactly the padded size (PyTorch's rules
            # take explicit pairs on every axis; tf.nn.conv1d/conv3d take none).
            spec = ar.make_spec(x.spatial, 1, padding=opts["padding"], framework="torch")
            geom = ar.resolve(spec)
        except CnnCliError as err:
            raise ModelError(_model_words(err)) from None
        return LayerOut(TShape(x.channels, geom.output_size), geometry=geom)

    return compute


def _upsample(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
    x = _one(inputs)
    if not x.spatial:
        raise ModelError(f"upsample needs spatial axes, got the flat shape {ctx.show(x)}")
    try:
        if opts.get("size") is not None:
            if opts.get("scale") not in (None, 2):
                raise ModelError("upsample takes scale or size, not both; drop one")
            size = ar.per_axis(opts["size"], len(x.spatial), "size")
        else:
            scale = ar.per_axis(opts.get("scale") or 2, len(x.spatial), "scale")
            size = tuple(n * s for n, s in zip(x.spatial, scale, strict=True))
    except ModelError:
        raise
    except CnnCliError as err:
        raise ModelError(_model_words(err)) from None
    return LayerOut(TShape(x.channels, size), rf="lost")


def _broadcast(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
    kind = opts["_type"]
    first = inputs[0]
    dims = list(first.dims(False))
    for name, shape in zip(names[1:], inputs[1:], strict=True):
        other = shape.dims(False)
        ok = len(other) == len(dims) and all(
            a == b or (kind == "multiply" and 1 in (a, b)) for a, b in zip(dims, other, strict=True)
        )
        if not ok:
            rule = "equal shapes" if kind == "add" else "equal shapes or sizes of 1 (broadcast)"
            raise ModelError(
                f"{kind} needs {rule}, but '{names[0]}' is {ctx.show(first)} and '{name}' is "
                f"{ctx.show(shape)}"
            )
        dims = [max(a, b) for a, b in zip(dims, other, strict=True)]
    return LayerOut(TShape(dims[0], tuple(dims[1:])))


def _channels_only(opts: dict[str, Any], ctx: Ctx, does: str) -> None:
    """Concat and split work along the channel axis only (``channels``, or its number)."""
    axis = opts["axis"]
    if axis not in ("channels", -1 if ctx.channels_last else 1):
        raise ModelError(
            f"{opts['_type']} {does} along the channels only; drop axis {show(axis)} or use "
            "axis: channels"
        )


def _concat(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
    _channels_only(opts, ctx, "joins")
    first = inputs[0]
    for name, shape in zip(names[1:], inputs[1:], strict=True):
        if shape.spatial != first.spatial:
            raise ModelError(
                f"concat needs equal sizes apart from the channels, but '{names[0]}' is "
                f"{ctx.show(first)} and '{name}' is {ctx.show(shape)}"
            )
    return LayerOut(TShape(sum(s.channels for s in inputs), first.spatial))


def _opaque(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
    """An operator cnncli does not know (read from an ONNX, Keras or PyTorch model): its output
    shape and weights are the model file's own; its MACs are not counted, and the summary says
    so in its row and its totals - never a silent 0."""
    shape = _from_dims(list(opts["shape"]), ctx)
    return LayerOut(shape, trainable=opts["params"], rf="lost")


def _groupnorm(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
    """PyTorch GroupNorm, Keras GroupNormalization: statistics per sample over groups of
    channels; γ and β per channel when affine. Nothing is kept between batches."""
    x = _one(inputs)
    groups = whole(opts["groups"], "groups")
    if x.channels % groups:
        raise ModelError(
            f"groupnorm needs channels divisible by groups, but the input {ctx.show(x)} has "
            f"{x.channels} channels and groups is {groups}; use a divisor of {x.channels}"
        )
    affine = flag(opts["affine"], "affine")
    return LayerOut(x, trainable=2 * x.channels if affine else 0)


def _instancenorm(
    opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx
) -> LayerOut:
    """PyTorch InstanceNorm1d/2d/3d, ONNX InstanceNormalization: each channel of each sample
    normalised over its positions; γ, β (affine) trainable, running mean and variance
    (track_running_stats) not, as batchnorm counts them."""
    x = _one(inputs)
    if not x.spatial:
        raise ModelError(
            f"instancenorm needs spatial axes (it normalises each channel over its positions), "
            f"got the flat shape {ctx.show(x)}; use layernorm or batchnorm"
        )
    affine = flag(opts["affine"], "affine")
    stats = flag(opts["track_running_stats"], "track_running_stats")
    return LayerOut(
        x,
        trainable=2 * x.channels if affine else 0,
        non_trainable=2 * x.channels if stats else 0,
    )


def prelu_alpha_shape(opts: dict[str, Any], x: TShape, ctx: Ctx) -> tuple[int, ...]:
    """The shape of PReLU's learned slopes in the model's layout order, without the batch.

    ``num_parameters`` (PyTorch's ``nn.PReLU``): 1 slope for everything, or one per channel.
    ``shared_axes`` (Keras's ``PReLU``): axes (1 = the first after the batch) that share one
    slope; every other axis keeps its size. Neither: the model's framework decides, PyTorch's
    one slope for ``torch``, Keras's one slope per position and channel for ``keras``/``tf``.
    """
    dims = x.dims(ctx.channels_last)
    given, shared = opts["num_parameters"], opts["shared_axes"]
    if given is not None and shared is not None:
        raise ModelError(
            "prelu takes num_parameters (PyTorch's) or shared_axes (Keras's), not both; drop one"
        )
    if shared is not None:
        axes = axis_indices(shared, len(dims), "shared_axes", ctx)
        return tuple(1 if i in axes else d for i, d in enumerate(dims))
    if given is None:
        if ctx.framework is not ar.Framework.TORCH:
            return dims  # Keras's default: no shared axes
        given = 1
    n = whole(given, "num_parameters")
    if n not in (1, x.channels):
        raise ModelError(
            f"num_parameters {n} is neither 1 nor the {x.channels} channels of the input "
            f"{ctx.show(x)}; PyTorch's PReLU takes one of them"
        )
    if n == 1:
        return (1,) * len(dims)
    return TShape(x.channels, (1,) * len(x.spatial)).dims(ctx.channels_last)


def _prelu(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
    x = _one(inputs)
    return LayerOut(x, trainable=math.prod(prelu_alpha_shape(opts, x, ctx)))


def _lrn(opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx) -> LayerOut:
    """PyTorch LocalResponseNorm, ONNX LRN: each value divided by a power of the sum of squares
    over ``size`` neighbouring channels; nothing learned."""
    x = _one(inputs)
    whole(opts["size"], "size")
    if not x.spatial:
        raise ModelError(
            f"lrn needs spatial axes besides the channels (as PyTorch's LocalResponseNorm), got "
            f"the flat shape {ctx.show(x)}"
        )
    return LayerOut(x)


def _pixel_shuffle(
    opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx
) -> LayerOut:
    """PyTorch PixelShuffle / ONNX DepthToSpace (``pixel_shuffle``): (C·r², H, W) → (C, H·r, W·r);
    PixelUnshuffle / SpaceToDepth (``pixel_unshuffle``): the inverse. Only the order of the
    values differs between the modes (DCR, CRD), never a shape."""
    x = _one(inputs)
    kind = opts["_type"]
    r = whole(opts["factor"], "factor")
    if len(x.spatial) != 2:
        raise ModelError(
            f"{kind} needs an input with 2 spatial axes (H W) and channels, got {ctx.show(x)}"
        )
    if kind == "pixel_shuffle":
        if x.channels % (r * r):
            raise ModelError(
                f"pixel_shuffle by {r} needs channels divisible by {r}² = {r * r}, but the input "
                f"{ctx.show(x)} has {x.channels}"
            )
        return LayerOut(TShape(x.channels // (r * r), tuple(n * r for n in x.spatial)), rf="lost")
    for n, axis in zip(x.spatial, ar.axis_names(2), strict=True):
        if n % r:
            raise ModelError(
                f"pixel_unshuffle by {r} needs sizes divisible by {r}, but axis {axis} of the "
                f"input {ctx.show(x)} is {n}"
            )
    return LayerOut(TShape(x.channels * r * r, tuple(n // r for n in x.spatial)), rf="lost")


def pixel_mode(opts: dict[str, Any], ctx: Ctx) -> str:
    """The order of a pixel (un)shuffle: as given, else the framework's (PyTorch's ``crd``,
    TensorFlow's and Keras's ``depth_to_space`` ``dcr``)."""
    mode = opts["mode"]
    if mode is not None:
        return str(mode)
    return "crd" if ctx.framework is ar.Framework.TORCH else "dcr"


_CONV_OPTS = {
    "filters": None,
    "kernel": None,
    "stride": 1,
    "padding": None,
    "dilation": 1,
    "groups": 1,
    "bias": True,
    "activation": None,
}
_POOL_OPTS = {"kernel": None, "stride": None, "padding": None, "dilation": 1, "ceil_mode": False}


def _build_registry() -> dict[str, LayerType]:
    reg: list[LayerType] = []
    for nd in (1, 2, 3):
        reg.append(
            LayerType(
                f"conv{nd}d",
                _conv(nd, ar.Op.CONV),
                dict(_CONV_OPTS),
                ("filters", "kernel"),
                summary="convolution (grouped with groups:, dilated with dilation:)",
            )
        )
        reg.append(
            LayerType(
                f"depthwise_conv{nd}d",
                _conv(nd, ar.Op.CONV, depthwise=True),
                {k: v for k, v in _CONV_OPTS.items() if k not in ("filters", "groups")}
                | {"depth_multiplier": 1},
                ("kernel",),
                summary="one filter per input channel (groups = channels)",
            )
        )
        reg.append(
            LayerType(
                f"convtranspose{nd}d",
                _conv(nd, ar.Op.CONVTRANSPOSE),
                _CONV_OPTS | {"output_padding": None, "padding": 0},
                ("filters", "kernel"),
                summary="transposed convolution",
            )
        )
        reg.append(
            LayerType(f"maxpool{nd}d", _pool(nd, ar.Op.MAXPOOL), dict(_POOL_OPTS), ("kernel",))
        )
        reg.append(
            LayerType(
                f"avgpool{nd}d",
                _pool(nd, ar.Op.AVGPOOL),
                {k: v for k, v in _POOL_OPTS.items() if k != "dilation"},
                ("kernel",),
            )
        )
        reg.append(LayerType(f"zeropad{nd}d", _zeropad(nd), {"padding": 1}))
        # Keras's defaults: Cropping1D (1, 1), Cropping2D nothing, Cropping3D one on every side.
        reg.append(LayerType(f"cropping{nd}d", _cropping(nd), {"cropping": 0 if nd == 2 else 1}))
        if nd < 3:
            reg.append(
                LayerType(
                    f"separable_conv{nd}d",
                    _separable(nd),
                    {k: v for k, v in _CONV_OPTS.items() if k != "groups"}
                    | {"depth_multiplier": 1},
                    ("filters", "kernel"),
                    summary="Keras SeparableConv: depthwise (no bias), then 1×1 conv",
                )
            )
    reg += [
        LayerType("global_avgpool", _global_pool, {"keepdims": False}),
        LayerType("global_maxpool", _global_pool, {"keepdims": False}),
        LayerType("adaptive_avgpool", _adaptive_pool, {"output_size": None}, ("output_size",)),
        LayerType("adaptive_maxpool", _adaptive_pool, {"output_size": None}, ("output_size",)),
        LayerType(
            "batchnorm",
            _batchnorm,
            {
                "eps": 1e-5,
                "momentum": None,  # the framework's: PyTorch 0.1, Keras 0.99
                "affine": True,
                "track_running_stats": True,
                "scale": True,
                "center": True,
            },
        ),
        LayerType(
            "normalization",
            _normalization,
            {"axis": "channels", "mean": None, "variance": None, "invert": False},
        ),
        LayerType("rescaling", _rescaling, {"scale": None, "offset": 0.0}, ("scale",)),
        LayerType("reshape", _reshape, {"shape": None}, ("shape",)),
        LayerType("permute", _permute, {"dims": None}, ("dims",)),
        LayerType(
            "mean",
            _mean,
            {"axes": None, "keepdims": False},
            ("axes",),
            aliases={"axis": "axes", "dim": "axes", "keepdim": "keepdims"},
        ),
        LayerType("layernorm", _layernorm, {"eps": 1e-5, "affine": True}),
        LayerType(
            "groupnorm",
            _groupnorm,
            {"groups": None, "eps": 1e-5, "affine": True},
            ("groups",),
            aliases={"num_groups": "groups"},
            summary="group normalization (PyTorch GroupNorm, Keras GroupNormalization)",
        ),
        LayerType(
            "instancenorm",
            _instancenorm,
            {"eps": 1e-5, "momentum": None, "affine": False, "track_running_stats": False},
            summary="instance normalization (PyTorch InstanceNorm1d/2d/3d)",
        ),
        LayerType(
            "prelu",
            _prelu,
            {"num_parameters": None, "shared_axes": None},
            summary="leaky ReLU with learned slopes (PyTorch PReLU, Keras PReLU)",
        ),
        LayerType(
            "lrn",
            _lrn,
            {"size": None, "alpha": 1e-4, "beta": 0.75, "k": 1.0},
            ("size",),
            aliases={"alpha": "alpha", "bias": "k"},
            summary="local response normalization across channels (AlexNet, GoogLeNet)",
        ),
        LayerType(
            "pixel_shuffle",
            _pixel_shuffle,
            {"factor": None, "mode": None},
            ("factor",),
            aliases={"upscale_factor": "factor", "blocksize": "factor", "block_size": "factor"},
            summary="(C·r², H, W) → (C, H·r, W·r) (PixelShuffle, DepthToSpace)",
        ),
        LayerType(
            "pixel_unshuffle",
            _pixel_shuffle,
            {"factor": None, "mode": None},
            ("factor",),
            aliases={"downscale_factor": "factor", "blocksize": "factor", "block_size": "factor"},
            summary="(C, H·r, W·r) → (C·r², H, W) (PixelUnshuffle, SpaceToDepth)",
        ),
        LayerType(
            "split",
            _split,
            {"chunks": None, "sizes": None, "axis": "channels"},
            summary="outputs NAME.0, NAME.1, … (torch.chunk / torch.split along the channels)",
        ),
        LayerType("channel_shuffle", _channel_shuffle, {"groups": None}, ("groups",)),
        LayerType(
            "layer_scale",
            _layer_scale,
            {"init": 1e-6},
            aliases={"init_values": "init", "layer_scale": "init"},
        ),
        LayerType(
            "stochastic_depth",
            _same,
            {"rate": 0.0, "mode": "row"},
            aliases={"drop_path_rate": "rate", "drop_prob": "rate"},
        ),
        LayerType("dropout", _same, {"rate": 0.5}),
        LayerType("flatten", _flatten),
        LayerType(
            "dense",
            _dense,
            {"units": None, "bias": True, "activation": None, "axis": None},
            ("units",),
        ),
        LayerType("upsample", _upsample, {"scale": None, "size": None, "mode": "nearest"}),
        LayerType("add", _broadcast, arity=0),
        LayerType("multiply", _broadcast, arity=0),
        LayerType("concat", _concat, {"axis": "channels"}, arity=0),
        LayerType("identity", _same),
        LayerType("activation", _activation, {"function": None}, ("function",)),
        LayerType(
            "opaque",
            _opaque,
            {"op": None, "shape": None, "params": 0},
            ("op", "shape"),
            arity=ANY_INPUTS,
            summary="an operator cnncli does not know: shape and weights given, MACs not counted",
        ),
    ]
    for act in ACTIVATIONS:
        if act == "linear":
            continue
        opts: dict[str, Any] = {}
        if act == "leaky_relu":
            opts = {"negative_slope": 0.01}
        if act == "softmax":
            opts = {"axis": "channels"}
        aliases: dict[str, str] = {}
        if act == "elu":
            opts, aliases = {"alpha": 1.0}, {"alpha": "alpha"}
        if act == "softplus":
            opts = {"beta": 1.0, "threshold": 20.0}
        reg.append(LayerType(act, _same, opts, aliases=aliases))
    return {t.name: t for t in reg}


LAYER_TYPES = _build_registry()

#: PyTorch and Keras class names (lowercased, underscores dropped) for the canonical types.
_TYPE_ALIASES = {
    "linear": "dense",
    "batchnorm1d": "batchnorm",
    "batchnorm2d": "batchnorm",
    "batchnorm3d": "batchnorm",
    "batchnormalization": "batchnorm",
    "layernormalization": "layernorm",
    "globalaveragepooling1d": "global_avgpool",
    "globalaveragepooling2d": "global_avgpool",
    "globalaveragepooling3d": "global_avgpool",
    "globalmaxpooling1d": "global_maxpool",
    "globalmaxpooling2d": "global_maxpool",
    "globalmaxpooling3d": "global_maxpool",
    "adaptiveavgpool1d": "adaptive_avgpool",
    "adaptiveavgpool2d": "adaptive_avgpool",
    "adaptiveavgpool3d": "adaptive_avgpool",
    "adaptivemaxpool1d": "adaptive_maxpool",
    "adaptivemaxpool2d": "adaptive_maxpool",
    "adaptivemaxpool3d": "adaptive_maxpool",
    "concatenate": "concat",
    "cat": "concat",
    "mul": "multiply",
    "swish": "silu",
    "hardswish": "hardswish",
    "leakyrelu": "leaky_relu",
    "upsampling1d": "upsample",
    "upsampling2d": "upsample",
    "upsampling3d": "upsample",
    "upsample": "upsample",
    "relu": "relu",
    "chunk": "split",
    "droppath": "stochastic_depth",
    "groupnormalization": "groupnorm",
    "instancenormalization": "instancenorm",
    "localresponsenorm": "lrn",
    "localresponsenormalization": "lrn",
}
for _nd in (1, 2, 3):
    _TYPE_ALIASES |= {
        f"maxpooling{_nd}d": f"maxpool{_nd}d",
        f"averagepooling{_nd}d": f"avgpool{_nd}d",
        f"avgpooling{_nd}d": f"avgpool{_nd}d",
        f"conv{_nd}dtranspose": f"convtranspose{_nd}d",
        f"zeropadding{_nd}d": f"zeropad{_nd}d",
        f"depthwiseconv{_nd}d": f"depthwise_conv{_nd}d",
        f"instancenorm{_nd}d": "instancenorm",
    }
_LOOKUP = {name.replace("_", ""): name for name in LAYER_TYPES} | _TYPE_ALIASES


#: Keras's default layer names (Keras names layers after the class in snake case); used for
#: channels-last (Keras) models so that `mnist-convnet` reads as Keras prints it.
KERAS_NAMES = {
    "batchnorm": "batch_normalization",
    "layernorm": "layer_normalization",
    "concat": "concatenate",
    "upsample": "up_sampling2d",
    "global_avgpool": "global_average_pooling2d",
    "global_maxpool": "global_max_pooling2d",
    "relu": "re_lu",
    "leaky_relu": "leaky_re_lu",
    "groupnorm": "group_normalization",
    "prelu": "p_re_lu",
} | {
    name: base
    for nd in (1, 2, 3)
    for name, base in (
        (f"maxpool{nd}d", f"max_pooling{nd}d"),
        (f"avgpool{nd}d", f"average_pooling{nd}d"),
        (f"convtranspose{nd}d", f"conv{nd}d_transpose"),
        (f"zeropad{nd}d", f"zero_padding{nd}d"),
    )
}


def layer_type(name: str) -> LayerType:
    """The layer type for a name as written (``Conv2D``, ``conv2d``, ``BatchNorm2d`` …)."""
    key = name.lower().replace("_", "").replace("-", "")
    if key in _LOOKUP:
        return LAYER_TYPES[_LOOKUP[key]]
    # A close name first, only when it is really close ('mean' is not 'tanh'), then every type:
    # the user learns what exists, not only what is spelled alike.
    near = difflib.get_close_matches(name.lower(), list(LAYER_TYPES), n=3, cutoff=0.75)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise ModelError(
        f"unknown layer type {shorten(name)!r}{hint} (layer types: {', '.join(sorted(LAYER_TYPES))}; "
        "see docs/model-format.md)"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sizes(value: Any, pairs: bool = False) -> bool:
    """A whole number or a short list of them (for padding also ``[before, after]`` pairs)."""
    if _is_int(value):
        return True
    if not isinstance(value, list) or not 1 <= len(value) <= 3:
        return False
    return all(
        _is_int(v) or (pairs and isinstance(v, list) and len(v) == 2 and all(map(_is_int, v)))
        for v in value
    )


def _huge(value: Any) -> bool:
    """A number no size can be (beyond 2**62), anywhere in a value: refused before arithmetic."""
    if isinstance(value, list):
        return any(_huge(v) for v in value)
    return _is_int(value) and abs(value) > 2**62


def _number(value: Any) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _numbers(value: Any) -> bool:
    """A finite number or a short list of them."""
    if isinstance(value, list):
        return 1 <= len(value) <= MAX_LIST and all(map(_number, value))
    return _number(value)


def _axis_list(value: Any, allow_null: bool = False) -> bool:
    """An axis number, ``channels``, or a list of them (``null`` too where it means something)."""
    if value is None:
        return allow_null
    items = value if isinstance(value, list) else [value]
    return 1 <= len(items) <= 5 and all(v == "channels" or _is_int(v) for v in items)


def _all_ints(value: Any, test: Callable[[int], bool]) -> bool:
    """Every whole number inside ``value`` (lists of any depth) passes ``test``."""
    if isinstance(value, list):
        return all(_all_ints(v, test) for v in value)
    return not _is_int(value) or test(value)


#: Longest list of per-channel numbers an option may hold (Rescaling's scale, mean, variance).
MAX_LIST = 4096
#: Options every layer type takes. ``shared: true``: the layer uses the weights of an earlier
#: layer (a Keras layer or nested model called again), so its parameters are counted there, once.
COMMON_OPTIONS: dict[str, Any] = {"shared": False}
#: Options where an explicit ``null`` is a value of its own, checked like any other.
_NULL_MEANS = frozenset({"normalization.axis"})


def _ints_from(low: int, pairs: bool = False) -> Callable[[Any], bool]:
    """A whole number ≥ ``low``, or a list of 1 to 3 of them (``pairs``: or [before, after])."""
    return lambda v: _sizes(v, pairs) and _all_ints(v, lambda n: n >= low)


def _between(
    low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False
) -> Callable[[Any], bool]:
    """A finite number in [low, high] (either end open)."""

    def test(v: Any) -> bool:
        if not _number(v):
            return False
        x = float(v)
        return (x > low if low_open else x >= low) and (x < high if high_open else x <= high)

    return test


def _numbers_from(low: float) -> Callable[[Any], bool]:
    """A finite number ≥ ``low``, or a list of them."""
    return lambda v: _numbers(v) and all(n >= low for n in (v if isinstance(v, list) else [v]))


_SIZES_TEXT = "a whole number ≥ 1 or a list of 1 to 3 of them, e.g. 3 or [3, 3]"
_FLAG = (lambda v: isinstance(v, bool), "true or false")

#: What each option holds, its type and its range: (test, what the message says is expected).
#: Options of one type only are keyed TYPE.OPTION (the same word means another thing there:
#: ``rescaling.scale`` is a number, upsample's ``scale`` a size). ``None`` is each option's
#: default and allowed here; the layer's rule decides whether it may be missing. Sizes above
#: 2³¹−1 are refused by the layer rules (one message for every size, with the limit).
_OPTION_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    **dict.fromkeys(
        ("filters", "groups", "units", "depth_multiplier", "chunks"),
        (lambda v: _is_int(v) and v >= 1, "a whole number ≥ 1"),
    ),
    **dict.fromkeys(
        ("kernel", "stride", "dilation", "output_size", "scale", "size"),
        (_ints_from(1), _SIZES_TEXT),
    ),
    "output_padding": (
        _ints_from(0),
        "a whole number ≥ 0 or a list of 1 to 3 of them, e.g. 1 or [1, 0]",
    ),
    "padding": (
        lambda v: isinstance(v, str) or _ints_from(0, pairs=True)(v),
        "a whole number ≥ 0, a list like [1, 2] or [[0, 1], [1, 0]], or same/valid/full",
    ),
    **dict.fromkeys(
        ("bias", "ceil_mode", "keepdims", "affine", "track_running_stats", "shared"), _FLAG
    ),
    **dict.fromkeys(("activation", "function"), (lambda v: isinstance(v, str), "a name")),
    "eps": (_between(0, low_open=True), "a finite number > 0, e.g. 1e-5"),
    "momentum": (_between(0, 1), "a number from 0 to 1"),
    "rate": (_between(0, 1, high_open=True), "a number from 0 to below 1"),
    "negative_slope": (_number, "a finite number"),
    "axis": (lambda v: isinstance(v, str) or _is_int(v), "channels or an axis number"),
    "upsample.mode": (
        lambda v: v in ("nearest", "linear", "bilinear", "bicubic", "trilinear"),
        "nearest, linear, bilinear, bicubic or trilinear",
    ),
    **dict.fromkeys(("batchnorm.scale", "batchnorm.center", "normalization.invert"), _FLAG),
    **dict.fromkeys(
        ("rescaling.scale", "rescaling.offset", "normalization.mean"),
        (_numbers, "a finite number or a list of them (one per channel)"),
    ),
    "normalization.variance": (
        _numbers_from(0),
        "a finite number ≥ 0 or a list of them (one per channel)",
    ),
    "normalization.axis": (
        lambda v: _axis_list(v, allow_null=True),
        "channels, an axis number, a list of them, or null (one mean for everything)",
    ),
    "mean.axes": (_axis_list, "an axis number, channels, or a list of them, e.g. [2, 3]"),
    "sizes": (
        lambda v: (
            isinstance(v, list)
            and 1 <= len(v) <= MAX_LIST
            and all(_is_int(n) and n >= 1 for n in v)
        ),
        "a list of channel counts ≥ 1, e.g. [58, 58]",
    ),
    "init": (_number, "a finite number"),
    **dict.fromkeys(("elu.alpha", "lrn.alpha", "lrn.beta", "lrn.k"), (_number, "a finite number")),
    "softplus.beta": (_between(0, low_open=True), "a finite number > 0, e.g. 1"),
    "softplus.threshold": (_between(0, low_open=True), "a finite number > 0, e.g. 20"),
    "lrn.size": (lambda v: _is_int(v) and v >= 1, "a whole number ≥ 1 (channels summed over)"),
    "factor": (lambda v: _is_int(v) and v >= 1, "a whole number ≥ 1 (the block size r)"),
    **dict.fromkeys(
        ("pixel_shuffle.mode", "pixel_unshuffle.mode"),
        (lambda v: v in ("crd", "dcr"), "crd (PyTorch's order) or dcr (TensorFlow's)"),
    ),
    "num_parameters": (
        lambda v: _is_int(v) and v >= 1,
        "a whole number ≥ 1: 1, or the input's channels",
    ),
    "shared_axes": (
        lambda v: v == [] or _axis_list(v),
        "an axis number or a list of them (1 = the first axis after the batch), e.g. [1, 2]; "
        "[] for none",
    ),
    "opaque.op": (
        lambda v: isinstance(v, str) and 1 <= len(v) <= 100,
        "the operator's name, e.g. NonMaxSuppression",
    ),
    "opaque.shape": (
        lambda v: (
            isinstance(v, list)
            and 1 <= len(v) <= 5
            and all(_is_int(d) and 0 <= d <= MAX_SIZE for d in v)
        ),
        "a list of 1 to 5 sizes without the batch, 0 for a size known only when the model "
        "runs, e.g. [0, 4]",
    ),
    "opaque.params": (
        lambda v: _is_int(v) and 0 <= v <= 2**50,
        "a whole number ≥ 0 (the weights the operator holds)",
    ),
    "stochastic_depth.mode": (lambda v: v in ("row", "batch"), "row or batch"),
    "cropping": (
        _ints_from(0, pairs=True),
        "a whole number ≥ 0, a list of them, or [before, after] pairs, e.g. [[0, 1], [0, 1]]",
    ),
    "shape": (
        lambda v: (
            isinstance(v, list)
            and 1 <= len(v) <= 4
            and all(_is_int(d) and (d >= 1 or d == -1) for d in v)
        ),
        "a list of 1 to 4 sizes ≥ 1 without the batch (one may be -1), e.g. [1, 1, 32]",
    ),
    "dims": (
        lambda v: isinstance(v, list) and 1 <= len(v) <= 5 and all(map(_is_int, v)),
        "a list of axis numbers without the batch, e.g. [2, 1] (Keras) or [0, 2, 1] (PyTorch)",
    ),
}


def option_type(kind: LayerType, name: str) -> tuple[Callable[[Any], bool], str] | None:
    """What option ``name`` (canonical) of ``kind`` holds: its own entry, or the shared one."""
    return _OPTION_TYPES.get(f"{kind.name}.{name}") or _OPTION_TYPES.get(name)


def canonical_options(kind: LayerType, raw: dict[str, Any]) -> dict[str, Any]:
    """Map option spellings to canonical names, refuse unknown ones, fill defaults."""
    opts: dict[str, Any] = {}
    for key, value in raw.items():
        name = kind.aliases.get(key) or OPTION_ALIASES.get(key, key)
        if name not in kind.options and name not in COMMON_OPTIONS:
            known = sorted(kind.options)
            spellings = [a for a, c in (OPTION_ALIASES | kind.aliases).items() if c in kind.options]
            hint = closest(key, known + spellings)
            listing = (
                f" ({kind.name} takes {', '.join(known)})"
                if known
                else f" ({kind.name} takes no options)"
            )
            raise ModelError(f"unknown option {shorten(key)!r} for {kind.name}{hint}{listing}")
        if name in opts:
            raise ModelError(f"option {name!r} given twice (as {key!r}); keep one")
        if _huge(value):
            raise ModelError(f"{key} {show(value)} is absurdly large; use a realistic size")
        test, expected = option_type(kind, name) or (lambda v: True, "")
        if (value is not None or f"{kind.name}.{name}" in _NULL_MEANS) and not test(value):
            raise ModelError(f"{key} must be {expected}, got {show(value)}")
        opts[name] = value
    for name in kind.required:
        if opts.get(name) is None:
            raise ModelError(f"{kind.name} needs the option {name!r}")
    out = dict(kind.options) | opts
    out["_type"] = kind.name
    if "activation" in out:
        out["activation"] = activation_name(out["activation"])
    if "function" in out and out["function"] is not None:
        out["function"] = activation_name(out["function"], "activation function")
    return out


def compute(
    kind: LayerType, opts: dict[str, Any], inputs: list[TShape], names: list[str], ctx: Ctx
) -> LayerOut:
    """Apply the layer's rule after checking how many inputs it has."""
    if kind.arity == 1 and len(inputs) != 1:
        raise ModelError(f"{kind.name} takes one input, got {len(inputs)} ({', '.join(names)})")
    if kind.arity == 0 and len(inputs) < 2:
        raise ModelError(
            f"{kind.name} needs two or more inputs, got {len(inputs)}; list them with input: [a, b]"
        )
    out = kind.compute(opts, inputs, names, ctx)
    if opts.get("shared"):
        # The weights of an earlier call: counted there, once (as Keras counts a shared layer).
        out = replace(out, trainable=0, non_trainable=0)
    return out
