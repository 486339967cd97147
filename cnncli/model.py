"""Model files: YAML -> validated graph (blocks, repeat, references) -> per-layer rows and totals.

The result (:class:`Summary`) is plain data; the Rich table, JSON, CSV and Markdown renderers in
:mod:`cnncli.render.summary` and the torch builder in :mod:`cnncli.verify` all read the same object.
The format is described in ``docs/model-format.md``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnncli import arithmetic as ar
from cnncli import limits
from cnncli.errors import CnnCliError, ModelError, UsageError
from cnncli.layers import (
    KERAS_NAMES,
    LAYER_TYPES,
    Ctx,
    LayerOut,
    LayerType,
    TShape,
    canonical_options,
    closest,
    compute,
    flag,
    layer_type,
    shorten,
    show,
    whole,
)
from cnncli.outputs import describe_os_error

ZOO_DIR = Path(__file__).parent / "zoo"
# Sizes refused before any work (file bytes, YAML nodes, nesting, layers, block calls) are the
# work budget of cnncli.limits, which --limit changes for one run.
#: Bytes per element for the memory totals (float32, as torchinfo and Keras assume).
BYTES_PER_ELEMENT = 4

_TOP_KEYS = ("name", "description", "input", "inputs", "layout", "framework", "blocks", "layers")
_BLOCK_KEYS = ("params", "layers", "output", "description")
_LAYER_RESERVED = ("type", "name", "input", "trainable", "if")
_CALL_RESERVED = ("block", "name", "input", "repeat", "first", "if")


# --------------------------------------------------------------------------------------------
# Loading YAML with line numbers, within the work budget
# --------------------------------------------------------------------------------------------


class Mapping(dict[str, Any]):
    """A YAML mapping that remembers where it starts (1-based line and column) and its size:
    the YAML nodes inside it (itself included), each alias counted as often as it is used."""

    line: int = 0
    col: int = 0
    size: int = 1


class Seq(list[Any]):
    """A YAML sequence that remembers where it starts (1-based line and column)."""

    line: int = 0
    col: int = 0
    size: int = 1


_TAG = "tag:yaml.org,2002:"
#: Plain data only: scalars of these tags; collections are sequences and mappings.
_SCALAR_TAGS = frozenset(_TAG + t for t in ("null", "bool", "int", "float", "str"))
_MERGE_TAG = _TAG + "merge"
_NOTHING: Any = object()
_MERGE: Any = object()  # the `<<` key
_resolver = yaml.resolver.Resolver()
_constructor = yaml.constructor.SafeConstructor()
#: libyaml's parser when the wheel has it: 20× faster than PyYAML's pure-Python one (a 10 MB
#: file's first million nodes in 2 s instead of 35 s); the events and their marks are the same.
_EventLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Open:
    """A sequence or mapping being composed."""

    __slots__ = ("obj", "anchor", "start", "height", "key", "key_mark", "merges")

    def __init__(self, obj: Mapping | Seq, anchor: str | None, start: int) -> None:
        self.obj = obj
        self.anchor = anchor
        self.start = start  # nodes counted before this one
        self.height = 0  # collections below this one (deepest path)
        self.key: Any = _NOTHING  # a mapping's key waiting for its value
        self.key_mark: Any = None
        self.merges: list[Mapping] = []


def _where(label: str, mark: Any) -> str:
    return f"{label}:{mark.line + 1}:{mark.column + 1}" if mark is not None else label


def _scalar(event: Any, label: str, cache: dict[str, Any]) -> Any:
    """The value of a scalar event: YAML 1.1 types of plain scalars, plain data tags only."""
    value: str = event.value
    tag = event.tag
    if tag is None or tag == "!":
        if not event.implicit[0]:  # quoted: text
            return value
        if len(value) < 64 and value in cache:
            return cache[value]
        tag = _resolver.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
        if tag == _MERGE_TAG:
            return _MERGE
    elif tag not in _SCALAR_TAGS:
        raise ModelError(
            f"{_where(label, event.start_mark)}: the YAML tag {tag!r} is refused; model files "
            "hold plain data only (no object tags)"
        )
    if tag == _TAG + "str":
        return value
    node = yaml.ScalarNode(tag, value, event.start_mark, event.end_mark, event.style)
    try:
        out = _constructor.yaml_constructors[tag](_constructor, node)
    except ValueError:
        where = _where(label, event.start_mark)
        if tag == _TAG + "int":
            # Python refuses int() of more than 4,300 digits; no size in a model comes close.
            raise ModelError(
                f"{where}: the number {shorten(value, 24)} has {len(value):,} digits; "
                "sizes in a model file are whole numbers below 2**62"
            ) from None
        raise ModelError(
            f"{where}: cannot read {shorten(value, 40)!r} as {tag.removeprefix(_TAG)}"
        ) from None
    if event.implicit[0] and event.tag is None and len(value) < 64:
        cache[value] = out
    return out


def _events(text: str) -> Iterator[Any]:
    """The parser's events, one by one (``yaml.parse`` without its per-event check call)."""
    parser = _EventLoader(text)
    try:
        get = parser.get_event
        while True:
            event = get()
            if event is None:
                return
            yield event
            if type(event) is yaml.StreamEndEvent:
                return
    finally:
        parser.dispose()


def load_yaml(text: str, label: str) -> Any:
    """Parse YAML safely into :class:`Mapping`, :class:`Seq` and plain scalars.

    Composed from the parser's events without recursion, within the work budget: every node
    counts against ``yaml-nodes`` as it is composed, an alias as often as it is used (with
    everything under its anchor), so a billion-laughs file is refused after a million nodes;
    nesting (through aliases too) is refused past ``nesting`` before anything recurses over
    it. Errors name ``label:line:col``; object tags are refused.
    """
    max_nodes = limits.get("yaml-nodes")
    max_depth = limits.get("nesting")
    count = 0
    stack: list[_Open] = []
    anchors: dict[str, tuple[Any, int, int]] = {}  # value, nodes, height
    cache: dict[str, Any] = {}
    root: Any = _NOTHING
    documents = 0

    def over_nodes(mark: Any) -> None:
        limits.check(
            "yaml-nodes",
            count,
            f"{_where(label, mark)}: the file has at least {count:,} YAML nodes"
            " (aliases counted each time they are used)",
        )

    def too_deep(mark: Any, depth: int) -> None:
        limits.check(
            "nesting",
            depth,
            f"{_where(label, mark)}: lists and mappings nest {depth} deep here (aliases included)",
        )

    try:
        for event in _events(text):
            kind = type(event)
            anchor = None
            if kind is yaml.ScalarEvent:
                count += 1
                if count > max_nodes:
                    over_nodes(event.start_mark)
                # Plain words and numbers repeat (type, conv2d, 3): resolved once each.
                if event.tag is None and event.implicit[0] and event.value in cache:
                    value = cache[event.value]
                else:
                    value = _scalar(event, label, cache)
                anchor, nodes, height = event.anchor, 1, 0
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                count += 1
                if count > max_nodes:
                    over_nodes(event.start_mark)
                if len(stack) + 1 > max_depth:
                    too_deep(event.start_mark, len(stack) + 1)
                mapping = kind is yaml.MappingStartEvent
                if event.tag not in (None, "!", _TAG + ("map" if mapping else "seq")):
                    raise ModelError(
                        f"{_where(label, event.start_mark)}: the YAML tag {event.tag!r} is "
                        "refused; model files hold plain data only (no object tags)"
                    )
                obj: Mapping | Seq = Mapping() if mapping else Seq()
                obj.line, obj.col = event.start_mark.line + 1, event.start_mark.column + 1
                stack.append(_Open(obj, event.anchor, count - 1))
                continue
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                done = stack.pop()
                value = done.obj
                if done.merges:
                    value = _merged(done)
                nodes, height = count - done.start, done.height + 1
                value.size = nodes
                anchor = done.anchor
            elif kind is yaml.AliasEvent:
                if event.anchor not in anchors:
                    raise ModelError(
                        f"{_where(label, event.start_mark)}: the alias *{event.anchor} has no "
                        "finished anchor before it (an alias cannot refer to what contains it)"
                    )
                value, nodes, height = anchors[event.anchor]
                count += nodes
                if count > max_nodes:
                    over_nodes(event.start_mark)
                if len(stack) + height > max_depth:
                    too_deep(event.start_mark, len(stack) + height)
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise ModelError(
                        f"{_where(label, event.start_mark)}: a model file holds one YAML "
                        "document; remove the second '---'"
                    )
                continue
            else:  # stream start and end, document end
                continue
            if anchor is not None:
                anchors[anchor] = (value, nodes, height)
            if not stack:
                root = value
                continue
            parent = stack[-1]
            if height > parent.height:
                parent.height = height
            if isinstance(parent.obj, Seq):
                parent.obj.append(value)
            elif parent.key is _NOTHING:
                mark = getattr(event, "start_mark", None)
                if kind is not yaml.ScalarEvent and not (
                    kind is yaml.AliasEvent and not isinstance(value, Mapping | Seq)
                ):
                    where = (
                        f"{label}:{value.line}:{value.col}"
                        if isinstance(value, Mapping | Seq)
                        else _where(label, mark)
                    )
                    raise ModelError(f"{where}: mapping keys must be plain words")
                parent.key, parent.key_mark = value, mark
            else:
                key, parent.key = parent.key, _NOTHING
                if key is _MERGE:
                    parts = value if isinstance(value, Seq) else [value]
                    if not all(isinstance(p, Mapping) for p in parts):
                        raise ModelError(
                            f"{_where(label, parent.key_mark)}: '<<' merges a mapping or a list "
                            "of mappings, e.g. <<: *defaults"
                        )
                    parent.merges.extend(parts)
                    continue
                key = str(key)
                if key in parent.obj:
                    raise ModelError(
                        f"{_where(label, parent.key_mark)}: duplicate key {shorten(key)!r}; "
                        "keep one"
                    )
                parent.obj[key] = value
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "invalid YAML"
        if err.problem and err.context and err.context_mark is not None:
            problem += f" ({err.context} at line {err.context_mark.line + 1})"
        raise ModelError(f"{_where(label, mark)}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as err:
        raise ModelError(f"{label}: YAML error: {' '.join(str(err).split())}") from None
    return None if root is _NOTHING else root


def _merged(done: _Open) -> Mapping:
    """A mapping with ``<<`` keys: merged keys first (the first merge wins), its own keys last."""
    own = done.obj
    out = Mapping()
    out.line, out.col = own.line, own.col
    for part in done.merges:
        for key, value in part.items():
            out.setdefault(key, value)
    out.update(own)
    return out


def zoo_names() -> list[str]:
    """Models shipped with cnncli, usable by name."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.yaml"))


def locate(source: str) -> Path:
    """A model file path, or the zoo file for a bare zoo name."""
    path = Path(source)
    if path.is_file():
        return path
    if source in zoo_names():
        return ZOO_DIR / f"{source}.yaml"
    if path.exists():
        raise ModelError(f"{source} is not a file; give a model YAML file or a zoo name")
    if "/" in source or "\\" in source or path.suffix in (".yaml", ".yml"):
        raise ModelError(
            f"no such file: {source}; check the path, or use a zoo name: {', '.join(zoo_names())}"
        )
    raise ModelError(
        f"unknown model {source!r}: no such file and not in the zoo{closest(source, zoo_names())} "
        f"(zoo: {', '.join(zoo_names())})"
    )


# --------------------------------------------------------------------------------------------
# Parameter expressions: `$width`, `$width * 4`, `$channels // 2`
# --------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(\d+)|\$([A-Za-z_]\w*)|(//|[-+*/%()]))")


def _expr(text: str, params: dict[str, Any]) -> Any:
    whole_ref = re.fullmatch(r"\s*\$([A-Za-z_]\w*)\s*", text)
    if whole_ref:
        return _param(whole_ref.group(1), params)
    tokens: list[Any] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if not m:
            raise ModelError(
                f"cannot read the expression {shorten(text)!r} at {shorten(text[pos:].strip(), 20)!r}; "
                "use numbers, $params, + - * // % and parentheses"
            )
        pos = m.end()
        if m.group(1):
            if len(m.group(1)) > 18:
                raise ModelError(
                    f"the number {shorten(m.group(1), 24)} in the expression is absurdly large"
                )
            tokens.append(int(m.group(1)))
        elif m.group(2):
            value = _param(m.group(2), params)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ModelError(
                    f"parameter ${m.group(2)} is {show(value)}, not a whole number, "
                    f"in {shorten(text)!r}"
                )
            tokens.append(value)
        else:
            tokens.append(m.group(3))
    tokens.append(None)
    # The parser below recurses once per parenthesis and minus sign: bound them first.
    levels = sum(1 for t in tokens if t == "(" or t == "-")
    if levels > limits.get("nesting"):
        limits.check(
            "nesting",
            levels,
            f"the expression {shorten(text)!r} has {levels:,} parentheses and minus signs",
        )
    at = 0

    def peek() -> Any:
        return tokens[at]

    def take() -> Any:
        nonlocal at
        at += 1
        return tokens[at - 1]

    def atom() -> int:
        t = take()
        if t == "(":
            v = add()
            if take() != ")":
                raise ModelError(f"missing ')' in {shorten(text)!r}")
            return v
        if t == "-":
            return -atom()
        if isinstance(t, int):
            return t
        raise ModelError(f"cannot read the expression {shorten(text)!r}")

    def mul() -> int:
        v = atom()
        while peek() in ("*", "//", "/", "%"):
            op, rhs = take(), atom()
            if op == "*":
                v *= rhs
            elif rhs == 0:
                raise ModelError(f"division by zero in {shorten(text)!r}")
            elif op == "%":
                v %= rhs
            elif op == "/" and v % rhs:
                raise ModelError(
                    f"{v} / {rhs} is not whole in {shorten(text)!r}; use // to round down"
                )
            else:
                v //= rhs
            if abs(v) > 2**62:
                raise ModelError(f"the expression {shorten(text)!r} is absurdly large")
        return v

    def add() -> int:
        v = mul()
        while peek() in ("+", "-"):
            v = v + mul() if take() == "+" else v - mul()
        return v

    value = add()
    if peek() is not None:
        raise ModelError(f"cannot read the expression {shorten(text)!r}")
    return value


def _param(name: str, params: dict[str, Any]) -> Any:
    if name not in params:
        raise ModelError(
            f"unknown parameter ${name}{closest(name, list(params))}"
            + (
                f" (parameters: {', '.join('$' + p for p in params)})"
                if params
                else " (no parameters here)"
            )
        )
    return params[name]


def substitute(value: Any, params: dict[str, Any]) -> Any:
    """Replace ``$name`` and expressions in a value (recursively in lists)."""
    if isinstance(value, str) and "$" in value:
        return _expr(value, params)
    if isinstance(value, list):
        return [substitute(v, params) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# The graph
# --------------------------------------------------------------------------------------------


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
    inputs: list[str] = field(default_factory=list)
    out: LayerOut | None = None
    rf: tuple[ar.Receptive, ...] | None = None
    is_input: bool = False


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

    def layers(self) -> list[Row]:
        return [r for r in self.rows if r.kind == "layer"]


class _Builder:
    def __init__(self, label: str, data: Mapping, ctx: Ctx) -> None:
        self.label = label
        self.ctx = ctx
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
        where = f"{self.label}:{line}:{col}" if line else self.label
        return ModelError(f"{where}: {message}")

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
            cond = flag(substitute(item.get("if", True), params), "if")
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
            if str(err).startswith(self.label):
                raise
            raise type(err)(str(self.at(item, str(err)))) from None
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
        )
        scope[name] = full
        self.nodes[full] = node
        self.order.append(node)
        return full

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
        try:
            block_name = item["block"]
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
            block = self.blocks[block_name]
            defaults = dict(block.get("params") or {})
            call_params = {
                k: substitute(v, params) for k, v in item.items() if k not in _CALL_RESERVED
            }
            for key in call_params:
                if key not in defaults:
                    raise ModelError(
                        f"block {show(block_name)} has no parameter {show(key)}{closest(key, list(defaults))}"
                        + (
                            f" (parameters: {', '.join(defaults)})"
                            if defaults
                            else " (it takes none)"
                        )
                    )
            first = item.get("first") or {}
            if not isinstance(first, dict):
                raise ModelError(
                    "first: must map parameter names to values for the first repetition"
                )
            first = {k: substitute(v, params) for k, v in first.items()}
            for key in first:
                if key not in defaults:
                    raise ModelError(
                        f"block {show(block_name)} has no parameter {show(key)}{closest(key, list(defaults))}"
                    )
            repeat_raw = substitute(item.get("repeat"), params)
            repeat = 1 if repeat_raw is None else whole(repeat_raw, "repeat")
            cond = flag(substitute(item.get("if", True), params), "if")
            name = self._name(item, str(block_name), scope, counters, params)
            refs = substitute(item.get("input"), params)
            if refs is not None and not isinstance(refs, str):
                raise ModelError("a block takes one input: give input: name")
        except (ModelError, limits.LimitError) as err:
            if str(err).startswith(self.label):
                raise
            raise type(err)(str(self.at(item, str(err)))) from None
        # Counted before anything is expanded: empty blocks and switched-off calls cost too.
        self.calls += repeat if cond else 1
        if self.calls > limits.get("block-calls"):
            limits.check(
                "block-calls",
                self.calls,
                f"{self.label}:{item.line}:{item.col}: block {show(block_name)}"
                + (f" repeated {repeat:,} times" if repeat > 1 else "")
                + f" brings the model to at least {self.calls:,} block instances",
            )
        if len(self.stack) + 1 > limits.get("nesting"):
            limits.check(
                "nesting",
                len(self.stack) + 1,
                f"{self.label}:{item.line}:{item.col}: blocks call blocks "
                f"{len(self.stack) + 1} deep here (… -> {self.stack[-1]} -> {block_name})",
            )
        inp: str | None = prev
        if refs is not None:
            # The block's input is a hidden pass-through so forward references still work.
            inp = self.layer(
                _mk(item, {"type": "identity", "name": f"_{name}_in", "input": refs}),
                {},
                prefix,
                scope,
                prev,
                group,
                depth,
                counters,
            )
            self.nodes[inp].hidden = True
        if inp is None:
            raise self.at(item, f"block {show(name)} has no input: name one with input:")
        if not cond:
            scope[name] = inp
            return inp
        full = f"{prefix}{name}"
        outer = Group(full, name, str(block_name), item.line, item.col, group, depth, repeat=repeat)
        self.groups[full] = outer
        self.group_order.append((len(self.order), full))
        self.stack.append(str(block_name))
        out = inp
        for i in range(repeat):
            values = defaults | call_params | (first if i == 0 else {})
            if repeat_raw is None:
                inst, inst_group, inst_depth = outer, full, depth + 1
            else:
                inst_name = f"{full}.{i}"
                inst = Group(
                    inst_name, f"{name}.{i}", str(block_name), item.line, item.col, full, depth + 1
                )
                self.groups[inst_name] = inst
                self.group_order.append((len(self.order), inst_name))
                inst_group, inst_depth = inst_name, depth + 2
            local: dict[str, str] = {"input": out}
            last = self.expand(
                block.get("layers"),
                block,
                values,
                f"{inst.name}.",
                local,
                out,
                inst_group,
                inst_depth,
            )
            want = block.get("output")
            if want is not None:
                if not isinstance(want, str):
                    raise self.at(
                        block,
                        f"output of block {show(block_name)} must name one of its layers, "
                        f"got {show(want)}",
                    )
                if want not in local:
                    raise self.at(
                        block,
                        f"block {show(block_name)} output {show(want)} is not one of its layers{closest(str(want), list(local))}",
                    )
                last = local[want]
            out = last or out
            inst.output = out
        self.stack.pop()
        outer.output = out
        scope[name] = out
        return out

    # -- references, order, shapes -------------------------------------------------------
    def resolve_refs(self) -> None:
        for node in self.order:
            if node.refs is None:
                node.inputs = [node.default_input] if node.default_input else []
                continue
            names = []
            for ref in node.refs:
                if ref not in node.scope:
                    known = [k for k in node.scope if not k.startswith("_")]
                    raise self.at(
                        node,
                        f"layer {show(node.local)} takes input {show(ref)}, which is not defined here"
                        f"{closest(ref, known)}",
                    )
                names.append(node.scope[ref])
            node.inputs = names

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


def _mk(where: Mapping, values: dict[str, Any]) -> Mapping:
    m = Mapping(values)
    m.line, m.col = where.line, where.col
    return m


def _shape_arg(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ModelError(f"{where} must be a list of sizes like [3, 224, 224], got {show(value)}")
    if not 1 <= len(value) <= 4:
        raise ModelError(
            f"{where} {value} has {len(value)} sizes; give channels and 0 to 3 spatial sizes, without the batch"
        )
    return [whole(v, f"{where} size") for v in value]


def build(data: Any, label: str, count_bias: bool = False) -> Summary:
    """Turn parsed YAML into a :class:`Summary` (every error names ``label:line:col``)."""
    if not isinstance(data, Mapping):
        raise ModelError(
            f"{label}: a model file is a mapping with input: and layers: (see docs/model-format.md)"
        )

    def at(item: Any, msg: str) -> ModelError:
        line = getattr(item, "line", 0)
        return ModelError(
            f"{label}:{line}:{getattr(item, 'col', 0)}: {msg}" if line else f"{label}: {msg}"
        )

    for key in data:
        if key not in _TOP_KEYS:
            raise at(
                data,
                f"unknown top-level key {show(key)}{closest(key, _TOP_KEYS)} (keys: {', '.join(_TOP_KEYS)})",
            )
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise at(data, f"{key} must be text, got {show(data[key])}")
    layout = data.get("layout", "channels_first")
    if layout not in ("channels_first", "channels_last"):
        raise at(
            data,
            f"layout {show(layout)} is not known; use channels_first (PyTorch) or channels_last (Keras)",
        )
    last = layout == "channels_last"
    fw_raw = data.get("framework", "keras" if last else "torch")
    try:
        framework = ar.Framework(fw_raw)
    except ValueError:
        raise at(data, f"framework {show(fw_raw)} is not known; use torch, keras or tf") from None
    ctx = Ctx(framework, last)

    if ("input" in data) == ("inputs" in data):
        raise at(data, "give the input shape once: input: [3, 224, 224] (or inputs: {name: shape})")
    raw_inputs = {"input": data["input"]} if "input" in data else data["inputs"]
    if not isinstance(raw_inputs, dict) or not raw_inputs:
        raise at(data, "inputs: must map names to shapes, e.g. inputs: {image: [3, 224, 224]}")

    b = _Builder(label, data, ctx)
    blocks = data.get("blocks") or {}
    if not isinstance(blocks, dict):
        raise at(data, "blocks: must map block names to {params:, layers:}")
    for bname, block in blocks.items():
        if not isinstance(block, Mapping) or "layers" not in block:
            raise at(
                block if isinstance(block, Mapping) else data, f"block {show(bname)} needs layers:"
            )
        for key in block:
            if key not in _BLOCK_KEYS:
                raise at(
                    block,
                    f"unknown key {show(key)} in block {show(bname)}{closest(key, _BLOCK_KEYS)} (keys: {', '.join(_BLOCK_KEYS)})",
                )
        if "description" in block and not isinstance(block["description"], str):
            raise at(block, f"description of block {show(bname)} must be text")
        if block.get("params") is not None and not isinstance(block["params"], dict):
            raise at(block, f"params of block {show(bname)} must map names to default values")
    b.blocks = dict(blocks)

    scope: dict[str, str] = {}
    first: str | None = None
    for iname, shape in raw_inputs.items():
        try:
            dims = _shape_arg(shape, f"input {show(iname)}" if "inputs" in data else "input")
        except ModelError as err:
            raise at(shape if isinstance(shape, Seq) else data, str(err)) from None
        channels = dims[-1] if last else dims[0]
        spatial = tuple(dims[:-1] if last else dims[1:])
        ts = TShape(channels, spatial)
        if ts.elements > 2**40:
            raise at(
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
    if not data.get("layers"):
        raise at(
            data, "the model has no layers; list them under layers: (see docs/model-format.md)"
        )
    b.expand(data["layers"], data, {}, "", scope, first, None, 0)
    b.resolve_refs()
    ordered = b.topo()

    for node in ordered:
        if node.is_input:
            continue
        ins = [b.nodes[n] for n in node.inputs]
        shapes = [n.out.shape for n in ins if n.out is not None]
        try:
            if node.hidden:
                # Switched off: passes its first input on unchanged.
                node.out = LayerOut(shapes[0])
            else:
                node.out = compute(
                    node.kind,
                    node.opts,
                    shapes,
                    [n.local if n.group == node.group else n.name for n in ins],
                    ctx,
                )
            if node.out.shape.elements > 2**40:
                raise ModelError(
                    f"output of {node.out.shape.elements:,} elements is absurd for one sample"
                )
        except ModelError as err:
            raise b.at(node, f"layer {show(node.name)} ({node.kind.name}): {err}") from None
        except UsageError as err:
            raise b.at(node, f"layer {show(node.name)} ({node.kind.name}): {err}") from None
        node.rf = _receptive(node, [n.rf for n in ins], shapes)
        if not node.trainable:
            node.out = LayerOut(
                **{
                    **node.out.__dict__,
                    "trainable": 0,
                    "non_trainable": node.out.trainable + node.out.non_trainable,
                }
            )

    rows = _rows(b, ctx, count_bias)
    visible = [n for n in b.order if not n.hidden]
    trainable = sum(n.out.trainable for n in visible if n.out)
    non_trainable = sum(n.out.non_trainable for n in visible if n.out)
    bias_macs = sum(n.out.bias_macs for n in visible if n.out)
    macs = sum(n.out.macs for n in visible if n.out) + (bias_macs if count_bias else 0)
    inputs = {n: b.nodes[n].out.shape for n in raw_inputs}  # type: ignore[union-attr]
    consumed = {i for n in b.order for i in n.inputs}
    outputs = [n for n in b.order if n.name not in consumed and not n.hidden] or visible[-1:]
    totals = Totals(
        params=trainable + non_trainable,
        trainable_params=trainable,
        non_trainable_params=non_trainable,
        macs=macs,
        flops=2 * macs,
        bias_macs=bias_macs,
        layers=len(visible),
        param_bytes=(trainable + non_trainable) * BYTES_PER_ELEMENT,
        activation_bytes=sum(n.out.shape.elements for n in visible if n.out) * BYTES_PER_ELEMENT,
        input_bytes=sum(s.elements for s in inputs.values()) * BYTES_PER_ELEMENT,
    )
    name = data.get("name") or Path(label).stem
    return Summary(
        name=str(name),
        source=label,
        layout=layout,
        framework=framework.value,
        inputs={k: v.dims(last) for k, v in inputs.items()},
        outputs={n.name: n.out.shape.dims(last) for n in outputs if n.out},
        rows=rows,
        totals=totals,
        count_bias=count_bias,
        nodes=list(ordered),
        ctx=ctx,
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


def _rows(b: _Builder, ctx: Ctx, count_bias: bool) -> list[Row]:
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
        )

    layer_rows = {n.name: layer_row(n) for n in b.order if not n.hidden}
    # Blocks: sums of everything inside (any depth).
    sums: dict[str, list[int]] = {g: [0, 0, 0, 0, 0] for g in b.groups}
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
            s[4] += n.out.shape.elements
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
                )
            )
        if n.name in layer_rows:
            rows.append(layer_rows[n.name])
    return rows


def _visible(b: _Builder, node: Node) -> Node:
    # A hidden pass-through (if: false, or a block's named input) shows as what it passes on.
    while node.hidden and node.inputs:  # a switched-off layer passes its first input on
        node = b.nodes[node.inputs[0]]
    return node


def summarize(source: str, count_bias: bool = False) -> Summary:
    """Load a model file (or a zoo name) and summarise it."""
    path = locate(source)
    label = str(path)
    max_bytes = limits.get("file-bytes")
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                limits.check("file-bytes", size, f"{path}: the file has {size:,} bytes")
            # Never more than the limit, even when the size lied (/proc files, a growing file).
            raw = fh.read(max_bytes + 1)
        if len(raw) > max_bytes:
            limits.check("file-bytes", len(raw), f"{path}: the file has over {max_bytes:,} bytes")
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"{path}: not a text (UTF-8) file; give a model YAML file") from None
    except OSError as err:
        raise ModelError(f"cannot read {path}: {describe_os_error(err)}") from None
    return summarize_text(text, label, count_bias)


def summarize_text(text: str, label: str = "<model>", count_bias: bool = False) -> Summary:
    """Summarise a model given as YAML text (``label`` names it in errors)."""
    try:
        return build(load_yaml(text, label), label, count_bias)
    except RecursionError:
        # Only when --limit nesting was raised far above its default.
        raise ModelError(
            f"{label}: the model nests too deeply for Python's stack; keep the nesting limit "
            f"near its default of {limits.LIMITS['nesting'].default}"
        ) from None
    except (ModelError, limits.LimitError):
        raise
    except CnnCliError as err:
        raise ModelError(f"{label}: {err}") from None
