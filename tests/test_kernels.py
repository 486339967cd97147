"""The named-kernel library, the custom-kernel parser, and the --then stages.

Named kernels are checked against OpenCV's own kernel builders (cv2.getGaussianKernel,
cv2.getDerivKernels) and filter results against cv2 and torch when installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cnncli import arithmetic as ar
from cnncli.errors import KernelError, UsageError
from cnncli.filtering.correlate import apply_kernel
from cnncli.filtering.kernels import (
    NAMES,
    Combine,
    KernelSpecError,
    Mapping,
    catalogue,
    named,
    normalized,
    resolve_kernel,
)
from cnncli.filtering.stages import parse_stage, run_stage

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


# ------------------------------------------------------------------ named kernels


def test_catalogue_covers_the_issue_list() -> None:
    names = {k.name for k in catalogue()}
    wanted = {
        "identity", "box", "gaussian", "sharpen", "unsharp", "emboss", "laplacian", "laplacian8",
        "log", "vertical-edge", "horizontal-edge", "sobel", "scharr", "prewitt", "roberts",
        "kirsch", "robinson", "motion",
    }  # fmt: skip
    assert wanted <= names
    for g in ("sobel", "scharr", "prewitt", "roberts"):
        assert {f"{g}-x", f"{g}-y", f"{g}-dir"} <= set(NAMES)


def test_seed_kernels_are_the_course_notes() -> None:
    assert named("vertical-edge").matrix.tolist() == [[1, 0, -1]] * 3
    assert named("horizontal-edge").matrix.tolist() == [[1, 1, 1], [0, 0, 0], [-1, -1, -1]]


@pytest.mark.parametrize("sigma,size", [(1, 7), (2, 13), (0.5, 5), (3, 19)])
def test_gaussian_sigma_matches_opencv(sigma: float, size: int) -> None:
    cv2 = pytest.importorskip("cv2")
    k = named(f"gaussian:sigma={sigma}")
    assert k.matrix.shape == (size, size)  # OpenCV's 8-bit rule: round(6σ+1) made odd
    g = cv2.getGaussianKernel(size, sigma, cv2.CV_64F)
    np.testing.assert_allclose(k.matrix, g @ g.T, rtol=1e-12, atol=1e-15)
    assert k.mapping is Mapping.CLIP


def test_gaussian_size_only_uses_opencv_sigma_rule() -> None:
    k = named("gaussian:size=9")
    assert k.params["sigma"] == pytest.approx(0.3 * ((9 - 1) * 0.5 - 1) + 0.8)
    assert k.matrix.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("size", [3, 5, 7])
def test_sobel_matches_opencv_deriv_kernels(size: int) -> None:
    cv2 = pytest.importorskip("cv2")
    k = named(f"sobel:size={size}")
    dx, sy = cv2.getDerivKernels(1, 0, size, normalize=False, ktype=cv2.CV_64F)
    np.testing.assert_array_equal(k.weights[0], sy @ dx.T)
    np.testing.assert_array_equal(k.weights[1], k.weights[0].T)
    assert k.combine is Combine.MAGNITUDE
    assert named("sobel-x").combine is Combine.SINGLE
    assert named("sobel-dir").combine is Combine.DIRECTION


def test_scharr_prewitt_roberts_pairs() -> None:
    assert named("scharr-x").matrix.tolist() == [[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]]
    assert named("prewitt-y").matrix.tolist() == [[-1, -1, -1], [0, 0, 0], [1, 1, 1]]
    assert named("roberts").weights[0].tolist() == [[1, 0], [0, -1]]
    assert named("roberts").weights[1].tolist() == [[0, 1], [-1, 0]]


def test_compass_sets_are_eight_rotations() -> None:
    k = named("kirsch")
    assert k.combine is Combine.MAXIMUM and len(k.weights) == 8
    assert len({w.tobytes() for w in k.weights}) == 8
    assert k.weights[0].tolist() == [[5, 5, 5], [-3, 0, -3], [-3, -3, -3]]
    # Two 45° steps are a 90° rotation (clockwise: north → east).
    np.testing.assert_array_equal(k.weights[2], np.rot90(k.weights[0], -1))
    assert all(w.sum() == 0 for w in named("robinson").weights)


def test_laplacian_log_emboss_sharpen_unsharp() -> None:
    assert named("laplacian").matrix.tolist() == [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
    assert named("laplacian8").matrix.sum() == 0
    log = named("log:sigma=1.4")
    assert log.matrix.shape == (11, 11) and abs(log.matrix.sum()) < 1e-12
    assert log.matrix[5, 5] < 0  # the centre of a LoG is negative
    assert named("emboss").mapping is Mapping.OFFSET and named("emboss").matrix.sum() == 0
    assert named("sharpen").matrix.sum() == pytest.approx(1.0)
    u = named("unsharp:sigma=1,amount=1.5")
    assert u.matrix.sum() == pytest.approx(1.0)
    assert u.matrix[3, 3] == pytest.approx(1 + 1.5 * (1 - named("gaussian:sigma=1").matrix[3, 3]))


@pytest.mark.parametrize("angle", [0, 45, 90, 30])
def test_motion_blur_is_a_normalised_line(angle: float) -> None:
    k = named(f"motion:length=9,angle={angle}").matrix
    assert k.shape == (9, 9) and k.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-12)  # symmetric about the centre
    if angle == 0:
        assert np.count_nonzero(k[4]) == 9 and k.sum() == pytest.approx(k[4].sum())
    if angle == 90:
        assert k[:, 4].sum() == pytest.approx(1.0)


def test_default_mappings() -> None:
    assert named("box").mapping is Mapping.CLIP
    assert named("sobel").mapping is Mapping.ABS
    assert named("sobel-dir").value_range == (0.0, 360.0)
    assert resolve_kernel("1,0,-1").mapping is Mapping.ABS  # zero sum: an edge detector
    assert resolve_kernel("1,1;1,1").mapping is Mapping.CLIP


# ------------------------------------------------------------------ errors on names


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(KernelSpecError) as err:
        resolve_kernel("sobl")
    assert str(err.value).startswith("unknown kernel 'sobl'; did you mean sobel")
    assert isinstance(err.value, UsageError) and err.value.exit_code == 2


def test_unknown_parameter_lists_valid_ones() -> None:
    with pytest.raises(
        KernelSpecError,
        match="kernel 'gaussian' has no parameter 'sigm'; valid parameters: sigma, size",
    ):
        resolve_kernel("gaussian:sigm=2")
    with pytest.raises(KernelSpecError, match="has no parameter 'size'; valid parameters: none"):
        resolve_kernel("kirsch:size=3")
    with pytest.raises(KernelSpecError, match="is not a number"):
        resolve_kernel("gaussian:sigma=big")
    with pytest.raises(KernelSpecError, match="sigma must be positive"):
        resolve_kernel("gaussian:sigma=0")
    with pytest.raises(KernelSpecError, match="sobel size must be 3, 5 or 7"):
        resolve_kernel("sobel:size=4")


def test_slug_names_the_parameters() -> None:
    assert named("gaussian:sigma=1.5").slug == "gaussian-sigma1p5"
    assert named("sobel").slug == "sobel"


# ------------------------------------------------------------------ custom matrices


def test_inline_matrix_rows_and_whitespace() -> None:
    k = resolve_kernel("1,0,-1;1,0,-1;1,0,-1")
    assert k.matrix.tolist() == [[1, 0, -1]] * 3
    assert resolve_kernel("1 0 -1; 2 0 -2").matrix.shape == (2, 3)
    assert resolve_kernel("0.5,0.5").matrix.tolist() == [[0.5, 0.5]]


@pytest.mark.parametrize(
    "spec,message",
    [
        (
            "1,2;3",
            "kernel '1,2;3' row 2 has 1 value but row 1 has 2; every row needs the same number of values",
        ),
        ("1,nan", "kernel '1,nan' row 1 value 2 is nan; kernels need finite numbers"),
        ("1,inf;1,1", "kernel '1,inf;1,1' row 1 value 2 is inf; kernels need finite numbers"),
        (";", "kernel ';' is empty; give at least one number"),
        ("", "kernel '' is empty; give a name (e.g. sobel) or a matrix like \"1,0,-1\""),
    ],
)
def test_malformed_inline(spec: str, message: str) -> None:
    with pytest.raises(KernelSpecError) as err:
        resolve_kernel(spec)
    assert str(err.value) == message


def test_text_csv_json_npy_files(tmp_path: Path) -> None:
    txt = tmp_path / "k.txt"
    txt.write_text("# a comment\n1 0 -1\n\n2 0 -2  # trailing\n1 0 -1\n")
    assert resolve_kernel(str(txt)).matrix.tolist() == [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
    csv = tmp_path / "k.csv"
    csv.write_text("1,2\n3,4\n")
    assert resolve_kernel(str(csv)).matrix.tolist() == [[1, 2], [3, 4]]
    k3 = resolve_kernel(str(SAMPLES / "kernels" / "d2l-3d.json"))
    assert k3.matrix.shape == (2, 2, 2) and k3.slug == "d2l-3d"
    assert resolve_kernel(str(SAMPLES / "kernels" / "d2l-4d.json")).matrix.shape == (3, 2, 2, 2)
    npy = tmp_path / "k.npy"
    np.save(npy, np.arange(6, dtype=np.int16).reshape(2, 3))
    assert resolve_kernel(str(npy)).matrix.tolist() == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("r.txt", "1 2 3\n4 5\n", "row 2 has 2 values but row 1 has 3"),
        ("n.csv", "1,2\nx,4\n", "row 2 value 1: 'x' is not a number"),
        ("e.txt", "# nothing\n", "is empty; give at least one number"),
        ("r.json", "[[1,2],[3]]", "is ragged: [1] has shape [1] but [0] has [2]"),
        ("b.json", "[[1,2],[3,", "is not valid JSON"),
        ("v.json", "[1,2,3]", "has 1 dimensions; give 2-D (kh×kw)"),
        ("s.json", '[[1,"a"]]', "'a' is not a number or a list"),
        ("z.json", "[[]]", "is an empty list"),
    ],
)
def test_malformed_files(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(KernelError) as err:
        resolve_kernel(str(path))
    assert message in str(err.value)
    assert not isinstance(err.value, UsageError)  # file contents: exit 1
    assert "\n" not in str(err.value)


def test_npy_kernel_with_nan_names_the_index(tmp_path: Path) -> None:
    path = tmp_path / "k.npy"
    np.save(path, np.array([[1.0, 2.0], [np.nan, 4.0]]))
    with pytest.raises(KernelError, match=r"at index \[1, 0\] is nan; kernels need finite numbers"):
        resolve_kernel(str(path))


def test_missing_kernel_file() -> None:
    with pytest.raises(KernelError, match="kernel file 'nope/k.json' not found"):
        resolve_kernel("nope/k.json")


def test_normalize_divides_by_sum_and_warns_on_zero_sum() -> None:
    k, warning = normalized(resolve_kernel("1,2,1;2,4,2;1,2,1"))
    assert warning is None and k.matrix.sum() == pytest.approx(1.0)
    assert k.matrix[1, 1] == pytest.approx(0.25)
    edge = resolve_kernel("1,0,-1")
    same, warning = normalized(edge)
    assert warning is not None and "sums to 0" in warning
    np.testing.assert_array_equal(same.matrix, edge.matrix)
    # 4-D: each output map is normalised on its own.
    k4 = resolve_kernel(str(SAMPLES / "kernels" / "d2l-4d.json"))
    n4, _ = normalized(k4)
    np.testing.assert_allclose(n4.matrix.sum(axis=(1, 2, 3)), 1.0)


# ------------------------------------------------------------------ applying


def test_seed_example_through_apply_kernel() -> None:
    seed = np.load(SAMPLES / "seed.npy")
    out = apply_kernel(named("vertical-edge"), seed, padding="valid")
    assert out.tolist() == [[0, 39, 39, 0]] * 4


def test_d2l_multichannel() -> None:
    x = np.load(SAMPLES / "d2l-x.npy")
    k3 = resolve_kernel(str(SAMPLES / "kernels" / "d2l-3d.json"))
    assert apply_kernel(k3, x, padding="valid").tolist() == [[56, 72], [104, 120]]
    k4 = resolve_kernel(str(SAMPLES / "kernels" / "d2l-4d.json"))
    out = apply_kernel(k4, x, padding="valid")
    assert out.shape == (2, 2, 3)
    assert np.moveaxis(out, -1, 0).tolist() == [
        [[56, 72], [104, 120]],
        [[76, 100], [148, 172]],
        [[96, 128], [192, 224]],
    ]


def _camera() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(SAMPLES / "camera.png"), dtype=np.float32)


def test_sobel_magnitude_and_direction_match_opencv() -> None:
    cv2 = pytest.importorskip("cv2")
    img = _camera()
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_allclose(apply_kernel(named("sobel-x"), img), gx, atol=1e-3)
    np.testing.assert_allclose(apply_kernel(named("sobel"), img), np.hypot(gx, gy), atol=1e-3)
    direction = apply_kernel(named("sobel-dir"), img)
    strong = np.hypot(gx, gy) > 50  # where the angle is well defined
    expect = np.degrees(np.arctan2(gy, gx)) % 360
    diff = np.abs(direction - expect)[strong]
    assert np.minimum(diff, 360 - diff).max() < 0.01


def test_gaussian_matches_opencv_float() -> None:
    cv2 = pytest.importorskip("cv2")
    img = _camera()
    ours = apply_kernel(named("gaussian:sigma=2"), img)
    theirs = cv2.GaussianBlur(img, (13, 13), 2, borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_allclose(ours, theirs, atol=2e-3)


def test_compass_is_max_of_rotations() -> None:
    img = _camera()[:64, :64]
    k = named("kirsch")
    each = [
        apply_kernel(resolve_kernel(";".join(",".join(map(str, r)) for r in w)), img)
        for w in k.weights
    ]
    np.testing.assert_allclose(apply_kernel(k, img), np.max(each, axis=0), atol=1e-3)


# ------------------------------------------------------------------ --then stages


def test_parse_stage() -> None:
    assert parse_stage("relu").op == "relu"
    s = parse_stage("maxpool:3:2")
    assert (s.op, s.size, s.stride, s.label) == ("maxpool", 3, 2, "maxpool3s2")
    assert parse_stage("avgpool:2").stride == 2
    with pytest.raises(UsageError, match="is not a stage; use relu, maxpool:K"):
        parse_stage("softmax")
    with pytest.raises(UsageError, match="positive window"):
        parse_stage("maxpool:x")


@pytest.mark.parametrize("op", ["maxpool", "avgpool"])
@pytest.mark.parametrize(
    "size,stride,h,w", [(2, 2, 7, 9), (3, 2, 10, 11), (3, 1, 5, 5), (2, 3, 8, 8)]
)
def test_pooling_matches_torch_and_arithmetic(
    op: str, size: int, stride: int, h: int, w: int
) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(h, w, 3)).astype(np.float32)
    ours = run_stage(parse_stage(f"{op}:{size}:{stride}"), x)
    t = torch.from_numpy(np.moveaxis(x, -1, 0))[None]
    fn = torch.nn.functional.max_pool2d if op == "maxpool" else torch.nn.functional.avg_pool2d
    theirs = np.moveaxis(fn(t, size, stride)[0].numpy(), 0, -1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    geom = ar.resolve(ar.make_spec((h, w), size, stride=stride, op=op))
    assert ours.shape[:2] == geom.output_size


def test_relu() -> None:
    x = np.array([[-1.5, 0.0, 2.0]], dtype=np.float32)
    assert run_stage(parse_stage("relu"), x).tolist() == [[0.0, 0.0, 2.0]]


def test_json_kernel_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps([[0.25, 0.5], [0.125, 1e-3]]))
    np.testing.assert_array_equal(resolve_kernel(str(path)).matrix, [[0.25, 0.5], [0.125, 1e-3]])
