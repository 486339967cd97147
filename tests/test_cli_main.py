"""The entry point's promises: one escaped line per failure, streams that cannot fail loudly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import run  # tests/clirun.py

from cnncli.render.term import printable

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("resnet50", "resnet50"),
        ("日本 é\u00a0x", "日本 é\u00a0x"),
        ("a\x1b]52;c;cHduZWQ=\x07b", "a\\x1b]52;c;cHduZWQ=\\x07b"),  # OSC 52: clipboard write
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),  # OSC 0: window title
        ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # clear screen, cursor home
        ("x\x9b2Jy", "x\\x9b2Jy"),  # C1 CSI
        ("abc\u202edef", "abc\\u202edef"),  # right-to-left override
        ("line\nbreak\ttab\r\x7f", "line\\nbreak\\ttab\\r\\x7f"),
    ],
)
def test_printable_escapes_what_a_terminal_would_obey(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert printable(shown) == shown


def test_error_lines_escape_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = tmp_path / "m\x1b]0;owned\x07.yaml"
    code, out, err = run(["summary", name], capsys)
    assert code == 1
    assert out == ""
    assert "\x1b" not in err and "\x07" not in err
    assert "m\\x1b]0;owned\\x07.yaml" in err
    assert err.count("\n") == 1


def _cli(
    *args: str, env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cnncli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
        **kw,  # type: ignore[arg-type]
    )


def test_full_disk_on_stdout_is_one_line() -> None:
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "cnncli", "summary", "mnist-convnet"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
    assert proc.returncode == 1
    assert (
        proc.stderr == "cnncli: error: cannot write to standard output (No space left on device)\n"
    )


def test_ascii_only_stdout_gets_escapes_not_a_crash() -> None:
    proc = _cli("shape", "6x6", "-k", "3", env={"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "\\u256d" in proc.stdout or "+" in proc.stdout or "input" in proc.stdout
    proc = _cli("summary", "mnist-convnet", env={"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0, proc.stderr
    assert "34,826" in proc.stdout


def test_core_messages_name_only_known_options() -> None:
    import re

    from cnncli.errors import OPTION_NAMES, ShapeError, as_model_key

    used: set[str] = set()
    for source in (ROOT / "cnncli").rglob("*.py"):
        used |= set(re.findall(r"\{+opt:([a-z][a-z-]*)\}+", source.read_text(encoding="utf-8")))
    assert used <= OPTION_NAMES, used - OPTION_NAMES
    err = ShapeError("use {opt:padding} 1, {opt:solve} padding; file a{opt:x}b.yaml")
    assert str(err) == "use --padding 1, --solve padding; file a{opt:x}b.yaml"
    assert err.worded(as_model_key) == "use padding: 1, --solve padding; file a{opt:x}b.yaml"
