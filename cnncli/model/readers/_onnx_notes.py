"""The notes under an ONNX model's table: what the reader did, and what the file lacks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cnncli.model.layers import show

if TYPE_CHECKING:
    from cnncli.model.readers._onnx_convert import Converter


def reader_notes(conv: Converter) -> list[str]:
    """What ``conv`` did and found, one sentence each, the shape check last."""
    notes = []
    folded = _bn_folded(conv)
    if folded:
        notes.append(
            f"batchnorm was folded into {folded} convolution"
            f"{'s' if folded > 1 else ''} by the PyTorch exporter: the file holds each one's "
            "weight and bias, not the batchnorm's scale, shift and running statistics, so it "
            "has fewer parameters than the PyTorch model"
        )
    notes += _external_notes(conv)
    if conv.options.input_shape is not None:
        sizes = ", ".join(map(str, conv.options.input_shape))
        notes.append(f"the input's sizes come from --input: ({sizes})")
    if conv.batch_symbol is not None:
        notes.append(
            f"the batch axis is symbolic ({conv.batch_symbol!r}): shapes leave it out and "
            "counts are for one sample"
        )
    elif conv.batch_value != 1:
        notes.append(
            f"the file fixes the batch to {conv.batch_value}: shapes leave it out and counts "
            "are for one sample"
        )
    if conv.stats.branches:
        n = conv.stats.branches
        notes.append(
            f"{n} If node{'s' if n > 1 else ''} on a condition known before the model runs "
            f"(shape arithmetic) {'were' if n > 1 else 'was'} read as the branch taken"
        )
    if conv.stats.folded:
        n = sum(conv.stats.folded.values())
        ops = ", ".join(op for op, _ in conv.stats.folded.most_common(6))
        notes.append(
            f"{n} node{'s' if n > 1 else ''} computing constants or shapes ({ops}) "
            "were folded into the layers that read them"
        )
    if conv.stats.derived:
        ops = ", ".join(conv.stats.derived)
        notes.append(
            f"{sum(conv.stats.derived.values())} node(s) computing tensors from constants "
            f"({ops}) were read for the shapes of their results only"
        )
    for what, n in conv.stats.fused.items():
        notes.append(f"{what}: {n} time{'s' if n > 1 else ''}")
    if conv.stats.channels_last:
        notes.append(
            f"{conv.stats.channels_last} layer(s) read a tensor permuted to channels last "
            "(PyTorch's permute before LayerNorm and Linear, as ConvNeXt does): cnncli reads "
            "them channels first - a Linear over the channels as a dense layer over the channels "
            "(axis: channels) - and checks their shapes against ONNX's permuted ones"
        )
    if conv.stats.split_pools:
        notes.append(
            f"{conv.stats.split_pools} pooling layer(s) pad one side more than the other, "
            "which no PyTorch pooling layer does: each is shown as a zeropad row, then the "
            "pooling without padding (the same output size)"
        )
    shared = sum(1 for n in conv.weight_uses.values() if n > 1)
    if shared:
        notes.append(
            f"{shared} weight tensor(s) are read by more than one layer (an exporter merges "
            "equal tensors): each layer counts its own"
        )
    if conv.stats.opaque_params:
        notes.append(
            f"opaque layers hold {conv.stats.opaque_params:,} parameters: the float tensors "
            "they read from the file"
        )
    checked = conv.stats.checked
    notes.append(
        "every layer's shape computed by cnncli agrees with ONNX shape inference "
        f"({checked} output{'s' if checked != 1 else ''} compared"
        + (f", {conv.stats.unchecked} left open by ONNX)" if conv.stats.unchecked else ")")
    )
    return notes


def _bn_folded(conv: Converter) -> int:
    """Convolutions the exporter folded a batchnorm into (0 when it did not happen)."""
    if conv.model.producer_name != "pytorch":
        return 0
    if any(n.op_type == "BatchNormalization" for n in conv.graph.node):
        return 0
    count = 0
    for node in conv.graph.node:
        if node.op_type != "Conv" or len(node.input) < 3 or not node.input[2]:
            continue
        rules = {p.key: p.value for p in node.metadata_props}.get(
            "pkg.onnxscript.rewriter.rule_name", ""
        )
        # TorchScript names computed (folded) tensors onnx::Conv_N, not conv1.bias;
        # the dynamo exporter records its rewrite rule.
        if "FuseBatchNorm" in rules or node.input[2].startswith("onnx::"):
            count += 1
    return count


def _external_notes(conv: Converter) -> list[str]:
    """One note per external data file that is missing (the summary needs none of it)."""
    notes = []
    for location, n in conv.external.items():
        if conv.external_file(location) is None:
            notes.append(
                f"the weights of {n} tensor{'s' if n > 1 else ''} are stored outside the "
                f"model in {show(location)}, which is missing: the summary needs only their "
                "shapes, which the model file holds"
            )
    return notes
