"""``cnncli summary``: a model's layer table and totals from a small YAML file (or a zoo name)."""

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
from cnncli.enums import Column, DType, Optimizer
from cnncli.errors import UsageError

EXAMPLES = """Print a model's layers, output shapes, parameters and MACs, from a YAML
model file, a model of the zoo, an ONNX or Keras file, or a PyTorch module, with numbers that
match torchvision's and Keras's own.

ONNX and Keras files are read without the framework and without loading their weights (ONNX
needs the onnx package: pip install "cnncli[onnx]").

A PyTorch source (file.py:NAME or package.module:NAME) is imported: its code runs, as
python would run it. NAME, an nn.Module class built with no arguments or a function that
returns a module, is built on PyTorch's meta device (no weights allocated) and traced.

The zoo: cnncli summary --list. The format: docs/model-format.md; a commented example:
samples/models/example.yaml.

Examples:

  cnncli summary resnet50              # 25,557,032 params, 4.089 GMACs

  cnncli summary --list                # every zoo model, its file and description

  cnncli summary family.yaml --variant big   # one of the file's variants:

  cnncli summary resnet50 --depth 1    # fold each stage into one row

  cnncli summary samples/models/example.yaml -c kernel,stride,rf,connected

  cnncli summary mnist-convnet --chart # a bar per layer: share of MACs

  cnncli summary vgg16 --count-bias    # count bias adds, as torchinfo

  cnncli summary model.yaml --verify   # build it with PyTorch, compare

  cnncli summary keras-resnet50 --verify   # channels-last Keras: with Keras

  cnncli summary model.yaml --weights model.safetensors  # fits it?

  cnncli summary model.onnx           # an ONNX export (either torch exporter)

  cnncli summary model.keras          # a Keras 3 file (.h5: Keras 2, needs h5py)

  cnncli summary net.py:Net --input 3,32,32   # a PyTorch module (runs net.py)

  cnncli summary torchvision.models:resnet18 --input 3,224,224

  cnncli summary resnet18 --json | jq .totals

  cnncli summary lenet5 --markdown > lenet5.md

  cnncli summary googlenet --svg googlenet.svg

  cnncli summary resnet50 --train --batch 32   # memory of a training step (Adam)

  cnncli summary resnet50 --train --batch 64 --optimizer momentum --dtype bfloat16
"""

_COLUMNS = tuple(c.value for c in Column)


def _columns(text: str | None) -> list[str]:
    if not text:
        return []
    out: list[str] = []
    every = False
    for part in text.replace(" ", "").split(","):
        if part == "all":
            every = True
            continue
        if part not in _COLUMNS:
            import difflib

            near = difflib.get_close_matches(part, _COLUMNS, n=1)
            hint = f"; did you mean {near[0]}?" if near else ""
            raise UsageError(
                f"unknown column {part!r} in --columns{hint} (columns: {', '.join(_COLUMNS)}, all)"
            )
        out.append(part)
    # Every name is checked, also next to `all`: a typo never passes silently.
    return list(_COLUMNS) if every else out


@app.command(help=EXAMPLES)
def summary(
    model: Annotated[
        str | None,
        typer.Argument(help=MODEL_HELP),
    ] = None,
    variant: Annotated[
        str | None,
        typer.Option(
            "--variant",
            help="Which of the file's variants: to summarise (default: the first).",
        ),
    ] = None,
    list_zoo: Annotated[
        bool,
        typer.Option("--list", help="List the zoo's models (name, file, description) and exit."),
    ] = False,
    depth: Annotated[
        int | None,
        typer.Option(
            "--depth",
            "-d",
            min=1,
            help="Show N levels of blocks in the table and --markdown; deeper blocks fold into one row with their sums.",
        ),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            "-c",
            help="Extra columns, comma-separated: kernel, stride, input, rf (receptive field and jump), memory, connected; or all.",
        ),
    ] = None,
    chart: Annotated[
        bool, typer.Option("--chart", help="Add a bar chart of each layer's MACs.")
    ] = False,
    svg: Annotated[
        Path | None, typer.Option("--svg", help="Also save the table as an SVG picture.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite the --svg file if it exists.")
    ] = False,
    count_bias: Annotated[
        bool,
        typer.Option("--count-bias", help="Count bias additions in MACs (torchinfo's convention)."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON: layers, blocks and totals.")
    ] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV, one row per layer.")] = False,
    as_markdown: Annotated[
        bool, typer.Option("--markdown", help="Print a Markdown table.")
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Build the model with PyTorch (Keras 3 for channels-last Keras models) and compare every layer's shape and params.",
        ),
    ] = False,
    weights: Annotated[
        Path | None,
        typer.Option(
            "--weights",
            help="Check a checkpoint against the model: every tensor's shape, layer by layer (safetensors read from its header; a PyTorch state_dict .pt/.pth needs torch).",
        ),
    ] = None,
    input_shape: InputShapeOption = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Exit 1, printing nothing else, when a layer's MACs cannot be counted (an operator cnncli does not know).",
        ),
    ] = False,
    train: Annotated[
        bool,
        typer.Option(
            "--train",
            help="Also print the memory one training step holds, as PyTorch autograd keeps it: parameters, gradients, optimizer state, activations saved for backward, the input batch.",
        ),
    ] = False,
    batch: Annotated[
        int | None,
        typer.Option("--batch", min=1, help="With --train: the batch size (default 1)."),
    ] = None,
    optimizer: Annotated[
        Optimizer | None,
        typer.Option(
            "--optimizer",
            help="With --train: sgd (no state), momentum (1 copy), adam or adamw (2 copies and a step per tensor). Default: adam.",
        ),
    ] = None,
    dtype: Annotated[
        DType | None,
        typer.Option(
            "--dtype",
            help="With --train: the dtype of every parameter, gradient, state and activation (model.to(dtype)). Default: float32.",
        ),
    ] = None,
    limit: LimitOption = None,
) -> None:
    """Summarise a model."""
    apply_limits(limit)
    from cnncli.model import summarize
    from cnncli.render import summary as render

    if list_zoo:
        _list(model, variant, as_json)
        return
    if model is None:
        raise UsageError(
            "give a model YAML file or a zoo name (cnncli summary --list shows the zoo)"
        )

    formats = [
        n for n, on in (("--json", as_json), ("--csv", as_csv), ("--markdown", as_markdown)) if on
    ]
    if len(formats) > 1:
        raise UsageError(f"{' and '.join(formats)} cannot be combined; pick one output format")
    cols = _columns(columns)
    _check_train(train, batch, optimizer, dtype, formats)
    if svg is not None:
        if formats:
            raise UsageError(
                f"--svg saves the table, which {formats[0]} replaces; drop one of them"
            )
        from cnncli.outputs import check_folder, check_output

        # Refused before any work and before any output: never over the model file itself.
        check_output(svg, [*model_files(model), *([weights] if weights else [])], force)
        check_folder(svg)

    result = summarize(
        model, count_bias=count_bias, variant=variant, options=read_options(input_shape)
    )
    if strict:
        from cnncli.model.build import require_counted

        require_counted(result)  # one line naming the operators, before any output
    for warning in result.warnings:
        from cnncli.render.term import printable

        sys.stderr.write(f"cnncli: warning: {printable(warning)}\n")
    report = None
    if verify:
        from cnncli.model import keras_check, torch_check

        # Channels-last Keras models are built with Keras, every other model with PyTorch.
        builder = keras_check if keras_check.applies(result) else torch_check
        report = builder.verify_summary(result)  # raises ModelError on the first disagreement
    memory = None
    if train:
        from cnncli.model.training_memory import DEFAULT_OPTIMIZER, training_memory

        memory = training_memory(
            result, batch or 1, optimizer or DEFAULT_OPTIMIZER, dtype or DType.FLOAT32
        )
        for warning in memory.warnings:
            sys.stderr.write(f"cnncli: warning: {warning}\n")
    fits = None
    if weights is not None:
        from cnncli.model.weights import check_weights

        fits = check_weights(result, weights)  # raises ModelError on the first mismatch
    if as_json:
        sys.stdout.write(render.to_json(result, memory))
    elif as_csv:
        sys.stdout.write(render.to_csv(result))
    elif as_markdown:
        sys.stdout.write(render.to_markdown(result, depth, cols, memory))
    else:
        if svg is not None:
            from cnncli.outputs import write_text

            write_text(svg, render.svg(result, depth, cols, chart, memory=memory))
        render.show(result, depth, cols, chart, memory=memory)
    for verdict in (report, fits):
        if verdict is not None:
            from cnncli.render.term import printable

            # Machine-readable output stays clean: the verdict goes to stderr there.
            (sys.stderr if formats else sys.stdout).write(printable(verdict) + "\n")


def _check_train(
    train: bool,
    batch: int | None,
    optimizer: Optimizer | None,
    dtype: DType | None,
    formats: list[str],
) -> None:
    """``--batch``, ``--optimizer`` and ``--dtype`` qualify ``--train``; CSV cannot hold it."""
    if not train:
        for flag, value in (("--batch", batch), ("--optimizer", optimizer), ("--dtype", dtype)):
            if value is not None:
                raise UsageError(f"{flag} is for --train; add --train")
    elif "--csv" in formats:
        raise UsageError(
            "--train prints totals, which --csv (one row per layer) has no place for; "
            "use --json or --markdown"
        )


def _list(model: str | None, variant: str | None, as_json: bool) -> None:
    """``--list``: the zoo, read without building any model."""
    from cnncli.model import zoo_entries
    from cnncli.render import summary as render

    if model is not None or variant is not None:
        raise UsageError(
            f"--list takes no {'model' if model is not None else '--variant'}; drop it"
        )
    entries = zoo_entries()
    sys.stdout.write(render.zoo_json(entries) if as_json else render.zoo_table(entries))
