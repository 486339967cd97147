"""cnncli.images._png: the streaming, multi-threaded PNG encoder, decoded by Pillow and OpenCV."""

from __future__ import annotations

import io
import struct
import zlib

import encoders
import numpy as np
import numpy.typing as npt
import pytest
from encoders import PNG, make, pillow_pixels  # tests/encoders.py, shared with test_tiff
from PIL import Image

import cnncli.images._png
from cnncli.images._png import PngWriter, _adler_combine, write_png

CHANNELS = [1, 2, 3, 4]
SIZES = [(1, 1), (1, 9), (9, 1), (5, 7), (13, 31), (300, 257)]  # (height, width)

encode = PNG.encode  # PNG bytes of an image, fed to PngWriter in bands of the given row counts


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, i = [], 8
    while i < len(data):
        (n,) = struct.unpack(">I", data[i : i + 4])
        kind, body = data[i + 4 : i + 8], data[i + 8 : i + 8 + n]
        (crc,) = struct.unpack(">I", data[i + 8 + n : i + 12 + n])
        assert crc == zlib.crc32(kind + body), kind
        out.append((kind, body))
        i += 12 + n
    return out


def check_integrity(data: bytes, h: int, w: int, c: int, bits: int) -> None:
    with Image.open(io.BytesIO(data)) as im:
        im.verify()  # chunk CRCs and structure
    parts = chunks(data)
    assert parts[0][0] == b"IHDR" and parts[-1] == (b"IEND", b"")
    color = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    assert parts[0][1] == struct.pack(">IIBBBBB", w, h, bits, color, 0, 0, 0)
    idat = b"".join(body for kind, body in parts if kind == b"IDAT")
    raw = zlib.decompress(idat)  # raises on a bad zlib header, deflate stream or Adler-32
    assert len(raw) == h * (1 + w * c * bits // 8)
    assert {kind for kind, _ in parts} == {b"IHDR", b"IDAT", b"IEND"}


# --- round trips through Pillow -------------------------------------------------------------


@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("h,w", SIZES)
@pytest.mark.parametrize("kind", ["random", "gradient", "constant"])
def test_pillow_round_trip_8bit(c: int, h: int, w: int, kind: str) -> None:
    img = make(kind, h, w, c, 8, seed=h * 1000 + w)
    data = encode(img)
    check_integrity(data, h, w, c, 8)
    np.testing.assert_array_equal(pillow_pixels(data), img)


@pytest.mark.parametrize("filters", ["up", "none-sub-up", "all"])
@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("kind", ["random", "gradient"])
def test_every_filter_mode_round_trips(filters: str, c: int, kind: str) -> None:
    # Half random, half smooth rows so that "all" really picks several filter types.
    img = make(kind, 40, 33, c, 8, seed=c)
    img[::3] = make("gradient" if kind == "random" else "random", 40, 33, c, 8)[::3]
    data = encode(img, bands=[1, 6, 13, 20], threads=2, filters=filters)
    np.testing.assert_array_equal(pillow_pixels(data), img)


def test_adaptive_filters_pick_several_types() -> None:
    # A white-noise row compresses best unfiltered, a ramp with Sub, a repeated row with Up:
    # "none-sub-up" must use more than one type, else the per-row choice is not working.
    rng = np.random.default_rng(1)
    img = np.zeros((6, 64), np.uint8)
    img[0] = rng.integers(0, 256, 64)
    img[1] = np.arange(64) * 3
    img[2] = img[1]
    img[3] = rng.integers(0, 256, 64)
    img[4] = img[3]
    img[5] = np.arange(64)[::-1]
    data = encode(img, bands=[6], threads=1, filters="none-sub-up")
    idat = b"".join(body for kind, body in chunks(data) if kind == b"IDAT")
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(6, 65)
    assert len(set(raw[:, 0].tolist())) >= 2
    np.testing.assert_array_equal(pillow_pixels(data), img)


@pytest.mark.parametrize("c", [1, 2])
@pytest.mark.parametrize("h,w", [(1, 1), (9, 1), (13, 31)])
@pytest.mark.parametrize("kind", ["random", "gradient", "constant"])
def test_pillow_round_trip_16bit_gray(c: int, h: int, w: int, kind: str) -> None:
    img = make(kind, h, w, c, 16, seed=7)
    data = encode(img)
    check_integrity(data, h, w, c, 16)
    if c == 2:
        return  # Pillow has no 16-bit gray+alpha mode; OpenCV checks it below
    got = pillow_pixels(data)  # mode I;16 or I, depending on the Pillow version
    np.testing.assert_array_equal(got.astype(np.int64), img.astype(np.int64))


@pytest.mark.parametrize(
    "bands",
    [
        [1] * 300,  # many tiny bands
        [300],  # one band
        [1, 299],
        [299, 1],
        [7, 100, 1, 1, 64, 127],  # uneven
        [150, 150],
    ],
)
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("piece_bytes", [1 << 20, 5000])
def test_band_boundaries_do_not_matter(
    bands: list[int], threads: int, piece_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small pieces: the writer also cuts and joins the caller's bands into many deflate pieces.
    monkeypatch.setattr(cnncli.images._png, "_BAND_BYTES", piece_bytes)
    img = make("gradient", 300, 257, 3, 8)
    img[100:140] = make("random", 40, 257, 3, 8)
    data = encode(img, bands=bands, threads=threads)
    np.testing.assert_array_equal(pillow_pixels(data), img)
    # The pixels, filters and deflate pieces do not depend on the thread count.
    assert data == encode(img, bands=bands, threads=1)


def test_large_image_spans_many_deflate_pieces() -> None:
    # > 1 MB of raw rows: several bands, so several IDAT pieces joined by sync flushes.
    img = make("random", 1200, 1000, 1, 8)
    img[:600] = make("gradient", 600, 1000, 1, 8)
    data = encode(img, bands=[1000, 200], threads=2, filters="all")
    parts = [kind for kind, _ in chunks(data)]
    assert parts.count(b"IDAT") >= 3
    check_integrity(data, 1200, 1000, 1, 8)
    np.testing.assert_array_equal(pillow_pixels(data), img)


def test_file_size_close_to_one_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    # Z_RLE only matches at distance 1, so cutting the stream into independent pieces costs
    # only the sync-flush markers and block headers.
    monkeypatch.setattr(cnncli.images._png, "_BAND_BYTES", 35_000)  # 50-row pieces
    img = make("gradient", 400, 700, 1, 8)
    img[::2] //= 2
    data = encode(img, threads=2)
    assert [kind for kind, _ in chunks(data)].count(b"IDAT") == 9  # 8 pieces + the stream end
    ours = len(data)
    filtered = np.empty((400, 701), np.uint8)
    filtered[:, 0] = 2
    filtered[0, 1:] = img[0]
    filtered[1:, 1:] = img[1:] - img[:-1]
    comp = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    one = len(comp.compress(filtered.tobytes()) + comp.flush())
    overhead = 8 + 25 + 12 + 9 * 12  # signature, IHDR, IEND, IDAT chunk frames
    assert abs(ours - overhead - one) <= 8 * 60  # a few dozen bytes per piece at most


def test_adler_combine_matches_zlib() -> None:
    rng = np.random.default_rng(3)
    for n1, n2 in [(0, 5), (5, 0), (1, 1), (1000, 70000), (65521, 3)]:
        x = rng.integers(0, 256, n1, dtype=np.uint8).tobytes()
        y = rng.integers(0, 256, n2, dtype=np.uint8).tobytes()
        ax, ay = zlib.adler32(x), zlib.adler32(y)
        a, b = _adler_combine(ax & 0xFFFF, ax >> 16, ay & 0xFFFF, ay >> 16, n2)
        assert (b << 16) | a == zlib.adler32(x + y)


# --- OpenCV as a second decoder ---------------------------------------------------------------


def cv2_pixels(data: bytes, c: int) -> npt.NDArray[np.generic]:
    cv2 = pytest.importorskip("cv2")
    got = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert got is not None
    if c == 3:
        got = got[..., ::-1]  # BGR → RGB
    elif c == 4:
        got = got[..., [2, 1, 0, 3]]  # BGRA → RGBA
    return np.asarray(got)


@pytest.mark.oracle
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("c", [1, 3, 4])
@pytest.mark.parametrize("h,w", [(1, 1), (1, 9), (9, 1), (13, 31), (300, 257)])
def test_cv2_round_trip(bits: int, c: int, h: int, w: int) -> None:
    pytest.importorskip("cv2")
    img = make("random", h, w, c, bits, seed=bits + c)
    img[: h // 2] = make("gradient", h, w, c, bits)[: h // 2]
    data = encode(img, bands=[h // 3 + 1, h - h // 3 - 1] if h > 1 else [1], threads=3)
    check_integrity(data, h, w, c, bits)
    got = cv2_pixels(data, c)
    np.testing.assert_array_equal(got, img.reshape(got.shape))


@pytest.mark.oracle
@pytest.mark.parametrize("bits", [8, 16])
def test_cv2_gray_alpha(bits: int) -> None:
    cv2 = pytest.importorskip("cv2")
    img = make("random", 11, 17, 2, bits)
    data = encode(img)
    got = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    # OpenCV expands gray+alpha to BGRA: gray in B, G and R.
    np.testing.assert_array_equal(got[..., 0], img[..., 0])
    np.testing.assert_array_equal(got[..., 2], img[..., 0])
    np.testing.assert_array_equal(got[..., 3], img[..., 1])


# --- errors -----------------------------------------------------------------------------------


def test_big_endian_rows_are_refused() -> None:
    pw = PngWriter(io.BytesIO(), 4, 3, 1, bits=16)
    with pytest.raises(ValueError, match=r"16-bit samples must be uint16, not >u2"):
        pw.write(np.zeros((3, 4), ">u2"))  # unlike TiffWriter (see test_tiff)
    pw.abort()


def test_bad_header_values() -> None:
    with pytest.raises(
        ValueError, match=r"1 \(gray\), 2 \(gray\+alpha\), 3 \(RGB\) or 4 \(RGBA\) channels, not 5"
    ):
        PngWriter(io.BytesIO(), 4, 3, 5)
    with pytest.raises(ValueError, match=r"C from 1 to 4, not shape \(3, 4, 5\)"):
        write_png(io.BytesIO(), np.zeros((3, 4, 5), np.uint8))
    with pytest.raises(ValueError, match=r"8 or 16 here, not 12"):
        PngWriter(io.BytesIO(), 4, 3, 1, bits=12)
    with pytest.raises(ValueError, match=r"width must be an integer from 1"):
        PngWriter(io.BytesIO(), 0, 3, 1)
    with pytest.raises(
        ValueError, match=r"filters must be one of up, none-sub-up, all, not 'paeth'"
    ):
        PngWriter(io.BytesIO(), 4, 3, 1, filters="paeth")  # type: ignore[arg-type]


def test_threads_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from cnncli.config import usable_cores

    monkeypatch.setenv("CNNCLI_THREADS", "3")
    assert usable_cores() == 3
    monkeypatch.setenv("CNNCLI_THREADS", "zero")
    assert usable_cores() >= 1


# --- the band loop and the shared worker pool ----------------------------------------------------


class TestBandEncoder(encoders.BandEncoderTests):
    """Too few or many rows, wrong rows, copies, abort; the pool shared with a TiffWriter."""

    fmt, other = PNG, PNG
