"""Build a summarised channels-last Keras model with Keras 3 layers and compare every layer.

``cnncli summary model.yaml --verify`` on a model with ``layout: channels_last`` and
``framework: keras`` (the Keras zoo, mnist-convnet, any file a Keras user writes) builds it as
a Keras user would: ``keras.Input`` and, for each cnncli layer, the Keras class written for it
(``Conv2D``, ``DepthwiseConv2D``, ``SeparableConv2D``, ``BatchNormalization``,
``ZeroPadding2D``, ``Cropping2D``, ``Reshape``, ``Rescaling``, ``Normalization``, the pooling
layers, ``Dense``, ``Add``, ``Concatenate``, ``Multiply`` …), called on the tensors of the
functional API. Keras's own shape rules run and every weight is built (never trained); each
layer's output shape (without the batch, channels last) and its trainable and non-trainable
weight counts must equal cnncli's. ``mean`` and ``split`` have no Keras layer: they are written
as Keras users write them, ``keras.ops.mean`` and ``keras.ops.split`` on the tensor. A type with
no Keras equivalent is refused before anything is built, naming every such layer.

Keras is imported only here, only when asked for; its backend is the user's (``KERAS_BACKEND``
or ``~/.keras/keras.json``), and the verdict names it. Other models (channels first, or
``framework: torch``/``tf``) are verified with PyTorch (:mod:`cnncli.model.torch_check`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cnncli import arithmetic as ar
from cnncli.errors import ModelError
from cnncli.model.build import Summary
from cnncli.model.graph import Node
from cnncli.model.layers import (
    ACTIVATIONS,
    SPLIT_OUTPUT,
    Ctx,
    TShape,
    axis_indices,
    crop_pairs,
    pixel_mode,
    prelu_alpha_shape,
    split_pieces,
)

#: Weight counts as Keras reports them: (trainable, non-trainable).
Counts = tuple[int, int]
Shape = tuple[int, ...] | tuple[tuple[int, ...], ...]
#: The conventions of every model built here (the factories read only ``channels_last``).
_CTX = Ctx(ar.Framework.KERAS, channels_last=True)


def applies(summary: Summary) -> bool:
    """Whether ``--verify`` builds this model with Keras: a channels-last Keras model."""
    return summary.layout == "channels_last" and summary.framework == ar.Framework.KERAS.value


@dataclass(frozen=True)
class Check:
    """One layer as cnncli and as Keras see it."""

    name: str
    type: str
    line: int
    #: A split's are the shapes of its outputs.
    ours_shape: Shape
    keras_shape: Shape
    ours_params: Counts
    keras_params: Counts

    @property
    def ok(self) -> bool:
        return self.ours_shape == self.keras_shape and self.ours_params == self.keras_params


class _NoKerasLayer(Exception):
    """This layer has no Keras class (the argument says why, naming the missing piece)."""


def _keras() -> Any:
    """``keras``, or a one-line ModelError saying what to install."""
    # TensorFlow (Keras's default backend) logs its CPU features to stderr on import; the
    # verdict is the only line --verify adds. A level the user set is kept.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
    except ImportError as err:
        missing = getattr(err, "name", None) or ""
        if missing.split(".")[0] == "keras":
            raise ModelError(
                "{opt:verify} builds channels-last Keras models with Keras, which is not "
                "installed; install it (pip install keras) or drop {opt:verify}"
            ) from None
        raise ModelError(
            f"{{opt:verify}} builds channels-last Keras models with Keras, whose backend cannot "
            f"be imported ({str(err).strip() or type(err).__name__}); install it, or choose an "
            "installed one with KERAS_BACKEND=torch, jax or tensorflow"
        ) from None
    version = str(getattr(keras, "__version__", "?"))
    if not version.split(".")[0].isdigit() or int(version.split(".")[0]) < 3:
        raise ModelError(
            f"{{opt:verify}} builds channels-last Keras models with Keras 3, but Keras {version} "
            "is installed; upgrade it (pip install -U keras) or drop {opt:verify}"
        )
    return keras


def framework_label(keras: Any) -> str:
    """``Keras 3.15.1 (torch backend)``: who verified, in the verdict and in every message."""
    return f"Keras {keras.__version__} ({keras.backend.backend()} backend)"


@contextmanager
def _channels_last(keras: Any) -> Iterator[None]:
    """Every layer built channels last, whatever the user's ``image_data_format`` says."""
    before = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_last")
    try:
        yield
    finally:
        keras.config.set_image_data_format(before)


# -- one Keras layer per cnncli layer ------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    """What a factory needs: the node, its (first) input shape as cnncli computed it, Keras."""

    node: Node
    x: TShape
    keras: Any

    @property
    def opts(self) -> dict[str, Any]:
        return self.node.opts

    @property
    def kind(self) -> str:
        return self.node.kind.name

    @property
    def nd(self) -> int:
        return len(self.x.spatial)

    @property
    def geometry(self) -> ar.Geometry:
        assert self.node.out is not None and self.node.out.geometry is not None
        return self.node.out.geometry

    def cls(self, name: str) -> Any:
        """``keras.layers.<name>``, or _NoKerasLayer when Keras has no such class."""
        found = getattr(self.keras.layers, name, None)
        if found is None:
            raise _NoKerasLayer(f"Keras has no {name}")
        return found


#: cnncli activation names that Keras spells differently (the others are the same word).
_KERAS_ACTIVATION = {"hardswish": "hard_swish", "hardsigmoid": "hard_sigmoid"}


def _activation(name: str | None) -> str | None:
    return None if name is None else _KERAS_ACTIVATION.get(name, name)


def _axis(value: Any) -> Any:
    """A cnncli axis (``channels``, numbers counting the batch as 0, a list, null) for Keras."""
    if value == "channels":
        return -1
    if isinstance(value, list):
        return tuple(_axis(v) for v in value)
    return value


def _padding(layer: _Layer) -> str:
    """A sliding window's padding as Keras takes it: a mode (explicit zeros are ``valid``)."""
    pad = layer.geometry.spec.padding
    if isinstance(pad, ar.PadMode):
        return pad.value
    if any(p != (0, 0) for p in pad):
        # Refused for framework: keras before any build; stated here so no number is dropped.
        raise _NoKerasLayer("Keras layers take no explicit padding (a ZeroPadding layer does)")
    return "valid"


def _window(layer: _Layer) -> dict[str, Any]:
    spec = layer.geometry.spec
    return {"strides": spec.stride, "padding": _padding(layer)}


def _conv(layer: _Layer) -> Any:
    o, spec = layer.opts, layer.geometry.spec
    common = _window(layer) | {
        "kernel_size": spec.kernel,
        "dilation_rate": spec.dilation,
        "use_bias": o["bias"],
        "activation": _activation(o.get("activation")),
    }
    if layer.kind.startswith("depthwise"):
        cls = layer.cls(f"DepthwiseConv{layer.nd}D")
        return cls(depth_multiplier=o["depth_multiplier"], **common)
    if layer.kind.startswith("separable"):
        cls = layer.cls(f"SeparableConv{layer.nd}D")
        return cls(o["filters"], depth_multiplier=o["depth_multiplier"], **common)
    if layer.kind.startswith("convtranspose"):
        if o["groups"] != 1:
            raise _NoKerasLayer(f"Keras's Conv{layer.nd}DTranspose has no groups")
        cls = layer.cls(f"Conv{layer.nd}DTranspose")
        return cls(o["filters"], output_padding=spec.output_padding, **common)
    return layer.cls(f"Conv{layer.nd}D")(o["filters"], groups=o["groups"], **common)


def _pool(layer: _Layer) -> Any:
    which = "Max" if layer.kind.startswith("maxpool") else "Average"
    cls = layer.cls(f"{which}Pooling{layer.nd}D")
    return cls(pool_size=layer.geometry.spec.kernel, **_window(layer))


def _global_pool(layer: _Layer) -> Any:
    which = "Average" if layer.kind == "global_avgpool" else "Max"
    return layer.cls(f"Global{which}Pooling{layer.nd}D")(keepdims=layer.opts["keepdims"])


def _adaptive_pool(layer: _Layer) -> Any:
    which = "Average" if layer.kind == "adaptive_avgpool" else "Max"
    assert layer.node.out is not None
    return layer.cls(f"Adaptive{which}Pooling{layer.nd}D")(layer.node.out.shape.spatial)


def _batchnorm(layer: _Layer) -> Any:
    o = layer.opts
    if not o["track_running_stats"]:
        raise _NoKerasLayer(
            "Keras's BatchNormalization always keeps moving statistics (track_running_stats: false)"
        )
    return layer.keras.layers.BatchNormalization(
        axis=-1,
        momentum=0.99 if o["momentum"] is None else o["momentum"],
        epsilon=o["eps"],
        center=o["affine"] and o["center"],
        scale=o["affine"] and o["scale"],
    )


def _layernorm(layer: _Layer) -> Any:
    o = layer.opts
    return layer.keras.layers.LayerNormalization(
        axis=-1, epsilon=o["eps"], center=o["affine"], scale=o["affine"]
    )


def _normalization(layer: _Layer) -> Any:
    o = layer.opts
    return layer.keras.layers.Normalization(
        axis=_axis(o["axis"]), mean=o["mean"], variance=o["variance"], invert=o["invert"]
    )


def _dense(layer: _Layer) -> Any:
    o = layer.opts
    return layer.keras.layers.Dense(
        o["units"], activation=_activation(o.get("activation")), use_bias=o["bias"]
    )


def _zeropad(layer: _Layer) -> Any:
    pairs = layer.geometry.padding
    return layer.cls(f"ZeroPadding{layer.nd}D")(pairs[0] if layer.nd == 1 else pairs)


def _cropping(layer: _Layer) -> Any:
    pairs = crop_pairs(layer.opts["cropping"], layer.nd)
    return layer.cls(f"Cropping{layer.nd}D")(pairs[0] if layer.nd == 1 else pairs)


def _permute(layer: _Layer) -> Any:
    order = list(layer.opts["dims"])
    if len(order) == len(layer.x.dims(True)) + 1:
        order = order[1:]  # PyTorch's spelling with the batch, [0, 2, 1]
    return layer.keras.layers.Permute(tuple(order))


def _mean(layer: _Layer) -> Callable[[Any], Any]:
    """``keras.ops.mean(x, axis=…)``: Keras has no layer for it (Keras's own models call the op)."""
    o, ops = layer.opts, layer.keras.ops
    rank = len(layer.x.dims(True))
    axes = tuple(i + 1 for i in axis_indices(o["axes"], rank, "axes", _CTX))
    return lambda t: ops.mean(t, axis=axes, keepdims=o["keepdims"])


def _split(layer: _Layer) -> Callable[[Any], Any]:
    """``keras.ops.split`` along the channels at the cnncli pieces' boundaries."""
    sizes = [p.channels for p in split_pieces(layer.opts, layer.x, _CTX)]
    cuts = [sum(sizes[:i]) for i in range(1, len(sizes))]
    ops = layer.keras.ops
    return lambda t: tuple(ops.split(t, cuts, axis=-1))


def _upsample(layer: _Layer) -> Any:
    o, nd = layer.opts, layer.nd
    mode = o["mode"]
    if o.get("size") is not None:
        if nd != 2:
            raise _NoKerasLayer(f"Keras resizes to a given size in 2-D only (Resizing), not {nd}-D")
        height, width = ar.per_axis(o["size"], 2, "size")
        return layer.keras.layers.Resizing(height, width, interpolation=mode)
    scale = ar.per_axis(o.get("scale") or 2, nd, "scale")
    if nd == 2:
        return layer.keras.layers.UpSampling2D(scale, interpolation=mode)
    if mode != "nearest":
        raise _NoKerasLayer(f"Keras's UpSampling{nd}D repeats values only (mode: nearest)")
    return layer.cls(f"UpSampling{nd}D")(scale[0] if nd == 1 else scale)


def _groupnorm(layer: _Layer) -> Any:
    o = layer.opts
    return layer.keras.layers.GroupNormalization(
        groups=o["groups"], axis=-1, epsilon=o["eps"], center=o["affine"], scale=o["affine"]
    )


def _instancenorm(layer: _Layer) -> Any:
    """Keras has no InstanceNormalization: GroupNormalization with a group per channel
    (``groups=-1``) is the same normalisation, without running statistics."""
    o = layer.opts
    if o["track_running_stats"]:
        raise _NoKerasLayer(
            "Keras has no instance normalization with running statistics (track_running_stats)"
        )
    return layer.keras.layers.GroupNormalization(
        groups=-1, axis=-1, epsilon=o["eps"], center=o["affine"], scale=o["affine"]
    )


def _prelu(layer: _Layer) -> Any:
    """Keras's PReLU with the axes whose slope cnncli shares (size 1) as ``shared_axes``."""
    shape = prelu_alpha_shape(layer.opts, layer.x, _CTX)
    shared = [i + 1 for i, d in enumerate(shape) if d == 1]
    return layer.keras.layers.PReLU(shared_axes=shared or None)


def _pixel(layer: _Layer) -> Callable[[Any], Any]:
    """``keras.ops.depth_to_space`` / ``space_to_depth`` (TensorFlow's order, DCR): Keras has no
    layer for them; PyTorch's order (CRD) it has not at all."""
    if pixel_mode(layer.opts, _CTX) != "dcr":
        raise _NoKerasLayer(
            "Keras's depth_to_space and space_to_depth order the channels as TensorFlow (mode: "
            "dcr), not as PyTorch's PixelShuffle (mode: crd)"
        )
    r, ops = layer.opts["factor"], layer.keras.ops
    op = ops.depth_to_space if layer.kind == "pixel_shuffle" else ops.space_to_depth
    return lambda t: op(t, r, data_format="channels_last")


def _activation_layer(layer: _Layer) -> Any:
    """An activation as its own layer: ReLU, ReLU(6), LeakyReLU, ELU, Softmax, else
    Activation."""
    k, o = layer.keras.layers, layer.opts
    name = o["function"] if layer.kind == "activation" else layer.kind
    if name == "softplus" and o.get("beta", 1.0) != 1:
        raise _NoKerasLayer("Keras's softplus has no beta (only beta: 1)")
    if name == "elu" and "alpha" in o:
        return k.ELU(alpha=o["alpha"])
    if name == "relu":
        return k.ReLU()
    if name == "relu6":
        return k.ReLU(max_value=6.0)
    if name == "leaky_relu" and "negative_slope" in o:
        return k.LeakyReLU(negative_slope=o["negative_slope"])
    if name == "softmax" and "axis" in o:
        return k.Softmax(axis=_axis(o["axis"]))
    return k.Activation(_activation(name))


def _none(reason: str) -> Callable[[_Layer], Any]:
    def refuse(layer: _Layer) -> Any:
        raise _NoKerasLayer(reason)

    return refuse


#: Layer type prefixes → the factory of their Keras layer (first match wins).
_FACTORIES: tuple[tuple[tuple[str, ...], Callable[[_Layer], Any]], ...] = (
    (("conv", "depthwise_conv", "separable_conv"), _conv),
    (("maxpool", "avgpool"), _pool),
    (("global_avgpool", "global_maxpool"), _global_pool),
    (("adaptive_avgpool", "adaptive_maxpool"), _adaptive_pool),
    (("batchnorm",), _batchnorm),
    (("layernorm",), _layernorm),
    (("groupnorm",), _groupnorm),
    (("instancenorm",), _instancenorm),
    (("prelu",), _prelu),
    (("pixel_shuffle", "pixel_unshuffle"), _pixel),
    (("lrn",), _none("Keras has no local response normalization layer")),
    (("normalization",), _normalization),
    (("rescaling",), lambda la: la.keras.layers.Rescaling(la.opts["scale"], la.opts["offset"])),
    (("dense",), _dense),
    (("zeropad",), _zeropad),
    (("cropping",), _cropping),
    (("reshape",), lambda la: la.keras.layers.Reshape(tuple(la.opts["shape"]))),
    (("permute",), _permute),
    (("mean",), _mean),
    (("split",), _split),
    (("flatten",), lambda la: la.keras.layers.Flatten()),
    (("dropout",), lambda la: la.keras.layers.Dropout(la.opts["rate"])),
    (("identity",), lambda la: la.keras.layers.Identity()),
    (("upsample",), _upsample),
    (("add",), lambda la: la.keras.layers.Add()),
    (("multiply",), lambda la: la.keras.layers.Multiply()),
    (("concat",), lambda la: la.keras.layers.Concatenate(axis=-1)),
    (("channel_shuffle",), _none("Keras has no channel shuffle layer")),
    (("layer_scale",), _none("Keras has no public LayerScale layer")),
    (("stochastic_depth",), _none("Keras has no public StochasticDepth layer")),
    (("opaque",), _none("an operator cnncli does not know has no layer to build")),
)


def _factory(kind: str) -> Callable[[_Layer], Any]:
    for prefixes, make in _FACTORIES:
        if kind.startswith(prefixes):
            return make
    if kind in ACTIVATIONS or kind == "activation":
        return _activation_layer
    return _none(f"cnncli cannot build a {kind} layer with Keras yet")


# -- building and comparing ----------------------------------------------------------------------


def _make_layers(summary: Summary, keras: Any) -> dict[str, Any]:
    """Every layer's Keras layer (or op), made before any tensor flows: a model with layers
    Keras has no class for is refused whole, naming them, before anything is built."""
    shapes = {n.name: n.out.shape for n in summary.nodes if n.out is not None}
    made: dict[str, Any] = {}
    missing: list[str] = []
    for node in summary.nodes:
        if node.is_input or node.hidden:
            continue
        layer = _Layer(node, shapes[node.inputs[0]], keras)
        try:
            made[node.name] = _factory(node.kind.name)(layer)
        except _NoKerasLayer as err:
            missing.append(f"{node.name!r} ({node.kind.name}, line {node.line}: {err})")
            continue
        except Exception as err:  # Keras refuses the layer's arguments: that is the finding
            raise _refusal(node, err, summary, keras) from None
        if not node.trainable:
            made[node.name].trainable = False
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ModelError(
            f"{summary.source}: {{opt:verify}}: {framework_label(keras)} cannot build "
            f"{len(missing)} layer{'s' if len(missing) > 1 else ''} of this model: "
            f"{'; '.join(missing[:3])}{more}; {{opt:verify}} builds channels-last Keras models with "
            "Keras layers only (remove them to verify the rest)"
        )
    return made


def _count(weights: Any) -> int:
    return sum(math.prod(w.shape) for w in weights)


def _params(layer: Any) -> Counts:
    """(trainable, non-trainable) weights of a Keras layer; an op (mean, split) has none."""
    return (
        _count(getattr(layer, "trainable_weights", ())),
        _count(getattr(layer, "non_trainable_weights", ())),
    )


def _shape_of(y: Any) -> Shape:
    """A tensor's shape without the batch; for a split's tensors, each one's."""
    if isinstance(y, tuple):
        return tuple(tuple(t.shape[1:]) for t in y)
    return tuple(y.shape[1:])


def _refusal(node: Node, err: Exception, summary: Summary, keras: Any) -> ModelError:
    """Keras's refusal of a layer cnncli accepts, in one line: a disagreement to report."""
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    return ModelError(
        f"{summary.source}:{node.line}:{node.col}: {{opt:verify}}: {framework_label(keras)} "
        f"refuses layer {node.name!r} ({node.kind.name}), which cnncli accepts: {first}"
    )


def _call(node: Node, layer: Any, ins: list[Any], summary: Summary, keras: Any) -> Any:
    """The layer called on its input(s)."""
    try:
        return layer(ins if node.kind.arity == 0 else ins[0])
    except Exception as err:
        raise _refusal(node, err, summary, keras) from None


def _flat(values: list[Any]) -> list[Any]:
    """Tensors once each (a split's tuple as its tensors), for the model's outputs."""
    out: list[Any] = []
    for v in values:
        for t in v if isinstance(v, tuple) else (v,):
            if not any(t is seen for seen in out):
                out.append(t)
    return out


def _read_by_layers(summary: Summary) -> set[str]:
    """Names whose value some real layer reads, through hidden pass-throughs (a switched-off
    layer, a block's input, a split's output): a pass-through nothing reads must not make its
    source an output."""
    nodes = {n.name: n for n in summary.nodes}
    read: set[str] = set()
    for node in summary.nodes:
        if node.hidden:
            continue
        stack = list(node.inputs)
        while stack:
            name = stack.pop()
            if name in read:
                continue
            read.add(name)
            source = nodes[name]
            if source.hidden:
                stack.extend(source.inputs)
    return read


def build_model(summary: Summary) -> tuple[Any, list[Check]]:
    """The summarised model as a Keras functional model, and every layer compared with cnncli.

    Its inputs are the model's inputs; its outputs every layer nothing reads (training-only
    branches included, so that every layer's weights belong to the model).
    """
    keras = _keras()
    with _channels_last(keras):
        made = _make_layers(summary, keras)
        values: dict[str, Any] = {}
        inputs: list[Any] = []
        checks: list[Check] = []
        for node in summary.nodes:
            out = node.out
            assert out is not None
            if node.is_input:
                values[node.name] = keras.Input(shape=out.shape.dims(True))
                inputs.append(values[node.name])
                continue
            ins = [values[i] for i in node.inputs]
            if node.kind is SPLIT_OUTPUT:
                split = ins[0]  # the split's i-th tensor (a switched-off split passed one on)
                values[node.name] = split[node.opts["index"]] if isinstance(split, tuple) else split
                continue
            if node.hidden:
                values[node.name] = ins[0]
                continue
            layer = made[node.name]
            values[node.name] = y = _call(node, layer, ins, summary, keras)
            checks.append(
                Check(
                    node.name,
                    node.kind.name,
                    node.line,
                    tuple(p.dims(True) for p in out.outputs) or out.shape.dims(True),
                    _shape_of(y),
                    (out.trainable, out.non_trainable),
                    _params(layer),
                )
            )
        read = _read_by_layers(summary)
        ends = [
            values[n.name]
            for n in summary.nodes
            if n.name not in read and not n.is_input and not n.hidden
        ]
        model = keras.Model(inputs=inputs, outputs=_flat(ends))
    return model, checks


def check(summary: Summary) -> list[Check]:
    """Build ``summary`` with Keras and compare every layer (switched-off layers excepted)."""
    return build_model(summary)[1]


def verify_summary(summary: Summary) -> str:
    """One line saying Keras agrees, or a ModelError naming the first layer that differs."""
    model, checks = build_model(summary)
    return verdict(summary, model, checks)


def verdict(summary: Summary, model: Any, checks: list[Check]) -> str:
    """The verdict on a model :func:`build_model` built: the one line ``--verify`` prints, with
    Keras's own Total / Trainable / Non-trainable params, or a ModelError naming the first layer
    that differs (and how many more do)."""
    who = framework_label(_keras())
    bad = [c for c in checks if not c.ok]
    if bad:
        c = bad[0]
        rest = len(bad) - 1
        more = f" ({rest} more layer{'s differ' if rest > 1 else ' differs'})" if rest else ""
        raise ModelError(
            f"{summary.source}:{c.line}: {{opt:verify}}: layer {c.name!r} ({c.type}): cnncli gives "
            f"output {c.ours_shape} and {c.ours_params[0]:,} trainable + {c.ours_params[1]:,} "
            f"non-trainable params, {who} gives {c.keras_shape} and {c.keras_params[0]:,} + "
            f"{c.keras_params[1]:,}{more}"
        )
    trainable = _count(model.trainable_weights)
    non_trainable = _count(model.non_trainable_weights)
    return (
        f"verified with {who}: all {len(checks)} layers agree on output shape and parameters "
        f"(Total params {model.count_params():,}: trainable {trainable:,}, non-trainable "
        f"{non_trainable:,}; shapes channels last, as Keras computes them)"
    )
