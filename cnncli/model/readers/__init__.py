"""Model files that are not YAML: ONNX, Keras and PyTorch, read without running the framework
where possible.

Every reader turns its source into *model-format data*: the same mapping a YAML model file
parses to (``input``, ``layout``, ``framework``, ``layers`` …), so shapes, parameters and MACs
come from the one arithmetic in :mod:`cnncli.model.build`, every renderer works unchanged, and
``cnncli convert`` can write any of them as YAML. A reader also returns notes the summary prints
under its table (e.g. "batchnorm folded into the convolutions by the exporter").

Heavy libraries (onnx, h5py, torch) are imported inside the reader that needs them, only when a
file of that kind is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnncli.model.load import Mapping, Seq

if TYPE_CHECKING:
    from cnncli.model.build import Summary


@dataclass(frozen=True)
class ReadOptions:
    """What the command line adds to a model file: ``--input C,H,W`` for sizes the file leaves
    open (a symbolic batch or image size, a PyTorch module)."""

    input_shape: tuple[int, ...] | None = None


@dataclass
class ReadModel:
    """A model file read into model-format data."""

    data: Mapping
    #: How errors and the summary name the source (the file path, or ``file.py:Name``).
    label: str
    #: One line each, printed under the summary (and in JSON): what the reader did or could not.
    notes: list[str] = field(default_factory=list)
    #: Called with the built summary: the reader compares it with what the file states itself
    #: (the shapes Keras recorded, ONNX shape inference) and raises on a difference.
    check: Callable[[Summary], None] | None = None


Reader = Callable[[str, ReadOptions], ReadModel]

#: ``path/to/file.py:Name`` or ``package.module:Name`` (a PyTorch module or a function).
PYTHON_SOURCE = re.compile(r"^(?P<where>[^:]+\.py|[A-Za-z_][\w.]*):(?P<name>[A-Za-z_]\w*)$")


def reader_for(source: str) -> Reader | None:
    """The reader for ``source``, or None for YAML files and zoo names."""
    suffix = Path(source).suffix.lower()
    if suffix == ".onnx":
        from cnncli.model.readers.onnx_file import read_onnx

        return read_onnx
    if suffix in (".keras", ".h5", ".hdf5"):
        from cnncli.model.readers.keras_file import read_keras

        return read_keras
    if PYTHON_SOURCE.match(source) and not Path(source).exists():
        from cnncli.model.readers.torch_module import read_torch

        return read_torch
    return None


def unique_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base_1``, ``base_2``, … the first not in ``taken`` (which it joins): the
    names readers give layers that the file leaves unnamed or names twice."""
    name, n = base, 0
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


def model_data(value: Any) -> Any:
    """Plain dicts and lists as the loader's :class:`Mapping` and :class:`Seq` (no positions:
    errors then name the source and the layer, not a line)."""
    if isinstance(value, dict):
        out = Mapping({str(k): model_data(v) for k, v in value.items()})
        return out
    if isinstance(value, list | tuple):
        return Seq(model_data(v) for v in value)
    return value
