"""Option parsers and option types shared by the commands: one parser for each kind of value.

Numpy-free: ``cnncli shape`` and ``cnncli summary`` import this module.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cnncli.errors import UsageError

if TYPE_CHECKING:
    from cnncli.arithmetic import PaddingArg


def parse_ints(text: str, what: str) -> list[int]:
    """``"5,3"`` (or ``"5x3"``) → ``[5, 3]``; a usage error naming the value otherwise.

    Only parses: the arithmetic core checks ranges and counts, with one wording for every command.
    """
    values: list[int] = []
    for part in re.split(r"[,x×]", text.replace(" ", "")):
        try:
            values.append(int(part))
        except ValueError:
            raise UsageError(
                f"{what} {text!r} is not a whole number or a comma-separated list (e.g. 3 or 5,3)"
            ) from None
    return values


#: What the MODEL argument of summary and convert accepts.
MODEL_HELP = (
    "A model: a YAML model file, a zoo name such as resnet50 (see summary --list), an ONNX file "
    "(.onnx), a Keras file (.keras, .h5), or a PyTorch module as file.py:NAME or "
    "package.module:NAME (imported: its code runs)."
)

InputShapeOption = Annotated[
    str | None,
    typer.Option(
        "--input",
        help="Input shape without the batch (e.g. 3,224,224) for ONNX, Keras and PyTorch models whose file leaves sizes open.",
    ),
]


def read_options(input_shape: str | None) -> Any:
    """``--input`` as the readers' :class:`~cnncli.model.readers.ReadOptions`."""
    from cnncli.model.readers import ReadOptions

    shape = tuple(parse_ints(input_shape, "--input")) if input_shape is not None else None
    return ReadOptions(input_shape=shape)


LimitOption = Annotated[
    list[str] | None,
    typer.Option(
        "--limit",
        metavar="NAME=N",
        help="Change one limit of the work budget for this run, repeatable: pixels, "
        "output-values, kernel-taps, layers, block-calls, yaml-nodes, nesting, file-bytes "
        "(defaults in the README).",
        show_default=False,
    ),
]


def apply_limits(values: list[str] | None) -> None:
    """Start the command's work budget: the defaults, changed by its ``--limit`` options."""
    from cnncli import limits

    limits.configure(limits.parse(values or []))


def parse_padding(text: str | None) -> PaddingArg:
    """``same`` | ``2`` | ``2,1`` (per axis) | ``1:2`` or ``1:2,0:1`` (before:after per axis)."""
    if text is None:
        return None
    text = text.strip()
    if re.fullmatch(r"[A-Za-z]+", text):
        return text  # a mode name; the core checks the word
    pairs: list[tuple[int, int]] = []
    plain: list[int] = []
    for part in text.replace(" ", "").split(","):
        m = re.fullmatch(r"(\d+):(\d+)", part)
        if m:
            pairs.append((int(m[1]), int(m[2])))
            continue
        if not re.fullmatch(r"\d+", part):
            raise UsageError(
                f"padding {text!r} is not understood; use a number (1), one per axis (1,2), "
                "before:after pairs (0:1,1:1), or valid, same, full, causal"
            )
        plain.append(int(part))
        pairs.append((int(part), int(part)))
    return plain if len(plain) == len(pairs) else pairs


def model_files(model: str) -> list[Path]:
    """The file a model source (the MODEL argument of summary and convert) reads (a PyTorch ``file.py:Name`` reads file.py; an installed
    ``package.module:Name``, nothing found before it is imported)."""
    from cnncli.model import locate
    from cnncli.model.readers import PYTHON_SOURCE

    if Path(model).is_file():
        return [Path(model)]
    python = PYTHON_SOURCE.match(model)
    if python:
        return [Path(python["where"])] if python["where"].endswith(".py") else []
    return [locate(model)]
