"""Reading a ``.npy`` header without trusting it: one reader for image and kernel files.

Only the header is read (magic, version, shape, dtype, order); the caller checks the numbers
against its own rules and the work budget before a single data byte is read, and object arrays
are refused from the dtype, never unpickled.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import numpy as np


class NpyHeaderError(ValueError):
    """numpy could not read the header (``cause`` is its own exception), or the file is of a
    format version that holds no plain numbers (``version``, e.g. 3.0 for named fields)."""

    def __init__(self, cause: BaseException | None, version: tuple[int, int] | None = None) -> None:
        super().__init__(str(cause) if cause is not None else f"format version {version}")
        self.cause = cause
        self.version = version


def read_header(fh: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """``(shape, fortran_order, dtype)`` from the start of ``fh``, which is left at the data."""
    fh.seek(0)
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            header = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            header = fmt.read_array_header_2_0(fh)
        else:
            header = None
    except Exception as err:  # noqa: BLE001
        # numpy parses the header with tokenize, ast and dtype(): on hostile bytes these raise
        # ValueError, EOFError, SyntaxError, TokenError, TypeError…, a set nowhere documented.
        raise NpyHeaderError(err) from None
    if header is None:
        raise NpyHeaderError(None, version)
    shape, fortran, dtype = header
    return tuple(int(n) for n in shape), bool(fortran), np.dtype(dtype)
