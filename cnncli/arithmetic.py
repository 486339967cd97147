"""Convolution arithmetic: the one place that knows how a layer maps input size to output size.

Pure Python, no numpy: ``cnncli shape`` and ``cnncli summary`` import this on their fast path, and
``cnncli filter`` asks it for the output size and the padding of every image it filters.

Per spatial axis, an input of ``n`` through a kernel ``k`` with stride ``s`` and dilation ``d``
(effective kernel ``k' = d·(k−1)+1``) and padding ``before``/``after`` gives

* convolution and pooling: ``⌊(n + before + after − k') / s⌋ + 1`` (PyTorch's ``ceil_mode`` takes the
  ceiling instead, then drops a last window that would start past the input and the left padding);
* transposed convolution: ``(n − 1)·s − before − after + k' + output_padding``.

Named padding modes are split exactly as each framework splits them (see :func:`resolve`), and a
combination a framework refuses raises :class:`~cnncli.errors.ShapeError` with that framework's rule.

What each framework name stands for (checked against PyTorch 2.13, TensorFlow 2.21 and Keras 3.15
on its TensorFlow backend, by forward passes on probe inputs):

* ``torch``: ``nn.Conv{1,2,3}d``, ``nn.ConvTranspose{1,2,3}d``, ``nn.MaxPool{1,2,3}d``,
  ``nn.AvgPool{1,2,3}d`` (asymmetric convolution padding: ``F.pad`` first);
* ``tf``: the ``tf.nn`` ops ``conv1d/conv2d/conv3d``, ``conv{1,2,3}d_transpose`` given the output
  shape Keras computes for the same layer (explicit padding subtracted), ``max_pool{1,2,3}d``
  and ``avg_pool{1,2,3}d``;
* ``keras``: the layers ``Conv{1,2,3}D``, ``Conv{1,2,3}DTranspose``, ``MaxPooling{1,2,3}D``,
  ``AveragePooling{1,2,3}D``, and (``depthwise=True``) ``DepthwiseConv{1,2}D`` and
  ``SeparableConv{1,2}D``.

TensorFlow's CPU kernels answer differently with and without oneDNN (``TF_ENABLE_ONEDNN_OPTS``,
on by default only on some x86 CPUs). cnncli answers what TensorFlow computes with oneDNN, and
:attr:`Geometry.without_onednn` says what the plain kernels do where that differs; refusals say
so in their message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TypeVar

from cnncli.enums import FRAMEWORK_LABEL, Framework, Op, PadMode, Solve
from cnncli.errors import ShapeError, UsageError

# Re-exported: callers say ar.Op.
__all__ = ["FRAMEWORK_LABEL", "Framework", "Op", "PadMode", "Solve"]

#: Largest size, kernel, stride, dilation or padding accepted: the int32 limit frameworks use.
MAX_VALUE = 2**31 - 1

#: Above this many window taps, coverage of the input is not counted tap by tap.
_COVERAGE_BRUTE_FORCE_LIMIT = 200_000


#: Explicit padding: one ``(before, after)`` pair per spatial axis.
Explicit = tuple[tuple[int, int], ...]


def axis_names(ndim: int) -> tuple[str, ...]:
    """Names of the spatial axes in input order: ``L`` (1-D), ``H W`` (2-D), ``D H W`` (3-D)."""
    return {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}[ndim]


def effective_kernel(kernel: int, dilation: int) -> int:
    """The span of a dilated kernel: ``d·(k−1)+1``."""
    return dilation * (kernel - 1) + 1


@dataclass(frozen=True)
class LayerSpec:
    """A validated sliding-window layer; build it with :func:`make_spec`."""

    input_size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: PadMode | Explicit
    op: Op = Op.CONV
    framework: Framework = Framework.TORCH
    ceil_mode: bool = False
    #: ``None`` when not given (Keras then infers the output size from the padding mode).
    output_padding: tuple[int, ...] | None = None
    #: A depthwise (or separable) convolution: Keras's DepthwiseConv/SeparableConv rules.
    depthwise: bool = False

    @property
    def ndim(self) -> int:
        return len(self.input_size)


@dataclass(frozen=True)
class AxisGeometry:
    """What one spatial axis of a layer does."""

    name: str
    input: int
    output: int
    kernel: int
    stride: int
    dilation: int
    #: Padding applied before/after the input (for transposed convolution: cropped from the
    #: full output ``(n−1)·s + k'``, PyTorch's ``padding``).
    pad_before: int
    pad_after: int
    #: Transposed convolution only: size added after the full output (PyTorch's
    #: ``output_padding``; for TensorFlow and Keras, whatever their output length leaves past it).
    output_padding: int = 0
    #: Input positions at the end that no window touches (what the floor drops).
    uncovered_end: int = 0
    #: All input positions no window touches, including gaps between windows; None if not counted.
    uncovered_total: int | None = 0

    @property
    def effective_kernel(self) -> int:
        return effective_kernel(self.kernel, self.dilation)


@dataclass(frozen=True)
class WithoutOneDnn:
    """What TensorFlow's CPU kernels do without oneDNN (``TF_ENABLE_ONEDNN_OPTS=0``) where that
    differs from what they do with it (the answer cnncli shows): a refusal, or another padding."""

    #: TensorFlow's error message, when the plain kernels refuse the layer.
    refusal: str | None = None
    #: (before, after) per axis, when only the placement differs (negative: positions skipped).
    padding: Explicit | None = None


@dataclass(frozen=True)
class Geometry:
    """The resolved layer: one :class:`AxisGeometry` per spatial axis, in input order."""

    spec: LayerSpec
    axes: tuple[AxisGeometry, ...]
    notes: tuple[str, ...] = field(default=())
    #: TensorFlow and Keras only: where the answer depends on oneDNN, the answer without it.
    without_onednn: WithoutOneDnn | None = None

    @property
    def output_size(self) -> tuple[int, ...]:
        return tuple(a.output for a in self.axes)

    @property
    def padding(self) -> Explicit:
        return tuple((a.pad_before, a.pad_after) for a in self.axes)


# --------------------------------------------------------------------------------------------
# Building a spec: broadcasting and validation of user values (usage errors, exit 2)
# --------------------------------------------------------------------------------------------

_E = TypeVar("_E", bound=StrEnum)

IntOrSeq = int | Sequence[int]
PaddingArg = str | int | Sequence[int] | Sequence[Sequence[int]] | PadMode | None


def _check_int(value: object, what: str, minimum: int, axis: str = "") -> int:
    where = f" on axis {axis}" if axis else ""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{what}{where} must be a whole number, got {value!r}")
    if value < minimum:
        fix = "a positive whole number" if minimum == 1 else f"a whole number ≥ {minimum}"
        raise UsageError(f"{what} {value}{where} is not allowed; use {fix}")
    if value > MAX_VALUE:
        raise UsageError(
            f"{what} {value}{where} is larger than {MAX_VALUE}, the largest size frameworks index"
        )
    return value


def per_axis(value: IntOrSeq, ndim: int, what: str, minimum: int = 1) -> tuple[int, ...]:
    """Broadcast one value to every axis, or check a per-axis list has one value per axis."""
    if isinstance(value, int):
        return (_check_int(value, what, minimum),) * ndim
    values = tuple(value)
    if len(values) == 1:
        return (_check_int(values[0], what, minimum),) * ndim
    if len(values) != ndim:
        raise UsageError(
            f"{what} has {len(values)} values but the input has {ndim} spatial "
            f"ax{'is' if ndim == 1 else 'es'} ({' '.join(axis_names(ndim))}); "
            f"give one value or {ndim}"
        )
    return tuple(
        _check_int(v, what, minimum, n) for v, n in zip(values, axis_names(ndim), strict=True)
    )


def _padding(value: PaddingArg, ndim: int, framework: Framework) -> PadMode | Explicit:
    if value is None:  # each framework's own default: padding=0 (PyTorch), 'valid' (TF, Keras)
        return ((0, 0),) * ndim if framework is Framework.TORCH else PadMode.VALID
    if isinstance(value, str):
        try:
            return PadMode(value.lower())
        except ValueError:
            raise UsageError(
                f"unknown padding {value!r}; use a number, before:after pairs, or one of "
                + ", ".join(m.value for m in PadMode)
            ) from None
    if isinstance(value, int):
        p = _check_int(value, "padding", 0)
        return ((p, p),) * ndim
    items: list[int | Sequence[int]] = list(value)
    pairs: list[tuple[int, int]] = []
    for item in items:
        if isinstance(item, int):
            p = _check_int(item, "padding", 0)
            pairs.append((p, p))
            continue
        pair: tuple[int, ...] = tuple(item)
        if len(pair) != 2:
            raise UsageError(f"padding {list(pair)} is not a before:after pair; write e.g. 1:2")
        pairs.append(
            (_check_int(pair[0], "padding before", 0), _check_int(pair[1], "padding after", 0))
        )
    if len(pairs) == 1:
        pairs *= ndim
    if len(pairs) != ndim:
        raise UsageError(
            f"padding has {len(pairs)} values but the input has {ndim} spatial axes; give one or {ndim}"
        )
    return tuple(pairs)


def _choice(enum: type[_E], value: str, what: str) -> _E:
    """``value`` as a member of ``enum``, or a usage error listing the members."""
    try:
        return enum(value)
    except ValueError:
        raise UsageError(
            f"unknown {what} {value!r}; use one of {', '.join(m.value for m in enum)}"
        ) from None


def _check_input_size(input_size: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(input_size)
    if not 1 <= len(sizes) <= 3:
        raise UsageError(f"give 1, 2 or 3 spatial sizes (L, H W or D H W), got {len(sizes)}")
    names = axis_names(len(sizes))
    return tuple(_check_int(v, "input size", 1, n) for v, n in zip(sizes, names, strict=True))


def _refuse_output_padding_option(op: Op, given: bool) -> None:
    if given and op is not Op.CONVTRANSPOSE:
        raise UsageError(
            "{opt:output-padding} applies only to {opt:op} convtranspose; drop it or change {opt:op}"
        )


def _refuse_pool_options(
    op: Op, framework: Framework, ceil_mode: bool, dilations: tuple[int, ...]
) -> None:
    """ceil_mode and dilation where the framework's layer has none."""
    label = FRAMEWORK_LABEL[framework]
    if ceil_mode and not op.is_pool:
        raise UsageError(
            "{opt:ceil-mode} applies only to pooling ({opt:op} maxpool or avgpool); drop it"
        )
    if ceil_mode and framework is not Framework.TORCH:
        raise UsageError(
            f"{label} pooling has no ceil_mode; use {{opt:padding}} same, or {{opt:framework}} torch"
        )
    dilated = any(d != 1 for d in dilations)
    if op is Op.AVGPOOL and dilated:
        raise UsageError("average pooling has no dilation in any framework; drop {opt:dilation}")
    if op.is_pool and framework is not Framework.TORCH and dilated:
        raise UsageError(f"{label} pooling has no dilation; drop {{opt:dilation}}")


def make_spec(
    input_size: Sequence[int],
    kernel: IntOrSeq,
    *,
    stride: IntOrSeq | None = None,
    dilation: IntOrSeq = 1,
    padding: PaddingArg = None,
    op: Op | str = Op.CONV,
    framework: Framework | str = Framework.TORCH,
    ceil_mode: bool = False,
    output_padding: IntOrSeq | None = None,
    depthwise: bool = False,
) -> LayerSpec:
    """Validate and broadcast user values into a :class:`LayerSpec`.

    ``stride`` defaults to 1 for convolutions and to the kernel for pooling (as in PyTorch and
    Keras); ``padding`` defaults to none (``valid``). ``depthwise`` marks a depthwise or
    separable convolution (Keras treats those apart). Raises :class:`UsageError` for malformed
    values and for options that do not apply to ``op``.
    """
    op = _choice(Op, op, "op")
    framework = _choice(Framework, framework, "framework")
    sizes = _check_input_size(input_size)
    ndim = len(sizes)
    kernels = per_axis(kernel, ndim, "kernel")
    strides = (
        kernels
        if stride is None and op.is_pool
        else per_axis(1 if stride is None else stride, ndim, "stride")
    )
    dilations = per_axis(dilation, ndim, "dilation")
    pad = _padding(padding, ndim, framework)
    _refuse_output_padding_option(op, output_padding is not None)
    out_pad = (
        None if output_padding is None else per_axis(output_padding, ndim, "output padding", 0)
    )
    _refuse_pool_options(op, framework, ceil_mode, dilations)
    if depthwise and op is not Op.CONV:
        raise UsageError(f"a depthwise layer is a convolution, not {op.value}")
    return LayerSpec(
        sizes, kernels, strides, dilations, pad, op, framework, ceil_mode, out_pad, depthwise
    )


# --------------------------------------------------------------------------------------------
# Resolving: per-axis padding and output size, with each framework's rules (ShapeError, exit 1)
# --------------------------------------------------------------------------------------------


def op_name(spec: LayerSpec) -> str:
    """The op or layer a spec stands for: ``tf.nn.conv2d``, ``Keras Conv2DTranspose``,
    ``PyTorch MaxPool3d``."""
    n = spec.ndim
    if spec.framework is Framework.TF:
        return {
            Op.CONV: f"tf.nn.conv{n}d",
            Op.CONVTRANSPOSE: f"tf.nn.conv{n}d_transpose",
            Op.MAXPOOL: f"tf.nn.max_pool{n}d",
            Op.AVGPOOL: f"tf.nn.avg_pool{n}d",
        }[spec.op]
    if spec.framework is Framework.KERAS:
        if spec.depthwise:
            return f"Keras DepthwiseConv{n}D/SeparableConv{n}D"
        return (
            "Keras "
            + {
                Op.CONV: f"Conv{n}D",
                Op.CONVTRANSPOSE: f"Conv{n}DTranspose",
                Op.MAXPOOL: f"MaxPooling{n}D",
                Op.AVGPOOL: f"AveragePooling{n}D",
            }[spec.op]
        )
    return (
        "PyTorch "
        + {
            Op.CONV: f"Conv{n}d",
            Op.CONVTRANSPOSE: f"ConvTranspose{n}d",
            Op.MAXPOOL: f"MaxPool{n}d",
            Op.AVGPOOL: f"AvgPool{n}d",
        }[spec.op]
    )


def _strided_and_dilated(spec: LayerSpec) -> bool:
    return any(s > 1 for s in spec.stride) and any(d > 1 for d in spec.dilation)


def _refuse_stride_with_dilation(spec: LayerSpec) -> None:
    """Keras Conv and ConvTranspose layers refuse strides > 1 with dilation_rate > 1, on any
    axes. DepthwiseConv and SeparableConv compute it (at stride 1, then subsampled), and
    tf.nn.conv1d/conv2d accept it."""
    if spec.framework is not Framework.KERAS or spec.depthwise or spec.op.is_pool:
        return
    if _strided_and_dilated(spec):
        raise ShapeError(
            f"Keras refuses stride > 1 together with dilation > 1 in {op_name(spec)[6:]} "
            f"(stride {_fmt(spec.stride)}, dilation {_fmt(spec.dilation)}); "
            "use stride 1 or dilation 1, or {opt:framework} torch"
        )


def _refuse_causal(spec: LayerSpec) -> None:
    """Causal padding: 1-D only; in Keras only Conv1D has it, and tf.nn has none."""
    if spec.padding is not PadMode.CAUSAL:
        return
    if spec.ndim != 1:
        raise ShapeError(
            f"causal padding exists only for 1-D inputs, this input is {spec.ndim}-D; "
            "use {opt:padding} same or valid"
        )
    op, name = spec.op, op_name(spec)
    if spec.framework is Framework.TF:
        fix = (
            f"pad {effective_kernel(spec.kernel[0], spec.dilation[0]) - 1} before with tf.pad "
            "and use {opt:padding} valid, or use {opt:framework} keras (Conv1D padding='causal')"
            if op is Op.CONV
            else "use {opt:padding} valid or same"
        )
        raise ShapeError(f"{name} has no causal padding (TensorFlow's ops take none); {fix}")
    keras_other = spec.framework is Framework.KERAS and (op.is_pool or spec.depthwise)
    if op is Op.CONVTRANSPOSE or keras_other:
        raise ShapeError(f"{name} has no causal padding; use {{opt:padding}} valid or same")


def _refuse_full(spec: LayerSpec) -> None:
    """'full' padding: not in Keras, not for PyTorch's transposed convolution (for tf it is
    explicit padding d·(k−1) on both sides, where the op takes explicit padding)."""
    if spec.padding is not PadMode.FULL:
        return
    # 'full' of a 1-wide (effective) kernel pads nothing: 'valid' in every framework.
    keras = spec.framework is Framework.KERAS and _nonzero_explicit(_explicit_pairs(spec) or ())
    torch_transposed = spec.framework is Framework.TORCH and spec.op is Op.CONVTRANSPOSE
    if keras or torch_transposed:
        who = "Keras" if keras else "transposed convolution"
        raise ShapeError(
            f"{who} has no 'full' padding; use {{opt:padding}} valid or same, or explicit padding"
        )


def _refuse_keras_explicit(spec: LayerSpec) -> None:
    """Keras layers take a padding mode, never numbers."""
    pad = spec.padding
    if spec.framework is not Framework.KERAS or not _nonzero_explicit(pad):
        return
    assert isinstance(pad, tuple)
    raise ShapeError(
        "Keras layers take padding 'valid' or 'same' only; add a ZeroPadding layer with "
        f"{_fmt_pairs(pad)} before a 'valid' layer, or use {{opt:framework}} torch"
    )


#: The tf.nn ops that take explicit (before, after) padding: (op, spatial axes).
_TF_EXPLICIT = frozenset({(Op.CONV, 2), (Op.CONVTRANSPOSE, 2), (Op.MAXPOOL, 1), (Op.MAXPOOL, 2)})


def _explicit_pairs(spec: LayerSpec) -> Explicit | None:
    """The padding as explicit pairs when it is given as numbers or 'full'; None for a mode."""
    pad = spec.padding
    if pad is PadMode.FULL:
        return tuple(
            (effective_kernel(k, d) - 1,) * 2
            for k, d in zip(spec.kernel, spec.dilation, strict=True)
        )
    return pad if isinstance(pad, tuple) else None


def _refuse_tf_explicit(spec: LayerSpec) -> None:
    """Explicit padding exists only for tf.nn.conv2d, conv2d_transpose and max_pool1d/2d."""
    pairs = _explicit_pairs(spec)
    if spec.framework is not Framework.TF or pairs is None or not _nonzero_explicit(pairs):
        return
    if (spec.op, spec.ndim) in _TF_EXPLICIT:
        return
    what = "'full'" if spec.padding is PadMode.FULL else f"explicit padding {_fmt_pairs(pairs)}"
    fix = {
        Op.CONV: "pad first with tf.pad and use {opt:padding} valid, or use {opt:framework} torch",
        Op.CONVTRANSPOSE: "use {opt:padding} valid and crop the output after, or "
        "{opt:framework} torch",
    }.get(spec.op, "use {opt:padding} valid or same")
    raise ShapeError(
        f"{op_name(spec)} takes padding 'VALID' or 'SAME' only, not {what} (explicit pairs "
        f"exist for tf.nn.conv2d, conv2d_transpose, max_pool1d and max_pool2d); {fix}"
    )


def _refuse_tf_pool_window(spec: LayerSpec) -> None:
    """tf.nn.max_pool: each explicit pad must be smaller than the window."""
    pairs = _explicit_pairs(spec)
    if spec.framework is not Framework.TF or spec.op is not Op.MAXPOOL or pairs is None:
        return
    for name, (before, after), k in zip(axis_names(spec.ndim), pairs, spec.kernel, strict=True):
        if max(before, after) >= k:
            raise ShapeError(
                f"{op_name(spec)} refuses padding {before}:{after} on axis {name}: each side must "
                f'be smaller than the window {k} ("padding {max(before, after)} needs to be '
                f'smaller than the window size {k}"); use {{opt:padding}} {k - 1} or less'
            )


def _refuse_tf_transposed_explicit_dilated(spec: LayerSpec) -> None:
    """tf.nn.conv2d_transpose with explicit padding and dilation > 1: refused with and without
    oneDNN (oneDNN takes over only the 'VALID' and 'SAME' cases)."""
    pairs = _explicit_pairs(spec)
    if spec.framework is not Framework.TF or spec.op is not Op.CONVTRANSPOSE or pairs is None:
        return
    if _nonzero_explicit(pairs) and any(d > 1 for d in spec.dilation):
        raise ShapeError(
            f"{op_name(spec)} refuses dilation {_fmt(spec.dilation)} together with explicit "
            f'padding {_fmt_pairs(pairs)} on the CPU ("{_PLAIN_TRANSPOSED_DILATION[2]}"); '
            "use {opt:padding} valid or same, or dilation 1"
        )


def _refuse_torch_padding(spec: LayerSpec) -> None:
    """PyTorch's padding rules: 'same' only for unstrided convolution, integers elsewhere,
    both sides equal outside convolution."""
    if spec.framework is not Framework.TORCH:
        return
    op, pad = spec.op, spec.padding
    if pad is PadMode.SAME and op is Op.CONV and any(s > 1 for s in spec.stride):
        raise ShapeError(
            f"PyTorch refuses padding='same' with stride {_fmt(spec.stride)} "
            "(\"padding='same' is not supported for strided convolutions\"); "
            "use {opt:framework} tf for TensorFlow's SAME (output ⌈n/s⌉) or explicit padding"
        )
    if isinstance(pad, PadMode) and op is Op.CONVTRANSPOSE:
        raise ShapeError(
            f"PyTorch transposed convolution takes integer padding only, not '{pad.value}'; "
            "use {opt:padding} N (0 for none)"
        )
    if pad is PadMode.SAME and op is not Op.CONV:
        raise ShapeError(
            f"PyTorch {op.value} takes integer padding only, not 'same'; "
            "use {opt:solve} padding {opt:target} N to find it, or {opt:framework} tf"
        )
    if isinstance(pad, tuple) and op is not Op.CONV and any(b != a for b, a in pad):
        raise ShapeError(
            f"PyTorch {op.value} pads both sides equally, but padding {_fmt_pairs(pad)} is "
            "asymmetric; pad first with nn.ZeroPad (F.pad) and use padding 0"
        )


def _refuse_torch_avgpool3d_small_input(spec: LayerSpec) -> None:
    # avg_pool3d alone checks the unpadded input against the kernel (PyTorch 2.13).
    if spec.framework is not Framework.TORCH or spec.op is not Op.AVGPOOL or spec.ndim != 3:
        return
    for name, n, k in zip(axis_names(3), spec.input_size, spec.kernel, strict=True):
        if n < k:
            raise ShapeError(
                f"PyTorch AvgPool3d refuses an input smaller than the kernel: {n} < {k} on axis "
                f"{name} (padding does not count); use a smaller kernel or a larger input"
            )


def _refuse_output_padding(spec: LayerSpec) -> None:
    """Output padding smaller than the stride (PyTorch: than the stride or dilation; Keras
    checks it when the layer is made). TensorFlow checks the output length instead."""
    if spec.op is not Op.CONVTRANSPOSE or spec.output_padding is None:
        return
    if spec.framework is Framework.TF:
        return  # see _transposed_tf: any output length whose convolution gives the input
    torch = spec.framework is Framework.TORCH
    limit_name = "stride or dilation" if torch else "stride"
    for name, op_, s, d in zip(
        axis_names(spec.ndim), spec.output_padding, spec.stride, spec.dilation, strict=True
    ):
        limit = max(s, d) if torch else s
        if op_ >= limit:
            raise ShapeError(
                f"output padding {op_} on axis {name} must be smaller than the {limit_name} "
                f"({limit}); use {{opt:output-padding}} {limit - 1} or less"
            )


def _refuse_keras_depthwise_3d(spec: LayerSpec) -> None:
    if spec.depthwise and spec.framework is Framework.KERAS and spec.ndim == 3:
        raise ShapeError(
            "Keras has no DepthwiseConv3D or SeparableConv3D; use a 1-D or 2-D layer, or "
            "{opt:framework} torch (a Conv3d with groups = channels)"
        )


#: The combinations a framework refuses, checked in this order (the first refusal is reported).
_REFUSALS = (
    _refuse_keras_depthwise_3d,
    _refuse_stride_with_dilation,
    _refuse_causal,
    _refuse_full,
    _refuse_keras_explicit,
    _refuse_tf_explicit,
    _refuse_tf_pool_window,
    _refuse_tf_transposed_explicit_dilated,
    _refuse_torch_padding,
    _refuse_torch_avgpool3d_small_input,
    _refuse_output_padding,
)


def _refuse_framework_combinations(spec: LayerSpec) -> None:
    for refuse in _REFUSALS:
        refuse(spec)


def _nonzero_explicit(pad: PadMode | Explicit) -> bool:
    return isinstance(pad, tuple) and any(p != (0, 0) for p in pad)


def _fmt(values: Sequence[int]) -> str:
    return str(values[0]) if len(set(values)) == 1 else ",".join(map(str, values))


def _fmt_pairs(pairs: Explicit) -> str:
    return ",".join(f"{b}:{a}" for b, a in pairs)


def _same_split(total: int) -> tuple[int, int]:
    """PyTorch and TensorFlow both put the odd extra pixel after."""
    return total // 2, total - total // 2


def _axis_padding(spec: LayerSpec, i: int) -> tuple[int, int]:
    """(before, after) padding of a convolution or pooling axis."""
    pad = spec.padding
    n, s = spec.input_size[i], spec.stride[i]
    keff = effective_kernel(spec.kernel[i], spec.dilation[i])
    if isinstance(pad, tuple):
        return pad[i]
    if pad is PadMode.VALID:
        return 0, 0
    if pad is PadMode.FULL:
        return keff - 1, keff - 1
    if pad is PadMode.CAUSAL:
        return keff - 1, 0
    return same_padding(n, spec.kernel[i], s, spec.dilation[i], spec.framework)


def same_padding(
    n: int, kernel: int, stride: int, dilation: int = 1, framework: Framework = Framework.TF
) -> tuple[int, int]:
    """``(before, after)`` of 'same' padding on one axis, the odd pixel after.

    TensorFlow (and Keras): output ``⌈n/s⌉``, total padding ``max((out−1)·s + k' − n, 0)``.
    PyTorch (stride 1 only): total padding ``k' − 1``.
    """
    keff = effective_kernel(kernel, dilation)
    if framework is Framework.TORCH:
        return _same_split(keff - 1)
    out = -(-n // stride)
    return _same_split(max((out - 1) * stride + keff - n, 0))


def _same_padding_3d_plain(n: int, keff: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 3-D CPU kernels without oneDNN (Conv3D, MaxPool3D, AvgPool3D): the SAME
    total ``(out−1)·s + k' − n`` is not clipped at 0 and is halved toward zero, so when the
    kernel is smaller than the stride the first window starts inside the input (measured on
    TensorFlow 2.21: 8 through kernel 1, stride 4 reads positions 1 and 5, not 0 and 4)."""
    out = -(-n // stride)
    total = (out - 1) * stride + keff - n
    before = total // 2 if total >= 0 else -(-total // 2)
    return before, total - before


def keras_transposed_length(
    n: int, keff: int, stride: int, same: bool, output_padding: int | None
) -> int:
    """Keras's output length of a transposed convolution (``compute_conv_transpose_output_shape``):
    'valid' ``(n−1)·s + max(k', s)`` (with output padding: ``(n−1)·s + k' + op``), 'same' ``n·s``
    (with output padding: ``(n−1)·s + k' mod 2 + op``)."""
    if same:
        return (
            n * stride if output_padding is None else (n - 1) * stride + keff % 2 + output_padding
        )
    extra = max(stride - keff, 0) if output_padding is None else output_padding
    return (n - 1) * stride + keff + extra


def _tf_window_count(padded: int, keff: int, stride: int) -> int:
    """TensorFlow's VALID or explicit output size, ``(padded − k' + s) / s`` in C's integer
    division (toward zero): negative means refused, 0 an empty tensor."""
    q = padded - keff + stride
    return q // stride if q >= 0 else -(-q // stride)


def _tf_transposed_length(spec: LayerSpec, i: int) -> int:
    """The output length cnncli hands to tf.nn.conv*_transpose: Keras's, explicit padding
    subtracted."""
    n, s = spec.input_size[i], spec.stride[i]
    keff = effective_kernel(spec.kernel[i], spec.dilation[i])
    given = None if spec.output_padding is None else spec.output_padding[i]
    same = spec.padding is PadMode.SAME
    before, after = (0, 0) if same else _axis_padding(spec, i)
    return keras_transposed_length(n, keff, s, same, given) - before - after


def _tf_transposed_back(spec: LayerSpec, i: int, m: int) -> int:
    """What TensorFlow's convolution of an output length ``m`` gives: it takes ``m`` only when
    that is the input size."""
    s, keff = spec.stride[i], effective_kernel(spec.kernel[i], spec.dilation[i])
    if spec.padding is PadMode.SAME:
        return -(-m // s)
    before, after = _axis_padding(spec, i)
    return _tf_window_count(m + before + after, keff, s)


def _refuse_tf_transposed_length(spec: LayerSpec) -> None:
    """The output lengths TensorFlow refuses, every axis first checked for a negative length,
    then for one its convolution does not map back to the input, then for 0 (an empty tensor).
    oneDNN returns an empty tensor whenever some length is 0, the size check skipped."""
    lengths = [_tf_transposed_length(spec, i) for i in range(spec.ndim)]
    names = axis_names(spec.ndim)
    for name, m, i in zip(names, lengths, range(spec.ndim), strict=True):
        if m < 0:
            raise ShapeError(
                f"output on axis {name} would be {m}: the output Keras computes, "
                f"{m + sum(_axis_padding(spec, i))}, minus the padding; use less padding"
            )
    for name, m, i in zip(names, lengths, range(spec.ndim), strict=True):
        n, s = spec.input_size[i], spec.stride[i]
        back = _tf_transposed_back(spec, i, m)
        if back == n:
            continue
        same = spec.padding is PadMode.SAME
        odd = effective_kernel(spec.kernel[i], spec.dilation[i]) % 2
        lo = 1 - odd if same else 0
        hi = min(s - odd if same else s - 1, s - 1 if spec.framework is Framework.KERAS else s)
        fix = (
            f"use {{opt:output-padding}} {lo}" + (f" to {hi}" if hi > lo else "")
            if hi >= lo
            else "use an odd kernel, or leave output padding out"
        )
        raise ShapeError(
            f"{op_name(spec)} refuses output size {m} on axis {name}: its "
            f"{'SAME' if same else 'VALID'} convolution of {m} gives {back}, not the input {n} "
            f'("Size of out_backprop doesn\'t match computed"'
            + ("; with oneDNN it returns an empty tensor instead" if 0 in lengths else "")
            + f"); {fix}"
        )
    if 0 in lengths:
        i = lengths.index(0)
        raise ShapeError(
            f"output on axis {names[i]} would be 0: the output Keras computes, "
            f"{sum(_axis_padding(spec, i))}, minus the padding; {op_name(spec)} returns an empty "
            "tensor here; use less padding"
        )


def _transposed_tf(spec: LayerSpec, i: int) -> tuple[int, int, int]:
    """(crop before, crop after, output padding) of a TensorFlow or Keras transposed axis whose
    length TensorFlow takes (see :func:`_refuse_tf_transposed_length`).

    The output length is Keras's (explicit padding subtracted, tf only); TensorFlow crops the
    full output ``(n−1)·s + k'`` where its convolution's padding of that length falls (SAME:
    the odd pixel after).
    """
    n, s = spec.input_size[i], spec.stride[i]
    keff = effective_kernel(spec.kernel[i], spec.dilation[i])
    m = _tf_transposed_length(spec, i)
    if spec.padding is PadMode.SAME:
        before = max((n - 1) * s + keff - m, 0) // 2
    else:
        before = _axis_padding(spec, i)[0]
    past = before + m - ((n - 1) * s + keff)  # > 0: output beyond the full output
    return before, max(-past, 0), max(past, 0)


def _transposed_axis(spec: LayerSpec, i: int) -> tuple[int, int, int]:
    """(crop before, crop after, output padding) of a transposed-convolution axis."""
    if spec.framework is not Framework.TORCH:
        return _transposed_tf(spec, i)
    pad = spec.padding
    before, after = pad[i] if isinstance(pad, tuple) else (0, 0)
    if before != after:
        raise ShapeError(
            f"PyTorch transposed convolution crops both sides equally, but padding on axis "
            f"{axis_names(spec.ndim)[i]} is {before}:{after}; use one number per axis"
        )
    return before, after, 0 if spec.output_padding is None else spec.output_padding[i]


def _pool_limit(spec: LayerSpec, i: int, before: int, after: int) -> None:
    if spec.framework is not Framework.TORCH or not spec.op.is_pool:
        return
    # PyTorch checks the kernel itself, not the dilated one (verified against 2.13 for 1-3 D).
    k = spec.kernel[i]
    if max(before, after) > k // 2:
        raise ShapeError(
            f"PyTorch requires pooling padding at most half the kernel size on axis "
            f"{axis_names(spec.ndim)[i]} (pad {max(before, after)}, kernel {k}); "
            f"use {{opt:padding}} {k // 2} or less"
        )


def _coverage(n: int, out: int, keff: int, s: int, d: int, before: int) -> tuple[int, int | None]:
    """(uncovered at the end, uncovered in all) input positions for a conv/pool axis."""
    last = (out - 1) * s - before + keff - 1
    end = max(0, n - 1 - last)
    if d == 1 and s <= keff:
        return end, end
    if d == 1:
        # Gaps of s − k' between consecutive windows, clipped to the input.
        covered = 0
        for_start = -before
        if out * 1 > _COVERAGE_BRUTE_FORCE_LIMIT:
            return end, None
        for w in range(out):
            lo = max(for_start + w * s, 0)
            hi = min(for_start + w * s + keff - 1, n - 1)
            covered += max(0, hi - lo + 1)
        return end, n - covered
    taps = out * ((keff - 1) // d + 1)
    if taps > _COVERAGE_BRUTE_FORCE_LIMIT or n > _COVERAGE_BRUTE_FORCE_LIMIT:
        return end, None
    seen = bytearray(n)
    for w in range(out):
        for pos in range(w * s - before, w * s - before + keff, d):
            if 0 <= pos < n:
                seen[pos] = 1
    return end, n - sum(seen)


def forward_size(
    n: int, keff: int, s: int, before: int, after: int, ceil_mode: bool = False
) -> int:
    """Output size of a convolution or pooling axis; ≤ 0 when no window fits.

    With ``ceil_mode`` this is PyTorch's rule: round up, then drop the last window if it would start
    at or past the end of the input plus the left padding.
    """
    span = n + before + after - keff
    if not ceil_mode:
        return span // s + 1 if span >= 0 else 0
    # PyTorch's pooling_output_shape: floor division (toward −∞) of span + s − 1, so a window
    # may hang past a too-small input as long as it starts inside it.
    out = (span + s - 1) // s + 1
    if (out - 1) * s >= n + before:
        out -= 1
    return out


def transposed_size(n: int, keff: int, s: int, before: int, after: int, output_padding: int) -> int:
    """Output size of a transposed-convolution axis: ``(n−1)·s − before − after + k' + op``."""
    return (n - 1) * s - before - after + keff + output_padding


def _empty_output_words(spec: LayerSpec) -> str:
    """What TensorFlow or Keras itself does with a layer whose output is empty on some axis:
    Keras's convolutions refuse it; TensorFlow refuses a negative size on any axis, and otherwise
    returns an empty tensor (oneDNN's convolution returns the input's shape instead, and its max
    pooling fails or kills the process, depending on the sizes)."""
    if spec.framework is Framework.TORCH:
        return ""
    if spec.framework is Framework.KERAS and not spec.op.is_pool:
        return '; Keras refuses it ("Computed output size would be zero or negative")'
    counts = []
    for i in range(spec.ndim):
        before, after = _axis_padding(spec, i)
        keff = effective_kernel(spec.kernel[i], spec.dilation[i])
        counts.append(_tf_window_count(spec.input_size[i] + before + after, keff, spec.stride[i]))
    if min(counts) < 0:
        return '; TensorFlow refuses it ("Computed output size would be negative")'
    name = op_name(spec)
    if spec.op is Op.AVGPOOL:
        return f"; {name} returns an empty tensor here"
    onednn = (
        "may fail or kill the process (SIGFPE) instead"
        if spec.op is Op.MAXPOOL
        else "returns a tensor of the input's shape instead"
    )
    return f"; {name} returns an empty tensor here, and with oneDNN {onednn}"


def _forward_axis(spec: LayerSpec, i: int, coverage: bool) -> AxisGeometry:
    """One convolution or pooling axis: padding, output size, coverage, or a ShapeError."""
    name = axis_names(spec.ndim)[i]
    n, k, s, d = spec.input_size[i], spec.kernel[i], spec.stride[i], spec.dilation[i]
    keff = effective_kernel(k, d)
    before, after = _axis_padding(spec, i)
    _pool_limit(spec, i, before, after)
    padded = n + before + after
    out = forward_size(n, keff, s, before, after, spec.ceil_mode)
    if padded < keff and out < 1:
        kdesc = f"kernel {k}" if d == 1 else f"dilated kernel {keff} (kernel {k}, dilation {d})"
        need = keff - n
        fix = (
            f"use padding of at least {need} in total"
            if spec.padding is not PadMode.VALID or spec.framework is Framework.TORCH
            else "use {opt:padding} same"
        )
        raise ShapeError(
            f"{kdesc} is larger than the padded input {padded} on axis {name} "
            f"(input {n} + padding {before}+{after}){_empty_output_words(spec)}; "
            f"{fix}, or a smaller kernel"
        )
    if out < 1:
        raise ShapeError(
            f"output on axis {name} would be {out} (input {n}, kernel {keff}, stride {s}); "
            "use more padding or a smaller kernel"
        )
    end, total = _coverage(n, out, keff, s, d, before) if coverage else (0, None)
    return AxisGeometry(name, n, out, k, s, d, before, after, 0, end, total)


def _transposed_geometry(spec: LayerSpec, i: int) -> AxisGeometry:
    name = axis_names(spec.ndim)[i]
    n, k, s, d = spec.input_size[i], spec.kernel[i], spec.stride[i], spec.dilation[i]
    keff = effective_kernel(k, d)
    before, after, out_pad = _transposed_axis(spec, i)
    out = transposed_size(n, keff, s, before, after, out_pad)
    if out < 1:
        raise ShapeError(
            f"output on axis {name} would be {out}: (n−1)·s − 2p + k' + output_padding = "
            f"({n}−1)·{s} − {before + after} + {keff} + {out_pad}; use less padding"
        )
    return AxisGeometry(name, n, out, k, s, d, before, after, out_pad, 0, 0)


#: TensorFlow's messages where its plain CPU kernels refuse what oneDNN computes.
_PLAIN_CONV3D_DILATION = "CPU implementation of Conv3D currently only supports dilated rates of 1"
#: Conv2DBackpropInput (1-D and 2-D) and Conv3DBackpropInputV2 word it apart.
_PLAIN_TRANSPOSED_DILATION = {
    2: "Current CPU implementations do not yet support dilation rates larger than 1",
    3: "Current CPU implementation does not yet support dilation rates larger than 1",
}
_PLAIN_DEPTHWISE_STRIDES = (
    "Current implementation only supports equal length strides in the row and column dimensions"
)


def _without_onednn(spec: LayerSpec, axes: Sequence[AxisGeometry]) -> WithoutOneDnn | None:
    """Where TensorFlow's plain CPU kernels answer otherwise than with oneDNN (measured on
    TensorFlow 2.21, Keras 3.15; each case is in tests/test_shape_tf.py)."""
    if spec.framework is Framework.TORCH:
        return None
    dilated = any(d > 1 for d in spec.dilation)
    plain_conv = spec.op is Op.CONV and not spec.depthwise
    # Keras's Conv3D goes through tf.nn.convolution, which runs a dilated convolution as an
    # undilated one on a space-to-batch view: only tf.nn.conv3d itself meets the CPU kernel.
    if plain_conv and spec.ndim == 3 and dilated and spec.framework is Framework.TF:
        return WithoutOneDnn(refusal=_PLAIN_CONV3D_DILATION)
    if spec.op is Op.CONVTRANSPOSE and dilated:
        return WithoutOneDnn(refusal=_PLAIN_TRANSPOSED_DILATION[max(spec.ndim, 2)])
    # Keras runs a strided, dilated depthwise convolution at stride 1 (then subsamples).
    uneven = spec.ndim == 2 and len(set(spec.stride)) > 1 and not _strided_and_dilated(spec)
    if spec.depthwise and uneven:
        return WithoutOneDnn(refusal=_PLAIN_DEPTHWISE_STRIDES)
    if spec.ndim == 3 and spec.padding is PadMode.SAME and (plain_conv or spec.op.is_pool):
        plain = tuple(_same_padding_3d_plain(a.input, a.effective_kernel, a.stride) for a in axes)
        if plain != tuple((a.pad_before, a.pad_after) for a in axes):
            return WithoutOneDnn(padding=plain)
    return None


def resolve(spec: LayerSpec, *, coverage: bool = True) -> Geometry:
    """Apply the framework's rules: per-axis padding, output size, coverage, or a ShapeError.

    ``coverage=False`` skips counting the input positions no window reads (for solvers that
    resolve many candidate layers).
    """
    _refuse_framework_combinations(spec)
    if spec.op is Op.CONVTRANSPOSE and spec.framework is not Framework.TORCH:
        _refuse_tf_transposed_length(spec)
    axes = tuple(
        _transposed_geometry(spec, i)
        if spec.op is Op.CONVTRANSPOSE
        else _forward_axis(spec, i, coverage)
        for i in range(spec.ndim)
    )
    plain = _without_onednn(spec, axes)
    notes = _notes(spec) + ((_note_onednn(spec, plain),) if plain else ())
    return Geometry(spec, axes, notes, plain)


def _note_padding_mode(spec: LayerSpec) -> str | None:
    """How the named padding mode was split."""
    pad, label = spec.padding, FRAMEWORK_LABEL[spec.framework]
    if pad is PadMode.SAME and spec.op is not Op.CONVTRANSPOSE:
        if spec.framework is Framework.TORCH:
            return "PyTorch 'same': total padding d·(k−1), the odd pixel after"
        return f"{label} SAME: output ⌈n/s⌉, the odd pixel of padding after"
    if pad is PadMode.FULL:
        return "full: padding d·(k−1) on both sides (PyTorch padding=d·(k−1))"
    if pad is PadMode.CAUSAL:
        return "causal: padding d·(k−1) before, none after (Keras Conv1D padding='causal')"
    return None


def _note_torch_asymmetric(spec: LayerSpec) -> str | None:
    pad = spec.padding
    if spec.framework is not Framework.TORCH or spec.op is not Op.CONV:
        return None
    if isinstance(pad, tuple) and any(b != a for b, a in pad):
        return "asymmetric padding: in PyTorch, F.pad first, then padding=0"
    return None


def _note_tf_transposed(spec: LayerSpec) -> str | None:
    """How TensorFlow and Keras get a transposed convolution's output length and crop."""
    if spec.op is not Op.CONVTRANSPOSE or spec.framework is Framework.TORCH:
        return None
    same = spec.padding is PadMode.SAME
    if spec.output_padding is not None:
        rule = "(n−1)·s + k' mod 2 + output_padding" if same else "(n−1)·s + k' + output_padding"
    else:
        rule = "n·s" if same else "(n−1)·s + max(k', s)"
    explicit = isinstance(spec.padding, tuple) and _nonzero_explicit(spec.padding)
    given = (
        f"{op_name(spec)} given the output shape Keras computes, {rule}"
        + (", minus the padding" if explicit else "")
        if spec.framework is Framework.TF
        else f"{op_name(spec)}: output {rule}"
    )
    crop = "its SAME padding of the output (odd pixel after)" if same else "the padding given"
    return (
        f"{given}; TensorFlow crops the full output (n−1)·s + k' where {crop} falls; "
        "output padding = what it keeps past the full output"
    )


def _note_tf_stride_dilation(spec: LayerSpec) -> str | None:
    tf_conv = spec.framework is Framework.TF and spec.op is Op.CONV and spec.ndim < 3
    if tf_conv and _strided_and_dilated(spec):
        return (
            f"{op_name(spec)} takes stride > 1 with dilation > 1; tf.nn.convolution and "
            "Keras Conv layers refuse it"
        )
    return None


def _note_avgpool_padding(spec: LayerSpec) -> str | None:
    """Whether padded positions count in an average."""
    if spec.op is not Op.AVGPOOL:
        return None
    if spec.framework is Framework.TORCH and _nonzero_explicit(spec.padding):
        return "PyTorch AvgPool counts padded zeros in the average (count_include_pad=True)"
    if spec.padding is PadMode.SAME:
        label = FRAMEWORK_LABEL[spec.framework]
        return f"{label} SAME average pooling leaves padding out of the average"
    return None


def _note_ceil_mode(spec: LayerSpec) -> str | None:
    if spec.ceil_mode:
        return "ceil_mode: the last window may run past the input, but must start inside it"
    return None


def _note_onednn(spec: LayerSpec, plain: WithoutOneDnn) -> str:
    """The answer TensorFlow gives without oneDNN, when it differs."""
    if plain.refusal is not None:
        other = f'it refuses the layer: "{plain.refusal}"'
    else:
        assert plain.padding is not None
        other = (
            "its 3-D kernels pad "
            + ", ".join(
                f"{n} {b} before + {a} after"
                for n, (b, a) in zip(axis_names(spec.ndim), plain.padding, strict=True)
            )
            + " (negative: input positions skipped)"
        )
    return (
        "TensorFlow's CPU answer depends on oneDNN (TF_ENABLE_ONEDNN_OPTS): this is its answer "
        f"with oneDNN; without it, {other}"
    )


#: What a reader of the result should know, in this order.
_NOTES = (
    _note_padding_mode,
    _note_torch_asymmetric,
    _note_tf_transposed,
    _note_tf_stride_dilation,
    _note_avgpool_padding,
    _note_ceil_mode,
)


def _notes(spec: LayerSpec) -> tuple[str, ...]:
    return tuple(note for make in _NOTES if (note := make(spec)) is not None)


# --------------------------------------------------------------------------------------------
# Cost: parameters, MACs, FLOPs
# --------------------------------------------------------------------------------------------


def _prod(values: Sequence[int]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


@dataclass(frozen=True)
class Cost:
    """Parameters and work of one layer (MACs exclude bias; FLOPs = 2·MACs)."""

    in_channels: int
    out_channels: int
    weights: int
    biases: int
    macs: int
    output_elements: int
    groups: int = 1

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def flops(self) -> int:
        return 2 * self.macs


def check_channels(in_channels: int, out_channels: int | None, groups: int) -> None:
    """Channel counts and groups as PyTorch checks them (usage errors)."""
    _check_int(in_channels, "in channels", 1)
    _check_int(groups, "groups", 1)
    if out_channels is not None:
        _check_int(out_channels, "out channels", 1)
    if in_channels % groups:
        raise UsageError(f"in channels {in_channels} must be divisible by groups {groups}")
    if out_channels is not None and out_channels % groups:
        raise UsageError(f"out channels {out_channels} must be divisible by groups {groups}")


def layer_cost(
    geom: Geometry,
    in_channels: int,
    out_channels: int | None = None,
    groups: int = 1,
    bias: bool = True,
) -> Cost:
    """Parameters ``(∏k·Cin/groups + bias)·Cout`` and MACs of a conv layer; pooling has neither.

    A convolution does ``∏out · Cout · ∏k · Cin/groups`` MACs. A transposed convolution is counted
    on its input: ``∏in · Cin · ∏k · Cout/groups`` (each input pixel scatters one kernel).
    """
    op = geom.spec.op
    if op.is_pool:
        if out_channels is not None and out_channels != in_channels:
            raise UsageError(
                f"pooling keeps the channels: out channels {out_channels} ≠ in channels {in_channels}; "
                "drop {opt:out-channels}"
            )
        if groups != 1:
            raise UsageError("{opt:groups} applies only to convolutions; drop it")
        check_channels(in_channels, None, 1)
        return Cost(in_channels, in_channels, 0, 0, 0, _prod(geom.output_size) * in_channels)
    cout = in_channels if out_channels is None else out_channels
    check_channels(in_channels, cout, groups)
    kprod = _prod(geom.spec.kernel)
    weights = kprod * (in_channels // groups) * cout
    biases = cout if bias else 0
    if op is Op.CONVTRANSPOSE:
        macs = _prod(geom.spec.input_size) * in_channels * kprod * (cout // groups)
    else:
        macs = _prod(geom.output_size) * cout * kprod * (in_channels // groups)
    return Cost(in_channels, cout, weights, biases, macs, _prod(geom.output_size) * cout, groups)


@dataclass(frozen=True)
class Layer:
    """A resolved layer and, when its channels are known, its cost."""

    geometry: Geometry
    cost: Cost | None = None


def analyze(
    spec: LayerSpec,
    in_channels: int | None = None,
    out_channels: int | None = None,
    groups: int = 1,
    bias: bool = True,
) -> Layer:
    """:func:`resolve` the layer, and count its cost when ``in_channels`` is given."""
    if in_channels is None and (out_channels is not None or groups != 1):
        raise UsageError("{opt:out-channels} and {opt:groups} need {opt:in-channels}")
    geom = resolve(spec)
    if in_channels is None:
        return Layer(geom)
    return Layer(geom, layer_cost(geom, in_channels, out_channels, groups, bias))


# --------------------------------------------------------------------------------------------
# Receptive field
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Receptive:
    """Receptive field size and jump (distance in input pixels between adjacent outputs)."""

    size: int = 1
    jump: int = 1

    def then(self, kernel: int, stride: int, dilation: int = 1) -> Receptive:
        return Receptive(
            self.size + (effective_kernel(kernel, dilation) - 1) * self.jump, self.jump * stride
        )


# --------------------------------------------------------------------------------------------
# Solving: which padding / output padding / input size gives a target output
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Solution:
    """One axis's answer to a solve."""

    axis: str
    #: padding: (before, after[, output padding]); output padding: (op,); input: (smallest, largest).
    values: tuple[int, ...]
    symmetric: bool = True


def _axis_spec(
    spec: LayerSpec,
    i: int,
    *,
    input_size: int | None = None,
    padding: tuple[int, int] | None = None,
    output_padding: int | None = None,
) -> LayerSpec:
    """Axis ``i`` of the layer alone, with the changes given, so each axis can be solved apart.

    The spec keeps its number of axes (TensorFlow's rules depend on it: tf.nn.conv2d takes
    explicit padding, conv1d none); the other axes become neutral, an input of 1 through a
    kernel of 1 with stride, dilation 1 and no padding.
    """
    ndim = spec.ndim

    def at_i(value: int, neutral: int) -> tuple[int, ...]:
        return tuple(value if j == i else neutral for j in range(ndim))

    pad: PadMode | Explicit = spec.padding
    if padding is None and isinstance(spec.padding, tuple):
        padding = spec.padding[i]
    if padding is not None:
        pad = tuple(padding if j == i else (0, 0) for j in range(ndim))
    if output_padding is None and spec.output_padding is not None:
        output_padding = spec.output_padding[i]
    out_pad = None if output_padding is None else at_i(output_padding, 0)
    return LayerSpec(
        at_i(spec.input_size[i] if input_size is None else input_size, 1),
        at_i(spec.kernel[i], 1),
        at_i(spec.stride[i], 1),
        at_i(spec.dilation[i], 1),
        pad,
        spec.op,
        spec.framework,
        spec.ceil_mode,
        out_pad,
        spec.depthwise,
    )


def _axis_output(spec: LayerSpec, i: int) -> int:
    """Output size of axis ``i`` of an :func:`_axis_spec`, 0 where the layer is refused."""
    try:
        return resolve(spec, coverage=False).axes[i].output
    except ShapeError:
        return 0


def _targets(spec: LayerSpec, target: Sequence[int]) -> tuple[int, ...]:
    return per_axis(list(target), spec.ndim, "target")


def solve_padding(spec: LayerSpec, target: Sequence[int]) -> tuple[Solution, ...]:
    """The padding that gives ``target``: symmetric if one exists, else the smallest asymmetric
    split (odd pixel after). For transposed convolution, the crop (with output padding when the
    total is odd, as PyTorch does it)."""
    if spec.framework is Framework.KERAS:
        raise ShapeError(
            "Keras layers take no explicit padding; solve with {opt:framework} torch or tf "
            "and add a ZeroPadding layer"
        )
    if spec.framework is Framework.TF and (spec.op, spec.ndim) not in _TF_EXPLICIT:
        raise ShapeError(
            f"{op_name(spec)} takes no explicit padding, so there is none to solve for; use "
            "{opt:padding} same (output ⌈n/s⌉), or solve with {opt:framework} torch and pad "
            "first with tf.pad"
        )
    out: list[Solution] = []
    for i, (name, t) in enumerate(zip(axis_names(spec.ndim), _targets(spec, target), strict=True)):
        n, s = spec.input_size[i], spec.stride[i]
        keff = effective_kernel(spec.kernel[i], spec.dilation[i])
        if spec.op is Op.CONVTRANSPOSE:
            full = (n - 1) * s + keff
            crop = full - t
            if crop < 0:
                raise ShapeError(
                    f"no padding gives {t} on axis {name}: the most a transposed convolution gives "
                    f"is {full} without output padding; use {{opt:solve}} output-padding or a larger stride"
                )
            p, extra = -(-crop // 2), crop % 2
            if extra and extra >= max(s, spec.dilation[i]):
                raise ShapeError(
                    f"{t} on axis {name} needs padding {p} with output padding 1, which needs "
                    "stride or dilation > 1; use an even difference or a stride of 2"
                )
            resolve(_axis_spec(spec, i, padding=(p, p), output_padding=extra), coverage=False)
            out.append(Solution(name, (p, p, extra)))
            continue

        # Output grows with total padding P; search the smallest P reaching t.
        def size(total: int, n: int = n, keff: int = keff, s: int = s) -> int:
            b, a = _same_split(total)
            return forward_size(n, keff, s, b, a, spec.ceil_mode)

        lo, hi = 0, max(t * s + keff, 1)
        if size(hi) < t:
            raise ShapeError(f"no padding gives {t} on axis {name}")
        while lo < hi:
            mid = (lo + hi) // 2
            if size(mid) >= t:
                hi = mid
            else:
                lo = mid + 1
        if size(lo) != t:
            raise ShapeError(
                f"no padding gives exactly {t} on axis {name}: padding {lo} gives {size(lo)}"
                + (f", padding {lo - 1} gives {size(lo - 1)}" if lo else "")
                + "; pick another target or stride"
            )
        chosen = next((p for p in (lo, lo + 1) if p % 2 == 0 and size(p) == t), lo)
        before, after = _same_split(chosen)
        resolve(_axis_spec(spec, i, padding=(before, after)), coverage=False)
        out.append(Solution(name, (before, after), before == after))
    return tuple(out)


def solve_output_padding(spec: LayerSpec, target: Sequence[int]) -> tuple[Solution, ...]:
    """The output padding of a transposed convolution that gives ``target``."""
    if spec.op is not Op.CONVTRANSPOSE:
        raise UsageError("{opt:solve} output-padding applies only to {opt:op} convtranspose")
    out: list[Solution] = []
    for i, (name, t) in enumerate(zip(axis_names(spec.ndim), _targets(spec, target), strict=True)):
        one = _axis_spec(spec, i, output_padding=0)
        base = _transposed_length_unchecked(one, i)
        op = t - base
        if op < 0:
            raise ShapeError(
                f"no output padding gives {t} on axis {name}: without it the output is {base}; "
                "change the padding or stride"
            )
        try:
            resolve(_axis_spec(spec, i, output_padding=op), coverage=False)
        except ShapeError as err:
            raise ShapeError(
                f"no output padding gives {t} on axis {name}: it would take output padding "
                f"{op}, and {err}"
            ) from None
        out.append(Solution(name, (op,)))
    return tuple(out)


def _transposed_length_unchecked(spec: LayerSpec, i: int) -> int:
    """The output length of transposed axis ``i`` with output padding 0, before any check."""
    n, s = spec.input_size[i], spec.stride[i]
    keff = effective_kernel(spec.kernel[i], spec.dilation[i])
    pad = spec.padding
    before, after = pad[i] if isinstance(pad, tuple) else (0, 0)
    if spec.framework is Framework.TORCH:
        return transposed_size(n, keff, s, before, after, 0)
    return keras_transposed_length(n, keff, s, pad is PadMode.SAME, 0) - before - after


def solve_input(spec: LayerSpec, target: Sequence[int]) -> tuple[Solution, ...]:
    """The range ``(smallest, largest)`` of input sizes that give ``target``.

    The output never decreases as the input grows, so the sizes that give it form one range.
    """
    out: list[Solution] = []
    for i, (name, t) in enumerate(zip(axis_names(spec.ndim), _targets(spec, target), strict=True)):

        def size(n: int, i: int = i) -> int:
            return _axis_output(_axis_spec(spec, i, input_size=n), i)

        def first_reaching(goal: int) -> int:
            lo, hi = 1, MAX_VALUE
            while lo < hi:
                mid = (lo + hi) // 2
                if size(mid) >= goal:
                    hi = mid
                else:
                    lo = mid + 1
            return lo

        a = first_reaching(t)
        if size(a) != t:
            raise ShapeError(
                f"no input size gives {t} on axis {name}: input {a} gives {size(a)}"
                + (f", input {a - 1} gives {size(a - 1)}" if a > 1 else "")
            )
        b = first_reaching(t + 1)
        last = b - 1 if size(b) > t else b
        out.append(Solution(name, (a, last)))
    return tuple(out)


@dataclass(frozen=True)
class Solved:
    """The answer to :func:`solve`, every axis."""

    what: Solve
    spec: LayerSpec
    #: The wanted output size, one value per axis.
    target: tuple[int, ...]
    solutions: tuple[Solution, ...]
    #: Padding solves: the layer with the padding found (its output is the target).
    geometry: Geometry | None = None

    @property
    def padding(self) -> Explicit:
        """Padding solves: ``(before, after)`` per axis."""
        return tuple((s.values[0], s.values[1]) for s in self.solutions)

    @property
    def output_padding(self) -> tuple[int, ...] | None:
        """The output padding found (output-padding solves), or the one a transposed
        convolution's odd crop needs (padding solves); None otherwise."""
        if self.what is Solve.OUTPUT_PADDING:
            return tuple(s.values[0] for s in self.solutions)
        if self.what is Solve.PADDING and self.spec.op is Op.CONVTRANSPOSE:
            return tuple(s.values[2] for s in self.solutions)
        return None

    @property
    def symmetric(self) -> bool:
        return all(s.symmetric for s in self.solutions)

    @property
    def input_range(self) -> tuple[tuple[int, int], ...]:
        """Input solves: ``(smallest, largest)`` input size per axis."""
        return tuple((s.values[0], s.values[1]) for s in self.solutions)


def solve(spec: LayerSpec, what: Solve | str, target: Sequence[int]) -> Solved:
    """Find the padding, output padding or input size that gives ``target`` (one value, or one
    per axis); a padding solve also resolves the layer with the padding it found."""
    what = _choice(Solve, what, "solve")
    solver = {
        Solve.PADDING: solve_padding,
        Solve.OUTPUT_PADDING: solve_output_padding,
        Solve.INPUT: solve_input,
    }[what]
    solutions = solver(spec, target)  # each solver checks the op and the target first
    found = Solved(what, spec, _targets(spec, target), solutions)
    if what is not Solve.PADDING:
        return found
    final = replace(spec, padding=found.padding, output_padding=found.output_padding)
    return replace(found, geometry=resolve(final))


# --------------------------------------------------------------------------------------------
# Explain: the textbook formula with the user's numbers
# --------------------------------------------------------------------------------------------


def explain(geom: Geometry) -> list[str]:
    """The formula with the numbers substituted, step by step, one list of lines per layer."""
    spec = geom.spec
    lines: list[str] = []
    for a in geom.axes:
        keff = a.effective_kernel
        lines.append(f"axis {a.name}: n={a.input}, k={a.kernel}, s={a.stride}, d={a.dilation}")
        if a.dilation != 1:
            lines.append(
                f"  effective kernel k' = d·(k−1)+1 = {a.dilation}·({a.kernel}−1)+1 = {keff}"
            )
        if spec.op is Op.CONVTRANSPOSE:
            if spec.framework is not Framework.TORCH:
                lines.extend(_explain_tf_transposed(spec, a))
            lines.append(
                f"  out = (n−1)·s − p_before − p_after + k' + output_padding"
                f" = ({a.input}−1)·{a.stride} − {a.pad_before} − {a.pad_after} + {keff} + {a.output_padding}"
                f" = {a.output}"
            )
            continue
        if spec.padding is PadMode.SAME and spec.framework is not Framework.TORCH:
            out = -(-a.input // a.stride)
            lines.append(f"  SAME: out = ⌈n/s⌉ = ⌈{a.input}/{a.stride}⌉ = {out}")
            total = a.pad_before + a.pad_after
            lines.append(
                f"  padding total = max((out−1)·s + k' − n, 0) = max(({out}−1)·{a.stride} + {keff} − "
                f"{a.input}, 0) = {total} → {a.pad_before} before, {a.pad_after} after"
            )
        elif spec.padding is PadMode.SAME:
            lines.append(
                f"  same: padding total = k'−1 = {keff - 1} → {a.pad_before} before, {a.pad_after} after"
            )
        padded = a.input + a.pad_before + a.pad_after
        span = padded - keff
        lines.append(
            f"  padded input = n + p_before + p_after = {a.input} + {a.pad_before} + {a.pad_after} = {padded}"
        )
        if spec.ceil_mode:
            raw = -(-span // a.stride) + 1
            lines.append(
                f"  out = ⌈(n + p_b + p_a − k') / s⌉ + 1 = ⌈{span}/{a.stride}⌉ + 1 = {raw}"
            )
            if raw != a.output:
                lines.append(
                    f"  the last window would start at {(raw - 1) * a.stride} ≥ n + p_before = "
                    f"{a.input + a.pad_before}, outside the input: dropped → {a.output}"
                )
        else:
            lines.append(
                f"  out = ⌊(n + p_before + p_after − k') / s⌋ + 1 = ⌊({padded} − {keff}) / {a.stride}⌋ + 1"
                f" = ⌊{span}/{a.stride}⌋ + 1 = {span // a.stride} + 1 = {a.output}"
            )
            if span % a.stride:
                lines.append(f"  the floor drops a remainder of {span % a.stride}")
    return lines


def _explain_tf_transposed(spec: LayerSpec, a: AxisGeometry) -> list[str]:
    """How TensorFlow and Keras get a transposed axis's output length and where they crop."""
    n, s, keff = a.input, a.stride, a.effective_kernel
    i = axis_names(spec.ndim).index(a.name)
    given = None if spec.output_padding is None else spec.output_padding[i]
    same = spec.padding is PadMode.SAME
    length = keras_transposed_length(n, keff, s, same, given)
    if same and given is None:
        rule = f"n·s = {n}·{s} = {length}"
    elif same:
        rule = (
            f"(n−1)·s + k' mod 2 + output_padding = ({n}−1)·{s} + {keff % 2} + {given} = {length}"
        )
    elif given is None:
        rule = f"(n−1)·s + max(k', s) = ({n}−1)·{s} + {max(keff, s)} = {length}"
    else:
        rule = f"(n−1)·s + k' + output_padding = ({n}−1)·{s} + {keff} + {given} = {length}"
    lines = [f"  Keras output length: {rule}"]
    full = (n - 1) * s + keff
    if same:
        raw = full - a.output
        lines.append(
            f"  TensorFlow's SAME padding of that output: max((n−1)·s + k' − out, 0) = "
            f"max({full} − {a.output}, 0) = {max(raw, 0)} → crop {a.pad_before} before"
        )
    elif a.output != length:
        lines.append(f"  minus the explicit padding: {length} − {length - a.output} = {a.output}")
    return lines
