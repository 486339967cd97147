"""Peak memory of `cnncli filter` on the largest legal input: an 89-MP RGB photo (Pillow's
decompression-bomb limit, cnncli's default `pixels` limit).

Every path (plain, --then maxpool, --map normalize, --preview) must stay within the same peak as
the plain path: results are made band by band and previews are reduced before conversion. The
OpenCV row is the same Sobel job as a user's OpenCV script (imread, Sobel, convertScaleAbs,
imwrite), for scale.

    python benchmarks/bench_memory.py [--side 9459] [--rounds 1]

Prints a Markdown table: peak RSS (MiB, from wait4's ru_maxrss) and wall time of each child,
medians over interleaved rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OPENCV = """
import sys, cv2
img = cv2.imread(sys.argv[1], cv2.IMREAD_COLOR)
gx = cv2.Sobel(img, cv2.CV_32F, 1, 0)
gy = cv2.Sobel(img, cv2.CV_32F, 0, 1)
cv2.imwrite(sys.argv[2], cv2.convertScaleAbs(cv2.magnitude(gx, gy)))
"""


def child(cmd: list[str]) -> tuple[float, float, int]:
    """Run ``cmd``; (peak RSS MiB, wall s, exit code) of that child alone."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 and proc.stderr is not None:
        sys.stderr.write(proc.stderr.read().decode(errors="replace"))
    return usage.ru_maxrss / 1024, wall, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=9459, help="square side (9459² = 89.47 MP)")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()

    import numpy as np
    from PIL import Image

    work = Path(tempfile.mkdtemp(prefix="cnncli-bench-memory-"))
    src = work / "big.png"
    rng = np.random.default_rng(7)
    # A smooth picture with noise compresses like a photo; random bytes alone would not.
    ramp = np.linspace(0, 200, args.side, dtype=np.float32)
    base = (ramp[:, None] + ramp[None, :]) / 2
    pixels = np.empty((args.side, args.side, 3), np.uint8)
    for c in range(3):
        noise = rng.integers(0, 40, size=(args.side, args.side), dtype=np.uint8)
        pixels[:, :, c] = base.astype(np.uint8) + noise
    Image.fromarray(pixels).save(src, compress_level=1)
    del pixels, base

    cli = [sys.executable, "-m", "cnncli", "filter", str(src), "-k", "sobel"]
    cases = {
        "plain: -k sobel -o out.png": [*cli, "-o", str(work / "a.png"), "--force"],
        "--then maxpool:2": [*cli, "--then", "maxpool:2", "-o", str(work / "b.png"), "--force"],
        "--map normalize": [*cli, "--map", "normalize", "-o", str(work / "c.png"), "--force"],
        "--preview (nothing written)": [*cli, "--preview"],
    }
    try:
        import cv2  # noqa: F401

        cases["OpenCV script (same Sobel job)"] = [
            sys.executable,
            "-c",
            OPENCV,
            str(src),
            str(work / "d.png"),
        ]
    except ImportError:
        pass
    child([*cli, "-o", str(work / "warm.png"), "--force"])  # a warm Numba cache for every row
    seen: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
    for _ in range(args.rounds):
        for name, cmd in cases.items():
            mib, wall, code = child(cmd)
            if code != 0:
                raise SystemExit(f"{name}: exit {code}")
            seen[name].append((mib, wall))
    plain = statistics.median(m for m, _ in seen["plain: -k sobel -o out.png"])
    print(
        f"{args.side}×{args.side} RGB ({args.side * args.side / 1e6:.1f} MP), {args.rounds} round(s)"
    )
    print()
    print("| cnncli filter … | peak MiB | ÷ plain path | wall s |")
    print("| --- | ---: | ---: | ---: |")
    for name, runs in seen.items():
        mib = statistics.median(m for m, _ in runs)
        wall = statistics.median(w for _, w in runs)
        print(f"| {name} | {mib:,.0f} | {mib / plain:.2f} | {wall:.1f} |")
    for p in work.iterdir():
        p.unlink()
    work.rmdir()


if __name__ == "__main__":
    main()
