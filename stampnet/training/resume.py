"""Resuming a training run exactly where a kill left it: ``python train.py --resume RUN_DIR``.

A run killed anywhere (SIGKILL, power cut) and resumed ends with the same weights as a run that
was never interrupted, because every epoch is a function of what the run folder holds:

- ``EpochBackup`` saves, after each epoch, the model's weights with the optimizer's state and the
  random-seed states of its layers (dropout, augmentation), which ``model.save_weights`` leaves
  out. The files of epoch N are written first and ``backup/state.json`` is pointed at them last
  (an atomic rename), so a kill leaves either the old or the new backup, never half of one.
- ``restore`` loads that backup and returns the epoch to start from; the trainer skips the
  batches the finished epochs consumed (the training stream is seeded, so the batch at position
  N is the same in every process) and redoes the interrupted epoch from its start.
- ``ResumableEarlyStopping`` replays the finished epochs of ``history.csv`` to recover its best
  value and wait count, so patience does not restart after a resume.
- ``check_dataset`` records the dataset's identity (sources, labels, seed, splits, counts, classes)
  when a run starts, and refuses to resume on a dataset that is not the same one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np

BACKUP_DIR = "backup"
STATE_NAME = "state.json"
DATA_IDENTITY_NAME = "data_identity.json"


def _write_json_atomically(path: Path, data) -> None:
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def _seed_states(model: keras.Model) -> list:
    """The layers' random-seed state variables (in ``model.variables``, not ``model.weights``)."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


class EpochBackup(keras.callbacks.Callback):
    """Saves everything an exact resume needs after every epoch; removed when training ends.

    Args:
        run_dir: the run folder; the backup lives in ``<run_dir>/backup``.
    """

    def __init__(self, run_dir: str | Path):
        super().__init__()
        self.backup_dir = Path(run_dir) / BACKUP_DIR

    def on_epoch_end(self, epoch, logs=None):
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        weights = self.backup_dir / f"epoch-{epoch + 1}.weights.h5"
        seeds = self.backup_dir / f"epoch-{epoch + 1}.seeds.npz"
        self.model.save_weights(str(weights), overwrite=True)
        with open(seeds, "wb") as handle:
            np.savez(handle, *[np.asarray(v.numpy()) for v in _seed_states(self.model)])
        state = {"epoch": epoch + 1, "weights": weights.name, "seeds": seeds.name}
        _write_json_atomically(self.backup_dir / STATE_NAME, state)
        for old in self.backup_dir.glob("epoch-*"):
            if old.name not in (weights.name, seeds.name):
                old.unlink(missing_ok=True)

    def on_train_end(self, logs=None):
        shutil.rmtree(self.backup_dir, ignore_errors=True)


def restore(model: keras.Model, run_dir: str | Path) -> int:
    """Loads the run's last backup into ``model`` (compiled); returns the epoch to start at."""
    backup_dir = Path(run_dir) / BACKUP_DIR
    state_path = backup_dir / STATE_NAME
    if not state_path.is_file():
        return 0
    state = json.loads(state_path.read_text())
    # The optimizer's variables must exist before its saved state can be loaded into them.
    model.optimizer.build(model.trainable_variables)
    model.load_weights(str(backup_dir / state["weights"]))
    with np.load(backup_dir / state["seeds"]) as saved:
        values = [saved[f"arr_{index}"] for index in range(len(saved.files))]
    variables = _seed_states(model)
    if len(values) != len(variables):
        raise ValueError(
            f"{backup_dir}: the backup holds {len(values)} random-seed states but the model has "
            f"{len(variables)}; it was saved by another model. Start a new run instead."
        )
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)
    return int(state["epoch"])


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """``EarlyStopping`` whose best value and wait count survive a resume.

    Keras resets both when ``fit`` starts; this replays the epochs before the first one of this
    ``fit`` call from ``history.csv`` (one row per finished epoch) with Keras's own rule.

    Args:
        history: a callable returning the run's history as a DataFrame (``runs.read_history``).
        **kwargs: ``keras.callbacks.EarlyStopping`` arguments.
    """

    def __init__(self, history, **kwargs):
        super().__init__(**kwargs)
        self._history = history
        self._replayed = False

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._replayed = False

    def on_epoch_begin(self, epoch, logs=None):
        if self._replayed:
            return
        self._replayed = True
        history = self._history()
        if epoch == 0 or self.monitor not in history or "epoch" not in history:
            return
        if self.monitor_op is None:
            self._set_monitor_op()
        for _, row in history[history["epoch"] < epoch].sort_values("epoch").iterrows():
            current = float(row[self.monitor])
            if row["epoch"] < self.start_from_epoch:
                continue
            self.wait += 1  # Keras's rule (EarlyStopping.on_epoch_end), minus the stopping
            if self._is_improvement(current, self.best):
                self.best, self.best_epoch = current, int(row["epoch"])
                if self.baseline is None or self._is_improvement(current, self.baseline):
                    self.wait = 0


# ------------------------------------------------------------------------------ data identity
#: Card entries that define what a dataset holds: if any differs, it is another dataset.
IDENTITY_KEYS = (
    "name",
    "version",
    "seed",
    "split_fractions",
    "max_detections",
    "class_names",
    "num_alerts",
    "num_objects",
    "counts",
)


def dataset_identity(card: Mapping) -> dict:
    """What makes a dataset this dataset: the sources' and labels' hashes, seed, splits, counts.

    Not the card's own hash: a rebuild of the same inputs writes another date and build time.
    """
    identity = {key: card.get(key) for key in IDENTITY_KEYS}
    identity["sources_sha256"] = sorted(str(s.get("sha256")) for s in card.get("sources", []))
    labels = card.get("labels") or {}
    identity["labels_sha256"] = labels.get("sha256")
    return json.loads(json.dumps(identity))  # the JSON form, as it is read back


def _differences(recorded: Mapping, current: Mapping) -> list[str]:
    changed = []
    for key in sorted(set(recorded) | set(current)):
        before, after = recorded.get(key), current.get(key)
        if before == after:
            continue
        if key == "sources_sha256":
            removed = len(set(before or ()) - set(after or ()))
            added = len(set(after or ()) - set(before or ()))
            changed.append(f"sources: {removed} file(s) gone or changed, {added} new or changed")
        elif key == "counts":
            changed.append("counts per split and label differ")
        else:
            changed.append(f"{key}: {before!r} -> {after!r}")
    return changed


def check_dataset(run_dir: Path, card: Mapping, data_dir: Path, *, resuming: bool) -> None:
    """Records the dataset's identity when a run starts; on a resume, refuses another dataset.

    Raises:
        ValueError: resuming on a dataset whose identity differs, naming what changed.
    """
    path = Path(run_dir) / DATA_IDENTITY_NAME
    current = dataset_identity(card)
    if resuming and path.is_file():
        recorded = json.loads(path.read_text())
        changed = _differences(recorded["identity"], current)
        if changed:
            raise ValueError(
                f"--resume {run_dir}: the dataset in {data_dir} is not the one this run started "
                f"on (recorded from {recorded['data_dir']}): " + "; ".join(changed) + ". "
                "Resume on the original dataset, or start a new run on this one."
            )
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    _write_json_atomically(path, {"data_dir": str(Path(data_dir).resolve()), "identity": current})
