"""Test-wide settings: property tests draw the same examples on every run (a failure is
reproduced from its test id alone); ``HYPOTHESIS_PROFILE=explore`` draws new ones."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("reproducible", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reproducible"))
