"""Pixels in memory: the loaded :class:`Picture`, gray conversion, float results mapped to
pixel values (``clip``, ``abs``, ``normalize``, ``offset``) and pictures made 8-bit for display."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cnncli.enums import Mapping
from cnncli.errors import UsageError

F32 = npt.NDArray[np.float32]


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


def to_rgb8(pic_data: npt.NDArray[Any], maxval: int) -> npt.NDArray[np.uint8]:
    """Any loaded picture as 8-bit for display (preview)."""
    x = pic_data.astype(np.float64)
    if maxval == 65535:
        x = x / 257
    elif pic_data.size and (x.min() < 0 or x.max() > 255):
        lo, hi = float(x.min()), float(x.max())
        x = (x - lo) * (255 / (hi - lo)) if hi > lo else np.zeros_like(x)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)
