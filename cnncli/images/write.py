"""Saving a float result in the format its extension names.

Mapped formats get pixels from :func:`~cnncli.images.pixels.map_values`, band by band (a result
need never exist whole); PNG is written by our streaming encoder (``_png``), TIFF by tifffile,
the others by Pillow. ``.npy`` and raw float TIFF hold the float values unmapped. Every write
goes through :mod:`cnncli.outputs`: a temp file in the target folder, then a rename.
"""

from __future__ import annotations

import math
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cnncli import outputs
from cnncli.enums import Layout, Mapping
from cnncli.errors import ImageError, UsageError
from cnncli.images.pixels import Picture, map_values

F32 = npt.NDArray[np.float32]

#: Output formats by extension (Pillow format name).
SAVE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".npy": "NPY",
    ".csv": "CSV",
    ".txt": "TXT",
}
#: Formats that hold the float values themselves, unmapped: arrays and matrices of numbers.
RAW_FORMATS = {"NPY", "CSV", "TXT"}
_ALPHA_FORMATS = {"PNG", "TIFF", "WEBP"}
#: Written band by band (PNG by ``_png``, TIFF by tifffile with strips encoded here): 8 or 16
#: bits, gray or colour, with alpha.
_16BIT_FORMATS = {"PNG", "TIFF"}


# --------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------


def output_format(path: Path) -> str:
    """The format an output extension asks for, or a usage error listing the choices."""
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"cannot tell the output format of {str(path)!r} from {path.suffix or 'no extension'!r}; "
            "use .png, .jpg, .tif, .webp, .bmp, .npy, .csv or .txt"
        )
    return fmt


def check_output(path: Path, inputs: Iterable[Path], force: bool) -> None:
    """Refuse an output format we cannot write, then everything :func:`outputs.check_output`
    refuses: an input of the run (ever), a directory, an existing file without ``force``."""
    output_format(path)
    outputs.check_output(path, inputs, force)


atomic_write = outputs.atomic_write


@dataclass
class Bands:
    """A float32 result made band by band, so it never exists whole (a 12-MP float32 plane is
    46 MiB): ``shape`` is the whole result's (H×W or H×W×C); ``produce(r0, r1)`` computes rows
    ``r0 .. r1-1``; bands of ``rows`` rows are asked for in order."""

    shape: tuple[int, ...]
    produce: Callable[[int, int], F32]
    rows: int = 64

    def spans(self) -> Iterator[tuple[int, int]]:
        h = self.shape[0]
        step = max(1, self.rows)
        for r0 in range(0, h, step):
            yield r0, min(h, r0 + step)


def save_result(
    path: Path,
    result: F32 | Bands,
    *,
    like: Picture,
    how: Mapping | str,
    value_range: tuple[float, float] | None = None,
    raw: bool = False,
    alpha: npt.NDArray[Any] | None = None,
    warn: Any = None,
    make_dir: bool = False,
    layout: Layout = Layout.HWC,
) -> str:
    """Write ``result`` to ``path`` in the format its extension names; returns a description.

    ``.npy``, ``.csv``, ``.txt`` (and ``.tif`` with ``raw``) hold the float32 values unmapped;
    an H×W×C result goes into a ``.npy`` file as C×H×W with ``layout`` CHW (PyTorch's order); a
    ``.csv``/``.txt`` matrix holds one map (exact values, see :mod:`cnncli.render.matrix`).
    Other formats get pixels
    mapped with ``how`` to 8 bits, or 16 when the input was 16-bit and the format holds it.
    ``alpha`` (same height and width as ``result``) is attached where the format allows it.
    ``result`` may be :class:`Bands` for the mapped formats (``normalize`` then needs a fixed
    ``value_range``): each band is mapped as it comes, and a PNG or TIFF is encoded as it comes
    too.
    """
    fmt = output_format(path)
    if fmt in RAW_FORMATS or (raw and fmt == "TIFF"):
        if isinstance(result, Bands):
            raise ValueError("raw float output needs the whole result, not bands")
        return _save_raw(
            path, np.ascontiguousarray(result, dtype=np.float32), fmt, make_dir, layout
        )
    how = Mapping(how)
    _refuse_unmapped(path, result, raw, how, value_range)
    bits = 16 if like.bits == 16 and fmt in _16BIT_FORMATS else 8
    if like.bits == 16 and bits == 8 and warn:
        warn(f"{path}: {fmt} holds 8 bits; the 16-bit result was scaled to 8 bits")
    size = (int(result.shape[0]), int(result.shape[1]))
    out = _Output(path, fmt, size, _channels(result), bits)
    out.alpha = _fit_alpha(out, alpha, warn)
    bands = result if isinstance(result, Bands) else _one_band(result)

    def rows() -> Iterator[npt.NDArray[Any]]:
        """Pixel rows band by band (alpha attached): mapped as they are asked for."""
        for r0, r1 in bands.spans():
            px = map_values(bands.produce(r0, r1), how, like.maxval, value_range)
            if like.bits == 16 and bits == 8:
                px = np.rint(px.astype(np.float64) / 257).astype(np.uint8)
            yield out.with_alpha(px, r0, r1)

    writer = {"PNG": _write_png, "TIFF": _write_tiff}.get(fmt, _write_pillow)
    atomic_write(path, lambda tmp: writer(tmp, out, rows()), make_dir)
    return out.describe()


# --------------------------------------------------------------------------------------------
# A labelled montage of several maps
# --------------------------------------------------------------------------------------------

#: Maps whose longer side is shorter than this are enlarged by a whole factor (each value a
#: block of pixels), so a 4×4 feature map can be seen.
MONTAGE_MIN_SIDE = 64
#: Pixels between the maps and around them.
_GAP = 4
#: The montage's background (dark grey: a black or white map still shows its edge) and ink.
_BACKGROUND, _INK = 48, 255


@dataclass
class Montage:
    """Maps laid out in a grid, each under its label: the pixels, where each map's top-left
    pixel is, and the whole factor small maps were enlarged by."""

    pixels: npt.NDArray[np.uint8]
    corners: list[tuple[int, int]]
    scale: int

    def describe(self, count: int) -> str:
        h, w = self.pixels.shape[:2]
        kind = "gray" if self.pixels.ndim == 2 else "RGB"
        grown = f" (each enlarged ×{self.scale})" if self.scale > 1 else ""
        return f"montage of {count} maps{grown}, {w}×{h} {kind} 8-bit"


def montage(tiles: list[tuple[str, npt.NDArray[np.uint8]]]) -> Montage:
    """Lay out 8-bit maps of one size (gray H×W or colour H×W×3) in a grid — one row for up to
    four, else about square — each under its label (cut to the map's width). Gray unless a
    map is in colour."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = tiles[0][1].shape[:2]
    scale = max(1, MONTAGE_MIN_SIDE // max(h, w))
    th, tw = h * scale, w * scale
    n = len(tiles)
    cols = n if n <= 4 else math.ceil(math.sqrt(n))
    rows = -(-n // cols)
    font = ImageFont.load_default()
    top, _, _, bottom = font.getbbox("Ag…[]")
    label_h = int(bottom) + 3
    colour = any(px.ndim == 3 for _, px in tiles)
    height = _GAP + rows * (label_h + th + _GAP)
    width = _GAP + cols * (tw + _GAP)
    canvas = Image.new(
        "RGB" if colour else "L", (width, height), (_BACKGROUND,) * 3 if colour else _BACKGROUND
    )
    draw = ImageDraw.Draw(canvas)
    corners = []
    for i, (label, _) in enumerate(tiles):
        left = _GAP + (i % cols) * (tw + _GAP)
        y = _GAP + (i // cols) * (label_h + th + _GAP)
        draw.text(
            (left, y), _fitted(label, font, tw), fill=(_INK,) * 3 if colour else _INK, font=font
        )
        corners.append((y + label_h, left))
    pixels = np.array(canvas)
    for (y, x), (_, px) in zip(corners, tiles, strict=True):
        big = np.repeat(np.repeat(px, scale, axis=0), scale, axis=1) if scale > 1 else px
        if colour and big.ndim == 2:
            big = big[:, :, None]
        pixels[y : y + th, x : x + tw] = big
    return Montage(pixels, corners, scale)


def _fitted(label: str, font: Any, width: int) -> str:
    """``label`` cut (ending in …) to at most ``width`` pixels in ``font``."""
    if font.getlength(label) <= width:
        return label
    while len(label) > 1 and font.getlength(label + "…") > width:
        label = label[:-1]
    return label + "…"


def save_montage(
    path: Path, tiles: list[tuple[str, npt.NDArray[np.uint8]]], *, make_dir: bool = False
) -> str:
    """Write :func:`montage` of ``tiles`` to ``path`` (a picture format); its description."""
    fmt = output_format(path)
    made = montage(tiles)
    px = made.pixels
    out = _Output(path, fmt, (int(px.shape[0]), int(px.shape[1])), 1 if px.ndim == 2 else 3, 8)
    writer = {"PNG": _write_png, "TIFF": _write_tiff}.get(fmt, _write_pillow)
    atomic_write(path, lambda tmp: writer(tmp, out, iter([px])), make_dir)
    return made.describe(len(tiles))


@dataclass
class _Output:
    """A mapped picture to write: where, in which format, its size, channels and bits."""

    path: Path
    format: str
    size: tuple[int, int]  # (height, width)
    channels: int  # 1 gray or 3 RGB, without alpha
    bits: int  # 8 or 16
    alpha: npt.NDArray[Any] | None = None  # in the output's sample type

    @property
    def samples(self) -> int:
        """Samples a pixel: the channels, and alpha."""
        return self.channels + (self.alpha is not None)

    def with_alpha(self, px: npt.NDArray[Any], r0: int, r1: int) -> npt.NDArray[Any]:
        """Rows ``r0 .. r1-1`` of pixels with their alpha samples last, when there is alpha."""
        if self.alpha is None:
            return px
        w = self.size[1]
        colour = px.reshape(r1 - r0, w, self.channels)
        return np.concatenate([colour, self.alpha[r0:r1, :, None]], axis=2)

    def describe(self) -> str:
        h, w = self.size
        kind = "gray" if self.channels == 1 else "RGB"
        return f"{w}×{h} {kind}{'+alpha' if self.alpha is not None else ''} {self.bits}-bit"


def _channels(result: F32 | Bands) -> int:
    return 1 if len(result.shape) == 2 else int(result.shape[2])


def _refuse_unmapped(
    path: Path,
    result: F32 | Bands,
    raw: bool,
    how: Mapping,
    value_range: tuple[float, float] | None,
) -> None:
    """Refuse what a mapped picture cannot be: ``--raw`` (float values), channels other than
    gray or RGB, and bands to normalize without a fixed range."""
    if raw:
        raise UsageError(
            f"--raw writes float values, which only .npy and .tif hold; not {path.suffix}"
        )
    channels = _channels(result)
    if channels not in (1, 3):
        raise UsageError(
            f"{path}: the result has {channels} channels; an image holds 1 (gray) or 3 (RGB), "
            "so save it as .npy"
        )
    if isinstance(result, Bands) and how is Mapping.NORMALIZE and value_range is None:
        raise ValueError("normalize over bands needs a fixed value_range")


def _fit_alpha(out: _Output, alpha: npt.NDArray[Any] | None, warn: Any) -> npt.NDArray[Any] | None:
    """The alpha plane to write, in the output's sample type, or None (with a warning why)."""
    if alpha is None:
        return None
    if out.format not in _ALPHA_FORMATS:
        if warn:
            warn(f"{out.path}: {out.format} has no alpha channel; alpha dropped")
        return None
    if alpha.shape != out.size:
        if warn:
            warn(f"{out.path}: alpha dropped (it does not fit this output)")
        return None
    return _alpha_as(alpha, out.bits)


def _one_band(result: F32) -> Bands:
    # One band: normalize without a fixed range stretches the min..max of what it is given.
    whole = np.asarray(result, dtype=np.float32)
    return Bands(whole.shape, lambda r0, r1: whole[r0:r1], max(1, whole.shape[0]))


def _write_png(tmp: Path, out: _Output, rows: Iterator[npt.NDArray[Any]]) -> None:
    """Our streaming PNG encoder: bands are filtered and deflated as they come, on every core."""
    from cnncli.images._png import PngWriter

    h, w = out.size
    with open(tmp, "wb") as fh:
        try:
            enc = PngWriter(fh, w, h, out.samples, out.bits)
        except ValueError as err:  # a size the format cannot hold
            raise ImageError(f"{out.path}: {err}; save it as .npy") from None
        with enc:
            for px in rows:
                enc.write(px, copy=False)


def _write_tiff(tmp: Path, out: _Output, rows: Iterator[npt.NDArray[Any]]) -> None:
    """tifffile writes the TIFF (header, tags, strip offsets); the strips it is handed are
    encoded here as the bands come (:func:`_tiff_strips`), so the result never exists whole."""
    import tifffile

    h, w = out.size
    samples = out.samples
    rowbytes = w * samples * out.bits // 8
    per_strip = max(1, min(h, _STRIP_BYTES // rowbytes))
    # Past 4 GiB at worst (incompressible strips), classic TIFF's 32-bit offsets cannot hold it.
    big = _deflate_bound(per_strip * rowbytes) * -(-h // per_strip) > 2**32 - 2**25
    tifffile.imwrite(
        tmp,
        _tiff_strips(rows, per_strip, samples, out.bits),
        shape=(h, w) if samples == 1 else (h, w, samples),
        dtype=np.uint8 if out.bits == 8 else np.uint16,
        byteorder="<",  # the strips' 16-bit samples are little-endian
        bigtiff=big,
        photometric="minisblack" if out.channels == 1 else "rgb",
        extrasamples=["unassalpha"] if out.alpha is not None else None,
        compression="adobe_deflate",
        predictor=True,
        rowsperstrip=per_strip,
        metadata=None,  # no JSON shape description
        software=False,
    )


def _write_pillow(tmp: Path, out: _Output, rows: Iterator[npt.NDArray[Any]]) -> None:
    """JPEG, WebP, BMP: Pillow encodes the whole 8-bit picture, gathered from the bands."""
    from PIL import Image

    h, w = out.size
    whole = np.empty((h, w, out.samples), np.uint8)
    r0 = 0
    for px in rows:
        n = px.shape[0]
        whole[r0 : r0 + n] = px.reshape(n, w, out.samples)
        r0 += n
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[out.samples]
    im = Image.fromarray(whole[:, :, 0] if out.samples == 1 else whole, mode=mode)
    im.save(tmp, format=out.format, **_PILLOW_OPTIONS.get(out.format, {}))


# --------------------------------------------------------------------------------------------
# TIFF strips: horizontal predictor and deflate, on every core
# --------------------------------------------------------------------------------------------

# Raw bytes per strip: the unit of work for one thread. Big enough that the per-strip Python
# and zlib set-up costs vanish, small enough that a 12-MP gray picture still makes a couple of
# dozen strips for the cores (64 KB .. 2 MB changed neither size nor time beyond noise).
_STRIP_BYTES = 1 << 19
_MEM_LEVEL = 9


def _deflate_bound(n: int) -> int:
    """At most how many bytes zlib makes of ``n`` bytes (zlib's compressBound, plus slack)."""
    return n + (n >> 12) + (n >> 14) + (n >> 25) + 13 + 16


def _encode_strip(strip: npt.NDArray[Any], samples: int) -> bytes:
    """Difference (Predictor 2) and deflate one strip: n rows × (width · samples) samples, uint8
    or little-endian uint16; the differences wrap mod 2**bits, as the reader's running sum does.

    zlib level 1 with its run-length strategy (Z_RLE), as the PNG writer: on the 12-MP photo
    12 % smaller and faster than tifffile's own zlib level 1 (LZ77 search), 3-9 % larger than
    level 6 at a fifth of the time (benchmarks/bench_tiff.py).
    """
    diff = np.empty_like(strip)
    diff[:, :samples] = strip[:, :samples]
    np.subtract(strip[:, samples:], strip[:, :-samples], out=diff[:, samples:])
    comp = zlib.compressobj(1, zlib.DEFLATED, 15, _MEM_LEVEL, zlib.Z_RLE)
    data = diff.data  # a memoryview of a C-contiguous array: zlib reads it without a copy
    return comp.compress(data) + comp.flush()


def _strips_of(
    rows: Iterator[npt.NDArray[Any]], per_strip: int, samples: int, bits: int
) -> Iterator[npt.NDArray[Any]]:
    """The rows regrouped into strips of ``per_strip`` rows (the last one may be shorter), each
    n × (width · samples) in the file's sample type, C-contiguous."""
    dtype = np.dtype(np.uint8 if bits == 8 else "<u2")
    pending: list[npt.NDArray[Any]] = []  # the start of the next strip, from earlier bands
    held = 0
    for px in rows:
        flat = np.ascontiguousarray(px.reshape(px.shape[0], -1), dtype=dtype)
        start = 0
        if held:  # complete the strip begun by earlier bands: only its rows are copied
            start = min(flat.shape[0], per_strip - held)
            pending.append(flat[:start])
            held += start
            if held < per_strip:
                continue
            yield np.concatenate(pending, dtype=dtype)
            pending, held = [], 0
        while flat.shape[0] - start >= per_strip:  # whole strips: views of the band
            yield flat[start : start + per_strip]
            start += per_strip
        if start < flat.shape[0]:
            pending, held = [flat[start:]], flat.shape[0] - start
    if held:
        yield np.concatenate(pending, dtype=dtype)


def _tiff_strips(
    rows: Iterator[npt.NDArray[Any]], per_strip: int, samples: int, bits: int
) -> Iterator[bytes]:
    """Encoded strips in file order, each deflated on the encoders' shared worker pool: at most
    ``threads`` at once and twice that many in flight (so memory stays a few strips, whatever
    the picture's size). Stopped early (an error while writing), what has not started is
    cancelled and what runs is waited for."""
    from cnncli.config import usable_cores
    from cnncli.images._pool import shared_pool

    threads = usable_cores()
    strips = _strips_of(rows, per_strip, samples, bits)
    if threads == 1:
        for strip in strips:
            yield _encode_strip(strip, samples)
        return
    pool = shared_pool()
    inflight: deque[Future[bytes]] = deque()
    try:
        for strip in strips:
            try:
                inflight.append(pool.submit(_encode_strip, strip, samples))
            except RuntimeError:  # the interpreter is exiting: the pool takes no new work
                done: Future[bytes] = Future()
                done.set_result(_encode_strip(strip, samples))
                inflight.append(done)
            while len(inflight) > 2 * threads:
                yield inflight.popleft().result()
        while inflight:
            yield inflight.popleft().result()
    finally:
        wait([f for f in inflight if not f.cancel()])


#: Pillow's save options per format: JPEG 4:4:4 (edge maps keep their colour), lossless WebP.
_PILLOW_OPTIONS: dict[str, dict[str, Any]] = {
    "JPEG": {"quality": 95, "subsampling": 0},
    "WEBP": {"lossless": True},
}


def _alpha_as(alpha: npt.NDArray[Any], bits: int) -> npt.NDArray[Any]:
    """The alpha plane in the output's sample type (8-bit ↔ 16-bit scaled by 257)."""
    if bits == 16:
        return alpha.astype(np.uint16) * np.uint16(257) if alpha.dtype == np.uint8 else alpha
    return alpha if alpha.dtype == np.uint8 else np.rint(alpha / 257).astype(np.uint8)


def _save_raw(
    path: Path, result: F32, fmt: str, make_dir: bool, layout: Layout = Layout.HWC
) -> str:
    channels = 1 if result.ndim == 2 else int(result.shape[2])
    if fmt == "TIFF" and channels != 1:
        raise UsageError(
            f"{path}: a float TIFF holds one channel but the result has {channels}; save it as .npy"
        )
    if fmt in ("CSV", "TXT"):
        return _save_matrix(path, result, fmt, make_dir)
    axes = ""
    if result.ndim == 3:
        axes = " H×W×C"
        if layout is Layout.CHW:
            result, axes = np.ascontiguousarray(np.moveaxis(result, -1, 0)), " C×H×W"
    if fmt == "NPY":
        atomic_write(path, lambda tmp: _save_npy(tmp, result), make_dir)
    else:
        from PIL import Image

        atomic_write(
            path, lambda tmp: Image.fromarray(result, mode="F").save(tmp, format="TIFF"), make_dir
        )
    return f"float32 {'×'.join(map(str, result.shape))}{axes}, unmapped"


def check_matrix_output(path: Path, maps: int) -> None:
    """A ``.csv``/``.txt`` output holds one map: refused, before any work, for more."""
    if output_format(path) in ("CSV", "TXT") and maps != 1:
        raise UsageError(
            f"{path}: a {path.suffix} file holds one matrix but the result has {maps} maps; "
            "write one file per map with --split, or all of them to .npy"
        )


def _save_matrix(path: Path, result: F32, fmt: str, make_dir: bool) -> str:
    """One map as rows of numbers: CSV, or text aligned as ``--print`` shows it."""
    from cnncli.render.matrix import csv_text, txt_text

    matrix = result if result.ndim == 2 else result[:, :, 0]
    check_matrix_output(path, 1 if result.ndim == 2 else int(result.shape[2]))
    text = (csv_text if fmt == "CSV" else txt_text)(matrix)

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)

    atomic_write(path, write, make_dir)
    h, w = matrix.shape
    return f"float32 {h}×{w} as {'CSV' if fmt == 'CSV' else 'text'}, unmapped"


def _save_npy(tmp: Path, result: F32) -> None:
    with open(tmp, "wb") as fh:
        np.save(fh, result, allow_pickle=False)
