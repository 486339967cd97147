"""Renderers: turn result objects into Rich output, JSON, CSV or pictures. No arithmetic here."""

from __future__ import annotations


def thousands(n: int) -> str:
    """``34826`` → ``34,826`` (the Keras/torchinfo style)."""
    return f"{n:,}"


def si(n: float, unit: str = "") -> str:
    """``4089184256`` → ``4.09 G``: decimal prefixes, three significant figures."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.3g} {prefix}{unit}"
    return f"{n:g} {unit}".rstrip()
