"""The ``cnncli kernels`` views: the library as a table, one kernel in full (Rich renderables).

Small matrices are printed number by number; large ones as a heat map with a summary, in
colour on a colour terminal and as digits otherwise (a pipe, ``NO_COLOR``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from cnncli.render.term import printable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from cnncli.filtering.kernels import Kernel

#: Matrices up to this many rows and columns are printed number by number.
MAX_NUMERIC = 7


def _num(v: float) -> str:
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    text = f"{v:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def matrix_text(
    m: npt.NDArray[np.float64],
    max_numeric: int = MAX_NUMERIC,
    *,
    color: bool = True,
    width: int | None = None,
) -> Text:
    """Small matrices number by number (aligned); large ones (or rows wider than ``width``) as a
    small map plus a summary: coloured cells on a colour terminal, digits without colour (a
    pipe, ``NO_COLOR``), where coloured blocks would all print as the same solid ``█``."""
    if m.ndim > 2:
        lead = "×".join(map(str, m.shape))
        return Text(f"{lead} array, sum {m.sum():.4g}")
    h, w = m.shape
    if h <= max_numeric and w <= max_numeric:
        cells = [[_num(float(v)) for v in row] for row in m]
        size = max(len(c) for row in cells for c in row)
        if width is None or w * (size + 1) - 1 <= width:
            lines = [" ".join(c.rjust(size) for c in row) for row in cells]
            return Text("\n".join(lines))
    return _shaded(m, 8 if max_numeric < 10 else 16, color)


def _shaded(m: npt.NDArray[np.float64], cells: int = 8, color: bool = True) -> Text:
    """At most ``cells`` across: a heat map (blue negative, red positive, brighter = larger) in
    colour, else each sampled weight as a digit ``round(9·w/max|w|)`` (``-9`` … ``9``)."""
    import numpy as np

    h, w = m.shape
    rows, cols = _sample(h, cells), _sample(w, cells)
    small = m[np.ix_(rows, cols)]
    peak = float(np.abs(m).max()) or 1.0
    digits = 3 if (small < 0).any() else 2  # "-3 -9" stay apart
    text = Text()
    for row in small:
        for v in row:
            if not color:
                text.append(f"{round(9 * float(v) / peak):{digits}d}")
                continue
            level = int(round(255 * min(1.0, abs(float(v)) / peak)))
            colour = (
                f"rgb({level},{level // 4},{level // 4})"
                if v >= 0
                else f"rgb({level // 4},{level // 4},{level})"
            )
            text.append("██", style=colour)
        text.append("\n")
    total = float(m.sum())
    if abs(total) < 1e-9 * float(np.abs(m).sum()):
        total = 0.0  # a zero-sum kernel, up to rounding
    text.append(f"{h}×{w}, sum {total:.4g}\n{m.min():.3g} … {m.max():.3g}")
    if small.shape != m.shape:
        text.append(f"\n{small.shape[0]}×{small.shape[1]} of them shown")
    if not color:
        text.append(f"\ndigit: 9·w/{peak:.3g}")
    return text


def _sample(n: int, cells: int) -> npt.NDArray[np.intp]:
    """At most ``cells`` indices spread evenly over ``0..n-1``, symmetric, and through the
    centre of an odd size (a Laplacian of Gaussian's dip is its centre)."""
    import numpy as np

    k = min(n, cells)
    if n % 2 and k % 2 == 0:
        k -= 1
    return np.rint(np.linspace(0, n - 1, k)).astype(np.intp)


def _params(kernel: Kernel) -> str:
    from cnncli.filtering.kernels import default_params

    base = kernel.name.split(":")[0]
    for suffix in ("-x", "-y", "-dir"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    try:
        names = default_params(base)
    except Exception:  # custom kernels have no parameters
        return ""
    shown = []
    for key in names:
        value = kernel.params.get(key)
        shown.append(f"{key}={_num(float(value))}" if value is not None else f"{key}=auto")
    return ", ".join(shown)


def _combine_note(kernel: Kernel) -> str:
    from cnncli.enums import Combine

    return {
        Combine.SINGLE: "",
        Combine.MAGNITUDE: "x shown; y is its transpose; result √(gx²+gy²)",
        Combine.DIRECTION: "x shown; y is its transpose; result atan2(gy, gx) in degrees",
        Combine.MAXIMUM: f"north shown; max over {len(kernel.weights)} rotations",
    }[kernel.combine]


def kernel_table(kernels: list[Kernel], *, color: bool = True) -> Table:
    """The library: name, weights, and what it does with its default mapping and parameters.

    Three columns, so the description keeps most of an 80-column terminal (with the map and
    the parameters in columns of their own it was squeezed to 9 characters); ``color``: heat
    maps in colour, else digits (see :func:`matrix_text`)."""
    table = Table(
        title="cnncli kernels (use NAME:param=value; see 'cnncli kernels NAME')", show_lines=True
    )
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("weights", no_wrap=True)
    table.add_column("what it does")
    for k in kernels:
        note = _combine_note(k)
        desc = k.description + (f" ({note})" if note else "")
        if k.combine.value in ("magnitude",):
            desc += f"; also {k.name}-x, {k.name}-y, {k.name}-dir"
        params = _params(k)
        info = f"map {k.mapping.value}" + (f"; {params}" if params else "")
        cell = Text(desc)
        cell.append(f"\n{info}", style="dim")
        table.add_row(k.name, matrix_text(k.matrix, 5, color=color), cell)
    return table


def kernel_detail(kernel: Kernel, *, color: bool = True, width: int | None = None) -> Group:
    """One kernel in full: every weight array numerically up to 15×15 when its rows fit
    ``width`` columns (else as a map, see :func:`matrix_text`)."""
    parts: list[Any] = [Text(printable(f"{kernel.name}: {kernel.description}"), style="bold")]
    params = _params(kernel)
    info = f"default map: {kernel.mapping.value}"
    if params:
        info += f"; parameters: {params}"
    parts.append(Text(info))
    labels: list[str]
    if kernel.combine.value in ("magnitude", "direction"):
        labels = ["x", "y"]
    elif kernel.combine.value == "maximum":
        labels = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"]
    else:
        labels = [""]
    for label, w in zip(labels, kernel.weights, strict=False):
        kh, kw = w.shape[-2:]
        head = f"{label + ': ' if label else ''}{'×'.join(map(str, w.shape))}, sum {w.sum():.6g}"
        parts.append(Text(head, style="dim"))
        if w.ndim == 2:
            parts.append(matrix_text(w, 15, color=color, width=width))
        else:
            flat = w.reshape(-1, kh, kw)
            for i, plane in enumerate(flat[:8]):
                idx = divmod(i, w.shape[1]) if w.ndim == 4 else (i,)
                parts.append(Text(f"[{','.join(map(str, idx))}]", style="dim"))
                parts.append(matrix_text(plane, 15, color=color, width=width))
            if len(flat) > 8:
                parts.append(Text(f"... {len(flat) - 8} more planes"))
    note = _combine_note(kernel)
    if note:
        parts.append(Text(note, style="dim"))
    return Group(*parts)
