"""A summarised model → editable model-format data, with blocks where the structure repeats.

``cnncli convert MODEL -o model.yaml`` works from the :class:`~cnncli.model.build.Summary`, the
expanded graph every source gives (a zoo name, a YAML file, or an ONNX, Keras or PyTorch model
read into model-format data), so it never depends on where the model came from. The steps:

1. :func:`flatten`: every layer that has a row, in dependency order, its inputs as positions
   (switched-off layers and a block's input pass-throughs resolved to what they pass on), its
   options canonical with their defaults.
2. Cuts: the places where exactly one tensor is alive (every later layer reads only the layer
   there). Between two cuts lies an *atom*, a single-entry, single-exit piece of the graph (a
   residual block's body and its ``add``, an inception module, one layer of a plain chain); any
   run of atoms is a valid block instance (one input, its last layer the output).
3. Units: repeated runs of atoms with the same *structure* (layer types, wiring, flags), chosen
   greedily by the lines they save. Instances that differ only in option values share a block
   with parameters (``filters: $filters``; a value that is always a whole multiple of another is
   written ``$filters * 4``); adjacent instances with equal values become one call with
   ``repeat:`` (and ``first:`` when only the first differs).
4. Model data: ``input``, ``layout``, ``framework``, ``blocks`` and ``layers``, every option
   that differs from its default written out, names kept where the format allows (inside blocks
   a layer's name is what follows its instance's common prefix: ``layer1.1.conv1`` → ``conv1``).

The result is plain data that :func:`cnncli.model.build.build` turns back into the same layers,
shapes, parameters and MACs (tests/test_convert.py checks every zoo model).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from cnncli.model.build import Summary
from cnncli.model.expressions import BLOCK_INPUT_NAMES
from cnncli.model.graph import _CALL_RESERVED, Node
from cnncli.model.layers import KERAS_NAMES, LAYER_TYPES, SPLIT_OUTPUT

#: A layer's input: (position of a layer, or -1 - i for the model's i-th input; output index of
#: a split, else None).
Ref = tuple[int, int | None]

#: Longest unit, in atoms, the search tries (a ResNet bottleneck is 2: its body and its ReLU).
MAX_UNIT_ATOMS = 32
#: What one parameter of a block costs in the score, in lines (its value in every call).
_PARAM_COST = 0.2
#: Fewest lines a block must save to be worth the reader's look-up.
MIN_SAVING = 3


@dataclass(frozen=True)
class FlatLayer:
    """One layer of the flattened graph."""

    name: str
    type: str
    #: Every canonical option of the type, defaults included, as plain data.
    options: dict[str, Any]
    refs: tuple[Ref, ...]
    trainable: bool
    training_only: bool


@dataclass(frozen=True)
class FlatModel:
    """A model as one list of layers (no blocks)."""

    name: str
    inputs: dict[str, tuple[int, ...]]
    layout: str
    framework: str
    layers: list[FlatLayer]
    #: The graph node of each layer (its computed shapes, for the PyTorch writer).
    nodes: list[Node]


def _plain(value: Any) -> Any:
    """Model values as plain YAML data (the loader's Seq and Mapping, float subclasses)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    raise TypeError(f"not model data: {value!r}")


def _frozen(value: Any) -> Any:
    """A hashable form of a value that tells ``True`` from ``1`` and ``1`` from ``1.0``."""
    if isinstance(value, list | tuple):
        return ("list", tuple(_frozen(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, _frozen(v)) for k, v in value.items()))
    return (type(value).__name__, value)


def flatten(summary: Summary) -> FlatModel:
    """Every layer with a row, in dependency order, inputs resolved to positions."""
    nodes = {n.name: n for n in summary.nodes}
    inputs = list(summary.inputs)
    order = [n for n in summary.nodes if not n.is_input and not n.hidden]
    position = {n.name: i for i, n in enumerate(order)}

    def resolve(node: Node) -> Ref:
        while True:
            if node.is_input:
                return (-1 - inputs.index(node.name), None)
            if node.kind is SPLIT_OUTPUT:
                return (position[node.inputs[0]], int(node.opts["index"]))
            if not node.hidden:
                return (position[node.name], None)
            node = nodes[node.inputs[0]]  # switched off, or a block's input: passes it on

    layers = [
        FlatLayer(
            name=n.name,
            type=n.kind.name,
            options=_plain({k: v for k, v in n.opts.items() if k != "_type"}),
            refs=tuple(resolve(nodes[i]) for i in n.inputs),
            trainable=n.trainable,
            training_only=n.training_only,
        )
        for n in order
    ]
    return FlatModel(
        summary.name, dict(summary.inputs), summary.layout, summary.framework, layers, order
    )


# -- cuts and atoms ---------------------------------------------------------------------------


def _cuts(layers: list[FlatLayer]) -> tuple[bool, list[bool]]:
    """(one input alone is alive at the start, after each position only its layer is alive).

    The last layer always ends a piece: nothing after it reads anything.
    """
    last_use: dict[Ref, int] = {}
    for q, layer in enumerate(layers):
        for ref in layer.refs:
            last_use[ref] = q
    ends: dict[int, list[Ref]] = defaultdict(list)
    defined: dict[int, list[Ref]] = defaultdict(list)
    for ref, q in last_use.items():
        ends[q].append(ref)
        defined[ref[0]].append(ref)
    live = {ref for ref in last_use if ref[0] < 0}
    start = len(live) == 1 and next(iter(live))[1] is None
    cut = []
    for p in range(len(layers)):
        live.difference_update(ends[p])
        live.update(defined[p])
        cut.append(live == {(p, None)} or p == len(layers) - 1)
    return start, cut


@dataclass(frozen=True)
class _Atom:
    """Layers ``start`` to ``end`` (inclusive) between two cuts; ``entry`` is what they read
    from outside (the previous cut, or a model input)."""

    start: int
    end: int
    entry: int
    blockable: bool
    #: Per layer: (type, trainable, training_only, inputs as "in" or (distance back, output)).
    structure: tuple[Any, ...]
    #: Per layer: its options, frozen.
    values: tuple[Any, ...]

    @property
    def size(self) -> int:
        return self.end - self.start + 1


def _atoms(layers: list[FlatLayer]) -> list[_Atom]:
    start_cut, cut = _cuts(layers)
    bounds = [p for p, c in enumerate(cut) if c]
    atoms = []
    prev = -1
    for end in bounds:
        begin = prev + 1
        if begin == 0:
            first_refs = {r for layer in layers[: end + 1] for r in layer.refs if r[0] < 0}
            entry = next(iter(first_refs))[0] if start_cut and len(first_refs) == 1 else None
        else:
            entry = prev
        atoms.append(_atom(layers, begin, end, entry))
        prev = end
    return atoms


def _atom(layers: list[FlatLayer], start: int, end: int, entry: int | None) -> _Atom:
    structure = []
    ok = entry is not None
    for p in range(start, end + 1):
        layer = layers[p]
        refs: list[Any] = []
        for q, k in layer.refs:
            if q == entry and k is None:
                refs.append("in")
            elif q >= start:
                refs.append((p - q, k))
            else:  # reads past the entry: cannot be a block (only at a model's start)
                ok = False
                refs.append(("outside", q, k))
        structure.append((layer.type, layer.trainable, layer.training_only, tuple(refs)))
    values = tuple(_frozen(layers[p].options) for p in range(start, end + 1))
    return _Atom(start, end, -1 if entry is None else entry, ok, tuple(structure), values)


# -- units: repeated runs of atoms --------------------------------------------------------------


@dataclass
class _Param:
    """A block parameter: found on option ``option`` of the unit's layer ``layer``, its value in
    each instance, and its name once every parameter of the block is known."""

    option: str
    layer: int
    values: list[Any]
    name: str = ""


@dataclass
class Unit:
    """A block: ``atoms`` atoms long, its instances starting at the atoms ``starts``."""

    atoms: int
    starts: list[int]
    params: list[_Param] = field(default_factory=list)
    #: (layer index in the unit, option) → the parameter it reads and what follows (`` * 4``).
    uses: dict[tuple[int, str], tuple[_Param, str]] = field(default_factory=dict)
    name: str = ""
    #: The instance whose layer names the block takes: the one whose names share the longest
    #: prefix (``stage2.0`` rather than a stem that happens to have the same structure).
    shown: int = 0

    def expr(self, layer: int, option: str) -> str | None:
        """The expression a block layer writes for an option that differs between instances."""
        use = self.uses.get((layer, option))
        return None if use is None else f"${use[0].name}{use[1]}"


def _occurrences(starts: list[int], length: int) -> list[int]:
    """Non-overlapping occurrences, first come first taken."""
    taken: list[int] = []
    for s in starts:
        if not taken or s >= taken[-1] + length:
            taken.append(s)
    return taken


def _unit_values(atoms: list[_Atom], start: int, length: int) -> tuple[Any, ...]:
    return tuple(v for a in atoms[start : start + length] for v in a.values)


def _runs(atoms: list[_Atom], unit: Unit) -> list[list[int]]:
    """The unit's instances grouped into calls: adjacent instances with equal values (the first
    may differ when 3 or more follow it: ``first:``)."""
    runs: list[list[int]] = []
    for s in unit.starts:
        values = _unit_values(atoms, s, unit.atoms)
        run = runs[-1] if runs else None
        if run is not None and run[-1] + unit.atoms == s:
            rest = _unit_values(atoms, run[1] if len(run) > 1 else s, unit.atoms)
            if values == rest:
                run.append(s)
                continue
        runs.append([s])
    out: list[list[int]] = []
    for run in runs:
        first_differs = len(run) > 1 and _unit_values(atoms, run[0], unit.atoms) != (
            _unit_values(atoms, run[1], unit.atoms)
        )
        if first_differs and len(run) < 3:
            out.extend([s] for s in run)  # two explicit calls read better than repeat + first
        else:
            out.append(run)
    return out


def _name_tokens(name: str) -> list[str]:
    return re.split(r"([./_\-])", name)


def _common_prefix(names: list[str]) -> tuple[str, int]:
    """The longest common prefix of ``names`` ending at a separator (``layer1.1`` of
    ``layer1.1.conv1`` and ``layer1.1.bn1``) and its number of name parts."""
    token_lists = [_name_tokens(n) for n in names]
    common = 0
    for parts in zip(*token_lists, strict=False):
        if len(set(parts)) != 1:
            break
        common += 1
    # End on a name part that is followed by a separator in every name.
    while common > 0 and (
        token_lists[0][common - 1] in "./_-" or any(len(t) <= common for t in token_lists)
    ):
        common -= 1
    prefix = "".join(token_lists[0][:common])
    return prefix, sum(1 for t in token_lists[0][:common] if t not in "./_-" and t)


@dataclass(frozen=True)
class _Candidate:
    score: float
    coherence: int
    first: int
    length: int
    starts: tuple[int, ...]

    @property
    def rank(self) -> tuple[float, int, int]:
        return (self.score, self.coherence, -self.first)


def _score(atoms: list[_Atom], layers: list[FlatLayer], length: int, starts: list[int]) -> float:
    """Lines saved by writing the instances as one block and its calls."""
    size = sum(a.size for a in atoms[starts[0] : starts[0] + length])
    unit = Unit(length, list(starts))
    calls = len(_runs(atoms, unit))
    params = len(_parametrise(atoms, layers, unit, dry=True))
    flat = len(starts) * size
    written = size + calls + 2 + (1 if params else 0) + _PARAM_COST * params * calls
    return flat - written


def find_units(layers: list[FlatLayer]) -> tuple[list[_Atom], list[Unit]]:
    """The atoms of the graph and the units chosen among their repeated runs."""
    atoms = _atoms(layers)
    ids: dict[Any, int] = {}
    struct = [ids.setdefault(a.structure, len(ids)) for a in atoms]
    free = [a.blockable for a in atoms]
    units: list[Unit] = []
    while True:
        best = _best_candidate(atoms, layers, struct, free)
        if best is None:
            break
        unit = Unit(best.length, list(best.starts))
        _parametrise(atoms, layers, unit)
        units.append(unit)
        for s in unit.starts:
            for i in range(s, s + unit.atoms):
                free[i] = False
    units.sort(key=lambda u: u.starts[0])
    return atoms, units


def _best_candidate(
    atoms: list[_Atom], layers: list[FlatLayer], struct: list[int], free: list[bool]
) -> _Candidate | None:
    """The repeated run of atoms that saves the most lines (None when nothing saves any)."""
    m = len(atoms)
    run = [0] * (m + 1)  # free atoms in a row from i
    for i in range(m - 1, -1, -1):
        run[i] = run[i + 1] + 1 if free[i] else 0
    found: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for length in range(1, min(MAX_UNIT_ATOMS, m // 2) + 1):
        for i in range(m - length + 1):
            if run[i] >= length:
                found[tuple(struct[i : i + length])].append(i)
    # Upper bounds first: the exact score (parameters, calls) is computed only for candidates
    # that could still win.
    bounded = []
    for key, starts in found.items():
        taken = _occurrences(starts, len(key))
        if len(taken) < 2:
            continue
        size = sum(a.size for a in atoms[taken[0] : taken[0] + len(key)])
        bounded.append((len(taken) * size - size - 3, len(key), taken))
    bounded.sort(key=lambda b: -b[0])
    best: _Candidate | None = None
    for bound, length, taken in bounded:
        if best is not None and bound < best.score:
            break
        score = _score(atoms, layers, length, taken)
        if score < MIN_SAVING:
            continue
        first = atoms[taken[0]]
        last = atoms[taken[0] + length - 1]
        _, coherence = _common_prefix([layers[p].name for p in range(first.start, last.end + 1)])
        cand = _Candidate(score, coherence, taken[0], length, tuple(taken))
        if best is None or cand.rank > best.rank:
            best = cand
    return best


# -- parameters -------------------------------------------------------------------------------


def _unit_layers(atoms: list[_Atom], start: int, length: int) -> list[int]:
    return [p for a in atoms[start : start + length] for p in range(a.start, a.end + 1)]


def _multiple(v: list[Any], u: list[Any]) -> str | None:
    """``* k`` or ``// k`` when ``v`` is ``u`` times / divided by one whole k ≥ 2 everywhere."""
    ints = all(type(x) is int and x > 0 for x in (*v, *u))
    if not ints:
        return None
    if all(x % y == 0 for x, y in zip(v, u, strict=True)):
        ks = {x // y for x, y in zip(v, u, strict=True)}
        if len(ks) == 1 and (k := ks.pop()) >= 2:
            return f" * {k}"
    if all(y % x == 0 for x, y in zip(v, u, strict=True)):
        ks = {y // x for x, y in zip(v, u, strict=True)}
        if len(ks) == 1 and (k := ks.pop()) >= 2:
            return f" // {k}"
    return None


_RESERVED_PARAMS = frozenset(_CALL_RESERVED) | frozenset(BLOCK_INPUT_NAMES)


def _parametrise(
    atoms: list[_Atom], layers: list[FlatLayer], unit: Unit, dry: bool = False
) -> list[_Param]:
    """The block's parameters: one per distinct vector of values that differ between instances
    (values always equal share one; a whole multiple of another is an expression of it)."""
    positions = [_unit_layers(atoms, s, unit.atoms) for s in unit.starts]
    params: list[_Param] = []
    seen: dict[Any, _Param] = {}
    uses: dict[tuple[int, str], tuple[_Param, str]] = {}
    for j, p0 in enumerate(positions[0]):
        for key in layers[p0].options:
            values = [layers[pos[j]].options[key] for pos in positions]
            frozen = tuple(_frozen(v) for v in values)
            if len(set(frozen)) == 1:
                continue
            if frozen in seen:
                uses[(j, key)] = (seen[frozen], "")
                continue
            multiple = next(
                ((q, m) for q in params if (m := _multiple(values, q.values)) is not None), None
            )
            if multiple is not None:
                uses[(j, key)] = multiple
                continue
            param = _Param(key, j, values)
            params.append(param)
            seen[frozen] = param
            uses[(j, key)] = (param, "")
    if not dry:
        coherence = [_common_prefix([layers[p].name for p in pos])[1] for pos in positions]
        unit.shown = coherence.index(max(coherence))
        _name_params(params, layers, positions[unit.shown])
        unit.params, unit.uses = params, uses
    return params


def _name_params(params: list[_Param], layers: list[FlatLayer], first: list[int]) -> None:
    """Name each parameter after its option, with its layer's name where two parameters come
    from options of one word (``conv2_filters``) or the word is reserved (``name``)."""
    counts: dict[str, int] = defaultdict(int)
    for param in params:
        counts[param.option] += 1
    prefix, _ = _common_prefix([layers[p].name for p in first])
    taken: set[str] = set()
    for param in params:
        base = param.option
        if counts[base] > 1 or base in _RESERVED_PARAMS:
            layer = layers[first[param.layer]]
            base = f"{_local_name(layer.name, prefix) or layer.type}_{base}"
        param.name = _word(base, taken | _RESERVED_PARAMS)
        taken.add(param.name)


def _word(base: str, taken: set[str] | frozenset[str]) -> str:
    """``base`` as a name the format takes (letters, digits, _ and -), not in ``taken``."""
    word = re.sub(r"[^\w\-]", "_", base)
    if not re.match(r"[A-Za-z_]", word):
        word = f"l{word}" if word else "layer"
    name, n = word, 1
    while name in taken:
        n += 1
        name = f"{word}_{n}"
    return name


def _local_name(name: str, prefix: str) -> str:
    """What follows the instance's common prefix (``conv1`` of ``layer1.1.conv1``)."""
    if prefix and name.startswith(prefix) and len(name) > len(prefix) + 1:
        return name[len(prefix) + 1 :]
    return "" if prefix and name == prefix else name


# -- model data -------------------------------------------------------------------------------


def model_data(summary: Summary, blocks: bool = True) -> dict[str, Any]:
    """The model as model-format data: a YAML file's content, blocks where the structure
    repeats (``blocks=False``: every layer at the top level)."""
    flat = flatten(summary)
    atoms, units = find_units(flat.layers) if blocks else ([], [])
    return _Writer(flat, atoms, units).data()


class _Names:
    """One ``layers:`` list's names: unique words, and the ones the loader would give anyway
    (Keras-style ``conv2d_1``) left out, as :class:`~cnncli.model.graph.Expander` names them."""

    def __init__(self, taken: set[str], channels_last: bool) -> None:
        self.taken = set(taken)
        self.counters: dict[str, int] = {}
        self.channels_last = channels_last

    def base(self, layer_type: str) -> str:
        return KERAS_NAMES.get(layer_type, layer_type) if self.channels_last else layer_type

    def take(self, wanted: str, base: str) -> tuple[str, bool]:
        """(the name, whether it must be written): ``wanted`` made a unique word."""
        name = _word(wanted, self.taken) if wanted else ""
        n = self.counters.get(base, 0)
        while True:
            default = base if n == 0 else f"{base}_{n}"
            n += 1
            if default not in self.taken:
                break
        if not name or name == default:
            self.counters[base] = n
            self.taken.add(default)
            return default, False
        self.taken.add(name)
        return name, True


#: Name words that say nothing about a block (``layer1.0`` → ``layer``): a block is then named
#: after its structure.
_VAGUE = frozenset({"layer", "layers", "stage", "stages", "block", "blocks", "features", "model"})


def _block_base(layers: list[FlatLayer], entry_reads: list[bool], prefix: str) -> str:
    """A block's name: its layer types when short (``conv2d_relu``); ``residual`` or ``dense``
    when an add or concat reads the block's input; else the word its instances' names share
    (``inception3a`` → ``inception``); else ``residual``, ``branches``, ``gated`` or ``block``
    from its merges."""
    types = [layer.type for layer in layers]
    if len(types) <= 3:
        return "_".join(dict.fromkeys(types))
    for layer, reads_input in zip(layers, entry_reads, strict=True):
        if reads_input and layer.type in ("add", "concat"):
            return "residual" if layer.type == "add" else "dense"
    parts = [c for c in re.split(r"[./_\-]", prefix) if c and not c.isdigit()]
    word = re.match(r"[A-Za-z]*", parts[-1]).group(0).lower() if parts else ""  # type: ignore[union-attr]
    if len(word) >= 3 and word not in _VAGUE:
        return word
    for merge, word in (("add", "residual"), ("concat", "branches"), ("multiply", "gated")):
        if merge in types:
            return word
    return "block"


class _Writer:
    """Writes the flat model and its units as model-format data."""

    def __init__(self, flat: FlatModel, atoms: list[_Atom], units: list[Unit]) -> None:
        self.flat = flat
        self.layers = flat.layers
        self.atoms = atoms
        self.units = units
        self.last = flat.layout == "channels_last"
        self.inputs = list(flat.inputs)

    def data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.flat.name}
        if self.inputs == ["input"]:
            out["input"] = list(self.flat.inputs["input"])
        else:
            out["inputs"] = {k: list(v) for k, v in self.flat.inputs.items()}
        out["layout"] = self.flat.layout
        out["framework"] = self.flat.framework
        blocks = self._blocks()
        if blocks:
            out["blocks"] = blocks
        out["layers"] = self._top()
        return out

    # -- one layer ----------------------------------------------------------------------------
    def _item(
        self, layer: FlatLayer, name: str | None, refs: list[str] | None, exprs: dict[str, str]
    ) -> dict[str, Any]:
        kind = LAYER_TYPES[layer.type]
        item: dict[str, Any] = {"type": layer.type}
        if name is not None:
            item["name"] = name
        if refs is not None:
            item["input"] = refs[0] if len(refs) == 1 else refs
        for key, value in layer.options.items():
            if key in exprs:
                item[key] = exprs[key]
            elif _frozen(value) != _frozen(kind.options.get(key)):
                item[key] = value
        if not layer.trainable:
            item["trainable"] = False
        if layer.training_only:
            item["training_only"] = True
        return item

    # -- blocks -------------------------------------------------------------------------------
    def _blocks(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for unit in self.units:
            shown = _unit_layers(self.atoms, unit.starts[unit.shown], unit.atoms)
            prefix, _ = _common_prefix([self.layers[p].name for p in shown])
            entry = self.atoms[unit.starts[unit.shown]].entry
            reads = [any(q == entry for q, _ in self.layers[p].refs) for p in shown]
            base = _block_base([self.layers[p] for p in shown], reads, prefix)
            unit.name = _word(base, set(out))
            block: dict[str, Any] = {}
            if unit.params:
                block["params"] = {p.name: p.values[unit.shown] for p in unit.params}
            block["layers"] = self._block_layers(unit, shown)
            out[unit.name] = block
        return out

    def _block_layers(self, unit: Unit, first: list[int]) -> list[dict[str, Any]]:
        """The block's layers as its instance ``unit.shown`` has them (names after its
        common prefix), option values that differ between instances as expressions."""
        prefix, _ = _common_prefix([self.layers[p].name for p in first])
        entry = self.atoms[unit.starts[unit.shown]].entry
        names = _Names({"input"}, self.last)
        local: dict[int, str] = {}
        items = []
        prev = entry
        for j, p in enumerate(first):
            layer = self.layers[p]
            name, written = names.take(_local_name(layer.name, prefix), names.base(layer.type))
            local[p] = name
            refs = None
            if list(layer.refs) != [(prev, None)]:
                refs = [
                    "input" if q == entry else local[q] + ("" if k is None else f".{k}")
                    for q, k in layer.refs
                ]
            exprs = {key: e for key in layer.options if (e := unit.expr(j, key)) is not None}
            items.append(self._item(layer, name if written else None, refs, exprs))
            prev = p
        return items

    # -- the top level ------------------------------------------------------------------------
    def _calls(self) -> dict[int, tuple[Unit, list[int]]]:
        """Layer position where a call starts → its unit and the instances (atom indices)."""
        out = {}
        for unit in self.units:
            for run in _runs(self.atoms, unit):
                out[self.atoms[run[0]].start] = (unit, run)
        return out

    def _top(self) -> list[dict[str, Any]]:
        calls = self._calls()
        names = _Names(set(self.inputs), self.last)
        known: dict[int, str] = {-1 - i: n for i, n in enumerate(self.inputs)}
        items: list[dict[str, Any]] = []
        prev = -1
        p = 0
        while p < len(self.layers):
            if p in calls:
                unit, run = calls[p]
                exit_ = self.atoms[run[-1] + unit.atoms - 1].end
                item, known[exit_] = self._call(unit, run, names, known, prev)
                items.append(item)
                prev, p = exit_, exit_ + 1
                continue
            layer = self.layers[p]
            name, written = names.take(layer.name, names.base(layer.type))
            refs = None
            if list(layer.refs) != [(prev, None)]:
                refs = [known[q] + ("" if k is None else f".{k}") for q, k in layer.refs]
            items.append(self._item(layer, name if written else None, refs, {}))
            known[p] = name
            prev, p = p, p + 1
        return items

    def _call(
        self,
        unit: Unit,
        run: list[int],
        names: _Names,
        known: dict[int, str],
        prev: int,
    ) -> tuple[dict[str, Any], str]:
        """A call of ``unit`` for the instances ``run``, and the name its output goes by."""
        first = _unit_layers(self.atoms, run[0], unit.atoms)
        prefix, _ = _common_prefix([self.layers[p].name for p in first])
        name, written = names.take(prefix, unit.name)
        item: dict[str, Any] = {"block": unit.name}
        if written:
            item["name"] = name
        entry = self.atoms[run[0]].entry
        if entry != prev:
            item["input"] = known[entry]
        if len(run) > 1:
            item["repeat"] = len(run)
        which = [unit.starts.index(s) for s in run]
        rest = which[1] if len(which) > 1 else which[0]
        for param in unit.params:
            item[param.name] = param.values[rest]
        firsts = {
            param.name: param.values[which[0]]
            for param in unit.params
            if _frozen(param.values[which[0]]) != _frozen(param.values[rest])
        }
        if firsts:
            item["first"] = firsts
        return item, name


# -- checking ---------------------------------------------------------------------------------


def _layer_numbers(summary: Summary) -> list[tuple[Any, ...]]:
    """Each layer's type, output, parameters and MACs, in dependency order."""
    rows = {r.name: r for r in summary.layers()}
    return [
        (r.type, r.output_shape, r.output_shapes, r.params, r.trainable_params, r.macs)
        + (r.bias_macs, r.training_only)
        for n in summary.nodes
        if (r := rows.get(n.name)) is not None
    ]


def differences(original: Summary, converted: Summary) -> list[str]:
    """How ``converted`` counts differently from ``original`` (empty when it does not): totals,
    the outputs' shapes and every layer's type, shape, parameters and MACs in order."""
    out = []
    if original.totals != converted.totals:
        out.append(f"totals {converted.totals} != {original.totals}")
    if list(original.outputs.values()) != list(converted.outputs.values()):
        out.append(
            f"outputs {list(converted.outputs.values())} != {list(original.outputs.values())}"
        )
    if original.inputs != converted.inputs or original.layout != converted.layout:
        out.append("inputs or layout differ")
    ours, theirs = _layer_numbers(original), _layer_numbers(converted)
    if ours != theirs:
        first = next(
            (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
            min(len(ours), len(theirs)),
        )
        out.append(f"{len(theirs)} layers against {len(ours)}; the first that differs is #{first}")
    return out
