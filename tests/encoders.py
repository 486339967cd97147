"""What the PNG and TIFF writer tests share: test pictures, feeding a writer in bands, and
:class:`BandEncoderTests`, the tests of what the PNG writer gets from its band loop (the
band pipeline and the worker pool every writer shares).

Each test module runs them for its own writer with a subclass named ``Test…`` that sets
:attr:`BandEncoderTests.fmt` (and :attr:`BandEncoderTests.other`, the writer to run beside it);
this module is not collected itself (pytest collects only test_*.py).
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

import cnncli.images._png
import cnncli.images._pool

WAIT = 30.0  # seconds before a check gives up on something that should take milliseconds


def make(kind: str, h: int, w: int, c: int, bits: int, seed: int = 0) -> npt.NDArray[Any]:
    """A test picture: random samples, a smooth gradient, one constant colour, or "mixed"
    (gradient on top, noise below)."""
    dtype = np.uint8 if bits == 8 else np.uint16
    top = int(np.iinfo(dtype).max)
    shape = (h, w) if c == 1 else (h, w, c)
    rng = np.random.default_rng(seed)
    if kind == "random":
        noise: npt.NDArray[Any] = rng.integers(0, top + 1, shape, dtype=dtype)
        return noise
    if kind == "constant":
        return np.full(shape, top * 2 // 3, dtype)
    y, x = np.mgrid[0:h, 0:w]
    g = (x * 7 + y * 3) * top // max(1, 7 * (w - 1) + 3 * (h - 1))
    grad: npt.NDArray[Any]
    if c == 1:
        grad = g.astype(dtype)
    else:
        grad = np.stack([(g + k * top // 5) % (top + 1) for k in range(c)], axis=-1).astype(dtype)
    if kind == "gradient":
        return grad
    assert kind == "mixed"
    grad[h // 2 :] = rng.integers(0, top + 1, grad[h // 2 :].shape, dtype=dtype)
    return grad


def pillow_pixels(data: bytes) -> npt.NDArray[Any]:
    """The pixels Pillow decodes from an encoded file."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im)


@dataclass(frozen=True)
class Format:
    """One of cnncli's streaming encoders, as the shared checks drive it."""

    name: str  # as the writer's messages spell it
    writer: type[cnncli.images._png.PngWriter]
    write_whole: Callable[..., None]  # write_png
    module: ModuleType
    unit_bytes: str  # the module constant that sizes a work unit
    finished: Callable[[bytes], bool]  # whether the file got its trailer

    def encode(
        self,
        img: npt.NDArray[Any],
        bands: list[int] | None = None,
        threads: int | None = 2,
        **opts: Any,
    ) -> bytes:
        """The file of ``img``, fed to the writer in bands of the given row counts (or whole)."""
        bio = io.BytesIO()
        if bands is None:
            self.write_whole(bio, img, threads=threads, **opts)
            return bio.getvalue()
        assert sum(bands) == img.shape[0]
        with self.open(bio, img, threads=threads, **opts) as wr:
            r = 0
            for n in bands:
                wr.write(img[r : r + n])
                r += n
        return bio.getvalue()

    def open(
        self, fh: io.BytesIO, img: npt.NDArray[Any], **opts: Any
    ) -> cnncli.images._png.PngWriter:
        """A writer for a picture of ``img``'s size, channels and bits."""
        c = 1 if img.ndim == 2 else img.shape[2]
        bits = 8 if img.dtype == np.uint8 else 16
        return self.writer(fh, img.shape[1], img.shape[0], c, bits, **opts)

    def unit_rows(self, monkeypatch: pytest.MonkeyPatch, nbytes: int) -> None:
        """Make the writers cut work units of about ``nbytes`` (at least a row) from now on."""
        monkeypatch.setattr(self.module, self.unit_bytes, nbytes)


def _png_finished(data: bytes) -> bool:
    return b"IEND" in data


PNG = Format(
    "PNG",
    cnncli.images._png.PngWriter,
    cnncli.images._png.write_png,
    cnncli.images._png,
    "_BAND_BYTES",
    _png_finished,
)


# --- helpers of the pool tests ------------------------------------------------------------------


class Spy:
    """Stands in for a format module's ``_encode``: counts the units, notes on which threads
    they ran and how many ran at once, and holds each at :attr:`gate` until it is open."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()
        self.started = 0
        self.running = 0
        self.most = 0  # the most units running at once
        self.threads: set[str] = set()

    def __call__(self, *args: Any) -> Any:
        with self.lock:
            self.started += 1
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            if not self.gate.wait(WAIT):
                raise TimeoutError("the test never opened the gate")
            return self.real(*args)
        finally:
            with self.lock:
                self.running -= 1

    def wait_running(self, n: int) -> None:
        """Until ``n`` units are running (held at the gate)."""
        deadline = time.monotonic() + WAIT
        while self.running < n:
            assert time.monotonic() < deadline, f"{self.running} units running, not {n}"
            time.sleep(0.002)


def spy(fmt: Format, monkeypatch: pytest.MonkeyPatch) -> Spy:
    """Put a :class:`Spy` in place of ``fmt``'s unit encoder for this test."""
    s = Spy(fmt.module._encode)
    monkeypatch.setattr(fmt.module, "_encode", s)
    return s


@contextlib.contextmanager
def pool_of(n: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadPoolExecutor]:
    """The writers' shared pool is one of ``n`` workers for the block (else the machine's core
    count would decide what a test can see)."""
    pool = ThreadPoolExecutor(n, thread_name_prefix="test-pool")
    monkeypatch.setattr(cnncli.images._pool, "_pool", pool)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def drain(pool: ThreadPoolExecutor, workers: int) -> None:
    """Return once every task queued on ``pool`` before the call has finished: ``workers``
    tasks that wait for each other can only all run when nothing else holds a worker."""
    barrier = threading.Barrier(workers, timeout=WAIT)
    for f in [pool.submit(barrier.wait) for _ in range(workers)]:
        f.result()


def bands_of(img: npt.NDArray[Any], n: int) -> list[npt.NDArray[Any]]:
    """``img`` cut into bands of ``n`` rows (the last maybe shorter)."""
    return [img[r : r + n] for r in range(0, img.shape[0], n)]


# --- the tests both writers run ------------------------------------------------------------------


class BandEncoderTests:
    """What every writer gets from cnncli.images._png.PngWriter: the checks of its rows, close and
    abort, and its life on the shared worker pool beside another writer."""

    fmt: ClassVar[Format]  # the writer under test
    other: ClassVar[Format]  # another one, sharing the pool with it

    # --- the band pipeline

    def test_too_few_rows(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # A unit a row: 2 units go to the pool, and close() aborts them (cancelled if queued,
        # waited for if running: none is left running; in isolation in the pool tests below).
        self.fmt.unit_rows(monkeypatch, 4)
        units = spy(self.fmt, monkeypatch)
        wr = self.fmt.writer(io.BytesIO(), 4, 3, 1, threads=2)
        wr.write(np.zeros((2, 4), np.uint8))
        with pytest.raises(
            ValueError,
            match=rf"too few rows: the {self.fmt.name} is 3 rows high but 2 were written",
        ):
            wr.close()
        assert units.running == 0
        with pytest.raises(ValueError, match="closed"):
            wr.write(np.zeros((1, 4), np.uint8))

    def test_too_many_rows(self) -> None:
        wr = self.fmt.writer(io.BytesIO(), 4, 3, 1)
        wr.write(np.zeros((2, 4), np.uint8))
        with pytest.raises(
            ValueError, match=rf"too many rows: the {self.fmt.name} is 3 rows high .* row 4"
        ):
            wr.write(np.zeros((2, 4), np.uint8))
        wr.abort()

    def test_wrong_shape_of_rows(self) -> None:
        wr = self.fmt.writer(io.BytesIO(), 4, 3, 3)
        with pytest.raises(ValueError, match=r"shape \(n, 4, 3\) with n ≥ 1, not \(1, 5, 3\)"):
            wr.write(np.zeros((1, 5, 3), np.uint8))
        with pytest.raises(ValueError, match=r"not \(1, 4\)"):
            wr.write(np.zeros((1, 4), np.uint8))
        with pytest.raises(ValueError, match=r"not \(0, 4, 3\)"):
            wr.write(np.zeros((0, 4, 3), np.uint8))
        with pytest.raises(ValueError, match=r"not \(4,\)"):
            wr.write(np.zeros(4, np.uint8))
        wr.abort()

    def test_wrong_dtype(self) -> None:
        wr = self.fmt.writer(io.BytesIO(), 4, 3, 1, bits=8)
        with pytest.raises(ValueError, match=r"8-bit samples must be uint8, not float32"):
            wr.write(np.zeros((3, 4), np.float32))
        with pytest.raises(ValueError, match=r"8-bit samples must be uint8, not int8"):
            wr.write(np.zeros((3, 4), np.int8))
        wr.abort()
        wr = self.fmt.writer(io.BytesIO(), 4, 3, 1, bits=16)
        with pytest.raises(ValueError, match=r"16-bit samples must be uint16, not uint8"):
            wr.write(np.zeros((3, 4), np.uint8))
        wr.abort()
        with pytest.raises(ValueError, match=r"uint8 or uint16 pixels, not int32"):
            self.fmt.write_whole(io.BytesIO(), np.zeros((3, 4), np.int32))

    @pytest.mark.parametrize("kind,bits", [("gradient", 8), ("mixed", 16)])
    def test_write_copies_rows_by_default(self, kind: str, bits: int) -> None:
        img = make(kind, 64, 50, 1, bits)
        buf = np.empty((8, 50), img.dtype)
        bio = io.BytesIO()
        with self.fmt.open(bio, img, threads=2) as wr:
            for r in range(0, 64, 8):
                buf[:] = img[r : r + 8]  # the caller reuses its buffer, as a streaming filter would
                wr.write(buf)
        np.testing.assert_array_equal(pillow_pixels(bio.getvalue()), img)

    def test_fortran_ordered_16bit_rows(self) -> None:
        # Laid out in C order for the workers, as 8-bit rows always were (they used to fail in
        # the byte view of 16-bit samples or in zlib).
        img = make("mixed", 40, 30, 1, 16)
        assert self.fmt.encode(np.asfortranarray(img), bands=[17, 23]) == self.fmt.encode(img)

    def test_abort_leaves_the_file_unfinished(self) -> None:
        bio = io.BytesIO()
        wr = self.fmt.writer(bio, 64, 100, 3, threads=2)
        wr.write(make("random", 60, 64, 3, 8))
        wr.abort()
        wr.abort()  # twice is harmless
        assert not self.fmt.finished(bio.getvalue())
        with pytest.raises(ValueError, match="closed"):
            wr.write(make("random", 40, 64, 3, 8))
        wr.close()  # closing an aborted writer does nothing
        assert not self.fmt.finished(bio.getvalue())

    def test_exception_in_block_leaves_the_file_unfinished(self) -> None:
        bio = io.BytesIO()
        with (
            pytest.raises(RuntimeError, match="boom"),
            self.fmt.writer(bio, 8, 4, 1, threads=2) as wr,
        ):
            wr.write(np.zeros((2, 8), np.uint8))
            raise RuntimeError("boom")
        assert not self.fmt.finished(bio.getvalue())
        with pytest.raises(ValueError, match="closed"):
            wr.write(np.zeros((2, 8), np.uint8))

    # --- the shared worker pool

    def test_interleaved_with_other_writers_on_one_pool(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Three writers open at once (two of this format, one of the other), fed band by band
        # in turn, make the very bytes they make one after the other on one thread.
        fmts = [self.fmt, self.fmt, self.other]
        for f in fmts:
            f.unit_rows(monkeypatch, 3000)  # a dozen or more units each, many in flight at once
        imgs = [make("mixed", 150, 61, 3, 8, seed=1), make("mixed", 90, 77, 1, 16, seed=2)]
        imgs.append(make("mixed", 120, 50, 4, 8, seed=3))
        alone = [f.encode(img, threads=1) for f, img in zip(fmts, imgs, strict=True)]
        for threads in (2, 3, None):
            files = [io.BytesIO() for _ in imgs]
            writers = [
                f.open(fh, img, threads=threads)
                for f, fh, img in zip(fmts, files, imgs, strict=True)
            ]
            feeds = [bands_of(img, n) for img, n in zip(imgs, (7, 11, 5), strict=True)]
            for step in range(max(map(len, feeds))):
                for wr, feed in zip(writers, feeds, strict=True):
                    if step < len(feed):
                        wr.write(feed[step])
            for wr in writers:
                wr.close()
            assert [fh.getvalue() for fh in files] == alone, f"threads={threads}"

    def test_abort_leaves_other_writers_alone(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Aborting a writer neither waits for nor cancels another writer's units, even while
        # those hold every worker: the other file comes out whole and the same.
        self.fmt.unit_rows(monkeypatch, 2000)
        self.other.unit_rows(monkeypatch, 2000)
        held = spy(self.other, monkeypatch)
        mine, theirs = make("mixed", 80, 64, 3, 8, seed=4), make("mixed", 80, 64, 3, 8, seed=5)
        expect = self.other.encode(theirs, threads=1)
        with pool_of(2, monkeypatch):
            held.gate.clear()
            bio = io.BytesIO()
            neighbour = self.other.open(bio, theirs, threads=2)
            neighbour.write(theirs[:40])  # 4 units in flight: 2 running, held, on both workers
            held.wait_running(2)
            wr = self.fmt.open(io.BytesIO(), mine, threads=2)
            wr.write(mine[:40])  # queued behind them
            aborting = threading.Thread(target=wr.abort, daemon=True)
            aborting.start()
            aborting.join(WAIT / 3)
            try:
                assert not aborting.is_alive(), "abort() waited for another writer's units"
            finally:
                held.gate.set()
            neighbour.write(theirs[40:])
            neighbour.close()
            assert bio.getvalue() == expect
        with pytest.raises(ValueError, match="closed"):
            wr.write(mine[40:])

    def test_abort_cancels_queued_units_and_waits_for_running_ones(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # So no worker reads the caller's rows once abort() has returned.
        self.fmt.unit_rows(monkeypatch, 2000)
        held = spy(self.fmt, monkeypatch)
        img = make("mixed", 80, 64, 3, 8, seed=6)
        with pool_of(4, monkeypatch) as pool:
            held.gate.clear()
            wr = self.fmt.open(io.BytesIO(), img, threads=2)
            wr.write(img[:40])  # 4 units of 10 rows: 2 × threads, none written yet
            held.wait_running(2)
            aborting = threading.Thread(target=wr.abort, daemon=True)
            aborting.start()
            aborting.join(0.2)
            assert aborting.is_alive(), "abort() returned while its units were still running"
            held.gate.set()
            aborting.join(WAIT)
            assert not aborting.is_alive()
            assert held.running == 0
            drain(pool, 4)
            assert held.started == 2, "abort() let queued units run"

    def test_threads_bound_the_units_at_work(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # threads=n: at most n units of a writer run at once, however many workers the pool
        # has, and write() waits for the oldest unit once 2n are in flight.
        self.fmt.unit_rows(monkeypatch, 1000)
        held = spy(self.fmt, monkeypatch)
        img = make("random", 200, 50, 4, 8, seed=7)  # 200-byte rows: 40 units of 5 rows
        expect = self.fmt.encode(img, threads=1)
        with pool_of(8, monkeypatch):
            for n in (2, 3):
                held.gate.clear()
                held.started = held.most = 0
                bio = io.BytesIO()
                wr = self.fmt.open(bio, img, threads=n)
                feeding = threading.Thread(target=wr.write, args=(img,), daemon=True)
                feeding.start()
                try:
                    held.wait_running(n)
                    deadline = time.monotonic() + WAIT
                    while len(wr._inflight) < 2 * n and time.monotonic() < deadline:
                        time.sleep(0.002)
                    feeding.join(0.1)
                    assert feeding.is_alive(), "write() went on with every unit held"
                    assert held.started == n, f"threads={n}, yet {held.started} units started"
                    assert len(wr._inflight) == 2 * n  # and the oldest one, waited for
                finally:
                    held.gate.set()
                    feeding.join(WAIT)
                wr.close()
                assert bio.getvalue() == expect
                assert held.most == n

    def test_threads_1_encodes_on_the_calling_thread(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fmt.unit_rows(monkeypatch, 1000)
        units = spy(self.fmt, monkeypatch)
        img = make("mixed", 60, 50, 2, 16, seed=8)
        data = self.fmt.encode(img, bands=[13, 40, 7], threads=1)
        assert units.started >= 10
        assert units.threads == {threading.current_thread().name}
        assert data == self.fmt.encode(img, bands=[60], threads=2)

    def test_process_exits_and_forks_with_the_pool(self) -> None:
        # A process whose writers used the pool exits normally, even with a writer left open
        # with units in flight; a forked child makes a pool of its own and encodes alike; and a
        # thread still encoding once the interpreter exits (the pool takes no new work then)
        # finishes its image on its own thread.
        fmt = self.fmt
        script = textwrap.dedent(
            f"""
            import io, os, threading, time
            import numpy as np
            import {fmt.module.__name__} as m

            m.{fmt.unit_bytes} = 1000
            img = np.arange(120 * 50, dtype=np.uint8).reshape(120, 50) * 7

            def encode(threads):
                bio = io.BytesIO()
                with m.{fmt.writer.__name__}(bio, 50, 120, 1, threads=threads) as w:
                    w.write(img)
                return bio.getvalue()

            first = encode(2)
            pid = os.fork()
            if pid == 0:
                os._exit(0 if encode(2) == first == encode(1) else 3)
            _, status = os.waitpid(pid, 0)
            print("child", os.waitstatus_to_exitcode(status), flush=True)

            def late():
                time.sleep(0.3)  # the main thread has ended by now
                print("late", encode(2) == first, flush=True)

            threading.Thread(target=late).start()
            left = m.{fmt.writer.__name__}(io.BytesIO(), 50, 240, 1, threads=2)  # never closed
            left.write(np.concatenate([img, img]))
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        assert (done.returncode, done.stdout) == (0, "child 0\nlate True\n"), done.stderr
