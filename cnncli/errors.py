"""Domain errors. The CLI turns each into one line on stderr and an exit code.

Usage errors (a value the user typed is malformed or does not apply) exit 2, like Click's own
usage errors; everything else (an impossible layer, a missing file, a bad model) exits 1.
"""

from __future__ import annotations


class CnnCliError(Exception):
    """Base of every expected failure; ``str(err)`` is the one line shown to the user."""

    exit_code = 1


class UsageError(CnnCliError):
    """A malformed or inapplicable option value (exit 2)."""

    exit_code = 2


class ShapeError(CnnCliError):
    """A layer that cannot exist: empty output, kernel larger than the padded input, or a
    combination the chosen framework refuses (exit 1)."""


class KernelError(CnnCliError):
    """A kernel name or matrix that cannot be used."""


class ImageError(CnnCliError):
    """An image that cannot be read or written."""


class ModelError(CnnCliError):
    """A model file that cannot be turned into a summary."""
