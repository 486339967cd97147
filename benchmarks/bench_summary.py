"""How fast is ``cnncli summary``? Whole-process wall time against ``python -c "import typer"``.

Goals (issue 4): ``cnncli summary resnet50`` within 3.5× the time Python takes to import Typer,
and a ResNet-152 written with blocks (samples/models/resnet152.yaml) well under half a second.

Run:  .venv/bin/python benchmarks/bench_summary.py [--runs N]
Prints a Markdown table of medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESNET152 = ROOT / "samples" / "models" / "resnet152.yaml"
#: Bytecode written and read as a user's install does (PYTHONDONTWRITEBYTECODE would compile every
#: changed module from source on every run).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(cmd: list[str], runs: int) -> float:
    """Median wall time of a whole process, in seconds (one warm-up run first)."""
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def in_process(source: str, runs: int) -> float:
    from cnncli.model import summarize

    times = []
    for _ in range(runs):
        start = time.perf_counter()
        summarize(source)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per measurement (median)")
    runs = parser.parse_args().runs
    py = sys.executable
    cli = [py, "-m", "cnncli", "summary"]

    base = wall([py, "-c", "import typer"], runs)
    rows = [
        ('python -c "import typer"', base, "baseline"),
        ("cnncli summary resnet50", wall([*cli, "resnet50"], runs), "≤ 3.5×"),
        ("cnncli summary resnet50 --json", wall([*cli, "resnet50", "--json"], runs), "≤ 3.5×"),
        ("cnncli summary resnet152.yaml (blocks)", wall([*cli, str(RESNET152)], runs), "< 0.5 s"),
    ]
    print(f"Median of {runs} runs, whole process, {sys.version.split()[0]}\n")
    print("| command | median | × import typer | goal |")
    print("|---|---:|---:|---|")
    for name, t, goal in rows:
        print(f"| `{name}` | {t * 1000:.0f} ms | {t / base:.2f}× | {goal} |")
    parse = in_process(str(RESNET152), runs)
    print(
        f"| ResNet-152 in process (parse, expand, count; 515 layers) | {parse * 1000:.1f} ms | | |"
    )


if __name__ == "__main__":
    main()
