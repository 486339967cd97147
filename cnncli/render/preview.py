"""Pictures in the terminal for ``cnncli filter --preview`` (kernel matrices: :mod:`cnncli.render.kernels`).

A half-block cell (``▀``) shows two pixels: the upper one as the foreground colour, the lower one
as the background, so a W-column preview shows a W×2R picture in R text rows. Without colour (a
pipe, ``NO_COLOR``, ``TERM=dumb``) each cell is a character of a grey ramp instead, brighter
pixels denser (as on a dark terminal), so the picture still reads.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text

from cnncli.render.term import printable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from cnncli.enums import Mapping
    from cnncli.images import Picture


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
    # Titles wrap within their half, never cut: the right one names the whole chain (kernels,
    # --then stages, mapping), which can be longer than half the terminal; the pictures give
    # up the rows the titles take.
    rows = max(2, height - 3 - _title_lines(left_title, right_title, half))
    table = Table.grid(padding=(0, 1))
    table.add_column(width=half)  # the right picture starts at the same column every time
    table.add_column(max_width=half)
    table.add_row(
        Text(printable(left_title), style="bold", overflow="fold"),
        Text(printable(right_title), style="bold", overflow="fold"),
    )
    table.add_row(picture(fit(left, half, rows)), picture(fit(right, half, rows)))
    return table


def _title_lines(left: str, right: str, half: int) -> int:
    """Text rows the two titles take when each wraps within ``half`` columns (at least one)."""
    from rich.cells import cell_len

    def lines(title: str) -> int:
        return max(1, -(-cell_len(printable(title)) // max(half, 1)))

    return max(lines(left), lines(right))


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


class FilterPreview:
    """The two pictures of ``cnncli filter --preview``, reduced to the preview's size as the
    result's bands come (box means, in float32) and only then mapped to 8-bit RGB: never a
    float or RGB copy of a whole large picture. Bands come from
    :func:`cnncli.filtering.pipeline.filter_file` (the ``Preview`` it takes)."""

    def __init__(
        self,
        pic: Picture,
        shape: tuple[int, ...],
        how: Mapping,
        value_range: Any,
        *,
        pause: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        from cnncli.enums import Mapping

        #: Entered while the pictures are drawn: a batch's progress bar steps aside (Rich draws
        #: it on stderr, the pictures go to stdout; on one terminal they would overwrite each
        #: other's lines).
        self.pause = pause or nullcontext
        self.console = Console(highlight=False)
        self.pic, self.how, self.value_range = pic, how, value_range
        columns, pixel_rows = preview_pixels(self.console)
        h, w = int(shape[0]), int(shape[1])
        self.result = Shrink(h, w, shrink_factor((h, w), columns, pixel_rows))
        ih, iw = int(pic.data.shape[0]), int(pic.data.shape[1])
        self.input = Shrink(ih, iw, shrink_factor((ih, iw), columns, pixel_rows))
        # Whether bands are mapped to pixels before they are averaged (clip, abs and offset
        # are not linear) or averaged as floats and mapped once (normalize over the result's
        # own min..max, known only at the end; linear, so the order does not matter).
        self.deferred = how is Mapping.NORMALIZE and value_range is None
        self.maxval = pic.maxval

    def align(self, rows: int) -> int:
        """Rows per band, rounded to whole blocks of the result's reduction."""
        f = self.result.factor
        return max(f, rows // f * f)

    def add(self, band: Any) -> None:
        from cnncli import images

        if band.ndim == 3 and band.shape[2] not in (1, 3):
            band = band[:, :, 0]
        if not self.deferred:
            band = images.map_values(band, self.how, self.maxval, self.value_range)
        self.result.add(band)

    def show(self, left_title: str, right_title: str) -> None:
        import numpy as np

        from cnncli import config, images

        data = self.pic.data
        # Bands of whole blocks, about PREVIEW_BAND_VALUES values each (block sums: float32).
        f = self.input.factor
        step = f * max(1, config.PREVIEW_BAND_VALUES // max(1, f * data[0].size))
        for r0 in range(0, data.shape[0], step):
            self.input.add(data[r0 : r0 + step])
        left = self.input.result()
        right = self.result.result()
        if self.deferred:
            span = (self.result.lo, self.result.hi)
            right = images.map_values(right, self.how, self.maxval, span).astype(np.float32)
        pic = self.pic
        with self.pause():
            show_side_by_side(
                images.to_rgb8(left, self.maxval if pic.bits != 32 else 255),
                images.to_rgb8(np.rint(right), self.maxval),
                left_title=left_title,
                right_title=right_title,
                console=self.console,
            )
