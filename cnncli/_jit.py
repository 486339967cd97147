"""Every Numba-compiled function of cnncli, and nothing else.

Imported only by :mod:`cnncli.convolve` (itself imported only by ``cnncli filter``), so ``cnncli
shape`` and ``cnncli summary`` never load Numba. The functions work on one float32 plane at a time
and on a band of output rows ``[r0, r1)``: the caller runs bands on a few threads (``nogil``), which
costs no extra compile time, unlike ``parallel=True``. Every argument always has the same type
(C-contiguous float32 planes, int64 index maps, Python ints and floats), so each function compiles
once and is then loaded from the cache.

Borders never reach the inner loops: a padded position ``p`` on an axis maps to an image index
``map[p]`` (``-1`` means the constant border value), precomputed by the caller for any border mode.
Output pixels whose taps all fall inside the image take a branch-free, contiguous loop.

Inner loops index slices with a ``range`` counter: Numba then knows the index is not negative and
LLVM vectorises them (indexing ``src[ox + off]`` directly keeps a wraparound check and runs ~3×
slower). Up to four taps are summed per pass over an output row, so the row is loaded and stored
once per four multiply-adds instead of once per tap.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: The one set of JIT options. Of fastmath only "contract" (fused multiply-add: one rounding
#: instead of two, ~10% faster): no reassociation, and NaN/inf propagate as IEEE says.
jit = njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")

#: Output pixels per inner run. Blocks sized for L1 (256-1024) measured slower than whole rows
#: (the per-pass setup dominates), so a block is a whole row of up to 4096 pixels.
BLOCK = 4096


@jit
def taps_add(o, flat, zero, starts, ws, count, n, shift):  # type: ignore[no-untyped-def]
    """``o[t] += Σ_q ws[q] · flat[starts[q] + shift + t]`` for ``t < n``, four taps per pass.

    ``flat`` is a raveled C-contiguous plane: each tap reads a run of one row. Groups are
    balanced (9 taps: 3+3+3, not 4+4+1) and a short group reads ``zero`` (the caller's zeros, at
    least ``n``) with weight 0 for its missing taps, so there is one vectorised loop to compile
    (first-run time) and no ``0·inf`` from a real pixel.
    """
    zero = zero[:n]
    passes = (count + 3) // 4
    q = 0
    for p in range(passes):
        m = (count - q + (passes - p) - 1) // (passes - p)
        w0 = ws[q]
        s0 = flat[starts[q] + shift : starts[q] + shift + n]
        w1 = ws[q + 1] if m > 1 else np.float32(0.0)
        s1 = flat[starts[q + 1] + shift : starts[q + 1] + shift + n] if m > 1 else zero
        w2 = ws[q + 2] if m > 2 else np.float32(0.0)
        s2 = flat[starts[q + 2] + shift : starts[q + 2] + shift + n] if m > 2 else zero
        w3 = ws[q + 3] if m > 3 else np.float32(0.0)
        s3 = flat[starts[q + 3] + shift : starts[q + 3] + shift + n] if m > 3 else zero
        for t in range(n):
            o[t] += w0 * s0[t] + w1 * s1[t] + w2 * s2[t] + w3 * s3[t]
        q += m


@jit
def direct_rows(img, kernel, rmap, cmap, sy, sx, dy, dx, pl, cval, out, init, r0, r1):  # type: ignore[no-untyped-def]
    """Accumulate the correlation of ``img`` with ``kernel`` into output rows ``r0..r1-1``.

    ``out[oy, ox] += Σ kernel[i, j] · P[oy·sy + i·dy, ox·sx + j·dx]`` where ``P`` is the image padded
    through ``rmap``/``cmap`` (``pl`` columns before). Kernel taps are the outer loops, a run of
    output pixels of one row the inner loop. ``init``: zero each row first, so the caller can pass
    ``numpy.empty`` and the page faults of a fresh output happen here, on every thread.
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
    n = xb - xa
    base = xa * sx - pl  # image column of tap j = 0 for output column xa (≥ 0)
    fill = np.float32(cval)
    flat = img.ravel()
    zero = np.zeros(BLOCK, dtype=np.float32)
    starts = np.empty(kw * kh, dtype=np.int64)
    ws = np.empty(kw * kh, dtype=np.float32)
    for oy in range(r0, r1):
        orow = out[oy]
        if init:
            orow[:] = 0.0
        # Gather the nonzero taps of this output row that read image rows, as flat offsets.
        count = 0
        const = np.float32(0.0)
        for i in range(kh):
            r = rmap[oy * sy + i * dy]
            for j in range(kw):
                w = kernel[i, j]
                if w == 0.0:
                    continue  # zero taps (Sobel, Laplacian) cost nothing
                if r < 0:
                    const += w * fill  # a row of constant border
                    continue
                starts[count] = r * w_img + base + j * dx
                ws[count] = w
                count += 1
        if const != 0.0:
            for ox in range(wo):
                orow[ox] += const
        if n > 0:
            if sx == 1:
                # Column blocks keep the output run and the source runs in L1 across all taps.
                for cb in range(0, n, BLOCK):
                    nb = min(BLOCK, n - cb)
                    taps_add(orow[xa + cb : xa + cb + nb], flat, zero, starts, ws, count, nb, cb)
            else:
                o = orow[xa:xb]
                for q in range(count):
                    w = ws[q]
                    s = flat[starts[q] : starts[q] + (n - 1) * sx + 1 : sx]
                    for t in range(n):
                        o[t] += w * s[t]
        # Edge columns: the few outputs whose taps cross the left or right border.
        for i in range(kh):
            r = rmap[oy * sy + i * dy]
            if r < 0:
                continue
            src = img[r]
            for j in range(kw):
                w = kernel[i, j]
                if w == 0.0:
                    continue
                for ox in range(0, xa):
                    c = cmap[ox * sx + j * dx]
                    orow[ox] += w * (src[c] if c >= 0 else fill)
                for ox in range(xb, wo):
                    c = cmap[ox * sx + j * dx]
                    orow[ox] += w * (src[c] if c >= 0 else fill)


@jit
def separable_rows(img, kv, kh, rmap, cmap, sy, sx, dy, dx, pl, cval, out, init, r0, r1):  # type: ignore[no-untyped-def]
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
    buf = np.zeros((1, wp), dtype=np.float32)
    row = buf[0]
    flat = img.ravel()
    bflat = buf.ravel()
    zero = np.zeros(BLOCK, dtype=np.float32)
    inner = row[pl : pl + w_img]
    nv, nh = kv.shape[0], kh.shape[0]
    vstarts = np.empty(nv, dtype=np.int64)
    vws = np.empty(nv, dtype=np.float32)
    hstarts = np.empty(nh, dtype=np.int64)
    hws = np.empty(nh, dtype=np.float32)
    hcount = 0
    for j in range(nh):
        if kh[j] != 0.0:
            hstarts[hcount] = j * dx
            hws[hcount] = kh[j]
            hcount += 1
    vsum = np.float32(0.0)
    for i in range(nv):
        vsum += kv[i] * fill
    for oy in range(r0, r1):
        count = 0
        const = np.float32(0.0)
        for i in range(nv):
            w = kv[i]
            if w == 0.0:
                continue
            r = rmap[oy * sy + i * dy]
            if r < 0:
                const += w * fill
                continue
            vstarts[count] = r * w_img
            vws[count] = w
            count += 1
        for x in range(w_img):
            inner[x] = const
        for cb in range(0, w_img, BLOCK):
            nb = min(BLOCK, w_img - cb)
            taps_add(inner[cb : cb + nb], flat, zero, vstarts, vws, count, nb, cb)
        for c in range(pl):
            m = cmap[c]
            row[c] = row[pl + m] if m >= 0 else vsum
        for c in range(pl + w_img, wp):
            m = cmap[c]
            row[c] = row[pl + m] if m >= 0 else vsum
        orow = out[oy]
        if init:
            orow[:] = 0.0
        if sx == 1:
            for cb in range(0, wo, BLOCK):
                nb = min(BLOCK, wo - cb)
                taps_add(orow[cb : cb + nb], bflat, zero, hstarts, hws, hcount, nb, cb)
        else:
            for q in range(hcount):
                w = hws[q]
                s = row[hstarts[q] : hstarts[q] + (wo - 1) * sx + 1 : sx]
                for t in range(wo):
                    orow[t] += w * s[t]


@jit
def gather_tile(img, rows, cols, cval, buf):  # type: ignore[no-untyped-def]
    """``buf[y, x] = P[rows[y], cols[x]]`` (``-1``: ``cval``); the rest of ``buf`` is left as is.

    The FFT path's tile read: one pass, no temporary, any border, and no GIL held.
    """
    fill = np.float32(cval)
    nx = cols.shape[0]
    # Columns inside one run of the image copy as a slice (vectorised); the rest one by one.
    lo = 0
    while lo < nx and cols[lo] < 0:
        lo += 1
    hi = lo
    while hi < nx and cols[hi] >= 0 and cols[hi] - cols[lo] == hi - lo:
        hi += 1
    c0 = cols[lo] if lo < nx else 0
    for y in range(rows.shape[0]):
        brow = buf[y]
        r = rows[y]
        if r < 0:
            for x in range(nx):
                brow[x] = fill
            continue
        src = img[r]
        seg = src[c0 : c0 + (hi - lo)]
        dst = brow[lo:hi]
        for t in range(hi - lo):
            dst[t] = seg[t]
        for x in range(lo):
            c = cols[x]
            brow[x] = src[c] if c >= 0 else fill
        for x in range(hi, nx):
            c = cols[x]
            brow[x] = src[c] if c >= 0 else fill
