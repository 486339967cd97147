"""Constant folding: the integer arithmetic exporters compute shapes with.

``Shape → Gather → Unsqueeze → Concat → Reshape`` chains, ``ConstantOfShape``, ``Cast``,
``Slice``, arithmetic: nodes whose inputs are all known before the model runs are computed
here with numpy (which ``onnx`` has imported already), in ONNX's semantics (integer division
truncates, Reshape's 0 and -1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from cnncli.errors import ModelError


def np_lib() -> Any:
    import numpy as np  # onnx has imported it already

    return np


def _fold_binary(op: str, a: Any, b: Any) -> Any:
    np = np_lib()
    if op == "Div" and np.issubdtype(np.result_type(a, b), np.integer):
        # ONNX integer division truncates toward zero (numpy's // floors).
        return np.trunc(np.true_divide(a, b)).astype(np.result_type(a, b))
    ops: dict[str, Callable[[Any, Any], Any]] = {
        "Add": np.add,
        "Sub": np.subtract,
        "Mul": np.multiply,
        "Div": np.true_divide,
        "Pow": np.power,
        "Mod": np.mod,
        "Max": np.maximum,
        "Min": np.minimum,
        "Equal": np.equal,
        "Less": np.less,
        "LessOrEqual": np.less_equal,
        "Greater": np.greater,
        "GreaterOrEqual": np.greater_equal,
        "And": np.logical_and,
        "Or": np.logical_or,
    }
    return ops[op](a, b)


_UNARY = {
    "Neg": "negative",
    "Abs": "abs",
    "Floor": "floor",
    "Ceil": "ceil",
    "Sqrt": "sqrt",
    "Not": "logical_not",
    "Reciprocal": "reciprocal",
}


_BINARY = frozenset(
    {
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "Mod",
        "Max",
        "Min",
        "Equal",
        "Less",
        "LessOrEqual",
        "Greater",
        "GreaterOrEqual",
        "And",
        "Or",
    }
)


def norm_axes(value: Any, rank: int) -> list[int]:
    return sorted(int(a) + rank if int(a) < 0 else int(a) for a in np_lib().atleast_1d(value))


def reshape_target(shape: Any, dims: tuple[int, ...], allowzero: bool) -> list[int]:
    """ONNX Reshape's output dims: 0 copies the input's size (unless ``allowzero``), one -1 takes
    what is left. A ModelError when the sizes cannot hold the input."""
    target = [int(d) for d in shape]
    if not allowzero:
        target = [dims[i] if d == 0 and i < len(dims) else d for i, d in enumerate(target)]
    total = math.prod(dims)
    if target.count(-1) > 1:
        raise ModelError(f"Reshape target {target} has more than one -1")
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        if known == 0 or total % known:
            raise ModelError(f"Reshape target {target} cannot hold {total:,} elements")
        target[target.index(-1)] = total // known
    if math.prod(target) != total:
        raise ModelError(f"Reshape target {target} does not hold the input's {total:,} elements")
    return target


def fold(op: str, a: dict[str, Any], x: list[Any], opset: int) -> list[Any]:
    """The outputs of a constant-only node (numpy arrays in, numpy arrays out)."""
    np = np_lib()
    if op in _BINARY:
        return [_fold_binary(op, x[0], x[1])]
    if op in _UNARY:
        return [getattr(np, _UNARY[op])(x[0])]
    if op == "Identity":
        return [x[0]]
    if op == "Cast":
        return [x[0].astype(_onnx_np_type(a["to"]))]
    if op == "Gather":
        return [np.take(x[0], x[1].astype(np.int64), axis=int(a.get("axis", 0)))]
    if op in ("Unsqueeze", "Squeeze"):
        return [_fold_squeeze(op, a, x, opset)]
    if op == "Concat":
        return [np.concatenate([np.atleast_1d(v) for v in x], axis=int(a["axis"]))]
    if op == "Slice":
        return [_fold_slice(a, x)]
    if op == "Reshape":
        target = reshape_target(x[1], tuple(x[0].shape), bool(a.get("allowzero", 0)))
        return [x[0].reshape(target)]
    if op == "Transpose":
        return [np.transpose(x[0], a.get("perm"))]
    if op == "ConstantOfShape":
        value = a.get("value")
        fill = value.reshape(-1)[0] if value is not None else np.float32(0)
        return [np.full([int(d) for d in x[0]], fill, dtype=np.asarray(fill).dtype)]
    if op == "Expand":
        return [x[0] * np.ones([int(d) for d in x[1]], dtype=x[0].dtype)]
    if op == "Where":
        return [np.where(x[0], x[1], x[2])]
    if op == "Range":
        return [np.arange(x[0], x[1], x[2])]
    if op == "Tile":
        return [np.tile(x[0], [int(d) for d in x[1]])]
    if op in ("ReduceProd", "ReduceSum", "ReduceMax", "ReduceMin"):
        return [_fold_reduce(op, a, x, opset)]
    if op == "Size":
        return [np.array(x[0].size, dtype=np.int64)]
    if op == "Shape":
        return [shape_slice(list(x[0].shape), a)]
    raise KeyError(op)


def _onnx_np_type(dtype: int) -> Any:
    from onnx import helper

    return helper.tensor_dtype_to_np_dtype(dtype)


def _fold_squeeze(op: str, a: dict[str, Any], x: list[Any], opset: int) -> Any:
    np = np_lib()
    axes_value = a.get("axes") if "axes" in a else (x[1] if len(x) > 1 else None)
    if op == "Squeeze":
        if axes_value is None:
            return np.squeeze(x[0])
        return np.squeeze(x[0], axis=tuple(norm_axes(axes_value, x[0].ndim)))
    out = x[0]
    rank = x[0].ndim + len(np.atleast_1d(axes_value))
    for axis in norm_axes(axes_value, rank):
        out = np.expand_dims(out, axis)
    return out


def _fold_slice(a: dict[str, Any], x: list[Any]) -> Any:
    np = np_lib()
    data = x[0]
    if "starts" in a:  # opset < 10
        starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
    else:
        starts, ends = x[1], x[2]
        axes = x[3] if len(x) > 3 and x[3] is not None else None
        steps = x[4] if len(x) > 4 and x[4] is not None else None
    starts = [int(v) for v in np.atleast_1d(starts)]
    ends = [int(v) for v in np.atleast_1d(ends)]
    axes_list = norm_axes(axes, data.ndim) if axes is not None else list(range(len(starts)))
    step_list = [int(v) for v in np.atleast_1d(steps)] if steps is not None else [1] * len(starts)
    index = [slice(None)] * data.ndim
    for ax, s, e, st in zip(axes_list, starts, ends, step_list, strict=True):
        index[ax] = slice(s, e, st)
    return data[tuple(index)]


def _fold_reduce(op: str, a: dict[str, Any], x: list[Any], opset: int) -> Any:
    np = np_lib()
    axes = a.get("axes") if "axes" in a else (x[1] if len(x) > 1 else None)
    keep = bool(a.get("keepdims", 1))
    fn = {"ReduceProd": np.prod, "ReduceSum": np.sum, "ReduceMax": np.max, "ReduceMin": np.min}[op]
    axis = None if axes is None or np.size(axes) == 0 else tuple(norm_axes(axes, x[0].ndim))
    return np.asarray(fn(x[0], axis=axis, keepdims=keep))


def shape_slice(dims: list[int], a: dict[str, Any]) -> Any:
    """ONNX Shape with its optional ``start``/``end`` (opset 15)."""
    start, end = int(a.get("start", 0)), a.get("end")
    return np_lib().array(dims[start : None if end is None else int(end)], dtype=np_lib().int64)


FOLDABLE = (
    _BINARY
    | set(_UNARY)
    | {
        "Identity",
        "Cast",
        "Gather",
        "Unsqueeze",
        "Squeeze",
        "Concat",
        "Slice",
        "Reshape",
        "Transpose",
        "ConstantOfShape",
        "Expand",
        "Where",
        "Range",
        "Tile",
        "ReduceProd",
        "ReduceSum",
        "ReduceMax",
        "ReduceMin",
        "Size",
        "Shape",
    }
)
