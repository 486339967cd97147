"""The ``cnncli kernels`` views: the library as a table, one kernel in full (Rich renderables).

Small matrices are printed number by number; large ones as a shaded heat map with a summary.
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


def matrix_text(m: npt.NDArray[np.float64], max_numeric: int = MAX_NUMERIC) -> Text:
    """Small matrices number by number (aligned); large ones as a shaded block plus a summary."""
    if m.ndim > 2:
        lead = "×".join(map(str, m.shape))
        return Text(f"{lead} array, sum {m.sum():.4g}")
    h, w = m.shape
    if h <= max_numeric and w <= max_numeric:
        cells = [[_num(float(v)) for v in row] for row in m]
        width = max(len(c) for row in cells for c in row)
        lines = [" ".join(c.rjust(width) for c in row) for row in cells]
        return Text("\n".join(lines))
    return _shaded(m, 8 if max_numeric < 10 else 16)


def _shaded(m: npt.NDArray[np.float64], cells: int = 8) -> Text:
    # A heat map (blue negative, red positive, brighter = larger) at most `cells` across.
    import numpy as np

    h, w = m.shape
    step = max(1, -(-max(h, w) // cells))
    small = m[::step, ::step]
    peak = float(np.abs(m).max()) or 1.0
    text = Text()
    for row in small:
        for v in row:
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
    return text


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


def kernel_table(kernels: list[Kernel]) -> Table:
    """The library: name, matrix, default mapping, parameters, what it does."""
    table = Table(
        title="cnncli kernels (use NAME:param=value; see 'cnncli kernels NAME')", show_lines=True
    )
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("matrix (correlation weights)", no_wrap=True)
    table.add_column("map")
    table.add_column("parameters")
    table.add_column("what it does")
    for k in kernels:
        note = _combine_note(k)
        desc = k.description + (f" ({note})" if note else "")
        if k.combine.value in ("magnitude",):
            desc += f"; also {k.name}-x, {k.name}-y, {k.name}-dir"
        table.add_row(k.name, matrix_text(k.matrix, 5), k.mapping.value, _params(k), desc)
    return table


def kernel_detail(kernel: Kernel) -> Group:
    """One kernel in full: every weight array numerically up to 15×15."""
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
            parts.append(matrix_text(w, 15))
        else:
            flat = w.reshape(-1, kh, kw)
            for i, plane in enumerate(flat[:8]):
                idx = divmod(i, w.shape[1]) if w.ndim == 4 else (i,)
                parts.append(Text(f"[{','.join(map(str, idx))}]", style="dim"))
                parts.append(matrix_text(plane, 15))
            if len(flat) > 8:
                parts.append(Text(f"... {len(flat) - 8} more planes"))
    note = _combine_note(kernel)
    if note:
        parts.append(Text(note, style="dim"))
    return Group(*parts)
