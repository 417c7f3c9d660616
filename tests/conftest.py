"""Shared fixtures: where the real ZTF sample and the ALeRCE references live.

Tests that need ../shared skip when it is absent, except in CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stampnet.shared_data import shared_dir

REPO_ROOT = Path(__file__).resolve().parents[1]

# Keep TensorFlow quiet and deterministic in tests; set before any test imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _require(path: Path) -> Path:
    if path.exists():
        return path
    message = f"shared data not found at {path} (set STAMPNET_SHARED)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + "; in CI the shared data must be present")
    pytest.skip(message)


@pytest.fixture(scope="session")
def ztf_dir() -> Path:
    """../shared/data/ztf: real public ZTF alerts with heuristic labels."""
    return _require(shared_dir() / "data" / "ztf")


@pytest.fixture(scope="session")
def alerce_2020_dir() -> Path:
    return _require(shared_dir() / "reference" / "alerce_stamp_classifier_2020")


@pytest.fixture(scope="session")
def alerce_2019_dir() -> Path:
    return _require(shared_dir() / "reference" / "alerce_stamp_classifier_2019_images")
