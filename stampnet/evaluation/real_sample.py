"""The labelled real sample as arrays: what models trained elsewhere are measured against.

``load_real_sample(ztf_dir)`` reads the alerts of ``../shared/data/ztf`` that ``labels.csv`` puts in
one of the classes asked for (the five ALeRCE classes by default), through the same reader as every
other part of stampnet, and keeps them in memory (674 alerts, about 100 MB of stamps and masks).
Only the files that hold a labelled alert are opened; an alert stored in several files (the
``schema_versions/`` copies) is kept once.

The labels are heuristic catalogue cross-matches, not ground truth (see the sample's README): the
``strength`` and ``evidence`` columns travel with every alert so that results can be split by them.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stampnet.constants import ALERCE_CLASSES
from stampnet.features import METADATA_FIELDS, metadata_indices


@dataclasses.dataclass
class RealSample:
    """Labelled real alerts, one row per alert.

    Args:
        stamps: (N, 63, 63, 3) float32 raw stamps (invalid pixels 0).
        stamp_mask: (N, 63, 63, 3) float32, 1 = valid pixel.
        metadata: (N, len(METADATA_FIELDS)) float64, NaN = missing.
        labels: (N,) int64 indices into ``class_names``.
        class_names: the classes kept, in label-index order.
        object_ids, candids, strengths, evidence, sources: per alert (reader and labels.csv).
    """

    stamps: np.ndarray
    stamp_mask: np.ndarray
    metadata: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    object_ids: np.ndarray
    candids: np.ndarray
    strengths: np.ndarray
    evidence: np.ndarray
    sources: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.size)

    def inputs(self, feature_names: Sequence[str] = (), index=None) -> dict[str, np.ndarray]:
        """Raw model inputs (``stamps``, ``stamp_mask``[, ``features``]) of all or some alerts."""
        index = slice(None) if index is None else index
        inputs = {"stamps": self.stamps[index], "stamp_mask": self.stamp_mask[index]}
        if feature_names:
            columns = metadata_indices(tuple(feature_names))
            inputs["features"] = self.metadata[index][:, columns].astype(np.float32)
        return inputs

    def subset(self, index) -> RealSample:
        """The alerts selected by a boolean mask or an index array."""
        fields = {
            field.name: getattr(self, field.name)[index]
            for field in dataclasses.fields(self)
            if field.name != "class_names"
        }
        return RealSample(class_names=self.class_names, **fields)

    def missing_features(self, feature_names: Sequence[str]) -> np.ndarray:
        """(N,) number of the given features that each alert lacks (NaN in its packet)."""
        if not feature_names:
            return np.zeros(len(self), np.int64)
        columns = metadata_indices(tuple(feature_names))
        return np.isnan(self.metadata[:, columns]).sum(axis=1)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(count) for name, count in zip(self.class_names, counts, strict=True)}


def read_label_rows(labels_csv: str | Path, class_names: Sequence[str]) -> dict[int, dict]:
    """``{candid: row}`` of the rows of ``labels_csv`` whose label is in ``class_names``."""
    labels_csv = Path(labels_csv)
    rows = {}
    with open(labels_csv, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"objectId", "candid", "label"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(
                f"{labels_csv} lacks column(s) {sorted(missing)}: expected the per-alert labels "
                "of ../shared/data/ztf (objectId, candid, label[, strength, evidence, file])"
            )
        for line, row in enumerate(reader, start=2):
            if row["label"] not in class_names:
                continue
            try:
                rows[int(row["candid"])] = row
            except ValueError:
                raise ValueError(
                    f"{labels_csv}:{line}: candid {row['candid']!r} is not an integer"
                ) from None
    return rows


def load_real_sample(
    ztf_dir: str | Path,
    *,
    labels_csv: str | Path | None = None,
    class_names: Sequence[str] = ALERCE_CLASSES,
    candids: Sequence[int] | None = None,
) -> RealSample:
    """Reads the labelled alerts of a real sample folder.

    Args:
        ztf_dir: the sample folder (``../shared/data/ztf``): alert files and ``labels.csv``.
        labels_csv: labels (default ``ztf_dir/labels.csv``); rows need objectId, candid, label;
            a ``file`` column (path relative to ``ztf_dir``, several joined with ``;``) limits
            reading to the files that hold the alerts.
        class_names: labels to keep, in label-index order (other labels are left out).
        candids: only these alerts (e.g. a few for a test); default every labelled alert.

    Raises:
        ValueError: no labelled alert was found, or a labelled alert is missing from its files.
    """
    from stampnet.data.alert import RejectionLog
    from stampnet.data.readers import iter_alerts

    ztf_dir = Path(ztf_dir)
    labels_csv = Path(labels_csv) if labels_csv else ztf_dir / "labels.csv"
    class_names = tuple(class_names)
    rows = read_label_rows(labels_csv, class_names)
    if candids is not None:
        wanted = {int(candid) for candid in candids}
        rows = {candid: row for candid, row in rows.items() if candid in wanted}
    if not rows:
        raise ValueError(f"{labels_csv} labels no alert as one of {class_names}")
    files = {
        ztf_dir / name
        for row in rows.values()
        for name in (row.get("file") or "").split(";")
        if name
    }
    sources = sorted(files) if files and all(row.get("file") for row in rows.values()) else ztf_dir
    kept = {}
    for alert in iter_alerts(sources, rejections=RejectionLog(warn=False)):
        if alert.candid in rows and alert.candid not in kept:
            kept[alert.candid] = alert
    missing = sorted(set(rows) - set(kept))
    if missing:
        raise ValueError(
            f"{len(missing)} labelled alerts of {labels_csv} were not read from {ztf_dir} "
            f"(first: candid {missing[0]}, file {rows[missing[0]].get('file')!r})"
        )
    alerts = [kept[candid] for candid in sorted(kept)]
    label_rows = [rows[alert.candid] for alert in alerts]
    return RealSample(
        stamps=np.stack([alert.stamps for alert in alerts]).astype(np.float32),
        stamp_mask=np.stack([alert.stamp_mask for alert in alerts]).astype(np.float32),
        metadata=np.stack([alert.metadata for alert in alerts]).astype(np.float64),
        labels=np.array([class_names.index(row["label"]) for row in label_rows], np.int64),
        class_names=class_names,
        object_ids=np.array([alert.object_id for alert in alerts]),
        candids=np.array([alert.candid for alert in alerts], np.int64),
        strengths=np.array([row.get("strength", "") for row in label_rows]),
        evidence=np.array([row.get("evidence", "") for row in label_rows]),
        sources=np.array([alert.source for alert in alerts]),
    )


def metadata_column(sample: RealSample, name: str) -> np.ndarray:
    """One raw metadata field of every alert (NaN where missing)."""
    return sample.metadata[:, METADATA_FIELDS.index(name)]
