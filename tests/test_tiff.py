"""TIFF writing: tifffile writes the file, cnncli.images.write encodes its strips (horizontal
predictor, deflate level 1 run-length, on the shared worker pool) as the bands come. Decoded by
Pillow, tifffile, OpenCV and ImageMagick; the tags checked; bands and threads change no byte."""

from __future__ import annotations

import os
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import tifffile
from encoders import make  # tests/encoders.py: pytest puts tests/ on sys.path
from PIL import Image

from cnncli.images import Picture, save_result
from cnncli.images import write as w

CHANNELS = [1, 2, 3, 4]  # gray, gray+alpha, RGB, RGBA
# (height, width): one pixel, one row, one column, odd widths, and with SMALL_STRIPS several
# strips, the last one short: 53 rows is a prime.
SIZES = [(1, 1), (1, 9), (9, 1), (13, 31), (53, 37)]
SMALL_STRIPS = 1500  # bytes a strip, so that the small pictures above span several strips
MAGICK = "/usr/bin/convert"  # the real ImageMagick, not a stand-in earlier on PATH


def write(path: Path, img: npt.NDArray[Any], bands: list[int] | None = None) -> None:
    """Write ``img`` (H×W or H×W×C, C = 1..4, alpha last) as the TIFF writer of save_result
    does, fed in bands of the given row counts (or whole)."""
    c = 1 if img.ndim == 2 else img.shape[2]
    bits = 8 if img.dtype == np.uint8 else 16
    alpha = img[..., -1] if c in (2, 4) else None
    out = w._Output(path, "TIFF", (img.shape[0], img.shape[1]), 1 if c <= 2 else 3, bits, alpha)
    cuts = bands or [img.shape[0]]
    assert sum(cuts) == img.shape[0]

    def rows() -> Iterator[npt.NDArray[Any]]:
        r = 0
        for n in cuts:
            yield img[r : r + n]
            r += n

    w._write_tiff(path, out, rows())


def cases(c: int, bits: int, seed: int) -> list[npt.NDArray[Any]]:
    return [make("mixed", h, wd, c, bits, seed=seed + i) for i, (h, wd) in enumerate(SIZES)]


@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("bits", [8, 16])
def test_tags_and_strips(
    c: int, bits: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(w, "_STRIP_BYTES", SMALL_STRIPS)
    img = make("mixed", 53, 37, c, bits, seed=1)
    write(tmp_path / "t.tif", img, [5, 20, 1, 27])
    with tifffile.TiffFile(tmp_path / "t.tif") as tif:
        assert len(tif.pages) == 1 and not tif.is_bigtiff and tif.byteorder == "<"
        page = tif.pages.first
        tags = {t.code: t.value for t in page.tags.values()}
        per_strip = max(1, SMALL_STRIPS // (37 * c * bits // 8))
        assert tags[259] == 8 and tags[317] == 2  # Adobe deflate, horizontal predictor
        assert tags[262] == (1 if c <= 2 else 2)  # BlackIsZero or RGB
        assert tags[278] == per_strip and len(tags[273]) == -(-53 // per_strip)
        assert tags.get(338) == ((2,) if c in (2, 4) else None)  # unassociated alpha
        assert 270 not in tags and 305 not in tags  # no JSON description, no Software
        assert page.bitspersample == bits
        # Every strip is one zlib stream of the predictor's differences, run-length only
        # (level 1 with Z_RLE: the header says "fastest").
        with open(tmp_path / "t.tif", "rb") as fh:
            fh.seek(tags[273][0])
            first = fh.read(tags[279][0])
        assert first[:2] == b"\x78\x01"
        flat = img.reshape(53, -1).astype("<u2" if bits == 16 else np.uint8)[:per_strip]
        diff = flat.copy()
        diff[:, c:] = flat[:, c:] - flat[:, :-c]
        assert zlib.decompress(first) == diff.tobytes()


def test_predictor_shrinks_smooth_pictures(tmp_path: Path) -> None:
    # A gradient differenced along the row is a few repeated small steps: much smaller than
    # the same samples deflated (run-length, as the strips) without the predictor.
    for bits in (8, 16):
        img = make("gradient", 64, 500, 3, bits)
        write(tmp_path / "p.tif", img)
        samples = img.astype("<u2" if bits == 16 else np.uint8).tobytes()
        comp = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
        off = len(comp.compress(samples) + comp.flush())
        assert os.path.getsize(tmp_path / "p.tif") < 0.7 * off


@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("bits", [8, 16])
def test_pillow_and_tifffile_round_trip(
    c: int, bits: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(w, "_STRIP_BYTES", SMALL_STRIPS)
    for i, img in enumerate(cases(c, bits, seed=2)):
        path = tmp_path / f"{i}.tif"
        write(path, img, [1] * img.shape[0] if img.shape[0] < 20 else None)
        back = tifffile.imread(path)
        np.testing.assert_array_equal(back, img, err_msg=f"{img.shape}")
        if bits == 8 or c == 1:  # Pillow reads 16-bit colour as 8 bits; cnncli reads it whole
            with Image.open(path) as im:
                got = np.asarray(im)
            np.testing.assert_array_equal(got, img, err_msg=f"{img.shape}")


@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize(
    "bands", [None, [1] * 53, [7, 46], [52, 1], [20, 20, 13]], ids=["whole", "1s", "a", "b", "c"]
)
def test_band_boundaries_and_threads_do_not_matter(
    threads: str, bands: list[int] | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(w, "_STRIP_BYTES", 20 * 37 * 3)  # 20 rows a strip: 3 strips
    img = make("mixed", 53, 37, 3, 8, seed=3)
    write(tmp_path / "ref.tif", img)
    monkeypatch.setenv("CNNCLI_THREADS", threads)
    write(tmp_path / "t.tif", img, bands)
    assert (tmp_path / "t.tif").read_bytes() == (tmp_path / "ref.tif").read_bytes()


def test_a_failing_band_stops_the_strips_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(w, "_STRIP_BYTES", 1000)
    made: list[int] = []

    def produce(r0: int, r1: int) -> npt.NDArray[np.float32]:
        if r0 >= 40:
            raise RuntimeError("band failed")
        made.append(r0)
        return np.full((r1 - r0, 50, 3), 9, np.float32)

    like = Picture(Path("in.png"), np.zeros((1, 1, 3), np.uint8), None, "RGB", 8, "PNG")
    with pytest.raises(RuntimeError, match="band failed"):
        save_result(tmp_path / "o.tif", w.Bands((80, 50, 3), produce, 10), like=like, how="clip")
    assert made == [0, 10, 20, 30] and list(tmp_path.iterdir()) == []


def test_strips_of_regroups_rows() -> None:
    img = np.arange(13 * 4, dtype=np.uint16).reshape(13, 4)
    got = list(w._strips_of(iter([img[:1], img[1:9], img[9:10], img[10:]]), 3, 1, 16))
    assert [s.shape[0] for s in got] == [3, 3, 3, 3, 1]
    assert all(s.dtype == np.dtype("<u2") and s.flags.c_contiguous for s in got)
    np.testing.assert_array_equal(np.concatenate(got), img)


def test_past_4_gib_at_worst_is_bigtiff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Classic TIFF holds 32-bit offsets: a picture whose strips could pass them is BigTIFF.
    seen: dict[str, Any] = {}

    def imwrite(path: Path, data: Iterator[bytes], **kw: Any) -> None:
        seen.update(kw)

    monkeypatch.setattr(tifffile, "imwrite", imwrite)
    big = w._Output(tmp_path / "b.tif", "TIFF", (20000, 30000), 3, 16, None)  # 3.6 GB raw
    w._write_tiff(tmp_path / "b.tif", big, iter([]))
    assert seen["bigtiff"] is False
    big = w._Output(tmp_path / "b.tif", "TIFF", (20000, 30000), 3, 16, np.zeros((1, 1)))
    w._write_tiff(tmp_path / "b.tif", big, iter([]))  # 4.8 GB raw
    assert seen["bigtiff"] is True


# --- other readers -------------------------------------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("bits", [8, 16])
def test_cv2_round_trip(c: int, bits: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cv2 = pytest.importorskip("cv2")
    monkeypatch.setattr(w, "_STRIP_BYTES", SMALL_STRIPS)
    for i, img in enumerate(cases(c, bits, seed=4)):
        path = tmp_path / f"{i}.tif"
        write(path, img)
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
@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("bits", [8, 16])
def test_imagemagick_round_trip(
    c: int, bits: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not os.access(MAGICK, os.X_OK):
        pytest.skip(f"ImageMagick is not installed ({MAGICK})")
    monkeypatch.setattr(w, "_STRIP_BYTES", SMALL_STRIPS)
    h, wd = 53, 37
    img = make("mixed", h, wd, c, bits, seed=6)
    path = tmp_path / "im.tif"
    write(path, img)
    out = subprocess.run(
        [MAGICK, str(path), "-depth", str(bits), "-endian", "LSB", "rgba:-"],
        capture_output=True,
        check=True,
    )
    assert out.stderr == b""  # no warnings about the file
    got = np.frombuffer(out.stdout, np.dtype("<u1" if bits == 8 else "<u2")).reshape(h, wd, 4)
    px = img.reshape(h, wd, c)
    opaque = np.full((h, wd, 1), np.iinfo(img.dtype).max, img.dtype)
    color = np.repeat(px[..., :1], 3, axis=2) if c <= 2 else px[..., :3]
    alpha = px[..., -1:] if c in (2, 4) else opaque
    np.testing.assert_array_equal(got, np.concatenate([color, alpha], axis=2))
