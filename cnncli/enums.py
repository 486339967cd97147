"""Every fixed vocabulary of cnncli, defined once (numpy-free, so every command may import it).

The CLI parses option values into these enums at the boundary; the cores, renderers and help
texts use them. Aliases (OpenCV's and scipy.ndimage's border names) are part of the vocabulary
and accepted everywhere the canonical name is.
"""

from __future__ import annotations

import difflib
from enum import StrEnum, unique
from typing import TypeVar

from cnncli.errors import UsageError

# --------------------------------------------------------------------------------------------
# Layers and convolution arithmetic
# --------------------------------------------------------------------------------------------


@unique
class Op(StrEnum):
    """The sliding-window operation."""

    CONV = "conv"
    CONVTRANSPOSE = "convtranspose"
    MAXPOOL = "maxpool"
    AVGPOOL = "avgpool"

    @property
    def is_pool(self) -> bool:
        return self in (Op.MAXPOOL, Op.AVGPOOL)


@unique
class Framework(StrEnum):
    """Whose conventions (padding split, refusals, defaults) apply."""

    TORCH = "torch"
    TF = "tf"
    KERAS = "keras"


FRAMEWORK_LABEL = {Framework.TORCH: "PyTorch", Framework.TF: "TensorFlow", Framework.KERAS: "Keras"}


@unique
class PadMode(StrEnum):
    """Named padding modes."""

    VALID = "valid"
    SAME = "same"
    FULL = "full"
    CAUSAL = "causal"


@unique
class Solve(StrEnum):
    """What ``cnncli shape --solve`` finds for a wanted output size."""

    PADDING = "padding"
    OUTPUT_PADDING = "output-padding"
    INPUT = "input"


# --------------------------------------------------------------------------------------------
# Filtering
# --------------------------------------------------------------------------------------------


@unique
class Border(StrEnum):
    """Values outside the image: OpenCV's border modes (scipy.ndimage names in ALIASES)."""

    REFLECT101 = "reflect101"  # dcb|abcd|cba  (OpenCV's default)
    REFLECT = "reflect"  # cba|abcd|dcb
    REPLICATE = "replicate"  # aaa|abcd|ddd
    WRAP = "wrap"  # bcd|abcd|abc
    CONSTANT = "constant"  # vvv|abcd|vvv

    @property
    def picture(self) -> str:
        """What the mode puts before and after ``abcd``."""
        return BORDER_PICTURE[self]


#: (OpenCV name, scipy.ndimage mode) of each border.
BORDER_ALIASES: dict[Border, tuple[str, str]] = {
    Border.REFLECT101: ("BORDER_REFLECT_101", "mirror"),
    Border.REFLECT: ("BORDER_REFLECT", "reflect"),
    Border.REPLICATE: ("BORDER_REPLICATE", "nearest"),
    Border.WRAP: ("BORDER_WRAP", "grid-wrap"),
    Border.CONSTANT: ("BORDER_CONSTANT", "constant"),
}

#: PyTorch's ``padding_mode`` names that mean the same border (its ``reflect`` is
#: reflect101, so that one word is left to OpenCV's meaning: cnncli's ``reflect``).
TORCH_BORDER_NAMES: dict[Border, str] = {
    Border.CONSTANT: "zeros",  # with the value 0, the only constant PyTorch has
    Border.WRAP: "circular",
}

BORDER_PICTURE: dict[Border, str] = {
    Border.REFLECT101: "dcb|abcd|cba",
    Border.REFLECT: "cba|abcd|dcb",
    Border.REPLICATE: "aaa|abcd|ddd",
    Border.WRAP: "bcd|abcd|abc",
    Border.CONSTANT: "vvv|abcd|vvv",
}


def _border_key(text: str) -> str:
    return text.strip().lower().replace("_", "").replace("-", "")


def _border_names() -> dict[str, Border]:
    names: dict[str, Border] = {}
    for b, (cv_name, sp_name) in BORDER_ALIASES.items():
        for name in (b.value, cv_name, sp_name, "border" + b.value, "reflect_101"):
            if name == "reflect_101" and b is not Border.REFLECT101:
                continue
            names[_border_key(name)] = b
    for b, torch_name in TORCH_BORDER_NAMES.items():
        names[_border_key(torch_name)] = b
    return names


def parse_border(text: Border | str) -> Border:
    """The :class:`Border` named by ``text``: cnncli's name, OpenCV's (``BORDER_REFLECT_101``),
    scipy.ndimage's (``mirror``, ``nearest``, ``grid-wrap``) or PyTorch's (``zeros``,
    ``circular``), any case, ``-``/``_`` ignored; a UsageError listing them otherwise."""
    if isinstance(text, Border):
        return text
    found = _border_names().get(_border_key(str(text)))
    if found is not None:
        return found
    shown = (
        [b.value for b in Border]
        + [sp for _, sp in BORDER_ALIASES.values()]
        + list(TORCH_BORDER_NAMES.values())
    )
    close = difflib.get_close_matches(str(text).strip().lower(), shown, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise UsageError(
        f"unknown border {text!r}; {hint}use one of reflect101, reflect, replicate, wrap, "
        "constant[=v] (or OpenCV's/scipy's names: mirror, nearest, grid-wrap, …)"
    )


def border_name(border: Border, value: float) -> str:
    """How a report line names a border: ``zeros`` for the constant 0 (PyTorch's
    ``padding_mode='zeros'``, TensorFlow's only padding), ``constant=128``, or the mode."""
    if border is Border.CONSTANT:
        return "zeros" if value == 0 else f"constant={value:g}"
    return border.value


@unique
class Layout(StrEnum):
    """The axis order of arrays read and written (``.npy``): where the channels are."""

    HWC = "hwc"  # channels last: H×W×C, as images, NumPy and TensorFlow hold them
    CHW = "chw"  # channels first: C×H×W, as PyTorch (and d2l) hold them


@unique
class Mapping(StrEnum):
    """How a float result becomes pixel values of the output file's type."""

    CLIP = "clip"  # round, then clip to 0..max (blur, sharpen: values already in range)
    ABS = "abs"  # absolute value, then clip (edges of either sign, OpenCV's convertScaleAbs)
    NORMALIZE = "normalize"  # min..max of the result stretched to 0..max
    OFFSET = "offset"  # add mid-grey, then clip (emboss: zero stays grey)


@unique
class Combine(StrEnum):
    """How the responses of a kernel set become one result."""

    SINGLE = "single"  # one kernel (2-D, 3-D or 4-D)
    MAGNITUDE = "magnitude"  # sqrt(gx² + gy²) of an x/y pair
    DIRECTION = "direction"  # atan2(gy, gx) of an x/y pair, in degrees 0..360
    MAXIMUM = "maximum"  # largest response of a compass set


@unique
class StageOp(StrEnum):
    """A ``--then`` stage after the kernel."""

    RELU = "relu"
    MAXPOOL = "maxpool"
    AVGPOOL = "avgpool"
    CONV = "conv"  # another convolution, with the run's padding, stride, dilation and border


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------


@unique
class Column(StrEnum):
    """Optional columns of the summary table (``--columns``)."""

    KERNEL = "kernel"
    STRIDE = "stride"
    INPUT = "input"
    RF = "rf"
    MEMORY = "memory"
    CONNECTED = "connected"


@unique
class Optimizer(StrEnum):
    """``summary --train --optimizer``: how many numbers ``torch.optim`` keeps per trainable
    parameter (the rule lives in :mod:`cnncli.model.training_memory`)."""

    SGD = "sgd"
    MOMENTUM = "momentum"
    ADAM = "adam"
    ADAMW = "adamw"


@unique
class DType(StrEnum):
    """``summary --train --dtype``: the dtype of every parameter, gradient, state and activation."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"


E = TypeVar("E", bound=StrEnum)


def parse_choice(enum: type[E], text: str, option: str) -> E:
    """``text`` as a member of ``enum`` (any case), or a UsageError naming ``option``, the
    closest choice and all of them."""
    key = text.strip().lower()
    for member in enum:
        if member.value == key:
            return member
    values = [m.value for m in enum]
    close = difflib.get_close_matches(key, values, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise UsageError(f"unknown {option} {text!r}{hint} (choices: {', '.join(values)})")
