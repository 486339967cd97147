"""Rendering of ``cnncli shape`` results: the panel, the explanation, the drawing, solutions.

Drawn with :mod:`cnncli.render.term` (Rich's look without Rich's import cost: shape is the fast path).
"""

from __future__ import annotations

import sys
from typing import Any

from cnncli import arithmetic as ar
from cnncli.render import si, thousands
from cnncli.render.term import Line, color_enabled, columns, panel, render_line, write

#: Largest padded grid --draw will draw, per axis.
DRAW_LIMIT = 32

_UNIT = {"L": "position", "D": "slice", "H": "row", "W": "column"}


def _units(axis: str, count: int) -> str:
    word = _UNIT[axis]
    return f"{count} {word}{'' if count == 1 else 's'}"


def _x(values: tuple[int, ...] | list[int]) -> str:
    return " × ".join(map(str, values))


def _title(spec: ar.LayerSpec) -> str:
    name = {
        ar.Op.CONV: "Conv",
        ar.Op.CONVTRANSPOSE: "ConvTranspose",
        ar.Op.MAXPOOL: "MaxPool",
        ar.Op.AVGPOOL: "AvgPool",
    }[spec.op]
    return f"{name}{spec.ndim}d · {ar.FRAMEWORK_LABEL[spec.framework]} conventions"


def warnings(geom: ar.Geometry) -> list[str]:
    """What the floor (or a stride larger than the kernel) silently drops."""
    out: list[str] = []
    for a in geom.axes:
        if a.uncovered_end:
            out.append(
                f"the last {_units(a.name, a.uncovered_end)} of the input {'is' if a.uncovered_end == 1 else 'are'} "
                f"ignored on axis {a.name}: no window reaches {'it' if a.uncovered_end == 1 else 'them'}"
            )
        inner = None if a.uncovered_total is None else a.uncovered_total - a.uncovered_end
        if inner:
            why = "dilation" if a.stride <= a.effective_kernel else "stride > kernel"
            out.append(
                f"{_units(a.name, inner)} inside the input {'is' if inner == 1 else 'are'} never read on "
                f"axis {a.name} (gaps between taps: {why})"
            )
    return out


def panel_lines(geom: ar.Geometry, cost: ar.Cost | None) -> list[Line]:
    spec = geom.spec
    rows: list[tuple[str, str, str]] = []
    ch_in = f"{cost.in_channels} × " if cost else ""
    ch_out = f"{cost.out_channels} × " if cost else ""
    layout = "  (C × " + " × ".join(ar.axis_names(spec.ndim)) + ")" if cost else ""
    rows.append(("input", ch_in + _x(spec.input_size) + layout, ""))
    rows.append(("output", ch_out + _x(geom.output_size), "bold green"))
    keffs = [a.effective_kernel for a in geom.axes]
    dilated = (
        f"  (effective {_x(keffs)}, dilation {_x(spec.dilation)})"
        if keffs != list(spec.kernel)
        else ""
    )
    rows.append(("kernel", _x(spec.kernel) + dilated, ""))
    rows.append(("stride", _x(spec.stride), ""))
    mode = f"{spec.padding.value}: " if isinstance(spec.padding, ar.PadMode) else ""
    what = "cropped" if spec.op is ar.Op.CONVTRANSPOSE else "padding"
    sides = ", ".join(f"{a.name} {a.pad_before} before + {a.pad_after} after" for a in geom.axes)
    rows.append((what, mode + sides, ""))
    if spec.op is ar.Op.CONVTRANSPOSE:
        rows.append(("output padding", _x([a.output_padding for a in geom.axes]), ""))
    if spec.ceil_mode:
        rows.append(("ceil_mode", "on", ""))
    if cost is not None and not spec.op.is_pool:
        rows.append(
            (
                "params",
                f"{thousands(cost.params)} = {thousands(cost.weights)} weights + {thousands(cost.biases)} biases",
                "",
            )
        )
        rows.append(("MACs", f"{thousands(cost.macs)} ({si(cost.macs)})", ""))
        rows.append(("FLOPs", f"{thousands(cost.flops)} ({si(cost.flops)})", ""))
    if cost is not None:
        rows.append(("activations", f"{thousands(cost.output_elements)} values out", ""))
    label = max(len(r[0]) for r in rows) + 2
    lines: list[Line] = [
        [(name.ljust(label), "bold"), (value, style)] for name, value, style in rows
    ]
    warn = warnings(geom)
    if warn:
        lines.append([])
        lines.extend([[(f"⚠ {w}", "yellow")] for w in warn])
    notes = list(geom.notes)
    if cost is not None and not spec.op.is_pool:
        notes.append(
            "MACs = multiply-accumulates, bias excluded; FLOPs = 2 × MACs"
            + (
                "; counted on the input (each input pixel scatters one kernel)"
                if spec.op is ar.Op.CONVTRANSPOSE
                else ""
            )
        )
    if notes:
        lines.append([])
        lines.extend([[(f"· {n}", "dim")] for n in notes])
    return lines


def show(
    geom: ar.Geometry, cost: ar.Cost | None, *, explain: bool, draw: bool, bias: bool = True
) -> None:
    color = color_enabled(sys.stdout)
    write(panel(_title(geom.spec), panel_lines(geom, cost), color=color))
    if explain:
        write(panel("explain", [[(line, "")] for line in ar.explain(geom)], color=color))
    if draw:
        write(drawing(geom, color))


# ------------------------------------------------------------------------------------------------
# --draw
# ------------------------------------------------------------------------------------------------

_FIRST = "on_cyan"
_SECOND = "on_magenta"
_BOTH = "on_blue"


def drawing(geom: ar.Geometry, color: bool = False) -> str:
    """The padded input with the first two windows, and the output, as the conv-arithmetic figures."""
    spec = geom.spec
    if spec.ndim != 2:
        return "--draw draws 2-D layers; this one is " + f"{spec.ndim}-D"
    if spec.op is ar.Op.CONVTRANSPOSE:
        return _draw_transposed(geom, color)
    h, w = geom.axes
    rows, cols = h.input + h.pad_before + h.pad_after, w.input + w.pad_before + w.pad_after
    if max(rows, cols) > DRAW_LIMIT:
        return f"--draw draws padded inputs up to {DRAW_LIMIT} × {DRAW_LIMIT}; this one is {rows} × {cols}"

    def cell_kind(r: int, c: int) -> str:
        inside = (
            h.pad_before <= r < h.pad_before + h.input
            and w.pad_before <= c < w.pad_before + w.input
        )
        return "○" if inside else "·"

    windows = [(0, 0)] + ([(0, 1)] if w.output > 1 else [(1, 0)] if h.output > 1 else [])
    return _draw(
        rows,
        cols,
        cell_kind,
        windows,
        (h.stride, w.stride),
        (h.dilation, w.dilation),
        (h.kernel, w.kernel),
        geom,
        "padded input (○ input, · padding)",
        color,
    )


def _draw_transposed(geom: ar.Geometry, color: bool) -> str:
    h, w = geom.axes
    # The equivalent stride-1 convolution: s−1 zeros between input pixels, k'−1−p padding around.
    lead = [a.effective_kernel - 1 - a.pad_before for a in geom.axes]
    trail = [a.effective_kernel - 1 - a.pad_after + a.output_padding for a in geom.axes]
    if min(lead + trail) < 0:
        return "--draw: the crop is larger than the kernel overlap; nothing simple to draw"
    rows = lead[0] + (h.input - 1) * h.stride + 1 + trail[0]
    cols = lead[1] + (w.input - 1) * w.stride + 1 + trail[1]
    if max(rows, cols) > DRAW_LIMIT:
        return f"--draw draws grids up to {DRAW_LIMIT} × {DRAW_LIMIT}; this one is {rows} × {cols}"

    def cell_kind(r: int, c: int) -> str:
        rr, cc = r - lead[0], c - lead[1]
        if 0 <= rr <= (h.input - 1) * h.stride and 0 <= cc <= (w.input - 1) * w.stride:
            return "○" if rr % h.stride == 0 and cc % w.stride == 0 else "∘"
        return "·"

    windows = [(0, 0)] + ([(0, 1)] if w.output > 1 else [])
    return _draw(
        rows,
        cols,
        cell_kind,
        windows,
        (1, 1),
        (h.dilation, w.dilation),
        (h.kernel, w.kernel),
        geom,
        "as a stride-1 convolution (○ input, ∘ inserted zero, · padding)",
        color,
    )


def _draw(
    rows: int,
    cols: int,
    cell_kind: Any,
    windows: list[tuple[int, int]],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    kernel: tuple[int, int],
    geom: ar.Geometry,
    caption: str,
    color: bool,
) -> str:
    taps: list[set[tuple[int, int]]] = []
    for wr, wc in windows:
        taps.append(
            {
                (wr * stride[0] + i * dilation[0], wc * stride[1] + j * dilation[1])
                for i in range(kernel[0])
                for j in range(kernel[1])
            }
        )
    grid: list[Line] = [[(caption, "bold")]]
    for r in range(rows):
        line: Line = []
        for c in range(cols):
            in_first = bool(taps) and (r, c) in taps[0]
            in_second = len(taps) > 1 and (r, c) in taps[1]
            style = (
                _BOTH
                if in_first and in_second
                else _FIRST
                if in_first
                else _SECOND
                if in_second
                else ""
            )
            kind = cell_kind(r, c)
            # Glyphs as well as colours, so the windows show without a colour terminal.
            glyph = (
                "X" if in_first and in_second else "1" if in_first else "2" if in_second else kind
            )
            line.append((glyph, style or ("dim" if kind != "○" else "")))
            line.append((" ", ""))
        grid.append(line)
    oh, ow = geom.output_size
    out: list[Line] = [[(f"output {oh} × {ow}", "bold")]]
    for r in range(oh):
        line = []
        for c in range(ow):
            first, second = (r, c) == windows[0], len(windows) > 1 and (r, c) == windows[1]
            line.append(
                (
                    "1" if first else "2" if second else "■",
                    _FIRST if first else _SECOND if second else "",
                )
            )
            line.append((" ", ""))
        out.append(line)
    legend: Line = [("1 first window", _FIRST)]
    if len(windows) > 1:
        legend += [("  ", ""), ("2 second window", _SECOND), ("  ", ""), ("X both", _BOTH)]
    return columns(grid, out, color=color) + "\n" + render_line(legend, color)


# ------------------------------------------------------------------------------------------------
# --solve
# ------------------------------------------------------------------------------------------------


def show_solution(spec: ar.LayerSpec, data: dict[str, Any]) -> None:
    names = ar.axis_names(spec.ndim)
    lines: list[str] = []
    if data["solve"] == "padding":
        pads = data["padding"]
        per_axis = ", ".join(
            f"{n} {b} before + {a} after" for n, (b, a) in zip(names, pads, strict=True)
        )
        lines.append(f"padding for output {_x(data['output_shape'])}: {per_axis}")
        if "output_padding" in data:
            lines.append(f"with output padding {_x(data['output_padding'])}")
        if data["symmetric"]:
            flag = (
                ",".join(sorted({str(b) for b, _ in pads}))
                if len({b for b, _ in pads}) == 1
                else ",".join(str(b) for b, _ in pads)
            )
            lines.append(f"symmetric: --padding {flag}")
        else:
            flag = ",".join(f"{b}:{a}" for b, a in pads)
            lines.append(
                f"no symmetric padding gives it; asymmetric: --padding {flag} "
                "(PyTorch: F.pad first; TensorFlow: explicit padding)"
            )
    elif data["solve"] == "output-padding":
        lines.append(
            f"output padding for output {_x(data['output_shape'])}: {_x(data['output_padding'])}"
        )
    else:
        for n, (lo, hi), t in zip(names, data["input_range"], data["target"], strict=True):
            sizes = (
                str(lo)
                if lo == hi
                else f"{lo} to {hi}"
                if hi - lo > 8
                else ", ".join(map(str, range(lo, hi + 1)))
            )
            lines.append(f"axis {n}: input {sizes} gives {t}")
    write(
        panel(
            f"solve {data['solve']}",
            [[(line, "")] for line in lines],
            color=color_enabled(sys.stdout),
        )
    )
