"""Slow, obviously correct float64 references for cnncli.filtering.correlate (no Numba, no numpy.pad).

The border index follows OpenCV's ``borderInterpolate`` loop literally (repeated reflection), so it
checks cnncli's closed-form index maps and numpy.pad independently.
"""

from __future__ import annotations

import numpy as np


def border_index(p: int, n: int, border: str) -> int:
    """Image index of position ``p`` (may be outside ``0..n-1``); -1 for the constant border."""
    if 0 <= p < n:
        return p
    if border == "constant":
        return -1
    if border == "replicate":
        return 0 if p < 0 else n - 1
    if border == "wrap":
        while p < 0:
            p += n
        while p >= n:
            p -= n
        return p
    if n == 1:
        return 0
    delta = 1 if border == "reflect101" else 0  # reflect repeats the edge pixel
    while not 0 <= p < n:
        p = -p - 1 + delta if p < 0 else n - 1 - (p - n) - delta
    return p


def padded(
    img: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]], border: str, value: float = 0.0
) -> np.ndarray:
    """The image padded pixel by pixel through :func:`border_index` (float64)."""
    (t, b), (left, right) = pads
    h, w = img.shape
    out = np.empty((h + t + b, w + left + right))
    for y in range(out.shape[0]):
        iy = border_index(y - t, h, border)
        for x in range(out.shape[1]):
            ix = border_index(x - left, w, border)
            out[y, x] = value if iy < 0 or ix < 0 else img[iy, ix]
    return out


def correlate2d(
    img: np.ndarray,
    kernel: np.ndarray,
    pads: tuple[tuple[int, int], tuple[int, int]],
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    border: str = "reflect101",
    value: float = 0.0,
) -> np.ndarray:
    """``out[y,x] = Σ k[i,j]·P[y·sy+i·dy, x·sx+j·dx]`` by explicit loops over taps, float64."""
    p = padded(np.asarray(img, dtype=np.float64), pads, border, value)
    k = np.asarray(kernel, dtype=np.float64)
    kh, kw = k.shape
    (sy, sx), (dy, dx) = stride, dilation
    ho = (p.shape[0] - (dy * (kh - 1) + 1)) // sy + 1
    wo = (p.shape[1] - (dx * (kw - 1) + 1)) // sx + 1
    out = np.zeros((ho, wo))
    for y in range(ho):
        for x in range(wo):
            acc = 0.0
            for i in range(kh):
                for j in range(kw):
                    acc += k[i, j] * p[y * sy + i * dy, x * sx + j * dx]
            out[y, x] = acc
    return out


def correlate(
    img: np.ndarray,
    kernel: np.ndarray,
    pads: tuple[tuple[int, int], tuple[int, int]],
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    border: str = "reflect101",
    value: float = 0.0,
) -> np.ndarray:
    """Channel semantics of cnncli.filtering.correlate.correlate on top of :func:`correlate2d`."""
    img = np.asarray(img, dtype=np.float64)
    k = np.asarray(kernel, dtype=np.float64)
    planes = [img] if img.ndim == 2 else [img[:, :, c] for c in range(img.shape[2])]

    def one(plane: np.ndarray, k2: np.ndarray) -> np.ndarray:
        return correlate2d(plane, k2, pads, stride, dilation, border, value)

    if k.ndim == 2:
        outs = [one(p, k) for p in planes]
        return outs[0] if img.ndim == 2 else np.stack(outs, axis=-1)
    if k.ndim == 3:
        return sum(one(p, k[c]) for c, p in enumerate(planes))
    maps = [sum(one(p, k[o, c]) for c, p in enumerate(planes)) for o in range(k.shape[0])]
    return np.stack(maps, axis=-1)
