"""Every Numba-compiled function of cnncli, and nothing else: one function, one signature.

Imported only by :mod:`cnncli.filtering.correlate` (itself imported only by ``cnncli filter``), so
``cnncli shape`` and ``cnncli summary`` never load Numba. :func:`direct_rows` works on one float32
plane and a band of output rows ``[r0, r1)``: the caller runs bands on a few threads (``nogil``),
which adds nothing to the first-run compile (``parallel=True`` would add Numba's parfors passes and
threading layer to it).

Why one function and one signature: a first run (an empty Numba cache) pays for every
specialisation it meets, and each cost seconds on this project's machine. Before, the direct,
separable and FFT-gather functions were compiled per pixel type (uint8, uint16, float32) when first
used, so a user met a new multi-second wait with their first ``.npy``, their first Gaussian and
their first 16-bit picture. Now every path runs on :func:`direct_rows` (the separable path as a
column pass and a row pass, the FFT path gathers its tiles with NumPy), every pixel type is
converted to float32 a band at a time, and :func:`compile_core` compiles the one signature in
:data:`SIGNATURES`, so the first run of any command compiles everything at once and every later
run of any path loads it from the cache. Allocations (``np.empty``, ``np.zeros``) and ``ravel``
are left to the caller: each one compiled into a function cost ~0.3 s of the first run.

Borders never reach the inner loop: the caller turns each output row's taps into offsets into the
plane (padded rows through the border map, taps over a constant border into one value), and padded
columns are either the image's own (the direct path's interior), a small column-padded strip the
caller builds for the edges, or the separable path's padded row buffer.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from typing import Any

# Numba colours its compile-time messages with colorama, whose init()/deinit() replace and
# then restore sys.stdout and sys.stderr, even for messages built and caught inside type
# inference. The core compiles on a background thread (correlate.warm_up) while the main
# thread prints, so the streams must stay put: no highlighting (cnncli shows its own one-line
# errors, never Numba's). Read once, when numba.core.errors is first imported.
os.environ.setdefault("NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING", "1")

import numpy as np  # noqa: E402 (after the environment above)
from numba import njit  # noqa: E402
from numba.core.event import Listener  # noqa: E402
from numba.core.event import register as register_event  # noqa: E402

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


#: Whether compiled code is cached (False: every run compiles, and :data:`cache_note` says so).
cached = _cache_fallback()

#: The one set of JIT options. Of fastmath only "contract" (fused multiply-add: one rounding
#: instead of two, ~10% faster): no reassociation, and NaN/inf propagate as IEEE says.
jit = njit(cache=cached, nogil=True, fastmath={"contract"}, error_model="numpy")

#: Set (for good) once Numba starts compiling a function of this module, as opposed to loading it
#: from the cache: the caller waiting for the core then says why it waits.
compiling = threading.Event()

#: Called in the compiling thread when a compile of this module's code starts (the core's
#: wrapper sets it to say so when that thread is the one a command waits in).
on_compile: Callable[[], None] | None = None


@jit
def direct_rows(src, n, offs, wts, counts, consts, out, c0, init, r0, r1, zero):  # type: ignore[no-untyped-def]
    """Rows ``r0..r1-1`` of a correlation: ``out[oy, c0 + x] (+)= consts[oy] + Σ_q wts[oy, q] ·
    src[offs[oy, q] + x]`` for ``x < n`` and ``q < counts[oy]`` (``init``: overwrite, else add).

    ``src`` is a plane raveled, and each output row's taps are offsets into it, built by the
    caller with NumPy (:func:`cnncli.filtering.correlate._taps`): the kernel's nonzero weights
    that read plane rows (the border map already applied), the ones over rows of a constant
    border summed into ``consts``. Every tap reads a contiguous run, so the inner loop has no
    branch. Every path runs on this one function: the caller passes the image for the interior
    columns and small column-padded strips for the edges and takes every s-th column for a
    column stride; a separable kernel is a column pass (kh×1) into a padded row buffer and a row
    pass (1×kw) out of it. The tap tables have 8 spare columns and ``zero`` holds at least ``n``
    zeros; nothing is allocated here (each ``np.empty`` or ``ravel`` compiled into a function
    added ~0.3 s to the first run, and collecting the taps here ~0.3 s more).

    Nine taps are summed per pass over the output row (a 3×3 kernel is one pass, and so is
    Sobel's six); the first pass of ``init`` stores (no zeroing pass over a fresh output, one
    load less). A last group of fewer taps reads ``zero`` with weight 0 for its missing ones:
    one loop to compile, and no ``0·inf`` from a real pixel. Offsets are unsigned, so the loads
    carry no wraparound check and LLVM vectorises the loop.
    """
    nu = np.uint64(n)
    for oy in range(r0, r1):
        o = out[oy, c0 : c0 + n]
        count = counts[oy]
        const = consts[oy]
        if init and count == 0:
            o[:] = const
        elif const != 0.0 and not init:
            for t in range(nu):
                o[t] += const
        so = offs[oy]
        sw = wts[oy]
        for q in range(0, count, 9):
            m = count - q
            s1 = src if m > 1 else zero
            s2 = src if m > 2 else zero
            s3 = src if m > 3 else zero
            s4 = src if m > 4 else zero
            s5 = src if m > 5 else zero
            s6 = src if m > 6 else zero
            s7 = src if m > 7 else zero
            s8 = src if m > 8 else zero
            a0, a1, a2 = so[q], so[q + 1], so[q + 2]
            a3, a4, a5 = so[q + 3], so[q + 4], so[q + 5]
            a6, a7, a8 = so[q + 6], so[q + 7], so[q + 8]
            w0, w1, w2 = sw[q], sw[q + 1], sw[q + 2]
            w3, w4, w5 = sw[q + 3], sw[q + 4], sw[q + 5]
            w6, w7, w8 = sw[q + 6], sw[q + 7], sw[q + 8]
            if init and q == 0:
                # The row is the caller's numpy.empty: its page faults happen here, on every
                # thread.
                for t in range(nu):
                    o[t] = const + (
                        w0 * src[a0 + t]
                        + w1 * s1[a1 + t]
                        + w2 * s2[a2 + t]
                        + w3 * s3[a3 + t]
                        + w4 * s4[a4 + t]
                        + w5 * s5[a5 + t]
                        + w6 * s6[a6 + t]
                        + w7 * s7[a7 + t]
                        + w8 * s8[a8 + t]
                    )
                continue
            for t in range(nu):
                o[t] += (
                    w0 * src[a0 + t]
                    + w1 * s1[a1 + t]
                    + w2 * s2[a2 + t]
                    + w3 * s3[a3 + t]
                    + w4 * s4[a4 + t]
                    + w5 * s5[a5 + t]
                    + w6 * s6[a6 + t]
                    + w7 * s7[a7 + t]
                    + w8 * s8[a8 + t]
                )


def _signature() -> Any:
    """The one signature :func:`direct_rows` is compiled for: a float32 plane and C-contiguous
    tap tables, all read-only (the caller passes read-only views, so an input array that cannot
    be written is the same type), a float32 output, Python ints and a bool."""
    from numba import types

    plane = types.Array(types.float32, 1, "C", readonly=True)
    offsets = types.Array(types.uint64, 2, "C", readonly=True)
    weights = types.Array(types.float32, 2, "C", readonly=True)
    counts = types.Array(types.int64, 1, "C", readonly=True)
    consts = types.Array(types.float32, 1, "C", readonly=True)
    out = types.Array(types.float32, 2, "C")
    i64 = types.int64
    return types.void(
        plane, i64, offsets, weights, counts, consts, out, i64, types.boolean, i64, i64, plane
    )


#: Every compiled function and the signatures it is compiled for: all of the core.
SIGNATURES: dict[str, tuple[Any, ...]] = {"direct_rows": (_signature(),)}


def compile_core() -> None:
    """Load every function of :data:`SIGNATURES` from Numba's cache, or compile it (the first
    run), together. Numba's compiler lock makes a second caller wait for the first. With
    ``NUMBA_DISABLE_JIT=1`` (the CI's second pass) the functions are plain Python: nothing to
    compile."""
    from numba import config

    if getattr(config, "DISABLE_JIT", False):  # set from the environment; Numba's stubs lack it
        return
    for name, sigs in SIGNATURES.items():
        dispatcher = globals()[name]
        for sig in sigs:
            dispatcher.compile(sig)


class _CompileStarts(Listener):
    """Numba's ``numba:compile`` event (a real compile, never a cache load) for this module's
    functions: sets :data:`compiling` and calls :data:`on_compile` in the compiling thread."""

    def on_start(self, event: Any) -> None:
        dispatcher = event.data.get("dispatcher") if isinstance(event.data, dict) else None
        if getattr(getattr(dispatcher, "py_func", None), "__module__", None) != __name__:
            return
        compiling.set()
        if on_compile is not None:
            on_compile()

    def on_end(self, event: Any) -> None:
        pass


register_event("numba:compile", _CompileStarts())  # type: ignore[no-untyped-call]


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

    dispatchers: tuple[Any, ...] = tuple(globals()[name] for name in SIGNATURES)
    for f in dispatchers:
        if isinstance(getattr(f, "_cache", None), FunctionCache):
            f._cache = QuickLoadCache(f.py_func)  # type: ignore[no-untyped-call]


_load_cached_code_without_refresh()
