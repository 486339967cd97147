"""Option parsers and option types shared by the commands: one parser for each kind of value.

Numpy-free: ``cnncli shape`` and ``cnncli summary`` import this module.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from cnncli.errors import UsageError


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
