"""Parameter expressions of block calls: ``$width``, ``$width * 4``, ``$channels // 2``.

Whole numbers only, with ``+ - * // / % ( )``; ``/`` must divide exactly. A value that is only a
reference (``$activation``) keeps its type. Parentheses and minus signs are bounded by the
``nesting`` budget before the recursive-descent parser runs.
"""

from __future__ import annotations

import re
from typing import Any

from cnncli import limits
from cnncli.errors import ModelError
from cnncli.model.layers import closest, shorten, show

_TOKEN = re.compile(r"\s*(?:(\d+)|\$([A-Za-z_]\w*)|(//|[-+*/%()]))")


def _expr(text: str, params: dict[str, Any]) -> Any:
    whole_ref = re.fullmatch(r"\s*\$([A-Za-z_]\w*)\s*", text)
    if whole_ref:
        return _param(whole_ref.group(1), params)
    tokens: list[Any] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if not m:
            raise ModelError(
                f"cannot read the expression {shorten(text)!r} at {shorten(text[pos:].strip(), 20)!r}; "
                "use numbers, $params, + - * // % and parentheses"
            )
        pos = m.end()
        if m.group(1):
            if len(m.group(1)) > 18:
                raise ModelError(
                    f"the number {shorten(m.group(1), 24)} in the expression is absurdly large"
                )
            tokens.append(int(m.group(1)))
        elif m.group(2):
            value = _param(m.group(2), params)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ModelError(
                    f"parameter ${m.group(2)} is {show(value)}, not a whole number, "
                    f"in {shorten(text)!r}"
                )
            tokens.append(value)
        else:
            tokens.append(m.group(3))
    tokens.append(None)
    # The parser below recurses once per parenthesis and minus sign: bound them first.
    levels = sum(1 for t in tokens if t == "(" or t == "-")
    if levels > limits.get("nesting"):
        limits.check(
            "nesting",
            levels,
            f"the expression {shorten(text)!r} has {levels:,} parentheses and minus signs",
        )
    at = 0

    def peek() -> Any:
        return tokens[at]

    def take() -> Any:
        nonlocal at
        at += 1
        return tokens[at - 1]

    def atom() -> int:
        t = take()
        if t == "(":
            v = add()
            if take() != ")":
                raise ModelError(f"missing ')' in {shorten(text)!r}")
            return v
        if t == "-":
            return -atom()
        if isinstance(t, int):
            return t
        raise ModelError(f"cannot read the expression {shorten(text)!r}")

    def mul() -> int:
        v = atom()
        while peek() in ("*", "//", "/", "%"):
            op, rhs = take(), atom()
            if op == "*":
                v *= rhs
            elif rhs == 0:
                raise ModelError(f"division by zero in {shorten(text)!r}")
            elif op == "%":
                v %= rhs
            elif op == "/" and v % rhs:
                raise ModelError(
                    f"{v} / {rhs} is not whole in {shorten(text)!r}; use // to round down"
                )
            else:
                v //= rhs
            if abs(v) > 2**62:
                raise ModelError(f"the expression {shorten(text)!r} is absurdly large")
        return v

    def add() -> int:
        v = mul()
        while peek() in ("+", "-"):
            v = v + mul() if take() == "+" else v - mul()
        return v

    value = add()
    if peek() is not None:
        raise ModelError(f"cannot read the expression {shorten(text)!r}")
    return value


#: Names a block reads from its input's computed shape (``$in_channels``…); never declared.
BLOCK_INPUT_NAMES = ("in_channels", "in_depth", "in_height", "in_width", "in_length")
_NAME = re.compile(r"[A-Za-z_]\w*")


def check_param_name(name: Any, owner: str) -> None:
    """A declarable parameter name: a word ``$name`` can reach, not a block-input name."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ModelError(
            f"{owner} declares the parameter {show(name)}; names are words "
            "(letters, digits and _, not starting with a digit) that $name can read"
        )
    if name in BLOCK_INPUT_NAMES:
        raise ModelError(
            f"{owner} declares the parameter {name}, but ${name} is the block input's size "
            f"(computed, never declared); rename it"
        )


class Params(dict[str, Any]):
    """The parameter values visible in one place: a block instance's, or the model's top
    level (``top``: the file's ``params:`` with the chosen variant's values)."""

    top: bool = False


def _param(name: str, params: dict[str, Any]) -> Any:
    if name in params:
        return params[name]
    if params:
        listing = f" (parameters: {', '.join('$' + p for p in params)})"
    elif getattr(params, "top", False):
        listing = " (the file declares no params:)"
    else:
        listing = " (no parameters here)"
    raise ModelError(f"unknown parameter ${name}{closest(name, list(params))}{listing}")


def substitute(value: Any, params: dict[str, Any]) -> Any:
    """Replace ``$name`` and expressions in a value (recursively in lists)."""
    if isinstance(value, str) and "$" in value:
        return _expr(value, params)
    if isinstance(value, list):
        out = [substitute(v, params) for v in value]
        if type(value) is list:
            return out
        kept = type(value)(out)  # a YAML list keeps its line and column for messages
        kept.__dict__.update(value.__dict__)
        return kept
    return value
