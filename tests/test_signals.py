"""Signals end a real ``python -m cnncli filter`` run cleanly: one line, exit 128 + n, no hidden
``.NAME.<pid>-xxxxxxxx.part`` temp file and no output left behind; after SIGKILL (which nothing
can catch) the next run writing to the same folder removes the leftover.

Each test runs the real entry point in a subprocess on a 12-MP noise picture (its PNG is written
band by band for about a second, so the temp file is there long enough to be seen), waits until
the temp file appears and sends the signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
#: How long after the signal the process must have ended (measured ~0.01-0.05 s; generous for
#: a loaded machine).
PROMPT = 3.0

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture(scope="module")
def noise(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("signals")
    rng = np.random.default_rng(9)
    path = folder / "noise.png"
    Image.fromarray(rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)).save(
        path, compress_level=0
    )
    return path


def _start(image: Path, out: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "cnncli", "filter", str(image), "-k", "sobel", "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=out.parent,
    )


def _parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def _wait_for_part(proc: subprocess.Popen[str], folder: Path) -> None:
    deadline = time.monotonic() + 60
    while not _parts(folder):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"no temp file appeared (exit {proc.returncode}): {err}")
        time.sleep(0.005)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_signal_removes_the_temp_file_and_says_so(tmp_path: Path, noise: Path, name: str) -> None:
    signum = getattr(signal, name)
    out = tmp_path / "out.png"
    proc = _start(noise, out)
    _wait_for_part(proc, tmp_path)
    sent = time.monotonic()
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode == 128 + signum, stderr
    assert stderr == f"cnncli: error: interrupted by {name}; the unfinished output was removed\n"
    assert stdout == ""
    assert _parts(tmp_path) == [] and not out.exists()
    assert took < PROMPT, f"the process took {took:.2f} s to end after {name}"


def test_sigkill_leftover_is_swept_by_the_next_run(tmp_path: Path, noise: Path) -> None:
    out = tmp_path / "out.png"
    proc = _start(noise, out)
    _wait_for_part(proc, tmp_path)
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    left = _parts(tmp_path)
    assert len(left) == 1 and left[0].startswith(".out.png.")  # nothing can catch SIGKILL
    again = _start(noise, out)
    stdout, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    assert stderr == "" and stdout.startswith(f"{noise} → {out}: 4000×3000 RGB 8-bit")
    assert _parts(tmp_path) == [] and out.exists()
