"""Decode alerts once, spill them to disk, and index them, so a build's memory does not grow.

Building both dataset configs needs every alert several times (once per split, once more grouped
by object for the sequences) and needs to know every object before any split can be assigned.
Holding decoded stamps in memory would grow with the input; decoding the files once per split
would triple the slowest step. So a ``Staging`` reads the sources once, appends each decoded alert
to a spill file, and records its small fields (candid, object, jd, label, file offset, metadata) in
an on-disk SQLite index. Duplicates, object labels, splits, counts and train statistics are then
SQL queries over that index, and examples are read back one at a time by file offset.

The spill file holds raw arrays only, never pickles (its layout and the read side are in
``stampnet.data.staged_alerts``, the split assignment in ``staged_splits``). Staging is resumable:
each source file is staged in one SQLite transaction, committed (with its rejections and the spill
file's end) only once the file is read, so a build killed at any point and started again skips the
files already staged, rolls back the one being read and truncates the spill file to match.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from stampnet.constants import UNLABELLED
from stampnet.data import staged_splits
from stampnet.data.alert import Alert, RejectionLog, RejectionWarning
from stampnet.data.history import HISTORY_FIELDS, history_summary
from stampnet.data.labels import LabelTable
from stampnet.data.readers import iter_alerts, resolve_sources
from stampnet.data.staged_alerts import STAGING_FORMAT, StagedAlerts
from stampnet.geometry import StampGeometry, geometry_of


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


class Staging(StagedAlerts):
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
        super().__init__(directory)
        self.rejections = _RecordedLog()
        self.alerts_read = 0
        #: Source files read by this ``ingest``, and files taken over from an interrupted one.
        self.files_staged = 0
        self.files_resumed = 0

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
        staged_splits.assign_splits(self._db, fractions, seed)


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
