"""``cnncli shape`` end to end: exit code first, then output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from clirun import run  # tests/clirun.py


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")


def as_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    code, out, err = run([*args, "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def test_panel_shows_shape_padding_and_cost(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        ["shape", "224", "224", "-k", "7", "-s", "2", "-p", "3", "-i", "3", "-o", "64"], capsys
    )
    assert code == 0, err
    assert "64 × 112 × 112" in out
    assert "H 3 before + 3 after, W 3 before + 3 after" in out
    assert "9,472 = 9,408 weights + 64 biases" in out
    assert "118,013,952" in out
    assert "FLOPs = 2 × MACs" in out
    assert err == ""


def test_sizes_as_axb(capsys: pytest.CaptureFixture[str]) -> None:
    assert as_json(["shape", "224x224", "-k", "7", "-s", "2", "-p", "3"], capsys)[
        "output_shape"
    ] == [112, 112]


def test_json_fields(capsys: pytest.CaptureFixture[str]) -> None:
    data = as_json(["shape", "100", "100", "-k", "3", "-p", "1", "-i", "256", "--no-bias"], capsys)
    assert data["output_shape"] == [100, 100]
    assert data["padding"] == [[1, 1], [1, 1]]
    assert data["params"] == 589_824
    assert data["macs"] == 5_898_240_000
    assert data["flops"] == 2 * 5_898_240_000
    assert data["output_tensor_shape"] == [256, 100, 100]


def test_per_axis_values_and_asymmetric_padding(capsys: pytest.CaptureFixture[str]) -> None:
    data = as_json(["shape", "10", "20", "-k", "5,3", "-s", "1,2", "-p", "0:1,2:2"], capsys)
    assert data["output_shape"] == [7, 11]
    assert data["padding"] == [[0, 1], [2, 2]]


def test_ignored_column_warning(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["shape", "6", "7", "-k", "3", "-s", "2"], capsys)
    assert code == 0
    assert "the last 1 row of the input is ignored on axis H" in out


def test_explain_is_the_textbook_formula(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["shape", "6x6", "-k", "3", "--explain"], capsys)
    assert code == 0
    assert "⌊(6 − 3) / 1⌋ + 1 = ⌊3/1⌋ + 1 = 3 + 1 = 4" in out


def test_ceil_mode_explain_shows_the_dropped_window(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        [
            "shape",
            "5",
            "-k",
            "2",
            "-s",
            "2",
            "-p",
            "1",
            "--op",
            "maxpool",
            "--ceil-mode",
            "--explain",
        ],
        capsys,
    )
    assert code == 0
    assert "outside the input: dropped → 3" in out


def test_draw(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["shape", "5", "5", "-k", "3", "-s", "2", "-p", "1", "--draw"], capsys)
    assert code == 0
    assert "output 3 × 3" in out
    # First window covers the padded corner: rows 0-2, columns 0-2; the second starts at column 2.
    first_row = next(line for line in out.splitlines() if line.startswith("1 1 X 2 2"))
    assert first_row.split()[:7] == ["1", "1", "X", "2", "2", "·", "·"]


def test_draw_refuses_big_grids_politely(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["shape", "224", "224", "-k", "3", "--draw"], capsys)
    assert code == 0
    assert "--draw draws padded inputs up to 32 × 32" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["shape", "32", "32", "-k", "5", "--solve", "padding", "--target", "32"],
            {"padding": [[2, 2], [2, 2]], "symmetric": True},
        ),
        (
            ["shape", "7", "-k", "4", "--solve", "padding", "-t", "7"],
            {"padding": [[1, 2]], "symmetric": False},
        ),
        (
            ["shape", "7", "-k", "3", "-s", "2", "--solve", "input", "-t", "4"],
            {"input_range": [[9, 10]]},
        ),
        (
            [
                "shape",
                "4",
                "-k",
                "3",
                "-s",
                "2",
                "-p",
                "1",
                "--op",
                "convtranspose",
                "--solve",
                "output-padding",
                "-t",
                "8",
            ],
            {"output_padding": [1]},
        ),
    ],
)
def test_solve(
    args: list[str], expected: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    data = as_json(args, capsys)
    for key, value in expected.items():
        assert data[key] == value


def test_solve_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["shape", "7", "-k", "4", "--solve", "padding", "-t", "7"], capsys)
    assert code == 0
    assert "no symmetric padding gives it; asymmetric: --padding 1:2" in out


# ----- bad input: one line, the value, the fix, the right exit code -----


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["shape", "0", "-k", "3"],
            2,
            "input size 0 on axis L is not allowed; use a positive whole number",
        ),
        (["shape", "-5", "-k", "3"], 2, "No such option: -5"),
        (["shape", "7", "-k", "0"], 2, "kernel 0 is not allowed; use a positive whole number"),
        (
            ["shape", "7", "-k", "3", "-s", "0"],
            2,
            "stride 0 is not allowed; use a positive whole number",
        ),
        (["shape", "7", "-k", "3", "-d", "0"], 2, "dilation 0 is not allowed"),
        (["shape", "7", "-k", "2.5"], 2, "kernel '2.5' is not a whole number"),
        (["shape", "seven", "-k", "3"], 2, "input size 'seven' is not a whole number"),
        (
            ["shape", "7", "7", "-k", "3,3,3"],
            2,
            "kernel has 3 values but the input has 2 spatial axes (H W); give one value or 2",
        ),
        (["shape", "7", "-k", "3", "-p", "sideways"], 2, "unknown padding 'sideways'"),
        (["shape", "7", "-k", "3", "-p", "1;2"], 2, "padding '1;2' is not understood"),
        (
            ["shape", "99999999999", "-k", "3"],
            2,
            "input size 99999999999 on axis L is larger than 2147483647",
        ),
        (
            ["shape", "7", "-k", "3", "--output-padding", "1"],
            2,
            "--output-padding applies only to --op convtranspose",
        ),
        (["shape", "7", "-k", "3", "--ceil-mode"], 2, "--ceil-mode applies only to pooling"),
        (["shape", "7", "-k", "3", "--op", "pool"], 2, "Invalid value for '--op'"),
        (["shape", "7", "-k", "3", "--solve", "padding"], 2, "--solve needs --target N"),
        (["shape", "7", "-k", "3", "-o", "8"], 2, "--out-channels and --groups need --in-channels"),
        (
            ["shape", "7", "-k", "3", "-i", "6", "-o", "8", "-g", "4"],
            2,
            "in channels 6 must be divisible by groups 4",
        ),
        (["shape", "1", "2", "3", "4", "-k", "3"], 2, "give 1, 2 or 3 spatial sizes"),
        (
            ["shape", "7", "-k", "9"],
            1,
            "kernel 9 is larger than the padded input 7 on axis L (input 7 + padding 0+0); use padding of at least 2 in total",
        ),
        (
            ["shape", "7", "-k", "3", "-s", "2", "-p", "same"],
            1,
            "PyTorch refuses padding='same' with stride 2",
        ),
        (
            ["shape", "7", "-k", "3", "-s", "2", "-d", "2", "--framework", "keras"],
            1,
            "Keras refuses stride > 1 together with dilation > 1",
        ),
        (
            ["shape", "7", "-k", "3", "-p", "2", "--op", "maxpool"],
            1,
            "PyTorch requires pooling padding at most half the kernel size on axis L (pad 2, kernel 3); use --padding 1 or less",
        ),
        (
            ["shape", "7", "7", "-k", "3", "-p", "causal", "-f", "keras"],
            1,
            "causal padding exists only for 1-D inputs",
        ),
    ],
)
def test_bad_input(
    args: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    got, out, err = run(args, capsys)
    assert got == code
    assert out == ""
    assert err.startswith("cnncli: error: ")
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CNNCLI_DEBUG", None)
    return env


def test_shape_imports_no_numpy_numba_or_pil() -> None:
    code = (
        "import sys\n"
        "from cnncli.cli import main\n"
        "try:\n    main(['shape', '224', '224', '-k', '7', '-s', '2', '-p', '3', '-i', '3'])\n"
        "except SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('numpy', 'numba', 'PIL', 'llvmlite') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_subprocess_env(),
        check=True,
    )
    assert "HEAVY []" in result.stdout


def test_python_dash_m_and_the_entry_point_run() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cnncli",
            "shape",
            "7",
            "-k",
            "4",
            "-s",
            "2",
            "-p",
            "same",
            "-f",
            "tf",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=_subprocess_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output_shape"] == [4]
    bad = subprocess.run(
        [sys.executable, "-m", "cnncli", "shape", "7", "-k", "9"],
        capture_output=True,
        text=True,
        env=_subprocess_env(),
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert bad.stderr.count("\n") == 1


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["shape", "--help"], capsys)
    assert code == 0
    assert "cnncli shape 224 224 -k 7 -s 2 -p 3" in out
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    assert "Examples:" in out


def test_solve_padding_for_transposed_adds_output_padding(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = [
        "shape",
        "4",
        "-k",
        "4",
        "-s",
        "2",
        "--op",
        "convtranspose",
        "--solve",
        "padding",
        "-t",
        "9",
    ]
    data = as_json(args, capsys)
    assert (data["padding"], data["output_padding"], data["output_shape"]) == ([[1, 1]], [1], [9])
