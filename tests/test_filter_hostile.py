"""Issue #9 for ``cnncli filter`` and ``cnncli kernels``: hostile input, faults and absurd sizes end
in one clear line and the right exit code, one bad file never ends a batch, and large pictures
are worked on band by band.

Each test runs the command in process (tests/clirun.py) from a temporary folder, so messages
name files relatively and are compared exactly. Signals are in tests/test_signals.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clirun import run  # tests/clirun.py
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnncli import images, limits
from cnncli.filtering.correlate import check_work, correlate, plan_geometry
from cnncli.filtering.stages import parse_stage, plan_stages, run_stage
from cnncli.limits import LimitError
from cnncli.render.preview import Shrink, shrink_factor

ROOT = Path(__file__).resolve().parent.parent
RNG = np.random.default_rng(11)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with two 50×40 RGB pictures (a.png, c.png) and a 3×3 kernel file."""
    monkeypatch.chdir(tmp_path)
    for name in ("a.png", "c.png"):
        Image.fromarray(RNG.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(name)
    Image.fromarray(np.full((1, 1), 7, np.uint8)).save("one.png")
    np.save("kern.npy", np.ones((3, 3)))
    return tmp_path


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------------ 1. --limit


def test_limit_output_values_on_filter(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _files(folder)
    code, out, err = run(
        ["filter", "a.png", "-k", "sobel", "-o", "o.png", "--limit", "output-values=1000"], capsys
    )
    assert code == 1
    assert err == (
        "cnncli: error: a.png (50×40): the result would be 50×40 pixels = 2,000 values, over the "
        "output-values limit of 1,000; raise it with --limit output-values=2000 if you mean it\n"
    )
    assert out == "" and _files(folder) == before


def test_limit_raised_lets_it_through(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        ["filter", "a.png", "-k", "sobel", "-o", "o.png", "--limit", "output-values=6000"], capsys
    )
    assert code == 0, err
    assert out == "a.png → o.png: 50×40 RGB 8-bit, sobel, border reflect101, map abs\n"


def test_unknown_limit_is_a_usage_error(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["filter", "a.png", "-k", "sobel", "--limit", "bogus=1"], capsys)
    assert code == 2
    assert err.startswith("cnncli: error: unknown limit 'bogus' in --limit 'bogus=1'; limits: ")
    code, out, err = run(["kernels", "sobel", "--limit", "nope=3"], capsys)
    assert code == 2 and err.startswith("cnncli: error: unknown limit 'nope'")


def test_kernels_takes_limit(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["kernels", "sobel", "--limit", "kernel-taps=100"], capsys)
    assert code == 0 and err == "" and out.startswith("sobel")


@pytest.mark.parametrize("flag", [["--max-pixels", "1999"], ["--limit", "pixels=1999"]])
def test_max_pixels_is_the_pixels_limit(
    folder: Path, capsys: pytest.CaptureFixture[str], flag: list[str]
) -> None:
    code, out, err = run(["filter", "a.png", "-k", "sobel", "-o", "o.png", *flag], capsys)
    assert code == 1 and out == ""
    assert re.fullmatch(r"cnncli: error: a\.png: .*more than 1,999 pixels.*\n", err), err
    assert not (folder / "o.png").exists()
    # 2000 pixels is exactly the image: allowed.
    code, _, err = run(
        ["filter", "a.png", "-k", "sobel", "-o", "o.png", "--max-pixels", "2000"], capsys
    )
    assert code == 0, err


def test_max_pixels_wins_over_limit(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        [
            "filter",
            "a.png",
            "-k",
            "sobel",
            "-o",
            "o.png",
            "--limit",
            "pixels=10",
            "--max-pixels",
            "2000",
        ],
        capsys,
    )
    assert code == 0, err


# ------------------------------------------------------------------ 2. the inputs of the run


def test_kernel_file_is_never_overwritten(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (folder / "kern.npy").read_bytes()
    code, out, err = run(["filter", "a.png", "-k", "kern.npy", "-o", "kern.npy", "--force"], capsys)
    assert code == 1
    assert err == (
        "cnncli: error: kern.npy: is an input of this run; refusing to overwrite it, even with "
        "--force; choose another output name\n"
    )
    assert out == "" and (folder / "kern.npy").read_bytes() == before


def test_kernel_file_by_another_name_is_never_overwritten(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "sub").mkdir()
    before = (folder / "kern.npy").read_bytes()
    code, _, err = run(
        ["filter", "a.png", "-k", "sub/../kern.npy", "-o", "./kern.npy", "--force"], capsys
    )
    assert code == 1
    assert err.startswith("cnncli: error: kern.npy: is an input of this run (sub/../kern.npy)")
    assert (folder / "kern.npy").read_bytes() == before


def test_image_input_is_never_overwritten(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (folder / "a.png").read_bytes()
    code, _, err = run(["filter", "a.png", "-k", "sobel", "-o", "a.png", "--force"], capsys)
    assert code == 1 and "a.png: is an input of this run" in err
    assert (folder / "a.png").read_bytes() == before


# ------------------------------------------------------------------ 3. one bad file, not the batch


def _huge_header(path: Path) -> None:
    """A .npy whose header claims 100000×100000 float32 (40 GB) over 64 bytes of data."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f4", "fortran_order": False, "shape": (100000, 100000)}
        )
        fh.write(b"\0" * 64)


BAD_FILES: dict[str, Any] = {
    "empty.npy": lambda p: p.write_bytes(b""),
    "huge.npy": _huge_header,
    "text.png": lambda p: p.write_text("%!PS-Adobe-3.0\nshowpage\n"),
    "cut.png": lambda p: p.write_bytes(
        (Path("a.png").read_bytes())[: len(Path("a.png").read_bytes()) // 2]
    ),
}


@pytest.mark.parametrize("bad", sorted(BAD_FILES))
@pytest.mark.parametrize("where", [0, 1, 2])
def test_one_bad_file_in_three(
    folder: Path, capsys: pytest.CaptureFixture[str], bad: str, where: int
) -> None:
    BAD_FILES[bad](folder / bad)
    names = ["a.png", "c.png"]
    names.insert(where, bad)
    code, out, err = run(["filter", *names, "-k", "sobel", "--out-dir", "out"], capsys)
    assert code == 1
    lines = err.splitlines()
    assert lines[-1] == "cnncli: error: 1 of 3 files failed"
    assert (
        len(lines) == 2
        and lines[0].startswith(f"cnncli: error: {bad}: ")
        or lines[0].startswith(f"cnncli: error: {bad} (")
    )
    assert "aborted" not in err and "internal error" not in err and "Traceback" not in err
    assert sorted(p.name for p in (folder / "out").iterdir()) == ["a_sobel.png", "c_sobel.png"]
    assert out.splitlines() == [
        "a.png → out/a_sobel.png: 50×40 RGB 8-bit, sobel, border reflect101, map abs",
        "c.png → out/c_sobel.png: 50×40 RGB 8-bit, sobel, border reflect101, map abs",
    ]


def test_huge_header_refused_from_the_header(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _huge_header(folder / "huge.npy")
    code, _, err = run(["filter", "huge.npy", "-k", "sobel", "-o", "o.npy"], capsys)
    assert code == 1
    assert err == (
        "cnncli: error: huge.npy: 100000×100000 = 10,000,000,000 pixels is more than 89,478,485 "
        "pixels, refused before loading; raise the limit with --max-pixels N if you trust the file\n"
    )


@pytest.mark.parametrize(
    "raised,message",
    [
        (
            EOFError("No data left in file"),
            "c.png: truncated or damaged file (No data left in file)",
        ),
        (MemoryError(), "c.png: out of memory; use a smaller image or lower the work with --limit"),
        (OSError(5, "Input/output error"), "c.png: cannot read (Input/output error)"),
    ],
)
def test_reader_faults_are_per_file(
    folder: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    raised: BaseException,
    message: str,
) -> None:
    real = images.load_image

    def load(path: Any, **kw: Any) -> Any:
        if Path(path).name == "c.png":
            raise raised
        return real(path, **kw)

    monkeypatch.setattr(images, "load_image", load)
    code, out, err = run(["filter", "c.png", "a.png", "-k", "sobel", "--out-dir", "out"], capsys)
    assert code == 1
    assert err == f"cnncli: error: {message}\ncnncli: error: 1 of 2 files failed\n"
    assert out == "a.png → out/a_sobel.png: 50×40 RGB 8-bit, sobel, border reflect101, map abs\n"
    # Alone, the same fault is the run's one line (not "aborted", not "internal error").
    code, out, err = run(["filter", "c.png", "-k", "sobel", "-o", "x.png"], capsys)
    assert code == 1 and err == f"cnncli: error: {message}\n" and out == ""


def test_a_fifo_is_not_peeked_at(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Warming the core reads the first file's header; a FIFO would block it forever."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs")
    from cnncli.filtering.pipeline import regular as _regular

    os.mkfifo(folder / "pipe.png")
    assert not _regular(folder / "pipe.png") and _regular(folder / "a.png")
    assert not _regular(folder / "missing.png") and not _regular(folder)


# ------------------------------------------------------------------ 4. absurd sizes, refused first


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["a.png", "-p", "20000"],
            "a.png (50×40): the result would be 40048×40038 pixels = 1,603,441,824 values, over "
            "the output-values limit of 268,435,456; raise it with --limit "
            "output-values=1603441824 if you mean it",
        ),
        (
            ["one.png", "-p", "1000000"],
            "one.png (1×1): the result would be 1999999×1999999 pixels = 3,999,996,000,001 "
            "values, over the output-values limit of 268,435,456; raise it with --limit "
            "output-values=3999996000001 if you mean it",
        ),
        (
            ["a.png", "-d", "300000000"],
            "a.png (50×40): padding 300000000+300000000 rows and 300000000+300000000 columns "
            "(kernel span 600000001×600000001) would add 360,000,054,000,000,000 values around "
            "the 50×40 input, over the output-values limit of 268,435,456; raise it with "
            "--limit output-values=360000054000000000 if you mean it",
        ),
        (
            ["a.png", "-p", "0,9000", "-d", "1,4000", "-p", "same"],
            "a.png (50×40 RGB 8-bit): padding 1+1 rows and 4000+4000 columns (kernel span "
            "3×8001) would add 1,008,300 values around the 50×40 input, over the output-values "
            "limit of 1,000,000; raise it with --limit output-values=1008300 if you mean it",
        ),
    ],
)
def test_absurd_sizes_refused_before_work(
    folder: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    extra = ["--limit", "output-values=1000000"] if "4000" in "".join(args) else []
    before = _files(folder)
    code, out, err = run(["filter", *args, "-k", "sobel", "-o", "o.png", *extra], capsys)
    assert code == 1
    assert err == f"cnncli: error: {message}\n"
    assert out == "" and _files(folder) == before


def test_exact_count_after_decoding(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The header gives a lower bound (one channel); the decoded picture the exact count."""
    code, _, err = run(
        ["filter", "a.png", "-k", "sobel", "-o", "o.png", "--limit", "output-values=5000"], capsys
    )
    assert code == 1
    assert err == (
        "cnncli: error: a.png (50×40 RGB 8-bit): the result would be 50×40 pixels × 3 maps = "
        "6,000 values, over the output-values limit of 5,000; raise it with --limit "
        "output-values=6000 if you mean it\n"
    )


def test_core_checks_before_allocating() -> None:
    """The library entry point refuses too, before any array is made (this would be 32 TB)."""
    with pytest.raises(LimitError, match=r"the result would be 1999999×1999999 pixels"):
        correlate(np.zeros((1, 1), np.float32), np.ones((3, 3)), padding=1_000_000)
    geom = plan_geometry((40, 50), (3, 3), dilation=(1, 4000))
    with limits.override(output_values=10**9):
        check_work(geom, 3, 3)
    with limits.override(output_values=10**6), pytest.raises(LimitError, match="padding 1\\+1"):
        check_work(geom, 3, 3)


# ------------------------------------------------------------------ 5. band by band


def test_pooling_is_float32_and_matches_windows() -> None:
    x = RNG.normal(size=(23, 17, 3)).astype(np.float32)
    for spec in ("maxpool:3:2", "avgpool:2", "maxpool:4:1", "avgpool:3:3"):
        stage = parse_stage(spec)
        got = run_stage(stage, x)
        w = np.lib.stride_tricks.sliding_window_view(x, (stage.size, stage.size), axis=(0, 1))
        w = w[:: stage.stride, :: stage.stride]
        want = w.max(axis=(-2, -1)) if stage.op == "maxpool" else w.mean(axis=(-2, -1))
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "then", [["maxpool:3:2"], ["relu", "avgpool:2"], ["maxpool:2", "maxpool:3:1"]]
)
def test_pooled_bands_equal_the_whole(
    folder: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    then: list[str],
) -> None:
    """A PNG made band by band (small bands forced) holds what the whole float result maps to."""
    from cnncli import config

    Image.fromarray(RNG.integers(0, 256, (97, 61), dtype=np.uint8)).save("g.png")
    stages = [a for t in then for a in ("--then", t)]
    code, _, err = run(["filter", "g.png", "-k", "sobel-x", *stages, "-o", "whole.npy"], capsys)
    assert code == 0, err
    monkeypatch.setattr(config, "BAND_VALUES", 64)
    code, _, err = run(["filter", "g.png", "-k", "sobel-x", *stages, "-o", "bands.png"], capsys)
    assert code == 0, err
    whole = np.load("whole.npy")
    want = images.map_values(whole, "abs", 255)
    assert np.array_equal(np.asarray(Image.open("bands.png")), want)


def test_normalize_in_two_passes_equals_the_whole(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cnncli import config

    code, _, err = run(["filter", "a.png", "-k", "1,2;-3,1", "-o", "whole.npy"], capsys)
    assert code == 0, err
    monkeypatch.setattr(config, "BAND_VALUES", 100)
    code, _, err = run(
        ["filter", "a.png", "-k", "1,2;-3,1", "--map", "normalize", "-o", "n.png"], capsys
    )
    assert code == 0, err
    want = images.map_values(np.load("whole.npy"), "normalize", 255)
    assert np.array_equal(np.asarray(Image.open("n.png")), want)


def test_shrink_is_block_means() -> None:
    x = RNG.integers(0, 256, (37, 29, 3), dtype=np.uint8)
    f = 4
    s = Shrink(37, 29, f)
    for r0 in range(0, 37, 8):  # bands of a multiple of f rows, the last shorter
        s.add(x[r0 : r0 + 8])
    got = s.result()
    want = np.zeros((10, 8, 3))
    for i in range(10):
        for j in range(8):
            want[i, j] = x[i * f : i * f + f, j * f : j * f + f].reshape(-1, 3).mean(axis=0)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert (s.lo, s.hi) == (float(x.min()), float(x.max()))
    assert shrink_factor((9000, 9000), 80, 76) == 118  # 76 rows: ⌊9000 / 76⌋
    assert shrink_factor((10, 10), 80, 76) == 1


def test_preview_never_converts_the_whole_picture(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preview reduces input and result to its own size before any RGB conversion."""
    Image.fromarray(RNG.integers(0, 256, (400, 600, 3), dtype=np.uint8)).save("big.png")
    seen: list[tuple[int, ...]] = []
    real = images.to_rgb8

    def spy(data: Any, maxval: int) -> Any:
        seen.append(tuple(data.shape))
        return real(data, maxval)

    monkeypatch.setattr(images, "to_rgb8", spy)
    monkeypatch.setenv("COLUMNS", "100")
    code, out, err = run(["filter", "big.png", "-k", "sobel", "--preview"], capsys)
    assert code == 0, err
    assert len(seen) == 2 and all(s[0] * s[1] <= 100 * 100 for s in seen), seen
    assert (
        out.splitlines()[-1]
        == "big.png → preview: 400×600×3 (not written), sobel, border reflect101, map abs"
    )


# ------------------------------------------------------------------ 6. no writable Numba cache


def _read_only_copy(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the package where no __pycache__ can be made (each is a file), and an
    environment whose NUMBA_CACHE_DIR, HOME and XDG_CACHE_HOME cannot be written either."""
    pkg = tmp_path / "pkg"
    shutil.copytree(ROOT / "cnncli", pkg / "cnncli", ignore=shutil.ignore_patterns("__pycache__"))
    for d in [pkg / "cnncli", *(p for p in (pkg / "cnncli").rglob("*") if p.is_dir())]:
        (d / "__pycache__").write_text("")
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    (tmp_path / "tmp").mkdir()
    env = dict(
        os.environ,
        PYTHONPATH=str(pkg),
        NUMBA_CACHE_DIR=str(blocked / "numba"),
        HOME=str(blocked / "home"),
        XDG_CACHE_HOME=str(blocked / "cache"),
        TMPDIR=str(tmp_path / "tmp"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return pkg, env


def test_no_writable_numba_cache_falls_back_to_a_temp_cache(tmp_path: Path) -> None:
    _, env = _read_only_copy(tmp_path)
    Image.fromarray(RNG.integers(0, 256, (20, 30), dtype=np.uint8)).save(tmp_path / "g.png")
    proc = subprocess.run(
        [sys.executable, "-m", "cnncli", "filter", "g.png", "-k", "1,2;3,5", "-o", "o.png"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    fallback = tmp_path / "tmp" / f"cnncli-numba-{os.getuid()}"
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (
        "cnncli: warning: no writable Numba cache directory (package folder, NUMBA_CACHE_DIR, "
        f"user cache); caching compiled code in {fallback} instead\n"
        "cnncli: compiling the filter core, first run only (a few seconds)…\n"  # a new cache
    )
    assert (tmp_path / "o.png").exists() and any(fallback.rglob("*.nbi"))


def test_no_writable_numba_cache_anywhere_runs_uncached(tmp_path: Path) -> None:
    _, env = _read_only_copy(tmp_path)
    Image.fromarray(RNG.integers(0, 256, (20, 30), dtype=np.uint8)).save(tmp_path / "g.png")
    code = (
        "import sys, tempfile; tempfile.tempdir = sys.argv.pop(1); "
        "from cnncli.cli import main; main(sys.argv[1:])"
    )
    blocked = str(tmp_path / "not-a-folder" / "tmp")
    proc = subprocess.run(
        [sys.executable, "-c", code, blocked, "filter", "g.png", "-k", "1,2;3,5", "-o", "o.png"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (
        "cnncli: warning: no writable Numba cache directory (package folder, NUMBA_CACHE_DIR, "
        "user cache, temporary folder); compiling without a cache, so every run starts slower\n"
    )
    assert (tmp_path / "o.png").exists()


# ------------------------------------------------------------------ 7. --then too large


def test_pool_larger_than_the_result_names_file_and_stage(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["filter", "a.png", "-k", "sobel", "--then", "maxpool:90"], capsys)
    assert code == 1
    assert err == (
        "cnncli: error: a.png (50×40 RGB 8-bit): stage maxpool:90: the 90×90 window is larger "
        "than the result it pools (40 rows, 50 columns); use a window of at most 40 (maxpool:40)\n"
    )
    assert out == "" and not list(folder.glob("a_*"))


def test_second_stage_too_large_is_named(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        ["filter", "a.png", "-k", "sobel", "--then", "maxpool:4", "--then", "avgpool:12:1"], capsys
    )
    assert code == 1
    assert err == (
        "cnncli: error: a.png (50×40 RGB 8-bit): stage avgpool:12:1: the 12×12 window is larger "
        "than the result it pools (10 rows, 12 columns); use a window of at most 10 (avgpool:10)\n"
    )
    assert plan_stages([parse_stage("maxpool:4"), parse_stage("avgpool:10:1")], (40, 50)) == (1, 3)


# ------------------------------------------------------------------ 8. long paths


def test_input_name_too_long(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = "x" * 300 + ".png"
    code, out, err = run(["filter", name, "-k", "sobel", "-o", "o.png"], capsys)
    assert code == 1 and out == ""
    assert (
        err == f"cnncli: error: {'x' * 60}… (304 bytes): file name too long; use a shorter name\n"
    )
    # In a batch it is one failed input; the others are written.
    code, out, err = run(["filter", name, "a.png", "-k", "sobel", "--out-dir", "out"], capsys)
    assert code == 1
    assert err.splitlines() == [
        f"cnncli: error: {'x' * 60}… (304 bytes): file name too long; use a shorter name",
        "cnncli: error: 1 of 2 files failed",
    ]
    assert (folder / "out" / "a_sobel.png").exists()


@pytest.mark.parametrize("size", [241, 250, 255])
def test_output_names_up_to_255_bytes(
    folder: Path, capsys: pytest.CaptureFixture[str], size: int
) -> None:
    name = "y" * (size - 4) + ".png"
    code, _, err = run(["filter", "a.png", "-k", "sobel", "-o", name], capsys)
    assert code == 0, err
    assert (folder / name).exists() and not list(folder.glob(".*.part"))


def test_output_name_over_255_bytes(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = "z" * 300 + ".png"
    code, _, err = run(["filter", "a.png", "-k", "sobel", "-o", name], capsys)
    assert code == 1
    assert code == 1
    assert err.endswith("(file name too long; use a shorter name)\n") and len(err.splitlines()) == 1
    code, _, err = run(["filter", "a.png", "-k", "sobel", "--out-dir", "d" * 300], capsys)
    assert code == 1 and "file name too long" in err and len(err.splitlines()) == 1


# ------------------------------------------------------------------ fuzz: any geometry, one line

OPTION_VALUES = st.one_of(
    st.integers(min_value=-3, max_value=10**7).map(str),
    st.sampled_from(["same", "valid", "full", "0,1", "3,x", "", "1e9", "2,2,2"]),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    padding=OPTION_VALUES,
    stride=OPTION_VALUES,
    dilation=OPTION_VALUES,
    then=st.lists(st.sampled_from(["relu", "maxpool:2", "avgpool:5:1", "maxpool:60"]), max_size=2),
)
def test_fuzz_geometry_ends_in_one_line(
    folder: Path,
    capsys: pytest.CaptureFixture[str],
    padding: str,
    stride: str,
    dilation: str,
    then: list[str],
) -> None:
    stages = [a for t in then for a in ("--then", t)]
    args = ["filter", "one.png", "-k", "box:size=3", "-p", padding, "-s", stride, "-d", dilation]
    code, _, err = run([*args, *stages, "-o", "f.npy", "--force"], capsys)
    assert code in (0, 1, 2)
    assert "internal error" not in err and "Traceback" not in err
    if code:
        assert len(err.splitlines()) == 1 and err.startswith("cnncli: error: ")


def test_report_lines_escape_control_characters_in_file_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "a\x1b]0;owned\x07b.npy"
    np.save(src, np.arange(36, dtype=np.float32).reshape(6, 6))
    code, out, err = run(["filter", src, "-k", "box", "-o", tmp_path / "o.npy"], capsys)
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "a\\x1b]0;owned\\x07b.npy → " in out
    code, out, err = run(["kernels", str(src)], capsys)  # a 6×6 array is a kernel too
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;owned\\x07b" in out.replace("\n", "")


@pytest.mark.parametrize(
    ("kernel", "extra", "message"),
    [
        (
            "unsharp:amount=3e38",
            [],
            "kernel unsharp can reach 1.29e+41 on this input (Σ|k| = 5.04e+38 × values up to "
            "255), beyond the float32 range (±3.4e+38) filters compute in; scale the kernel or "
            "the input down",
        ),
        (
            "box",
            ["--border", "constant=1e300"],
            "kernel box can reach 1e+300 on this input (Σ|k| = 1 × values up to 1e+300), beyond "
            "the float32 range (±3.4e+38) filters compute in; scale the kernel or the input down",
        ),
        (  # the magnitude squares each response: sobel-x alone would fit
            "sobel",
            ["--border", "constant=1e19"],
            "kernel sobel can reach 8e+19 on this input (Σ|k| = 8 × values up to 1e+19), beyond "
            "the float32 range (±1.3e+19) filters compute in; scale the kernel or the input down",
        ),
    ],
)
def test_results_beyond_float32_are_refused_before_work(
    folder: Path, capsys: pytest.CaptureFixture[str], kernel: str, extra: list[str], message: str
) -> None:
    Image.fromarray(np.full((6, 6), 255, np.uint8)).save(folder / "w.png")
    code, out, err = run(["filter", "w.png", "-k", kernel, *extra, "-o", "o.png"], capsys)
    assert code == 1
    assert out == ""
    assert err == f"cnncli: error: w.png: {message}\n"
    assert not (folder / "o.png").exists()
    # Within range, the same kind of job runs.
    ok = {"unsharp:amount=3e38": ["-k", "unsharp:amount=1e30"], "box": ["-k", "box"]}
    code, _, err = run(
        ["filter", "w.png", *ok.get(kernel, ["-k", "sobel-x", *extra]), "-o", "o.png"], capsys
    )
    assert code == 0, err
