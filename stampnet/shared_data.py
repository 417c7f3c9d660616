"""Where the shared sample and references live: ``$STAMPNET_SHARED``, else ``shared`` beside the
checkout (``../shared`` from the repository root), for the tests and the benchmark scripts."""

from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The shared folder (``data/ztf``, ``reference``); not checked to exist."""
    return Path(os.environ.get("STAMPNET_SHARED", CHECKOUT.parent / "shared")).resolve()
