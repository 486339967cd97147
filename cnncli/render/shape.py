"""Rendering of ``cnncli shape`` results: the panel, the explanation, the drawing, solutions.

Drawn with :mod:`cnncli.render.term` (Rich's look without Rich's import cost: shape is the fast path).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
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


_Row = tuple[str, str, str]  # label, value, style


def _geometry_rows(geom: ar.Geometry, cost: ar.Cost | None) -> list[_Row]:
    spec = geom.spec
    ch_in = f"{cost.in_channels} × " if cost else ""
    ch_out = f"{cost.out_channels} × " if cost else ""
    layout = "  (C × " + " × ".join(ar.axis_names(spec.ndim)) + ")" if cost else ""
    keffs = [a.effective_kernel for a in geom.axes]
    dilated = (
        f"  (effective {_x(keffs)}, dilation {_x(spec.dilation)})"
        if keffs != list(spec.kernel)
        else ""
    )
    mode = f"{spec.padding.value}: " if isinstance(spec.padding, ar.PadMode) else ""
    what = "cropped" if spec.op is ar.Op.CONVTRANSPOSE else "padding"
    sides = ", ".join(f"{a.name} {a.pad_before} before + {a.pad_after} after" for a in geom.axes)
    rows = [
        ("input", ch_in + _x(spec.input_size) + layout, ""),
        ("output", ch_out + _x(geom.output_size), "bold green"),
        ("kernel", _x(spec.kernel) + dilated, ""),
        ("stride", _x(spec.stride), ""),
        (what, mode + sides, ""),
    ]
    if spec.op is ar.Op.CONVTRANSPOSE:
        rows.append(("output padding", _x([a.output_padding for a in geom.axes]), ""))
    if spec.ceil_mode:
        rows.append(("ceil_mode", "on", ""))
    return rows


def _cost_rows(geom: ar.Geometry, cost: ar.Cost | None) -> list[_Row]:
    if cost is None:
        return []
    rows: list[_Row] = []
    if not geom.spec.op.is_pool:
        params = (
            f"{thousands(cost.params)} = {thousands(cost.weights)} weights + "
            f"{thousands(cost.biases)} biases"
        )
        rows.append(("params", params, ""))
        rows.append(("MACs", f"{thousands(cost.macs)} ({si(cost.macs)})", ""))
        rows.append(("FLOPs", f"{thousands(cost.flops)} ({si(cost.flops)})", ""))
    rows.append(("activations", f"{thousands(cost.output_elements)} values out", ""))
    return rows


def _cost_note(op: ar.Op) -> str:
    scatter = (
        "; counted on the input (each input pixel scatters one kernel)"
        if op is ar.Op.CONVTRANSPOSE
        else ""
    )
    return "MACs = multiply-accumulates, bias excluded; FLOPs = 2 × MACs" + scatter


def _footnotes(texts: list[str], mark: str, style: str) -> list[Line]:
    """A blank line, then one styled line per text (nothing when there is none)."""
    return [[], *[[(f"{mark}{t}", style)] for t in texts]] if texts else []


def panel_lines(geom: ar.Geometry, cost: ar.Cost | None) -> list[Line]:
    """The result panel: geometry rows, cost rows, then warnings and notes."""
    rows = _geometry_rows(geom, cost) + _cost_rows(geom, cost)
    label = max(len(r[0]) for r in rows) + 2
    lines: list[Line] = [
        [(name.ljust(label), "bold"), (value, style)] for name, value, style in rows
    ]
    notes = list(geom.notes)
    if cost is not None and not geom.spec.op.is_pool:
        notes.append(_cost_note(geom.spec.op))
    return lines + _footnotes(warnings(geom), "⚠ ", "yellow") + _footnotes(notes, "· ", "dim")


def show(layer: ar.Layer, *, explain: bool, draw: bool) -> None:
    """The result panel, then the explanation and the drawing when asked for."""
    geom, color = layer.geometry, color_enabled(sys.stdout)
    write(panel(_title(geom.spec), panel_lines(geom, layer.cost), color=color))
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

Cell = tuple[int, int]


@dataclass(frozen=True)
class _Grid:
    """What --draw draws on the left: a grid of cells and the first windows sliding over it."""

    rows: int
    cols: int
    #: ○ input, ∘ inserted zero, · padding.
    cell_kind: Callable[[int, int], str]
    caption: str
    #: Top-left output cell of each window drawn (the first, and the second when there is one).
    windows: list[Cell]
    stride: Cell
    dilation: Cell
    kernel: Cell

    def taps(self) -> list[set[Cell]]:
        """The grid cells each window reads."""
        (sr, sc), (dr, dc), (kr, kc) = self.stride, self.dilation, self.kernel
        return [
            {(wr * sr + i * dr, wc * sc + j * dc) for i in range(kr) for j in range(kc)}
            for wr, wc in self.windows
        ]


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
    grid = _Grid(
        rows,
        cols,
        cell_kind,
        "padded input (○ input, · padding)",
        windows,
        (h.stride, w.stride),
        (h.dilation, w.dilation),
        (h.kernel, w.kernel),
    )
    return _draw(grid, geom, color)


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
    grid = _Grid(
        rows,
        cols,
        cell_kind,
        "as a stride-1 convolution (○ input, ∘ inserted zero, · padding)",
        windows,
        (1, 1),
        (h.dilation, w.dilation),
        (h.kernel, w.kernel),
    )
    return _draw(grid, geom, color)


def _cell(kind: str, in_first: bool, in_second: bool) -> tuple[str, str]:
    """(glyph, style) of one grid cell: glyphs as well as colours, so the windows show without
    a colour terminal."""
    if in_first and in_second:
        return "X", _BOTH
    if in_first:
        return "1", _FIRST
    if in_second:
        return "2", _SECOND
    return kind, "dim" if kind != "○" else ""


def _grid_lines(grid: _Grid) -> list[Line]:
    taps = grid.taps()
    first = taps[0] if taps else set()
    second = taps[1] if len(taps) > 1 else set()
    lines: list[Line] = [[(grid.caption, "bold")]]
    for r in range(grid.rows):
        line: Line = []
        for c in range(grid.cols):
            line.append(_cell(grid.cell_kind(r, c), (r, c) in first, (r, c) in second))
            line.append((" ", ""))
        lines.append(line)
    return lines


def _output_lines(geom: ar.Geometry, windows: list[Cell]) -> list[Line]:
    oh, ow = geom.output_size
    marks = {windows[0]: ("1", _FIRST)}
    if len(windows) > 1:
        marks.setdefault(windows[1], ("2", _SECOND))
    lines: list[Line] = [[(f"output {oh} × {ow}", "bold")]]
    for r in range(oh):
        line: Line = []
        for c in range(ow):
            line.append(marks.get((r, c), ("■", "")))
            line.append((" ", ""))
        lines.append(line)
    return lines


def _draw(grid: _Grid, geom: ar.Geometry, color: bool) -> str:
    legend: Line = [("1 first window", _FIRST)]
    if len(grid.windows) > 1:
        legend += [("  ", ""), ("2 second window", _SECOND), ("  ", ""), ("X both", _BOTH)]
    left, right = _grid_lines(grid), _output_lines(geom, grid.windows)
    return columns(left, right, color=color) + "\n" + render_line(legend, color)


# ------------------------------------------------------------------------------------------------
# --solve
# ------------------------------------------------------------------------------------------------


def _padding_solution(solved: ar.Solved) -> list[str]:
    names = ar.axis_names(solved.spec.ndim)
    pads = solved.padding
    assert solved.geometry is not None
    per_axis = ", ".join(
        f"{n} {b} before + {a} after" for n, (b, a) in zip(names, pads, strict=True)
    )
    lines = [f"padding for output {_x(solved.geometry.output_size)}: {per_axis}"]
    if solved.output_padding is not None:
        lines.append(f"with output padding {_x(solved.output_padding)}")
    if solved.symmetric:
        befores = [str(b) for b, _ in pads]
        flag = befores[0] if len(set(befores)) == 1 else ",".join(befores)
        lines.append(f"symmetric: --padding {flag}")
    else:
        flag = ",".join(f"{b}:{a}" for b, a in pads)
        lines.append(
            f"no symmetric padding gives it; asymmetric: --padding {flag} "
            "(PyTorch: F.pad first; TensorFlow: explicit padding)"
        )
    return lines


def _sizes(lo: int, hi: int) -> str:
    """A range of input sizes: one, a short list, or "lo to hi"."""
    if lo == hi:
        return str(lo)
    if hi - lo > 8:
        return f"{lo} to {hi}"
    return ", ".join(map(str, range(lo, hi + 1)))


def _solution_lines(solved: ar.Solved) -> list[str]:
    if solved.what is ar.Solve.PADDING:
        return _padding_solution(solved)
    if solved.what is ar.Solve.OUTPUT_PADDING:
        assert solved.output_padding is not None
        return [f"output padding for output {_x(solved.target)}: {_x(solved.output_padding)}"]
    names = ar.axis_names(solved.spec.ndim)
    return [
        f"axis {n}: input {_sizes(lo, hi)} gives {t}"
        for n, (lo, hi), t in zip(names, solved.input_range, solved.target, strict=True)
    ]


def show_solution(solved: ar.Solved) -> None:
    """The answer to ``--solve`` as a panel."""
    lines = [[(line, "")] for line in _solution_lines(solved)]
    write(panel(f"solve {solved.what.value}", lines, color=color_enabled(sys.stdout)))


# ------------------------------------------------------------------------------------------------
# --json
# ------------------------------------------------------------------------------------------------


def print_json(data: dict[str, Any]) -> None:
    """One JSON object on one line of stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")


def _cost_json(geom: ar.Geometry, cost: ar.Cost) -> dict[str, Any]:
    op = geom.spec.op
    scatter = "; transposed convolution counted on its input" if op is ar.Op.CONVTRANSPOSE else ""
    return {
        "in_channels": cost.in_channels,
        "out_channels": cost.out_channels,
        "groups": cost.groups,
        "bias": cost.biases > 0,
        "output_tensor_shape": [cost.out_channels, *geom.output_size],
        "params": cost.params,
        "weights": cost.weights,
        "biases": cost.biases,
        "macs": cost.macs,
        "flops": cost.flops,
        "output_elements": cost.output_elements,
        "conventions": "MACs: multiply-accumulates, bias excluded; FLOPs = 2 × MACs" + scatter,
    }


def _onednn_json(geom: ar.Geometry) -> dict[str, Any] | None:
    """TensorFlow's answers with and without oneDNN, where they differ (None where they agree):
    each an output shape and padding, or the refusal."""
    plain = geom.without_onednn
    if plain is None:
        return None
    with_onednn = {
        "output_shape": list(geom.output_size),
        "padding": [list(p) for p in geom.padding],
    }
    without: dict[str, Any] = (
        {"refused": plain.refusal}
        if plain.refusal is not None
        else {
            "output_shape": list(geom.output_size),
            "padding": [list(p) for p in plain.padding or ()],
        }
    )
    return {"with_onednn": with_onednn, "without_onednn": without}


def layer_json(layer: ar.Layer) -> dict[str, Any]:
    """The resolved layer (and its cost) as the object ``cnncli shape --json`` prints."""
    geom, spec = layer.geometry, layer.geometry.spec
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
    if spec.framework is not ar.Framework.TORCH:
        data["onednn"] = _onednn_json(geom)
    if layer.cost is not None:
        data.update(_cost_json(geom, layer.cost))
    return data


def solution_json(solved: ar.Solved) -> dict[str, Any]:
    """The answer to ``--solve`` as the object ``cnncli shape --solve … --json`` prints."""
    target = list(solved.target)
    if solved.geometry is not None:  # a padding solve: the output the padding found gives
        target = list(solved.geometry.output_size)
    data: dict[str, Any] = {"solve": solved.what.value, "target": target}
    if solved.what is ar.Solve.PADDING:
        assert solved.geometry is not None
        data["padding"] = [list(p) for p in solved.padding]
        data["symmetric"] = solved.symmetric
        data["output_shape"] = list(solved.geometry.output_size)
        if solved.output_padding is not None:
            data["output_padding"] = list(solved.output_padding)
    elif solved.what is ar.Solve.OUTPUT_PADDING:
        assert solved.output_padding is not None
        data["output_padding"] = list(solved.output_padding)
        data["output_shape"] = target
    else:
        data["input_range"] = [list(r) for r in solved.input_range]
    return data
