"""Domain errors. The CLI turns each into one line on stderr and an exit code.

Usage errors (a value the user typed is malformed or does not apply) exit 2, like Click's own
usage errors; everything else (an impossible layer, a missing file, a bad model) exits 1.
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: An option named inside a core message: ``{opt:padding}``. The core does not know whether
#: the user typed a flag or a model-file key; the reader of the message decides (sqlite-utils'
#: way: the core raises, the front end adds its own words).
#: The option names a core message may use; other ``{opt:…}`` text (inside a file name or a
#: value the user typed) is left as it is. tests/test_cli_main.py checks the sources use no other.
OPTION_NAMES = frozenset(
    {
        "anchor",
        "ceil-mode",
        "dilation",
        "framework",
        "groups",
        "in-channels",
        "input",
        "op",
        "out-channels",
        "output-padding",
        "padding",
        "solve",
        "target",
        "variant",
        "verify",
    }
)
#: Actions of the command line with no model-file key: a model message still names the flag.
_COMMAND_LINE_ONLY = frozenset({"solve", "target", "verify", "variant", "input"})
_OPTION = re.compile(r"\{opt:(" + "|".join(sorted(OPTION_NAMES, key=len, reverse=True)) + r")\}")


def as_flag(name: str) -> str:
    """``output-padding`` → ``--output-padding`` (the command line's word)."""
    return f"--{name}"


def as_model_key(name: str) -> str:
    """``output-padding`` → ``output_padding:`` (the model file's word); ``--solve`` and the
    other command-line actions stay flags."""
    if name in _COMMAND_LINE_ONLY:
        return as_flag(name)
    return f"{name.replace('-', '_')}:"


class CnnCliError(Exception):
    """Base of every expected failure; ``str(err)`` is the one line shown to the user.

    A message may name options as ``{opt:NAME}``: ``str(err)`` shows them as command-line flags,
    :meth:`worded` in another vocabulary (:func:`as_model_key` for model files).
    """

    exit_code = 1

    def worded(self, word: Callable[[str], str] = as_flag) -> str:
        text = str(self.args[0]) if self.args else ""
        return _OPTION.sub(lambda m: word(m.group(1)), text)

    def __str__(self) -> str:
        return self.worded(as_flag)


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
