"""``cnncli filter`` and ``cnncli kernels`` end to end, through ``main()``.

Golden images live in tests/golden/filter/. To regenerate them after an intended change, run

    CNNCLI_REGEN_GOLDEN=1 .venv/bin/pytest tests/test_cli_filter.py -k golden

and look at the new pictures before committing them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from clirun import run  # tests/clirun.py
from PIL import Image

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
GOLDEN = Path(__file__).resolve().parent / "golden" / "filter"
SIXTEEN = Path(__file__).resolve().parent / "data" / "sixteen"  # 16-bit fixtures, by ImageMagick
RNG = np.random.default_rng(3)


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ------------------------------------------------------------------ the course notes and d2l


def test_seed_example_exactly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "edges.npy"
    code, stdout, err = run(
        ["filter", SAMPLES / "seed.npy", "-k", "vertical-edge", "--padding", "valid", "-o", out],
        capsys,
    )
    assert code == 0, err
    result = np.load(out)
    assert result.dtype == np.float32 and result.tolist() == [[0, 39, 39, 0]] * 4
    assert "float32 4×4, unmapped" in stdout
    # The same from a text kernel file and an inline matrix, and into an 8-bit PNG.
    png = tmp_path / "edges.png"
    code, _, err = run(
        [
            "filter",
            SAMPLES / "seed.npy",
            "-k",
            SAMPLES / "kernels" / "vertical-edge.txt",
            "-p",
            "valid",
            "-o",
            png,
        ],
        capsys,
    )
    assert code == 0, err
    assert np.asarray(Image.open(png)).tolist() == [[0, 39, 39, 0]] * 4
    code, _, _ = run(
        [
            "filter",
            SAMPLES / "seed.npy",
            "-k",
            "1,0,-1;1,0,-1;1,0,-1",
            "-p",
            "valid",
            "-o",
            tmp_path / "i.npy",
        ],
        capsys,
    )
    assert code == 0 and np.load(tmp_path / "i.npy").tolist() == [[0, 39, 39, 0]] * 4


def test_d2l_three_and_four_d_kernels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x = SAMPLES / "d2l-x.npy"
    code, _, err = run(
        [
            "filter",
            x,
            "-k",
            SAMPLES / "kernels" / "d2l-3d.json",
            "-p",
            "valid",
            "-o",
            tmp_path / "y.npy",
        ],
        capsys,
    )
    assert code == 0, err
    assert np.load(tmp_path / "y.npy").tolist() == [[56, 72], [104, 120]]
    # The same kernel as a .npy file, and the 4-D stack K, K+1, K+2.
    k = np.array(json.loads((SAMPLES / "kernels" / "d2l-3d.json").read_text()), dtype=np.float32)
    np.save(tmp_path / "k.npy", k)
    code, _, _ = run(
        ["filter", x, "-k", tmp_path / "k.npy", "-p", "valid", "-o", tmp_path / "y2.npy"], capsys
    )
    assert code == 0 and np.load(tmp_path / "y2.npy").tolist() == [[56, 72], [104, 120]]
    np.save(tmp_path / "k4.npy", np.stack([k, k + 1, k + 2]))
    code, _, err = run(
        ["filter", x, "-k", tmp_path / "k4.npy", "-p", "valid", "-o", tmp_path / "y4.npy"], capsys
    )
    assert code == 0, err
    y4 = np.load(tmp_path / "y4.npy")
    assert y4.shape == (2, 2, 3)
    assert np.moveaxis(y4, -1, 0).tolist() == [
        [[56, 72], [104, 120]],
        [[76, 100], [148, 172]],
        [[96, 128], [192, 224]],
    ]


def test_d2l_torch_agrees(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    x = np.load(SAMPLES / "d2l-x.npy")
    k4 = np.array(json.loads((SAMPLES / "kernels" / "d2l-4d.json").read_text()), dtype=np.float32)
    code, _, _ = run(
        [
            "filter",
            SAMPLES / "d2l-x.npy",
            "-k",
            SAMPLES / "kernels" / "d2l-4d.json",
            "-p",
            "valid",
            "-o",
            tmp_path / "y.npy",
        ],
        capsys,
    )
    assert code == 0
    ref = torch.nn.functional.conv2d(
        torch.from_numpy(np.moveaxis(x, -1, 0))[None], torch.from_numpy(k4)
    )
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), np.moveaxis(ref[0].numpy(), 0, -1))


def test_3d_kernel_channel_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        [
            "filter",
            SAMPLES / "coffee.png",
            "-k",
            SAMPLES / "kernels" / "d2l-3d.json",
            "-o",
            tmp_path / "o.png",
        ],
        capsys,
    )
    assert code == 1
    assert err == (
        "cnncli: error: kernel has 2 input channels (shape 2×2×2) but the image has 3; "
        "give a 3×2×2 kernel, or a 2-D one for every channel\n"
    )
    assert listing(tmp_path) == []


# ------------------------------------------------------------------ colour, alpha, depth, formats


def test_gray_is_pillow_L(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        ["filter", SAMPLES / "chelsea.png", "-k", "identity", "--gray", "-o", tmp_path / "g.png"],
        capsys,
    )
    assert code == 0, err
    ours = Image.open(tmp_path / "g.png")
    assert ours.mode == "L"
    np.testing.assert_array_equal(
        np.asarray(ours), np.asarray(Image.open(SAMPLES / "chelsea.png").convert("L"))
    )


def test_colour_filtered_per_channel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cv2 = pytest.importorskip("cv2")
    code, _, _ = run(
        ["filter", SAMPLES / "coffee.png", "-k", "box:size=5", "-o", tmp_path / "b.png"], capsys
    )
    assert code == 0
    rgb = np.asarray(Image.open(SAMPLES / "coffee.png")).astype(np.float32)
    ref = cv2.blur(rgb, (5, 5), borderType=cv2.BORDER_REFLECT_101)
    ours = np.asarray(Image.open(tmp_path / "b.png")).astype(int)
    assert np.abs(ours - np.clip(np.rint(ref), 0, 255)).max() <= 1


def test_rgba_alpha_untouched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rgba = RNG.integers(0, 256, size=(20, 30, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    code, _, err = run(
        ["filter", tmp_path / "a.png", "-k", "sobel", "-o", tmp_path / "o.png"], capsys
    )
    assert code == 0, err
    out = np.asarray(Image.open(tmp_path / "o.png"))
    assert out.shape == (20, 30, 4)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    # valid padding: alpha follows the geometry (the pixel under each window's centre).
    code, _, _ = run(
        ["filter", tmp_path / "a.png", "-k", "sobel", "-p", "valid", "-o", tmp_path / "v.png"],
        capsys,
    )
    out = np.asarray(Image.open(tmp_path / "v.png"))
    np.testing.assert_array_equal(out[..., 3], rgba[1:-1, 1:-1, 3])


def test_sixteen_bit_stays_sixteen_bit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = RNG.integers(0, 65536, size=(16, 12), dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "a.png")
    code, _, err = run(
        ["filter", tmp_path / "a.png", "-k", "box", "-o", tmp_path / "o.png"], capsys
    )
    assert code == 0, err
    im = Image.open(tmp_path / "o.png")
    assert im.mode == "I;16"
    padded = np.pad(a.astype(np.float64), 1, mode="reflect")
    ref = sum(padded[i : i + 16, j : j + 12] for i in range(3) for j in range(3)) / 9
    assert np.abs(np.asarray(im).astype(np.float64) - ref).max() <= 0.5 + 1e-3
    code, _, _ = run(["filter", tmp_path / "a.png", "-k", "box", "-o", tmp_path / "o.tif"], capsys)
    assert Image.open(tmp_path / "o.tif").mode == "I;16"


def test_sixteen_bit_colour_stays_sixteen_bit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = np.load(SIXTEEN / "truth.npy")  # what rgba16.png holds (written by ImageMagick)
    padded = np.pad(truth[..., :3].astype(np.float64), ((1, 1), (1, 1), (0, 0)), mode="reflect")
    ref = sum(padded[i : i + 13, j : j + 17] for i in range(3) for j in range(3)) / 9
    for ext in (".png", ".tif"):
        out = tmp_path / f"o{ext}"
        code, report, err = run(["filter", SIXTEEN / "rgba16.png", "-k", "box", "-o", out], capsys)
        assert code == 0 and err == "", err
        assert "17×13 RGB+alpha 16-bit" in report
        back = cv2_or_pillow_16(out)
        assert back.dtype == np.uint16 and back.shape == (13, 17, 4)
        assert np.abs(back[..., :3] - ref).max() <= 0.5 + 1e-3
        np.testing.assert_array_equal(back[..., 3], truth[..., 3])
    # --gray: ITU-R 601 luma of the 16-bit samples, still 16-bit.
    out = tmp_path / "g.png"
    code, _, err = run(
        ["filter", SIXTEEN / "rgb16_zip.tif", "-k", "identity", "--gray", "-o", out], capsys
    )
    assert code == 0, err
    luma = truth[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    got = np.asarray(Image.open(out))
    assert got.dtype.kind == "u" and Image.open(out).mode == "I;16"
    assert np.abs(got - luma).max() <= 0.5 + 1e-2


def cv2_or_pillow_16(path: Path) -> np.ndarray:
    """A 16-bit colour file as RGB(A) uint16, read by OpenCV when installed, else by
    ``cnncli.images`` (itself checked against files ImageMagick wrote)."""
    try:
        import cv2
    except ImportError:
        from cnncli import images

        pic = images.load_image(path)
        planes = [pic.data] if pic.alpha is None else [pic.data, pic.alpha[..., None]]
        return np.concatenate(planes, axis=2)
    px = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return px[..., [2, 1, 0, 3][: px.shape[2]]]


def test_palette_and_cmyk_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = Image.open(SAMPLES / "chelsea.png")
    src.convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    src.convert("CMYK").save(tmp_path / "c.jpg")
    for name in ("p.png", "c.jpg"):
        code, _, err = run(
            ["filter", tmp_path / name, "-k", "identity", "-o", tmp_path / f"o_{name}.png"], capsys
        )
        assert code == 0, err
        out = Image.open(tmp_path / f"o_{name}.png")
        assert out.mode == "RGB" and out.size == (451, 300)
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "o_p.png.png")),
        np.asarray(Image.open(tmp_path / "p.png").convert("RGB")),
    )


def test_exif_orientation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90° anticlockwise to display
    Image.open(SAMPLES / "coffee.png").save(tmp_path / "r.jpg", exif=exif)
    code, _, _ = run(
        ["filter", tmp_path / "r.jpg", "-k", "identity", "-o", tmp_path / "o.png"], capsys
    )
    assert code == 0
    assert Image.open(tmp_path / "o.png").size == (400, 600)


@pytest.mark.parametrize(
    "ext,mode",
    [(".tif", "RGB"), (".webp", "RGB"), (".bmp", "RGB"), (".jpg", "RGB"), (".png", "RGB")],
)
def test_output_formats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ext: str, mode: str
) -> None:
    code, _, err = run(
        ["filter", SAMPLES / "chelsea.png", "-k", "gaussian", "-o", tmp_path / f"o{ext}"], capsys
    )
    assert code == 0, err
    im = Image.open(tmp_path / f"o{ext}")
    assert im.mode == mode and im.size == (451, 300)
    assert (
        im.format
        == {".tif": "TIFF", ".webp": "WEBP", ".bmp": "BMP", ".jpg": "JPEG", ".png": "PNG"}[ext]
    )


def test_raw_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(
        ["filter", SAMPLES / "camera.png", "-k", "sobel-x", "-o", tmp_path / "r.npy"], capsys
    )
    assert code == 0
    raw = np.load(tmp_path / "r.npy")
    assert raw.dtype == np.float32 and raw.min() < 0 < raw.max()  # signed, unmapped
    code, _, _ = run(
        ["filter", SAMPLES / "camera.png", "-k", "sobel-x", "--raw", "-o", tmp_path / "r.tif"],
        capsys,
    )
    assert code == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "r.tif")), raw)
    code, _, err = run(
        ["filter", SAMPLES / "camera.png", "-k", "sobel-x", "--raw", "-o", tmp_path / "r.png"],
        capsys,
    )
    assert code == 2
    assert (
        err == "cnncli: error: --raw writes float values, which only .npy and .tif hold; not .png\n"
    )


# ------------------------------------------------------------------ output size = cnncli shape


@pytest.mark.parametrize(
    "kernel,opts,shape_opts",
    [
        ("3,1,2;0,1,1;2,2,2", ["-p", "same", "-s", "2"], ["-p", "same", "-s", "2", "-f", "tf"]),
        ("1,2,3,4,5", ["-p", "valid", "-d", "2"], ["-p", "valid", "-d", "2"]),
        ("1,2;3,4", ["-p", "full", "-s", "3"], ["-p", "full", "-s", "3"]),
        ("box:size=5", ["-p", "2", "-s", "3,2"], ["-p", "2", "-s", "3,2"]),
        (
            "gaussian:sigma=2",
            ["-p", "same", "-s", "3", "-d", "1"],
            ["-p", "same", "-s", "3", "-f", "tf"],
        ),
    ],
)
def test_output_size_is_what_shape_prints(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kernel: str,
    opts: list[str],
    shape_opts: list[str],
) -> None:
    from cnncli.filtering.kernels import resolve_kernel

    code, _, err = run(
        ["filter", SAMPLES / "chelsea.png", "-k", kernel, *opts, "-o", tmp_path / "o.npy"], capsys
    )
    assert code == 0, err
    kh, kw = resolve_kernel(kernel).spatial
    code, out, err = run(["shape", "300", "451", "-k", f"{kh},{kw}", *shape_opts, "--json"], capsys)
    assert code == 0, err
    assert list(np.load(tmp_path / "o.npy").shape[:2]) == json.loads(out)["output_shape"]


def test_then_chain_size_is_what_shape_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        [
            "filter",
            SAMPLES / "camera.png",
            "-k",
            "vertical-edge",
            "-p",
            "valid",
            "--then",
            "relu",
            "--then",
            "maxpool:3:2",
            "-o",
            tmp_path / "o.npy",
        ],
        capsys,
    )
    assert code == 0, err
    out = np.load(tmp_path / "o.npy")
    assert out.min() >= 0  # relu
    code, text, _ = run(
        ["shape", "510", "510", "-k", "3", "-s", "2", "--op", "maxpool", "--json"], capsys
    )
    assert list(out.shape) == json.loads(text)["output_shape"]


def test_then_pooling_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "x.npy", np.arange(16, dtype=np.float32).reshape(4, 4) - 8)
    code, _, _ = run(
        [
            "filter",
            tmp_path / "x.npy",
            "-k",
            "identity",
            "--then",
            "relu",
            "--then",
            "avgpool:2",
            "-o",
            tmp_path / "o.npy",
        ],
        capsys,
    )
    assert code == 0
    assert np.load(tmp_path / "o.npy").tolist() == [[0.0, 0.0], [2.5, 4.5]]


# ------------------------------------------------------------------ options


def test_convolve_flips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = SAMPLES / "seed.npy"
    run(
        ["filter", img, "-k", "1,2,3;4,5,6", "--convolve", "-p", "valid", "-o", tmp_path / "a.npy"],
        capsys,
    )
    run(["filter", img, "-k", "6,5,4;3,2,1", "-p", "valid", "-o", tmp_path / "b.npy"], capsys)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_normalize_and_zero_sum_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "x.npy", np.full((5, 5), 10, dtype=np.float32))
    code, _, err = run(
        ["filter", tmp_path / "x.npy", "-k", "1,1;1,1", "--normalize", "-o", tmp_path / "n.npy"],
        capsys,
    )
    assert code == 0 and err == ""
    np.testing.assert_allclose(np.load(tmp_path / "n.npy"), 10)
    code, _, err = run(
        ["filter", tmp_path / "x.npy", "-k", "1,0,-1", "--normalize", "-o", tmp_path / "z.npy"],
        capsys,
    )
    assert code == 0
    assert err == (
        "cnncli: warning: kernel 'custom' sums to 0, so --normalize left it unchanged "
        "(zero-sum kernels detect edges; their result is centred on 0)\n"
    )
    assert np.all(np.isfinite(np.load(tmp_path / "z.npy")))


def test_anchor_moves_the_origin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "x.npy", np.arange(25, dtype=np.float32).reshape(5, 5))
    # A 1×3 picker of the first tap: anchored on tap 0 it returns the pixel itself.
    code, _, err = run(
        ["filter", tmp_path / "x.npy", "-k", "1,0,0", "--anchor", "0,0", "-o", tmp_path / "a.npy"],
        capsys,
    )
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "x.npy"))
    code, _, err = run(
        ["filter", tmp_path / "x.npy", "-k", "1,0,0", "--anchor", "0,3", "-o", tmp_path / "b.npy"],
        capsys,
    )
    assert code == 2
    assert err == "cnncli: error: --anchor 0,3 is outside the 1×3 kernel; use 0..0,0..2\n"


def test_border_constant_value_matches_opencv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cv2 = pytest.importorskip("cv2")
    code, _, _ = run(
        [
            "filter",
            SAMPLES / "camera.png",
            "-k",
            "box:size=7",
            "--border",
            "constant=200",
            "-o",
            tmp_path / "o.npy",
        ],
        capsys,
    )
    assert code == 0
    img = np.asarray(Image.open(SAMPLES / "camera.png"), dtype=np.float32)
    padded = cv2.copyMakeBorder(img, 3, 3, 3, 3, cv2.BORDER_CONSTANT, value=200)
    ref = cv2.blur(padded, (7, 7))[3:-3, 3:-3]
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), ref, atol=1e-3)


def test_direction_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(
        ["filter", SAMPLES / "camera.png", "-k", "sobel", "--direction", "-o", tmp_path / "a.npy"],
        capsys,
    )
    run(["filter", SAMPLES / "camera.png", "-k", "sobel-dir", "-o", tmp_path / "b.npy"], capsys)
    a = np.load(tmp_path / "a.npy")
    np.testing.assert_array_equal(a, np.load(tmp_path / "b.npy"))
    assert 0 <= a.min() and a.max() < 360


# ------------------------------------------------------------------ oracles on photos


def test_sobel_png_matches_opencv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cv2 = pytest.importorskip("cv2")
    code, _, _ = run(
        ["filter", SAMPLES / "camera.png", "-k", "sobel-x", "-o", tmp_path / "x.png"], capsys
    )
    assert code == 0
    img = cv2.imread(str(SAMPLES / "camera.png"), cv2.IMREAD_GRAYSCALE)
    ref = cv2.convertScaleAbs(cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3))
    ours = np.asarray(Image.open(tmp_path / "x.png")).astype(int)
    assert np.abs(ours - ref).max() <= 1
    code, _, _ = run(
        ["filter", SAMPLES / "camera.png", "-k", "sobel", "-o", tmp_path / "m.png"], capsys
    )
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
    ref = cv2.convertScaleAbs(cv2.magnitude(gx, gy))
    assert np.abs(np.asarray(Image.open(tmp_path / "m.png")).astype(int) - ref).max() <= 1


def test_gaussian_png_matches_opencv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cv2 = pytest.importorskip("cv2")
    code, _, _ = run(
        ["filter", SAMPLES / "coffee.png", "-k", "gaussian:sigma=2", "-o", tmp_path / "g.png"],
        capsys,
    )
    assert code == 0
    rgb = np.asarray(Image.open(SAMPLES / "coffee.png"))
    ref = cv2.GaussianBlur(rgb, (0, 0), 2)  # OpenCV picks 13×13 for sigma 2 on 8-bit images too
    assert np.abs(np.asarray(Image.open(tmp_path / "g.png")).astype(int) - ref).max() <= 1


# ------------------------------------------------------------------ golden images


def _crop(tmp_path: Path) -> Path:
    # A 160×120 piece of coffee.png keeps the golden files small.
    path = tmp_path / "crop.png"
    Image.open(SAMPLES / "coffee.png").crop((220, 100, 380, 220)).save(path)
    return path


@pytest.mark.parametrize(
    "kernel,extra,name",
    [
        ("sobel", [], "sobel.png"),
        ("gaussian:sigma=2", [], "gaussian-sigma2.png"),
        ("emboss", ["--gray"], "emboss-gray.png"),
        ("kirsch", ["--gray"], "kirsch-gray.png"),
        (
            "vertical-edge",
            ["--gray", "--then", "relu", "--then", "maxpool:2"],
            "vertical-edge-relu-maxpool2.png",
        ),
    ],
)
def test_golden(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kernel: str, extra: list[str], name: str
) -> None:
    out = tmp_path / name
    code, _, err = run(["filter", _crop(tmp_path), "-k", kernel, *extra, "-o", out], capsys)
    assert code == 0, err
    golden = GOLDEN / name
    if os.environ.get("CNNCLI_REGEN_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(out.read_bytes())
    assert golden.exists(), f"missing {golden}; run with CNNCLI_REGEN_GOLDEN=1"
    ours, want = Image.open(out), Image.open(golden)
    assert ours.mode == want.mode and ours.size == want.size
    diff = np.abs(np.asarray(ours).astype(int) - np.asarray(want).astype(int))
    assert diff.max() <= 1, f"{name}: {np.count_nonzero(diff > 1)} pixels differ by more than 1"


# ------------------------------------------------------------------ batch


def test_batch_with_one_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.open(SAMPLES / "camera.png").resize((64, 64)).save(src / "a.png")
    Image.open(SAMPLES / "chelsea.png").resize((60, 40)).save(src / "c.png")
    (src / "b.jpg").write_text("not a picture")
    code, out, err = run(["filter", src, "-k", "sobel", "--out-dir", tmp_path / "out"], capsys)
    assert code == 1
    lines = err.splitlines()
    assert lines == [
        f"cnncli: error: {src / 'b.jpg'}: not an image Pillow can read; give a PNG, JPEG, TIFF, BMP, WebP or GIF file, a .npy array or a .csv/.txt matrix",
        "cnncli: error: 1 of 3 files failed",
    ]
    assert listing(tmp_path / "out") == ["a_sobel.png", "c_sobel.png"]
    assert out.count("→") == 2


def test_batch_glob_expanded_by_us(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for n in ("x", "y"):
        np.save(tmp_path / f"{n}.npy", np.ones((4, 4), np.float32))
    code, _, err = run(
        ["filter", str(tmp_path / "*.npy"), "-k", "box", "--out-dir", tmp_path / "o"], capsys
    )
    assert code == 0, err
    assert listing(tmp_path / "o") == ["x_box.npy", "y_box.npy"]
    code, _, err = run(
        ["filter", str(tmp_path / "*.gif"), "-k", "box", "--out-dir", tmp_path / "o"], capsys
    )
    assert code == 1 and err == f"cnncli: error: {tmp_path / '*.gif'}: no files match\n"


def test_batch_kernel_too_big_for_one_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "big.npy", np.ones((9, 9), np.float32))
    np.save(tmp_path / "small.npy", np.ones((3, 3), np.float32))
    code, _, err = run(
        [
            "filter",
            tmp_path / "big.npy",
            tmp_path / "small.npy",
            "-k",
            "box:size=5",
            "-p",
            "valid",
            "--out-dir",
            tmp_path,
        ],
        capsys,
    )
    assert code == 1
    assert err.splitlines()[-1] == "cnncli: error: 1 of 2 files failed"
    assert "small.npy (3×3 gray float): kernel 5 is larger than the padded input 3 on axis H" in err
    assert (tmp_path / "big_box-size5.npy").exists() and not (
        tmp_path / "small_box-size5.npy"
    ).exists()


def test_default_output_next_to_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "cat.png"
    Image.open(SAMPLES / "chelsea.png").save(img)
    code, out, _ = run(["filter", img, "-k", "gaussian:sigma=1.5"], capsys)
    assert code == 0
    assert (tmp_path / "cat_gaussian-sigma1p5.png").exists()
    assert (
        f"{img} → {tmp_path / 'cat_gaussian-sigma1p5.png'}: 451×300 RGB 8-bit, gaussian:sigma=1.5, border reflect101, map clip"
        in out
    )
    code, _, err = run(["filter", img, "-k", "gaussian:sigma=1.5"], capsys)
    assert code == 1
    assert (
        err
        == f"cnncli: error: {tmp_path / 'cat_gaussian-sigma1p5.png'}: already exists; use --force to overwrite it\n"
    )
    code, _, _ = run(["filter", img, "-k", "gaussian:sigma=1.5", "--force"], capsys)
    assert code == 0


@pytest.mark.parametrize("colour", [True, False])
def test_preview_only_writes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    colour: bool,
) -> None:
    """Half-block colour cells on a colour terminal; grey characters when there is no colour
    (here a pipe), brighter denser."""
    from cnncli.render.preview import RAMP

    monkeypatch.setenv("COLUMNS", "80")
    if colour:
        monkeypatch.setenv("FORCE_COLOR", "1")
    else:
        monkeypatch.delenv("FORCE_COLOR", raising=False)
    img = tmp_path / "cat.png"
    Image.open(SAMPLES / "chelsea.png").save(img)
    code, out, _ = run(["filter", img, "-k", "sobel", "--preview"], capsys)
    assert code == 0
    assert "sobel (abs)" in out
    assert listing(tmp_path) == ["cat.png"]
    import re

    picture = out.splitlines()[1:-1]  # between the titles and the report line
    shown = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in picture]
    assert len(picture) >= 10 and max(len(line) for line in shown) <= 80
    if colour:
        assert all("▀" in line for line in picture)
    else:
        assert "▀" not in out and "\x1b" not in out
        assert set("".join(picture)) <= set(RAMP) and len(set("".join(picture))) >= 5


def test_ascii_shades_follow_the_luma() -> None:
    import io

    from rich.console import Console

    from cnncli.render.preview import RAMP, AsciiShades

    px = np.zeros((4, 10, 3), np.uint8)
    px[:, 5:] = 255  # right half white
    px[2:, :, 0] = 255  # bottom rows: red adds 0.299·255 of luma
    console = Console(file=io.StringIO(), width=40, color_system=None)
    console.print(AsciiShades(px))
    rows = console.file.getvalue().splitlines()
    assert rows == [RAMP[0] * 5 + RAMP[-1] * 5, RAMP[2] * 5 + RAMP[-1] * 5]


# ------------------------------------------------------------------ bad input (issue section 8)


def _bad_files(folder: Path) -> None:
    (folder / "text.jpg").write_text("hello")
    (folder / "empty.png").write_bytes(b"")
    data = (SAMPLES / "coffee.png").read_bytes()
    (folder / "cut.png").write_bytes(data[:5000])
    Image.new("L", (200, 200)).save(folder / "bomb.png")


CASES = [
    (["missing.png", "-k", "sobel"], 1, "missing.png: no such file"),
    (
        ["text.jpg", "-k", "sobel"],
        1,
        "text.jpg: not an image Pillow can read; give a PNG, JPEG, TIFF, BMP, WebP or GIF file, a .npy array or a .csv/.txt matrix",
    ),
    (
        ["empty.png", "-k", "sobel"],
        1,
        "empty.png: empty; give a PNG, JPEG, TIFF, BMP, WebP or GIF file, a .npy array or a .csv/.txt matrix",
    ),
    (
        ["cut.png", "-k", "sobel"],
        1,
        "cut.png: truncated or damaged image (image file is truncated)",
    ),
    (
        ["bomb.png", "-k", "sobel", "--max-pixels", "10000"],
        1,
        "bomb.png: 200×200 = 40,000 pixels is more than 10,000 pixels, refused as a possible decompression bomb; raise the limit with --max-pixels N if you trust the file",
    ),
    (
        ["ok.png", "-k", "sobl"],
        2,
        "unknown kernel 'sobl'; did you mean sobel, sobel-y, sobel-x? run 'cnncli kernels' for the list, or give a matrix like \"1,0,-1;1,0,-1;1,0,-1\" or a .txt/.csv/.json/.npy file",
    ),
    (
        ["ok.png", "-k", "1,0,-1;1,0"],
        2,
        "kernel '1,0,-1;1,0' row 2 has 2 values but row 1 has 3; every row needs the same number of values",
    ),
    (
        ["ok.png", "-k", "1,nan,1"],
        2,
        "kernel '1,nan,1' row 1 value 2 is nan; kernels need finite numbers",
    ),
    (["ok.png", "-k", ";;"], 2, "kernel ';;' is empty; give at least one number"),
    (
        ["ok.png", "-k", "gaussian:sigm=2"],
        2,
        "kernel 'gaussian' has no parameter 'sigm'; valid parameters: sigma, size",
    ),
    (
        ["ok.png", "-k", "box:size=11", "-p", "valid"],
        1,
        "ok.png (6×8 gray 8-bit): kernel 11 is larger than the padded input 8 on axis H (input 8 + padding 0+0); use padding of at least 3 in total, or a smaller kernel",
    ),
    (
        ["ok.png", "-k", "sobel", "--stride", "0"],
        2,
        "stride 0 is not allowed; use a positive whole number",
    ),
    (
        ["ok.png", "-k", "sobel", "--dilation", "0"],
        2,
        "dilation 0 is not allowed; use a positive whole number",
    ),
    (
        ["ok.png", "-k", "sobel", "--border", "mirrorr"],
        2,
        "unknown border 'mirrorr'; did you mean mirror? use one of reflect101, reflect, replicate, wrap, constant[=v] (or OpenCV's/scipy's names: mirror, nearest, grid-wrap, …)",
    ),
    (
        ["ok.png", "-k", "sobel", "--border", "constant=x"],
        2,
        "--border 'constant=x': 'x' is not a number; write e.g. constant=128",
    ),
    (
        ["ok.png", "-k", "sobel", "-o", "nodir/o.png"],
        1,
        "nodir/o.png: directory 'nodir' does not exist",
    ),
    (
        ["ok.png", "-k", "sobel", "-o", "ok.png", "--force"],
        1,
        "ok.png: is an input of this run; refusing to overwrite it, even with --force; choose another output name",
    ),
    (
        ["ok.png", "-k", "sobel", "-o", "o.gif"],
        2,
        "cannot tell the output format of 'o.gif' from '.gif'; use .png, .jpg, .tif, .webp, .bmp, .npy, .csv or .txt",
    ),
    (
        ["ok.png", "-k", "sobel", "--map", "loud"],
        2,
        "unknown --map 'loud' (choices: clip, abs, normalize, offset)",
    ),
    (
        ["ok.png", "-k", "sobel", "--then", "softmax"],
        2,
        "--then 'softmax' is not a stage; use relu, maxpool:K[:S], avgpool:K[:S] or conv:SPEC",
    ),
    (
        ["ok.png", "text.jpg", "-k", "sobel", "-o", "o.png"],
        2,
        "-o names one output file but 2 inputs were given; use --out-dir DIR",
    ),
    (
        ["ok.png", "-k", "sobel", "-o", "o.png", "--out-dir", "d"],
        2,
        "-o and --out-dir both given; use -o for one input or --out-dir for many",
    ),
    (
        ["ok.png", "-k", "sobel", "--anchor", "1,1", "-p", "valid"],
        2,
        "--anchor applies only to --padding same, not 'valid'; drop --anchor or use same",
    ),
    (
        ["ok.png", "-k", "nope/k.json"],
        1,
        "kernel file 'nope/k.json' not found; check the path, or give a kernel name",
    ),
    (
        ["ok.png", "-k", "sobel", "--then", "maxpool:9"],
        1,
        "ok.png (6×8 gray 8-bit): stage maxpool:9: the 9×9 window is larger than the result it pools (8 rows, 6 columns); use a window of at most 6 (maxpool:6)",
    ),
]


@pytest.mark.parametrize("args,code,message", CASES, ids=[c[2][:40] for c in CASES])
def test_bad_input(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    code: int,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    _bad_files(tmp_path)
    Image.new("L", (6, 8), 100).save(tmp_path / "ok.png")
    (tmp_path / "o.png").unlink(missing_ok=True)
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    got, out, err = run(["filter", *args], capsys)
    assert got == code, err
    assert err == f"cnncli: error: {message}\n"
    assert "Traceback" not in err and out == ""
    # Nothing written, nothing changed.
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_existing_output_refused_then_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "o.png"
    target.write_bytes(b"keep me")
    code, _, err = run(["filter", SAMPLES / "camera.png", "-k", "box", "-o", target], capsys)
    assert (
        code == 1
        and err == f"cnncli: error: {target}: already exists; use --force to overwrite it\n"
    )
    assert target.read_bytes() == b"keep me"
    code, _, _ = run(
        ["filter", SAMPLES / "camera.png", "-k", "box", "-o", target, "--force"], capsys
    )
    assert code == 0 and Image.open(target).size == (512, 512)


def test_unwritable_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cnncli import outputs

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(outputs, "_temp_path", denied)
    code, _, err = run(
        ["filter", SAMPLES / "camera.png", "-k", "box", "-o", tmp_path / "o.png"], capsys
    )
    assert code == 1
    assert err == f"cnncli: error: {tmp_path / 'o.png'}: cannot write (Permission denied)\n"
    assert listing(tmp_path) == []


@pytest.mark.parametrize("ext", ["png", "tif", "jpg"])  # our PNG and TIFF writers; Pillow
def test_failed_write_leaves_no_partial_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, ext: str
) -> None:
    import tifffile

    from cnncli.images import _png as png

    real_save = Image.Image.save

    def dies_halfway(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        real_save(self, fp, *args, **kwargs)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(Image.Image, "save", dies_halfway)
    for writer in (png.PngWriter, tifffile.TiffWriter):
        real_close = writer.close

        def dies_at_the_end(self: object, real=real_close) -> None:
            real(self)  # the whole file is written, then the disk fails
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(writer, "close", dies_at_the_end)
    code, _, err = run(
        ["filter", SAMPLES / "camera.png", "-k", "box", "-o", tmp_path / f"o.{ext}"], capsys
    )
    assert code == 1 and "cannot write (Input/output error)" in err
    assert listing(tmp_path) == []


# ------------------------------------------------------------------ kernels command and help


def test_kernels_table(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    code, out, _ = run(["kernels"], capsys)
    assert code == 0
    for name in (
        "identity",
        "gaussian",
        "sobel",
        "kirsch",
        "motion",
        "vertical-edge",
        "laplacian8",
        "log",
    ):
        assert f"│ {name} " in out
    assert " 1  0 -1 " in out  # vertical-edge drawn numerically
    assert "sigma=1, size=7" in out


def test_kernels_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["kernels", "gaussian:sigma=2"], capsys)
    assert code == 0
    assert "13×13, sum 1" in out and "sigma=2, size=13" in out
    code, out, _ = run(["kernels", "sobel"], capsys)
    assert "x: 3×3" in out and "y: 3×3" in out and "-2  0  2" in out
    code, _, err = run(["kernels", "sobell"], capsys)
    assert code == 2 and err.startswith(
        "cnncli: error: unknown kernel 'sobell'; did you mean sobel"
    )


def test_help_has_examples_and_border_names(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["filter", "--help"], capsys)
    assert code == 0
    for needle in (
        "seed.csv -k vertical-edge -p valid",
        "-k vertical-edge -k horizontal-edge",
        "--layout chw",
        "-k sobel",
        "gaussian:sigma=2",
        "--then relu --then maxpool:2",
        "BORDER_REFLECT_101 / mirror",
    ):
        assert needle in " ".join(out.split()), needle


def test_fast_start_does_not_import_numpy_or_pillow() -> None:
    code = (
        "import sys, cnncli.cli, cnncli.cli.filter, cnncli.cli.kernels; "
        "import cnncli.filtering.pipeline, cnncli.filtering.batch; "
        "bad = [m for m in ('numpy', 'PIL', 'numba', 'cnncli.filtering.correlate') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_help_examples_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shlex
    import shutil

    from cnncli.cli.filter import FILTER_HELP

    shutil.copytree(SAMPLES, tmp_path / "samples")
    monkeypatch.chdir(tmp_path)
    examples = [
        shlex.split(line)
        for line in FILTER_HELP.splitlines()
        if line.strip().startswith("cnncli filter")
    ]
    assert len(examples) >= 6
    printed = {}
    for argv in examples:
        code, out, err = run(argv[1:], capsys)
        assert code == 0, f"{argv}: {err}"
        printed[" ".join(argv)] = out.splitlines()[1:]
    seed = "cnncli filter samples/seed.csv -k vertical-edge -p"
    assert printed[f"{seed} valid"] == ["0 39 39 0"] * 4
    assert printed[f"{seed} 1"][1:5] == ["-30 0 39 39 0 -9"] * 4
    d2l = next(v for k, v in printed.items() if "d2l-x-chw.npy" in k)
    assert d2l == [" 56  72", "104 120"]
    assert (tmp_path / "edges.png").exists()
    assert (tmp_path / "samples" / "camera_sobel-x_relu_maxpool2.png").exists()
    assert {"camera_emboss.png", "chelsea_emboss.png", "coffee_emboss.png"} <= set(
        listing(tmp_path / "embossed")
    )


def test_batch_failures_leave_no_empty_out_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.jpg").write_text("text")
    np.save(tmp_path / "two.npy", np.zeros((4, 4, 2), np.float32))
    code, _, err = run(
        [
            "filter",
            tmp_path / "a.jpg",
            tmp_path / "two.npy",
            "-k",
            "box",
            "--gray",
            "--out-dir",
            tmp_path / "out",
        ],
        capsys,
    )
    assert code == 1
    # --gray on a 2-channel array fails for that file only; the batch goes on.
    assert (
        f"cnncli: error: {tmp_path / 'two.npy'}: --gray needs an RGB image but this one has 2 channels"
        in err
    )
    assert err.splitlines()[-1] == "cnncli: error: 2 of 2 files failed"
    assert not (tmp_path / "out").exists()


def test_real_entry_point_reports_and_writes_before_it_ends(tmp_path: Path) -> None:
    """``python -m cnncli filter`` ends without Python's teardown once Numba is loaded (see
    cnncli.cli._end_process): its report line, its file and its exit code must all be there,
    for a success and for an error raised after the core was loaded."""
    out = tmp_path / "edges.png"
    ok = subprocess.run(
        [sys.executable, "-m", "cnncli", "filter", str(SAMPLES / "camera.png"), "-k", "sobel-x"]
        + ["-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.endswith("sobel-x, border reflect101, map abs\n") and ok.stderr == ""
    assert np.asarray(Image.open(out)).shape == (512, 512)
    Image.open(out).verify()  # whole file, every chunk's CRC right
    bad = subprocess.run(
        [sys.executable, "-m", "cnncli", "filter", str(SAMPLES / "seed.npy"), "-k", "box:size=9"]
        + ["--padding", "valid", "-o", str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("cnncli: error: ") and bad.stderr.count("\n") == 1
    assert listing(tmp_path) == ["edges.png"]


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("camera.png", ["-k", "sobel-x"]),
        ("chelsea.png", ["-k", "gaussian:sigma=2"]),
        ("coffee.png", ["-k", "sobel-dir"]),  # normalize over the fixed 0..360
        ("coffee.png", ["-k", "emboss", "--stride", "2", "--then", "relu"]),
        ("rgba.png", ["-k", "sharpen", "--border", "constant=300"]),
        ("gray16.png", ["-k", "laplacian", "--padding", "valid"]),
        ("gray16.tif", ["-k", "box:size=5"]),
        ("rgba16.png", ["-k", "sobel"]),
        ("rgb16_zip.tif", ["-k", "unsharp", "--padding", "full"]),
    ],
)
@pytest.mark.parametrize("band_values", [1, 3000, 1 << 20])  # a row a band .. one band
def test_streamed_output_is_the_whole_result_mapped(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    args: list[str],
    band_values: int,
) -> None:
    """Image outputs are made band by band (never a whole float32 result): the pixels must be
    those of the whole result, mapped, as the library computes it in one piece."""
    from cnncli import config, images

    monkeypatch.setattr(config, "BAND_VALUES", band_values)
    from cnncli.enums import Mapping
    from cnncli.filtering.correlate import apply_kernel
    from cnncli.filtering.kernels import named

    r = np.random.default_rng(5)
    Image.fromarray(r.integers(0, 256, (70, 90, 4), dtype=np.uint8), "RGBA").save(
        tmp_path / "rgba.png"
    )
    g16 = (np.add.outer(np.arange(300), np.arange(260)) * 97 % 65536).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "gray16.png")
    Image.fromarray(g16).save(tmp_path / "gray16.tif")
    src = next(p for p in (SAMPLES / name, SIXTEEN / name, tmp_path / name) if p.exists())
    out = tmp_path / f"out{Path(name).suffix}"
    code, _, err = run(["filter", src, *args, "-o", out], capsys)
    assert code == 0, err

    pic = images.load_image(src)
    opts = dict(zip(args[::2], args[1::2], strict=True))
    kernel = named(opts["-k"])
    # An explicit --padding pads with zeros unless --border says otherwise.
    fallback = "constant" if "--padding" in opts else "reflect101"
    border, _, value = opts.get("--border", fallback).partition("=")
    stride = int(opts.get("--stride", 1))
    whole = apply_kernel(
        kernel, pic.data, padding=opts.get("--padding", "same"), stride=stride,
        border=border, border_value=float(value or 0),
    )  # fmt: skip
    if "--then" in opts:
        whole = np.maximum(whole, 0)
    how = kernel.mapping
    rng_ = kernel.value_range if how is Mapping.NORMALIZE else None
    expected = images.map_values(whole, how, pic.maxval, rng_)
    back = images.load_image(out)
    if pic.alpha is not None:  # passed through
        assert back.alpha is not None
        np.testing.assert_array_equal(back.alpha, pic.alpha)
    assert back.data.dtype == expected.dtype
    np.testing.assert_array_equal(back.data, expected)


def test_batch_progress_bar_on_a_terminal_and_report_lines_on_stdout(tmp_path: Path) -> None:
    """On a terminal (Rich told so by TTY_COMPATIBLE/TTY_INTERACTIVE) stderr shows the bar and
    the failed file; the report lines still go to stdout, which is a pipe here."""
    import shutil

    for name in ("camera.png", "coffee.png"):
        shutil.copy(SAMPLES / name, tmp_path / name)
    (tmp_path / "bad.png").write_text("not an image")
    env = {**os.environ, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "100"}
    proc = subprocess.run(
        [sys.executable, "-m", "cnncli", "filter", "-k", "box", "--out-dir", str(tmp_path / "o")]
        + [str(tmp_path / n) for n in ("camera.png", "bad.png", "coffee.png")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert [line.split(" → ")[0] for line in lines] == [
        str(tmp_path / "camera.png"),
        str(tmp_path / "coffee.png"),
    ]
    assert "\x1b[" in proc.stderr  # drawn for a terminal
    assert "3/3" in proc.stderr and "bad.png" in proc.stderr  # the bar reached the end
    assert f"cnncli: error: {tmp_path / 'bad.png'}: not an image" in proc.stderr
    assert proc.stderr.rstrip().endswith("cnncli: error: 1 of 3 files failed")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "camera_box.png",
        "coffee_box.png",
    ]


def test_a_bomb_just_over_the_default_limit_gives_one_line(tmp_path: Path) -> None:
    """Between Pillow's limit and twice it Pillow only warns; reading the header ahead of the
    decode (to warm the core) must not print that warning beside the refusal. A real process:
    pytest would capture the warning."""
    Image.new("L", (200, 200)).save(tmp_path / "big.png")
    code = (
        # The default pixels limit, made 30,000 for the test: 40,000 px is 1.33× over it.
        "import sys; from cnncli import limits; "
        "limits.LIMITS['pixels'] = limits.Limit(30_000, 'test'); "
        "from cnncli.cli import main; main(sys.argv[1:])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "filter", str(tmp_path / "big.png"), "-k", "box"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "decompression bomb" in proc.stderr and "--max-pixels" in proc.stderr


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("mirror", "reflect101"),
        ("BORDER_REFLECT_101", "reflect101"),
        ("nearest", "replicate"),
        ("grid-wrap", "wrap"),
        ("BORDER_REFLECT", "reflect"),
        ("constant=7", "constant=7"),
    ],
)
def test_border_takes_the_opencv_and_scipy_names_help_advertises(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], alias: str, canonical: str
) -> None:
    src = SAMPLES / "seed.npy"
    outs = []
    for name, border in (("a", alias), ("b", canonical)):
        code, _, err = run(
            ["filter", src, "-k", "sobel-x", "-b", border, "-o", tmp_path / f"{name}.npy"], capsys
        )
        assert code == 0, err
        outs.append(np.load(tmp_path / f"{name}.npy"))
    np.testing.assert_array_equal(outs[0], outs[1])
    code, out, _ = run(["filter", "--help"], capsys)
    assert alias.split("=")[0] in out or alias.startswith("BORDER_REFLECT")
