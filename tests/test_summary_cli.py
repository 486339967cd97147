"""``cnncli summary`` end to end: table, options, the four renderers, errors and exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import run  # tests/clirun.py

from cnncli.model import zoo_names

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "samples" / "models" / "example.yaml")


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # Deterministic Rich output: fixed width, no colour.
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")


def _num(text: str) -> int:
    return int(text.replace(",", ""))


def test_table_resnet50(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["summary", "resnet50"], capsys)
    assert code == 0, err
    assert err == ""
    assert "Trainable params:      25,557,032" in out
    assert "Non-trainable params:  53,120" in out
    assert "Total params:          25,610,152" in out
    assert "MACs:                  4,089,184,256 = 4.089 GMACs" in out
    assert "FLOPs:                 8,178,368,512 = 8.178 GFLOPs" in out
    assert "Parameter memory:      102.44 MB = 97.69 MiB" in out
    assert "bias excluded" in out  # the convention is printed under the table
    assert "layer1.0" in out and "downsample_conv" in out


def _table_rows(out: str) -> list[list[str]]:
    rows = []
    for line in out.splitlines():
        if line.startswith("│"):
            rows.append([c.strip() for c in line.strip("│").split("│")])
    return rows


@pytest.mark.parametrize("depth", [None, 1, 2, 3])
def test_table_rows_add_up_to_totals(depth: int | None, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["summary", "resnet50"] + ([] if depth is None else ["--depth", str(depth)])
    code, out, _ = run(args, capsys)
    assert code == 0
    rows = _table_rows(out)
    params = sum(_num(r[3]) for r in rows if r[3])
    macs = sum(_num(r[4]) for r in rows if r[4])
    assert params == 25_610_152
    assert macs == 4_089_184_256
    if depth == 1:
        assert len(rows) == 11  # stem 4 + 4 stages + pool, flatten, fc


def test_count_bias(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["summary", "lenet5", "--count-bias", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    # LeNet: 416,520 MACs plus one addition per bias per output position.
    assert data["totals"]["macs"] == 416_520 + 6 * 28 * 28 + 16 * 10 * 10 + 120 + 84 + 10
    assert data["conventions"]["count_bias"] is True


def test_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["summary", "mnist-convnet", "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert [
        (layer["name"], layer["output_shape"], layer["params"]) for layer in data["layers"]
    ] == [
        ("conv2d", [26, 26, 32], 320),
        ("max_pooling2d", [13, 13, 32], 0),
        ("conv2d_1", [11, 11, 64], 18496),
        ("max_pooling2d_1", [5, 5, 64], 0),
        ("flatten", [1600], 0),
        ("dropout", [1600], 0),
        ("dense", [10], 16010),
    ]
    t = data["totals"]
    assert (t["params"], t["trainable_params"], t["non_trainable_params"]) == (34826, 34826, 0)
    assert t["flops"] == 2 * t["macs"] == 2 * sum(layer["macs"] for layer in data["layers"])
    assert data["layout"] == "channels_last"


def test_json_blocks(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["summary", "resnet18", "--json"], capsys)
    data = json.loads(out)
    layer2 = next(b for b in data["blocks"] if b["name"] == "layer2")
    assert layer2["repeat"] == 2 and layer2["output_shape"] == [128, 28, 28]
    inside = [x for x in data["layers"] if x["name"].startswith("layer2.")]
    assert layer2["params"] == sum(x["params"] for x in inside)


def test_csv(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["summary", "googlenet", "--csv"], capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sum(int(r["trainable_params"]) for r in rows) == 6_624_904
    assert f"{sum(int(r['macs']) for r in rows) / 1e9:.3f}" == "1.498"
    cat = next(r for r in rows if r["name"] == "inception3a.concat")
    assert cat["output_shape"] == "256x28x28"


def test_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["summary", "lenet5", "--markdown", "--columns", "kernel"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[2] == "| Layer | Type | Output shape | Kernel | Params | MACs |"
    assert "| conv1 | conv2d | (6, 28, 28) | 5×5 | 156 | 117,600 |" in lines
    assert "- Total params: 61,706" in lines


def test_columns_and_chart(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["summary", EXAMPLE, "--columns", "all", "--chart"], capsys)
    assert code == 0
    header = next(line for line in out.splitlines() if "Layer" in line)
    for title in (
        "Input shape",
        "Kernel",
        "Stride",
        "RF /jump",
        "Activation memory",
        "Connected to",
        "MACs share",
    ):
        assert title in header
    mixed = next(r for r in _table_rows(out) if r[0] == "mixed")
    assert mixed[-2].startswith("branch_1x1, branch_3x3")
    assert "█" in out


def test_svg_written_atomically_and_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "t.svg"
    code, out, _ = run(["summary", "lenet5", "--svg", str(target)], capsys)
    assert code == 0
    assert target.read_text().startswith("<svg")
    assert "conv1" in out
    code, out, err = run(["summary", "lenet5", "--svg", str(target)], capsys)
    # outputs.check_output's wording (exit 1, as every refused output of cnncli).
    assert code == 1
    assert err == f"cnncli: error: {target}: already exists; use --force to overwrite it\n"
    assert out == ""
    code, _, _ = run(["summary", "lenet5", "--svg", str(target), "--force"], capsys)
    assert code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["t.svg"]  # no temp file left behind


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--json", "--csv"], 2, "--json and --csv cannot be combined; pick one output format"),
        (
            ["--columns", "kernal"],
            2,
            "unknown column 'kernal' in --columns; did you mean kernel? "
            "(columns: kernel, stride, input, rf, memory, connected, all)",
        ),
        (["--depth", "0"], 2, None),
    ],
)
def test_usage_errors(
    args: list[str], code: int, message: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    got, out, err = run(["summary", "lenet5", *args], capsys)
    assert got == code
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("cnncli: error: ")
    if message:
        assert err == f"cnncli: error: {message}\n"


def test_model_error_is_one_line_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.yaml"
    model.write_text("input: [3, 8, 8]\nlayers:\n  - {type: conv2d, filters: 4, kernel: 9}\n")
    code, out, err = run(["summary", str(model)], capsys)
    assert code == 1
    assert out == ""
    assert err == (
        f"cnncli: error: {model}:3:5: layer 'conv2d' (conv2d): kernel 9 is larger than the padded "
        "input 8 on axis H (input 8 + padding 0+0); use padding of at least 1 in total, or a smaller kernel\n"
    )
    assert "Traceback" not in err


def test_unknown_zoo_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["summary", "vgg10"], capsys)
    assert code == 1 and out == ""
    assert err.startswith("cnncli: error: unknown model 'vgg10': no such file and not in the zoo")
    assert err.endswith(f"(cnncli summary --list shows the {len(zoo_names())} zoo models)\n")
    assert {"alexnet", "resnet50", "vgg16"} <= set(zoo_names())


@pytest.mark.oracle
def test_verify(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    code, out, err = run(["summary", EXAMPLE, "--verify"], capsys)
    assert code == 0, err
    assert out.rstrip().splitlines()[-1].startswith("verified with PyTorch 2.")
    assert "all 48 layers agree on output shape and parameters" in out
    code, out, err = run(["summary", "lenet5", "--verify", "--json"], capsys)
    assert json.loads(out)["totals"]["params"] == 61_706
    assert err.startswith("verified with PyTorch")


@pytest.mark.oracle
def test_verify_a_linear_activation_layer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Keras's Activation("linear") read from a file is a layer of its own: nn.Identity.
    pytest.importorskip("torch")
    path = tmp_path / "m.yaml"
    path.write_text(
        "input: [3, 8, 8]\nlayers:\n  - {type: conv2d, filters: 4, kernel: 3}\n"
        "  - {type: activation, function: linear}\n"
    )
    code, out, err = run(["summary", str(path), "--verify"], capsys)
    assert (code, err) == (0, "")
    assert "all 2 layers agree" in out.rstrip().splitlines()[-1]


def test_verify_without_torch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    code, out, err = run(["summary", "lenet5", "--verify"], capsys)
    assert code == 1 and out == ""
    assert err == (
        "cnncli: error: --verify needs PyTorch, which is not installed; install it "
        "(pip install torch) or drop --verify\n"
    )


@pytest.mark.oracle
def test_verify_reports_a_disagreement(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    import cnncli.model.layers as layers

    # Break the batchnorm rule: --verify must catch it and name the layer and both counts.
    real = layers.LAYER_TYPES["batchnorm"]
    broken = layers.LayerType(
        "batchnorm", lambda o, i, n, c: layers.LayerOut(i[0], trainable=1), real.options
    )
    monkeypatch.setitem(layers.LAYER_TYPES, "batchnorm", broken)
    code, out, err = run(["summary", "resnet18", "--verify"], capsys)
    assert code == 1 and out == ""
    assert (
        "--verify: layer 'bn1' (batchnorm): cnncli gives output (64, 112, 112) and 1 params, PyTorch"
        in err
    )
    assert "gives (64, 112, 112) and 256 (19 more layers differ)" in err


def test_no_numpy_numba_pil_import() -> None:
    code = (
        "import sys\n"
        "from cnncli.cli import main\n"
        "try:\n    main(['summary', 'resnet50', '--json'])\nexcept SystemExit:\n    pass\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'numba', 'PIL', 'torch'))\n"
        "print(bad, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip() == "[]"
    assert json.loads(done.stdout)["totals"]["trainable_params"] == 25_557_032


def test_installed_entry_point_from_another_directory(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "cnncli"
    if not exe.exists():
        pytest.skip("the cnncli console script is not installed in this environment")
    env = dict(os.environ, COLUMNS="120")
    done = subprocess.run(
        [str(exe), "summary", "mobilenet_v2", "--csv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert sum(int(r["trainable_params"]) for r in rows) == 3_504_872


def test_markdown_depth_folds_blocks_and_adds_up(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["summary", "resnet50", "--markdown", "--depth", "1"], capsys)
    assert code == 0
    rows = [
        line.split(" | ")
        for line in out.splitlines()
        if line.startswith("| ") and "---" not in line
    ][1:]
    assert "| **layer2** | bottleneck ×4 | (512, 28, 28) | 1,226,752 | 1,027,604,480 |" in out
    assert sum(_num(r[3]) for r in rows) == 25_610_152
    assert sum(_num(r[4].rstrip(" |")) for r in rows) == 4_089_184_256


# ------------------------------------------------------------------ golden text
# tests/golden/summary/resnet50.txt is the whole table at 120 columns without colour. After an
# intended change of the table, regenerate it and read the diff:
#     CNNCLI_REGEN_GOLDEN=1 .venv/bin/pytest tests/test_summary_cli.py -k golden
GOLDEN = ROOT / "tests" / "golden" / "summary"


def _golden_resnet50(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.setenv("COLUMNS", "120")
    code, out, err = run(["summary", "resnet50"], capsys)
    assert code == 0, err
    assert err == ""
    return out


def test_golden_resnet50(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _golden_resnet50(monkeypatch, capsys)
    golden = GOLDEN / "resnet50.txt"
    if os.environ.get("CNNCLI_REGEN_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        golden.write_text(out, encoding="utf-8")
    assert out == golden.read_text(encoding="utf-8")
    # Nothing that changes with the installed libraries or the machine (no version numbers).
    assert not re.search(r"\d+\.\d+\.\d+", out)
    assert "\x1b" not in out


def test_golden_rows_add_up_to_the_printed_totals(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # torchinfo's assert_sum_column_totals_match: read back what was printed, not the object.
    out = _golden_resnet50(monkeypatch, capsys)
    params = macs = layers = 0
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) != 5 or cells[1].startswith("["):
            continue  # borders, headings and block rows (their cells are empty)
        params += _num(cells[3])
        macs += _num(cells[4])
        layers += 1
    totals: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if value:  # the first "MACs:" is the total, a later one starts the footnote
            totals.setdefault(key.strip(), value.split("=")[0].strip())
    assert layers > 100
    assert params == _num(totals["Total params"]) == 25_610_152
    assert _num(totals["Trainable params"]) + _num(totals["Non-trainable params"]) == params
    assert macs == _num(totals["MACs"]) == 4_089_184_256
    assert _num(totals["FLOPs"]) == 2 * macs
