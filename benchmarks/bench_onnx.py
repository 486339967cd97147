"""How fast is ``cnncli summary model.onnx``? Whole-process wall time and peak memory on a ~100 MB
ResNet-50 (weights included), against what a user would otherwise run: ``onnx.load`` and ONNX
shape inference (which give shapes, but no parameter or MAC counts).

Goal (issue 12): ``cnncli summary resnet50.onnx`` in under 1.5 s, without reading the weights
into memory.

Run:  .venv/bin/python benchmarks/bench_onnx.py [--rounds N] [--model resnet50.onnx]
Without --model, torchvision's ResNet-50 (random weights) is exported once with
torch.onnx.export (TorchScript, opset 17) into the system's temporary folder. Prints Markdown
tables: medians of interleaved rounds (each round runs every case once, in turn).
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's cnncli, in process as in the child processes
DEFAULT_MODEL = Path(tempfile.gettempdir()) / "cnncli-bench" / "resnet50.onnx"
GOAL_S = 1.5
#: As a user runs it: byte-compiled modules cached (the warm-up round writes them).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

ONNX_BASELINE = (
    "import sys, onnx; m = onnx.load(sys.argv[1]); "
    "onnx.shape_inference.infer_shapes(m, data_prop=True)"
)


EXPORT = """
import sys, torch
torch.library.register_fake = lambda *a, **k: (lambda fn: fn)  # see tests/tv_oracle.py
import torchvision.models as tvm
model = tvm.resnet50(weights=None).eval()
torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), sys.argv[1], dynamo=False, opset_version=17)
"""


def export_resnet50(path: Path) -> None:
    """torchvision's ResNet-50 with random weights, exported as a user would (TorchScript), in
    a child process: torch stays out of this one (its memory would show in every child's peak,
    and it would import onnx before the in-process measurement does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", EXPORT, str(path)], check=True)


def run(cmd: list[str]) -> tuple[float, float, float]:
    """One whole process: wall seconds, CPU seconds (user + system: what the wall time is on an
    idle machine, the process being single-threaded) and peak resident MiB, its own rusage."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT, env=ENV
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {err}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # KiB on Linux


def in_process(model: Path, rounds: int) -> dict[str, float]:
    """Where cnncli's time goes, in one process (medians, milliseconds)."""
    t0 = time.perf_counter()
    import onnx  # noqa: F401 - the import is what is measured

    imported = time.perf_counter() - t0
    from cnncli.model import build
    from cnncli.model.readers import ReadOptions
    from cnncli.model.readers.onnx_file import read_onnx

    reads, builds = [], []
    for _ in range(rounds):
        t1 = time.perf_counter()
        read = read_onnx(str(model), ReadOptions())
        t2 = time.perf_counter()
        build(read.data, read.label)
        builds.append(time.perf_counter() - t2)
        reads.append(t2 - t1)
    return {
        "import onnx (first time)": imported * 1e3,
        "read the graph: parse, infer, convert, check": statistics.median(reads) * 1e3,
        "build the summary (cnncli's arithmetic)": statistics.median(builds) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (median)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="an .onnx file")
    args = parser.parse_args()
    model: Path = args.model
    if not model.exists():
        if model != DEFAULT_MODEL:
            raise SystemExit(f"{model}: no such file")
        print(f"exporting torchvision's ResNet-50 to {model} …", file=sys.stderr)
        export_resnet50(model)
    py = sys.executable
    cases = {
        'python -c "import typer"': [py, "-c", "import typer"],
        "onnx.load + onnx.shape_inference.infer_shapes": [py, "-c", ONNX_BASELINE, str(model)],
        f"cnncli summary {model.name}": [py, "-m", "cnncli", "summary", str(model)],
        f"cnncli summary {model.name} --json": [
            py,
            "-m",
            "cnncli",
            "summary",
            str(model),
            "--json",
        ],
    }
    for cmd in cases.values():  # warm-up: page cache, .pyc files
        run(cmd)
    walls: dict[str, list[float]] = {k: [] for k in cases}
    cpus: dict[str, list[float]] = {k: [] for k in cases}
    peaks: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.rounds):
        for name, cmd in cases.items():
            wall, cpu, peak = run(cmd)
            walls[name].append(wall)
            cpus[name].append(cpu)
            peaks[name].append(peak)
    size = model.stat().st_size / 1e6
    base = statistics.median(walls["onnx.load + onnx.shape_inference.infer_shapes"])
    load = os.getloadavg()[0]
    print(
        f"{model.name}: {size:.1f} MB. Medians of {args.rounds} interleaved rounds, whole "
        f"process, Python {sys.version.split()[0]}, load average {load:.1f} on "
        f"{os.cpu_count()} cores\n"
    )
    print("| command | wall s | CPU s | × onnx.load + infer | peak MiB | goal |")
    print("|---|---:|---:|---:|---:|---|")
    for name in cases:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        goal = ""
        if name.startswith("cnncli"):
            goal = f"< {GOAL_S} s: wall " + ("ok" if wall < GOAL_S else "MISSED")
            goal += ", CPU " + ("ok" if cpu < GOAL_S else "MISSED")
        print(
            f"| `{name}` | {wall:.2f} | {cpu:.2f} | {wall / base:.2f} | "
            f"{statistics.median(peaks[name]):.0f} | {goal} |"
        )
    print("\nIn one process (median ms):\n")
    print("| step | ms |")
    print("|---|---:|")
    for step, ms in in_process(model, args.rounds).items():
        print(f"| {step} | {ms:.0f} |")


if __name__ == "__main__":
    main()
