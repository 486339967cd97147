"""``cnncli convert``: a model written as an editable YAML model file, or as PyTorch source."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cnncli.cli import app
from cnncli.cli.options import (
    MODEL_HELP,
    InputShapeOption,
    LimitOption,
    apply_limits,
    model_files,
    read_options,
)
from cnncli.errors import UsageError

EXAMPLES = """Write a model as an editable YAML model file, with blocks where its structure
repeats, or as a readable PyTorch nn.Module source file. The model is anything cnncli summary
reads: a zoo name, a YAML file, an ONNX, Keras or PyTorch model (a PyTorch source file you name
is imported, so its code runs). The YAML file summarises to the same numbers (cnncli reads it
back before writing it); the PyTorch file builds and runs (python model.py).

The output's kind follows its name: .yaml or .yml, or .py.

Examples:

  cnncli convert resnet50 -o resnet50.yaml   # blocks + repeat found again

  cnncli convert resnet50 -o flat.yaml --flat        # every layer listed

  cnncli convert samples/models/example.yaml -o example.py  # PyTorch

  cnncli convert model.onnx -o model.yaml    # any source summary reads
"""

_KINDS = {".yaml": "yaml", ".yml": "yaml", ".py": "python"}


@app.command(help=EXAMPLES)
def convert(
    model: Annotated[
        str,
        typer.Argument(help=MODEL_HELP),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="The file to write: .yaml/.yml (model file) or .py (PyTorch)."
        ),
    ],
    flat: Annotated[
        bool,
        typer.Option("--flat", help="YAML: list every layer at the top level, without blocks."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite the output file if it exists.")
    ] = False,
    variant: Annotated[
        str | None,
        typer.Option("--variant", help="Which of the file's variants: to convert."),
    ] = None,
    input_shape: InputShapeOption = None,
    limit: LimitOption = None,
) -> None:
    """Convert a model."""
    apply_limits(limit)
    kind = _KINDS.get(output.suffix.lower())
    if kind is None:
        raise UsageError(
            f"cannot tell what to write from the name {str(output)!r}; end it in .yaml or .yml "
            "(a model file) or .py (PyTorch source)"
        )
    if flat and kind != "yaml":
        raise UsageError("--flat is for YAML output; drop it, or write a .yaml file")
    from cnncli.outputs import check_folder, check_output

    # Refused before any work: never over the model file, nor into a missing folder.
    check_output(output, model_files(model), force)
    check_folder(output)

    from cnncli.model import summarize
    from cnncli.render import convert as render
    from cnncli.render.term import printable

    result = summarize(model, variant=variant, options=read_options(input_shape))
    for warning in result.warnings:
        sys.stderr.write(f"cnncli: warning: {printable(warning)}\n")
    if kind == "yaml":
        written = render.write_yaml(result, model, blocks=not flat)
    else:
        written = render.write_pytorch(result, model, str(output))

    from cnncli.outputs import write_text

    write_text(output, written.text)
    sys.stdout.write(printable(f"{model} → {output}: {written.report}") + "\n")
