"""Model graph → shapes, parameters, MACs and receptive fields → :class:`Summary` (plain data).

The steps of :func:`build`: check the top-level keys, read the layout and framework, add the
inputs, expand the layers (:mod:`cnncli.model.graph`), compute every layer's output in
dependency order (:mod:`cnncli.model.layers`), then the rows (blocks carry their layers' sums)
and the totals. The Rich table, JSON, CSV and Markdown renderers in :mod:`cnncli.render.summary`
and the torch builder in :mod:`cnncli.model.torch_check` all read the same :class:`Summary`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cnncli import arithmetic as ar
from cnncli import limits
from cnncli.errors import CnnCliError, ModelError, UsageError, as_model_key
from cnncli.model.expressions import Params, check_param_name, substitute
from cnncli.model.graph import Expander, Node
from cnncli.model.layers import (
    LAYER_TYPES,
    SPLIT_OUTPUT,
    Ctx,
    LayerOut,
    TShape,
    closest,
    compute,
    show,
    whole,
)
from cnncli.model.load import Mapping, Seq, find_model, load_yaml, read_text
from cnncli.model.readers import ReadOptions, reader_for

# Sizes refused before any work (file bytes, YAML nodes, nesting, layers, block calls) are the
# work budget of cnncli.limits, which --limit changes for one run.
#: Bytes per element for the memory totals (float32, as torchinfo and Keras assume).
BYTES_PER_ELEMENT = 4
#: Elements of one tensor (one sample) past which a model is refused as absurd.
_MAX_ELEMENTS = 2**40

_TOP_KEYS = (
    "name",
    "description",
    "params",
    "variants",
    "input",
    "inputs",
    "layout",
    "framework",
    "blocks",
    "layers",
)
#: What a variant may set besides the top-level parameters.
_VARIANT_KEYS = ("description",)
_BLOCK_KEYS = ("params", "layers", "output", "description")


@dataclass(frozen=True)
class Row:
    """One line of the summary: a layer, or a block with its layers' sums."""

    name: str
    local: str
    depth: int
    kind: str  # "layer" or "block"
    type: str
    output_shape: tuple[int, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    inputs: tuple[str, ...]
    params: int
    trainable_params: int
    non_trainable_params: int
    macs: int
    bias_macs: int
    output_elements: int
    kernel: tuple[int, ...] | None
    stride: tuple[int, ...] | None
    dilation: tuple[int, ...] | None
    receptive_field: tuple[int, ...] | None
    jump: tuple[int, ...] | None
    activation: str | None
    line: int
    group: str | None
    #: Blocks: how many times the block repeats in this row (1 unless `repeat:`).
    repeat: int = 1
    #: Runs only in training (``training_only: true``): parameters count, MACs do not.
    training_only: bool = False
    #: A layer with several outputs (split): each output's shape; ``output_shape`` is then the
    #: shape they make together.
    output_shapes: tuple[tuple[int, ...], ...] = ()
    #: An opaque layer: the operator cnncli does not know (its MACs are not counted).
    op: str | None = None
    #: Layers in this row whose MACs are not counted (1 for an opaque layer; a block's sum).
    not_counted: int = 0


@dataclass(frozen=True)
class Totals:
    params: int
    trainable_params: int
    non_trainable_params: int
    macs: int
    flops: int
    bias_macs: int
    layers: int
    param_bytes: int
    activation_bytes: int
    input_bytes: int
    #: Operators cnncli does not know (opaque layers) → how many layers: their MACs are missing
    #: from ``macs``, which is then a lower bound. Empty when everything is counted.
    not_counted: dict[str, int] = field(default_factory=dict)


@dataclass
class Summary:
    """A model's summary: rows in file order, totals, and the graph for the torch builder."""

    name: str
    source: str
    layout: str
    framework: str
    inputs: dict[str, tuple[int, ...]]
    outputs: dict[str, tuple[int, ...]]
    rows: list[Row]
    totals: Totals
    count_bias: bool
    nodes: list[Node]
    ctx: Ctx
    #: One line each, for stderr: things that change no number (a momentum in the other
    #: framework's convention).
    warnings: list[str] = field(default_factory=list)
    #: One line each, printed under the table: what a reader of a non-YAML file did (see
    #: :mod:`cnncli.model.readers`).
    notes: list[str] = field(default_factory=list)

    def layers(self) -> list[Row]:
        return [r for r in self.rows if r.kind == "layer"]


OPAQUE = LAYER_TYPES["opaque"]


def not_counted_text(counts: dict[str, int]) -> str:
    """``NonMaxSuppression ×2, RoiAlign ×1``: the operators whose MACs are not counted."""
    return ", ".join(f"{op} ×{n}" for op, n in counts.items())


def require_counted(summary: Summary) -> None:
    """``--strict``: a ModelError naming every operator cnncli does not know, if there is one."""
    counts = summary.totals.not_counted
    if counts:
        n = sum(counts.values())
        raise ModelError(
            f"{summary.source}: the MACs of {n:,} layer{'s' if n > 1 else ''} cannot be counted "
            f"(opaque: operators cnncli does not know or cannot express): "
            f"{not_counted_text(counts)}"
        )


def unknown_size(shape: TShape) -> bool:
    """A shape with a size known only when the model runs (0, from an opaque layer)."""
    return shape.channels == 0 or 0 in shape.spatial


def _shape_arg(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ModelError(f"{where} must be a list of sizes like [3, 224, 224], got {show(value)}")
    if not 1 <= len(value) <= 4:
        raise ModelError(
            f"{where} {value} has {len(value)} sizes; give channels and 0 to 3 spatial sizes, without the batch"
        )
    return [whole(v, f"{where} size") for v in value]


def _at(label: str, item: Any, msg: str) -> ModelError:
    line = getattr(item, "line", 0)
    return ModelError(
        f"{label}:{line}:{getattr(item, 'col', 0)}: {msg}" if line else f"{label}: {msg}"
    )


def build(data: Any, label: str, count_bias: bool = False, variant: str | None = None) -> Summary:
    """Turn parsed YAML into a :class:`Summary` (every error names ``label:line:col``).

    ``variant`` picks one of the file's ``variants:`` (default: the first); the summary is
    then named after it.
    """
    if not isinstance(data, Mapping):
        raise ModelError(
            f"{label}: a model file is a mapping with input: and layers: (see docs/model-format.md)"
        )
    _check_top_keys(data, label)
    chosen, params = _model_params(data, label, variant)
    layout, ctx = _conventions(data, label)
    raw_inputs = _raw_inputs(data, label, params)
    b = Expander(label, ctx, lambda node: _compute_node(b, node, ctx))
    b.blocks = _blocks(data, label)
    scope: dict[str, str] = {}
    first = _add_inputs(b, data, raw_inputs, scope, label)
    if not data.get("layers"):
        raise _at(
            label,
            data,
            "the model has no layers; list them under layers: (see docs/model-format.md)",
        )
    b.expand(data["layers"], data, params, "", scope, first, None, 0)
    b.resolve_refs()
    ordered = b.topo()
    for node in ordered:
        if node.out is None:  # not computed yet for a block's $in_channels & co.
            _compute_node(b, node, ctx)
    inputs = {n: b.nodes[n].out.shape for n in raw_inputs}  # type: ignore[union-attr]
    consumed = {i for n in b.order for i in n.inputs}
    visible = [n for n in b.order if not n.hidden]
    outputs = [
        n for n in b.order if n.name not in consumed and not n.hidden and not n.training_only
    ] or visible[-1:]
    last = ctx.channels_last
    return Summary(
        name=chosen or str(data.get("name") or Path(label).stem),
        source=label,
        layout=layout,
        framework=ctx.framework.value,
        inputs={k: v.dims(last) for k, v in inputs.items()},
        outputs={n.name: n.out.shape.dims(last) for n in outputs if n.out},
        rows=_rows(b, ctx, count_bias),
        totals=_totals(visible, list(inputs.values()), count_bias),
        count_bias=count_bias,
        nodes=list(ordered),
        ctx=ctx,
        warnings=_warnings(visible, label),
    )


def _warnings(visible: list[Node], label: str) -> list[str]:
    """Each layer warning once, at its first layer, with how many more layers share it."""
    seen: dict[str, list[Node]] = {}
    for n in visible:
        if n.out is not None and n.out.warning:
            seen.setdefault(n.out.warning, []).append(n)
    out = []
    for text, nodes in seen.items():
        first = nodes[0]
        rest = len(nodes) - 1
        more = f" (and {rest} more layer{'s' if rest > 1 else ''})" if rest else ""
        out.append(
            f"{label}:{first.line}:{first.col}: layer {show(first.name)} ({first.kind.name}): "
            f"{text}{more}"
        )
    return out


def _check_top_keys(data: Mapping, label: str) -> None:
    for key in data:
        if key not in _TOP_KEYS:
            raise _at(
                label,
                data,
                f"unknown top-level key {show(key)}{closest(key, _TOP_KEYS)} "
                f"(keys: {', '.join(_TOP_KEYS)})",
            )
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise _at(label, data, f"{key} must be text, got {show(data[key])}")


def _conventions(data: Mapping, label: str) -> tuple[str, Ctx]:
    """``layout:`` and ``framework:`` (Keras's rules by default for channels_last)."""
    layout = data.get("layout", "channels_first")
    if layout not in ("channels_first", "channels_last"):
        raise _at(
            label,
            data,
            f"layout {show(layout)} is not known; "
            "use channels_first (PyTorch) or channels_last (Keras)",
        )
    last = layout == "channels_last"
    fw_raw = data.get("framework", "keras" if last else "torch")
    try:
        framework = ar.Framework(fw_raw)
    except ValueError:
        raise _at(
            label, data, f"framework {show(fw_raw)} is not known; use torch, keras or tf"
        ) from None
    return layout, Ctx(framework, last)


def _model_params(data: Mapping, label: str, variant: str | None) -> tuple[str | None, Params]:
    """The top-level ``params:`` with the chosen variant's values, and the variant's name.

    Every variant is checked (not only the chosen one): a typo in any of them is an error.
    """
    defaults = data.get("params")
    if defaults is None:
        defaults = {}
    if not isinstance(defaults, dict):
        raise _at(
            label, data, "params: must map parameter names to default values, e.g. {width: 64}"
        )
    for name, value in defaults.items():
        try:
            check_param_name(name, "the model")
            _kind(value)
        except ModelError as err:
            raise _at(label, defaults, str(err)) from None
    params = Params(defaults)
    params.top = True
    variants = data.get("variants")
    if variants is None:
        if variant is not None:
            raise _at(
                label, data, f"there is no variant {show(variant)}: the file declares no variants:"
            )
        return None, params
    if not isinstance(variants, dict) or not variants:
        raise _at(
            label,
            data,
            "variants: must map model names to parameter values, "
            "e.g. variants: {resnet50: {depths: [3, 4, 6, 3]}}",
        )
    for vname, values in variants.items():
        _check_variant(label, vname, values, defaults, variants)
    chosen = next(iter(variants)) if variant is None else variant
    if chosen not in variants:
        raise _at(
            label,
            variants,
            f"unknown variant {show(chosen)}{closest(chosen, list(variants))} "
            f"(variants: {', '.join(variants)})",
        )
    params.update((k, v) for k, v in (variants[chosen] or {}).items() if k not in _VARIANT_KEYS)
    return chosen, params


def _kind(value: Any) -> str:
    """What a parameter holds, as messages say it: a number, true or false, text or a list."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    raise ModelError(
        f"a parameter holds a number, true or false, text or a list, got {show(value)}"
    )


def _check_variant(
    label: str, vname: Any, values: Any, defaults: dict[str, Any], variants: Any
) -> None:
    """A variant: a model name mapping declared parameters to values of the defaults' kinds."""
    where = values if isinstance(values, Mapping) else variants
    if not re.fullmatch(r"[A-Za-z0-9_][\w.\-]*", vname):
        raise _at(
            label, where, f"variant name {show(vname)} must be a word (letters, digits, _ . -)"
        )
    if values is None:
        return
    if not isinstance(values, dict):
        raise _at(
            label,
            where,
            f"variant {show(vname)} must map parameters to values, e.g. {{width: 64}}, "
            f"got {show(values)}",
        )
    for key, value in values.items():
        if key == "description":
            if not isinstance(value, str):
                raise _at(label, where, f"description of variant {show(vname)} must be text")
            continue
        if key not in defaults:
            listing = (
                f"parameters: {', '.join(defaults)}" if defaults else "the file declares no params:"
            )
            raise _at(
                label,
                where,
                f"variant {show(vname)} sets {show(key)}, which is not a parameter"
                f"{closest(key, list(defaults))} ({listing})",
            )
        try:
            given = _kind(value)
        except ModelError as err:
            raise _at(label, where, f"variant {show(vname)}, {key}: {err}") from None
        if defaults[key] is not None and given != _kind(defaults[key]):
            raise _at(
                label,
                where,
                f"variant {show(vname)} sets {key} to {show(value)}; the parameter holds "
                f"{_kind(defaults[key])} (its default is {show(defaults[key])})",
            )


def _raw_inputs(data: Mapping, label: str, params: Params) -> dict[str, Any]:
    if ("input" in data) == ("inputs" in data):
        raise _at(
            label,
            data,
            "give the input shape once: input: [3, 224, 224] (or inputs: {name: shape})",
        )
    raw_inputs = {"input": data["input"]} if "input" in data else data["inputs"]
    if not isinstance(raw_inputs, dict) or not raw_inputs:
        raise _at(
            label, data, "inputs: must map names to shapes, e.g. inputs: {image: [3, 224, 224]}"
        )
    out = {}
    for name, shape in raw_inputs.items():
        try:
            out[name] = substitute(shape, params)
        except ModelError as err:
            raise _at(label, shape if isinstance(shape, Seq) else data, str(err)) from None
    return out


def _blocks(data: Mapping, label: str) -> dict[str, Mapping]:
    """The ``blocks:`` definitions, each checked for its keys."""
    blocks = data.get("blocks") or {}
    if not isinstance(blocks, dict):
        raise _at(label, data, "blocks: must map block names to {params:, layers:}")
    for bname, block in blocks.items():
        if not isinstance(block, Mapping) or "layers" not in block:
            raise _at(
                label,
                block if isinstance(block, Mapping) else data,
                f"block {show(bname)} needs layers:",
            )
        for key in block:
            if key not in _BLOCK_KEYS:
                raise _at(
                    label,
                    block,
                    f"unknown key {show(key)} in block {show(bname)}"
                    f"{closest(key, _BLOCK_KEYS)} (keys: {', '.join(_BLOCK_KEYS)})",
                )
        if "description" in block and not isinstance(block["description"], str):
            raise _at(label, block, f"description of block {show(bname)} must be text")
        if block.get("params") is not None and not isinstance(block["params"], dict):
            raise _at(
                label, block, f"params of block {show(bname)} must map names to default values"
            )
        for name in block.get("params") or {}:
            try:
                check_param_name(name, f"block {show(bname)}")
            except ModelError as err:
                raise _at(label, block["params"], str(err)) from None
    return dict(blocks)


def _add_inputs(
    b: Expander,
    data: Mapping,
    raw_inputs: dict[str, Any],
    scope: dict[str, str],
    label: str,
) -> str | None:
    """One input node per input shape; returns the first one's name (the default input)."""
    last = b.ctx.channels_last
    first: str | None = None
    for iname, shape in raw_inputs.items():
        try:
            dims = _shape_arg(shape, f"input {show(iname)}" if "inputs" in data else "input")
        except ModelError as err:
            raise _at(label, shape if isinstance(shape, Seq) else data, str(err)) from None
        channels = dims[-1] if last else dims[0]
        spatial = tuple(dims[:-1] if last else dims[1:])
        ts = TShape(channels, spatial)
        if ts.elements > _MAX_ELEMENTS:
            raise _at(
                label,
                data,
                f"input {show(iname)} has {ts.elements:,} elements; that is absurd for one sample",
            )
        node = Node(
            str(iname),
            str(iname),
            LAYER_TYPES["identity"],
            {"_type": "input"},
            [],
            scope,
            None,
            data.line,
            data.col,
            None,
            0,
            is_input=True,
        )
        node.out = LayerOut(ts)
        node.rf = tuple(ar.Receptive() for _ in spatial) or None
        scope[str(iname)] = str(iname)
        b.nodes[str(iname)] = node
        first = first or str(iname)
    return first


def _compute_node(b: Expander, node: Node, ctx: Ctx) -> None:
    """A layer's output, parameters, MACs and receptive field from its inputs' shapes."""
    ins = [b.nodes[n] for n in node.inputs]
    shapes = [n.out.shape for n in ins if n.out is not None]
    try:
        _refuse_whole_split(node, ins)
        _refuse_unknown_sizes(node, ins)
        if node.hidden and node.kind is not SPLIT_OUTPUT:
            # Switched off: passes its first input on unchanged.
            out = LayerOut(shapes[0])
        else:
            names = [n.local if n.group == node.group else n.name for n in ins]
            out = compute(node.kind, node.opts, shapes, names, ctx)
        if out.shape.elements > _MAX_ELEMENTS:
            raise ModelError(f"output of {out.shape.elements:,} elements is absurd for one sample")
    except (ModelError, UsageError) as err:
        raise b.at(
            node, f"layer {show(node.name)} ({node.kind.name}): {err.worded(as_model_key)}"
        ) from None
    # What an auxiliary branch feeds runs only in training too.
    node.training_only = node.training_only or any(n.training_only for n in ins)
    if node.training_only:
        out = replace(out, macs=0, bias_macs=0)
    node.out = out
    node.rf = _receptive(node, [n.rf for n in ins], shapes)
    if not node.trainable:
        node.out = LayerOut(
            **{**out.__dict__, "trainable": 0, "non_trainable": out.trainable + out.non_trainable}
        )


def _refuse_unknown_sizes(node: Node, ins: list[Node]) -> None:
    """Only another opaque layer may read a tensor whose sizes are known only at run time."""
    if node.kind is OPAQUE or node.kind is SPLIT_OUTPUT:
        return
    for i in ins:
        if i.out is not None and unknown_size(i.out.shape):
            raise ModelError(
                f"reads {show(i.local)}, whose sizes are known only when the model runs (0 in "
                "its shape); cnncli cannot compute this layer from it: make it opaque too"
            )


def _refuse_whole_split(node: Node, ins: list[Node]) -> None:
    """A split's outputs are read one by one (``NAME.0``); the split itself is not a tensor."""
    if node.kind is SPLIT_OUTPUT:
        return
    for i in ins:
        if i.out is not None and i.out.outputs and not i.hidden:
            outs = ", ".join(f"{i.local}.{k}" for k in range(len(i.out.outputs)))
            raise ModelError(
                f"reads the split {show(i.local)}, which has the outputs {outs}; name one with "
                f"input: {i.local}.0"
            )


def _totals(visible: list[Node], inputs: list[TShape], count_bias: bool) -> Totals:
    """Sums over the layers that get a row (switched-off layers excluded)."""
    outs = [n.out for n in visible if n.out]
    running = [n.out for n in visible if n.out and not n.training_only]
    opaque = Counter(n.opts["op"] for n in visible if n.kind is OPAQUE and not n.training_only)
    trainable = sum(o.trainable for o in outs)
    non_trainable = sum(o.non_trainable for o in outs)
    bias_macs = sum(o.bias_macs for o in outs)
    macs = sum(o.macs for o in outs) + (bias_macs if count_bias else 0)
    return Totals(
        params=trainable + non_trainable,
        trainable_params=trainable,
        non_trainable_params=non_trainable,
        macs=macs,
        flops=2 * macs,
        bias_macs=bias_macs,
        layers=len(visible),
        param_bytes=(trainable + non_trainable) * BYTES_PER_ELEMENT,
        activation_bytes=sum(o.shape.elements for o in running) * BYTES_PER_ELEMENT,
        input_bytes=sum(s.elements for s in inputs) * BYTES_PER_ELEMENT,
        not_counted=dict(opaque),
    )


def _receptive(
    node: Node, ins: list[tuple[ar.Receptive, ...] | None], shapes: list[TShape]
) -> tuple[ar.Receptive, ...] | None:
    out = node.out
    assert out is not None
    if len(ins) > 1:
        # A (C, 1, 1) gate broadcast over the other input (squeeze-and-excite) sees everything;
        # it does not limit what the merge's output sees.
        ins = [
            r for r, s in zip(ins, shapes, strict=True) if r is not None or set(s.spatial) != {1}
        ]
    if not out.shape.spatial or any(r is None for r in ins) or not ins:
        return None
    base: list[ar.Receptive] = []
    for axis in zip(*[r for r in ins if r is not None], strict=False):
        base.append(ar.Receptive(max(a.size for a in axis), max(a.jump for a in axis)))
    if len(base) != len(out.shape.spatial):
        return None
    if out.rf == "window" and out.kernel and out.stride and out.dilation:
        return tuple(
            r.then(k, s, d)
            for r, k, s, d in zip(base, out.kernel, out.stride, out.dilation, strict=True)
        )
    if out.rf == "keep":
        return tuple(base)
    return None


def _rows(b: Expander, ctx: Ctx, count_bias: bool) -> list[Row]:
    last = ctx.channels_last

    def layer_row(n: Node) -> Row:
        o = n.out
        assert o is not None
        ins = [b.nodes[i] for i in n.inputs]
        rf = n.rf
        return Row(
            name=n.name,
            local=n.local,
            depth=n.depth,
            kind="layer",
            type=n.kind.name,
            output_shape=o.shape.dims(last),
            input_shapes=tuple(i.out.shape.dims(last) for i in ins if i.out),
            inputs=tuple(_visible(b, i).name for i in ins),
            params=o.trainable + o.non_trainable,
            trainable_params=o.trainable,
            non_trainable_params=o.non_trainable,
            macs=o.macs + (o.bias_macs if count_bias else 0),
            bias_macs=o.bias_macs,
            output_elements=o.shape.elements,
            kernel=o.kernel,
            stride=o.stride,
            dilation=o.dilation,
            receptive_field=tuple(r.size for r in rf) if rf else None,
            jump=tuple(r.jump for r in rf) if rf else None,
            activation=n.opts.get("activation") or n.opts.get("function"),
            line=n.line,
            group=n.group,
            training_only=n.training_only,
            output_shapes=tuple(p.dims(last) for p in o.outputs),
            op=n.opts["op"] if n.kind is OPAQUE else None,
            not_counted=_not_counted(n),
        )

    layer_rows = {n.name: layer_row(n) for n in b.order if not n.hidden}
    # Blocks: sums of everything inside (any depth).
    sums: dict[str, list[int]] = {g: [0, 0, 0, 0, 0, 0] for g in b.groups}
    for n in b.order:
        if n.hidden or n.out is None:
            continue
        g = n.group
        while g is not None:
            s = sums[g]
            s[0] += n.out.trainable
            s[1] += n.out.non_trainable
            s[2] += n.out.macs + (n.out.bias_macs if count_bias else 0)
            s[3] += n.out.bias_macs
            s[4] += 0 if n.training_only else n.out.shape.elements
            s[5] += _not_counted(n)
            g = b.groups[g].parent
    rows: list[Row] = []
    starts: dict[int, list[str]] = {}
    for pos, gname in b.group_order:
        starts.setdefault(pos, []).append(gname)
    for i, n in enumerate(b.order):
        for gname in starts.get(i, []):
            grp = b.groups[gname]
            out = b.nodes[grp.output]
            s = sums[gname]
            rows.append(
                Row(
                    name=grp.name,
                    local=grp.local,
                    depth=grp.depth,
                    kind="block",
                    type=grp.block,
                    output_shape=out.out.shape.dims(last) if out.out else (),
                    input_shapes=(),
                    inputs=(),
                    params=s[0] + s[1],
                    trainable_params=s[0],
                    non_trainable_params=s[1],
                    macs=s[2],
                    bias_macs=s[3],
                    output_elements=s[4],
                    kernel=None,
                    stride=None,
                    dilation=None,
                    receptive_field=tuple(r.size for r in out.rf) if out.rf else None,
                    jump=tuple(r.jump for r in out.rf) if out.rf else None,
                    activation=None,
                    line=grp.line,
                    group=grp.parent,
                    repeat=grp.repeat,
                    not_counted=s[5],
                )
            )
        if n.name in layer_rows:
            rows.append(layer_rows[n.name])
    return rows


def _not_counted(node: Node) -> int:
    """1 for an opaque layer that runs at inference (its MACs are missing from the totals)."""
    return int(node.kind is OPAQUE and not node.training_only)


def _visible(b: Expander, node: Node) -> Node:
    # A hidden pass-through (if: false, or a block's named input) shows as what it passes on;
    # a split's output shows as itself (NAME.1).
    while node.hidden and node.inputs and node.kind is not SPLIT_OUTPUT:
        node = b.nodes[node.inputs[0]]
    return node


def summarize(
    source: str,
    count_bias: bool = False,
    variant: str | None = None,
    options: ReadOptions | None = None,
) -> Summary:
    """Load a model file (or a zoo name, which may name a variant) and summarise it.

    ONNX, Keras and PyTorch sources go through their reader (:mod:`cnncli.model.readers`) into
    the same model-format data a YAML file gives; ``options`` carries ``--input``.
    """
    reader = reader_for(source)
    if reader is not None:
        if variant is not None:
            raise UsageError("{opt:variant} is for model files with variants:; drop it")
        read = reader(source, options or ReadOptions())
        summary = build(read.data, read.label, count_bias)
        summary.notes = list(read.notes)
        if read.check is not None:
            read.check(summary)
        return summary
    if options is not None and options.input_shape is not None:
        raise UsageError(
            "{opt:input} is for ONNX, Keras and PyTorch models; a YAML model gives its input: "
            "itself (edit the file, or use a variant)"
        )
    ref = find_model(source)
    if variant is not None and ref.variant not in (None, variant):
        raise ModelError(
            f"{source} names one model of the zoo already (variant {ref.variant} of "
            f"{ref.path.name}); for the variant {variant}, give {variant} instead"
        )
    return summarize_text(read_text(ref.path), str(ref.path), count_bias, variant or ref.variant)


def summarize_text(
    text: str, label: str = "<model>", count_bias: bool = False, variant: str | None = None
) -> Summary:
    """Summarise a model given as YAML text (``label`` names it in errors)."""
    try:
        return build(load_yaml(text, label), label, count_bias, variant)
    except RecursionError:
        # Only when --limit nesting was raised far above its default.
        raise ModelError(
            f"{label}: the model nests too deeply for Python's stack; keep the nesting limit "
            f"near its default of {limits.LIMITS['nesting'].default}"
        ) from None
    except (ModelError, limits.LimitError):
        raise
    except CnnCliError as err:
        raise ModelError(f"{label}: {err.worded(as_model_key)}") from None
