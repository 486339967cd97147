"""The docs cannot drift: every ``$ command`` shown in README.md runs, from a copy of the
repository's samples, and prints what the README shows under it (``...`` stands for text left
out). docs/model-format.md's YAML examples are summarised by tests/test_model.py."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def shell_examples(text: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for each ``$ `` line inside a fenced block."""
    found: list[tuple[str, list[str]]] = []
    for block in FENCE.findall(text):
        current: tuple[str, list[str]] | None = None
        for line in block.splitlines():
            if line.startswith("$ "):
                current = (line[2:], [])
                found.append(current)
            elif current is not None:
                current[1].append(line)
    for _, lines in found:  # the blank line that separates two examples is not output
        while lines and not lines[-1].strip():
            lines.pop()
    return found


def expected_pattern(lines: list[str]) -> re.Pattern[str]:
    """A regex for the output: a line ``...`` skips lines, ``...`` inside a line skips text."""
    parts = []
    for line in lines:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            pieces = [re.escape(p) for p in line.rstrip().split("...")]
            parts.append("[^\n]*?".join(pieces) + r"\n")
    return re.compile("".join(parts))


EXAMPLES = shell_examples(README.read_text(encoding="utf-8"))


def test_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 12
    assert all(cmd.startswith(("cnncli ", "python ")) for cmd, _ in EXAMPLES)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a copy of samples/ (examples write next to their inputs)."""
    where = tmp_path_factory.mktemp("docs")
    shutil.copytree(ROOT / "samples", where / "samples", symlinks=False)
    return where


@pytest.mark.parametrize(("command", "expected"), EXAMPLES, ids=[c for c, _ in EXAMPLES])
def test_readme_example_prints_what_the_readme_shows(
    workdir: Path, command: str, expected: list[str]
) -> None:
    if "--verify" in command and importlib.util.find_spec("torch") is None:
        pytest.skip("--verify needs torch (an oracle: installed by the test extras)")
    bindir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
        "COLUMNS": "100",
        "NO_COLOR": "1",
        "TERM": "dumb",
    }
    for name in ("FORCE_COLOR", "CNNCLI_DEBUG"):
        env.pop(name, None)
    # Examples that write a file are run again and again: --force-free names must not exist.
    for token in command.split():
        target = workdir / token
        if token.endswith((".npy", ".png")) and not token.startswith("samples/"):
            target.unlink(missing_ok=True)
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    shown = proc.stdout + proc.stderr
    actual = "".join(line.rstrip() + "\n" for line in shown.splitlines())
    want = expected_pattern(expected)
    assert want.fullmatch(actual), (
        f"$ {command}\n--- README shows:\n" + "\n".join(expected) + f"\n--- it prints:\n{actual}"
    )


def test_readme_zoo_table_is_the_zoo() -> None:
    # The README's sample of the zoo quotes numbers: they must be the zoo's own.
    from cnncli.model import summarize

    rows = re.findall(
        r"^\| (\w+)(?: \([^)]*\))? \| ([\d,]+) \| ([\d,]+) \| ([\d.]+) \|$",
        README.read_text(encoding="utf-8"),
        re.M,
    )
    assert len(rows) >= 5
    for name, trainable, non_trainable, gmacs in rows:
        t = summarize(name).totals
        got = (f"{t.trainable_params:,}", f"{t.non_trainable_params:,}", f"{t.macs / 1e9:.3f}")
        assert got == (trainable, non_trainable, gmacs), name
