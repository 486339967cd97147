"""Parameter expressions: ``$width * 4``, ``make_divisible($c * 0.75, 8)``,
``$stride != 1 or $in_channels != $planes * 4``, ``valid if $stride == 2 else same``.

Numbers (whole or decimal), text (a bare word or quoted), ``true``/``false``, ``$params``,
``+ - * / // %``, comparisons, ``and``/``or``/``not``, ``x if c else y``, parentheses and the
functions of :data:`FUNCTIONS`, all with Python's meaning (``/`` divides, ``//`` floors,
comparisons chain, ``and``/``or``/``if`` evaluate only what they need). A result with a whole
value is a whole number (``$w * 0.5`` with ``w: 64`` is 32); any other decimal result is an
:class:`Inexact` that remembers its expression, so an option that needs a whole number names it
and the cure. A value that is only a reference (``$activation``) keeps its type. Nothing is
evaluated as Python: a small precedence-climbing parser, its depth bounded by the ``nesting``
budget before it runs, every intermediate result bounded by 2**62.

Inside a block instance some names are computed, never declared (:func:`computed`): the sizes of
its inputs (``$in_channels``, ``$in_height_1``…), its repetition ``$index`` and ``$repeat``.
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
    r"|'([^']*)'|\"([^\"]*)\"|(//|==|!=|<=|>=|[-+*/%(),<>]))"
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


#: Binary operators by precedence, loosest first, as in Python: ``or``, ``and``, comparisons,
#: ``+ -``, ``* / // %``. ``not`` sits between ``and`` and the comparisons, the signs above all.
_PRECEDENCE = {
    "or": 1,
    "and": 2,
    **dict.fromkeys(("==", "!=", "<", "<=", ">", ">="), 4),
    **dict.fromkeys(("+", "-"), 5),
    **dict.fromkeys(("*", "/", "//", "%"), 6),
}
_NOT = 3
_SIGN = 7
_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
_KEYWORDS = ("and", "or", "not", "if", "else")
_TRUTH = {"true": True, "false": False, "True": True, "False": False}
#: Tokens that make the parser recurse once more: bounded by ``nesting`` before it runs.
_DEEPER = ("(", "-", "+", "not", "if")
_SYNTAX = (
    "use numbers, $params, text, + - * / // %, == != < <= > >=, and, or, not, "
    "x if c else y, parentheses and "
)


def _tokens(text: str) -> list[Any]:
    """``("num", n)``, ``("text", s)``, ``("truth", b)``, ``("param", name)``,
    ``("word", name)`` (a function name or a bare word), operator and keyword strings; ``None``
    at the end."""
    tokens: list[Any] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if not m:
            raise ModelError(
                f"cannot read the expression {shorten(text)!r} at "
                f"{shorten(text[pos:].strip(), 20)!r}; {_SYNTAX}{', '.join(FUNCTIONS)}"
            )
        pos = m.end()
        number, param, word, quoted1, quoted2, op = m.groups()
        if number:
            if len(number) > 24:
                raise ModelError(
                    f"the number {shorten(number, 24)} in the expression is absurdly large"
                )
            value: Number = float(number) if re.search(r"[.eE]", number) else int(number)
            tokens.append(("num", _checked(value, text)))
        elif param:
            tokens.append(("param", param))
        elif word in _KEYWORDS:
            tokens.append(word)
        elif word in _TRUTH:
            tokens.append(("truth", _TRUTH[word]))
        elif word:
            tokens.append(("word", word))
        elif quoted1 is not None or quoted2 is not None:
            tokens.append(("text", quoted1 if quoted1 is not None else quoted2))
        else:
            tokens.append(op)
    tokens.append(None)
    return tokens


class _Parser:
    """Precedence climbing over the tokens, into a small tree that :class:`_Evaluator` walks:
    expr := binary ['if' binary 'else' expr]; binary := prefix (OP binary-of-higher-precedence)*
    (kept flat, ``("fold", first, [(op, operand), …])``, so long sums never recurse); prefix :=
    'not' binary | ('-'|'+') prefix | atom; atom := number | text | true | false | $param |
    NAME '(' expr (',' expr)* ')' | '(' expr ')'. Every construct is Python's."""

    def __init__(self, tokens: list[Any], text: str) -> None:
        self.tokens = tokens
        self.text = text
        self.at = 0

    def error(self, what: str, more: str = "") -> ModelError:
        return ModelError(f"{what} in {shorten(self.text)!r}{more}")

    def unreadable(self) -> ModelError:
        return ModelError(f"cannot read the expression {shorten(self.text)!r}")

    def take(self) -> Any:
        self.at += 1
        return self.tokens[self.at - 1]

    def peek(self) -> Any:
        return self.tokens[self.at]

    def expr(self) -> tuple[Any, ...]:
        value = self.binary(1)
        if self.peek() != "if":
            return value
        self.take()
        cond = self.binary(1)
        if self.take() != "else":
            raise self.error("x if c needs its else (x if c else y)")
        return ("ifelse", cond, value, self.expr())

    def binary(self, least: int) -> tuple[Any, ...]:
        first = self.prefix(least)
        rest: list[tuple[str, tuple[Any, ...]]] = []
        while True:
            op = self.peek()
            level = _PRECEDENCE.get(op) if isinstance(op, str) else None
            if level is None or level < least:
                break
            self.take()
            rest.append((op, self.binary(level + 1)))
        return ("fold", first, rest) if rest else first

    def prefix(self, least: int) -> tuple[Any, ...]:
        t = self.peek()
        if t == "not" and least <= _NOT:
            self.take()
            return ("not", self.binary(_NOT))
        if t in ("-", "+"):
            self.take()
            return ("sign", t, self.prefix(_SIGN))
        return self.atom()

    def atom(self) -> tuple[Any, ...]:
        t = self.take()
        if t == "(":
            value = self.expr()
            if self.take() != ")":
                raise self.error("missing ')'")
            return value
        if not isinstance(t, tuple):
            raise self.unreadable()
        if t[0] == "word" and self.peek() == "(":
            return self.call(t[1])
        if t[0] == "word" and t[1] in FUNCTIONS and isinstance(self.peek(), tuple):
            raise self.error(f"{t[1]} needs its arguments in parentheses, e.g. {t[1]}(…)")
        if t[0] == "word":  # a bare word is text: `valid if $stride == 2 else same`
            return ("const", t[1])
        if t[0] == "param":
            return t
        return ("const", t[1])

    def call(self, name: str) -> tuple[Any, ...]:
        if name not in FUNCTIONS:
            raise ModelError(
                f"unknown function {shorten(name, 30)!r} in {shorten(self.text)!r}"
                f"{closest(name, list(FUNCTIONS))} (functions: {', '.join(FUNCTIONS)}; "
                "parameters are written $name)"
            )
        fewest, most, wanted, _ = FUNCTIONS[name]
        self.take()  # (
        args = [self.expr()]
        while self.peek() == ",":
            self.take()
            args.append(self.expr())
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
        return ("call", name, args)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return "list" if isinstance(value, list) else type(value).__name__


class _Evaluator:
    """Walks a :class:`_Parser` tree as Python would: ``and``, ``or``, ``x if c else y`` and
    chained comparisons evaluate only what they need (a parameter or input size on the branch
    not taken is never read). Arithmetic takes numbers only, ``and``/``or``/``not``/``if``
    true/false or numbers (0 is false), ``<`` … numbers, ``==``/``!=`` two values of one kind."""

    def __init__(self, text: str, params: dict[str, Any]) -> None:
        self.text = text
        self.params = params

    def error(self, what: str) -> ModelError:
        return ModelError(f"{what} in {shorten(self.text)!r}")

    def number(self, node: tuple[Any, ...]) -> Number:
        return self.as_number(self.value(node), node)

    def as_number(self, value: Any, source: tuple[Any, ...] | None) -> Number:
        """``value`` if it is a number; else an error naming the parameter it came from."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            if source is not None and source[0] == "param":
                raise self.error(f"parameter ${source[1]} is {show(value)}, not a number,")
            hint = " (parameters are written $name)" if isinstance(value, str) else ""
            raise ModelError(
                f"{show(value)} is {_kind(value)}, not a number, in {shorten(self.text)!r}{hint}"
            )
        return value

    def truth(self, node: tuple[Any, ...], op: str) -> bool:
        return self.as_truth(self.value(node), op)

    def as_truth(self, value: Any, op: str) -> bool:
        """True/false, or a number as ``if:`` reads one (0 is false)."""
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return value != 0
        raise self.error(f"{op} takes true/false or numbers, got {show(value)}")

    def value(self, node: tuple[Any, ...]) -> Any:
        kind = node[0]
        if kind == "const":
            return node[1]
        if kind == "param":
            return _param(node[1], self.params)
        if kind == "fold":
            return self.fold(node[1], node[2])
        if kind == "sign":
            v = self.number(node[2])
            return -v if node[1] == "-" else v
        if kind == "not":
            return not self.truth(node[1], "not")
        if kind == "ifelse":
            return self.value(node[2] if self.truth(node[1], "if") else node[3])
        func = FUNCTIONS[node[1]][3]
        args = [self.number(arg) for arg in node[2]]
        try:
            return _checked(func(*args), self.text)
        except ModelError as err:
            raise self.error(str(err)) from None

    def fold(self, first: tuple[Any, ...], rest: list[tuple[str, tuple[Any, ...]]]) -> Any:
        """A left-to-right run of binary operators; comparisons in a row chain (``a < b < c``
        is ``a < b and b < c``)."""
        value = self.value(first)
        source: tuple[Any, ...] | None = first  # where value came from, for messages
        chained: Any = None  # the right side of the previous comparison, while chaining
        chaining = False
        for op, node in rest:
            if op in _COMPARISONS:
                if chaining and value is False:
                    continue  # the chain is false already: the rest is not evaluated
                left = chained if chaining else value
                chained = self.value(node)
                value, chaining = self.compare(left, op, chained), True
            elif op == "and":
                value = self.truth(node, op) if self.as_truth(value, op) else False
                chaining = False
            elif op == "or":
                value = True if self.as_truth(value, op) else self.truth(node, op)
                chaining = False
            else:
                value = self.arithmetic(self.as_number(value, source), op, self.number(node))
                chaining = False
            source = None
        return value

    def compare(self, left: Any, op: str, right: Any) -> bool:
        if op in ("==", "!="):
            if _kind(left) != _kind(right):
                raise self.error(
                    f"{op} compares two values of one kind (numbers, text, true/false or "
                    f"lists), got {_kind(left)} {show(left)} and {_kind(right)} {show(right)}"
                )
            return bool(left == right) == (op == "==")
        if _kind(left) != "number" or _kind(right) != "number":
            raise self.error(f"{op} compares numbers, got {show(left)} and {show(right)}")
        if op == "<":
            return bool(left < right)
        if op == "<=":
            return bool(left <= right)
        if op == ">":
            return bool(left > right)
        return bool(left >= right)

    def arithmetic(self, v: Number, op: str, rhs: Number) -> Number:
        if op == "+":
            return _checked(v + rhs, self.text)
        if op == "-":
            return _checked(v - rhs, self.text)
        if op == "*":
            return _checked(v * rhs, self.text)
        if rhs == 0:
            raise self.error("division by zero")
        if op == "%":
            return _checked(v % rhs, self.text)
        if op == "//":
            return _checked(v // rhs, self.text)
        # exact for whole numbers that divide, Python's true division otherwise
        whole_division = isinstance(v, int) and isinstance(rhs, int) and not v % rhs
        return _checked(v // rhs if whole_division else v / rhs, self.text)


def _expr(text: str, params: dict[str, Any]) -> Any:
    whole_ref = _WHOLE_REF.fullmatch(text)
    if whole_ref:
        value = _param(whole_ref.group(1), params)
        # A decimal handed on by a block call keeps the expression it was written as.
        return value if isinstance(value, Inexact) else _settled(value, text)
    tokens = _tokens(text)
    # The parser recurses once per parenthesis, sign, not and if: bound them first.
    levels = sum(1 for t in tokens if isinstance(t, str) and t in _DEEPER)
    if levels > limits.get("nesting"):
        logic = any(t in ("not", "if") for t in tokens)
        limits.check(
            "nesting",
            levels,
            f"the expression {shorten(text)!r} has {levels:,} parentheses"
            + (", signs, nots and ifs" if logic else " and signs"),
        )
    parser = _Parser(tokens, text)
    tree = parser.expr()
    if parser.peek() is not None:
        raise parser.unreadable()
    return _settled(_Evaluator(text, params).value(tree), text)


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
#: Names a block reads from its first input's computed shape (``$in_channels``…); never declared.
#: ``_1``, ``_2``… read the block's other inputs (``$in_channels_1``), ``_0`` the first.
BLOCK_INPUT_NAMES = ("in_channels", *_SPATIAL_NAMES[3], *_SPATIAL_NAMES[1])
#: Names a block instance reads from its call's ``repeat``: its 0-based number and the count.
REPEAT_NAMES = ("index", "repeat")
_INPUT_NAME = re.compile(r"(in_[a-z]+)(?:_(0|[1-9]\d{0,5}))?")
_NAME = re.compile(r"[A-Za-z_]\w*")


def computed(name: str) -> str | None:
    """What a computed name means inside a block (``None``: an ordinary parameter name)."""
    if name in REPEAT_NAMES:
        return (
            "the repetition's number (0, 1, … within repeat:)"
            if name == "index"
            else "the number of repetitions (the call's repeat:)"
        )
    m = _INPUT_NAME.fullmatch(name)
    if m and m.group(1) in BLOCK_INPUT_NAMES:
        return "a size of a block's input"
    return None


def check_param_name(name: Any, owner: str) -> None:
    """A declarable parameter name: a word ``$name`` can reach, not a computed name."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ModelError(
            f"{owner} declares the parameter {show(name)}; names are words "
            "(letters, digits and _, not starting with a digit) that $name can read"
        )
    meaning = computed(name)
    if meaning is not None:
        raise ModelError(
            f"{owner} declares the parameter {name}, but ${name} is {meaning} (computed, "
            "never declared); rename it"
        )


class Params(dict[str, Any]):
    """The parameter values visible in one place: a block instance's, or the model's top
    level (``top``: the file's ``params:`` with the chosen variant's values).

    In a block instance, ``input_shape(i)`` gives the computed shape of its input ``i`` (of
    ``input_count``): it is called (and the shapes it needs computed) only when ``$in_channels``
    & co. are read. ``index`` and ``repeat`` are the instance's place in its call's ``repeat``.
    """

    top: bool = False
    input_shape: Callable[[int], TShape] | None = None
    input_count: int = 0
    index: int = 0
    repeat: int = 1


def _param(name: str, params: dict[str, Any]) -> Any:
    if name in params:
        return params[name]
    if computed(name) is not None:
        return _computed(name, params)
    if params:
        listing = f" (parameters: {', '.join('$' + p for p in params)})"
    elif getattr(params, "top", False):
        listing = " (the file declares no params:)"
    else:
        listing = " (no parameters here)"
    raise ModelError(f"unknown parameter ${name}{closest(name, list(params))}{listing}")


def _computed(name: str, params: dict[str, Any]) -> int:
    """``$in_channels``, ``$in_height_1``… of the block's inputs (decision 2), ``$index`` and
    ``$repeat`` of its repetition."""
    shape_of: Callable[[int], TShape] | None = getattr(params, "input_shape", None)
    if shape_of is None:
        raise ModelError(
            f"${name} is {computed(name)}: it exists inside blocks only; "
            + (
                "at the top level, use the sizes of input: or a parameter"
                if name not in REPEAT_NAMES
                else "pass a value to the block as a parameter"
            )
        )
    assert isinstance(params, Params)
    if name == "index":
        return params.index
    if name == "repeat":
        return params.repeat
    m = _INPUT_NAME.fullmatch(name)
    assert m is not None
    base, which = m.group(1), int(m.group(2) or 0)
    if which >= params.input_count:
        count = params.input_count
        raise ModelError(
            f"${name} reads the block's input {which}, but it has {count} "
            f"input{'s' if count > 1 else ''} (input.0 … input.{count - 1}); give the call "
            "input: [a, b, …]"
        )
    shape = shape_of(which)
    if base == "in_channels":
        return shape.channels
    axes = _SPATIAL_NAMES[len(shape.spatial)]
    if base not in axes:
        suffix = name[len(base) :]
        have = ", ".join(f"${a}{suffix}" for a in ("in_channels", *axes))
        which_input = f"block's input {which}" if suffix else "block input"
        raise ModelError(
            f"${name} is not defined: the {which_input} has {len(shape.spatial)} spatial axes "
            f"(it has {have})"
        )
    return shape.spatial[axes.index(base)]


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
