"""Resuming training: exactly where a kill left it, with early stopping's patience kept, and only
on the dataset the run started on (``stampnet.training.resume``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from stampnet.training import resume, runs
from tests.test_training import Interrupt, InterruptAfter, parse

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_builtin(tmp_path_factory):
    """A folder whose tfrecords/ holds the tiny built-in simulated dataset (``--size tiny``)."""
    from stampnet.simulation.builtin import ensure_builtin_dataset

    root = tmp_path_factory.mktemp("builtin_root")
    ensure_builtin_dataset(data_root=root / "tfrecords", size="tiny")
    return root


def test_early_stopping_patience_survives_a_resume(tmp_path):
    from stampnet.training.trainer import _callbacks

    # Epochs 0-3 ran before the kill: best val_loss 0.5 at epoch 1, then two epochs without gain.
    history = pd.DataFrame({"epoch": [0, 1, 2, 3], "val_loss": [1.0, 0.5, 0.6, 0.7]})
    history.to_csv(tmp_path / runs.HISTORY_NAME, index=False)
    config = parse("--model", "stamp_classifier", "--patience", "3")
    bundle = types.SimpleNamespace(callbacks=[])
    callbacks = _callbacks(tmp_path, config, bundle, "val_loss", has_validation=True)
    (stopping,) = [c for c in callbacks if type(c).__name__.endswith("EarlyStopping")]
    stopping.set_model(types.SimpleNamespace(stop_training=False))
    stopping.on_train_begin()
    stopping.on_epoch_begin(4)  # the resumed fit starts at epoch 4
    assert stopping.wait == 2 and stopping.best == 0.5 and stopping.best_epoch == 1
    stopping.on_epoch_end(4, {"val_loss": 0.8})  # a third epoch without gain: patience spent
    assert stopping.model.stop_training


def test_resume_refuses_a_changed_dataset_and_says_what_changed(tiny_builtin, tmp_path):
    from stampnet.training.trainer import train

    data = tmp_path / "data"
    shutil.copytree(tiny_builtin / "tfrecords" / "builtin-tiny", data)
    out = tmp_path / "run"
    config = parse(
        "--model", "stamp_classifier", "--data", str(data), "--out", str(out), "--epochs", "2",
        "--batch-size", "8", "--steps-per-epoch", "1", "--verbose", "0",
    )  # fmt: skip
    with pytest.raises(Interrupt):
        train(config, callbacks=[InterruptAfter(0)])
    card_file = data / "dataset_card.json"
    card = json.loads(card_file.read_text())
    seed = card["seed"]
    card["seed"] = seed + 1
    card["sources"][0]["sha256"] = "0" * 64
    card_file.write_text(json.dumps(card))
    with pytest.raises(ValueError, match="not the one this run started on") as refused:
        train(parse("--resume", str(out), "--verbose", "0"))
    assert f"seed: {seed} -> {seed + 1}" in str(refused.value)
    assert "sources: 1 file(s) gone or changed, 1 new or changed" in str(refused.value)


def last_weights(run_dir: Path) -> dict[str, np.ndarray]:
    arrays = {}
    with h5py.File(run_dir / "checkpoints" / "last.weights.h5", "r") as handle:
        handle.visititems(
            lambda name, item: (
                arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None
            )
        )
    return arrays


def train_command(out: str) -> list[str]:
    return [
        sys.executable, str(REPO_ROOT / "train.py"), "--model", "stamp_classifier",
        "--size", "tiny", "--epochs", "3", "--steps-per-epoch", "6", "--batch-size", "8",
        "--seed", "7", "--out", out, "--verbose", "0",
    ]  # fmt: skip


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_the_weights_of_an_uninterrupted_run(tiny_builtin):
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "TF_DETERMINISTIC_OPS": "1",  # = tf.config.experimental.enable_op_determinism()
    }
    run = dict(cwd=tiny_builtin, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    subprocess.run(train_command("uninterrupted"), check=True, timeout=900, **run)

    killed = tiny_builtin / "killed"
    process = subprocess.Popen(train_command(str(killed)), **run)
    state = killed / resume.BACKUP_DIR / resume.STATE_NAME
    deadline = time.monotonic() + 600
    while not (state.is_file() and json.loads(state.read_text())["epoch"] >= 1):
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the first epoch never ended"
        time.sleep(0.05)
    time.sleep(1.5)  # into the second epoch (6 steps)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert not (killed / runs.MODEL_CARD_NAME).exists()
    rows = pd.read_csv(killed / runs.HISTORY_NAME)
    assert list(rows["epoch"]) in ([0], [0, 1]), "killed too late: not inside epoch 2"

    resume_command = [sys.executable, str(REPO_ROOT / "train.py"), "--resume", str(killed)]
    subprocess.run([*resume_command, "--verbose", "0"], check=True, timeout=900, **run)
    expected, resumed = last_weights(tiny_builtin / "uninterrupted"), last_weights(killed)
    assert expected.keys() == resumed.keys() and expected
    for name in expected:  # tolerance: none needed on CPU with deterministic ops; allow 1e-6
        np.testing.assert_allclose(resumed[name], expected[name], rtol=0, atol=1e-6, err_msg=name)
    history = pd.read_csv(killed / runs.HISTORY_NAME)
    assert sorted(set(history["epoch"])) == [0, 1, 2]
