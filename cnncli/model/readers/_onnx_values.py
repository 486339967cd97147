"""The ONNX reader's vocabulary: the tensors it tracks and small readers of node attributes.

A tensor is an :class:`Act` (a layer's output, with cnncli's shape per sample) or a
:class:`Const` (known before the model runs); an operator mapping that cannot express a node
raises :class:`Opaque`, and the node becomes an ``opaque`` row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cnncli import arithmetic as ar
from cnncli.model.layers import Ctx, TShape
from cnncli.model.readers._onnx_proto import FLOAT_TYPES

#: Stands for a symbolic batch size while folding shape arithmetic: ``Shape(x)[0]`` is this
#: number, and a Reshape target that starts with it keeps the batch first. Prime and unlikely
#: as a real size, so that a computed size equal to it is the batch.
PROBE_BATCH = 1_000_003
#: ONNX's layouts and padding are PyTorch's: every layer is computed with PyTorch's rules.
CTX = Ctx(ar.Framework.TORCH, channels_last=False)
#: The domains of ONNX's own operators (a node of any other domain is a custom operator).
DEFAULT_DOMAINS = ("", "ai.onnx")
#: The tensor name of a row cnncli adds itself (no ONNX tensor name starts with NUL).
INTERNAL = "\0"


class Opaque(Exception):
    """Raised by an operator's mapping when no cnncli layer type expresses this use of it."""


@dataclass
class Act:
    """An activation tensor: a layer's output (or a model input) with its shape per sample.

    ``last``: the ONNX tensor is this one with the channels moved last, (N, H, W, C) - after a
    PyTorch ``permute(0, 2, 3, 1)``, as ConvNeXt's blocks do before LayerNorm and Linear. cnncli
    keeps reading it channels first (a Linear over the channels is a dense layer over the channels, a
    LayerNorm over them a layernorm: the same parameters and MACs, as the zoo's ConvNeXt does)
    until the permute back; a layer that needs the channels-last tensor itself gets a permute
    row first. ``origin`` is the (node, tensor) that made it, for that row.
    """

    ref: str
    shape: TShape
    last: bool = False
    origin: tuple[Any, str] | None = None


@dataclass
class Const:
    """A tensor known before the model runs: an initializer, a Constant, or folded arithmetic.

    ``array`` is the value once read; initializers are read only when an operator needs their
    numbers (a Reshape target, a Resize scale), never for weights.
    """

    name: str
    dims: tuple[int, ...]
    dtype: int
    array: Any = None
    tensor: Any = None  # the TensorProto, read lazily
    #: An initializer of the file (its float data may be weights), not a computed constant.
    stored: bool = False
    #: Why the value is unknown (a constant known by its dims only).
    reason: str = ""

    @property
    def size(self) -> int:
        return math.prod(self.dims)

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_TYPES


Value = Act | Const | None  # None: an optional input left out ('')


def attrs(node: Any) -> dict[str, Any]:
    """A node's attributes as Python values (text decoded, tensors as numpy arrays)."""
    from onnx import helper, numpy_helper

    out: dict[str, Any] = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif hasattr(value, "dims") and hasattr(value, "data_type"):
            value = numpy_helper.to_array(value)
        out[attr.name] = value
    return out


def vi_dims(vi: Any) -> tuple[int | str | None, ...] | None:
    """A ValueInfo's dims: sizes, symbols, None for a size left open (None: rank unknown)."""
    tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
    if tt is None or not tt.HasField("shape"):
        return None
    out: list[int | str | None] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return tuple(out)


def show_dims(dims: Iterable[Any]) -> str:
    """dims as messages show them: ``(N, 3, ?, 224)``."""
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def unknown(shape: TShape) -> bool:
    """A shape with a size known only when the model runs (an opaque layer's output)."""
    return shape.channels == 0 or 0 in shape.spatial


def act(value: Value) -> Act:
    """``value`` as an activation; a constant where a mapping needs one is :class:`Opaque`."""
    if not isinstance(value, Act):
        raise Opaque
    return value


def const(value: Value) -> Const:
    """``value`` as a constant; an activation where a mapping needs one is :class:`Opaque`."""
    if not isinstance(value, Const):
        raise Opaque
    return value


def perm_of(node: Any, rank: int) -> list[int]:
    """A Transpose's ``perm`` (ONNX's default: the axes reversed)."""
    return [int(p) for p in attrs(node).get("perm", list(range(rank - 1, -1, -1)))]


def per_channel(c: Const, x: Act) -> bool:
    """A constant that broadcasts along the channels only: (C, 1, 1) or (1, C, 1, 1)."""
    rank = 2 + len(x.shape.spatial)
    dims = list(c.dims)
    if len(dims) > rank:
        return False
    dims = [1] * (rank - len(dims)) + dims
    return dims[1] == x.shape.channels and math.prod(dims) == x.shape.channels
