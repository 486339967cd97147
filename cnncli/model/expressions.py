"""Parameter expressions: ``$width``, ``$width * 4``, ``make_divisible($c * 0.75, 8)``.

Numbers (whole or decimal), ``$params``, ``+ - * / // % ( )`` and the functions of
:data:`FUNCTIONS`, with Python's arithmetic (``/`` divides, ``//`` floors). A result with a whole
value is a whole number (``$w * 0.5`` with ``w: 64`` is 32); any other decimal result is an
:class:`Inexact` that remembers its expression, so an option that needs a whole number names it
and the cure. A value that is only a reference (``$activation``) keeps its type. Nothing is
evaluated as Python: a small recursive-descent parser, its depth bounded by the ``nesting``
budget before it runs, every intermediate result bounded by 2**62.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from cnncli import limits
from cnncli.errors import ModelError
from cnncli.model.layers import TShape, closest, shorten, show

Number = int | float
#: Past this size a number in an expression is absurd (no size, count or factor comes close).
_LARGEST = 2**62
_TOKEN = re.compile(
    r"\s*(?:((?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|\$([A-Za-z_]\w*)|([A-Za-z_]\w*)"
    r"|(//|[-+*/%(),]))"
)
_WHOLE_REF = re.compile(r"\s*\$([A-Za-z_]\w*)\s*")


class Inexact(float):
    """A decimal result of an expression, shown with the expression it came from: an option
    that needs a whole number then says where the decimal comes from and how to round it."""

    expr: str

    def __new__(cls, value: float, expr: str) -> Inexact:
        out = super().__new__(cls, value)
        out.expr = expr
        return out

    def __repr__(self) -> str:
        # Messages quote values within 60 characters: the expression gives way to the cure.
        value = float.__repr__(self)
        cure = "; use round(), floor() or ceil())"
        room = 60 - len(value) - len(" (= ") - len(cure)
        if room < 8:
            return f"{value} (not whole{cure}"
        return f"{value} (= {shorten(' '.join(self.expr.split()), room)}{cure}"


def make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """``v`` rounded to the nearest multiple of ``divisor``, at least ``min_value`` (default
    ``divisor``) and never more than 10 % below ``v``: torchvision's ``_make_divisible``
    (MobileNet, EfficientNet, RegNet widths), step for step in the same float arithmetic."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _whole_arg(value: Number, what: str, minimum: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < minimum:
        raise ModelError(f"{what} must be a whole number ≥ {minimum}, got {show(value)}")
    return value


def _make_divisible(*args: Number) -> int:
    divisor = _whole_arg(args[1], "make_divisible's divisor", 1)
    least = _whole_arg(args[2], "make_divisible's min_value", 0) if len(args) > 2 else None
    return make_divisible(args[0], divisor, least)


def _round(x: Number) -> int:
    return round(x)


def _int(x: Number) -> int:
    return int(x)


#: The functions expressions may call: name -> (fewest and most arguments, what the arguments
#: are, the function).
FUNCTIONS: dict[str, tuple[int, int, str, Callable[..., Number]]] = {
    "min": (2, 2**31, "two or more numbers", min),
    "max": (2, 2**31, "two or more numbers", max),
    "round": (1, 1, "one number", _round),  # Python's round: halves to even, a whole number
    "floor": (1, 1, "one number", math.floor),
    "ceil": (1, 1, "one number", math.ceil),
    "int": (1, 1, "one number", _int),  # truncates towards zero, as Python's int()
    "make_divisible": (2, 3, "(v, divisor) or (v, divisor, min_value)", _make_divisible),
}


def _checked(value: Number, text: str) -> Number:
    if isinstance(value, float) and not math.isfinite(value) or abs(value) > _LARGEST:
        raise ModelError(f"the expression {shorten(text)!r} is absurdly large")
    return value


def _tokens(text: str, params: dict[str, Any]) -> list[Any]:
    """Numbers (parameters already read), operator strings and ``("call", name)`` pairs."""
    tokens: list[Any] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if not m:
            raise ModelError(
                f"cannot read the expression {shorten(text)!r} at "
                f"{shorten(text[pos:].strip(), 20)!r}; use numbers, $params, + - * / // %, "
                f"parentheses and {', '.join(FUNCTIONS)}"
            )
        pos = m.end()
        number, param, func, op = m.groups()
        if number:
            if len(number) > 24:
                raise ModelError(
                    f"the number {shorten(number, 24)} in the expression is absurdly large"
                )
            value: Number = float(number) if re.search(r"[.eE]", number) else int(number)
            tokens.append(_checked(value, text))
        elif param:
            tokens.append(_number(param, params, text))
        elif func:
            if func not in FUNCTIONS:
                raise ModelError(
                    f"unknown function {shorten(func, 30)!r} in {shorten(text)!r}"
                    f"{closest(func, list(FUNCTIONS))} (functions: {', '.join(FUNCTIONS)}; "
                    "parameters are written $name)"
                )
            tokens.append(("call", func))
        else:
            tokens.append(op)
    tokens.append(None)
    return tokens


def _number(name: str, params: dict[str, Any], text: str) -> Number:
    value = _param(name, params)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelError(f"parameter ${name} is {show(value)}, not a number, in {shorten(text)!r}")
    return value


class _Parser:
    """Recursive descent over the tokens: sum := product (('+'|'-') product)*, product :=
    unary (('*'|'/'|'//'|'%') unary)*, unary := ('-'|'+') unary | atom, atom := number |
    NAME '(' sum (',' sum)* ')' | '(' sum ')'."""

    def __init__(self, tokens: list[Any], text: str) -> None:
        self.tokens = tokens
        self.text = text
        self.at = 0

    def error(self, what: str, more: str = "") -> ModelError:
        return ModelError(f"{what} in {shorten(self.text)!r}{more}")

    def take(self) -> Any:
        self.at += 1
        return self.tokens[self.at - 1]

    def peek(self) -> Any:
        return self.tokens[self.at]

    def sum(self) -> Number:
        v = self.product()
        while self.peek() in ("+", "-"):
            op, rhs = self.take(), self.product()
            v = _checked(v + rhs if op == "+" else v - rhs, self.text)
        return v

    def product(self) -> Number:
        v = self.unary()
        while self.peek() in ("*", "//", "/", "%"):
            op, rhs = self.take(), self.unary()
            if op == "*":
                v = v * rhs
            elif rhs == 0:
                raise self.error("division by zero")
            elif op == "%":
                v = v % rhs
            elif op == "//":
                v = v // rhs
            else:  # exact for whole numbers that divide, Python's true division otherwise
                v = (
                    v // rhs
                    if isinstance(v, int) and isinstance(rhs, int) and not v % rhs
                    else v / rhs
                )
            v = _checked(v, self.text)
        return v

    def unary(self) -> Number:
        t = self.peek()
        if t in ("-", "+"):
            self.take()
            v = self.unary()
            return -v if t == "-" else v
        return self.atom()

    def atom(self) -> Number:
        t = self.take()
        if t == "(":
            v = self.sum()
            if self.take() != ")":
                raise self.error("missing ')'")
            return v
        if isinstance(t, tuple):
            return self.call(t[1])
        if isinstance(t, int | float):
            return t
        raise ModelError(f"cannot read the expression {shorten(self.text)!r}")

    def call(self, name: str) -> Number:
        fewest, most, wanted, func = FUNCTIONS[name]
        if self.take() != "(":
            raise self.error(f"{name} needs its arguments in parentheses, e.g. {name}(…)")
        args = [self.sum()]
        while self.peek() == ",":
            self.take()
            args.append(self.sum())
        end = self.take()
        if end != ")":
            # `{filters: max($c, 8)}` reaches here as `max($c`: YAML ended it at the comma.
            cut = end is None and "," not in self.text
            raise self.error(
                f"missing ')' after the arguments of {name}",
                "; inside { } a comma ends the value: quote an expression with commas"
                if cut
                else "",
            )
        if not fewest <= len(args) <= most:
            raise self.error(f"{name} takes {wanted}, got {len(args)}")
        try:
            return _checked(func(*args), self.text)
        except ModelError as err:
            raise self.error(str(err)) from None


def _expr(text: str, params: dict[str, Any]) -> Any:
    whole_ref = _WHOLE_REF.fullmatch(text)
    if whole_ref:
        value = _param(whole_ref.group(1), params)
        # A decimal handed on by a block call keeps the expression it was written as.
        return value if isinstance(value, Inexact) else _settled(value, text)
    tokens = _tokens(text, params)
    # The parser recurses once per parenthesis and sign: bound them first.
    levels = sum(1 for t in tokens if t in ("(", "-", "+"))
    if levels > limits.get("nesting"):
        limits.check(
            "nesting",
            levels,
            f"the expression {shorten(text)!r} has {levels:,} parentheses and signs",
        )
    parser = _Parser(tokens, text)
    value = parser.sum()
    if parser.peek() is not None:
        raise ModelError(f"cannot read the expression {shorten(text)!r}")
    return _settled(value, text)


def _settled(value: Any, text: str) -> Any:
    """A whole-valued decimal as a whole number; another decimal as an :class:`Inexact`."""
    if not isinstance(value, float):
        return value
    if value.is_integer():
        return int(value)
    return Inexact(value, text.strip())


#: The spatial sizes a block reads from its input's computed shape, per number of spatial axes
#: (format decision 2); with ``in_channels`` they are :data:`BLOCK_INPUT_NAMES`.
_SPATIAL_NAMES = {
    0: (),
    1: ("in_length",),
    2: ("in_height", "in_width"),
    3: ("in_depth", "in_height", "in_width"),
}
#: Names a block reads from its input's computed shape (``$in_channels``…); never declared.
BLOCK_INPUT_NAMES = ("in_channels", *_SPATIAL_NAMES[3], *_SPATIAL_NAMES[1])
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
    level (``top``: the file's ``params:`` with the chosen variant's values).

    In a block instance, ``input_shape`` gives the block input's computed shape: it is called
    (and the shapes it needs computed) only when ``$in_channels`` & co. are read.
    """

    top: bool = False
    input_shape: Callable[[], TShape] | None = None


def _param(name: str, params: dict[str, Any]) -> Any:
    if name in params:
        return params[name]
    if name in BLOCK_INPUT_NAMES:
        return _input_size(name, params)
    if params:
        listing = f" (parameters: {', '.join('$' + p for p in params)})"
    elif getattr(params, "top", False):
        listing = " (the file declares no params:)"
    else:
        listing = " (no parameters here)"
    raise ModelError(f"unknown parameter ${name}{closest(name, list(params))}{listing}")


def _input_size(name: str, params: dict[str, Any]) -> int:
    """``$in_channels``, ``$in_height``… of the block input (decision 2)."""
    shape_of: Callable[[], TShape] | None = getattr(params, "input_shape", None)
    if shape_of is None:
        raise ModelError(
            f"${name} is a size of a block's input: it exists inside blocks only; "
            "at the top level, use the sizes of input: or a parameter"
        )
    shape = shape_of()
    if name == "in_channels":
        return shape.channels
    axes = _SPATIAL_NAMES[len(shape.spatial)]
    if name not in axes:
        have = ", ".join(f"${a}" for a in ("in_channels", *axes))
        raise ModelError(
            f"${name} is not defined: the block input has {len(shape.spatial)} spatial "
            f"axes (it has {have})"
        )
    return shape.spatial[axes.index(name)]


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
