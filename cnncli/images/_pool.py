"""The worker pool every image encoder of the process shares: the PNG writer's pieces and the
TIFF writer's strips are deflated on it (NumPy and zlib release the GIL).

The pool (:func:`shared_pool`) is made on first use: a batch of a thousand images reuses the same
few threads instead of starting a pool per image. A writer still keeps to its own ``threads``
through a :class:`_Lane`: at most that many of its units run at once.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from cnncli.config import usable_cores

__all__ = ["Lane", "shared_pool"]

R = TypeVar("R")  # what encoding one unit gives

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


class Lane(Generic[R]):
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
