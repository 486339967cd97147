"""How many threads cnncli's parallel work uses (the Numba core's row bands, the PNG encoder)."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process may run on, or ``CNNCLI_THREADS`` when set to a positive integer."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    env = os.environ.get("CNNCLI_THREADS", "")
    if env.isdigit() and int(env) > 0:
        n = int(env)
    return max(1, n)
