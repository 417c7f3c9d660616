"""Decode alerts once, spill them to disk, and index them, so a build's memory does not grow.

Building both dataset configs needs every alert several times (once per split, once more grouped
by object for the sequences) and needs to know every object before any split can be assigned.
Holding decoded stamps in memory would grow with the input; decoding the files once per split
would triple the slowest step. So a ``Staging`` reads the sources once, appends each decoded alert
to a spill file, and records its small fields (candid, object, jd, label, file offset, metadata) in
an on-disk SQLite index. Duplicates, object labels, splits, counts and train statistics are then
SQL queries over that index, and examples are read back one at a time by file offset.
"""

from __future__ import annotations

import contextlib
import itertools
import pickle
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from stampnet.constants import UNLABELLED
from stampnet.data.alert import Alert, RejectionLog
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
from stampnet.data.readers import iter_alerts
from stampnet.data.splits import SPLITS, check_fractions, object_label, split_key, split_sizes
from stampnet.features import METADATA_FIELDS

_SCHEMA = """
CREATE TABLE alerts (
    candid INTEGER PRIMARY KEY, object_id TEXT NOT NULL, jd REAL NOT NULL, label TEXT NOT NULL,
    schema_version TEXT NOT NULL, source TEXT NOT NULL, offset INTEGER NOT NULL,
    length INTEGER NOT NULL, metadata BLOB NOT NULL);
CREATE TABLE objects (
    object_id TEXT PRIMARY KEY, label TEXT NOT NULL, split_key INTEGER NOT NULL, split TEXT);
"""
#: Rows read at once when streaming metadata into the feature statistics.
_CHUNK_ROWS = 4096


def _version_key(version: str) -> tuple[int, ...]:
    """Orders schema versions numerically; "" (1.7/1.8 packets have no schemavsn) is oldest."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return ()


class Staging:
    """Alerts of one build, decoded once, spilled to ``directory`` and indexed.

    Args:
        directory: an empty scratch directory (a temporary one; it can be as large as the
            decoded alerts, ~60 KB each).

    Example:
        >>> staging = Staging(tmp)
        >>> staging.ingest("ztf/", labels=LabelTable.from_csv("ztf/labels.csv"))
        >>> staging.assign_splits((0.7, 0.15, 0.15), seed=0)
        >>> for example in staging.alert_examples("train"): ...
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.rejections = RejectionLog()
        self.alerts_read = 0
        #: Alerts read with at least one row of history before them, per kind of row.
        self.history_counts = {"alerts_with_history": 0, "detection": 0, "upper_limit": 0,
                               "forced": 0}  # fmt: skip
        self._spill_path = self.directory / "alerts.spill"
        self._spill = open(self._spill_path, "w+b")  # noqa: SIM115 (closed in close())
        self._db = sqlite3.connect(self.directory / "index.sqlite", check_same_thread=False)
        # Scratch data: durability only costs time here.
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._spill.close()
        self._db.close()

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ----------------------------------------------------------------------------- ingestion
    def ingest(self, sources, labels: LabelTable | None = None) -> int:
        """Reads, decodes and spills every alert of ``sources``; returns the alerts read."""
        for alert in iter_alerts(sources, rejections=self.rejections, history=True):
            self.alerts_read += 1
            self._count_history(alert.history)
            label = labels.label_for(alert.object_id, alert.candid) if labels else UNLABELLED
            self._add(alert, label)
        self._db.execute("CREATE INDEX alerts_by_object ON alerts (object_id, jd, candid)")
        self._db.commit()
        if labels is not None:
            self._reject_unused_labels(labels)
        return self.alerts_read

    def _count_history(self, history) -> None:
        kinds = history_summary(np.zeros((0, len(HISTORY_FIELDS))) if history is None else history)
        self.history_counts["alerts_with_history"] += int(sum(kinds.values()) > 0)
        for kind, count in kinds.items():
            self.history_counts[kind] += int(count > 0)

    def history_card(self) -> dict:
        """The dataset card's description of the stored light-curve history."""
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
            # Counted over every alert read (duplicates and later rejections included).
            "alerts_read": self.alerts_read,
            "alerts_with_history_of_kind": {
                kind: self.history_counts[kind] for kind in ("detection", "upper_limit", "forced")
            },
            "alerts_with_history": self.history_counts["alerts_with_history"],
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
        record = pickle.dumps(
            (
                alert.candid,
                alert.object_id,
                float(alert.jd),
                int(alert.fid),
                np.asarray(alert.stamps, np.float32),
                np.asarray(alert.stamp_mask, bool),
                np.asarray(alert.metadata, np.float64),
                alert.source,
                np.zeros((0, len(HISTORY_FIELDS)), np.float32)
                if alert.history is None
                else np.asarray(alert.history, np.float32),
            ),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        self._spill.seek(0, 2)
        offset = self._spill.tell()
        self._spill.write(record)
        self._db.execute(
            "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                alert.candid,
                alert.object_id,
                float(alert.jd),
                label,
                alert.schema_version,
                alert.source,
                offset,
                len(record),
                np.asarray(alert.metadata, np.float64).tobytes(),
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
        """Labels every object (majority of its labelled alerts) and splits objects per label."""
        fractions = check_fractions(fractions)
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
        # Rank objects within their label by hash, then cut each label at the fractions.
        sizes = [
            (label, *split_sizes(count, fractions))
            for label, count in self._db.execute(
                "SELECT label, COUNT(*) FROM objects GROUP BY label"
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
                  FROM objects JOIN label_sizes USING (label)) AS ranked
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
            accumulator.update(np.frombuffer(b"".join(row[0] for row in chunk), np.float64))
        return accumulator

    # --------------------------------------------------------------------- examples, one by one
    def _read(self, offset: int, length: int) -> tuple:
        self._spill.seek(offset)
        return pickle.loads(self._spill.read(length))

    def alert_examples(self, split: str) -> Iterator[tuple[int, dict]]:
        """(key, example) of every alert of ``split``, in spill-file order."""
        rows = self._db.execute(
            "SELECT a.label, a.offset, a.length FROM alerts a JOIN objects o USING (object_id) "
            "WHERE o.split = ? ORDER BY a.offset",
            (split,),
        )
        for label, offset, length in rows:
            candid, object_id, jd, fid, stamps, mask, metadata, source, history = self._read(
                offset, length
            )
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
                    "stamp_mask": mask.astype(np.uint8),
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
                "SELECT offset, length FROM alerts WHERE object_id = ? ORDER BY jd, candid LIMIT ?",
                (object_id, max_detections),
            ).fetchall()
            records = [self._read(offset, length) for offset, length in rows]
            metadata = np.stack([record[6] for record in records])
            present = np.isfinite(metadata)
            merged = merge_histories([(record[2], record[8]) for record in records], records[0][2])
            history, history_mask = pad_history(merged, MAX_SEQUENCE_HISTORY)
            yield (
                object_id,
                {
                    "object_id": object_id,
                    "label": label,
                    "num_alerts": len(records),
                    "candid": np.array([record[0] for record in records], np.int64),
                    "jd": np.array([record[2] for record in records], np.float64),
                    "stamps": np.stack([record[4] for record in records]),
                    "stamp_mask": np.stack([record[5] for record in records]).astype(np.uint8),
                    "metadata": np.where(present, metadata, 0.0).astype(np.float32),
                    "metadata_present": present,
                    "history": history,
                    "history_mask": history_mask,
                },
            )


@contextlib.contextmanager
def staged(directory: str | Path, sources, labels, fractions, seed) -> Iterator[Staging]:
    """A ``Staging`` that has read ``sources`` and assigned splits; closed on exit."""
    with Staging(directory) as staging:
        staging.ingest(sources, labels)
        if staging.num_alerts() == 0:
            raise ValueError(
                f"No usable alert in {sources!r}: {staging.alerts_read} alert(s) read, "
                f"{len(staging.rejections)} rejected ({staging.rejections.counts()}). Point "
                "--source at Avro files, ZTF-archive .tar.gz files or Fink parquet files."
            )
        staging.assign_splits(fractions, seed)
        yield staging
