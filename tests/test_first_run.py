"""The first run of ``cnncli filter`` with an empty Numba cache (issue 14, item 6): it compiles
the one core function once, for every later path, and says so in one line on stderr; a run that
loads the core from the cache, or fails before filtering, says nothing of it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnncli.filtering import correlate as cv

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
NOTE = f"cnncli: {cv.COMPILE_NOTE}\n"


def _cnncli(args: list[str], cache: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``cnncli ARGS`` as a user runs it, with ``cache`` as Numba's cache directory."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "cnncli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_an_empty_cache_compiles_once_with_one_line_then_every_path_loads(
    tmp_path: Path,
) -> None:
    """The issue's five first runs: a PNG photo with Sobel (the first, which compiles), then a
    .npy array, gaussian:sigma=2 (the separable path), a 16-bit picture and a 4-D kernel, each of
    which used to compile a specialisation of its own (5-18 s each): now none does."""
    cache = tmp_path / "numba-cache"
    photo16 = np.asarray(Image.open(SAMPLES / "camera.png").convert("L"), np.uint16) * 257
    Image.fromarray(photo16).save(tmp_path / "camera16.png")
    first = _cnncli(
        ["filter", str(SAMPLES / "coffee.png"), "-k", "sobel", "-o", "a.png"], cache, tmp_path
    )
    assert first.returncode == 0, first.stderr
    assert first.stderr == NOTE
    assert first.stdout.startswith(f"{SAMPLES / 'coffee.png'} → a.png: 600×400 RGB 8-bit")
    later = [
        ["filter", str(SAMPLES / "seed.npy"), "-k", "vertical-edge", "-p", "valid", "-o", "b.npy"],
        ["filter", str(SAMPLES / "coffee.png"), "-k", "gaussian:sigma=2", "-o", "c.png"],
        ["filter", "camera16.png", "-k", "sobel", "-o", "d.png"],
        ["filter", str(SAMPLES / "d2l-x.npy"), "-k", str(SAMPLES / "kernels" / "d2l-4d.json")]
        + ["-p", "valid", "-o", "e.npy"],
        ["filter", str(SAMPLES / "coffee.png"), "-k", "sobel", "-o", "a.png", "--force"],
    ]
    for args in later:
        proc = _cnncli(args, cache, tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == "", args  # loaded from the cache: nothing to say
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), [[0, 39, 39, 0]] * 4)
    assert Image.open(tmp_path / "d.png").mode.startswith("I")  # 16-bit stays 16-bit
    # One compiled function, one signature, in the cache: what every path above ran.
    assert len(list(cache.rglob("*.nbi"))) == 1 and len(list(cache.rglob("*.nbc"))) == 1


def test_a_run_that_fails_before_filtering_prints_only_its_error(tmp_path: Path) -> None:
    """The compile starts in the background as soon as the options are good; a file that then
    turns out bad ends the run with its one error line, not the compile's too."""
    (tmp_path / "bad.png").write_text("not an image")
    proc = _cnncli(["filter", "bad.png", "-k", "sobel"], tmp_path / "cache", tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("cnncli: error: bad.png: ")


# ------------------------------------------------------------------ who says it, and when


@pytest.fixture
def fresh_core(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The core module as in a new process (nothing loaded, nothing said), with a stand-in for
    Numba that the test drives; returns what was announced."""
    said: list[str] = []
    monkeypatch.setattr(cv, "_core_loaded", False)
    monkeypatch.setattr(cv, "_announced", False)
    monkeypatch.setattr(cv, "_announce", None)
    monkeypatch.setattr(cv._jit, "compiling", threading.Event())
    monkeypatch.setattr(cv._jit, "cached", True)
    return said


def _fake_core(monkeypatch: pytest.MonkeyPatch, compiles: bool, seconds: float) -> None:
    """``compile_core`` taking ``seconds``; ``compiles``: a real compile (Numba's event fires in
    the compiling thread), else a cache load."""

    def compile_core() -> None:
        if compiles:
            cv._jit.compiling.set()
            if cv._jit.on_compile is not None:
                cv._jit.on_compile()
        time.sleep(seconds)

    monkeypatch.setattr(cv._jit, "compile_core", compile_core)


def _warm_then_filter(said: list[str], wait_before_filtering: float) -> None:
    warm = threading.Thread(target=cv.load_core, kwargs={"announce": said.append})
    warm.start()
    time.sleep(wait_before_filtering)
    cv._core_for_this_call()  # what correlate() does first
    warm.join(timeout=30)
    assert cv._core_loaded


def test_waiting_for_a_compile_is_announced_once(
    fresh_core: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_core(monkeypatch, compiles=True, seconds=0.5)
    _warm_then_filter(fresh_core, 0.05)
    cv._core_for_this_call()
    assert fresh_core == [cv.COMPILE_NOTE]


def test_a_cache_load_is_not_announced(
    fresh_core: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_core(monkeypatch, compiles=False, seconds=0.3)
    _warm_then_filter(fresh_core, 0.0)
    assert fresh_core == []


def test_a_compile_over_before_filtering_starts_is_not_announced(
    fresh_core: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large picture can take longer to decode than the core to compile: nobody waited."""
    _fake_core(monkeypatch, compiles=True, seconds=0.05)
    _warm_then_filter(fresh_core, 0.5)
    assert fresh_core == []


def test_compiling_in_the_filtering_thread_itself_is_announced(
    fresh_core: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No warm-up got there first: the thread that filters compiles, and says so first."""
    order: list[str] = []
    _fake_core(monkeypatch, compiles=True, seconds=0.0)
    real: Callable[[], None] = cv._jit.compile_core

    def compile_core() -> None:
        real()
        order.append("compiled")

    monkeypatch.setattr(cv._jit, "compile_core", compile_core)
    cv.load_core(announce=lambda note: order.append(note))
    assert order == ["compiled"]  # load_core alone (a warm-up) never announces
    monkeypatch.setattr(cv, "_core_loaded", False)
    cv._core_for_this_call()
    assert order == ["compiled", cv.COMPILE_NOTE, "compiled"]


def test_without_a_cache_the_warning_is_the_one_line(
    fresh_core: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a writable cache every run compiles; the command's warning says so already."""
    monkeypatch.setattr(cv._jit, "cached", False)
    _fake_core(monkeypatch, compiles=True, seconds=0.3)
    _warm_then_filter(fresh_core, 0.05)
    assert fresh_core == []
