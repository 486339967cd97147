"""What bench_png.py and bench_tiff.py share: the picture, the command line, interleaved timing and
the Markdown table.

Every case of a picture runs once to warm up, then all of them in turn for each round, so that
load from other processes hits every case alike; a case's time is the median of its rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

cv2: Any
try:
    import cv2
except ImportError:  # the benchmarks still compare against Pillow
    cv2 = None

DEFAULT_IMAGE = Path(__file__).resolve().parents[2] / "shared/images/coffee-12mp.jpg"

Cases = dict[str, Callable[[], int]]  # name → a run, which returns the size it wrote


def arguments(doc: str) -> argparse.ArgumentParser:
    """A parser with ``--repeat`` and ``--image``, described by the first line of ``doc``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    return ap


def measure(runs: Cases, repeat: int) -> tuple[dict[str, float], dict[str, int]]:
    """Median milliseconds of ``repeat`` interleaved rounds, and the size each case wrote."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    sizes: dict[str, int] = {}
    for k, f in runs.items():  # warm-up (the worker pool, page faults, page cache)
        sizes[k] = f()
    for _ in range(repeat):  # interleaved so that load from other processes hits every case
        for k, f in runs.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}, sizes


def report(
    name: str,
    img: np.ndarray[Any, Any],
    med: dict[str, float],
    sizes: dict[str, int],
    ref: str | None,
    ref_label: str,
) -> None:
    """Print the table of a picture: ms, the ratio to case ``ref`` (headed ``÷ ref_label``)
    and the file size of every case."""
    ref_ms = med[ref] if ref else None
    print(f"\n### {name}: {img.shape[1]}×{img.shape[0]}, {img.dtype}, {img.nbytes / 1e6:.1f} MB\n")
    print(f"| case | ms | ÷ {ref_label} | file MB |")
    print("|---|---:|---:|---:|")
    for k in med:
        ratio = f"{med[k] / ref_ms:.2f}" if ref_ms else "-"
        print(f"| {k} | {med[k]:.0f} | {ratio} | {sizes[k] / 1e6:.2f} |")
