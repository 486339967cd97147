"""Whole-process start-up of `cnncli shape` against `python -c "import typer"`, side by side.

Runs the commands interleaved (so a noisy neighbour hits both alike) and prints medians and the
ratio as a Markdown table. Goal: `cnncli shape` ≤ 1.5 × `import typer`.

    python benchmarks/bench_startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def cases() -> list[tuple[str, list[str], float | None]]:
    cnncli = str(BIN / "cnncli")
    return [
        ('python -c "import typer"', [sys.executable, "-c", "import typer"], None),
        (
            "cnncli shape 224 224 -k 7 -s 2 -p 3",
            [cnncli, "shape", "224", "224", "-k", "7", "-s", "2", "-p", "3"],
            1.5,
        ),
        (
            "cnncli shape 224 224 -k 7 -s 2 -p 3 --json",
            [cnncli, "shape", "224", "224", "-k", "7", "-s", "2", "-p", "3", "--json"],
            1.5,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    env = dict(os.environ, COLUMNS="100")
    # As on a user's machine: Python caches compiled modules (.pyc) after the first run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    todo = cases()
    times: dict[str, list[float]] = {name: [] for name, _, _ in todo}
    for _ in range(2):  # warm the OS file cache and .pyc files
        for _name, cmd, _goal in todo:
            subprocess.run(cmd, check=True, capture_output=True, env=env)
    for _ in range(args.runs):
        for name, cmd, _goal in todo:
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times[todo[0][0]])
    print(f"start-up, median of {args.runs} interleaved runs\n")
    print("| command | median ms | ratio to import typer | goal |")
    print("|---|---:|---:|---:|")
    for name, _cmd, goal in todo:
        med = statistics.median(times[name])
        print(
            f"| `{name}` | {med * 1000:.1f} | {med / base:.2f} | {'' if goal is None else f'≤ {goal}'} |"
        )


if __name__ == "__main__":
    main()
