"""torchvision's ConvNeXt checkpoints against the zoo's ConvNeXt: ``cnncli summary convnext_*
--weights FILE`` passes for every variant's state_dict (safetensors and torch.save), the zoo model
given those tensors computes torchvision's output, and a wrong checkpoint is refused naming the
layer.

The oracle is torchvision 0.29.1: its models build the state_dicts (on the meta device: shapes
without data; convnext_tiny also on the CPU, saved by the safetensors library and torch.save).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from clirun import run  # tests/clirun.py
from test_weights import state_shapes, write_header_only  # tests/test_weights.py

from cnncli.errors import ModelError
from cnncli.model import summarize, summarize_text
from cnncli.model.weights import check_weights, model_tensors

ZOO = Path(__file__).resolve().parent.parent / "cnncli" / "model" / "zoo"
VARIANTS = ["convnext_tiny", "convnext_small", "convnext_base", "convnext_large"]


def _torchvision(name: str, meta: bool = True) -> Any:
    """torchvision's model ``name``: its weights on the meta device (shapes only), or on the CPU."""
    import tv_oracle  # tests/tv_oracle.py

    tvm = tv_oracle.torchvision_models()
    if not meta:
        return tvm.get_model(name, weights=None)
    import torch

    with tv_oracle._weights_on_meta(torch):
        return tvm.get_model(name, weights=None)


def _files(state: dict[str, Any], tmp_path: Path) -> list[tuple[Path, str]]:
    """The state_dict as safetensors (header and a sparse hole: no data written) and as
    torch.save of its meta tensors (the .pt format, shapes only)."""
    import torch

    write_header_only(tmp_path / "w.safetensors", state_shapes(state))
    torch.save(state, tmp_path / "w.pt")
    return [(tmp_path / "w.safetensors", "safetensors"), (tmp_path / "w.pt", "PyTorch state_dict")]


@pytest.mark.oracle
@pytest.mark.parametrize("name", VARIANTS)
def test_every_convnext_checkpoint_passes_weights(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    state = dict(_torchvision(name).state_dict())
    numbers = sum(v.numel() for v in state.values())
    assert numbers == summarize(name).totals.params
    for path, kind in _files(state, tmp_path):
        code, out, err = run(["summary", name, "--weights", path, "--depth", "1"], capsys)
        assert code == 0, err
        assert err == ""
        assert out.splitlines()[-1] == (
            f"weights: {path} ({kind}) matches the model: its {len(state):,} tensors "
            f"({numbers:,} numbers) have the shapes of the model's "
            f"{len({m.layer for m in model_tensors(summarize(name))}):,} layers with "
            "parameters, layer by layer"
        )


def _pair(ours: list[tuple[str, tuple[int, ...]]], theirs: dict[str, Any]) -> dict[str, Any]:
    """Our state_dict keys given torchvision's tensors: module by module, in our order, the first
    torchvision module left (in its state_dict order) whose tensors have the same shapes - the
    rule ``--weights`` matches by."""

    def modules(keys: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for k in keys:
            out.setdefault(k.rpartition(".")[0], []).append(k)
        return out

    shapes = dict(ours)
    left = list(modules(list(theirs)).values())
    state = {}
    for keys in modules([k for k, _ in ours]).values():
        wanted = [shapes[k] for k in keys]
        match = next(m for m in left if [tuple(theirs[k].shape) for k in m] == wanted)
        left.remove(match)
        state.update({k: theirs[t] for k, t in zip(keys, match, strict=True)})
    assert left == []
    return state


@pytest.mark.oracle
def test_real_files_and_the_same_output_as_torchvision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """convnext_tiny on the CPU: its state_dict saved by the safetensors library and torch.save
    passes ``--weights``; loaded into the model ``cnncli convert`` writes, it computes what
    torchvision computes (so the layernorm and both dense layers act on the channels)."""
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    import importlib.util

    from cnncli.render.convert import pytorch_source

    torch.manual_seed(0)
    net = _torchvision("convnext_tiny", meta=False).eval()
    with torch.no_grad():
        for p in net.parameters():  # layer_scale's 1e-6 would hide every block's own output
            p.normal_(0.0, 0.1)
    state = dict(net.state_dict())
    safetensors_torch.save_file(state, tmp_path / "real.safetensors")
    torch.save(state, tmp_path / "real.pt")
    for file in ("real.safetensors", "real.pt"):
        code, out, err = run(["summary", "convnext_tiny", "--weights", tmp_path / file], capsys)
        assert code == 0, err
        assert out.splitlines()[-1].startswith(f"weights: {tmp_path / file} (")

    summary = summarize("convnext_tiny")
    source = pytorch_source(summary, "convnext_tiny")
    (tmp_path / "net.py").write_text(source.text)
    spec = importlib.util.spec_from_file_location("net", tmp_path / "net.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ours = getattr(module, source.class_name)().eval()
    keys = [
        (f"{source.attributes[m.layer]}{m.path[len(m.layer) :]}.{tensor}", shape)
        for m in model_tensors(summary)
        for tensor, shape in m.tensors
    ]
    assert [k for k, _ in keys] == list(ours.state_dict())
    ours.load_state_dict(_pair(keys, state), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want, got = net(x), ours(x)
    assert want.shape == got.shape == (2, 1000)
    assert float(want.std()) > 0.1  # the blocks' outputs count: not a near-identity network
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


# -- wrong checkpoints ------------------------------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("model", "weights", "message"),
    [
        # convnext_small has 27 blocks in stage 3 where convnext_tiny has 9: 18 blocks left over.
        (
            "convnext_tiny",
            "convnext_small",
            "it holds tensors no layer has: 'features.5.9' with layer_scale (384, 1, 1) and 89 "
            "more modules",
        ),
        (
            "convnext_small",
            "convnext_tiny",
            "layer 'stage3.9.dwconv' (conv2d) has weight (384, 1, 7, 7), bias (384); the "
            "checkpoint's 'features.6.1' has weight (768, 384, 2, 2), bias (768)",
        ),
        (
            "convnext_tiny",
            "convnext_base",
            "layer 'stem.conv' (conv2d) has weight (96, 3, 4, 4), bias (96); the checkpoint's "
            "'features.0.0' has weight (128, 3, 4, 4), bias (128)",
        ),
    ],
)
def test_another_variants_checkpoint_is_refused_naming_the_layer(
    model: str, weights: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    for path, _ in _files(dict(_torchvision(weights).state_dict()), tmp_path):
        code, out, err = run(["summary", model, "--weights", path], capsys)
        assert (code, out) == (1, "")
        assert err == f"cnncli: error: {path} does not match the model: {message}\n"


@pytest.mark.oracle
def test_linear_layers_written_as_1x1_convolutions_are_refused(tmp_path: Path) -> None:
    """The zoo's ConvNeXt before ``dense`` took ``axis: channels``: the same numbers, but a 1×1
    convolution's weight (4C, C, 1, 1) is not the Linear's (4C, C) - the check says so."""
    pytest.importorskip("torch")
    text = (ZOO / "convnext.yaml").read_text()
    for old, new in (
        (
            "dense, name: pwconv1, units: $in_channels * 4, axis: channels",
            "conv2d, name: pwconv1, filters: $in_channels * 4, kernel: 1",
        ),
        (
            "dense, name: pwconv2, units: $in_channels, axis: channels",
            "conv2d, name: pwconv2, filters: $in_channels, kernel: 1",
        ),
    ):
        assert old in text
        text = text.replace(old, new)
    as_convs = summarize_text(text, "convnext.yaml")
    assert as_convs.totals == summarize("convnext_tiny").totals  # the same numbers
    for path, _ in _files(dict(_torchvision("convnext_tiny").state_dict()), tmp_path):
        with pytest.raises(ModelError) as err:
            check_weights(as_convs, path)
        assert str(err.value) == (
            f"{path} does not match the model: layer 'stage1.0.pwconv1' (conv2d) has weight "
            "(384, 96, 1, 1), bias (384); the checkpoint's 'features.1.0.block.3' has weight "
            "(384, 96), bias (384); the same numbers in another shape: a 1×1 convolution where "
            "the checkpoint has a Linear (or the other way round), or a per-channel tensor "
            "shaped differently"
        )


@pytest.mark.oracle
def test_a_read_convnext_takes_its_own_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The PyTorch reader writes ConvNeXt's Linear layers as the zoo does (dense over the
    # channels), so torchvision's own state_dict fits the model read from torchvision's code.
    pytest.importorskip("torch")
    import tv_oracle  # tests/tv_oracle.py

    tv_oracle.torchvision_models()  # torchvision importable (its compiled ops stubbed)
    state = dict(_torchvision("convnext_tiny").state_dict())
    path = _files(state, tmp_path)[0][0]
    source = "torchvision.models:convnext_tiny"
    code, out, err = run(
        ["summary", source, "--input", "3,224,224", "--weights", path, "--depth", "1"], capsys
    )
    assert (code, err) == (0, "")
    assert out.splitlines()[-1].startswith(f"weights: {path} (safetensors) matches the model")
