"""A fast, streaming baseline TIFF encoder: 8/16-bit gray, gray+alpha, RGB and RGBA.

Pillow writes 16-bit TIFF in gray only; this writer also holds 16-bit colour, and every mapped
TIFF that ``cnncli filter`` saves goes through it. Rows arrive in bands (:class:`TiffWriter`);
they are cut into strips of about half a megabyte, each strip is differenced (Predictor 2) and
deflated on a worker thread (NumPy and zlib release the GIL), and the strips are written in
order as they complete, with at most 2 × threads strips in flight, on the worker pool every
encoder of the process shares (cnncli.encoder). The IFD goes at the end and the header's
first-IFD offset is patched last, so the file object must be seekable.

Layout: little-endian ("II") classic TIFF, one IFD, chunky samples (PlanarConfiguration 1),
strips, Compression 8 (Adobe deflate: one zlib stream per strip) or 1 (none), SampleFormat 1
(unsigned), Photometric 1 (BlackIsZero) for gray and 2 for RGB, alpha as ExtraSamples 2
(unassociated). Tags ascend and every offset is even, as TIFF 6.0 asks. No X/YResolution:
libtiff, Pillow, OpenCV, tifffile and ImageMagick read the files without them (they assume no
physical size). Classic TIFF has 32-bit offsets, so a size whose worst case (incompressible
strips) could pass 4 GiB is refused up front rather than failing after the work; BigTIFF is
not written.

Predictor and zlib settings, measured on the 12-MP photo (benchmarks/bench_tiff.py, medians of
interleaved runs, 2 cores, zlib 1.2.13, Pillow 13 with libtiff 4.7.2, cv2 5.0; MB = 10**6 bytes):

===============================  ============  ============  ============  ============
ms, MB written (raw MB)          edge 8 (12)   RGB 8 (36)    edge 16 (24)  RGB 16 (72)
===============================  ============  ============  ============  ============
level 1 + predictor (default)      66   5.86    171  11.46    124  19.23    310  54.21
  the same on 1 thread            105   5.86    296  11.46    201  19.23    592  54.21
level 1, no predictor              62   6.62    140  34.11    109  20.29    293  70.93
level 6 + predictor               374   6.24    889  10.40    405  19.50   1299  52.59
level 6, no predictor             360   6.42    296  17.75    382  20.39    663  68.30
Pillow tiff_deflate               580   6.51    561  18.73    670  20.44       -
cv2.imwrite .tif (LZW + pred.)    128   6.97    325  11.56    308  24.86    877  64.64
cv2.imwrite deflate + pred.       287   6.48   1244  11.45    435  19.71   1632  52.98
compression="none"                  8  12.00     18  36.00     19  24.00     51  72.00
===============================  ============  ============  ============  ============

Edge maps are the abs Sobel-x of the photo in gray; the 16-bit pictures are the photo ×257 with a
σ = 1 blur in float, so their low bytes carry detail. Level 1 is zlib's run-length strategy
(Z_RLE, as png.py: zlib ignores the level with it), 2..9 its LZ77 search. Pillow and OpenCV go
through libtiff (level 6, checked by re-deflating their strips); Pillow adds no predictor and
cannot write 16-bit colour at all.

Predictor 2 is the default: it is what lets a fast deflate compress photos (8-bit RGB 11.46 MB
with it, 34.11 MB without; 16-bit 54.2 vs 70.9 MB, for 6-22 % more time), and on edge maps it is
still smaller (8-bit -11 % at the same time within noise, 16-bit -5 % for ~14 % more time).
Level 1 is the default: 3.3-8.8× faster than Pillow and 1.9-2.8× faster than OpenCV's default
(1.1-1.5× on one thread, as OpenCV runs), with files 1-39 % smaller than either (OpenCV's
deflate + predictor is 2 % smaller on 16-bit RGB, at 5× the time). Level 6 is 3-9 %
smaller on photos but 4-6× slower, and larger on edge maps; level 9 takes 40× as long on the RGB
photo for 9.83 MB. Strip size from 64 KB to 2 MB changes neither size (< 0.2 %) nor time beyond
noise; 512 KB still cuts a 12-MP gray picture into 23 strips for the cores. memLevel 8 vs 9: the
same time, 0.1-0.3 % larger.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from functools import partial
from typing import IO, Any, Final, Literal

import numpy as np
import numpy.typing as npt

from cnncli.images._bands import BandEncoder

__all__ = ["TiffWriter", "write_tiff"]

Compression = Literal["deflate", "none"]
_COMPRESSIONS: Final = ("deflate", "none")
_COMPRESSION_TAG: Final = {"none": 1, "deflate": 8}

# Raw bytes per strip: the unit of work for one thread. Big enough that the per-strip Python
# and zlib set-up costs vanish and each zlib stream has long enough to learn its statistics,
# small enough that a 12-MP gray image still makes a couple of dozen strips for the cores.
_STRIP_BYTES: Final = 1 << 19
_MEM_LEVEL: Final = 9
# Classic TIFF stores offsets and byte counts as 32-bit LONGs.
_MAX_FILE: Final = 2**32 - 1

# TIFF field types and the tags written, in the ascending order the IFD must list them.
_SHORT: Final = 3
_LONG: Final = 4
_IMAGE_WIDTH: Final = 256
_IMAGE_LENGTH: Final = 257
_BITS_PER_SAMPLE: Final = 258
_COMPRESSION: Final = 259
_PHOTOMETRIC: Final = 262
_STRIP_OFFSETS: Final = 273
_SAMPLES_PER_PIXEL: Final = 277
_ROWS_PER_STRIP: Final = 278
_STRIP_BYTE_COUNTS: Final = 279
_PLANAR_CONFIG: Final = 284
_PREDICTOR: Final = 317
_EXTRA_SAMPLES: Final = 338
_SAMPLE_FORMAT: Final = 339
_N_TAGS_MAX: Final = 13  # the most entries an IFD gets here (with Predictor and ExtraSamples)


def _deflate_bound(n: int) -> int:
    """At most how many bytes zlib makes of ``n`` bytes (zlib's compressBound, plus slack)."""
    return n + (n >> 12) + (n >> 14) + (n >> 25) + 13 + 16


def _encode(strip: npt.NDArray[np.generic], channels: int, predictor: bool, level: int) -> bytes:
    """Difference (Predictor 2) and deflate one strip: n rows × (width · channels) samples.

    The samples are uint8 or little-endian uint16; the differences wrap mod 2**bits, as the
    reader's running sum does.
    """
    if predictor:
        diff = np.empty_like(strip)
        diff[:, :channels] = strip[:, :channels]
        np.subtract(strip[:, channels:], strip[:, :-channels], out=diff[:, channels:])
        strip = diff
    # Level 1 is run-length matching only (zlib ignores the level with Z_RLE); 2..9 search.
    strategy = zlib.Z_RLE if level == 1 else zlib.Z_DEFAULT_STRATEGY
    comp = zlib.compressobj(level, zlib.DEFLATED, 15, _MEM_LEVEL, strategy)
    data = strip.data  # a memoryview of a C-contiguous array: zlib reads it without a copy
    return comp.compress(data) + comp.flush()


def _entry(tag: int, kind: int, values: tuple[int, ...]) -> tuple[int, int, int, bytes]:
    """One IFD entry's tag, type, count and packed little-endian values."""
    fmt = "H" if kind == _SHORT else "I"
    return tag, kind, len(values), struct.pack(f"<{len(values)}{fmt}", *values)


class TiffWriter(BandEncoder[bytes | memoryview]):
    """Write a TIFF band by band; see the module docstring for the format choices.

    The band pipeline (checks, bands cut into strips, the shared worker pool, ``write``,
    ``close``, ``abort``) is :class:`cnncli.encoder.BandEncoder`'s; this class adds the header,
    the predictor and deflate of a strip, the strip offsets, the IFD and the header patch.

    Parameters
    ----------
    fh : binary file object
        Receives the TIFF from its current position; must be seekable (the header is patched
        at the end). Left positioned after the TIFF.
    width, height : int
        Image size in pixels (both ≥ 1).
    channels : int
        1 gray, 2 gray + alpha, 3 RGB, 4 RGBA (alpha unassociated).
    bits : int
        8 (rows are uint8) or 16 (rows are uint16).
    compression : {"deflate", "none"}
        Adobe deflate (a zlib stream per strip) or uncompressed strips.
    predictor : bool
        Horizontal differencing (Predictor 2) before deflate. Ignored, and no Predictor tag
        written, with ``compression="none"``: readers disagree on a predictor over uncompressed
        strips (libtiff, so Pillow, OpenCV and ImageMagick, skips it; tifffile applies it).
    level : int
        Deflate effort 0..9: 1 (the default) is zlib's run-length strategy, the fastest and,
        after the predictor, the smallest on edge maps; 2..9 are zlib's levels with its LZ77
        search (on the RGB photo 2 and 3 are slower and no smaller, 6 is 9 % smaller at 5× the
        time, 9 is 14 % smaller at 40×); 0 stores.
    threads : int or None
        At most this many strips deflate at once on the shared worker pool (twice as many in
        flight); 1 deflates on the calling thread; None uses every usable core
        (``CNNCLI_THREADS`` overrides).
    """

    FORMAT = "TIFF"
    MAX_SIDE = _MAX_FILE
    _BYTE_ORDER = "<"  # "II": 16-bit samples little-endian
    _CHANNELS_NOTE = " here"

    def __init__(
        self,
        fh: IO[bytes],
        width: int,
        height: int,
        channels: int,
        bits: int = 8,
        *,
        compression: Compression = "deflate",
        predictor: bool = True,
        level: int = 1,
        threads: int | None = None,
    ) -> None:
        self.compression: Compression = compression
        self.predictor = predictor and compression == "deflate"
        self._level = level
        super().__init__(
            fh,
            width,
            height,
            channels,
            bits,
            threads=threads,
            unit_bytes=_STRIP_BYTES,
            inline=compression == "none",  # nothing to compute: strips go straight to the file
        )
        seekable = getattr(fh, "seekable", None)
        if seekable is None or not seekable():
            raise ValueError(
                "TiffWriter needs a seekable file: the header is patched after the strips"
            )
        n_strips = -(-height // self.rows_per_strip)
        self._check_size(self._rowbytes, n_strips)
        self._offsets: list[int] = []
        self._counts: list[int] = []
        self._base = fh.tell()  # TIFF offsets count from the first byte of the header
        # Byte order, the magic 42, and the first-IFD offset, patched by close().
        fh.write(b"II" + struct.pack("<HI", 42, 0))
        self._pos = 8  # bytes written so far, relative to _base

    @property
    def rows_per_strip(self) -> int:
        """Rows in every strip but maybe the last (the RowsPerStrip tag)."""
        return self._unit_rows

    def _check_options(self) -> None:
        if self.compression not in _COMPRESSIONS:
            raise ValueError(
                f"TIFF compression must be one of {', '.join(_COMPRESSIONS)}, "
                f"not {self.compression!r}"
            )
        if not isinstance(self._level, int) or not 0 <= self._level <= 9:
            raise ValueError(f"zlib level must be 0..9, not {self._level!r}")

    @classmethod
    def _takes(cls, dtype: np.dtype[Any], bits: int) -> bool:
        # Big-endian uint16 too: write() swaps it into the file's order as its private copy.
        return dtype.kind == "u" and dtype.itemsize == bits // 8

    def _check_size(self, rowbytes: int, n_strips: int) -> None:
        full, last = self.rows_per_strip, self.height - (n_strips - 1) * self.rows_per_strip
        if self.compression == "deflate":
            strips = (n_strips - 1) * _deflate_bound(full * rowbytes)
            strips += _deflate_bound(last * rowbytes)
        else:
            strips = self.height * rowbytes
        # Header, a padding byte per strip, IFD and its out-of-line values.
        total = 8 + strips + n_strips + (2 + 12 * _N_TAGS_MAX + 4) + 16 + 8 * n_strips
        if total > _MAX_FILE:
            raise ValueError(
                f"a {self.width}×{self.height} {self.channels}-channel {self.bits}-bit TIFF could "
                f"pass 4 GiB ({total:,} bytes at worst), beyond classic TIFF's 32-bit offsets; "
                "save it as .png or .npy"
            )

    def _job(self, strip: npt.NDArray[Any]) -> Callable[[], bytes | memoryview]:
        if self.compression == "none":
            return lambda: strip.data  # the rows as they are, without a copy
        return partial(_encode, strip, self.channels, self.predictor, self._level)

    def _emit(self, result: bytes | memoryview) -> None:
        n = len(result) if isinstance(result, bytes) else result.nbytes
        self._offsets.append(self._pos)
        self._counts.append(n)
        self._fh.write(result)
        self._pos += n
        if self._pos % 2:
            # Keep every offset on a word boundary (TIFF 6.0): the next strip, the IFD.
            self._fh.write(b"\0")
            self._pos += 1

    def _finish(self) -> None:
        ifd = self._pos
        tail = self._ifd(ifd)
        self._fh.write(tail)
        self._fh.seek(self._base + 4)
        self._fh.write(struct.pack("<I", ifd))
        self._fh.seek(self._base + ifd + len(tail))  # leave the file after the TIFF

    def _ifd(self, at: int) -> bytes:
        """The IFD at offset ``at``, followed by the values too long to sit in their entries."""
        c = self.channels
        entries = [
            _entry(_IMAGE_WIDTH, _LONG, (self.width,)),
            _entry(_IMAGE_LENGTH, _LONG, (self.height,)),
            _entry(_BITS_PER_SAMPLE, _SHORT, (self.bits,) * c),
            _entry(_COMPRESSION, _SHORT, (_COMPRESSION_TAG[self.compression],)),
            _entry(_PHOTOMETRIC, _SHORT, (1 if c <= 2 else 2,)),
            _entry(_STRIP_OFFSETS, _LONG, tuple(self._offsets)),
            _entry(_SAMPLES_PER_PIXEL, _SHORT, (c,)),
            _entry(_ROWS_PER_STRIP, _LONG, (self.rows_per_strip,)),
            _entry(_STRIP_BYTE_COUNTS, _LONG, tuple(self._counts)),
            _entry(_PLANAR_CONFIG, _SHORT, (1,)),
        ]
        if self.predictor:
            entries.append(_entry(_PREDICTOR, _SHORT, (2,)))
        if c in (2, 4):
            entries.append(_entry(_EXTRA_SAMPLES, _SHORT, (2,)))
        entries.append(_entry(_SAMPLE_FORMAT, _SHORT, (1,) * c))
        head = [struct.pack("<H", len(entries))]
        extra: list[bytes] = []
        extra_at = at + 2 + 12 * len(entries) + 4
        for tag, kind, count, value in entries:
            if len(value) <= 4:
                field = value.ljust(4, b"\0")  # short values sit left-justified in the entry
            else:
                field = struct.pack("<I", extra_at)
                extra.append(value)
                extra_at += len(value)  # SHORT and LONG arrays longer than 4 bytes are even
            head.append(struct.pack("<HHI", tag, kind, count) + field)
        head.append(struct.pack("<I", 0))  # no next IFD
        return b"".join(head + extra)


def write_tiff(
    fh: IO[bytes],
    pixels: npt.NDArray[np.generic],
    *,
    compression: Compression = "deflate",
    predictor: bool = True,
    level: int = 1,
    threads: int | None = None,
) -> None:
    """Write a whole image as TIFF: H×W gray or H×W×C (C = 1..4), uint8 or uint16.

    Parameters
    ----------
    fh : seekable binary file object
    pixels : ndarray
        uint8 → 8-bit TIFF, uint16 → 16-bit TIFF.
    compression, predictor, level, threads
        As for :class:`TiffWriter`.
    """
    TiffWriter._write_image(
        fh,
        pixels,
        "write_tiff",
        compression=compression,
        predictor=predictor,
        level=level,
        threads=threads,
    )
