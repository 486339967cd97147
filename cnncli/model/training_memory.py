"""What one training step of a model holds in memory, as PyTorch's eager autograd keeps it.

``cnncli summary MODEL --train`` adds to the summary: the parameters (with batchnorm's
statistics and ``num_batches_tracked``), their gradients (trainable only), the optimizer's state,
the activations autograd keeps for the backward pass of one batch, and the input batch.

The system followed is cnncli's own PyTorch build of the model (the modules ``--verify``
builds, :mod:`cnncli.model.torch_check`) in ``train()`` mode, every tensor in one dtype
(``model.to(dtype)``), on the CPU, without checkpointing or in-place operations. What
autograd saves for each layer is :data:`RULES`, one entry per layer type, found by running
PyTorch 2.13's ops under ``torch.autograd.graph.saved_tensors_hooks`` (tests/
test_training_memory.py compares every type and whole zoo models with that). A tensor kept by
two layers (a ReLU's output is the next convolution's input) counts once: the rules name
tensors by the layer that made them, and views (flatten, permute, a split's outputs) by the
tensor they view, as PyTorch's storages are shared.

Pure Python: no torch, no numpy (``cnncli summary`` of YAML never imports them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cnncli.enums import DType, Optimizer
from cnncli.model.build import Summary
from cnncli.model.graph import Node
from cnncli.model.layers import ACTIVATIONS, SPLIT_OUTPUT, TShape

#: The optimizer ``--train`` assumes unless told (the one most training scripts start with).
DEFAULT_OPTIMIZER = Optimizer.ADAM
ITEM_BYTES = {DType.FLOAT32: 4, DType.FLOAT16: 2, DType.BFLOAT16: 2}
#: Copies of each trainable parameter in the optimizer's state: SGD keeps none,
#: ``SGD(momentum=…)`` its ``momentum_buffer``, Adam and AdamW ``exp_avg`` and ``exp_avg_sq``,
#: each in the parameter's dtype.
STATE_COPIES = {Optimizer.SGD: 0, Optimizer.MOMENTUM: 1, Optimizer.ADAM: 2, Optimizer.ADAMW: 2}
#: Adam's and AdamW's ``step``: one float32 scalar tensor per parameter tensor.
STEP_BYTES = 4
#: Max pooling's indices are int64 whatever the dtype.
INDEX_BYTES = 8
#: ``num_batches_tracked``: an int64 buffer of every batchnorm tracking running statistics.
COUNTER_BYTES = 8

CONVENTION = (
    "Training memory: PyTorch eager autograd (CPU, train mode, cnncli's PyTorch build of the "
    "model as --verify builds it, model.to({dtype}), no autocast, no checkpointing, no in-place "
    "ops); activations = the distinct tensors autograd saves for backward, by layer type "
    "(docs/model-format.md), for a batch of {batch}; {optimizer}; parameters include batchnorm "
    "statistics and num_batches_tracked. Total = the sum: what is held as backward starts when "
    "gradients persist between steps (less with zero_grad(set_to_none=True)). Not included: "
    "the gradients of activations backward creates as it goes, the allocator's caching and "
    "fragmentation, cuDNN/oneDNN workspaces, the CUDA context, the loss, framework overhead; "
    "on CUDA dropout keeps a 1-byte mask instead of one in the dtype."
)


@dataclass(frozen=True)
class Tensor:
    """A storage autograd keeps: ``per_sample`` elements per sample plus ``fixed`` elements,
    each of ``item`` bytes (0: the training dtype)."""

    per_sample: int
    fixed: int = 0
    item: int = 0

    def bytes(self, batch: int, dtype_bytes: int) -> int:
        return (self.per_sample * batch + self.fixed) * (self.item or dtype_bytes)


@dataclass(frozen=True)
class TrainingMemory:
    """The breakdown ``--train`` prints, in bytes."""

    batch: int
    optimizer: Optimizer
    dtype: DType
    parameter_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    activation_bytes: int
    input_bytes: int
    #: Opaque layers (operator → layers): what they save is unknown, the total is a lower bound.
    not_counted: dict[str, int] = field(default_factory=dict)
    #: Layers PyTorch refuses to train at this batch (one line each, naming the fix).
    warnings: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return (
            self.parameter_bytes
            + self.gradient_bytes
            + self.optimizer_bytes
            + self.activation_bytes
            + self.input_bytes
        )

    @property
    def convention(self) -> str:
        return CONVENTION.format(
            dtype=self.dtype.value, optimizer=_OPT_TEXT[self.optimizer], batch=self.batch
        )


_OPT_TEXT = {
    Optimizer.SGD: "SGD keeps no state",
    Optimizer.MOMENTUM: "SGD with momentum keeps momentum_buffer, 1× the trainable parameters",
    Optimizer.ADAM: "Adam keeps exp_avg and exp_avg_sq, 2× the trainable parameters, and a float32 step per parameter tensor",
    Optimizer.ADAMW: "AdamW keeps exp_avg and exp_avg_sq, 2× the trainable parameters, and a float32 step per parameter tensor",
}


# ------------------------------------------------------------------------------------------
# What each layer keeps: references to tensors, resolved to storages by the walk below
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keep:
    """One tensor a layer keeps: ``"input"`` (its ``index``-th input), ``"output"`` (what it
    returns), ``"pre"`` (a fused activation's input: the layer's output before it) or a new
    tensor of its own (``tensor``)."""

    what: str
    index: int = 0
    tensor: Tensor | None = None


@dataclass(frozen=True)
class Effect:
    """What a layer does to memory: the tensors it keeps, and whether its output is a view of
    its first input (``view``; ``contiguous`` False for a strided view such as a permute)."""

    keeps: tuple[Keep, ...] = ()
    view: bool = False
    contiguous: bool = True


@dataclass(frozen=True)
class Layer:
    """What a rule reads: the node, its inputs' shapes, which of them require grad, and
    whether its own weights are trained."""

    node: Node
    inputs: tuple[TShape, ...]
    grads: tuple[bool, ...]
    contiguous: tuple[bool, ...]
    trains: bool

    @property
    def opts(self) -> dict[str, object]:
        return self.node.opts

    @property
    def out(self) -> TShape:
        assert self.node.out is not None
        return self.node.out.shape


INPUT = Keep("input")
OUTPUT = Keep("output")
PRE = Keep("pre")
NOTHING = Effect()
VIEW = Effect(view=True)

#: Activations by which tensor their backward reads (PyTorch 2.13: threshold_backward reads
#: ReLU's result, as sigmoid's, tanh's and softmax's read theirs; every other activation of
#: layers.ACTIVATIONS — hardtanh (ReLU6), leaky_relu, gelu, silu, hardswish, hardsigmoid, elu,
#: selu, softplus, mish — reads its input; "linear" is none). Each is checked against autograd.
_SAVES_OUTPUT = ("relu", "sigmoid", "tanh", "softmax")
_SAVES_INPUT = tuple(a for a in ACTIVATIONS if a not in _SAVES_OUTPUT and a != "linear")


def _activation(name: object, before: Keep) -> tuple[Keep, ...]:
    """What an activation keeps; ``before`` is its input (the layer's input, or ``pre``)."""
    if name in _SAVES_OUTPUT:
        return (OUTPUT,)
    if name in _SAVES_INPUT:
        return (before,)
    return ()


def _fused(layer: Layer) -> tuple[Keep, ...]:
    return _activation(layer.opts.get("activation"), PRE)


def _padded(layer: Layer) -> Keep:
    """A window layer's input as its kernel reads it: the input itself, or the padded copy
    cnncli's PyTorch build makes first when the padding differs before and after (a ``Pad``
    module; PyTorch's own ``padding='same'`` pads the odd pixel only)."""
    out = layer.node.out
    assert out is not None and out.geometry is not None
    axes = out.geometry.axes
    if all(a.pad_before == a.pad_after for a in axes):
        return INPUT
    own_same = layer.opts.get("padding") == "same" and layer.node.kind.name.startswith("conv")
    extra = [
        (a.pad_after - a.pad_before) if own_same else (a.pad_before + a.pad_after) for a in axes
    ]
    per = layer.inputs[0].channels
    for size, more in zip(layer.inputs[0].spatial, extra, strict=True):
        per *= size + more
    return Keep("new", tensor=Tensor(per))


def _conv(layer: Layer) -> Effect:
    # convolution_backward: the input and the weight, whenever anything requires grad.
    return Effect((_padded(layer), *_fused(layer)))


def _convtranspose(layer: Layer) -> Effect:
    return Effect((INPUT, *_fused(layer)))


def _separable(layer: Layer) -> Effect:
    # Depthwise then 1×1: the depthwise keeps the input, the 1×1 the depthwise's output.
    mid = layer.inputs[0].channels * int(layer.opts["depth_multiplier"])  # type: ignore[call-overload]
    per = mid
    for s in layer.out.spatial:
        per *= s
    return Effect((_padded(layer), Keep("new", tensor=Tensor(per)), *_fused(layer)))


def _dense(layer: Layer) -> Effect:
    keeps: list[Keep] = []
    if layer.trains:  # addmm keeps its input only for the weight's gradient
        x = layer.inputs[0]
        if x.elements != x.channels:
            # Applied at every position: the channels moved last, then the matmul reshapes the
            # strided view into a new (positions, channels) tensor and keeps that.
            keeps.append(Keep("new", tensor=Tensor(x.elements)))
        else:
            keeps.append(INPUT)
    return Effect((*keeps, *_fused(layer)))


def _maxpool(layer: Layer) -> Effect:
    return Effect(
        (_padded(layer), Keep("new", tensor=Tensor(layer.out.elements, item=INDEX_BYTES)))
    )


def _avgpool(layer: Layer) -> Effect:
    return Effect((_padded(layer),))


def _global_pool(layer: Layer) -> Effect:
    if layer.node.kind.name == "global_avgpool":
        return NOTHING  # adaptive_avg_pool to 1 is a mean: its backward needs sizes only
    return Effect((INPUT, Keep("new", tensor=Tensor(layer.inputs[0].channels, item=INDEX_BYTES))))


def _adaptive_pool(layer: Layer) -> Effect:
    if layer.node.kind.name == "adaptive_avgpool":
        return NOTHING if set(layer.out.spatial) == {1} else Effect((INPUT,))
    return Effect((INPUT, Keep("new", tensor=Tensor(layer.out.elements, item=INDEX_BYTES))))


def _batchnorm(layer: Layer) -> Effect:
    # native_batch_norm: the input, save_mean and save_invstd (C each, in the dtype).
    c = layer.inputs[0].channels
    keeps = [INPUT, Keep("new", tensor=Tensor(0, fixed=2 * c))]
    o = layer.opts
    if o["affine"] and o["scale"] and not o["center"]:
        # Keras's γ without β: batchnorm without affine, then × γ keeps the normalised tensor.
        keeps.append(Keep("new", tensor=Tensor(layer.out.elements)))
    return Effect(tuple(keeps))


def _layernorm(layer: Layer) -> Effect:
    # native_layer_norm: the input, mean and rstd (one each per position).
    x = layer.inputs[0]
    return Effect((INPUT, Keep("new", tensor=Tensor(2 * (x.elements // x.channels)))))


def _groupnorm(layer: Layer) -> Effect:
    # native_group_norm: the input, mean and rstd (one each per sample and group).
    return Effect((INPUT, Keep("new", tensor=Tensor(2 * int(layer.opts["groups"])))))  # type: ignore[call-overload]


def _instancenorm(layer: Layer) -> Effect:
    # F.instance_norm is batchnorm over a (1, N·C, …) view of the input: it keeps the input,
    # save_mean and save_invstd, and the per-channel tensors it repeats N times (the weight,
    # with affine; the running mean and variance, with track_running_stats), N·C each.
    o = layer.opts
    per = 2 + bool(o["affine"]) + 2 * bool(o["track_running_stats"])
    return Effect((INPUT, Keep("new", tensor=Tensor(per * layer.inputs[0].channels))))


def _prelu(layer: Layer) -> Effect:
    # nn.PReLU keeps its input; cnncli's build of Keras's per-position slopes,
    # clamp(x, 0) + α · clamp(x, max=0), keeps the input and, for α's gradient, clamp's result.
    x = layer.inputs[0]
    node = layer.node
    assert node.out is not None
    slopes = node.out.trainable + node.out.non_trainable
    if slopes in (1, x.channels) or not layer.trains:
        return Effect((INPUT,))
    return Effect((INPUT, Keep("new", tensor=Tensor(x.elements))))


def _lrn(layer: Layer) -> Effect:
    # F.local_response_norm: x·x (keeps x), padded along channels and average-pooled (keeps the
    # padded squares, C + size − 1 channels), then (… · α + k)^β (keeps its base) and x / that
    # (keeps x and the divisor).
    x = layer.inputs[0]
    padded = (x.channels + int(layer.opts["size"]) - 1) * (x.elements // x.channels)  # type: ignore[call-overload]
    return Effect(
        (
            INPUT,
            Keep("new", tensor=Tensor(padded)),
            Keep("new", tensor=Tensor(x.elements)),
            Keep("new", tensor=Tensor(x.elements)),
        )
    )


def _named_activation(layer: Layer) -> Effect:
    name = layer.node.kind.name
    return Effect(_activation(layer.opts["function"] if name == "activation" else name, INPUT))


def _dropout(layer: Layer) -> Effect:
    if layer.opts["rate"] == 0:
        return VIEW  # F.dropout returns its input
    # CPU: input * (bernoulli mask / (1 − p)), the mask in the dtype, kept by the multiply.
    return Effect((Keep("new", tensor=Tensor(layer.inputs[0].elements)),))


def _stochastic_depth(layer: Layer) -> Effect:
    if layer.opts["rate"] == 0:
        return VIEW
    # torchvision.ops.stochastic_depth: input * noise, noise (N, 1, …) ("row") or one number.
    row = layer.opts["mode"] == "row"
    return Effect((Keep("new", tensor=Tensor(1 if row else 0, fixed=0 if row else 1)),))


def _multiply(layer: Layer) -> Effect:
    """((a × b) × c) …: each factor is kept when the other one requires grad."""
    keeps: list[Keep] = []
    grad = layer.grads[0]
    size = layer.inputs[0].elements
    for i in range(1, len(layer.inputs)):
        if layer.grads[i]:
            keeps.append(INPUT if i == 1 else Keep("new", tensor=Tensor(size)))
        if grad:
            keeps.append(Keep("input", i))
        grad = grad or layer.grads[i]
        size = max(size, layer.inputs[i].elements)
    return Effect(tuple(keeps))


def _reshape(layer: Layer) -> Effect:
    # A view of a contiguous input; a strided one (after a permute) is copied, keeping nothing.
    return VIEW if layer.contiguous[0] else NOTHING


def _rescaling(layer: Layer) -> Effect:
    # × a number keeps nothing; × one number per channel keeps that float32 tensor.
    scale = layer.opts["scale"]
    if isinstance(scale, list):
        return Effect((Keep("new", tensor=Tensor(0, fixed=len(scale), item=4)),))
    return NOTHING


def _layer_scale(layer: Layer) -> Effect:
    return Effect((INPUT,) if layer.trains else ())


@dataclass(frozen=True)
class Rule:
    """One layer type: what it keeps for backward, and how many parameter tensors it trains
    (the optimizer keeps Adam's ``step`` per tensor)."""

    saves: Callable[[Layer], Effect]
    tensors: Callable[[Node], int] = lambda node: 0


def _weights(extra: int) -> Callable[[Node], int]:
    return lambda node: extra + bool(node.opts.get("bias"))


def _bn_tensors(node: Node) -> int:
    o = node.opts
    return int(bool(o["scale"])) + int(bool(o["center"])) if o["affine"] else 0


def _affine_pair(node: Node) -> int:
    """A normalisation's trained tensors: its weight and bias, with ``affine``."""
    return 2 if node.opts["affine"] else 0


def _always(effect: Effect) -> Callable[[Layer], Effect]:
    return lambda layer: effect


#: Layer type → its rule. Every type of cnncli.model.layers.LAYER_TYPES has one (a test checks).
RULES: dict[str, Rule] = {
    **{f"conv{n}d": Rule(_conv, _weights(1)) for n in (1, 2, 3)},
    **{f"depthwise_conv{n}d": Rule(_conv, _weights(1)) for n in (1, 2, 3)},
    **{f"convtranspose{n}d": Rule(_convtranspose, _weights(1)) for n in (1, 2, 3)},
    **{f"separable_conv{n}d": Rule(_separable, _weights(2)) for n in (1, 2)},
    **{f"maxpool{n}d": Rule(_maxpool) for n in (1, 2, 3)},
    **{f"avgpool{n}d": Rule(_avgpool) for n in (1, 2, 3)},
    # constant_pad_nd keeps nothing; a crop is a strided view of its input.
    **{f"zeropad{n}d": Rule(_always(NOTHING)) for n in (1, 2, 3)},
    **{f"cropping{n}d": Rule(_always(Effect(view=True, contiguous=False))) for n in (1, 2, 3)},
    "dense": Rule(_dense, _weights(1)),
    "global_avgpool": Rule(_global_pool),
    "global_maxpool": Rule(_global_pool),
    "adaptive_avgpool": Rule(_adaptive_pool),
    "adaptive_maxpool": Rule(_adaptive_pool),
    "batchnorm": Rule(_batchnorm, _bn_tensors),
    "layernorm": Rule(_layernorm, _affine_pair),
    "layer_scale": Rule(_layer_scale, lambda node: 1),
    "groupnorm": Rule(_groupnorm, _affine_pair),
    "instancenorm": Rule(_instancenorm, _affine_pair),
    "prelu": Rule(_prelu, lambda node: 1),
    "lrn": Rule(_lrn),
    # A copy through reshapes and a permute (PyTorch's pixel shuffle, cnncli's DCR build).
    "pixel_shuffle": Rule(_always(NOTHING)),
    "pixel_unshuffle": Rule(_always(NOTHING)),
    # cnncli's PyTorch build of Keras's Normalization returns its input (statistics as buffers).
    "normalization": Rule(_always(VIEW)),
    "rescaling": Rule(_rescaling),
    "reshape": Rule(_reshape),
    "flatten": Rule(_reshape),
    "permute": Rule(_always(Effect(view=True, contiguous=False))),
    "identity": Rule(_always(VIEW)),
    "split": Rule(_always(VIEW)),  # torch.chunk / torch.split: views of the input
    "mean": Rule(_always(NOTHING)),  # mean's backward needs sizes only
    "upsample": Rule(_always(NOTHING)),  # as do nearest, linear and cubic interpolation
    "add": Rule(_always(NOTHING)),
    "concat": Rule(_always(NOTHING)),
    "channel_shuffle": Rule(_always(NOTHING)),
    "multiply": Rule(_multiply),
    "dropout": Rule(_dropout),
    "stochastic_depth": Rule(_stochastic_depth),
    "activation": Rule(_named_activation),
    **{a: Rule(_named_activation) for a in (*_SAVES_OUTPUT, *_SAVES_INPUT)},
    # An operator cnncli does not know: what it keeps is unknown, and the total says so.
    "opaque": Rule(_always(NOTHING)),
}


# ------------------------------------------------------------------------------------------
# The walk: layers in order, storages shared between views, each kept storage counted once
# ------------------------------------------------------------------------------------------


@dataclass
class _Walk:
    """Where each layer's output lives (a storage key), which outputs require grad."""

    storage: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, Tensor] = field(default_factory=dict)
    grad: dict[str, bool] = field(default_factory=dict)
    contiguous: dict[str, bool] = field(default_factory=dict)
    kept: set[str] = field(default_factory=set)
    inputs: set[str] = field(default_factory=set)
    not_counted: dict[str, int] = field(default_factory=dict)

    def new(self, key: str, tensor: Tensor) -> str:
        self.sizes[key] = tensor
        return key


def _trains(node: Node) -> bool:
    out = node.out
    return out is not None and out.trainable > 0 and not node.opts.get("shared")


def _step(w: _Walk, node: Node, shapes: tuple[TShape, ...]) -> None:
    """One layer: where its output lives, and the storages it keeps."""
    out = node.out
    assert out is not None
    name = node.name
    if node.is_input:
        w.storage[name] = w.new(name, Tensor(out.shape.elements))
        w.grad[name], w.contiguous[name] = False, True
        w.inputs.add(name)
        return
    ins = node.inputs
    first = ins[0]
    if node.hidden or node.kind is SPLIT_OUTPUT:
        # A switched-off layer passes its input on; a split's output is a view of the split.
        w.storage[name], w.grad[name] = w.storage[first], w.grad[first]
        w.contiguous[name] = w.contiguous[first] and node.kind is not SPLIT_OUTPUT
        return
    trains = _trains(node)
    grad = trains or any(w.grad[i] for i in ins)
    layer = Layer(
        node,
        shapes,
        tuple(w.grad[i] for i in ins),
        tuple(w.contiguous[i] for i in ins),
        trains,
    )
    effect = RULES[node.kind.name].saves(layer) if grad else NOTHING
    if node.kind.name == "opaque":
        op = str(node.opts["op"])
        w.not_counted[op] = w.not_counted.get(op, 0) + 1
    if effect.view:
        w.storage[name] = w.storage[first]
    else:
        w.storage[name] = w.new(name, Tensor(out.shape.elements))
    w.grad[name] = grad
    w.contiguous[name] = effect.contiguous and (w.contiguous[first] or not effect.view)
    for k, keep in enumerate(effect.keeps):
        w.kept.add(_resolve(w, node, keep, k))


def _out(node: Node) -> TShape:
    assert node.out is not None
    return node.out.shape


def _resolve(w: _Walk, node: Node, keep: Keep, k: int) -> str:
    """The storage key of one kept tensor."""
    if keep.what == "input":
        return w.storage[node.inputs[keep.index]]
    if keep.what == "output":
        return w.storage[node.name]
    if keep.what == "pre":
        assert node.out is not None
        return w.new(f"{node.name}:pre", Tensor(node.out.shape.elements))
    assert keep.tensor is not None
    return w.new(f"{node.name}:{k}", keep.tensor)


def training_memory(
    summary: Summary,
    batch: int = 1,
    optimizer: Optimizer = DEFAULT_OPTIMIZER,
    dtype: DType = DType.FLOAT32,
) -> TrainingMemory:
    """The memory one training step of ``summary``'s model holds (see the module's docstring)."""
    item = ITEM_BYTES[dtype]
    w = _Walk()
    by_name = {n.name: n for n in summary.nodes}
    for node in summary.nodes:
        _step(w, node, tuple(_out(by_name[i]) for i in node.inputs))
    input_keys = {w.storage[i] for i in w.inputs}
    activations = sum(w.sizes[k].bytes(batch, item) for k in w.kept - input_keys)
    t = summary.totals
    layers = [
        n for n in summary.nodes if not n.is_input and not n.hidden and n.kind is not SPLIT_OUTPUT
    ]
    counters = sum(
        COUNTER_BYTES
        for n in layers
        if n.kind.name == "batchnorm" and n.opts["track_running_stats"]
    )
    tensors = sum(RULES[n.kind.name].tensors(n) for n in layers if _trains(n))
    copies = STATE_COPIES[optimizer]
    steps = STEP_BYTES * tensors if optimizer in (Optimizer.ADAM, Optimizer.ADAMW) else 0
    return TrainingMemory(
        batch=batch,
        optimizer=optimizer,
        dtype=dtype,
        parameter_bytes=t.params * item + counters,
        gradient_bytes=t.trainable_params * item,
        optimizer_bytes=copies * t.trainable_params * item + steps,
        activation_bytes=activations,
        input_bytes=sum(w.sizes[k].bytes(batch, item) for k in input_keys),
        not_counted=w.not_counted,
        warnings=_untrainable(layers, batch),
    )


def _untrainable(layers: list[Node], batch: int) -> tuple[str, ...]:
    """The normalisations PyTorch refuses in train mode at this batch: batchnorm with one value
    per channel (batch × positions = 1: "Expected more than 1 value per channel when
    training"), instance norm with one position ("Expected more than 1 spatial element")."""
    found: list[str] = []
    for n in layers:
        if not n.inputs or n.out is None:
            continue
        positions = n.out.shape.elements // n.out.shape.channels
        kind = n.kind.name
        if kind == "batchnorm" and batch * positions == 1:
            found.append(
                f"layer {n.name!r} (batchnorm) normalises one value per channel at batch "
                f'{batch}: PyTorch refuses to train it ("Expected more than 1 value per channel '
                'when training"); use --batch 2 or more'
            )
        elif kind == "instancenorm" and positions == 1:
            found.append(
                f"layer {n.name!r} (instancenorm) normalises a single position: PyTorch refuses "
                'to train it ("Expected more than 1 spatial element when training")'
            )
    return tuple(found)
