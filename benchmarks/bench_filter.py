"""Speed and memory of ``cnncli filter`` against OpenCV and ImageMagick (issue 3, section 7).

Run from the repository root::

    .venv/bin/python benchmarks/bench_filter.py [IMAGE] [--repeats 7] [--threads N] [--no-process]
        [--no-core] [--compare DIR]

IMAGE defaults to ``../shared/images/coffee-12mp.jpg`` (a 4000×3000 photo); without it the script
says so and exits 0. Prints Markdown tables:

* core rows: ``cnncli.filtering.correlate.correlate`` on the gray float32 image ÷ ``cv2.filter2D`` (float32)
  for dense random kernels, and ÷ ``cv2.sepFilter2D`` for separable Gaussians. Both sides run with
  the same number of threads (OpenCV's default is every core; so is ours). Each pair is warmed up,
  then timed interleaved (core, OpenCV, core, ...) so a busy machine slows both alike; the median
  of the repeats is shown. The max error against OpenCV, relative to ``Σ|k|·max|image|``, shows
  they compute the same thing.
* process rows: the whole ``cnncli filter IMG -k sobel-x --gray -o out.png`` process (warm Numba
  cache) ÷ ImageMagick ``convert IMG -colorspace gray -morphology Convolve Sobel out.png`` and ÷ an
  equivalent OpenCV Python script; peak RSS of each; and the very first run with an empty Numba
  cache (``NUMBA_CACHE_DIR`` pointed at a fresh directory). Every cnncli here is this checkout's
  code (first on ``sys.path``, ``PYTHONPATH`` for the children), whatever the venv installed;
  ``--compare DIR`` also times another checkout's (e.g. the code before a change, from
  ``git archive``) in the same interleaved rounds.

``--calibrate`` also prints the per-tap and per-FFT-element times behind the cost model in
``cnncli/config.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's cnncli, not the one the venv installed
DEFAULT_IMAGE = ROOT.parent / "shared" / "images" / "coffee-12mp.jpg"
PYTHON = sys.executable


def timed_pair(
    ours: Callable[[], object], theirs: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median milliseconds of each, after one warm-up call each, interleaved."""
    ours()
    theirs()
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeats):
        t = time.perf_counter()
        ours()
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        theirs()
        b.append(time.perf_counter() - t)
    return statistics.median(a) * 1e3, statistics.median(b) * 1e3


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def verdict(ratio: float, goal: float) -> str:
    return f"≤ {goal:g} " + ("ok" if ratio <= goal else "MISSED")


def gaussian(sigma: float) -> np.ndarray:
    r = int(4 * sigma + 0.5)  # OpenCV's getGaussianKernel size for float images: 2·⌈4σ⌉+1
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return (g / g.sum()).astype(np.float32)


def core_rows(img: np.ndarray, repeats: int) -> list[str]:
    import cv2

    from cnncli.filtering import correlate as convolve

    rng = np.random.default_rng(0)
    lines = [
        row(["kernel", "cnncli path", "cnncli ms", "OpenCV ms", "ratio", "goal", "max rel. error"]),
        row(["---", "---", "---:", "---:", "---:", "---", "---:"]),
    ]
    scale_img = float(np.abs(img).max())

    def add(
        name: str, k2: np.ndarray, ours: Callable[[], np.ndarray], theirs: Callable[[], np.ndarray]
    ) -> None:
        a, b = ours(), theirs()
        err = float(np.abs(a.astype(np.float64) - b).max()) / (np.abs(k2).sum() * scale_img)
        t_ours, t_cv = timed_pair(ours, theirs, repeats)
        geom = convolve.plan_geometry(img.shape, k2.shape)
        path, _ = convolve.choose_method(k2.astype(np.float64), geom)
        ratio = t_ours / t_cv
        lines.append(
            row(
                [
                    name,
                    path,
                    f"{t_ours:.1f}",
                    f"{t_cv:.1f}",
                    f"{ratio:.2f}",
                    verdict(ratio, 1.0),
                    f"{err:.1e}",
                ]
            )
        )
        print(lines[-1], file=sys.stderr, flush=True)

    for size in (3, 5, 15, 31):
        k = rng.standard_normal((size, size)).astype(np.float32)
        add(
            f"dense {size}×{size} (filter2D)",
            k,
            lambda k=k: convolve.correlate(img, k),
            lambda k=k: cv2.filter2D(img, cv2.CV_32F, k),
        )
    for sigma in (1.0, 3.0, 8.0):
        g = gaussian(sigma)
        k = np.outer(g, g)
        add(
            f"Gaussian σ={sigma:g}, {len(g)}×{len(g)} (sepFilter2D)",
            k,
            lambda k=k: convolve.correlate(img, k),
            lambda g=g: cv2.sepFilter2D(img, cv2.CV_32F, g, g),
        )
    return lines


OPENCV_SCRIPT = """
import sys
import cv2
import numpy as np
src, dst = sys.argv[1], sys.argv[2]
img = cv2.imread(src, cv2.IMREAD_GRAYSCALE)
k = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
out = cv2.filter2D(img.astype(np.float32), cv2.CV_32F, k)
cv2.imwrite(dst, np.clip(np.abs(out), 0, 255).astype(np.uint8))
"""

# Runs a command and prints its peak RSS (KiB): a fresh wrapper per command, so the children's
# maximum is that one command's.
RSS_WRAPPER = """
import resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
dt = time.perf_counter() - t
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(r.ru_maxrss, rc, dt, r.ru_utime + r.ru_stime)
"""


def real_imagemagick() -> str | None:
    # /usr/bin first: a wrapper script earlier on PATH would add its own start-up time.
    for cand in ("/usr/bin/convert", shutil.which("magick"), shutil.which("convert")):
        if not cand or not os.path.exists(cand):
            continue
        try:
            v = subprocess.run([cand, "-version"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if v.stdout.startswith("Version: ImageMagick"):
            return cand
    return None


def run_process(
    cmd: list[str], env: dict[str, str] | None = None, cpu: list[float] | None = None
) -> tuple[float, int]:
    """(seconds, peak RSS in MiB) of one run of ``cmd``, timed around the child alone (the
    wrapper's own start-up is not counted), with .pyc files allowed as users have them; its
    CPU seconds (user + system) are appended to ``cpu``."""
    env = dict(os.environ if env is None else env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    res = subprocess.run(
        [PYTHON, "-c", RSS_WRAPPER, *cmd], capture_output=True, text=True, env=env, check=False
    )
    fields = res.stdout.split()
    if res.returncode != 0 or len(fields) != 4 or fields[1] != "0":
        raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()[-500:]}")
    if cpu is not None:
        cpu.append(float(fields[3]))
    return float(fields[2]), int(fields[0]) // 1024


def checkout_env(root: Path) -> dict[str, str]:
    """The environment that makes the venv's ``cnncli`` script run ``root``'s code."""
    return {**os.environ, "PYTHONPATH": str(root)}


def process_rows(image: Path, repeats: int, compare: Path | None = None) -> list[str]:
    cnncli = str(Path(PYTHON).with_name("cnncli"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-filter-"))
    ours = [
        cnncli,
        "filter",
        str(image),
        "-k",
        "sobel-x",
        "--gray",
        "-o",
        str(tmp / "cnncli.png"),
        "--force",
    ]
    script = tmp / "opencv_sobel.py"
    script.write_text(OPENCV_SCRIPT)
    theirs_cv = [PYTHON, str(script), str(image), str(tmp / "opencv.png")]
    magick = real_imagemagick()
    theirs_im = (
        [
            magick,
            str(image),
            "-colorspace",
            "gray",
            "-morphology",
            "Convolve",
            "Sobel",
            str(tmp / "im.png"),
        ]
        if magick
        else None
    )
    lines = [
        row(
            [
                "whole process: Sobel-x, gray, PNG",
                "cnncli s",
                "other s",
                "ratio",
                "goal",
                "cnncli MiB",
                "other MiB",
            ]
        ),
        row(["---", "---:", "---:", "---:", "---", "---:", "---:"]),
    ]

    # Interleaved: one run of each command per round (after a warm-up round: Numba's cache, the
    # page cache), so a busy neighbour slows every side alike; medians of the rounds.
    cmds = {"ours": ours, "cv": theirs_cv}
    envs = {"ours": checkout_env(ROOT), "cv": None}
    if compare is not None:
        cmds["before"] = [*ours[:-2], str(tmp / "before.png"), "--force"]
        envs["before"] = checkout_env(compare)
    if theirs_im is not None:
        cmds["im"] = theirs_im
        envs["im"] = None
    for key, cmd in cmds.items():
        run_process(cmd, envs[key])
    times: dict[str, list[float]] = {k: [] for k in cmds}
    cpus: dict[str, list[float]] = {k: [] for k in cmds}
    rss: dict[str, int] = dict.fromkeys(cmds, 0)
    load = [os.getloadavg()[0]]
    for _ in range(repeats):
        for key, cmd in cmds.items():
            dt, mem = run_process(cmd, envs[key], cpus[key])
            times[key].append(dt)
            rss[key] = max(rss[key], mem)
        load.append(os.getloadavg()[0])
    print(
        f"{repeats} interleaved rounds, 1-minute load average {min(load):.1f}–{max(load):.1f}; "
        "median CPU s: "
        + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in cpus.items())
        + "\n",
        file=sys.stderr,
    )
    t_ours, m_ours = statistics.median(times["ours"]), rss["ours"]
    t_cv, m_cv = statistics.median(times["cv"]), rss["cv"]
    lines.append(
        row(
            [
                "÷ OpenCV Python script",
                f"{t_ours:.2f}",
                f"{t_cv:.2f}",
                f"{t_ours / t_cv:.2f}",
                verdict(t_ours / t_cv, 1.5),
                str(m_ours),
                str(m_cv),
            ]
        )
    )
    if compare is not None:
        t_before, m_before = statistics.median(times["before"]), rss["before"]
        lines.append(
            row(
                [
                    f"before ({compare.name}) ÷ OpenCV Python script",
                    f"{t_before:.2f}",
                    f"{t_cv:.2f}",
                    f"{t_before / t_cv:.2f}",
                    verdict(t_before / t_cv, 1.5),
                    str(m_before),
                    str(m_cv),
                ]
            )
        )
    lines.append(
        row(
            [
                "peak memory ÷ OpenCV script",
                "",
                "",
                f"{m_ours / m_cv:.2f}",
                verdict(m_ours / m_cv, 1.0),
                str(m_ours),
                str(m_cv),
            ]
        )
    )
    if theirs_im is not None:
        t_im, m_im = statistics.median(times["im"]), rss["im"]
        lines.append(
            row(
                [
                    "÷ ImageMagick convert -morphology Convolve Sobel",
                    f"{t_ours:.2f}",
                    f"{t_im:.2f}",
                    f"{t_ours / t_im:.2f}",
                    verdict(t_ours / t_im, 0.6),
                    str(m_ours),
                    str(m_im),
                ]
            )
        )
    else:
        lines.append(
            row(
                [
                    "÷ ImageMagick",
                    "",
                    "",
                    "",
                    "skipped: no real ImageMagick `convert` found",
                    "",
                    "",
                ]
            )
        )

    def cold(cmd: list[str]) -> float:
        firsts = []
        for _ in range(max(1, min(3, repeats))):
            cache = tempfile.mkdtemp(prefix="numba-cold-")
            env = {**checkout_env(ROOT), "NUMBA_CACHE_DIR": cache}
            firsts.append(run_process(cmd, env)[0])
            shutil.rmtree(cache, ignore_errors=True)
        return statistics.median(firsts)

    t_first = cold(ours)
    ok = "≤ 3 s ok" if t_first <= 3 else "≤ 3 s MISSED"
    lines.append(row(["first run, empty Numba cache (s)", f"{t_first:.2f}", "", "", ok, "", ""]))
    shutil.rmtree(tmp, ignore_errors=True)
    return lines


def calibrate(img: np.ndarray) -> None:
    """Per-unit times of each path, for the cost model constants in cnncli/config.py."""
    from cnncli.filtering import correlate as convolve

    rng = np.random.default_rng(1)
    geom = {}
    for size in (3, 7, 15, 31):
        k = rng.standard_normal((size, size))
        geom[size] = convolve.plan_geometry(img.shape, (size, size))
        for method in ("direct", "fft"):
            if method == "direct" and size > 15:
                continue
            convolve.correlate(img[:64, :64], k, _method=method)
            t = min(
                timeit(lambda k=k, m=method: convolve.correlate(img, k, _method=m))
                for _ in range(3)
            )
            _, est = convolve.choose_method(k, geom[size], only=method)
            print(
                f"{method:9s} {size:2d}×{size:<2d} measured {t * 1e3:7.1f} ms, model {est / 1e6:7.1f} ms"
            )
    for size in (7, 15, 31):
        g = gaussian(size / 8)
        g = np.resize(g, size)
        k = np.outer(g, g)
        convolve.correlate(img[:64, :64], k, _method="separable")
        t = min(
            timeit(lambda k=k: convolve.correlate(img, k, _method="separable")) for _ in range(3)
        )
        _, est = convolve.choose_method(
            k, convolve.plan_geometry(img.shape, k.shape), only="separable"
        )
        print(
            f"separable {size:2d}×{size:<2d} measured {t * 1e3:7.1f} ms, model {est / 1e6:7.1f} ms"
        )


def timeit(f: Callable[[], object]) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", nargs="?", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--threads", type=int, default=0, help="threads for both sides (0: all cores)"
    )
    parser.add_argument("--no-process", action="store_true", help="only the core rows")
    parser.add_argument("--no-core", action="store_true", help="only the process rows")
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument(
        "--compare", type=Path, help="another checkout whose whole process is timed alike"
    )
    args = parser.parse_args()
    if not args.image.exists():
        print(
            f"skipped: benchmark image {args.image} not found; pass its path as the first argument"
        )
        return 0
    try:
        import cv2
    except ImportError:
        print("skipped: OpenCV (opencv-python-headless) is not installed")
        return 0
    from PIL import Image

    if args.threads:
        os.environ["CNNCLI_THREADS"] = str(args.threads)
        cv2.setNumThreads(args.threads)
    with Image.open(args.image) as im:
        img = np.asarray(im.convert("L"), dtype=np.float32)
    import numba

    print(
        f"image {args.image.name} {img.shape[1]}×{img.shape[0]} gray float32; {os.cpu_count()} CPUs; "
        f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), numpy {np.__version__}, "
        f"numba {numba.__version__}; median of {args.repeats}\n"
    )
    if args.calibrate:
        calibrate(img)
        return 0
    if not args.no_core:
        print("\n".join(core_rows(img, args.repeats)))
        print()
    if not args.no_process:
        compare = args.compare.resolve() if args.compare else None
        print("\n".join(process_rows(args.image, max(3, args.repeats // 2), compare)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
