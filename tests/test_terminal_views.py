"""What ``cnncli filter --preview`` and ``cnncli kernels`` put on a terminal (issue 14, item 7):
previews and the batch progress bar on separate lines, preview titles naming the whole chain,
the kernel table readable at 80 columns and in a pipe."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from clirun import run  # tests/clirun.py

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"

# ------------------------------------------------------------------ a terminal, for real

_CONTROL = re.compile(
    r"\x1b\[([0-9;?]*)([A-Za-z])"  # CSI: cursor moves, erase, colours
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC (titles, links)
    r"|\x1b[()][0-9A-Za-z]|\x1b[=>]"
)


def _in_a_terminal(argv: list[str], cwd: Path, cols: int = 100, rows: int = 40) -> str:
    """Run ``argv`` with stdin, stdout and stderr on one pseudo-terminal of ``cols`` × ``rows``
    (as a person runs it: Rich draws its bar there, the preview goes there too) and return
    everything written to it."""
    import fcntl
    import pty
    import select
    import struct
    import subprocess
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env.update(TERM="xterm-256color", PYTHONPATH=str(ROOT))
    env.pop("FORCE_COLOR", None)
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 1 << 16)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
    assert proc.wait(timeout=300) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode("utf-8", "replace")


def _screen(stream: str) -> list[str]:
    """The lines a terminal shows after ``stream`` (no scrolling limit): text overwrites, ``\\r``,
    ``\\n``, cursor up/down/column and erase-in-line, as Rich's live display uses them."""
    lines: list[list[str]] = [[]]
    row = col = 0
    i = 0
    while i < len(stream):
        m = _CONTROL.match(stream, i)
        if m:
            i = m.end()
            args, cmd = m.group(1) or "", m.group(2)
            n = int(args) if args.isdigit() else 1
            if cmd == "A":
                row = max(0, row - n)
            elif cmd == "B":
                row += n
            elif cmd == "G":
                col = n - 1
            elif cmd == "K":
                if (int(args) if args.isdigit() else 0) == 2:
                    lines[row] = []
                else:
                    del lines[row][col:]
            while len(lines) <= row:
                lines.append([])
            continue
        ch = stream[i]
        i += 1
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row, col = row + 1, 0
            while len(lines) <= row:
                lines.append([])
        elif ch >= " ":
            line = lines[row]
            line.extend(" " * (col + 1 - len(line)))
            line[col] = ch
            col += 1
    return ["".join(line).rstrip() for line in lines]


def test_screen_model_replays_a_live_bar() -> None:
    drawn = "bar 1/2\r\x1b[2Kbar 2/2\r\x1b[2K\nnext\x1b[1A\rup"
    assert _screen(drawn) == ["up", "next"]


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_batch_previews_and_the_progress_bar_never_share_a_line(tmp_path: Path) -> None:
    """Several inputs with --preview on one terminal: the bar is drawn (on stderr) while files
    are filtered and steps aside while each preview (stdout) is drawn, so every preview starts
    on a line of its own under the previous file's report line, and nothing of the bar is left.
    Before, the first title was glued to the bar ("camera.png ━━━ 0/3 -:--:--camera.png (512×…")
    and the bar's redraws overwrote preview lines."""
    names = ["camera.png", "coffee.png", "chelsea.png"]
    stream = _in_a_terminal(
        [sys.executable, "-m", "cnncli", "filter", *[str(SAMPLES / n) for n in names]]
        + ["-k", "sobel-x", "--then", "relu", "--preview"],
        tmp_path,
    )
    assert "━" in stream and "0/3" in stream  # the bar was drawn on this terminal
    shown = _screen(stream)
    assert not any("━" in line or "╸" in line or "/3 " in line for line in shown), shown
    titles = [i for i, line in enumerate(shown) if line.endswith("sobel-x → relu (abs)")]
    assert [shown[i].split(" (")[0] for i in titles] == names
    reports = [i for i, line in enumerate(shown) if " → preview: " in line]
    assert [shown[i].split(" → ")[0] for i in reports] == [str(SAMPLES / n) for n in names]
    # Title, picture, report line: in that order for each file, never interleaved.
    assert titles[0] < reports[0] < titles[1] < reports[1] < titles[2] < reports[2]
    picture = shown[titles[0] + 1 : reports[0]]
    assert len(picture) >= 10 and all("▀" in line for line in picture)


# ------------------------------------------------------------------ preview titles


def test_preview_title_names_the_whole_chain(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    code, out, _ = run(
        ["filter", SAMPLES / "camera.png", "-k", "sobel-x", "--convolve"]
        + ["--then", "relu", "--then", "maxpool:2", "--preview"],
        capsys,
    )
    assert code == 0
    assert out.splitlines()[0].rstrip().endswith("sobel-x (convolve) → relu → maxpool2 (abs)")


def test_a_long_preview_title_wraps_instead_of_being_cut(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 60 columns each picture has 28; the chain's title is longer and wraps over two
    lines (the pictures give up a row for it), every character of it shown."""
    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.setenv("LINES", "30")
    code, out, _ = run(
        ["filter", SAMPLES / "camera.png", "-k", "sobel-x", "--convolve"]
        + ["--then", "relu", "--then", "avgpool:2", "--preview"],
        capsys,
    )
    assert code == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines[:-1]) <= 60
    right = " ".join(line[29:].strip() for line in lines[:2])
    assert right == "sobel-x (convolve) → relu → avgpool2 (abs)"
    assert "▀" not in lines[1] and set(lines[2].strip()) <= set(" .:-=+*#%@")


# ------------------------------------------------------------------ cnncli kernels


def _kernels(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, **env: str
) -> list[str]:
    for key in ("FORCE_COLOR", "NO_COLOR"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, out, err = run(["kernels", *args], capsys)
    assert code == 0 and err == ""
    return out.splitlines()


def test_kernel_table_at_80_columns_keeps_the_descriptions_readable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three columns (name, weights, what it does with the map and parameters under it): the
    description column keeps over 30 characters, where five columns left it 9."""
    lines = _kernels([], capsys, monkeypatch, COLUMNS="80")
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if "what it does" in line)
    cells = header.strip("┃").split("┃")
    assert [c.strip() for c in cells] == ["name", "weights", "what it does"]
    assert len(cells[2]) >= 32
    text = "\n".join(lines)
    # A description reads as words on a line, not a word a line.
    assert "│ Gaussian blur (cv2.GaussianBlur);" in text
    assert "map clip; sigma=1, size=7" in text and "map abs" in text


def test_kernel_table_in_a_pipe_prints_digits_not_solid_blocks(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without colour (a pipe here), heat maps would all print as the same solid █ blocks: the
    weights become digits round(9·w/max|w|), the Gaussian's peak 9 in the middle."""
    lines = _kernels([], capsys, monkeypatch, COLUMNS="80")
    text = "\n".join(lines)
    assert "█" not in text and "\x1b" not in text
    start = next(i for i, line in enumerate(lines) if line.startswith("│ gaussian "))
    rows = [line.split("│")[2].strip() for line in lines[start : start + 7]]
    assert rows[3] == "0 1 5 9 5 1 0" and rows[0] == "0 0 0 0 0 0 0"
    assert "digit: 9·w/0.159" in text
    # The Laplacian of Gaussian (11×11) is sampled through its centre, its dip: -9.
    start = next(i for i, line in enumerate(lines) if line.startswith("│ log "))
    centre = lines[start + 3].split("│")[2].split()
    assert centre == ["0", "1", "0", "-9", "0", "1", "0"]


def test_kernel_table_in_colour_keeps_its_heat_maps(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _kernels([], capsys, monkeypatch, COLUMNS="80", FORCE_COLOR="1")
    text = "\n".join(lines)
    assert "██" in text and "\x1b[" in text and "digit:" not in text


def test_one_kernel_too_wide_for_the_terminal_is_drawn_as_a_map(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """15×15 weights of five characters need 89 columns: at 80 they become digits (no
    wrapped rows); at 120 they are printed number by number."""
    narrow = _kernels(["gaussian:size=15"], capsys, monkeypatch, COLUMNS="80")
    assert max(len(line) for line in narrow) <= 80
    assert " 0 1 1 3 5 7 8 9 8 7 5 3 1 1 0" in narrow
    wide = _kernels(["gaussian:size=15"], capsys, monkeypatch, COLUMNS="120")
    assert any(line.count("0.0") == 15 for line in wide)
