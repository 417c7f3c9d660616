"""A build's staging read back: the layout of its spill file and index, its summaries for the
dataset card, and its examples one at a time.

``stampnet.data.staging.Staging`` writes a staging directory: ``alerts.spill``, the decoded stamps
and masks of every alert as fixed-size raw little-endian records (float32 stamps, then uint8
masks; never pickles, so reading it back executes nothing), and ``index.sqlite``, one row per alert
with its small fields and the record's file offset. ``StagedAlerts`` is the read side that
``Staging`` extends: counts, labels, splits and train statistics are SQL queries over the index,
and examples are read back one at a time by file offset, so memory stays flat.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import numpy as np

from stampnet.constants import STAMP_SHAPE
from stampnet.data.card import FeatureAccumulator
from stampnet.data.history import (
    HISTORY_FIELDS,
    MAX_ALERT_HISTORY,
    MAX_SEQUENCE_HISTORY,
    merge_histories,
    pad_history,
)
from stampnet.data.splits import SPLITS
from stampnet.features import METADATA_FIELDS
from stampnet.geometry import StampGeometry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    candid INTEGER PRIMARY KEY, object_id TEXT NOT NULL, jd REAL NOT NULL, fid INTEGER NOT NULL,
    label TEXT NOT NULL, schema_version TEXT NOT NULL, source TEXT NOT NULL,
    offset INTEGER NOT NULL, metadata BLOB NOT NULL, given_split TEXT,
    history BLOB NOT NULL, history_detection INTEGER NOT NULL, history_upper_limit INTEGER NOT NULL,
    history_forced INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    position INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, alerts_read INTEGER NOT NULL, spill_end INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rejections (
    sequence INTEGER PRIMARY KEY, source TEXT NOT NULL, candid INTEGER, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
#: Bumped when the spill or index layout changes: a staging of another layout is not resumed.
STAGING_FORMAT = "4"


def record_bytes(shape) -> int:
    """Bytes of one spilled alert of stamp ``shape``: float32 stamps, then uint8 masks."""
    return int(np.prod(shape)) * 5


#: Bytes of one spilled ZTF alert (63 x 63 x 3).
RECORD_BYTES = record_bytes(STAMP_SHAPE)
#: Rows read at once when streaming metadata into the feature statistics or inserting objects.
CHUNK_ROWS = 4096


class StagedAlerts:
    """The spill file and index of a staging directory (see the module doc), opened for reading.

    Args:
        directory: the staging directory; created, with an empty index, when it does not exist.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        #: Shape and channel names of the stamps, taken from the first alert kept.
        self.geometry: StampGeometry | None = None
        self._spill_path = self.directory / "alerts.spill"
        mode = "r+b" if self._spill_path.exists() else "w+b"
        self._spill = open(self._spill_path, mode)  # noqa: SIM115 (closed in close())
        self._db = sqlite3.connect(self.directory / "index.sqlite", check_same_thread=False)
        # A write-ahead log survives a killed process: a file's uncommitted rows roll back.
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._spill.close()
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------- summaries for the card
    def counts(self) -> dict:
        """``{config: {split: {label: n}}}``: alerts by their own label, objects by theirs."""
        counts = {"alerts": {}, "sequences": {}}
        alert_rows = self._db.execute(
            "SELECT o.split, a.label, COUNT(*) FROM alerts a JOIN objects o USING (object_id) "
            "GROUP BY o.split, a.label ORDER BY o.split, a.label"
        )
        object_rows = self._db.execute(
            "SELECT split, label, COUNT(*) FROM objects GROUP BY split, label ORDER BY split, label"
        )
        for config, rows in (("alerts", alert_rows), ("sequences", object_rows)):
            for split, label, count in rows:
                counts[config].setdefault(split, {})[label] = count
        return counts

    def labels(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT DISTINCT label FROM alerts")]

    def num_alerts(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]

    def num_objects(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM objects").fetchone()[0]

    def splits(self) -> list[str]:
        """The splits that hold at least one object, in SPLITS order."""
        present = {row[0] for row in self._db.execute("SELECT DISTINCT split FROM objects")}
        return [split for split in SPLITS if split in present]

    def feature_accumulator(self, split: str = "train") -> FeatureAccumulator:
        """Streaming statistics of the raw metadata of ``split``'s alerts."""
        accumulator = FeatureAccumulator(METADATA_FIELDS)
        rows = self._db.execute(
            "SELECT a.metadata FROM alerts a JOIN objects o USING (object_id) WHERE o.split = ?",
            (split,),
        )
        while chunk := rows.fetchmany(CHUNK_ROWS):
            accumulator.update(np.frombuffer(b"".join(row[0] for row in chunk), "<f8"))
        return accumulator

    def history_card(self) -> dict:
        """The dataset card's description of the stored light-curve history."""
        kinds = ("detection", "upper_limit", "forced")
        counts = self._db.execute(
            "SELECT COUNT(*), SUM(history_detection), SUM(history_upper_limit), "
            "SUM(history_forced), SUM(MAX(history_detection, history_upper_limit, history_forced))"
            " FROM alerts"
        ).fetchone()
        return {
            "fields": list(HISTORY_FIELDS),
            "kinds": {"detection": 0, "upper_limit": 1, "forced": 2},
            "max_length": {"alerts": MAX_ALERT_HISTORY, "sequences": MAX_SEQUENCE_HISTORY},
            "description": (
                "history (L, len(fields)) float32 and history_mask (L,) bool, right-padded, "
                "sorted by time, the most recent L rows kept. alerts: prv_candidates, fp_hists "
                "and the alert itself (days = 0), days relative to the alert's jd. sequences: "
                "the merged, de-duplicated rows of the object's stored alerts, days relative to "
                "its first stored alert. See stampnet.data.history for units (magnitudes, "
                "microjansky difference fluxes); NaN = not measured."
            ),
            # Counted over the alerts kept (after duplicates), with at least one earlier row.
            "alerts": int(counts[0]),
            "alerts_with_history_of_kind": {
                kind: int(count or 0) for kind, count in zip(kinds, counts[1:4], strict=True)
            },
            "alerts_with_history": int(counts[4] or 0),
        }

    # --------------------------------------------------------------------- examples, one by one
    def _read(self, offset: int) -> tuple[np.ndarray, np.ndarray]:
        """(stamps float32, mask uint8) of the alert spilled at ``offset``."""
        self._spill.seek(offset)
        shape = self.geometry.shape
        values = int(np.prod(shape))
        record = self._spill.read(record_bytes(shape))
        if len(record) != record_bytes(shape):
            raise OSError(
                f"{self._spill_path} ends inside the alert at byte {offset}: the staging is "
                "damaged; delete it and build again"
            )
        stamps = np.frombuffer(record, "<f4", values).reshape(shape)
        mask = np.frombuffer(record, np.uint8, values, 4 * values)
        return stamps.astype(np.float32), mask.reshape(shape).copy()

    def alert_examples(self, split: str) -> Iterator[tuple[int, dict]]:
        """(key, example) of every alert of ``split``, in spill-file order."""
        rows = self._db.execute(
            "SELECT a.candid, a.object_id, a.jd, a.fid, a.label, a.offset, a.metadata, a.source, "
            "a.history FROM alerts a JOIN objects o USING (object_id) WHERE o.split = ? "
            "ORDER BY a.offset",
            (split,),
        )
        for candid, object_id, jd, fid, label, offset, metadata, source, history in rows:
            stamps, mask = self._read(offset)
            metadata = np.frombuffer(metadata, "<f8")
            history = _history_rows(history)
            present = np.isfinite(metadata)
            history, history_mask = pad_history(history, MAX_ALERT_HISTORY)
            yield (
                candid,
                {
                    "candid": candid,
                    "object_id": object_id,
                    "jd": jd,
                    "fid": fid,
                    "label": label,
                    "stamps": stamps,
                    "stamp_mask": mask,
                    "metadata": np.where(present, metadata, 0.0).astype(np.float32),
                    "metadata_present": present,
                    "source": source,
                    "history": history,
                    "history_mask": history_mask,
                },
            )

    def sequence_examples(self, split: str, max_detections: int) -> Iterator[tuple[str, dict]]:
        """(object_id, example) of every object of ``split``: its first ``max_detections`` alerts
        in time order. Only one object's alerts are in memory at a time."""
        objects = self._db.execute(
            "SELECT object_id, label FROM objects WHERE split = ? ORDER BY object_id", (split,)
        )
        for object_id, label in objects:
            rows = self._db.execute(
                "SELECT candid, jd, offset, metadata, history FROM alerts WHERE object_id = ? "
                "ORDER BY jd, candid LIMIT ?",
                (object_id, max_detections),
            ).fetchall()
            arrays = [self._read(row[2]) for row in rows]
            metadata = np.stack([np.frombuffer(row[3], "<f8") for row in rows])
            present = np.isfinite(metadata)
            merged = merge_histories([(row[1], _history_rows(row[4])) for row in rows], rows[0][1])
            history, history_mask = pad_history(merged, MAX_SEQUENCE_HISTORY)
            yield (
                object_id,
                {
                    "object_id": object_id,
                    "label": label,
                    "num_alerts": len(rows),
                    "candid": np.array([row[0] for row in rows], np.int64),
                    "jd": np.array([row[1] for row in rows], np.float64),
                    "stamps": np.stack([stamps for stamps, _ in arrays]),
                    "stamp_mask": np.stack([mask for _, mask in arrays]),
                    "metadata": np.where(present, metadata, 0.0).astype(np.float32),
                    "metadata_present": present,
                    "history": history,
                    "history_mask": history_mask,
                },
            )


def _history_rows(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, "<f4").reshape(-1, len(HISTORY_FIELDS))
