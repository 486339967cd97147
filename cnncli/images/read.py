"""Reading pictures, arrays and matrices for ``cnncli filter``: the one opener every read goes
through.

Loading gives the pixels (H×W or H×W×C) in the file's own value scale: 8- and 16-bit pixels as
they are stored (uint8 0..255, uint16 0..65535; the Numba core reads them without a float32
copy), float32 for float files and ``.npy`` arrays; the alpha plane kept aside untouched, and what
is needed to write the result back in the same kind of file.

Opening is hostile-input safe: regular files only (a pipe, device or socket is refused from its
``stat``, never opened blocking nor read), the format told by the file's first bytes and Pillow
allowed only that one format (PostScript named ``.png`` never reaches Ghostscript), sizes
checked from headers against the ``pixels`` limit before anything is decoded or allocated, and
every error or warning of the decoders turned into one line naming the file.
"""

from __future__ import annotations

import logging
import math
import os
import re
import stat
import struct
import sys
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from cnncli import limits, outputs
from cnncli.enums import Layout
from cnncli.errors import ImageError
from cnncli.images.pixels import Picture
from cnncli.npyfile import NpyHeaderError, read_header

#: Extensions ``cnncli filter`` looks for in directories (what a file is, is told by its content).
IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".bmp",
    ".webp",
    ".gif",
    ".npy",
    ".pgm",
    ".ppm",
)


# --------------------------------------------------------------------------------------------
# Opening: regular files only, the format told by content, one opener for every read
# --------------------------------------------------------------------------------------------

#: What cnncli opens, told by the bytes a file starts with (never by its name): Pillow format
#: names, and "NPY". Pillow is then told that one format (``Image.open(formats=[...])``), so no
#: other plugin ever sees the bytes: its EPS plugin hands PostScript (whatever the file is
#: called) to Ghostscript, which runs it.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    *((b"P" + bytes([c]), "PPM") for c in b"123456f"),  # PBM, PGM, PPM (plain, raw), PFM gray
    (b"\x93NUMPY", "NPY"),
)
#: Formats Pillow may report for a file opened as one of the above (a JPEG with a second
#: picture in it is an MPO).
_ALSO = {"JPEG": ("JPEG", "MPO")}
#: Files people mistake for images, named when refused.
_NOT_IMAGES: tuple[tuple[bytes, str], ...] = (
    (b"%!PS", "a PostScript file"),
    (b"\xc5\xd0\xd3\xc6", "an EPS file"),
    (b"%PDF", "a PDF file"),
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "a zip archive"),
)
_GIVE = "give a PNG, JPEG, TIFF, BMP, WebP or GIF file, a .npy array or a .csv/.txt matrix"

#: Text files of rows of numbers (as kernel files): a matrix to filter, told by the extension
#: (text has no magic bytes) once the content named no picture format.
MATRIX_EXTENSIONS = (".csv", ".txt")


def is_matrix(path: Path) -> bool:
    """Whether ``path`` names a ``.csv``/``.txt`` matrix (by its extension)."""
    return path.suffix.lower() in MATRIX_EXTENSIONS


def _sniff(head: bytes) -> str | None:
    """The format ``head`` (a file's first 16 bytes) starts, or None."""
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WEBP"
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    return None


#: What a path is when it is not a regular file, and what to do about it.
_SPECIAL = (
    (stat.S_ISDIR, "is a directory", ""),
    (stat.S_ISFIFO, "is a pipe, not a regular file", "; save it to a file first"),
    (stat.S_ISSOCK, "is a socket, not a regular file", "; save what it sends to a file first"),
    (stat.S_ISCHR, "is a character device, not a regular file", "; give an image file"),
    (stat.S_ISBLK, "is a block device, not a regular file", "; give an image file"),
)


def _not_regular(p: Path, mode: int) -> ImageError:
    for test, what, fix in _SPECIAL:
        if test(mode):
            return ImageError(f"{p}: {what}{fix}")
    return ImageError(f"{p}: not a regular file; give an image file")


@dataclass
class _Source:
    """An input opened for reading: a regular file, and the format its first bytes name."""

    path: Path
    fh: BinaryIO
    format: str
    size: int


@contextmanager
def _opened(p: Path) -> Iterator[_Source]:
    """Open ``p`` for reading without ever blocking or consuming anything that is not a regular
    file (a FIFO, ``/dev/stdin``, ``<(cat …)``, ``/dev/zero``: refused from ``stat``, and opened
    non-blocking in case the name changed in between), and tell its format from its first bytes;
    refuse anything cnncli does not open, in one line naming the file."""
    try:
        mode = os.stat(p).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(p, mode)
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
        fd = os.open(p, flags | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise ImageError(f"{p}: no such file") from None
    except PermissionError:
        raise ImageError(f"{p}: permission denied") from None
    except OSError as err:
        raise ImageError(f"{p}: cannot open ({outputs.describe_os_error(err)})") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(p, st.st_mode)
        try:
            head = fh.read(16)
            fh.seek(0)
        except OSError as err:
            raise ImageError(f"{p}: cannot read ({outputs.describe_os_error(err)})") from None
        if not head:
            raise ImageError(f"{p}: empty; {_GIVE}")
        fmt = _sniff(head)
        if fmt is None and is_matrix(p):
            fmt = "MATRIX"
        if fmt is None:
            what = next((w for magic, w in _NOT_IMAGES if head.startswith(magic)), None)
            if what == "a zip archive" and p.suffix.lower() == ".npy":
                raise ImageError(
                    f"{p}: a NumPy .npz archive (zip), not a .npy array; save one array with "
                    "numpy.save"
                )
            if what is not None:
                raise ImageError(f"{p}: {what}, not an image; {_GIVE}")
            raise ImageError(f"{p}: not an image Pillow can read; {_GIVE}")
        yield _Source(p, fh, fmt, st.st_size)


def _squash(text: object, most: int = 200) -> str:
    """One short line of an error or warning text."""
    line = " ".join(str(text).split())
    return line if len(line) <= most else line[: most - 1] + "…"


#: What Pillow's decoders and plugins raise on damaged or truncated data (struct.error and zlib
#: errors from parsing chunks, IndexError/KeyError/TypeError from plugins reading tables that
#: are not there).
_DAMAGED = (
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
)


_libtiff_quiet = False


def _quiet_libtiff() -> None:
    """Stop libtiff printing its errors and warnings ("ZIPDecode: Decoding error at scanline 0",
    "Bad value 28 for Orientation tag") straight to the process's stderr, beside cnncli's one
    line: Pillow raises its own error for a file libtiff cannot decode, and a file it decodes
    anyway needs no C-level chatter. Best effort, once, on the copy of libtiff Pillow loaded
    (found among the mapped libraries; on macOS in Pillow's wheel); elsewhere nothing changes."""
    global _libtiff_quiet
    if _libtiff_quiet:
        return
    _libtiff_quiet = True
    import ctypes
    import glob

    import PIL
    from PIL import Image  # noqa: F401  (loads Pillow's C core, which links libtiff)

    paths: list[str] = []
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({line.split()[-1] for line in fh if "/libtiff" in line})
    except OSError:
        base = os.path.dirname(PIL.__file__)
        paths = glob.glob(os.path.join(base, ".dylibs", "libtiff*"))
    noload = getattr(os, "RTLD_NOLOAD", None)
    if noload is None:
        return
    for path in paths:
        try:
            # RTLD_NOLOAD: only the copy already in the process, never a second one.
            lib = ctypes.CDLL(path, mode=noload | getattr(os, "RTLD_NOW", 0))
            for name in ("TIFFSetErrorHandler", "TIFFSetWarningHandler"):
                setter = getattr(lib, name)
                setter.restype = ctypes.c_void_p
                setter.argtypes = [ctypes.c_void_p]
                setter(None)
        except (OSError, AttributeError):
            continue


#: The loggers of the decoders: Pillow's, tifffile's.
_LOGGERS = ("PIL", "tifffile")


class _Collect(logging.Handler):
    """Pillow's log records (it logs "More samples per pixel than can be decoded" before
    refusing a TIFF), kept as text instead of reaching logging's last-resort stderr printer."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.texts.append(record.getMessage())
        except Exception:  # a record that cannot be formatted is noise
            pass


@contextmanager
def _decoding(src: _Source, limit: int, warn: Any) -> Iterator[None]:
    """Open and decode a picture with Pillow or tifffile under the pixel ``limit``: every failure becomes
    one :class:`ImageError` line naming the file, and Pillow's warnings and log records (damaged
    EXIF, odd TIFF tags) reach ``warn`` as one line instead of printing with source lines."""
    from PIL import Image, UnidentifiedImageError

    if src.format == "TIFF":
        _quiet_libtiff()
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    collect = _Collect()
    for name in _LOGGERS:
        logging.getLogger(name).addHandler(collect)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # Pillow only warns between the limit and twice the limit; refuse there too, so
            # the limit means what it says.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                yield
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise ImageError(
                    f"{src.path}: {_size_of(src)}more than {limit:,} pixels, refused as a "
                    "possible decompression bomb; raise the limit with --max-pixels N if you "
                    "trust the file"
                ) from None
            except UnidentifiedImageError:
                raise ImageError(
                    f"{src.path}: damaged {src.format} file (its header cannot be read)"
                ) from None
            except OSError as err:
                raise ImageError(
                    f"{src.path}: truncated or damaged image ({_squash(err)})"
                ) from None
            except _DAMAGED as err:
                raise ImageError(f"{src.path}: damaged image ({_squash(err)})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old
        for name in _LOGGERS:
            logging.getLogger(name).removeHandler(collect)
    texts = [
        str(w.message)
        for w in caught
        # About cnncli's use of Pillow: nothing the user can act on.
        if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))
    ]
    _pass_on(src.path, texts + collect.texts, warn)


#: tifffile's log records wrap the error they met ("<TiffTag.fromfile> raised
#: TiffFileError('<tifffile.TiffTag 305 @130> invalid value offset 2147483632')"): the inner text,
#: with the tag by its number.
_RAISED = re.compile(r"^<[^>]*> raised \w+\((['\"])(.*)\1\)$", re.S)
_TAG = re.compile(r"<tifffile\.TiffTag (\d+) @\d+>")


def _plain(message: str) -> str:
    m = _RAISED.match(message)
    text = m.group(2) if m else message
    return _TAG.sub(r"TIFF tag \1:", text)


def _pass_on(path: Path, messages: list[str], warn: Any) -> None:
    """What the decoders said while reading a picture they read anyway, as one line."""
    from cnncli.render.term import printable

    texts: list[str] = []
    for message in messages:
        text = _squash(_plain(message), 120)
        if text and text not in texts:
            texts.append(text)
    if texts and warn:
        more = f"; and {len(texts) - 3} more" if len(texts) > 3 else ""
        warn(printable(f"{path}: read despite damage ({'; '.join(texts[:3])}{more})"))


def _pil(src: _Source) -> Any:
    """``Image.open`` on the opened file, allowed the one format its bytes named."""
    from PIL import Image, UnidentifiedImageError

    src.fh.seek(0)
    im = Image.open(src.fh, formats=[src.format])
    if im.format not in _ALSO.get(src.format, (src.format,)):  # never, but never trust it
        im.close()
        raise UnidentifiedImageError(f"opened as {im.format}")
    return im


def _open_pil(
    src: _Source,
    gray: bool = False,
    rawmode: Callable[[str], str] | None = None,
) -> tuple[Any, list[Any]]:
    """Open, decode and turn upright (EXIF orientation) a picture with Pillow (inside
    :func:`_decoding`); returns the image and its tiles as the file described them (Pillow
    empties ``im.tile`` once decoded). ``rawmode`` rewrites the raw mode of every tile before
    decoding (see :func:`_deep_colour`)."""
    from PIL import ImageOps

    im = _pil(src)
    if gray and im.format == "JPEG" and im.mode == "RGB":
        # The luma plane the JPEG stores (ITU-R 601, as every JFIF file), decoded straight to
        # gray by libjpeg: what OpenCV's IMREAD_GRAYSCALE gives, in a third of the time and
        # memory of decoding RGB and converting it.
        im.draft("L", im.size)
    tiles = list(im.tile)
    if rawmode is not None:
        im.tile = [t._replace(args=_with_rawmode(t.args, rawmode)) for t in tiles]
    im.load()
    # Apply the camera's orientation tag so the picture is upright, as viewers show it.
    # In place: without a tag, exif_transpose would otherwise copy the whole picture.
    ImageOps.exif_transpose(im, in_place=True)
    return im, tiles


# Pillow decodes 16-bit colour (PNG, and the TIFFs tifffile leaves to it: raw modes "RGB;16B",
# "RGBA;16L", "LA;16B", ...) to 8 bits by keeping the high byte of each sample. Its decoders (inflate + PNG unfiltering,
# libtiff) work on the raw bytes, and only the last step, the unpacker named by the raw mode,
# drops the low byte; so a second decode whose raw mode reads the samples in the other byte
# order gives the low bytes, and the two make the 16-bit samples exactly.
_DEEP_RAWMODE = re.compile(r"^(RGB|RGBA|LA);16([BLN])$")
_SWAP = {"B": "L", "L": "B", "N": "B" if sys.byteorder == "little" else "L"}


def _tile_rawmode(args: Any) -> str | None:
    raw = args[0] if isinstance(args, tuple) and args else args
    return raw if isinstance(raw, str) else None


def _with_rawmode(args: Any, change: Callable[[str], str]) -> Any:
    if isinstance(args, tuple):
        return (change(args[0]), *args[1:])
    return change(args)


def _deep_kind(tiles: list[Any]) -> str | None:
    """The 16-bit colour raw mode every tile shares ("RGB;16B", ...), "ppm" for a 16-bit
    binary PPM, or None for any other picture."""
    if not tiles:
        return None
    kinds = set()
    for t in tiles:
        if t.codec_name == "ppm" and isinstance(t.args, tuple) and len(t.args) == 2:
            mode, maxval = t.args
            kinds.add("ppm" if mode == "RGB" and isinstance(maxval, int) and maxval > 255 else "")
        else:
            raw = _tile_rawmode(t.args)
            kinds.add(raw if raw and _DEEP_RAWMODE.match(raw) else "")
    kind = kinds.pop()
    return kind if kind and not kinds else None


def _deep_colour(
    src: _Source, im: Any, tiles: list[Any], warn: Any
) -> tuple[npt.NDArray[np.uint16], bool] | None:
    """The 16-bit samples of a 16-bit colour picture Pillow decoded to 8 bits as ``im``:
    H×W×C uint16 (RGB, RGBA, or gray+alpha as two channels) and whether the last channel is
    alpha; None if ``im`` is not such a picture. Runs inside :func:`_decoding`."""
    path = src.path
    if im.format == "TIFF" and im.tag_v2.get(284, 1) == 2 and 16 in im.tag_v2.get(258, ()):
        # Only TIFFs tifffile leaves to Pillow come here (LZW or JPEG: they need imagecodecs).
        # Separate colour planes: Pillow's TIFF decoder picks each plane's unpacker itself, so
        # the second decode cannot reach the low bytes.
        if warn and not im.mode.startswith("I;16"):
            from cnncli.render.term import printable

            warn(
                f"{printable(str(path))}: 16-bit TIFF with separate colour planes read as 8 "
                "bits (Pillow keeps only the high byte); save it with interleaved samples "
                "(contiguous planar configuration) or as PNG to keep 16 bits"
            )
        return None
    kind = _deep_kind(tiles)
    if kind is None:
        return None
    if kind == "ppm":
        return _ppm16(src, tiles[0]), False
    match = _DEEP_RAWMODE.match(kind)
    assert match is not None
    layout, order = match.groups()
    if layout == "LA":
        # Gray+alpha, 4 bytes a pixel: decoded as plain RGBA (same bytes a pixel, so the same
        # unfiltering), the four bytes are the two samples as stored.
        raw, _ = _open_pil(src, rawmode=lambda _: "RGBA")
        b = np.asarray(raw)
        big = order == "B" or (order == "N" and sys.byteorder == "big")
        pair = b.view(">u2" if big else "<u2").reshape(b.shape[0], b.shape[1], 2)
        return pair.astype(np.uint16), True
    swap = _SWAP[order]
    low, _ = _open_pil(src, rawmode=lambda r: r[:-1] + swap)
    out = np.asarray(im).astype(np.uint16)
    out <<= 8
    out |= np.asarray(low)
    return out, layout == "RGBA"


def _ppm16(src: _Source, tile: Any) -> npt.NDArray[np.uint16]:
    """A binary PPM with maxval > 255 (Pillow scales it to 8 bits): big-endian samples read
    from the file, scaled to 0..65535 as Pillow does for 16-bit PGM."""
    path = src.path
    maxval = int(tile.args[1])
    w, h = (int(v) for v in tile.extents[2:])
    count = w * h * 3
    offset = int(tile.offset)
    held = max(0, (src.size - offset) // 2)
    if held < count:  # told from the file size: nothing is allocated for samples not there
        raise ImageError(f"{path}: truncated PPM ({held:,} of {count:,} samples)")
    src.fh.seek(offset)
    raw = np.frombuffer(src.fh.read(count * 2), dtype=">u2")
    if raw.size != count:
        raise ImageError(f"{path}: truncated PPM ({raw.size:,} of {count:,} samples)")
    if raw.max(initial=0) > maxval:
        raise ImageError(f"{path}: damaged PPM (a sample exceeds its maxval {maxval})")
    px = raw.reshape(h, w, 3)
    if maxval != 65535:
        px = np.rint(px.astype(np.float64) * (65535 / maxval))
    return px.astype(np.uint16)


def _size_of(src: _Source) -> str:
    from PIL import Image

    try:
        Image.MAX_IMAGE_PIXELS = None  # _decoding puts the limit back
        with _pil(src) as im:
            w, h = im.size
        return f"{w}×{h} = {w * h:,} pixels is "
    except Exception:  # the size is a courtesy; the refusal stands without it
        return ""


# --------------------------------------------------------------------------------------------
# TIFF through tifffile
# --------------------------------------------------------------------------------------------

#: Compressions tifffile decodes on its own (zlib and lzma are in Python's standard library).
#: LZW, JPEG, CCITT, PackBits' cousins and the rest need the imagecodecs package, which cnncli
#: does not depend on: such a file is read by Pillow (libtiff) instead, as before tifffile.
_TIFF_COMPRESSIONS = {1, 8, 32946, 34925}  # none, Adobe deflate, old deflate, LZMA
#: Photometric interpretation and samples per pixel read here: gray (+ alpha), RGB (+ alpha).
_TIFF_LAYOUTS = {(1, 1): "L", (1, 2): "LA", (2, 3): "RGB", (2, 4): "RGBA"}
_UNASSOCIATED_ALPHA = 2


@dataclass
class _TiffPage:
    """What the first page of a TIFF is, from its tags, when tifffile reads it."""

    page: Any
    mode: str  # "L", "LA", "RGB", "RGBA"
    bits: int  # 8 or 16
    width: int
    height: int
    orientation: int  # TIFF tag 274, 1..8


def _tiff_page(tif: Any) -> _TiffPage | None:
    """The first page of ``tif`` if tifffile decodes it to pixels cnncli takes as they are
    (8/16-bit unsigned gray or RGB, alpha unassociated, any planar or tiled layout, a
    compression Python's standard library decodes), else None: Pillow reads the file."""
    page = tif.pages.first
    mode = _TIFF_LAYOUTS.get((int(page.photometric), int(page.samplesperpixel)))
    extra = tuple(int(v) for v in page.extrasamples)
    alpha_ok = extra == (_UNASSOCIATED_ALPHA,) if mode in ("LA", "RGBA") else not extra
    if (
        mode is None
        or not alpha_ok
        or int(page.compression) not in _TIFF_COMPRESSIONS
        or int(page.predictor) not in (1, 2)
        or int(page.sampleformat) != 1
        or int(page.bitspersample) not in (8, 16)
        or page.imagedepth != 1
    ):
        return None
    tag = page.tags.get(274)
    orientation = tag.value if tag is not None and tag.value in range(1, 9) else 1
    w, h = int(page.imagewidth), int(page.imagelength)
    return _TiffPage(page, mode, int(page.bitspersample), w, h, int(orientation))


#: The EXIF/TIFF orientations as numpy views of a stored H×W(×C) array: what Pillow's
#: ``ImageOps.exif_transpose`` does (2 mirror, 3 half turn, 4 flip, 5 transpose, 6 quarter turn
#: clockwise, 7 transverse, 8 quarter turn anticlockwise).
_UPRIGHT: dict[int, Callable[[npt.NDArray[Any]], npt.NDArray[Any]]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def _load_tiff(src: _Source, limit: int, gray: bool, warn: Any) -> Picture | None:
    """A TIFF read by tifffile (16-bit colour, planar and tiled included), or None when its
    first page is one :func:`_tiff_page` leaves to Pillow."""
    import tifffile

    with _decoding(src, limit, warn):
        src.fh.seek(0)
        with tifffile.TiffFile(src.fh, name=src.path.name) as tif:
            info = _tiff_page(tif)
            if info is None:
                return None
            if info.width * info.height > limit:
                raise ImageError(
                    f"{src.path}: {info.width}×{info.height} = {info.width * info.height:,} "
                    f"pixels is more than {limit:,} pixels, refused as a possible decompression "
                    "bomb; raise the limit with --max-pixels N if you trust the file"
                )
            px = info.page.asarray()
            axes = str(info.page.axes)
    if "S" in axes and axes.index("S") == 0:  # separate planes: samples first
        px = np.moveaxis(px, 0, -1)
    px = _UPRIGHT[info.orientation](px.astype(np.uint8 if info.bits == 8 else np.uint16))
    if px.ndim == 3 and px.shape[2] == 1:
        px = px[:, :, 0]
    alpha = None
    if info.mode in ("LA", "RGBA"):
        alpha = np.ascontiguousarray(px[:, :, -1])
        px = px[:, :, 0] if info.mode == "LA" else px[:, :, :3]
    mode = "I;16" if info.mode == "L" and info.bits == 16 else info.mode
    if gray and info.bits == 8 and px.ndim == 3:
        from PIL import Image

        # Pillow's convert("L"), as for every other 8-bit RGB file read with gray.
        px = np.asarray(Image.fromarray(np.ascontiguousarray(px)).convert("L"))
    return Picture(src.path, np.ascontiguousarray(px), alpha, mode, info.bits, "TIFF")


def _peek_tiff(src: _Source) -> tuple[np.dtype[Any], tuple[int, int]] | None:
    """:func:`peek` of a TIFF tifffile reads; None leaves it to Pillow's header."""
    import tifffile

    src.fh.seek(0)
    with tifffile.TiffFile(src.fh, name=src.path.name) as tif:
        info = _tiff_page(tif)
    if info is None:
        return None
    h, w = (info.width, info.height) if info.orientation >= 5 else (info.height, info.width)
    return np.dtype(np.uint8 if info.bits == 8 else np.uint16), (h, w)


# --------------------------------------------------------------------------------------------
# .npy arrays
# --------------------------------------------------------------------------------------------


def _npy_header(src: _Source) -> tuple[tuple[int, ...], np.dtype[Any], bool]:
    """Shape, dtype and Fortran order from a .npy header; the file is left at the data."""
    try:
        shape, fortran, dtype = read_header(src.fh)
    except NpyHeaderError as err:
        why: object = err.cause
        if err.version is not None:
            why = f"format version {err.version[0]}.{err.version[1]} is not 1.0 or 2.0"
        raise ImageError(f"{src.path}: not a NumPy .npy array ({_squash(why)})") from None
    return shape, dtype, fortran


#: How each layout names a 3-D array's axes, and how to ask for the other.
_LAYOUT_WORDS = {
    Layout.HWC: "H×W×C (channels last; --layout chw reads C×H×W)",
    Layout.CHW: "C×H×W (--layout chw; channels last is --layout hwc)",
}


def array_hw(shape: tuple[int, ...], layout: Layout) -> tuple[int, int]:
    """(height, width) of a 2-D or 3-D array stored in ``layout``."""
    if len(shape) == 3 and layout is Layout.CHW:
        return shape[1], shape[2]
    return shape[0], shape[1]


def _check_npy(
    src: _Source, limit: int, layout: Layout = Layout.HWC
) -> tuple[tuple[int, ...], np.dtype[Any], bool]:
    """Everything :func:`load_npy` refuses, told from the header alone, before any allocation:
    pickled objects, non-numbers, wrong dimensions, too many pixels, missing data."""
    path = src.path
    shape, dtype, fortran = _npy_header(src)
    if dtype.hasobject:
        raise ImageError(
            f"{path}: not a NumPy .npy array of numbers: it holds Python objects (pickled), "
            "which cnncli never loads; save real numbers"
        )
    if dtype.kind not in "biuf":
        raise ImageError(f"{path}: array of dtype {dtype}; give real numbers")
    if len(shape) not in (2, 3) or math.prod(shape) == 0 or min(shape) < 0:
        raise ImageError(f"{path}: array of shape {shape}; give H×W or {_LAYOUT_WORDS[layout]}")
    h, w = array_hw(shape, layout)
    if h * w > limit:
        raise ImageError(
            f"{path}: {w}×{h} = {h * w:,} pixels is more than {limit:,} pixels, refused before "
            "loading; raise the limit with --max-pixels N if you trust the file"
        )
    need = math.prod(shape) * dtype.itemsize
    held = max(0, src.size - src.fh.tell())
    if held < need:
        dims = "×".join(map(str, shape))
        raise ImageError(
            f"{path}: truncated .npy array: its header promises {dims} {dtype} ({need:,} bytes) "
            f"but the file holds {held:,}"
        )
    return shape, dtype, fortran


def _load_npy(src: _Source, limit: int, layout: Layout = Layout.HWC) -> Picture:
    """The array as the filter reads it, H×W or H×W×C (a C×H×W array is moved there)."""
    path = src.path
    shape, dtype, fortran = _check_npy(src, limit, layout)
    count = math.prod(shape)
    try:
        raw = src.fh.read(count * dtype.itemsize)
        flat = np.frombuffer(raw, dtype=dtype, count=count)
    except (OSError, ValueError) as err:
        raise ImageError(f"{path}: cannot read the .npy array ({_squash(err)})") from None
    arr = flat.reshape(shape, order="F" if fortran else "C")
    data = arr.astype(np.float32)
    del raw, flat, arr
    if not np.all(np.isfinite(data)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(data))[0])
        raise ImageError(f"{path}: value at {list(bad)} is {data[bad]}; images need finite numbers")
    if data.ndim == 3 and layout is Layout.CHW:
        data = np.moveaxis(data, 0, -1)  # made contiguous below
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    return Picture(path, np.ascontiguousarray(data), None, "npy", 32, "NPY")


# --------------------------------------------------------------------------------------------
# .csv/.txt matrices
# --------------------------------------------------------------------------------------------


def _load_matrix(src: _Source, limit: int) -> Picture:
    """A matrix of rows of numbers, read as kernel files are (the one row parser): the file's
    size passes the ``file-bytes`` limit before it is read, its rows × columns the pixel
    ``limit`` before any value is converted; ragged rows, non-numbers and NaN/inf are refused
    naming the row and value."""
    from cnncli.filtering.kernels import parse_rows

    path = src.path
    budget = limits.get("file-bytes")
    limits.check("file-bytes", src.size, f"{path} has {src.size:,} bytes")
    try:
        raw = src.fh.read(budget + 1)  # the size may lie (a growing file): stop at the limit
    except OSError as err:
        raise ImageError(f"{path}: cannot read ({outputs.describe_os_error(err)})") from None
    limits.check("file-bytes", len(raw), f"{path} has more than {budget:,} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImageError(
            f"{path}: not text; a {path.suffix} matrix holds rows of numbers, e.g. 1,0,-1"
        ) from None

    def check_size(shape: tuple[int, int]) -> None:
        h, w = shape
        if h * w > limit:
            raise ImageError(
                f"{path}: {w}×{h} = {h * w:,} values is more than {limit:,} pixels, refused "
                "before reading them; raise the limit with --max-pixels N if you trust the file"
            )

    data = parse_rows(text, str(path), ImageError, noun="matrix", check_size=check_size)
    return Picture(path, data.astype(np.float32), None, "matrix", 32, "MATRIX")


def _pixel_limit(max_pixels: int | None) -> int:
    return limits.get("pixels") if max_pixels is None else max_pixels


def load_npy(path: Path, *, max_pixels: int | None = None, layout: Layout = Layout.HWC) -> Picture:
    """An H×W or H×W×C array (C×H×W with ``layout`` CHW, moved to H×W×C) of any real numeric
    dtype; NaN/inf refused. Everything else is refused from the header, before loading:
    pickled objects, too many pixels (``max_pixels``, by default the ``pixels`` limit), data
    missing from the file."""
    p = Path(path)
    with _opened(p) as src:
        if src.format != "NPY":
            raise ImageError(f"{p}: not a NumPy .npy array (it is a {src.format} file)")
        return _load_npy(src, _pixel_limit(max_pixels), layout)


def load_image(
    path: str | Path,
    *,
    max_pixels: int | None = None,
    gray: bool = False,
    warn: Any = None,
    layout: Layout = Layout.HWC,
) -> Picture:
    """Read a PNG, JPEG, TIFF, BMP, WebP, GIF or PPM/PGM picture (EXIF orientation applied) or a
    ``.npy`` array, told by its content, from a regular file only.

    ``max_pixels`` (by default the ``pixels`` limit) bounds the pixels of the picture or array,
    checked from its header before anything is decoded. ``warn`` receives one line when a
    decoder reads a damaged file anyway.

    ``gray``: a JPEG is decoded straight to its stored luma (libjpeg, as OpenCV's
    ``IMREAD_GRAYSCALE``; within a few levels of converting its decoded RGB), another 8-bit RGB
    picture converted by Pillow's own ``convert("L")`` (the values :func:`to_gray` gives, at a
    fraction of the time and memory); anything else is returned as it is, for :func:`to_gray` to
    handle or refuse.

    ``layout``: how a 3-D ``.npy`` array is stored (C×H×W with CHW); pictures have their own.
    """
    p = Path(path)
    limit = _pixel_limit(max_pixels)
    with _opened(p) as src:
        if src.format == "NPY":
            return _load_npy(src, limit, layout)
        if src.format == "MATRIX":
            return _load_matrix(src, limit)
        if src.format == "TIFF":
            pic = _load_tiff(src, limit, gray, warn)
            if pic is not None:
                return pic
        with _decoding(src, limit, warn):
            im, tiles = _open_pil(src, gray)
            fmt = str(im.format or "")
            mode = str(im.mode)
            deep = _deep_colour(src, im, tiles, warn)
            if mode in ("P", "PA"):
                # Inside: a palette lookup can still meet damaged data (a short palette).
                im = im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
    if deep is not None:
        del im
        return _deep_picture(p, deep, mode, fmt)
    im, alpha = _split_alpha(im, mode)
    if gray and im.mode == "RGB":
        im = im.convert("L")
    data, bits = _pixels_of(p, im)
    del im  # the decoded picture is no longer needed; free it before anything else is made
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    # Only float files can hold NaN/inf; integer pixels need no scan.
    if bits == 32 and not np.all(np.isfinite(data)):
        raise ImageError(f"{p}: holds NaN or infinite values; images need finite numbers")
    return Picture(p, np.ascontiguousarray(data), alpha, mode, bits, fmt)


def _deep_picture(
    p: Path, deep: tuple[npt.NDArray[np.uint16], bool], mode: str, fmt: str
) -> Picture:
    """The :class:`Picture` of the 16-bit samples :func:`_deep_colour` read."""
    px, has_alpha = deep
    alpha16 = np.ascontiguousarray(px[:, :, -1]) if has_alpha else None
    colour = px[:, :, :-1] if has_alpha else px
    data16 = colour[:, :, 0] if colour.shape[2] == 1 else colour
    mode = "LA" if data16.ndim == 2 else mode  # Pillow calls 16-bit gray+alpha "RGBA"
    return Picture(p, np.ascontiguousarray(data16), alpha16, mode, 16, fmt)


#: Pillow modes turned into one cnncli reads, before the alpha plane is split off.
_CONVERT = {
    "1": "L",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
    "RGBX": "RGB",
    "La": "LA",
    "RGBa": "RGBA",
}


def _split_alpha(im: Any, mode: str) -> tuple[Any, npt.NDArray[Any] | None]:
    """``im`` in a mode cnncli reads (L, RGB, I;16, I, F), and its alpha plane as stored."""
    if mode in _CONVERT:
        im = im.convert(_CONVERT[mode])
    if im.mode not in ("RGBA", "LA"):
        return im, None
    alpha = np.array(im.getchannel("A"))
    return im.convert("RGB" if im.mode == "RGBA" else "L"), alpha


def _pixels_of(p: Path, im: Any) -> tuple[npt.NDArray[Any], int]:
    """The pixels of a decoded Pillow picture and their bits (8, 16, or 32 for float)."""
    if im.mode in ("L", "RGB"):
        return np.asarray(im), 8  # uint8
    if im.mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16), 16  # native byte order (I;16B is big-endian)
    if im.mode == "I":
        arr = np.asarray(im)
        # 32-bit integer files holding 16-bit data (old Pillow read 16-bit PNGs as "I").
        if arr.min() >= 0 and arr.max() <= 65535:
            return arr.astype(np.uint16), 16
        return arr.astype(np.float32), 32
    if im.mode == "F":
        return np.asarray(im, dtype=np.float32), 32
    raise ImageError(f"{p}: Pillow mode {im.mode!r} is not supported; convert it to RGB or L")


def peek(path: Path, layout: Layout = Layout.HWC) -> tuple[np.dtype[Any], tuple[int, int]] | None:
    """The pixel type and (height, width) :func:`load_image` will give for ``path`` (a 3-D
    ``.npy`` array read in ``layout``), from the file's header alone (nothing decoded), or None
    if that cannot be told cheaply. The filter command uses it to load the matching compiled
    core while the image decodes."""
    hush = _Collect()
    for name in _LOGGERS:
        logging.getLogger(name).addHandler(hush)
    try:
        with _opened(Path(path)) as src:
            if src.format == "NPY":
                shape = _check_npy(src, limits.get("pixels"), layout)[0]
                return np.dtype(np.float32), array_hw(shape, layout)
            if src.format == "MATRIX":  # no header: its size is known once it is read
                return None
            # Only headers are read, through the same opener as load_image: nothing is
            # consumed or blocked on, no other format tried. Warnings, log records and a
            # decompression bomb are load_image's to report.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                told = _peek_tiff(src) if src.format == "TIFF" else None
                if told is not None:
                    return told
                if src.format == "TIFF":
                    _quiet_libtiff()
                with _pil(src) as im:
                    mode, (w, h) = im.mode, im.size
                    deep = _deep_kind(list(im.tile)) is not None
                    if im.format != "TIFF" and im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                        # The EXIF orientation turns it a quarter (Pillow's TIFF size already
                        # has).
                        w, h = h, w
    except Exception:  # only a hint: load_image reports any problem with the file
        return None
    finally:
        for name in _LOGGERS:
            logging.getLogger(name).removeHandler(hush)
    dt: np.dtype[Any] = np.dtype(np.uint8)  # every 8-bit mode, converted or not
    if mode.startswith("I;16") or deep:
        dt = np.dtype(np.uint16)
    elif mode in ("F", "I"):
        dt = np.dtype(np.float32)
    return dt, (h, w)
