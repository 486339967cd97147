"""``cnncli filter`` as people learning CNNs use it (issue #14): framework padding, C×H×W
arrays, matrices in and out, several kernels and maps, chained convolutions.

Every number is checked against the system a learner compares with: PyTorch's
``torch.nn.functional.conv2d`` for zero padding, stride, dilation and groups, OpenCV's
``filter2D`` for the photo defaults. Those tests are marked ``oracle`` and skip without the
library.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clirun import run  # tests/clirun.py
from hypothesis import given, settings
from hypothesis import strategies as st

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
RNG = np.random.default_rng(14)


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def torch_conv(x_chw: np.ndarray, w: np.ndarray, **kw: Any) -> np.ndarray:
    """PyTorch's conv2d of one C×H×W input with a C_out×C_in/groups×kh×kw weight: C_out×H'×W'."""
    torch = pytest.importorskip("torch")
    with torch.no_grad():
        out = torch.nn.functional.conv2d(
            torch.from_numpy(np.ascontiguousarray(x_chw, dtype=np.float32))[None],
            torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)),
            **kw,
        )
    result: np.ndarray = out[0].numpy()
    return result


def dense_weight(w: np.ndarray, groups: int) -> np.ndarray:
    """A grouped weight (C_out×C_in/groups×kh×kw) as the one C_out×C_in×kh×kw kernel that
    computes the same thing: zeros outside each output channel's group."""
    cout, cin_g, kh, kw = w.shape
    dense = np.zeros((cout, cin_g * groups, kh, kw), dtype=w.dtype)
    per_group = cout // groups
    for o in range(cout):
        g = o // per_group
        dense[o, g * cin_g : (g + 1) * cin_g] = w[o]
    return dense


def filter_npy(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    x_hwc: np.ndarray,
    kernel: np.ndarray | str,
    *opts: str,
) -> tuple[np.ndarray, str]:
    """Run ``cnncli filter`` on an H×W(×C) array; the .npy result and the report line."""
    np.save(tmp_path / "x.npy", x_hwc.astype(np.float32))
    if isinstance(kernel, np.ndarray):
        np.save(tmp_path / "k.npy", kernel)
        kernel = str(tmp_path / "k.npy")
    out = tmp_path / "out.npy"
    code, stdout, err = run(
        ["filter", tmp_path / "x.npy", "-k", kernel, *opts, "-o", out, "--force"], capsys
    )
    assert code == 0, err
    return np.load(out), stdout


# ------------------------------------------------------------------ 1. framework padding


@pytest.mark.oracle
def test_seed_with_padding_1_is_pytorch_zero_padding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = np.load(SAMPLES / "seed.npy")
    ours, line = filter_npy(tmp_path, capsys, seed, "vertical-edge", "-p", "1")
    k = np.array([[1, 0, -1]] * 3, dtype=np.float32)
    ref = torch_conv(seed[None], k[None, None], padding=1)[0]
    np.testing.assert_array_equal(ours, ref)
    assert ours[2].tolist() == [-30, 0, 39, 39, 0, -9]  # the row, as PyTorch gives it
    assert ", border zeros, map raw" in line


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("cin", "cout", "groups", "k", "padding", "stride", "dilation"),
    [
        (1, 1, 1, (3, 3), "1", 1, 1),
        (3, 4, 1, (3, 3), "2", 2, 1),
        (2, 3, 1, (5, 3), "2,1", 1, 2),
        (4, 4, 2, (3, 3), "1", 1, 1),  # groups=2
        (4, 8, 4, (3, 3), "1", 2, 1),  # depthwise (groups = C_in), two maps each
        (3, 6, 3, (2, 4), "0", 1, (2, 1)),  # even kernel, depthwise-ish, per-axis dilation
        (2, 2, 1, (3, 3), "3", 3, 2),
    ],
)
def test_zero_padding_stride_dilation_groups_match_torch(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    cin: int,
    cout: int,
    groups: int,
    k: tuple[int, int],
    padding: str,
    stride: int,
    dilation: int | tuple[int, int],
) -> None:
    x = RNG.normal(size=(cin, 11, 13)).astype(np.float32)
    w = RNG.normal(size=(cout, cin // groups, *k)).astype(np.float32)
    dil = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    pads = [int(v) for v in padding.split(",")]
    ref = torch_conv(
        x, w, padding=tuple(pads * (3 - len(pads))), stride=stride, dilation=dil, groups=groups
    )
    ours, line = filter_npy(
        tmp_path,
        capsys,
        np.moveaxis(x, 0, -1),
        dense_weight(w, groups),
        "-p",
        padding,
        "-s",
        str(stride),
        "-d",
        f"{dil[0]},{dil[1]}",
    )
    ours_chw = np.moveaxis(ours, -1, 0) if ours.ndim == 3 else ours[None]
    assert ours_chw.shape == ref.shape
    np.testing.assert_allclose(ours_chw, ref, rtol=1e-5, atol=1e-4)
    assert ("border zeros" if padding != "0" else "no border") in line


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's own
@pytest.mark.parametrize("dilation", [1, 2])
def test_same_and_full_pad_with_zeros_as_torch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dilation: int
) -> None:
    x = RNG.normal(size=(9, 10)).astype(np.float32)
    w = RNG.normal(size=(4, 3)).astype(np.float32)  # even height: the odd pixel goes after
    same, _ = filter_npy(tmp_path, capsys, x, w, "-p", "same", "-d", str(dilation))
    ref = torch_conv(x[None], w[None, None], padding="same", dilation=dilation)[0]
    np.testing.assert_allclose(same, ref, rtol=1e-5, atol=1e-5)
    full, _ = filter_npy(tmp_path, capsys, x, w, "-p", "full", "-d", str(dilation))
    span = (dilation * 3, dilation * 2)
    ref = torch_conv(x[None], w[None, None], padding=span, dilation=dilation)[0]
    np.testing.assert_allclose(full, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.oracle
def test_same_with_a_stride_is_tensorflow_same_with_zeros(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """TensorFlow's SAME at stride 2 (output ⌈n/s⌉, the odd pixel of padding after), with its
    zeros: PyTorch refuses 'same' with a stride, so the oracle pads explicitly first."""
    torch = pytest.importorskip("torch")
    x = RNG.normal(size=(10, 7)).astype(np.float32)
    w = RNG.normal(size=(3, 3)).astype(np.float32)
    ours, _ = filter_npy(tmp_path, capsys, x, w, "-p", "same", "-s", "2")
    # n=10: total 1 (0 before, 1 after); n=7: total 2 (1, 1).
    padded = torch.nn.functional.pad(torch.from_numpy(x)[None, None], (1, 1, 0, 1))
    ref = torch_conv(padded[0].numpy(), w[None, None], stride=2)[0]
    assert ours.shape == (5, 4)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.oracle
@pytest.mark.parametrize("kernel", ["sobel-x", "gaussian:sigma=2", "laplacian", "emboss"])
def test_photo_defaults_are_opencv_filter2d(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kernel: str
) -> None:
    """No --padding: the photo keeps its size with reflect101 borders, cv2.filter2D's default."""
    cv2 = pytest.importorskip("cv2")
    from cnncli.filtering.kernels import resolve_kernel

    out = tmp_path / "o.npy"
    code, line, err = run(["filter", SAMPLES / "coffee.png", "-k", kernel, "-o", out], capsys)
    assert code == 0, err
    assert ", border reflect101, " in line
    rgb = cv2.cvtColor(cv2.imread(str(SAMPLES / "coffee.png")), cv2.COLOR_BGR2RGB)
    k = resolve_kernel(kernel).matrix
    ref = cv2.filter2D(rgb.astype(np.float32), cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT_101)
    ours = np.load(out)
    scale = np.abs(k).sum() * 255
    assert np.abs(ours - ref).max() <= 1e-5 * scale


@pytest.mark.oracle
def test_explicit_padding_with_a_border_keeps_that_border(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``-p same --border reflect101`` is the OpenCV default again; ``-p 1 -b replicate`` is
    cv2's BORDER_REPLICATE; ``-b zeros`` is the constant 0, ``circular`` is wrap."""
    cv2 = pytest.importorskip("cv2")
    x = RNG.normal(size=(12, 9)).astype(np.float32)
    k = RNG.normal(size=(3, 3)).astype(np.float32)
    default, line = filter_npy(tmp_path, capsys, x, k)
    assert ", border reflect101, " in line
    again, line = filter_npy(tmp_path, capsys, x, k, "-p", "same", "-b", "reflect101")
    np.testing.assert_array_equal(again, default)
    rep, line = filter_npy(tmp_path, capsys, x, k, "-p", "1", "-b", "replicate")
    assert ", border replicate, " in line
    ref = cv2.filter2D(x, cv2.CV_32F, k, borderType=cv2.BORDER_REPLICATE)
    np.testing.assert_allclose(rep, ref, rtol=1e-5, atol=1e-5)
    zeros, line = filter_npy(tmp_path, capsys, x, k, "-b", "zeros")
    assert ", border zeros, " in line
    ref = cv2.filter2D(x, cv2.CV_32F, k, borderType=cv2.BORDER_CONSTANT)
    np.testing.assert_allclose(zeros, ref, rtol=1e-5, atol=1e-5)
    wrap, _ = filter_npy(tmp_path, capsys, x, k, "-b", "wrap")
    circular, line = filter_npy(tmp_path, capsys, x, k, "-b", "circular")
    np.testing.assert_array_equal(circular, wrap)
    assert ", border wrap, " in line


@pytest.mark.parametrize(
    ("opts", "note"),
    [
        ([], "border reflect101"),
        (["-p", "1"], "border zeros"),
        (["-p", "same"], "border zeros"),
        (["-p", "valid"], "no border"),
        (["-p", "0"], "no border"),
        (["-p", "0:1,1:0"], "border zeros"),
        (["-p", "1", "-b", "constant=7"], "border constant=7"),
        (["-b", "nearest"], "border replicate"),
        (["-k", "2"], "no border"),  # a 1×1 kernel pads nothing
    ],
)
def test_every_result_line_names_the_border(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], opts: list[str], note: str
) -> None:
    kernel = ["-k", "vertical-edge"] if "-k" not in opts else []
    code, line, err = run(
        ["filter", SAMPLES / "camera.png", *kernel, *opts, "-o", tmp_path / "o.png"], capsys
    )
    assert code == 0, err
    assert line.endswith(f", {note}, map {'abs' if kernel else 'clip'}\n")


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (
            ["-b", "zeros=3"],
            "cnncli: error: --border 'zeros=3': only constant takes a value (constant=v)\n",
        ),
        *(
            (
                ["-p", bad],
                f"cnncli: error: --padding {bad!r} is not understood; use same, valid, full, a "
                "number (1), one per axis (1,2) or before:after pairs (0:1,1:1)\n",
            )
            for bad in ("causal", "1:x", "-1")
        ),
    ],
)
def test_bad_padding_and_border_are_one_line_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], opts: list[str], message: str
) -> None:
    code, out, err = run(
        ["filter", SAMPLES / "seed.npy", "-k", "sobel", *opts, "-o", tmp_path / "o.npy"], capsys
    )
    assert (code, out, err) == (2, "", message)
    assert listing(tmp_path) == []


# ------------------------------------------------------------------ 2. layouts


def test_d2l_x_as_d2l_holds_it_with_layout_chw(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """d2l's X is 2×3×3, C×H×W: read with --layout chw, its 2×2×2 kernel K gives d2l's
    [[56, 72], [104, 120]] (d2l's corr2d_multi_in, computed here in NumPy)."""
    x = np.load(SAMPLES / "d2l-x-chw.npy")
    assert x.shape == (2, 3, 3)
    np.testing.assert_array_equal(x, np.moveaxis(np.load(SAMPLES / "d2l-x.npy"), -1, 0))
    k = np.array([[[0, 1], [2, 3]], [[1, 2], [3, 4]]], dtype=np.float32)
    want = sum(
        np.array([[(x[c, i : i + 2, j : j + 2] * k[c]).sum() for j in range(2)] for i in range(2)])
        for c in range(2)
    )
    out = tmp_path / "y.npy"
    code, line, err = run(
        ["filter", SAMPLES / "d2l-x-chw.npy", "--layout", "chw"]
        + ["-k", SAMPLES / "kernels" / "d2l-3d.json", "-p", "valid", "-o", out],
        capsys,
    )
    assert code == 0, err
    assert np.load(out).tolist() == want.tolist() == [[56, 72], [104, 120]]
    assert "float32 2×2, unmapped" in line


@pytest.mark.oracle
def test_layout_chw_in_and_out_is_pytorch_conv2d(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """C×H×W in, a C_out×C_in×kh×kw kernel, C_out×H'×W' out: F.conv2d's own layouts."""
    import json

    x = np.load(SAMPLES / "d2l-x-chw.npy")
    k4 = np.array(json.loads((SAMPLES / "kernels" / "d2l-4d.json").read_text()), np.float32)
    out = tmp_path / "y.npy"
    code, line, err = run(
        ["filter", SAMPLES / "d2l-x-chw.npy", "--layout", "chw"]
        + ["-k", SAMPLES / "kernels" / "d2l-4d.json", "-p", "valid", "-o", out],
        capsys,
    )
    assert code == 0, err
    assert "float32 3×2×2 C×H×W, unmapped" in line
    np.testing.assert_array_equal(np.load(out), torch_conv(x, k4))
    # A random C×H×W input with zero padding, stride and groups, both ways C×H×W.
    x = RNG.normal(size=(4, 9, 8)).astype(np.float32)
    w = RNG.normal(size=(6, 2, 3, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", dense_weight(w, 2))
    code, _, err = run(
        ["filter", tmp_path / "x.npy", "--layout", "chw", "-k", tmp_path / "w.npy"]
        + ["-p", "1", "-s", "2", "-o", out, "--force"],
        capsys,
    )
    assert code == 0, err
    ref = torch_conv(x, w, padding=1, stride=2, groups=2)
    np.testing.assert_allclose(np.load(out), ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    ("source", "layout", "message"),
    [
        (
            "d2l-x-chw.npy",
            "hwc",
            "cnncli: error: {src}: kernel has 2 input channels (shape 2×2×2) but the array "
            "read as H×W×C (2×3×3) has 3; it is C×H×W with 2 channels: add --layout chw\n",
        ),
        (
            "d2l-x.npy",
            "chw",
            "cnncli: error: {src}: kernel has 2 input channels (shape 2×2×2) but the array "
            "read as C×H×W (3×3×2) has 3; it is H×W×C with 2 channels: drop --layout chw\n",
        ),
    ],
)
def test_a_channel_mismatch_the_other_layout_fixes_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, layout: str, message: str
) -> None:
    src = SAMPLES / source
    code, out, err = run(
        ["filter", src, "--layout", layout, "-k", SAMPLES / "kernels" / "d2l-3d.json"]
        + ["-p", "valid", "-o", tmp_path / "y.npy"],
        capsys,
    )
    assert (code, out, err) == (1, "", message.format(src=src))
    assert listing(tmp_path) == []


def test_a_mismatch_no_layout_fixes_keeps_the_plain_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "x.npy", np.zeros((5, 6, 3), np.float32))
    code, _, err = run(
        ["filter", tmp_path / "x.npy", "-k", SAMPLES / "kernels" / "d2l-3d.json"]
        + ["-o", tmp_path / "y.npy"],
        capsys,
    )
    assert code == 1
    assert err == (
        "cnncli: error: kernel has 2 input channels (shape 2×2×2) but the image has 3; "
        "give a 3×2×2 kernel, or a 2-D one for every channel\n"
    )


def test_an_array_that_looks_chw_read_hwc_gets_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = RNG.normal(size=(3, 8, 10)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, line, err = run(
        ["filter", tmp_path / "x.npy", "-k", "box", "-o", tmp_path / "a.npy"], capsys
    )
    assert code == 0
    assert err == (
        f"cnncli: warning: {tmp_path / 'x.npy'} is 3×8×10, read as H×W×C: 3 rows, 8 columns, "
        "10 channels; if it is C×H×W, add --layout chw\n"
    )
    assert "float32 3×8×10 H×W×C, unmapped" in line
    code, line, err = run(
        ["filter", tmp_path / "x.npy", "--layout", "chw", "-k", "box", "-o", tmp_path / "b.npy"],
        capsys,
    )
    assert code == 0 and err == ""
    assert "float32 3×8×10 C×H×W, unmapped" in line
    # A 2-D kernel filters each channel: moving the axes commutes with it.
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    np.save(tmp_path / "x_hwc.npy", np.moveaxis(x, 0, -1))
    code, _, _ = run(
        ["filter", tmp_path / "x_hwc.npy", "-k", "box", "-o", tmp_path / "c.npy"], capsys
    )
    np.testing.assert_array_equal(np.moveaxis(np.load(tmp_path / "c.npy"), -1, 0), b)
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_layout_chw_counts_pixels_from_h_and_w_and_reports_stored_indices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The pixels limit reads H and W where the layout puts them, from the header; a NaN is
    reported at its index in the file."""
    np.save(tmp_path / "x.npy", np.zeros((2, 30, 40), np.float32))
    base = ["filter", tmp_path / "x.npy", "-k", "box", "--max-pixels", "1000"]
    code, out, err = run([*base, "--layout", "chw", "-o", tmp_path / "a.npy"], capsys)
    assert (code, out) == (1, "")
    assert err == (
        f"cnncli: error: {tmp_path / 'x.npy'}: 40×30 = 1,200 pixels is more than 1,000 pixels, "
        "refused before loading; raise the limit with --max-pixels N if you trust the file\n"
    )
    code, _, err = run([*base, "-o", tmp_path / "b.npy"], capsys)  # 2 rows of 30: 60 pixels
    assert code == 0, err
    bad = np.zeros((2, 3, 4), np.float32)
    bad[1, 0, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    code, _, err = run(
        ["filter", tmp_path / "nan.npy", "--layout", "chw", "-k", "box", "-o", tmp_path / "c.npy"],
        capsys,
    )
    assert code == 1
    assert err == (
        f"cnncli: error: {tmp_path / 'nan.npy'}: value at [1, 0, 2] is nan; images need finite "
        "numbers\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.npy", "nan.npy", "x.npy"]


def test_layout_is_a_usage_error_when_unknown_and_help_says_channels_last(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(["filter", SAMPLES / "seed.npy", "-k", "box", "--layout", "cwh"], capsys)
    assert (code, out) == (2, "")
    assert err == ("cnncli: error: unknown --layout 'cwh'; did you mean chw? (choices: hwc, chw)\n")
    code, out, _ = run(["filter", "--help"], capsys)
    assert code == 0
    flat = " ".join(out.split())
    assert "channels last" in flat and "--layout chw" in flat


# ------------------------------------------------------------------ 3. matrices in and out


def test_seed_csv_prints_its_result_as_an_aligned_matrix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The course notes' example as a learner types it: a CSV in, the numbers on screen."""
    seed = np.loadtxt(SAMPLES / "seed.csv", delimiter=",")
    np.testing.assert_array_equal(seed, np.load(SAMPLES / "seed.npy"))
    before = listing(SAMPLES)
    code, out, err = run(
        ["filter", SAMPLES / "seed.csv", "-k", "vertical-edge", "-p", "valid"], capsys
    )
    assert (code, err) == (0, "")
    assert out == (
        f"# {SAMPLES / 'seed.csv'} → stdout: 4×4, vertical-edge, no border\n" + "0 39 39 0\n" * 4
    )
    assert listing(SAMPLES) == before  # printed, not written


@pytest.mark.oracle
def test_printed_values_are_exact_and_read_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What --print shows is every float32 exactly (PyTorch's numbers, to the last bit), and
    the printed text is itself a matrix file cnncli reads (the heading is a comment)."""
    monkeypatch.setenv("COLUMNS", "200")  # nine exact float32 values a row
    x = RNG.normal(size=(7, 9)).astype(np.float32)
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", fmt="%.9g")
    code, out, err = run(["filter", tmp_path / "x.csv", "-k", "box", "-p", "1"], capsys)
    assert code == 0, err
    (tmp_path / "printed.txt").write_text(out)
    shown = np.loadtxt(tmp_path / "printed.txt", comments="#", dtype=np.float64)
    w = np.full((1, 1, 3, 3), 1 / 9, np.float32)
    ref = torch_conv(x[None], w, padding=1)[0]
    np.testing.assert_allclose(shown, ref, rtol=1e-5, atol=1e-6)
    code, _, err = run(
        ["filter", tmp_path / "x.csv", "-k", "box", "-p", "1", "-o", tmp_path / "o.npy"], capsys
    )
    assert code == 0, err
    # Every printed number reads back as the very float32 the filter computed.
    assert shown.astype(np.float32).tolist() == np.load(tmp_path / "o.npy").tolist()
    code, again, err = run(["filter", tmp_path / "printed.txt", "-k", "1"], capsys)
    assert code == 0, err
    assert again.splitlines()[1:] == out.splitlines()[1:]


def test_csv_and_txt_outputs_hold_the_exact_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = RNG.normal(size=(6, 5)).astype(np.float32) * 100
    np.save(tmp_path / "x.npy", x)
    results = {}
    for ext in (".npy", ".csv", ".txt"):
        out = tmp_path / f"o{ext}"
        code, line, err = run(
            ["filter", tmp_path / "x.npy", "-k", "gaussian:sigma=1", "-o", out], capsys
        )
        assert code == 0, err
        results[ext] = (
            np.load(out)
            if ext == ".npy"
            else np.loadtxt(out, delimiter="," if ext == ".csv" else None, dtype=np.float64)
        )
    assert "float32 6×5 as text, unmapped, gaussian:sigma=1, border reflect101, map raw" in line
    for ext in (".csv", ".txt"):
        assert results[ext].astype(np.float32).tolist() == results[".npy"].tolist()
    csv_rows = (tmp_path / "o.csv").read_text().splitlines()
    assert len(csv_rows) == 6 and all(r.count(",") == 4 for r in csv_rows)


def test_print_shows_any_small_result_whatever_the_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    px = RNG.integers(0, 256, size=(5, 8), dtype=np.uint8)
    Image.fromarray(px).save(tmp_path / "tiny.png")
    code, out, err = run(["filter", tmp_path / "tiny.png", "-k", "sobel-x", "--print"], capsys)
    assert code == 0, err
    assert listing(tmp_path) == ["tiny.png"]  # --print without -o writes nothing
    head, *rows = out.splitlines()
    assert head == f"# {tmp_path / 'tiny.png'} → stdout: 5×8, sobel-x, border reflect101"
    code, _, _ = run(
        ["filter", tmp_path / "tiny.png", "-k", "sobel-x", "-o", tmp_path / "o.npy"], capsys
    )
    assert np.loadtxt(rows).astype(np.float32).tolist() == np.load(tmp_path / "o.npy").tolist()
    # With -o as well: written and printed, the report line (a comment) names the file.
    code, out, err = run(
        ["filter", tmp_path / "tiny.png", "-k", "sobel-x", "--print", "-o", tmp_path / "o.png"],
        capsys,
    )
    assert code == 0, err
    assert out.splitlines()[0] == (
        f"# {tmp_path / 'tiny.png'} → {tmp_path / 'o.png'}: 8×5 gray 8-bit, sobel-x, "
        "border reflect101, map abs"
    )
    assert out.splitlines()[1:] == rows and (tmp_path / "o.png").exists()


def test_several_maps_print_one_labelled_matrix_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        ["filter", SAMPLES / "d2l-x-chw.npy", "--layout", "chw", "--print"]
        + ["-k", SAMPLES / "kernels" / "d2l-4d.json", "-p", "valid"],
        capsys,
    )
    assert code == 0, err
    k = SAMPLES / "kernels" / "d2l-4d.json"
    assert out == (
        f"# {SAMPLES / 'd2l-x-chw.npy'} → stdout: 2×2, 3 maps, {k}, no border\n"
        "# map 1 of 3: d2l-4d.json[0]\n 56  72\n104 120\n\n"
        "# map 2 of 3: d2l-4d.json[1]\n 76 100\n148 172\n\n"
        "# map 3 of 3: d2l-4d.json[2]\n 96 128\n192 224\n"
    )


def test_aligned_matrices_line_up_on_the_decimal_point() -> None:
    from cnncli.render.matrix import aligned, number

    assert aligned(np.array([[0.5, -30.0], [12.25, 0.0]], np.float32)) == [
        " 0.5  -30",
        "12.25   0",
    ]
    assert [number(v) for v in (39.0, -0.0, 1 / 9, 1e20, 2.5e-8)] == [
        "39",
        "0",
        "0.11111111",
        "1e+20",
        "2.5e-08",
    ]


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
@settings(max_examples=300)
def test_every_printed_number_reads_back_as_the_same_float32(value: float) -> None:
    from cnncli.render.matrix import number

    assert np.float32(float(number(value))) == np.float32(value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "1,2\n3\n",
            "matrix {p} row 2 has 1 value but row 1 has 2; every row needs the same number of values",
        ),
        ("1,2\n3,nan\n", "matrix {p} row 2 value 2 is nan; matrices need finite numbers"),
        ("1,2\n3,inf\n", "matrix {p} row 2 value 2 is inf; matrices need finite numbers"),
        ("1,2\n3,x\n", "matrix {p} row 2 value 2: 'x' is not a number"),
        (
            "1,1e39\n",
            "matrix {p} row 1 value 2 is 1e39, outside the float32 range ±3.4e38 filters compute in",
        ),
        ("# nothing\n", "matrix {p} is empty; give at least one number"),
        (
            "",
            "{p}: empty; give a PNG, JPEG, TIFF, BMP, WebP or GIF file, a .npy array or a .csv/.txt matrix",
        ),
        (b"\xff\xfe\x00", "{p}: not text; a .csv matrix holds rows of numbers, e.g. 1,0,-1"),
        ("%!PS\n", "matrix {p} row 1 value 1: '%!PS' is not a number"),
    ],
)
def test_bad_matrix_inputs_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes, message: str
) -> None:
    src = tmp_path / "m.csv"
    if isinstance(content, bytes):
        src.write_bytes(content)
    else:
        src.write_text(content)
    code, out, err = run(["filter", src, "-k", "box", "-o", tmp_path / "o.csv"], capsys)
    assert (code, out, err) == (1, "", f"cnncli: error: {message.format(p=src)}\n")
    assert listing(tmp_path) == ["m.csv"]


def test_matrix_inputs_pass_the_limits_before_their_values_are_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "big.csv"
    src.write_text("0,0,0,0,0\n" * 300)
    code, _, err = run(
        ["filter", src, "-k", "box", "--max-pixels", "1000", "-o", tmp_path / "a.csv"], capsys
    )
    assert (code, err) == (
        1,
        f"cnncli: error: {src}: 5×300 = 1,500 values is more than 1,000 pixels, refused before "
        "reading them; raise the limit with --max-pixels N if you trust the file\n",
    )
    code, _, err = run(
        ["filter", src, "-k", "box", "--limit", "file-bytes=1000", "-o", tmp_path / "a.csv"], capsys
    )
    assert (code, err) == (
        1,
        f"cnncli: error: {src} has 3,000 bytes, over the file-bytes limit of 1,000; raise it "
        "with --limit file-bytes=3000 if you mean it\n",
    )
    code, _, err = run(["filter", src, "-k", "box", "-o", src, "--force"], capsys)
    assert code == 1 and "is an input of this run; refusing to overwrite it" in err
    assert listing(tmp_path) == ["big.csv"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["{big}", "-k", "box", "-o", "{out}.png", "--print"],
            "{big}: the 300×120 result is too large to print (at most 100 rows, and 80 "
            "columns of text here); write it to a file with -o FILE.csv (or .npy, .png)",
        ),
        (
            ["{wide}", "-k", "1", "-o", "{out}.png", "--print"],
            "{wide}: the 9×3 result is 98 characters wide, more than this 80-column terminal; "
            "write it to a file with -o FILE.csv (or .npy, .png)",
        ),
        (
            ["{d2l}", "--layout", "chw", "-k", "{k4}", "-o", "{out}.csv"],
            "{out}.csv: a .csv file holds one matrix but the result has 3 maps; write one file "
            "per map with --split, or all of them to .npy",
        ),
    ],
)
def test_results_that_cannot_go_where_asked_are_refused_before_anything_is_written(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    np.save(tmp_path / "big.npy", np.zeros((120, 300), np.float32))
    np.save(tmp_path / "wide.npy", np.full((3, 9), 1 / 3, np.float32))  # 0.33333334 each
    names = {
        "big": tmp_path / "big.npy",
        "wide": tmp_path / "wide.npy",
        "d2l": SAMPLES / "d2l-x-chw.npy",
        "k4": SAMPLES / "kernels" / "d2l-4d.json",
        "out": tmp_path / "out",
    }
    code, out, err = run(["filter", *(a.format(**names) for a in args)], capsys)
    assert (code, out, err) == (2, "", f"cnncli: error: {message.format(**names)}\n")
    assert listing(tmp_path) == ["big.npy", "wide.npy"]


# ------------------------------------------------------------------ 4. several kernels, maps


def single(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], src: Path, kernel: str, ext: str, *opts: str
) -> np.ndarray:
    """What one kernel alone gives (the reference several kernels must agree with)."""
    from PIL import Image

    out = tmp_path / f"single-{kernel.replace(':', '_').replace('/', '_')}{ext}"
    code, _, err = run(["filter", src, "-k", kernel, *opts, "-o", out, "--force"], capsys)
    assert code == 0, err
    return np.load(out) if ext == ".npy" else np.asarray(Image.open(out))


@pytest.mark.oracle
def test_several_kernels_are_one_layer_of_maps_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-k a -k b on a gray array is PyTorch's conv2d with the weight stack [a, b]: one map per
    kernel, in the order given (H×W×N, or N×H×W with --layout chw)."""
    x = RNG.normal(size=(10, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    a = np.array([[1, 0, -1]] * 3, np.float32)
    b = a.T.copy()
    out = tmp_path / "o.npy"
    code, line, err = run(
        ["filter", tmp_path / "x.npy", "-k", "vertical-edge", "-k", "horizontal-edge"]
        + ["-p", "1", "-o", out],
        capsys,
    )
    assert code == 0, err
    assert "float32 10×12×2 H×W×C, unmapped, vertical-edge + horizontal-edge, border zeros" in line
    ref = torch_conv(x[None], np.stack([a, b])[:, None], padding=1)
    np.testing.assert_allclose(np.moveaxis(np.load(out), -1, 0), ref, rtol=1e-5, atol=1e-5)
    code, _, err = run(
        ["filter", tmp_path / "x.npy", "-k", "horizontal-edge", "-k", "vertical-edge"]
        + ["-p", "1", "--layout", "chw", "-o", out, "--force"],
        capsys,
    )
    assert code == 0, err
    np.testing.assert_allclose(np.load(out), ref[::-1], rtol=1e-5, atol=1e-5)


def test_a_montage_holds_each_map_as_its_kernel_alone_maps_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The vertical and horizontal edges of one photo side by side, in one command: each tile
    is exactly the picture that kernel alone writes (its own default mapping), under a label."""
    from PIL import Image

    from cnncli.images import montage

    src = SAMPLES / "coffee.png"
    kernels = ["vertical-edge", "horizontal-edge", "gaussian:sigma=2"]  # abs, abs, clip
    out = tmp_path / "edges.png"
    code, line, err = run(
        ["filter", src, *(a for k in kernels for a in ("-k", k)), "-o", out], capsys
    )
    assert (code, err) == (0, "")
    assert line == (
        f"{src} → {out}: montage of 3 maps, 1816×423 RGB 8-bit, vertical-edge + horizontal-edge "
        "+ gaussian:sigma=2, border reflect101, map abs/clip\n"
    )
    got = np.asarray(Image.open(out))
    alone = [single(tmp_path, capsys, src, k, ".png") for k in kernels]
    layout = montage([(k, a) for k, a in zip(kernels, alone, strict=True)])
    assert layout.scale == 1 and got.shape == layout.pixels.shape
    for (y, x), a in zip(layout.corners, alone, strict=True):
        np.testing.assert_array_equal(got[y : y + 400, x : x + 600], a)
        label = got[y - 12 : y - 1, x : x + 100]
        assert (label > 200).any() and (label == 48).any()  # ink on the dark strip
    assert (got[: layout.corners[0][0] - 14] == 48).all()  # the gap above the labels


def test_small_maps_are_enlarged_and_eight_maps_make_a_grid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    out = tmp_path / "d2l.png"
    code, line, err = run(
        ["filter", SAMPLES / "d2l-x-chw.npy", "--layout", "chw", "-p", "valid"]
        + ["-k", SAMPLES / "kernels" / "d2l-4d.json", "-o", out],
        capsys,
    )
    assert code == 0, err
    assert "montage of 3 maps (each enlarged ×32), " in line
    got = np.asarray(Image.open(out))
    from cnncli.images import montage

    tiles = [(f"d2l-4d.json[{i}]", np.zeros((2, 2), np.uint8)) for i in range(3)]
    layout = montage(tiles)
    maps = np.load(SAMPLES / "d2l-x.npy")  # H×W×C: the same X
    k4 = (
        np.array([[[[0, 1], [2, 3]], [[1, 2], [3, 4]]]], np.float32)
        + np.arange(3)[:, None, None, None]
    )
    for o, (y, x) in enumerate(layout.corners):
        want = [
            [(maps[i : i + 2, j : j + 2] * np.moveaxis(k4[o], 0, -1)).sum() for j in range(2)]
            for i in range(2)
        ]
        big = np.kron(np.clip(np.array(want), 0, 255), np.ones((32, 32))).astype(np.uint8)
        np.testing.assert_array_equal(got[y : y + 64, x : x + 64], big)
    # Eight maps: a 3×3 grid.
    np.save(tmp_path / "k8.npy", RNG.normal(size=(8, 3, 3, 3)).astype(np.float32))
    code, line, err = run(
        ["filter", SAMPLES / "chelsea.png", "-k", tmp_path / "k8.npy", "-o", tmp_path / "k8.png"],
        capsys,
    )
    assert code == 0, err
    w, h = Image.open(tmp_path / "k8.png").size
    assert w == 4 + 3 * (451 + 4) and h > 3 * 300
    assert "montage of 8 maps, " in line


def test_as_rgb_packs_three_maps_each_mapped_by_its_kernel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    src = SAMPLES / "camera.png"
    kernels = ["sobel-x", "box:size=9", "emboss"]  # abs, clip, offset
    out = tmp_path / "rgb.png"
    code, line, err = run(
        ["filter", src, *(a for k in kernels for a in ("-k", k)), "--as-rgb", "-o", out], capsys
    )
    assert code == 0, err
    assert (
        "512×512 RGB 8-bit, sobel-x + box:size=9 + emboss, border reflect101, map abs/clip/offset"
        in line
    )
    got = np.asarray(Image.open(out))
    for c, k in enumerate(kernels):
        np.testing.assert_array_equal(got[:, :, c], single(tmp_path, capsys, src, k, ".png"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-k", "sobel-x", "-k", "sobel-y", "--as-rgb", "-o", "{t}/o.png"],
            "--as-rgb packs exactly three maps into one colour picture; this result has 2 "
            "(sobel-x, sobel-y)",
        ),
        (
            ["-k", "sobel-x", "-k", "sobel-y", "-k", "box", "--as-rgb", "-o", "{t}/o.npy"],
            "--as-rgb makes a colour picture (.png, .tif, …), not .npy values; drop --as-rgb, "
            "or write a picture",
        ),
        (
            ["-k", "sobel-x", "-k", "box", "--as-rgb", "--split", "-o", "{t}/o.png"],
            "--as-rgb packs the maps into one picture, --split writes one file each; give one",
        ),
        (
            ["-k", "sobel-x", "-k", "box", "--split", "--preview"],
            "--split writes one file per map, but nothing is written for {src}; give -o NAME "
            "or --out-dir DIR",
        ),
    ],
)
def test_as_rgb_and_split_misuse_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    src = SAMPLES / "camera.png"
    code, out, err = run(["filter", src, *(a.format(t=tmp_path) for a in args)], capsys)
    assert (code, out, err) == (2, "", f"cnncli: error: {message.format(src=src)}\n")
    assert listing(tmp_path) == []


def test_split_writes_one_file_per_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    src = SAMPLES / "camera.png"
    code, line, err = run(
        [
            "filter",
            src,
            "-k",
            "vertical-edge",
            "-k",
            "horizontal-edge",
            "--split",
            "-o",
            tmp_path / "e.png",
        ],
        capsys,
    )
    assert code == 0, err
    assert line == (
        f"{src} → {tmp_path / 'e_vertical-edge.png'}, {tmp_path / 'e_horizontal-edge.png'}: "
        "512×512 gray 8-bit, vertical-edge + horizontal-edge, border reflect101, map abs\n"
    )
    for k in ("vertical-edge", "horizontal-edge"):
        np.testing.assert_array_equal(
            np.asarray(Image.open(tmp_path / f"e_{k}.png")),
            single(tmp_path, capsys, src, k, ".png"),
        )
    # Named after the input in --out-dir, the stages after the kernel; a kernel given twice
    # gets -2; raw values each H×W (C×H×W with --layout chw).
    code, _, err = run(
        ["filter", SAMPLES / "coffee.png", "-k", "sobel-x", "-k", "sobel-x", "--then", "relu"]
        + ["--split", "--out-dir", tmp_path / "od", "--layout", "chw"],
        capsys,
    )
    assert code == 0, err
    assert listing(tmp_path / "od") == ["coffee_sobel-x-2_relu.png", "coffee_sobel-x_relu.png"]
    code, _, err = run(
        ["filter", SAMPLES / "coffee.png", "-k", "sobel-x", "-k", "box", "--split"]
        + ["--layout", "chw", "-o", tmp_path / "raw.npy"],
        capsys,
    )
    assert code == 0, err
    both = single(tmp_path, capsys, SAMPLES / "coffee.png", "sobel-x", ".npy")
    np.testing.assert_array_equal(np.load(tmp_path / "raw_sobel-x.npy"), np.moveaxis(both, -1, 0))


def test_split_refuses_before_writing_any_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No partial output: the second file exists, so the first is not written either; an
    output over a kernel file is refused even with --force."""
    (tmp_path / "e_horizontal-edge.png").write_bytes(b"mine")
    code, out, err = run(
        ["filter", SAMPLES / "camera.png", "-k", "vertical-edge", "-k", "horizontal-edge"]
        + ["--split", "-o", tmp_path / "e.png"],
        capsys,
    )
    assert (code, out) == (1, "")
    assert err == (
        f"cnncli: error: {tmp_path / 'e_horizontal-edge.png'}: already exists; use --force to "
        "overwrite it\n"
    )
    assert listing(tmp_path) == ["e_horizontal-edge.png"]
    assert (tmp_path / "e_horizontal-edge.png").read_bytes() == b"mine"
    kfile = tmp_path / "k.txt"
    kfile.write_text("1 0 -1\n")
    code, _, err = run(
        ["filter", SAMPLES / "camera.png", "-k", "box", "-k", kfile, "-o", kfile, "--force"], capsys
    )
    assert code == 1 and "is an input of this run; refusing to overwrite it" in err
    assert kfile.read_text() == "1 0 -1\n"


def test_kernels_of_different_sizes_cannot_stack_without_same_padding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = SAMPLES / "seed.npy"
    code, out, err = run(
        [
            "filter",
            src,
            "-k",
            "vertical-edge",
            "-k",
            "box:size=5",
            "-p",
            "valid",
            "-o",
            tmp_path / "o.npy",
        ],
        capsys,
    )
    assert (code, out) == (1, "")
    assert err == (
        f"cnncli: error: {src} (6×6 gray float): the kernels give maps of different sizes "
        "(vertical-edge (3×3) → 4×4, box:size=5 (5×5) → 2×2); stack kernels of one size, or keep "
        "the size with --padding same\n"
    )
    code, _, err = run(
        ["filter", src, "-k", "vertical-edge", "-k", "box:size=5", "-o", tmp_path / "o.npy"], capsys
    )
    assert code == 0, err
    assert np.load(tmp_path / "o.npy").shape == (6, 6, 2)


# ------------------------------------------------------------------ 5. chained layers


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("opts", "torch_kw"),
    [
        (["-p", "1"], {"padding": 1}),
        (["-p", "1", "-s", "2"], {"padding": 1, "stride": 2}),
        (["-p", "2", "-d", "2"], {"padding": 2, "dilation": 2}),
        (["-p", "valid"], {}),
    ],
)
def test_conv_relu_pool_conv_is_pytorch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], opts: list[str], torch_kw: dict[str, Any]
) -> None:
    """conv (two kernels) → ReLU → max pool → conv (C_out×C_in×kh×kw, C_in = 2), as the notes
    draw it: F.conv2d, F.relu, F.max_pool2d, F.conv2d with the same padding, stride, dilation."""
    torch = pytest.importorskip("torch")
    x = RNG.normal(size=(1, 23, 21)).astype(np.float32)
    np.save(tmp_path / "x.npy", x[0])
    w1 = np.stack(
        [np.array([[1, 0, -1]] * 3, np.float32), np.array([[1, 0, -1]] * 3, np.float32).T]
    )
    w2 = RNG.normal(size=(3, 2, 3, 3)).astype(np.float32)
    np.save(tmp_path / "w2.npy", w2)
    out = tmp_path / "o.npy"
    code, line, err = run(
        ["filter", tmp_path / "x.npy", "-k", "vertical-edge", "-k", "horizontal-edge"]
        + ["--then", "relu", "--then", "maxpool:2", "--then", f"conv:{tmp_path / 'w2.npy'}"]
        + [*opts, "--layout", "chw", "-o", out],
        capsys,
    )
    assert code == 0, err
    with torch.no_grad():
        y = torch.nn.functional.conv2d(
            torch.from_numpy(x)[None], torch.from_numpy(w1)[:, None], **torch_kw
        )
        y = torch.nn.functional.max_pool2d(torch.relu(y), 2)
        y = torch.nn.functional.conv2d(y, torch.from_numpy(w2), **torch_kw)[0].numpy()
    ours = np.load(out)
    assert ours.shape == y.shape
    np.testing.assert_allclose(ours, y, rtol=1e-5, atol=1e-4)
    assert f"vertical-edge + horizontal-edge → relu → maxpool2 → conv:{tmp_path / 'w2.npy'}" in line
    assert ("no border" if opts == ["-p", "valid"] else "border zeros") in line


@pytest.mark.oracle
def test_a_chain_on_a_photo_with_the_defaults_is_opencv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No --padding: every convolution keeps the size with reflect101, as cv2.filter2D."""
    cv2 = pytest.importorskip("cv2")
    from cnncli.filtering.kernels import resolve_kernel

    out = tmp_path / "o.npy"
    code, _, err = run(
        ["filter", SAMPLES / "camera.png", "-k", "sobel-x", "--then", "relu", "--then", "maxpool:2"]
        + ["--then", "conv:gaussian:sigma=2", "-o", out],
        capsys,
    )
    assert code == 0, err
    img = cv2.imread(str(SAMPLES / "camera.png"), cv2.IMREAD_GRAYSCALE).astype(np.float32)
    kx = resolve_kernel("sobel-x").matrix
    g = resolve_kernel("gaussian:sigma=2").matrix
    y = np.maximum(cv2.filter2D(img, cv2.CV_32F, kx, borderType=cv2.BORDER_REFLECT_101), 0)
    y = y.reshape(256, 2, 256, 2).max(axis=(1, 3))
    y = cv2.filter2D(y, cv2.CV_32F, g, borderType=cv2.BORDER_REFLECT_101)
    ours = np.load(out)
    assert np.abs(ours - y).max() <= 1e-5 * 4 * 255 * 4


def test_conv_stages_make_maps_labelled_by_their_kernel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "k4.npy", RNG.normal(size=(2, 3, 3, 3)).astype(np.float32))
    code, out, err = run(
        [
            "filter",
            SAMPLES / "seed.csv",
            "-k",
            "vertical-edge",
            "-k",
            "horizontal-edge",
            "-k",
            "box",
        ]
        + ["-p", "1", "--then", f"conv:{tmp_path / 'k4.npy'}", "--print"],
        capsys,
    )
    assert code == 0, err
    headings = [line for line in out.splitlines() if line.startswith("# map")]
    k4 = tmp_path / "k4.npy"
    assert headings == [f"# map 1 of 2: conv:{k4}[0]", f"# map 2 of 2: conv:{k4}[1]"]
    code, line, err = run(
        ["filter", SAMPLES / "camera.png", "-k", "sobel-x", "-k", "sobel-y", "-k", "box"]
        + ["--then", f"conv:{k4}", "--split", "-o", tmp_path / "s.png"],
        capsys,
    )
    assert code == 0, err
    assert listing(tmp_path) == ["k4.npy", "s_conv-k4-0.png", "s_conv-k4-1.png"]


def test_alpha_follows_every_convolution(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    rgba = RNG.integers(0, 256, size=(20, 24, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    code, _, err = run(
        ["filter", tmp_path / "a.png", "-k", "box", "-p", "valid", "--then", "conv:box"]
        + ["-o", tmp_path / "o.png"],
        capsys,
    )
    assert code == 0, err
    out = np.asarray(Image.open(tmp_path / "o.png"))
    assert out.shape == (16, 20, 4)
    np.testing.assert_array_equal(out[..., 3], rgba[2:-2, 2:-2, 3])


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["--then", "conv:"],
            2,
            "--then 'conv:': write conv:SPEC with a kernel spec, e.g. conv:sobel-x, "
            'conv:"1,0,-1;1,0,-1" or conv:kernel.npy',
        ),
        (
            ["--then", "conv:sobl"],
            2,
            "--then 'conv:sobl': unknown kernel 'sobl'; did you mean sobel, sobel-y, sobel-x? run "
            "'cnncli kernels' for the list, or give a matrix like \"1,0,-1;1,0,-1;1,0,-1\" or a "
            ".txt/.csv/.json/.npy file",
        ),
        (
            ["--then", "conv:{d2l3}"],
            1,
            "--then conv:{d2l3}: kernel has 2 input channels (shape 2×2×2) but the result it "
            "convolves has 3; give a 3×2×2 kernel, or a 2-D one for every channel",
        ),
        (
            ["-p", "valid", "--then", "conv:box:size=5"],
            1,
            "{src} (6×6 gray float): stage conv:box:size=5: kernel 5 is larger than the padded "
            "input 4 on axis H (input 4 + padding 0+0); use padding of at least 1 in total, or a "
            "smaller kernel",
        ),
        (
            ["-k", "box", "-p", "100", "--then", "conv:{k8}", "--limit", "output-values=50000"],
            1,
            "{src} (6×6): the result would be 402×402 pixels × 8 maps = 1,292,832 values, over "
            "the output-values limit of 50,000; raise it with --limit output-values=1292832 if "
            "you mean it",
        ),
        (
            ["-k", "1e30", "--then", "conv:1e30"],
            1,
            "{src}: kernel custom can reach 1e+61 on this input (Σ|k| = 1e+30 × values up to "
            "1e+31), beyond the float32 range (±3.4e+38) filters compute in; scale the kernel or "
            "the input down",
        ),
    ],
)
def test_bad_conv_stages_are_one_line_errors_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    src = SAMPLES / "seed.npy"
    k8 = tmp_path / "kernels" / "k8.npy"  # 8 maps of one: the stage, not the first layer, is big
    k8.parent.mkdir()
    np.save(k8, np.ones((8, 1, 3, 3), np.float32))
    names = {"src": src, "d2l3": SAMPLES / "kernels" / "d2l-3d.json", "k8": k8}
    kernel = [] if "-k" in args else ["-k", "vertical-edge", "-k", "horizontal-edge", "-k", "box"]
    got = run(
        ["filter", src, *kernel, *(a.format(**names) for a in args), "-o", tmp_path / "o.npy"],
        capsys,
    )
    assert got == (code, "", f"cnncli: error: {message.format(**names)}\n")
    assert listing(tmp_path) == ["kernels", "kernels/k8.npy"]


def test_a_conv_stage_kernel_file_is_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kfile = tmp_path / "k.npy"
    np.save(kfile, np.ones((3, 3), np.float32))
    before = kfile.read_bytes()
    code, _, err = run(
        [
            "filter",
            SAMPLES / "seed.npy",
            "-k",
            "box",
            "--then",
            f"conv:{kfile}",
            "-o",
            kfile,
            "--force",
        ],
        capsys,
    )
    assert (
        code == 1 and "is an input of this run; refusing to overwrite it, even with --force" in err
    )
    assert kfile.read_bytes() == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_matrix_name_on_a_pipe_or_device_is_never_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The matrix reader goes through the one opener: a FIFO named .csv is refused from its
    stat (never opened blocking), a link to /dev/zero named .txt likewise."""
    os.mkfifo(tmp_path / "pipe.csv")
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    for name, what in (
        ("pipe.csv", "is a pipe, not a regular file; save it to a file first"),
        ("zero.txt", "is a character device, not a regular file; give an image file"),
    ):
        code, out, err = run(["filter", tmp_path / name, "-k", "box"], capsys)
        assert (code, out, err) == (1, "", f"cnncli: error: {tmp_path / name}: {what}\n")
