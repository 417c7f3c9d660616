"""Builds under faults: killed anywhere and resumed, a full or read-only disk, a failed rebuild."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from stampnet.data import output
from stampnet.data.alert import RejectionWarning
from stampnet.data.build import build_dataset
from stampnet.data.builder import CONFIGS, load_builder
from stampnet.data.card import load_card
from stampnet.data.staging import Staging
from tests.conftest import REPO_ROOT
from tests.dataset_helpers import build_quietly, small_sources, write_small_labels

#: Card entries that differ between two builds of the same inputs.
RUN_ENTRIES = ("created", "build_seconds", "staging")
CLI = "import sys; from stampnet.cli import main; sys.exit(main(sys.argv[1:]))"


def dataset_digest(data_dir) -> dict:
    """{(config, split, key): digest of every decoded field}: equal datasets, equal digests."""
    digests = {}
    for config in CONFIGS:
        builder = load_builder(data_dir, config)
        for split in builder.info.splits:
            for example in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)):
                key = example["candid"] if config == "alerts" else example["object_id"]
                digest = hashlib.sha256()
                for name in sorted(example):
                    value = np.asarray(example[name])
                    digest.update(f"{name}{value.dtype}{value.shape}".encode() + value.tobytes())
                digests[(config, split, np.asarray(key).tobytes())] = digest.hexdigest()
    return digests


def same_card(first: dict, second: dict) -> bool:
    def strip(card):
        return {key: value for key, value in card.items() if key not in RUN_ENTRIES}

    return strip(first) == strip(second)


def tree_snapshot(directory: Path) -> dict:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def committed_files(staging_dir: Path) -> int:
    """Source files a (killed) build committed to its staging index."""
    index = staging_dir / "index.sqlite"
    if not index.exists():
        return 0
    with contextlib.closing(sqlite3.connect(index)) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        except sqlite3.OperationalError:  # killed before the tables were created
            return 0


def assert_finished_or_absent(data_dir: Path) -> None:
    """A killed build never leaves a data directory that is not a complete dataset."""
    if data_dir.exists():
        card = load_card(data_dir)
        assert dataset_digest(data_dir) and card["num_alerts"] > 0


# --------------------------------------------------------------------- killed and resumed
@pytest.fixture(scope="module")
def clean_small(ztf_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("clean_small")
    labels = write_small_labels(ztf_dir, root / "labels.csv")
    card = build_quietly(small_sources(ztf_dir), root / "data", labels=labels, seed=5)
    return root / "data", card, labels


def test_build_failing_mid_file_resumes_the_staging_and_equals_a_clean_build(
    ztf_dir, clean_small, tmp_path, monkeypatch
):
    clean_dir, clean_card, labels = clean_small
    original = Staging._add
    added = []

    def dies_inside_the_ninth_file(self, alert, label):
        # Files 1-8 hold one alert each; the ninth (avro_multi_alerts.avro) holds eight.
        if self.files_staged == 8 and len(added) >= 2:
            raise KeyboardInterrupt("killed while staging the ninth file")
        if self.files_staged == 8:
            added.append(alert.candid)
        return original(self, alert, label)

    monkeypatch.setattr(Staging, "_add", dies_inside_the_ninth_file)
    with pytest.raises(KeyboardInterrupt):
        build_quietly(small_sources(ztf_dir), tmp_path / "data", labels=labels, seed=5)
    assert not (tmp_path / "data").exists() and not (tmp_path / ".data.partial").exists()
    staging = tmp_path / ".data.staging"
    assert committed_files(staging) == 8  # the two alerts of the ninth file were rolled back

    monkeypatch.setattr(Staging, "_add", original)
    card = build_quietly(small_sources(ztf_dir), tmp_path / "data", labels=labels, seed=5)
    total = len(clean_card["sources"])
    assert card["staging"] == {"files_staged": total - 8, "files_resumed": 8}
    assert clean_card["staging"] == {"files_staged": total, "files_resumed": 0}
    assert same_card(card, clean_card)
    assert dataset_digest(tmp_path / "data") == dataset_digest(clean_dir)
    assert not staging.exists() and not (tmp_path / ".data.partial").exists()


def test_staging_of_other_labels_is_not_resumed(ztf_dir, clean_small, tmp_path, monkeypatch):
    _, clean_card, labels = clean_small
    monkeypatch.setattr(Staging, "assign_splits", _raise_power_cut)
    with pytest.raises(RuntimeError, match="power cut"):
        build_quietly(small_sources(ztf_dir), tmp_path / "data", labels=labels, seed=5)
    monkeypatch.undo()
    card = build_quietly(small_sources(ztf_dir), tmp_path / "data", labels=None, seed=5)
    assert card["staging"]["files_resumed"] == 0 and card["class_names"] == []


def _raise_power_cut(*args, **kwargs):
    raise RuntimeError("power cut")


def _cli_build(ztf_dir, out: Path) -> list[str]:
    return [
        sys.executable, "-c", CLI, "build", "--source", str(ztf_dir),
        "--labels", str(ztf_dir / "labels.csv"), "--out", str(out), "--seed", "0",
    ]  # fmt: skip


def _start(command) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.mark.slow
def test_cli_build_killed_at_random_points_resumes_to_the_clean_dataset(ztf_dir, tmp_path):
    clean = tmp_path / "clean"
    started = time.monotonic()
    assert _start(_cli_build(ztf_dir, clean)).wait() == 0
    duration = time.monotonic() - started
    out, staging = tmp_path / "killed", tmp_path / ".killed.staging"

    # Killed once files are staged (so that there is something to resume), then at seeded random
    # times; a resumed run may also finish before its kill time, which ends the series.
    process = _start(_cli_build(ztf_dir, out))
    deadline = time.monotonic() + 3 * duration
    while committed_files(staging) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()
    assert process.wait() == -9 and committed_files(staging) >= 5
    assert_finished_or_absent(out)
    for delay in [*np.random.default_rng(20261201).uniform(0.05, 0.6, size=3) * duration, None]:
        resumable = committed_files(staging)
        process = _start(_cli_build(ztf_dir, out))
        try:
            code = process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        assert code in (0, -9)
        assert_finished_or_absent(out)
        if out.exists():  # finished (possibly killed after publishing, before exiting)
            break

    card, clean_card = load_card(out), load_card(clean)
    total = len(clean_card["sources"])
    assert card["staging"] == {"files_staged": total - resumable, "files_resumed": resumable}
    assert clean_card["staging"] == {"files_staged": total, "files_resumed": 0} and resumable >= 5
    assert same_card(card, clean_card)
    assert dataset_digest(out) == dataset_digest(clean)
    assert not staging.exists() and not (tmp_path / ".killed.partial").exists()


# ------------------------------------------------------------------------------ resources
@pytest.fixture()
def earlier_dataset(ztf_dir, tmp_path):
    """A finished tiny dataset (8 real alerts) that a rebuild must not damage."""
    source = [str(ztf_dir / "multi_record_avro" / "avro_multi_alerts.avro")]
    build_quietly(source, tmp_path / "data", split_fractions=(1.0, 0.0, 0.0))
    return source, tmp_path / "data", tree_snapshot(tmp_path / "data")


def test_too_small_disk_fails_before_writing_anything(earlier_dataset, monkeypatch):
    source, data_dir, before = earlier_dataset
    monkeypatch.setattr(output, "free_bytes", lambda directory: 100_000)
    with pytest.raises(OSError, match="Not enough disk space.*MB free") as raised:
        build_quietly(source, data_dir, overwrite=True, split_fractions=(1.0, 0.0, 0.0))
    assert raised.value.errno == errno.ENOSPC
    assert tree_snapshot(data_dir) == before
    assert sorted(path.name for path in data_dir.parent.iterdir()) == ["data"]


def test_disk_full_while_writing_keeps_the_earlier_dataset(earlier_dataset, monkeypatch):
    source, data_dir, before = earlier_dataset

    def disk_full(self, split, max_detections):
        raise OSError(errno.ENOSPC, "No space left on device")
        yield  # a generator, like the original

    monkeypatch.setattr(Staging, "sequence_examples", disk_full)
    with pytest.raises(OSError, match="No space left"):
        build_quietly(source, data_dir, overwrite=True, split_fractions=(1.0, 0.0, 0.0))
    assert tree_snapshot(data_dir) == before and load_card(data_dir)["num_alerts"] == 8
    assert not data_dir.with_name(".data.partial").exists()  # the partial output is removed
    assert data_dir.with_name(".data.staging").exists()  # the staging is kept to resume
    monkeypatch.undo()
    card = build_quietly(source, data_dir, overwrite=True, split_fractions=(1.0, 0.0, 0.0))
    assert card["staging"]["files_resumed"] == 1 and card["num_alerts"] == 8


def test_replacement_killed_between_its_renames_restores_the_earlier_dataset(earlier_dataset):
    source, data_dir, before = earlier_dataset
    previous = data_dir.with_name(".data.previous")
    os.rename(data_dir, previous)  # as a kill between publish's two renames leaves it
    with pytest.raises(FileExistsError, match="already holds a finished dataset"):
        build_quietly(source, data_dir)
    assert tree_snapshot(data_dir) == before and not previous.exists()


def test_unwritable_output_fails_early_with_a_clear_message(earlier_dataset, monkeypatch):
    source, data_dir, before = earlier_dataset

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    # Root ignores permission bits, so the probe's failure is simulated here; the next test
    # makes a real read-only mount where the system allows it.
    monkeypatch.setattr(output.tempfile, "NamedTemporaryFile", read_only)
    with pytest.raises(PermissionError, match="Cannot write in .*Read-only file system"):
        build_quietly(source, data_dir, overwrite=True, split_fractions=(1.0, 0.0, 0.0))
    assert tree_snapshot(data_dir) == before


def _read_only_mount_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _read_only_mount_available(), reason="no user namespaces (unshare -rm)")
def test_read_only_mount_is_refused_before_anything_is_read(ztf_dir, tmp_path):
    """A real read-only file system (a read-only bind mount in a user namespace: even root
    cannot write there), checked by the CLI before it reads an alert."""
    target = tmp_path / "ro"
    target.mkdir()
    out = target / "data"
    script = (
        f'mount --bind -o ro "{target}" "{target}" && exec "{sys.executable}" -c "{CLI}" '
        f'build --source "{ztf_dir / "schema_versions"}" --out "{out}"'
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=env
    )
    assert result.returncode != 0
    assert "PermissionError" in result.stderr and "Cannot write in" in result.stderr
    assert "Read-only file system" in result.stderr and "Skipped alert" not in result.stderr
    assert list(target.iterdir()) == []


def test_directory_with_foreign_files_is_not_replaced(ztf_dir, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RejectionWarning)
        build_dataset(ztf_dir / "schema_versions", tmp_path / "data")
    assert (tmp_path / "data" / "notes.txt").read_text() == "mine"
