"""The band pipeline shared by cnncli's streaming image encoders (cnncli.png, cnncli.tiff).

A writer takes rows in bands of any height, cuts them into work units of a fixed number of rows,
has each unit encoded on a worker thread and writes the finished units to the file in order.
:class:`BandEncoder` is that pipeline: the checks of the image's size and of every band, the
cutting, the bound on work in flight, ``close`` and ``abort``. A format module adds only its
header, how a unit is prepared and encoded (:meth:`BandEncoder._job`), how a finished unit is
written (:meth:`BandEncoder._emit`) and its trailer (:meth:`BandEncoder._finish`).

Every writer in the process runs its units on one pool (:func:`shared_pool`), made on first use:
a batch of a thousand images reuses the same few threads instead of starting a pool per image.
A writer still keeps to its own ``threads``: at most that many of its units run at once, twice
that many are in flight (running, queued, or done but not yet written), and ``threads=1``
encodes on the calling thread without the pool.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import IO, Any, ClassVar, Generic, Self, TypeVar

import numpy as np
import numpy.typing as npt

from cnncli.config import usable_cores

__all__ = ["BandEncoder", "shared_pool"]

R = TypeVar("R")  # what encoding one unit gives, handed to _emit

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def shared_pool() -> ThreadPoolExecutor:
    """The worker pool of every encoder in this process, made on first use.

    It has :func:`~cnncli.config.usable_cores` threads as counted then (``CNNCLI_THREADS``
    included). They stay for the life of the process; at a normal exit the interpreter waits
    for the units already queued and then joins them, as for any ``ThreadPoolExecutor``.
    """
    global _pool
    pool = _pool
    if pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(usable_cores(), thread_name_prefix="cnncli-encode")
            pool = _pool
    return pool


def _forget_pool() -> None:
    # A forked child has none of its parent's threads (and maybe a lock held by one of them):
    # it starts a pool of its own if it encodes.
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


class _Lane(Generic[R]):
    """One writer's share of the shared pool: at most ``width`` of its units run at once.

    Units beyond that wait here rather than in the pool's queue, so a writer asked for fewer
    threads than the pool has cannot take more workers. The worker that finishes one of its
    units puts the next one at the back of the pool's queue, behind other writers' units.
    """

    def __init__(self, width: int) -> None:
        self._width = width
        self._lock = threading.Lock()
        self._running = 0  # units handed to the pool and not finished yet
        self._waiting: deque[tuple[Future[R], Callable[[], R]]] = deque()

    def submit(self, job: Callable[[], R]) -> Future[R]:
        """Run ``job`` on the pool when a place in this lane is free; its future now."""
        fut: Future[R] = Future()
        with self._lock:
            if self._running >= self._width:
                self._waiting.append((fut, job))
                return fut
            self._running += 1
        self._dispatch(fut, job)
        return fut

    def _dispatch(self, fut: Future[R], job: Callable[[], R]) -> None:
        try:
            shared_pool().submit(self._run, fut, job)
        except RuntimeError:
            # The interpreter is exiting and the pool takes no new work: run it here instead.
            self._run(fut, job)

    def _run(self, fut: Future[R], job: Callable[[], R]) -> None:
        # False when the writer cancelled the unit (abort) before it started: it never runs.
        if fut.set_running_or_notify_cancel():
            try:
                result = job()
            except BaseException as err:  # the writer re-raises it from result()
                fut.set_exception(err)
            else:
                fut.set_result(result)
        with self._lock:
            if not self._waiting:
                self._running -= 1
                return
            fut, job = self._waiting.popleft()
        self._dispatch(fut, job)


class BandEncoder(ABC, Generic[R]):
    """Write an image band by band: rows in, units encoded on the shared pool, units out in order.

    A subclass sets :attr:`FORMAT`, :attr:`MAX_SIDE` and ``_BYTE_ORDER``, stores its own
    options, calls ``super().__init__`` and then writes its header; it implements :meth:`_job`,
    :meth:`_emit` and :meth:`_finish`, may override :meth:`_check_options` and :meth:`_takes`,
    and its whole-array function calls :meth:`_write_image`.

    Parameters
    ----------
    fh : binary file object
        Receives the image.
    width, height : int
        Image size in pixels, from 1 to :attr:`MAX_SIDE`.
    channels : int
        1 gray, 2 gray + alpha, 3 RGB, 4 RGBA.
    bits : int
        8 (rows are uint8) or 16 (rows are uint16).
    threads : int or None
        At most this many units encode at once and twice as many are in flight; 1 encodes on
        the calling thread; None is every usable core (``CNNCLI_THREADS`` overrides).
    unit_bytes : int
        About how many bytes of rows make one unit (at least one row, at most the image).
    inline : bool
        Every unit is cheap to make (e.g. stored uncompressed): make it on the calling
        thread, whatever ``threads`` says.
    """

    #: The format's name in messages: "PNG", "TIFF".
    FORMAT: ClassVar[str]
    #: The largest width or height the format holds; messages say it as 2**k-1.
    MAX_SIDE: ClassVar[int]
    #: 16-bit samples go into units in this byte order ("<" or ">"), as the format stores them.
    _BYTE_ORDER: ClassVar[str]
    #: Whether True and False are refused as a width or height (PNG has always taken them as
    #: the ints they are, TIFF never has; kept so, as the two writers were).
    _BOOL_SIDES_REFUSED: ClassVar[bool] = True
    #: How the message for a wrong channel count ends, before ", not …" (kept as it was).
    _CHANNELS_NOTE: ClassVar[str] = ""

    def __init__(
        self,
        fh: IO[bytes],
        width: int,
        height: int,
        channels: int,
        bits: int,
        *,
        threads: int | None,
        unit_bytes: int,
        inline: bool = False,
    ) -> None:
        for name, v in (("width", width), ("height", height)):
            refused = isinstance(v, bool) and self._BOOL_SIDES_REFUSED
            if not isinstance(v, int) or refused or not 1 <= v <= self.MAX_SIDE:
                raise ValueError(
                    f"{self.FORMAT} {name} must be an integer from 1 to "
                    f"2**{self.MAX_SIDE.bit_length()}-1, not {v!r}"
                )
        if channels not in (1, 2, 3, 4):
            raise ValueError(
                f"{self.FORMAT} holds 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) channels"
                f"{self._CHANNELS_NOTE}, not {channels!r}"
            )
        if bits not in (8, 16):
            raise ValueError(f"{self.FORMAT} bits per sample must be 8 or 16 here, not {bits!r}")
        self._check_options()
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be ≥ 1, not {threads!r}")
        self._fh = fh
        self.width, self.height, self.channels, self.bits = width, height, channels, bits
        self._dtype = np.dtype(np.uint8 if bits == 8 else np.uint16)  # as messages name it
        self._unit_dtype = np.dtype(np.uint8 if bits == 8 else f"{self._BYTE_ORDER}u2")
        self._rowbytes = width * channels * (bits // 8)
        self._unit_rows = max(1, min(height, unit_bytes // self._rowbytes))
        self._threads = threads if threads is not None else usable_cores()
        self._lane: _Lane[R] | None = None if inline or self._threads == 1 else _Lane(self._threads)
        self._inflight: deque[Future[R]] = deque()  # in file order
        self._pending: list[npt.NDArray[Any]] = []  # rows waiting to make a full unit
        self._pending_rows = 0
        self._rows = 0  # rows handed to units
        self._closed = False

    def _check_options(self) -> None:
        """Refuse the subclass's own options (stored before ``super().__init__``); run after
        the size, channel and bit checks and before the thread count's, as the writers always
        have."""

    @classmethod
    def _takes(cls, dtype: np.dtype[Any], bits: int) -> bool:
        """Whether samples of ``dtype`` are taken as ``bits``-bit ones (by default only the
        native uint8 or uint16)."""
        return dtype == np.dtype(np.uint8 if bits == 8 else np.uint16)

    @classmethod
    def _write_image(
        cls, fh: IO[bytes], pixels: npt.NDArray[np.generic], caller: str, **options: Any
    ) -> None:
        """Write a whole H×W or H×W×C (C = 1..4) array: what ``write_png`` and ``write_tiff``
        do, named by ``caller`` in the messages; ``options`` go to the writer."""
        a = np.asarray(pixels)
        if a.ndim == 2:
            channels = 1
        elif a.ndim == 3 and 1 <= a.shape[2] <= 4:
            channels = a.shape[2]
        else:
            raise ValueError(
                f"{caller} takes an H×W or H×W×C array with C from 1 to 4, not shape {a.shape}"
            )
        bits = 8 * a.dtype.itemsize
        if bits not in (8, 16) or not cls._takes(a.dtype, bits):
            raise ValueError(
                f"{caller} takes uint8 or uint16 pixels, not {a.dtype}; "
                "convert with .astype(np.uint8)"
            )
        if a.shape[0] < 1 or a.shape[1] < 1:
            raise ValueError(f"{caller} needs at least one pixel, not shape {a.shape}")
        with cls(fh, a.shape[1], a.shape[0], channels, bits, **options) as w:
            # The array is ours until the caller returns, and close() waits for every unit.
            w.write(a, copy=False)

    @abstractmethod
    def _job(self, unit: npt.NDArray[Any]) -> Callable[[], R]:
        """Prepare ``unit`` (rows × samples in :attr:`_unit_dtype`, C-contiguous) for encoding.

        Called on the writer's thread, in file order, so it may keep state from one unit to the
        next; the callable it returns runs on a worker (or here, inline) and must not touch
        the writer.
        """

    @abstractmethod
    def _emit(self, result: R) -> None:
        """Write one encoded unit; called on the writer's thread, in file order."""

    @abstractmethod
    def _finish(self) -> None:
        """Write what follows the last unit; called once every unit is written."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, rows: npt.NDArray[np.generic], *, copy: bool = True) -> None:
        """Append the next ``n`` rows: (n, width) or (n, width, channels), uint8 or uint16.

        With ``copy=False`` the caller promises not to change ``rows`` before :meth:`close`
        returns (the workers read it later); the default takes a private copy.
        """
        if self._closed:
            raise ValueError(f"{type(self).__name__} is closed; make a new one for another image")
        a = np.asarray(rows)
        if not self._takes(a.dtype, self.bits):
            raise ValueError(
                f"{self.FORMAT} rows for {self.bits}-bit samples must be {self._dtype.name}, "
                f"not {a.dtype}; convert with .astype(np.{self._dtype.name})"
            )
        want = (self.width,) if self.channels == 1 else (self.width, self.channels)
        shape_ok = a.ndim >= 2 and a.shape[0] >= 1 and a.shape[1:] == want
        if self.channels == 1 and a.ndim == 3 and a.shape[1:] == (self.width, 1):
            shape_ok = a.shape[0] >= 1
        if not shape_ok:
            raise ValueError(
                f"{self.FORMAT} rows must have shape (n, {', '.join(map(str, want))}) with n ≥ 1, "
                f"not {a.shape}"
            )
        n = a.shape[0]
        end = self._rows + self._pending_rows + n
        if end > self.height:
            raise ValueError(
                f"too many rows: the {self.FORMAT} is {self.height} rows high and this band would "
                f"end at row {end}"
            )
        flat = a.reshape(n, -1)
        if flat.dtype != self._unit_dtype:
            # A byte swap is a copy anyway, so it is the private one; in C order, as the
            # workers' byte views and zlib need.
            flat = flat.astype(self._unit_dtype, order="C")
        elif copy or not flat.flags.c_contiguous:
            flat = np.array(flat, order="C")
        start = 0
        if self._pending:
            take = min(n, self._unit_rows - self._pending_rows)
            self._pending.append(flat[:take])
            self._pending_rows += take
            start = take
            if self._pending_rows < self._unit_rows:
                return
            self._submit_pending()
        while n - start >= self._unit_rows:
            self._submit(flat[start : start + self._unit_rows])
            start += self._unit_rows
        if start < n:
            self._pending.append(flat[start:])
            self._pending_rows = n - start

    def _submit_pending(self) -> None:
        # NumPy would join big-endian pieces into native ones: keep the units' byte order.
        self._submit(np.concatenate(self._pending, dtype=self._unit_dtype))
        self._pending, self._pending_rows = [], 0

    def _submit(self, unit: npt.NDArray[Any]) -> None:
        self._rows += unit.shape[0]
        job = self._job(unit)
        if self._lane is None:
            self._emit(job())  # on this thread, so nothing is in flight to wait for
            return
        self._inflight.append(self._lane.submit(job))
        # Bound the memory held by queued units and by finished ones not yet written.
        while len(self._inflight) > 2 * self._threads:
            self._emit(self._inflight.popleft().result())

    def close(self) -> None:
        """Finish the image: encode what is pending, write every unit in order, then the trailer.

        Raises ValueError, and leaves the file unfinished, if fewer rows than ``height`` were
        written. Closing a closed or aborted writer does nothing.
        """
        if self._closed:
            return
        if self._rows + self._pending_rows != self.height:
            self.abort()
            raise ValueError(
                f"too few rows: the {self.FORMAT} is {self.height} rows high but "
                f"{self._rows + self._pending_rows} were written"
            )
        try:
            if self._pending:
                self._submit_pending()
            while self._inflight:
                self._emit(self._inflight.popleft().result())
            self._finish()
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def abort(self) -> None:
        """Stop without finishing the file (the caller removes it).

        This writer's units that have not started are cancelled and those running (at most
        ``threads``) are waited for, so no worker reads the caller's rows after it returns;
        other writers' units on the shared pool are neither cancelled nor waited for.
        """
        # Wait only for the units cancel() could not stop: wait() would count a cancelled unit
        # as done only once a worker reached it in the pool's queue, behind other writers' work.
        wait([f for f in self._inflight if not f.cancel()])
        self._inflight.clear()
        self._pending = []
        self._closed = True
