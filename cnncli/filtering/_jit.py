"""Every Numba-compiled function of cnncli, and nothing else.

Imported only by :mod:`cnncli.filtering.correlate` (itself imported only by ``cnncli filter``), so ``cnncli
shape`` and ``cnncli summary`` never load Numba. The functions work on one plane at a time
and on a band of output rows ``[r0, r1)``: the caller runs bands on a few threads (``nogil``),
which adds nothing to the first-run compile (``parallel=True`` would add Numba's parfors passes
and threading layer to it). Every other argument always has the same type (C-contiguous float32
outputs, int64 index maps, Python ints, floats and bools), so each function compiles once and is
then loaded from the cache. The image planes are the one exception: float32, or 8-/16-bit
pixels read as they are (``np.float32(pixel)`` as each tap loads it: exact, and no float32 copy
of the image in memory), one specialisation per pixel type, compiled when first used.

Borders never reach the inner loops: a padded row ``p`` maps to an image row ``rmap[p]`` (``-1``
means the constant border value), precomputed by the caller for any border mode; padded columns
are either the image's own (the direct path's interior), a small column-padded strip the caller
builds for the edges, or the separable path's padded row buffer.

Inner loops index slices with a ``range`` counter: Numba then knows the index is not negative and
LLVM vectorises them (indexing ``src[ox + off]`` directly keeps a wraparound check and ran ~3×
slower). Up to nine taps (direct; four in the separable passes) are summed per pass over an
output row, so the row is loaded and stored once per nine multiply-adds instead of once per tap:
a 3×3 kernel is one pass (12.4 ms on 12 MP and one thread, against 17.5 ms with four taps per
pass). Blocking the rows into L1-sized runs measured slower (the per-pass setup dominates), so a
run is a whole row.
"""

from __future__ import annotations

import os
import stat
from typing import Any

# Numba colours its compile-time messages with colorama, whose init()/deinit() replace and
# then restore sys.stdout and sys.stderr, even for messages built and caught inside type
# inference. The core compiles on a background thread (correlate.warm_up) while the main
# thread prints, so the streams must stay put: no highlighting (cnncli shows its own one-line
# errors, never Numba's). Read once, when numba.core.errors is first imported.
os.environ.setdefault("NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING", "1")

import numpy as np  # noqa: E402 (after the environment above)
from numba import njit  # noqa: E402

#: Why compiled code is not cached where Numba would put it (None: it is), for the caller to
#: print as one warning line.
cache_note: str | None = None


def _private_dir(path: str) -> bool:
    """Whether ``path`` is a directory of ours that nobody else may write (cached machine code
    is loaded from it: a directory another user can write would run their code)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(st.st_mode)
        and st.st_uid == os.getuid()
        and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def _cache_fallback() -> bool:
    """Make sure Numba can cache this module's functions; returns whether it can.

    Numba caches next to the source (``__pycache__``), else in ``NUMBA_CACHE_DIR`` or the
    user's cache directory; when none is writable (a read-only install and an unwritable
    HOME), ``@njit(cache=True)`` raises "no locator available" while this module is imported,
    and every filter failed. Then cache in a private directory under the temporary directory
    (kept between runs), or compile without a cache.
    """
    global cache_note
    try:
        from numba.core import config
        from numba.core.caching import CacheImpl
    except ImportError:  # a Numba without these: let it decide
        return True

    def probe() -> None:  # pragma: no cover - only located, never run
        pass

    def located() -> bool:
        classes: list[Any] = list(CacheImpl._locator_classes)
        for cls in classes:
            try:
                if cls.from_function(probe, __file__) is not None:
                    return True
            except Exception:
                continue
        return False

    try:
        if located():
            return True
    except Exception:
        return True
    import tempfile

    fallback = os.path.join(tempfile.gettempdir(), f"cnncli-numba-{os.getuid()}")
    try:
        os.makedirs(fallback, mode=0o700, exist_ok=True)
    except OSError:
        pass
    if not _private_dir(fallback):
        try:
            fallback = tempfile.mkdtemp(prefix="cnncli-numba-")
        except OSError:
            fallback = ""
    if fallback:
        settings: Any = config  # CACHE_DIR is set from NUMBA_CACHE_DIR, read per function
        saved = settings.CACHE_DIR
        settings.CACHE_DIR = fallback
        if located():
            cache_note = (
                "no writable Numba cache directory (package folder, NUMBA_CACHE_DIR, user "
                f"cache); caching compiled code in {fallback} instead"
            )
            return True
        settings.CACHE_DIR = saved
    cache_note = (
        "no writable Numba cache directory (package folder, NUMBA_CACHE_DIR, user cache, "
        "temporary folder); compiling without a cache, so every run starts slower"
    )
    return False


#: The one set of JIT options. Of fastmath only "contract" (fused multiply-add: one rounding
#: instead of two, ~10% faster): no reassociation, and NaN/inf propagate as IEEE says.
jit = njit(cache=_cache_fallback(), nogil=True, fastmath={"contract"}, error_model="numpy")


@jit
def taps_add(o, flat, zero, starts, ws, count, n):  # type: ignore[no-untyped-def]
    """``o[t] += Σ_q ws[q] · flat[starts[q] + t]`` for ``t < n``, four taps per pass.

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
        s0 = flat[starts[q] : starts[q] + n]
        w1 = ws[q + 1] if m > 1 else np.float32(0.0)
        s1 = flat[starts[q + 1] : starts[q + 1] + n] if m > 1 else zero
        w2 = ws[q + 2] if m > 2 else np.float32(0.0)
        s2 = flat[starts[q + 2] : starts[q + 2] + n] if m > 2 else zero
        w3 = ws[q + 3] if m > 3 else np.float32(0.0)
        s3 = flat[starts[q + 3] : starts[q + 3] + n] if m > 3 else zero
        for t in range(n):
            o[t] += (
                w0 * np.float32(s0[t])
                + w1 * np.float32(s1[t])
                + w2 * np.float32(s2[t])
                + w3 * np.float32(s3[t])
            )
        q += m


@jit
def direct_rows(img, kernel, rmap, sy, dy, dx, cval, out, c0, init, r0, r1):  # type: ignore[no-untyped-def]
    """Correlate ``img`` with ``kernel`` into ``out[r0:r1, c0 : c0 + w']`` (``init``: overwrite).

    ``out[oy, c0 + x] = Σ kernel[i, j] · img[rmap[oy·sy + i·dy], x + j·dx]``: rows come through
    the border map ``rmap`` (``-1``: the constant ``cval``), columns are ``img``'s own, so every
    tap reads a contiguous run and the loop has no branch. The caller passes the image for the
    interior columns and small column-padded strips for the edges, and takes every s-th column
    for a column stride; this keeps one compact function to compile (~0.3 s less on a first run
    than handling edges and strides here). Kernel taps are the outer loops, four per pass over a
    run of output pixels the inner loop. ``init`` lets the caller pass ``numpy.empty``: the page
    faults of a fresh output then happen here, on every thread.
    """
    w_img = img.shape[1]
    kh, kw = kernel.shape
    n = w_img - (kw - 1) * dx
    if n <= 0:
        return
    fill = np.float32(cval)
    flat = img.ravel()
    zero = np.zeros_like(flat[:n])  # flat's own type: one array type for the s_i below
    starts = np.empty(kw * kh, dtype=np.int64)
    ws = np.empty(kw * kh, dtype=np.float32)
    for oy in range(r0, r1):
        o = out[oy, c0 : c0 + n]
        # The nonzero taps of this output row that read image rows, as offsets into flat.
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
                starts[count] = r * w_img + j * dx
                ws[count] = w
                count += 1
        # Inlined taps_add, nine taps per pass (a 3×3 kernel in one pass over the row); with
        # init the first pass stores instead of adding (no zeroing pass, one load less).
        passes = (count + 8) // 9
        if passes == 0 and init:
            o[:] = 0.0
        q = 0
        for p in range(passes):
            m = (count - q + (passes - p) - 1) // (passes - p)
            w0 = ws[q]
            s0 = flat[starts[q] : starts[q] + n]
            w1 = ws[q + 1] if m > 1 else np.float32(0.0)
            s1 = flat[starts[q + 1] : starts[q + 1] + n] if m > 1 else zero
            w2 = ws[q + 2] if m > 2 else np.float32(0.0)
            s2 = flat[starts[q + 2] : starts[q + 2] + n] if m > 2 else zero
            w3 = ws[q + 3] if m > 3 else np.float32(0.0)
            s3 = flat[starts[q + 3] : starts[q + 3] + n] if m > 3 else zero
            w4 = ws[q + 4] if m > 4 else np.float32(0.0)
            s4 = flat[starts[q + 4] : starts[q + 4] + n] if m > 4 else zero
            w5 = ws[q + 5] if m > 5 else np.float32(0.0)
            s5 = flat[starts[q + 5] : starts[q + 5] + n] if m > 5 else zero
            w6 = ws[q + 6] if m > 6 else np.float32(0.0)
            s6 = flat[starts[q + 6] : starts[q + 6] + n] if m > 6 else zero
            w7 = ws[q + 7] if m > 7 else np.float32(0.0)
            s7 = flat[starts[q + 7] : starts[q + 7] + n] if m > 7 else zero
            w8 = ws[q + 8] if m > 8 else np.float32(0.0)
            s8 = flat[starts[q + 8] : starts[q + 8] + n] if m > 8 else zero
            if p == 0 and init:
                for t in range(n):
                    o[t] = (
                        w0 * np.float32(s0[t])
                        + w1 * np.float32(s1[t])
                        + w2 * np.float32(s2[t])
                        + w3 * np.float32(s3[t])
                        + w4 * np.float32(s4[t])
                        + w5 * np.float32(s5[t])
                        + w6 * np.float32(s6[t])
                        + w7 * np.float32(s7[t])
                        + w8 * np.float32(s8[t])
                    )
            else:
                for t in range(n):
                    o[t] += (
                        w0 * np.float32(s0[t])
                        + w1 * np.float32(s1[t])
                        + w2 * np.float32(s2[t])
                        + w3 * np.float32(s3[t])
                        + w4 * np.float32(s4[t])
                        + w5 * np.float32(s5[t])
                        + w6 * np.float32(s6[t])
                        + w7 * np.float32(s7[t])
                        + w8 * np.float32(s8[t])
                    )
            q += m
        if const != 0.0:
            for t in range(n):
                o[t] += const


@jit
def separable_rows(img, kv, kh, rmap, cmap, sy, dy, dx, pl, cval, out, init, r0, r1):  # type: ignore[no-untyped-def]
    """Correlate with the rank-1 kernel ``outer(kv, kh)`` into rows ``r0..r1-1`` of ``out``.

    Per output row: the vertical 1-D pass into a padded row buffer (border columns copied from
    the image columns they mirror, which is exact because every padded row is a copy of an image
    row or constant), then the horizontal 1-D pass from that buffer into all ``out`` columns
    (stride 1; the caller subsamples). The buffer stays in cache, so the image is read once per
    vertical tap and the output written once.
    """
    w_img = img.shape[1]
    wp = cmap.shape[0]
    wo = out.shape[1]
    fill = np.float32(cval)
    buf = np.zeros((1, wp), dtype=np.float32)
    row = buf[0]
    flat = img.ravel()
    bflat = buf.ravel()
    zimg = np.zeros_like(flat[:w_img])  # the image's own type, for the vertical taps
    zero = np.zeros(wo, dtype=np.float32)
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
        taps_add(inner, flat, zimg, vstarts, vws, count, w_img)
        for c in range(pl):
            m = cmap[c]
            row[c] = row[pl + m] if m >= 0 else vsum
        for c in range(pl + w_img, wp):
            m = cmap[c]
            row[c] = row[pl + m] if m >= 0 else vsum
        orow = out[oy]
        if init:
            orow[:] = 0.0
        taps_add(orow, bflat, zero, hstarts, hws, hcount, wo)


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
            brow[x] = np.float32(src[c]) if c >= 0 else fill
        for x in range(hi, nx):
            c = cols[x]
            brow[x] = np.float32(src[c]) if c >= 0 else fill


def _load_cached_code_without_refresh() -> None:
    """Make each function's cache load skip Numba's compiler set-up (~60 ms and ~10 MiB a run).

    On a warm cache Numba's ``Cache.load_overload`` first calls ``target_context.refresh()``,
    which imports and registers every typing and lowering module (``numba.np.arraymath``,
    ``linalg``, the typed containers, ...): what a compile needs, while rebuilding cached machine
    code needs only the runtime (NRT). A compile, on a cache miss, refreshes the contexts itself
    (``numba.core.compiler.CompilerBase``). So each dispatcher here gets a cache that loads
    without the refresh; should that ever fail (another Numba version), it falls back to
    Numba's own load. Measured on a 12-MP Sobel run: the whole process 60 ms faster, and
    Python's teardown at exit 45 ms faster (fewer modules and LLVM objects to free).
    """
    try:
        from numba.core.caching import FunctionCache
        from numba.core.runtime import nrt
    except ImportError:  # a Numba without these: keep its own cache
        return

    class QuickLoadCache(FunctionCache):
        def load_overload(self, sig, target_context):  # type: ignore[no-untyped-def]
            try:
                nrt.rtsys.initialize(target_context)
                with self._guard_against_spurious_io_errors():
                    return self._load_overload(sig, target_context)  # type: ignore[no-untyped-call]
            except Exception:
                return super().load_overload(sig, target_context)  # type: ignore[no-untyped-call]

    dispatchers: tuple[Any, ...] = (taps_add, direct_rows, separable_rows, gather_tile)
    for f in dispatchers:
        if isinstance(getattr(f, "_cache", None), FunctionCache):
            f._cache = QuickLoadCache(f.py_func)  # type: ignore[no-untyped-call]


_load_cached_code_without_refresh()
