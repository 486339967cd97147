"""Test-wide settings: property tests draw the same examples on every run (a failure is
reproduced from its test id alone); ``HYPOTHESIS_PROFILE=explore`` draws new ones. The filter
core is loaded (or compiled) once, first."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("reproducible", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reproducible"))


@pytest.fixture(scope="session", autouse=True)
def _filter_core_compiled() -> None:
    """Load the filter core once before any test, compiling it if the cache is empty (a fresh
    checkout, or after _jit.py changed): a first run says so on stderr, and that line would
    otherwise land in whichever test happened to filter first."""
    from cnncli.filtering import correlate

    correlate.load_core()
