"""PyTorch operations → layers of the model format, for :mod:`cnncli.model.readers.torch_module`.

:class:`Ops` turns one call — of a ``torch.nn`` module, or of a function or method on tensors —
into a layer with the options cnncli's layer type takes (a ``Conv2d``'s kernel, stride, padding…),
and accounts for the parameters and buffers it holds, each counted once. What has no layer type
in cnncli becomes an ``opaque`` layer: PyTorch's output shape and the parameters it holds, its
work not counted.

Tensors are tracked as :class:`T`: the layer that holds them and how PyTorch's axes map onto
cnncli's (channels first). A ``permute`` changes only that map, so ConvNeXt's channels-last
LayerNorm and Linear read as a layernorm over the channels and dense layers over the channels
(``axis: channels``), as cnncli's zoo writes ConvNeXt; where a layer needs the axes in PyTorch's order a ``permute`` layer is written.

torch is never imported here: the readers pass it in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cnncli.errors import ModelError
from cnncli.model.readers import unique_name

#: The name the model data gives the model input (inside a block: the block's input).
INPUT = "input"
#: Layer names the model format accepts.
_WORD = re.compile(r"[A-Za-z_][\w\-]*")
#: Buffers PyTorch keeps that are counters, not statistics (not counted, as for YAML models).
_SKIPPED_BUFFERS = ("num_batches_tracked",)

Tensors = list[tuple[str, Any]]


@dataclass(frozen=True)
class T:
    """A tensor of the forward pass as the model data holds it.

    ``ref`` is the layer holding it (``input``, a layer, or a split's ``NAME.i``); ``shape`` is
    PyTorch's shape without the batch; PyTorch's axis ``i`` is axis ``perm[i]`` of cnncli's
    shape (channels first).
    """

    ref: str
    shape: tuple[int, ...]
    perm: tuple[int, ...]

    @property
    def plain(self) -> bool:
        return self.perm == tuple(range(len(self.shape)))

    def dims(self) -> tuple[int, ...]:
        """The shape in cnncli's order."""
        out = [0] * len(self.shape)
        for i, p in enumerate(self.perm):
            out[p] = self.shape[i]
        return tuple(out)


def plain_tensor(ref: str, shape: tuple[int, ...]) -> T:
    return T(ref, shape, tuple(range(len(shape))))


@dataclass(frozen=True)
class P:
    """A parameter or buffer read directly (``get_attr``): ConvNeXt's layer scale."""

    name: str
    tensor: Any
    #: False for a constant made in forward (counted nowhere).
    weight: bool = True


def _weights_of(found: list[Any]) -> Tensors:
    return [(p.name, p.tensor) for p in found if isinstance(p, P) and p.weight]


@dataclass
class Entry:
    """One layer of the model data, with what PyTorch says about it."""

    name: str
    spec: dict[str, Any]
    inputs: list[str]
    #: PyTorch's output shape(s) in cnncli's order (a split: one per output).
    shape: tuple[int, ...] | tuple[tuple[int, ...], ...]
    #: PyTorch's parameters + buffers of the layer, and how many of them are trainable.
    params: int
    trainable: int
    #: The modules it runs inside, outermost first: (call key, qualified name, class name).
    scope: tuple[tuple[str, str, str], ...]
    #: The name it would like inside its block (a module's path, a function's name).
    local: str


@dataclass
class Net:
    """What a reader found: the layers, notes, and the parameters they account for."""

    entries: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Qualified names of the parameters and buffers counted (each once).
    counted: set[str] = field(default_factory=set)
    #: The model's output(s).
    outputs: list[str] = field(default_factory=list)
    #: Operations cnncli has no layer type for (``opaque`` layers), and how many.
    opaque: dict[str, int] = field(default_factory=dict)
    #: Modules called more than once (their weights counted at the first call).
    shared: dict[str, int] = field(default_factory=dict)
    #: Layers holding trainable and frozen numbers together (counted as trainable).
    mixed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Site:
    """Where a layer comes from: its name, the name it would like in its block, the
    parameters and buffers of the module called (empty for functions)."""

    name: str
    local: str
    tensors: Tensors = field(default_factory=list)


@dataclass(frozen=True)
class Args:
    """A function call's arguments (tensors as :class:`T`, parameters as :class:`P`)."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def get(self, i: int, key: str, default: Any = None) -> Any:
        """Argument ``i`` (or keyword ``key``), as PyTorch's signature places it."""
        if key in self.kwargs:
            return self.kwargs[key]
        return self.args[i] if len(self.args) > i else default

    @property
    def x(self) -> Any:
        return self.args[0] if self.args else self.kwargs.get("input")

    def values(self) -> Iterator[Any]:
        """Every value inside the arguments (lists and tuples opened)."""
        return flat([*self.args, *self.kwargs.values()])


def flat(values: Any) -> Iterator[Any]:
    stack: list[Any] = list(values)[::-1]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, tuple | list):
            stack.extend(list(item)[::-1])
        else:
            yield item


def own_tensors(module: Any, prefix: str) -> Tensors:
    """A module's parameters and counted buffers (recursively), with qualified names."""
    out = [(f"{prefix}.{n}" if prefix else n, p) for n, p in module.named_parameters()]
    out += [
        (f"{prefix}.{n}" if prefix else n, b)
        for n, b in module.named_buffers()
        if n.rsplit(".", 1)[-1] not in _SKIPPED_BUFFERS
    ]
    return out


def _ints(value: Any) -> list[int]:
    return [int(v) for v in value] if isinstance(value, tuple | list) else [int(value)]


def _axis(dim: Any, rank: int) -> int | None:
    """A PyTorch dim (the batch is 0, negatives count from the end) as an axis of the shape
    without the batch; None for the batch itself or a dim out of range."""
    if not isinstance(dim, int) or isinstance(dim, bool):
        return None
    d = dim + rank + 1 if dim < 0 else dim
    return d - 1 if 1 <= d <= rank else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _whole_axis(key: Any) -> bool:
    """An index that keeps an axis whole (``:``, ``...``) or adds one (``None``)."""
    return key is None or key is Ellipsis or key == slice(None)


def _shape(tensor: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in tensor.shape[1:])


#: Activations by PyTorch's module class or function name → cnncli's type.
ACTIVATIONS = {
    **dict.fromkeys(("ReLU", "relu", "relu_"), "relu"),
    **dict.fromkeys(("ReLU6", "relu6"), "relu6"),
    **dict.fromkeys(("Sigmoid", "sigmoid", "sigmoid_"), "sigmoid"),
    **dict.fromkeys(("Tanh", "tanh", "tanh_"), "tanh"),
    **dict.fromkeys(("GELU", "gelu"), "gelu"),
    **dict.fromkeys(("SiLU", "silu", "silu_"), "silu"),
    **dict.fromkeys(("Hardswish", "hardswish", "hardswish_"), "hardswish"),
    **dict.fromkeys(("Hardsigmoid", "hardsigmoid", "hardsigmoid_"), "hardsigmoid"),
    **dict.fromkeys(("SELU", "selu", "selu_"), "selu"),
    **dict.fromkeys(("Mish", "mish"), "mish"),
}
#: Functions and methods that hand their input on unchanged as far as shapes go (no row).
_PASS_THROUGH = ("contiguous", "clone", "detach", "float", "to", "type_as", "cpu")
_UPSAMPLE_MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear")
#: Views that keep the values in order (a ``reshape`` row, or none when nothing changes).
_VIEWS = ("view", "reshape", "unsqueeze", "squeeze", "unflatten", "view_as", "reshape_as")
_COMMUTATIVE = ("add", "iadd", "add_", "radd", "mul", "imul", "mul_", "rmul")
_JOINS = ("cat", "concat", "concatenate")
#: Functions whose first argument is a list or tuple of tensors.
_LIST_FIRST = (*_JOINS, "getitem")

Handler = Callable[..., Any]


class Emitter:
    """Names, layers, parameter accounting, ``opaque`` rows and axis orders."""

    def __init__(self, torch: Any, taken: set[str]) -> None:
        self.torch = torch
        self.net = Net()
        self.taken = set(taken) | {INPUT}
        #: Set by the reader before each call: the modules it runs inside, and its site.
        self.scope: tuple[tuple[str, str, str], ...] = ()
        self.site = Site("", "")

    def fresh(self, base: str) -> str:
        """A layer name not used yet (``base``, ``base_1``, …)."""
        base = base if _WORD.fullmatch(base) else "_" + re.sub(r"\W", "_", base)
        return unique_name(base, self.taken)

    def _account(self, tensors: Tensors, buffers_trainable: bool = False) -> tuple[int, int]:
        """Count the parameters and buffers not counted yet: (all, trainable) as cnncli will
        count them. A layer's parameters are all trainable or all frozen in cnncli (an opaque
        layer's buffers count with its parameters): a layer that mixes them is counted as
        trainable, and noted."""
        new = [(n, t) for n, t in tensors if n not in self.net.counted]
        self.net.counted.update(n for n, _ in new)
        total = sum(int(t.numel()) for _, t in new)
        params = [t for _, t in new if isinstance(t, self.torch.nn.Parameter)]
        weights = sum(int(t.numel()) for t in params)
        trainable = sum(int(t.numel()) for t in params if t.requires_grad)
        whole = total if buffers_trainable else weights
        if 0 < trainable < whole:
            self.net.mixed.append(self.site.local)
            return total, whole
        return total, trainable

    def _add(self, entry: Entry) -> None:
        self.net.entries.append(entry)

    def emit(
        self,
        spec: dict[str, Any],
        inputs: list[T],
        out: Any,
        perm: tuple[int, ...] | None = None,
        tensors: Tensors | None = None,
    ) -> T:
        """The current site's layer reading ``inputs``; ``out`` is PyTorch's output, its axes
        mapped onto cnncli's by ``perm`` (default: the same order). Returns the new tensor."""
        tensors = self.site.tensors if tensors is None else tensors
        if tensors and all(n in self.net.counted for n, _ in tensors):
            # A module called again: its weights are counted once, at its first call.
            kind = spec["type"]
            self.net.shared[kind] = self.net.shared.get(kind, 0) + 1
            return self.opaque(f"{kind} (weights shared)", inputs, out, [])
        total, trainable = self._account(tensors)
        if (
            total
            and not trainable
            and any(isinstance(t, self.torch.nn.Parameter) for _, t in tensors)
        ):
            spec = {**spec, "trainable": False}  # requires_grad=False
        shape = _shape(out)
        t = T(self.site.name, shape, perm if perm is not None else tuple(range(len(shape))))
        self._add(
            Entry(
                t.ref,
                spec,
                [i.ref for i in inputs],
                t.dims(),
                total,
                trainable,
                self.scope,
                self.site.local,
            )
        )
        return t

    def emit_split(self, spec: dict[str, Any], x: T, outs: Any) -> tuple[T, ...]:
        """A split along the channels of a plain tensor: its outputs read as ``NAME.i``."""
        name = self.site.name
        shapes = tuple(_shape(o) for o in outs)
        self._add(Entry(name, spec, [x.ref], shapes, 0, 0, self.scope, self.site.local))
        return tuple(plain_tensor(f"{name}.{i}", s) for i, s in enumerate(shapes))

    def opaque(self, op: str, inputs: list[T], out: Any, tensors: Tensors | None = None) -> T:
        """A layer cnncli has no type for: PyTorch's output shape and the parameters it holds;
        its work is not counted (the ``opaque`` type says so in the table and the totals)."""
        ins = [self.plain(i) for i in inputs]
        total, trainable = self._account(
            self.site.tensors if tensors is None else tensors, buffers_trainable=True
        )
        shape = _shape(out)
        if not shape:
            raise ModelError(
                f"{op} ({self.site.local}) gives one number per sample; cnncli's layers keep at "
                "least one axis besides the batch"
            )
        spec: dict[str, Any] = {"type": "opaque", "op": op, "shape": list(shape)}
        if total:
            spec["params"] = total
            if not trainable:
                spec["trainable"] = False
        self.net.opaque[op] = self.net.opaque.get(op, 0) + 1
        name = self.site.name
        self._add(
            Entry(
                name,
                spec,
                [i.ref for i in ins],
                shape,
                total,
                trainable,
                self.scope,
                self.site.local,
            )
        )
        return plain_tensor(name, shape)

    def _permute_layer(self, x: T, order: list[int]) -> T:
        """A ``permute`` layer putting cnncli's axes in ``order`` (0-based, no batch)."""
        name = self.fresh(f"{x.ref.replace('.', '_')}_permute")
        dims = x.dims()
        spec = {"type": "permute", "dims": [i + 1 for i in order]}  # the batch is axis 0
        shape = tuple(dims[i] for i in order)
        self._add(Entry(name, spec, [x.ref], shape, 0, 0, self.scope, "permute"))
        return T(name, x.shape, tuple(order.index(p) for p in x.perm))

    def plain(self, x: T) -> T:
        """``x`` with cnncli's axes in PyTorch's order (a ``permute`` layer when they differ)."""
        return x if x.plain else self._permute_layer(x, list(x.perm))

    def channels_at(self, x: T, axis: int) -> T:
        """``x`` with cnncli's channels on PyTorch's ``axis`` (a ``permute`` layer moving that
        axis first when they are not)."""
        if x.perm[axis] == 0:
            return x
        p = x.perm[axis]
        return self._permute_layer(x, [p] + [i for i in range(len(x.shape)) if i != p])


class Ops(Emitter):
    """PyTorch modules and tensor functions → layers of the model format."""

    # -- modules ---------------------------------------------------------------------------
    def module(self, mod: Any, ins: list[T], out: Any) -> Any:
        """One call of a leaf module at the current site (``opaque`` when cnncli has no type)."""
        kind = type(mod).__name__
        if isinstance(out, self.torch.Tensor) and len(ins) == 1:
            for handler in self._module_handlers(mod, kind):
                result = handler(mod, ins[0], out)
                if result is not None:
                    return result
        return self.opaque_outputs(kind, ins, out)

    def _module_handlers(self, mod: Any, kind: str) -> list[Handler]:
        nn = self.torch.nn
        table: tuple[tuple[Any, Handler], ...] = (
            (nn.modules.conv._ConvNd, self._conv),
            (nn.Linear, lambda m, x, o: self._dense(x, o, int(m.out_features), m.bias is not None)),
            (nn.modules.batchnorm._BatchNorm, self._batchnorm),
            (nn.LayerNorm, self._layernorm),
            ((nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d), self._maxpool),
            ((nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d), self._avgpool),
            (nn.modules.pooling._AdaptiveAvgPoolNd, self._adaptive("adaptive_avgpool")),
            (nn.modules.pooling._AdaptiveMaxPoolNd, self._adaptive("adaptive_maxpool")),
            (nn.Upsample, lambda m, x, o: self._upsample(x, o, str(m.mode))),
            (nn.modules.padding._ConstantPadNd, self._pad_module),
            (nn.Flatten, lambda m, x, o: self._flatten(x, o, m.start_dim, m.end_dim)),
            (nn.Unflatten, lambda m, x, o: self._reshape(x, o)),
            (nn.modules.dropout._DropoutNd, lambda m, x, o: self._dropout(x, o, float(m.p))),
            (nn.Identity, lambda m, x, o: self._unary(x, o, "identity")),
            (nn.LeakyReLU, self._leaky_relu_module),
            (nn.Softmax, lambda m, x, o: self._softmax(x, o, m.dim)),
            (nn.Hardtanh, lambda m, x, o: self._hardtanh(x, o, m.min_val, m.max_val)),
            (nn.ChannelShuffle, lambda m, x, o: self.channel_shuffle(x, o, int(m.groups))),
            (nn.GroupNorm, self._groupnorm),
            (nn.modules.instancenorm._InstanceNorm, self._instancenorm),
            (nn.PReLU, lambda m, x, o: self.prelu(x, o, m.weight)),
            (nn.ELU, lambda m, x, o: self._unary(x, o, "elu", alpha=float(m.alpha))),
            (nn.Softplus, lambda m, x, o: self.softplus(x, o, m.beta, m.threshold)),
            (nn.LocalResponseNorm, self._lrn),
            (nn.PixelShuffle, lambda m, x, o: self.pixel("pixel_shuffle", x, o, m.upscale_factor)),
            (
                nn.PixelUnshuffle,
                lambda m, x, o: self.pixel("pixel_unshuffle", x, o, m.downscale_factor),
            ),
        )
        found = [h for classes, h in table if isinstance(mod, classes)]
        if kind in ACTIVATIONS:
            found.append(lambda m, x, o: self._unary(x, o, ACTIVATIONS[kind]))
        return found

    def _conv(self, mod: Any, x: T, out: Any) -> T | None:
        nd = len(mod.kernel_size)
        x = self.plain(x)
        if len(x.shape) != nd + 1:
            return None
        spec: dict[str, Any] = {
            "type": f"{'convtranspose' if mod.transposed else 'conv'}{nd}d",
            "filters": int(mod.out_channels),
            "kernel": _ints(mod.kernel_size),
            "stride": _ints(mod.stride),
            "padding": mod.padding if isinstance(mod.padding, str) else _ints(mod.padding),
            "dilation": _ints(mod.dilation),
            "groups": int(mod.groups),
            "bias": mod.bias is not None,
        }
        if mod.transposed:
            spec["output_padding"] = _ints(mod.output_padding)
        return self.emit(spec, [x], out)

    def _dense(
        self, x: T, out: Any, units: int, bias: bool, tensors: Tensors | None = None
    ) -> T | None:
        """A Linear on the last axis: ``dense`` on a flat tensor; elsewhere cnncli's channels
        are brought to that axis and it is a ``dense`` over the channels at every position
        (``axis: channels``; ConvNeXt's MLP, as the zoo writes it, so a checkpoint's (out, in)
        weights fit)."""
        if len(x.shape) == 1:
            return self.emit(
                {"type": "dense", "units": units, "bias": bias}, [x], out, None, tensors
            )
        if len(x.shape) > 4:
            return None
        x = self.channels_at(x, len(x.shape) - 1)
        spec = {"type": "dense", "units": units, "bias": bias, "axis": "channels"}
        return self.emit(spec, [x], out, x.perm, tensors)

    def _batchnorm(self, mod: Any, x: T, out: Any) -> T | None:
        return self.batchnorm(x, out, mod.eps, mod.affine, mod.track_running_stats, mod.momentum)

    def batchnorm(
        self,
        x: T,
        out: Any,
        eps: float,
        affine: bool,
        stats: bool = True,
        momentum: float | None = None,
        tensors: Tensors | None = None,
    ) -> T:
        x = self.channels_at(x, 0)
        spec: dict[str, Any] = {
            "type": "batchnorm",
            "eps": float(eps),
            "affine": bool(affine),
            "track_running_stats": bool(stats),
        }
        # PyTorch's momentum is the new batch's weight; cnncli warns about a value above 0.5
        # as one written in Keras's convention, so only ordinary ones are carried over (no
        # number depends on it).
        if momentum is not None and 0 <= momentum <= 0.5:
            spec["momentum"] = float(momentum)
        return self.emit(spec, [x], out, x.perm, tensors)

    def _layernorm(self, mod: Any, x: T, out: Any) -> T | None:
        affine = bool(mod.elementwise_affine)
        if len(mod.normalized_shape) != 1 or (affine and mod.bias is None):
            return None
        return self.layernorm(x, out, affine, float(mod.eps))

    def layernorm(
        self, x: T, out: Any, affine: bool, eps: float, tensors: Tensors | None = None
    ) -> T:
        """A LayerNorm over the last axis: cnncli's layernorm over the channels."""
        x = self.channels_at(x, len(x.shape) - 1)
        return self.emit(
            {"type": "layernorm", "eps": eps, "affine": affine}, [x], out, x.perm, tensors
        )

    def _groupnorm(self, mod: Any, x: T, out: Any) -> T | None:
        return self.groupnorm(x, out, int(mod.num_groups), float(mod.eps), bool(mod.affine))

    def groupnorm(
        self, x: T, out: Any, groups: int, eps: float, affine: bool, tensors: Tensors | None = None
    ) -> T | None:
        """GroupNorm over PyTorch's channel axis (dim 1)."""
        if len(x.shape) < 1:
            return None
        x = self.channels_at(x, 0)
        spec = {"type": "groupnorm", "groups": groups, "eps": eps, "affine": affine}
        return self.emit(spec, [x], out, x.perm, tensors)

    def _instancenorm(self, mod: Any, x: T, out: Any) -> T | None:
        nd = int(type(mod).__name__[-2])
        if len(x.shape) != nd + 1:
            return None  # an unbatched call: its channels are not PyTorch's dim 1
        x = self.channels_at(x, 0)
        spec: dict[str, Any] = {
            "type": "instancenorm",
            "eps": float(mod.eps),
            "affine": bool(mod.affine),
            "track_running_stats": bool(mod.track_running_stats),
        }
        if mod.momentum is not None and 0 <= mod.momentum <= 1:
            spec["momentum"] = float(mod.momentum)
        return self.emit(spec, [x], out, x.perm)

    def prelu(self, x: T, out: Any, weight: Any, tensors: Tensors | None = None) -> T | None:
        """nn.PReLU / F.prelu: one slope, or one per channel (PyTorch's dim 1)."""
        n = int(weight.numel())
        if n == 1:
            return self.emit({"type": "prelu", "num_parameters": 1}, [x], out, x.perm, tensors)
        if weight.dim() != 1 or len(x.shape) < 1:
            return None
        x = self.channels_at(x, 0)
        spec = {"type": "prelu", "num_parameters": n}
        return self.emit(spec, [x], out, x.perm, tensors)

    def softplus(self, x: T, out: Any, beta: Any, threshold: Any) -> T | None:
        if not (_number(beta) and _number(threshold)) or beta <= 0 or threshold <= 0:
            return None
        return self._unary(x, out, "softplus", beta=float(beta), threshold=float(threshold))

    def _lrn(self, mod: Any, x: T, out: Any) -> T | None:
        return self.lrn(x, out, mod.size, mod.alpha, mod.beta, mod.k)

    def lrn(self, x: T, out: Any, size: Any, alpha: Any, beta: Any, k: Any) -> T | None:
        """LocalResponseNorm across PyTorch's channel axis (dim 1)."""
        if len(x.shape) < 2 or not all(map(_number, (alpha, beta, k))):
            return None
        x = self.channels_at(x, 0)
        spec = {
            "type": "lrn",
            "size": int(size),
            "alpha": float(alpha),
            "beta": float(beta),
            "k": float(k),
        }
        return self.emit(spec, [x], out, x.perm)

    def pixel(self, kind: str, x: T, out: Any, factor: Any) -> T | None:
        """PixelShuffle / PixelUnshuffle of a (C, H, W) tensor (PyTorch's order, crd)."""
        x = self.plain(x)
        if len(x.shape) != 3:
            return None
        return self.emit({"type": kind, "factor": int(factor), "mode": "crd"}, [x], out)

    def _maxpool(self, mod: Any, x: T, out: Any) -> T | None:
        if mod.return_indices:
            return None
        nd = int(type(mod).__name__[-2])
        return self.pool(
            "max", nd, x, out, mod.kernel_size, mod.stride, mod.padding, mod.dilation, mod.ceil_mode
        )

    def _avgpool(self, mod: Any, x: T, out: Any) -> T | None:
        nd = int(type(mod).__name__[-2])
        return self.pool(
            "avg", nd, x, out, mod.kernel_size, mod.stride, mod.padding, 1, mod.ceil_mode
        )

    def pool(
        self,
        which: str,
        nd: int,
        x: T,
        out: Any,
        kernel: Any,
        stride: Any,
        padding: Any,
        dilation: Any,
        ceil: Any,
    ) -> T | None:
        x = self.plain(x)
        if len(x.shape) != nd + 1:
            return None
        spec: dict[str, Any] = {
            "type": f"{which}pool{nd}d",
            "kernel": _ints(kernel),
            "stride": _ints(stride or kernel),
            "padding": _ints(padding),
            "ceil_mode": bool(ceil),
        }
        if which == "max":
            spec["dilation"] = _ints(dilation)
        return self.emit(spec, [x], out)

    def _adaptive(self, kind: str) -> Handler:
        return lambda mod, x, out: self.adaptive_pool(kind, x, out)

    def adaptive_pool(self, kind: str, x: T, out: Any) -> T | None:
        x = self.plain(x)
        if len(x.shape) < 2 or len(out.shape) != len(x.shape) + 1:
            return None
        return self.emit({"type": kind, "output_size": list(_shape(out)[1:])}, [x], out)

    def _upsample(self, x: T, out: Any, mode: str) -> T | None:
        x = self.plain(x)
        if mode not in _UPSAMPLE_MODES or len(x.shape) < 2:
            return None
        return self.emit(
            {"type": "upsample", "size": list(_shape(out)[1:]), "mode": mode}, [x], out
        )

    def _pad_module(self, mod: Any, x: T, out: Any) -> T | None:
        return self._pad(x, out, _ints(mod.padding), float(mod.value))

    def _pad(self, x: T, out: Any, flat_pad: list[int], value: float) -> T | None:
        """Zero padding (F.pad's order: the last axis first, before and after each)."""
        x = self.plain(x)
        nd = len(x.shape) - 1
        pairs = [[flat_pad[i], flat_pad[i + 1]] for i in range(0, len(flat_pad) - 1, 2)][::-1]
        if value != 0 or min(flat_pad, default=0) < 0 or not 1 <= nd <= 3 or len(pairs) > nd:
            return None
        pairs = [[0, 0]] * (nd - len(pairs)) + pairs
        return self.emit({"type": f"zeropad{nd}d", "padding": pairs}, [x], out)

    def _flatten(self, x: T, out: Any, start: Any, end: Any) -> T | None:
        rank = len(x.shape)
        if _axis(start, rank) == 0 and _axis(end, rank) == rank - 1:
            return self.emit({"type": "flatten"}, [self.plain(x)], out)
        return self._reshape(x, out)

    def _reshape(self, x: T, out: Any) -> T | None:
        """A view or reshape that keeps the batch: cnncli's ``reshape`` to PyTorch's shape."""
        shape = _shape(out)
        if int(out.shape[0]) != 1 or not 1 <= len(shape) <= 4:
            return None
        x = self.plain(x)
        if shape == x.shape:
            return x  # a view that changes nothing: no row
        if len(shape) == 1:
            return self.emit({"type": "flatten"}, [x], out)  # x.view(x.size(0), -1)
        return self.emit({"type": "reshape", "shape": list(shape)}, [x], out)

    def _dropout(self, x: T, out: Any, rate: float) -> T | None:
        if not 0 <= rate < 1:
            return None
        return self.emit({"type": "dropout", "rate": rate}, [x], out, x.perm)

    def _unary(self, x: T, out: Any, kind: str, **options: Any) -> T:
        """An elementwise layer: it keeps whatever axis order its input has."""
        return self.emit({"type": kind, **options}, [x], out, x.perm)

    def _leaky_relu_module(self, mod: Any, x: T, out: Any) -> T:
        return self._unary(x, out, "leaky_relu", negative_slope=float(mod.negative_slope))

    def _hardtanh(self, x: T, out: Any, low: Any, high: Any) -> T | None:
        if (float(low), float(high)) != (0.0, 6.0):
            return None
        return self._unary(x, out, "relu6")

    def _softmax(self, x: T, out: Any, dim: Any) -> T | None:
        axis = _axis(dim, len(x.shape))
        if axis is None:
            return None
        if x.perm[axis] == 0:
            return self.emit({"type": "softmax", "axis": "channels"}, [x], out, x.perm)
        x = self.plain(x)
        return self.emit({"type": "softmax", "axis": axis + 1}, [x], out)

    def channel_shuffle(self, x: T, out: Any, groups: int) -> T:
        return self.emit({"type": "channel_shuffle", "groups": groups}, [self.plain(x)], out)

    def opaque_outputs(
        self, op: str, ins: list[T], out: Any, tensors: Tensors | None = None
    ) -> Any:
        """An operation cnncli has no type for: one ``opaque`` layer per tensor it returns."""
        torch = self.torch
        if isinstance(out, torch.Tensor):
            return self.opaque(op, ins, out, tensors)
        if isinstance(out, tuple | list) and out and all(isinstance(o, torch.Tensor) for o in out):
            site, results = self.site, []
            for i, o in enumerate(out):
                if i:
                    self.site = Site(self.fresh(f"{site.name}_{i}"), f"{site.local}_{i}")
                results.append(self.opaque(op, ins, o, tensors if i == 0 else []))
            self.site = site
            return tuple(results)
        raise ModelError(
            f"{op} ({self.site.local}) returns {type(out).__name__}, which cnncli cannot follow; "
            "its layers take tensors and tuples of tensors"
        )

    # -- functions and methods on tensors ----------------------------------------------------
    def function(self, fname: str, call: Args, out: Any) -> Any:
        """One call of a tensor function or method at the current site (``fname``: torch's
        name for it)."""
        handler = self._functions().get(fname)
        ins = [a for a in call.values() if isinstance(a, T)]
        if fname in _COMMUTATIVE and not isinstance(call.x, T) and len(call.args) >= 2:
            call = Args((call.args[1], call.args[0], *call.args[2:]), call.kwargs)  # 3 + x
        if handler is not None and (isinstance(call.x, T) or fname in _LIST_FIRST):
            result = handler(call, out)
            if result is not None:
                return result
        params = _weights_of(list(call.values()))
        if not ins:
            # A tensor made inside forward from constants (torch.zeros, a buffer): an opaque
            # row hanging off the model input.
            ins = [plain_tensor(INPUT, ())]
        return self.opaque_outputs(fname, ins, out, params)

    def _functions(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {
            **dict.fromkeys(("add", "iadd", "add_", "radd"), self._f_add),
            **dict.fromkeys(("mul", "imul", "mul_", "rmul"), self._f_mul),
            **dict.fromkeys(("sub", "isub"), self._f_sub),
            **dict.fromkeys(("truediv", "div"), self._f_div),
            **dict.fromkeys(_JOINS, self._f_cat),
            **dict.fromkeys(_VIEWS, lambda c, o: self._reshape(c.x, o)),
            **dict.fromkeys(("transpose", "swapaxes"), self._f_transpose),
            **dict.fromkeys(("channel_shuffle", "native_channel_shuffle"), self._f_shuffle),
            **dict.fromkeys(("interpolate", "upsample"), self._f_interpolate),
            **dict.fromkeys(_PASS_THROUGH, self._f_pass),
            "flatten": lambda c, o: self._flatten(
                c.x, o, c.get(1, "start_dim", 0), c.get(2, "end_dim", -1)
            ),
            "permute": self._f_permute,
            "mean": self._f_mean,
            "chunk": self._f_chunk,
            "split": self._f_split,
            "getitem": self._f_getitem,
            "dropout": lambda c, o: self._dropout(c.x, o, float(c.get(1, "p", 0.5))),
            "stochastic_depth": self._f_stochastic_depth,
            "softmax": lambda c, o: self._softmax(c.x, o, c.get(1, "dim")),
            "leaky_relu": lambda c, o: self._unary(
                c.x, o, "leaky_relu", negative_slope=float(c.get(1, "negative_slope", 0.01))
            ),
            "hardtanh": lambda c, o: self._hardtanh(
                c.x, o, c.get(1, "min_val", -1.0), c.get(2, "max_val", 1.0)
            ),
            "pad": self._f_pad,
            **dict.fromkeys(
                ("elu", "elu_"),
                lambda c, o: self._unary(c.x, o, "elu", alpha=float(c.get(1, "alpha", 1.0))),
            ),
            "softplus": lambda c, o: self.softplus(
                c.x, o, c.get(1, "beta", 1.0), c.get(2, "threshold", 20.0)
            ),
            "local_response_norm": lambda c, o: self.lrn(
                c.x,
                o,
                c.get(1, "size"),
                c.get(2, "alpha", 1e-4),
                c.get(3, "beta", 0.75),
                c.get(4, "k", 1.0),
            ),
            "pixel_shuffle": lambda c, o: self.pixel(
                "pixel_shuffle", c.x, o, c.get(1, "upscale_factor")
            ),
            "pixel_unshuffle": lambda c, o: self.pixel(
                "pixel_unshuffle", c.x, o, c.get(1, "downscale_factor")
            ),
            "prelu": self._f_prelu,
            "group_norm": self._f_group_norm,
            "layer_norm": self._f_layer_norm,
            "batch_norm": self._f_batch_norm,
            "linear": self._f_linear,
        }
        for nd in (1, 2, 3):
            table[f"adaptive_avg_pool{nd}d"] = self._f_adaptive("adaptive_avgpool")
            table[f"adaptive_max_pool{nd}d"] = self._f_adaptive("adaptive_maxpool")
            table[f"max_pool{nd}d"] = self._f_pool("max", nd)
            table[f"avg_pool{nd}d"] = self._f_pool("avg", nd)
            table[f"conv{nd}d"] = self._f_conv(nd)
        for fname, kind in ACTIVATIONS.items():
            if fname[0].islower():
                table[fname] = lambda c, o, kind=kind: self._unary(c.x, o, kind)
        return table

    def _f_pass(self, call: Args, out: Any) -> T | None:
        return call.x if _shape(out) == call.x.shape else None

    def _scalar(self, x: T, out: Any, scale: float, offset: float) -> T:
        """``x * scale + offset`` with numbers: cnncli's ``rescaling`` (no parameters)."""
        return self.emit({"type": "rescaling", "scale": scale, "offset": offset}, [x], out, x.perm)

    def _merge(self, kind: str, a: T, b: T, out: Any) -> T | None:
        """``add`` of equal shapes, ``multiply`` broadcasting sizes of 1 (squeeze-and-excite);
        other broadcasts (ranks that differ) are PyTorch's alone: opaque."""
        fits = len(a.shape) == len(b.shape) and all(
            p == q or (kind == "multiply" and 1 in (p, q))
            for p, q in zip(a.shape, b.shape, strict=True)
        )
        if not fits or _shape(out) != tuple(map(max, a.shape, b.shape)):
            return None
        if a.perm != b.perm:
            a, b = self.plain(a), self.plain(b)
        return self.emit({"type": kind}, [a, b], out, a.perm)

    def _operands(self, call: Args) -> tuple[Any, Any]:
        return call.x, call.get(1, "other")

    def _f_add(self, call: Args, out: Any) -> T | None:
        a, b = self._operands(call)
        if call.get(2, "alpha", 1) != 1:
            return None
        if isinstance(a, T) and isinstance(b, T):
            return self._merge("add", a, b, out)
        if _number(b) and _shape(out) == a.shape:
            return self._scalar(a, out, 1.0, float(b))
        return None

    def _f_sub(self, call: Args, out: Any) -> T | None:
        a, b = self._operands(call)
        return self._scalar(a, out, 1.0, -float(b)) if _number(b) else None

    def _f_div(self, call: Args, out: Any) -> T | None:
        a, b = self._operands(call)
        if _number(b) and b != 0 and call.get(2, "rounding_mode") is None:
            return self._scalar(a, out, 1.0 / float(b), 0.0)
        return None

    def _f_mul(self, call: Args, out: Any) -> T | None:
        a, b = self._operands(call)
        if isinstance(b, T):
            return self._merge("multiply", a, b, out)
        if _number(b):
            return self._scalar(a, out, float(b), 0.0)
        if isinstance(b, P):
            return self._layer_scale(a, b, out)
        return None

    def _layer_scale(self, x: T, p: P, out: Any) -> T | None:
        """A learnable multiplier per channel (ConvNeXt's ``layer_scale``, shape (C, 1, 1))."""
        shape = [int(d) for d in p.tensor.shape]
        axis = x.perm.index(0)
        if len(shape) > len(x.shape) or math.prod(shape) != x.shape[axis]:
            return None
        # Broadcasting aligns the parameter's axes with the tensor's last ones.
        if ([1] * (len(x.shape) - len(shape)) + shape)[axis] != x.shape[axis]:
            return None
        return self.emit({"type": "layer_scale"}, [x], out, x.perm, _weights_of([p]))

    def _f_cat(self, call: Args, out: Any) -> T | None:
        parts = call.get(0, "tensors", [])
        if not parts or not all(isinstance(t, T) for t in parts):
            return None
        if len(parts) == 1:
            only: T = parts[0]
            return only  # DenseNet's first layer joins one tensor: no row
        axis = _axis(call.get(1, "dim", 0), len(parts[0].shape))
        if axis is None:
            return None
        if len({t.perm for t in parts}) > 1 or parts[0].perm[axis] != 0:
            if axis != 0:
                return None
            parts = [self.plain(t) for t in parts]
        return self.emit({"type": "concat"}, list(parts), out, parts[0].perm)

    def _f_permute(self, call: Args, out: Any) -> T | None:
        """Only the map between PyTorch's axes and cnncli's changes: no row."""
        x = call.x
        dims = list(flat(call.args[1:])) or list(call.get(1, "dims", ()))
        rank = len(x.shape)
        order = [d + rank + 1 if d < 0 else d for d in dims]
        if sorted(order) != list(range(rank + 1)) or order[0] != 0:
            return None
        axes = [d - 1 for d in order[1:]]
        return T(x.ref, tuple(x.shape[i] for i in axes), tuple(x.perm[i] for i in axes))

    def _f_transpose(self, call: Args, out: Any) -> T | None:
        x = call.x
        rank = len(x.shape)
        a, b = _axis(call.get(1, "dim0"), rank), _axis(call.get(2, "dim1"), rank)
        if a is None or b is None:
            return None
        axes = list(range(rank))
        axes[a], axes[b] = axes[b], axes[a]
        return T(x.ref, tuple(x.shape[i] for i in axes), tuple(x.perm[i] for i in axes))

    def _f_mean(self, call: Args, out: Any) -> T | None:
        x, dims = call.x, call.get(1, "dim")
        if dims is None or call.get(3, "dtype") is not None:
            return None
        axes = [
            _axis(d, len(x.shape)) for d in (dims if isinstance(dims, tuple | list) else [dims])
        ]
        if any(a is None for a in axes):
            return None
        spec = {
            "type": "mean",
            "axes": [a + 1 for a in axes if a is not None],
            "keepdims": bool(call.get(2, "keepdim", False)),
        }
        return self.emit(spec, [self.plain(x)], out)

    def _f_chunk(self, call: Args, out: Any) -> tuple[T, ...] | None:
        x, chunks = call.x, call.get(1, "chunks")
        if _axis(call.get(2, "dim", 0), len(x.shape)) != 0 or len(out) != chunks:
            return None
        return self.emit_split({"type": "split", "chunks": int(chunks)}, self.plain(x), out)

    def _f_split(self, call: Args, out: Any) -> tuple[T, ...] | None:
        x = call.x
        if _axis(call.get(2, "dim", 0), len(x.shape)) != 0 or len(out) < 2:
            return None
        sizes = [int(o.shape[1]) for o in out]
        return self.emit_split({"type": "split", "sizes": sizes}, self.plain(x), out)

    def _f_getitem(self, call: Args, out: Any) -> Any:
        container, index = call.args[0], call.args[1]
        if isinstance(container, tuple | list) and isinstance(index, int):
            return container[index]
        keys = index if isinstance(index, tuple) else (index,)
        if isinstance(container, T) and all(_whole_axis(k) for k in keys):
            return self._reshape(container, out)  # x[:, :, None, None]: a view
        return None  # slicing a tensor: opaque

    def _f_stochastic_depth(self, call: Args, out: Any) -> T | None:
        """torchvision.ops.stochastic_depth: the identity at inference."""
        rate, mode = float(call.get(1, "p", 0.0)), call.get(2, "mode", "row")
        if not 0 <= rate < 1 or mode not in ("row", "batch"):
            return None
        return self._unary(call.x, out, "stochastic_depth", rate=rate, mode=mode)

    def _f_adaptive(self, kind: str) -> Handler:
        return lambda call, out: self.adaptive_pool(kind, call.x, out)

    def _f_pool(self, which: str, nd: int) -> Handler:
        def handler(call: Args, out: Any) -> T | None:
            kernel, stride, padding = (
                call.get(1, "kernel_size"),
                call.get(2, "stride"),
                call.get(3, "padding", 0),
            )
            if which == "avg":
                return self.pool(
                    "avg",
                    nd,
                    call.x,
                    out,
                    kernel,
                    stride,
                    padding,
                    1,
                    call.get(4, "ceil_mode", False),
                )
            if call.get(6, "return_indices", False):
                return None
            dilation, ceil = call.get(4, "dilation", 1), call.get(5, "ceil_mode", False)
            return self.pool("max", nd, call.x, out, kernel, stride, padding, dilation, ceil)

        return handler

    def _weights(self, call: Args, *keys: tuple[int, str]) -> Tensors | None:
        """The parameters a functional layer reads (None when one is not a parameter)."""
        found = [call.get(i, key) for i, key in keys]
        if not all(p is None or isinstance(p, P) for p in found):
            return None
        return _weights_of(found)

    def _f_conv(self, nd: int) -> Handler:
        """F.conv1d/2d/3d with the weight (and bias) read as parameters."""

        def handler(call: Args, out: Any) -> T | None:
            weight, bias = call.get(1, "weight"), call.get(2, "bias")
            tensors = self._weights(call, (1, "weight"), (2, "bias"))
            if tensors is None or not isinstance(weight, P):
                return None
            padding = call.get(4, "padding", 0)
            spec = {
                "type": f"conv{nd}d",
                "filters": int(weight.tensor.shape[0]),
                "kernel": [int(k) for k in weight.tensor.shape[2:]],
                "stride": _ints(call.get(3, "stride", 1)),
                "padding": padding if isinstance(padding, str) else _ints(padding),
                "dilation": _ints(call.get(5, "dilation", 1)),
                "groups": int(call.get(6, "groups", 1)),
                "bias": bias is not None,
            }
            return self.emit(spec, [self.plain(call.x)], out, None, tensors)

        return handler

    def _f_linear(self, call: Args, out: Any) -> T | None:
        weight = call.get(1, "weight")
        tensors = self._weights(call, (1, "weight"), (2, "bias"))
        if tensors is None or not isinstance(weight, P):
            return None
        units = int(weight.tensor.shape[0])
        return self._dense(call.x, out, units, call.get(2, "bias") is not None, tensors)

    def _f_layer_norm(self, call: Args, out: Any) -> T | None:
        tensors = self._weights(call, (2, "weight"), (3, "bias"))
        affine = call.get(2, "weight") is not None
        if tensors is None or len(_ints(call.get(1, "normalized_shape"))) != 1:
            return None
        if affine != (call.get(3, "bias") is not None):
            return None
        return self.layernorm(call.x, out, affine, float(call.get(4, "eps", 1e-5)), tensors)

    def _f_prelu(self, call: Args, out: Any) -> T | None:
        weight = call.get(1, "weight")
        if not isinstance(weight, P):
            return None
        return self.prelu(call.x, out, weight.tensor, _weights_of([weight]))

    def _f_group_norm(self, call: Args, out: Any) -> T | None:
        tensors = self._weights(call, (2, "weight"), (3, "bias"))
        affine = call.get(2, "weight") is not None
        if tensors is None or affine != (call.get(3, "bias") is not None):
            return None
        groups, eps = call.get(1, "num_groups"), call.get(4, "eps", 1e-5)
        return self.groupnorm(call.x, out, int(groups), float(eps), affine, tensors)

    def _f_batch_norm(self, call: Args, out: Any) -> T | None:
        stats = self._weights(call, (1, "running_mean"), (2, "running_var"))
        affine = self._weights(call, (3, "weight"), (4, "bias"))
        if stats is None or affine is None or len(stats) != 2 or len(affine) == 1:
            return None
        eps = float(call.get(7, "eps", 1e-5))
        return self.batchnorm(call.x, out, eps, bool(affine), tensors=stats + affine)

    def _f_interpolate(self, call: Args, out: Any) -> T | None:
        return self._upsample(call.x, out, str(call.get(3, "mode", "nearest")))

    def _f_pad(self, call: Args, out: Any) -> T | None:
        pad, mode = call.get(1, "pad"), call.get(2, "mode", "constant")
        if mode != "constant" or pad is None:
            return None
        return self._pad(call.x, out, _ints(pad), float(call.get(3, "value") or 0.0))

    def _f_shuffle(self, call: Args, out: Any) -> T:
        return self.channel_shuffle(call.x, out, int(call.get(1, "groups", 1)))
