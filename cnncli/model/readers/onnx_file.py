"""ONNX models for ``cnncli summary model.onnx`` (issue #12), read with the ``onnx`` package.

The graph is read without turning weights into arrays: a convolution needs its weight's dims,
not its numbers. Each operator becomes one of cnncli's layer types (a few pairs become one:
``x * Sigmoid(x)`` is ``silu``, ``MatMul`` + a bias ``Add`` is ``dense``); the small integer
tensors exporters compute shapes with (``Shape → Gather → Unsqueeze → Concat → Reshape``) are
folded into the layers that read them. Every layer's shape is computed as it is read, with
cnncli's own arithmetic (:func:`cnncli.model.layers.compute`, the rule :mod:`cnncli.model.build`
applies again), and compared with ONNX shape inference and with the weights the file holds: a
difference is an error, never a guess. An operator cnncli does not know (or uses in a way no
layer type expresses) becomes an ``opaque`` layer with ONNX's shape: its MACs are not counted
and the summary says so.

Parameters are the floating-point tensors the file holds as weights of its layers; integer
shape/axes/pads constants and resize scales are not. ``torch.onnx.export`` folds batchnorm into
the convolutions, so a PyTorch model's batchnorm parameters and statistics are not in the file:
a note says so when it happened.

The batch axis stays out of every shape, as everywhere in cnncli. A symbolic batch is fine; open
image sizes need ``--input``.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import math
import os
import re
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnncli import arithmetic as ar
from cnncli.errors import CnnCliError, ModelError, as_model_key
from cnncli.model.layers import (
    LAYER_TYPES,
    MAX_LIST,
    Ctx,
    LayerOut,
    TShape,
    canonical_options,
    compute,
    show,
)
from cnncli.model.readers import ReadModel, ReadOptions, model_data, unique_name
from cnncli.outputs import describe_os_error

INSTALL = 'pip install "cnncli[onnx]"'
#: ONNX's element types that hold weights (float32, float16, double, bfloat16, the float8s).
_FLOAT_TYPES = frozenset({1, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23})
#: Float tensors above this many bytes are read without their data (a layer needs their dims
#: only; shape inference too), so a 100 MB ResNet-50 is read in milliseconds, not a second.
_STRIP_BYTES = 256
#: External tensors of at most this many numbers (floats, integers) are read at once: shape
#: constants and scales that shape inference and folding may need; weights are not.
_SMALL, _SMALL_INTEGERS = 64, 4096
#: Stands for a symbolic batch size while folding shape arithmetic: ``Shape(x)[0]`` is this
#: number, and a Reshape target that starts with it keeps the batch first. Prime and unlikely
#: as a real size, so that a computed size equal to it is the batch.
_PROBE_BATCH = 1_000_003
_CTX = Ctx(ar.Framework.TORCH, channels_last=False)
_DEFAULT_DOMAINS = ("", "ai.onnx")
#: The tensor name of a row cnncli adds itself (no ONNX tensor name starts with NUL).
_INTERNAL = "\0"


class _Opaque(Exception):
    """Raised by an operator's mapping when no cnncli layer type expresses this use of it."""


@dataclass
class _Act:
    """An activation tensor: a layer's output (or a model input) with its shape per sample.

    ``last``: the ONNX tensor is this one with the channels moved last, (N, H, W, C) - after a
    PyTorch ``permute(0, 2, 3, 1)``, as ConvNeXt's blocks do before LayerNorm and Linear. cnncli
    keeps reading it channels first (a Linear over the channels is a 1×1 convolution, a
    LayerNorm over them a layernorm: the same parameters and MACs, as the zoo's ConvNeXt does)
    until the permute back; a layer that needs the channels-last tensor itself gets a permute
    row first. ``origin`` is the (node, tensor) that made it, for that row.
    """

    ref: str
    shape: TShape
    last: bool = False
    origin: tuple[Any, str] | None = None


@dataclass
class _Const:
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
        return self.dtype in _FLOAT_TYPES


_Value = _Act | _Const | None  # None: an optional input left out ('')


def read_onnx(source: str, options: ReadOptions) -> ReadModel:
    """Read ``source`` into model-format data (see the module docstring)."""
    return convert(source, options).read


@dataclass
class Converted:
    """What :func:`convert` found: the model and, for tests, where each layer's output lives."""

    read: ReadModel
    #: Layer name → the ONNX tensor holding its (first) output.
    tensors: dict[str, str]


def convert(source: str, options: ReadOptions) -> Converted:
    """Read and convert ``source``; :func:`read_onnx` without the test-facing details."""
    onnx = _import_onnx()
    path = Path(source)
    with _opened(path, source) as buf:
        model, stripped = _load(onnx, buf, source)
        conv = _Converter(onnx, model, path, source, options)
        conv.buf, conv.stripped = buf, stripped
        data = conv.run()
    return Converted(ReadModel(model_data(data), source, conv.notes()), conv.tensor_of)


def _import_onnx() -> Any:
    try:
        import onnx
        import onnx.numpy_helper
        import onnx.shape_inference
    except ImportError:
        raise ModelError(
            f"reading ONNX models needs the onnx package: {INSTALL} (or pip install onnx)"
        ) from None
    return onnx


class _FileBytes:
    """A file's bytes, read on demand: single bytes from 64 KiB chunks (the skim reads field
    headers one byte at a time), ranges with one ``pread`` each. The weights between the
    headers are never read, nor mapped into the process (as an ``mmap`` would map the pages
    around each header)."""

    CHUNK = 1 << 16

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        self.chunks: dict[int, bytes] = {}

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            return os.pread(self.fd, key.stop - key.start, key.start)
        index, offset = divmod(key, self.CHUNK)
        chunk = self.chunks.get(index)
        if chunk is None:
            if len(self.chunks) > 16:
                self.chunks.clear()
            chunk = self.chunks[index] = os.pread(self.fd, self.CHUNK, index * self.CHUNK)
        if offset >= len(chunk):
            raise _WireError  # the file ended early
        return chunk[offset]


@contextlib.contextmanager
def _opened(path: Path, source: str) -> Iterator[_FileBytes]:
    """The model file, to be read field by field (see :func:`_skim`)."""
    try:
        with path.open("rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ModelError(f"{source}: not a regular file; give an .onnx model file")
            if info.st_size == 0:
                raise ModelError(f"{source}: the file is empty; give an .onnx model file")
            yield _FileBytes(fh.fileno(), info.st_size)
    except FileNotFoundError:
        raise ModelError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ModelError(f"{source}: is a folder; give an .onnx model file") from None
    except OSError as err:
        raise ModelError(f"cannot read {source}: {describe_os_error(err)}") from None


_NOT_ONNX = "not an ONNX model, or a damaged one (truncated, or not ONNX at all); export it again"


def _load(onnx: Any, buf: Any, source: str) -> tuple[Any, dict[str, tuple[int, int]]]:
    """The ModelProto without the data of its large float tensors (see :func:`_skim`), and
    where each stripped tensor lies in the file."""
    # protobuf's DecodeError, without needing its type stubs.
    decode_error = importlib.import_module("google.protobuf.message").DecodeError
    try:
        light, stripped = _skim(buf)
        model = onnx.load_model_from_string(light)
    except (_WireError, decode_error, ValueError, RuntimeError):
        raise ModelError(f"{source}: {_NOT_ONNX}") from None
    if not model.graph.node or not model.opset_import or model.ir_version < 1:
        raise ModelError(
            f"{source}: not an ONNX model (no graph, operator set or IR version in it); "
            "export it again"
        )
    return model, stripped


# --------------------------------------------------------------------------------------------
# The protobuf wire format, just enough to leave weights unread
# --------------------------------------------------------------------------------------------


class _WireError(Exception):
    """Bytes that are not a well-formed protobuf message."""


def _varint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _WireError
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: Any, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """A message's fields: (field number, field start, payload start, field end)."""
    pos = start
    while pos < end:
        first = pos
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        payload = pos
        if wire == 0:
            _, pos = _varint(buf, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, payload = _varint(buf, pos, end)
            pos = payload + length
        elif wire == 5:
            pos += 4
        else:
            raise _WireError  # groups (3, 4) are not in ONNX's messages
        if pos > end or number == 0:
            raise _WireError
        yield number, first, payload, pos


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field, encoded."""
    out = bytearray()
    for value in ((number << 3) | 2, len(payload)):
        while value >= 0x80:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out) + payload


#: ModelProto.graph, GraphProto.initializer; TensorProto's fields that describe a tensor
#: without holding its numbers (dims, data_type, name, doc_string, external_data,
#: data_location, metadata_props) and its data_type and name.
_GRAPH, _INITIALIZER = 7, 5
_TENSOR_HEADER = frozenset({1, 2, 8, 12, 13, 14, 16})
_DATA_TYPE, _NAME = 2, 8


def _skim(buf: Any) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """The model's bytes with every large float initializer cut down to its header.

    Protobuf length-prefixes each field, so a 100 MB ResNet-50 is walked field by field in
    milliseconds and its weights are never read; :mod:`onnx` then parses the few hundred
    kilobytes left. Returns those bytes and, per stripped tensor, where the whole
    tensor lies in the file (read again only if a layer needs its numbers).
    """
    end = len(buf)
    top: list[bytes] = []
    graph: list[bytes] = []
    stripped: dict[str, tuple[int, int]] = {}
    for number, first, payload, last in _fields(buf, 0, end):
        if number != _GRAPH:
            top.append(buf[first:last])
            continue
        for g_number, g_first, g_payload, g_last in _fields(buf, payload, last):
            if g_number == _INITIALIZER:
                graph.append(_skim_tensor(buf, g_first, g_payload, g_last, stripped))
            else:
                graph.append(buf[g_first:g_last])
    return b"".join(top) + _field(_GRAPH, b"".join(graph)), stripped


def _skim_tensor(
    buf: Any, first: int, start: int, end: int, stripped: dict[str, tuple[int, int]]
) -> bytes:
    """One initializer: whole when small or not float, else its header only."""
    if end - start <= _STRIP_BYTES:
        return bytes(buf[first:end])
    header: list[bytes] = []
    dtype, name = 0, ""
    for number, f_first, payload, f_last in _fields(buf, start, end):
        if number in _TENSOR_HEADER:
            header.append(buf[f_first:f_last])
        if number == _DATA_TYPE:
            dtype, _ = _varint(buf, payload, f_last)
        elif number == _NAME:
            name = bytes(buf[payload:f_last]).decode("utf-8", "replace")
    if dtype not in _FLOAT_TYPES:
        return bytes(buf[first:end])
    stripped[name] = (start, end)
    return _field(_INITIALIZER, b"".join(header))


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------


def _sanitize(text: str) -> str:
    """A model-format layer name (letters, digits, _ and -) from an ONNX or module name."""
    name = re.sub(r"[^\w\-]+", "_", text).strip("_")
    if not name:
        return ""
    return name if re.match(r"[A-Za-z_]", name) else f"n_{name}"


def _scope_path(scopes: list[str]) -> list[str]:
    """Module scopes → the module path: ``[layer2, layer2.0, downsample, downsample.0]`` →
    ``[layer2, 0, downsample, 0]``.

    Exporters repeat a parent's name in its child's scope (``layer2`` then ``layer2.0``; the
    dynamo exporter even ``layer2.0.relu``): a scope the next one extends is dropped.
    """
    parts = [p for p in scopes if p]
    kept = [
        p for p, nxt in zip(parts, [*parts[1:], ""], strict=False) if not nxt.startswith(p + ".")
    ]
    return ".".join(kept).split(".") if kept else []


def _torchscript_path(node_name: str) -> list[str] | None:
    """The module path in a TorchScript exporter's node name, ``/layer2/layer2.0/conv1/Conv``."""
    if not node_name.startswith("/"):
        return None
    return _scope_path(node_name.split("/")[1:-1])


def _dynamo_path(node: Any) -> list[str] | None:
    """The module path of a node from the dynamo exporter's ``name_scopes`` metadata (its last
    scope is the operator itself)."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            if isinstance(scopes, list):
                return _scope_path([str(s) for s in scopes[:-1]])
    return None


# --------------------------------------------------------------------------------------------
# Constant folding: the integer arithmetic exporters compute shapes with
# --------------------------------------------------------------------------------------------


def _np() -> Any:
    import numpy as np  # onnx has imported it already

    return np


def _fold_binary(op: str, a: Any, b: Any) -> Any:
    np = _np()
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


def _axes(value: Any, rank: int) -> list[int]:
    return sorted(int(a) + rank if int(a) < 0 else int(a) for a in _np().atleast_1d(value))


def _reshape_target(shape: Any, dims: tuple[int, ...], allowzero: bool) -> list[int]:
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


def _fold(op: str, a: dict[str, Any], x: list[Any], opset: int) -> list[Any]:
    """The outputs of a constant-only node (numpy arrays in, numpy arrays out)."""
    np = _np()
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
        target = _reshape_target(x[1], tuple(x[0].shape), bool(a.get("allowzero", 0)))
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
        return [_shape_slice(list(x[0].shape), a)]
    raise KeyError(op)


def _onnx_np_type(dtype: int) -> Any:
    from onnx import helper

    return helper.tensor_dtype_to_np_dtype(dtype)


def _fold_squeeze(op: str, a: dict[str, Any], x: list[Any], opset: int) -> Any:
    np = _np()
    axes_value = a.get("axes") if "axes" in a else (x[1] if len(x) > 1 else None)
    if op == "Squeeze":
        if axes_value is None:
            return np.squeeze(x[0])
        return np.squeeze(x[0], axis=tuple(_axes(axes_value, x[0].ndim)))
    out = x[0]
    rank = x[0].ndim + len(np.atleast_1d(axes_value))
    for axis in _axes(axes_value, rank):
        out = np.expand_dims(out, axis)
    return out


def _fold_slice(a: dict[str, Any], x: list[Any]) -> Any:
    np = _np()
    data = x[0]
    if "starts" in a:  # opset < 10
        starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
    else:
        starts, ends = x[1], x[2]
        axes = x[3] if len(x) > 3 and x[3] is not None else None
        steps = x[4] if len(x) > 4 and x[4] is not None else None
    starts = [int(v) for v in np.atleast_1d(starts)]
    ends = [int(v) for v in np.atleast_1d(ends)]
    axes_list = _axes(axes, data.ndim) if axes is not None else list(range(len(starts)))
    step_list = [int(v) for v in np.atleast_1d(steps)] if steps is not None else [1] * len(starts)
    index = [slice(None)] * data.ndim
    for ax, s, e, st in zip(axes_list, starts, ends, step_list, strict=True):
        index[ax] = slice(s, e, st)
    return data[tuple(index)]


def _fold_reduce(op: str, a: dict[str, Any], x: list[Any], opset: int) -> Any:
    np = _np()
    axes = a.get("axes") if "axes" in a else (x[1] if len(x) > 1 else None)
    keep = bool(a.get("keepdims", 1))
    fn = {"ReduceProd": np.prod, "ReduceSum": np.sum, "ReduceMax": np.max, "ReduceMin": np.min}[op]
    axis = None if axes is None or np.size(axes) == 0 else tuple(_axes(axes, x[0].ndim))
    return np.asarray(fn(x[0], axis=axis, keepdims=keep))


def _shape_slice(dims: list[int], a: dict[str, Any]) -> Any:
    """ONNX Shape with its optional ``start``/``end`` (opset 15)."""
    start, end = int(a.get("start", 0)), a.get("end")
    return _np().array(dims[start : None if end is None else int(end)], dtype=_np().int64)


_FOLDABLE = (
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


# --------------------------------------------------------------------------------------------
# The converter
# --------------------------------------------------------------------------------------------


def _attrs(node: Any) -> dict[str, Any]:
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


@dataclass
class _Stats:
    """What the conversion did, for the notes."""

    folded: Counter[str] = field(default_factory=Counter)
    derived: Counter[str] = field(default_factory=Counter)
    fused: Counter[str] = field(default_factory=Counter)
    checked: int = 0
    unchecked: int = 0
    split_pools: int = 0
    channels_last: int = 0
    opaque_params: int = 0


class _Converter:
    """One pass over the graph's nodes, in file order (ONNX requires them sorted)."""

    def __init__(
        self, onnx: Any, model: Any, path: Path, source: str, options: ReadOptions
    ) -> None:
        self.onnx = onnx
        self.model = model
        self.graph = model.graph
        self.path = path
        self.label = source
        self.options = options
        self.opset = next(
            (o.version for o in model.opset_import if o.domain in _DEFAULT_DOMAINS), 1
        )
        self.values: dict[str, _Value] = {}
        self.layers: list[dict[str, Any]] = []
        self.inputs: dict[str, list[int]] = {}
        self.tensor_of: dict[str, str] = {}
        self.taken: set[str] = set()
        self.batch_value = 1
        self.batch_symbol: str | None = None
        self.stats = _Stats()
        self.consumers: dict[str, list[Any]] = {}
        self.producers: dict[str, Any] = {}
        self.skip: set[int] = set()
        self.inferred: dict[str, tuple[int | str | None, ...] | None] = {}
        #: External data file → how many tensors it holds.
        self.external: Counter[str] = Counter()
        #: Small external tensors (shape constants) whose data file is missing.
        self.missing_constants: list[str] = []
        self.weight_uses: Counter[str] = Counter()
        self.containers: set[str] = set()
        self.paths: dict[int, list[str]] = {}
        #: The mapped file and where each initializer stripped by :func:`_skim` lies in it.
        self.buf: Any = b""
        self.stripped: dict[str, tuple[int, int]] = {}
        #: (input ref, channel sizes) → the split layer that cuts that tensor so (Slices share it).
        self.splits: dict[tuple[str, tuple[int, ...]], str] = {}

    # ---------------------------------------------------------------- setup

    def run(self) -> dict[str, Any]:
        self._read_initializers()
        self._read_inputs()
        self.inferred = self._infer()
        self._index()
        for node in self.graph.node:
            if id(node) not in self.skip:
                self._node(node)
        if not self.layers:
            raise ModelError(f"{self.label}: the graph computes nothing from its input")
        return {
            "layout": "channels_first",
            "framework": "torch",
            "inputs": self.inputs,
            "layers": self.layers,
        }

    def _read_initializers(self) -> None:
        for t in self.graph.initializer:
            dims = tuple(int(d) for d in t.dims)
            self.values[t.name] = _Const(t.name, dims, t.data_type, tensor=t, stored=True)
            if t.data_location != self.onnx.TensorProto.EXTERNAL:
                continue
            self.external[_location(t)] += 1
            small = _SMALL if t.data_type in _FLOAT_TYPES else _SMALL_INTEGERS
            if math.prod(dims) <= small:
                # A shape constant (or a scale) may be needed by shape inference and folding:
                # read it now, if its file is there.
                raw = self._read_external(t)
                if raw is None:
                    self.missing_constants.append(t.name)
                else:
                    del t.external_data[:]
                    t.data_location = self.onnx.TensorProto.DEFAULT
                    t.raw_data = raw
        for sparse in self.graph.sparse_initializer:
            v = sparse.values
            self.values[v.name] = _Const(
                v.name, tuple(int(d) for d in sparse.dims), v.data_type, stored=True
            )

    def _read_inputs(self) -> None:
        """The graph's real inputs (not initializers listed as inputs, as IR < 4 does)."""
        real = [i for i in self.graph.input if i.name not in self.values]
        if not real:
            raise ModelError(f"{self.label}: the graph has no input (only constants)")
        given = self.options.input_shape
        if given is not None and len(real) > 1:
            names = ", ".join(repr(i.name) for i in real)
            raise ModelError(
                f"{self.label}: {{opt:input}} gives one shape, but the model has {len(real)} "
                f"inputs ({names}); cnncli reads their sizes from the file"
            )
        for vi in real:
            dims = self._input_dims(vi, given)
            name = self._unique(_sanitize(vi.name) or "input")
            batch = dims[0] if isinstance(dims[0], str) or dims[0] > 0 else "?"
            if isinstance(batch, str):
                self.batch_symbol = batch
                self.batch_value = _PROBE_BATCH
            else:
                self.batch_value = batch
            per_sample = [int(d) for d in dims[1:]]
            self.inputs[name] = per_sample
            self.values[vi.name] = _Act(name, TShape(per_sample[0], tuple(per_sample[1:])))

    def _input_dims(self, vi: Any, given: tuple[int, ...] | None) -> list[int | str]:
        """An input's dims (batch first), open sizes filled from ``--input``."""
        tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        if tt is None or not tt.HasField("shape"):
            raise ModelError(
                f"{self.label}: input {show(vi.name)} is not a tensor of known rank; cnncli reads "
                "models whose inputs are tensors (batch, channels, sizes…)"
            )
        dims: list[int | str] = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim
        ]
        if not 2 <= len(dims) <= 5:
            raise ModelError(
                f"{self.label}: input {show(vi.name)} has {len(dims)} axes {_show_dims(dims)}; "
                "cnncli reads inputs of 2 to 5 axes: batch, channels and 0 to 3 sizes"
            )
        if given is not None:
            dims = self._apply_input(vi, dims, given)
        open_axes = [d for d in dims[1:] if not isinstance(d, int) or d < 1]
        if open_axes:
            hint = ",".join(str(d) if isinstance(d, int) and d > 0 else "?" for d in dims[1:])
            raise ModelError(
                f"{self.label}: input {show(vi.name)} has open sizes {_show_dims(dims)}; give "
                f"its shape without the batch, {hint}, with {{opt:input}} (e.g. "
                f"{{opt:input}} {_example(dims)})"
            )
        self._set_input_dims(tt, dims)
        return dims

    def _apply_input(
        self, vi: Any, dims: list[int | str], given: tuple[int, ...]
    ) -> list[int | str]:
        if len(given) != len(dims) - 1:
            raise ModelError(
                f"{self.label}: {{opt:input}} {','.join(map(str, given))} has {len(given)} sizes, "
                f"but input {show(vi.name)} {_show_dims(dims)} has {len(dims) - 1} without the "
                "batch"
            )
        for fixed, wanted in zip(dims[1:], given, strict=True):
            if isinstance(fixed, int) and fixed > 0 and fixed != wanted:
                raise ModelError(
                    f"{self.label}: the file fixes input {show(vi.name)} to "
                    f"{_show_dims(dims[1:])}; {{opt:input}} {','.join(map(str, given))} differs "
                    "(an exported graph may hold sizes computed for its own input): drop "
                    "{opt:input} or give those sizes"
                )
        return [dims[0], *given]

    def _set_input_dims(self, tt: Any, dims: list[int | str]) -> None:
        """Write ``--input`` sizes into the graph input, for shape inference."""
        for d, value in zip(tt.shape.dim, dims, strict=True):
            if isinstance(value, int) and value > 0 and not d.HasField("dim_value"):
                d.dim_value = value

    def _index(self) -> None:
        """Who reads each tensor (for fusing pairs) and each node's module path (for names)."""
        outputs = {o.name for o in self.graph.output}
        for node in self.graph.node:
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(node)
            for name in node.output:
                self.producers[name] = node
            path = self._module_path(node)
            self.paths[id(node)] = path
            for i in range(1, len(path)):
                self.containers.add(".".join(path[:i]))
        for name in outputs:
            self.consumers.setdefault(name, []).append(None)  # read by the user

    def _module_path(self, node: Any) -> list[str]:
        for name in map(str, node.input[1:2]):
            # Parameters keep their module path (conv1.weight) where the node's name may not
            # (the dynamo exporter's fused conv carries its batchnorm's scope).
            if name.endswith(".weight") and "::" not in name and name in self.values:
                return name[: -len(".weight")].split(".")
        return _dynamo_path(node) or _torchscript_path(node.name) or []

    # ---------------------------------------------------------------- shape inference

    def _infer(self) -> dict[str, tuple[int | str | None, ...] | None]:
        """ONNX's own shapes of every tensor (the model has no weight data: it needs none)."""
        onnx = self.onnx
        try:
            inferred = onnx.shape_inference.infer_shapes(
                self.model, strict_mode=True, data_prop=True
            )
        except Exception as err:  # onnx raises InferenceError, ValidationError, RuntimeError
            if self.missing_constants:
                name = self.missing_constants[0]
                tensor = self.values[name]
                assert isinstance(tensor, _Const)
                raise ModelError(
                    f"{self.label}: the shapes depend on constants such as {show(name)}, stored "
                    f"in {show(_location(tensor.tensor))}, which is missing; put that file next "
                    "to the model"
                ) from None
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ModelError(
                f"{self.label}: ONNX shape inference (onnx {onnx.__version__}) refuses the graph "
                f"({_shorten(first)}); the file is damaged, or newer than this onnx reads "
                "(pip install -U onnx)"
            ) from None
        out: dict[str, tuple[int | str | None, ...] | None] = {}
        for vi in [*inferred.graph.value_info, *inferred.graph.output]:
            out[vi.name] = _vi_dims(vi)
        return out

    # ---------------------------------------------------------------- nodes

    def _node(self, node: Any) -> None:
        ins = [self._value(name, node) for name in node.input]
        op = node.op_type
        default = node.domain in _DEFAULT_DOMAINS
        if op == "Constant" and default:
            self._constant(node)
            return
        acts = [v for v in ins if isinstance(v, _Act)]
        if not acts:
            self._fold_node(node, ins)
            return
        handler = _HANDLERS.get(op) if default else None
        if any(a.last for a in acts) and not (default and _takes_last(self, node, ins)):
            ins = [self.materialize(v) for v in ins]
            acts = [v for v in ins if isinstance(v, _Act)]
        try:
            if handler is None or any(_unknown(a.shape) for a in acts):
                raise _Opaque  # sizes known only at run time: only ONNX's shape is known
            handler(self, node, ins)
        except _Opaque:
            self._opaque(node, ins)

    def lookahead(self, name: str) -> _Value:
        """A tensor that may come from a Constant node later in the file (exporters put the
        constants of a pattern anywhere before its use): read now, for matching patterns."""
        producer = self.producers.get(name)
        if name not in self.values and producer is not None and producer.op_type == "Constant":
            self._constant(producer)
        return self.values.get(name)

    def _value(self, name: str, node: Any) -> _Value:
        if not name:
            return None
        if name not in self.values:
            raise ModelError(
                f"{self.label}: node {show(node.name or node.op_type)} ({node.op_type}) reads "
                f"{show(name)}, which no earlier node, input or initializer defines (a damaged "
                "file, or nodes out of order)"
            )
        return self.values[name]

    def _constant(self, node: Any) -> None:
        np = _np()
        a = _attrs(node)
        if "value" in a:
            value = np.asarray(a["value"])
        elif "value_float" in a or "value_int" in a:
            value = np.asarray(a.get("value_float", a.get("value_int")))
        elif "value_floats" in a:
            value = np.asarray(a["value_floats"], dtype=np.float32)
        elif "value_ints" in a:
            value = np.asarray(a["value_ints"], dtype=np.int64)
        else:
            raise ModelError(
                f"{self.label}: Constant node {show(node.name)} holds a kind of value cnncli "
                "does not read (sparse or text)"
            )
        self._set_const(node.output[0], value)

    def _set_const(self, name: str, value: Any) -> None:
        from onnx import helper

        np = _np()
        value = np.asarray(value)
        dtype: int
        try:
            dtype = int(helper.np_dtype_to_tensor_dtype(value.dtype))
        except (KeyError, TypeError, ValueError):
            dtype = 0
        self.values[name] = _Const(name, tuple(int(d) for d in value.shape), dtype, array=value)

    def _fold_node(self, node: Any, ins: list[_Value]) -> None:
        """A node that reads constants only: computed now (shape arithmetic), not a layer."""
        op = node.op_type
        if op == "Identity" and isinstance(ins[0], _Const):
            self.values[node.output[0]] = ins[0]  # TorchScript's shared weights: no copy
            return
        try:
            if op not in _FOLDABLE or node.domain not in _DEFAULT_DOMAINS or not ins:
                raise ModelError(f"cnncli does not evaluate {op}")
            arrays = [self._array(v, node) if isinstance(v, _Const) else None for v in ins]
            results = _fold(op, _attrs(node), arrays, self.opset)
        except (ValueError, TypeError, IndexError, ArithmeticError, ModelError) as err:
            # A weight computed from constants (DequantizeLinear of int8 weights): its dims
            # are enough for a layer; its numbers, if a layer needs them, are an error then.
            self._derived(node, _shorten(str(err)))
            return
        for name, value in zip(node.output, results, strict=False):
            self._set_const(name, value)
        self.stats.folded[op] += 1

    def _derived(self, node: Any, why: str) -> None:
        """Constants cnncli does not compute: known by their ONNX-inferred dims only."""
        for name in node.output:
            dims = self.inferred.get(name)
            sizes = [d for d in dims or () if isinstance(d, int)]
            if dims is None or len(sizes) != len(dims):
                raise ModelError(
                    f"{self.label}: node {show(node.name or node.op_type)} ({node.op_type}) "
                    f"computes a tensor from constants only, which cnncli cannot evaluate "
                    f"({why}) and ONNX gives no shape for"
                )
            self.values[name] = _Const(name, tuple(sizes), 0, reason=why)
        self.stats.derived[node.op_type] += 1

    def _array(self, value: _Const, node: Any) -> Any:
        """A constant's numbers, read from the file now (small shape tensors, scales)."""
        if value.array is not None:
            return value.array
        if value.tensor is None:
            raise ModelError(
                f"{self.label}: node {show(node.name or node.op_type)} ({node.op_type}) needs "
                f"the values of {show(value.name)}, which cnncli cannot compute ({value.reason})"
            )
        if value.tensor.data_location == self.onnx.TensorProto.EXTERNAL:
            value.array = self._external_array(value, node)
        elif value.name in self.stripped:
            start, end = self.stripped[value.name]
            whole = self.onnx.TensorProto.FromString(self.buf[start:end])
            value.array = self.onnx.numpy_helper.to_array(whole)
        else:
            value.array = self.onnx.numpy_helper.to_array(value.tensor)
        return value.array

    def _external_array(self, value: _Const, node: Any) -> Any:
        raw = self._read_external(value.tensor)
        if raw is None:
            raise ModelError(
                f"{self.label}: node {show(node.name or node.op_type)} ({node.op_type}) needs the "
                f"values of {show(value.name)}, stored in {show(_location(value.tensor))}, which "
                "is missing; put that file next to the model"
            )
        whole = self.onnx.TensorProto()
        whole.CopyFrom(value.tensor)
        del whole.external_data[:]
        whole.data_location = self.onnx.TensorProto.DEFAULT
        whole.raw_data = raw
        return self.onnx.numpy_helper.to_array(whole)

    def _read_external(self, tensor: Any) -> bytes | None:
        """A tensor's bytes from its external data file (None when the file is missing)."""
        info = {e.key: e.value for e in tensor.external_data}
        where = self._external_file(info.get("location", ""))
        if where is None:
            return None
        try:
            with where.open("rb") as fh:
                fh.seek(int(info.get("offset", 0)))
                length = int(info["length"]) if "length" in info else -1
                raw = fh.read(length)
        except (OSError, ValueError) as err:
            raise ModelError(
                f"{self.label}: cannot read the data of {show(tensor.name)} from {where}: "
                f"{describe_os_error(err) if isinstance(err, OSError) else err}"
            ) from None
        if 0 <= length != len(raw):
            raise ModelError(
                f"{self.label}: {where} ends before the data of {show(tensor.name)} "
                f"({len(raw):,} of {length:,} bytes); the file is truncated"
            )
        return raw

    def _external_file(self, location: str) -> Path | None:
        """The external data file, only inside the model's folder (never ``..`` or absolute)."""
        rel = Path(location)
        if not location or rel.is_absolute() or ".." in rel.parts:
            return None
        where = self.path.parent / rel
        return where if where.is_file() else None

    # ---------------------------------------------------------------- layers

    def _name(self, node: Any, op: str) -> str:
        path = self.paths.get(id(node), [])
        dotted = ".".join(path)
        if not path:
            base = _sanitize(node.name) if node.name and not node.name.startswith("/") else ""
            base = base or op.lower()
        elif dotted in self.containers:
            base = _sanitize(f"{dotted}_{op.lower()}")  # a functional op in a module's forward
        else:
            base = _sanitize(dotted)
        return self._unique(base or op.lower())

    def _unique(self, base: str) -> str:
        return unique_name(base, self.taken)

    def emit(
        self,
        node: Any,
        kind: str,
        opts: dict[str, Any],
        inputs: list[_Act],
        weights: Iterable[_Const] = (),
        outputs: list[str] | None = None,
    ) -> LayerOut:
        """Add one layer: its shape computed now with cnncli's rule and checked against ONNX's,
        its parameters against the weights the file holds."""
        name = self._name(node, kind)
        lt = LAYER_TYPES[kind]
        shapes = [a.shape for a in inputs]
        try:
            full = canonical_options(lt, opts)
            out = compute(lt, full, shapes, [a.ref for a in inputs], _CTX)
        except CnnCliError as err:
            raise self._error(node, err.worded(as_model_key)) from None
        weights = list(weights)
        held = sum(w.size for w in weights)
        if weights and out.trainable + out.non_trainable != held:
            raise self._error(
                node,
                f"cnncli counts {out.trainable + out.non_trainable:,} parameters for {kind}, the "
                f"file holds {held:,} ({', '.join(_show_dims(w.dims) for w in weights)})",
            )
        for w in weights:
            self.weight_uses[w.name] += 1
        layer: dict[str, Any] = {"type": kind, "name": name}
        refs = [a.ref for a in inputs]
        layer["input"] = refs[0] if len(refs) == 1 else refs
        layer.update(opts)
        self.layers.append(layer)
        outs = outputs if outputs is not None else list(node.output[:1])
        pieces = out.outputs or (out.shape,)
        # Layers that keep the layout (activations, layernorm, a Linear as a 1×1 convolution)
        # on a channels-last tensor give one (see _Act).
        last = bool(inputs) and all(a.last for a in inputs)
        for i, (tensor, shape) in enumerate(zip(outs, pieces, strict=False)):
            ref = f"{name}.{i}" if out.outputs else name
            self._check(node, tensor, shape, last)
            self.values[tensor] = _Act(ref, shape, last, (node, tensor))
        if not outs[0].startswith(_INTERNAL) and not last:
            self.tensor_of[name] = outs[0]
        if last:
            self.stats.channels_last += 1
        return out

    def materialize(self, value: _Value) -> _Value:
        """A channels-last tensor as itself: a permute row (see :class:`_Act`)."""
        if not isinstance(value, _Act) or not value.last or value.origin is None:
            return value
        node, tensor = value.origin
        dims = [0, *range(2, 2 + len(value.shape.spatial)), 1]
        self.emit(node, "permute", {"dims": dims}, [_Act(value.ref, value.shape)], outputs=[tensor])
        return self.values[tensor]

    def _check(self, node: Any, tensor: str, shape: TShape, last: bool = False) -> None:
        """cnncli's shape against ONNX shape inference's (sizes it leaves open are skipped);
        ``last``: ONNX's tensor has the channels last."""
        if tensor.startswith(_INTERNAL):
            return  # a row cnncli adds (a pooling's padding): no ONNX tensor to compare with
        theirs = self.inferred.get(tensor)
        if theirs is None:
            self.stats.unchecked += 1
            return
        ours = (self.batch_symbol or self.batch_value, *shape.dims(last))
        same = len(theirs) == len(ours) and all(
            t is None or isinstance(t, str) or t == o for t, o in zip(theirs, ours, strict=True)
        )
        if not same:
            raise self._error(
                node,
                f"cnncli computes the shape {_show_dims(ours)} for {show(tensor)}, ONNX shape "
                f"inference {_show_dims(theirs)}; one of them is wrong (please report it, with "
                "the file)",
            )
        self.stats.checked += 1

    def _error(self, node: Any, message: str) -> ModelError:
        return ModelError(
            f"{self.label}: node {show(node.name or node.op_type)} ({node.op_type}): {message}"
        )

    def _opaque(self, node: Any, ins: list[_Value]) -> None:
        """An operator cnncli does not express: ONNX's shape, its float tensors as weights."""
        acts = [v for v in ins if isinstance(v, _Act)]
        weights = [
            v for v in ins if isinstance(v, _Const) and v.stored and v.is_float and v.size > 1
        ]
        params = sum(w.size for w in weights)
        self.stats.opaque_params += params
        # One row per output that is read (the first always): a TopK's unread indices need none.
        produced = [o for i, o in enumerate(node.output) if o and (i == 0 or self.consumers.get(o))]
        first = True
        for tensor in produced:
            shape = self._opaque_shape(node, tensor)
            name = self._name(node, "opaque")
            layer: dict[str, Any] = {
                "type": "opaque",
                "name": name,
                "input": [a.ref for a in acts] if len(acts) > 1 else acts[0].ref,
                "op": node.op_type,
                "shape": shape,
            }
            if first and params:
                layer["params"] = params
            first = False
            self.layers.append(layer)
            dims = TShape(shape[0], tuple(shape[1:]))
            self.values[tensor] = _Act(name, dims)
            self.tensor_of[name] = tensor
        for w in weights:
            self.weight_uses[w.name] += 1

    def _opaque_shape(self, node: Any, tensor: str) -> list[int]:
        theirs = self.inferred.get(tensor)
        if theirs is None:
            raise self._error(
                node,
                f"cnncli does not know this operator, and ONNX shape inference gives no shape "
                f"for its output {show(tensor)}; cnncli cannot go on past it",
            )
        dims = list(theirs)
        if dims and (dims[0] == self.batch_symbol or dims[0] == self.batch_value):
            dims = dims[1:]  # the batch, as everywhere else
        if len(dims) > 5:
            raise self._error(
                node,
                f"cnncli does not know this operator, and its output {show(tensor)} has "
                f"{len(dims)} axes besides the batch; cnncli's shapes hold at most 5",
            )
        return [d if isinstance(d, int) and d > 0 else 0 for d in dims] or [1]

    # ---------------------------------------------------------------- notes

    def notes(self) -> list[str]:
        notes = []
        folded = self._bn_folded()
        if folded:
            notes.append(
                f"batchnorm was folded into {folded} convolution"
                f"{'s' if folded > 1 else ''} by the PyTorch exporter: the file holds each one's "
                "weight and bias, not the batchnorm's scale, shift and running statistics, so it "
                "has fewer parameters than the PyTorch model"
            )
        notes += self._external_notes()
        if self.options.input_shape is not None:
            sizes = ", ".join(map(str, self.options.input_shape))
            notes.append(f"the input's sizes come from --input: ({sizes})")
        if self.batch_symbol is not None:
            notes.append(
                f"the batch axis is symbolic ({self.batch_symbol!r}): shapes leave it out and "
                "counts are for one sample"
            )
        elif self.batch_value != 1:
            notes.append(
                f"the file fixes the batch to {self.batch_value}: shapes leave it out and counts "
                "are for one sample"
            )
        if self.stats.folded:
            n = sum(self.stats.folded.values())
            ops = ", ".join(op for op, _ in self.stats.folded.most_common(6))
            notes.append(
                f"{n} node{'s' if n > 1 else ''} computing constants or shapes ({ops}) "
                "were folded into the layers that read them"
            )
        if self.stats.derived:
            ops = ", ".join(self.stats.derived)
            notes.append(
                f"{sum(self.stats.derived.values())} node(s) computing tensors from constants "
                f"({ops}) were read for the shapes of their results only"
            )
        for what, n in self.stats.fused.items():
            notes.append(f"{what}: {n} time{'s' if n > 1 else ''}")
        if self.stats.channels_last:
            notes.append(
                f"{self.stats.channels_last} layer(s) read a tensor permuted to channels last "
                "(PyTorch's permute before LayerNorm and Linear, as ConvNeXt does): cnncli reads "
                "them channels first - a Linear over the channels as a 1×1 convolution, the same "
                "parameters and MACs - and checks their shapes against ONNX's permuted ones"
            )
        if self.stats.split_pools:
            notes.append(
                f"{self.stats.split_pools} pooling layer(s) pad one side more than the other, "
                "which no PyTorch pooling layer does: each is shown as a zeropad row, then the "
                "pooling without padding (the same output size)"
            )
        shared = sum(1 for n in self.weight_uses.values() if n > 1)
        if shared:
            notes.append(
                f"{shared} weight tensor(s) are read by more than one layer (an exporter merges "
                "equal tensors): each layer counts its own"
            )
        if self.stats.opaque_params:
            notes.append(
                f"opaque layers hold {self.stats.opaque_params:,} parameters: the float tensors "
                "they read from the file"
            )
        checked = self.stats.checked
        notes.append(
            "every layer's shape computed by cnncli agrees with ONNX shape inference "
            f"({checked} output{'s' if checked != 1 else ''} compared"
            + (f", {self.stats.unchecked} left open by ONNX)" if self.stats.unchecked else ")")
        )
        return notes

    def _bn_folded(self) -> int:
        """Convolutions the exporter folded a batchnorm into (0 when it did not happen)."""
        if self.model.producer_name != "pytorch":
            return 0
        if any(n.op_type == "BatchNormalization" for n in self.graph.node):
            return 0
        count = 0
        for node in self.graph.node:
            if node.op_type != "Conv" or len(node.input) < 3 or not node.input[2]:
                continue
            rules = {p.key: p.value for p in node.metadata_props}.get(
                "pkg.onnxscript.rewriter.rule_name", ""
            )
            # TorchScript names computed (folded) tensors onnx::Conv_N, not conv1.bias;
            # the dynamo exporter records its rewrite rule.
            if "FuseBatchNorm" in rules or node.input[2].startswith("onnx::"):
                count += 1
        return count

    def _external_notes(self) -> list[str]:
        """One note per external data file that is missing (the summary needs none of it)."""
        notes = []
        for location, n in self.external.items():
            if self._external_file(location) is None:
                notes.append(
                    f"the weights of {n} tensor{'s' if n > 1 else ''} are stored outside the "
                    f"model in {show(location)}, which is missing: the summary needs only their "
                    "shapes, which the model file holds"
                )
        return notes


def _shorten(text: str, width: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _location(tensor: Any) -> str:
    return next((e.value for e in tensor.external_data if e.key == "location"), "")


def _show_dims(dims: Iterable[Any]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def _example(dims: list[int | str]) -> str:
    sizes = [d if isinstance(d, int) and d > 0 else 224 for d in dims[1:]]
    return ",".join(map(str, sizes))


def _vi_dims(vi: Any) -> tuple[int | str | None, ...] | None:
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


# --------------------------------------------------------------------------------------------
# Operators → layer types
# --------------------------------------------------------------------------------------------


def _unknown(shape: TShape) -> bool:
    """A shape with a size known only when the model runs (an opaque layer's output)."""
    return shape.channels == 0 or 0 in shape.spatial


def _act(value: _Value) -> _Act:
    if not isinstance(value, _Act):
        raise _Opaque
    return value


def _const(value: _Value) -> _Const:
    if not isinstance(value, _Const):
        raise _Opaque
    return value


def _only_first_output(node: Any, conv: _Converter) -> None:
    """Extra outputs (MaxPool's indices, Dropout's mask) must be unread."""
    for name in node.output[1:]:
        if name and conv.consumers.get(name):
            raise _Opaque


def _pads(a: dict[str, Any], ndim: int) -> list[list[int]]:
    pads = [int(p) for p in a.get("pads", [0] * (2 * ndim))]
    return [[pads[i], pads[i + ndim]] for i in range(ndim)]


def _padding(a: dict[str, Any], x: _Act, kernel: list[int], transposed: bool) -> list[list[int]]:
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
        raise _Opaque
    if any(p < 0 for pair in pairs for p in pair):
        raise _Opaque
    return pairs


def _simplify(pairs: list[list[int]]) -> Any:
    """``[[1, 1], [1, 1]]`` → ``1``; ``[[1, 1], [2, 2]]`` → ``[1, 2]``; asymmetric kept."""
    if all(b == e for b, e in pairs):
        sides = [b for b, _ in pairs]
        return sides[0] if len(set(sides)) == 1 else sides
    return pairs


def _ndim_ok(x: _Act, ndim: int) -> None:
    if len(x.shape.spatial) != ndim or not 1 <= ndim <= 3:
        raise _Opaque


def _conv(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """Conv → conv1d/2d/3d: filters and kernel from the weight, explicit padding pairs."""
    x, w = _act(ins[0]), _const(ins[1])
    bias = _const(ins[2]) if len(ins) > 2 and ins[2] is not None else None
    a = _attrs(node)
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


def _conv_transpose(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """ConvTranspose → convtranspose*: the weight is (C_in, C_out / groups, *kernel)."""
    x, w = _act(ins[0]), _const(ins[1])
    bias = _const(ins[2]) if len(ins) > 2 and ins[2] is not None else None
    a = _attrs(node)
    kernel = [int(k) for k in a.get("kernel_shape", w.dims[2:])]
    _ndim_ok(x, len(kernel))
    if "output_shape" in a:
        raise _Opaque  # sizes given instead of padding: not expressible as PyTorch's layer
    pairs = _padding(a, x, kernel, True)
    if any(b != e for b, e in pairs):
        raise _Opaque  # PyTorch crops both sides equally
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


def _pool(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """MaxPool, AveragePool → maxpool*, avgpool* (a zeropad row first when one side pads more)."""
    x = _act(ins[0])
    _only_first_output(node, conv)
    a = _attrs(node)
    kernel = [int(k) for k in a["kernel_shape"]]
    _ndim_ok(x, len(kernel))
    kind = "maxpool" if node.op_type == "MaxPool" else "avgpool"
    dilation = [int(d) for d in a.get("dilations", [1] * len(kernel))]
    if kind == "avgpool" and any(d != 1 for d in dilation):
        raise _Opaque
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
        conv.emit(node, f"zeropad{len(kernel)}d", {"padding": pairs}, [x], outputs=[_INTERNAL])
        x = _act(conv.values.pop(_INTERNAL))
        conv.stats.split_pools += 1
        pairs = [[0, 0]] * len(kernel)
    opts["padding"] = _simplify(pairs)
    conv.emit(node, f"{kind}{len(kernel)}d", opts, [x])


def _shape(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """``Shape(x)`` of an activation: its sizes are known (cnncli computed them), so the shape
    arithmetic that follows folds into constants (a symbolic batch stands as a probe number)."""
    x = _act(ins[0])
    dims = [conv.batch_value, *x.shape.dims(x.last)]
    if 0 in dims:
        raise _Opaque  # a size known only at run time
    if node.op_type == "Size":
        value = _np().array(math.prod(dims), dtype=_np().int64)
    else:
        value = _shape_slice(dims, _attrs(node))
    conv._set_const(node.output[0], value)
    conv.stats.folded[node.op_type] += 1


def _global_pool(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """GlobalAveragePool, GlobalMaxPool → global_avgpool, global_maxpool keeping (C, 1, 1)."""
    x = _act(ins[0])
    if not x.shape.spatial:
        raise _Opaque
    kind = "global_avgpool" if node.op_type == "GlobalAveragePool" else "global_maxpool"
    conv.emit(node, kind, {"keepdims": True}, [x])


def _same_shape(kind: str, **extra: Any) -> Callable[[_Converter, Any, list[_Value]], None]:
    def handler(conv: _Converter, node: Any, ins: list[_Value]) -> None:
        x = _act(ins[0])
        _only_first_output(node, conv)
        conv.emit(node, kind, dict(extra), [x])

    return handler


def _clip(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """Clip(0, 6) → relu6, Clip(0, ∞) → relu; other bounds have no layer type."""
    x = _act(ins[0])
    a = _attrs(node)
    low = _scalar(conv, node, ins[1] if len(ins) > 1 else None, a.get("min"))
    high = _scalar(conv, node, ins[2] if len(ins) > 2 else None, a.get("max"))
    if low == 0 and high == 6:
        conv.emit(node, "relu6", {}, [x])
    elif low == 0 and high is None:
        conv.emit(node, "relu", {}, [x])
    else:
        raise _Opaque


def _scalar(conv: _Converter, node: Any, value: _Value, attr: Any) -> float | None:
    """A scalar operand (a constant input, or the attribute older operator sets use)."""
    if value is None:
        return None if attr is None else float(attr)
    arr = conv._array(_const(value), node)
    if arr.size != 1:
        raise _Opaque
    return float(arr.reshape(-1)[0])


def _leaky_relu(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """LeakyRelu → leaky_relu with its slope."""
    alpha = float(_attrs(node).get("alpha", 0.01))
    conv.emit(node, "leaky_relu", {"negative_slope": alpha}, [_act(ins[0])])


def _softmax(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """Softmax over the channels → softmax."""
    x = _act(ins[0])
    rank = 2 + len(x.shape.spatial)
    default = -1 if conv.opset >= 13 else 1
    axis = int(_attrs(node).get("axis", default))
    axis = axis + rank if axis < 0 else axis
    if axis != 1 or (conv.opset < 13 and rank > 2):
        raise _Opaque  # before opset 13, Softmax flattened everything after the axis
    conv.emit(node, "softmax", {}, [x])


def _gated(kind: str, gate: str) -> Callable[[_Converter, Any, list[_Value]], None]:
    """``Sigmoid(x)`` (or ``HardSigmoid``) whose only reader is ``Mul(x, ·)``: one ``kind`` layer
    (silu, hardswish), named after the Mul."""

    def handler(conv: _Converter, node: Any, ins: list[_Value]) -> None:
        x = _act(ins[0])
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


def _gemm(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """Gemm of a flat tensor and a weight (transB 0 or 1), bias C of one number per unit → dense."""
    x, w = _act(ins[0]), _const(ins[1])
    a = _attrs(node)
    if a.get("transA", 0) or x.shape.spatial or len(w.dims) != 2:
        raise _Opaque
    units = w.dims[0] if a.get("transB", 0) else w.dims[1]
    bias = ins[2] if len(ins) > 2 else None
    weights = [w]
    if bias is not None:
        b = _const(bias)
        if b.size != units:
            raise _Opaque  # a scalar or broadcast C: not a bias per unit
        weights.append(b)
    conv.emit(node, "dense", {"units": units, "bias": bias is not None}, [x], weights)


def _matmul(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """MatMul of a flat tensor and a 2-D weight → dense; with the Add of a bias after it, one
    dense layer with that bias."""
    x, w = _act(ins[0]), _const(ins[1])
    if (x.shape.spatial and not x.last) or len(w.dims) != 2 or w.dims[0] != x.shape.channels:
        raise _Opaque  # over the last axis of a channels-first tensor: no layer type
    units = w.dims[1]
    if x.last:  # a Linear over the channels of (N, H, W, C): a 1×1 convolution
        _linear_as_conv(conv, node, x, w, units)
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


def _linear_as_conv(conv: _Converter, node: Any, x: _Act, w: _Const, units: int) -> None:
    """MatMul (+ bias Add) over the channels of a channels-last tensor → conv*d, kernel 1."""
    readers = conv.consumers.get(node.output[0], [])
    add = readers[0] if len(readers) == 1 else None
    bias = _bias_of(conv, add, node.output[0], units)
    kind = f"conv{len(x.shape.spatial)}d"
    opts = {"filters": units, "kernel": 1, "bias": bias is not None}
    if bias is not None and add is not None:
        conv.skip.add(id(add))
        conv.emit(add, kind, opts, [x], [w, bias], list(add.output[:1]))
        conv.stats.fused["MatMul and Add read as one 1×1 convolution"] += 1
        return
    conv.emit(node, kind, opts, [x], [w])


def _bias_of(conv: _Converter, add: Any, tensor: str, units: int) -> _Const | None:
    """The bias of ``MatMul`` + ``Add(·, b)``: a constant of ``units`` numbers."""
    if add is None or add.op_type != "Add" or add.domain not in _DEFAULT_DOMAINS:
        return None
    other = [n for n in add.input if n != tensor]
    if len(other) != 1:
        return None
    value = conv.values.get(other[0])
    if isinstance(value, _Const) and value.size == units and value.dims[-1:] == (units,):
        return value
    return None


def _batchnorm(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """BatchNormalization → batchnorm (scale and shift trainable, mean and variance not)."""
    x = _act(ins[0])
    _only_first_output(node, conv)
    weights = [_const(v) for v in ins[1:5]]
    eps = float(_attrs(node).get("epsilon", 1e-5))
    conv.emit(node, "batchnorm", {"eps": eps} if eps > 0 else {}, [x], weights)


def _flatten(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """Flatten(axis=1) → flatten; other axes merge the batch."""
    x = _act(ins[0])
    if int(_attrs(node).get("axis", 1)) != 1:
        raise _Opaque
    conv.emit(node, "flatten", {}, [x])


def _reshape(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """Reshape with a known target (ONNX's 0 and -1 resolved) → flatten or reshape."""
    x = _act(ins[0])
    if len(ins) > 1:
        shape = conv._array(_const(ins[1]), node)
    else:
        shape = _attrs(node).get("shape")  # opset < 5
    dims = (conv.batch_value, *x.shape.dims(False))
    allowzero = bool(_attrs(node).get("allowzero", 0))
    try:
        target = _reshape_target(shape, dims, allowzero)
    except ModelError as err:
        raise conv._error(node, str(err)) from None
    if _group_norm_pattern(conv, node, x, target) or _unshuffle_pattern(conv, node, x, target):
        return
    _reshape_to(conv, node, x, target)


def _unshuffle_pattern(conv: _Converter, node: Any, x: _Act, target: list[int]) -> bool:
    """``Reshape(N, C, H/r, r, W/r, r) → Transpose(0, 1, 3, 5, 2, 4) → Reshape(N, C·r², H/r,
    W/r)``, as both of torch's exporters write ``nn.PixelUnshuffle``: one pixel_unshuffle layer
    (True), or nothing (False)."""
    c, spatial = x.shape.channels, x.shape.spatial
    if len(target) != 6 or len(spatial) != 2 or target[:2] != [conv.batch_value, c]:
        return False
    r = target[3]
    if r < 1 or target[5] != r or [target[2] * r, target[4] * r] != list(spatial):
        return False
    swap = _only_reader(conv, node.output[0], "Transpose")
    back = swap and _only_reader(conv, swap.output[0], "Reshape")
    if not back or _perm(swap, 6) != [0, 1, 3, 5, 2, 4] or len(back.input) < 2:
        return False
    value = conv.lookahead(back.input[1])
    if not isinstance(value, _Const) or value.is_float:
        return False
    dims = (conv.batch_value, c, r, r, target[2], target[4])
    try:
        shape = _reshape_target(conv._array(value, back), dims, False)
    except ModelError:
        return False
    if shape != [conv.batch_value, c * r * r, target[2], target[4]]:
        return False
    conv.skip.update((id(swap), id(back)))
    opts = {"factor": r, "mode": "crd"}
    conv.emit(node, "pixel_unshuffle", opts, [x], outputs=list(back.output[:1]))
    conv.stats.fused["Reshape, Transpose and Reshape read as one pixel_unshuffle"] += 1
    return True


def _only_reader(conv: _Converter, tensor: str, op: str) -> Any:
    """The one node reading ``tensor``, when it is an ``op`` of the default domain."""
    readers = conv.consumers.get(tensor, [])
    node = readers[0] if len(readers) == 1 else None
    ok = node is not None and node.op_type == op and node.domain in _DEFAULT_DOMAINS
    return node if ok else None


def _other_const(conv: _Converter, node: Any, tensor: str) -> _Const | None:
    """The constant operand of a two-input ``node`` whose other operand is ``tensor``."""
    others = [n for n in node.input if n != tensor]
    value = conv.lookahead(others[0]) if len(others) == 1 and len(node.input) == 2 else None
    return value if isinstance(value, _Const) else None


def _restores(conv: _Converter, back: Any, x: _Act, source: str) -> bool:
    """Reshape ``back`` gives ``x``'s shape again: its target is ``Shape(source)`` or a constant
    that resolves to the same sizes."""
    target = back.input[1] if len(back.input) > 1 else ""
    producer = conv.producers.get(target)
    if producer is not None and producer.op_type == "Shape" and list(producer.input) == [source]:
        return not _attrs(producer)  # the whole shape, no start/end
    value = conv.lookahead(target)
    if not isinstance(value, _Const) or value.is_float:
        return False
    dims = (conv.batch_value, *x.shape.dims(False))
    try:
        shape = _reshape_target(conv._array(value, back), dims, False)
    except ModelError:
        return False
    return tuple(shape) == dims


def _group_norm_pattern(conv: _Converter, node: Any, x: _Act, target: list[int]) -> bool:
    """``Reshape(N, G, -1) → InstanceNormalization → Reshape back [→ Mul γ → Add β]``, as both
    of torch's exporters write ``nn.GroupNorm``: one groupnorm layer (True), or nothing (False).
    γ and β are the file's weights when it holds one per channel (affine); a Mul by 1 and an Add
    of 0 (the TorchScript exporter's for ``affine=False``) are part of the layer, without weights."""
    c = x.shape.channels
    if len(target) != 3 or target[0] != conv.batch_value or not 1 <= target[1] <= c:
        return False
    groups = target[1]
    norm = _only_reader(conv, node.output[0], "InstanceNormalization")
    back = norm and _only_reader(conv, norm.output[0], "Reshape")
    if not back or c % groups or not _restores(conv, back, x, node.input[0]):
        return False
    fused, end = [norm, back], back
    weights: list[_Const] = []
    for op, neutral in (("Mul", 1.0), ("Add", 0.0)):
        step = _only_reader(conv, end.output[0], op)
        value = step and _other_const(conv, step, end.output[0])
        if not step or value is None:
            break
        if value.stored and value.is_float and _per_channel(value, x):
            weights.append(value)
        elif value.size != 1 or float(conv._array(value, step).reshape(-1)[0]) != neutral:
            break
        fused.append(step)
        end = step
    if len(weights) == 1:
        return False  # γ without β (or β alone): no layer type holds one of them
    eps = float(_attrs(norm).get("epsilon", 1e-5))
    conv.skip.update(id(n) for n in fused)
    opts = {"groups": groups, "eps": eps, "affine": bool(weights)}
    conv.emit(node, "groupnorm", opts, [x], weights, outputs=list(end.output[:1]))
    conv.stats.fused[
        "Reshape, InstanceNormalization, Reshape (Mul, Add) read as one groupnorm"
    ] += 1
    return True


def _reshape_to(conv: _Converter, node: Any, x: _Act, target: list[int]) -> None:
    """A reshape that keeps the batch first: flatten, or reshape to the rest."""
    if not target or target[0] != conv.batch_value or not 2 <= len(target) <= 5:
        raise _Opaque  # the batch moves or merges: no per-sample layer expresses it
    rest = target[1:]
    if len(rest) == 1 and x.shape.spatial:
        conv.emit(node, "flatten", {}, [x])
    else:
        conv.emit(node, "reshape", {"shape": rest}, [x])


def _squeeze(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """Squeeze, Unsqueeze of a layer's output (not of the batch axis) → reshape."""
    x = _act(ins[0])
    a = _attrs(node)
    rank = 2 + len(x.shape.spatial)
    axes_value = (
        a.get("axes")
        if "axes" in a
        else (conv._array(_const(ins[1]), node) if len(ins) > 1 and ins[1] is not None else None)
    )
    dims = [conv.batch_value, *x.shape.dims(False)]
    if node.op_type == "Squeeze":
        axes = (
            _axes(axes_value, rank)
            if axes_value is not None
            else [i for i, d in enumerate(dims) if d == 1]
        )
        if 0 in axes or any(dims[i] != 1 for i in axes):
            raise _Opaque
        target = [d for i, d in enumerate(dims) if i not in axes]
    else:
        new_rank = rank + len(_np().atleast_1d(axes_value))
        axes = _axes(axes_value, new_rank)
        if 0 in axes:
            raise _Opaque
        target = list(dims)
        for axis in axes:
            target.insert(axis, 1)
    _reshape_to(conv, node, x, target)


def _transpose(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """Transpose keeping the batch first → permute (PyTorch's spelling, batch included)."""
    x = _act(ins[0])
    rank = 2 + len(x.shape.spatial)
    perm = _perm(node, rank)
    if len(perm) != rank or perm[0] != 0 or rank > 5:
        raise _Opaque  # a permute holds at most 4 axes besides the batch
    if x.last:  # the permute back (_takes_last let only that through)
        conv._check(node, node.output[0], x.shape)
        conv.values[node.output[0]] = _Act(x.ref, x.shape)
    elif rank > 2 and perm == [0, *range(2, rank), 1]:
        # Channels last: read on, channels first, until the permute back (see _Act).
        conv._check(node, node.output[0], x.shape, last=True)
        conv.values[node.output[0]] = _Act(x.ref, x.shape, True, (node, node.output[0]))
    else:
        conv.emit(node, "permute", {"dims": perm}, [x])


def _perm(node: Any, rank: int) -> list[int]:
    return [int(p) for p in _attrs(node).get("perm", list(range(rank - 1, -1, -1)))]


#: Operators that read a channels-last tensor (see _Act) as the channels-first one: the same
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


def _takes_last(conv: _Converter, node: Any, ins: list[_Value]) -> bool:
    """Whether ``node`` reads its channels-last inputs as they are (see :class:`_Act`)."""
    op = node.op_type
    acts = [v for v in ins if isinstance(v, _Act)]
    if op in _KEEP_LAYOUT:
        return True
    if op == "Transpose":
        rank = 2 + len(acts[0].shape.spatial)
        return _perm(node, rank) == [0, rank - 1, *range(1, rank - 1)]
    if op in ("Add", "Mul", "Sub", "Div"):
        consts = [v for v in ins if isinstance(v, _Const)]
        return all(a.last for a in acts) and all(c.size == 1 for c in consts)
    return False


def _concat(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """Concat along the channels → concat."""
    acts = [_act(v) for v in ins]
    rank = 2 + len(acts[0].shape.spatial)
    axis = int(_attrs(node)["axis"])
    axis = axis + rank if axis < 0 else axis
    if axis != 1:
        raise _Opaque
    if len(acts) == 1:
        conv.emit(node, "identity", {}, acts)
    else:
        conv.emit(node, "concat", {}, acts)


def _merge(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """Add/Mul of two activations, or of an activation and a constant (a rescaling, or a
    learned per-channel scale)."""
    op = node.op_type
    acts = [v for v in ins if isinstance(v, _Act)]
    consts = [v for v in ins if isinstance(v, _Const)]
    if len(acts) == 2:
        kind = {"Add": "add", "Mul": "multiply"}.get(op)
        if kind is None or not _broadcastable(kind, acts[0].shape, acts[1].shape):
            raise _Opaque
        conv.emit(node, kind, {}, acts)
        return
    if len(acts) != 1 or len(consts) != 1:
        raise _Opaque
    x, c = acts[0], consts[0]
    if op == "Div" and _gelu(conv, node, x):
        return
    if op == "Mul" and c.size == 1 and _softplus_beta(conv, node, x, c):
        return
    if c.size == 1:
        _rescaling(conv, node, x, c, ins[0] is c)
    elif op == "Mul" and c.is_float and c.stored and _per_channel(c, x):
        conv.emit(node, "layer_scale", {}, [x], [c])
    else:
        raise _Opaque


def _gelu(conv: _Converter, div: Any, x: _Act) -> bool:
    """``x · (erf(x / √2) + 1) · 0.5``, GELU as exporters write it before opset 20 (the
    TorchScript exporter multiplies by x first, the dynamo one by 0.5 first): one gelu layer,
    named after the Div (True), or nothing done (False)."""

    def only(tensor: str, op: str) -> Any:
        readers = conv.consumers.get(tensor, [])
        node = readers[0] if len(readers) == 1 else None
        return node if node is not None and node.op_type == op else None

    def scalar(node: Any, skip: str, value: float) -> bool:
        others = [conv.lookahead(n) for n in node.input if n != skip]
        if len(others) != 1 or not isinstance(others[0], _Const) or others[0].size != 1:
            return False
        return math.isclose(float(conv._array(others[0], node).reshape(-1)[0]), value, rel_tol=1e-3)

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


def _broadcastable(kind: str, a: TShape, b: TShape) -> bool:
    da, db = a.dims(False), b.dims(False)
    if len(da) != len(db):
        return False
    return all(p == q or (kind == "multiply" and 1 in (p, q)) for p, q in zip(da, db, strict=True))


def _per_channel(c: _Const, x: _Act) -> bool:
    """A constant that broadcasts along the channels only: (C, 1, 1) or (1, C, 1, 1)."""
    rank = 2 + len(x.shape.spatial)
    dims = list(c.dims)
    if len(dims) > rank:
        return False
    dims = [1] * (rank - len(dims)) + dims
    return dims[1] == x.shape.channels and math.prod(dims) == x.shape.channels


def _rescaling(conv: _Converter, node: Any, x: _Act, c: _Const, const_first: bool) -> None:
    """``x·s``, ``x/s``, ``x+o``, ``x−o`` with a scalar: Keras's Rescaling(scale, offset)."""
    value = float(conv._array(c, node).reshape(-1)[0])
    op = node.op_type
    if op == "Sub" and const_first:
        raise _Opaque  # o − x
    if op == "Div" and (const_first or value == 0):
        raise _Opaque
    if not math.isfinite(value):
        raise _Opaque
    opts = {
        "Mul": {"scale": value},
        "Div": {"scale": 1 / value},
        "Add": {"scale": 1, "offset": value},
        "Sub": {"scale": 1, "offset": -value},
    }[op]
    conv.emit(node, "rescaling", opts, [x])


def _split(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """Split along the channels → split with explicit sizes (outputs NAME.0, NAME.1, …)."""
    x = _act(ins[0])
    a = _attrs(node)
    rank = 2 + len(x.shape.spatial)
    axis = int(a.get("axis", 0))
    axis = axis + rank if axis < 0 else axis
    if axis != 1:
        raise _Opaque
    c, n = x.shape.channels, len(node.output)
    if "split" in a:
        sizes = [int(s) for s in a["split"]]
    elif len(ins) > 1 and ins[1] is not None:
        sizes = [int(s) for s in conv._array(_const(ins[1]), node)]
    else:  # equal parts, the last smaller (opset 18's num_outputs)
        each = -(-c // n)
        sizes = [min(each, c - i * each) for i in range(n)]
    if len(sizes) != n or any(s < 1 for s in sizes) or sum(sizes) != c or len(sizes) > MAX_LIST:
        raise _Opaque
    conv.emit(node, "split", {"sizes": sizes}, [x], outputs=list(node.output))


def _slice(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """Slice of a layer's output, step 1: a range of channels is one output of a split (the
    Slices that cut one tensor into the same parts share one split: ``torch.chunk`` as the
    TorchScript exporter writes it); ranges of the sizes are a cropping."""
    x = _act(ins[0])
    dims = [conv.batch_value, *x.shape.dims(False)]
    ranges: dict[int, tuple[int, int]] = {}
    for axis, start, end, step in _slice_args(conv, node, ins, len(dims)):
        lo, hi, _ = slice(start, end).indices(dims[axis])  # ONNX's clamping, for step 1
        if step != 1 or hi <= lo:
            raise _Opaque
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
        raise _Opaque


def _slice_args(
    conv: _Converter, node: Any, ins: list[_Value], rank: int
) -> list[tuple[int, int, int, int]]:
    """(axis, start, end, step) of each sliced axis, from the attributes (opset < 10) or the
    constant inputs."""
    a = _attrs(node)
    if "starts" in a:
        starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
    else:
        arrays = [conv._array(_const(v), node) if v is not None else None for v in ins[1:5]]
        starts, ends, axes, steps = [*arrays, None, None][:4]
    axes_list = _axes(axes, rank) if axes is not None else list(range(len(starts)))
    step_list = [1] * len(axes_list) if steps is None else [int(v) for v in steps]
    return [
        (ax, int(s), int(e), st)
        for ax, s, e, st in zip(axes_list, starts, ends, step_list, strict=True)
    ]


def _channel_range(conv: _Converter, node: Any, x: _Act, lo: int, hi: int) -> None:
    """Channels ``lo:hi`` of ``x``: output ``k`` of a split of ``x`` into parts, one split per
    way of cutting ``x``."""
    c = x.shape.channels
    sizes = [p for p in (lo, hi - lo, c - hi) if p]
    index = 0 if lo == 0 else 1
    key = (x.ref, tuple(sizes))
    if key not in conv.splits:
        outs = [f"{_INTERNAL}{node.output[0]}.{i}" for i in range(len(sizes))]
        conv.emit(node, "split", {"sizes": sizes}, [x], outputs=outs)
        conv.splits[key] = _act(conv.values[outs[0]]).ref.rsplit(".", 1)[0]
    name = conv.splits[key]
    shape = TShape(hi - lo, x.shape.spatial)
    conv._check(node, node.output[0], shape)
    conv.values[node.output[0]] = _Act(f"{name}.{index}", shape)
    if index == 0:
        conv.tensor_of[name] = node.output[0]  # the split's first output, for tests


def _pad(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """Pad with zeros on spatial axes only → zeropad*; other modes and values have no type."""
    x = _act(ins[0])
    a = _attrs(node)
    rank = 2 + len(x.shape.spatial)
    if a.get("mode", "constant") != "constant" or not 1 <= rank - 2 <= 3:
        raise _Opaque
    if "pads" in a:
        pads = [int(p) for p in a["pads"]]
        fill = float(a.get("value", 0.0))
    else:
        pads = [int(p) for p in conv._array(_const(ins[1]), node)]
        value = ins[2] if len(ins) > 2 else None
        fill = _scalar(conv, node, value, None) or 0.0
    axes = (
        _axes(conv._array(_const(ins[3]), node), rank)
        if len(ins) > 3 and ins[3] is not None
        else list(range(rank))
    )
    full = [[0, 0] for _ in range(rank)]
    for i, axis in enumerate(axes):
        full[axis] = [pads[i], pads[i + len(axes)]]
    if fill != 0 or full[0] != [0, 0] or full[1] != [0, 0] or any(p < 0 for q in full for p in q):
        raise _Opaque
    conv.emit(node, f"zeropad{rank - 2}d", {"padding": full[2:]}, [x])


def _resize(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """Resize, Upsample of the spatial axes → upsample (whole scales, else the sizes)."""
    x = _act(ins[0])
    a = _attrs(node)
    rank = 2 + len(x.shape.spatial)
    dims = [conv.batch_value, *x.shape.dims(False)]
    sizes = _resize_sizes(conv, node, ins, a, dims)
    if sizes[:2] != dims[:2] or not x.shape.spatial:
        raise _Opaque
    ndim = rank - 2
    mode = {"nearest": "nearest", "linear": ("linear", "bilinear", "trilinear")[ndim - 1]}.get(
        a.get("mode", "nearest"), "bicubic" if a.get("mode") == "cubic" and ndim == 2 else ""
    )
    if not mode:
        raise _Opaque
    spatial = sizes[2:]
    if all(s % n == 0 for s, n in zip(spatial, dims[2:], strict=True)):
        opts: dict[str, Any] = {"scale": [s // n for s, n in zip(spatial, dims[2:], strict=True)]}
    else:
        opts = {"size": spatial}
    opts["mode"] = mode
    conv.emit(node, "upsample", opts, [x])


def _resize_sizes(
    conv: _Converter, node: Any, ins: list[_Value], a: dict[str, Any], dims: list[int]
) -> list[int]:
    """The output sizes of Resize/Upsample from its ``sizes`` or ``scales`` (⌊n·scale⌋)."""
    rank = len(dims)
    if node.op_type == "Upsample" or (len(ins) == 2 and conv.opset < 11):
        scales_value: _Value = ins[1] if len(ins) > 1 else None
        sizes_value: _Value = None
        if "scales" in a:
            scales = [float(s) for s in a["scales"]]
            return [math.floor(n * s) for n, s in zip(dims, scales, strict=True)]
    else:
        scales_value = ins[2] if len(ins) > 2 else None
        sizes_value = ins[3] if len(ins) > 3 else None
    axes = [int(v) for v in a.get("axes", range(rank))]
    axes = [v + rank if v < 0 else v for v in axes]
    out = list(dims)
    if sizes_value is not None and _const(sizes_value).size:
        for axis, size in zip(axes, conv._array(_const(sizes_value), node), strict=True):
            out[axis] = int(size)
        if a.get("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise _Opaque
        return out
    if scales_value is None or not _const(scales_value).size:
        raise _Opaque
    for axis, scale in zip(axes, conv._array(_const(scales_value), node), strict=True):
        out[axis] = math.floor(dims[axis] * float(scale))
    return out


def _reduce(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """ReduceMean, ReduceMax over the spatial axes → global pooling; ReduceMean over others
    (never the batch) → mean."""
    x = _act(ins[0])
    a = _attrs(node)
    rank = 2 + len(x.shape.spatial)
    if "axes" in a:
        axes_value = a["axes"]
    elif len(ins) > 1 and ins[1] is not None:
        axes_value = conv._array(_const(ins[1]), node)
    else:
        raise _Opaque  # every axis, the batch included
    axes = _axes(axes_value, rank)
    keep = bool(a.get("keepdims", 1))
    if 0 in axes or not axes:
        raise _Opaque
    spatial = list(range(2, rank))
    if axes == spatial and spatial:
        kind = "global_avgpool" if node.op_type == "ReduceMean" else "global_maxpool"
        conv.emit(node, kind, {"keepdims": keep}, [x])
    elif node.op_type == "ReduceMean":
        conv.emit(node, "mean", {"axes": axes, "keepdims": keep}, [x])
    else:
        raise _Opaque


def _dropout(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """Dropout (its mask unread) → dropout with its rate."""
    x = _act(ins[0])
    _only_first_output(node, conv)
    a = _attrs(node)
    ratio = _scalar(conv, node, ins[1] if len(ins) > 1 else None, a.get("ratio", 0.5))
    rate = 0.5 if ratio is None else ratio
    if not 0 <= rate < 1:
        raise _Opaque
    conv.emit(node, "dropout", {"rate": rate}, [x])


def _layernorm(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """LayerNormalization of a flat tensor with scale and bias → layernorm."""
    x = _act(ins[0])
    _only_first_output(node, conv)
    a = _attrs(node)
    axis = int(a.get("axis", -1))
    rank = 2 + len(x.shape.spatial)
    if axis not in (-1, rank - 1) or (x.shape.spatial and not x.last):
        raise _Opaque  # normalises the last axis: the channels only if flat or channels last
    weights = [_const(v) for v in ins[1:3] if v is not None]
    affine = len(weights) == 2
    if not affine:
        raise _Opaque
    eps = float(a.get("epsilon", 1e-5))
    conv.emit(node, "layernorm", {"eps": eps}, [x], weights)


def _group_norm(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """GroupNormalization → groupnorm. Opset 21's scale and bias hold one number per channel;
    opset 18's one per group, which no layer type holds unless the groups are the channels."""
    x = _act(ins[0])
    scale, bias = _const(ins[1]), _const(ins[2])
    a = _attrs(node)
    c = x.shape.channels
    if scale.size != bias.size or scale.size not in (c, a.get("num_groups")):
        raise _Opaque
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


def _instance_norm(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """InstanceNormalization → instancenorm: affine when the file holds scale and bias as
    weights (the TorchScript exporter writes ``affine=False`` as Constant nodes, not weights)."""
    x = _act(ins[0])
    scale, bias = _const(ins[1]), _const(ins[2])
    c = x.shape.channels
    if scale.size != c or bias.size != c or not x.shape.spatial:
        raise _Opaque
    held = [w for w in (scale, bias) if w.stored]
    if len(held) == 1:
        raise _Opaque
    opts = {"eps": float(_attrs(node).get("epsilon", 1e-5)), "affine": bool(held)}
    conv.emit(node, "instancenorm", opts, [x], held)


def _prelu(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """PRelu → prelu: one slope (num_parameters 1), one per channel (num_parameters C), or
    slopes broadcast over other axes (shared_axes: the axes of size 1)."""
    x, slope = _act(ins[0]), _const(ins[1])
    dims = list(x.shape.dims(False))
    sdims = list(slope.dims)
    if len(sdims) > len(dims) + 1 or (len(sdims) == len(dims) + 1 and sdims[0] != 1):
        raise _Opaque  # a slope per sample
    sdims = ([1] * (len(dims) - len(sdims)) + sdims)[-len(dims) :] if dims else []
    if any(s not in (1, d) for s, d in zip(sdims, dims, strict=True)):
        raise _Opaque
    weights = [slope] if slope.stored and slope.is_float else []
    if slope.size == 1:
        opts: dict[str, Any] = {"num_parameters": 1}
    elif sdims[0] == slope.size:
        opts = {"num_parameters": slope.size}
    else:
        opts = {"shared_axes": [i + 1 for i, s in enumerate(sdims) if s == 1]}
    if not weights:
        raise _Opaque  # computed slopes: not a layer's parameters
    conv.emit(node, "prelu", opts, [x], weights)


def _elu(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    alpha = float(_attrs(node).get("alpha", 1.0))
    conv.emit(node, "elu", {"alpha": alpha}, [_act(ins[0])])


def _selu(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """Selu with its standard constants (PyTorch's SELU; others have no layer type)."""
    a = _attrs(node)
    alpha, gamma = (
        float(a.get("alpha", 1.67326319217681884765625)),
        float(a.get("gamma", 1.05070102214813232421875)),
    )
    if not (
        math.isclose(alpha, 1.6732632, rel_tol=1e-6)
        and math.isclose(gamma, 1.0507010, rel_tol=1e-6)
    ):
        raise _Opaque
    conv.emit(node, "selu", {}, [_act(ins[0])])


def _softplus(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """Softplus → softplus; ``x · tanh(softplus(x))`` (the TorchScript exporter's Mish) → mish;
    ``Where(x > t, x, softplus(x))`` (the dynamo exporter's PyTorch threshold) → softplus with
    that threshold."""
    x = _act(ins[0])
    source = node.input[0]
    tanh = _only_reader(conv, node.output[0], "Tanh")
    mul = tanh and _only_reader(conv, tanh.output[0], "Mul")
    if mul and sorted(mul.input) == sorted([source, tanh.output[0]]):
        conv.skip.update((id(tanh), id(mul)))
        conv.emit(mul, "mish", {}, [x], outputs=list(mul.output[:1]))
        conv.stats.fused["Softplus, Tanh and Mul read as one mish layer"] += 1
        return
    opts, end = _softplus_threshold(conv, node, source, node.output[0])
    conv.emit(node, "softplus", opts, [x], outputs=list(end.output[:1]))


def _softplus_threshold(
    conv: _Converter, node: Any, source: str, result: str, scaled: str = ""
) -> tuple[dict[str, Any], Any]:
    """``Where(Greater(scaled, t), source, result)`` after a softplus of ``scaled`` (β·x, or x
    itself): its threshold, and the node whose output is the layer's (the Where, skipped with
    its Greater; else ``node``)."""
    scaled = scaled or source
    where = _only_reader(conv, result, "Where")
    if where is None or list(where.input[1:]) != [source, result]:
        return {}, node
    greater = conv.producers.get(where.input[0])
    limit = greater and _other_const(conv, greater, scaled)
    if (
        greater is None
        or greater.op_type != "Greater"
        or greater.input[0] != scaled
        or limit is None
        or limit.size != 1
        or len(conv.consumers.get(greater.output[0], [])) != 1
    ):
        return {}, node
    threshold = float(conv._array(limit, greater).reshape(-1)[0])
    if not (math.isfinite(threshold) and threshold > 0):
        return {}, node
    conv.skip.update((id(where), id(greater)))
    conv.stats.fused["Softplus, Greater and Where read as one softplus layer"] += 1
    return {"threshold": threshold}, where


def _softplus_beta(conv: _Converter, mul: Any, x: _Act, beta: _Const) -> bool:
    """``Softplus(β·x) / β`` (PyTorch's Softplus with beta, as both exporters write it; the
    dynamo one adds its threshold as a Where): one softplus layer named after the Mul (True),
    or nothing (False)."""
    value = float(conv._array(beta, mul).reshape(-1)[0])
    readers = conv.consumers.get(mul.output[0], [])
    soft = next((r for r in readers if r is not None and r.op_type == "Softplus"), None)
    if soft is None:
        return False
    div = _only_reader(conv, soft.output[0], "Div")
    divisor = div and _other_const(conv, div, soft.output[0])
    if (
        not div
        or divisor is None
        or divisor.size != 1
        or div.input[0] != soft.output[0]
        or not (math.isfinite(value) and value > 0)
        or float(conv._array(divisor, div).reshape(-1)[0]) != value
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


def _lrn(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """LRN → lrn (ONNX's alpha is PyTorch's: both divide it by the size)."""
    x = _act(ins[0])
    a = _attrs(node)
    opts = {
        "size": int(a["size"]),
        "alpha": float(a.get("alpha", 1e-4)),
        "beta": float(a.get("beta", 0.75)),
        "k": float(a.get("bias", 1.0)),
    }
    conv.emit(node, "lrn", opts, [x])


def _depth_to_space(conv: _Converter, node: Any, ins: list[_Value]) -> None:
    """DepthToSpace (DCR, CRD) → pixel_shuffle; SpaceToDepth (DCR order) → pixel_unshuffle."""
    x = _act(ins[0])
    a = _attrs(node)
    if node.op_type == "DepthToSpace":
        mode = str(a.get("mode", "DCR")).lower()
        conv.emit(node, "pixel_shuffle", {"factor": int(a["blocksize"]), "mode": mode}, [x])
    else:
        conv.emit(node, "pixel_unshuffle", {"factor": int(a["blocksize"]), "mode": "dcr"}, [x])


_HANDLERS: dict[str, Callable[[_Converter, Any, list[_Value]], None]] = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "GlobalAveragePool": _global_pool,
    "GlobalMaxPool": _global_pool,
    "Relu": _same_shape("relu"),
    "Clip": _clip,
    "LeakyRelu": _leaky_relu,
    "Sigmoid": _gated("silu", "sigmoid"),
    "HardSigmoid": _gated("hardswish", "hardsigmoid"),
    "HardSwish": _same_shape("hardswish"),
    "Tanh": _same_shape("tanh"),
    "Softmax": _softmax,
    "Gelu": _same_shape("gelu"),
    "Elu": _elu,
    "Selu": _selu,
    "Softplus": _softplus,
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
