"""Renderers of a model summary: the Rich table, JSON, CSV and Markdown of one :class:`Summary`.

No counting happens here: every number comes from :mod:`cnncli.model`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cnncli.enums import Column
from cnncli.model import BYTES_PER_ELEMENT, Row, Summary, ZooEntry
from cnncli.model.build import not_counted_text
from cnncli.render import si, thousands
from cnncli.render.term import printable

if TYPE_CHECKING:  # Rich is imported only to draw the table: --json/--csv/--markdown skip it.
    from rich.console import Console, Group
    from rich.text import Text

    from cnncli.model.training_memory import TrainingMemory

#: Optional columns of the table, in display order.
OPTIONAL_COLUMNS = tuple(c.value for c in Column)

CONVENTIONS = (
    "MACs: multiply-accumulates of convolution (separable: depthwise + pointwise) and dense "
    "layers, bias excluded (torchvision's and fvcore's convention; torchvision's \"GFLOPS\" is "
    "this number). Every other layer (pooling, normalisation, activations, merges, reshaping, "
    "upsampling) counts 0. FLOPs = 2 × MACs."
)
CONVENTIONS_BIAS = (
    "MACs: multiply-accumulates of convolution (separable: depthwise + pointwise) and dense "
    "layers plus one per bias addition (--count-bias, torchinfo's convention). Every other "
    "layer counts 0. FLOPs = 2 × MACs."
)
NOTES = (
    "Non-trainable: batchnorm running mean and variance, Keras Normalization's mean, variance "
    "and count (and layers marked trainable: false); "
    "PyTorch's num_batches_tracked is not counted. Memory in float32 (4 bytes): "
    "kB, MB, GB = 10^3, 10^6, 10^9 bytes; KiB, MiB, GiB = 2^10, 2^20, 2^30 bytes; "
    "activations = every layer's output for one sample."
)
#: The MACs cell of an opaque layer (an operator cnncli does not know), never a silent 0.
NOT_COUNTED = "not counted"
TRAINING_ONLY_NOTE = (
    "Layers marked [training only] (auxiliary classifiers) count their parameters; they do not "
    "run at inference, so they have no MACs and no activation memory."
)


def notes(summary: Summary) -> str:
    """The notes under the table (the training-only sentence only when such layers exist)."""
    if any(r.training_only for r in summary.rows):
        return f"{NOTES} {TRAINING_ONLY_NOTE}"
    return NOTES


def _size(d: int) -> str:
    # 0: a size known only when the model runs (an opaque layer's data-dependent output).
    return str(d) if d else "?"


def dims(shape: Sequence[int]) -> str:
    return "(" + ", ".join(_size(d) for d in shape) + ")"


def _sizes(shape: Sequence[int]) -> list[int | None]:
    """A shape for JSON: a size known only at run time is null, never 0."""
    return [d or None for d in shape]


def outputs_text(row: Row) -> str:
    """A row's output: one shape, or a split's outputs (``2 × (58, 28, 28)`` when all equal)."""
    if not row.output_shapes:
        return dims(row.output_shape)
    parts = [dims(s) for s in row.output_shapes]
    if len(set(parts)) == 1 and len(parts) > 1:
        return f"{len(parts)} × {parts[0]}"
    return " + ".join(parts)


def _x(values: Sequence[int] | None) -> str:
    if not values:
        return ""
    return "×".join(str(v) for v in values)


def _bytes(n: int) -> str:
    """Decimal and binary units side by side (torchinfo prints MB, Keras MiB)."""
    for power, dec, binary in ((3, "GB", "GiB"), (2, "MB", "MiB"), (1, "kB", "KiB")):
        if n >= 1000**power:
            return f"{n / 1000**power:,.2f} {dec} = {n / 1024**power:,.2f} {binary}"
    return f"{n:,} bytes"


def _scaled(n: int, unit: str) -> str:
    # Three decimals in G, as torchvision's table; M for small models (LeNet: 0.417 MMACs).
    return f"{n / 1e9:.3f} G{unit}" if n >= 10**8 else f"{n / 1e6:.3f} M{unit}"


def _block_type(row: Row) -> str:
    return f"{row.type} ×{row.repeat}" if row.repeat > 1 else row.type


def layer_type_text(row: Row) -> str:
    """A layer's type as the table shows it: ``opaque: NonMaxSuppression`` for an operator
    cnncli does not know."""
    return f"{row.type}: {row.op}" if row.op else row.type


def macs_text(row: Row) -> str:
    """A row's MACs cell: ``not counted`` for an opaque layer; a block holding such layers says
    how many of its layers are missing from its sum."""
    if row.op:
        return NOT_COUNTED
    if row.not_counted:
        return f"{thousands(row.macs)} (+{row.not_counted} {NOT_COUNTED})"
    return thousands(row.macs)


def visible_rows(summary: Summary, depth: int | None) -> list[tuple[Row, bool]]:
    """Rows shown at ``depth`` (None: all), each with ``folded`` (a block showing its sums).

    A block at the deepest shown level stands for everything inside it, so the numbers of the
    shown rows always add up to the totals.
    """
    out: list[tuple[Row, bool]] = []
    for row in summary.rows:
        if depth is not None and row.depth >= depth:
            continue
        folded = row.kind == "block" and depth is not None and row.depth == depth - 1
        out.append((row, folded))
    return out


def _rf(row: Row) -> str:
    if row.receptive_field is None or row.jump is None:
        return ""
    return f"{_x(row.receptive_field)} /{_x(row.jump)}"


def _connected(row: Row) -> str:
    # Full names, as Keras shows them: a block's layers and the top level may share local names.
    return ", ".join(row.inputs)


def totals_lines(summary: Summary) -> list[tuple[str, str]]:
    t = summary.totals
    est = t.input_bytes + t.activation_bytes + t.param_bytes
    # MACs of opaque layers are missing: the sums are then lower bounds, and say so.
    short = f" + {NOT_COUNTED} (incomplete)" if t.not_counted else ""
    lines = [
        ("Total params", thousands(t.params)),
        ("Trainable params", thousands(t.trainable_params)),
        ("Non-trainable params", thousands(t.non_trainable_params)),
        ("MACs", f"{thousands(t.macs)} = {_scaled(t.macs, 'MACs')}{short}"),
        ("FLOPs", f"{thousands(t.flops)} = {_scaled(t.flops, 'FLOPs')}{short}"),
        ("Input size", _bytes(t.input_bytes)),
        ("Activation memory", _bytes(t.activation_bytes)),
        ("Parameter memory", _bytes(t.param_bytes)),
        ("Estimated total", _bytes(est)),
    ]
    if t.not_counted:
        lines.insert(
            5,
            (
                "Not counted",
                f"{not_counted_text(t.not_counted)}: operators cnncli cannot count, their MACs "
                "are missing from the totals",
            ),
        )
    return lines


def training_title(memory: TrainingMemory) -> str:
    """``Training memory (batch 32, adam, float32)``: the heading of the breakdown."""
    return f"Training memory (batch {memory.batch}, {memory.optimizer}, {memory.dtype})"


def training_lines(memory: TrainingMemory) -> list[tuple[str, str]]:
    """The ``--train`` breakdown: one (label, bytes) line per part, then the total."""
    m = memory
    short = " + opaque layers' saved tensors (incomplete)" if m.not_counted else ""
    lines = [
        ("Parameters", _bytes(m.parameter_bytes)),
        ("Gradients", _bytes(m.gradient_bytes)),
        ("Optimizer state", _bytes(m.optimizer_bytes)),
        ("Activations kept for backward", _bytes(m.activation_bytes) + short),
        ("Input batch", _bytes(m.input_bytes)),
        ("Total", _bytes(m.total_bytes) + short),
    ]
    if m.not_counted:
        lines.insert(
            4,
            (
                "Not counted",
                f"{not_counted_text(m.not_counted)}: what these operators save for backward is "
                "unknown and missing from the total",
            ),
        )
    return lines


def _data_heads(columns: Sequence[str]) -> list[tuple[str, bool]]:
    """Titles (and right alignment) of the columns after Layer and Type, in table order."""
    heads: list[tuple[str, bool]] = []
    if "input" in columns:
        heads.append(("Input shape", False))
    heads.append(("Output shape", False))
    heads += [(c.capitalize(), False) for c in ("kernel", "stride") if c in columns]
    if "rf" in columns:
        heads.append(("RF /jump", False))
    heads += [("Params", True), ("MACs", True)]
    if "memory" in columns:
        heads.append(("Activation memory", True))
    if "connected" in columns:
        heads.append(("Connected to", False))
    return heads


def _data_cells(row: Row, columns: Sequence[str], header: bool) -> list[str]:
    """The cells of one row under :func:`_data_heads`; a block's header row shows no counts."""
    cells: list[str] = []
    if "input" in columns:
        cells.append(", ".join(dims(s) for s in row.input_shapes))
    cells.append(outputs_text(row))
    if "kernel" in columns:
        cells.append(_x(row.kernel))
    if "stride" in columns:
        cells.append(_x(row.stride))
    if "rf" in columns:
        cells.append(_rf(row))
    cells += ["" if header else thousands(row.params), "" if header else macs_text(row)]
    if "memory" in columns:
        cells.append("" if header else si(row.output_elements * BYTES_PER_ELEMENT, "B"))
    if "connected" in columns:
        cells.append(_connected(row) if row.kind == "layer" else "")
    return cells


def table(
    summary: Summary,
    depth: int | None = None,
    columns: Sequence[str] = (),
    chart: bool = False,
    memory: TrainingMemory | None = None,
) -> tuple[Text, Group]:
    """The table (Rich text), and the totals with the counting conventions that go under it."""
    from rich.cells import cell_len
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    layout = "channels last" if summary.ctx.channels_last else "channels first"
    heads: list[tuple[str, bool]] = [("Layer", False), ("Type", False)]  # (title, right-aligned)
    heads += _data_heads(columns)
    if chart:
        heads.append(("MACs share", False))

    body = _body(summary, depth, columns, chart)
    # Every cell is one line, so the widths are known; drawing the box ourselves (as Rich's
    # HEAVY_HEAD table looks) is 5x faster than rich.table.Table for a thousand rows, which
    # otherwise dominated the run time of `cnncli summary resnet152.yaml`.
    widths = [cell_len(h) for h, _ in heads]
    for cells, _, _ in body:
        widths = [max(w, cell_len(c)) for w, c in zip(widths, cells, strict=True)]
    title = printable(
        f"{summary.name}  ({layout}, {summary.framework} conventions, input "
        + ", ".join(dims(s) for s in summary.inputs.values())
        + ")"
    )
    tbl = _boxed(title, heads, widths, body, chart_col=len(heads) - 1 if chart else -1)
    tot = Table.grid(padding=(0, 2))
    tot.add_column()
    tot.add_column(justify="left")
    for label, value in totals_lines(summary):
        tot.add_row(label + ":", value)
    conv = CONVENTIONS_BIAS if summary.count_bias else CONVENTIONS
    train: list[Table | Text] = []
    if memory is not None:
        grid = Table.grid(padding=(0, 2))
        grid.add_column()
        grid.add_column(justify="left")
        for label, value in training_lines(memory):
            grid.add_row(label + ":", value)
        train = [Text(training_title(memory) + ":"), grid, Text(memory.convention, style="dim")]
    return tbl, Group(
        tot,
        *train,
        Text(conv, style="dim"),
        Text(notes(summary), style="dim"),
        *(Text(printable(n), style="dim") for n in summary.notes),
    )


def _body(
    summary: Summary, depth: int | None, columns: Sequence[str], chart: bool
) -> list[tuple[list[str], bool, bool]]:
    """The table's rows as text cells: (cells, is a block, is a block header)."""
    shown = visible_rows(summary, depth)
    peak = max((r.macs for r, f in shown if r.kind == "layer" or f), default=0)
    body: list[tuple[list[str], bool, bool]] = []
    for row, folded in shown:
        header = row.kind == "block" and not folded
        name = "  " * row.depth + (row.local if row.kind == "layer" or row.depth else row.name)
        typ = layer_type_text(row) + (
            f" ({row.activation})" if row.activation and row.type != "activation" else ""
        )
        if row.training_only:
            typ += " [training only]"
        if row.kind == "block":
            typ = f"[{_block_type(row)}]"
        # Names, block types and input names come from the model file: no control characters.
        cells = [printable(c) for c in (name, typ, *_data_cells(row, columns, header))]
        if chart:
            share = row.macs / summary.totals.macs if summary.totals.macs else 0.0
            bar = round(24 * row.macs / peak) if peak and not header else 0
            cells.append("█" * bar + (f" {share:.1%}" if row.macs and not header else ""))
        body.append((cells, row.kind == "block", header))
    return body


def _boxed(
    title: str,
    heads: list[tuple[str, bool]],
    widths: list[int],
    body: list[tuple[list[str], bool, bool]],
    chart_col: int,
) -> Text:
    from rich.cells import cell_len
    from rich.text import Text

    def rule(left: str, fill: str, mid: str, right: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + right + "\n"

    def pad(text: str, width: int, right: bool) -> str:
        gap = " " * (width - cell_len(text))
        return f" {gap}{text} " if right else f" {text}{gap} "

    out = Text(no_wrap=True, overflow="ignore")
    out.append(title + "\n", style="italic")
    out.append(rule("┏", "━", "┳", "┓"))
    out.append("┃")
    for (head, right), w in zip(heads, widths, strict=True):
        out.append(pad(head, w, right), style="bold")
        out.append("┃")
    out.append("\n" + rule("┡", "━", "╇", "┩"))
    for cells, is_block, header in body:
        out.append("│")
        for k, (cell, (_, right), w) in enumerate(zip(cells, heads, widths, strict=True)):
            style = "dim" if header else ""
            if k == 0 and is_block:
                style += " bold"
            elif k == chart_col:
                style += " cyan"
            out.append(pad(cell, w, right), style=style.strip() or None)
            out.append("│", style="dim" if header else None)
        out.append("\n")
    out.append(rule("└", "─", "┴", "┘").rstrip("\n"))
    return out


def _width(tbl: Text) -> int:
    from rich.cells import cell_len

    return max(cell_len(line) for line in tbl.plain.splitlines())


def _print(console: Console, tbl: Text, footer: Group) -> None:
    # Never squeeze numbers into "1,2…": a table wider than the terminal is printed at its
    # natural width (the terminal wraps long lines; a file or pipe gets every digit).
    needed = _width(tbl)
    if needed > console.width:
        # Console.print clamps width= to the console's width, so widen the console itself.
        saved = console.width
        console.width = needed
        try:
            console.print(tbl, crop=False, soft_wrap=True)
        finally:
            console.width = saved
    else:
        console.print(tbl, soft_wrap=True)
    console.print(footer)


def show(
    summary: Summary,
    depth: int | None = None,
    columns: Sequence[str] = (),
    chart: bool = False,
    console: Console | None = None,
    memory: TrainingMemory | None = None,
) -> None:
    from rich.console import Console

    console = console or Console(highlight=False)
    _print(console, *table(summary, depth, columns, chart, memory))


def svg(
    summary: Summary,
    depth: int | None,
    columns: Sequence[str],
    chart: bool,
    width: int = 140,
    memory: TrainingMemory | None = None,
) -> str:
    """The table as an SVG document (Rich's terminal rendering)."""
    from rich.console import Console

    tbl, footer = table(summary, depth, columns, chart, memory)
    width = max(width, _width(tbl))
    console = Console(record=True, file=io.StringIO(), width=width, color_system="truecolor")
    console.print(tbl, soft_wrap=True)
    console.print(footer)
    return console.export_svg(title=f"cnncli summary {printable(summary.name)}")


def _layer_dict(row: Row) -> dict[str, Any]:
    return {
        "name": row.name,
        "type": row.type,
        "block": row.group,
        "output_shape": _sizes(row.output_shape),
        **({"output_shapes": [_sizes(s) for s in row.output_shapes]} if row.output_shapes else {}),
        "input_shapes": [_sizes(s) for s in row.input_shapes],
        "inputs": list(row.inputs),
        "params": row.params,
        "trainable_params": row.trainable_params,
        "non_trainable_params": row.non_trainable_params,
        # An opaque layer's MACs are unknown: null, never a silent 0.
        "macs": None if row.op else row.macs,
        "flops": None if row.op else 2 * row.macs,
        "op": row.op,
        "kernel": list(row.kernel) if row.kernel else None,
        "stride": list(row.stride) if row.stride else None,
        "dilation": list(row.dilation) if row.dilation else None,
        "receptive_field": list(row.receptive_field) if row.receptive_field else None,
        "jump": list(row.jump) if row.jump else None,
        "activation": row.activation,
        "training_only": row.training_only,
        "output_bytes": row.output_elements * BYTES_PER_ELEMENT,
        "line": row.line,
    }


def training_dict(memory: TrainingMemory) -> dict[str, Any]:
    """``training_memory`` of the JSON: every part in bytes, the total, the convention."""
    m = memory
    return {
        "batch": m.batch,
        "optimizer": m.optimizer.value,
        "dtype": m.dtype.value,
        "parameter_bytes": m.parameter_bytes,
        "gradient_bytes": m.gradient_bytes,
        "optimizer_state_bytes": m.optimizer_bytes,
        "activation_bytes": m.activation_bytes,
        "input_bytes": m.input_bytes,
        "total_bytes": m.total_bytes,
        # False when opaque layers save tensors nobody knows: the total is then a lower bound.
        "complete": not m.not_counted,
        "not_counted": dict(m.not_counted),
        "warnings": list(m.warnings),
        "convention": m.convention,
    }


def to_dict(summary: Summary, memory: TrainingMemory | None = None) -> dict[str, Any]:
    """The JSON object: ``layers`` (every layer, in file order), ``blocks`` and ``totals``
    (and ``training_memory`` with ``--train``)."""
    t = summary.totals
    return {
        "model": summary.name,
        "source": summary.source,
        "layout": summary.layout,
        "framework": summary.framework,
        "inputs": {k: list(v) for k, v in summary.inputs.items()},
        "outputs": {k: _sizes(v) for k, v in summary.outputs.items()},
        "layers": [_layer_dict(r) for r in summary.rows if r.kind == "layer"],
        "blocks": [
            {
                "name": r.name,
                "block": r.type,
                "repeat": r.repeat,
                "parent": r.group,
                "output_shape": _sizes(r.output_shape),
                "params": r.params,
                "trainable_params": r.trainable_params,
                "non_trainable_params": r.non_trainable_params,
                "macs": r.macs,
                "not_counted": r.not_counted,
                "line": r.line,
            }
            for r in summary.rows
            if r.kind == "block"
        ],
        "totals": {
            "params": t.params,
            "trainable_params": t.trainable_params,
            "non_trainable_params": t.non_trainable_params,
            "macs": t.macs,
            "flops": t.flops,
            "gmacs": round(t.macs / 1e9, 3),
            "bias_macs": t.bias_macs,
            "layers": t.layers,
            "param_bytes": t.param_bytes,
            "activation_bytes": t.activation_bytes,
            "input_bytes": t.input_bytes,
            # Operator → layers whose MACs are missing from macs (empty: everything counted).
            "not_counted": dict(t.not_counted),
        },
        "conventions": {
            "macs": CONVENTIONS_BIAS if summary.count_bias else CONVENTIONS,
            "count_bias": summary.count_bias,
            "bytes_per_element": BYTES_PER_ELEMENT,
            "notes": notes(summary),
        },
        # What the reader of an ONNX, Keras or PyTorch model did (empty for YAML models).
        "reader_notes": list(summary.notes),
        **({"training_memory": training_dict(memory)} if memory is not None else {}),
    }


def to_json(summary: Summary, memory: TrainingMemory | None = None) -> str:
    return json.dumps(to_dict(summary, memory), indent=2) + "\n"


CSV_FIELDS = (
    "name",
    "type",
    "block",
    "output_shape",
    "params",
    "trainable_params",
    "non_trainable_params",
    "macs",
    "kernel",
    "stride",
    "receptive_field",
    "jump",
    "inputs",
    "line",
)


def to_csv(summary: Summary) -> str:
    """One row per layer (no block or total rows, so columns sum to the totals)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for row in summary.rows:
        if row.kind != "layer":
            continue
        w.writerow(
            [
                printable(row.name),
                printable(layer_type_text(row)),
                printable(row.group or ""),
                # A split's outputs: 58x28x28+58x28x28.
                "+".join("x".join(map(_size, s)) for s in row.output_shapes or [row.output_shape]),
                row.params,
                row.trainable_params,
                row.non_trainable_params,
                "" if row.op else row.macs,  # not counted: empty, never 0
                "x".join(map(str, row.kernel or ())),
                "x".join(map(str, row.stride or ())),
                "x".join(map(str, row.receptive_field or ())),
                "x".join(map(str, row.jump or ())),
                printable(" ".join(row.inputs)),
                row.line,
            ]
        )
    return buf.getvalue()


def _md(text: str) -> str:
    """A Markdown table cell: control characters escaped, no column breaks, no HTML tags."""
    return printable(text).replace("|", "\\|").replace("<", "&lt;")


def to_markdown(
    summary: Summary,
    depth: int | None = None,
    columns: Sequence[str] = (),
    memory: TrainingMemory | None = None,
) -> str:
    """A GitHub Markdown table of the shown rows, then the totals."""
    heads = [("Layer", False), ("Type", False), *_data_heads(columns)]
    head = [title for title, _ in heads]
    right = {title for title, is_right in heads if is_right}
    lines = [
        f"**{_md(summary.name)}**: {summary.layout.replace('_', ' ')}, {summary.framework} conventions",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---:" if h in right else "---" for h in head) + "|",
    ]
    for row, folded in visible_rows(summary, depth):
        header = row.kind == "block" and not folded
        name = "&nbsp;&nbsp;" * row.depth + (
            row.local if row.kind == "layer" or row.depth else row.name
        )
        cells = [
            f"**{name}**" if row.kind == "block" else name,
            _block_type(row)
            if row.kind == "block"
            else layer_type_text(row) + (" [training only]" if row.training_only else ""),
            *_data_cells(row, columns, header),
        ]
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    lines.append("")
    for label, value in totals_lines(summary):
        lines.append(f"- {label}: {value}")
    if memory is not None:
        lines.append("")
        lines.append(f"{training_title(memory)}:")
        lines.append("")
        for label, value in training_lines(memory):
            lines.append(f"- {label if label != 'Total' else 'Training memory, total'}: {value}")
        lines.append("")
        lines.append(memory.convention)
    lines.append("")
    lines.append(CONVENTIONS_BIAS if summary.count_bias else CONVENTIONS)
    lines.append("")
    lines.append(notes(summary))
    lines.extend(f"\n{_md(n)}" for n in summary.notes)
    return "\n".join(lines) + "\n"


def zoo_table(entries: Sequence[ZooEntry]) -> str:
    """``cnncli summary --list``: one aligned line per zoo model (name, file, description)."""
    rows = [("model", "file", "description")] + [
        (printable(e.name), printable(e.file), printable(e.description)) for e in entries
    ]
    wide = [max(len(r[i]) for r in rows) for i in range(2)]
    return "".join(f"{n:<{wide[0]}}  {f:<{wide[1]}}  {d}".rstrip() + "\n" for n, f, d in rows)


def zoo_json(entries: Sequence[ZooEntry]) -> str:
    """``cnncli summary --list --json``: the zoo as a list of {name, file, description}."""
    items = [{"name": e.name, "file": e.file, "description": e.description} for e in entries]
    return json.dumps(items, indent=2) + "\n"
