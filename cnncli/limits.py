"""The work budget: every size cnncli refuses *before* allocating or computing, in one table.

Each limit has a name, a default and a sentence; a command's ``--limit NAME=N`` (repeatable)
raises or lowers one for that run. Core code asks :func:`check` with the number it is about to
spend, computed from the inputs' headers and options alone; the error names the number, the
limit and how to raise it. Pure Python: ``shape`` and ``summary`` import this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cnncli.errors import CnnCliError, UsageError


@dataclass(frozen=True)
class Limit:
    """One budget entry: its default and what it bounds (one sentence, for README and help)."""

    default: int
    what: str


#: The budget. README's table lists these rows; a test keeps the two equal.
LIMITS: dict[str, Limit] = {
    "pixels": Limit(
        89_478_485,
        "pixels of one input image or .npy array (Pillow's decompression-bomb limit)",
    ),
    "output-values": Limit(
        1 << 28,
        "values of one filter result, output pixels × maps (1 GiB of float32; an 89-MP RGB photo fits)",
    ),
    "kernel-taps": Limit(
        1 << 20,
        "taps of one kernel, kh × kw × channels × maps (a 1024×1024 kernel)",
    ),
    "layers": Limit(100_000, "layers of one model after repeat and blocks are expanded"),
    "block-calls": Limit(
        100_000, "block instances of one model after repeat, nested and empty ones included"
    ),
    "yaml-nodes": Limit(
        1_000_000, "YAML nodes of one model file, each alias counted as often as it is used"
    ),
    "nesting": Limit(
        100, "nesting depth of YAML model files, JSON kernels and blocks calling blocks"
    ),
    "file-bytes": Limit(10_000_000, "bytes of one model YAML or text kernel file read into memory"),
}

_current: dict[str, int] = {}


class LimitError(CnnCliError):
    """A number over the budget (exit 1): the input is legal, only larger than allowed."""


def get(name: str) -> int:
    """The limit in force for ``name``."""
    return _current.get(name, LIMITS[name].default)


def check(name: str, value: int, what: str) -> None:
    """Refuse ``value`` of ``name`` over the limit: ``what`` says what it counts, e.g.
    ``"kernel gaussian:size=15001 has 225,030,001 taps"``."""
    limit = get(name)
    if value > limit:
        raise LimitError(
            f"{what}, over the {name} limit of {limit:,}; "
            f"raise it with --limit {name}={value} if you mean it"
        )


_NUMBER = re.compile(r"^\d[\d_,]*$|^\d+(\.\d+)?e\d+$", re.IGNORECASE)


def parse(texts: Iterable[str]) -> dict[str, int]:
    """``["kernel-taps=4e6", "layers=200_000"]`` → ``{"kernel-taps": 4000000, ...}``, or a
    usage error naming the bad entry and the valid names."""
    out: dict[str, int] = {}
    for text in texts:
        name, eq, value = text.strip().lower().partition("=")
        name = name.strip().replace("_", "-")
        if name not in LIMITS:
            raise UsageError(
                f"unknown limit {name!r} in --limit {text!r}; limits: {', '.join(LIMITS)}"
            )
        value = value.strip()
        if not eq or not _NUMBER.match(value):
            raise UsageError(
                f"--limit {text!r}: give NAME=N with a whole number, e.g. --limit {name}={LIMITS[name].default}"
            )
        number = float(value) if "e" in value else int(value.replace("_", "").replace(",", ""))
        if number < 1 or number != int(number) or number > 2**62:
            raise UsageError(f"--limit {text!r}: the limit must be a whole number from 1 to 2**62")
        out[name] = int(number)
    return out


def configure(overrides: dict[str, int] | None = None) -> None:
    """Start a run with the defaults, changed by ``overrides`` (from :func:`parse`)."""
    _current.clear()
    _current.update(overrides or {})


@contextmanager
def override(**values: int) -> Iterator[None]:
    """Tests: ``with override(kernel_taps=10): ...`` — keyword names use ``_`` for ``-``."""
    saved = dict(_current)
    _current.update({k.replace("_", "-"): v for k, v in values.items()})
    try:
        yield
    finally:
        _current.clear()
        _current.update(saved)
