"""Run the CLI in-process the way the console script does: exit code, stdout, stderr."""

from __future__ import annotations

import os

import pytest

from cnncli.cli import main


def run(
    args: list[str | os.PathLike[str]], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """``main(args)`` → (exit code, stdout, stderr); main always ends in SystemExit."""
    with pytest.raises(SystemExit) as exc:
        main([os.fspath(a) for a in args])
    out, err = capsys.readouterr()
    code = exc.value.code
    return (0 if code is None else code if isinstance(code, int) else 1), out, err
