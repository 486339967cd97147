"""Pictures in the terminal for ``cnncli filter --preview`` and the ``cnncli kernels`` table.

A half-block cell (``▀``) shows two pixels: the upper one as the foreground colour, the lower one
as the background, so a W-column preview shows a W×2R picture in R text rows. Without colour (a
pipe, ``NO_COLOR``, ``TERM=dumb``) each cell is a character of a grey ramp instead, brighter
pixels denser (as on a dark terminal), so the picture still reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text

from cnncli.render.term import printable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from cnncli.filtering.kernels import Kernel

#: Matrices up to this many rows and columns are printed number by number.
MAX_NUMERIC = 7


class HalfBlocks:
    """A uint8 H×W or H×W×3 picture drawn with ``▀`` cells (two pixel rows per text row)."""

    def __init__(self, pixels: npt.NDArray[np.uint8]) -> None:
        self.pixels = pixels

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        w = int(self.pixels.shape[1])
        return Measurement(w, w)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        px = self.pixels
        h = px.shape[0]
        for y in range(0, h, 2):
            for x in range(px.shape[1]):
                top = _rgb(px[y, x])
                bottom = _rgb(px[y + 1, x]) if y + 1 < h else None
                yield Segment("▀", Style(color=top, bgcolor=bottom))
            yield Segment.line()


#: Dark to bright: the ASCII shades for a terminal without colour.
RAMP = " .:-=+*#%@"


class AsciiShades(HalfBlocks):
    """The same picture as :class:`HalfBlocks` in plain characters: each cell the ITU-R 601
    luma of its two pixels, as one of :data:`RAMP`'s ten shades."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        import numpy as np

        px = self.pixels.astype(np.float64)
        luma = px @ [0.299, 0.587, 0.114] if px.ndim == 3 else px
        if luma.shape[0] % 2:  # a last lone row pairs with itself
            luma = np.vstack([luma, luma[-1:]])
        cells = (luma[0::2] + luma[1::2]) / 2
        shade = np.minimum((cells * len(RAMP) / 256).astype(int), len(RAMP) - 1)
        for row in shade:
            yield Segment("".join(RAMP[i] for i in row))
            yield Segment.line()


def _rgb(value: Any) -> str:
    if getattr(value, "shape", ()) == ():
        v = int(value)
        return f"rgb({v},{v},{v})"
    r, g, b = (int(c) for c in value[:3])
    return f"rgb({r},{g},{b})"


def fit(pixels: npt.NDArray[np.uint8], columns: int, max_rows: int) -> npt.NDArray[np.uint8]:
    """Downsample (area average) to at most ``columns`` wide and ``2·max_rows`` pixel rows tall."""
    import numpy as np
    from PIL import Image

    h, w = pixels.shape[:2]
    scale = min(columns / w, (2 * max_rows) / h, 1.0)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) == (w, h):
        return pixels
    im = Image.fromarray(pixels)
    return np.asarray(im.resize((nw, nh), Image.Resampling.BOX))


def preview_pixels(console: Console) -> tuple[int, int]:
    """(columns, pixel rows) each picture of :func:`show_side_by_side` gets on ``console``."""
    height = console.size.height if console.is_terminal else 40
    return max(4, (console.width - 3) // 2), 2 * max(2, height - 4)


def shrink_factor(hw: tuple[int, int], columns: int, pixel_rows: int) -> int:
    """The largest whole factor a ``hw`` picture can be box-averaged by and still be at least
    as large as it is shown in ``columns`` × ``pixel_rows`` (:func:`fit` does the rest)."""
    h, w = hw
    scale = min(columns / max(w, 1), pixel_rows / max(h, 1), 1.0)
    return max(1, int(1 / scale))


class Shrink:
    """Block means (``factor``×``factor``) of a picture that arrives in row bands, in float32,
    so a preview of a large picture costs one pass over it and a picture ``factor²`` smaller:
    no float or RGB copy of the whole. Bands arrive in order, each a multiple of ``factor``
    rows but the last; blocks at the right and bottom edges average what they hold."""

    def __init__(self, height: int, width: int, factor: int) -> None:
        import numpy as np

        self.factor = factor
        self.width = width
        self.height = height
        self.parts: list[npt.NDArray[np.float32]] = []
        self.lo = float("inf")
        self.hi = float("-inf")
        f = factor
        self._cols = np.arange(0, width, f)
        self._col_counts = np.minimum(width - self._cols, f).astype(np.float32)

    def add(self, band: npt.NDArray[Any]) -> None:
        import numpy as np

        if band.size == 0:
            return
        self.lo = min(self.lo, float(band.min()))
        self.hi = max(self.hi, float(band.max()))
        f = self.factor
        if f == 1:
            self.parts.append(np.array(band, dtype=np.float32))
            return
        starts = np.arange(0, band.shape[0], f)
        rows = np.add.reduceat(band, starts, axis=0, dtype=np.float32)
        sums = np.add.reduceat(rows, self._cols, axis=1, dtype=np.float32)
        counts = np.minimum(band.shape[0] - starts, f).astype(np.float32)[:, None]
        counts = counts * self._col_counts[None, :]
        if sums.ndim == 3:
            counts = counts[:, :, None]
        self.parts.append(sums / counts)

    def result(self) -> npt.NDArray[np.float32]:
        import numpy as np

        return np.concatenate(self.parts, axis=0)


def side_by_side(
    left: npt.NDArray[np.uint8],
    right: npt.NDArray[np.uint8],
    *,
    width: int,
    height: int,
    left_title: str = "",
    right_title: str = "",
    color: bool = True,
) -> Table:
    """Two pictures next to each other, each scaled to half the width (``color``: half-block
    cells in 24-bit colour; otherwise :class:`AsciiShades`)."""
    picture = HalfBlocks if color else AsciiShades
    half = max(4, (width - 3) // 2)
    rows = max(2, height - 4)
    table = Table.grid(padding=(0, 1))
    table.add_column()
    table.add_column()
    table.add_row(
        Text(printable(left_title)[:half], style="bold"),
        Text(printable(right_title)[:half], style="bold"),
    )
    table.add_row(picture(fit(left, half, rows)), picture(fit(right, half, rows)))
    return table


def show_side_by_side(
    left: npt.NDArray[np.uint8],
    right: npt.NDArray[np.uint8],
    *,
    left_title: str = "",
    right_title: str = "",
    console: Console | None = None,
) -> None:
    """Print :func:`side_by_side` on stdout, sized to the terminal; in grey characters when
    the console has no colour."""
    console = console or Console(highlight=False)
    columns, pixel_rows = preview_pixels(console)
    console.print(
        side_by_side(
            left,
            right,
            width=2 * columns + 3,
            height=pixel_rows // 2 + 4,
            left_title=left_title,
            right_title=right_title,
            color=console.color_system is not None,
        )
    )


# --------------------------------------------------------------------------------------------
# Kernel matrices
# --------------------------------------------------------------------------------------------


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
