"""Image loading (modes, EXIF, .npy, bad files), gray conversion, mapping, and atomic saving."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnncli import images
from cnncli.errors import ImageError, UsageError
from cnncli.images import check_output, load_image, map_values, save_result, to_gray
from cnncli.outputs import OutputError

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
RNG = np.random.default_rng(7)


def rgb8(h: int = 6, w: int = 5) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------ loading modes


def test_gray_and_rgb(tmp_path: Path) -> None:
    pic = load_image(SAMPLES / "camera.png")
    assert pic.data.shape == (512, 512) and pic.bits == 8 and pic.alpha is None
    assert pic.data.dtype == np.uint8  # 8-bit pixels as stored: the core reads them as they are
    rgb = load_image(SAMPLES / "coffee.png")
    assert rgb.data.shape == (400, 600, 3) and rgb.describe() == "600×400 RGB 8-bit"


def test_rgba_keeps_alpha_aside(tmp_path: Path) -> None:
    a = RNG.integers(0, 256, size=(6, 5, 4), dtype=np.uint8)
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    pic = load_image(tmp_path / "a.png")
    assert pic.data.shape == (6, 5, 3)
    np.testing.assert_array_equal(pic.data, a[..., :3])
    np.testing.assert_array_equal(pic.alpha, a[..., 3])


def test_la_palette_cmyk_bilevel(tmp_path: Path) -> None:
    la = RNG.integers(0, 256, size=(4, 4, 2), dtype=np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    pic = load_image(tmp_path / "la.png")
    assert pic.data.shape == (4, 4) and pic.alpha is not None
    np.testing.assert_array_equal(pic.alpha, la[..., 1])

    p = Image.fromarray(rgb8()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    p.save(tmp_path / "p.png")
    pic = load_image(tmp_path / "p.png")
    np.testing.assert_array_equal(pic.data, np.asarray(p.convert("RGB")))
    assert pic.mode == "P" and pic.alpha is None

    p.info["transparency"] = 0
    p.save(tmp_path / "pt.png", transparency=0)
    assert load_image(tmp_path / "pt.png").alpha is not None

    cmyk = Image.fromarray(rgb8()).convert("CMYK")
    cmyk.save(tmp_path / "c.tif")
    pic = load_image(tmp_path / "c.tif")
    np.testing.assert_array_equal(pic.data, np.asarray(cmyk.convert("RGB")))

    Image.fromarray(rgb8()[..., 0] > 128).convert("1").save(tmp_path / "b.png")
    assert set(np.unique(load_image(tmp_path / "b.png").data)) <= {0.0, 255.0}


def test_sixteen_bit_and_float(tmp_path: Path) -> None:
    a = RNG.integers(0, 65536, size=(5, 7), dtype=np.uint16)
    for ext in ("png", "tif"):
        Image.fromarray(a).save(tmp_path / f"a.{ext}")
        pic = load_image(tmp_path / f"a.{ext}")
        assert pic.bits == 16 and pic.maxval == 65535
        assert pic.data.dtype == np.uint16  # as stored, in native byte order
        np.testing.assert_array_equal(pic.data, a)
    f = RNG.normal(size=(3, 4)).astype(np.float32)
    Image.fromarray(f, "F").save(tmp_path / "f.tif")
    pic = load_image(tmp_path / "f.tif")
    assert pic.bits == 32
    np.testing.assert_array_equal(pic.data, f)
    i32 = Image.fromarray(np.array([[0, 70000]], dtype=np.int32), "I")
    i32.save(tmp_path / "i.tif")
    assert load_image(tmp_path / "i.tif").bits == 32


def _photo_like(h: int = 48, w: int = 64) -> np.ndarray:
    """Smooth colour with some texture: what JPEG is for (pure noise would say little)."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1) + RNG.integers(0, 30, (h, w, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


SIXTEEN = Path(__file__).resolve().parent / "data" / "sixteen"  # made by ImageMagick: make.py
TRUTH = np.load(SIXTEEN / "truth.npy")  # 13×17×4 uint16: the samples every fixture holds


@pytest.mark.parametrize(
    ("name", "alpha"),
    [
        ("rgb16_interlaced.png", False),
        ("rgba16.png", True),
        ("rgb16_zip.tif", False),
        ("rgb16_lzw_tiled.tif", False),
        ("rgb16_msb_raw.tif", False),
        ("rgb16_planar.tif", False),
        ("rgba16_zip.tif", True),
        ("rgb16.ppm", False),
    ],
)
def test_sixteen_bit_colour_stays_sixteen_bit(name: str, alpha: bool) -> None:
    pic = load_image(SIXTEEN / name)
    assert pic.bits == 16 and pic.data.dtype == np.uint16 and pic.maxval == 65535
    np.testing.assert_array_equal(pic.data, TRUTH[..., :3])
    if alpha:
        assert pic.alpha is not None and pic.alpha.dtype == np.uint16
        np.testing.assert_array_equal(pic.alpha, TRUTH[..., 3])
    else:
        assert pic.alpha is None
    assert images.peek(SIXTEEN / name) == (np.uint16, (13, 17))


def test_sixteen_bit_fixtures_have_the_layouts_they_are_named_for() -> None:
    # If ImageMagick ever wrote these differently, the tests above would lose their point.
    for name in ("rgb16_interlaced.png", "ga16_interlaced.png"):
        assert (SIXTEEN / name).read_bytes()[28] == 1  # IHDR interlace method: Adam7
    tiffs = {
        "rgb16_lzw_tiled.tif": {259: 5, 322: 16},  # LZW, 16-pixel tiles
        "rgb16_msb_raw.tif": {259: 1},
        "rgb16_zip.tif": {259: 8},
        "rgb16_planar.tif": {284: 2},
        "rgb16_rot6.tif": {274: 6},
    }
    for name, tags in tiffs.items():
        with Image.open(SIXTEEN / name) as im:
            assert {k: im.tag_v2.get(k) for k in tags} == tags, name
            assert im.tag_v2.get(258) == (16, 16, 16), name
    assert (SIXTEEN / "rgb16_msb_raw.tif").read_bytes()[:2] == b"MM"


def test_sixteen_bit_gray_alpha() -> None:
    pic = load_image(SIXTEEN / "ga16_interlaced.png")
    assert pic.describe() == "17×13 gray+alpha 16-bit" and pic.mode == "LA"
    np.testing.assert_array_equal(pic.data, TRUTH[..., 0])
    assert pic.alpha is not None
    np.testing.assert_array_equal(pic.alpha, TRUTH[..., 3])


def test_sixteen_bit_colour_orientation() -> None:
    # Orientation 6: the stored rows are the picture's right-hand column, top first.
    pic = load_image(SIXTEEN / "rgb16_rot6.tif")
    np.testing.assert_array_equal(pic.data, np.rot90(TRUTH[..., :3], -1))
    assert images.peek(SIXTEEN / "rgb16_rot6.tif") == (np.uint16, (17, 13))


def test_sixteen_bit_planar_tiff_is_read_with_its_16_bits() -> None:
    # Separate colour planes (PlanarConfiguration 2): tifffile reads every plane whole (Pillow
    # kept only the high byte, and cnncli used to warn).
    said: list[str] = []
    pic = load_image(SIXTEEN / "rgb16_planar.tif", warn=said.append)
    assert pic.bits == 16 and pic.data.dtype == np.uint16 and said == []
    np.testing.assert_array_equal(pic.data, TRUTH[..., :3])
    assert images.peek(SIXTEEN / "rgb16_planar.tif") == (np.uint16, (13, 17))


def test_sixteen_bit_colour_orientation_from_exif_in_png(tmp_path: Path) -> None:
    # Our own PNG encoder writes the samples; Pillow adds an eXIf chunk only on its own
    # saves, so splice one in after IHDR: orientation 3 (turned half round).
    from cnncli.images._png import write_png

    buf = tmp_path / "plain.png"
    with open(buf, "wb") as fh:
        write_png(fh, TRUTH)
    exif = Image.Exif()
    exif[0x0112] = 3
    data = exif.tobytes()
    chunk = struct.pack(">I", len(data)) + b"eXIf" + data
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + data))
    raw = buf.read_bytes()
    (tmp_path / "turned.png").write_bytes(raw[:33] + chunk + raw[33:])
    pic = load_image(tmp_path / "turned.png")
    np.testing.assert_array_equal(pic.data, TRUTH[::-1, ::-1, :3])
    assert pic.alpha is not None
    np.testing.assert_array_equal(pic.alpha, TRUTH[::-1, ::-1, 3])


@pytest.mark.oracle
@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_sixteen_bit_colour_as_opencv_reads_it(tmp_path: Path, channels: int, ext: str) -> None:
    cv2 = pytest.importorskip("cv2")
    px = np.random.default_rng(channels).integers(0, 65536, (41, 59, channels), dtype=np.uint16)
    bgr = px[..., [2, 1, 0, 3][:channels]]
    assert cv2.imwrite(str(tmp_path / f"x{ext}"), bgr)
    pic = load_image(tmp_path / f"x{ext}")
    back = cv2.imread(str(tmp_path / f"x{ext}"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(pic.data, back[..., [2, 1, 0]])
    np.testing.assert_array_equal(pic.data, px[..., :3])
    if channels == 4:
        np.testing.assert_array_equal(pic.alpha, back[..., 3])


def test_gray_jpeg_is_the_luma_it_stores(tmp_path: Path) -> None:
    """--gray on a JPEG decodes its luma plane straight (libjpeg), not RGB then "L"."""
    Image.fromarray(_photo_like()).save(tmp_path / "p.jpg", quality=90)
    pic = load_image(tmp_path / "p.jpg", gray=True)
    assert pic.data.shape == (48, 64) and pic.data.dtype == np.uint8 and pic.bits == 8
    via_rgb = np.asarray(Image.open(tmp_path / "p.jpg").convert("L")).astype(int)
    diff = np.abs(pic.data.astype(int) - via_rgb)
    assert diff.max() <= 6 and diff.mean() < 1  # the same picture, rounded differently
    # Without --gray the colour picture is what Pillow decodes.
    colour = load_image(tmp_path / "p.jpg")
    np.testing.assert_array_equal(colour.data, np.asarray(Image.open(tmp_path / "p.jpg")))


def test_gray_jpeg_matches_opencv_imread_grayscale(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    Image.fromarray(_photo_like(61, 83)).save(tmp_path / "p.jpg", quality=85)
    pic = load_image(tmp_path / "p.jpg", gray=True)
    np.testing.assert_array_equal(
        pic.data, cv2.imread(str(tmp_path / "p.jpg"), cv2.IMREAD_GRAYSCALE)
    )


def test_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (4, 3), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    pic = load_image(tmp_path / "a.gif")
    assert pic.data.shape == (3, 4, 3)
    assert pic.data[0, 0].tolist() == [255, 0, 0]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    im = Image.new("RGB", (40, 20), (0, 0, 0))
    im.paste((255, 255, 255), (0, 0, 10, 10))  # white block top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    im.save(tmp_path / "r.jpg", exif=exif, quality=100)
    pic = load_image(tmp_path / "r.jpg")
    assert pic.data.shape[:2] == (40, 20)  # upright: taller than wide
    assert pic.data[2, 17].mean() > 200  # the block is now top-right
    assert pic.data[2, 2].mean() < 50


def test_webp_bmp_jpeg_read(tmp_path: Path) -> None:
    a = rgb8()
    for ext in ("webp", "bmp", "jpg"):
        Image.fromarray(a).save(
            tmp_path / f"a.{ext}", **({"lossless": True} if ext == "webp" else {})
        )
        pic = load_image(tmp_path / f"a.{ext}")
        assert pic.data.shape == a.shape
        if ext != "jpg":
            np.testing.assert_array_equal(pic.data, a)


# ------------------------------------------------------------------ .npy


def test_npy_any_numeric_dtype(tmp_path: Path) -> None:
    for dtype in (np.int8, np.uint16, np.int64, np.float64, np.bool_):
        np.save(tmp_path / "x.npy", np.ones((3, 4), dtype=dtype))
        pic = load_image(tmp_path / "x.npy")
        assert pic.data.dtype == np.float32 and pic.format == "NPY" and pic.bits == 32
    np.save(tmp_path / "c.npy", np.zeros((3, 4, 2)))
    assert load_image(tmp_path / "c.npy").channels == 2


@pytest.mark.parametrize(
    "array,message",
    [
        (np.array([[1.0, np.nan]]), "value at [0, 1] is nan; images need finite numbers"),
        (np.array([[np.inf]]), "value at [0, 0] is inf"),
        (np.zeros((2, 2, 2, 2)), "array of shape (2, 2, 2, 2); give H×W or H×W×C"),
        (np.zeros(5), "array of shape (5,)"),
        (np.array([["a"]]), "array of dtype <U1; give real numbers"),
        (np.zeros((2, 2), dtype=complex), "array of dtype complex128"),
    ],
)
def test_npy_refused(tmp_path: Path, array: np.ndarray, message: str) -> None:
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(ImageError) as err:
        load_image(tmp_path / "x.npy")
    assert message in str(err.value)


def test_npy_pickled_object_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ImageError, match="not a NumPy .npy array"):
        load_image(tmp_path / "o.npy")


# ------------------------------------------------------------------ bad files


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"missing\.png: no such file"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(ImageError, match="text.jpg: not an image Pillow can read"):
        load_image(tmp_path / "text.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty.png: empty; give a PNG"):
        load_image(tmp_path / "empty.png")
    data = (SAMPLES / "coffee.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match="cut.png: truncated or damaged image"):
        load_image(tmp_path / "cut.png")
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path)


def test_decompression_bomb_guard(tmp_path: Path) -> None:
    Image.new("L", (100, 100)).save(tmp_path / "big.png")
    with pytest.raises(ImageError) as err:
        load_image(tmp_path / "big.png", max_pixels=5000)
    assert "100×100 = 10,000 pixels is more than 5,000 pixels" in str(err.value)
    assert "--max-pixels" in str(err.value)
    # Between the limit and twice the limit Pillow only warns: refused all the same.
    with pytest.raises(ImageError):
        load_image(tmp_path / "big.png", max_pixels=9000)
    assert load_image(tmp_path / "big.png", max_pixels=10000).data.shape == (100, 100)
    assert Image.MAX_IMAGE_PIXELS == 89478485  # the global guard is restored


def test_decompression_bomb_guard_for_tiff(tmp_path: Path) -> None:
    import tifffile

    tifffile.imwrite(tmp_path / "big.tif", np.zeros((100, 100), np.uint8), compression="zlib")
    assert refused_text(tmp_path / "big.tif", max_pixels=5000) == (
        f"{tmp_path / 'big.tif'}: 100×100 = 10,000 pixels is more than 5,000 pixels, refused as "
        "a possible decompression bomb; raise the limit with --max-pixels N if you trust the file"
    )
    assert load_image(tmp_path / "big.tif", max_pixels=10000).data.shape == (100, 100)


def refused_text(path: Path, **kw: int) -> str:
    with pytest.raises(ImageError) as err:
        load_image(path, **kw)
    return str(err.value)


# ------------------------------------------------------------------ TIFF through tifffile


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_as_pillow_turns_it(tmp_path: Path, orientation: int) -> None:
    import tifffile
    from PIL import ImageOps

    a = rgb8(5, 7)
    path = tmp_path / f"o{orientation}.tif"
    tifffile.imwrite(path, a, photometric="rgb", extratags=[(274, "H", 1, orientation, True)])
    with Image.open(path) as im:
        want = np.asarray(ImageOps.exif_transpose(im))
    pic = load_image(path)
    np.testing.assert_array_equal(pic.data, want)
    assert images.peek(path) == (np.uint8, want.shape[:2])


@pytest.mark.parametrize(
    "layout",
    [
        dict(planarconfig="separate"),
        dict(tile=(16, 16)),
        dict(tile=(16, 16), planarconfig="separate"),
        dict(byteorder=">", compression="zlib", predictor=True),
        dict(compression="lzma"),
    ],
    ids=["planar", "tiled", "tiled-planar", "big-endian-deflate-predictor", "lzma"],
)
@pytest.mark.parametrize("bits", [8, 16])
def test_tiff_layouts_tifffile_reads(tmp_path: Path, layout: dict[str, object], bits: int) -> None:
    import tifffile

    rng = np.random.default_rng(bits)
    dt = np.uint8 if bits == 8 else np.uint16
    a = rng.integers(0, 1 << bits, (20, 35, 4), dtype=dt)
    planar = layout.get("planarconfig") == "separate"
    stored = np.moveaxis(a, -1, 0) if planar else a  # separate planes: samples first
    tifffile.imwrite(
        tmp_path / "a.tif", stored, photometric="rgb", extrasamples=["unassalpha"], **layout
    )
    pic = load_image(tmp_path / "a.tif")
    assert pic.bits == bits and pic.data.dtype == dt and pic.mode == "RGBA"
    np.testing.assert_array_equal(pic.data, a[..., :3])
    np.testing.assert_array_equal(pic.alpha, a[..., 3])
    g = a[..., 0]
    one = {k: v for k, v in layout.items() if k != "planarconfig"}  # one plane either way
    tifffile.imwrite(tmp_path / "g.tif", g, photometric="minisblack", **one)
    pic = load_image(tmp_path / "g.tif")
    assert pic.describe() == f"35×20 gray {bits}-bit"
    np.testing.assert_array_equal(pic.data, g)
    assert images.peek(tmp_path / "g.tif") == (np.dtype(dt), (20, 35))


def test_tiff_gray_alpha_16_bit(tmp_path: Path) -> None:
    import tifffile

    ga = TRUTH[..., [0, 3]]
    tifffile.imwrite(tmp_path / "ga.tif", ga, photometric="minisblack", extrasamples=[2])
    pic = load_image(tmp_path / "ga.tif")
    assert pic.describe() == "17×13 gray+alpha 16-bit" and pic.mode == "LA"
    np.testing.assert_array_equal(pic.data, TRUTH[..., 0])
    np.testing.assert_array_equal(pic.alpha, TRUTH[..., 3])


def test_tiff_gray_option_is_pillows_luma(tmp_path: Path) -> None:
    import tifffile

    a = rgb8(9, 11)
    tifffile.imwrite(tmp_path / "c.tif", a, photometric="rgb", compression="zlib")
    pic = load_image(tmp_path / "c.tif", gray=True)
    np.testing.assert_array_equal(pic.data, np.asarray(Image.fromarray(a).convert("L")))


def test_tiffs_tifffile_leaves_to_pillow(tmp_path: Path) -> None:
    # LZW (needs imagecodecs in tifffile), float, palette, bilevel: read by Pillow as before.
    a = rgb8(6, 8)
    Image.fromarray(a).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    np.testing.assert_array_equal(load_image(tmp_path / "lzw.tif").data, a)
    f = np.linspace(-1, 1, 48, dtype=np.float32).reshape(6, 8)
    Image.fromarray(f, mode="F").save(tmp_path / "f.tif")
    pic = load_image(tmp_path / "f.tif")
    assert pic.bits == 32
    np.testing.assert_array_equal(pic.data, f)
    Image.fromarray(a).convert("P").save(tmp_path / "p.tif")
    assert load_image(tmp_path / "p.tif").describe() == "8×6 RGB 8-bit"
    Image.fromarray(a[..., 0] > 128).save(tmp_path / "b.tif")
    assert load_image(tmp_path / "b.tif").describe() == "8×6 gray 8-bit"


def test_peek_of_a_damaged_tiff_prints_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import tifffile

    tifffile.imwrite(tmp_path / "t.tif", rgb8(), photometric="rgb", description="d" * 40)
    raw = bytearray((tmp_path / "t.tif").read_bytes())
    at = raw.index(b"d" * 40)
    off = struct.pack("<I", at)
    raw[raw.index(off) : raw.index(off) + 4] = struct.pack("<I", 0x7FFFFFF0)  # past the end
    (tmp_path / "t.tif").write_bytes(bytes(raw))
    capfd.readouterr()
    images.peek(tmp_path / "t.tif")
    said: list[str] = []
    load_image(tmp_path / "t.tif", warn=said.append)
    assert capfd.readouterr() == ("", "")
    assert len(said) == 1 and "read despite damage (TIFF tag 270:" in said[0]


# ------------------------------------------------------------------ gray


def test_gray_is_exactly_pillow_L() -> None:
    a = RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    # Every corner case of the rounding: all 0/255 combinations too.
    a[0, :8] = [[r, g, b] for r in (0, 255) for g in (0, 255) for b in (0, 255)]
    pic = images.Picture(Path("x"), a.astype(np.float32), None, "RGB", 8, "PNG")
    ours = to_gray(pic).data
    np.testing.assert_array_equal(ours, np.asarray(Image.fromarray(a).convert("L")))
    coffee = load_image(SAMPLES / "coffee.png")
    np.testing.assert_array_equal(
        to_gray(coffee).data, np.asarray(Image.open(SAMPLES / "coffee.png").convert("L"))
    )


def test_gray_rejects_two_channels() -> None:
    pic = images.Picture(Path("x.npy"), np.zeros((2, 2, 2), np.float32), None, "npy", 32, "NPY")
    with pytest.raises(
        UsageError, match="x.npy: --gray needs an RGB image but this one has 2 channels"
    ):
        to_gray(pic)


# ------------------------------------------------------------------ mapping


def test_map_values() -> None:
    x = np.array([[-300.4, -1.5, 0.5, 1.5, 2.5, 254.6, 300.0]], dtype=np.float32)
    assert map_values(x, "clip", 255).tolist() == [[0, 0, 0, 2, 2, 255, 255]]  # half to even
    assert map_values(x, "abs", 255).tolist() == [[255, 2, 0, 2, 2, 255, 255]]
    assert map_values(x, "offset", 255).tolist() == [[0, 126, 128, 130, 130, 255, 255]]
    n = map_values(np.array([[2.0, 4.0, 6.0]], np.float32), "normalize", 255)
    assert n.tolist() == [[0, 128, 255]]
    assert map_values(np.full((2, 2), 3.0, np.float32), "normalize", 255).tolist() == [
        [0, 0],
        [0, 0],
    ]
    assert map_values(np.array([[90.0]], np.float32), "normalize", 255, (0, 360)).tolist() == [[64]]
    sixteen = map_values(np.array([[70000.0, 1000.0]], np.float32), "clip", 65535)
    assert sixteen.dtype == np.uint16 and sixteen.tolist() == [[65535, 1000]]


def test_map_clip_matches_opencv_saturate() -> None:
    cv2 = pytest.importorskip("cv2")
    x = RNG.normal(scale=200, size=(50, 50)).astype(np.float32)
    np.testing.assert_array_equal(map_values(x, "abs", 255), cv2.convertScaleAbs(x))


# ------------------------------------------------------------------ saving


def like(bits: int = 8, channels: int = 3) -> images.Picture:
    shape = (4, 5) if channels == 1 else (4, 5, channels)
    return images.Picture(Path("in.png"), np.zeros(shape, np.float32), None, "RGB", bits, "PNG")


@pytest.mark.parametrize("ext", [".png", ".tif", ".webp", ".bmp", ".jpg"])
def test_formats_round_trip(tmp_path: Path, ext: str) -> None:
    y, x = np.mgrid[0:16, 0:24]
    a = np.stack([y * 15, x * 10, 255 - y * 15], axis=-1).astype(
        np.float32
    )  # smooth: JPEG-friendly
    save_result(tmp_path / f"o{ext}", a, like=like(), how="clip")
    back = np.asarray(Image.open(tmp_path / f"o{ext}"))
    assert back.shape == a.shape
    if ext == ".jpg":
        assert np.abs(back.astype(float) - a).max() <= 8
    else:
        np.testing.assert_array_equal(back, a)


def test_gray_stays_gray_and_16_bit_stays_16_bit(tmp_path: Path) -> None:
    g = np.array([[0.0, 1000.5, 70000.0]], np.float32)
    save_result(tmp_path / "g.png", g, like=like(16, 1), how="clip")
    im = Image.open(tmp_path / "g.png")
    assert im.mode == "I;16" and np.asarray(im).tolist() == [[0, 1000, 65535]]
    save_result(tmp_path / "g.tif", g, like=like(16, 1), how="clip")
    assert Image.open(tmp_path / "g.tif").mode == "I;16"
    save_result(tmp_path / "g8.png", g, like=like(8, 1), how="clip")
    assert Image.open(tmp_path / "g8.png").mode == "L"
    warnings: list[str] = []
    save_result(tmp_path / "g.jpg", g, like=like(16, 1), how="clip", warn=warnings.append)
    assert Image.open(tmp_path / "g.jpg").mode == "L" and "scaled to 8 bits" in warnings[0]


def test_alpha_passed_through(tmp_path: Path) -> None:
    a = RNG.integers(0, 256, size=(4, 5), dtype=np.uint8)
    save_result(tmp_path / "o.png", rgb8(4, 5).astype(np.float32), like=like(), how="clip", alpha=a)
    im = Image.open(tmp_path / "o.png")
    assert im.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(im)[..., 3], a)
    warnings: list[str] = []
    save_result(
        tmp_path / "o.jpg",
        rgb8(4, 5).astype(np.float32),
        like=like(),
        how="clip",
        alpha=a,
        warn=warnings.append,
    )
    assert warnings == [f"{tmp_path / 'o.jpg'}: JPEG has no alpha channel; alpha dropped"]


def test_raw_npy_and_float_tiff(tmp_path: Path) -> None:
    r = np.array([[-3.25, 1e6]], np.float32)
    assert save_result(tmp_path / "o.npy", r, like=like(), how="clip") == "float32 1×2, unmapped"
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), r)
    save_result(tmp_path / "o.tif", r, like=like(), how="clip", raw=True)
    im = Image.open(tmp_path / "o.tif")
    assert im.mode == "F"
    np.testing.assert_array_equal(np.asarray(im), r)
    with pytest.raises(
        UsageError, match="a float TIFF holds one channel but the result has 3; save it as .npy"
    ):
        save_result(
            tmp_path / "c.tif", np.zeros((2, 2, 3), np.float32), like=like(), how="clip", raw=True
        )
    with pytest.raises(UsageError, match="the result has 2 channels"):
        save_result(tmp_path / "c.png", np.zeros((2, 2, 2), np.float32), like=like(), how="clip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.npy", "o.tif"]


@pytest.mark.parametrize("ext", [".png", ".tif", ".webp"])  # our PNG, TIFF writers; Pillow
def test_atomic_write_leaves_nothing_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ext: str
) -> None:
    import tifffile

    from cnncli.images import _png as png

    def broken_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        Path(str(fp)).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    for writer in (png.PngWriter, tifffile.TiffWriter):
        real_write = writer.write

        def broken_write(self: object, rows: np.ndarray, real=real_write, **kw: bool) -> None:
            real(self, rows, **kw)  # a header is in the file by now
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(writer, "write", broken_write)
    with pytest.raises(OutputError, match=rf"o{ext}: cannot write \(No space left on device\)"):
        save_result(tmp_path / f"o{ext}", rgb8().astype(np.float32), like=like(), how="clip")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_whole_file_and_sets_permissions(tmp_path: Path) -> None:
    target = tmp_path / "o.png"
    target.write_bytes(b"old")
    save_result(target, rgb8().astype(np.float32), like=like(), how="clip")
    assert Image.open(target).size == (5, 6)
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]


def test_check_output(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    src.write_bytes(b"x")
    with pytest.raises(OutputError, match="is an input of this run.*; refusing to overwrite it"):
        check_output(src, [src], force=True)
    with pytest.raises(OutputError, match="is an input of this run"):
        check_output(tmp_path / "sub" / ".." / "in.png", [src], force=True)
    existing = tmp_path / "out.png"
    existing.write_bytes(b"x")
    with pytest.raises(OutputError, match="out.png: already exists; use --force to overwrite it"):
        check_output(existing, [src], force=False)
    check_output(existing, [src], force=True)
    with pytest.raises(UsageError, match="cannot tell the output format of 'o.gif'"):
        check_output(Path("o.gif"), [src], force=False)


def test_peek_tells_pixel_type_and_size_from_the_header(tmp_path: Path) -> None:
    from cnncli.images import peek

    np.save(tmp_path / "a.npy", np.zeros((5, 7, 3), np.int16))
    assert peek(tmp_path / "a.npy") == (np.float32, (5, 7))
    Image.fromarray(np.zeros((4, 6), np.uint16)).save(tmp_path / "g16.png")
    assert peek(tmp_path / "g16.png") == (np.uint16, (4, 6))
    Image.fromarray(rgb8(4, 6)).save(tmp_path / "c.png")
    assert peek(tmp_path / "c.png") == (np.uint8, (4, 6))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter: load_image gives it 6 tall, 4 wide
    Image.fromarray(rgb8(4, 6)).save(tmp_path / "r.jpg", exif=exif)
    assert peek(tmp_path / "r.jpg") == (np.uint8, (6, 4))
    assert load_image(tmp_path / "r.jpg").data.shape[:2] == (6, 4)
    (tmp_path / "t.png").write_text("not an image")
    assert peek(tmp_path / "t.png") is None
