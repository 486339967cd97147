"""A minimal terminal renderer for the fast path: rounded panels, styles, side-by-side columns.

``cnncli shape`` must start within 1.5 × ``import typer``; importing Rich's console alone costs
about a third of that budget, so shape draws its panels here in Rich's look. Everything else
(summary tables, kernels, progress bars) uses Rich.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
import unicodedata
from typing import TextIO

#: A line is a list of (text, style) segments; style is a space-separated list of names below.
Segment = tuple[str, str]
Line = list[Segment]

_SGR = {
    "bold": "1",
    "dim": "2",
    "green": "32",
    "yellow": "33",
    "cyan": "36",
    "on_cyan": "30;46",
    "on_magenta": "30;45",
    "on_blue": "30;44",
}


#: Bidirectional overrides and isolates: they reorder what the terminal shows (Trojan Source).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def printable(text: str) -> str:
    """``text`` with every control character escaped (``\\x1b``, ``\\n``, ``\\u202e``), so a
    name from a file or a command line can never move the cursor, set the window title, write
    the clipboard (OSC 52) or clear the screen when printed. Plain text comes back unchanged."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch == " " or (ch.isprintable() and ch not in _BIDI):
            out.append(ch)
        elif ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:  # other spaces (no-break, ideographic) are harmless
            out.append(ch)
    return "".join(out)


def color_enabled(stream: TextIO) -> bool:
    """Colour as Rich decides it: FORCE_COLOR on, NO_COLOR or TERM=dumb off, else a TTY."""
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return stream.isatty()


def width_of(text: str) -> int:
    """Terminal cells: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def paint(text: str, style: str, color: bool) -> str:
    codes = [_SGR[s] for s in style.split() if s in _SGR]
    if not color or not codes or not text:
        return text
    return f"\x1b[{';'.join(codes)}m{text}\x1b[0m"


def line_width(line: Line) -> int:
    return sum(width_of(t) for t, _ in line)


def wrap(line: Line, width: int) -> list[Line]:
    """Wrap a line to ``width`` cells; a wrapped line keeps the style of its first segment."""
    if line_width(line) <= width or width < 10:
        return [line]
    text = "".join(t for t, _ in line)
    style = line[0][1] if line else ""
    indent = " " * (len(text) - len(text.lstrip()))
    return [[(part, style)] for part in textwrap.wrap(text, width, subsequent_indent=indent + "  ")]


def panel(title: str, lines: list[Line], *, color: bool, max_width: int | None = None) -> str:
    """A rounded box around ``lines`` with ``title`` on the top edge, as Rich's Panel draws it."""
    limit = (max_width or terminal_width()) - 4
    body: list[Line] = [w for line in lines for w in wrap(line, limit)]
    inner = max([line_width(line) for line in body] + [width_of(title) + 2])
    top = f"╭─ {title} " + "─" * (inner - width_of(title) - 1) + "╮"
    out = [top]
    for line in body:
        text = "".join(paint(t, s, color) for t, s in line)
        out.append(f"│ {text}{' ' * (inner - line_width(line))} │")
    out.append("╰" + "─" * (inner + 2) + "╯")
    return "\n".join(out)


def columns(left: list[Line], right: list[Line], *, gap: int = 4, color: bool) -> str:
    """Two blocks of lines side by side."""
    lw = max((line_width(line) for line in left), default=0)
    rows = []
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else []
        b = right[i] if i < len(right) else []
        pad = " " * (lw - line_width(a) + gap)
        rows.append(
            (
                "".join(paint(t, s, color) for t, s in a)
                + pad
                + "".join(paint(t, s, color) for t, s in b)
            ).rstrip()
        )
    return "\n".join(rows)


def render_line(line: Line, color: bool) -> str:
    return "".join(paint(t, s, color) for t, s in line)


def terminal_width() -> int:
    return shutil.get_terminal_size((100, 24)).columns


def write(text: str) -> None:
    sys.stdout.write(text + "\n")
