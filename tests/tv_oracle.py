"""torchvision as the oracle for the zoo: published numbers and every parameterised module.

torchvision 0.29's compiled ops do not load with this torch, but its model definitions are plain
``torch.nn``: ``torch.library.register_fake`` is replaced by a no-op before the import. Models are
built on the ``meta`` device (PyTorch's shape rules, no weights allocated).

What is compared for a zoo model (see :func:`mismatches`):

- the published ``num_params`` and GFLOPS (``_ops``) of the model's DEFAULT weights, at the
  weights' own crop size (299 for Inception v3, 600 for EfficientNet-B7, …);
- the non-trainable count: the batchnorm running statistics (buffers) of the real model;
- MACs counted from the real model's convolution and linear modules (fvcore's convention, bias
  excluded), exactly, not just to the three published decimals;
- every module that holds parameters or buffers itself (``recurse=False``), each call: its output
  shape (without batch) and its own parameter + buffer count, as a multiset against our rows with
  parameters. A module like ConvNeXt's block that holds ``layer_scale`` directly counts as one
  entry with its output shape, as our ``layer_scale`` row does.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cnncli.model import Summary

#: The classification models of torchvision.models that are CNNs (not ViT, Swin or MaxViT).
TRANSFORMERS = ("vit_", "swin_", "maxvit_")


@functools.cache
def torchvision_models() -> Any:
    """``torchvision.models``, importable here (skips the test without torch/torchvision)."""
    torch = pytest.importorskip("torch")
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed (pip install --no-deps torchvision==0.29.1)")

    def no_op(*args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        return lambda fn: fn

    torch.library.register_fake = no_op
    import torchvision.models as tvm

    return tvm


def cnn_names() -> list[str]:
    """Every classification CNN torchvision 0.29 builds by name."""
    tvm = torchvision_models()
    return [n for n in tvm.list_models(module=tvm) if not n.startswith(TRANSFORMERS)]


@dataclass(frozen=True)
class Published:
    num_params: int
    gflops: float  # torchvision's "GFLOPS" column: fvcore MACs of one image, in 10^9
    size: int  # the DEFAULT weights' crop size


def published(name: str) -> Published:
    weights = torchvision_models().get_model_weights(name).DEFAULT
    crop = weights.transforms().crop_size
    return Published(weights.meta["num_params"], weights.meta["_ops"], int(crop[0]))


@dataclass(frozen=True)
class Measured:
    """What the real model does on one ``(3, size, size)`` image, measured with hooks."""

    trainable: int
    non_trainable: int
    macs: int
    output: tuple[int, ...]
    #: (output shape without batch, own parameters + buffers) per call of a module holding any.
    entries: Counter[tuple[tuple[int, ...], int]]


def _own_count(module: Any) -> int:
    params = sum(p.numel() for p in module.parameters(recurse=False))
    buffers = sum(
        b.numel() for n, b in module.named_buffers(recurse=False) if n != "num_batches_tracked"
    )
    return int(params + buffers)


@contextlib.contextmanager
def _weights_on_meta(torch: Any) -> Iterator[None]:
    """Parameters and buffers go to the meta device as modules register them.

    ``with torch.device("meta")`` would be simpler, but RegNet computes its stage widths with
    tensors in its constructor, which the meta device cannot read back.
    """
    module = torch.nn.Module
    register_parameter, register_buffer = module.register_parameter, module.register_buffer

    def parameter(self: Any, name: str, param: Any) -> None:
        if param is not None:
            param = torch.nn.Parameter(param.to("meta"), param.requires_grad)
        register_parameter(self, name, param)

    def buffer(self: Any, name: str, tensor: Any, persistent: bool = True) -> None:
        register_buffer(self, name, None if tensor is None else tensor.to("meta"), persistent)

    module.register_parameter, module.register_buffer = parameter, buffer
    try:
        yield
    finally:
        module.register_parameter, module.register_buffer = register_parameter, register_buffer


#: Keyword arguments that build the model as its published weights do: GoogLeNet's weights drop
#: the auxiliary classifiers, Inception v3's keep them (they hold parameters but do not run in
#: eval mode, so they add parameters and no MACs).
BUILD_ARGS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": False},
    "inception_v3": {"init_weights": False},
}


def _channels_first(module: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A Linear or LayerNorm applied to (H, W, C) - ConvNeXt's permuted block - as (C, H, W).

    The format writes these as a layernorm and a dense layer over the channels (``axis:
    channels``), in the channels-first order every other row uses. ConvNeXt's
    LayerNorm2d (channels first already) and a Linear on a flat vector are left alone.
    """
    import torch

    if len(shape) < 2:
        return shape
    if isinstance(module, torch.nn.Linear):
        features = module.out_features
    elif isinstance(module, torch.nn.LayerNorm) and type(module) is torch.nn.LayerNorm:
        features = module.normalized_shape[-1]
    else:
        return shape
    if shape[-1] == features and shape[0] != features:
        return (shape[-1], *shape[:-1])
    return shape


@functools.cache
def measure(name: str, size: int) -> Measured:
    tvm = torchvision_models()
    import torch

    with _weights_on_meta(torch):
        model = tvm.get_model(name, weights=None, **BUILD_ARGS.get(name, {})).eval()
    entries: Counter[tuple[tuple[int, ...], int]] = Counter()
    macs = [0]

    def hook(module: Any, args: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            own = _own_count(module)
            if own:
                entries[(_channels_first(module, tuple(out.shape[1:])), own)] += 1
            if isinstance(module, torch.nn.modules.conv._ConvNd):
                per_out = module.in_channels // module.groups
                for k in module.kernel_size:
                    per_out *= k
                macs[0] += out.numel() * per_out
            elif isinstance(module, torch.nn.Linear):
                macs[0] += out.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            out = model(torch.empty(1, 3, size, size, device="meta"))
    finally:
        for h in handles:
            h.remove()
    trainable = sum(p.numel() for p in model.parameters())
    non_trainable = sum(
        b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")
    )
    return Measured(int(trainable), int(non_trainable), macs[0], tuple(out.shape[1:]), entries)


def our_entries(summary: Summary) -> Counter[tuple[tuple[int, ...], int]]:
    """Our layer rows with parameters, as (output shape, params) - channels first.

    Training-only rows (Inception v3's AuxLogits) are left out: torchvision does not run them in
    eval mode, so the hooks never see them; their parameters are checked in the totals.
    """
    return Counter(
        (r.output_shape, r.params) for r in summary.layers() if r.params and not r.training_only
    )


def mismatches(name: str, summary: Summary, measured: Measured) -> list[str]:
    """Every way the summary differs from the real model (empty when they agree)."""
    t = summary.totals
    bad = []
    if t.trainable_params != measured.trainable:
        bad.append(f"trainable {t.trainable_params:,} != torchvision {measured.trainable:,}")
    if t.non_trainable_params != measured.non_trainable:
        bad.append(
            f"non-trainable {t.non_trainable_params:,} != torchvision {measured.non_trainable:,}"
        )
    if t.macs != measured.macs:
        bad.append(f"MACs {t.macs:,} != torchvision conv+linear {measured.macs:,}")
    outputs = list(summary.outputs.values())
    if outputs[-1:] != [measured.output]:
        bad.append(f"outputs {outputs} != torchvision {measured.output}")
    ours = our_entries(summary)
    missing = measured.entries - ours
    extra = ours - measured.entries
    if missing or extra:
        bad.append(
            f"layers with parameters differ: torchvision only {sorted(missing.items())[:5]}, "
            f"ours only {sorted(extra.items())[:5]}"
        )
    return bad
