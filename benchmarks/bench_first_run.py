"""First runs of ``cnncli filter`` with an empty Numba cache, and warm runs (issue 14, item 6).

Run from the repository root::

    .venv/bin/python benchmarks/bench_first_run.py [--rounds 5] [--compare DIR]

The issue's five first runs, each a whole ``cnncli filter`` process: a PNG photo with Sobel, a
``.npy`` array, ``gaussian:sigma=2``, a 16-bit picture and a 4-D kernel. "cold" runs with
``NUMBA_CACHE_DIR`` pointed at a new empty folder (what a first run meets: nothing compiled);
"warm" with a cache filled before the rounds. Python's own ``.pyc`` files are left as they are
(users have them after installing). Every round runs every case once, interleaved with the
baselines ``python -c "import numba"`` and ``python -c "import typer"``, so load from other
processes hits all of them alike; the table shows medians of the rounds, wall-clock and CPU
(user + system of the child), and each cold run as a multiple of ``import numba``, the part of a
first run no code of ours can shorten. ``--compare DIR`` also times another checkout (e.g. the
code before a change, from ``git archive``) on the same inputs, interleaved with this one.

The goal (issue 14): every first run at most 3 s on the development machine, with one line on
stderr saying what it waits for.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
GOAL_S = 3.0


def cases(folder: Path) -> dict[str, list[str]]:
    """The issue's five first runs as ``cnncli`` arguments (outputs in ``folder``)."""
    import numpy as np
    from PIL import Image

    gray = np.asarray(Image.open(SAMPLES / "camera.png").convert("L"), np.uint16)
    Image.fromarray(gray * 257).save(folder / "camera16.png")
    out = str(folder / "out")
    return {
        "PNG photo, sobel": ["filter", str(SAMPLES / "coffee.png"), "-k", "sobel", "-o", out + ".png"],
        ".npy array": ["filter", str(SAMPLES / "seed.npy"), "-k", "vertical-edge", "-p", "valid"]
        + ["-o", out + ".npy"],
        "gaussian:sigma=2": ["filter", str(SAMPLES / "coffee.png"), "-k", "gaussian:sigma=2"]
        + ["-o", out + ".png"],
        "16-bit picture": ["filter", str(folder / "camera16.png"), "-k", "sobel", "-o", out + ".png"],
        "4-D kernel": ["filter", str(SAMPLES / "d2l-x.npy"), "-k"]
        + [str(SAMPLES / "kernels" / "d2l-4d.json"), "-p", "valid", "-o", out + ".npy"],
    }  # fmt: skip


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, its stderr) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compare", type=Path, help="another checkout to time alike")
    args = parser.parse_args()
    roots = {"now": ROOT} | ({"before": args.compare.resolve()} if args.compare else {})
    work = Path(tempfile.mkdtemp(prefix="cnncli-first-run-"))
    runs = cases(work)
    # Bytecode written and read as after an install (PYTHONDONTWRITEBYTECODE would compile every
    # changed module from source on every run).
    dropped = ("NUMBA_CACHE_DIR", "PYTHONDONTWRITEBYTECODE")
    base_env = {k: v for k, v in os.environ.items() if k not in dropped}
    warm = {name: work / f"warm-{name}" for name in roots}

    def env(root: Path, cache: Path) -> dict[str, str]:
        return {**base_env, "PYTHONPATH": str(root), "NUMBA_CACHE_DIR": str(cache)}

    def cnncli(root: Path, case: str) -> list[str]:
        return [sys.executable, "-m", "cnncli", *runs[case], "--force"]

    for name, root in roots.items():  # fill the warm caches (and the page cache)
        for case in runs:
            timed(cnncli(root, case), env(root, warm[name]), work)
    baselines = {
        'python -c "import numba"': [sys.executable, "-c", "import numba"],
        'python -c "import typer"': [sys.executable, "-c", "import typer"],
    }
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    notes: dict[tuple[str, str], str] = {}
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for label, argv in baselines.items():
            times.setdefault((label, ""), []).append(timed(argv, base_env, work)[:2])
        for case in runs:
            for name, root in roots.items():
                cold = Path(tempfile.mkdtemp(prefix=f"cold-{name}-", dir=work))  # empty
                wall, cpu, err = timed(cnncli(root, case), env(root, cold), work)
                times.setdefault((case, f"cold {name}"), []).append((wall, cpu))
                notes[(case, name)] = err.strip()
                wall, cpu, _ = timed(cnncli(root, case), env(root, warm[name]), work)
                times.setdefault((case, f"warm {name}"), []).append((wall, cpu))
        load.append(os.getloadavg()[0])
    shutil.rmtree(work, ignore_errors=True)
    report(times, notes, roots, args.rounds, load)


def report(
    times: dict[tuple[str, str], list[tuple[float, float]]],
    notes: dict[tuple[str, str], str],
    roots: dict[str, Path],
    rounds: int,
    load: list[float],
) -> None:
    def med(key: tuple[str, str], i: int) -> float:
        return statistics.median(t[i] for t in times[key])

    numba_s = med(('python -c "import numba"', ""), 0)
    print(
        f"\nPython {sys.version.split()[0]}; medians of {rounds} interleaved rounds; 1-minute "
        f"load average {min(load):.1f}–{max(load):.1f} on {os.cpu_count()} cores\n"
    )
    head = ["case", "cold s", "cold CPU s", "warm s", "warm CPU s", "cold ÷ import numba", "goal"]
    if "before" in roots:
        head[1:1] = ["before: cold s", "before: warm s"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(head) - 2) + ["---"]) + "|")
    for label in ('python -c "import numba"', 'python -c "import typer"'):
        cells = [f"`{label}`", f"{med((label, ''), 0):.2f}", f"{med((label, ''), 1):.2f}"]
        cells += ["", "", f"{med((label, ''), 0) / numba_s:.2f}", ""]
        if "before" in roots:
            cells[1:1] = ["", ""]
        print("| " + " | ".join(cells) + " |")
    for case in dict.fromkeys(c for c, kind in times if kind.startswith("cold")):
        cold, warm = (case, "cold now"), (case, "warm now")
        ok = "ok" if med(cold, 0) <= GOAL_S else "MISSED"
        cells = [case, f"{med(cold, 0):.2f}", f"{med(cold, 1):.2f}", f"{med(warm, 0):.2f}"]
        cells += [f"{med(warm, 1):.2f}", f"{med(cold, 0) / numba_s:.2f}", f"≤ {GOAL_S:g} s {ok}"]
        if "before" in roots:
            cells[1:1] = [
                f"{med((case, 'cold before'), 0):.2f}",
                f"{med((case, 'warm before'), 0):.2f}",
            ]
        print("| " + " | ".join(cells) + " |")
    print("\nstderr of each first run (now):")
    for (case, name), err in notes.items():
        if name == "now":
            print(f"- {case}: {err or '(nothing)'}")


if __name__ == "__main__":
    main()
