"""What the dataset card needs from a Beam build, combined on the workers and read back.

The single-process build reads its card from the ``Staging``'s SQL (``build._card``). The Beam
build combines per-object summaries (counts, labels, train metadata statistics, history kinds)
into one, which the pipeline writes as JSON; ``BeamSummary`` then answers the same questions the
card asks of a ``Staging``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stampnet.data.alert import RejectionLog
from stampnet.data.builder import CONFIGS, load_builder
from stampnet.data.card import FeatureAccumulator
from stampnet.data.labels import LabelTable
from stampnet.data.splits import SPLITS
from stampnet.data.staging import Staging
from stampnet.features import METADATA_FIELDS

SUMMARY_NAME = "beam_summary.json"


def merge_accumulators(accumulators) -> FeatureAccumulator:
    """Chan et al.'s pairwise merge, the same update ``FeatureAccumulator.update`` does."""
    merged = FeatureAccumulator(METADATA_FIELDS)
    for other in accumulators:
        merged.merge(other)
    return merged


def object_summary(object_item) -> dict:
    """What one object (split, label, alerts) adds to the card."""
    split, label, alerts = object_item
    accumulator = FeatureAccumulator(METADATA_FIELDS)
    if split == SPLITS[0]:
        accumulator.update(np.stack([alert["metadata"] for alert in alerts]))
    alert_counts: dict = {}
    for alert in alerts:
        alert_counts[(split, alert["label"])] = alert_counts.get((split, alert["label"]), 0) + 1
    kinds = np.array([alert["history_kinds"] for alert in alerts], np.int64).reshape(-1, 3)
    return {
        "alerts": alert_counts,
        "sequences": {(split, label): 1},
        "labels": {alert["label"] for alert in alerts},
        "features": accumulator,
        "num_alerts": len(alerts),
        "num_objects": 1,
        "history_kinds": kinds.sum(axis=0).tolist(),
        "history_any": int(kinds.max(axis=1, initial=0).sum()),
    }


def merge_summaries(summaries) -> dict:
    summaries = list(summaries)
    merged = {"alerts": {}, "sequences": {}, "labels": set(), "num_alerts": 0, "num_objects": 0}
    merged.update(history_kinds=[0, 0, 0], history_any=0)
    for summary in summaries:
        for config in ("alerts", "sequences"):
            for key, count in summary[config].items():
                merged[config][key] = merged[config].get(key, 0) + count
        merged["labels"] |= summary["labels"]
        for name in ("num_alerts", "num_objects", "history_any"):
            merged[name] += summary[name]
        pairs = zip(merged["history_kinds"], summary["history_kinds"], strict=True)
        merged["history_kinds"] = [a + b for a, b in pairs]
    merged["features"] = merge_accumulators(summary["features"] for summary in summaries)
    return merged


def write_summary(
    summary, path: str, alerts_read, rejections: list, seen: list, deduplicated: int, grouped: int
) -> None:
    """The combined summary as JSON at ``path`` (a file system the workers share);
    ``alerts_read``: (alerts read, alert records decoded) summed over the files; alert records
    kept after the candid grouping (``deduplicated``) and in the object lists (``grouped``)."""
    counts = {"alerts": {}, "sequences": {}}
    for config in counts:
        for (split, label), count in sorted(summary[config].items()):
            counts[config].setdefault(split, {})[label] = count
    features = summary["features"]
    payload = {
        "counts": counts,
        "labels": sorted(summary["labels"]),
        "num_alerts": summary["num_alerts"],
        "num_objects": summary["num_objects"],
        "alerts_read": alerts_read[0],
        "alerts_decoded": alerts_read[1],
        "alerts_deduplicated": deduplicated,
        "alerts_grouped": grouped,
        "history_kinds": summary["history_kinds"],
        "history_any": summary["history_any"],
        "feature_count": features.count.tolist(),
        "feature_mean": features.mean.tolist(),
        "feature_squares": features.squares.tolist(),
        # In reading order: by file, then by position in the file.
        "rejections": [item[1] for item in sorted(rejections, key=lambda item: item[0])],
        "object_ids": sorted({object_id for object_id, _ in seen}),
        "candids": sorted(candid for _, candid in seen),
    }
    Path(path).write_text(json.dumps(payload))


class BeamSummary:
    """The parts of a ``Staging`` that ``build._card`` reads, from the pipeline's summary."""

    def __init__(self, path: Path, labels: LabelTable | None, geometry):
        summary = json.loads(Path(path).read_text())
        self.geometry = geometry
        self.alerts_read = int(summary["alerts_read"])
        self.alerts_decoded = int(summary["alerts_decoded"])
        self.alerts_deduplicated = int(summary["alerts_deduplicated"])
        self.alerts_grouped = int(summary["alerts_grouped"])
        self._summary = summary
        #: {config: {split: examples made}} where the pipelines wrote them (``count_made``) and
        #: {config: [alerts read, alert records decoded, {rejection reason: count}]}
        #: (``count_read``).
        self.made, self.read = (
            {
                config: json.loads(found.read_text())
                for config in CONFIGS
                if (found := Path(path).with_name(f"{name}_{config}.json")).exists()
            }
            for name in ("made", "read")
        )
        self.rejections = RejectionLog(warn=False)
        for rejection in summary["rejections"]:
            self.rejections.add(rejection["source"], rejection["candid"], rejection["reason"])
        if labels is not None:
            self._reject_unused_labels(labels, set(summary["object_ids"]), set(summary["candids"]))

    def _reject_unused_labels(self, labels: LabelTable, objects: set, candids: set) -> None:
        # As Staging._reject_unused_labels.
        where = labels.path or "labels"
        for object_id in sorted(labels.object_ids() - objects):
            self.rejections.add(f"{where}#{object_id}", None, "label for an object never seen")
        for candid in sorted(labels.candids() - candids):
            object_id, _ = labels.candid_labels[candid]
            if object_id in objects:
                self.rejections.add(f"{where}#{object_id}", candid, "label for an alert never seen")

    def counts(self) -> dict:
        return self._summary["counts"]

    def labels(self) -> list[str]:
        return self._summary["labels"]

    def num_alerts(self) -> int:
        return self._summary["num_alerts"]

    def num_objects(self) -> int:
        return self._summary["num_objects"]

    def splits(self) -> list[str]:
        return [split for split in SPLITS if split in self._summary["counts"]["sequences"]]

    def feature_accumulator(self, split: str = "train") -> FeatureAccumulator:
        if split != SPLITS[0]:
            raise ValueError(f"The Beam build summarises the train split only, asked {split!r}")
        accumulator = FeatureAccumulator(METADATA_FIELDS)
        for name in ("count", "mean", "squares"):
            sums = np.asarray(self._summary[f"feature_{name}"], np.float64)
            if sums.shape != accumulator.count.shape:
                raise ValueError(
                    f"The Beam summary's feature_{name} has shape {sums.shape}, this stampnet "
                    f"keeps {accumulator.count.shape}: it was written by another version; "
                    "build the dataset again"
                )
            setattr(accumulator, name, sums)
        return accumulator

    def history_card(self) -> dict:
        """``Staging.history_card``, its one aggregate query answered from the summary."""
        row = (self.num_alerts(), *self._summary["history_kinds"], self._summary["history_any"])
        return Staging.history_card(_AggregateRow(row))


class _AggregateRow:
    """Stands in for a ``Staging`` whose ``_db`` answers one aggregate query with ``row``, so
    that the card's history entry (and its description) is written in one place."""

    def __init__(self, row: tuple):
        self._db = self
        self._row = row

    def execute(self, *_):
        return self

    def fetchone(self) -> tuple:
        return self._row


def check_complete(summary: BeamSummary, data_dir: Path) -> None:
    """Raises RuntimeError when the pipelines lost alerts: every alert record decoded must be
    kept or rejected as a duplicate, and each config must hold the examples the card counts.

    The DirectRunner (multi-process, Beam 2.77) lost records of the whole shared sample with no
    error until ``stampnet.data.beam_data_plane`` closed the race that dropped them; this turns
    any loss, on any runner, into an error that names where the records were last counted.
    """
    duplicates = summary.rejections.counts().get("duplicate candid", 0)
    accounted = summary.num_alerts() + duplicates
    problems = []
    if accounted != summary.alerts_decoded:
        problems.append(
            f"{summary.alerts_decoded} alert records decoded, {summary.num_alerts()} kept and "
            f"{duplicates} duplicates ({summary.alerts_deduplicated} after the candid grouping, "
            f"{summary.alerts_grouped} in the object lists)"
        )
    for config, (read, decoded, reasons) in summary.read.items():
        if (read, decoded) != (summary.alerts_read, summary.alerts_decoded):
            problems.append(
                f"the {config} pipeline read {read} alerts and decoded {decoded} (rejections: "
                f"{reasons}), the alerts pipeline {summary.alerts_read} and "
                f"{summary.alerts_decoded}"
            )
    counts = summary.counts()
    for config in CONFIGS:
        info = load_builder(data_dir, config).info
        for split, by_label in counts[config].items():
            written = info.splits[split].num_examples if split in info.splits else 0
            made = summary.made.get(config, {}).get(split, "?")
            if written != sum(by_label.values()):
                problems.append(f"{config}/{split}: {written} examples written, {made} made, "
                                f"{sum(by_label.values())} counted")  # fmt: skip
    if problems:
        raise RuntimeError(
            "The Beam runner lost data: " + "; ".join(problems) + ". Nothing was published; "
            "build again, or build without Beam (stampnet build without --beam-workers)."
        )
