"""``cnncli shape``: the convolution-arithmetic calculator."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from cnncli import arithmetic as ar
from cnncli.cli import app
from cnncli.cli.options import parse_ints, parse_padding
from cnncli.enums import Solve
from cnncli.errors import UsageError

EXAMPLES = """Compute the output of a convolution or pooling layer, as PyTorch (default), TensorFlow or Keras
computes it.

Examples:

  cnncli shape 224 224 -k 7 -s 2 -p 3            ResNet's stem: 112 × 112

  cnncli shape 6x6 -k 3 --explain                the formula, step by step

  cnncli shape 7 -k 4 -s 2 -p same --framework tf
                                                 TF SAME: 4, padded 1 before, 2 after

  cnncli shape 112 112 -k 3 -s 2 --op maxpool --ceil-mode

  cnncli shape 4 4 -k 3 -s 2 -p 1 --op convtranspose --output-padding 1

  cnncli shape 100 100 -k 3 -p 1 --in-channels 256 --out-channels 256 --no-bias

  cnncli shape 32 32 -k 5 --solve padding --target 32

  cnncli shape 7 7 -k 3 -s 2 -p 1 --draw

  cnncli shape 224 224 -k 7 -s 2 -p 3 --json
"""


def parse_sizes(sizes: list[str]) -> list[int]:
    """``["224", "224"]`` or ``["224x224"]`` → ``[224, 224]``."""
    out: list[int] = []
    for item in sizes:
        for part in re.split(r"[x×X*,]", item):
            if not part:
                raise UsageError(f"input size {item!r} is malformed; write e.g. 224 224 or 224x224")
            try:
                out.append(int(part))
            except ValueError:
                raise UsageError(
                    f"input size {part!r} is not a whole number; write e.g. 224 224 or 224x224"
                ) from None
    return out


@app.command(help=EXAMPLES)
def shape(
    sizes: Annotated[
        list[str],
        typer.Argument(help="Spatial input size, 1-3 axes: 28 | 224 224 | 224x224 | 16x112x112."),
    ],
    kernel: Annotated[
        str, typer.Option("--kernel", "-k", help="Kernel size, one or per axis: 3 or 5,3.")
    ],
    stride: Annotated[
        str | None,
        typer.Option(
            "--stride", "-s", help="Stride, one or per axis [default: 1; pooling: the kernel]."
        ),
    ] = None,
    padding: Annotated[
        str | None,
        typer.Option(
            "--padding",
            "-p",
            help="N, per axis N,M, before:after pairs 0:1,1:1, or valid | same | full | causal [default: 0].",
        ),
    ] = None,
    dilation: Annotated[
        str, typer.Option("--dilation", "-d", help="Dilation, one or per axis.")
    ] = "1",
    op: Annotated[ar.Op, typer.Option("--op", help="Layer type.")] = ar.Op.CONV,
    ceil_mode: Annotated[
        bool,
        typer.Option("--ceil-mode", help="Pooling: PyTorch's ceil_mode (round the output up)."),
    ] = False,
    output_padding: Annotated[
        str | None,
        typer.Option(
            "--output-padding", help="Transposed conv: extra size after, one or per axis."
        ),
    ] = None,
    framework: Annotated[
        ar.Framework,
        typer.Option("--framework", "-f", help="Whose conventions and refusals apply."),
    ] = ar.Framework.TORCH,
    in_channels: Annotated[
        int | None,
        typer.Option("--in-channels", "-i", help="Input channels: adds params, MACs, FLOPs."),
    ] = None,
    out_channels: Annotated[
        int | None,
        typer.Option("--out-channels", "-o", help="Output channels [default: in channels]."),
    ] = None,
    groups: Annotated[
        int, typer.Option("--groups", "-g", help="Grouped convolution (depthwise: = channels).")
    ] = 1,
    bias: Annotated[
        bool, typer.Option("--bias/--no-bias", help="Count a bias per output channel.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="The formula with your numbers, step by step.")
    ] = False,
    solve: Annotated[
        Solve | None,
        typer.Option(
            "--solve", help="Find the padding, output padding or input size giving --target."
        ),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", "-t", help="Wanted output size for --solve.")
    ] = None,
    draw: Annotated[
        bool,
        typer.Option(
            "--draw", help="Picture of the padded input, the first windows and the output (2-D)."
        ),
    ] = False,
) -> None:
    input_size = parse_sizes(sizes)
    if solve is not None and target is None:
        raise UsageError("--solve needs --target N (the output size you want)")
    if target is not None and solve is None:
        raise UsageError("--target goes with --solve padding|output-padding|input")
    if solve is Solve.PADDING and padding is not None:
        raise UsageError("--solve padding finds the padding; drop --padding")
    spec = ar.make_spec(
        input_size,
        parse_ints(kernel, "kernel"),
        stride=None if stride is None else parse_ints(stride, "stride"),
        dilation=parse_ints(dilation, "dilation"),
        padding=parse_padding(padding),
        op=op,
        framework=framework,
        ceil_mode=ceil_mode,
        output_padding=None
        if output_padding is None
        else parse_ints(output_padding, "output padding"),
    )
    from cnncli.render import shape as render  # here: other commands never load it

    if solve is not None:
        assert target is not None
        solved = ar.solve(spec, solve, parse_ints(target, "target"))
        if as_json:
            render.print_json(render.solution_json(solved))
        else:
            render.show_solution(solved)
        return
    layer = ar.analyze(spec, in_channels, out_channels, groups, bias)
    if as_json:
        render.print_json(render.layer_json(layer))
    else:
        render.show(layer, explain=explain, draw=draw)
