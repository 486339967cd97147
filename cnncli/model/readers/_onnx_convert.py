"""The walk over an ONNX graph: values, constants, layers, and every shape checked.

:class:`Converter` reads the initializers and inputs, asks ONNX shape inference for its own
shapes, then takes the nodes in file order (ONNX requires them sorted): constant-only nodes are
folded (:mod:`._onnx_fold`), the others handed to their operator's mapping
(:mod:`._onnx_ops`), which emits rows through :meth:`Converter.emit` - the one place a layer's
shape is computed with cnncli's arithmetic and compared with ONNX's, and its parameters with
the weights the file holds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnncli.errors import CnnCliError, ModelError, as_model_key
from cnncli.model.layers import LAYER_TYPES, LayerOut, TShape, canonical_options, compute, show
from cnncli.model.readers import ReadOptions, unique_name
from cnncli.model.readers._onnx_branches import Branch, batch_free, branch_of
from cnncli.model.readers._onnx_fold import FOLDABLE, fold, np_lib
from cnncli.model.readers._onnx_names import dynamo_path, sanitize, torchscript_path
from cnncli.model.readers._onnx_ops import HANDLERS, takes_last
from cnncli.model.readers._onnx_proto import FLOAT_TYPES
from cnncli.model.readers._onnx_values import (
    CTX,
    DEFAULT_DOMAINS,
    INTERNAL,
    PROBE_BATCH,
    Act,
    Const,
    Opaque,
    Value,
    attrs,
    show_dims,
    unknown,
    vi_dims,
)
from cnncli.outputs import describe_os_error

#: External tensors of at most this many numbers (floats, integers) are read at once: shape
#: constants and scales that shape inference and folding may need; weights are not.
_SMALL, _SMALL_INTEGERS = 64, 4096
#: How many nodes back :meth:`Converter.lookahead` follows a chain of constant arithmetic.
_AHEAD = 64


@dataclass
class Stats:
    """What the conversion did, for the notes."""

    folded: Counter[str] = field(default_factory=Counter)
    derived: Counter[str] = field(default_factory=Counter)
    fused: Counter[str] = field(default_factory=Counter)
    checked: int = 0
    unchecked: int = 0
    split_pools: int = 0
    channels_last: int = 0
    opaque_params: int = 0
    #: If nodes replaced by the branch their condition takes (over every reading).
    branches: int = 0


class Converter:
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
        self.opset = next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), 1)
        self.values: dict[str, Value] = {}
        self.layers: list[dict[str, Any]] = []
        self.inputs: dict[str, list[int]] = {}
        self.tensor_of: dict[str, str] = {}
        self.taken: set[str] = set()
        self.batch_value = 1
        self.batch_symbol: str | None = None
        self.stats = Stats()
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
        #: id(If) → the branch it takes, when its condition is known (see _onnx_branches).
        self.branches: dict[int, Branch] = {}

    # ---------------------------------------------------------------- setup

    def run(self) -> dict[str, Any] | None:
        """The model data; None when ``If`` nodes took a branch (:attr:`branches`): the graph
        is to be read again with the branches in it (:func:`._onnx_branches.with_branches`)."""
        self._read_initializers()
        self._read_inputs()
        self.inferred = self._infer()
        self._index()
        for node in self.graph.node:
            if id(node) in self.skip:
                continue
            try:
                self._node(node)
            except ModelError:
                if not self.branches:
                    raise
                return None  # shapes past a branch are ONNX's to give: read again first
        if self.branches:
            return None
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
            self.values[t.name] = Const(t.name, dims, t.data_type, tensor=t, stored=True)
            if t.data_location != self.onnx.TensorProto.EXTERNAL:
                continue
            self.external[location_of(t)] += 1
            small = _SMALL if t.data_type in FLOAT_TYPES else _SMALL_INTEGERS
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
            self.values[v.name] = Const(
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
            name = self._unique(sanitize(vi.name) or "input")
            batch = dims[0] if isinstance(dims[0], str) or dims[0] > 0 else "?"
            if isinstance(batch, str):
                self.batch_symbol = batch
                self.batch_value = PROBE_BATCH
            else:
                self.batch_value = batch
            per_sample = [int(d) for d in dims[1:]]
            self.inputs[name] = per_sample
            self.values[vi.name] = Act(name, TShape(per_sample[0], tuple(per_sample[1:])))

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
                f"{self.label}: input {show(vi.name)} has {len(dims)} axes {show_dims(dims)}; "
                "cnncli reads inputs of 2 to 5 axes: batch, channels and 0 to 3 sizes"
            )
        if given is not None:
            dims = self._apply_input(vi, dims, given)
        open_axes = [d for d in dims[1:] if not isinstance(d, int) or d < 1]
        if open_axes:
            hint = ",".join(str(d) if isinstance(d, int) and d > 0 else "?" for d in dims[1:])
            raise ModelError(
                f"{self.label}: input {show(vi.name)} has open sizes {show_dims(dims)}; give "
                f"its shape without the batch, {hint}, with {{opt:input}} (e.g. "
                f"{{opt:input}} {example(dims)})"
            )
        self._set_input_dims(tt, dims)
        return dims

    def _apply_input(
        self, vi: Any, dims: list[int | str], given: tuple[int, ...]
    ) -> list[int | str]:
        if len(given) != len(dims) - 1:
            raise ModelError(
                f"{self.label}: {{opt:input}} {','.join(map(str, given))} has {len(given)} sizes, "
                f"but input {show(vi.name)} {show_dims(dims)} has {len(dims) - 1} without the "
                "batch"
            )
        for fixed, wanted in zip(dims[1:], given, strict=True):
            if isinstance(fixed, int) and fixed > 0 and fixed != wanted:
                raise ModelError(
                    f"{self.label}: the file fixes input {show(vi.name)} to "
                    f"{show_dims(dims[1:])}; {{opt:input}} {','.join(map(str, given))} differs "
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
        return dynamo_path(node) or torchscript_path(node.name) or []

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
                assert isinstance(tensor, Const)
                raise ModelError(
                    f"{self.label}: the shapes depend on constants such as {show(name)}, stored "
                    f"in {show(location_of(tensor.tensor))}, which is missing; put that file next "
                    "to the model"
                ) from None
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ModelError(
                f"{self.label}: ONNX shape inference (onnx {onnx.__version__}) refuses the graph "
                f"({shorten(first)}); the file is damaged, or newer than this onnx reads "
                "(pip install -U onnx)"
            ) from None
        out: dict[str, tuple[int | str | None, ...] | None] = {}
        for vi in [*inferred.graph.value_info, *inferred.graph.output]:
            out[vi.name] = vi_dims(vi)
        return out

    # ---------------------------------------------------------------- nodes

    def _node(self, node: Any) -> None:
        ins = [self._value(name, node) for name in node.input]
        op = node.op_type
        default = node.domain in DEFAULT_DOMAINS
        if op == "Constant" and default:
            self._constant(node)
            return
        if op == "If" and default and self._take_branch(node, ins):
            return
        acts = [v for v in ins if isinstance(v, Act)]
        if not acts:
            self._fold_node(node, ins)
            return
        handler = HANDLERS.get(op) if default else None
        if any(a.last for a in acts) and not (default and takes_last(self, node, ins)):
            ins = [self.materialize(v) for v in ins]
            acts = [v for v in ins if isinstance(v, Act)]
        try:
            if handler is None or any(unknown(a.shape) for a in acts):
                raise Opaque  # sizes known only at run time: only ONNX's shape is known
            handler(self, node, ins)
        except Opaque:
            self._opaque(node, ins)

    def _take_branch(self, node: Any, ins: list[Value]) -> bool:
        """An If whose condition is a constant: its branch's nodes read now, in its place
        (True); False for a condition known only when the model runs."""
        cond = ins[0] if ins else None
        if not isinstance(cond, Const) or (cond.array is None and cond.tensor is None):
            return False
        value = self.array(cond, node)
        if value.size != 1:
            return False
        if self.batch_symbol is not None and not batch_free(self, node, value):
            raise self.error(
                node,
                f"its condition depends on the batch size, which the file leaves open "
                f"({self.batch_symbol!r}): the branch taken is known only when the model runs; "
                "export the model with a fixed batch",
            )
        branch = branch_of(self.onnx, node, bool(value.reshape(-1)[0]))
        self.branches[id(node)] = branch
        for t in branch.initializers:
            dims = tuple(int(d) for d in t.dims)
            self.values[t.name] = Const(t.name, dims, t.data_type, tensor=t, stored=True)
        for inner in branch.nodes:
            for name in inner.output:
                self.producers[name] = inner
        for inner in branch.nodes:
            self._node(inner)
        return True

    def lookahead(self, name: str, depth: int = 0) -> Value:
        """A tensor the walk has not reached yet, when it can be computed now: a Constant node
        later in the file, or arithmetic on constants and on the shapes of layers read already
        (exporters put a pattern's shape arithmetic anywhere before its use). For matching
        patterns; None when it cannot be known yet."""
        producer = self.producers.get(name)
        if name in self.values or producer is None or depth > _AHEAD:
            return self.values.get(name)
        if producer.domain not in DEFAULT_DOMAINS or id(producer) in self.skip:
            return None
        if producer.op_type == "Constant":
            self._constant(producer)
            return self.values.get(name)
        ins = [self.lookahead(i, depth + 1) if i else None for i in producer.input]
        if any(v is None for i, v in zip(producer.input, ins, strict=True) if i):
            return None
        try:
            if producer.op_type in ("Shape", "Size") and isinstance(ins[0], Act):
                HANDLERS[producer.op_type](self, producer, ins)
            elif any(isinstance(v, Act) for v in ins) or self._fold(producer, ins):
                return None
        except Opaque:
            return None
        self.skip.add(id(producer))  # read: the walk passes it by
        return self.values.get(name)

    def _value(self, name: str, node: Any) -> Value:
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
        np = np_lib()
        a = attrs(node)
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
        self.set_const(node.output[0], value)

    def set_const(self, name: str, value: Any) -> None:
        from onnx import helper

        np = np_lib()
        value = np.asarray(value)
        dtype: int
        try:
            dtype = int(helper.np_dtype_to_tensor_dtype(value.dtype))
        except (KeyError, TypeError, ValueError):
            dtype = 0
        self.values[name] = Const(name, tuple(int(d) for d in value.shape), dtype, array=value)

    def _fold_node(self, node: Any, ins: list[Value]) -> None:
        """A node that reads constants only: computed now (shape arithmetic), not a layer."""
        op = node.op_type
        if op == "Identity" and isinstance(ins[0], Const):
            self.values[node.output[0]] = ins[0]  # TorchScript's shared weights: no copy
            return
        why = self._fold(node, ins)
        if why:
            # A weight computed from constants (DequantizeLinear of int8 weights): its dims
            # are enough for a layer; its numbers, if a layer needs them, are an error then.
            self._derived(node, why)

    def _fold(self, node: Any, ins: list[Value]) -> str:
        """``node``'s outputs computed from its constant inputs: "" when done, else why not."""
        op = node.op_type
        try:
            if op not in FOLDABLE or node.domain not in DEFAULT_DOMAINS or not ins:
                raise ModelError(f"cnncli does not evaluate {op}")
            arrays = [self.array(v, node) if isinstance(v, Const) else None for v in ins]
            results = fold(op, attrs(node), arrays, self.opset)
        except (ValueError, TypeError, IndexError, ArithmeticError, ModelError) as err:
            return shorten(str(err)) or type(err).__name__
        for name, value in zip(node.output, results, strict=False):
            self.set_const(name, value)
        self.stats.folded[op] += 1
        return ""

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
            self.values[name] = Const(name, tuple(sizes), 0, reason=why)
        self.stats.derived[node.op_type] += 1

    def array(self, value: Const, node: Any) -> Any:
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

    def _external_array(self, value: Const, node: Any) -> Any:
        raw = self._read_external(value.tensor)
        if raw is None:
            raise ModelError(
                f"{self.label}: node {show(node.name or node.op_type)} ({node.op_type}) needs the "
                f"values of {show(value.name)}, stored in {show(location_of(value.tensor))}, which "
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
        where = self.external_file(info.get("location", ""))
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

    def external_file(self, location: str) -> Path | None:
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
            base = sanitize(node.name) if node.name and not node.name.startswith("/") else ""
            base = base or op.lower()
        elif dotted in self.containers:
            base = sanitize(f"{dotted}_{op.lower()}")  # a functional op in a module's forward
        else:
            base = sanitize(dotted)
        return self._unique(base or op.lower())

    def _unique(self, base: str) -> str:
        return unique_name(base, self.taken)

    def emit(
        self,
        node: Any,
        kind: str,
        opts: dict[str, Any],
        inputs: list[Act],
        weights: Iterable[Const] = (),
        outputs: list[str] | None = None,
    ) -> LayerOut:
        """Add one layer: its shape computed now with cnncli's rule and checked against ONNX's,
        its parameters against the weights the file holds."""
        name = self._name(node, kind)
        lt = LAYER_TYPES[kind]
        shapes = [a.shape for a in inputs]
        try:
            full = canonical_options(lt, opts)
            out = compute(lt, full, shapes, [a.ref for a in inputs], CTX)
        except CnnCliError as err:
            raise self.error(node, err.worded(as_model_key)) from None
        weights = list(weights)
        held = sum(w.size for w in weights)
        if weights and out.trainable + out.non_trainable != held:
            raise self.error(
                node,
                f"cnncli counts {out.trainable + out.non_trainable:,} parameters for {kind}, the "
                f"file holds {held:,} ({', '.join(show_dims(w.dims) for w in weights)})",
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
        # Layers that keep the layout (activations, layernorm, a Linear over the channels)
        # on a channels-last tensor give one (see Act).
        last = bool(inputs) and all(a.last for a in inputs)
        for i, (tensor, shape) in enumerate(zip(outs, pieces, strict=False)):
            ref = f"{name}.{i}" if out.outputs else name
            self.check(node, tensor, shape, last)
            self.values[tensor] = Act(ref, shape, last, (node, tensor))
        if not outs[0].startswith(INTERNAL) and not last:
            self.tensor_of[name] = outs[0]
        if last:
            self.stats.channels_last += 1
        return out

    def materialize(self, value: Value) -> Value:
        """A channels-last tensor as itself: a permute row (see :class:`Act`)."""
        if not isinstance(value, Act) or not value.last or value.origin is None:
            return value
        node, tensor = value.origin
        dims = [0, *range(2, 2 + len(value.shape.spatial)), 1]
        self.emit(node, "permute", {"dims": dims}, [Act(value.ref, value.shape)], outputs=[tensor])
        return self.values[tensor]

    def check(self, node: Any, tensor: str, shape: TShape, last: bool = False) -> None:
        """cnncli's shape against ONNX shape inference's (sizes it leaves open are skipped);
        ``last``: ONNX's tensor has the channels last."""
        if tensor.startswith(INTERNAL):
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
            raise self.error(
                node,
                f"cnncli computes the shape {show_dims(ours)} for {show(tensor)}, ONNX shape "
                f"inference {show_dims(theirs)}; one of them is wrong (please report it, with "
                "the file)",
            )
        self.stats.checked += 1

    def error(self, node: Any, message: str) -> ModelError:
        return ModelError(
            f"{self.label}: node {show(node.name or node.op_type)} ({node.op_type}): {message}"
        )

    def _opaque(self, node: Any, ins: list[Value]) -> None:
        """An operator cnncli does not express: ONNX's shape, its float tensors as weights."""
        acts = [v for v in ins if isinstance(v, Act)]
        weights = [
            v for v in ins if isinstance(v, Const) and v.stored and v.is_float and v.size > 1
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
            self.values[tensor] = Act(name, dims)
            self.tensor_of[name] = tensor
        for w in weights:
            self.weight_uses[w.name] += 1

    def _opaque_shape(self, node: Any, tensor: str) -> list[int]:
        theirs = self.inferred.get(tensor)
        if theirs is None:
            raise self.error(
                node,
                f"cnncli does not know this operator, and ONNX shape inference gives no shape "
                f"for its output {show(tensor)}; cnncli cannot go on past it",
            )
        dims = list(theirs)
        if dims and (dims[0] == self.batch_symbol or dims[0] == self.batch_value):
            dims = dims[1:]  # the batch, as everywhere else
        if len(dims) > 5:
            raise self.error(
                node,
                f"cnncli does not know this operator, and its output {show(tensor)} has "
                f"{len(dims)} axes besides the batch; cnncli's shapes hold at most 5",
            )
        return [d if isinstance(d, int) and d > 0 else 0 for d in dims] or [1]


def shorten(text: str, width: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def location_of(tensor: Any) -> str:
    return next((e.value for e in tensor.external_data if e.key == "location"), "")


def example(dims: list[int | str]) -> str:
    sizes = [d if isinstance(d, int) and d > 0 else 224 for d in dims[1:]]
    return ",".join(map(str, sizes))
