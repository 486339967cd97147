"""PyTorch models for `cnncli summary` (being built: issue #12)."""

from __future__ import annotations

from cnncli.errors import ModelError
from cnncli.model.readers import ReadModel, ReadOptions


def read_torch(source: str, options: ReadOptions) -> ReadModel:
    raise ModelError(f"{source}: reading PyTorch models is not built yet (issue #12)")
