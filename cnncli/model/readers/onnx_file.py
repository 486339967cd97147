"""ONNX models for ``cnncli summary model.onnx`` (issue #12), read with the ``onnx`` package.

The graph is read without turning weights into arrays: a convolution needs its weight's dims,
not its numbers. Each operator becomes one of cnncli's layer types (a few pairs become one:
``x * Sigmoid(x)`` is ``silu``, ``MatMul`` + a bias ``Add`` is ``dense``); the small integer
tensors exporters compute shapes with (``Shape → Gather → Unsqueeze → Concat → Reshape``) are
folded into the layers that read them. Every layer's shape is computed as it is read, with
cnncli's own arithmetic (:func:`cnncli.model.layers.compute`, the rule :mod:`cnncli.model.build`
applies again), and compared with ONNX shape inference and with the weights the file holds: a
difference is an error, never a guess. An operator cnncli does not know (or uses in a way no
layer type expresses) becomes an ``opaque`` layer with ONNX's shape: its MACs are not counted
and the summary says so.

Parameters are the floating-point tensors the file holds as weights of its layers; integer
shape/axes/pads constants and resize scales are not. ``torch.onnx.export`` folds batchnorm into
the convolutions, so a PyTorch model's batchnorm parameters and statistics are not in the file:
a note says so when it happened.

The batch axis stays out of every shape, as everywhere in cnncli. A symbolic batch is fine; open
image sizes need ``--input``.

Here is the flow; the parts live in private modules: :mod:`._onnx_proto` (the protobuf walk that
leaves weights unread), :mod:`._onnx_convert` (the walk over the graph), :mod:`._onnx_values`
(the tensors it tracks), :mod:`._onnx_fold` (constant folding), :mod:`._onnx_ops` (operators →
layer types), :mod:`._onnx_fusions` (chains read as one layer), :mod:`._onnx_names` (layer
names), :mod:`._onnx_notes` (the notes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnncli.errors import ModelError
from cnncli.model.readers import ReadModel, ReadOptions, model_data
from cnncli.model.readers._onnx_branches import with_branches
from cnncli.model.readers._onnx_convert import Converter as _Converter
from cnncli.model.readers._onnx_notes import reader_notes
from cnncli.model.readers._onnx_proto import load, opened

INSTALL = 'pip install "cnncli[onnx]"'


def read_onnx(source: str, options: ReadOptions) -> ReadModel:
    """Read ``source`` into model-format data (see the module docstring)."""
    return convert(source, options).read


@dataclass
class Converted:
    """What :func:`convert` found: the model and, for tests, where each layer's output lives."""

    read: ReadModel
    #: Layer name → the ONNX tensor holding its (first) output, in :attr:`graph`.
    tensors: dict[str, str]
    #: The ModelProto read (without weight data): the file's, with each ``If`` on a constant
    #: condition replaced by the branch it takes.
    model: Any


def convert(source: str, options: ReadOptions) -> Converted:
    """Read and convert ``source``; :func:`read_onnx` without the test-facing details.

    A graph whose ``If`` nodes take a branch is read again with the branches in it, until none
    is left (each reading replaces at least one ``If``, nested ones included, so this ends).
    """
    onnx = _import_onnx()
    path = Path(source)
    with opened(path, source) as buf:
        model, stripped = load(onnx, buf, source)
        branches = 0
        while True:
            conv = _Converter(onnx, model, path, source, options)
            conv.buf, conv.stripped = buf, stripped
            conv.stats.branches = branches
            data = conv.run()
            if data is not None:
                break
            model = with_branches(onnx, model, conv.branches)
            branches += len(conv.branches)
    return Converted(ReadModel(model_data(data), source, reader_notes(conv)), conv.tensor_of, model)


def _import_onnx() -> Any:
    try:
        import onnx
        import onnx.numpy_helper
        import onnx.shape_inference
    except ImportError:
        raise ModelError(
            f"reading ONNX models needs the onnx package: {INSTALL} (or pip install onnx)"
        ) from None
    return onnx
