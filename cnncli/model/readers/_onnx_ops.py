"""ONNX operators → cnncli's layer types: one mapping per operator, in :data:`HANDLERS`.

A mapping reads the node's attributes and constant inputs, and emits the layer (or the chain's
one layer, :mod:`._onnx_fusions`) through :meth:`Converter.emit
<cnncli.model.readers._onnx_convert.Converter.emit>`; it raises :class:`Opaque` when no layer
type expresses this use of the operator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cnncli import arithmetic as ar
from cnncli.errors import ModelError
from cnncli.model.layers import MAX_LIST, TShape
from cnncli.model.readers._onnx_fold import norm_axes, np_lib, reshape_target, shape_slice
from cnncli.model.readers._onnx_fusions import (
    gated,
    gelu,
    group_norm_pattern,
    lrn_pattern,
    softplus,
    softplus_beta,
    unshuffle_pattern,
)
from cnncli.model.readers._onnx_values import (
    DEFAULT_DOMAINS,
    INTERNAL,
    Act,
    Const,
    Opaque,
    Value,
    act,
    attrs,
    const,
    per_channel,
    perm_of,
)

if TYPE_CHECKING:
    from cnncli.model.readers._onnx_convert import Converter


def _only_first_output(node: Any, conv: Converter) -> None:
    """Extra outputs (MaxPool's indices, Dropout's mask) must be unread."""
    for name in node.output[1:]:
        if name and conv.consumers.get(name):
            raise Opaque


def _pads(a: dict[str, Any], ndim: int) -> list[list[int]]:
    pads = [int(p) for p in a.get("pads", [0] * (2 * ndim))]
    return [[pads[i], pads[i + ndim]] for i in range(ndim)]


def _padding(a: dict[str, Any], x: Act, kernel: list[int], transposed: bool) -> list[list[int]]:
    """ONNX ``pads``/``auto_pad`` as a model-format padding (explicit pairs)."""
    ndim = len(kernel)
    mode = a.get("auto_pad", "NOTSET")
    if mode in ("NOTSET", ""):
        pairs = _pads(a, ndim)
    elif mode == "VALID":
        pairs = [[0, 0]] * ndim
    elif not transposed and mode in ("SAME_UPPER", "SAME_LOWER"):
        strides = a.get("strides", [1] * ndim)
        dil = a.get("dilations", [1] * ndim)
        pairs = []
        for n, k, s, d in zip(x.shape.spatial, kernel, strides, dil, strict=True):
            before, after = ar.same_padding(n, k, s, d, ar.Framework.TF)
            pairs.append([before, after] if mode == "SAME_UPPER" else [after, before])
    else:
        raise Opaque
    if any(p < 0 for pair in pairs for p in pair):
        raise Opaque
    return pairs


def _simplify(pairs: list[list[int]]) -> Any:
    """``[[1, 1], [1, 1]]`` → ``1``; ``[[1, 1], [2, 2]]`` → ``[1, 2]``; asymmetric kept."""
    if all(b == e for b, e in pairs):
        sides = [b for b, _ in pairs]
        return sides[0] if len(set(sides)) == 1 else sides
    return pairs


def _ndim_ok(x: Act, ndim: int) -> None:
    if len(x.shape.spatial) != ndim or not 1 <= ndim <= 3:
        raise Opaque


def _conv(conv: Converter, node: Any, ins: list[Value]) -> None:
    """Conv → conv1d/2d/3d: filters and kernel from the weight, explicit padding pairs."""
    x, w = act(ins[0]), const(ins[1])
    bias = const(ins[2]) if len(ins) > 2 and ins[2] is not None else None
    a = attrs(node)
    kernel = [int(k) for k in a.get("kernel_shape", w.dims[2:])]
    _ndim_ok(x, len(kernel))
    opts = {
        "filters": w.dims[0],
        "kernel": kernel,
        "stride": [int(s) for s in a.get("strides", [1] * len(kernel))],
        "dilation": [int(d) for d in a.get("dilations", [1] * len(kernel))],
        "padding": _simplify(_padding(a, x, kernel, False)),
        "groups": int(a.get("group", 1)),
        "bias": bias is not None,
    }
    conv.emit(node, f"conv{len(kernel)}d", opts, [x], [w, *([bias] if bias else [])])


def _conv_transpose(conv: Converter, node: Any, ins: list[Value]) -> None:
    """ConvTranspose → convtranspose*: the weight is (C_in, C_out / groups, *kernel)."""
    x, w = act(ins[0]), const(ins[1])
    bias = const(ins[2]) if len(ins) > 2 and ins[2] is not None else None
    a = attrs(node)
    kernel = [int(k) for k in a.get("kernel_shape", w.dims[2:])]
    _ndim_ok(x, len(kernel))
    if "output_shape" in a:
        raise Opaque  # sizes given instead of padding: not expressible as PyTorch's layer
    pairs = _padding(a, x, kernel, True)
    if any(b != e for b, e in pairs):
        raise Opaque  # PyTorch crops both sides equally
    groups = int(a.get("group", 1))
    opts = {
        "filters": w.dims[1] * groups,
        "kernel": kernel,
        "stride": [int(s) for s in a.get("strides", [1] * len(kernel))],
        "dilation": [int(d) for d in a.get("dilations", [1] * len(kernel))],
        "padding": _simplify(pairs),
        "output_padding": [int(p) for p in a.get("output_padding", [0] * len(kernel))],
        "groups": groups,
        "bias": bias is not None,
    }
    conv.emit(node, f"convtranspose{len(kernel)}d", opts, [x], [w, *([bias] if bias else [])])


def _pool(conv: Converter, node: Any, ins: list[Value]) -> None:
    """MaxPool, AveragePool → maxpool*, avgpool* (a zeropad row first when one side pads more)."""
    x = act(ins[0])
    _only_first_output(node, conv)
    a = attrs(node)
    kernel = [int(k) for k in a["kernel_shape"]]
    _ndim_ok(x, len(kernel))
    kind = "maxpool" if node.op_type == "MaxPool" else "avgpool"
    dilation = [int(d) for d in a.get("dilations", [1] * len(kernel))]
    if kind == "avgpool" and any(d != 1 for d in dilation):
        raise Opaque
    pairs = _padding(a, x, kernel, False)
    opts: dict[str, Any] = {
        "kernel": kernel,
        "stride": [int(s) for s in a.get("strides", [1] * len(kernel))],
        "ceil_mode": bool(a.get("ceil_mode", 0)),
    }
    if kind == "maxpool":
        opts["dilation"] = dilation
    if any(b != e for b, e in pairs):
        # PyTorch pools pad both sides equally: pad first (same output size), then pool.
        conv.emit(node, f"zeropad{len(kernel)}d", {"padding": pairs}, [x], outputs=[INTERNAL])
        x = act(conv.values.pop(INTERNAL))
        conv.stats.split_pools += 1
        pairs = [[0, 0]] * len(kernel)
    opts["padding"] = _simplify(pairs)
    conv.emit(node, f"{kind}{len(kernel)}d", opts, [x])


def _shape(conv: Converter, node: Any, ins: list[Value]) -> None:
    """``Shape(x)`` of an activation: its sizes are known (cnncli computed them), so the shape
    arithmetic that follows folds into constants (a symbolic batch stands as a probe number)."""
    x = act(ins[0])
    dims = [conv.batch_value, *x.shape.dims(x.last)]
    if 0 in dims:
        raise Opaque  # a size known only at run time
    if node.op_type == "Size":
        value = np_lib().array(math.prod(dims), dtype=np_lib().int64)
    else:
        value = shape_slice(dims, attrs(node))
    conv.set_const(node.output[0], value)
    conv.stats.folded[node.op_type] += 1


def _global_pool(conv: Converter, node: Any, ins: list[Value]) -> None:
    """GlobalAveragePool, GlobalMaxPool → global_avgpool, global_maxpool keeping (C, 1, 1)."""
    x = act(ins[0])
    if not x.shape.spatial:
        raise Opaque
    kind = "global_avgpool" if node.op_type == "GlobalAveragePool" else "global_maxpool"
    conv.emit(node, kind, {"keepdims": True}, [x])


def _same_shape(kind: str, **extra: Any) -> Callable[[Converter, Any, list[Value]], None]:
    def handler(conv: Converter, node: Any, ins: list[Value]) -> None:
        x = act(ins[0])
        _only_first_output(node, conv)
        conv.emit(node, kind, dict(extra), [x])

    return handler


def _clip(conv: Converter, node: Any, ins: list[Value]) -> None:
    """Clip(0, 6) → relu6, Clip(0, ∞) → relu; other bounds have no layer type."""
    x = act(ins[0])
    a = attrs(node)
    low = _scalar(conv, node, ins[1] if len(ins) > 1 else None, a.get("min"))
    high = _scalar(conv, node, ins[2] if len(ins) > 2 else None, a.get("max"))
    if low == 0 and high == 6:
        conv.emit(node, "relu6", {}, [x])
    elif low == 0 and high is None:
        conv.emit(node, "relu", {}, [x])
    else:
        raise Opaque


def _scalar(conv: Converter, node: Any, value: Value, attr: Any) -> float | None:
    """A scalar operand (a constant input, or the attribute older operator sets use)."""
    if value is None:
        return None if attr is None else float(attr)
    arr = conv.array(const(value), node)
    if arr.size != 1:
        raise Opaque
    return float(arr.reshape(-1)[0])


def _leaky_relu(conv: Converter, node: Any, ins: list[Value]) -> None:
    """LeakyRelu → leaky_relu with its slope."""
    alpha = float(attrs(node).get("alpha", 0.01))
    conv.emit(node, "leaky_relu", {"negative_slope": alpha}, [act(ins[0])])


def _softmax(conv: Converter, node: Any, ins: list[Value]) -> None:
    """Softmax over the channels → softmax."""
    x = act(ins[0])
    rank = 2 + len(x.shape.spatial)
    default = -1 if conv.opset >= 13 else 1
    axis = int(attrs(node).get("axis", default))
    axis = axis + rank if axis < 0 else axis
    if axis != 1 or (conv.opset < 13 and rank > 2):
        raise Opaque  # before opset 13, Softmax flattened everything after the axis
    conv.emit(node, "softmax", {}, [x])


def _gemm(conv: Converter, node: Any, ins: list[Value]) -> None:
    """Gemm of a flat tensor and a weight (transB 0 or 1), bias C of one number per unit → dense."""
    x, w = act(ins[0]), const(ins[1])
    a = attrs(node)
    if a.get("transA", 0) or x.shape.spatial or len(w.dims) != 2:
        raise Opaque
    units = w.dims[0] if a.get("transB", 0) else w.dims[1]
    bias = ins[2] if len(ins) > 2 else None
    weights = [w]
    if bias is not None:
        b = const(bias)
        if b.size != units:
            raise Opaque  # a scalar or broadcast C: not a bias per unit
        weights.append(b)
    conv.emit(node, "dense", {"units": units, "bias": bias is not None}, [x], weights)


def _matmul(conv: Converter, node: Any, ins: list[Value]) -> None:
    """MatMul of a flat tensor and a 2-D weight → dense; with the Add of a bias after it, one
    dense layer with that bias."""
    x, w = act(ins[0]), const(ins[1])
    if (x.shape.spatial and not x.last) or len(w.dims) != 2 or w.dims[0] != x.shape.channels:
        raise Opaque  # over the last axis of a channels-first tensor: no layer type
    units = w.dims[1]
    if x.last:  # a Linear over the channels of (N, H, W, C): dense at every position
        _linear_over_channels(conv, node, x, w, units)
        return
    readers = conv.consumers.get(node.output[0], [])
    add = readers[0] if len(readers) == 1 else None
    bias = _bias_of(conv, add, node.output[0], units)
    if bias is not None and add is not None:
        conv.skip.add(id(add))
        conv.emit(
            add, "dense", {"units": units, "bias": True}, [x], [w, bias], list(add.output[:1])
        )
        conv.stats.fused["MatMul and Add read as one dense layer"] += 1
        return
    conv.emit(node, "dense", {"units": units, "bias": False}, [x], [w])


def _linear_over_channels(conv: Converter, node: Any, x: Act, w: Const, units: int) -> None:
    """MatMul (+ bias Add) over the channels of a channels-last tensor → ``dense`` with
    ``axis: channels`` (a Linear at every position, as the zoo writes ConvNeXt)."""
    readers = conv.consumers.get(node.output[0], [])
    add = readers[0] if len(readers) == 1 else None
    bias = _bias_of(conv, add, node.output[0], units)
    kind = "dense"
    opts = {"units": units, "bias": bias is not None, "axis": "channels"}
    if bias is not None and add is not None:
        conv.skip.add(id(add))
        conv.emit(add, kind, opts, [x], [w, bias], list(add.output[:1]))
        conv.stats.fused["MatMul and Add read as one dense layer over the channels"] += 1
        return
    conv.emit(node, kind, opts, [x], [w])


def _bias_of(conv: Converter, add: Any, tensor: str, units: int) -> Const | None:
    """The bias of ``MatMul`` + ``Add(·, b)``: a constant of ``units`` numbers."""
    if add is None or add.op_type != "Add" or add.domain not in DEFAULT_DOMAINS:
        return None
    other = [n for n in add.input if n != tensor]
    if len(other) != 1:
        return None
    value = conv.values.get(other[0])
    if isinstance(value, Const) and value.size == units and value.dims[-1:] == (units,):
        return value
    return None


def _batchnorm(conv: Converter, node: Any, ins: list[Value]) -> None:
    """BatchNormalization → batchnorm (scale and shift trainable, mean and variance not)."""
    x = act(ins[0])
    _only_first_output(node, conv)
    weights = [const(v) for v in ins[1:5]]
    eps = float(attrs(node).get("epsilon", 1e-5))
    conv.emit(node, "batchnorm", {"eps": eps} if eps > 0 else {}, [x], weights)


def _flatten(conv: Converter, node: Any, ins: list[Value]) -> None:
    """Flatten(axis=1) → flatten; other axes merge the batch."""
    x = act(ins[0])
    if int(attrs(node).get("axis", 1)) != 1:
        raise Opaque
    conv.emit(node, "flatten", {}, [x])


def _reshape(conv: Converter, node: Any, ins: list[Value]) -> None:
    """Reshape with a known target (ONNX's 0 and -1 resolved) → flatten or reshape."""
    x = act(ins[0])
    if len(ins) > 1:
        shape = conv.array(const(ins[1]), node)
    else:
        shape = attrs(node).get("shape")  # opset < 5
    dims = (conv.batch_value, *x.shape.dims(False))
    allowzero = bool(attrs(node).get("allowzero", 0))
    try:
        target = reshape_target(shape, dims, allowzero)
    except ModelError as err:
        raise conv.error(node, str(err)) from None
    if group_norm_pattern(conv, node, x, target) or unshuffle_pattern(conv, node, x, target):
        return
    _reshape_to(conv, node, x, target)


def _reshape_to(conv: Converter, node: Any, x: Act, target: list[int]) -> None:
    """A reshape that keeps the batch first: flatten, or reshape to the rest."""
    if not target or target[0] != conv.batch_value or not 2 <= len(target) <= 5:
        raise Opaque  # the batch moves or merges: no per-sample layer expresses it
    rest = target[1:]
    if len(rest) == 1 and x.shape.spatial:
        conv.emit(node, "flatten", {}, [x])
    else:
        conv.emit(node, "reshape", {"shape": rest}, [x])


def _squeeze(conv: Converter, node: Any, ins: list[Value]) -> None:
    """Squeeze, Unsqueeze of a layer's output (not of the batch axis) → reshape."""
    x = act(ins[0])
    a = attrs(node)
    rank = 2 + len(x.shape.spatial)
    axes_value = (
        a.get("axes")
        if "axes" in a
        else (conv.array(const(ins[1]), node) if len(ins) > 1 and ins[1] is not None else None)
    )
    dims = [conv.batch_value, *x.shape.dims(False)]
    if node.op_type == "Squeeze":
        axes = (
            norm_axes(axes_value, rank)
            if axes_value is not None
            else [i for i, d in enumerate(dims) if d == 1]
        )
        if 0 in axes or any(dims[i] != 1 for i in axes):
            raise Opaque
        target = [d for i, d in enumerate(dims) if i not in axes]
    else:
        new_rank = rank + len(np_lib().atleast_1d(axes_value))
        axes = norm_axes(axes_value, new_rank)
        if 0 in axes:
            raise Opaque
        target = list(dims)
        for axis in axes:
            target.insert(axis, 1)
    _reshape_to(conv, node, x, target)


def _transpose(conv: Converter, node: Any, ins: list[Value]) -> None:
    """Transpose keeping the batch first → permute (PyTorch's spelling, batch included)."""
    x = act(ins[0])
    rank = 2 + len(x.shape.spatial)
    perm = perm_of(node, rank)
    if len(perm) != rank or perm[0] != 0 or rank > 5:
        raise Opaque  # a permute holds at most 4 axes besides the batch
    if x.last:  # the permute back (takes_last let only that through)
        conv.check(node, node.output[0], x.shape)
        conv.values[node.output[0]] = Act(x.ref, x.shape)
    elif rank > 2 and perm == [0, *range(2, rank), 1]:
        # Channels last: read on, channels first, until the permute back (see Act).
        conv.check(node, node.output[0], x.shape, last=True)
        conv.values[node.output[0]] = Act(x.ref, x.shape, True, (node, node.output[0]))
    else:
        conv.emit(node, "permute", {"dims": perm}, [x])


#: Operators that read a channels-last tensor (see Act) as the channels-first one: the same
#: rows either way.
_KEEP_LAYOUT = frozenset(
    {
        "Relu",
        "Sigmoid",
        "HardSigmoid",
        "HardSwish",
        "Tanh",
        "Gelu",
        "LeakyRelu",
        "Clip",
        "Identity",
        "Dropout",
        "LayerNormalization",
        "MatMul",
        "Shape",
        "Size",
    }
)


def takes_last(conv: Converter, node: Any, ins: list[Value]) -> bool:
    """Whether ``node`` reads its channels-last inputs as they are (see :class:`Act`)."""
    op = node.op_type
    acts = [v for v in ins if isinstance(v, Act)]
    if op in _KEEP_LAYOUT:
        return True
    if op == "Transpose":
        rank = 2 + len(acts[0].shape.spatial)
        return perm_of(node, rank) == [0, rank - 1, *range(1, rank - 1)]
    if op in ("Add", "Mul", "Sub", "Div"):
        consts = [v for v in ins if isinstance(v, Const)]
        return all(a.last for a in acts) and all(c.size == 1 for c in consts)
    return False


def _concat(conv: Converter, node: Any, ins: list[Value]) -> None:
    """Concat along the channels → concat."""
    acts = [act(v) for v in ins]
    rank = 2 + len(acts[0].shape.spatial)
    axis = int(attrs(node)["axis"])
    axis = axis + rank if axis < 0 else axis
    if axis != 1:
        raise Opaque
    if len(acts) == 1:
        conv.emit(node, "identity", {}, acts)
    else:
        conv.emit(node, "concat", {}, acts)


def _merge(conv: Converter, node: Any, ins: list[Value]) -> None:
    """Add/Mul of two activations, or of an activation and a constant (a rescaling, or a
    learned per-channel scale)."""
    op = node.op_type
    acts = [v for v in ins if isinstance(v, Act)]
    consts = [v for v in ins if isinstance(v, Const)]
    if len(acts) == 2:
        if op == "Mul" and lrn_pattern(conv, node, acts[0]):
            return
        kind = {"Add": "add", "Mul": "multiply"}.get(op)
        if kind is None or not _broadcastable(kind, acts[0].shape, acts[1].shape):
            raise Opaque
        conv.emit(node, kind, {}, acts)
        return
    if len(acts) != 1 or len(consts) != 1:
        raise Opaque
    x, c = acts[0], consts[0]
    if op == "Div" and gelu(conv, node, x):
        return
    if op == "Mul" and c.size == 1 and softplus_beta(conv, node, x, c):
        return
    if c.size == 1:
        _rescaling(conv, node, x, c, ins[0] is c)
    elif op == "Mul" and c.is_float and c.stored and per_channel(c, x):
        conv.emit(node, "layer_scale", {}, [x], [c])
    else:
        raise Opaque


def _broadcastable(kind: str, a: TShape, b: TShape) -> bool:
    da, db = a.dims(False), b.dims(False)
    if len(da) != len(db):
        return False
    return all(p == q or (kind == "multiply" and 1 in (p, q)) for p, q in zip(da, db, strict=True))


def _rescaling(conv: Converter, node: Any, x: Act, c: Const, const_first: bool) -> None:
    """``x·s``, ``x/s``, ``x+o``, ``x−o`` with a scalar: Keras's Rescaling(scale, offset)."""
    value = float(conv.array(c, node).reshape(-1)[0])
    op = node.op_type
    if op == "Sub" and const_first:
        raise Opaque  # o − x
    if op == "Div" and (const_first or value == 0):
        raise Opaque
    if not math.isfinite(value):
        raise Opaque
    opts = {
        "Mul": {"scale": value},
        "Div": {"scale": 1 / value},
        "Add": {"scale": 1, "offset": value},
        "Sub": {"scale": 1, "offset": -value},
    }[op]
    conv.emit(node, "rescaling", opts, [x])


def _split(conv: Converter, node: Any, ins: list[Value]) -> None:
    """Split along the channels → split with explicit sizes (outputs NAME.0, NAME.1, …)."""
    x = act(ins[0])
    a = attrs(node)
    rank = 2 + len(x.shape.spatial)
    axis = int(a.get("axis", 0))
    axis = axis + rank if axis < 0 else axis
    if axis != 1:
        raise Opaque
    c, n = x.shape.channels, len(node.output)
    if "split" in a:
        sizes = [int(s) for s in a["split"]]
    elif len(ins) > 1 and ins[1] is not None:
        sizes = [int(s) for s in conv.array(const(ins[1]), node)]
    else:  # equal parts, the last smaller (opset 18's num_outputs)
        each = -(-c // n)
        sizes = [min(each, c - i * each) for i in range(n)]
    if len(sizes) != n or any(s < 1 for s in sizes) or sum(sizes) != c or len(sizes) > MAX_LIST:
        raise Opaque
    conv.emit(node, "split", {"sizes": sizes}, [x], outputs=list(node.output))


def _slice(conv: Converter, node: Any, ins: list[Value]) -> None:
    """Slice of a layer's output, step 1: a range of channels is one output of a split (the
    Slices that cut one tensor into the same parts share one split: ``torch.chunk`` as the
    TorchScript exporter writes it); ranges of the sizes are a cropping."""
    x = act(ins[0])
    dims = [conv.batch_value, *x.shape.dims(False)]
    ranges: dict[int, tuple[int, int]] = {}
    for axis, start, end, step in _slice_args(conv, node, ins, len(dims)):
        lo, hi, _ = slice(start, end).indices(dims[axis])  # ONNX's clamping, for step 1
        if step != 1 or hi <= lo:
            raise Opaque
        if (lo, hi) != (0, dims[axis]):
            ranges[axis] = (lo, hi)
    if not ranges:
        conv.emit(node, "identity", {}, [x])
    elif set(ranges) == {1}:
        _channel_range(conv, node, x, *ranges[1])
    elif 0 not in ranges and 1 not in ranges:
        ndim = len(dims) - 2
        crops = [
            [lo, dims[axis] - hi]
            for axis in range(2, len(dims))
            for lo, hi in [ranges.get(axis, (0, dims[axis]))]
        ]
        conv.emit(node, f"cropping{ndim}d", {"cropping": crops[0] if ndim == 1 else crops}, [x])
    else:
        raise Opaque


def _slice_args(
    conv: Converter, node: Any, ins: list[Value], rank: int
) -> list[tuple[int, int, int, int]]:
    """(axis, start, end, step) of each sliced axis, from the attributes (opset < 10) or the
    constant inputs."""
    a = attrs(node)
    if "starts" in a:
        starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
    else:
        arrays = [conv.array(const(v), node) if v is not None else None for v in ins[1:5]]
        starts, ends, axes, steps = [*arrays, None, None][:4]
    axes_list = norm_axes(axes, rank) if axes is not None else list(range(len(starts)))
    step_list = [1] * len(axes_list) if steps is None else [int(v) for v in steps]
    return [
        (ax, int(s), int(e), st)
        for ax, s, e, st in zip(axes_list, starts, ends, step_list, strict=True)
    ]


def _channel_range(conv: Converter, node: Any, x: Act, lo: int, hi: int) -> None:
    """Channels ``lo:hi`` of ``x``: output ``k`` of a split of ``x`` into parts, one split per
    way of cutting ``x``."""
    c = x.shape.channels
    sizes = [p for p in (lo, hi - lo, c - hi) if p]
    index = 0 if lo == 0 else 1
    key = (x.ref, tuple(sizes))
    if key not in conv.splits:
        outs = [f"{INTERNAL}{node.output[0]}.{i}" for i in range(len(sizes))]
        conv.emit(node, "split", {"sizes": sizes}, [x], outputs=outs)
        conv.splits[key] = act(conv.values[outs[0]]).ref.rsplit(".", 1)[0]
    name = conv.splits[key]
    shape = TShape(hi - lo, x.shape.spatial)
    conv.check(node, node.output[0], shape)
    conv.values[node.output[0]] = Act(f"{name}.{index}", shape)
    if index == 0:
        conv.tensor_of[name] = node.output[0]  # the split's first output, for tests


def _pad(conv: Converter, node: Any, ins: list[Value]) -> None:
    """Pad with zeros on spatial axes only → zeropad*; other modes and values have no type."""
    x = act(ins[0])
    a = attrs(node)
    rank = 2 + len(x.shape.spatial)
    if a.get("mode", "constant") != "constant" or not 1 <= rank - 2 <= 3:
        raise Opaque
    if "pads" in a:
        pads = [int(p) for p in a["pads"]]
        fill = float(a.get("value", 0.0))
    else:
        pads = [int(p) for p in conv.array(const(ins[1]), node)]
        value = ins[2] if len(ins) > 2 else None
        fill = _scalar(conv, node, value, None) or 0.0
    axes = (
        norm_axes(conv.array(const(ins[3]), node), rank)
        if len(ins) > 3 and ins[3] is not None
        else list(range(rank))
    )
    full = [[0, 0] for _ in range(rank)]
    for i, axis in enumerate(axes):
        full[axis] = [pads[i], pads[i + len(axes)]]
    if fill != 0 or full[0] != [0, 0] or full[1] != [0, 0] or any(p < 0 for q in full for p in q):
        raise Opaque
    conv.emit(node, f"zeropad{rank - 2}d", {"padding": full[2:]}, [x])


def _resize(conv: Converter, node: Any, ins: list[Value]) -> None:
    """Resize, Upsample of the spatial axes → upsample (whole scales, else the sizes)."""
    x = act(ins[0])
    a = attrs(node)
    rank = 2 + len(x.shape.spatial)
    dims = [conv.batch_value, *x.shape.dims(False)]
    sizes = _resize_sizes(conv, node, ins, a, dims)
    if sizes[:2] != dims[:2] or not x.shape.spatial:
        raise Opaque
    ndim = rank - 2
    mode = {"nearest": "nearest", "linear": ("linear", "bilinear", "trilinear")[ndim - 1]}.get(
        a.get("mode", "nearest"), "bicubic" if a.get("mode") == "cubic" and ndim == 2 else ""
    )
    if not mode:
        raise Opaque
    spatial = sizes[2:]
    if all(s % n == 0 for s, n in zip(spatial, dims[2:], strict=True)):
        opts: dict[str, Any] = {"scale": [s // n for s, n in zip(spatial, dims[2:], strict=True)]}
    else:
        opts = {"size": spatial}
    opts["mode"] = mode
    conv.emit(node, "upsample", opts, [x])


def _resize_sizes(
    conv: Converter, node: Any, ins: list[Value], a: dict[str, Any], dims: list[int]
) -> list[int]:
    """The output sizes of Resize/Upsample from its ``sizes`` or ``scales`` (⌊n·scale⌋)."""
    rank = len(dims)
    if node.op_type == "Upsample" or (len(ins) == 2 and conv.opset < 11):
        scales_value: Value = ins[1] if len(ins) > 1 else None
        sizes_value: Value = None
        if "scales" in a:
            scales = [float(s) for s in a["scales"]]
            return [math.floor(n * s) for n, s in zip(dims, scales, strict=True)]
    else:
        scales_value = ins[2] if len(ins) > 2 else None
        sizes_value = ins[3] if len(ins) > 3 else None
    axes = [int(v) for v in a.get("axes", range(rank))]
    axes = [v + rank if v < 0 else v for v in axes]
    out = list(dims)
    if sizes_value is not None and const(sizes_value).size:
        for axis, size in zip(axes, conv.array(const(sizes_value), node), strict=True):
            out[axis] = int(size)
        if a.get("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise Opaque
        return out
    if scales_value is None or not const(scales_value).size:
        raise Opaque
    for axis, scale in zip(axes, conv.array(const(scales_value), node), strict=True):
        out[axis] = math.floor(dims[axis] * float(scale))
    return out


def _reduce(conv: Converter, node: Any, ins: list[Value]) -> None:
    """ReduceMean, ReduceMax over the spatial axes → global pooling; ReduceMean over others
    (never the batch) → mean."""
    x = act(ins[0])
    a = attrs(node)
    rank = 2 + len(x.shape.spatial)
    if "axes" in a:
        axes_value = a["axes"]
    elif len(ins) > 1 and ins[1] is not None:
        axes_value = conv.array(const(ins[1]), node)
    else:
        raise Opaque  # every axis, the batch included
    axes = norm_axes(axes_value, rank)
    keep = bool(a.get("keepdims", 1))
    if 0 in axes or not axes:
        raise Opaque
    spatial = list(range(2, rank))
    if axes == spatial and spatial:
        kind = "global_avgpool" if node.op_type == "ReduceMean" else "global_maxpool"
        conv.emit(node, kind, {"keepdims": keep}, [x])
    elif node.op_type == "ReduceMean":
        conv.emit(node, "mean", {"axes": axes, "keepdims": keep}, [x])
    else:
        raise Opaque


def _dropout(conv: Converter, node: Any, ins: list[Value]) -> None:
    """Dropout (its mask unread) → dropout with its rate."""
    x = act(ins[0])
    _only_first_output(node, conv)
    a = attrs(node)
    ratio = _scalar(conv, node, ins[1] if len(ins) > 1 else None, a.get("ratio", 0.5))
    rate = 0.5 if ratio is None else ratio
    if not 0 <= rate < 1:
        raise Opaque
    conv.emit(node, "dropout", {"rate": rate}, [x])


def _layernorm(conv: Converter, node: Any, ins: list[Value]) -> None:
    """LayerNormalization of a flat tensor with scale and bias → layernorm."""
    x = act(ins[0])
    _only_first_output(node, conv)
    a = attrs(node)
    axis = int(a.get("axis", -1))
    rank = 2 + len(x.shape.spatial)
    if axis not in (-1, rank - 1) or (x.shape.spatial and not x.last):
        raise Opaque  # normalises the last axis: the channels only if flat or channels last
    weights = [const(v) for v in ins[1:3] if v is not None]
    affine = len(weights) == 2
    if not affine:
        raise Opaque
    eps = float(a.get("epsilon", 1e-5))
    conv.emit(node, "layernorm", {"eps": eps}, [x], weights)


def _group_norm(conv: Converter, node: Any, ins: list[Value]) -> None:
    """GroupNormalization → groupnorm. Opset 21's scale and bias hold one number per channel;
    opset 18's one per group, which no layer type holds unless the groups are the channels."""
    x = act(ins[0])
    scale, bias = const(ins[1]), const(ins[2])
    a = attrs(node)
    c = x.shape.channels
    if scale.size != bias.size or scale.size not in (c, a.get("num_groups")):
        raise Opaque
    if scale.size != c:
        # Opset 18's per-group scale and shift: an opaque row of the input's shape (ONNX's shape
        # inference gives none for this function operator), its weights the file's.
        opts: dict[str, Any] = {"op": node.op_type, "shape": list(x.shape.dims(False))}
        opts["params"] = scale.size + bias.size
        conv.emit(node, "opaque", opts, [x], [scale, bias])
        conv.stats.opaque_params += scale.size + bias.size
        return
    opts = {"groups": int(a["num_groups"]), "eps": float(a.get("epsilon", 1e-5))}
    conv.emit(node, "groupnorm", opts, [x], [scale, bias])


def _instance_norm(conv: Converter, node: Any, ins: list[Value]) -> None:
    """InstanceNormalization → instancenorm: affine when the file holds scale and bias as
    weights (the TorchScript exporter writes ``affine=False`` as Constant nodes, not weights)."""
    x = act(ins[0])
    scale, bias = const(ins[1]), const(ins[2])
    c = x.shape.channels
    if scale.size != c or bias.size != c or not x.shape.spatial:
        raise Opaque
    held = [w for w in (scale, bias) if w.stored]
    if len(held) == 1:
        raise Opaque
    opts = {"eps": float(attrs(node).get("epsilon", 1e-5)), "affine": bool(held)}
    conv.emit(node, "instancenorm", opts, [x], held)


def _prelu(conv: Converter, node: Any, ins: list[Value]) -> None:
    """PRelu → prelu: one slope (num_parameters 1), one per channel (num_parameters C), or
    slopes broadcast over other axes (shared_axes: the axes of size 1)."""
    x, slope = act(ins[0]), const(ins[1])
    dims = list(x.shape.dims(False))
    sdims = list(slope.dims)
    if len(sdims) > len(dims) + 1 or (len(sdims) == len(dims) + 1 and sdims[0] != 1):
        raise Opaque  # a slope per sample
    sdims = ([1] * (len(dims) - len(sdims)) + sdims)[-len(dims) :] if dims else []
    if any(s not in (1, d) for s, d in zip(sdims, dims, strict=True)):
        raise Opaque
    weights = [slope] if slope.stored and slope.is_float else []
    if slope.size == 1:
        opts: dict[str, Any] = {"num_parameters": 1}
    elif sdims[0] == slope.size:
        opts = {"num_parameters": slope.size}
    else:
        opts = {"shared_axes": [i + 1 for i, s in enumerate(sdims) if s == 1]}
    if not weights:
        raise Opaque  # computed slopes: not a layer's parameters
    conv.emit(node, "prelu", opts, [x], weights)


def _elu(conv: Converter, node: Any, ins: list[Value]) -> None:
    alpha = float(attrs(node).get("alpha", 1.0))
    conv.emit(node, "elu", {"alpha": alpha}, [act(ins[0])])


def _selu(conv: Converter, node: Any, ins: list[Value]) -> None:
    """Selu with its standard constants (PyTorch's SELU; others have no layer type)."""
    a = attrs(node)
    alpha, gamma = (
        float(a.get("alpha", 1.67326319217681884765625)),
        float(a.get("gamma", 1.05070102214813232421875)),
    )
    if not (
        math.isclose(alpha, 1.6732632, rel_tol=1e-6)
        and math.isclose(gamma, 1.0507010, rel_tol=1e-6)
    ):
        raise Opaque
    conv.emit(node, "selu", {}, [act(ins[0])])


def _lrn(conv: Converter, node: Any, ins: list[Value]) -> None:
    """LRN → lrn (ONNX's alpha is PyTorch's: both divide it by the size)."""
    x = act(ins[0])
    a = attrs(node)
    opts = {
        "size": int(a["size"]),
        "alpha": float(a.get("alpha", 1e-4)),
        "beta": float(a.get("beta", 0.75)),
        "k": float(a.get("bias", 1.0)),
    }
    conv.emit(node, "lrn", opts, [x])


def _depth_to_space(conv: Converter, node: Any, ins: list[Value]) -> None:
    """DepthToSpace (DCR, CRD) → pixel_shuffle; SpaceToDepth (DCR order) → pixel_unshuffle."""
    x = act(ins[0])
    a = attrs(node)
    if node.op_type == "DepthToSpace":
        mode = str(a.get("mode", "DCR")).lower()
        conv.emit(node, "pixel_shuffle", {"factor": int(a["blocksize"]), "mode": mode}, [x])
    else:
        conv.emit(node, "pixel_unshuffle", {"factor": int(a["blocksize"]), "mode": "dcr"}, [x])


HANDLERS: dict[str, Callable[[Converter, Any, list[Value]], None]] = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "GlobalAveragePool": _global_pool,
    "GlobalMaxPool": _global_pool,
    "Relu": _same_shape("relu"),
    "Clip": _clip,
    "LeakyRelu": _leaky_relu,
    "Sigmoid": gated("silu", "sigmoid"),
    "HardSigmoid": gated("hardswish", "hardsigmoid"),
    "HardSwish": _same_shape("hardswish"),
    "Tanh": _same_shape("tanh"),
    "Softmax": _softmax,
    "Gelu": _same_shape("gelu"),
    "Elu": _elu,
    "Selu": _selu,
    "Softplus": softplus,
    "Mish": _same_shape("mish"),
    "PRelu": _prelu,
    "GroupNormalization": _group_norm,
    "InstanceNormalization": _instance_norm,
    "LRN": _lrn,
    "DepthToSpace": _depth_to_space,
    "SpaceToDepth": _depth_to_space,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "BatchNormalization": _batchnorm,
    "LayerNormalization": _layernorm,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "Unsqueeze": _squeeze,
    "Transpose": _transpose,
    "Concat": _concat,
    "Add": _merge,
    "Mul": _merge,
    "Sub": _merge,
    "Div": _merge,
    "Split": _split,
    "Slice": _slice,
    "Pad": _pad,
    "Resize": _resize,
    "Upsample": _resize,
    "Dropout": _dropout,
    "Identity": _same_shape("identity"),
    "ReduceMean": _reduce,
    "ReduceMax": _reduce,
    "Shape": _shape,
    "Size": _shape,
}
