"""``cnncli summary MODEL --weights FILE``: the model's tensors against PyTorch's own state_dict,
torchvision's checkpoints (safetensors and torch.save) against the zoo, wrong checkpoints named
by layer and shapes, and bad files refused in one line."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from clirun import run  # tests/clirun.py

from cnncli.errors import ModelError
from cnncli.model import summarize, summarize_text, zoo_names
from cnncli.model.weights import check_weights, model_tensors, read_checkpoint

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

#: Zoo models that are torchvision models (the rest are Keras's or the course's).
TORCHVISION = [n for n in zoo_names() if not n.startswith(("keras-", "mnist", "lenet"))]


def write_header_only(path: Path, shapes: dict[str, tuple[int, ...]], dtype: str = "F32") -> None:
    """A valid safetensors file of zeros without writing them: the header, then a sparse hole
    as long as the data (a 600 MB RegNet costs nothing on disk)."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for key, shape in shapes.items():
        size = 4
        for d in shape:
            size *= d
        header[key] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header).encode()
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        fh.truncate(8 + len(raw) + offset)


def state_shapes(state: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(int(d) for d in v.shape) for k, v in state.items()}


# -- the model's tensors are PyTorch's --------------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("name", zoo_names())
def test_model_tensors_are_the_state_dict_of_its_build(name: str, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    import importlib.util

    from cnncli.render.convert import pytorch_source

    summary = summarize(name)
    source = pytorch_source(summary, name)
    path = tmp_path / "net.py"
    path.write_text(source.text)
    spec = importlib.util.spec_from_file_location("net", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with torch.device("meta"):
        net = getattr(module, source.class_name)()
    real = [
        (k, tuple(v.shape))
        for k, v in net.state_dict().items()
        if not k.endswith("num_batches_tracked")
    ]
    ours = [
        (f"{source.attributes[m.layer]}{m.path[len(m.layer) :]}.{tensor}", shape)
        for m in model_tensors(summary)
        for tensor, shape in m.tensors
    ]
    assert ours == real
    # And the build's checkpoint matches the model, whatever its order.
    write_header_only(tmp_path / "net.safetensors", state_shapes(net.state_dict()))
    assert "matches the model" in check_weights(summary, tmp_path / "net.safetensors")


# -- torchvision's checkpoints against the zoo -------------------------------------------------


def _torchvision_state(name: str) -> dict[str, Any]:
    import tv_oracle  # tests/tv_oracle.py

    tvm = tv_oracle.torchvision_models()
    import torch

    with tv_oracle._weights_on_meta(torch):
        net = tvm.get_model(name, weights=None, **tv_oracle.BUILD_ARGS.get(name, {}))
    return dict(net.state_dict())


@pytest.mark.oracle
@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_checkpoints_fit_the_zoo(name: str, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    state = _torchvision_state(name)
    write_header_only(tmp_path / "w.safetensors", state_shapes(state))
    torch.save(state, tmp_path / "w.pt")  # meta tensors: the shapes, no data
    summary = summarize(name)
    numbers = sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked"))
    for path, kind in (
        (tmp_path / "w.safetensors", "safetensors"),
        (tmp_path / "w.pt", "PyTorch state_dict"),
    ):
        line = check_weights(summary, path)
        assert line.startswith(f"weights: {path} ({kind}) matches the model: ")
        assert f"({numbers:,} numbers)" in line
        assert numbers == summary.totals.params


@pytest.mark.oracle
def test_real_files_of_a_small_model(tmp_path: Path) -> None:
    """Files written by the safetensors library and torch.save from a model on the CPU."""
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    state = _torchvision_state("squeezenet1_1")
    real = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in state.items()}
    safetensors_torch.save_file(real, tmp_path / "s.safetensors")
    torch.save(real, tmp_path / "s.pt")
    torch.save(real, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    torch.save({"epoch": 3, "model": real, "optimizer": {}}, tmp_path / "training.pt")
    summary = summarize("squeezenet1_1")
    for name in ("s.safetensors", "s.pt", "legacy.pt"):
        assert "matches the model" in check_weights(summary, tmp_path / name)
    line = check_weights(summary, tmp_path / "training.pt")
    assert line.endswith("; the weights are the checkpoint's 'model' entry")
    # Our reader and the library agree on every tensor.
    from safetensors import safe_open

    ours = {
        f"{m.path}.{t}": s
        for m in read_checkpoint(tmp_path / "s.safetensors").modules
        for t, s in m.tensors
    }
    with safe_open(tmp_path / "s.safetensors", "pt") as fh:
        theirs = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    assert ours == {k: v for k, v in theirs.items() if not k.endswith("num_batches_tracked")}


def test_header_only_writer_makes_files_the_library_reads(tmp_path: Path) -> None:
    safe_open = pytest.importorskip("safetensors").safe_open
    write_header_only(tmp_path / "h.safetensors", {"a.weight": (3, 2), "a.bias": (3,)})
    with safe_open(tmp_path / "h.safetensors", "numpy") as fh:
        assert sorted(fh.keys()) == ["a.bias", "a.weight"]
        assert fh.get_tensor("a.weight").shape == (3, 2)


def test_the_data_is_never_read(tmp_path: Path) -> None:
    # 8 GB of declared data in a sparse file: reading the header is instant and allocates nothing.
    write_header_only(tmp_path / "big.safetensors", {"w.weight": (2**31,)})
    checkpoint = read_checkpoint(tmp_path / "big.safetensors")
    assert checkpoint.modules[0].tensors == (("weight", (2**31,)),)
    assert checkpoint.numbers == 2**31


# -- wrong checkpoints ------------------------------------------------------------------------

SMALL = """
input: [3, 32, 32]
layers:
  - {type: conv2d, name: conv1, filters: 8, kernel: 3, bias: false}
  - {type: batchnorm, name: bn1}
  - {type: relu}
  - {type: global_avgpool}
  - {type: dense, name: fc, units: 10}
"""
SHAPES = {
    "conv1.weight": (8, 3, 3, 3),
    "bn1.weight": (8,),
    "bn1.bias": (8,),
    "bn1.running_mean": (8,),
    "bn1.running_var": (8,),
    "bn1.num_batches_tracked": (),
    "fc.weight": (10, 8),
    "fc.bias": (10,),
}


def _check(tmp_path: Path, shapes: dict[str, tuple[int, ...]], model: str = SMALL) -> str:
    write_header_only(tmp_path / "w.safetensors", shapes)
    return check_weights(summarize_text(model, "small.yaml"), tmp_path / "w.safetensors")


def test_matching_small_model(tmp_path: Path) -> None:
    line = _check(tmp_path, SHAPES)
    assert line == (
        f"weights: {tmp_path / 'w.safetensors'} (safetensors) matches the model: its 7 tensors "
        "(338 numbers) have the shapes of the model's 3 layers with parameters, layer by layer"
    )
    assert summarize_text(SMALL, "small.yaml").totals.params == 338


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"fc.weight": (1000, 8), "fc.bias": (1000,)},
            "layer 'fc' (dense) has weight (10, 8), bias (10); the checkpoint's 'fc' has weight "
            "(1000, 8), bias (1000)",
        ),
        (
            {"conv1.weight": (8, 1, 3, 3)},
            "layer 'conv1' (conv2d) has weight (8, 3, 3, 3); the checkpoint's 'conv1' has weight "
            "(8, 1, 3, 3)",
        ),
        (
            {"conv1.bias": (8,)},
            "layer 'conv1' (conv2d) has weight (8, 3, 3, 3); the checkpoint's 'conv1' has weight "
            "(8, 3, 3, 3), bias (8)",
        ),
        (
            {"head.weight": (2, 10)},
            "it holds tensors no layer has: 'head' with weight (2, 10)",
        ),
    ],
)
def test_first_mismatch_is_named_with_both_shapes(
    change: dict[str, tuple[int, ...]], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ModelError) as err:
        _check(tmp_path, SHAPES | change)
    assert str(err.value) == f"{tmp_path / 'w.safetensors'} does not match the model: {message}"


def test_missing_tensors(tmp_path: Path) -> None:
    shapes = {k: v for k, v in SHAPES.items() if not k.startswith("fc.")}
    with pytest.raises(ModelError, match="layer 'fc' .* the checkpoint has no tensors left for it"):
        _check(tmp_path, shapes)


@pytest.mark.oracle
def test_another_resnet_is_refused_at_its_first_differing_layer(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    write_header_only(tmp_path / "r18.safetensors", state_shapes(_torchvision_state("resnet18")))
    with pytest.raises(ModelError) as err:
        check_weights(summarize("resnet50"), tmp_path / "r18.safetensors")
    assert (
        "does not match the model: layer 'layer1.0.conv1' (conv2d) has weight (64, 64, 1, 1)"
        in str(err.value)
    )
    assert "the checkpoint's 'layer1.0.conv1' has weight (64, 64, 3, 3)" in str(err.value)


# -- bad files --------------------------------------------------------------------------------


def _header(raw: bytes, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty; save the weights again"),
        (b"hello world, I am text", "not a safetensors file or a PyTorch state_dict"),
        (_header(b'{"a": 1}')[:-3], "truncated: the header says it is 8 bytes long, but only 5"),
        (struct.pack("<Q", 2**60) + b"{}", "truncated: the header says it is"),
        (_header(b"{\xff\xfe}"), "its header is not JSON (invalid start byte)"),
        (_header(b"{not json}"), "its header is not JSON (Expecting property name"),
        (_header(b"{}")[:8] + b"[", "not a safetensors file or a PyTorch state_dict"),
        (_header(b'{"w": 3}'), "tensor 'w': its header entry is not a JSON object"),
        (
            _header(b'{"w": {"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 8]}}'),
            "tensor 'w': shape [2, -1] is not a list of sizes",
        ),
        (
            _header(b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}'),
            "tensor 'w': data_offsets [8, 0] is not [start, end]",
        ),
        (
            _header(b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}', b"\0" * 8),
            "tensor 'w' ends at byte 16 of the data, but the file holds 8 bytes of data: it is truncated",
        ),
        (
            _header(b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}', b"\0" * 8),
            "tensor 'w': F32 (4) needs 16 bytes, its offsets hold 8",
        ),
        (b"PK\x03\x04" + b"junk" * 10, "not a readable PyTorch checkpoint (PytorchStreamReader"),
    ],
)
def test_bad_files_are_one_line_errors(
    content: bytes, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if content.startswith(b"PK"):
        pytest.importorskip("torch")
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    code, out, err = run(["summary", "lenet5", "--weights", path], capsys)
    assert code == 1
    assert out == ""  # no partial output: no table before the error
    assert err.startswith(f"cnncli: error: {path}")
    assert message in err
    assert err.count("\n") == 1


def test_short_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.safetensors"
    path.write_bytes(b"\x10\0\0")
    with pytest.raises(
        ModelError, match="truncated: 3 bytes, fewer than a safetensors header needs"
    ):
        read_checkpoint(path)


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["summary", "lenet5", "--weights", tmp_path / "none.pt"], capsys)
    assert (code, out) == (1, "")
    assert err == f"cnncli: error: cannot read {tmp_path / 'none.pt'}: No such file or directory\n"


@pytest.mark.oracle
def test_whole_model_pickles_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(2, 3))
    torch.save(net, tmp_path / "whole.pt")
    code, out, err = run(["summary", "lenet5", "--weights", tmp_path / "whole.pt"], capsys)
    assert (code, out) == (1, "")
    assert err.startswith(
        f"cnncli: error: {tmp_path / 'whole.pt'} holds a whole pickled model "
        "(torch.nn.modules.container.Sequential), not only its weights; cnncli never unpickles"
    )
    assert "torch.save(model.state_dict(), 'model.pt')" in err
    assert err.count("\n") == 1


@pytest.mark.oracle
def test_checkpoints_without_tensors(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "nothing.pt")
    with pytest.raises(ModelError, match=r"holds no tensors \(its keys: epoch, lr\)"):
        read_checkpoint(tmp_path / "nothing.pt")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(ModelError, match="holds a list, not a state_dict"):
        read_checkpoint(tmp_path / "list.pt")


def test_pytorch_files_without_torch(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from cnncli.cli import main\n"
        f"main(['summary', 'lenet5', '--weights', {str(path)!r}])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 1
    assert done.stderr == (
        f"cnncli: error: {path} is a PyTorch checkpoint, and reading it needs PyTorch (pip "
        "install torch); or give the weights as safetensors, which cnncli reads without it\n"
    )


# -- the command ------------------------------------------------------------------------------


def test_summary_with_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "small.yaml"
    model.write_text(SMALL)
    write_header_only(tmp_path / "w.safetensors", SHAPES)
    code, out, err = run(["summary", model, "--weights", tmp_path / "w.safetensors"], capsys)
    assert code == 0, err
    assert "Total params:          338" in out
    assert out.splitlines()[-1].startswith("weights: ") and "matches the model" in out
    code, out, err = run(
        ["summary", model, "--weights", tmp_path / "w.safetensors", "--json"], capsys
    )
    assert code == 0
    assert json.loads(out)["totals"]["params"] == 338  # machine output stays clean
    assert err.startswith("weights: ")


def test_summary_with_safetensors_stays_light(tmp_path: Path) -> None:
    write_header_only(tmp_path / "w.safetensors", SHAPES)
    model = tmp_path / "small.yaml"
    model.write_text(SMALL)
    script = (
        "import sys; from cnncli.cli import main\n"
        "try:\n"
        f"    main(['summary', {str(model)!r}, '--weights', {str(tmp_path / 'w.safetensors')!r}])\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0, done.code\n"
        "print(sorted(m for m in ('numpy', 'numba', 'PIL', 'torch', 'onnx', 'safetensors') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_svg_never_overwrites_the_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_header_only(tmp_path / "w.svg", SHAPES)
    before = (tmp_path / "w.svg").read_bytes()
    code, _, err = run(
        [
            "summary",
            "lenet5",
            "--weights",
            tmp_path / "w.svg",
            "--svg",
            tmp_path / "w.svg",
            "--force",
        ],
        capsys,
    )
    assert code == 1
    assert "is an input of this run" in err
    assert (tmp_path / "w.svg").read_bytes() == before
