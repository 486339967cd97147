"""2-D correlation of images with CNN semantics: the validating NumPy wrapper around :mod:`cnncli.filtering._jit`.

Imported only by ``cnncli filter``. It loads numpy at import time and Numba (:mod:`._jit`) on first
need (:func:`load_core`, :func:`cache_note`): the geometry and work checks a command makes from an
image's header need no Numba, so the image decodes while a warm-up thread imports it.

What :func:`correlate` computes, per output pixel ``(y, x)`` and kernel tap ``(i, j)``::

    out[y, x] = Σ_ij k[i, j] · P[y·sy + i·dy, x·sx + j·dx]

where ``P`` is the image padded by :func:`plan_geometry`'s ``(before, after)`` on each axis with the
chosen :class:`Border` mode. That is correlation, what CNN layers compute and call convolution;
``flip=True`` gives true convolution (kernel flipped on both axes, anchor mirrored).

Padding split and anchor
    The output size always comes from :mod:`cnncli.arithmetic` (the numbers ``cnncli shape``
    prints). ``same`` pads ``before = (k'-1)//2`` and puts the odd pixel after, like PyTorch and
    TensorFlow (``k' = d·(k-1)+1``); with a stride it is TensorFlow's SAME (output ``⌈n/s⌉``).
    OpenCV's ``filter2D`` puts the anchor of an even kernel at ``k//2`` instead, one pixel later:
    to reproduce OpenCV pass ``anchor=(kh//2, kw//2)``. With an anchor ``(ay, ax)``, ``same``
    padding is ``before = a·d`` and ``after = k'-1-before``.

Borders larger than the image
    Paddings wider than the image (``full`` on a small image, a kernel as large as the image) repeat
    the reflection, as ``numpy.pad`` and OpenCV's ``borderInterpolate`` both do, so ``reflect101``
    is periodic with period ``2(n-1)``, ``reflect`` with ``2n``. An image of one pixel on an axis
    extends as that pixel in every mode (OpenCV does the same for ``reflect101``).

Strategies (chosen by a cost model, see :func:`choose_method`)
    ``direct``: up to nine taps per pass over whole output rows, threads over row bands.
    ``separable``: a rank-1 kernel as a vertical then a horizontal 1-D pass. ``lowrank``: a sum of
    a few separable passes (SVD). ``fft``: float32 overlap-save tiles with ``numpy.fft``, for large
    dense kernels. A 2-D kernel on an H×W×C image runs on the interleaved H×(W·C) plane with column
    taps C apart (no channel copies); an FFT falls back to taps if the image holds NaN/inf.

Accuracy
    Float32 output within ``1e-5 · Σ|k| · max|image|`` of a float64 reference (that product is the
    largest value the correlation could produce, so this is an error relative to the output's
    scale; for a zero-sum edge kernel on a flat image ``max|ref|`` would be 0 and useless).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cnncli import arithmetic, config, limits
from cnncli.config import usable_cores
from cnncli.enums import Border, Combine, parse_border
from cnncli.errors import ImageError, KernelError, ShapeError, UsageError

if TYPE_CHECKING:
    from cnncli.filtering.kernels import Kernel

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
#: What the Numba core reads: float32 planes. Every pixel type is converted a band at a time
#: (only the rows the band reads), so the core has one signature to compile (see :mod:`._jit`).
Plane = F32


#: The numpy.pad mode of each border (:func:`pad` gives the same arrays, tested).
NUMPY_PAD_MODE: dict[Border, str] = {
    Border.REFLECT101: "reflect",
    Border.REFLECT: "symmetric",
    Border.REPLICATE: "edge",
    Border.WRAP: "wrap",
    Border.CONSTANT: "constant",
}

Method = str  # "direct" | "separable" | "lowrank" | "fft"
METHODS = ("direct", "separable", "lowrank", "fft")

#: Fraction of Σ|k| a low-rank approximation may leave out (well under the 1e-5 error budget).
_RANK_TOLERANCE = 1e-7


def cache_note() -> str | None:
    """Why compiled code is not cached where Numba would put it (a one-line warning for the
    command to print), or None when it is."""
    note: str | None = _numba().cache_note
    return note


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


def _pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    values = arithmetic.per_axis(value, 2, what)
    return values[0], values[1]


def plan_geometry(
    image_hw: tuple[int, int],
    kernel_hw: tuple[int, int],
    *,
    padding: arithmetic.PaddingArg = "same",
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
    anchor: tuple[int, int] | None = None,
    flip: bool = False,
) -> arithmetic.Geometry:
    """The output size and padding of a filter: the one place ``filter`` computes them.

    Parameters
    ----------
    image_hw, kernel_hw
        Spatial sizes ``(H, W)`` and ``(kh, kw)``.
    padding
        ``"same"`` (TensorFlow's SAME: output ``⌈n/s⌉``, before ``= (k'-1)//2`` at stride 1),
        ``"valid"``, ``"full"``, an int, per-axis ints or per-axis ``(before, after)`` pairs.
    stride, dilation
        One value or ``(y, x)``.
    anchor
        ``(ay, ax)``, the kernel tap placed on the output pixel; only with ``same`` padding, where it
        sets ``before = a·d`` and ``after = k'-1-before``. Default: the ``same`` split. OpenCV's
        default for even kernels is ``(kh//2, kw//2)``.
    flip
        True convolution: the anchor is mirrored (``k-1-a``), i.e. ``same`` padding's before and
        after are swapped. Output size is unchanged.

    Raises
    ------
    UsageError
        Malformed values (zero stride, an anchor outside the kernel, an anchor without ``same``).
    ShapeError
        Impossible geometry, e.g. a kernel larger than the image with ``valid`` padding.
    """
    same = isinstance(padding, str) and padding.strip().lower() == "same"
    if anchor is not None and not same:
        raise UsageError(
            f"--anchor applies only to --padding same, not {padding!r}; drop --anchor or use same"
        )
    if anchor is None and not (same and flip):
        return _plain_geometry(image_hw, kernel_hw, padding, stride, dilation, same)
    if anchor is None:
        # flip with the default anchor: mirror the default split (before ↔ after).
        base = _plain_geometry(image_hw, kernel_hw, padding, stride, dilation, same)
        pairs = [(ax.pad_after, ax.pad_before) for ax in base.axes]
    else:
        taps = output_tap(kernel_hw, _checked_anchor(anchor, kernel_hw), flip)
        ds = _pair(dilation, "dilation")
        pairs = []
        for a, k, d in zip(taps, _pair(kernel_hw, "kernel"), ds, strict=True):
            keff = arithmetic.effective_kernel(k, d)
            pairs.append((a * d, keff - 1 - a * d))
    return arithmetic.resolve(
        arithmetic.make_spec(image_hw, kernel_hw, stride=stride, dilation=dilation, padding=pairs)
    )


def _plain_geometry(
    image_hw: tuple[int, int],
    kernel_hw: tuple[int, int],
    padding: arithmetic.PaddingArg,
    stride: int | Sequence[int],
    dilation: int | Sequence[int],
    same: bool,
) -> arithmetic.Geometry:
    """The geometry with the default anchor and no flip, straight from the arithmetic core."""
    # "same" always goes through the TensorFlow rule: PyTorch refuses same with a stride.
    spec = arithmetic.make_spec(
        image_hw,
        kernel_hw,
        stride=stride,
        dilation=dilation,
        padding=padding,
        framework="tf" if same else "torch",
    )
    if same and any(d > 1 for d in spec.dilation) and any(s > 1 for s in spec.stride):
        # TensorFlow refuses stride with dilation; keep its SAME rule (output ⌈n/s⌉) and hand
        # the arithmetic core the resulting (before, after) explicitly.
        spec = arithmetic.make_spec(
            image_hw,
            kernel_hw,
            stride=stride,
            dilation=dilation,
            padding=tuple(
                arithmetic.same_padding(n, k, st, d)
                for n, k, st, d in zip(
                    spec.input_size, spec.kernel, spec.stride, spec.dilation, strict=True
                )
            ),
        )
    return arithmetic.resolve(spec)


def _checked_anchor(anchor: Sequence[Any], kernel_hw: tuple[int, int]) -> tuple[int, int]:
    """``anchor`` as two whole numbers inside the kernel, or a UsageError saying which is not."""
    anchors = tuple(anchor)
    if len(anchors) != 2:
        raise UsageError(f"anchor {anchor!r} must be two numbers y,x (row, column of the kernel)")
    for name, a, k in zip(("y", "x"), anchors, _pair(kernel_hw, "kernel"), strict=True):
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise UsageError(f"anchor {name} must be a whole number, got {a!r}")
        if not 0 <= a < k:
            raise UsageError(
                f"anchor {name}={a} lies outside the kernel (size {k}); use 0..{k - 1}"
            )
    return int(anchors[0]), int(anchors[1])


def output_tap(
    kernel_hw: tuple[int, int], anchor: tuple[int, int] | None = None, flip: bool = False
) -> tuple[int, int]:
    """The kernel tap ``(ty, tx)`` that lies on the output pixel: the anchor, by default the
    centre (``(k-1)//2``, the ``same`` split at stride 1 without dilation); a flipped kernel's
    tap is the mirrored anchor (``k-1-a``). The one place anchors and flips are combined."""
    kh, kw = kernel_hw
    ay, ax = anchor if anchor is not None else ((kh - 1) // 2, (kw - 1) // 2)
    return (kh - 1 - ay, kw - 1 - ax) if flip else (ay, ax)


def check_work(geom: arithmetic.Geometry, channels: int, maps: int) -> None:
    """Refuse a filter whose sizes are over the work budget, from the numbers alone: call it
    after :func:`plan_geometry` and before allocating anything for the result.

    Two numbers bound everything the paths allocate: the result (``H'×W'×maps`` float32
    values, the ``output-values`` limit), and the padding around the input. Every buffer made
    from the padding (the row and column maps, the column-padded edge strips, the stride-1 rows
    of a strided result, the dilated kernel and the tiles of the FFT) is at most the padded
    input, so refusing padding that adds more values than the ``output-values`` limit bounds
    them all; a huge dilation with ``same`` padding keeps the output small but pads by the
    dilated kernel's span, and is refused here too.
    """
    ay, ax = geom.axes[0], geom.axes[1]
    ho, wo = ay.output, ax.output
    values = ho * wo * maps
    # Sizes read width×height, as images are described everywhere else.
    shape = f"{wo}×{ho} pixels" + (f" × {maps} maps" if maps > 1 else "")
    limits.check("output-values", values, f"the result would be {shape} = {values:,} values")
    hp = ay.input + ay.pad_before + ay.pad_after
    wp = ax.input + ax.pad_before + ax.pad_after
    added = (hp * wp - ay.input * ax.input) * channels
    if added > limits.get("output-values"):
        limits.check(
            "output-values",
            added,
            f"padding {ay.pad_before}+{ay.pad_after} rows and {ax.pad_before}+{ax.pad_after} "
            f"columns (kernel span {ay.effective_kernel}×{ax.effective_kernel}) would add "
            f"{added:,} values around the {ax.input}×{ay.input} input",
        )


# --------------------------------------------------------------------------------------------
# Borders: padded position -> image index
# --------------------------------------------------------------------------------------------


def border_index(n: int, before: int, after: int, border: Border) -> I64:
    """Image index of each padded position ``-before .. n+after-1`` (``-1``: the constant value)."""
    i = np.arange(-before, n + after, dtype=np.int64)
    if border is Border.CONSTANT:
        return np.where((i >= 0) & (i < n), i, -1)
    if n == 1:
        return np.zeros_like(i)
    if border is Border.REPLICATE:
        return np.clip(i, 0, n - 1)
    if border is Border.WRAP:
        return np.mod(i, n)
    if border is Border.REFLECT101:
        t = np.mod(i, 2 * n - 2)
        return np.where(t < n, t, 2 * n - 2 - t)
    t = np.mod(i, 2 * n)  # REFLECT
    return np.where(t < n, t, 2 * n - 1 - t)


def pad(
    plane: npt.NDArray[Any], geom: arithmetic.Geometry, border: Border, value: float = 0.0
) -> F32:
    """The padded float32 copy of a 2-D plane: what every path reads, made explicit (for tests
    and callers; the paths themselves never build it)."""
    (top, bottom), (left, right) = geom.padding
    h, w = plane.shape
    rmap = border_index(h, top, bottom, border)
    cmap = border_index(w, left, right, border)
    ext = np.full((h + 1, w + 1), value, dtype=np.float32)
    ext[:h, :w] = plane
    return np.ascontiguousarray(ext[rmap[:, None], cmap[None, :]])


# --------------------------------------------------------------------------------------------
# Kernel analysis
# --------------------------------------------------------------------------------------------


def rank1(kernel2d: npt.ArrayLike) -> tuple[F64, F64] | None:
    """``(col, row)`` with ``outer(col, row) == kernel`` if the kernel is separable, else None.

    Uses the largest entry as the pivot (a cross approximation), not an SVD, so integer kernels
    such as Sobel or the seed's ``[[1,0,-1]]×3`` factor exactly (``col = [1,1,1]``, ``row =
    [1,0,-1]``) and float32 results stay exact. Accepted when the residual's ``Σ|·|`` is at most
    ``1e-7 · Σ|k|``. An all-zero kernel gives None.
    """
    k = np.asarray(kernel2d, dtype=np.float64)
    if k.ndim != 2 or k.size == 0:
        return None
    i0, j0 = np.unravel_index(int(np.argmax(np.abs(k))), k.shape)
    pivot = k[i0, j0]
    if pivot == 0.0:
        return None
    col = k[:, j0] / pivot
    row = k[i0, :].copy()
    if np.abs(k - np.outer(col, row)).sum() <= _RANK_TOLERANCE * np.abs(k).sum():
        return col, row
    return None


def lowrank(kernel2d: npt.ArrayLike, max_rank: int | None = None) -> list[tuple[F64, F64]] | None:
    """Separable terms whose sum is the kernel within the accuracy budget (SVD), or None.

    The first term is exact when the kernel is rank 1 (see :func:`rank1`). Terms are dropped while
    ``√(kh·kw) · Σ dropped σ ≤ 1e-7 · Σ|k|``, a bound on ``Σ|dropped part|``. None when more than
    ``max_rank`` terms would be needed.
    """
    k = np.asarray(kernel2d, dtype=np.float64)
    one = rank1(k)
    if one is not None:
        return [one]
    u, s, vt = np.linalg.svd(k)
    budget = _RANK_TOLERANCE * np.abs(k).sum() / np.sqrt(k.size)
    tail = np.concatenate([np.cumsum(s[::-1])[::-1], [0.0]])  # tail[r] = Σ s[r:]
    r = int(np.argmax(tail <= budget))
    if r == 0:
        return []
    if max_rank is not None and r > max_rank:
        return None
    return [(u[:, i] * s[i], vt[i, :].copy()) for i in range(r)]


# --------------------------------------------------------------------------------------------
# Strategy
# --------------------------------------------------------------------------------------------


@functools.cache
def _fast_len(n: int) -> int:
    """Smallest 2^a·3^b·5^c ≥ n (sizes pocketfft transforms fastest). Remembered: the cost model
    asks for the same ~20 sizes on every band of every picture (5 ms of a 12-MP run)."""
    best = 1 << max(n - 1, 0).bit_length()
    f5 = 1
    while f5 < best:
        f35 = f5
        while f35 < best:
            f = f35
            while f < n:
                f *= 2
            best = min(best, f)
            f35 *= 3
        f5 *= 5
    return best


def _fft_tile(n_full: int, keff: int, stride: int) -> tuple[int, int, int]:
    """(transform length, full-resolution outputs per tile, tiles) for one axis of the tiled FFT.

    Overlap-save: a tile of ``T`` padded pixels gives ``T-k'+1`` outputs, so small tiles waste
    work on the overlap and tiles past ~1152 fall out of cache. Pick the length minimising the
    transformed length ``tiles · T`` (plus a per-tile overhead) among fast lengths up to
    ``config.FFT_MAX_TILE``, or one tile covering the whole axis if it is shorter.
    """
    whole = _fast_len(n_full + keff - 1)
    best: tuple[float, int, int, int] = (float("inf"), whole, n_full, 1)
    sizes = {_fast_len(c) for c in (16, 24, 32, 48, 64, 96, 128, 192, 256, 320, 384, 480, 512)}
    sizes |= {_fast_len(c) for c in (576, 640, 768, 864, 960, 1024, 1152)}
    for t in sorted(t for t in sizes if keff <= t <= min(whole - 1, config.FFT_MAX_TILE)):
        v = (t - keff + 1) // stride * stride
        if v <= 0:
            continue
        tiles = -(-n_full // v)
        cost = tiles * (t + 64.0)
        if cost < best[0]:
            best = (cost, t, min(v, n_full), tiles)
    if whole <= config.FFT_MAX_TILE or best[0] == float("inf"):
        # One tile covering the axis, if it fits the cache or nothing else fits the kernel.
        cost = whole + 64.0
        if cost < best[0]:
            best = (cost, whole, n_full, 1)
    return best[1], best[2], best[3]


def choose_method(
    kernel2d: F64, geom: arithmetic.Geometry, *, allow_fft: bool = True, only: Method | None = None
) -> tuple[Method, float]:
    """The cheapest strategy for one plane and its estimated single-thread time in ns.

    ``only``: the estimate of that strategy (for calibration), whatever is cheapest.
    """
    (ay, ax) = geom.axes
    ho, wo = ay.output, ax.output
    kh, kw = kernel2d.shape
    nnz = int(np.count_nonzero(kernel2d))
    write = config.NS_PER_PX * ho * wo
    wf = _full_width(ax)  # the Numba paths compute every column, then take every s-th
    costs: dict[Method, float] = {"direct": write + config.NS_PER_TAP * ho * wf * max(nnz, 1)}
    terms = lowrank(kernel2d, max_rank=min(kh, kw))
    if terms is not None:
        # Vertical taps over whole image rows, horizontal taps over output rows.
        per = sum(
            ho * ax.input * np.count_nonzero(col) + ho * wf * np.count_nonzero(row)
            for col, row in terms
        )
        name = "separable" if len(terms) <= 1 else "lowrank"
        costs[name] = write + config.NS_PER_SEP_TAP * float(per)
    if allow_fft or only == "fft":
        # Full-resolution outputs per axis (the FFT computes them all, then takes every s-th).
        vh = ay.input + ay.pad_before + ay.pad_after - ay.effective_kernel + 1
        vw = ax.input + ax.pad_before + ax.pad_after - ax.effective_kernel + 1
        th, _, nh = _fft_tile(vh, ay.effective_kernel, ay.stride)
        tw, _, nw = _fft_tile(vw, ax.effective_kernel, ax.stride)
        costs["fft"] = write + config.NS_PER_FFT_PX * th * nh * tw * nw
    if only is not None:
        return only, costs.get(only, float("inf"))
    best = min(costs, key=lambda m: costs[m])
    return best, costs[best]


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------

_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=usable_cores(), thread_name_prefix="cnncli-filter")
    return _POOL


def _bands(run: Callable[[int, int], None], rows: int, work: float) -> None:
    """Run ``run(r0, r1)`` over row bands on a few threads (the jitted code releases the GIL)."""
    n = min(
        usable_cores(), rows, max(1, int(work // config.NS_PER_THREAD))
    )  # tiny jobs: one thread, no overhead
    if n <= 1:
        run(0, rows)
        return
    pool = _pool()
    edges = [rows * i // n for i in range(n + 1)]
    futures = [pool.submit(run, edges[i], edges[i + 1]) for i in range(n)]
    for f in futures:
        f.result()


def _readonly(a: npt.ArrayLike) -> F32:
    """A C-contiguous float32 array as the core's signature reads it: a read-only view (no copy
    when ``a`` is one already), so a writable and a read-only input are the same type."""
    view: F32 = np.ascontiguousarray(a, dtype=np.float32).view()
    view.flags.writeable = False
    return view


def _flat(plane: F32) -> F32:
    """A C-contiguous plane's values in one row, read-only (a view), as the core reads them."""
    return _readonly(plane.reshape(-1))


U64 = npt.NDArray[np.uint64]
#: One output row's taps per row: offsets into the raveled source, weights, how many, and the
#: sum of the taps over rows of a constant border (what :func:`_jit.direct_rows` reads).
Taps = tuple[U64, F32, I64, F32]


def _taps(
    kernel: npt.NDArray[Any],
    rmap: I64,
    rows: int,
    sy: int,
    dy: int,
    dx: int,
    widths: Sequence[int],
    cval: float,
) -> list[Taps]:
    """The tap tables of output rows ``0..rows-1`` for sources of each of ``widths`` values a
    row (read-only, shared by the threads).

    Output row ``oy`` reads padded row ``oy·sy + i·dy`` for kernel row ``i``, which ``rmap``
    maps to a source row (``-1``: the constant ``cval``). Each nonzero weight ``kernel[i, j]``
    over a source row ``r`` is the tap ``r·width + j·dx``, in the kernel's row-major order; the
    ones over constant rows add ``weight · cval`` to the row's constant instead. Eight spare
    columns let the core read a last group of nine."""
    i, j = np.nonzero(kernel)
    w = np.asarray(kernel, dtype=np.float32)[i, j]
    size = w.size + 8
    source = rmap[(np.arange(rows, dtype=np.int64) * sy)[:, None] + i * dy]
    weights = np.zeros((rows, size), dtype=np.float32)
    if (source >= 0).all():  # no constant border in reach: every row has every tap
        weights[:, : w.size] = w
        counts = np.full(rows, w.size, dtype=np.int64)
        consts = np.zeros(rows, dtype=np.float32)
    else:  # taps over plane rows first, in kernel order; the others summed into consts
        real = source >= 0
        order = np.argsort(~real, axis=1, kind="stable")
        source = np.take_along_axis(source, order, axis=1)
        j = np.take_along_axis(np.broadcast_to(j, real.shape), order, axis=1)
        weights[:, : w.size] = np.take_along_axis(np.where(real, w, 0), order, axis=1)
        counts = real.sum(axis=1, dtype=np.int64)
        consts = np.where(real, 0, w * np.float32(cval)).sum(axis=1, dtype=np.float32)
    found = source >= 0
    tables: list[Taps] = []
    for width in widths:
        offsets = np.zeros((rows, size), dtype=np.uint64)
        offsets[:, : w.size] = np.where(found, source * width + j * dx, 0)
        offsets.flags.writeable = False
        tables.append((offsets, weights, counts, consts))
    weights.flags.writeable = counts.flags.writeable = consts.flags.writeable = False
    return tables


def _zeros(n: int) -> F32:
    """At least ``n`` zeros, read-only: what a short last group of taps reads."""
    return _readonly(np.zeros(max(n, 1), dtype=np.float32))


_converted = threading.local()


def _float_rows(rows: npt.NDArray[Any]) -> F32:
    """``rows`` as a C-contiguous float32 array: itself when it is one, else converted into a
    buffer this thread reuses from call to call (a band's rows; a fresh array each band paid
    its page faults again, 40 ms on a 12-MP photo against 4 ms for the conversion itself),
    split over the worker threads when large (NumPy's casts release the GIL). The buffer is
    only this call's input: nothing returned refers to it."""
    if rows.dtype == np.float32 and rows.flags.c_contiguous:
        return rows
    size = rows.size
    if size > config.CONVERT_BUFFER_VALUES:
        out: F32 = np.empty(rows.shape, dtype=np.float32)  # too large to keep: not reused
    else:
        buf: F32 | None = getattr(_converted, "buf", None)
        if buf is None or buf.size < size:
            buf = np.empty(max(size, 1 << 16), dtype=np.float32)
            _converted.buf = buf
        out = buf[:size].reshape(rows.shape)
    parts = min(usable_cores(), max(1, size // (1 << 20)), max(1, rows.shape[0]))
    if parts <= 1:
        np.copyto(out, rows, casting="unsafe")
        return out
    edges = [rows.shape[0] * i // parts for i in range(parts + 1)]
    pool = _pool()
    jobs = [
        pool.submit(np.copyto, out[a:b], rows[a:b], casting="unsafe")
        for a, b in zip(edges, edges[1:], strict=False)
    ]
    for job in jobs:
        job.result()
    return out


def _strip(plane: Plane, cols: I64, cval: float) -> Plane:
    """The columns ``cols`` of the padded plane (``-1``: ``cval``), as a contiguous copy."""
    strip: Plane = np.ascontiguousarray(plane[:, np.maximum(cols, 0)])
    strip[:, cols < 0] = cval
    return strip


def _full_width(ax: arithmetic.AxisGeometry) -> int:
    """Output columns at stride 1 (the Numba paths compute these, then take every s-th)."""
    return ax.input + ax.pad_before + ax.pad_after - ax.effective_kernel + 1


def _interleave(cmap: I64, channels: int) -> I64:
    """A column map in pixels → the same map over interleaved ``channels`` (``-1`` stays ``-1``)."""
    if channels == 1:
        return cmap
    flat = cmap[:, None] * channels + np.arange(channels, dtype=np.int64)
    return np.where(cmap[:, None] < 0, -1, flat).ravel()


def _finish_stride(full: F32, out: F32, stride: int, channels: int, init: bool) -> None:
    rows = full.shape[0]
    cols = full.reshape(rows, -1, channels)[:, ::stride][:, : out.shape[1] // channels]
    cols = cols.reshape(rows, -1)
    if init:
        out[...] = cols
    else:
        out += cols


def _plane_direct(
    plane: Plane,
    k: F64,
    geom: arithmetic.Geometry,
    border: Border,
    cval: float,
    out: F32,
    init: bool,
    rmap: I64,
    channels: int = 1,
) -> None:
    """Interior columns straight from the image; the edge columns from small column-padded
    strips; a column stride by computing stride 1 and taking every s-th column.

    ``plane`` and ``out`` may hold ``channels`` interleaved channels per pixel (an H×W×C image
    seen as H×(W·C)): a 2-D kernel then applies to each channel with its column taps ``C``
    apart, so colour needs no channel copies and no restacking.
    """
    (ay, ax) = geom.axes
    c = channels
    cmap = _interleave(border_index(ax.input, ax.pad_before, ax.pad_after, border), c)
    keff, pl, w = ax.effective_kernel, ax.pad_before, ax.input
    wf = _full_width(ax)
    target = out if ax.stride == 1 else np.empty((out.shape[0], wf * c), dtype=np.float32)
    first = init or ax.stride != 1
    interior = max(0, min(w - keff + 1, wf - pl))
    parts: list[tuple[F32, int]] = []
    if interior > 0:
        parts.append((plane, pl * c))
        edges = [(0, pl), (pl + interior, wf)]
    else:
        edges = [(0, wf)]
    for x0, x1 in edges:
        if x1 > x0:
            parts.append((_strip(plane, cmap[x0 * c : (x1 + keff - 1) * c], cval), x0 * c))

    dx = ax.dilation * c
    widths = [src.shape[1] for src, _ in parts]
    tables = _taps(k, rmap, out.shape[0], ay.stride, ay.dilation, dx, widths, cval)
    calls = [
        (_flat(src), src.shape[1] - (k.shape[1] - 1) * dx, c0, taps)
        for (src, c0), taps in zip(parts, tables, strict=True)
    ]
    zero = _zeros(max(n for _, n, _, _ in calls))

    direct_rows = _numba().direct_rows

    def run(r0: int, r1: int) -> None:
        for src, n, c0, taps in calls:
            direct_rows(src, n, *taps, target, c0, first, r0, r1, zero)

    _bands(run, out.shape[0], float(out.shape[0] * wf * c * np.count_nonzero(k)))
    if ax.stride != 1:
        _finish_stride(target, out, ax.stride, c, init)


def _plane_separable(
    plane: Plane,
    terms: list[tuple[F64, F64]],
    geom: arithmetic.Geometry,
    border: Border,
    cval: float,
    out: F32,
    init: bool,
    rmap: I64,
    channels: int = 1,
) -> None:
    """Sum of rank-1 passes; interleaved channels as in :func:`_plane_direct`.

    Each term, a few output rows at a time (:data:`config.SEPARABLE_CHUNK_VALUES`, so the buffer
    stays in cache): the column pass (kernel ``kv`` as kh×1) from the plane's rows into the
    interior of a padded row buffer, the border columns copied from the columns they mirror (a
    constant column holds ``Σ kv · cval``: every padded row of it is the constant), then the
    row pass (``kh`` as 1×kw) from the buffer into ``out``, every column at stride 1 (a column
    stride then takes every s-th). Both passes are :func:`_jit.direct_rows`, nine taps a pass.
    """
    (ay, ax) = geom.axes
    c = channels
    cmap = _interleave(border_index(ax.input, ax.pad_before, ax.pad_after, border), c)
    wf = _full_width(ax)
    wp, left = cmap.shape[0], ax.pad_before * c
    right = left + ax.input * c
    edges = np.r_[0:left, right:wp].astype(np.int64)
    mirrored = edges[cmap[edges] >= 0]
    constant = edges[cmap[edges] < 0]
    sources = left + cmap[mirrored]
    target = out if ax.stride == 1 else np.empty((out.shape[0], wf * c), dtype=np.float32)
    rows = max(1, min(out.shape[0], config.SEPARABLE_CHUNK_VALUES // max(wp, 1)))
    within = np.arange(rows, dtype=np.int64)  # the row pass reads buffer rows as they are
    src = _flat(plane)
    dx = ax.dilation * c
    n_row = wp - (terms[0][1].shape[0] - 1) * dx if terms else 0
    zero = _zeros(max(plane.shape[1], n_row))
    direct_rows = _numba().direct_rows
    for n, (col, row) in enumerate(terms):
        (down,) = _taps(
            col[:, None], rmap, out.shape[0], ay.stride, ay.dilation, 1, [plane.shape[1]], cval
        )
        (across,) = _taps(row[None, :], within, rows, 1, 1, dx, [wp], 0.0)
        vsum = float(np.float32(col.sum() * cval))
        first = n == 0 and (init or ax.stride != 1)

        def run(
            r0: int, r1: int, down: Taps = down, across: Taps = across, vsum: float = vsum,
            first: bool = first,
        ) -> None:  # fmt: skip
            buf = np.empty((min(rows, r1 - r0), wp), dtype=np.float32)
            flat = _flat(buf)
            offsets, weights, counts, consts = down
            for a in range(r0, r1, rows):
                m = min(rows, r1 - a)
                direct_rows(
                    src, plane.shape[1], offsets[a : a + m], weights[a : a + m],
                    counts[a : a + m], consts[a : a + m], buf, left, True, 0, m, zero,
                )  # fmt: skip
                buf[:m, mirrored] = buf[:m, sources]
                buf[:m, constant] = vsum
                direct_rows(flat, n_row, *across, target[a : a + m], 0, first, 0, m, zero)

        _bands(run, out.shape[0], out.shape[0] * (plane.shape[1] * len(col) + wf * c * len(row)))
    if ax.stride != 1:
        _finish_stride(target, out, ax.stride, c, init)


def _plane_fft(
    plane: Plane,
    k: F64,
    geom: arithmetic.Geometry,
    border: Border,
    cval: float,
    out: F32,
    init: bool,
    rmap: I64,
) -> None:
    """Overlap-save FFT correlation in float32 tiles (numpy.fft, threads over tiles)."""
    (ay, ax) = geom.axes
    kd = np.zeros((ay.effective_kernel, ax.effective_kernel))
    kd[:: ay.dilation, :: ax.dilation] = k
    keh, kew = kd.shape
    cmap = border_index(ax.input, ax.pad_before, ax.pad_after, border)
    # Full-resolution (stride 1) outputs; the strided output takes every s-th.
    vh, vw = len(rmap) - keh + 1, len(cmap) - kew + 1
    th, step_h, _ = _fft_tile(vh, keh, ay.stride)
    tw, step_w, _ = _fft_tile(vw, kew, ax.stride)
    # numpy 2.4's pocketfft runs a transform ~3× slower when it applies no scale factor (measured:
    # fft 3.4 ms, fft norm="forward" 0.9 ms on 768×433 complex64), so both directions take a
    # 1/n: the forward with norm="forward", the inverse with the default; the kernel spectrum
    # carries the factor n back.
    kf = np.fft.rfft2(kd[::-1, ::-1], s=(th, tw)) * float(th * tw)
    kf = kf.astype(np.complex64)

    def run(y0: int, x0: int) -> None:
        ny, nx = min(step_h, vh - y0), min(step_w, vw - x0)
        buf = np.zeros((th, tw), dtype=np.float32)  # zeros past the tile: the FFT's padding
        rows, cols = rmap[y0 : y0 + ny + keh - 1], cmap[x0 : x0 + nx + kew - 1]
        _gather(plane, rows, cols, cval, buf)
        spec = np.fft.rfft2(buf, norm="forward")
        spec *= kf
        res = np.fft.irfft2(spec, s=(th, tw))
        valid = res[keh - 1 : keh - 1 + ny : ay.stride, kew - 1 : kew - 1 + nx : ax.stride]
        oy, ox = y0 // ay.stride, x0 // ax.stride
        if init:
            out[oy : oy + valid.shape[0], ox : ox + valid.shape[1]] = valid
        else:
            out[oy : oy + valid.shape[0], ox : ox + valid.shape[1]] += valid

    tiles = [(y0, x0) for y0 in range(0, vh, step_h) for x0 in range(0, vw, step_w)]
    if len(tiles) > 1 and usable_cores() > 1:
        # Tiles write disjoint outputs; numpy.fft, the products and the Numba reads all run
        # without the GIL (31×31 on 12 MP: 112 ms on one thread, 68 ms on two).
        pool = _pool()
        for f in [pool.submit(run, y0, x0) for y0, x0 in tiles]:
            f.result()
    else:
        for y0, x0 in tiles:
            run(y0, x0)


def _run(index: I64) -> tuple[int, int]:
    """``(lo, hi)``: the longest run of consecutive image indices (``index[lo]``, ``+1``, …) in a
    border map (reflected borders run backwards, so the image's own part is the longest);
    ``lo == hi`` when it holds none."""
    n = index.shape[0]
    if n == 0 or not (index >= 0).any():
        return n, n
    # A run starts where the previous index is not one less (or is the constant border).
    starts = np.flatnonzero(np.r_[True, (np.diff(index) != 1) | (index[:-1] < 0)])
    ends = np.r_[starts[1:], n]
    lengths = np.where(index[starts] >= 0, ends - starts, 0)
    best = int(np.argmax(lengths))
    return int(starts[best]), int(ends[best])


def _gather(plane: Plane, rows: I64, cols: I64, cval: float, buf: F32) -> None:
    """``buf[y, x] = P[rows[y], cols[x]]`` (``-1``: ``cval``); the rest of ``buf`` is left as is.

    The FFT path's tile read, in NumPy: the block of the image inside one run of rows and one
    run of columns as one strided copy (the whole tile, away from the borders), then the few
    border rows and columns through their maps."""
    ny, nx = rows.shape[0], cols.shape[0]
    y0, y1 = _run(rows)
    x0, x1 = _run(cols)
    if y1 > y0 and x1 > x0:
        r, c = int(rows[y0]), int(cols[x0])
        buf[y0:y1, x0:x1] = plane[r : r + y1 - y0, c : c + x1 - x0]
    other_rows = np.r_[0:y0, y1:ny].astype(np.int64)
    other_cols = np.r_[0:x0, x1:nx].astype(np.int64)
    for ys, xs in ((other_rows, np.arange(nx)), (np.arange(y0, y1), other_cols)):
        if ys.size and xs.size:
            picked = plane[np.maximum(rows[ys], 0)[:, None], np.maximum(cols[xs], 0)[None, :]]
            picked[rows[ys] < 0, :] = cval
            picked[:, cols[xs] < 0] = cval
            buf[ys[:, None], xs[None, :]] = picked


def _rows_read(geom: arithmetic.Geometry, border: Border, row0: int, n: int) -> I64:
    """The image row each padded row read by output rows ``row0 .. row0+n-1`` comes from
    (``-1``: the constant border). Every path reads image rows only through this map, so a band
    of output rows needs only the image rows it names."""
    ay = geom.axes[0]
    first = row0 * ay.stride
    return border_index(ay.input, ay.pad_before, ay.pad_after, border)[
        first : first + (n - 1) * ay.stride + ay.effective_kernel
    ]


def _correlate_plane(
    plane: Plane,
    k: F64,
    geom: arithmetic.Geometry,
    border: Border,
    cval: float,
    out: F32,
    method: Method | None,
    init: bool,
    channels: int,
    rmap: I64,
) -> None:
    """Correlate a plane (``channels`` interleaved: H×(W·C)) with one 2-D kernel into ``out``
    (same layout; ``init``: overwrite, else add). ``rmap`` names the plane row each padded row
    the output rows read comes from (``-1``: the constant): :func:`_rows_read`, shifted when
    ``plane`` holds only the rows a band reads."""
    if method is None:
        method, _ = choose_method(k, geom)
        if method == "fft" and plane.dtype.kind == "f" and not np.isfinite(plane).all():
            # An FFT spreads one NaN/inf over its whole tile; taps keep it where it belongs.
            method, _ = choose_method(k, geom, allow_fft=False)
    if method == "direct":
        _plane_direct(plane, k, geom, border, cval, out, init, rmap, channels)
    elif method == "fft":
        for c in range(channels):  # the FFT works on one channel at a time
            single = plane if channels == 1 else np.ascontiguousarray(plane[:, c::channels])
            _plane_fft(single, k, geom, border, cval, out[:, c::channels], init, rmap)
    elif method in ("separable", "lowrank"):
        terms = lowrank(k)
        assert terms is not None
        if method == "separable" and len(terms) > 1:
            raise UsageError(f"kernel has rank {len(terms)}, not 1; use method lowrank")
        if terms:
            _plane_separable(plane, terms, geom, border, cval, out, init, rmap, channels)
        elif init:
            out.fill(0.0)  # an all-zero kernel
    else:
        raise UsageError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")


# --------------------------------------------------------------------------------------------
# The compiled core: loaded (or compiled, the first run) once, ahead of use
# --------------------------------------------------------------------------------------------

#: The line a command prints when it has to wait for the first run's compile.
COMPILE_NOTE = "compiling the filter core, first run only (a few seconds)…"

_core_lock = threading.Lock()
_core_loaded = False
_announce: Callable[[str], None] | None = None
_announced = False
#: Set in a thread that needs the core now (a correlate call), not in a warm-up thread.
_needed = threading.local()


def load_core(announce: Callable[[str], None] | None = None) -> None:
    """Load the compiled core from Numba's cache, or compile it with an empty cache (a first
    run: about a second on a quiet machine), once per process and for every path at once.

    A command calls it in a background thread as soon as it knows it will filter, so the load
    or compile overlaps reading the image; :func:`correlate` calls it too, and waits for a load
    or compile in flight. ``announce`` (the command's) is called once, with
    :data:`COMPILE_NOTE`, when a :func:`correlate` call has to wait for a compile: a run that
    compiles says why it is slow, a run that fails before filtering says nothing more than
    its error, and a cache load says nothing.
    """
    global _announce, _core_loaded
    if announce is not None:
        _announce = announce
    if _core_loaded:
        return
    waiting = getattr(_needed, "now", False)
    while not _core_lock.acquire(timeout=0.05):
        # Numba may still be importing in the thread that holds the lock: until it is, nothing
        # can be compiling.
        if waiting and _jit_module is not None and _jit_module.compiling.is_set():
            _say_compiling()
    try:
        if not _core_loaded:
            _numba().compile_core()
            _core_loaded = True
    finally:
        _core_lock.release()


def _say_compiling() -> None:
    # Without a cache every run compiles: the command's warning (cache_note) says so already.
    global _announced
    if _announce is not None and not _announced and _numba().cached:
        _announced = True
        _announce(COMPILE_NOTE)


def _compile_starts() -> None:
    """Numba starts compiling the core in this thread: say so if a correlate call waits here."""
    if getattr(_needed, "now", False):
        _say_compiling()


#: :mod:`cnncli.filtering._jit` once imported (:func:`_numba`).
_jit_module: ModuleType | None = None


def _numba() -> ModuleType:
    """:mod:`cnncli.filtering._jit`, imported on first need: importing it imports Numba (most of
    a warm run's start-up), which a command starts in a warm-up thread while its main thread
    plans from the image's header and decodes it (:mod:`.pipeline`), so this module's geometry
    and work checks must not wait for it. Also reached as ``correlate._jit``."""
    global _jit_module
    if _jit_module is None:
        from cnncli.filtering import _jit

        _jit.on_compile = _compile_starts
        _jit_module = _jit
    return _jit_module


def __getattr__(name: str) -> Any:
    # ``correlate._jit``: the Numba module, imported on first use (tests patch it through it).
    if name == "_jit":
        return _numba()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _core_for_this_call() -> None:
    """The core, before a correlate call runs it (waiting for a warm-up still loading it)."""
    if _core_loaded:
        return
    _needed.now = True
    try:
        load_core()
    finally:
        _needed.now = False


# --------------------------------------------------------------------------------------------
# Validation and the public entry point
# --------------------------------------------------------------------------------------------


def _shape_str(shape: Sequence[int]) -> str:
    return "×".join(str(s) for s in shape)


def check_kernel(kernel: npt.ArrayLike) -> F64:
    """The kernel as float64, or a KernelError naming the problem and the fix."""
    try:
        k = np.asarray(kernel)
    except (ValueError, TypeError) as exc:
        raise KernelError(
            f"kernel is not a matrix of numbers ({exc}); give rows of equal length"
        ) from None
    if k.dtype == object or not (np.issubdtype(k.dtype, np.number) or k.dtype == np.bool_):
        raise KernelError(
            f"kernel must hold numbers, got {k.dtype} values; give rows of equal length of numbers"
        )
    if np.iscomplexobj(k):
        raise KernelError("kernel has complex values; give real numbers")
    if k.size == 0:
        raise KernelError(
            f"kernel is empty (shape {_shape_str(k.shape)}); give at least one value, e.g. 1"
        )
    if k.ndim not in (2, 3, 4):
        raise KernelError(
            f"kernel has {k.ndim} dimension{'s' if k.ndim != 1 else ''} (shape {_shape_str(k.shape)}); "
            "give kh×kw, Cin×kh×kw or Cout×Cin×kh×kw"
        )
    k = k.astype(np.float64)
    bad = ~np.isfinite(k)
    if bad.any():
        where = tuple(int(v) for v in np.argwhere(bad)[0])
        raise KernelError(
            f"kernel has {k[where]} at index {','.join(map(str, where))}; give finite numbers"
        )
    return k


def _check_image(image: npt.ArrayLike) -> tuple[npt.NDArray[Any], int]:
    img = np.asarray(image)
    if img.dtype == object or not (np.issubdtype(img.dtype, np.number) or img.dtype == np.bool_):
        raise ImageError(f"image must hold numbers, got {img.dtype} values")
    if np.iscomplexobj(img):
        raise ImageError("image has complex values; give real numbers")
    if img.ndim not in (2, 3):
        raise ShapeError(
            f"image has shape {_shape_str(img.shape)}; give H×W or H×W×C (channels last)"
        )
    if img.size == 0:
        raise ShapeError(
            f"image is empty (shape {_shape_str(img.shape)}); give at least 1×1 pixels"
        )
    return img, (1 if img.ndim == 2 else img.shape[2])


def correlate(
    image: npt.ArrayLike,
    kernel: npt.ArrayLike,
    *,
    padding: arithmetic.PaddingArg = "same",
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
    border: Border | str = Border.REFLECT101,
    border_value: float = 0.0,
    anchor: tuple[int, int] | None = None,
    flip: bool = False,
    rows: tuple[int, int] | None = None,
    _method: Method | None = None,
) -> F32:
    """Correlate an image with a kernel, as a CNN layer does (``flip=True``: true convolution).

    Parameters
    ----------
    image
        H×W or H×W×C, any real dtype; converted to float32 a band at a time (only the rows a band
        reads), so the core has one compiled signature for every pixel type.
    kernel
        * kh×kw: applied to each channel independently → H'×W' (or H'×W'×C);
        * Cin×kh×kw: Cin must equal C (a 2-D image has C = 1); every channel is correlated and the
          results summed into one map H'×W';
        * Cout×Cin×kh×kw (PyTorch's weight layout): Cout such maps, H'×W'×Cout.
    padding, stride, dilation, anchor
        See :func:`plan_geometry`. Note OpenCV's default anchor for even kernels is ``k//2``;
        ours is the ``same`` split ``(k'-1)//2`` (PyTorch/TensorFlow).
    border, border_value
        Values outside the image (:class:`Border`, default reflect101 like OpenCV); the constant
        for ``constant``.
    flip
        Flip the kernel on both spatial axes (true convolution), mirroring the anchor.
    rows
        ``(r0, r1)``: compute only output rows ``r0 .. r1-1`` (the same values as those rows of
        the whole result), so a caller can stream a large result band by band.
    _method
        Force a strategy (``direct``, ``separable``, ``lowrank``, ``fft``); tests and benchmarks only.

    Returns
    -------
    numpy.ndarray
        float32, within ``1e-5 · Σ|k| · max|image|`` of the float64 result.

    Raises
    ------
    KernelError, ImageError, UsageError, ShapeError
        One-line messages naming the value and the fix.
    """
    b = parse_border(border)
    k = check_kernel(kernel)
    img, channels = _check_image(image)
    try:
        cval = float(border_value)
    except (TypeError, ValueError):
        raise UsageError(
            f"border value {border_value!r} is not a number; write e.g. constant=0"
        ) from None
    if not np.isfinite(cval):
        raise UsageError(f"border value {cval} is not finite; give a number, e.g. constant=0")

    kh, kw = k.shape[-2:]
    if k.ndim == 3 and k.shape[0] != channels:
        raise KernelError(
            f"kernel has {k.shape[0]} input channels (shape {_shape_str(k.shape)}) but the image "
            f"has {channels}; give a {channels}×{kh}×{kw} kernel, or a 2-D one for every channel"
        )
    if k.ndim == 4 and k.shape[1] != channels:
        raise KernelError(
            f"kernel has {k.shape[1]} input channels (shape {_shape_str(k.shape)}) but the image "
            f"has {channels}; give a {k.shape[0]}×{channels}×{kh}×{kw} kernel"
        )
    geom = plan_geometry(
        (img.shape[0], img.shape[1]), (kh, kw), padding=padding, stride=stride,
        dilation=dilation, anchor=anchor, flip=flip,
    )  # fmt: skip
    maps = channels if k.ndim == 2 else (1 if k.ndim == 3 else int(k.shape[0]))
    check_work(geom, channels, maps)
    if flip:
        k = np.ascontiguousarray(k[..., ::-1, ::-1])
    ho, wo = geom.output_size
    r0, r1 = 0, ho
    if rows is not None:
        whole = all(isinstance(v, int | np.integer) for v in rows) and len(rows) == 2
        if not whole or not 0 <= rows[0] < rows[1] <= ho:
            raise UsageError(
                f"rows {tuple(rows)} are not a band of the {ho} output rows; "
                f"give whole numbers 0 <= r0 < r1 <= {ho}"
            )
        r0, r1 = int(rows[0]), int(rows[1])
    band = r1 - r0
    _core_for_this_call()
    # Only the image rows this band reads are copied (a channel plane, or a converted pixel
    # type): a result streamed in bands copies the image once in all, not once a band.
    read = _rows_read(geom, b, r0, band)
    inside = read[read >= 0]
    lo, hi = (int(inside.min()), int(inside.max()) + 1) if inside.size else (0, 1)
    planes = img[lo:hi, :, None] if img.ndim == 2 else img[lo:hi]
    rmap = np.where(read >= 0, read - lo, -1) if lo else read

    if k.ndim == 2:
        # Channels stay interleaved: the H×W×C image is an H×(W·C) plane (see _plane_direct).
        flat = _float_rows(planes).reshape(hi - lo, -1)
        result2 = np.empty((band, wo * channels), dtype=np.float32)
        _correlate_plane(flat, k, geom, b, cval, result2, _method, True, channels, rmap)
        return result2 if img.ndim == 2 else result2.reshape(band, wo, channels)
    k4 = k[None] if k.ndim == 3 else k
    result = np.empty((k4.shape[0], band, wo), dtype=np.float32)
    for c in range(channels):
        p = _float_rows(planes[:, :, c])
        for oc in range(k4.shape[0]):
            _correlate_plane(
                p, k4[oc, c], geom, b, cval, result[oc], _method, c == 0, 1, rmap
            )  # fmt: skip
    return result[0] if k.ndim == 3 else np.ascontiguousarray(np.moveaxis(result, 0, -1))


# --------------------------------------------------------------------------------------------
# Applying a library kernel: its responses combined
# --------------------------------------------------------------------------------------------


def apply_kernel(
    kernel: Kernel,
    image: npt.NDArray[Any],
    *,
    padding: Any = "same",
    stride: Any = 1,
    dilation: Any = 1,
    border: str = "reflect101",
    border_value: float = 0.0,
    anchor: tuple[int, int] | None = None,
    flip: bool = False,
    rows: tuple[int, int] | None = None,
) -> npt.NDArray[np.float32]:
    """Correlate (or with ``flip`` convolve) ``image`` with ``kernel`` and combine the responses
    of gradient pairs (magnitude or direction in degrees 0..360) and compass sets (maximum).
    ``rows``: only those output rows (see :func:`correlate`)."""

    def run(w: F64) -> npt.NDArray[np.float32]:
        return correlate(
            image,
            w,
            padding=padding,
            stride=stride,
            dilation=dilation,
            border=border,
            border_value=border_value,
            anchor=anchor,
            flip=flip,
            rows=rows,
        )

    if kernel.combine is Combine.SINGLE:
        return run(kernel.matrix)
    if kernel.combine is Combine.MAXIMUM:
        out = run(kernel.weights[0])
        for w in kernel.weights[1:]:
            np.maximum(out, run(w), out=out)
        return out
    gx, gy = run(kernel.weights[0]), run(kernel.weights[1])
    if kernel.combine is Combine.MAGNITUDE:
        return np.hypot(gx, gy).astype(np.float32)
    angle = np.degrees(np.arctan2(gy.astype(np.float64), gx.astype(np.float64))) % 360.0
    return angle.astype(np.float32)
