"""The work budget: parsing --limit, refusing over it, and the README table that documents it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnncli import limits
from cnncli.errors import UsageError
from cnncli.limits import LIMITS, LimitError

README = Path(__file__).resolve().parent.parent / "README.md"


def test_parse_accepts_the_spellings_users_write() -> None:
    assert limits.parse(["kernel-taps=4e6", "layers=200_000", "PIXELS=1,000", "block_calls=7"]) == {
        "kernel-taps": 4_000_000,
        "layers": 200_000,
        "pixels": 1000,
        "block-calls": 7,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("taps=5", "unknown limit 'taps' in --limit 'taps=5'; limits: pixels, output-values,"),
        ("layers", "--limit 'layers': give NAME=N with a whole number, e.g. --limit layers=100000"),
        ("layers=x", "--limit 'layers=x': give NAME=N with a whole number"),
        ("layers=-3", "--limit 'layers=-3': give NAME=N with a whole number"),
        ("layers=0", "--limit 'layers=0': the limit must be a whole number from 1 to 2**62"),
        ("layers=1.5e0", "--limit 'layers=1.5e0': the limit must be a whole number"),
        ("layers=1e99", "--limit 'layers=1e99': the limit must be a whole number from 1 to 2**62"),
    ],
)
def test_parse_names_the_bad_entry(text: str, message: str) -> None:
    with pytest.raises(UsageError) as err:
        limits.parse([text])
    assert str(err.value).startswith(message)


def test_check_refuses_over_the_limit_with_the_way_out() -> None:
    limits.configure()
    limits.check("kernel-taps", LIMITS["kernel-taps"].default, "exactly at the limit")
    with pytest.raises(LimitError) as err:
        limits.check("kernel-taps", 225_030_001, "kernel gaussian:size=15001 has 225,030,001 taps")
    assert str(err.value) == (
        "kernel gaussian:size=15001 has 225,030,001 taps, over the kernel-taps limit of "
        "1,048,576; raise it with --limit kernel-taps=225030001 if you mean it"
    )
    assert err.value.exit_code == 1
    limits.configure({"kernel-taps": 10})
    try:
        with pytest.raises(LimitError, match="limit of 10;"):
            limits.check("kernel-taps", 11, "11 taps")
        with limits.override(kernel_taps=20):
            limits.check("kernel-taps", 20, "20 taps")
        assert limits.get("kernel-taps") == 10
    finally:
        limits.configure()
    assert limits.get("kernel-taps") == LIMITS["kernel-taps"].default


def test_readme_table_lists_every_limit_with_its_default() -> None:
    text = README.read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| ([\d,]+) \|", text, flags=re.MULTILINE))
    assert {name: int(v.replace(",", "")) for name, v in rows.items()} == {
        name: lim.default for name, lim in LIMITS.items()
    }
