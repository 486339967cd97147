"""YAML with positions, within the work budget: the parser behind :func:`cnncli.model.load.load_yaml`.

:func:`load_yaml` composes the parser's events itself (no recursion, no object tags) so that every
mapping and list remembers its line and column for error messages, and the work budget of
:mod:`cnncli.limits` (``yaml-nodes``, ``nesting``, ``file-bytes``) is enforced while reading.
Imported only when a YAML text is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

from cnncli import limits
from cnncli.errors import ModelError
from cnncli.model.layers import shorten
from cnncli.model.load import Mapping, Seq

_TAG = "tag:yaml.org,2002:"
#: Plain data only: scalars of these tags; collections are sequences and mappings.
_SCALAR_TAGS = frozenset(_TAG + t for t in ("null", "bool", "int", "float", "str"))
_MERGE_TAG = _TAG + "merge"
_NOTHING: Any = object()
_MERGE: Any = object()  # the `<<` key
_resolver = yaml.resolver.Resolver()
#: Floats with an exponent and no dot (``1e-6``, ``5E-1``): YAML 1.1 reads them as text, YAML 1.2
#: and every framework's config as numbers; model files follow 1.2 here.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$")
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
        if tag == _TAG + "str" and _EXPONENT_FLOAT.match(value):
            tag = _TAG + "float"  # 1e-6: a number in YAML 1.2 (1.1 wants 1.0e-6)
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
    composer = _Composer(label)
    try:
        composer.run(_events(text))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "invalid YAML"
        if err.problem and err.context and err.context_mark is not None:
            problem += f" ({err.context} at line {err.context_mark.line + 1})"
        raise ModelError(f"{_where(label, mark)}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as err:
        raise ModelError(f"{label}: YAML error: {' '.join(str(err).split())}") from None
    return None if composer.root is _NOTHING else composer.root


class _Composer:
    """Builds the document from parser events: one :meth:`feed` per event."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.max_nodes = limits.get("yaml-nodes")
        self.max_depth = limits.get("nesting")
        self.count = 0  # nodes composed so far, aliases counted with everything they hold
        self.stack: list[_Open] = []
        self.anchors: dict[str, tuple[Any, int, int]] = {}  # value, nodes, height
        self.cache: dict[str, Any] = {}  # plain scalars already resolved
        self.root: Any = _NOTHING
        self.documents = 0

    def run(self, events: Iterator[Any]) -> None:
        """Compose every event. The common events (scalars, ends, attaching a node to its
        parent) are handled inline: this loop is the time of loading a large file."""
        stack, cache, max_nodes = self.stack, self.cache, self.max_nodes
        for event in events:
            kind = type(event)
            if kind is yaml.ScalarEvent:
                self.count += 1
                if self.count > max_nodes:
                    self._over_nodes(event.start_mark)
                # Plain words and numbers repeat (type, conv2d, 3): resolved once each.
                if event.tag is None and event.implicit[0] and event.value in cache:
                    value = cache[event.value]
                else:
                    value = _scalar(event, self.label, cache)
                anchor, nodes, height = event.anchor, 1, 0
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                done = stack.pop()
                value = _merged(done) if done.merges else done.obj
                nodes, height = self.count - done.start, done.height + 1
                value.size = nodes
                anchor = done.anchor
            elif kind is yaml.AliasEvent:
                value, nodes, height = self._alias(event)
                anchor = None
            else:
                self._other(event, kind)
                continue
            if anchor is not None:
                self.anchors[anchor] = (value, nodes, height)
            if not stack:
                self.root = value
                continue
            parent = stack[-1]
            if height > parent.height:
                parent.height = height
            if type(parent.obj) is Seq:
                parent.obj.append(value)
            elif parent.key is _NOTHING:
                self._key(parent, event, value)
            else:
                key, parent.key = parent.key, _NOTHING
                if key is _MERGE:
                    self._merge(parent, value)
                elif key in parent.obj:
                    self._duplicate(parent, key)
                else:
                    parent.obj[key] = value

    def _other(self, event: Any, kind: type) -> None:
        """Collection starts and document starts; stream events and document ends pass."""
        if kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            self._start(event, kind is yaml.MappingStartEvent)
        elif kind is yaml.DocumentStartEvent:
            self.documents += 1
            if self.documents > 1:
                raise ModelError(
                    f"{_where(self.label, event.start_mark)}: a model file holds one YAML "
                    "document; remove the second '---'"
                )

    def _over_nodes(self, mark: Any) -> None:
        limits.check(
            "yaml-nodes",
            self.count,
            f"{_where(self.label, mark)}: the file has at least {self.count:,} YAML nodes"
            " (aliases counted each time they are used)",
        )

    def _too_deep(self, mark: Any, depth: int) -> None:
        if depth > self.max_depth:
            limits.check(
                "nesting",
                depth,
                f"{_where(self.label, mark)}: lists and mappings nest {depth} deep here "
                "(aliases included)",
            )

    def _start(self, event: Any, mapping: bool) -> None:
        self.count += 1
        if self.count > self.max_nodes:
            self._over_nodes(event.start_mark)
        self._too_deep(event.start_mark, len(self.stack) + 1)
        if event.tag not in (None, "!", _TAG + ("map" if mapping else "seq")):
            raise ModelError(
                f"{_where(self.label, event.start_mark)}: the YAML tag {event.tag!r} is "
                "refused; model files hold plain data only (no object tags)"
            )
        obj: Mapping | Seq = Mapping() if mapping else Seq()
        obj.line, obj.col = event.start_mark.line + 1, event.start_mark.column + 1
        self.stack.append(_Open(obj, event.anchor, self.count - 1))

    def _alias(self, event: Any) -> tuple[Any, int, int]:
        if event.anchor not in self.anchors:
            raise ModelError(
                f"{_where(self.label, event.start_mark)}: the alias *{event.anchor} has no "
                "finished anchor before it (an alias cannot refer to what contains it)"
            )
        value, nodes, height = self.anchors[event.anchor]
        self.count += nodes
        if self.count > self.max_nodes:
            self._over_nodes(event.start_mark)
        self._too_deep(event.start_mark, len(self.stack) + height)
        return value, nodes, height

    def _key(self, parent: _Open, event: Any, value: Any) -> None:
        # A scalar or an alias of one; a list or mapping (written or aliased) is refused.
        if isinstance(value, Mapping | Seq):
            raise ModelError(
                f"{self.label}:{value.line}:{value.col}: mapping keys must be plain words"
            )
        parent.key = value if value is _MERGE else str(value)
        parent.key_mark = event.start_mark

    def _duplicate(self, parent: _Open, key: str) -> None:
        raise ModelError(
            f"{_where(self.label, parent.key_mark)}: duplicate key {shorten(key)!r}; keep one"
        )

    def _merge(self, parent: _Open, value: Any) -> None:
        parts = value if isinstance(value, Seq) else [value]
        if not all(isinstance(p, Mapping) for p in parts):
            raise ModelError(
                f"{_where(self.label, parent.key_mark)}: '<<' merges a mapping or a list "
                "of mappings, e.g. <<: *defaults"
            )
        parent.merges.extend(parts)


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
