"""The Beam test files' guard: without the ``beam`` extra they skip, except in CI (CI=true), which
installs it (``.ci/run``) and where a missing Beam must fail, as missing shared data does."""

from __future__ import annotations

import os

import pytest


def require_beam() -> None:
    """Call at a test module's top, before importing anything of Beam."""
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(
                "apache_beam is not installed; CI installs the beam extra (.ci/run: "
                'pip install -e ".[cpu,test,beam]")',
                pytrace=False,
            )
        pytest.skip("apache_beam is not installed (the beam extra)", allow_module_level=True)
