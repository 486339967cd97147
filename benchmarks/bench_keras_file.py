"""How fast is ``cnncli summary model.keras``? Whole-process wall time against what a Keras user
would otherwise run: ``keras.saving.load_model(path)`` and ``model.summary()``.

Goal (issue 12): a ResNet-50 ``.keras`` file (~100 MB with its weights) summarised in under
0.5 s, whole process. cnncli reads the archive's config.json only; Keras imports its backend
and loads the weights. For reference, the same model from the zoo's YAML (``keras-resnet50``):
what reading the file adds is the difference.

Run:  .venv/bin/python benchmarks/bench_keras_file.py [--rounds N] [--models ResNet50,...]
The ``.keras`` files are written once with Keras (``weights=None``) into a temporary folder, or
taken from ``--folder`` when they are there. Every case runs once to warm up, then all cases in
turn for each round (interleaved, so that load from other processes hits every case alike); a
case's time is the median of its rounds. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The children's environment: bytecode written and read as a user's install does. With
#: PYTHONDONTWRITEBYTECODE set (as it is on some machines), every changed module is compiled
#: from source on every run, ~0.1 s of a 0.4 s summary.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
sys.path.insert(0, str(ROOT))  # this checkout's cnncli, in process and in the child processes

KERAS = (
    "import sys, keras; m = keras.saving.load_model(sys.argv[1]); "
    "m.summary(print_fn=lambda *a, **k: None)"
)


def save(application: str, folder: Path) -> Path:
    """``keras.applications.<application>(weights=None)`` saved as ``.keras`` (once)."""
    path = folder / f"{application}.keras"
    if not path.exists():
        code = (
            f"import sys, keras; keras.applications.{application}(weights=None).save(sys.argv[1])"
        )
        subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True)
    return path


def run(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=ENV
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(cases: dict[str, list[str]], rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and CPU seconds of ``rounds`` interleaved rounds (after one warm-up run
    each). On a machine shared with other work, CPU time moves less than wall time."""
    for cmd in cases.values():
        run(cmd)
    walls: dict[str, list[float]] = {k: [] for k in cases}
    cpus: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for name, cmd in cases.items():
            wall, cpu = run(cmd)
            walls[name].append(wall)
            cpus[name].append(cpu)
    median = statistics.median
    return {k: median(v) for k, v in walls.items()}, {k: median(v) for k, v in cpus.items()}


def in_process(path: Path, rounds: int) -> float:
    """The reader and the builder alone (no interpreter start, no rendering), median seconds."""
    from cnncli.model import summarize

    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        summarize(str(path))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument(
        "--models", default="ResNet50", help="keras.applications names, comma-separated"
    )
    parser.add_argument("--folder", type=Path, help="where the .keras files are (or go)")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="bench-keras-"))
    folder.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    print(
        f"Median of {args.rounds} interleaved rounds, whole process, Python "
        f"{sys.version.split()[0]}, Keras backend {backend}\n"
    )
    print(
        "| model | file MB | `cnncli summary` | `--json` | the zoo's YAML of it | Keras "
        "load_model + summary() | ÷ | in process |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for application in args.models.split(","):
        path = save(application, folder)
        cases = {
            "cnncli": [py, "-m", "cnncli", "summary", str(path)],
            "json": [py, "-m", "cnncli", "summary", str(path), "--json"],
            "zoo": [py, "-m", "cnncli", "summary", f"keras-{application.lower()}"],
            "keras": [py, "-c", KERAS, str(path)],
        }
        wall, cpu = measure(cases, args.rounds)
        inside = in_process(path, args.rounds)
        both = {k: f"{wall[k]:.2f} s ({cpu[k]:.2f} s CPU)" for k in cases}
        print(
            f"| {application} | {path.stat().st_size / 1e6:.0f} | {both['cnncli']} "
            f"| {both['json']} | {both['zoo']} | {both['keras']} | {wall['keras'] / wall['cnncli']:.0f}× "
            f"| {inside * 1e3:.0f} ms |"
        )


if __name__ == "__main__":
    main()
