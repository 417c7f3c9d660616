"""Which dataset a command reads: ``--data``, else the run's own, else the built-in simulated one.

One resolver for ``train``, ``evaluate`` and ``embed``, so that the three agree on where a run's
data comes from.
"""

from __future__ import annotations

import json
from pathlib import Path


def run_data_dir(run: str | Path) -> Path | None:
    """The dataset a run folder was trained on, as its ``model_card.json`` (else its
    ``config.json``) records it; ``None`` for a bare model file or a run that names none."""
    run = Path(run)
    if not run.is_dir():
        return None
    for name in ("model_card.json", "config.json"):
        path = run / name
        if path.exists():
            recorded = (json.loads(path.read_text()).get("data") or {}).get("data_dir")
            if recorded:
                return Path(recorded)
    return None


def resolve_data_dir(data_dir=None, *, run=None, builtin_size="default") -> Path:
    """``data_dir`` if given; else the dataset ``run`` records; else the built-in simulated
    dataset of ``builtin_size`` ("default", "tiny" or a number of objects), built on first use.

    A run whose recorded dataset is gone is an error, not a silent switch to other data.
    """
    if data_dir:
        return Path(data_dir)
    recorded = run_data_dir(run) if run is not None else None
    if recorded is not None:
        if not recorded.exists():
            raise ValueError(
                f"Run {run} was trained on {recorded}, which no longer exists: rebuild it "
                "(stampnet build) or pass --data DIR"
            )
        return recorded
    from stampnet.simulation.builtin import ensure_builtin_dataset

    size = str(builtin_size)
    return Path(ensure_builtin_dataset(size=int(size) if size.isdigit() else size))
