"""Model files → per-layer rows and totals (``cnncli summary``), numpy-free.

Where things live:

- :mod:`~cnncli.model.load`: zoo names (variants found by a cheap scan of the zoo files), reading a file within the byte budget, YAML with
  line/column positions (bounded, event-driven, plain data only);
- :mod:`~cnncli.model.expressions`: ``$param`` expressions (decimals, min/max/round/…,
  make_divisible), the parameters visible in one place, a block's ``$in_channels`` & co.;
- :mod:`~cnncli.model.graph`: layers and block calls expanded into nodes, references, order
  (a block input's shape computed during expansion when the block reads its size);
- :mod:`~cnncli.model.layers`: the layer types (options, output shape, parameters, MACs);
- :mod:`~cnncli.model.build`: shapes, rows, totals → :class:`Summary`;
- :mod:`~cnncli.model.torch_check`: ``--verify``, the same graph built with ``torch.nn``
  (torch imported only there, only when asked for);
- :mod:`~cnncli.model.keras_check`: ``--verify`` of channels-last Keras models, the same graph
  built with Keras 3 layers (Keras imported only there, only when asked for);
- ``zoo/``: the models shipped as package data (``cnncli summary resnet50``).

The format is described in ``docs/model-format.md``.
"""

from cnncli.model.build import (
    BYTES_PER_ELEMENT,
    Row,
    Summary,
    Totals,
    build,
    summarize,
    summarize_text,
)
from cnncli.model.load import (
    ZOO_DIR,
    ModelRef,
    ZooEntry,
    find_model,
    load_yaml,
    locate,
    zoo_entries,
    zoo_names,
)

__all__ = [
    "BYTES_PER_ELEMENT",
    "ZOO_DIR",
    "Row",
    "Summary",
    "Totals",
    "ModelRef",
    "ZooEntry",
    "build",
    "find_model",
    "load_yaml",
    "locate",
    "summarize",
    "summarize_text",
    "zoo_entries",
    "zoo_names",
]
