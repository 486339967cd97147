"""``cnncli summary MODEL --weights FILE``: does the model describe this checkpoint?

The model's tensors are the ones its PyTorch build holds: each layer's module comes from
:func:`cnncli.model.torch_check.recipe_for` (the mapping ``--verify`` builds and ``cnncli convert
-o model.py`` writes), and :func:`model_tensors` lists the tensors such a module holds, in
``state_dict`` order, without importing torch (tests compare the list with the real
``state_dict`` of every zoo model's build).

The checkpoint's tensors are read without their values:

- **safetensors**: the JSON header, with the standard library only (8 bytes of length, then the
  header; the tensor data is never read);
- **PyTorch state_dict** (``torch.save(model.state_dict(), …)``, ``.pt``/``.pth``/``.bin``):
  ``torch.load(weights_only=True, map_location="meta", mmap=True)``: PyTorch's restricted
  unpickler, tensors on the meta device (no data). A whole pickled model is refused: loading it
  would run code from the file.

Both are grouped by module (``layer1.0.conv1.weight`` → module ``layer1.0.conv1``), each module's
tensors ordered as PyTorch registers them (weight, bias, running mean, running variance). A
checkpoint's order is not the model's: safetensors stores tensors sorted by name, and a
``state_dict`` lists modules in registration order (ConvNeXt registers ``layer_scale`` before
the block it scales). So each layer, in the model's order, takes the first module of the
checkpoint, in the checkpoint's order, whose tensors have its shapes; the first layer without
one is reported with both shapes (the checkpoint's module of the same name, else the first one
left that looks alike), and so is a checkpoint module no layer takes. PyTorch's
``num_batches_tracked`` counters are left out on both sides, as in every cnncli count.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnncli import limits
from cnncli.errors import ModelError
from cnncli.model.build import Summary
from cnncli.model.layers import shorten
from cnncli.model.torch_check import Recipe, recipe_for
from cnncli.outputs import describe_os_error

Shape = tuple[int, ...]

#: Bytes per element of safetensors' dtypes (sizes are checked against the data offsets).
_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
    "C64": 8,
}
#: A module's tensors in the order PyTorch registers them; others follow in file order.
_TENSOR_ORDER = {"weight": 0, "bias": 1, "running_mean": 2, "running_var": 3}
#: Keys a training checkpoint keeps its state_dict under (``torch.save({"model": …, …})``).
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network")
_SKIPPED = "num_batches_tracked"
_FIX = (
    "save the weights as safetensors (safetensors.torch.save_file(model.state_dict(), "
    "'model.safetensors')) or as a state_dict (torch.save(model.state_dict(), 'model.pt'))"
)


@dataclass(frozen=True)
class Module:
    """The tensors one module holds: its path (``layer1.0.conv1``; for the model, the layer's
    name and the part inside its module: ``conv1.0``), and (name, shape) pairs in order."""

    path: str
    tensors: tuple[tuple[str, Shape], ...]
    #: The model's layer the module belongs to (empty for a checkpoint's module).
    layer: str = ""
    layer_type: str = ""

    @property
    def shapes(self) -> tuple[Shape, ...]:
        return tuple(s for _, s in self.tensors)

    def text(self) -> str:
        return ", ".join(f"{name} {_dims(shape)}" for name, shape in self.tensors)


def _dims(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


@dataclass
class Checkpoint:
    """A checkpoint's tensors grouped by module, and what the reader has to say."""

    path: Path
    kind: str  # "safetensors" or "PyTorch state_dict"
    modules: list[Module]
    notes: list[str] = field(default_factory=list)

    @property
    def tensors(self) -> int:
        return sum(len(m.tensors) for m in self.modules)

    @property
    def numbers(self) -> int:
        return sum(math.prod(s) for m in self.modules for s in m.shapes)


# -- the model's tensors ----------------------------------------------------------------------


def _recipe_tensors(recipe: Recipe, prefix: str) -> list[tuple[str, str, Shape]]:
    """(module path, tensor name, shape) of what ``recipe``'s module holds, in state_dict order."""
    cls, family = recipe.cls, re.sub(r"[123]d$", "", recipe.cls)
    here = prefix.rstrip(".")
    out: list[tuple[str, str, Shape]] = []
    if family in ("Conv", "ConvTranspose"):
        cin, cout = recipe.arg(0, "in_channels"), recipe.arg(1, "out_channels")
        kernel = tuple(recipe.arg(2, "kernel_size"))
        groups = recipe.option("groups", 1)
        weight = (cin, cout // groups) if family == "ConvTranspose" else (cout, cin // groups)
        out.append((here, "weight", weight + kernel))
        if recipe.option("bias", True):
            out.append((here, "bias", (cout,)))
    elif family == "BatchNorm":
        c = recipe.arg(0, "num_features")
        if recipe.option("affine", True):
            out += [(here, "weight", (c,)), (here, "bias", (c,))]
        if recipe.option("track_running_stats", True):
            out += [(here, "running_mean", (c,)), (here, "running_var", (c,))]
    elif cls == "LayerNorm" and recipe.option("elementwise_affine", True):
        c = recipe.arg(0, "normalized_shape")
        out += [(here, "weight", (c,)), (here, "bias", (c,))]
    elif cls == "Linear":
        cin, cout = recipe.arg(0, "in_features"), recipe.arg(1, "out_features")
        out.append((here, "weight", (cout, cin)))
        if recipe.option("bias", True):
            out.append((here, "bias", (cout,)))
    else:
        out += _helper_tensors(recipe, prefix)
    return out


def _helper_tensors(recipe: Recipe, prefix: str) -> list[tuple[str, str, Shape]]:
    """Containers and the helpers of :mod:`cnncli.model.torch_modules` that hold tensors."""
    here = prefix.rstrip(".")
    cls = recipe.cls
    if cls == "Sequential":
        return [
            t for i, part in enumerate(recipe.args) for t in _recipe_tensors(part, f"{prefix}{i}.")
        ]
    if cls == "ChannelsLast":
        return _recipe_tensors(recipe.args[0], f"{prefix}inner.")
    if cls == "KerasBatchNorm":
        norm, c, spatial = recipe.args
        shape = (c,) + (1,) * spatial
        own = [
            (here, n, shape)
            for n in ("weight", "bias")
            if recipe.option("scale" if n == "weight" else "center")
        ]
        return own + _recipe_tensors(norm, f"{prefix}norm.")
    if cls == "Normalization" and recipe.args[0]:
        size = recipe.args[0]
        return [(here, "mean", (size,)), (here, "variance", (size,)), (here, "count", ())]
    if cls == "LayerScale":
        c, spatial, _ = recipe.args
        return [(here, "gamma", (c,) + (1,) * spatial)]
    return []


def model_tensors(summary: Summary) -> list[Module]:
    """Every module of the model's PyTorch build that holds tensors, in the model's order;
    paths start with the layer's name (``conv1``, ``conv1.0`` for a conv with its activation)."""
    nodes = {n.name: n for n in summary.nodes}
    out: list[Module] = []
    for node in summary.nodes:
        if node.is_input or node.hidden:
            continue
        shapes = [nodes[i].out.shape for i in node.inputs]  # type: ignore[union-attr]
        recipe = recipe_for(node, shapes, summary.ctx)
        if recipe is None:
            continue
        groups: dict[str, list[tuple[str, Shape]]] = {}
        for path, name, shape in _recipe_tensors(recipe, f"{node.name}."):
            groups.setdefault(path, []).append((name, shape))
        for path, tensors in groups.items():
            out.append(Module(path, tuple(tensors), node.name, node.kind.name))
    return out


# -- reading a checkpoint ---------------------------------------------------------------------


def read_checkpoint(path: Path) -> Checkpoint:
    """The tensors of a safetensors file or PyTorch state_dict, recognised by content."""
    try:
        with path.open("rb") as fh:
            head = fh.read(9)
            size = os.fstat(fh.fileno()).st_size
    except OSError as err:
        raise ModelError(f"cannot read {path}: {describe_os_error(err)}") from None
    if size == 0:
        raise ModelError(f"{path}: the file is empty; save the weights again")
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return _read_torch(path)
    if len(head) >= 9 and head[8:9] == b"{":
        return _read_safetensors(path, size)
    if len(head) < 9 and path.suffix.lower() == ".safetensors":
        raise ModelError(
            f"{path}: truncated: {size} bytes, fewer than a safetensors header needs (8 bytes "
            "of length and the JSON header); the file was cut short, save it again"
        )
    raise ModelError(
        f"{path}: not a safetensors file or a PyTorch state_dict (neither header is there); {_FIX}"
    )


def _read_safetensors(path: Path, size: int) -> Checkpoint:
    """The header of a safetensors file: its length (8 bytes, little-endian), then JSON."""
    with path.open("rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        if length > size - 8:
            raise ModelError(
                f"{path}: truncated: the header says it is {length:,} bytes long, but only "
                f"{size - 8:,} bytes follow; the file was cut short or is not safetensors"
            )
        if length > limits.get("file-bytes"):
            limits.check(
                "file-bytes", length, f"{path}: the safetensors header has {length:,} bytes"
            )
        raw = fh.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        reason = err.reason if isinstance(err, UnicodeDecodeError) else str(err).split(":")[0]
        raise ModelError(
            f"{path}: not a safetensors file: its header is not JSON ({reason})"
        ) from None
    if not isinstance(header, dict):
        raise ModelError(f"{path}: not a safetensors file: its header is not a JSON object")
    data = size - 8 - length
    tensors: list[tuple[str, Shape]] = []
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        shape = _safetensors_entry(path, key, entry, data)
        tensors.append((key, shape))
    return Checkpoint(path, "safetensors", _modules(tensors, sort=True))


def _safetensors_entry(path: Path, key: str, entry: Any, data: int) -> Shape:
    """One tensor's shape, its entry checked: dtype, shape, offsets inside the data."""
    where = f"{path}: tensor {shorten(key)!r}"
    if not isinstance(entry, dict):
        raise ModelError(f"{where}: its header entry is not a JSON object")
    shape = entry.get("shape")
    offsets = entry.get("data_offsets")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ModelError(f"{where}: shape {shorten(repr(shape))} is not a list of sizes")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise ModelError(f"{where}: data_offsets {shorten(repr(offsets))} is not [start, end]")
    if offsets[1] > data:
        raise ModelError(
            f"{where} ends at byte {offsets[1]:,} of the data, but the file holds {data:,} "
            "bytes of data: it is truncated; save it again"
        )
    itemsize = _DTYPE_BYTES.get(str(entry.get("dtype")))
    if itemsize is not None and offsets[1] - offsets[0] != math.prod(shape) * itemsize:
        raise ModelError(
            f"{where}: {entry.get('dtype')} {_dims(tuple(shape))} needs "
            f"{math.prod(shape) * itemsize:,} bytes, its offsets hold {offsets[1] - offsets[0]:,}"
        )
    return tuple(shape)


def _read_torch(path: Path) -> Checkpoint:
    """A PyTorch state_dict through torch's restricted unpickler, tensors on the meta device."""
    try:
        import torch
    except ImportError:
        raise ModelError(
            f"{path} is a PyTorch checkpoint, and reading it needs PyTorch (pip install torch); "
            "or give the weights as safetensors, which cnncli reads without it"
        ) from None
    loaded = _torch_load(path, torch)
    state, notes = _state_dict(loaded, path, torch)
    tensors = [(k, tuple(int(d) for d in v.shape)) for k, v in state.items()]
    return Checkpoint(path, "PyTorch state_dict", _modules(tensors, sort=False), notes)


def _torch_load(path: Path, torch: Any) -> Any:
    """``torch.load`` with weights only, on the meta device, mapped from disk where it can be."""
    import pickle

    with open(path, "rb") as fh:
        zipped = fh.read(4) == b"PK\x03\x04"
        fh.seek(0)
        try:
            if path.suffix.lower() == ".safetensors":
                # torch.load hands a path of that name to safetensors (which reads the data).
                return torch.load(fh, weights_only=True, map_location="meta")
            # mmap: the zip format's tensors stay on disk (the legacy format cannot map).
            return torch.load(path, weights_only=True, map_location="meta", mmap=zipped)
        except pickle.UnpicklingError as err:
            found = re.search(r"GLOBAL ([\w.]+)", str(err))
            what = f" ({found.group(1)})" if found else ""
            raise ModelError(
                f"{path} holds a whole pickled model{what}, not only its weights; cnncli never "
                f"unpickles objects (it would run code from the file): {_FIX}"
            ) from None
        except Exception as err:  # a damaged file raises any of a dozen types
            text = str(err).strip()
            first = text.splitlines()[0] if text else type(err).__name__
            raise ModelError(
                f"{path}: not a readable PyTorch checkpoint ({shorten(first, 120)})"
            ) from None


def _state_dict(loaded: Any, path: Path, torch: Any) -> tuple[dict[str, Any], list[str]]:
    """The mapping of names to tensors: the file itself, or the state_dict a training
    checkpoint keeps under ``state_dict``, ``model`` …"""

    def tensors_of(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            return {}
        return {str(k): v for k, v in value.items() if isinstance(v, torch.Tensor)}

    found = tensors_of(loaded)
    if found:
        return found, []
    if isinstance(loaded, dict):
        for key in _NESTED_KEYS:
            nested = tensors_of(loaded.get(key))
            if nested:
                return nested, [f"the weights are the checkpoint's {key!r} entry"]
        keys = ", ".join(shorten(str(k), 30) for k in list(loaded)[:8])
        raise ModelError(f"{path}: holds no tensors (its keys: {keys}); {_FIX}")
    raise ModelError(f"{path}: holds a {type(loaded).__name__}, not a state_dict; {_FIX}")


def _natural(path: str) -> tuple[Any, ...]:
    """``features.10`` after ``features.9``: numbers in a path compare as numbers."""
    return tuple(
        (0, int(p), "") if p.isdigit() else (1, 0, p)
        for part in path.split(".")
        for p in re.split(r"(\d+)", part)
        if p
    )


def _modules(tensors: list[tuple[str, Shape]], sort: bool) -> list[Module]:
    """Tensors grouped by module in the file's order (``sort``: by path, numbers as numbers:
    safetensors keeps no order), each module's tensors in PyTorch's order."""
    groups: dict[str, list[tuple[str, Shape]]] = {}
    for key, shape in tensors:
        module, _, name = key.rpartition(".")
        if name == _SKIPPED:
            continue
        groups.setdefault(module, []).append((name, shape))
    paths = sorted(groups, key=_natural) if sort else list(groups)
    return [
        Module(p, tuple(sorted(groups[p], key=lambda t: _TENSOR_ORDER.get(t[0], 9)))) for p in paths
    ]


# -- comparing --------------------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def _squeezed(module: Module) -> list[Shape]:
    return [tuple(d for d in s if d != 1) for s in module.shapes]


def _counterpart(module: Module, modules: list[Module], used: list[bool]) -> Module | None:
    """The checkpoint module a layer's was meant to be: the same name; else the first one left
    with the same numbers in another shape, or with as many tensors of the same ranks; else the
    first one left."""
    left = [m for m, u in zip(modules, used, strict=True) if not u]
    wanted = {_norm(module.path), _norm(module.layer)}
    ranks = [len(s) for s in module.shapes]
    tests: tuple[Callable[[Module], bool], ...] = (
        lambda m: _norm(m.path) in wanted,
        lambda m: _squeezed(m) == _squeezed(module),
        lambda m: [len(s) for s in m.shapes] == ranks,
    )
    for test in tests:
        found = next((m for m in left if test(m)), None)
        if found is not None:
            return found
    return left[0] if left else None


def _hint(ours: Module, theirs: Module) -> str:
    """A word when the shapes differ only by sizes of 1 (a 1×1 convolution stored as a Linear)."""
    if _squeezed(ours) == _squeezed(theirs):
        return (
            "; the same numbers in another shape: a 1×1 convolution where the checkpoint has a "
            "Linear (or the other way round), or a per-channel tensor shaped differently"
        )
    return ""


def compare(summary: Summary, checkpoint: Checkpoint) -> str:
    """One line saying the checkpoint's tensors have the model's shapes, or a ModelError naming
    the first layer whose tensors the checkpoint lacks, with both shapes."""
    ours = model_tensors(summary)
    theirs = checkpoint.modules
    queues: dict[tuple[Shape, ...], deque[int]] = {}
    for i, m in enumerate(theirs):
        queues.setdefault(m.shapes, deque()).append(i)
    used = [False] * len(theirs)
    name = checkpoint.path
    for module in ours:
        queue = queues.get(module.shapes)
        if queue:
            used[queue.popleft()] = True
            continue
        other = _counterpart(module, theirs, used)
        found = (
            f"the checkpoint's {other.path or '(top level)'!r} has {other.text()}{_hint(module, other)}"
            if other is not None
            else "the checkpoint has no tensors left for it"
        )
        raise ModelError(
            f"{name} does not match the model: layer {module.layer!r} ({module.layer_type}) has "
            f"{module.text()}; {found}"
        )
    extra = [m for m, u in zip(theirs, used, strict=True) if not u]
    if extra:
        more = f" and {len(extra) - 1} more modules" if len(extra) > 1 else ""
        raise ModelError(
            f"{name} does not match the model: it holds tensors no layer has: "
            f"{extra[0].path or '(top level)'!r} with {extra[0].text()}{more}"
        )
    layers = len({m.layer for m in ours})
    return (
        f"weights: {name} ({checkpoint.kind}) matches the model: its {checkpoint.tensors:,} "
        f"tensors ({checkpoint.numbers:,} numbers) have the shapes of the model's {layers:,} "
        "layers with parameters, layer by layer" + "".join(f"; {n}" for n in checkpoint.notes)
    )


def check_weights(summary: Summary, path: Path) -> str:
    """Read ``path`` and compare it with ``summary`` (see :func:`compare`)."""
    return compare(summary, read_checkpoint(path))
