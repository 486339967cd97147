"""Results as numbers: aligned matrices for the terminal (``cnncli filter --print``, and a
``.csv``/``.txt`` input with no ``-o``), and the text of ``.csv``/``.txt`` outputs.

Every value is written exactly: the shortest decimal that reads back as the same float32
(``39``, ``-30``, ``0.11111111``), so what a learner compares with PyTorch is what the filter
computed. Columns are aligned on the decimal point, one space apart, so the course notes'
seed example prints ``0 39 39 0``. Headings are ``#`` comments: text printed to a file reads
back as a matrix.

NumPy only (no Rich): the text is the same on a terminal and in a pipe.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from cnncli.errors import UsageError

#: Most rows ``--print`` shows of one map: more scroll past instead of being read.
PRINT_MAX_ROWS = 100


def number(value: float) -> str:
    """The shortest text that reads back as the same float32: ``39``, ``-0.5``, ``1e+20``
    (scientific beyond 1e16 and below 1e-6, where positional digits run long); ``-0`` is 0."""
    v = np.float32(value) + np.float32(0.0)  # -0.0 + 0.0 is 0.0
    a = abs(float(v))
    if a != 0 and (a >= 1e16 or a < 1e-6):
        return np.format_float_scientific(v, unique=True, trim="-")
    return np.format_float_positional(v, unique=True, trim="-")


def _column(texts: list[str]) -> list[str]:
    """One column's values aligned on the decimal point (right-aligned if any is scientific)."""
    if any("e" in t for t in texts):
        width = max(map(len, texts))
        return [t.rjust(width) for t in texts]
    parts = [t.partition(".") for t in texts]
    left = max(len(whole) for whole, _, _ in parts)
    right = max(len(dot + frac) for _, dot, frac in parts)
    return [(whole.rjust(left) + dot + frac).ljust(left + right) for whole, dot, frac in parts]


def aligned(matrix: npt.NDArray[np.floating]) -> list[str]:
    """The rows of a 2-D matrix as text lines, columns aligned, one space apart."""
    rows, cols = matrix.shape
    columns = [_column([number(v) for v in matrix[:, j]]) for j in range(cols)]
    return [" ".join(columns[j][i] for j in range(cols)).rstrip() for i in range(rows)]


def csv_text(matrix: npt.NDArray[np.floating]) -> str:
    """A 2-D matrix as CSV rows (exact values, no alignment)."""
    return "".join(",".join(number(v) for v in row) + "\n" for row in matrix)


def txt_text(matrix: npt.NDArray[np.floating]) -> str:
    """A 2-D matrix as aligned text rows: what ``--print`` shows, and a kernel file reads."""
    return "".join(line + "\n" for line in aligned(matrix))


def check_printable(height: int, width: int, columns: int, what: str) -> None:
    """Refuse, before any work, a ``height``×``width`` map that cannot fit ``columns`` of text
    (each value takes a character and a space at least) or :data:`PRINT_MAX_ROWS` rows."""
    if height > PRINT_MAX_ROWS or 2 * width - 1 > columns:
        raise UsageError(
            f"{what}: the {width}×{height} result is too large to print (at most "
            f"{PRINT_MAX_ROWS} rows, and {columns} columns of text here); write it to a file "
            "with -o FILE.csv (or .npy, .png)"
        )


def printed(maps: Sequence[tuple[str, npt.NDArray[np.floating]]], columns: int, what: str) -> str:
    """The text of every map (``(label, 2-D matrix)``), each under a ``# map i of n: label``
    heading when there are several, or a UsageError naming ``what`` when a row is wider than
    ``columns``."""
    blocks: list[str] = []
    for i, (label, matrix) in enumerate(maps, 1):
        lines = aligned(matrix)
        wide = max((len(line) for line in lines), default=0)
        if wide > columns:
            h, w = matrix.shape
            raise UsageError(
                f"{what}: the {w}×{h} result is {wide} characters wide, more than this "
                f"{columns}-column terminal; write it to a file with -o FILE.csv (or .npy, .png)"
            )
        head = [f"# map {i} of {len(maps)}: {label}"] if len(maps) > 1 else []
        blocks.append("\n".join(head + lines))
    return "\n\n".join(blocks) + "\n"
