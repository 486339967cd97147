"""Load and save images for ``cnncli filter``.

Loading gives the pixels (H×W or H×W×C) in the file's own value scale: 8- and 16-bit pixels as
they are stored (uint8 0..255, uint16 0..65535; the Numba core reads them without a float32
copy), float32 for float files and ``.npy`` arrays; the alpha plane kept aside untouched, and what
is needed to write the result back in the same kind of file.

Saving maps the float result to the output's pixel type (``clip``, ``abs``, ``normalize``,
``offset``) or, for ``.npy`` and raw float TIFF, stores it unmapped. Every write is atomic: a temp
file in the target directory, then ``os.replace``; a failure leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cnncli import outputs
from cnncli.errors import ImageError, UsageError
from cnncli.kernels import Mapping

F32 = npt.NDArray[np.float32]

#: Extensions Pillow reads that ``cnncli filter`` looks for in directories.
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
}
_ALPHA_FORMATS = {"PNG", "TIFF", "WEBP"}
#: Written by cnncli's own streaming encoders (cnncli.png, cnncli.tiff): 8 or 16 bits, gray or
#: colour, with alpha.
_16BIT_FORMATS = {"PNG", "TIFF"}


@dataclass
class Picture:
    """A loaded image: its pixels, plus what saving it back needs."""

    path: Path
    #: uint8 (8-bit files), uint16 (16-bit files) or float32 (float files, ``.npy``, luma of
    #: 16-bit colour), H×W or H×W×C.
    data: npt.NDArray[Any]
    #: The alpha plane as stored (uint8/uint16), or None.
    alpha: npt.NDArray[Any] | None
    #: Pillow mode as read ("RGB", "I;16", ...), or "npy".
    mode: str
    #: 8 or 16 for integer pixels, 32 for float files and arrays.
    bits: int
    #: Pillow format name ("PNG", "JPEG", ...) or "NPY".
    format: str

    @property
    def maxval(self) -> int:
        """Largest pixel value of the type results are mapped to (float inputs map to 8 bits)."""
        return 65535 if self.bits == 16 else 255

    @property
    def channels(self) -> int:
        return 1 if self.data.ndim == 2 else int(self.data.shape[2])

    def describe(self) -> str:
        h, w = self.data.shape[:2]
        kind = {1: "gray", 3: "RGB"}.get(self.channels, f"{self.channels}-channel")
        extra = "+alpha" if self.alpha is not None else ""
        depth = "float" if self.bits == 32 else f"{self.bits}-bit"
        return f"{w}×{h} {kind}{extra} {depth}"


def _open_pil(
    path: Path,
    max_pixels: int | None,
    gray: bool = False,
    rawmode: Callable[[str], str] | None = None,
) -> tuple[Any, list[Any]]:
    """Open, decode and turn upright (EXIF orientation) a picture with Pillow, or refuse it in
    one line; returns the image and its tiles as the file described them (Pillow empties
    ``im.tile`` once decoded). ``rawmode`` rewrites the raw mode of every tile before decoding
    (see :func:`_deep_colour`)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            # Pillow only warns between the limit and twice the limit; refuse there too, so
            # the limit means what --max-pixels says.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                im = Image.open(path)
                if gray and im.format == "JPEG" and im.mode == "RGB":
                    # The luma plane the JPEG stores (ITU-R 601, as every JFIF file), decoded
                    # straight to gray by libjpeg: what OpenCV's IMREAD_GRAYSCALE gives, in a
                    # third of the time and memory of decoding RGB and converting it.
                    im.draft("L", im.size)
                tiles = list(im.tile)
                if rawmode is not None:
                    im.tile = [t._replace(args=_with_rawmode(t.args, rawmode)) for t in tiles]
                im.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                size = _size_of(path)
                raise ImageError(
                    f"{path}: {size}more than {limit:,} pixels, refused as a possible "
                    "decompression bomb; raise the limit with --max-pixels N if you trust the file"
                ) from None
            except UnidentifiedImageError:
                what = "empty" if path.stat().st_size == 0 else "not an image Pillow can read"
                raise ImageError(
                    f"{path}: {what}; give a PNG, JPEG, TIFF, BMP, WebP or GIF file, or a .npy array"
                ) from None
            except OSError as err:
                raise ImageError(f"{path}: truncated or damaged image ({err})") from None
            except (ValueError, SyntaxError, EOFError) as err:
                raise ImageError(f"{path}: damaged image ({err})") from None
        # Apply the camera's orientation tag so the picture is upright, as viewers show it.
        # In place: without a tag, exif_transpose would otherwise copy the whole picture.
        ImageOps.exif_transpose(im, in_place=True)
    finally:
        Image.MAX_IMAGE_PIXELS = old
    return im, tiles


# Pillow decodes 16-bit colour (PNG, TIFF: raw modes "RGB;16B", "RGBA;16L", "LA;16B", ...)
# to 8 bits by keeping the high byte of each sample. Its decoders (inflate + PNG unfiltering,
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
    path: Path, im: Any, tiles: list[Any], max_pixels: int | None, warn: Any
) -> tuple[npt.NDArray[np.uint16], bool] | None:
    """The 16-bit samples of a 16-bit colour picture Pillow decoded to 8 bits as ``im``:
    H×W×C uint16 (RGB, RGBA, or gray+alpha as two channels) and whether the last channel is
    alpha; None if ``im`` is not such a picture."""
    if im.format == "TIFF" and im.tag_v2.get(284, 1) == 2 and 16 in im.tag_v2.get(258, ()):
        # Separate colour planes: Pillow's TIFF decoder picks each plane's unpacker itself, so
        # the second decode cannot reach the low bytes.
        if warn and not im.mode.startswith("I;16"):
            warn(
                f"{path}: 16-bit TIFF with separate colour planes read as 8 bits (Pillow keeps "
                "only the high byte); save it with interleaved samples (contiguous planar "
                "configuration) or as PNG to keep 16 bits"
            )
        return None
    kind = _deep_kind(tiles)
    if kind is None:
        return None
    if kind == "ppm":
        return _ppm16(path, tiles[0]), False
    match = _DEEP_RAWMODE.match(kind)
    assert match is not None
    layout, order = match.groups()
    if layout == "LA":
        # Gray+alpha, 4 bytes a pixel: decoded as plain RGBA (same bytes a pixel, so the same
        # unfiltering), the four bytes are the two samples as stored.
        raw, _ = _open_pil(path, max_pixels, rawmode=lambda _: "RGBA")
        b = np.asarray(raw)
        big = order == "B" or (order == "N" and sys.byteorder == "big")
        pair = b.view(">u2" if big else "<u2").reshape(b.shape[0], b.shape[1], 2)
        return pair.astype(np.uint16), True
    swap = _SWAP[order]
    low, _ = _open_pil(path, max_pixels, rawmode=lambda r: r[:-1] + swap)
    out = np.asarray(im).astype(np.uint16)
    out <<= 8
    out |= np.asarray(low)
    return out, layout == "RGBA"


def _ppm16(path: Path, tile: Any) -> npt.NDArray[np.uint16]:
    """A binary PPM with maxval > 255 (Pillow scales it to 8 bits): big-endian samples read
    from the file, scaled to 0..65535 as Pillow does for 16-bit PGM."""
    maxval = int(tile.args[1])
    w, h = (int(v) for v in tile.extents[2:])
    with open(path, "rb") as fh:
        fh.seek(int(tile.offset))
        raw = np.fromfile(fh, dtype=">u2", count=w * h * 3)
    if raw.size != w * h * 3:
        raise ImageError(f"{path}: truncated PPM ({raw.size:,} of {w * h * 3:,} samples)")
    if raw.max(initial=0) > maxval:
        raise ImageError(f"{path}: damaged PPM (a sample exceeds its maxval {maxval})")
    px = raw.reshape(h, w, 3)
    if maxval != 65535:
        px = np.rint(px.astype(np.float64) * (65535 / maxval))
    return px.astype(np.uint16)


def _size_of(path: Path) -> str:
    from PIL import Image

    try:
        Image.MAX_IMAGE_PIXELS = None
        with Image.open(path) as im:
            w, h = im.size
        return f"{w}×{h} = {w * h:,} pixels is "
    except Exception:  # the size is a courtesy; the refusal stands without it
        return ""


def load_npy(path: Path) -> Picture:
    """An H×W or H×W×C array of any real numeric dtype; NaN/inf refused."""
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise ImageError(f"{path}: not a NumPy .npy array ({err})") from None
    except OSError as err:
        raise ImageError(f"{path}: cannot read ({err.strerror or err})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise ImageError(f"{path}: array of dtype {getattr(arr, 'dtype', '?')}; give real numbers")
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ImageError(
            f"{path}: array of shape {tuple(arr.shape)}; give H×W or H×W×C (channels last)"
        )
    data = arr.astype(np.float32)
    if not np.all(np.isfinite(data)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(data))[0])
        raise ImageError(f"{path}: value at {list(bad)} is {data[bad]}; images need finite numbers")
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    return Picture(path, np.ascontiguousarray(data), None, "npy", 32, "NPY")


def load_image(
    path: str | Path, *, max_pixels: int | None = None, gray: bool = False, warn: Any = None
) -> Picture:
    """Read an image (anything Pillow reads, EXIF orientation applied) or a ``.npy`` array.

    ``gray``: a JPEG is decoded straight to its stored luma (libjpeg, as OpenCV's
    ``IMREAD_GRAYSCALE``; within a few levels of converting its decoded RGB), another 8-bit RGB
    picture converted by Pillow's own ``convert("L")`` (the values :func:`to_gray` gives, at a
    fraction of the time and memory); anything else is returned as it is, for :func:`to_gray` to
    handle or refuse.
    """
    p = Path(path)
    if not p.exists():
        raise ImageError(f"{p}: no such file")
    if p.is_dir():
        raise ImageError(f"{p}: is a directory")
    if not os.access(p, os.R_OK):
        raise ImageError(f"{p}: permission denied")
    if p.suffix.lower() == ".npy":
        return load_npy(p)
    im, tiles = _open_pil(p, max_pixels, gray)
    fmt = str(im.format or "")
    mode = str(im.mode)
    deep = _deep_colour(p, im, tiles, max_pixels, warn)
    if deep is not None:
        del im
        px, has_alpha = deep
        alpha16 = np.ascontiguousarray(px[:, :, -1]) if has_alpha else None
        colour = px[:, :, :-1] if has_alpha else px
        data16 = colour[:, :, 0] if colour.shape[2] == 1 else colour
        mode = "LA" if data16.ndim == 2 else mode  # Pillow calls 16-bit gray+alpha "RGBA"
        return Picture(p, np.ascontiguousarray(data16), alpha16, mode, 16, fmt)
    alpha: npt.NDArray[Any] | None = None
    if mode == "P" or mode == "PA":
        im = im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        im = im.convert("RGB")
    elif mode == "La":
        im = im.convert("LA")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA"):
        alpha = np.array(im.getchannel("A"))
        im = im.convert("RGB" if im.mode == "RGBA" else "L")
    if gray and im.mode == "RGB":
        im = im.convert("L")
    data: npt.NDArray[Any]
    if im.mode in ("L", "RGB"):
        data = np.asarray(im)  # uint8
        bits = 8
    elif im.mode.startswith("I;16"):
        data = np.asarray(im).astype(np.uint16)  # native byte order (I;16B is big-endian)
        bits = 16
    elif im.mode == "I":
        arr = np.asarray(im)
        # 32-bit integer files holding 16-bit data (old Pillow read 16-bit PNGs as "I").
        bits = 16 if arr.min() >= 0 and arr.max() <= 65535 else 32
        data = arr.astype(np.uint16 if bits == 16 else np.float32)
    elif im.mode == "F":
        data = np.asarray(im, dtype=np.float32)
        bits = 32
    else:
        raise ImageError(f"{p}: Pillow mode {im.mode!r} is not supported; convert it to RGB or L")
    del im  # the decoded picture is no longer needed; free it before anything else is made
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    # Only float files can hold NaN/inf; integer pixels need no scan.
    if bits == 32 and not np.all(np.isfinite(data)):
        raise ImageError(f"{p}: holds NaN or infinite values; images need finite numbers")
    return Picture(p, np.ascontiguousarray(data), alpha, mode, bits, fmt)


def peek(path: Path) -> tuple[np.dtype[Any], tuple[int, int]] | None:
    """The pixel type and (height, width) :func:`load_image` will give for ``path``, from the
    file's header alone (nothing decoded), or None if that cannot be told cheaply. The filter
    command uses it to load the matching compiled core while the image decodes."""
    try:
        if path.suffix.lower() == ".npy":
            with open(path, "rb") as fh:
                major, _ = np.lib.format.read_magic(fh)
                read = (
                    np.lib.format.read_array_header_1_0
                    if major == 1
                    else np.lib.format.read_array_header_2_0
                )
                shape = read(fh)[0]
            return np.dtype(np.float32), (int(shape[0]), int(shape[1]))
        from PIL import Image

        with warnings.catch_warnings():
            # A decompression-bomb warning is load_image's to turn into its one-line refusal.
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                mode, (w, h) = im.mode, im.size
                deep = _deep_kind(list(im.tile)) is not None
                if im.format != "TIFF" and im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                    # The EXIF orientation turns it a quarter (Pillow's TIFF size already has).
                    w, h = h, w
    except Exception:  # only a hint: load_image reports any problem with the file
        return None
    dt: np.dtype[Any] = np.dtype(np.uint8)  # every 8-bit mode, converted or not
    if mode.startswith("I;16") or deep:
        dt = np.dtype(np.uint16)
    elif mode in ("F", "I"):
        dt = np.dtype(np.float32)
    return dt, (h, w)


# --------------------------------------------------------------------------------------------
# Colour
# --------------------------------------------------------------------------------------------


def to_gray(pic: Picture) -> Picture:
    """ITU-R 601 luma. 8-bit RGB goes through Pillow's own ``convert("L")`` arithmetic
    (``(R·19595 + G·38470 + B·7471 + 0x8000) >> 16``) so the result is bit-identical to it."""
    if pic.channels == 1:
        return pic
    if pic.channels != 3:
        raise UsageError(
            f"{pic.path}: --gray needs an RGB image but this one has {pic.channels} channels"
        )
    d = pic.data
    if pic.bits == 8:
        from PIL import Image

        # 8-bit pixels are whole numbers 0..255, so the uint8 round trip is exact, and Pillow's
        # "L" is the definition (no uint32 temporaries: 4 bytes a pixel less than numpy).
        luma = Image.fromarray(d.astype(np.uint8)).convert("L")  # H×W×3 uint8: RGB
        gray = np.asarray(luma, dtype=np.float32)
    else:
        gray = (d[..., 0] * 0.299 + d[..., 1] * 0.587 + d[..., 2] * 0.114).astype(np.float32)
    return Picture(pic.path, gray, pic.alpha, pic.mode, pic.bits, pic.format)


# --------------------------------------------------------------------------------------------
# Mapping a float result to pixels
# --------------------------------------------------------------------------------------------


def map_values(
    result: F32,
    how: Mapping | str,
    maxval: int,
    value_range: tuple[float, float] | None = None,
) -> npt.NDArray[Any]:
    """Float result → uint8 (maxval 255) or uint16 (65535) pixels.

    ``clip`` rounds half to even and saturates, as OpenCV's ``saturate_cast``; ``abs`` does the
    same to the absolute value (``cv2.convertScaleAbs``); ``normalize`` stretches min..max (or the
    fixed ``value_range``) of the whole result over 0..maxval; ``offset`` adds mid-grey.
    """
    how = Mapping(how)
    x = np.asarray(result)
    out = np.empty(x.shape, dtype=np.uint16 if maxval > 255 else np.uint8)
    # abs, rint and clipping are exact in any float type, so clip and abs work in the result's
    # own float type (float32 from the core: half the memory traffic of float64); offset and
    # normalize add and scale, which float32 would round differently, so they stay float64.
    exact = how in (Mapping.CLIP, Mapping.ABS) and x.dtype.kind == "f"
    work = x.dtype if exact else np.dtype(np.float64)
    lo = hi = 0.0
    if how is Mapping.NORMALIZE:
        lo, hi = value_range if value_range else (float(x.min()), float(x.max()))
    flat, dest = x.reshape(-1), out.reshape(-1)
    # In blocks of ~1M values: no whole-image float temporaries (a 12-MP float64 copy is 92 MiB)
    # and each block stays in cache through its few passes.
    step = 1 << 20
    for i in range(0, flat.size, step):
        # A copy: the caller's result is left as it is.
        b: npt.NDArray[np.floating[Any]] = flat[i : i + step].astype(work)
        if how is Mapping.ABS:
            np.abs(b, out=b)
        elif how is Mapping.OFFSET:
            np.add(b, (maxval + 1) / 2, out=b)
        elif how is Mapping.NORMALIZE:
            if hi > lo:
                np.subtract(b, lo, out=b)
                np.multiply(b, maxval / (hi - lo), out=b)
            else:
                b[...] = 0
        np.rint(b, out=b)
        np.clip(b, 0, maxval, out=b)
        np.copyto(dest[i : i + step], b, casting="unsafe")  # whole numbers within 0..maxval
    return out


# --------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------


def output_format(path: Path) -> str:
    """The format an output extension asks for, or a usage error listing the choices."""
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"cannot tell the output format of {str(path)!r} from {path.suffix or 'no extension'!r}; "
            "use .png, .jpg, .tif, .webp, .bmp or .npy"
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
) -> str:
    """Write ``result`` to ``path`` in the format its extension names; returns a description.

    ``.npy`` (and ``.tif`` with ``raw``) hold the float32 values unmapped. Other formats get pixels
    mapped with ``how`` to 8 bits, or 16 when the input was 16-bit and the format holds it.
    ``alpha`` (same height and width as ``result``) is attached where the format allows it.
    ``result`` may be :class:`Bands` for the mapped formats (``normalize`` then needs a fixed
    ``value_range``): each band is mapped as it comes, and a PNG is encoded as it comes too.
    """
    fmt = output_format(path)
    shape = result.shape
    channels = 1 if len(shape) == 2 else int(shape[2])
    if fmt == "NPY" or (raw and fmt == "TIFF"):
        if isinstance(result, Bands):
            raise ValueError("raw float output needs the whole result, not bands")
        return _save_raw(path, np.ascontiguousarray(result, dtype=np.float32), fmt, make_dir)
    if raw:
        raise UsageError(
            f"--raw writes float values, which only .npy and .tif hold; not {path.suffix}"
        )
    if channels not in (1, 3):
        raise UsageError(
            f"{path}: the result has {channels} channels; an image holds 1 (gray) or 3 (RGB), "
            "so save it as .npy"
        )
    how = Mapping(how)
    if isinstance(result, Bands) and how is Mapping.NORMALIZE and value_range is None:
        raise ValueError("normalize over bands needs a fixed value_range")
    bits = 16 if like.bits == 16 and fmt in _16BIT_FORMATS else 8
    if like.bits == 16 and bits == 8 and warn:
        warn(f"{path}: {fmt} holds 8 bits; the 16-bit result was scaled to 8 bits")
    if alpha is not None and fmt not in _ALPHA_FORMATS:
        if warn:
            warn(f"{path}: {fmt} has no alpha channel; alpha dropped")
        alpha = None
    if alpha is not None and alpha.shape != tuple(shape[:2]):
        if warn:
            warn(f"{path}: alpha dropped (it does not fit this output)")
        alpha = None
    if alpha is not None:
        alpha = _alpha_as(alpha, bits)

    def pixels(band: F32) -> npt.NDArray[Any]:
        px = map_values(band, how, 65535 if like.bits == 16 else 255, value_range)
        if like.bits == 16 and bits == 8:
            px = np.rint(px.astype(np.float64) / 257).astype(np.uint8)
        return px

    if isinstance(result, Bands):
        bands = result
    else:
        # One band: normalize without a fixed range stretches the min..max of what it is given.
        whole = np.asarray(result, dtype=np.float32)
        bands = Bands(whole.shape, lambda r0, r1: whole[r0:r1], max(1, whole.shape[0]))

    def each_band() -> Iterator[tuple[int, int, npt.NDArray[Any]]]:
        for r0, r1 in bands.spans():
            yield r0, r1, pixels(bands.produce(r0, r1))

    h, w = int(shape[0]), int(shape[1])
    if fmt in _16BIT_FORMATS:
        # Our own encoders: bands are encoded as they come, on every core.
        from cnncli.png import PngWriter
        from cnncli.tiff import TiffWriter

        Writer = PngWriter if fmt == "PNG" else TiffWriter

        def write_streamed(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                ch = channels + (alpha is not None)
                try:
                    enc = Writer(fh, w, h, ch, bits)
                except ValueError as err:  # a size the format cannot hold
                    raise ImageError(f"{path}: {err}; save it as .npy") from None
                with enc:
                    for r0, r1, px in each_band():
                        if alpha is not None:
                            px = np.concatenate(
                                [px.reshape(r1 - r0, w, channels), alpha[r0:r1, :, None]], axis=2
                            )
                        enc.write(px, copy=False)

        atomic_write(path, write_streamed, make_dir)
    else:
        from PIL import Image

        def write_pillow(tmp: Path) -> None:
            out = np.empty((h, w) if channels == 1 else (h, w, 3), np.uint8)
            for r0, r1, px in each_band():
                out[r0:r1] = px
            im = Image.fromarray(out, mode="L" if channels == 1 else "RGB")
            if alpha is not None:
                im.putalpha(Image.fromarray(alpha, mode="L"))
            im.save(tmp, format=fmt, **_PILLOW_OPTIONS.get(fmt, {}))

        atomic_write(path, write_pillow, make_dir)
    kind = "gray" if channels == 1 else "RGB"
    return f"{w}×{h} {kind}{'+alpha' if alpha is not None else ''} {bits}-bit"


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


def _save_raw(path: Path, result: F32, fmt: str, make_dir: bool) -> str:
    channels = 1 if result.ndim == 2 else int(result.shape[2])
    if fmt == "TIFF" and channels != 1:
        raise UsageError(
            f"{path}: a float TIFF holds one channel but the result has {channels}; save it as .npy"
        )
    if fmt == "NPY":
        atomic_write(path, lambda tmp: _save_npy(tmp, result), make_dir)
    else:
        from PIL import Image

        atomic_write(
            path, lambda tmp: Image.fromarray(result, mode="F").save(tmp, format="TIFF"), make_dir
        )
    return f"float32 {'×'.join(map(str, result.shape))}, unmapped"


def _save_npy(tmp: Path, result: F32) -> None:
    with open(tmp, "wb") as fh:
        np.save(fh, result, allow_pickle=False)


def to_rgb8(pic_data: npt.NDArray[Any], maxval: int) -> npt.NDArray[np.uint8]:
    """Any loaded picture as 8-bit for display (preview)."""
    x = pic_data.astype(np.float64)
    if maxval == 65535:
        x = x / 257
    elif pic_data.size and (x.min() < 0 or x.max() > 255):
        lo, hi = float(x.min()), float(x.max())
        x = (x - lo) * (255 / (hi - lo)) if hi > lo else np.zeros_like(x)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)
