"""Saving a float result in the format its extension names.

Mapped formats get pixels from :func:`~cnncli.images.pixels.map_values`, band by band (a result
need never exist whole); PNG is written by our streaming encoder (``_png``), TIFF by tifffile,
the others by Pillow. ``.npy`` and raw float TIFF hold the float values unmapped. Every write
goes through :mod:`cnncli.outputs`: a temp file in the target folder, then a rename.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cnncli import outputs
from cnncli.enums import Mapping
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
}
_ALPHA_FORMATS = {"PNG", "TIFF", "WEBP"}
#: Written by cnncli's own streaming encoders (cnncli.images._png, cnncli.tiff): 8 or 16 bits, gray or
#: colour, with alpha.
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
        from cnncli.images._png import PngWriter
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
