"""``cnncli summary model.onnx`` and the ``opaque`` layers every reader writes for operators cnncli
does not know.

The opaque tests use YAML models (the layer type belongs to the format, not to one reader).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import run  # tests/clirun.py


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # Deterministic Rich output: fixed width, no colour.
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")


# ------------------------------------------------------------------ opaque layers (any reader)

OPAQUE_MODEL = """\
input: [3, 32, 32]
layers:
  - {type: conv2d, name: stem, filters: 8, kernel: 3, padding: 1}
  - {type: opaque, name: nms, op: NonMaxSuppression, shape: [0, 3]}
  - {type: opaque, name: roi, op: RoiAlign, shape: [8, 7, 7], params: 10, input: [stem, nms]}
  - {type: opaque, name: nms2, op: NonMaxSuppression, shape: [0, 3]}
"""
#: stem: 3·3·3·8 + 8 weights; 8·32·32 outputs × 27 taps.
STEM_PARAMS, STEM_MACS = 224, 8 * 32 * 32 * 27


def _write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _rows(out: str) -> dict[str, list[str]]:
    """Table rows by layer name."""
    rows = {}
    for line in out.splitlines():
        if line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            rows[cells[0]] = cells
    return rows


def test_opaque_rows_say_not_counted_and_totals_say_incomplete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["summary", _write(tmp_path, OPAQUE_MODEL)], capsys)
    assert code == 0, err
    rows = _rows(out)
    assert rows["nms"][1:] == ["opaque: NonMaxSuppression", "(?, 3)", "0", "not counted"]
    assert rows["roi"][1:] == ["opaque: RoiAlign", "(8, 7, 7)", "10", "not counted"]
    assert rows["stem"][4] == f"{STEM_MACS:,}"
    assert f"Total params:          {STEM_PARAMS + 10:,}" in out
    assert f"MACs:                  {STEM_MACS:,} = 0.221 MMACs + not counted (incomplete)" in out
    assert (
        "Not counted:           NonMaxSuppression ×2, RoiAlign ×1: operators cnncli does not "
        "know, their MACs are missing from the totals"
    ) in out


def test_opaque_json_null_not_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["summary", _write(tmp_path, OPAQUE_MODEL), "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["totals"]["not_counted"] == {"NonMaxSuppression": 2, "RoiAlign": 1}
    assert data["totals"]["macs"] == STEM_MACS
    assert data["totals"]["params"] == STEM_PARAMS + 10
    layers = {layer["name"]: layer for layer in data["layers"]}
    assert layers["nms"]["macs"] is None and layers["nms"]["flops"] is None
    assert layers["nms"]["op"] == "NonMaxSuppression"
    assert layers["nms"]["output_shape"] == [None, 3]
    assert layers["roi"]["inputs"] == ["stem", "nms"]
    assert layers["stem"]["op"] is None and layers["stem"]["macs"] == STEM_MACS
    assert data["outputs"] == {"nms2": [None, 3]}


def test_complete_model_has_empty_not_counted(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["summary", "lenet5", "--json", "--strict"], capsys)
    assert code == 0
    assert json.loads(out)["totals"]["not_counted"] == {}


def test_strict_refuses_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, OPAQUE_MODEL)
    code, out, err = run(["summary", path, "--strict"], capsys)
    assert code == 1
    assert out == ""
    assert err == (
        f"cnncli: error: {path}: the MACs of 3 layers cannot be counted, operators cnncli does "
        "not know: NonMaxSuppression ×2, RoiAlign ×1\n"
    )


def test_opaque_csv_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, OPAQUE_MODEL)
    code, out, _ = run(["summary", path, "--csv"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[2].startswith("nms,opaque: NonMaxSuppression,,?x3,0,0,0,,")  # macs empty, not 0
    code, out, _ = run(["summary", path, "--markdown"], capsys)
    assert code == 0
    assert "| nms | opaque: NonMaxSuppression | (?, 3) | 0 | not counted |" in out
    assert "- Not counted: NonMaxSuppression ×2, RoiAlign ×1" in out


def test_block_sums_say_what_they_miss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = """\
input: [3, 32, 32]
blocks:
  head:
    layers:
      - {type: conv2d, filters: 8, kernel: 3, padding: 1}
      - {type: opaque, op: TopK, shape: [8, 5]}
layers:
  - {block: head, name: h}
"""
    code, out, err = run(["summary", _write(tmp_path, text), "--depth", "1"], capsys)
    assert code == 0, err
    assert _rows(out)["h"][1:] == ["[head]", "(8, 5)", "224", f"{STEM_MACS:,} (+1 not counted)"]


def test_counted_layer_cannot_read_unknown_sizes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = OPAQUE_MODEL + "  - {type: conv2d, filters: 4, kernel: 1, input: nms}\n"
    code, out, err = run(["summary", _write(tmp_path, text)], capsys)
    assert code == 1 and out == ""
    assert err.startswith("cnncli: error: ")
    assert (
        "layer 'conv2d' (conv2d): reads 'nms', whose sizes are known only when the model runs"
        in err
    )
    assert "make it opaque too" in err


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("{type: opaque, shape: [3]}", "opaque needs the option 'op'"),
        ("{type: opaque, op: X}", "opaque needs the option 'shape'"),
        ("{type: opaque, op: X, shape: [-1, 3]}", "shape must be a list of 1 to 5 sizes"),
        ("{type: opaque, op: X, shape: [3], params: -2}", "params must be a whole number ≥ 0"),
        ("{type: opaque, op: 7, shape: [3]}", "op must be the operator's name"),
    ],
)
def test_opaque_options_checked(
    layer: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = f"input: [3, 8, 8]\nlayers:\n  - {layer}\n"
    code, out, err = run(["summary", _write(tmp_path, text)], capsys)
    assert code == 1 and out == ""
    assert message in err and err.count("\n") == 1
