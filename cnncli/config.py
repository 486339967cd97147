"""Every knob in one place: thread count (``CNNCLI_THREADS``), band sizes, cost-model constants.

The work budget (sizes refused before work) lives in :mod:`cnncli.limits`.
"""

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
