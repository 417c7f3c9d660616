"""The per-element steps of the Beam build (``stampnet.data.beam_build``), as plain functions.

Each mirrors one step of the single-process ``Staging`` (``stampnet.data.staging``), so that
both builds write the same examples in the same splits:

- ``decode_file``: ``Staging._ingest_file`` (labels, the stamp geometry check, the history);
- ``keep_newest``: ``Staging._add``'s duplicate rule (the newest schema version wins);
- ``object_entry`` + ``assign_label_splits`` + ``with_split``: ``Staging.assign_splits`` (given
  splits kept, the others ranked per label by ``splits.split_key`` and cut at the fractions);
- ``alert_examples``/``sequence_example``: ``Staging.alert_examples``/``sequence_examples``.

They run on Beam workers, so they take and return picklable values only.
"""

from __future__ import annotations

import numpy as np

from stampnet.constants import UNLABELLED
from stampnet.data.alert import RejectionLog
from stampnet.data.history import (
    HISTORY_FIELDS,
    MAX_ALERT_HISTORY,
    MAX_SEQUENCE_HISTORY,
    history_summary,
    merge_histories,
    pad_history,
)
from stampnet.data.splits import SPLITS, object_label, split_key, split_sizes
from stampnet.data.staging import _version_key
from stampnet.geometry import geometry_of

HISTORY_KINDS = ("detection", "upper_limit", "forced")


def decode_file(indexed_path, reader, labels, geometry):
    """(file index, path) -> ("alert", record), ("rejection", (order, dict)) and one
    ("read", (alerts read, alert records yielded)).

    ``reader`` reads the file (an ``own.AlertReader``); ``geometry`` is the dataset's
    ``StampGeometry`` (its first alert's): alerts whose stamps differ are rejected, as the
    staging rejects them.
    """
    file_index, path = indexed_path
    rejections = RejectionLog(warn=False)
    read = yielded = 0
    for position, alert in enumerate(reader([path], rejections=rejections)):
        read += 1
        found = geometry.differences(geometry_of(alert.channels, alert.stamps.shape))
        if found:
            rejections.add(
                alert.source,
                alert.candid,
                f"stamps differ from the dataset's (first alert first): {'; '.join(found)}",
            )
            continue
        label = labels.label_for(alert.object_id, alert.candid) if labels else UNLABELLED
        if label == UNLABELLED and alert.label is not None:
            label = alert.label
        history = np.asarray(
            np.zeros((0, len(HISTORY_FIELDS))) if alert.history is None else alert.history, "<f4"
        ).reshape(-1, len(HISTORY_FIELDS))
        kinds = history_summary(history)
        yielded += 1
        yield (
            "alert",
            {
                "candid": int(alert.candid),
                # Plain str: Beam encodes a str subclass (numpy.str_ from some readers)
                # differently, and the object join must see one key per object.
                "object_id": str(alert.object_id),
                "jd": float(alert.jd),
                "fid": int(alert.fid),
                "stamps": np.asarray(alert.stamps, "<f4"),
                "stamp_mask": np.asarray(alert.stamp_mask, np.uint8),
                "metadata": np.asarray(alert.metadata, "<f8"),
                "history": history,
                "history_kinds": tuple(int(kinds[kind] > 0) for kind in HISTORY_KINDS),
                "source": str(alert.source),
                "schema_version": str(alert.schema_version),
                "label": str(label),
                "given_split": None if alert.split is None else str(alert.split),
                "read_order": (file_index, position),
            },
        )
    # Every rejection (``to_list`` keeps only the first ones), ordered by where it was read.
    for sequence, rejection in enumerate(rejections):
        yield "rejection", ((file_index, 0, sequence), rejection.to_dict())
    yield "read", (read, yielded)


def keep_newest(candid_records):
    """The kept serialisation of one candid (the newest schema version, ties: the first read),
    and a ``duplicate candid`` rejection for each of the others."""
    candid, records = candid_records
    records = sorted(records, key=lambda r: r["read_order"])
    kept = records[0]
    for other in records[1:]:
        if _version_key(other["schema_version"]) > _version_key(kept["schema_version"]):
            kept = other
    for other in records:
        if other is not kept:
            rejection = {"source": other["source"], "candid": candid, "reason": "duplicate candid"}
            file_index, position = other["read_order"]
            yield "rejection", ((file_index, 1, position), rejection)
    yield "alert", kept


def object_entry(object_alerts, seed: int):
    """(object_id, alerts) -> (label, (split_key, object_id, given split or None))."""
    object_id, alerts = object_alerts
    label = object_label(alert["label"] for alert in alerts)
    given = [alert["given_split"] for alert in alerts if alert["given_split"] is not None]
    # An object given several splits goes to the first in SPLITS order, as in the staging.
    given_split = min(given, key=_split_order) if given else None
    return label, (split_key(object_id, seed), object_id, given_split)


def _split_order(split: str) -> int:
    return SPLITS.index(split) if split in SPLITS[:2] else 2


def assign_label_splits(label_objects, fractions):
    """(label, [(split_key, object_id, given)]) -> (object_id, (split, label)) per object:
    given splits kept, the others ranked by split key and cut at ``fractions``."""
    label, members = label_objects
    drawn = []
    for key, object_id, given in members:
        if given is None:
            drawn.append((key, object_id))
        else:
            yield object_id, (SPLITS[_split_order(given)], label)
    drawn.sort()
    sizes = split_sizes(len(drawn), fractions)
    for rank, (_, object_id) in enumerate(drawn):
        # As the staging's SQL: the first sizes[0] ranks train, the next sizes[1] validation.
        if rank < sizes[0]:
            split = SPLITS[0]
        elif rank < sizes[0] + sizes[1]:
            split = SPLITS[1]
        else:
            split = SPLITS[2]
        yield object_id, (split, label)


def with_split(object_alerts, splits: dict):
    """(object_id, alerts) -> (split, label, alerts sorted by jd); ``splits`` maps every object
    id to its (split, label) (``assign_label_splits``, a side input)."""
    object_id, alerts = object_alerts
    if object_id not in splits:
        raise ValueError(f"Object {object_id!r} ({len(alerts)} alerts) was assigned no split")
    split, label = splits[object_id]
    return split, label, sorted(alerts, key=lambda a: (a["jd"], a["candid"]))


def alert_examples(object_item):
    """(split, label, alerts) -> (split, (candid, example)) per alert."""
    split, _, alerts = object_item
    for alert in alerts:
        present = np.isfinite(alert["metadata"])
        history, history_mask = pad_history(alert["history"], MAX_ALERT_HISTORY)
        example = {
            "candid": alert["candid"],
            "object_id": alert["object_id"],
            "jd": alert["jd"],
            "fid": alert["fid"],
            "label": alert["label"],
            "stamps": alert["stamps"].astype(np.float32),
            "stamp_mask": alert["stamp_mask"],
            "metadata": np.where(present, alert["metadata"], 0.0).astype(np.float32),
            "metadata_present": present,
            "source": alert["source"],
            "history": history,
            "history_mask": history_mask,
        }
        yield split, (alert["candid"], example)


def sequence_example(object_item, max_detections: int):
    """(split, label, alerts) -> (split, (object_id, example)): its first alerts in time."""
    split, label, alerts = object_item
    alerts = alerts[:max_detections]
    metadata = np.stack([alert["metadata"] for alert in alerts])
    present = np.isfinite(metadata)
    merged = merge_histories([(alert["jd"], alert["history"]) for alert in alerts], alerts[0]["jd"])
    history, history_mask = pad_history(merged, MAX_SEQUENCE_HISTORY)
    object_id = alerts[0]["object_id"]
    example = {
        "object_id": object_id,
        "label": label,
        "num_alerts": len(alerts),
        "candid": np.array([alert["candid"] for alert in alerts], np.int64),
        "jd": np.array([alert["jd"] for alert in alerts], np.float64),
        "stamps": np.stack([alert["stamps"] for alert in alerts]).astype(np.float32),
        "stamp_mask": np.stack([alert["stamp_mask"] for alert in alerts]),
        "metadata": np.where(present, metadata, 0.0).astype(np.float32),
        "metadata_present": present,
        "history": history,
        "history_mask": history_mask,
    }
    return split, (object_id, example)
