"""Decode alerts once, spill them to disk, and index them, so a build's memory does not grow.

Building both dataset configs needs every alert several times (once per split, once more grouped
by object for the sequences) and needs to know every object before any split can be assigned.
Holding decoded stamps in memory would grow with the input; decoding the files once per split
would triple the slowest step. So a ``Staging`` reads the sources once, appends each decoded alert
to a spill file, and records its small fields (candid, object, jd, label, file offset, metadata) in
an on-disk SQLite index. Duplicates, object labels, splits, counts and train statistics are then
SQL queries over that index, and examples are read back one at a time by file offset.

The spill file holds raw little-endian arrays only (float32 stamps, then uint8 masks: fixed-size
records), never pickles, so reading it back executes nothing. Staging is resumable: each source
file is staged in one SQLite transaction, committed (with its rejections and the spill file's end)
only once the file is read, so a build killed at any point and started again skips the files
already staged, rolls back the one that was being read and truncates the spill file to match.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import os
import sqlite3
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from stampnet.constants import STAMP_SHAPE, UNLABELLED
from stampnet.data.alert import Alert, RejectionLog, RejectionWarning
from stampnet.data.card import FeatureAccumulator
from stampnet.data.history import (
    HISTORY_FIELDS,
    MAX_ALERT_HISTORY,
    MAX_SEQUENCE_HISTORY,
    history_summary,
    merge_histories,
    pad_history,
)
from stampnet.data.labels import LabelTable
from stampnet.data.readers import iter_alerts, resolve_sources
from stampnet.data.splits import SPLITS, check_fractions, object_label, split_key, split_sizes
from stampnet.features import METADATA_FIELDS
from stampnet.geometry import StampGeometry, geometry_of

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
_OBJECTS = """
DROP TABLE IF EXISTS objects;
CREATE TABLE objects (
    object_id TEXT PRIMARY KEY, label TEXT NOT NULL, split_key INTEGER NOT NULL, split TEXT);
DROP TABLE IF EXISTS temp.label_sizes;
"""
#: Bumped when the spill or index layout changes: a staging of another layout is not resumed.
STAGING_FORMAT = "4"


def record_bytes(shape) -> int:
    """Bytes of one spilled alert of stamp ``shape``: float32 stamps, then uint8 masks."""
    return int(np.prod(shape)) * 5


#: Bytes of one spilled ZTF alert (63 x 63 x 3).
RECORD_BYTES = record_bytes(STAMP_SHAPE)
#: Rows read at once when streaming metadata into the feature statistics.
_CHUNK_ROWS = 4096


def _version_key(version: str) -> tuple[int, ...]:
    """Orders schema versions numerically; "" (1.7/1.8 packets have no schemavsn) is oldest."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return ()


class _RecordedLog(RejectionLog):
    """A ``RejectionLog`` that also keeps the rejections since the last commit, to persist."""

    def __init__(self):
        super().__init__()
        self.pending: list[tuple] = []

    def add(self, source, candid, reason):
        rejection = super().add(source, candid, reason)
        self.pending.append((str(source), candid, str(reason)))
        return rejection


def labels_fingerprint(labels: LabelTable | None) -> str:
    """A digest of a label table's contents: staged labels are only reused for the same labels."""
    if labels is None:
        return "none"
    digest = hashlib.sha256()
    for item in sorted(labels.object_labels.items()):
        digest.update(repr(item).encode())
    for candid, value in sorted(labels.candid_labels.items()):
        digest.update(repr((candid, tuple(value))).encode())
    return digest.hexdigest()


class Staging:
    """Alerts of one build, decoded once, spilled to ``directory`` and indexed.

    Args:
        directory: a scratch directory (it can be as large as the decoded alerts, ~60 KB each):
            empty, or a staging directory of an interrupted build of the same sources and labels,
            whose staged files are kept (``files_resumed``) instead of being read again.

    Example:
        >>> staging = Staging(tmp)
        >>> staging.ingest("ztf/", labels=LabelTable.from_csv("ztf/labels.csv"))
        >>> staging.assign_splits((0.7, 0.15, 0.15), seed=0)
        >>> for example in staging.alert_examples("train"): ...
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.rejections = _RecordedLog()
        self.alerts_read = 0
        #: Shape and channel names of the stamps, taken from the first alert kept.
        self.geometry: StampGeometry | None = None
        #: Source files read by this ``ingest``, and files taken over from an interrupted one.
        self.files_staged = 0
        self.files_resumed = 0
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

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ----------------------------------------------------------------------------- ingestion
    def ingest(self, sources, labels: LabelTable | None = None, reader=None) -> int:
        """Reads, decodes and spills every alert of ``sources``; returns the alerts read.

        Files staged by an interrupted ingest of the same sources and labels are not read again
        (their alerts and rejections are already here); the others are staged one per commit.

        Args:
            sources: what ``reader`` reads (files, directories, globs).
            labels: labels by object/candid; where it has none, the label the alert itself
                carries (a label column of a table), else "unknown".
            reader: ``reader(sources, rejections=...) -> Iterator[Alert]``; by default
                ``readers.iter_alerts`` with the history (ZTF packets). Every alert must share
                the first one's stamp geometry: the others are rejected, saying what differs.
        """
        reader = functools.partial(iter_alerts, history=True) if reader is None else reader
        files = getattr(reader, "resolve_sources", resolve_sources)(sources)
        reading = reader.reading() if hasattr(reader, "reading") else None
        start = self._resume(files, labels_fingerprint(labels), json.dumps(reading, sort_keys=True))
        for position, path in enumerate(files[start:], start=start):
            self._ingest_file(position, path, labels, reader)
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS alerts_by_object ON alerts (object_id, jd, candid)"
        )
        self._db.commit()
        self.rejections.pending.clear()
        if labels is not None:
            self._reject_unused_labels(labels)
        return self.alerts_read

    def _ingest_file(self, position: int, path: Path, labels: LabelTable | None, reader) -> None:
        read = 0
        for alert in reader([path], rejections=self.rejections):
            read += 1
            if not self._same_geometry(alert):
                continue
            label = labels.label_for(alert.object_id, alert.candid) if labels else UNLABELLED
            if label == UNLABELLED and alert.label is not None:
                label = alert.label
            self._add(alert, label)
        # The spill bytes reach the disk before the index rows that point at them.
        self._spill.flush()
        os.fsync(self._spill.fileno())
        self._db.executemany(
            "INSERT INTO rejections (source, candid, reason) VALUES (?, ?, ?)",
            self.rejections.pending,
        )
        stat = path.stat()
        self._db.execute(
            "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)",
            (position, str(path), stat.st_size, stat.st_mtime_ns, read, self._spill.tell()),
        )
        self._db.commit()
        self.rejections.pending.clear()
        self.alerts_read += read
        self.files_staged += 1

    def _resume(self, files: list[Path], labels_digest: str, reading: str) -> int:
        """How many of ``files`` an interrupted ingest staged; a staging that does not match
        (other files, changed files, other labels, reader settings or layout) is emptied."""
        self._db.rollback()
        settings = dict(self._db.execute("SELECT key, value FROM settings"))
        wanted = {"format": STAGING_FORMAT, "labels": labels_digest, "reading": reading}
        geometry = settings.pop("geometry", None)
        done = self._db.execute(
            "SELECT path, size, mtime_ns, alerts_read, spill_end FROM files ORDER BY position"
        ).fetchall()
        current = [(str(path), *_size_and_mtime(path)) for path in files[: len(done)]]
        if settings != wanted or [row[:3] for row in done] != current:
            self._db.executescript(
                "DELETE FROM alerts; DELETE FROM files; DELETE FROM rejections; "
                "DELETE FROM settings; DROP INDEX IF EXISTS alerts_by_object;"
            )
            self._db.executemany("INSERT INTO settings VALUES (?, ?)", sorted(wanted.items()))
            self._db.commit()
            done, geometry = [], None
        self.geometry = None if geometry is None else StampGeometry.from_dict(json.loads(geometry))
        self._spill.truncate(done[-1][4] if done else 0)
        self._spill.seek(0, 2)
        with warnings.catch_warnings():  # these were reported when their files were staged
            warnings.simplefilter("ignore", RejectionWarning)
            for source, candid, reason in self._db.execute(
                "SELECT source, candid, reason FROM rejections ORDER BY sequence"
            ):
                self.rejections.add(source, candid, reason)
        self.rejections.pending.clear()
        self.alerts_read = sum(row[3] for row in done)
        self.files_resumed = len(done)
        return len(done)

    def _same_geometry(self, alert: Alert) -> bool:
        geometry = geometry_of(alert.channels, alert.stamps.shape)
        if self.geometry is None:
            self.geometry = geometry
            self._db.execute(
                "INSERT OR REPLACE INTO settings VALUES ('geometry', ?)",
                (json.dumps(geometry.to_dict()),),
            )
            return True
        found = self.geometry.differences(geometry)
        if found:
            self.rejections.add(
                alert.source,
                alert.candid,
                f"stamps differ from the dataset's (first alert first): {'; '.join(found)}",
            )
        return not found

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

    def _add(self, alert: Alert, label: str) -> None:
        row = self._db.execute(
            "SELECT schema_version, source FROM alerts WHERE candid = ?", (alert.candid,)
        ).fetchone()
        if row is not None:
            # The same alert serialised twice (ZTF's reference packets exist in several schema
            # versions): keep the newest serialisation, which carries the most fields.
            kept_version, kept_source = row
            if _version_key(alert.schema_version) <= _version_key(kept_version):
                self.rejections.add(alert.source, alert.candid, "duplicate candid")
                return
            self.rejections.add(kept_source, alert.candid, "duplicate candid")
            self._db.execute("DELETE FROM alerts WHERE candid = ?", (alert.candid,))
        if self.geometry is None:  # the first alert, added without ingest (tests)
            self._same_geometry(alert)
        stamps = np.asarray(alert.stamps, "<f4")
        mask = np.asarray(alert.stamp_mask, np.uint8)
        if stamps.shape != self.geometry.shape or mask.shape != self.geometry.shape:
            raise ValueError(
                f"{alert.source} (candid {alert.candid}): stamps {stamps.shape} and mask "
                f"{mask.shape}, expected {self.geometry.shape}"
            )
        history = np.asarray(
            np.zeros((0, len(HISTORY_FIELDS))) if alert.history is None else alert.history, "<f4"
        ).reshape(-1, len(HISTORY_FIELDS))
        kinds = history_summary(history)
        self._spill.seek(0, 2)
        offset = self._spill.tell()
        self._spill.write(stamps.tobytes() + mask.tobytes())
        self._db.execute(
            "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                alert.candid,
                alert.object_id,
                float(alert.jd),
                int(alert.fid),
                label,
                alert.schema_version,
                alert.source,
                offset,
                np.asarray(alert.metadata, "<f8").tobytes(),
                alert.split,
                history.tobytes(),
                *(int(kinds[kind] > 0) for kind in ("detection", "upper_limit", "forced")),
            ),
        )

    def _reject_unused_labels(self, labels: LabelTable) -> None:
        where = labels.path or "labels"
        for object_id in sorted(labels.object_ids()):
            if not self._exists("SELECT 1 FROM alerts WHERE object_id = ? LIMIT 1", object_id):
                self.rejections.add(f"{where}#{object_id}", None, "label for an object never seen")
        for candid in sorted(labels.candids()):
            object_id, _ = labels.candid_labels[candid]
            if self._exists("SELECT 1 FROM alerts WHERE candid = ?", candid):
                continue
            if self._exists("SELECT 1 FROM alerts WHERE object_id = ? LIMIT 1", object_id):
                self.rejections.add(f"{where}#{object_id}", candid, "label for an alert never seen")

    def _exists(self, query: str, value) -> bool:
        return self._db.execute(query, (value,)).fetchone() is not None

    # ------------------------------------------------------------------------------- splits
    def assign_splits(self, fractions: Sequence[float], seed: int) -> None:
        """Labels every object (majority of its labelled alerts) and splits objects per label.

        Splits the input gives (``Alert.split``: a split column, train/validation/test folders)
        are kept as given; only the other objects are drawn, per label, at ``fractions``. An
        object whose alerts were given different splits goes to the first of them in
        ``SPLITS`` order (train, validation, test), so it never straddles two.
        """
        fractions = check_fractions(fractions)
        self._db.executescript(_OBJECTS)  # a resumed staging assigns its splits afresh
        rows = self._db.execute(
            "SELECT object_id, label, COUNT(*) FROM alerts GROUP BY object_id, label "
            "ORDER BY object_id"
        )
        objects = []
        for object_id, group in itertools.groupby(rows, key=lambda row: row[0]):
            labels = itertools.chain.from_iterable(
                itertools.repeat(label, count) for _, label, count in group
            )
            objects.append((object_id, object_label(labels), split_key(object_id, seed)))
            if len(objects) >= _CHUNK_ROWS:
                self._insert_objects(objects)
        self._insert_objects(objects)
        self._db.execute(
            f"""UPDATE objects SET split = given.split
            FROM (SELECT object_id, CASE MIN(CASE given_split WHEN '{SPLITS[0]}' THEN 0
                    WHEN '{SPLITS[1]}' THEN 1 ELSE 2 END)
                  WHEN 0 THEN '{SPLITS[0]}' WHEN 1 THEN '{SPLITS[1]}' ELSE '{SPLITS[2]}' END
                  AS split
                  FROM alerts WHERE given_split IS NOT NULL GROUP BY object_id) AS given
            WHERE objects.object_id = given.object_id"""
        )
        # Rank the other objects within their label by hash, then cut each label at the fractions.
        sizes = [
            (label, *split_sizes(count, fractions))
            for label, count in self._db.execute(
                "SELECT label, COUNT(*) FROM objects WHERE split IS NULL GROUP BY label"
            ).fetchall()
        ]
        self._db.execute("CREATE TEMP TABLE label_sizes (label TEXT, train INT, validation INT)")
        self._db.executemany("INSERT INTO label_sizes VALUES (?, ?, ?)", [s[:3] for s in sizes])
        self._db.execute(
            f"""UPDATE objects SET split = CASE
                WHEN ranked.rank < ranked.train THEN '{SPLITS[0]}'
                WHEN ranked.rank < ranked.train + ranked.validation THEN '{SPLITS[1]}'
                ELSE '{SPLITS[2]}' END
            FROM (SELECT object_id, train, validation, ROW_NUMBER() OVER (
                    PARTITION BY objects.label ORDER BY split_key, object_id) - 1 AS rank
                  FROM objects JOIN label_sizes USING (label)
                  WHERE objects.split IS NULL) AS ranked
            WHERE objects.object_id = ranked.object_id"""
        )
        self._db.execute("CREATE INDEX objects_by_split ON objects (split, object_id)")
        self._db.commit()

    def _insert_objects(self, objects: list) -> None:
        self._db.executemany(
            "INSERT INTO objects (object_id, label, split_key) VALUES (?, ?, ?)", objects
        )
        objects.clear()

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
        while chunk := rows.fetchmany(_CHUNK_ROWS):
            accumulator.update(np.frombuffer(b"".join(row[0] for row in chunk), "<f8"))
        return accumulator

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


def _size_and_mtime(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


@contextlib.contextmanager
def staged(
    directory: str | Path, sources, labels, fractions, seed, reader=None
) -> Iterator[Staging]:
    """A ``Staging`` that has read ``sources`` (with ``reader``) and assigned splits; closed on
    exit."""
    with Staging(directory) as staging:
        staging.ingest(sources, labels, reader)
        if staging.num_alerts() == 0:
            raise ValueError(
                f"No usable alert in {sources!r}: {staging.alerts_read} alert(s) read, "
                f"{len(staging.rejections)} rejected ({staging.rejections.counts()}). Point "
                "--source at Avro files, ZTF-archive .tar.gz files or Fink parquet files, or "
                "give --preset/--mapping for your own tables, arrays or HDF5 files."
            )
        staging.assign_splits(fractions, seed)
        yield staging
