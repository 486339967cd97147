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


# --------------------------------------------------------------------------------------------
# Filtering (cnncli.filtering): bands, threads and the strategy cost model
# --------------------------------------------------------------------------------------------

#: Result values per band when a filter output is made band by band: 4 MiB of float32 (262
#: rows of a 12-MP photo) measured fastest; smaller bands pay more Python per row, larger ones
#: hold more memory.
BAND_VALUES = 1 << 20

#: Values of the separable path's padded row buffer per thread: the column pass writes a few
#: rows into it and the row pass reads them back while they are still in cache (1 MiB, the L2
#: cache of one core here), with few enough calls into the core per band.
SEPARABLE_CHUNK_VALUES = 1 << 18

#: Largest conversion to float32 (the rows a band reads, for pixels of another type) whose
#: buffer a thread keeps for the next band: 16 MiB, four times a band.
CONVERT_BUFFER_VALUES = 4 * BAND_VALUES

#: Input values per band when ``--preview`` reduces the input picture (block sums in float32).
PREVIEW_BAND_VALUES = 1 << 20

#: Estimated single-thread nanoseconds of work a correlation needs per extra thread: smaller
#: jobs run on fewer threads (one, for tiny images), where starting threads would cost more.
NS_PER_THREAD = 2e6

# Strategy cost model, in nanoseconds of one thread, calibrated with ``benchmarks/
# bench_filter.py --calibrate`` on the development machine (Xeon, AVX-512). Only the ratios
# matter. Measured on 12 MP, one thread: direct 3×3 12 ms, 7×7 32 ms, 15×15 111 ms; separable
# 7×7 19 ms, 15×15 28 ms, 31×31 47 ms; fft 100-103 ms for any kernel up to 31×31. Every path
# runs on all cores, so single-thread estimates compare fairly; a dense kernel goes to the FFT
# from 15×15.

#: direct: per output pixel per nonzero tap (nine taps per pass)
NS_PER_TAP = 0.036
#: separable: per pixel per vertical or horizontal tap, per rank-1 term
NS_PER_SEP_TAP = 0.05
#: fft: per transformed pixel (float32 rfft2 + product + irfft2, tiles ≤ FFT_MAX_TILE)
NS_PER_FFT_PX = 7.5
#: every path: writing the output once (page faults, stores, row overheads)
NS_PER_PX = 0.8
#: Largest FFT tile side: pocketfft slows ~2× per pixel past this (cache), measured 128..2048.
FFT_MAX_TILE = 1152
