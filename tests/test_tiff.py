"""cnncli.tiff: the streaming, multi-threaded TIFF encoder, decoded by Pillow, OpenCV, tifffile
and ImageMagick, plus a structural check of the file against the TIFF 6.0 rules it claims."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import encoders  # tests/encoders.py: pytest puts tests/ on sys.path (rootdir-relative imports)
import numpy as np
import numpy.typing as npt
import pytest
from encoders import PNG, TIFF, make, pillow_pixels  # tests/encoders.py, shared with test_png
from PIL import Image

import cnncli.tiff
from cnncli.tiff import TiffWriter, write_tiff

CHANNELS = [1, 2, 3, 4]
# (height, width): one pixel, one row, one column, odd widths, and with SMALL_STRIPS several
# strips, the last one short: 53 rows is a prime, RowsPerStrip 5 to 40 here.
SIZES = [(1, 1), (1, 9), (9, 1), (13, 31), (53, 37)]
SMALL_STRIPS = 1500  # bytes a strip, so that the small pictures above span several strips
MAGICK = "/usr/bin/convert"  # the real ImageMagick, not a stand-in earlier on PATH


encode = TIFF.encode  # TIFF bytes of an image, fed to TiffWriter in bands of the given row counts


def every_layout(test: Callable[..., None]) -> Callable[..., None]:
    """Run ``test`` for every layout the writer makes: c, bits, compression and predictor."""
    for name, values in [
        ("predictor", [True, False]),
        ("compression", ["deflate", "none"]),
        ("bits", [8, 16]),
        ("c", CHANNELS),
    ]:  # applied as stacked decorators would be, from the innermost
        test = pytest.mark.parametrize(name, values)(test)
    return test


# --- a small reader of exactly what the writer claims to write --------------------------------

_TYPES = {3: ("H", 2), 4: ("I", 4)}  # SHORT, LONG: the only field types the writer uses


def parse(data: bytes) -> dict[int, tuple[int, ...]]:
    """The tags of the only IFD, checking the layout rules of TIFF 6.0 on the way.

    Header "II", 42; tags ascending; IFD, out-of-line values and strips on even offsets, inside
    the file and not overlapping; a zero next-IFD offset.
    """
    assert data[:4] == b"II*\0"
    (ifd,) = struct.unpack_from("<I", data, 4)
    assert ifd >= 8 and ifd % 2 == 0
    (n,) = struct.unpack_from("<H", data, ifd)
    regions = [(0, 8), (ifd, ifd + 2 + 12 * n + 4)]
    tags: dict[int, tuple[int, ...]] = {}
    order = []
    for i in range(n):
        tag, kind, count, field = struct.unpack_from("<HHI4s", data, ifd + 2 + 12 * i)
        fmt, size = _TYPES[kind]
        order.append(tag)
        if count * size <= 4:
            tags[tag] = struct.unpack_from(f"<{count}{fmt}", field)
        else:
            (at,) = struct.unpack("<I", field)
            assert at % 2 == 0
            regions.append((at, at + count * size))
            tags[tag] = struct.unpack_from(f"<{count}{fmt}", data, at)
    assert order == sorted(set(order)), "tags must ascend, each once"
    assert struct.unpack_from("<I", data, ifd + 2 + 12 * n) == (0,)
    offsets, counts = tags[273], tags[279]
    assert len(offsets) == len(counts)
    for at, size in zip(offsets, counts, strict=True):
        assert at % 2 == 0
        regions.append((at, at + size))
    regions.sort()
    for (_, end), (start, _) in zip(regions, regions[1:], strict=False):
        assert 0 <= start - end <= 1, "regions overlap or leave more than a padding byte"
    assert 0 <= len(data) - regions[-1][1] <= 1
    return tags


def decode_strips(data: bytes, tags: dict[int, tuple[int, ...]]) -> npt.NDArray[Any]:
    """Pixels from the strips by hand: inflate, then undo Predictor 2 with a wrapping cumsum."""
    (w,), (h,), (c,) = tags[256], tags[257], tags[277]
    bits = tags[258][0]
    dtype = np.dtype("<u1" if bits == 8 else "<u2")
    raw = b""
    for at, size in zip(tags[273], tags[279], strict=True):
        strip = data[at : at + size]
        raw += zlib.decompress(strip) if tags[259] == (8,) else strip
    a = np.frombuffer(raw, dtype).reshape(h, w, c)
    if tags.get(317) == (2,):
        a = np.cumsum(a, axis=1, dtype=dtype)  # unsigned: wraps mod 2**bits as the reader must
    return a if c > 1 else a[..., 0]


def cases(c: int, bits: int, seed: int) -> list[npt.NDArray[Any]]:
    return [make("mixed", h, w, c, bits, seed=seed + h * 100 + w) for h, w in SIZES]


# --- structure ---------------------------------------------------------------------------------


@every_layout
def test_structure_and_tags(
    c: int, bits: int, compression: str, predictor: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cnncli.tiff, "_STRIP_BYTES", SMALL_STRIPS)
    for img in cases(c, bits, seed=1):
        h, w = img.shape[:2]
        data = encode(img, compression=compression, predictor=predictor)
        tags = parse(data)
        rps = max(1, min(h, SMALL_STRIPS // (w * c * bits // 8)))
        expect = {
            256: (w,),
            257: (h,),
            258: (bits,) * c,
            259: (8 if compression == "deflate" else 1,),
            262: (1 if c <= 2 else 2,),
            277: (c,),
            278: (rps,),
            284: (1,),
            339: (1,) * c,
        }
        if predictor and compression == "deflate":
            expect[317] = (2,)  # never on uncompressed strips: libtiff would not undo it
        if c in (2, 4):
            expect[338] = (2,)  # unassociated alpha
        assert {k: v for k, v in tags.items() if k not in (273, 279)} == expect
        assert len(tags[273]) == -(-h // rps)
        assert h < 53 or (h % rps and h > rps), "the tallest case must end on a short strip"
        np.testing.assert_array_equal(decode_strips(data, tags), img, err_msg=f"{h}×{w}")


def test_predictor_differences_and_shrinks_smooth_pictures() -> None:
    # A gradient differenced along the row is a few repeated small steps: much smaller.
    for bits in (8, 16):
        img = make("gradient", 64, 500, 3, bits)
        on, off = encode(img, predictor=True), encode(img, predictor=False)
        assert len(on) < 0.7 * len(off)
        tags = parse(on)
        first = zlib.decompress(on[tags[273][0] : tags[273][0] + tags[279][0]])
        dtype = np.dtype("<u1" if bits == 8 else "<u2")
        row = np.frombuffer(first, dtype)[: 500 * 3].reshape(500, 3)
        np.testing.assert_array_equal(row[0], img[0, 0])
        np.testing.assert_array_equal(row[1:], (img[0, 1:] - img[0, :-1]).astype(dtype))


def test_default_strips_of_a_large_picture() -> None:
    # 1000-byte rows: 524 rows a strip (~512 KB), so 1201 rows make 3 strips, the last short.
    img = make("mixed", 1201, 1000, 1, 8)
    data = encode(img)
    tags = parse(data)
    assert tags[278] == (524,) and len(tags[273]) == 3
    np.testing.assert_array_equal(pillow_pixels(data), img)
    np.testing.assert_array_equal(decode_strips(data, tags), img)


def test_levels_round_trip_and_level_1_is_run_length() -> None:
    img = make("mixed", 40, 61, 3, 8)
    sizes = {}
    for level in (0, 1, 2, 6, 9):
        data = encode(img, level=level)
        sizes[level] = len(data)
        np.testing.assert_array_equal(pillow_pixels(data), img)
    assert sizes[0] > max(sizes[k] for k in (1, 2, 6, 9))  # level 0 stores
    tags = parse(encode(img, level=1, predictor=False))
    strip = encode(img, level=1, predictor=False)[tags[273][0] :][: tags[279][0]]
    comp = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    assert strip == comp.compress(img[: tags[278][0]].tobytes()) + comp.flush()


# --- Pillow ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "c,bits", [(1, 8), (2, 8), (3, 8), (4, 8), (1, 16)]
)  # Pillow reads 16-bit colour as 8-bit and has no 16-bit gray+alpha mode
@pytest.mark.parametrize("compression", ["deflate", "none"])
@pytest.mark.parametrize("predictor", [True, False])
def test_pillow_round_trip(
    c: int, bits: int, compression: str, predictor: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cnncli.tiff, "_STRIP_BYTES", SMALL_STRIPS)
    for img in cases(c, bits, seed=2):
        data = encode(img, compression=compression, predictor=predictor)
        with Image.open(io.BytesIO(data)) as im:
            assert im.mode == ({1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[c] if bits == 8 else "I;16")
        np.testing.assert_array_equal(pillow_pixels(data), img, err_msg=f"{img.shape}")


# --- tifffile: every combination, exactly ------------------------------------------------------


@pytest.mark.oracle
@every_layout
def test_tifffile_round_trip(
    c: int, bits: int, compression: str, predictor: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tifffile inflates with zlib and undoes Predictor 2 in NumPy when imagecodecs is absent.
    tifffile = pytest.importorskip("tifffile")
    monkeypatch.setattr(cnncli.tiff, "_STRIP_BYTES", SMALL_STRIPS)
    for img in cases(c, bits, seed=3):
        data = encode(img, compression=compression, predictor=predictor, threads=3)
        with tifffile.TiffFile(io.BytesIO(data)) as tf:
            page = tf.pages[0]
            assert page.photometric == (1 if c <= 2 else 2)
            assert tuple(page.extrasamples) == ((2,) if c in (2, 4) else ())
            got = page.asarray()
        np.testing.assert_array_equal(got, img, err_msg=f"{img.shape}")
        assert got.dtype == img.dtype


# --- OpenCV (libtiff) ----------------------------------------------------------------------------


@pytest.mark.oracle
@every_layout
def test_cv2_round_trip(
    c: int,
    bits: int,
    compression: str,
    predictor: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cv2 = pytest.importorskip("cv2")
    monkeypatch.setattr(cnncli.tiff, "_STRIP_BYTES", SMALL_STRIPS)
    for i, img in enumerate(cases(c, bits, seed=4)):
        path = tmp_path / f"{i}.tif"
        with open(path, "wb") as fh:
            write_tiff(fh, img, compression=compression, predictor=predictor)  # type: ignore[arg-type]
        got = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert got is not None
        msg = f"{img.shape}"
        if c == 1:
            np.testing.assert_array_equal(got, img, err_msg=msg)
        elif c == 2:
            # OpenCV drops the alpha of gray+alpha, and keeps the high byte of 16-bit gray.
            np.testing.assert_array_equal(got, img[..., 0] >> (bits - 8), err_msg=msg)
        elif c == 3:
            np.testing.assert_array_equal(got[..., ::-1], img, err_msg=msg)  # BGR
        elif bits == 16:
            np.testing.assert_array_equal(got[..., [2, 1, 0, 3]], img, err_msg=msg)  # BGRA
        else:
            # 8-bit RGBA goes through libtiff's RGBA interface, which premultiplies
            # unassociated alpha: round(v * a / 255).
            rgba = got[..., [2, 1, 0, 3]]
            np.testing.assert_array_equal(rgba[..., 3], img[..., 3], err_msg=msg)
            pre = (img[..., :3].astype(np.int32) * img[..., 3:] + 127) // 255
            np.testing.assert_array_equal(rgba[..., :3], pre, err_msg=msg)


@pytest.mark.oracle
def test_cv2_reads_16bit_colour_photo_sized_strips(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    img = make("mixed", 301, 999, 3, 16, seed=5)  # ~1.8 MB: 4 strips of 87 rows, the last 40
    path = tmp_path / "deep.tif"
    with open(path, "wb") as fh:
        write_tiff(fh, img)
    assert len(parse(path.read_bytes())[273]) == 4
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1], img)


# --- ImageMagick ---------------------------------------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("compression", ["deflate", "none"])
def test_imagemagick_round_trip(
    c: int, bits: int, compression: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not os.access(MAGICK, os.X_OK):
        pytest.skip(f"ImageMagick is not installed ({MAGICK})")
    monkeypatch.setattr(cnncli.tiff, "_STRIP_BYTES", SMALL_STRIPS)
    h, w = 53, 37
    img = make("mixed", h, w, c, bits, seed=6)
    path = tmp_path / "im.tif"
    with open(path, "wb") as fh:
        write_tiff(fh, img, compression=compression)  # type: ignore[arg-type]
    out = subprocess.run(
        [MAGICK, str(path), "-depth", str(bits), "-endian", "LSB", "rgba:-"],
        capture_output=True,
        check=True,
    )
    assert out.stderr == b""  # no warnings about the file
    got = np.frombuffer(out.stdout, np.dtype("<u1" if bits == 8 else "<u2")).reshape(h, w, 4)
    px = img.reshape(h, w, c)
    opaque = np.full((h, w, 1), np.iinfo(img.dtype).max, img.dtype)
    color = np.repeat(px[..., :1], 3, axis=2) if c <= 2 else px[..., :3]
    alpha = px[..., -1:] if c in (2, 4) else opaque
    np.testing.assert_array_equal(got, np.concatenate([color, alpha], axis=2))


# --- bands, threads, buffers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "bands",
    [
        [1] * 300,  # many one-row bands
        [300],  # one band
        [1, 299],
        [299, 1],
        [7, 100, 1, 1, 64, 127],  # uneven, crossing strip boundaries anywhere
    ],
)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_band_boundaries_and_threads_do_not_matter(
    bands: list[int], threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cnncli.tiff, "_STRIP_BYTES", 20_000)  # 25 rows a strip, 12 strips
    img = make("mixed", 300, 257, 3, 8)
    data = encode(img, bands=bands, threads=threads)
    np.testing.assert_array_equal(pillow_pixels(data), img)
    # Strips are cut at fixed rows and deflated alike whoever does it: the same bytes.
    assert data == encode(img, threads=1)


def test_uncompressed_strips_skip_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing to compute: write() puts the whole strips in the file before it returns, on the
    # caller's thread, whatever the thread count (in flight on the pool, they would wait).
    monkeypatch.setattr(cnncli.tiff, "_STRIP_BYTES", 100)
    img = make("mixed", 30, 10, 1, 8)
    bio = io.BytesIO()
    with TiffWriter(bio, 10, 30, 1, compression="none", threads=2) as tw:
        tw.write(img[:25])
        assert len(bio.getvalue()) == 8 + 2 * 100  # the header, 2 strips; 5 rows wait for more
        tw.write(img[25:])
    assert bio.getvalue() == encode(img, threads=1, compression="none")


def test_views_big_endian_and_trailing_channel_axis() -> None:
    base = make("mixed", 20, 30, 4, 16)
    view = base[:, ::-2, [2, 1, 0]]  # not contiguous
    data = encode(view, bands=[3, 17])
    np.testing.assert_array_equal(decode_strips(data, parse(data)), view)
    big = view.astype(">u2")
    assert encode(big) == encode(view)
    gray = make("mixed", 9, 11, 1, 8)
    assert encode(gray[..., None], bands=[4, 5]) == encode(gray)
    fortran_big = np.asfortranarray(make("mixed", 40, 30, 1, 16).astype(">u2"))
    assert encode(fortran_big, bands=[17, 23]) == encode(fortran_big.astype(np.uint16))


def test_starts_at_the_file_position_and_ends_after_the_tiff() -> None:
    # Offsets count from the TIFF's own header; the file is left after the TIFF.
    img = make("mixed", 30, 21, 3, 8)
    bio = io.BytesIO()
    bio.write(b"prefix")
    write_tiff(bio, img)
    assert bio.tell() == len(bio.getvalue())
    data = bio.getvalue()
    assert data[6:] == encode(img)


# --- errors and abort ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,kwargs,message",
    [
        (
            (4, 3, 5),
            {},
            r"1 \(gray\), 2 \(gray\+alpha\), 3 \(RGB\) or 4 \(RGBA\) channels here, not 5",
        ),
        ((4, 3, 1, 12), {}, r"8 or 16 here, not 12"),
        ((0, 3, 1), {}, r"width must be an integer from 1 to 2\*\*32-1, not 0"),
        ((4, 2.0, 1), {}, r"height must be an integer"),
        ((4, 3, 1), {"compression": "lzw"}, r"compression must be one of deflate, none, not 'lzw'"),
        ((4, 3, 1), {"level": 10}, r"zlib level must be 0..9, not 10"),
        ((4, 3, 1), {"threads": 0}, r"threads must be ≥ 1, not 0"),
    ],
)
def test_bad_header_values(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TiffWriter(io.BytesIO(), *args, **kwargs)


def test_bad_whole_arrays() -> None:
    with pytest.raises(ValueError, match=r"C from 1 to 4, not shape \(3, 4, 5\)"):
        write_tiff(io.BytesIO(), np.zeros((3, 4, 5), np.uint8))
    with pytest.raises(ValueError, match=r"C from 1 to 4, not shape \(12,\)"):
        write_tiff(io.BytesIO(), np.zeros(12, np.uint8))
    with pytest.raises(ValueError, match=r"at least one pixel, not shape \(0, 4\)"):
        write_tiff(io.BytesIO(), np.zeros((0, 4), np.uint8))


def test_needs_a_seekable_file() -> None:
    class Pipe(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

    with pytest.raises(ValueError, match="needs a seekable file"):
        TiffWriter(Pipe(), 4, 3, 1)  # type: ignore[arg-type]


def test_refuses_what_could_pass_4_gib() -> None:
    # Only sizes are checked: nothing this big is allocated.
    for compression in ("deflate", "none"):
        with pytest.raises(ValueError, match=r"65536×65536 1-channel 8-bit TIFF could pass 4 GiB"):
            TiffWriter(io.BytesIO(), 65536, 65536, 1, compression=compression)
    # 4 GiB minus a little, uncompressed: fits; deflate's worst case does not.
    TiffWriter(io.BytesIO(), 65536, 65534, 1, compression="none").abort()
    with pytest.raises(ValueError, match="could pass 4 GiB"):
        TiffWriter(io.BytesIO(), 65536, 65534, 1)
    TiffWriter(io.BytesIO(), 30000, 20000, 2, 16).abort()  # 2.4 GB fits
    with pytest.raises(ValueError, match="30000×20000 4-channel 16-bit TIFF could pass 4 GiB"):
        TiffWriter(io.BytesIO(), 30000, 20000, 4, 16)  # 4.8 GB


# --- what TiffWriter has from cnncli.encoder: the band pipeline, the shared worker pool -----------


class TestBandEncoder(encoders.BandEncoderTests):
    """Too few or many rows, wrong rows, copies, abort; the pool shared with a PngWriter."""

    fmt, other = TIFF, PNG
