"""Hostile input to the image opener (issue #9): PostScript under image names, special files,
.npy headers that lie, damaged files' warnings, and byte-mutation fuzzing of every format."""

from __future__ import annotations

import io
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clirun import run  # tests/clirun.py
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnncli import images, limits
from cnncli.errors import CnnCliError, ImageError
from cnncli.images import load_image, peek, read

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SIXTEEN = Path(__file__).resolve().parent / "data" / "sixteen"
GIVE = "give a PNG, JPEG, TIFF, BMP, WebP or GIF file, a .npy array or a .csv/.txt matrix"
GS = shutil.which("gs")
needs_gs = pytest.mark.skipif(GS is None, reason="Ghostscript (gs) is not installed")


def refused(path: Path, **kw: Any) -> str:
    """load_image's one-line refusal of ``path``."""
    with pytest.raises(ImageError) as err:
        load_image(path, **kw)
    text = str(err.value)
    assert "\n" not in text
    return text


def finishes(fn: Callable[[], Any], seconds: float = 5.0) -> Any:
    """``fn()``'s result or exception, failing the test (instead of hanging the run) if it
    blocks: it runs on a daemon thread."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # handed back to the test below
            box["error"] = err

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"blocked for more than {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


# ------------------------------------------------------------------ PostScript (security)

PS_HEAD = "%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
PS_LOOP = PS_HEAD + "{ } loop\n"


def ps_writer(target: Path) -> str:
    """PostScript that, run by Ghostscript, creates ``target``."""
    return PS_HEAD + f"({target}) (w) file dup (pwned) writestring closefile\nshowpage\n"


@pytest.mark.parametrize("name", ["ps.png", "ps.jpg", "ps.tif", "ps.npy"])
def test_postscript_named_as_an_image_is_refused_by_content(tmp_path: Path, name: str) -> None:
    target = tmp_path / "pwned"
    src = tmp_path / name
    src.write_text(ps_writer(target))
    start = time.perf_counter()
    assert refused(src) == f"{src}: a PostScript file, not an image; {GIVE}"
    assert peek(src) is None
    assert time.perf_counter() - start < 5  # Ghostscript never started (its loop would hang)
    assert not target.exists()


@needs_gs
def test_the_file_writing_postscript_is_live(tmp_path: Path) -> None:
    """The test above means something: Pillow left to itself hands this very file to
    Ghostscript, which writes the target."""
    target = tmp_path / "pwned"
    src = tmp_path / "ps.png"
    src.write_text(ps_writer(target))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(src) as im:
                assert im.format == "EPS"
                im.load()
    except OSError:
        pass
    if not target.exists():
        pytest.skip("this Ghostscript does not run the file-writing PostScript")
    assert target.read_text() == "pwned"


@needs_gs
@pytest.mark.parametrize("name", ["loop.png", "loop.jpg", "loop.tif"])
def test_an_endless_postscript_loop_is_refused_at_once(tmp_path: Path, name: str) -> None:
    """In a child process, so that a regression (Ghostscript spinning forever) fails the test
    and is killed, with its process group, instead of hanging the run."""
    src = tmp_path / name
    src.write_text(PS_LOOP)
    code = (
        "import sys, time\n"
        "from cnncli.images import load_image\n"
        "t = time.perf_counter()\n"
        "try:\n"
        "    load_image(sys.argv[1])\n"
        "except Exception as err:\n"
        "    print(f'{time.perf_counter() - t:.3f}', err)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(src)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        pytest.fail("the PostScript loop ran: load_image did not return")
    assert proc.returncode == 0 and err == ""
    seconds, message = out.rstrip("\n").split(" ", 1)
    assert message == f"{src}: a PostScript file, not an image; {GIVE}"
    assert float(seconds) < 0.5


@pytest.mark.parametrize(
    ("name", "head", "what"),
    [
        ("dos.png", b"\xc5\xd0\xd3\xc6" + bytes(28), "an EPS file"),
        ("doc.jpg", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF file"),
        ("z.png", b"PK\x03\x04" + bytes(26), "a zip archive"),
    ],
)
def test_other_documents_are_named(tmp_path: Path, name: str, head: bytes, what: str) -> None:
    (tmp_path / name).write_bytes(head)
    assert refused(tmp_path / name) == f"{tmp_path / name}: {what}, not an image; {GIVE}"


def test_postscript_through_the_cli_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "ps.png"
    src.write_text(ps_writer(tmp_path / "pwned"))
    code, out, err = run(["filter", src, "-k", "sobel", "-o", tmp_path / "o.png"], capsys)
    assert code == 1 and out == ""
    assert err == f"cnncli: error: {src}: a PostScript file, not an image; {GIVE}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ps.png"]


def test_image_open_is_told_the_one_format_the_bytes_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every read by Pillow (load, the 16-bit second decode, peek) goes through Image.open
    restricted to one allowed format; a TIFF tifffile reads never reaches Pillow."""
    calls: list[Any] = []
    real = Image.open

    def spy(fp: Any, mode: str = "r", formats: Any = None) -> Any:
        calls.append(formats)
        return real(fp, mode, formats)

    monkeypatch.setattr(Image, "open", spy)
    load_image(SIXTEEN / "rgb16_zip.tif")  # tifffile
    peek(SIXTEEN / "rgb16_zip.tif")
    assert calls == []
    # LZW needs imagecodecs in tifffile: Pillow decodes it twice, high bytes then low bytes.
    load_image(SIXTEEN / "rgb16_lzw_tiled.tif")
    assert peek(SIXTEEN / "rgb16_interlaced.png") == (np.uint16, (13, 17))
    assert calls == [["TIFF"], ["TIFF"], ["PNG"]]


def test_content_decides_not_the_name(tmp_path: Path) -> None:
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    Image.fromarray(a).save(tmp_path / "x.png")
    os.replace(tmp_path / "x.png", tmp_path / "png.npy")
    pic = load_image(tmp_path / "png.npy")
    assert pic.format == "PNG" and pic.data.dtype == np.uint8
    np.testing.assert_array_equal(pic.data, a)
    np.save(tmp_path / "x.npy", a.astype(np.float32))
    os.replace(tmp_path / "x.npy", tmp_path / "npy.png")
    pic = load_image(tmp_path / "npy.png")
    assert pic.format == "NPY" and pic.data.dtype == np.float32
    assert peek(tmp_path / "npy.png") == (np.float32, (3, 4))


def test_a_format_cnncli_does_not_list_is_refused(tmp_path: Path) -> None:
    """Pillow reads ICO, TGA, PCX...; cnncli opens only the formats it lists."""
    Image.new("RGB", (4, 4)).save(tmp_path / "a.ico")
    os.replace(tmp_path / "a.ico", tmp_path / "ico.png")
    assert refused(tmp_path / "ico.png") == (
        f"{tmp_path / 'ico.png'}: not an image Pillow can read; {GIVE}"
    )


# ------------------------------------------------------------------ special files


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "in.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError) as err:
        finishes(lambda: load_image(fifo))
    assert str(err.value) == f"{fifo}: is a pipe, not a regular file; save it to a file first"
    assert finishes(lambda: peek(fifo)) is None


@pytest.mark.skipif(not Path("/dev/fd").is_dir(), reason="no /dev/fd")
def test_a_pipe_is_neither_read_nor_consumed(tmp_path: Path) -> None:
    """``<(cat x.png)`` and a piped ``/dev/stdin`` are /dev/fd/N pipes: refused, and what is
    waiting in them is left there."""
    data = (SAMPLES / "camera.png").read_bytes()[:4096]
    r, w = os.pipe()
    try:
        os.write(w, data)
        path = Path(f"/dev/fd/{r}")
        assert finishes(lambda: peek(path)) is None
        with pytest.raises(ImageError) as err:
            finishes(lambda: load_image(path))
        assert str(err.value) == f"{path}: is a pipe, not a regular file; save it to a file first"
        assert os.read(r, len(data) + 1) == data
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="no /proc/self/fd")
def test_a_regular_file_behind_a_descriptor_is_read(tmp_path: Path) -> None:
    """``cnncli filter /dev/stdin < photo.png``: stdin is the file itself, which is fine."""
    with open(SAMPLES / "camera.png", "rb") as fh:
        pic = load_image(Path(f"/proc/self/fd/{fh.fileno()}"))
    assert pic.data.shape == (512, 512)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_device_is_refused() -> None:
    assert finishes(lambda: refused(Path("/dev/zero"))) == (
        "/dev/zero: is a character device, not a regular file; give an image file"
    )
    assert peek(Path("/dev/zero")) is None


def test_a_socket_is_refused() -> None:
    folder = tempfile.mkdtemp(prefix="cnncli")  # short: a socket's path has ~100 bytes at most
    path = Path(folder) / "s.png"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(path))
        assert finishes(lambda: refused(path)) == (
            f"{path}: is a socket, not a regular file; save what it sends to a file first"
        )
    finally:
        sock.close()
        shutil.rmtree(folder)


def test_missing_directory_and_unreadable(tmp_path: Path) -> None:
    assert refused(tmp_path / "none.png") == f"{tmp_path / 'none.png'}: no such file"
    assert refused(tmp_path) == f"{tmp_path}: is a directory"
    (tmp_path / "f.png").write_bytes(b"x")
    assert refused(tmp_path / "f.png" / "g.png").startswith(
        f"{tmp_path / 'f.png' / 'g.png'}: cannot open (Not a directory"
    )
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.png"
        locked.write_bytes(b"\x89PNG\r\n\x1a\n")
        locked.chmod(0)
        assert refused(locked) == f"{locked}: permission denied"


def test_dev_stdin_from_a_pipe_through_the_real_cli(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cnncli", "filter", "/dev/stdin", "-k", "box"]
        + ["-o", str(tmp_path / "o.png")],
        input=(SAMPLES / "camera.png").read_bytes(),
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stdout == b""
    assert proc.stderr == (
        b"cnncli: error: /dev/stdin: is a pipe, not a regular file; save it to a file first\n"
    )
    assert not (tmp_path / "o.png").exists()


# ------------------------------------------------------------------ .npy


def npy_header_only(path: Path, shape: tuple[int, ...], dtype: str = "<f4") -> None:
    """A .npy file whose header claims ``shape`` and holds no data."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": dtype, "fortran_order": False, "shape": shape}
        )


def test_npy_pixels_are_checked_from_the_header(tmp_path: Path) -> None:
    big = tmp_path / "big.npy"
    npy_header_only(big, (12000, 12000))
    expected = (
        f"{big}: 12000×12000 = 144,000,000 pixels is more than 1,000 pixels, refused before "
        "loading; raise the limit with --max-pixels N if you trust the file"
    )
    assert refused(big, max_pixels=1000) == expected
    with limits.override(pixels=1000):
        assert refused(big) == expected


def test_npy_pixel_limit_is_exact(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.ones((30, 40, 3), np.float32))
    assert load_image(tmp_path / "a.npy", max_pixels=1200).data.shape == (30, 40, 3)
    assert "40×30 = 1,200 pixels is more than 1,199 pixels" in refused(
        tmp_path / "a.npy", max_pixels=1199
    )
    with limits.override(pixels=1199):
        assert "is more than 1,199 pixels" in refused(tmp_path / "a.npy")
        # An explicit max_pixels (the filter's --max-pixels) wins over the budget.
        assert load_image(tmp_path / "a.npy", max_pixels=1200).channels == 3


def test_a_huge_npy_header_is_refused_before_any_allocation(tmp_path: Path) -> None:
    huge = tmp_path / "huge.npy"
    npy_header_only(huge, (100000, 100000), "<f8")
    tracemalloc.start()
    try:
        default = refused(huge)
        with limits.override(pixels=10**11):
            truncated = refused(huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert default == (
        f"{huge}: 100000×100000 = 10,000,000,000 pixels is more than 89,478,485 pixels, "
        "refused before loading; raise the limit with --max-pixels N if you trust the file"
    )
    assert truncated == (
        f"{huge}: truncated .npy array: its header promises 100000×100000 float64 "
        "(80,000,000,000 bytes) but the file holds 0"
    )
    assert peak < 1 << 20


def test_empty_truncated_and_broken_npy(tmp_path: Path) -> None:
    (tmp_path / "empty.npy").write_bytes(b"")
    assert refused(tmp_path / "empty.npy") == f"{tmp_path / 'empty.npy'}: empty; {GIVE}"
    np.save(tmp_path / "a.npy", np.zeros((3, 4)))
    whole = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(whole[:-8])
    assert refused(tmp_path / "cut.npy") == (
        f"{tmp_path / 'cut.npy'}: truncated .npy array: its header promises 3×4 float64 "
        "(96 bytes) but the file holds 88"
    )
    (tmp_path / "head.npy").write_bytes(whole[:20])
    assert refused(tmp_path / "head.npy").startswith(
        f"{tmp_path / 'head.npy'}: not a NumPy .npy array (EOF: reading array header"
    )
    assert peek(tmp_path / "cut.npy") is None and peek(tmp_path / "head.npy") is None


def test_empty_npy_through_the_cli_is_not_aborted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """np.load raised EOFError on it, which Click turned into "aborted", exit 130."""
    (tmp_path / "e.npy").write_bytes(b"")
    code, out, err = run(["filter", tmp_path / "e.npy", "-k", "box"], capsys)
    assert code == 1 and out == ""
    assert err == f"cnncli: error: {tmp_path / 'e.npy'}: empty; {GIVE}\n"


def test_an_npz_saved_as_npy(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", a=np.zeros((2, 2)))
    os.replace(tmp_path / "x.npz", tmp_path / "x.npy")
    assert refused(tmp_path / "x.npy") == (
        f"{tmp_path / 'x.npy'}: a NumPy .npz archive (zip), not a .npy array; save one array "
        "with numpy.save"
    )


def test_npy_objects_never_unpickled(tmp_path: Path) -> None:
    np.save(tmp_path / "o.npy", np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    assert refused(tmp_path / "o.npy") == (
        f"{tmp_path / 'o.npy'}: not a NumPy .npy array of numbers: it holds Python objects "
        "(pickled), which cnncli never loads; save real numbers"
    )


@pytest.mark.parametrize("dtype", [">f8", "<i2", ">u2", "|u1", "|b1"])
@pytest.mark.parametrize("fortran", [False, True])
def test_npy_orders_and_byte_orders_read_as_numpy_reads_them(
    tmp_path: Path, dtype: str, fortran: bool
) -> None:
    a = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(dtype)
    np.save(tmp_path / "a.npy", np.asfortranarray(a) if fortran else a)
    pic = load_image(tmp_path / "a.npy")
    np.testing.assert_array_equal(pic.data, np.load(tmp_path / "a.npy").astype(np.float32))


def test_npy_through_the_cli_uses_the_pixel_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    npy_header_only(tmp_path / "big.npy", (12000, 12000))
    code, out, err = run(
        ["filter", tmp_path / "big.npy", "-k", "box", "--max-pixels", "1000"], capsys
    )
    assert code == 1 and out == ""
    assert err == (
        f"cnncli: error: {tmp_path / 'big.npy'}: 12000×12000 = 144,000,000 pixels is more than "
        "1,000 pixels, refused before loading; raise the limit with --max-pixels N if you trust "
        "the file\n"
    )


# ------------------------------------------------------------------ damaged files: one line


def _ifd(tiff: bytes) -> list[tuple[int, int, str]]:
    """(entry offset, tag, byte order) of each entry of a TIFF's first IFD."""
    order = "<" if tiff[:2] == b"II" else ">"
    at = struct.unpack(order + "I", tiff[4:8])[0]
    n = struct.unpack(order + "H", tiff[at : at + 2])[0]
    out = []
    for i in range(n):
        e = at + 2 + 12 * i
        out.append((e, struct.unpack(order + "H", tiff[e : e + 2])[0], order))
    return out


def _set_field(tiff: bytes, tag: int, value: bytes) -> bytes:
    """``tiff`` with the value/offset field of ``tag`` replaced (packed in its byte order)."""
    b = bytearray(tiff)
    for e, t, _ in _ifd(tiff):
        if t == tag:
            b[e + 8 : e + 8 + len(value)] = value
            return bytes(b)
    raise KeyError(tag)


def _far(tiff: bytes) -> bytes:
    order = "<" if tiff[:2] == b"II" else ">"
    return struct.pack(order + "I", 0x7FFFFFF0)


def test_a_damaged_tiff_tag_is_one_warning_line(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (5, 4), (10, 20, 30)).save(buf, format="TIFF", tiffinfo={305: "s" * 40})
    raw = buf.getvalue()
    (tmp_path / "t.tif").write_bytes(_set_field(raw, 305, _far(raw)))  # Software: past the end
    said: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may escape as a Python warning
        pic = load_image(tmp_path / "t.tif", warn=said.append)
        assert load_image(tmp_path / "t.tif").describe() == "5×4 RGB 8-bit"  # no warn: silent
    assert pic.describe() == "5×4 RGB 8-bit"
    assert said == [
        f"{tmp_path / 't.tif'}: read despite damage (TIFF tag 305: invalid value offset 2147483632)"
    ]


def test_damaged_exif_in_a_jpeg_is_one_warning_line(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[270] = "x" * 40
    data = exif.tobytes()
    assert data.startswith(b"Exif\x00\x00")
    tiff = data[6:]
    Image.new("RGB", (5, 4)).save(
        tmp_path / "e.jpg", exif=b"Exif\x00\x00" + _set_field(tiff, 270, _far(tiff))
    )
    said: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(tmp_path / "e.jpg", warn=said.append).data.shape == (4, 5, 3)
    assert said == [f"{tmp_path / 'e.jpg'}: read despite damage (Truncated File Read)"]


def test_a_damaged_file_warning_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    buf = io.BytesIO()
    Image.new("L", (8, 6), 9).save(buf, format="TIFF", tiffinfo={305: "s" * 40})
    raw = buf.getvalue()
    (tmp_path / "t.tif").write_bytes(_set_field(raw, 305, _far(raw)))
    code, out, err = run(
        ["filter", tmp_path / "t.tif", "-k", "box", "-o", tmp_path / "o.png"], capsys
    )
    assert code == 0 and out != ""
    assert err == (
        f"cnncli: warning: {tmp_path / 't.tif'}: read despite damage (TIFF tag 305: invalid "
        "value offset 2147483632)\n"
    )


def _zip_tiff(compression: str = "tiff_adobe_deflate") -> tuple[bytes, int]:
    a = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="TIFF", compression=compression)
    raw = buf.getvalue()
    (e, _, order) = next(x for x in _ifd(raw) if x[1] == 273)  # StripOffsets: one strip
    return raw, struct.unpack(order + "I", raw[e + 8 : e + 12])[0]


def test_a_damaged_deflate_strip_is_one_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """tifffile reads deflate TIFFs: a damaged strip is its zlib error, in one line."""
    raw, strip = _zip_tiff()
    bad = bytearray(raw)
    bad[strip + 20 : strip + 40] = bytes(20)
    (tmp_path / "z.tif").write_bytes(bytes(bad))
    capfd.readouterr()
    assert refused(tmp_path / "z.tif") == (
        f"{tmp_path / 'z.tif'}: damaged image (Error -3 while decompressing data: incorrect "
        "data check)"
    )
    assert capfd.readouterr() == ("", "")


def test_libtiff_prints_nothing_on_a_damaged_strip(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """libtiff (Pillow reads the LZW TIFFs tifffile leaves to it) wrote "LZWDecode: Corrupted
    LZW table at scanline 0" straight to the process's stderr, beside cnncli's own line."""
    raw, strip = _zip_tiff("tiff_lzw")
    bad = bytearray(raw)
    bad[strip + 1 : strip + 40] = b"\xff" * 39
    (tmp_path / "z.tif").write_bytes(bytes(bad))
    capfd.readouterr()
    text = refused(tmp_path / "z.tif")
    assert text.startswith(f"{tmp_path / 'z.tif'}: truncated or damaged image (")
    assert capfd.readouterr() == ("", "")


def test_pillow_logging_prints_nothing(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Pillow logs "More samples per pixel than can be decoded: 119" before refusing; with no
    logging set up, Python's last-resort handler printed it to stderr."""
    raw, _ = _zip_tiff()
    order = "<" if raw[:2] == b"II" else ">"
    (tmp_path / "s.tif").write_bytes(_set_field(raw, 277, struct.pack(order + "H", 119)))
    capfd.readouterr()
    assert peek(tmp_path / "s.tif") is None
    assert refused(tmp_path / "s.tif") == (
        f"{tmp_path / 's.tif'}: damaged TIFF file (its header cannot be read)"
    )
    assert capfd.readouterr() == ("", "")


def test_a_bomb_between_the_limit_and_twice_it_warns_nothing(tmp_path: Path) -> None:
    Image.new("L", (100, 100)).save(tmp_path / "b.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with limits.override(pixels=9000):
            assert "10,000 pixels is more than 9,000 pixels" in refused(tmp_path / "b.png")
            assert peek(tmp_path / "b.png") == (np.uint8, (100, 100))
    assert Image.MAX_IMAGE_PIXELS == 89478485


# ------------------------------------------------------------------ fuzzing


def _bases() -> dict[str, bytes]:
    rng = np.random.default_rng(3)
    a8 = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    a16 = rng.integers(0, 65536, (9, 11), dtype=np.uint16)
    out: dict[str, bytes] = {}

    def save(name: str, im: Image.Image, **kw: Any) -> None:
        buf = io.BytesIO()
        im.save(buf, **kw)
        out[name] = buf.getvalue()

    exif = Image.Exif()
    exif[0x0112] = 6
    save("png8", Image.fromarray(a8), format="PNG")
    save("png16", Image.fromarray(a16), format="PNG")
    save("jpeg", Image.fromarray(a8), format="JPEG", exif=exif)
    save("tiff", Image.fromarray(a8), format="TIFF", compression="tiff_lzw")
    save("tiff_zip", Image.fromarray(a8), format="TIFF", compression="tiff_adobe_deflate")
    save("bmp", Image.fromarray(a8), format="BMP")
    save("webp", Image.fromarray(a8), format="WEBP", lossless=True)
    save("gif", Image.fromarray(a8).convert("P"), format="GIF")
    save("ppm", Image.fromarray(a8), format="PPM")
    buf = io.BytesIO()
    np.save(buf, a8.astype(np.float32))
    out["npy"] = buf.getvalue()
    for name in ("rgb16_interlaced.png", "ga16_interlaced.png", "rgb16_zip.tif"):
        out[name] = (SIXTEEN / name).read_bytes()
    for name in ("rgb16_lzw_tiled.tif", "rgb16_planar.tif", "rgb16_rot6.tif", "rgb16.ppm"):
        out[name] = (SIXTEEN / name).read_bytes()
    return out


BASES = _bases()

mutations = st.lists(
    st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=6
)


@pytest.mark.parametrize("name", sorted(BASES))
@settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(changes=mutations, cut=st.none() | st.floats(0, 1), gray=st.booleans())
def test_fuzz_the_opener_with_mutated_files(
    tmp_path: Path, name: str, changes: list[tuple[float, int]], cut: float | None, gray: bool
) -> None:
    """Only CnnCliError subclasses, one line each, and no Python warning escaping."""
    data = bytearray(BASES[name])
    for where, byte in changes:
        data[int(where * len(data))] = byte
    if cut is not None:
        data = data[: int(cut * len(data))]
    path = tmp_path / "fuzzed.png"
    path.write_bytes(bytes(data))
    said: list[str] = []
    with warnings.catch_warnings(), limits.override(pixels=1 << 16):
        warnings.simplefilter("error")
        hint = peek(path)
        assert hint is None or (len(hint) == 2 and hint[0] in (np.uint8, np.uint16, np.float32))
        try:
            pic = load_image(path, warn=said.append, gray=gray)
            assert pic.alpha is None or pic.alpha.shape == pic.data.shape[:2]
        except CnnCliError as err:
            text = str(err)
            assert text.startswith(f"{path}: ") and "\n" not in text
    assert all("\n" not in line for line in said)


def test_fuzz_bases_are_the_formats_they_are_named_for() -> None:
    formats = {name: read._sniff(data[:16]) for name, data in BASES.items()}
    assert set(formats.values()) == {"PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF", "PPM", "NPY"}
    for name in BASES:
        assert load_image_bytes(name).data.size > 0


def load_image_bytes(name: str) -> images.Picture:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(BASES[name])
        return load_image(path)


def test_stat_is_what_decides_special_files() -> None:
    """The refusal table names every special kind stat can report."""
    kinds = [stat.S_IFDIR, stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK]
    texts = {str(read._not_regular(Path("p"), k)) for k in kinds}
    assert len(texts) == len(kinds)
