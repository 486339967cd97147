"""Values of cnncli.filtering.correlate against a naive float64 reference, OpenCV, scipy and PyTorch."""

from __future__ import annotations

import itertools
import zlib

import naive  # tests/naive.py: pytest puts tests/ on sys.path (rootdir-relative imports)
import numpy as np
import pytest

from cnncli import arithmetic, config
from cnncli.enums import BORDER_ALIASES, Border
from cnncli.errors import ImageError, KernelError, ShapeError, UsageError
from cnncli.filtering import correlate as cv

BORDERS = [b.value for b in cv.Border]
FORCED = ["direct", "lowrank", "fft"]  # every 2-D kernel can take these; "separable" needs rank 1


def case_seed(*parts: object) -> int:
    """A seed from a case's parameters: the same data every run (``hash()`` of strings is
    randomised per process) and for every path of one case, so paths meet the same numbers."""
    return zlib.crc32(repr(parts).encode())


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def assert_close(got: np.ndarray, ref: np.ndarray, kernel: np.ndarray, image: np.ndarray) -> None:
    """The accuracy contract: |err| ≤ 1e-5 · Σ|k| · max|image| (the output's scale)."""
    assert got.dtype == np.float32
    assert got.shape == ref.shape
    scale = np.abs(kernel).sum() * max(np.abs(image).max(), 1e-30)
    err = np.abs(got.astype(np.float64) - ref).max()
    assert err <= 1e-5 * scale, f"max error {err} > 1e-5 · {scale}"


def reference(
    img,
    k,
    *,
    padding="same",
    stride=1,
    dilation=1,
    border="reflect101",
    value=0.0,
    anchor=None,
    flip=False,
):
    kh, kw = np.shape(k)[-2:]
    geom = cv.plan_geometry(
        img.shape[:2],
        (kh, kw),
        padding=padding,
        stride=stride,
        dilation=dilation,
        anchor=anchor,
        flip=flip,
    )
    kk = np.asarray(k, dtype=np.float64)
    if flip:
        kk = kk[..., ::-1, ::-1]
    s = tuple(a.stride for a in geom.axes)
    d = tuple(a.dilation for a in geom.axes)
    ref = naive.correlate(img, kk, geom.padding, s, d, border, value)
    assert ref.shape[:2] == geom.output_size
    return ref


# ------------------------------------------------------------------------------------------
# The course examples, exactly
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", [None, "direct", "separable", "lowrank"])
def test_seed_vertical_edge_exact(method):
    img = np.array([[10, 10, 10, -3, -3, -3]] * 6, dtype=np.float32)
    k = [[1, 0, -1]] * 3
    out = cv.correlate(img, k, padding="valid", _method=method)
    assert out.dtype == np.float32
    assert out.tolist() == [[0, 39, 39, 0]] * 4


def test_seed_fft_close():
    img = np.array([[10, 10, 10, -3, -3, -3]] * 6, dtype=np.float32)
    out = cv.correlate(img, [[1, 0, -1]] * 3, padding="valid", _method="fft")
    np.testing.assert_allclose(out, [[0, 39, 39, 0]] * 4, atol=1e-4)


def test_seed_horizontal_edge_on_transposed_image():
    img = np.array([[10, 10, 10, -3, -3, -3]] * 6, dtype=np.float32).T
    out = cv.correlate(img, [[1, 1, 1], [0, 0, 0], [-1, -1, -1]], padding="valid")
    assert out.tolist() == [[0] * 4, [39] * 4, [39] * 4, [0] * 4]


D2L_X = np.stack([np.arange(9).reshape(3, 3), np.arange(1, 10).reshape(3, 3)], axis=-1)
D2L_K = np.stack([np.arange(4).reshape(2, 2), np.arange(1, 5).reshape(2, 2)])


@pytest.mark.parametrize("method", [None, "direct"])
def test_d2l_multi_input_channels(method):
    out = cv.correlate(D2L_X, D2L_K, padding="valid", _method=method)
    assert out.tolist() == [[56, 72], [104, 120]]


@pytest.mark.parametrize("method", ["lowrank", "fft"])
def test_d2l_multi_input_channels_approximate_paths(method):
    # An SVD or FFT is not exact in float32; the contract is 1e-5 of the output's scale.
    out = cv.correlate(D2L_X, D2L_K, padding="valid", _method=method)
    np.testing.assert_allclose(out, [[56, 72], [104, 120]], atol=1e-5 * 10 * 9)


def test_d2l_multi_output_channels():
    k4 = np.stack([D2L_K, D2L_K + 1, D2L_K + 2])
    out = cv.correlate(D2L_X, k4, padding="valid")
    assert out.shape == (2, 2, 3)
    assert np.moveaxis(out, -1, 0).tolist() == [
        [[56, 72], [104, 120]],
        [[76, 100], [148, 172]],
        [[96, 128], [192, 224]],
    ]


# ------------------------------------------------------------------------------------------
# Against the naive reference: borders × padding × stride × dilation × kernel shapes × paths
# ------------------------------------------------------------------------------------------

KERNELS = [(1, 1), (3, 3), (2, 2), (4, 3), (2, 5)]


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("padding", ["same", "valid", "full", 1, ((2, 0), (1, 3))])
@pytest.mark.parametrize("kshape", KERNELS)
@pytest.mark.parametrize("method", FORCED)
def test_matches_naive(border, padding, kshape, method):
    r = rng(case_seed(border, str(padding), kshape))
    img = r.uniform(-5, 5, (6, 7)).astype(np.float32)
    k = r.standard_normal(kshape)
    ref = reference(img, k, padding=padding, border=border, value=2.5)
    got = cv.correlate(img, k, padding=padding, border=border, border_value=2.5, _method=method)
    assert_close(got, ref, k, img)


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("padding", ["same", "valid", "full"])
@pytest.mark.parametrize(
    ("stride", "dilation"), [((2, 1), 1), (3, 1), (1, (2, 3)), (2, 2), ((1, 3), (2, 1))]
)
@pytest.mark.parametrize("method", FORCED)
def test_stride_dilation(border, padding, stride, dilation, method):
    r = rng(7)
    img = r.uniform(0, 255, (9, 11)).astype(np.float32)
    k = r.standard_normal((3, 2))
    ref = reference(
        img, k, padding=padding, stride=stride, dilation=dilation, border=border, value=-1.0
    )
    got = cv.correlate(
        img,
        k,
        padding=padding,
        stride=stride,
        dilation=dilation,
        border=border,
        border_value=-1.0,
        _method=method,
    )
    assert_close(got, ref, k, img)


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("method", [*FORCED, "separable"])
@pytest.mark.parametrize(
    ("ishape", "padding"),
    [((5, 4), "same"), ((5, 4), "valid"), ((5, 4), "full"), ((1, 3), "full"), ((2, 1), "same")],
)
def test_kernel_as_large_as_image_and_pads_wider_than_image(border, method, ishape, padding):
    # full on a 5×4 image with a 5×4 kernel pads 4 and 3: wider than... and 1-pixel axes.
    r = rng(3)
    img = r.uniform(-1, 1, ishape)
    col, row = r.standard_normal(5), r.standard_normal(4)
    k = np.outer(col, row)  # rank 1, so "separable" applies too
    if ishape == (1, 3):
        k = np.outer(r.standard_normal(4), r.standard_normal(6))
    ref = reference(img, k, padding=padding, border=border, value=3.0)
    got = cv.correlate(img, k, padding=padding, border=border, border_value=3.0, _method=method)
    assert_close(got, ref, k, img)


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("kdim", [2, 3, 4])
def test_channels(channels, kdim):
    r = rng(channels * 10 + kdim)
    img = r.uniform(0, 1, (6, 5, channels)) if channels > 1 else r.uniform(0, 1, (6, 5))
    kshape = {2: (3, 2), 3: (channels, 3, 2), 4: (2, channels, 3, 2)}[kdim]
    k = r.standard_normal(kshape)
    ref = reference(img, k, padding="same", border="reflect")
    got = cv.correlate(img, k, padding="same", border="reflect")
    expected_shape = {2: (6, 5, channels) if channels > 1 else (6, 5), 3: (6, 5), 4: (6, 5, 2)}[
        kdim
    ]
    assert got.shape == expected_shape
    assert_close(got, ref, k, img)


def test_uint16_and_uint8_images_are_converted():
    r = rng(1)
    img16 = r.integers(0, 65536, (8, 9), dtype=np.uint16)
    k = r.standard_normal((3, 3))
    assert_close(
        cv.correlate(img16, k), reference(img16.astype(np.float64), k), k, img16.astype(np.float64)
    )
    img8 = r.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    assert_close(
        cv.correlate(img8, k), reference(img8.astype(np.float64), k), k, img8.astype(np.float64)
    )


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("method", [*FORCED, "separable"])
@pytest.mark.parametrize(
    "border", ["reflect101", "wrap", "constant=7", "constant=0.5", "constant=-1"]
)
def test_integer_pixels_give_the_float32_result(dtype, method, border):
    """8/16-bit pixels are converted to float32 a band at a time (exact for both): the same
    values as converting first, bit for bit, and against the float64 reference."""
    r = rng(7)
    top = np.iinfo(dtype).max
    img = r.integers(0, top, (23, 19, 3), dtype=dtype, endpoint=True)
    k = (
        np.outer([1.0, 2.0, 1.0], [1.0, 0.0, -1.0])
        if method == "separable"
        else r.normal(size=(3, 4))
    )
    name, _, value = border.partition("=")
    kw = dict(border=name, border_value=float(value or 0), stride=(2, 1), dilation=(1, 2))
    got = cv.correlate(img, k, _method=method, **kw)
    assert np.array_equal(got, cv.correlate(img.astype(np.float32), k, _method=method, **kw))
    ref = np.stack(
        [
            reference(
                img[..., c].astype(np.float64), k, border=name, value=float(value or 0),
                stride=(2, 1), dilation=(1, 2),
            )
            for c in range(3)
        ],
        axis=-1,
    )  # fmt: skip
    assert_close(got, ref, k, img.astype(np.float64))


@pytest.mark.parametrize(
    "image",
    [
        np.arange(30, dtype=np.uint8).reshape(5, 6),
        np.arange(90, dtype=np.uint16).reshape(5, 6, 3) * 700,
        np.linspace(-1, 1, 30).reshape(5, 6),  # float64
        np.arange(30, dtype=np.int32).reshape(5, 6),
        np.ones((5, 6), dtype=bool),
    ],
    ids=["uint8", "uint16-rgb", "float64", "int32", "bool"],
)
@pytest.mark.parametrize("kernel", ["dense", "separable", "4-D"])
def test_every_input_and_path_runs_the_one_compiled_signature(image, kernel):
    """No pixel type, kernel shape or path adds a specialisation (a first run compiles once,
    for every later input): the core keeps exactly the signature it was compiled for."""
    k = {
        "dense": rng(4).normal(size=(3, 4)),
        "separable": np.outer([1.0, 4.0, 6.0, 4.0, 1.0], [1.0, 2.0, 1.0]),
        "4-D": rng(5).normal(size=(2, 1 if image.ndim == 2 else 3, 3, 3)),
    }[kernel]
    read_only = image.copy()
    read_only.flags.writeable = False  # e.g. an array Pillow or np.load(mmap_mode="r") gives
    for img in (image, read_only):
        for method in (None, "direct", "fft") if kernel != "4-D" else (None,):
            cv.correlate(img, k, _method=method, border="constant", border_value=-1.5)
    (signature,) = cv._jit.SIGNATURES["direct_rows"]
    assert cv._jit.direct_rows.signatures == [signature.args]


@pytest.mark.parametrize("method", [*FORCED, "separable"])
@pytest.mark.parametrize("kdim", [2, 3, 4])
@pytest.mark.parametrize(
    ("padding", "stride", "dilation"),
    [
        ("same", 1, 1),
        ("valid", (2, 1), 1),
        ("full", 1, (2, 1)),
        (((3, 0), (1, 2)), (3, 2), (1, 2)),
        (((6, 6), (1, 1)), 1, 1),  # the first and last bands read nothing but border
    ],
)
@pytest.mark.parametrize(("border", "value"), [("reflect", 0), ("constant", -1), ("wrap", 0)])
def test_rows_give_those_rows_of_the_whole_result(
    method, kdim, padding, stride, dilation, border, value
):
    """A band of output rows (how the CLI streams a large result) is that band of the whole:
    bit for bit on the tap paths; the FFT's tiles follow the band, so within its accuracy."""
    r = rng(11)
    img = r.integers(0, 256, (41, 29, 2), dtype=np.uint8)
    k2 = np.outer([1.0, 2.0, 1.0], [1.0, 0.0, -1.0])
    k = {2: k2, 3: np.stack([k2, -k2]), 4: np.stack([np.stack([k2, 2 * k2])] * 3)}[kdim]
    kw = dict(
        padding=padding, stride=stride, dilation=dilation, border=border, border_value=value,
        _method=method,
    )  # fmt: skip
    whole = cv.correlate(img, k, **kw)
    ho = whole.shape[0]
    for r0, r1 in [(0, 1), (0, ho), (2, 9), (ho - 3, ho), (ho // 2, ho // 2 + 1)]:
        band = cv.correlate(img, k, rows=(r0, r1), **kw)
        assert band.shape == whole[r0:r1].shape
        if method == "fft":
            scale = np.abs(k).sum() * 255
            assert np.abs(band.astype(np.float64) - whole[r0:r1]).max() <= 1e-5 * scale
        else:
            assert np.array_equal(band, whole[r0:r1])


@pytest.mark.parametrize("kernel", [np.ones((3, 3)), np.ones((2, 3, 3)), np.ones((4, 2, 3, 3))])
@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_a_band_copies_only_the_image_rows_it_reads(monkeypatch, kernel, dtype):
    """Streaming a result band by band must not copy (or convert) the whole image per band."""
    heights = []
    real = cv._correlate_plane

    def spy(plane, *args, **kw):
        heights.append(plane.shape[0])
        return real(plane, *args, **kw)

    monkeypatch.setattr(cv, "_correlate_plane", spy)
    img = rng(2).integers(0, 256, (200, 30, 2)).astype(dtype)
    band = cv.correlate(img, kernel, rows=(100, 110), dilation=(2, 1))
    whole = cv.correlate(img, kernel, dilation=(2, 1))
    assert np.array_equal(band, whole[100:110])
    assert heights[: len(heights) // 2] == [14] * (len(heights) // 2)  # rows 98 .. 111


@pytest.mark.parametrize("rows", [(0, 0), (-1, 3), (5, 3), (0, 13), (2.5, 4)])
def test_rows_outside_the_output_are_refused(rows):
    img = np.zeros((12, 10), dtype=np.float32)
    with pytest.raises(UsageError, match="output rows"):
        cv.correlate(img, np.ones((3, 3)), rows=rows)


@pytest.mark.parametrize("anchor", [(0, 0), (1, 2), (3, 3)])
@pytest.mark.parametrize("flip", [False, True])
def test_anchor_and_flip(anchor, flip):
    r = rng(5)
    img = r.uniform(-1, 1, (7, 8))
    k = r.standard_normal((4, 4))
    ref = reference(img, k, anchor=anchor, flip=flip, border="replicate")
    got = cv.correlate(img, k, anchor=anchor, flip=flip, border="replicate")
    assert_close(got, ref, k, img)


def test_flip_is_correlation_with_flipped_kernel_and_mirrored_split():
    r = rng(6)
    img = r.uniform(-1, 1, (6, 6))
    k = r.standard_normal((2, 4))
    got = cv.correlate(img, k, flip=True, border="wrap")
    # same split for (2,4): before (0,1); mirrored: (1,2)
    expected = naive.correlate(img, k[::-1, ::-1], ((1, 0), (2, 1)), border="wrap")
    assert_close(got, expected, k, img)


# ------------------------------------------------------------------------------------------
# Strategies: separable, low-rank and FFT paths taken and correct
# ------------------------------------------------------------------------------------------


def test_rank1_exact_integer_factors():
    col, row = cv.rank1([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    assert np.outer(col, row).tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert cv.rank1([[1, 0], [0, 1]]) is None
    assert cv.rank1(np.zeros((3, 3))) is None


def test_lowrank_terms_sum_to_kernel():
    r = rng(2)
    k = sum(np.outer(r.standard_normal(9), r.standard_normal(7)) for _ in range(3))
    terms = cv.lowrank(k)
    assert terms is not None and len(terms) == 3
    np.testing.assert_allclose(sum(np.outer(c, w) for c, w in terms), k, atol=1e-12)
    assert cv.lowrank(r.standard_normal((5, 5)), max_rank=2) is None


def test_separable_rejects_full_rank_kernel():
    with pytest.raises(UsageError, match="rank 2"):
        cv.correlate(np.ones((4, 4)), [[1, 0], [0, 1]], _method="separable")


def test_choose_method_picks_each_path():
    geom = cv.plan_geometry((3000, 4000), (3, 3))
    assert cv.choose_method(np.random.default_rng(0).standard_normal((3, 3)), geom)[0] == "direct"
    g = np.exp(-(np.linspace(-2, 2, 15) ** 2))
    geom15 = cv.plan_geometry((3000, 4000), (15, 15))
    assert cv.choose_method(np.outer(g, g), geom15)[0] == "separable"
    geom31 = cv.plan_geometry((3000, 4000), (31, 31))
    assert cv.choose_method(np.random.default_rng(0).standard_normal((31, 31)), geom31)[0] == "fft"
    assert cv.choose_method(np.random.default_rng(0).standard_normal((5, 5)), geom)[0] == "direct"


@pytest.mark.parametrize("method", [None, "direct", "separable", "lowrank", "fft"])
def test_gaussian_larger_image_all_paths(method):
    r = rng(11)
    img = r.uniform(0, 255, (40, 33, 3)).astype(np.float32)
    g = np.exp(-0.5 * (np.arange(-4, 5) / 2.0) ** 2)
    k = np.outer(g, g) / np.outer(g, g).sum()
    got = cv.correlate(img, k, _method=method, border="reflect")
    assert_close(got, reference(img, k, border="reflect"), k, img)


def test_lowrank_path_on_rank3_kernel():
    r = rng(12)
    img = r.uniform(0, 255, (30, 31)).astype(np.float32)
    k = sum(np.outer(r.standard_normal(7), r.standard_normal(7)) for _ in range(3))
    got = cv.correlate(img, k, _method="lowrank", stride=2, dilation=(1, 2))
    assert_close(got, reference(img, k, stride=2, dilation=(1, 2)), k, img)


def test_zero_kernel_gives_zeros():
    out = cv.correlate(np.ones((4, 5)), np.zeros((3, 3)), border="constant", border_value=7)
    assert out.tolist() == np.zeros((4, 5)).tolist()


# ------------------------------------------------------------------------------------------
# Oracles: OpenCV, scipy, PyTorch
# ------------------------------------------------------------------------------------------

CV_BORDER = {
    "reflect101": "BORDER_REFLECT_101",
    "reflect": "BORDER_REFLECT",
    "replicate": "BORDER_REPLICATE",
    "wrap": "BORDER_WRAP",
    "constant": "BORDER_CONSTANT",
}


@pytest.mark.oracle
@pytest.mark.parametrize("border", ["reflect101", "reflect", "replicate", "constant"])
@pytest.mark.parametrize("kshape", [(1, 1), (3, 3), (5, 5), (2, 2), (4, 3), (2, 7), (7, 6)])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_filter2d_same(border, kshape, channels):
    cv2 = pytest.importorskip("cv2")
    r = rng(case_seed(border, kshape, channels))
    shape = (7, 6) if channels == 1 else (7, 6, channels)  # (7, 6) kernel is as large as the image
    img = r.uniform(0, 255, shape).astype(np.float32)
    k = r.standard_normal(kshape).astype(np.float32)
    # OpenCV's anchor for even kernels is k//2 (ours (k-1)//2): pass it explicitly.
    anchor = (kshape[0] // 2, kshape[1] // 2)
    expected = cv2.filter2D(
        img,
        cv2.CV_32F,
        k,
        anchor=(anchor[1], anchor[0]),
        borderType=getattr(cv2, CV_BORDER[border]),
    )
    got = cv.correlate(img, k, anchor=anchor, border=border)  # OpenCV's BORDER_CONSTANT is 0
    assert_close(got, expected.astype(np.float64), k, img)
    # True convolution, as OpenCV's documentation builds it: flip the kernel, mirror the anchor.
    mirrored = (kshape[1] - 1 - anchor[1], kshape[0] - 1 - anchor[0])
    expected = cv2.filter2D(
        img,
        cv2.CV_32F,
        cv2.flip(k, -1),
        anchor=mirrored,
        borderType=getattr(cv2, CV_BORDER[border]),
    )
    got = cv.correlate(img, k, anchor=anchor, border=border, flip=True)
    assert_close(got, expected.astype(np.float64), k, img)


@pytest.mark.oracle
@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("padding", ["valid", "full", ((3, 0), (0, 2))])
@pytest.mark.parametrize(("stride", "dilation"), [(1, 1), (2, 1), (1, 2), ((2, 3), (2, 1))])
def test_copymakeborder_then_filter2d(border, padding, stride, dilation):
    # OpenCV pads (any border, even wider than the image) and filter2D correlates the padded
    # image; its valid part, subsampled by the stride, is ours. Dilation: a kernel with zeros.
    cv2 = pytest.importorskip("cv2")
    r = rng(21)
    img = r.uniform(0, 255, (5, 8)).astype(np.float32)
    k = r.standard_normal((3, 4)).astype(np.float32)
    geom = cv.plan_geometry(img.shape, k.shape, padding=padding, stride=stride, dilation=dilation)
    (t, b), (left, right) = geom.padding
    padded = cv2.copyMakeBorder(img, t, b, left, right, getattr(cv2, CV_BORDER[border]), value=9.0)
    ay, ax = geom.axes
    kd = np.zeros((ay.effective_kernel, ax.effective_kernel), np.float32)
    kd[:: ay.dilation, :: ax.dilation] = k
    full = cv2.filter2D(padded, cv2.CV_32F, kd, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    expected = full[:: ay.stride, :: ax.stride][: ay.output, : ax.output]
    got = cv.correlate(
        img, k, padding=padding, stride=stride, dilation=dilation, border=border, border_value=9.0
    )
    assert_close(got, expected.astype(np.float64), k, img)


SCIPY_MODE = {b.value: BORDER_ALIASES[b][1] for b in Border}


@pytest.mark.oracle
@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("kshape", [(3, 3), (2, 2), (4, 5), (9, 8)])
@pytest.mark.parametrize("dilation", [1, 2])
def test_scipy_ndimage_correlate(border, kshape, dilation):
    ndimage = pytest.importorskip("scipy.ndimage")
    r = rng(31)
    img = r.uniform(-3, 3, (8, 9))
    k = r.standard_normal(kshape)
    kd = np.zeros(((kshape[0] - 1) * dilation + 1, (kshape[1] - 1) * dilation + 1))
    kd[::dilation, ::dilation] = k
    geom = cv.plan_geometry(img.shape, kshape, dilation=dilation)
    # scipy centres at k//2 + origin; ours pads (k'-1)//2 before.
    origin = [p[0] - s // 2 for p, s in zip(geom.padding, kd.shape, strict=True)]
    expected = ndimage.correlate(img, kd, mode=SCIPY_MODE[border], cval=1.25, origin=origin)
    got = cv.correlate(img, k, dilation=dilation, border=border, border_value=1.25)
    assert_close(got, expected, k, img)


@pytest.mark.oracle
@pytest.mark.parametrize("border", BORDERS)
def test_scipy_ndimage_convolve_is_flip(border):
    ndimage = pytest.importorskip("scipy.ndimage")
    r = rng(32)
    img = r.uniform(-3, 3, (8, 9))
    k = r.standard_normal((3, 5))
    expected = ndimage.convolve(img, k, mode=SCIPY_MODE[border], cval=-2.0)
    got = cv.correlate(img, k, flip=True, border=border, border_value=-2.0)
    assert_close(got, expected, k, img)


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("padding", "stride", "dilation"),
    [(0, 1, 1), (2, 2, 1), (((1, 2), (0, 3)), 1, 2), ("same", 1, 2)],
)
def test_torch_conv2d_multichannel(padding, stride, dilation):
    torch = pytest.importorskip("torch")
    r = rng(41)
    img = r.uniform(-1, 1, (9, 10, 3))
    w = r.standard_normal((4, 3, 3, 2))
    x = torch.tensor(np.moveaxis(img, -1, 0)[None])
    if isinstance(padding, tuple):
        (t, b), (left, right) = padding
        x = torch.nn.functional.pad(x, (left, right, t, b))
        tpad = 0
    else:
        tpad = padding
    y = torch.nn.functional.conv2d(
        x, torch.tensor(w), stride=stride, padding=tpad, dilation=dilation
    )
    expected = np.moveaxis(y[0].numpy(), 0, -1)
    got = cv.correlate(img, w, padding=padding, stride=stride, dilation=dilation, border="constant")
    assert_close(got, expected, w, img)


# ------------------------------------------------------------------------------------------
# Geometry: the arithmetic core decides every size
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "k", "s", "d", "pad"),
    list(itertools.product([5, 8], [1, 2, 3], [1, 2, 3], [1, 2], ["same", "valid", "full", 1])),
)
def test_output_size_is_arithmetic_core(n, k, s, d, pad):
    fw = "tf" if pad == "same" else "torch"
    if fw == "tf" and s > 1 and d > 1:
        fw = "torch"  # TensorFlow refuses this pair; filter plans it as explicit padding
        pairs = tuple(arithmetic.same_padding(size, k, s, d) for size in (n, n + 1))
        spec = arithmetic.make_spec((n, n + 1), k, stride=s, dilation=d, padding=pairs)
    else:
        spec = arithmetic.make_spec((n, n + 1), k, stride=s, dilation=d, padding=pad, framework=fw)
    try:
        expected = arithmetic.resolve(spec).output_size
    except ShapeError:
        with pytest.raises(ShapeError):
            cv.plan_geometry((n, n + 1), (k, k), padding=pad, stride=s, dilation=d)
        return
    assert (
        cv.plan_geometry((n, n + 1), (k, k), padding=pad, stride=s, dilation=d).output_size
        == expected
    )
    out = cv.correlate(
        np.ones((n, n + 1), np.float32), np.ones((k, k)), padding=pad, stride=s, dilation=d
    )
    assert out.shape == expected


def test_same_with_stride_is_tensorflow_ceil():
    g = cv.plan_geometry((7, 10), (3, 3), padding="same", stride=2)
    assert g.output_size == (4, 5)
    assert g.padding == ((1, 1), (0, 1))


def test_same_split_and_anchor():
    assert cv.plan_geometry((8, 8), (4, 2)).padding == ((1, 2), (0, 1))
    assert cv.plan_geometry((8, 8), (4, 2), anchor=(2, 1)).padding == ((2, 1), (1, 0))
    assert cv.plan_geometry((8, 8), (3, 3), anchor=(0, 2), dilation=2).padding == ((0, 4), (4, 0))
    assert cv.plan_geometry((8, 8), (4, 2), flip=True).padding == ((2, 1), (1, 0))


# ------------------------------------------------------------------------------------------
# Bad input: one line, naming the value and the fix
# ------------------------------------------------------------------------------------------


def err(exc_type, *args, **kwargs) -> str:
    with pytest.raises(exc_type) as info:
        cv.correlate(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


IMG = np.ones((5, 5), np.float32)


def test_nan_kernel():
    assert (
        err(KernelError, IMG, [[1, float("nan")], [0, 1]])
        == "kernel has nan at index 0,1; give finite numbers"
    )
    assert (
        err(KernelError, IMG, [[1, 0], [float("inf"), 1]])
        == "kernel has inf at index 1,0; give finite numbers"
    )


def test_empty_and_bad_kernels():
    assert (
        err(KernelError, IMG, np.zeros((0, 3)))
        == "kernel is empty (shape 0×3); give at least one value, e.g. 1"
    )
    assert (
        err(KernelError, IMG, [1, 2, 3])
        == "kernel has 1 dimension (shape 3); give kh×kw, Cin×kh×kw or Cout×Cin×kh×kw"
    )
    assert (
        err(KernelError, IMG, [["a"]])
        == "kernel must hold numbers, got <U1 values; give rows of equal length of numbers"
    )


def test_channel_mismatch():
    img = np.ones((5, 5, 3))
    assert err(KernelError, img, np.ones((2, 3, 3))) == (
        "kernel has 2 input channels (shape 2×3×3) but the image has 3; give a 3×3×3 kernel, or a 2-D one for every channel"
    )
    assert err(KernelError, IMG, np.ones((4, 3, 3, 3))) == (
        "kernel has 3 input channels (shape 4×3×3×3) but the image has 1; give a 4×1×3×3 kernel"
    )


def test_zero_stride_and_bad_dilation():
    assert (
        err(UsageError, IMG, np.ones((3, 3)), stride=0)
        == "stride 0 is not allowed; use a positive whole number"
    )
    assert (
        err(UsageError, IMG, np.ones((3, 3)), dilation=(1, 0))
        == "dilation 0 on axis W is not allowed; use a positive whole number"
    )


def test_kernel_larger_than_image_valid():
    assert err(ShapeError, np.ones((3, 8)), np.ones((5, 5)), padding="valid") == (
        "kernel 5 is larger than the padded input 3 on axis H (input 3 + padding 0+0); "
        "use padding of at least 2 in total, or a smaller kernel"
    )


def test_unknown_border_and_bad_anchor_and_image():
    assert err(UsageError, IMG, np.ones((3, 3)), border="mirrorr") == (
        "unknown border 'mirrorr'; did you mean mirror? use one of reflect101, reflect, replicate, "
        "wrap, constant[=v] (or OpenCV's/scipy's names: mirror, nearest, grid-wrap, …)"
    )
    assert (
        err(UsageError, IMG, np.ones((3, 3)), anchor=(3, 0))
        == "anchor y=3 lies outside the kernel (size 3); use 0..2"
    )
    assert err(UsageError, IMG, np.ones((3, 3)), anchor=(1, 1), padding="valid") == (
        "--anchor applies only to --padding same, not 'valid'; drop --anchor or use same"
    )
    assert (
        err(ShapeError, np.ones((2, 2, 2, 2)), np.ones((1, 1)))
        == "image has shape 2×2×2×2; give H×W or H×W×C (channels last)"
    )
    assert (
        err(ImageError, np.array([["x"]]), np.ones((1, 1)))
        == "image must hold numbers, got <U1 values"
    )
    assert err(UsageError, IMG, np.ones((3, 3)), border="constant", border_value=float("nan")) == (
        "border value nan is not finite; give a number, e.g. constant=0"
    )


@pytest.mark.parametrize(
    ("name", "border"),
    [
        ("BORDER_REFLECT_101", "reflect101"),
        ("mirror", "reflect101"),
        ("nearest", "replicate"),
        ("grid-wrap", "wrap"),
        ("border_constant", "constant"),
        ("REFLECT", "reflect"),
    ],
)
def test_border_aliases(name, border):
    assert cv.parse_border(name) == cv.Border(border)


@pytest.mark.parametrize("method", ["direct", "separable", "lowrank"])
@pytest.mark.parametrize("stride", [1, 2])
def test_wide_rows_with_edges_strips_and_stride(method, stride):
    # Long rows: the interior run, the edge strips and the column stride all take part.
    r = rng(51)
    img = r.uniform(0, 255, (3, 1077)).astype(np.float32)
    k = np.outer(r.standard_normal(3), r.standard_normal(3))
    if method == "lowrank":
        k = k + np.outer(r.standard_normal(3), r.standard_normal(3))
    got = cv.correlate(img, k, stride=stride, _method=method, border="wrap")
    assert_close(got, reference(img, k, stride=stride, border="wrap"), k, img)


@pytest.mark.parametrize(
    ("stride", "dilation", "padding"), [(1, 1, "same"), (2, 1, "valid"), ((3, 2), (1, 2), "full")]
)
def test_fft_in_many_tiles(monkeypatch, stride, dilation, padding):
    # Small tiles force overlap-save across many tiles, including ragged last ones.
    monkeypatch.setattr(config, "FFT_MAX_TILE", 40)
    r = rng(52)
    img = r.uniform(0, 255, (70, 83)).astype(np.float32)
    k = r.standard_normal((7, 6))
    geom = cv.plan_geometry(img.shape, k.shape, padding=padding, stride=stride, dilation=dilation)
    ay, ax = geom.axes
    vh = ay.input + ay.pad_before + ay.pad_after - ay.effective_kernel + 1
    assert cv._fft_tile(vh, ay.effective_kernel, ay.stride)[2] > 2
    got = cv.correlate(
        img, k, padding=padding, stride=stride, dilation=dilation, border="reflect", _method="fft"
    )
    assert_close(
        got,
        reference(img, k, padding=padding, stride=stride, dilation=dilation, border="reflect"),
        k,
        img,
    )


def test_load_core_in_the_background_then_correlate():
    """The command's warm-up: load_core in another thread; a correlate call meanwhile waits for
    it and computes the right numbers."""
    import threading

    t = threading.Thread(target=cv.load_core)
    t.start()
    out = cv.correlate(np.arange(12.0).reshape(3, 4), np.ones((3, 3)) / 9, padding="valid")
    t.join(timeout=120)
    assert not t.is_alive()
    np.testing.assert_allclose(out, [[5.0, 6.0]], rtol=1e-6)
    assert cv._core_loaded


def test_a_short_last_group_keeps_infinite_pixels_infinite():
    """Taps go nine to a pass; a last group of fewer reads zeros for its missing taps, never a
    pixel with weight 0 (0·inf would be NaN). Every group size up to two passes, with one
    infinite pixel, and the values against the reference."""
    for taps in range(1, 12):
        k = np.zeros((1, 12))
        k[0, :taps] = np.arange(1, taps + 1) * 0.75
        img = np.zeros((1, 30), np.float32)
        img[0, 15] = np.inf
        out = cv.correlate(img, k, padding="valid", _method="direct")
        expect = np.zeros(19)
        expect[15 - np.arange(taps)] = np.inf  # output x reads pixel x + j with weight k[j]
        np.testing.assert_array_equal(out[0], expect)
        ramp = np.arange(30, dtype=np.float32)[None, :]
        got = cv.correlate(ramp, k, padding="valid", _method="direct")
        np.testing.assert_allclose(got, reference(ramp, k, padding="valid"), rtol=1e-6)


def test_non_finite_pixels_stay_local_even_for_large_kernels():
    img = np.zeros((300, 300), np.float32)
    k = np.random.default_rng(3).uniform(0.5, 1.0, (31, 31))
    geom = cv.plan_geometry(img.shape, k.shape, padding="valid")
    assert cv.choose_method(k, geom)[0] == "fft"  # what a finite image of this size would take
    img[5, 5] = np.inf
    out = cv.correlate(img, k, padding="valid")
    assert np.isinf(out[0, 0])
    assert np.isfinite(out[:, 6:]).all() and np.isfinite(out[6:, :]).all()


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 7),
    w=st.integers(1, 7),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    sy=st.integers(1, 3),
    sx=st.integers(1, 3),
    dy=st.integers(1, 3),
    dx=st.integers(1, 3),
    padding=st.sampled_from(["same", "full", 0, 2, ((0, 3), (4, 1))]),
    border=st.sampled_from(BORDERS),
    method=st.sampled_from([None, *FORCED]),
    flip=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_matches_naive(h, w, kh, kw, sy, sx, dy, dx, padding, border, method, flip, seed):
    r = rng(seed)
    img = r.uniform(-10, 10, (h, w)).astype(np.float32)
    k = r.integers(-3, 4, (kh, kw)).astype(np.float64)
    kwargs = dict(padding=padding, stride=(sy, sx), dilation=(dy, dx), flip=flip)
    try:
        ref = reference(img, k, border=border, value=0.5, **kwargs)
    except ShapeError:
        with pytest.raises(ShapeError):
            cv.correlate(img, k, border=border, border_value=0.5, **kwargs)
        return
    got = cv.correlate(img, k, border=border, border_value=0.5, _method=method, **kwargs)
    assert_close(got, ref, k, img)


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("method", [*FORCED, "separable"])
@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize(
    ("padding", "stride", "dilation"),
    [("same", 1, 1), ("full", (1, 2), (2, 1)), ("valid", 2, (1, 2)), (((1, 3), (4, 0)), (2, 3), 1)],
)
def test_interleaved_channels_every_path(channels, method, border, padding, stride, dilation):
    # Colour runs as one H×(W·C) plane with column taps C apart; each channel must come out
    # exactly as if filtered alone.
    r = rng(channels * 7)
    img = r.uniform(0, 255, (7, 9, channels)).astype(np.float32)
    k = np.outer(r.standard_normal(3), r.standard_normal(4))
    kwargs = dict(padding=padding, stride=stride, dilation=dilation, border=border)
    got = cv.correlate(img, k, border_value=4.0, _method=method, **kwargs)
    assert got.shape[2] == channels
    for c in range(channels):
        alone = cv.correlate(
            np.ascontiguousarray(img[:, :, c]), k, border_value=4.0, _method=method, **kwargs
        )
        np.testing.assert_array_equal(got[:, :, c], alone)
    assert_close(got, reference(img, k, value=4.0, **kwargs), k, img)


def test_numba_lives_only_in_the_jit_module_with_one_set_of_options():
    from pathlib import Path

    from numba.core.registry import CPUDispatcher

    from cnncli.filtering import _jit

    root = Path(cv.__file__).parent.parent  # the whole cnncli package
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.name != "_jit.py":
            assert "from numba" not in text and "import numba" not in text, path
        if path.name not in ("_jit.py", "correlate.py"):
            assert "_jit" not in text, path  # only correlate imports the Numba core
    dispatchers = [f for f in vars(_jit).values() if isinstance(f, CPUDispatcher)]
    # One compiled function, one signature: what a first run compiles, all of it at once.
    assert [f.__name__ for f in dispatchers] == ["direct_rows"] == list(_jit.SIGNATURES)
    assert all(len(sigs) == 1 for sigs in _jit.SIGNATURES.values())
    from numba.core.caching import FunctionCache

    for f in dispatchers:
        assert f.targetoptions["nogil"] is True
        # cache=True, loaded without Numba's compiler set-up (see the next test)
        assert isinstance(f._cache, FunctionCache)
        assert type(f._cache).__name__ == "QuickLoadCache"


QUICK_LOAD_SCRIPT = """
import sys
import numpy as np
from cnncli.filtering import correlate as convolve
img = np.arange(48, dtype=np.uint8).reshape(6, 8)
out = convolve.correlate(img, [[1.0, 0.0, -1.0]] * 3, padding="valid", _method="direct")
print(out.tolist())
print("numba.np.arraymath" in sys.modules)
"""


def test_a_warm_cache_loads_without_numba_compiler_setup(tmp_path):
    """The second run (a warm cache) rebuilds the cached code without importing Numba's typing
    and lowering registries (what a compile needs, ~60 ms), and computes the same numbers."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    runs = [
        subprocess.run(
            [sys.executable, "-c", QUICK_LOAD_SCRIPT], env=env, capture_output=True, text=True
        )
        for _ in range(2)
    ]
    for r in runs:
        assert r.returncode == 0, r.stderr
    first, second = (r.stdout.splitlines() for r in runs)
    expected = [[-2.0 * 3] * 6] * 4  # each row climbs by 1 a column: x - (x + 2), three rows
    assert eval(first[0]) == eval(second[0]) == expected
    assert first[1] == "True"  # the cold run compiled: the compiler imported its registries
    assert second[1] == "False"  # the warm run did not need them


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("method", [*FORCED, "separable"])
def test_padding_many_times_the_image(border, method):
    # Borders repeat (reflect back and forth, wrap around) when the padding exceeds the image.
    r = rng(61)
    img = r.uniform(-1, 1, (3, 4))
    k = np.outer(r.standard_normal(3), r.standard_normal(2))
    padding = ((11, 7), (9, 13))
    got = cv.correlate(img, k, padding=padding, border=border, border_value=-0.5, _method=method)
    assert got.shape == (3 + 18 - 2, 4 + 22 - 1)
    assert_close(got, reference(img, k, padding=padding, border=border, value=-0.5), k, img)


@pytest.mark.oracle
@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("shape", [(3, 4), (1, 2), (1, 1)])
def test_padding_many_times_the_image_vs_copymakeborder(border, shape):
    cv2 = pytest.importorskip("cv2")
    img = rng(62).uniform(0, 9, shape).astype(np.float32)
    padded = cv2.copyMakeBorder(img, 11, 7, 9, 13, getattr(cv2, CV_BORDER[border]), value=2.0)
    got = cv.correlate(img, [[1.0]], padding=((11, 7), (9, 13)), border=border, border_value=2.0)
    np.testing.assert_array_equal(got, padded)


@pytest.mark.parametrize("border", BORDERS)
def test_pad_matches_numpy_pad_even_past_the_image(border):
    img = rng(63).uniform(0, 9, (3, 4)).astype(np.float32)
    geom = cv.plan_geometry(img.shape, (1, 1), padding=((11, 7), (9, 13)))
    b = cv.Border(border)
    extra = {"constant_values": 2.0} if b is cv.Border.CONSTANT else {}
    expected = np.pad(img, ((11, 7), (9, 13)), mode=cv.NUMPY_PAD_MODE[b], **extra)
    np.testing.assert_array_equal(cv.pad(img, geom, b, 2.0), expected)
