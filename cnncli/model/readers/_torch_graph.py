"""The two ways :mod:`cnncli.model.readers.torch_module` reads a PyTorch module's forward pass,
and how the layers become model data.

- :class:`FxReader` walks torch.fx's graph: every node, with its real connections and the
  values PyTorch computed on the meta device.
- :class:`HookReader` records each leaf module's calls with forward hooks, when fx cannot trace
  ``forward``; connectivity is then inferred as sequential.
- :func:`model_data_of` nests the layers as the modules nest them: each module call with one
  input and one output is a block (identical ones share a definition).

torch is never imported at module level: the readers are given it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from cnncli.model.readers import unique_name
from cnncli.model.readers._torch_ops import (
    INPUT,
    Args,
    Entry,
    Net,
    Ops,
    P,
    Site,
    T,
    flat,
    own_tensors,
    plain_tensor,
)

Scope = tuple[tuple[str, str, str], ...]


# -- torch.fx --------------------------------------------------------------------------------


def fname(target: Any) -> str:
    """torch's name of a called function or method ('' for a function that is not torch's)."""
    if isinstance(target, str):
        return target
    module = getattr(target, "__module__", None) or ""
    if module.startswith("torch") or module in ("_operator", "operator", "builtins"):
        return str(getattr(target, "__name__", ""))
    return ""


def _scope(node: Any) -> Scope:
    """The module calls a node runs inside, outermost first (a module call: without itself)."""
    stack = list((node.meta.get("nn_module_stack") or {}).items())
    if node.op == "call_module" and stack:
        stack = stack[:-1]
    return tuple(
        (str(key), str(qual), cls.__name__ if isinstance(cls, type) else str(cls).split(".")[-1])
        for key, (qual, cls) in stack
    )


def _channel_shuffles(
    graph: Any, values: dict[str, Any]
) -> tuple[dict[str, tuple[Any, int]], set[str]]:
    """ShuffleNet's channel shuffle written out — ``view`` to (g, C/g, H, W), ``transpose(1,
    2)``, ``contiguous``, ``view`` back — as one ``channel_shuffle``: the last view's node name
    → (the source node, g), and the nodes in between (read no further)."""
    folds: dict[str, tuple[Any, int]] = {}
    skip: set[str] = set()
    views = ("view", "reshape")
    for last in graph.nodes:
        if last.op not in ("call_method", "call_function") or fname(last.target) not in views:
            continue
        chain = [last.args[0]]
        if fname(getattr(chain[-1], "target", "")) == "contiguous":
            chain.append(chain[-1].args[0])
        swap = chain[-1]
        if fname(getattr(swap, "target", "")) != "transpose" or set(swap.args[1:3]) != {1, 2}:
            continue
        first = swap.args[0]
        if fname(getattr(first, "target", "")) not in views:
            continue
        source = first.args[0]
        src, mid, end = (values.get(getattr(n, "name", "")) for n in (source, first, last))
        if src is None or mid is None or end is None or mid.dim() < 3:
            continue
        groups, per = int(mid.shape[1]), int(mid.shape[2])
        same = tuple(src.shape) == tuple(end.shape) and mid.shape[3:] == src.shape[2:]
        between = [first, swap, *chain[:-1]]
        if not same or groups * per != int(src.shape[1]) or any(len(n.users) != 1 for n in between):
            continue
        folds[last.name] = (source, groups)
        skip.update(n.name for n in between)
    return folds, skip


class FxReader(Ops):
    """Layers and their connections from the fx graph of ``forward``; ``values`` are the
    nodes' values PyTorch computed on the meta device."""

    def __init__(self, model: Any, graph: Any, values: dict[str, Any], torch: Any) -> None:
        super().__init__(torch, {n.name for n in graph.graph.nodes})
        self.model = model
        self.weights = {n for n, _ in own_tensors(model, "")}
        self.graph = graph.graph
        self.values = values
        self.vals: dict[str, Any] = {}

    def read(self) -> Net:
        folds, skip = _channel_shuffles(self.graph, self.values)
        for node in self.graph.nodes:
            if node.name in skip:
                continue
            self.scope = _scope(node)
            if node.name in folds:
                source, groups = folds[node.name]
                self.site = Site(node.name, "channel_shuffle")
                out = self.values[node.name]
                self.vals[node.name] = self.channel_shuffle(self.vals[source.name], out, groups)
            else:
                self.vals[node.name] = self._node(node)
        return self.net

    def _node(self, node: Any) -> Any:
        value = self.values.get(node.name)
        if node.op == "placeholder":
            if not isinstance(value, self.torch.Tensor):
                return value  # an optional argument of forward, at its default
            return plain_tensor(INPUT, tuple(int(d) for d in value.shape[1:]))
        if node.op == "get_attr":
            # fx keeps tensors made while tracing (torch.ones(…) in forward) as attributes
            # too: constants, not the model's parameters.
            return P(str(node.target), value, str(node.target) in self.weights)
        if node.op == "output":
            outs = [t for t in flat([self._arg(node.args)]) if isinstance(t, T)]
            self.net.outputs = [self.plain(t).ref for t in outs]
            return None
        out = self.values[node.name]
        if not _holds_tensor(out, self.torch):
            return out  # sizes, counts: plain Python values
        call = Args(self._arg(node.args), self._arg(node.kwargs))
        if node.op == "call_module":
            mod = self.model.get_submodule(node.target)
            self.site = Site(node.name, str(node.target), own_tensors(mod, str(node.target)))
            ins = [a for a in call.values() if isinstance(a, T)] or [plain_tensor(INPUT, ())]
            return self.module(mod, ins, out)
        name = fname(node.target) or str(getattr(node.target, "__name__", node.target))
        self.site = Site(node.name, name)
        return self.function(name, call, out)

    def _arg(self, value: Any) -> Any:
        from torch.fx.node import map_arg

        return map_arg(value, lambda n: self.vals[n.name])


def _holds_tensor(value: Any, torch: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, tuple | list):
        return any(_holds_tensor(v, torch) for v in value)
    return False


# -- forward hooks ---------------------------------------------------------------------------


@dataclass
class Call:
    """One call of a leaf module, as forward hooks saw it."""

    qual: str
    module: Any
    scope: Scope
    inputs: list[Any]
    output: Any


def record_calls(model: Any, run: Any, torch: Any) -> list[Call]:
    """Every call of a leaf module while ``run()`` runs the model, in order, each with the
    module calls around it (keys ``qual@n`` for the n-th call of a module called again)."""
    calls: list[Call] = []
    stack: list[tuple[str, str, str]] = []
    counts: dict[str, int] = {}
    names = {id(m): q for q, m in model.named_modules()}

    def pre(mod: Any, args: Any) -> None:
        qual = names.get(id(mod), "")
        n = counts.get(qual, 0)
        counts[qual] = n + 1
        stack.append((f"{qual}@{n}" if n else qual, qual, type(mod).__name__))

    def post(mod: Any, args: Any, out: Any) -> None:
        stack.pop()
        if next(iter(mod.children()), None) is None:
            tensors = [a for a in flat(args) if isinstance(a, torch.Tensor)]
            calls.append(Call(names.get(id(mod), ""), mod, tuple(stack[1:]), tensors, out))

    handles = []
    for mod in model.modules():
        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post))
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return calls


class HookReader(Ops):
    """One layer per call of a leaf module, in call order, each reading the one before.

    Between two modules, work hooks do not see (a residual add, a concat, a view) may change
    the tensor: where a module's input is not the previous output, a ``reshape`` or ``flatten``
    (the same number of values) or an ``opaque`` row (anything else) stands for it, so that
    every module gets the input PyTorch gave it and its own numbers are exact.
    """

    def __init__(self, calls: list[Call], shape: tuple[int, ...], torch: Any) -> None:
        super().__init__(torch, set())
        self.calls = calls
        self.input_shape = shape
        self.bridges = 0

    def read(self) -> Net:
        prev = plain_tensor(INPUT, self.input_shape)
        for call in self.calls:
            self.scope = call.scope
            name = self.fresh(call.qual.replace(".", "_") or type(call.module).__name__)
            if call.inputs:
                prev = self._bridge(prev, call.inputs[0], name)
            self.site = Site(name, call.qual, own_tensors(call.module, call.qual))
            result = self.module(call.module, [prev], call.output)
            prev = result if isinstance(result, T) else result[0]
        self.net.outputs = [self.plain(prev).ref]
        if self.bridges:
            n = self.bridges
            self.net.notes.append(
                f"{n} place{'s' if n > 1 else ''} where a module's input is not the previous "
                "module's output (work between modules, which hooks do not see) "
                f"{'are' if n > 1 else 'is'} bridged by a row of its own (reshape or flatten for "
                "the same number of values, opaque otherwise)"
            )
        return self.net

    def _bridge(self, prev: T, tensor: Any, name: str) -> T:
        """``prev`` made into the input PyTorch gave the next module."""
        shape = tuple(int(d) for d in tensor.shape[1:])
        if shape == prev.shape or int(tensor.shape[0]) != 1:
            return prev
        self.bridges += 1
        self.site = Site(self.fresh(f"{name}_input"), f"{name}_input")
        if math.prod(shape) == math.prod(prev.shape):
            reshaped = self._reshape(prev, tensor)
            if reshaped is not None:
                return reshaped
        return self.opaque("unseen", [prev], tensor, [])


# -- model data: module nesting as blocks ----------------------------------------------------


@dataclass
class _Group:
    """One call of a module that holds other modules, with what runs inside it."""

    key: str
    qual: str
    cls: str
    children: list[Entry | _Group] = field(default_factory=list)
    #: A block: the one tensor it reads and the one it hands on (else None: laid out flat).
    source: str | None = None
    output: str | None = None


def _base(ref: str) -> str:
    """The layer a reference names (a split's output ``NAME.i`` is the split ``NAME``)."""
    return ref.rsplit(".", 1)[0] if re.fullmatch(r".+\.\d+", ref) else ref


#: Module classes that only hold others: their blocks are named after the instance.
_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")


class _Nester:
    """The readers' flat layers as model data (see :func:`model_data_of`)."""

    def __init__(self, net: Net) -> None:
        self.net = net
        self.blocks: dict[str, dict[str, Any]] = {}
        self.definitions: dict[str, str] = {}
        #: Every layer's full name in the built summary (``layer1.layer1_0.conv1``).
        self.full: dict[str, str] = {}
        self.consumers: dict[str, set[str]] = {}
        for e in net.entries:
            for ref in e.inputs:
                self.consumers.setdefault(ref, set()).add(e.name)

    def tree(self) -> _Group:
        root = _Group("", "", "")
        groups: dict[str, _Group] = {"": root}
        for e in self.net.entries:
            parent = root
            for key, qual, cls in e.scope:
                if key not in groups:
                    groups[key] = _Group(key, qual, cls)
                    parent.children.append(groups[key])
                parent = groups[key]
            parent.children.append(e)
        for g in groups.values():
            if g is root:
                continue
            if len(g.children) == 1 and isinstance(g.children[0], Entry):
                # A module around one layer (torchvision's LayerNorm2d, StochasticDepth): the
                # layer itself, named after the module.
                g.children[0].local = g.qual
            else:
                self._judge(g)
        return root

    def _judge(self, group: _Group) -> None:
        """A block reads one tensor from outside, and the outside reads one from inside."""
        inside = _entries(group)
        names = {e.name for e in inside}
        sources = {r for e in inside for r in e.inputs if _base(r) not in names}
        handed = {r for r in self.net.outputs if _base(r) in names}
        for ref, users in self.consumers.items():
            if _base(ref) in names and users - names:
                handed.add(ref)
        if len(sources) == 1 and len(handed) == 1:
            group.source, group.output = next(iter(sources)), next(iter(handed))

    def body(
        self, group: _Group, prefix: str, source: str | None
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """The layers of a block (or of the model): named, their references made local."""
        items = _spliced(group.children)
        local: dict[str, str] = {}
        taken = {INPUT}
        names = []
        for item in items:
            name = unique_name(_local_name(item, group.qual), taken)
            names.append(name)
            if isinstance(item, Entry):
                local[item.name] = name
                self.full[item.name] = prefix + name
            else:
                local[item.output or ""] = name
        out: list[dict[str, Any]] = []
        for item, name in zip(items, names, strict=True):
            if isinstance(item, Entry):
                refs = [_ref(r, local, source) for r in item.inputs]
                out.append(
                    {"name": name, **item.spec, "input": refs[0] if len(refs) == 1 else refs}
                )
            else:
                block = self._block(item, f"{prefix}{name}.", name)
                out.append(
                    {"block": block, "name": name, "input": _ref(item.source or "", local, source)}
                )
        return out, local

    def _block(self, group: _Group, prefix: str, name: str) -> str:
        """The definition of a group's block (shared with identical ones), by name: the
        module's class (a Sequential's: the instance's own name, ``layer1``)."""
        layers, local = self.body(group, prefix, group.source)
        definition: dict[str, Any] = {"layers": layers}
        output = _ref(group.output or "", local, group.source)
        if layers[-1].get("name") != output:
            definition["output"] = output
        key = json.dumps(definition, sort_keys=True, default=str)
        if key not in self.definitions:
            base = name if group.cls in _CONTAINERS else group.cls
            unique, n = base, 1
            while unique in self.blocks:
                n += 1
                unique = f"{base}_{n}"
            self.blocks[unique] = definition
            self.definitions[key] = unique
        return self.definitions[key]


def _ref(ref: str, local: dict[str, str], source: str | None) -> str:
    """A reference as the block (or model) holding it names it."""
    if ref == source:
        return INPUT
    if ref in local:
        return local[ref]
    base = _base(ref)
    return f"{local[base]}{ref[len(base) :]}" if base in local else ref


def _entries(group: _Group) -> list[Entry]:
    out: list[Entry] = []
    for child in group.children:
        out += [child] if isinstance(child, Entry) else _entries(child)
    return out


def _spliced(children: list[Entry | _Group]) -> list[Entry | _Group]:
    """Children with the groups that are not blocks replaced by their own children."""
    out: list[Entry | _Group] = []
    for child in children:
        if isinstance(child, _Group) and child.source is None:
            out += _spliced(child.children)
        else:
            out.append(child)
    return out


def _local_name(item: Entry | _Group, parent: str) -> str:
    """A module's path below its block (``conv1``, ``branch2_0``); a function's name.

    Sequential's children are numbered: ``features.1.0`` inside ``features.1`` is
    ``features_1_0`` (the path from the nearest named module), so the name still finds the
    module in PyTorch.
    """
    qual = item.qual if isinstance(item, _Group) else item.local
    rel = qual[len(parent) + 1 :] if parent and qual.startswith(parent + ".") else qual
    parts = rel.split(".")
    if not re.match(r"[A-Za-z_]", parts[0]):
        above = parent.split(".") if parent else []
        named = [i for i, p in enumerate(above) if re.match(r"[A-Za-z_]", p)]
        parts = above[named[-1] :] + parts if named else ["", *parts]
    return re.sub(r"\W", "_", "_".join(parts))


def model_data_of(
    name: str, shape: tuple[int, ...], net: Net
) -> tuple[dict[str, Any], dict[str, str]]:
    """The model data of a reader's layers (plain dicts), and each layer's full name in it."""
    nester = _Nester(net)
    root = nester.tree()
    data: dict[str, Any] = {
        "name": name,
        "input": list(shape),
        "layout": "channels_first",
        "framework": "torch",
        "layers": nester.body(root, "", None)[0],
    }
    if nester.blocks:
        data["blocks"] = nester.blocks
    return data, nester.full
