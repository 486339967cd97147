"""PyTorch modules read by ``cnncli summary file.py:NAME --input C,H,W`` (and
``package.module:NAME``): torch.fx's graph, or forward hooks when fx cannot trace, into
model-format data that cnncli's one builder counts.

The oracles are PyTorch itself, independently of the reader: the model's own
``parameters()`` and buffers, torch's FLOP counter (``torch.utils.flop_counter``, which counts
every convolution and matrix product, functional ones included), forward hooks on every module
holding parameters (``tests/tv_oracle.py``), torchinfo's parameter count, torchvision's
published numbers and the zoo's entry (``tests/data/torchvision_zoo.json``).
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from clirun import run  # tests/clirun.py
from test_docs import expected_pattern  # tests/test_docs.py
from tv_oracle import measure, mismatches, published, torchvision_models  # tests/tv_oracle.py

from cnncli.errors import ModelError, UsageError
from cnncli.model import Summary, summarize, zoo_names
from cnncli.model.readers import ReadOptions

TABLE: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "torchvision_zoo.json").read_text()
)

#: torchvision models through this reader, by ``package.module:NAME``. GoogLeNet is built as
#: its published weights are (without the auxiliary classifiers) by a function in a user file.
TORCHVISION = {
    "resnet18": "torchvision.models.resnet:resnet18",
    "mobilenet_v2": "torchvision.models.mobilenetv2:mobilenet_v2",
    "efficientnet_b0": "torchvision.models.efficientnet:efficientnet_b0",
    "shufflenet_v2_x1_0": "torchvision.models.shufflenetv2:shufflenet_v2_x1_0",
    "convnext_tiny": "torchvision.models.convnext:convnext_tiny",
    "googlenet": "{tmp}/tv_googlenet.py:googlenet",
}

GOOGLENET = """
import torchvision.models as tvm


def googlenet():
    return tvm.googlenet(aux_logits=False, init_weights=False)
"""

#: A small CNN written with functional ops between its modules.
SMALL = """
import torch
import torch.nn as nn
import torch.nn.functional as F


class Stem(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = Stem()
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.skip = nn.Conv2d(16, 32, 1, stride=2)
        self.proj = nn.Parameter(torch.ones(32, 1, 1))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.stem(x)
        y = F.hardtanh(self.conv2(x), 0.0, 6.0) + self.skip(x)
        y = y * self.proj
        a, b = torch.chunk(y, 2, dim=1)
        y = torch.cat([b, F.max_pool2d(a, 3, 1, 1)], dim=1) / 2
        y = F.adaptive_avg_pool2d(y, 1).flatten(1)
        y = torch.cat([y, y.sigmoid()], 1)
        return F.softmax(self.fc(F.dropout(y, 0.2, self.training)), dim=1)


def small_net():
    return SmallNet()
"""

#: forward branches on a tensor's value: torch.fx cannot trace it, the meta device cannot run it.
GATED = """
import torch
import torch.nn as nn


class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.extra = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        if x.sum() > 0:
            x = x + self.extra(x)
        return self.fc(torch.flatten(self.pool(x), 1))
"""

#: forward branches on a size: fx cannot trace it, the meta device can run it.
SIZED = """
import torch.nn as nn


class Sized(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 5)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 14 * 14, 10))

    def forward(self, x):
        if x.shape[-1] > 16:
            x = self.pool(self.conv(x))
        return self.head(x)
"""


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text))
    return path


def _read(source: str, *shape: int) -> Summary:
    return summarize(source, options=ReadOptions(input_shape=shape))


def _torch() -> Any:
    return pytest.importorskip("torch")


def _build(tmp: Path, text: str, name: str) -> Any:
    """The user file's model, built on meta as the reader does (for the oracles)."""
    torch = _torch()
    namespace: dict[str, Any] = {"__name__": "oracle_" + name}
    exec(compile(textwrap.dedent(text), str(tmp / "oracle.py"), "exec"), namespace)
    with torch.device("meta"):
        return namespace[name]().eval()


def _torch_counts(model: Any) -> tuple[int, int]:
    """(trainable, non-trainable) as cnncli counts them: parameters, buffers without
    ``num_batches_tracked``."""
    trainable = sum(p.numel() for p in model.parameters())
    buffers = sum(
        b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")
    )
    return int(trainable), int(buffers)


def _torch_macs(model: Any, shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of every convolution and matrix product (PyTorch's FLOP counter
    counts 2 per MAC, bias excluded: cnncli's convention)."""
    torch = _torch()
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.empty((1, *shape), device="meta"))
    return int(counter.get_total_flops()) // 2


# -- torchvision models through the reader ---------------------------------------------------


@pytest.fixture(scope="module")
def tv_sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    torchvision_models()  # torchvision importable here (register_fake patched), or skip
    tmp = tmp_path_factory.mktemp("tv")
    _write(tmp, "tv_googlenet.py", GOOGLENET)
    return {k: v.format(tmp=tmp) for k, v in TORCHVISION.items()}


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_models_equal_torchvision(name: str, tv_sources: dict[str, str]) -> None:
    s = _read(tv_sources[name], 3, 224, 224)
    t, want = s.totals, TABLE[name]
    # The zoo's entry (tests/data/torchvision_zoo.json, rebuilt from torchvision by
    # tests/test_zoo_torchvision.py) and the zoo model itself when main ships it.
    assert (t.trainable_params, t.non_trainable_params, t.macs) == (
        want["trainable"],
        want["non_trainable"],
        want["macs"],
    )
    assert list(s.outputs.values()) == [tuple(want["output"])]
    if name in zoo_names():
        zoo = summarize(name).totals
        assert (zoo.params, zoo.trainable_params, zoo.macs) == (
            t.params,
            t.trainable_params,
            t.macs,
        )
    # torchvision's published num_params and GFLOPS (fvcore MACs).
    p = published(name)
    assert t.trainable_params == p.num_params
    assert f"{t.macs / 1e9:.3f}" == f"{p.gflops:.3f}"
    assert s.notes == []  # every operation has a layer type; nothing left out


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_layers_equal_hooks_torchinfo_and_flop_counter(
    name: str, tv_sources: dict[str, str]
) -> None:
    torchinfo = pytest.importorskip("torchinfo")
    s = _read(tv_sources[name], 3, 224, 224)
    # Forward hooks on every module holding parameters: its output shape and own count, each
    # call; plus the totals, the conv + linear MACs and the output (tests/tv_oracle.py).
    measured = measure(name, 224)
    assert mismatches(name, s, measured) == []
    model = _tv_model(name)
    info = torchinfo.summary(model, input_size=(1, 3, 224, 224), device="meta", verbose=0)
    assert s.totals.trainable_params == info.total_params
    assert s.totals.macs == _torch_macs(model, (3, 224, 224))


def _tv_model(name: str) -> Any:
    torch = _torch()
    tvm = torchvision_models()
    kwargs = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    with torch.device("meta"):
        return tvm.get_model(name, weights=None, **kwargs).eval()


def test_blocks_follow_the_modules(tv_sources: dict[str, str]) -> None:
    """Each module call with one input and one output is a block; identical ones share a
    definition; the table folds them with --depth."""
    s = _read(tv_sources["resnet18"], 3, 224, 224)
    blocks = {r.name: r.type for r in s.rows if r.kind == "block"}
    assert blocks["layer1"] == "layer1"  # a Sequential's block is named after it
    assert blocks["layer1.layer1_0"] == blocks["layer1.layer1_1"] == "BasicBlock"
    assert blocks["layer2.layer2_0"] != blocks["layer2.layer2_1"]  # the one with downsample
    names = [r.name for r in s.layers()]
    assert names[:4] == ["conv1", "bn1", "relu", "maxpool"]
    assert "layer2.layer2_0.downsample.downsample_0" in names
    assert names[-3:] == ["avgpool", "flatten", "fc"]
    row = next(r for r in s.rows if r.name == "layer1.layer1_0")
    assert (row.params, row.macs) == (74_240, 231_211_008)


def test_shufflenet_channel_shuffle_and_chunk(tv_sources: dict[str, str]) -> None:
    """ShuffleNet's view-transpose-view is read as one channel_shuffle (the receptive field
    goes on through it), torch.chunk as a split."""
    s = _read(tv_sources["shufflenet_v2_x1_0"], 3, 224, 224)
    types = Counter(r.type for r in s.layers())
    assert types["channel_shuffle"] == 16
    assert types["split"] == 13
    assert types["reshape"] == types["permute"] == 0
    last_conv = [r for r in s.layers() if r.type == "conv2d"][-1]
    assert last_conv.receptive_field is not None


def test_convnext_channels_last_mlp_as_channels_first(tv_sources: dict[str, str]) -> None:
    """ConvNeXt permutes to channels-last for LayerNorm and Linear: cnncli keeps the channels
    first (a layernorm over the channels, dense layers over the channels), as its zoo writes
    ConvNeXt."""
    s = _read(tv_sources["convnext_tiny"], 3, 224, 224)
    types = Counter(r.type for r in s.layers())
    assert types["permute"] == 0
    assert types["layer_scale"] == 18
    assert types["layernorm"] == 18 + 5
    block = [r for r in s.layers() if ".block." in r.name][:5]
    assert [r.type for r in block] == ["conv2d", "layernorm", "dense", "gelu", "dense"]
    assert block[2].output_shape == (384, 56, 56)


# -- a user file with functional ops ---------------------------------------------------------


@pytest.mark.oracle
def test_small_cnn_with_functional_ops(tmp_path: Path) -> None:
    path = _write(tmp_path, "small.py", SMALL)
    s = _read(f"{path}:SmallNet", 3, 32, 32)
    model = _build(tmp_path, SMALL, "SmallNet")
    trainable, buffers = _torch_counts(model)
    assert (s.totals.trainable_params, s.totals.non_trainable_params) == (trainable, buffers)
    assert s.totals.macs == _torch_macs(model, (3, 32, 32))
    assert list(s.outputs.values()) == [(10,)]
    rows = [(r.name, r.type, r.output_shape) for r in s.layers()]
    assert rows == [
        ("stem.conv", "conv2d", (16, 32, 32)),
        ("stem.bn", "batchnorm", (16, 32, 32)),
        ("stem.relu", "relu", (16, 32, 32)),
        ("conv2", "conv2d", (32, 16, 16)),
        ("hardtanh", "relu6", (32, 16, 16)),
        ("skip", "conv2d", (32, 16, 16)),
        ("add", "add", (32, 16, 16)),
        ("mul", "layer_scale", (32, 16, 16)),
        ("chunk", "split", (32, 16, 16)),
        ("max_pool2d", "maxpool2d", (16, 16, 16)),
        ("cat", "concat", (32, 16, 16)),
        ("truediv", "rescaling", (32, 16, 16)),
        ("adaptive_avg_pool2d", "adaptive_avgpool", (32, 1, 1)),
        ("flatten", "flatten", (32,)),
        ("sigmoid", "sigmoid", (32,)),
        ("cat_1", "concat", (64,)),
        ("dropout", "dropout", (64,)),
        ("fc", "dense", (10,)),
        ("softmax", "softmax", (10,)),
    ]
    # The block is the Stem module; the receptive field goes through every window.
    assert [r.type for r in s.rows if r.kind == "block"] == ["Stem"]
    assert next(r for r in s.layers() if r.name == "max_pool2d").receptive_field == (9, 9)


@pytest.mark.oracle
def test_a_function_returning_the_module(tmp_path: Path) -> None:
    path = _write(tmp_path, "small.py", SMALL)
    by_class = _read(f"{path}:SmallNet", 3, 32, 32)
    by_function = _read(f"{path}:small_net", 3, 32, 32)
    assert by_function.totals == by_class.totals
    assert by_function.name == "small_net"


# -- when fx cannot trace: forward hooks -----------------------------------------------------


@pytest.mark.oracle
def test_untraceable_model_falls_back_to_hooks(tmp_path: Path) -> None:
    path = _write(tmp_path, "gated.py", GATED)
    s = _read(f"{path}:Gated", 3, 16, 16)
    assert "torch.fx could not trace forward" in s.notes[0]
    assert "connectivity inferred as sequential" in s.notes[0]
    assert any("ran once on the CPU" in n for n in s.notes)
    model = _build(tmp_path, GATED, "Gated")
    trainable, buffers = _torch_counts(model)
    assert (s.totals.trainable_params, s.totals.non_trainable_params) == (trainable, buffers)
    # One row per leaf module in call order; the input torch gave each module is its input
    # here (torch.flatten between pool and fc, which hooks do not see, is bridged by a row).
    assert [(r.name, r.type, r.output_shape) for r in s.layers()] == [
        ("conv", "conv2d", (8, 16, 16)),
        ("bn", "batchnorm", (8, 16, 16)),
        ("extra", "conv2d", (8, 16, 16)),
        ("pool", "adaptive_avgpool", (8, 1, 1)),
        ("fc_input", "flatten", (8,)),
        ("fc", "dense", (4,)),
    ]
    assert s.totals.macs == 8 * 27 * 256 + 8 * 72 * 256 + 8 * 4


def test_untraceable_model_runs_on_meta_when_it_can(tmp_path: Path) -> None:
    _torch()
    path = _write(tmp_path, "sized.py", SIZED)
    s = _read(f"{path}:Sized", 1, 32, 32)
    assert "torch.fx could not trace forward" in s.notes[0]
    assert not any("ran once on the CPU" in n for n in s.notes)
    assert [r.type for r in s.layers()] == ["conv2d", "maxpool2d", "flatten", "dense"]
    assert s.totals.params == 4 * 26 + 784 * 10 + 10


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_b0"])
def test_hooks_reader_counts_torchvision_exactly(
    name: str, tv_sources: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback on models fx can trace: every leaf module gets PyTorch's input, so the
    parameters and MACs are exact even where connectivity is inferred."""
    from cnncli.model.readers import torch_module

    monkeypatch.setattr(torch_module, "_trace", lambda model, torch: (None, "forced by a test"))
    s = _read(tv_sources[name], 3, 224, 224)
    want = TABLE[name]
    assert (s.totals.trainable_params, s.totals.non_trainable_params, s.totals.macs) == (
        want["trainable"],
        want["non_trainable"],
        want["macs"],
    )
    assert "forced by a test" in s.notes[0]
    measured = measure(name, 224)
    ours = Counter((r.output_shape, r.params) for r in s.layers() if r.params)
    assert ours == measured.entries


# -- errors ----------------------------------------------------------------------------------


def _error(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code, out, err = run(["summary", *args], capsys)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnncli: error: "), err
    return code, lines[0]


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, line = _error(capsys, f"{tmp_path}/nope.py:Net", "--input", "3,8,8")
    assert code == 1
    assert f"no such file {tmp_path}/nope.py" in line


def test_missing_module(capsys: pytest.CaptureFixture[str]) -> None:
    _torch()
    code, line = _error(capsys, "no_such_package.models:Net", "--input", "3,8,8")
    assert code == 1
    assert "there is no module no_such_package.models" in line


def test_missing_name_lists_the_modules(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _torch()
    path = _write(tmp_path, "small.py", SMALL)
    code, line = _error(capsys, f"{path}:SmalNet", "--input", "3,8,8")
    assert code == 1
    assert f"{path} has no SmalNet; did you mean SmallNet?" in line
    assert "its nn.Module classes: SmallNet, Stem" in line


def test_constructor_needs_arguments(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _torch()
    path = _write(
        tmp_path,
        "net.py",
        """
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self, width, depth=2):
                super().__init__()
                self.conv = nn.Conv2d(3, width, 3)
        """,
    )
    code, line = _error(capsys, f"{path}:Net", "--input", "3,8,8")
    assert code == 1
    assert "Net needs arguments (width)" in line
    assert "returns Net(width=…)" in line


def test_forward_fails_on_the_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _torch()
    path = _write(tmp_path, "small.py", SMALL)
    code, line = _error(capsys, f"{path}:SmallNet", "--input", "1,32,32")
    assert code == 1
    assert "the forward pass fails on an input of shape (1, 1, 32, 32) (--input 1,32,32)" in line
    # The module that refused, as PyTorch prints it, and what it was given.
    assert "at stem.conv = Conv2d(3, 16, kernel_size=(3, 3)" in line
    assert "given (1, 1, 32, 32): RuntimeError:" in line


def test_input_is_required(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = _write(tmp_path, "small.py", SMALL)
    code, line = _error(capsys, f"{path}:SmallNet")
    assert code == 2
    assert "add --input with the input's shape without the batch, e.g. --input 3,224,224" in line


def test_import_error_in_the_source(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _torch()
    path = _write(tmp_path, "bad.py", "raise ValueError('boom\\nsecond line')\n")
    code, line = _error(capsys, f"{path}:Net", "--input", "3,8,8")
    assert code == 1
    assert line.endswith(f"importing {path} failed: ValueError: boom")


def test_not_a_module(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _torch()
    path = _write(tmp_path, "f.py", "def f():\n    return 3\n")
    code, line = _error(capsys, f"{path}:f", "--input", "3,8,8")
    assert code == 1
    assert "f() returned int, not an nn.Module" in line


def test_without_torch(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "small.py", SMALL)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    code, line = _error(capsys, f"{path}:SmallNet", "--input", "3,8,8")
    assert code == 1
    assert "needs PyTorch, which is not installed; install it (pip install torch)" in line


def test_errors_in_process(tmp_path: Path) -> None:
    path = _write(tmp_path, "small.py", SMALL)
    with pytest.raises(UsageError):
        _read(f"{path}:SmallNet")
    with pytest.raises(UsageError, match="channels and 0 to 3 spatial sizes"):
        _read(f"{path}:SmallNet", 3, 8, 8, 8, 8)
    with pytest.raises(ModelError, match="no such file"):
        _read(f"{tmp_path}/other.py:SmallNet", 3, 8, 8)


# -- the command line ------------------------------------------------------------------------


@pytest.mark.oracle
def test_json_with_notes_and_user_prints_on_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _write(tmp_path, "loud.py", 'print("hello from the model file")\n' + GATED)
    code, out, err = run(["summary", f"{path}:Gated", "--input", "3,16,16", "--json"], capsys)
    assert code == 0, err
    assert "hello from the model file" in err
    data = json.loads(out)
    assert data["totals"]["params"] == 224 + 32 + 584 + 36
    assert data["outputs"] == {"fc": [4]}
    assert any("forward hooks" in n for n in data["reader_notes"])


@pytest.mark.oracle
def test_table_and_depth(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = _write(tmp_path, "small.py", SMALL)
    code, out, err = run(
        ["summary", f"{path}:SmallNet", "--input", "3,32,32", "--depth", "1"], capsys
    )
    assert code == 0, err
    assert "SmallNet  (channels first, torch conventions, input (3, 32, 32))" in out
    assert "stem" in out and "[Stem]" in out and "stem.conv" not in out


def test_help_says_the_source_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["summary", "--help"], capsys)
    assert code == 0
    assert "its code runs" in " ".join(out.split())


@pytest.mark.oracle
def test_the_docs_example_prints_what_the_docs_show(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _torch()
    doc = (Path(__file__).parent.parent / "docs" / "model-format.md").read_text(encoding="utf-8")
    section = doc.split("## PyTorch modules", 1)[1].split("\n## ", 1)[0]
    source = re.search(r"```python\n(.*?)```", section, re.S)
    shown = re.search(r"```text\n\$ (.*?)\n(.*?)```", section, re.S)
    assert source is not None and shown is not None
    (tmp_path / "net.py").write_text(source[1])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("NO_COLOR", "1")
    command = shown[1].split()
    assert command[:3] == ["cnncli", "summary", "net.py:Net"]
    code, out, err = run(command[1:], capsys)
    assert code == 0, err
    printed = "".join(line.rstrip() + "\n" for line in out.splitlines())
    assert expected_pattern(shown[2].splitlines()).fullmatch(printed), printed


#: Operations cnncli has no layer type for, and a module called twice.
ODD = """
import torch
import torch.nn as nn


class Odd(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.GroupNorm(2, 8)
        self.shared = nn.Conv2d(4, 4, 1)
        self.frozen = nn.Linear(4, 2)
        self.frozen.requires_grad_(False)

    def forward(self, x):
        x = self.norm(self.conv(x))
        y = self.shared(self.shared(x[:, :4]))
        return self.frozen(y.mean((2, 3)))
"""


@pytest.mark.oracle
def test_opaque_rows_shared_weights_and_frozen_parameters(tmp_path: Path) -> None:
    path = _write(tmp_path, "odd.py", ODD)
    s = _read(f"{path}:Odd", 3, 8, 8)
    rows = [(r.name, r.type, r.output_shape, r.params, r.trainable_params) for r in s.layers()]
    assert rows == [
        ("conv", "conv2d", (8, 8, 8), 224, 224),
        ("norm", "groupnorm", (8, 8, 8), 16, 16),
        ("getitem", "opaque", (4, 8, 8), 0, 0),  # x[:, :4]
        ("shared", "conv2d", (4, 8, 8), 20, 20),
        ("shared_1", "opaque", (4, 8, 8), 0, 0),  # the second call: weights counted once
        ("mean", "mean", (4,), 0, 0),
        ("frozen", "dense", (2,), 10, 0),  # requires_grad=False: non-trainable
    ]
    model = _build(tmp_path, ODD, "Odd")
    assert s.totals.params == sum(p.numel() for p in model.parameters())
    assert s.totals.non_trainable_params == 10
    assert s.totals.not_counted == {"getitem": 1, "conv2d (weights shared)": 1}
    assert any("modules called more than once" in n for n in s.notes)
    # The counted MACs leave out exactly the opaque rows' work (the shared conv's second call).
    assert s.totals.macs == _torch_macs(model, (3, 8, 8)) - 4 * 4 * 64


@pytest.mark.oracle
def test_unused_modules_are_noted(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "aux.py",
        """
        import torch.nn as nn

        class WithAux(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Conv2d(3, 4, 3)
                self.aux = nn.Linear(10, 10)

            def forward(self, x):
                return self.body(x)
        """,
    )
    s = _read(f"{path}:WithAux", 3, 8, 8)
    assert s.totals.params == 112
    assert s.notes == [
        "110 parameters and buffers of aux are not used by the forward pass on this input and "
        "not counted (PyTorch's model.parameters() includes them)"
    ]


def test_svg_never_over_the_source(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = _write(tmp_path, "small.py", SMALL)
    before = path.read_text()
    code, line = _error(
        capsys, f"{path}:SmallNet", "--input", "3,8,8", "--svg", str(path), "--force"
    )
    assert code == 1
    assert "is an input of this run; refusing to overwrite it, even with --force" in line
    assert path.read_text() == before


@pytest.mark.oracle
def test_svg_of_an_installed_module(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    svg = tmp_path / "conv.svg"
    code, _, err = run(
        ["summary", "torch.nn:Hardswish", "--input", "3,8,8", "--svg", str(svg)], capsys
    )
    assert code == 0, err
    assert svg.read_text().startswith("<svg")


def test_a_module_without_layers(capsys: pytest.CaptureFixture[str]) -> None:
    _torch()
    code, line = _error(capsys, "torch.nn:Identity", "--input", "3,8,8")
    assert code == 1
    assert "torch.nn:Identity: Identity's forward pass has no layer cnncli can show" in line


#: A small U-Net: transposed convolution, padding to the skip's size, concat, upsampling, a
#: squeeze-and-excite gate indexed with None.
UNET = """
import torch
import torch.nn as nn
import torch.nn.functional as F


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.down1 = block(3, 16)
        self.down2 = block(16, 32)
        self.up = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.dec = block(32, 16)
        self.gate = nn.Linear(16, 16)
        self.out = nn.Conv2d(16, 2, 1)

    def forward(self, x):
        a = self.down1(x)
        b = self.down2(F.max_pool2d(a, 2))
        u = self.up(b)
        u = F.pad(u, [0, a.size(3) - u.size(3), 0, a.size(2) - u.size(2)])
        d = self.dec(torch.cat([a, u], dim=1))
        g = torch.sigmoid(self.gate(d.mean((2, 3))))
        d = d * g[:, :, None, None]
        d = d + F.interpolate(F.avg_pool2d(d, 2), size=d.shape[2:], mode="bilinear")
        return self.out(d)
"""


@pytest.mark.oracle
@pytest.mark.parametrize("size", [32, 33])
def test_small_unet(tmp_path: Path, size: int) -> None:
    path = _write(tmp_path, "unet.py", UNET)
    s = _read(f"{path}:UNet", 3, size, size)
    model = _build(tmp_path, UNET, "UNet")
    assert (s.totals.trainable_params, s.totals.non_trainable_params) == _torch_counts(model)
    assert s.totals.macs == _torch_macs(model, (3, size, size))
    assert s.totals.not_counted == {}
    types = [r.type for r in s.layers()]
    for kind in ("convtranspose2d", "zeropad2d", "concat", "upsample", "multiply", "reshape"):
        assert kind in types
    pad = next(r for r in s.layers() if r.type == "zeropad2d")
    assert pad.output_shape == (16, size, size)  # 33 = 2 × 16 + 1: one row and column added
    assert list(s.outputs.values()) == [(2, size, size)]


@pytest.mark.oracle
def test_frozen_and_trainable_in_one_layer_are_noted(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "mixed.py",
        """
        import torch.nn as nn

        class Mixed(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3)
                self.conv.weight.requires_grad_(False)
                self.norm = nn.InstanceNorm2d(4, affine=True, track_running_stats=True)
                self.bn = nn.BatchNorm2d(4, affine=False)

            def forward(self, x):
                return self.bn(self.norm(self.conv(x)))
        """,
    )
    s = _read(f"{path}:Mixed", 3, 8, 8)
    rows = [(r.name, r.type, r.params, r.trainable_params) for r in s.layers()]
    assert rows == [
        ("conv", "conv2d", 112, 112),
        ("norm", "instancenorm", 16, 8),
        ("bn", "batchnorm", 8, 0),
    ]
    assert s.notes == [
        "conv holds trainable and frozen numbers together (requires_grad=False on some "
        "parameters, or buffers of an opaque layer); cnncli counts such a layer's as trainable"
    ]


@pytest.mark.oracle
def test_graph_run_on_the_cpu_when_meta_cannot(tmp_path: Path) -> None:
    """torch.fx traces it, but nonzero has no meta implementation: the graph runs on the CPU."""
    path = _write(
        tmp_path,
        "nz.py",
        """
        import torch
        import torch.nn as nn

        class NZ(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3, padding=1)

            def forward(self, x):
                y = self.conv(x)
                return y, torch.nonzero(y.flatten(1) > 0)
        """,
    )
    s = _read(f"{path}:NZ", 3, 8, 8)
    assert [r.type for r in s.layers()] == ["conv2d", "flatten", "opaque", "opaque"]
    assert s.totals.not_counted == {"gt": 1, "nonzero": 1}
    assert len(s.notes) == 1 and s.notes[0].startswith(
        "forward needs tensor values, so it ran once"
    )
    assert "torch.fx could not trace" not in s.notes[0]
