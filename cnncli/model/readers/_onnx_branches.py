"""``If`` nodes whose condition is known before the model runs, replaced by the branch taken.

TorchScript's exporter writes ``squeeze(dim)`` of a size it cannot see as ``If(Shape(x)[dim] ==
1, Squeeze(x), Identity(x))`` - ``nn.LocalResponseNorm`` has one. The condition is shape
arithmetic, which the reader computes (cnncli knows every layer's shape), so the branch taken is
known: its nodes go into the main graph where the ``If`` was, the node that makes each branch
output writing the ``If``'s output instead, and the model is read again (shape inference then
sees the branch's tensors as the main graph's). An ``If`` on a value known only when the model
runs stays what it was: an opaque row when ONNX gives its output a shape, else an error.

A condition computed from the size of a symbolic batch is not known: :func:`batch_free`
computes it again with a batch size that refuses to take part in any arithmetic or comparison,
and only a condition computed without it is taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cnncli.errors import ModelError
from cnncli.model.readers._onnx_fold import FOLDABLE, fold, np_lib
from cnncli.model.readers._onnx_values import DEFAULT_DOMAINS, Act, Const, attrs

if TYPE_CHECKING:
    from cnncli.model.readers._onnx_convert import Converter

#: How deep a condition's chain of constant nodes is followed back (a file cannot make the
#: reader recurse without end).
_DEPTH = 64


class _Batch:
    """A symbolic batch size in a condition computed again: numpy carries it through Shape,
    Gather, Concat and the like (object arrays), and any arithmetic or comparison with it says
    that the condition depends on the batch."""

    def _refuse(self, *_: Any) -> Any:
        raise ValueError("the condition depends on the batch size")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _refuse
    __mod__ = __rmod__ = __pow__ = __rpow__ = __neg__ = __abs__ = _refuse
    __int__ = __float__ = __index__ = __bool__ = _refuse
    __hash__ = object.__hash__


@dataclass
class Branch:
    """The branch an ``If`` takes, ready for the main graph."""

    node: Any  # the If (kept alive: the converter knows it by id)
    nodes: list[Any]
    initializers: list[Any]


def branch_of(onnx: Any, node: Any, taken: bool) -> Branch:
    """The nodes of ``node``'s then (``taken``) or else branch, copied: each branch output is
    written by its node under the ``If``'s output name (an ``Identity`` when the branch passes
    on a tensor of the outer graph or one of its own initializers)."""
    graph = attrs(node)["then_branch" if taken else "else_branch"]
    made = {name for n in graph.node for name in n.output}
    rename: dict[str, str] = {}
    extra = []
    for out, target in zip(graph.output, node.output, strict=False):
        if not target:
            continue
        if out.name in made and out.name not in rename:
            rename[out.name] = target
        else:
            extra.append(
                onnx.helper.make_node("Identity", [rename.get(out.name, out.name)], [target])
            )
    nodes = []
    for n in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(n)
        _rename(copy, rename)
        nodes.append(copy)
    return Branch(node, nodes + extra, list(graph.initializer))


def _rename(node: Any, rename: dict[str, str], outputs: bool = True) -> None:
    """``node``'s inputs (and ``outputs``) renamed, and the outer names its subgraphs read."""
    node.input[:] = [rename.get(name, name) for name in node.input]
    if outputs:
        node.output[:] = [rename.get(name, name) for name in node.output]
    for attr in node.attribute:
        for graph in [attr.g] if attr.HasField("g") else list(attr.graphs):
            for inner in graph.node:
                _rename(inner, rename, outputs=False)


def with_branches(onnx: Any, model: Any, branches: dict[int, Branch]) -> Any:
    """``model`` with each ``If`` of ``branches`` replaced by the branch it takes (nested ones
    too), the nodes that computed only its condition left out."""
    new = onnx.ModelProto()
    new.CopyFrom(model)
    graph = new.graph
    nodes = _spliced(list(model.graph.node), branches)
    conditions = [b.node.input[0] for b in branches.values()]
    nodes = _without_unread(nodes, conditions, {o.name for o in graph.output})
    del graph.node[:]
    graph.node.extend(nodes)
    for branch in branches.values():
        graph.initializer.extend(branch.initializers)
    replaced = {name for b in branches.values() for name in b.node.output}
    kept = [vi for vi in graph.value_info if vi.name not in replaced]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return new


def _spliced(nodes: list[Any], branches: dict[int, Branch]) -> list[Any]:
    out = []
    for node in nodes:
        branch = branches.get(id(node))
        out += _spliced(branch.nodes, branches) if branch else [node]
    return out


def _without_unread(nodes: list[Any], tensors: list[str], outputs: set[str]) -> list[Any]:
    """``nodes`` without those whose outputs nothing reads any more, going back from
    ``tensors`` (the conditions of the Ifs replaced): shape arithmetic left without a reader."""
    readers: dict[str, int] = {}
    for node in nodes:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    producer = {name: node for node in nodes for name in node.output}
    dropped: set[int] = set()
    todo = list(tensors)
    while todo:
        node = producer.get(todo.pop())
        if node is None or id(node) in dropped:
            continue
        if any(readers.get(o, 0) or o in outputs for o in node.output if o):
            continue
        dropped.add(id(node))
        for name in node.input:
            readers[name] -= 1
            todo.append(name)
    return [n for n in nodes if id(n) not in dropped]


def batch_free(conv: Converter, node: Any, value: Any) -> bool:
    """Whether ``node``'s condition (``value``, computed with the symbolic batch's stand-in)
    is computed without the batch size: computed again from its nodes with :class:`_Batch`."""
    try:
        again = _evaluate(conv, node.input[0], node, {}, 0)
        return bool(again.shape == value.shape and (again == value).all())
    except (KeyError, ValueError, TypeError, IndexError, ArithmeticError, ModelError):
        return False


def _evaluate(conv: Converter, name: str, where: Any, memo: dict[str, Any], depth: int) -> Any:
    """``name``'s value with the batch a :class:`_Batch` (a KeyError when it is not a
    constant computed by ONNX's own operators)."""
    if name in memo:
        return memo[name]
    node = conv.producers.get(name)
    value = conv.values.get(name)
    if node is None or node.op_type == "Constant" or depth > _DEPTH:
        if not isinstance(value, Const) or depth > _DEPTH:
            raise KeyError(name)
        return conv.array(value, where)
    op = node.op_type
    if node.domain not in DEFAULT_DOMAINS or (op not in FOLDABLE and op != "Size"):
        raise KeyError(name)
    source = conv.values.get(node.input[0]) if node.input else None
    if op in ("Shape", "Size") and isinstance(source, Act):
        np = np_lib()
        dims = np.array([_Batch(), *source.shape.dims(source.last)], dtype=object)
        start, end = int(attrs(node).get("start", 0)), attrs(node).get("end")
        results = (
            [np.prod(dims)] if op == "Size" else [dims[start : None if end is None else int(end)]]
        )
    else:
        inputs = [_evaluate(conv, i, where, memo, depth + 1) if i else None for i in node.input]
        results = fold(op, attrs(node), inputs, conv.opset)
    for out, result in zip(node.output, results, strict=False):
        memo[out] = result
    return memo[name]
