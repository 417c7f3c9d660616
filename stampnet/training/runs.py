"""The run folder: where a training run leaves everything needed to use, trust and redo it.

::

    runs/<model>-<YYYYmmdd-HHMMSS>/
        config.json          the resolved RunConfig (written first: --resume reads it)
        model.keras          the main export (e.g. the classifier), reloadable without stampnet's
                             training code; other exports as <name>.keras (e.g. encoder.keras)
        saved_model/         SavedModel with one named serving signature per export
        history.csv          one row per epoch (loss, metrics, val_*)
        model_card.json      data reference (card sha256, data dir, sources), classes, features,
                             metrics on validation/test, versions, seed, timings
        evaluation.json      test-set evaluation (accuracy + confusion matrix for classifiers)
        logs/                TensorBoard
        checkpoints/         last.weights.h5 (every epoch), best.weights.h5 (best val loss)
        backup/              keras.callbacks.BackupAndRestore state; removed when a run ends
"""

from __future__ import annotations

import datetime
import json
import platform
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from stampnet import __version__
from stampnet.data.card import card_path, file_sha256
from stampnet.jsonable import json_ready
from stampnet.training.config import RunConfig

CONFIG_NAME = "config.json"
HISTORY_NAME = "history.csv"
MODEL_CARD_NAME = "model_card.json"
EVALUATION_NAME = "evaluation.json"


def new_run_dir(config: RunConfig, now: datetime.datetime | None = None) -> Path:
    """``--resume`` folder, ``--out`` folder, or a fresh ``<runs_dir>/<model>-<timestamp>``."""
    train = config.train
    if train.resume:
        run_dir = Path(train.resume)
        if not (run_dir / CONFIG_NAME).is_file():
            raise ValueError(f"--resume {run_dir}: not a run folder (no {CONFIG_NAME} there)")
        if (run_dir / MODEL_CARD_NAME).is_file():
            raise ValueError(
                f"--resume {run_dir}: that run finished (it has a {MODEL_CARD_NAME}); "
                "start a new run instead"
            )
        return run_dir
    if train.out:
        run_dir = Path(train.out)
        if (run_dir / CONFIG_NAME).exists():
            raise ValueError(
                f"--out {run_dir} already holds a run; continue it with --resume {run_dir} "
                "or choose another --out"
            )
    else:
        stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
        run_dir = Path(train.runs_dir) / f"{config.model}-{stamp}"
        suffix = 1
        while run_dir.exists():  # two runs started within the same second
            run_dir = Path(train.runs_dir) / f"{config.model}-{stamp}-{suffix}"
            suffix += 1
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def write_json(path: Path, data: Mapping) -> Path:
    """JSON with NaN/inf written as null (strict JSON readers reject NaN), atomically."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(json_ready(data), indent=2, allow_nan=False) + "\n")
    temporary.replace(path)
    return path


def write_config(run_dir: Path, config: RunConfig) -> Path:
    return write_json(run_dir / CONFIG_NAME, config.to_dict())


def versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {
        "stampnet": __version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def data_reference(data_dir: Path, card: Mapping) -> dict:
    """What identifies the training data: its folder, the card's hash and the card's provenance."""
    sources = card.get("sources", [])
    return {
        "data_dir": str(Path(data_dir).resolve()),
        "card_path": str(card_path(data_dir).resolve()),
        "card_sha256": file_sha256(card_path(data_dir)),
        "num_sources": len(sources),
        "sources_sha256": [source.get("sha256") for source in sources[:1000]],
        "generator": card.get("generator"),
        "seed": card.get("seed"),
        "counts": card.get("counts"),
    }


def write_model_card(
    run_dir: Path,
    *,
    config: RunConfig,
    data_dir: Path,
    card: Mapping,
    class_names,
    feature_names,
    exports: Mapping[str, str],
    metrics: Mapping,
    epochs_trained: int,
    best_epoch: int | None,
    seconds: float,
    record=None,
    init: Mapping | None = None,
) -> Path:
    """``record``: the main model's ``stampnet.compat.ModelRecord`` (stamp geometry, channels
    used, crop, classes, features), which ``classify``, ``evaluate.py`` and ``--init`` check
    data against; ``init``: the ``--init`` report (layers loaded and not)."""
    model_card = {
        "model": config.model,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "data": data_reference(data_dir, card),
        "class_names": list(class_names),
        "feature_names": list(feature_names),
        "channels": list(config.model_config.channels),
        "crop_size": config.model_config.crop_size,
        "exports": dict(exports),
        "metrics": metrics,
        "epochs_trained": epochs_trained,
        "best_epoch": best_epoch,
        "seed": config.train.seed,
        "train_seconds": round(seconds, 1),
        "versions": versions(),
        "config": config.to_dict(),
    }
    if record is not None:
        model_card.update(record.to_dict())
    if init is not None:
        model_card["init"] = dict(init)
    return write_json(run_dir / MODEL_CARD_NAME, model_card)


def read_history(run_dir: Path):
    """history.csv as a DataFrame, one row per epoch: an epoch repeated by a resumed run (its
    row written just before the interruption) keeps its last row."""
    import pandas as pd

    path = run_dir / HISTORY_NAME
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame()
    history = pd.read_csv(path)
    if "epoch" in history:
        history = history.drop_duplicates("epoch", keep="last").reset_index(drop=True)
    return history


def load_run_config(run_dir: str | Path) -> RunConfig:
    return RunConfig.from_dict(json.loads((Path(run_dir) / CONFIG_NAME).read_text()))
