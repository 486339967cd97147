"""``cnncli summary --train``: the rule table, and PyTorch's autograd as the oracle.

The oracle runs cnncli's own PyTorch build of a model (the modules ``--verify`` builds,
``torch_check.module_for``) in ``train()`` mode on the CPU, on real inputs, under
``torch.autograd.graph.saved_tensors_hooks``, and sums the bytes of the distinct storages
autograd saves, leaving out parameters and buffers (counted as parameters) and the input batch
(counted as the input). Optimizer state is measured after one ``step()`` of ``torch.optim``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from clirun import run  # tests/clirun.py

from cnncli.model import summarize, summarize_text
from cnncli.model.build import Summary
from cnncli.model.layers import ACTIVATIONS, LAYER_TYPES, SPLIT_OUTPUT, TShape
from cnncli.model.training_memory import (
    RULES,
    DType,
    Optimizer,
    TrainingMemory,
    training_memory,
)

_TORCH_DTYPES = {DType.FLOAT32: "float32", DType.FLOAT16: "float16", DType.BFLOAT16: "bfloat16"}


def test_every_layer_type_has_a_rule() -> None:
    assert set(LAYER_TYPES) <= set(RULES), sorted(set(LAYER_TYPES) - set(RULES))


# ------------------------------------------------------------------------------------------
# The oracle
# ------------------------------------------------------------------------------------------


class _StochasticDepth:
    """torchvision.ops.StochasticDepth in training (cnncli's build is its inference identity)."""

    def __init__(self, torch: Any, rate: float, mode: str) -> None:
        self.torch, self.rate, self.mode = torch, rate, mode

    def __call__(self, x: Any) -> Any:
        if self.rate == 0.0:
            return x
        survival = 1.0 - self.rate
        size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        noise = x.new_empty(size).bernoulli_(survival)
        noise.div_(survival)
        return x * noise


def _build(summary: Summary, dtype: DType) -> tuple[Any, dict[str, Any]]:
    """Every layer's module on the CPU in ``dtype`` (weights random, frozen layers frozen)."""
    from cnncli.model import torch_check

    torch = pytest.importorskip("torch")
    tdt = getattr(torch, _TORCH_DTYPES[dtype])
    modules: dict[str, Any] = {}
    shapes: dict[str, TShape] = {}
    for node in summary.nodes:
        assert node.out is not None
        shapes[node.name] = node.out.shape
        if node.is_input or node.kind is SPLIT_OUTPUT:
            continue
        ins = [shapes[i] for i in node.inputs]
        if node.kind.name == "stochastic_depth" and not node.hidden:
            modules[node.name] = _StochasticDepth(torch, node.opts["rate"], node.opts["mode"])
            continue
        module = torch_check.module_for(node, ins, summary, torch, "meta")
        if module is None:
            continue
        module = module.to_empty(device="cpu")
        with torch.no_grad():
            for p in module.parameters():
                p.normal_(0.0, 0.05)
            for name, b in module.named_buffers():
                if not name.endswith("num_batches_tracked"):
                    b.fill_(1.0 if "var" in name else 0.0)
        module = module.to(tdt).train()
        if not node.trainable or node.opts.get("shared"):
            module.requires_grad_(False)
        modules[node.name] = module
    return torch, modules


def _forward(summary: Summary, torch: Any, modules: dict[str, Any], x: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for node in summary.nodes:
        if node.is_input:
            values[node.name] = x
            continue
        ins = [values[i] for i in node.inputs]
        if node.kind is SPLIT_OUTPUT:
            split = ins[0]
            values[node.name] = split[node.opts["index"]] if isinstance(split, tuple) else split
        elif node.hidden:
            values[node.name] = ins[0]
        elif node.name in modules:
            values[node.name] = modules[node.name](ins[0])
        elif node.kind.name == "add":
            y = ins[0]
            for t in ins[1:]:
                y = y + t
            values[node.name] = y
        elif node.kind.name == "multiply":
            y = ins[0]
            for t in ins[1:]:
                y = y * t
            values[node.name] = y
        else:
            values[node.name] = torch.cat(ins, dim=1)
    return values


def measured_activations(summary: Summary, batch: int, dtype: DType = DType.FLOAT32) -> int:
    """Bytes of the distinct storages autograd saves (parameters, buffers, the input excluded)."""
    torch, modules = _build(summary, dtype)
    torch.manual_seed(0)
    weights = {
        t.untyped_storage().data_ptr()
        for m in modules.values()
        if isinstance(m, torch.nn.Module)
        for t in (*m.parameters(), *m.buffers())
    }
    (dims,) = [n.out.shape.dims(False) for n in summary.nodes if n.is_input and n.out]
    x = torch.randn((batch, *dims)).to(getattr(torch, _TORCH_DTYPES[dtype]))
    weights.add(x.untyped_storage().data_ptr())
    storages: dict[int, int] = {}

    def pack(t: Any) -> Any:
        st = t.untyped_storage()
        if st.data_ptr() not in weights:
            storages[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _forward(summary, torch, modules, x)
    return sum(storages.values())


def measured_step(summary: Summary, optimizer: Optimizer) -> tuple[int, int, int]:
    """(parameter bytes, gradient bytes, optimizer state bytes) of one real step."""
    torch, modules = _build(summary, DType.FLOAT32)
    mods = [m for m in modules.values() if isinstance(m, torch.nn.Module)]
    (dims,) = [n.out.shape.dims(False) for n in summary.nodes if n.is_input and n.out]
    values = _forward(summary, torch, modules, torch.randn((2, *dims)))
    consumed = {i for n in summary.nodes for i in n.inputs}
    loss = sum(
        v.float().sum()
        for k, v in values.items()
        if k not in consumed and isinstance(v, torch.Tensor)
    )
    loss.backward()
    params = [p for m in mods for p in m.parameters() if p.requires_grad]
    opt = {
        Optimizer.SGD: lambda: torch.optim.SGD(params, lr=0.1),
        Optimizer.MOMENTUM: lambda: torch.optim.SGD(params, lr=0.1, momentum=0.9),
        Optimizer.ADAM: lambda: torch.optim.Adam(params),
        Optimizer.ADAMW: lambda: torch.optim.AdamW(params),
    }[optimizer]()
    opt.step()
    state = sum(
        t.untyped_storage().nbytes()
        for s in opt.state.values()
        for t in s.values()
        if isinstance(t, torch.Tensor)
    )
    held = sum(t.untyped_storage().nbytes() for m in mods for t in (*m.parameters(), *m.buffers()))
    grads = sum(p.grad.untyped_storage().nbytes() for p in params if p.grad is not None)
    return held, grads, state


# ------------------------------------------------------------------------------------------
# Layer types, one small model each
# ------------------------------------------------------------------------------------------

#: (name, layers after a conv that makes the input require grad) — every saving rule.
LAYER_CASES: list[tuple[str, str]] = [
    ("conv", "{type: conv2d, filters: 4, kernel: 3}"),
    (
        "conv-pad-asym",
        "{type: conv2d, filters: 4, kernel: 3, stride: 2, padding: [[0, 1], [0, 1]]}",
    ),
    ("conv-same-even", "{type: conv2d, filters: 4, kernel: 2, padding: same}"),
    ("conv-act-gelu", "{type: conv2d, filters: 4, kernel: 3, activation: gelu}"),
    ("conv-act-relu", "{type: conv2d, filters: 4, kernel: 3, activation: relu}"),
    ("depthwise", "{type: depthwise_conv2d, kernel: 3, padding: 1}"),
    ("convtranspose", "{type: convtranspose2d, filters: 4, kernel: 3, stride: 2}"),
    ("separable", "{type: separable_conv2d, filters: 5, kernel: 3, depth_multiplier: 2}"),
    ("batchnorm", "{type: batchnorm}"),
    ("batchnorm-scale-only", "{type: batchnorm, center: false}"),
    ("batchnorm-center-only", "{type: batchnorm, scale: false}"),
    ("layernorm", "{type: layernorm}"),
    ("relu", "{type: relu}"),
    ("relu6", "{type: relu6}"),
    ("leaky_relu", "{type: leaky_relu}"),
    ("sigmoid", "{type: sigmoid}"),
    ("tanh", "{type: tanh}"),
    ("softmax", "{type: softmax}"),
    ("gelu", "{type: gelu}"),
    ("silu", "{type: silu}"),
    ("hardswish", "{type: hardswish}"),
    ("hardsigmoid", "{type: hardsigmoid}"),
    ("activation", "{type: activation, function: silu}"),
    ("maxpool", "{type: maxpool2d, kernel: 2}"),
    ("maxpool-ceil", "{type: maxpool2d, kernel: 3, stride: 2, padding: 1, ceil_mode: true}"),
    ("avgpool", "{type: avgpool2d, kernel: 2}"),
    ("global_avgpool", "{type: global_avgpool}"),
    ("global_maxpool", "{type: global_maxpool}"),
    ("adaptive_avgpool", "{type: adaptive_avgpool, output_size: 3}"),
    ("adaptive_avgpool-1", "{type: adaptive_avgpool, output_size: 1}"),
    ("adaptive_maxpool", "{type: adaptive_maxpool, output_size: 3}"),
    ("dropout", "{type: dropout, rate: 0.3}"),
    ("dropout-0", "{type: dropout, rate: 0.0}"),
    ("flatten-dense", "{type: flatten}, {type: dense, units: 7}"),
    ("dense-positions-last", "{type: dense, units: 7}"),
    ("layernorm-last", "{type: layernorm}"),
    ("dense-softmax", "{type: flatten}, {type: dense, units: 7, activation: softmax}"),
    ("upsample", "{type: upsample, scale: 2}"),
    ("upsample-bilinear", "{type: upsample, scale: 2, mode: bilinear}"),
    ("zeropad", "{type: zeropad2d, padding: 1}, {type: conv2d, filters: 2, kernel: 3}"),
    ("cropping", "{type: cropping2d, cropping: 1}, {type: conv2d, filters: 2, kernel: 1}"),
    ("reshape", "{type: reshape, shape: [-1]}, {type: dense, units: 3}"),
    ("permute", "{type: permute, dims: [2, 3, 1]}, {type: relu}"),
    (
        "permute-reshape",
        "{type: permute, dims: [2, 3, 1]}, {type: reshape, shape: [-1]}, {type: dense, units: 3}",
    ),
    ("mean", "{type: mean, axes: [2, 3]}, {type: dense, units: 3}"),
    ("identity", "{type: identity}, {type: relu}"),
    ("channel_shuffle", "{type: channel_shuffle, groups: 2}, {type: relu}"),
    (
        "split",
        "{type: split, name: s, chunks: 2}, {type: conv2d, input: s.1, filters: 2, kernel: 1}",
    ),
    ("layer_scale", "{type: layer_scale}"),
    ("stochastic_depth", "{type: stochastic_depth, rate: 0.2}"),
    ("stochastic_depth-batch", "{type: stochastic_depth, rate: 0.2, mode: batch}"),
    ("rescaling", "{type: rescaling, scale: 0.5, offset: 1.0}, {type: relu}"),
    ("rescaling-channels", "{type: rescaling, scale: [0.5, 1, 2, 3]}"),
    ("normalization", "{type: normalization}, {type: relu}"),
    ("add", "{type: relu, name: r}, {type: add, input: [r, c]}"),
    ("concat", "{type: relu, name: r}, {type: concat, input: [r, c]}"),
    (
        "multiply-gate",
        "{type: global_avgpool, keepdims: true}, {type: sigmoid, name: g}, {type: multiply, input: [c, g]}",
    ),
    (
        "multiply-3",
        "{type: relu, name: r}, {type: tanh, name: t}, {type: multiply, input: [c, r, t]}",
    ),
    ("groupnorm", "{type: groupnorm, groups: 2}"),
    ("groupnorm-plain", "{type: groupnorm, groups: 4, affine: false}"),
    ("instancenorm", "{type: instancenorm}"),
    ("instancenorm-affine", "{type: instancenorm, affine: true}"),
    ("instancenorm-stats", "{type: instancenorm, track_running_stats: true}"),
    ("instancenorm-all", "{type: instancenorm, affine: true, track_running_stats: true}"),
    ("prelu", "{type: prelu}"),
    ("prelu-channels", "{type: prelu, num_parameters: 4}"),
    ("prelu-positions-last", "{type: prelu, shared_axes: []}"),
    ("prelu-rows-last", "{type: prelu, shared_axes: [2]}"),
    ("elu", "{type: elu, alpha: 0.5}"),
    ("selu", "{type: selu}"),
    ("softplus", "{type: softplus, beta: 2}"),
    ("mish", "{type: mish}"),
    ("conv-act-elu", "{type: conv2d, filters: 4, kernel: 3, activation: elu}"),
    ("lrn", "{type: lrn, size: 3}"),
    ("lrn-even", "{type: lrn, size: 4, alpha: 0.001, beta: 0.5, k: 2}"),
    ("pixel_shuffle", "{type: pixel_shuffle, factor: 2}"),
    ("pixel_unshuffle-dcr", "{type: pixel_unshuffle, factor: 2, mode: dcr}, {type: relu}"),
    ("frozen-conv", "{type: conv2d, filters: 4, kernel: 3, trainable: false}, {type: relu}"),
    ("frozen-dense", "{type: flatten}, {type: dense, units: 4, trainable: false}"),
]


def _model(layers: str, last: bool = False) -> Summary:
    text = (
        ("input: [8, 8, 3]\nlayout: channels_last\n" if last else "input: [3, 8, 8]\n")
        + "layers:\n"
        "  - {type: conv2d, name: c, filters: 4, kernel: 1}\n"
        + "".join(f"  - {layer.strip()}\n" for layer in _split(layers))
    )
    return summarize_text(text, "case.yaml")


def _split(layers: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in layers:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [*out, cur]


@pytest.mark.oracle
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize(("case", "layers"), LAYER_CASES, ids=[c for c, _ in LAYER_CASES])
def test_layer_type_activations_equal_autograd(case: str, layers: str, batch: int) -> None:
    summary = _model(layers, last=case.endswith("-last"))
    ours = training_memory(summary, batch).activation_bytes
    assert ours == measured_activations(summary, batch), case


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [DType.FLOAT16, DType.BFLOAT16])
@pytest.mark.parametrize(
    "case", ["conv-act-gelu", "batchnorm", "layernorm", "maxpool", "dropout", "separable"]
)
def test_half_dtypes_equal_autograd(case: str, dtype: DType) -> None:
    summary = _model(dict(LAYER_CASES)[case])
    assert training_memory(summary, 2, dtype=dtype).activation_bytes == measured_activations(
        summary, 2, dtype
    )


ZOO = ["lenet5", "mnist-convnet", "resnet18", "mobilenet_v2", "efficientnet_b0", "convnext_tiny"]
ZOO_SLOW = ["densenet121", "inception_v3"]


@pytest.mark.oracle
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("name", ZOO + ZOO_SLOW)
def test_zoo_activations_equal_autograd(name: str, batch: int) -> None:
    summary = summarize(name)
    memory = training_memory(summary, batch)
    if name == "inception_v3" and batch == 1:
        # PyTorch cannot train it on one sample: the auxiliary classifier's batchnorm sees one
        # value per channel ((1, 768, 1, 1)). cnncli counts it and warns, naming the layer.
        with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
            measured_activations(summary, batch)
        assert [w.split(" (")[0] for w in memory.warnings] == ["layer 'AuxLogits.conv1.bn'"]
        return
    assert memory.warnings == ()
    assert memory.activation_bytes == measured_activations(summary, batch), name


@pytest.mark.oracle
@pytest.mark.parametrize("optimizer", list(Optimizer))
@pytest.mark.parametrize("name", ["lenet5", "mnist-convnet", "resnet18"])
def test_parameters_gradients_and_optimizer_state_equal_torch(
    name: str, optimizer: Optimizer
) -> None:
    summary = summarize(name)
    ours = training_memory(summary, 2, optimizer)
    held, grads, state = measured_step(summary, optimizer)
    assert (ours.parameter_bytes, ours.gradient_bytes, ours.optimizer_bytes) == (
        held,
        grads,
        state,
    )


def test_breakdown_adds_up_and_scales_with_batch() -> None:
    s = summarize("resnet18")
    one, four = training_memory(s, 1), training_memory(s, 4)
    assert one.total_bytes == (
        one.parameter_bytes
        + one.gradient_bytes
        + one.optimizer_bytes
        + one.activation_bytes
        + one.input_bytes
    )
    assert four.input_bytes == 4 * one.input_bytes == 4 * 3 * 224 * 224 * 4
    assert one.gradient_bytes == 11_689_512 * 4  # torchvision's num_params, float32
    assert one.optimizer_bytes == 2 * one.gradient_bytes + 4 * 62  # Adam + a step per tensor
    half = training_memory(s, 1, Optimizer.SGD, DType.BFLOAT16)
    assert half.optimizer_bytes == 0 and half.gradient_bytes * 2 == one.gradient_bytes


def test_opaque_layer_makes_the_total_incomplete() -> None:
    s = summarize_text(
        "input: [3, 8, 8]\nlayers:\n  - {type: conv2d, filters: 4, kernel: 1}\n"
        "  - {type: opaque, op: Mystery, shape: [4, 8, 8]}\n",
        "m.yaml",
    )
    assert training_memory(s).not_counted == {"Mystery": 1}


# ------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        ["summary", "resnet18", "--train", "--batch", "8", "--optimizer", "momentum", "--json"],
        capsys,
    )
    assert code == 0, err
    tm = json.loads(out)["training_memory"]
    want: TrainingMemory = training_memory(summarize("resnet18"), 8, Optimizer.MOMENTUM)
    assert tm["batch"] == 8 and tm["optimizer"] == "momentum" and tm["dtype"] == "float32"
    assert tm["activation_bytes"] == want.activation_bytes
    assert tm["total_bytes"] == want.total_bytes
    assert tm["complete"] is True
    assert "PyTorch eager autograd" in tm["convention"]


def test_cli_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["summary", "lenet5", "--train"], capsys)
    assert code == 0, err
    assert "Training memory (batch 1, adam, float32)" in out
    assert "Activations kept for backward:" in out
    assert (
        "Not included: the gradients of activations backward creates as it goes, the allocator's caching"
        in out.replace("\n", " ").replace("  ", " ")
    )


def test_cli_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["summary", "lenet5", "--train", "--markdown"], capsys)
    assert code == 0, err
    assert "- Training memory, total:" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch", "4"], "--batch is for --train; add --train"),
        (
            ["--train", "--csv"],
            "--train prints totals, which --csv (one row per layer) has no place for",
        ),
        (["--train", "--batch", "0"], "Invalid value for '--batch'"),
        (["--train", "--optimizer", "rmsprop"], "Invalid value for '--optimizer'"),
    ],
)
def test_cli_errors(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["summary", "lenet5", *args], capsys)
    assert code == 2 and out == ""
    assert message in err


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("layers", "batch", "refused"),
    [
        ("{type: global_avgpool, keepdims: true}, {type: batchnorm}", 1, True),
        ("{type: global_avgpool, keepdims: true}, {type: batchnorm}", 2, False),
        ("{type: batchnorm}", 1, False),
        ("{type: global_avgpool, keepdims: true}, {type: instancenorm}", 2, True),
        ("{type: instancenorm}", 1, False),
    ],
)
def test_a_warning_exactly_where_pytorch_refuses_to_train(
    layers: str, batch: int, refused: bool
) -> None:
    summary = _model(layers)
    warned = bool(training_memory(summary, batch).warnings)
    try:
        measured_activations(summary, batch)
        raised = False
    except ValueError as err:
        assert "Expected more than 1" in str(err)
        raised = True
    assert (warned, raised) == (refused, refused)


def test_the_warning_is_one_stderr_line_and_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["summary", "inception_v3", "--train", "--json"], capsys)
    assert code == 0
    assert err.startswith("cnncli: warning: layer 'AuxLogits.conv1.bn' (batchnorm) ")
    assert err.endswith("use --batch 2 or more\n") and err.count("\n") == 1
    assert json.loads(out)["training_memory"]["warnings"] == [err[len("cnncli: warning: ") : -1]]
    code, out, err = run(["summary", "inception_v3", "--train", "--batch", "2"], capsys)
    assert (code, err) == (0, "")


@pytest.mark.oracle
@pytest.mark.parametrize("function", ACTIVATIONS)
def test_every_activation_fused_and_alone_equals_autograd(function: str) -> None:
    # A new activation name gets a rule by default (it keeps its input); this catches one whose
    # backward reads something else.
    for layers in (
        f"{{type: conv2d, filters: 4, kernel: 3, activation: {function}}}",
        f"{{type: activation, function: {function}}}",
    ):
        summary = _model(layers)
        assert training_memory(summary, 2).activation_bytes == measured_activations(summary, 2)
