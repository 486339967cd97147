"""Chains of ONNX nodes read as one layer: how exporters spell what PyTorch holds as one module.

``x · Sigmoid(x)`` is ``silu``; GELU before opset 20 is ``Div → Erf → Add → Mul → Mul``; Mish
is ``Softplus → Tanh → Mul``; PyTorch's Softplus with ``beta`` and ``threshold`` adds a Mul, a
Div and a ``Where``; ``nn.GroupNorm`` is ``Reshape → InstanceNormalization → Reshape → Mul →
Add``; ``nn.PixelUnshuffle`` is ``Reshape → Transpose → Reshape``. Each matcher starts at the
chain's first node, checks every link (the only reader of each tensor, the constants' values),
emits one row whose output is the chain's last tensor and skips the nodes it swallowed; when a
link does not match it does nothing, and the nodes are read one by one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cnncli.errors import ModelError
from cnncli.model.readers._onnx_fold import np_lib, reshape_target
from cnncli.model.readers._onnx_values import (
    DEFAULT_DOMAINS,
    Act,
    Const,
    Value,
    act,
    attrs,
    per_channel,
    perm_of,
)

if TYPE_CHECKING:
    from cnncli.model.readers._onnx_convert import Converter


def only_reader(conv: Converter, tensor: str, op: str) -> Any:
    """The one node reading ``tensor``, when it is an ``op`` of the default domain."""
    readers = conv.consumers.get(tensor, [])
    node = readers[0] if len(readers) == 1 else None
    ok = node is not None and node.op_type == op and node.domain in DEFAULT_DOMAINS
    return node if ok else None


def other_const(conv: Converter, node: Any, tensor: str) -> Const | None:
    """The constant operand of a two-input ``node`` whose other operand is ``tensor``."""
    others = [n for n in node.input if n != tensor]
    value = conv.lookahead(others[0]) if len(others) == 1 and len(node.input) == 2 else None
    return value if isinstance(value, Const) else None


def gated(kind: str, gate: str) -> Callable[[Converter, Any, list[Value]], None]:
    """``Sigmoid(x)`` (or ``HardSigmoid``) whose only reader is ``Mul(x, ·)``: one ``kind`` layer
    (silu, hardswish), named after the Mul."""

    def handler(conv: Converter, node: Any, ins: list[Value]) -> None:
        x = act(ins[0])
        readers = conv.consumers.get(node.output[0], [])
        mul = readers[0] if len(readers) == 1 else None
        if (
            mul is not None
            and mul.op_type == "Mul"
            and sorted(mul.input) == sorted([node.input[0], node.output[0]])
        ):
            conv.skip.add(id(mul))
            conv.emit(mul, kind, {}, [x])
            conv.stats.fused[f"{node.op_type} and Mul read as one {kind} layer"] += 1
            return
        conv.emit(node, gate, {}, [x])

    return handler


def gelu(conv: Converter, div: Any, x: Act) -> bool:
    """``x · (erf(x / √2) + 1) · 0.5``, GELU as exporters write it before opset 20 (the
    TorchScript exporter multiplies by x first, the dynamo one by 0.5 first): one gelu layer,
    named after the Div (True), or nothing done (False)."""

    def only(tensor: str, op: str) -> Any:
        readers = conv.consumers.get(tensor, [])
        node = readers[0] if len(readers) == 1 else None
        return node if node is not None and node.op_type == op else None

    def scalar(node: Any, skip: str, value: float) -> bool:
        others = [conv.lookahead(n) for n in node.input if n != skip]
        if len(others) != 1 or not isinstance(others[0], Const) or others[0].size != 1:
            return False
        return math.isclose(float(conv.array(others[0], node).reshape(-1)[0]), value, rel_tol=1e-3)

    def times_x(node: Any, other: str) -> bool:
        return sorted(node.input) == sorted([div.input[0], other])

    erf = only(div.output[0], "Erf")
    add = erf and only(erf.output[0], "Add")
    first = add and only(add.output[0], "Mul")
    second = first and only(first.output[0], "Mul")
    if not (
        second
        and scalar(div, div.input[0], math.sqrt(2))
        and scalar(add, erf.output[0], 1.0)
        and (
            (times_x(first, add.output[0]) and scalar(second, first.output[0], 0.5))
            or (scalar(first, add.output[0], 0.5) and times_x(second, first.output[0]))
        )
    ):
        return False
    conv.skip.update(id(n) for n in (erf, add, first, second))
    conv.emit(div, "gelu", {}, [x], outputs=list(second.output[:1]))
    conv.stats.fused["Div, Erf, Add, Mul and Mul read as one gelu layer"] += 1
    return True


def softplus(conv: Converter, node: Any, ins: list[Value]) -> None:
    """Softplus → softplus; ``x · tanh(softplus(x))`` (the TorchScript exporter's Mish) → mish;
    ``Where(x > t, x, softplus(x))`` (the dynamo exporter's PyTorch threshold) → softplus with
    that threshold."""
    x = act(ins[0])
    source = node.input[0]
    tanh = only_reader(conv, node.output[0], "Tanh")
    mul = tanh and only_reader(conv, tanh.output[0], "Mul")
    if mul and sorted(mul.input) == sorted([source, tanh.output[0]]):
        conv.skip.update((id(tanh), id(mul)))
        conv.emit(mul, "mish", {}, [x], outputs=list(mul.output[:1]))
        conv.stats.fused["Softplus, Tanh and Mul read as one mish layer"] += 1
        return
    opts, end = _softplus_threshold(conv, node, source, node.output[0])
    conv.emit(node, "softplus", opts, [x], outputs=list(end.output[:1]))


def _softplus_threshold(
    conv: Converter, node: Any, source: str, result: str, scaled: str = ""
) -> tuple[dict[str, Any], Any]:
    """``Where(Greater(scaled, t), source, result)`` after a softplus of ``scaled`` (β·x, or x
    itself): its threshold, and the node whose output is the layer's (the Where, skipped with
    its Greater; else ``node``)."""
    scaled = scaled or source
    where = only_reader(conv, result, "Where")
    if where is None or list(where.input[1:]) != [source, result]:
        return {}, node
    greater = conv.producers.get(where.input[0])
    limit = greater and other_const(conv, greater, scaled)
    if (
        greater is None
        or greater.op_type != "Greater"
        or greater.input[0] != scaled
        or limit is None
        or limit.size != 1
        or len(conv.consumers.get(greater.output[0], [])) != 1
    ):
        return {}, node
    threshold = float(conv.array(limit, greater).reshape(-1)[0])
    if not (math.isfinite(threshold) and threshold > 0):
        return {}, node
    conv.skip.update((id(where), id(greater)))
    conv.stats.fused["Softplus, Greater and Where read as one softplus layer"] += 1
    return {"threshold": threshold}, where


def softplus_beta(conv: Converter, mul: Any, x: Act, beta: Const) -> bool:
    """``Softplus(β·x) / β`` (PyTorch's Softplus with beta, as both exporters write it; the
    dynamo one adds its threshold as a Where): one softplus layer named after the Mul (True),
    or nothing (False)."""
    value = float(conv.array(beta, mul).reshape(-1)[0])
    readers = conv.consumers.get(mul.output[0], [])
    soft = next((r for r in readers if r is not None and r.op_type == "Softplus"), None)
    if soft is None:
        return False
    div = only_reader(conv, soft.output[0], "Div")
    divisor = div and other_const(conv, div, soft.output[0])
    if (
        not div
        or divisor is None
        or divisor.size != 1
        or div.input[0] != soft.output[0]
        or not (math.isfinite(value) and value > 0)
        or float(conv.array(divisor, div).reshape(-1)[0]) != value
    ):
        return False
    source = next(n for n in mul.input if n not in (beta.name, ""))
    opts, end = _softplus_threshold(conv, div, source, div.output[0], mul.output[0])
    if len(readers) != (2 if opts else 1):
        return False  # β·x read by something else: the Mul is a layer of its own
    conv.skip.update((id(soft), id(div)))
    conv.emit(mul, "softplus", {"beta": value, **opts}, [x], outputs=list(end.output[:1]))
    conv.stats.fused["Mul, Softplus and Div read as one softplus layer"] += 1
    return True


def group_norm_pattern(conv: Converter, node: Any, x: Act, target: list[int]) -> bool:
    """``Reshape(N, G, -1) → InstanceNormalization → Reshape back [→ Mul γ → Add β]``, as both
    of torch's exporters write ``nn.GroupNorm``: one groupnorm layer (True), or nothing (False).
    γ and β are the file's weights when it holds one per channel (affine); a Mul by 1 and an Add
    of 0 (the TorchScript exporter's for ``affine=False``) are part of the layer, without weights."""
    c = x.shape.channels
    if len(target) != 3 or target[0] != conv.batch_value or not 1 <= target[1] <= c:
        return False
    groups = target[1]
    norm = only_reader(conv, node.output[0], "InstanceNormalization")
    back = norm and only_reader(conv, norm.output[0], "Reshape")
    if not back or c % groups or not _restores(conv, back, x, node.input[0]):
        return False
    fused, end = [norm, back], back
    weights: list[Const] = []
    for op, neutral in (("Mul", 1.0), ("Add", 0.0)):
        step = only_reader(conv, end.output[0], op)
        value = step and other_const(conv, step, end.output[0])
        if not step or value is None:
            break
        if value.stored and value.is_float and per_channel(value, x):
            weights.append(value)
        elif value.size != 1 or float(conv.array(value, step).reshape(-1)[0]) != neutral:
            break
        fused.append(step)
        end = step
    if len(weights) == 1:
        return False  # γ without β (or β alone): no layer type holds one of them
    eps = float(attrs(norm).get("epsilon", 1e-5))
    conv.skip.update(id(n) for n in fused)
    opts = {"groups": groups, "eps": eps, "affine": bool(weights)}
    conv.emit(node, "groupnorm", opts, [x], weights, outputs=list(end.output[:1]))
    conv.stats.fused[
        "Reshape, InstanceNormalization, Reshape (Mul, Add) read as one groupnorm"
    ] += 1
    return True


def _restores(conv: Converter, back: Any, x: Act, source: str) -> bool:
    """Reshape ``back`` gives ``x``'s shape again: its target is ``Shape(source)`` or a constant
    that resolves to the same sizes."""
    target = back.input[1] if len(back.input) > 1 else ""
    producer = conv.producers.get(target)
    if producer is not None and producer.op_type == "Shape" and list(producer.input) == [source]:
        return not attrs(producer)  # the whole shape, no start/end
    value = conv.lookahead(target)
    if not isinstance(value, Const) or value.is_float:
        return False
    dims = (conv.batch_value, *x.shape.dims(False))
    try:
        shape = reshape_target(conv.array(value, back), dims, False)
    except ModelError:
        return False
    return tuple(shape) == dims


def unshuffle_pattern(conv: Converter, node: Any, x: Act, target: list[int]) -> bool:
    """``Reshape(N, C, H/r, r, W/r, r) → Transpose(0, 1, 3, 5, 2, 4) → Reshape(N, C·r², H/r,
    W/r)``, as both of torch's exporters write ``nn.PixelUnshuffle``: one pixel_unshuffle layer
    (True), or nothing (False)."""
    c, spatial = x.shape.channels, x.shape.spatial
    if len(target) != 6 or len(spatial) != 2 or target[:2] != [conv.batch_value, c]:
        return False
    r = target[3]
    if r < 1 or target[5] != r or [target[2] * r, target[4] * r] != list(spatial):
        return False
    swap = only_reader(conv, node.output[0], "Transpose")
    back = swap and only_reader(conv, swap.output[0], "Reshape")
    if not back or perm_of(swap, 6) != [0, 1, 3, 5, 2, 4] or len(back.input) < 2:
        return False
    value = conv.lookahead(back.input[1])
    if not isinstance(value, Const) or value.is_float:
        return False
    dims = (conv.batch_value, c, r, r, target[2], target[4])
    try:
        shape = reshape_target(conv.array(value, back), dims, False)
    except ModelError:
        return False
    if shape != [conv.batch_value, c * r * r, target[2], target[4]]:
        return False
    conv.skip.update((id(swap), id(back)))
    opts = {"factor": r, "mode": "crd"}
    conv.emit(node, "pixel_unshuffle", opts, [x], outputs=list(back.output[:1]))
    conv.stats.fused["Reshape, Transpose and Reshape read as one pixel_unshuffle"] += 1
    return True


def lrn_pattern(conv: Converter, mul: Any, x: Act) -> bool:
    """PyTorch's ``local_response_norm`` as both exporters write it: ``x·x``, a view with one
    more axis (N, 1, C, …), a Pad of the channels, an AveragePool (size, 1, …) of stride 1,
    the Squeeze of that axis (TorchScript's inside an If, taken before this is read), the view
    back, ``·α``, ``+k``, ``^β``, and ``x`` divided by it: one lrn layer named after the first
    Mul (True), or nothing (False)."""
    source = mul.input[0]
    if list(mul.input) != [source, source] or not x.shape.spatial or x.last:
        return False
    chain = _lrn_pooling(conv, mul, x)
    if chain is None:
        return False
    fused, size = chain
    end = fused[-1]
    back = only_reader(conv, end.output[0], "Reshape")
    if back is not None and _restores(conv, back, x, source):
        fused.append(back)
        end = back
    opts: dict[str, Any] = {"size": size}
    for op, key in (("Mul", "alpha"), ("Add", "k"), ("Pow", "beta")):
        step = only_reader(conv, end.output[0], op)
        value = other_const(conv, step, end.output[0]) if step is not None else None
        if step is None or value is None or value.size != 1 or step.input[0] != end.output[0]:
            if op == "Pow":
                return False
            continue  # α = 1 or k = 0 left out by an exporter
        opts[key] = float(conv.array(value, step).reshape(-1)[0])
        fused.append(step)
        end = step
    div = only_reader(conv, end.output[0], "Div")
    if div is None or list(div.input) != [source, end.output[0]]:
        return False
    fused.append(div)
    conv.skip.update(id(n) for n in fused)
    conv.emit(mul, "lrn", {"alpha": 1.0, "k": 0.0} | opts, [x], outputs=list(div.output[:1]))
    conv.stats.fused["Mul, Pad, AveragePool, Mul, Add, Pow and Div read as one lrn layer"] += 1
    return True


def _lrn_pooling(conv: Converter, mul: Any, x: Act) -> tuple[list[Any], int] | None:
    """The middle of :func:`lrn_pattern`: the view (N, 1, C, …), the Pad, the AveragePool and
    the Squeeze, with the pool's size; None when they are not PyTorch's."""
    spatial = list(x.shape.spatial)
    lifted = [conv.batch_value, 1, x.shape.channels, *spatial[:1]]
    if len(spatial) > 1:
        lifted.append(math.prod(spatial[1:]))  # view(N, 1, C, H, -1)
    lift = only_reader(conv, mul.output[0], "Reshape") or only_reader(
        conv, mul.output[0], "Unsqueeze"
    )
    pad = lift and only_reader(conv, lift.output[0], "Pad")
    pool = pad and only_reader(conv, pad.output[0], "AveragePool")
    squeeze = pool and only_reader(conv, pool.output[0], "Squeeze")
    if not squeeze or _view_dims(conv, lift, x) != lifted:
        return None
    a = attrs(pool)
    kernel = [int(k) for k in a.get("kernel_shape", [])]
    rank = len(lifted)
    ones = [1] * (rank - 3)
    if (
        len(kernel) != rank - 2
        or kernel[1:] != ones
        or [int(s) for s in a.get("strides", [1] * len(kernel))] != [1] * len(kernel)
        or any(int(p) for p in a.get("pads", []))
        or a.get("auto_pad", "NOTSET") not in ("NOTSET", "")
        or not int(a.get("count_include_pad", 0))
        or _consts(conv, squeeze, 1, "axes") != [1]
    ):
        return None
    size = kernel[0]
    pads = [0] * (2 * rank)
    pads[2], pads[rank + 2] = size // 2, (size - 1) // 2
    if (
        attrs(pad).get("mode", "constant") != "constant"
        or _consts(conv, pad, 1, "pads") != pads
        or any(_consts(conv, pad, 2, "value") or [])
        or (len(pad.input) > 3 and pad.input[3])
    ):
        return None
    return [mul, lift, pad, pool, squeeze], size


def _view_dims(conv: Converter, lift: Any, x: Act) -> list[int] | None:
    """The dims (batch first) of ``x·x`` after the Reshape or Unsqueeze ``lift``."""
    dims = (conv.batch_value, *x.shape.dims(False))
    if lift.op_type == "Unsqueeze":
        return [dims[0], 1, *dims[1:]] if _consts(conv, lift, 1, "axes") == [1] else None
    target = _consts(conv, lift, 1, "shape")
    try:
        return None if target is None else reshape_target(target, dims, False)
    except ModelError:
        return None


def _consts(conv: Converter, node: Any, index: int, attr: str) -> list[float] | None:
    """The numbers of ``node``'s constant input ``index`` (or of its attribute ``attr``, as
    older operator sets write them); [] when it has neither, None when not a known constant."""
    a = attrs(node)
    if attr in a:
        return [float(v) for v in np_lib().atleast_1d(a[attr]).reshape(-1)]
    if len(node.input) <= index or not node.input[index]:
        return []
    value = conv.lookahead(node.input[index])
    if not isinstance(value, Const):
        return None
    try:
        return [float(v) for v in conv.array(value, node).reshape(-1)]
    except (ModelError, ValueError, TypeError):
        return None
