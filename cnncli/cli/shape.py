"""``cnncli shape``: the convolution-arithmetic calculator."""

from __future__ import annotations

import json
import re
import sys
from enum import StrEnum, unique
from typing import Annotated, Any

import typer

from cnncli import arithmetic as ar
from cnncli.cli import app
from cnncli.cli.options import parse_ints
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


@unique
class Solve(StrEnum):
    PADDING = "padding"
    OUTPUT_PADDING = "output-padding"
    INPUT = "input"


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


def parse_padding(text: str | None) -> ar.PaddingArg:
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
    if in_channels is None and (out_channels is not None or groups != 1):
        raise UsageError("--out-channels and --groups need --in-channels")
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
    if solve is not None:
        assert target is not None
        _solve(spec, solve, parse_ints(target, "target"), as_json)
        return
    geom = ar.resolve(spec)
    cost = (
        None
        if in_channels is None
        else ar.layer_cost(geom, in_channels, out_channels, groups, bias)
    )
    if as_json:
        _print_json(_json(geom, cost, bias, groups))
        return
    from cnncli.render import shape as render

    render.show(geom, cost, explain=explain, draw=draw, bias=bias)


def _json(geom: ar.Geometry, cost: ar.Cost | None, bias: bool, groups: int) -> dict[str, Any]:
    spec = geom.spec
    data: dict[str, Any] = {
        "op": spec.op.value,
        "framework": spec.framework.value,
        "input_shape": list(spec.input_size),
        "output_shape": list(geom.output_size),
        "padding": [list(p) for p in geom.padding],
        "kernel": list(spec.kernel),
        "stride": list(spec.stride),
        "dilation": list(spec.dilation),
        "effective_kernel": [a.effective_kernel for a in geom.axes],
        "padding_mode": spec.padding.value if isinstance(spec.padding, ar.PadMode) else "explicit",
        "uncovered_end": [a.uncovered_end for a in geom.axes],
        "uncovered_total": [a.uncovered_total for a in geom.axes],
        "notes": list(geom.notes),
    }
    if spec.op.is_pool:
        data["ceil_mode"] = spec.ceil_mode
    if spec.op is ar.Op.CONVTRANSPOSE:
        data["output_padding"] = [a.output_padding for a in geom.axes]
    if cost is not None:
        data.update(
            in_channels=cost.in_channels,
            out_channels=cost.out_channels,
            groups=groups,
            bias=bias and not spec.op.is_pool,
            output_tensor_shape=[cost.out_channels, *geom.output_size],
            params=cost.params,
            weights=cost.weights,
            biases=cost.biases,
            macs=cost.macs,
            flops=cost.flops,
            output_elements=cost.output_elements,
            conventions=(
                "MACs: multiply-accumulates, bias excluded; FLOPs = 2 × MACs"
                + (
                    "; transposed convolution counted on its input"
                    if spec.op is ar.Op.CONVTRANSPOSE
                    else ""
                )
            ),
        )
    return data


def _print_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")


def _solve(spec: ar.LayerSpec, what: Solve, target: list[int], as_json: bool) -> None:
    if what is Solve.PADDING:
        sols = ar.solve_padding(spec, target)
        pad = [[s.values[0], s.values[1]] for s in sols]
        # A transposed convolution's odd crop comes with an output padding of 1.
        extra = [s.values[2] for s in sols] if spec.op is ar.Op.CONVTRANSPOSE else []
        final = ar.make_spec(
            spec.input_size,
            spec.kernel,
            stride=spec.stride,
            dilation=spec.dilation,
            padding=[(b, a) for b, a in pad],
            op=spec.op,
            framework=spec.framework,
            ceil_mode=spec.ceil_mode,
            output_padding=extra or None,
        )
        geom = ar.resolve(final)
        data: dict[str, Any] = {
            "solve": "padding",
            "target": list(geom.output_size),
            "padding": pad,
            "symmetric": all(s.symmetric for s in sols),
            "output_shape": list(geom.output_size),
        }
        if extra:
            data["output_padding"] = extra
    elif what is Solve.OUTPUT_PADDING:
        sols = ar.solve_output_padding(spec, target)
        data = {
            "solve": "output-padding",
            "target": target if len(target) == spec.ndim else target * spec.ndim,
            "output_padding": [s.values[0] for s in sols],
            "output_shape": target if len(target) == spec.ndim else target * spec.ndim,
        }
    else:
        sols = ar.solve_input(spec, target)
        data = {
            "solve": "input",
            "target": target if len(target) == spec.ndim else target * spec.ndim,
            "input_range": [list(s.values) for s in sols],
        }
    if as_json:
        _print_json(data)
        return
    from cnncli.render import shape as render

    render.show_solution(spec, data)
