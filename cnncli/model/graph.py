"""The model graph: layers and block calls expanded into :class:`Node` objects, then wired.

:class:`Expander` walks ``layers:`` lists, unrolls block calls (``repeat``, ``first``, ``if``;
one or several inputs, ``input.0``, ``input.1``… inside; a repetition reads the output before it
and the inputs of that one less the last), qualifies names (``layer1.0.conv1``; a repeated call's
outputs ``layer1.0``, ``layer1.1``…), and keeps every item's line and column. Every expanded
item counts against the work budget (``layers``, ``block-calls``, ``yaml-nodes``, ``nesting``).
:meth:`Expander.resolve_refs` turns ``input:`` names into nodes and :meth:`Expander.topo`
orders them (refusing cycles); shapes are computed afterwards by :mod:`cnncli.model.build`,
except those a block reads through ``$in_channels`` & co., which :meth:`Expander.settle`
computes during expansion with the same rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cnncli import arithmetic as ar
from cnncli import limits
from cnncli.errors import ModelError, as_model_key
from cnncli.model.expressions import Params, computed, substitute
from cnncli.model.layers import (
    KERAS_NAMES,
    LAYER_TYPES,
    SPLIT_OUTPUT,
    Ctx,
    LayerOut,
    LayerType,
    TShape,
    canonical_options,
    closest,
    flag,
    layer_type,
    show,
    split_count,
    whole,
)
from cnncli.model.load import Mapping, Seq

_LAYER_RESERVED = ("type", "name", "input", "trainable", "if", "training_only")
_CALL_RESERVED = ("block", "name", "input", "repeat", "first", "if", "training_only")


@dataclass
class Node:
    """One layer after expansion (blocks unrolled, names qualified)."""

    name: str
    local: str
    kind: LayerType
    opts: dict[str, Any]
    refs: list[str] | None
    scope: dict[str, str]
    default_input: str | None
    line: int
    col: int
    group: str | None
    depth: int
    trainable: bool = True
    #: A layer switched off by `if:` - passes its input through and gets no row.
    hidden: bool = False
    #: ``training_only: true`` (or fed by such a layer): an auxiliary branch that runs only in
    #: training - its parameters count, its MACs and activations do not, and it is no output.
    training_only: bool = False
    inputs: list[str] = field(default_factory=list)
    out: LayerOut | None = None
    rf: tuple[ar.Receptive, ...] | None = None
    is_input: bool = False
    #: How messages name the node when not ``layer 'LOCAL'`` (a block call's input).
    shown: str | None = None


@dataclass
class Group:
    """A block instance (or the group of a repeated block's instances)."""

    name: str
    local: str
    block: str
    line: int
    col: int
    parent: str | None
    depth: int
    output: str = ""
    repeat: int = 1


@dataclass(frozen=True)
class _Call:
    """One ``- block:`` item, read and checked (``params`` are the block's defaults overridden)."""

    block_name: str
    block: Mapping
    params: dict[str, Any]
    first: dict[str, Any]
    repeat: int
    #: ``repeat:`` given (even ``repeat: 1``): each instance gets its own numbered row.
    repeated: bool
    cond: bool
    name: str
    #: ``input:`` of the call: one name or several (a block with several inputs).
    refs: list[str] | None
    training_only: bool


def switch(value: Any) -> bool:
    """An ``if:`` value: true or false, or a number such as ``$stride - 1`` (0 is off, any
    other number on, as Python reads a number as a truth value)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) or isinstance(value, float) and math.isfinite(value):
        return value != 0
    raise ModelError(f"if must be true, false or a number (0 is off), got {show(value)}")


def _known_params(
    block_name: str, given: dict[str, Any], defaults: dict[str, Any], listed: bool
) -> None:
    """Refuse a parameter the block does not declare (``listed``: name the ones it has)."""
    for key in given:
        meaning = computed(key)
        if meaning is not None:
            raise ModelError(
                f"block {show(block_name)} is given {key}, but ${key} is {meaning}, computed "
                "for each instance; leave it out"
            )
        if key not in defaults:
            more = ""
            if listed:
                more = f" (parameters: {', '.join(defaults)})" if defaults else " (it takes none)"
            raise ModelError(
                f"block {show(block_name)} has no parameter {show(key)}"
                f"{closest(key, list(defaults))}{more}"
            )


class Expander:
    """Expands a model's ``layers:`` into nodes (see the module docstring)."""

    def __init__(self, label: str, ctx: Ctx, compute: Callable[[Node], None]) -> None:
        self.label = label
        self.ctx = ctx
        #: Sets a node's ``out`` (and ``rf``) from its inputs' (build.py's rule).
        self.compute = compute
        self.nodes: dict[str, Node] = {}
        self.order: list[Node] = []
        self.groups: dict[str, Group] = {}
        self.group_order: list[tuple[int, str]] = []  # (position in order, group) for rows
        self.blocks: dict[str, Mapping] = {}
        self.count = 0  # layers expanded so far
        self.calls = 0  # block instances expanded so far (and calls switched off by if:)
        self.work = 0  # YAML nodes of the layer and call items expanded so far
        self.stack: list[str] = []

    # -- errors --------------------------------------------------------------------------
    def at(self, item: Any, message: str) -> ModelError:
        line = getattr(item, "line", 0)
        col = getattr(item, "col", 0)
        if line:
            return ModelError(f"{self.label}:{line}:{col}: {message}")
        # Data from a reader (ONNX, Keras, PyTorch) has no positions: its layers have names.
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and not message.startswith("layer "):
            return ModelError(f"{self.label}: layer {show(name)}: {message}")
        return ModelError(f"{self.label}: {message}")

    # -- expansion -----------------------------------------------------------------------
    def expand(
        self,
        items: Any,
        where: Any,
        params: dict[str, Any],
        prefix: str,
        scope: dict[str, str],
        prev: str | None,
        group: str | None,
        depth: int,
    ) -> str | None:
        if not isinstance(items, list):
            raise self.at(where, "layers must be a list of layers (one '- type: …' per layer)")
        counters: dict[str, int] = {}
        for item in items:
            if not isinstance(item, Mapping):
                raise self.at(
                    item if isinstance(item, Seq) else where,
                    f"each layer is a mapping like '- type: conv2d', got {show(item)}",
                )
            # Blocks and repeat multiply the YAML: each expanded item costs its nodes again.
            self.work += item.size
            if self.work > limits.get("yaml-nodes"):
                limits.check(
                    "yaml-nodes",
                    self.work,
                    f"{self.label}:{item.line}:{item.col}: the layers expand to at least "
                    f"{self.work:,} YAML nodes through blocks and repeat",
                )
            if "block" in item:
                prev = self.call(item, params, prefix, scope, prev, group, depth, counters)
            else:
                prev = self.layer(item, params, prefix, scope, prev, group, depth, counters)
        return prev

    def _name(
        self,
        item: Mapping,
        base: str,
        scope: dict[str, str],
        counters: dict[str, int],
        params: dict[str, Any],
    ) -> str:
        name = substitute(item.get("name"), params)
        if name is None:
            # Keras: conv2d, conv2d_1, conv2d_2 … skipping names already taken.
            while True:
                n = counters.get(base, 0)
                counters[base] = n + 1
                name = base if n == 0 else f"{base}_{n}"
                if name not in scope:
                    break
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][\w\-]*", name):
            raise self.at(
                item, f"layer name {show(name)} must be a word (letters, digits, _ and -)"
            )
        if name in scope:
            raise self.at(
                item, f"the name {show(name)} is used twice; give each layer its own name"
            )
        return name

    def layer(
        self,
        item: Mapping,
        params: dict[str, Any],
        prefix: str,
        scope: dict[str, str],
        prev: str | None,
        group: str | None,
        depth: int,
        counters: dict[str, int],
    ) -> str:
        self.count += 1
        if self.count > limits.get("layers"):
            limits.check(
                "layers",
                self.count,
                f"{self.label}:{item.line}:{item.col}: the model expands to at least "
                f"{self.count:,} layers",
            )
        try:
            raw_type = substitute(item.get("type"), params)
            if raw_type is None:
                raise ModelError(
                    "a layer needs a type (e.g. '- type: conv2d') or a block (e.g. '- block: name')"
                )
            if not isinstance(raw_type, str):
                raise ModelError(f"layer type must be a name, got {show(raw_type)}")
            kind = layer_type(raw_type)
            base = KERAS_NAMES.get(kind.name, kind.name) if self.ctx.channels_last else kind.name
            name = self._name(item, base, scope, counters, params)
            raw_opts = {
                k: substitute(v, params) for k, v in item.items() if k not in _LAYER_RESERVED
            }
            opts = canonical_options(kind, raw_opts)
            cond = switch(substitute(item.get("if", True), params))
            training_only = flag(
                substitute(item.get("training_only", False), params), "training_only"
            )
            trainable = substitute(item.get("trainable", True), params)
            if not isinstance(trainable, bool):
                raise ModelError(f"trainable must be true or false, got {show(trainable)}")
            refs = substitute(item.get("input"), params)
            if refs is not None:
                refs = [refs] if isinstance(refs, str) else refs
                if (
                    not isinstance(refs, list)
                    or not refs
                    or not all(isinstance(r, str) for r in refs)
                ):
                    raise ModelError(
                        "input must be a layer name or a list of names, e.g. input: [a, b]"
                    )
        except (ModelError, limits.LimitError) as err:
            raise self._placed(err, item) from None
        full = f"{prefix}{name}"
        if prev is None and refs is None:
            raise self.at(item, f"layer {show(name)} has no input: name one with input:")
        node = Node(
            full,
            name,
            kind,
            opts,
            refs,
            scope,
            prev,
            item.line,
            item.col,
            group,
            depth,
            trainable,
            hidden=not cond,
            training_only=training_only,
        )
        scope[name] = full
        self.nodes[full] = node
        self.order.append(node)
        if kind is LAYER_TYPES["split"]:
            self.split_outputs(node, scope)
        return full

    def split_outputs(self, split: Node, scope: dict[str, str]) -> None:
        """Make the outputs of a split readable as ``NAME.0``, ``NAME.1``, …: one hidden node each
        (no row of its own; the split's row shows them), so every other part of cnncli keeps
        seeing layers with one output. A switched-off split passes its input on as every output."""
        try:
            count = split_count(split.opts)
        except ModelError as err:
            raise self.at(split, f"layer {show(split.local)} (split): {err}") from None
        self.count += count
        if self.count > limits.get("layers"):
            limits.check(
                "layers",
                self.count,
                f"{self.label}:{split.line}:{split.col}: the model expands to at least "
                f"{self.count:,} layers (the split's {count:,} outputs included)",
            )
        for i in range(count):
            local = f"{split.local}.{i}"
            if split.hidden:
                scope[local] = split.name
                continue
            opts = {"_type": SPLIT_OUTPUT.name, "index": i, "split": split.opts}
            node = Node(
                f"{split.name}.{i}",
                local,
                SPLIT_OUTPUT,
                opts,
                None,
                scope,
                split.name,
                split.line,
                split.col,
                split.group,
                split.depth,
                hidden=True,
            )
            scope[local] = node.name
            self.nodes[node.name] = node
            self.order.append(node)

    def call(
        self,
        item: Mapping,
        params: dict[str, Any],
        prefix: str,
        scope: dict[str, str],
        prev: str | None,
        group: str | None,
        depth: int,
        counters: dict[str, int],
    ) -> str:
        """Expand one ``- block: name`` item; returns the full name of its output layer."""
        try:
            call = self._read_call(item, params, scope, counters)
        except (ModelError, limits.LimitError) as err:
            raise self._placed(err, item) from None
        self._count_call(item, call)
        inputs: list[str] = []
        for i, ref in enumerate(call.refs or []):
            # Each input is a hidden pass-through, so forward references still work.
            local = f"_{call.name}_in" + (str(i) if i else "")
            inp = self.layer(
                _mk(item, {"type": "identity", "name": local, "input": ref}),
                {},
                prefix,
                scope,
                prev,
                group,
                depth,
                counters,
            )
            self.nodes[inp].hidden = True
            self.nodes[inp].shown = f"block call {show(call.name)}"
            inputs.append(inp)
        if not inputs and prev is not None:
            inputs = [prev]
        if not inputs:
            raise self.at(item, f"block {show(call.name)} has no input: name one with input:")
        if not call.cond or call.repeat == 0:
            scope[call.name] = inputs[0]
            return inputs[0]
        start = len(self.order)
        outs = self._instances(item, call, prefix, inputs, group, depth)
        if call.training_only:
            for node in self.order[start:]:
                node.training_only = True
        scope[call.name] = outs[-1]
        if call.repeated:
            # Each repetition's output is readable as NAME.0, NAME.1, … (as a split's outputs).
            for i, out in enumerate(outs):
                scope[f"{call.name}.{i}"] = out
        return outs[-1]

    def _placed(self, err: ModelError | limits.LimitError, item: Mapping) -> Exception:
        """``err`` with the item's ``label:line:col`` in front (unless it has a place already)."""
        text = err.worded(as_model_key) if isinstance(err, ModelError) else str(err)
        if text.startswith(self.label):
            return type(err)(text)
        return type(err)(str(self.at(item, text)))

    def _block(self, item: Mapping, params: dict[str, Any]) -> tuple[str, Mapping]:
        """The block a call names (``block: $unit`` through a parameter), refusing unknown
        blocks and blocks that call themselves."""
        block_name = substitute(item["block"], params)
        if not isinstance(block_name, str):
            raise ModelError(
                f"block must name a block defined under blocks:, got {show(block_name)}"
            )
        if block_name not in self.blocks:
            raise ModelError(
                f"unknown block {show(block_name)}{closest(str(block_name), list(self.blocks))}"
                + (
                    f" (blocks: {', '.join(self.blocks)})"
                    if self.blocks
                    else " (the file defines no blocks:)"
                )
            )
        if block_name in self.stack:
            raise ModelError(
                f"block {show(block_name)} uses itself ({' -> '.join([*self.stack, block_name])})"
            )
        return block_name, self.blocks[block_name]

    def _read_call(
        self,
        item: Mapping,
        params: dict[str, Any],
        scope: dict[str, str],
        counters: dict[str, int],
    ) -> _Call:
        """A block call's values with ``$params`` substituted, checked against the block."""
        block_name, block = self._block(item, params)
        defaults = dict(block.get("params") or {})
        call_params = {k: substitute(v, params) for k, v in item.items() if k not in _CALL_RESERVED}
        _known_params(block_name, call_params, defaults, listed=True)
        first = item.get("first") or {}
        if not isinstance(first, dict):
            raise ModelError("first: must map parameter names to values for the first repetition")
        first = {k: substitute(v, params) for k, v in first.items()}
        _known_params(block_name, first, defaults, listed=False)
        repeat_raw = substitute(item.get("repeat"), params)
        # repeat: 0 is a stage with no blocks (EfficientNetV2-S has no stage 7): the call
        # passes its input on, as if: false does.
        repeat = 1 if repeat_raw is None else whole(repeat_raw, "repeat", minimum=0)
        cond = switch(substitute(item.get("if", True), params))
        training_only = flag(substitute(item.get("training_only", False), params), "training_only")
        name = self._name(item, block_name, scope, counters, params)
        refs = substitute(item.get("input"), params)
        if refs is not None:
            refs = [refs] if isinstance(refs, str) else refs
            if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
                raise ModelError(
                    f"a block's input must be a layer name or a list of names, e.g. input: "
                    f"[a, b] (inside the block input.0, input.1), got {show(refs)}"
                )
        return _Call(
            block_name,
            block,
            defaults | call_params,
            first,
            repeat,
            repeat_raw is not None,
            cond,
            name,
            refs,
            training_only,
        )

    def _count_call(self, item: Mapping, call: _Call) -> None:
        """Charge the call to the work budget before anything is expanded."""
        # Empty blocks and switched-off calls cost too.
        self.calls += max(call.repeat, 1) if call.cond else 1
        if self.calls > limits.get("block-calls"):
            limits.check(
                "block-calls",
                self.calls,
                f"{self.label}:{item.line}:{item.col}: block {show(call.block_name)}"
                + (f" repeated {call.repeat:,} times" if call.repeat > 1 else "")
                + f" brings the model to at least {self.calls:,} block instances",
            )
        if len(self.stack) + 1 > limits.get("nesting"):
            limits.check(
                "nesting",
                len(self.stack) + 1,
                f"{self.label}:{item.line}:{item.col}: blocks call blocks "
                f"{len(self.stack) + 1} deep here (… -> {self.stack[-1]} -> {call.block_name})",
            )

    def _instances(
        self,
        item: Mapping,
        call: _Call,
        prefix: str,
        inputs: list[str],
        group: str | None,
        depth: int,
    ) -> list[str]:
        """Expand the block ``call.repeat`` times in a row; returns each instance's output.

        Repetition k + 1 reads the output of repetition k, then k's inputs less the last: with
        one input a plain chain, with two NASNet's cells (each reads the last two outputs)."""
        full = f"{prefix}{call.name}"
        outer = Group(
            full, call.name, call.block_name, item.line, item.col, group, depth, repeat=call.repeat
        )
        self.groups[full] = outer
        self.group_order.append((len(self.order), full))
        self.stack.append(call.block_name)
        outs: list[str] = []
        for i in range(call.repeat):
            if not call.repeated:
                inst, inst_group, inst_depth = outer, full, depth + 1
            else:
                inst_name = f"{full}.{i}"
                inst = Group(
                    inst_name,
                    f"{call.name}.{i}",
                    call.block_name,
                    item.line,
                    item.col,
                    full,
                    depth + 1,
                )
                self.groups[inst_name] = inst
                self.group_order.append((len(self.order), inst_name))
                inst_group, inst_depth = inst_name, depth + 2
            values = Params(call.params | (call.first if i == 0 else {}))
            values.input_shape = self._input_shape(call.name, inputs)
            values.input_count = len(inputs)
            values.index, values.repeat = i, call.repeat
            # `input` is the first input; input.0, input.1, … name each.
            local = {"input": inputs[0]} | {f"input.{j}": n for j, n in enumerate(inputs)}
            last = self.expand(
                call.block.get("layers"),
                call.block,
                values,
                f"{inst.name}.",
                local,
                inputs[0],
                inst_group,
                inst_depth,
            )
            out = self._block_output(call, local, last) or inputs[0]
            inst.output = out
            outs.append(out)
            inputs = [out, *inputs[:-1]]
        self.stack.pop()
        outer.output = outs[-1]
        return outs

    def _block_output(self, call: _Call, local: dict[str, str], last: str | None) -> str | None:
        """The layer an instance hands on: its ``output:`` when given, else its last layer."""
        block, block_name = call.block, call.block_name
        want = block.get("output")
        if want is None:
            return last
        if not isinstance(want, str):
            raise self.at(
                block,
                f"output of block {show(block_name)} must name one of its layers, got {show(want)}",
            )
        if want not in local:
            raise self.at(
                block,
                f"block {show(block_name)} output {show(want)} is not one of its layers"
                f"{closest(str(want), list(local))}",
            )
        return local[want]

    # -- references, order, shapes -------------------------------------------------------
    def _inputs(self, node: Node, reader: str | None = None) -> list[str]:
        """The full names of the layers ``node`` reads. ``reader``: a block reading its input's
        shape while the model is still being expanded (a missing name may come later)."""
        if node.refs is None:
            return [node.default_input] if node.default_input else []
        names = []
        for ref in node.refs:
            if ref in node.scope:
                names.append(node.scope[ref])
            elif reader is not None and _missing_block_input(node, ref) is None:
                raise ModelError(
                    f"{reader} needs the shape of {show(ref)}, which is defined further down "
                    "(a forward reference); define it above the block, or pass the size as a "
                    "parameter"
                )
            else:
                raise self.at(node, _undefined(node, ref))
        return names

    def resolve_refs(self) -> None:
        for node in self.order:
            node.inputs = self._inputs(node)

    def _input_shape(self, block: str, names: list[str]) -> Callable[[int], TShape]:
        """What ``$in_channels`` & co. of a block instance read: its inputs' computed shapes."""

        def shape(i: int) -> TShape:
            reader = f"block {show(block)} reads its input's size ($in_…), so it"
            node = self.nodes[names[i]]
            self.settle(node, reader)
            assert node.out is not None
            return node.out.shape

        return shape

    def settle(self, root: Node, reader: str) -> None:
        """Compute ``root``'s output now, during expansion, and first that of every layer it
        reads (iteratively: a long chain does not recurse)."""
        stack: list[tuple[Node, int]] = [(root, 0)]
        path: set[str] = set()
        while stack:
            node, i = stack.pop()
            if i == 0:
                if node.out is not None:
                    continue
                node.inputs = self._inputs(node, reader)
                path.add(node.name)
            if i < len(node.inputs):
                stack.append((node, i + 1))
                dep = self.nodes[node.inputs[i]]
                if dep.name in path:
                    raise self.at(
                        dep,
                        f"cyclic reference: {dep.name} depends on itself through "
                        f"{node.name}; a layer cannot depend on itself",
                    )
                if dep.out is None:
                    stack.append((dep, 0))
                continue
            path.discard(node.name)
            self.compute(node)

    def topo(self) -> list[Node]:
        state: dict[str, int] = {}
        out: list[Node] = []
        for root in self.order:
            if state.get(root.name):
                continue
            stack: list[tuple[Node, int]] = [(root, 0)]
            path: list[str] = []
            while stack:
                node, i = stack.pop()
                if i == 0:
                    if state.get(node.name) == 2:
                        continue
                    state[node.name] = 1
                    path.append(node.name)
                if i < len(node.inputs):
                    stack.append((node, i + 1))
                    dep = self.nodes[node.inputs[i]]
                    if state.get(dep.name) == 1:
                        cycle = path[path.index(dep.name) :] + [dep.name]
                        shown = " -> ".join(self.nodes[n].name for n in reversed(cycle))
                        raise self.at(
                            dep, f"cyclic reference: {shown}; a layer cannot depend on itself"
                        )
                    if not state.get(dep.name):
                        stack.append((dep, 0))
                    continue
                state[node.name] = 2
                path.pop()
                out.append(node)
        return out


def _missing_block_input(node: Node, ref: str) -> str | None:
    """Why ``node`` cannot read ``ref`` when it names an input its block was not given."""
    given = sum(1 for k in node.scope if k.startswith("input."))
    if not given or not re.fullmatch(r"input\.\d+", ref):
        return None
    names = "input.0" if given == 1 else f"input.0 … input.{given - 1}"
    return (
        f"{node.shown or f'layer {show(node.local)}'} takes input {show(ref)}, but the block "
        f"was given {given} input{'s' if given > 1 else ''} ({names}); give the call input: "
        "[a, b, …]"
    )


def _undefined(node: Node, ref: str) -> str:
    """Why ``node`` cannot read ``ref``: a block's input it was not given, or an unknown name."""
    missing = _missing_block_input(node, ref)
    if missing is not None:
        return missing
    known = [k for k in node.scope if not k.startswith("_")]
    return (
        f"{node.shown or f'layer {show(node.local)}'} takes input {show(ref)}, which is not "
        f"defined here{closest(ref, known)}"
    )


def _mk(where: Mapping, values: dict[str, Any]) -> Mapping:
    m = Mapping(values)
    m.line, m.col = where.line, where.col
    return m
