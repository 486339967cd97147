"""Layer names for ONNX nodes: the PyTorch module path each exporter records, sanitized."""

from __future__ import annotations

import ast
import re
from typing import Any


def sanitize(text: str) -> str:
    """A model-format layer name (letters, digits, _ and -) from an ONNX or module name."""
    name = re.sub(r"[^\w\-]+", "_", text).strip("_")
    if not name:
        return ""
    return name if re.match(r"[A-Za-z_]", name) else f"n_{name}"


def _scope_path(scopes: list[str]) -> list[str]:
    """Module scopes → the module path: ``[layer2, layer2.0, downsample, downsample.0]`` →
    ``[layer2, 0, downsample, 0]``.

    Exporters repeat a parent's name in its child's scope (``layer2`` then ``layer2.0``; the
    dynamo exporter even ``layer2.0.relu``): a scope the next one extends is dropped.
    """
    parts = [p for p in scopes if p]
    kept = [
        p for p, nxt in zip(parts, [*parts[1:], ""], strict=False) if not nxt.startswith(p + ".")
    ]
    return ".".join(kept).split(".") if kept else []


def torchscript_path(node_name: str) -> list[str] | None:
    """The module path in a TorchScript exporter's node name, ``/layer2/layer2.0/conv1/Conv``."""
    if not node_name.startswith("/"):
        return None
    return _scope_path(node_name.split("/")[1:-1])


def dynamo_path(node: Any) -> list[str] | None:
    """The module path of a node from the dynamo exporter's ``name_scopes`` metadata (its last
    scope is the operator itself)."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            if isinstance(scopes, list):
                return _scope_path([str(s) for s in scopes[:-1]])
    return None
