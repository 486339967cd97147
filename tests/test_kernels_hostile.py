"""Hostile kernel specs and kernel files (issue #9): every one ends in one clear error line with
the right exit code, found from the spec, the parameters or the file's header before any large
array is built; fuzzing the parser and the file readers raises nothing but CnnCliError."""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import re
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from clirun import run
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cnncli import limits
from cnncli.errors import CnnCliError, KernelError, UsageError
from cnncli.filtering import kernels as kmod
from cnncli.filtering.kernels import KernelSpecError, load_file, named, resolve_kernel
from cnncli.limits import LimitError

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
RANGE = "outside the float32 range ±3.4e38 filters compute in"


@pytest.fixture(autouse=True)
def _default_limits() -> None:
    limits.configure()


def error_of(spec: str) -> CnnCliError:
    with pytest.raises(CnnCliError) as err:
        resolve_kernel(spec)
    return err.value


# ------------------------------------------------------------------ inline or path (item 1)


def test_a_7x7_inline_kernel_longer_than_255_characters() -> None:
    spec = ";".join([",".join(["0.0204081632"] * 7)] * 7)
    assert len(spec) > 255
    k = resolve_kernel(spec)
    assert k.name == "custom" and k.matrix.shape == (7, 7)
    assert k.matrix[3, 3] == pytest.approx(0.0204081632)


def test_the_long_inline_kernel_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    spec = "\n".join(" ".join(["0.0204081632"] * 7) for _ in range(7))
    assert len(spec) > 255
    code, out, err = run(["kernels", spec], capsys)
    assert code == 0, err
    assert err == "" and "7×7" in out


def test_a_path_longer_than_255_bytes_is_named_shortened(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = "/tmp/" + "k" * 300 + ".json"
    code, out, err = run(["kernels", spec], capsys)
    assert code == 1
    assert err == (
        f"cnncli: error: cannot read kernel file '/tmp/{'k' * 54}…{'k' * 54}.json' "
        "(310 characters): file name too long; use a shorter name\n"
    )
    assert out == ""


def test_a_long_name_that_is_no_path_is_an_unknown_kernel() -> None:
    err = error_of("q" * 5000)
    assert isinstance(err, KernelSpecError) and err.exit_code == 2
    assert str(err) == (
        f"unknown kernel '{'q' * 59}…{'q' * 59}' (5,000 characters); run 'cnncli kernels' for "
        'the list, or give a matrix like "1,0,-1;1,0,-1;1,0,-1" or a .txt/.csv/.json/.npy file'
    )


def test_a_symlink_loop(tmp_path: Path) -> None:
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    err = error_of(str(loop))
    assert type(err) is KernelError and err.exit_code == 1
    assert str(err) == f"cannot read kernel file {str(loop)!r}: {os.strerror(errno.ELOOP)}"


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests may run as root, which reads anything: deny the stat as a locked directory would.
    target = str(tmp_path / "locked" / "k.txt")

    def stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(os, "stat", stat)
    err = error_of(target)
    assert str(err) == f"cannot read kernel file {target!r}: Permission denied"


def test_permission_denied_on_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "k.txt"
    path.write_text("1 2\n")

    def deny(*args: object, **kwargs: object) -> int:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(os, "open", deny)
    err = error_of(str(path))
    assert str(err) == f"cannot read kernel file {str(path)!r}: Permission denied"


def test_a_directory_a_fifo_and_a_device(tmp_path: Path) -> None:
    folder = tmp_path / "k.json"
    folder.mkdir()
    assert str(error_of(str(folder))) == (
        f"kernel file {str(folder)!r} is a directory, not a regular file; "
        "give a .txt, .csv, .json or .npy file"
    )
    fifo = tmp_path / "k.txt"
    os.mkfifo(fifo)
    started = time.monotonic()
    assert str(error_of(str(fifo))) == (
        f"kernel file {str(fifo)!r} is a named pipe, not a regular file; "
        "give a .txt, .csv, .json or .npy file"
    )
    assert time.monotonic() - started < 5  # never opened for a blocking read
    assert str(error_of("/dev/null")) == (
        "kernel file '/dev/null' is a character device, not a regular file; "
        "give a .txt, .csv, .json or .npy file"
    )


def test_load_file_refuses_a_fifo_even_when_asked_directly(tmp_path: Path) -> None:
    fifo = tmp_path / "k.csv"
    os.mkfifo(fifo)
    with pytest.raises(KernelError, match="is a named pipe, not a regular file"):
        load_file(fifo)


def test_a_nul_in_the_spec() -> None:
    err = error_of("k\x00.json")
    assert str(err) == "cannot read kernel file 'k\\x00.json': a file name cannot hold NUL"


def test_a_directory_named_like_a_matrix_does_not_hide_the_matrix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "1,2").mkdir()
    assert resolve_kernel("1,2").matrix.tolist() == [[1, 2]]


def test_file_names_shown_escaped(tmp_path: Path) -> None:
    path = tmp_path / "a\x1b[31m.txt"
    path.write_text("1 x\n")
    message = str(error_of(str(path)))
    assert "\x1b" not in message and "\\x1b[31m.txt" in message


def test_a_huge_file_stem_gives_a_short_slug(tmp_path: Path) -> None:
    path = tmp_path / ("k" * 200 + ".txt")
    path.write_text("1 2\n")
    assert resolve_kernel(str(path)).slug == "k" * 60


# ------------------------------------------------------------------ kernel files (item 2)


def test_json_nested_1000_deep_is_bounded_by_the_nesting_limit(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 1000 + "1" + "]" * 1000)
    err = error_of(str(path))
    assert isinstance(err, LimitError) and err.exit_code == 1
    assert str(err) == (
        f"kernel file {str(path)!r} nests brackets 1,000 deep, over the nesting limit of 100; "
        "raise it with --limit nesting=1000 if you mean it"
    )


def test_json_deeper_than_python_reads_even_with_the_limit_raised(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with limits.override(nesting=1_000_000):
        err = error_of(str(path))
    assert str(err) == (
        f"kernel file {str(path)!r} nests brackets too deep to read; give a nested list like "
        "[[1,0,-1],[1,0,-1],[1,0,-1]]"
    )


def test_json_objects_nest_too(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"a":' * 500 + "1" + "}" * 500)
    assert "nests brackets 500 deep, over the nesting limit of 100" in str(error_of(str(path)))


def test_json_five_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text("[[[[[1]]]]]")
    assert str(error_of(str(path))) == (
        f"kernel file {str(path)!r} has more than 4 dimensions; give 2-D (kh×kw), "
        "3-D (C_in×kh×kw) or 4-D (C_out×C_in×kh×kw)"
    )


LONG = "1" * 400
SHORT = f"'{'1' * 59}…{'1' * 59}' (400 characters)"
TOO_LONG = "is too long for a number; write at most 100 characters, e.g. 1.5e-3"


@pytest.mark.parametrize(
    "name,content,where",
    [
        ("k.json", f"[[1,2],\n[3,{LONG}]]", "line 2"),
        ("k.json", f"[[1,{'9' * 5000}]]", "line 1"),  # json alone raises ValueError past 4300
        ("k.csv", f"1,2\n3,{LONG}\n", "row 2 value 2"),
        ("k.txt", f"1 2\n3 0.{LONG}\n", "row 2 value 2"),
    ],
)
def test_numbers_with_hundreds_of_digits_in_files(
    tmp_path: Path, name: str, content: str, where: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    err = error_of(str(path))
    assert type(err) is KernelError and err.exit_code == 1
    message = str(err)
    assert message.startswith(f"kernel file {str(path)!r} {where}: '")
    assert message.endswith(f" characters) {TOO_LONG}")
    assert len(message) < 330


def test_numbers_with_hundreds_of_digits_inline() -> None:
    err = error_of(f"1,{LONG}")
    assert isinstance(err, KernelSpecError) and err.exit_code == 2
    assert str(err) == (
        f"kernel '1,{'1' * 57}…{'1' * 59}' (402 characters) row 1 value 2: {SHORT} {TOO_LONG}"
    )


def test_numbers_with_hundreds_of_digits_as_parameters() -> None:
    err = error_of(f"gaussian:sigma={LONG}")
    assert isinstance(err, KernelSpecError)
    assert str(err) == (
        f"kernel parameter sigma={SHORT} of 'gaussian' is too long for a number; "
        "write at most 100 characters"
    )


def write_npy(path: Path, array: npt.NDArray[Any]) -> bytes:
    np.save(path, array)
    return path.read_bytes()


def test_an_npz_saved_as_npy(tmp_path: Path) -> None:
    path = tmp_path / "k.npy"
    with path.open("wb") as fh:
        np.savez(fh, weights=np.ones((3, 3)))
    err = error_of(str(path))
    assert type(err) is KernelError
    assert str(err) == (
        f"kernel file {str(path)!r} is a .npz archive, not a .npy array; save one of its "
        "arrays with numpy.save"
    )


def test_an_empty_npy_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "k.npy"
    path.write_bytes(b"")
    code, out, err = run(["kernels", path], capsys)
    assert code == 1  # was "Aborted!", exit 130: np.load's EOFError became Click's Abort
    assert err == (
        f"cnncli: error: kernel file {str(path)!r} is empty (0 bytes), not a .npy array; "
        "save the kernel with numpy.save\n"
    )


@pytest.mark.parametrize("cut", [3, 8, 9, 12, 40])
def test_a_truncated_npy_header(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "k.npy"
    whole = write_npy(path, np.ones((3, 3)))
    path.write_bytes(whole[:cut])
    message = str(error_of(str(path)))
    assert re.fullmatch(
        rf"kernel file {re.escape(repr(str(path)))} is not a \.npy array or is truncated "
        r"\(EOF: reading [a-z ]+, expected \d+ bytes got \d+\); save the kernel with numpy\.save",
        message,
    ), message


def test_truncated_npy_data(tmp_path: Path) -> None:
    path = tmp_path / "k.npy"
    whole = write_npy(path, np.ones((3, 3)))
    path.write_bytes(whole[:-8])
    assert str(error_of(str(path))) == (
        f"kernel file {str(path)!r} is truncated: its header promises shape (3, 3) of float64 "
        "(72 bytes) but 64 bytes follow; save the kernel with numpy.save"
    )


def test_garbage_and_garbled_npy_headers(tmp_path: Path) -> None:
    path = tmp_path / "k.npy"
    path.write_bytes(b"hello, this is not numpy at all")
    assert str(error_of(str(path))) == (
        f"kernel file {str(path)!r} is not a .npy array or is truncated (the magic string is "
        "not correct; expected b'\\x93NUMPY', got b'hello,'); save the kernel with numpy.save"
    )
    whole = write_npy(path, np.ones((3, 3)))
    path.write_bytes(whole.replace(b"'shape': (3, 3)", b"'shape': (3, 3"))
    assert str(error_of(str(path))) == (
        f"kernel file {str(path)!r} is not a .npy array (its header cannot be parsed); "
        "save the kernel with numpy.save"
    )
    path.write_bytes(whole.replace(b"'<f8'", b"'<q9'"))
    assert str(error_of(str(path))).startswith(
        f"kernel file {str(path)!r} is not a .npy array or is truncated (descr is not a valid "
        "dtype descriptor: '<q9'"
    )
    path.write_bytes(b"\x93NUMPY\x03\x00" + whole[8:])
    assert str(error_of(str(path))) == (
        f"kernel file {str(path)!r} is a .npy file of format version 3.0, which holds no plain "
        "numbers; save the kernel with numpy.save"
    )


@pytest.mark.parametrize("shape", [(-1, -1), (-2, -3), (3, -3)])
def test_npy_header_with_negative_dimensions(tmp_path: Path, shape: tuple[int, int]) -> None:
    path = tmp_path / "k.npy"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    path.write_bytes(header.getvalue() + bytes(100))
    assert str(error_of(str(path))) == (
        f"kernel file {str(path)!r} is not a .npy array (its header gives shape {shape}); "
        "save the kernel with numpy.save"
    )


class _Tripwire:
    """Unpickling this creates ``marker``: proof that a loader unpickled the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def test_object_arrays_are_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    path = tmp_path / "k.npy"
    array = np.empty((2, 2), dtype=object)
    array[:] = [[_Tripwire(marker), 1], [2, 3]]
    np.save(path, array, allow_pickle=True)
    with pytest.raises(KernelError) as err:
        resolve_kernel(str(path))
    assert str(err.value) == (
        f"kernel file {str(path)!r} holds Python objects (dtype object), which are never "
        "unpickled; give numbers"
    )
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Tripwire(marker)))  # the tripwire itself works
    assert marker.exists()


def test_npy_header_shape_is_checked_before_loading(tmp_path: Path) -> None:
    # A header promising 10¹⁰ float64s (80 GB) and no data: refused from the header alone.
    path = tmp_path / "huge.npy"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (100_000, 100_000)}
    )
    path.write_bytes(header.getvalue())
    err = error_of(str(path))
    assert isinstance(err, LimitError)
    assert str(err) == (
        f"kernel file {str(path)!r} has 10,000,000,000 taps (100,000×100,000), over the "
        "kernel-taps limit of 1,048,576; raise it with --limit kernel-taps=10000000000 if you "
        "mean it"
    )


def test_npy_fortran_order_and_byte_order(tmp_path: Path) -> None:
    path = tmp_path / "k.npy"
    values = np.arange(6, dtype=">f4").reshape(2, 3)
    np.save(path, np.asfortranarray(values))
    assert resolve_kernel(str(path)).matrix.tolist() == values.tolist()


def test_text_kernel_files_are_bounded_by_file_bytes_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "k.txt"
    path.write_text("1 2 3\n" * 50)
    with limits.override(file_bytes=100):
        err = error_of(str(path))
    assert isinstance(err, LimitError)
    assert str(err) == (
        f"kernel file {str(path)!r} has 300 bytes, over the file-bytes limit of 100; "
        "raise it with --limit file-bytes=300 if you mean it"
    )


def test_a_utf8_bom_is_not_a_value(tmp_path: Path) -> None:
    path = tmp_path / "k.csv"
    path.write_bytes("\ufeff1,2\n3,4\n".encode())
    assert resolve_kernel(str(path)).matrix.tolist() == [[1, 2], [3, 4]]


# ------------------------------------------------------------------ named kernels (item 3)


@pytest.mark.parametrize(
    "spec,taps,dims",
    [
        ("gaussian:size=15001", "225,030,001", "15,001×15,001"),
        ("identity:size=100001", "10,000,200,001", "100,001×100,001"),
        ("box:size=9001", "81,018,001", "9,001×9,001"),
        ("log:sigma=1000", "36,012,001", "6,001×6,001"),
        ("motion:length=2001", "4,004,001", "2,001×2,001"),
        ("unsharp:sigma=500", "9,006,001", "3,001×3,001"),
    ],
)
def test_absurd_sizes_are_refused_from_the_parameters(spec: str, taps: str, dims: str) -> None:
    started = time.monotonic()
    err = error_of(spec)
    assert time.monotonic() - started < 5  # refused from the parameters, not after building
    assert isinstance(err, LimitError) and err.exit_code == 1
    number = taps.replace(",", "")
    assert str(err) == (
        f"kernel {spec} has {taps} taps ({dims}), over the kernel-taps limit of 1,048,576; "
        f"raise it with --limit kernel-taps={number} if you mean it"
    )


@pytest.mark.parametrize(
    "spec,taps,dims",
    [
        ("gaussian:sigma=1e9", "3.6e+19", "6,000,000,001×6,000,000,001"),
        ("box:size=1e10", "1e+20", "10,000,000,000×10,000,000,000"),
    ],
)
def test_sizes_beyond_any_limit(spec: str, taps: str, dims: str) -> None:
    err = error_of(spec)
    assert isinstance(err, LimitError)
    assert str(err) == (
        f"kernel {spec} has {taps} taps ({dims}), far over the kernel-taps limit of 1,048,576; "
        "use a smaller kernel"
    )


def test_box_1e9_within_a_raisable_limit() -> None:
    assert str(error_of("box:size=1e9")) == (
        "kernel box:size=1e9 has 1,000,000,000,000,000,000 taps (1,000,000,000×1,000,000,000), "
        "over the kernel-taps limit of 1,048,576; raise it with "
        "--limit kernel-taps=1000000000000000000 if you mean it"
    )


def test_the_limit_can_be_raised() -> None:
    with limits.override(kernel_taps=2001 * 2001):
        assert named("box:size=2001").matrix.shape == (2001, 2001)


def test_cli_kernels_gaussian_15001_is_refused_quickly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    code, out, err = run(["kernels", "gaussian:size=15001"], capsys)
    assert code == 1
    assert err == (
        "cnncli: error: kernel gaussian:size=15001 has 225,030,001 taps (15,001×15,001), over "
        "the kernel-taps limit of 1,048,576; raise it with --limit kernel-taps=225030001 if you "
        "mean it\n"
    )
    assert out == ""
    assert time.monotonic() - started < 5


def test_cli_filter_box_9001_is_refused_quickly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    started = time.monotonic()
    output = tmp_path / "out.png"
    code, out, err = run(
        ["filter", SAMPLES / "camera.png", "-k", "box:size=9001", "-o", output], capsys
    )
    assert code == 1
    assert err == (
        "cnncli: error: kernel box:size=9001 has 81,018,001 taps (9,001×9,001), over the "
        "kernel-taps limit of 1,048,576; raise it with --limit kernel-taps=81018001 if you "
        "mean it\n"
    )
    assert not output.exists()
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "spec", ["gaussian:sigma=1e-300", "log:sigma=1e-300", "unsharp:sigma=1e-9"]
)
def test_tiny_sigma_says_the_smallest_useful_value(spec: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        err = error_of(spec)
    assert isinstance(err, KernelSpecError) and err.exit_code == 2
    value = spec.partition("=")[2]
    assert str(err) == (
        f"kernel {spec}: sigma must be at least 0.1, got {float(value):g}; a narrower Gaussian "
        "is already the identity kernel"
    )


def test_sigma_at_the_floor_builds_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for spec in ("gaussian:sigma=0.1", "log:sigma=0.1", "gaussian:size=99,sigma=0.1"):
            k = named(spec)
            assert np.isfinite(k.matrix).all()
        assert named("gaussian:size=5,sigma=3e38").matrix.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "spec,message",
    [
        ("sharpen:amount=1e39", "kernel parameter amount=1e39 of 'sharpen' is " + RANGE),
        ("emboss:strength=-1e300", "kernel parameter strength=-1e300 of 'emboss' is " + RANGE),
        ("gaussian:size=1e300", "kernel parameter size=1e300 of 'gaussian' is " + RANGE),
        (
            "sharpen:amount=1e38",
            f"kernel sharpen:amount=1e38 has weight 4e+38 at [1, 1], {RANGE}; "
            "use smaller parameters",
        ),
        (
            "emboss:strength=3e38",
            f"kernel emboss:strength=3e38 has weight -6e+38 at [0, 0], {RANGE}; "
            "use smaller parameters",
        ),
        ("motion:angle=inf", "kernel parameter angle=inf of 'motion' must be finite"),
    ],
)
def test_parameters_beyond_float32(spec: str, message: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        err = error_of(spec)
    assert isinstance(err, KernelSpecError) and err.exit_code == 2
    assert str(err) == message


@pytest.mark.parametrize(
    "spec,message",
    [
        ("1,1e39", f"kernel '1,1e39' row 1 value 2 is 1e39, {RANGE}"),
        ("1e300;2", f"kernel '1e300;2' row 1 value 1 is 1e300, {RANGE}"),
        ("0,-1e39", f"kernel '0,-1e39' row 1 value 2 is -1e39, {RANGE}"),
        ("1,1e400", f"kernel '1,1e400' row 1 value 2 is 1e400, {RANGE}"),
        ("1,-inf", "kernel '1,-inf' row 1 value 2 is -inf; kernels need finite numbers"),
        ("1,NaN", "kernel '1,NaN' row 1 value 2 is NaN; kernels need finite numbers"),
    ],
)
def test_inline_values_beyond_float32(spec: str, message: str) -> None:
    err = error_of(spec)
    assert isinstance(err, KernelSpecError)
    assert str(err) == message


def test_float32_max_itself_is_allowed() -> None:
    assert resolve_kernel("3.4028234e38,1").matrix[0, 0] == pytest.approx(3.4028234e38)


@pytest.mark.parametrize(
    "name,content,where",
    [
        ("k.txt", "1 2\n3 1e39\n", "row 2 value 2 is 1e39, "),
        ("k.csv", "-1e300,2\n", "row 1 value 1 is -1e300, "),
        ("k.json", "[[1,2],[3,1e39]]", "at [1][1] is 1e+39, "),
        ("k.json", "[[1,2],[3,-" + "9" * 50 + "]]", "at [1][1] is -1e+50, "),
    ],
)
def test_file_values_beyond_float32(tmp_path: Path, name: str, content: str, where: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    err = error_of(str(path))
    assert type(err) is KernelError
    assert str(err) == f"kernel file {str(path)!r} {where}{RANGE}"


def test_json_overflow_and_constants(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text("[[1,2],[3,1e400]]")
    assert str(error_of(str(path))) == (
        f"kernel file {str(path)!r} at [1][1] overflows to infinity; keep numbers within "
        "the float32 range ±3.4e38 filters compute in"
    )
    for constant in ("NaN", "Infinity", "-Infinity"):
        path.write_text(f"[[1,{constant}]]")
        assert str(error_of(str(path))) == (
            f"kernel file {str(path)!r} at [0][1] is {constant}; kernels need finite numbers"
        )


def test_npy_values_beyond_float32(tmp_path: Path) -> None:
    path = tmp_path / "k.npy"
    np.save(path, np.array([[1.0, 2.0], [-1e39, 4.0]]))
    assert (
        str(error_of(str(path))) == f"kernel file {str(path)!r} at index [1, 0] is -1e+39, {RANGE}"
    )
    np.save(path, np.array([[1.0, np.inf]], dtype=np.float32))
    assert str(error_of(str(path))) == (
        f"kernel file {str(path)!r} at index [0, 1] is inf; kernels need finite numbers"
    )


# ------------------------------------------------------------------ one taps check for all


def test_every_kernel_source_passes_the_same_taps_check(tmp_path: Path) -> None:
    sources: dict[str, str] = {}
    (tmp_path / "k.txt").write_text("1 2 3\n4 5 6\n7 8 9\n")
    (tmp_path / "k.csv").write_text("1,2,3\n4,5,6\n7,8,9\n")
    (tmp_path / "k2.json").write_text(json.dumps(np.ones((3, 3)).tolist()))
    (tmp_path / "k3.json").write_text(json.dumps(np.ones((1, 3, 3)).tolist()))
    (tmp_path / "k4.json").write_text(json.dumps(np.ones((1, 1, 3, 3)).tolist()))
    np.save(tmp_path / "k3.npy", np.ones((1, 3, 3)))
    np.save(tmp_path / "k4.npy", np.ones((1, 1, 3, 3)))
    for name in ("k.txt", "k.csv", "k2.json", "k3.json", "k4.json", "k3.npy", "k4.npy"):
        sources[str(tmp_path / name)] = f"file {str(tmp_path / name)!r}"
    sources["1,2,3;4,5,6;7,8,9"] = "'1,2,3;4,5,6;7,8,9'"
    sources["box"] = "box"
    sources["gaussian:sigma=0.3"] = "gaussian:sigma=0.3"
    for spec, shown in sources.items():
        resolve_kernel(spec)  # 9 taps: fine by default
        with limits.override(kernel_taps=8):
            err = error_of(spec)
        assert isinstance(err, LimitError), spec
        assert re.fullmatch(
            rf"kernel {re.escape(shown)} has 9 taps \((1×)*3×3\), over the kernel-taps limit "
            r"of 8; raise it with --limit kernel-taps=9 if you mean it",
            str(err),
        ), str(err)


def test_inline_rows_are_counted_before_values_are_converted() -> None:
    spec = ";".join(["1"] * 20) + ";e"  # "e" is no number, yet the size is refused first
    with limits.override(kernel_taps=10):
        err = error_of(spec)
    assert str(err).startswith("kernel '1;1;1;1") and "has 21 taps (21×1)" in str(err)


# ------------------------------------------------------------------ fuzzing (item 4)

FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


def resolve_strictly(spec: str) -> None:
    """resolve_kernel under tight limits, with every warning an error: only CnnCliError."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with limits.override(kernel_taps=4096, file_bytes=100_000, nesting=20):
            try:
                k = resolve_kernel(spec)
            except CnnCliError as err:
                message = str(err)
                assert message and "\n" not in message and "\x1b" not in message
                assert len(message) < 1200, message
                return
    for w in k.weights:
        assert w.size <= 4096 and np.all(np.abs(w) <= kmod.F32_MAX)


NUMBERISH = st.sampled_from(
    ["0", "1", "-1", "0.5", "1e39", "-1e39", "1e-300", "nan", "inf", "1e400", "3.4e38", "x",
     "", "1" * 150, ".", "-", "1e", "+.5", "[", "]", "#"]
)  # fmt: skip


@FUZZ
@given(st.text(max_size=300))
@example("\x1b]52;c;aGk=\x07")
@example("~" + "a" * 400)
@example("/" * 5000)
def test_fuzz_random_text_specs(spec: str) -> None:
    resolve_strictly(spec)


@FUZZ
@given(
    st.lists(st.lists(NUMBERISH | st.floats().map(repr), min_size=1, max_size=6), max_size=6),
    st.sampled_from([",", " ", ", ", "\t"]),
    st.sampled_from([";", "\n", " ; "]),
)
def test_fuzz_inline_matrices(rows: list[list[str]], sep: str, row_sep: str) -> None:
    resolve_strictly(row_sep.join(sep.join(r) for r in rows))


PARAM_VALUES = st.one_of(
    NUMBERISH,
    st.floats().map(repr),
    st.integers(-(10**6), 10**12).map(str),
    st.floats(min_value=1e-320, max_value=1e-1).map(repr),
)


@FUZZ
@given(
    st.sampled_from(kmod.NAMES),
    st.lists(
        st.tuples(
            st.sampled_from(["size", "sigma", "amount", "strength", "length", "angle", "k", ""]),
            PARAM_VALUES,
        ),
        max_size=3,
    ),
)
@example("gaussian", [("sigma", "1e-300")])
@example("log", [("sigma", "0.1"), ("size", "4001")])
@example("unsharp", [("amount", "3e38")])
@example("motion", [("length", "63"), ("angle", "1e300")])
def test_fuzz_named_kernels_with_parameters(name: str, params: list[tuple[str, str]]) -> None:
    rest = ",".join(f"{k}={v}" for k, v in params)
    resolve_strictly(f"{name}:{rest}" if params else name)


def _valid_files(tmp_path: Path) -> dict[str, bytes]:
    out = {
        "k.txt": b"# edges\n1 0 -1\n2 0 -2\n1 0 -1\n",
        "k.csv": b"0.25,0.5\n0.125,1e-3\n",
        "k.json": json.dumps([[[1, 0.5], [2, -1]], [[0, 1], [1e3, 2]]]).encode(),
    }
    npy = tmp_path / "seed.npy"
    np.save(npy, np.arange(12, dtype=np.float32).reshape(1, 3, 2, 2))
    out["k.npy"] = npy.read_bytes()
    return out


@FUZZ
@given(
    st.sampled_from(["k.txt", "k.csv", "k.json", "k.npy"]),
    st.lists(
        st.tuples(
            st.integers(0, 200),
            st.sampled_from(["set", "insert", "delete", "truncate"]),
            st.binary(min_size=1, max_size=4)
            | st.sampled_from([b"[", b"]", b"9" * 120, b"\x00", b"\xff", b"e39", b"PK"]),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_fuzz_byte_mutated_kernel_files(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    edits: list[tuple[int, str, bytes]],
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    data = bytearray(_valid_files(folder)[name])
    for pos, op, chunk in edits:
        at = pos % (len(data) + 1)
        if op == "set":
            data[at : at + len(chunk)] = chunk
        elif op == "insert":
            data[at:at] = chunk
        elif op == "delete":
            del data[at : at + len(chunk)]
        else:
            del data[at:]
    path = folder / name
    path.write_bytes(bytes(data))
    resolve_strictly(str(path))


@FUZZ
@given(
    st.sampled_from(
        ["<f8", ">f4", "<i2", "|u1", "|b1", "<f2", "<c16", "|O", "<U3", "|V8", "<M8[s]"]
    ),
    st.lists(st.integers(-(2**40), 2**40) | st.integers(-3, 5), max_size=5).map(tuple),
    st.booleans(),
    st.integers(0, 400),
)
@example("<f8", (2, 2), False, 31)
@example("<f8", (-1, -1), False, 8)
@example("<f8", (2**40, 2**40), True, 0)
def test_fuzz_npy_headers(
    tmp_path_factory: pytest.TempPathFactory,
    descr: str,
    shape: tuple[int, ...],
    fortran: bool,
    data_bytes: int,
) -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": descr, "fortran_order": fortran, "shape": shape}
    )
    path = tmp_path_factory.mktemp("npy") / "k.npy"
    path.write_bytes(header.getvalue() + bytes(range(256)) * 2 * (data_bytes // 512 + 1))
    with path.open("r+b") as fh:
        fh.truncate(len(header.getvalue()) + data_bytes)
    resolve_strictly(str(path))


def test_valid_seed_files_load(tmp_path: Path) -> None:
    for name, data in _valid_files(tmp_path).items():
        (tmp_path / name).write_bytes(data)
        assert resolve_kernel(str(tmp_path / name)).matrix.size in (4, 8, 9, 12)


def test_cli_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for spec in ("1,1e39", "gaussian:sigma=1e-300", "q" * 3000, "/x/" + "y" * 300 + ".npy"):
        code, out, err = run(["kernels", spec], capsys)
        assert code in (1, 2)
        assert err.count("\n") == 1 and err.startswith("cnncli: error: ")
        assert "internal error" not in err and "Traceback" not in err
        assert out == ""
        assert isinstance(error_of(spec), UsageError) == (code == 2)
