"""Every Numba-compiled function of cnncli, and nothing else.

Imported only by :mod:`cnncli.convolve` (itself imported only by ``cnncli filter``), so ``cnncli
shape`` and ``cnncli summary`` never load Numba. The functions work on one float32 plane at a time
and on a band of output rows ``[r0, r1)``: the caller runs bands on a few threads (``nogil``), which
costs no extra compile time, unlike ``parallel=True`` (measured: it roughly doubles the first-run
compile). Every argument always has the same type (C-contiguous float32 planes, int64 index maps,
Python ints and floats), so each function compiles exactly once and is then loaded from the cache.

Borders never reach the inner loops: a padded position ``p`` on an axis maps to an image index
``map[p]`` (``-1`` means the constant border value), precomputed by the caller for any border mode.
Output pixels whose taps all fall inside the image take a branch-free, contiguous loop.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: The one set of JIT options. fastmath stays off: results must match float64 references to 1e-5
#: and NaN/inf must propagate as IEEE says; the loops vectorise without it.
jit = njit(cache=True, nogil=True, fastmath=False, error_model="numpy")


@jit
def direct_rows(img, kernel, rmap, cmap, sy, sx, dy, dx, pl, cval, out, r0, r1):  # type: ignore[no-untyped-def]
    """Accumulate the correlation of ``img`` with ``kernel`` into output rows ``r0..r1-1``.

    ``out[oy, ox] += Σ kernel[i, j] · P[oy·sy + i·dy, ox·sx + j·dx]`` where ``P`` is the image padded
    through ``rmap``/``cmap`` (``pl`` columns before). Kernel taps are the outer loops, a run of
    output pixels of one row the inner loop.
    """
    w_img = img.shape[1]
    kh, kw = kernel.shape
    wo = out.shape[1]
    # Output columns whose every tap lies inside the image: no column map needed there.
    xa = (pl + sx - 1) // sx
    xb = (w_img - 1 + pl - (kw - 1) * dx) // sx + 1
    if xb > wo:
        xb = wo
    if xb < xa:
        xb = xa
    fill = np.float32(cval)
    for oy in range(r0, r1):
        orow = out[oy]
        for i in range(kh):
            r = rmap[oy * sy + i * dy]
            if r < 0:
                # A whole row of constant border: every tap of this kernel row sees cval.
                s = np.float32(0.0)
                for j in range(kw):
                    s += kernel[i, j] * fill
                for ox in range(wo):
                    orow[ox] += s
                continue
            src = img[r]
            for j in range(kw):
                w = kernel[i, j]
                if w == 0.0:
                    continue  # zero taps (Sobel, Laplacian) cost nothing
                off = j * dx - pl
                if sx == 1:
                    for ox in range(xa, xb):
                        orow[ox] += w * src[ox + off]
                else:
                    for ox in range(xa, xb):
                        orow[ox] += w * src[ox * sx + off]
                for ox in range(0, xa):
                    c = cmap[ox * sx + j * dx]
                    orow[ox] += w * (src[c] if c >= 0 else fill)
                for ox in range(xb, wo):
                    c = cmap[ox * sx + j * dx]
                    orow[ox] += w * (src[c] if c >= 0 else fill)


@jit
def separable_rows(img, kv, kh, rmap, cmap, sy, sx, dy, dx, pl, cval, out, r0, r1):  # type: ignore[no-untyped-def]
    """Accumulate the correlation with the rank-1 kernel ``outer(kv, kh)`` into rows ``r0..r1-1``.

    Per output row: the vertical 1-D pass into a padded row buffer (border columns copied from
    the image columns they mirror, which is exact because every padded row is a copy of an image
    row or constant), then the horizontal 1-D pass from that buffer. The buffer stays in cache,
    so the image is read once per vertical tap and the output written once.
    """
    w_img = img.shape[1]
    wp = cmap.shape[0]
    wo = out.shape[1]
    fill = np.float32(cval)
    buf = np.zeros(wp, dtype=np.float32)
    vsum = np.float32(0.0)
    for i in range(kv.shape[0]):
        vsum += kv[i] * fill
    for oy in range(r0, r1):
        for x in range(w_img):
            buf[pl + x] = 0.0
        for i in range(kv.shape[0]):
            w = kv[i]
            if w == 0.0:
                continue
            r = rmap[oy * sy + i * dy]
            if r < 0:
                for x in range(w_img):
                    buf[pl + x] += w * fill
            else:
                src = img[r]
                for x in range(w_img):
                    buf[pl + x] += w * src[x]
        for c in range(pl):
            m = cmap[c]
            buf[c] = buf[pl + m] if m >= 0 else vsum
        for c in range(pl + w_img, wp):
            m = cmap[c]
            buf[c] = buf[pl + m] if m >= 0 else vsum
        orow = out[oy]
        for j in range(kh.shape[0]):
            w = kh[j]
            if w == 0.0:
                continue
            off = j * dx
            if sx == 1:
                for ox in range(wo):
                    orow[ox] += w * buf[ox + off]
            else:
                for ox in range(wo):
                    orow[ox] += w * buf[ox * sx + off]
