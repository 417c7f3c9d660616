"""Labels of alerts or objects, read from a CSV with columns ``objectId[,candid],label``.

A label CSV may label whole objects (no ``candid`` column, or an empty candid) or single alerts
(``candid`` given); an alert-level label wins over its object's label. Alerts without any label are
``constants.UNLABELLED`` ("unknown"). Extra columns (e.g. ``strength``, ``evidence`` of
../shared/data/ztf/labels.csv) are ignored.
"""

from __future__ import annotations

import csv
from pathlib import Path

from stampnet.constants import UNLABELLED


class LabelTable:
    """Alert- and object-level labels.

    Args:
        object_labels: ``{objectId: label}`` for labels that hold for the whole object.
        candid_labels: ``{candid: (objectId, label)}`` for per-alert labels.
        path: where the labels were read from, for messages.

    Example:
        >>> labels = LabelTable.from_csv("ztf/labels.csv")
        >>> labels.label_for("ZTF18aaxjlwy", 472263571115090000)
        'unknown'
    """

    def __init__(
        self,
        object_labels: dict[str, str] | None = None,
        candid_labels: dict[int, tuple[str, str]] | None = None,
        path: str | None = None,
    ):
        self.object_labels = dict(object_labels or {})
        self.candid_labels = dict(candid_labels or {})
        self.path = path

    @classmethod
    def from_csv(cls, path: str | Path) -> LabelTable:
        """Reads a labels CSV (header ``objectId[,candid],label``, extra columns ignored).

        Raises:
            ValueError: a required column is missing, a candid is not an integer, or one object
                (or candid) is given two different labels.
        """
        path = Path(path)
        object_labels: dict[str, str] = {}
        candid_labels: dict[int, tuple[str, str]] = {}
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            missing = [name for name in ("objectId", "label") if name not in columns]
            if missing:
                raise ValueError(
                    f"labels file {path} lacks column(s) {missing}; got columns {columns}, "
                    "expected objectId[,candid],label"
                )
            for line, row in enumerate(reader, start=2):
                object_id = (row["objectId"] or "").strip()
                label = (row["label"] or "").strip() or UNLABELLED
                candid_text = (row.get("candid") or "").strip()
                if not object_id:
                    raise ValueError(f"{path}:{line}: empty objectId in row {row}")
                if candid_text:
                    try:
                        candid = int(candid_text)
                    except ValueError:
                        raise ValueError(
                            f"{path}:{line}: candid {candid_text!r} is not an integer"
                        ) from None
                    _set_once(candid_labels, candid, (object_id, label), f"{path}:{line}")
                else:
                    _set_once(object_labels, object_id, label, f"{path}:{line}")
        return cls(object_labels, candid_labels, str(path))

    def label_for(self, object_id: str, candid: int | None = None) -> str:
        """The alert's label if given, else its object's, else ``"unknown"``."""
        if candid is not None:
            entry = self.candid_labels.get(int(candid))
            if entry is not None:
                return entry[1]
        return self.object_labels.get(object_id, UNLABELLED)

    def object_ids(self) -> set[str]:
        """Every object named in the table (to report labels of objects never seen in the data)."""
        return set(self.object_labels) | {object_id for object_id, _ in self.candid_labels.values()}

    def candids(self) -> set[int]:
        """Every candid with an alert-level label."""
        return set(self.candid_labels)

    def class_names(self) -> list[str]:
        """The sorted distinct labels, ``"unknown"`` excluded."""
        labels = set(self.object_labels.values()) | {
            label for _, label in self.candid_labels.values()
        }
        return sorted(labels - {UNLABELLED})

    def __len__(self) -> int:
        return len(self.object_labels) + len(self.candid_labels)

    def __repr__(self) -> str:
        return (
            f"LabelTable({self.path!r}: {len(self.object_labels)} object labels, "
            f"{len(self.candid_labels)} alert labels)"
        )


def _set_once(table: dict, key, value, where: str) -> None:
    previous = table.get(key)
    if previous is not None and previous != value:
        raise ValueError(f"{where}: {key} labelled {value!r} but already {previous!r}")
    table[key] = value
