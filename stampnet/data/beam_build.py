"""Distributed dataset builds: the ``ztf_alerts`` builder as an Apache Beam pipeline.

``build_dataset_beam`` writes the same examples, in the same splits, with the same dataset card
as ``stampnet.data.build.build_dataset``, but decodes the alert files in parallel on Beam workers
instead of in one process: locally with the DirectRunner in multi-process mode
(``--direct_num_workers=N --direct_running_mode=multi_processing``), or on any Beam runner
(Dataflow, Flink, Spark) through its pipeline options. Needs the ``beam`` extra
(``pip install -e ".[cpu,beam]"``).

The single-process build's SQLite staging becomes Beam shuffles:

1. every file is decoded by one worker (``iter_alerts``), each alert tagged with its read position;
2. alerts are grouped by candid, and the newest schema version kept (ties: the first read, as the
   staging does); the others are rejected as ``duplicate candid``;
3. alerts are grouped by object: the object's label (``splits.object_label``) and split key;
4. objects are grouped by label, ranked by split key and cut at the fractions
   (``splits.split_sizes``/``split_of_rank``): the same per-object splits as the staging's SQL;
5. examples are made per alert (``alerts``) or per object (``sequences``) and written by TFDS'
   Beam writer, which shuffles through the runner (on disk, out of core) rather than in memory.

Both configs are separate TFDS pipelines, so the files are decoded twice (the plain build decodes
them once); the dataset card is computed by the ``alerts`` pipeline.
"""

from __future__ import annotations

import json
import tempfile
import time
import typing
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from stampnet.constants import UNLABELLED
from stampnet.data import card as card_lib
from stampnet.data.alert import RejectionLog
from stampnet.data.build import _card, _clear
from stampnet.data.builder import DEFAULT_STORED_DETECTIONS, ZtfAlerts
from stampnet.data.card import FeatureAccumulator
from stampnet.data.labels import LabelTable
from stampnet.data.readers import iter_alerts, resolve_sources
from stampnet.data.splits import (
    DEFAULT_SPLIT_FRACTIONS,
    SPLITS,
    check_fractions,
    object_label,
    split_key,
    split_of_rank,
    split_sizes,
)
from stampnet.data.staging import _version_key
from stampnet.features import METADATA_FIELDS

SUMMARY_NAME = "beam_summary.json"


def pipeline_options(num_workers: int = 2, extra: list[str] | tuple[str, ...] = ()):
    """Beam options: the DirectRunner with ``num_workers`` processes, unless ``extra`` (Beam
    command-line options, e.g. ``--runner=FlinkRunner --flink_master=host:8081``) says else."""
    from apache_beam.options.pipeline_options import PipelineOptions

    extra = list(extra)
    if not any(option.startswith("--runner") for option in extra):
        extra = [
            "--runner=DirectRunner",
            f"--direct_num_workers={int(num_workers)}",
            "--direct_running_mode=multi_processing",
            *extra,
        ]
    return PipelineOptions(extra)


# ----------------------------------------------------------------------- per-element functions
def decode_file(indexed_path, labels: LabelTable | None):
    """(file index, path) -> ("alert", record) and ("rejection", dict) items."""
    file_index, path = indexed_path
    rejections = RejectionLog(warn=False)
    for position, alert in enumerate(iter_alerts(path, rejections=rejections)):
        label = labels.label_for(alert.object_id, alert.candid) if labels else UNLABELLED
        record = {
            "candid": int(alert.candid),
            # Plain str: Beam encodes a str subclass (numpy.str_ from some readers) differently,
            # and the object join below must see one key per object.
            "object_id": str(alert.object_id),
            "jd": float(alert.jd),
            "fid": int(alert.fid),
            "stamps": np.asarray(alert.stamps, np.float32),
            "stamp_mask": np.asarray(alert.stamp_mask, bool),
            "metadata": np.asarray(alert.metadata, np.float64),
            "source": alert.source,
            "schema_version": alert.schema_version,
            "label": label,
            "read_order": (file_index, position),
        }
        yield "alert", record
    for rejection in rejections.to_list():
        yield "rejection", rejection


def keep_newest(candid_records):
    """The kept serialisation of one candid, and the rejections of the others."""
    candid, records = candid_records
    records = sorted(records, key=lambda r: (-_rank(r["schema_version"]), r["read_order"]))
    yield "alert", records[0]
    for other in records[1:]:
        rejection = {"source": other["source"], "candid": candid, "reason": "duplicate candid"}
        yield "rejection", rejection


def _rank(version: str) -> float:
    # _version_key gives tuples; sort descending by turning them into one comparable number.
    return sum(part * 1000.0 ** (-index) for index, part in enumerate(_version_key(version)))


def object_entry(object_alerts, seed: int):
    """(object_id, alerts) -> (label, (split_key, object_id))."""
    object_id, alerts = object_alerts
    label = object_label(alert["label"] for alert in alerts)
    return label, (split_key(object_id, seed), object_id)


def assign_label_splits(label_objects, fractions):
    """(label, [(split_key, object_id)]) -> (object_id, (split, label)) for each object."""
    label, members = label_objects
    members = sorted(members)
    sizes = split_sizes(len(members), fractions)
    for rank, (_, object_id) in enumerate(members):
        yield object_id, (split_of_rank(rank, sizes), label)


def join_object(joined):
    """(object_id, {"alerts": [alerts], "split": [(split, label)]}) -> (split, label, alerts)."""
    object_id, groups = joined
    if len(groups["split"]) != 1 or len(groups["alerts"]) != 1:
        raise ValueError(
            f"Object {object_id!r}: {len(groups['alerts'])} alert groups and "
            f"{len(groups['split'])} split assignments, expected one of each"
        )
    ((split, label),) = groups["split"]
    (alerts,) = groups["alerts"]
    return split, label, sorted(alerts, key=lambda a: (a["jd"], a["candid"]))


def alert_examples(object_item):
    split, _, alerts = object_item
    for alert in alerts:
        present = np.isfinite(alert["metadata"])
        yield (
            split,
            (
                alert["candid"],
                {
                    "candid": alert["candid"],
                    "object_id": alert["object_id"],
                    "jd": alert["jd"],
                    "fid": alert["fid"],
                    "label": alert["label"],
                    "stamps": alert["stamps"],
                    "stamp_mask": alert["stamp_mask"].astype(np.uint8),
                    "metadata": np.where(present, alert["metadata"], 0.0).astype(np.float32),
                    "metadata_present": present,
                    "source": alert["source"],
                },
            ),
        )


def sequence_example(object_item, max_detections: int):
    split, label, alerts = object_item
    alerts = alerts[:max_detections]
    metadata = np.stack([alert["metadata"] for alert in alerts])
    present = np.isfinite(metadata)
    object_id = alerts[0]["object_id"]
    return (
        split,
        (
            object_id,
            {
                "object_id": object_id,
                "label": label,
                "num_alerts": len(alerts),
                "candid": np.array([alert["candid"] for alert in alerts], np.int64),
                "jd": np.array([alert["jd"] for alert in alerts], np.float64),
                "stamps": np.stack([alert["stamps"] for alert in alerts]),
                "stamp_mask": np.stack([alert["stamp_mask"] for alert in alerts]).astype(np.uint8),
                "metadata": np.where(present, metadata, 0.0).astype(np.float32),
                "metadata_present": present,
            },
        ),
    )


# ------------------------------------------------------------------------------ the summary
def _merge_accumulators(accumulators) -> FeatureAccumulator:
    """Chan et al.'s pairwise merge, the same update ``FeatureAccumulator.update`` does."""
    merged = FeatureAccumulator(METADATA_FIELDS)
    for other in accumulators:
        total = merged.count + other.count
        delta = other.mean - merged.mean
        weight = np.divide(other.count, total, out=np.zeros_like(total), where=total > 0)
        merged.mean = merged.mean + delta * weight
        merged.squares = merged.squares + other.squares + delta**2 * merged.count * weight
        merged.count = total
    return merged


def _object_summary(object_item) -> dict:
    """What one object adds to the card: counts, train metadata statistics."""
    split, label, alerts = object_item
    accumulator = FeatureAccumulator(METADATA_FIELDS)
    if split == SPLITS[0]:
        accumulator.update(np.stack([alert["metadata"] for alert in alerts]))
    alert_counts: dict = {}
    for alert in alerts:
        alert_counts[(split, alert["label"])] = alert_counts.get((split, alert["label"]), 0) + 1
    return {
        "alerts": alert_counts,
        "sequences": {(split, label): 1},
        "labels": {alert["label"] for alert in alerts},
        "features": accumulator,
        "num_alerts": len(alerts),
        "num_objects": 1,
    }


def _merge_summaries(summaries) -> dict:
    summaries = list(summaries)
    merged = {"alerts": {}, "sequences": {}, "labels": set(), "num_alerts": 0, "num_objects": 0}
    for summary in summaries:
        for config in ("alerts", "sequences"):
            for key, count in summary[config].items():
                merged[config][key] = merged[config].get(key, 0) + count
        merged["labels"] |= summary["labels"]
        merged["num_alerts"] += summary["num_alerts"]
        merged["num_objects"] += summary["num_objects"]
    merged["features"] = _merge_accumulators(summary["features"] for summary in summaries)
    return merged


def _write_summary(summary, path: str, alerts_read: int, rejections: list, seen: list):
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
        "alerts_read": alerts_read,
        "feature_count": features.count.tolist(),
        "feature_mean": features.mean.tolist(),
        "feature_squares": features.squares.tolist(),
        "rejections": sorted(rejections, key=lambda r: (r["source"], r["candid"] or 0)),
        "object_ids": sorted({object_id for object_id, _ in seen}),
        "candids": sorted(candid for _, candid in seen),
    }
    Path(path).write_text(json.dumps(payload))


# -------------------------------------------------------------------------------- the builder
with tfds.core.registered.skip_registration():

    class BeamZtfAlerts(ZtfAlerts):
        """``ZtfAlerts`` whose examples come from a Beam pipeline (same name, configs, features).

        Args:
            files: the alert files (``readers.resolve_sources``), in the plain build's order.
            summary_path: where the ``alerts`` config writes its card summary (JSON).
            Other arguments as ``ZtfAlerts``.
        """

        name = "ztf_alerts"

        def __init__(self, *, files=(), summary_path=None, **kwargs):
            self._files = [str(path) for path in files]
            self._summary_path = summary_path
            super().__init__(**kwargs)

        def download_and_prepare(self, *args, **kwargs):
            # The plain builder stages the sources first; here the pipeline reads them.
            return tfds.core.GeneratorBasedBuilder.download_and_prepare(self, *args, **kwargs)

        def _split_generators(self, dl_manager, pipeline):
            import apache_beam as beam

            del dl_manager
            objects = self._objects(pipeline, beam)
            if self.builder_config.name == "alerts":
                examples = objects | "AlertExamples" >> beam.FlatMap(alert_examples)
            else:
                examples = objects | "SequenceExamples" >> beam.Map(
                    sequence_example, max_detections=self._max_detections
                )
            return {
                split: examples
                | f"Select{split}" >> beam.Filter(lambda item, s=split: item[0] == s)
                | f"Drop{split}" >> beam.Map(lambda item: item[1])
                for split in SPLITS
            }

        def _objects(self, pipeline, beam):
            """(split, label, alerts sorted by jd) of every object."""
            decoded = (
                pipeline
                | "Files" >> beam.Create(list(enumerate(self._files)))
                | "Reshuffle" >> beam.Reshuffle()  # one file per worker, not all on one
                | "Decode" >> beam.FlatMap(decode_file, labels=self._labels)
            )
            alerts = (
                decoded
                | "Alerts" >> beam.Filter(lambda item: item[0] == "alert")
                | "ByCandid" >> beam.Map(lambda item: (item[1]["candid"], item[1]))
                | "GroupCandid" >> beam.GroupByKey()
                | "Newest" >> beam.FlatMap(keep_newest)
            )
            kept = (
                alerts
                | "Kept" >> beam.Filter(lambda item: item[0] == "alert")
                | "ByObject" >> beam.Map(lambda item: (item[1]["object_id"], item[1]))
                | "GroupObject" >> beam.GroupByKey()
                | "AlertLists" >> beam.MapTuple(lambda object_id, group: (object_id, list(group)))
            )
            splits = (
                kept
                | "ObjectLabel" >> beam.Map(object_entry, seed=self._seed)
                | "GroupLabel" >> beam.GroupByKey()
                | "Split" >> beam.FlatMap(assign_label_splits, fractions=self._split_fractions)
            )
            # One key coder on both sides of the join: Beam picks a coder per PCollection from
            # type hints, and the same object id encoded two ways would be two keys.
            keyed = {
                name: collection
                | f"Key{name}"
                >> beam.Map(lambda item: (str(item[0]), item[1])).with_output_types(
                    tuple[str, typing.Any]
                )
                for name, collection in (("alerts", kept), ("split", splits))
            }
            objects = keyed | "Join" >> beam.CoGroupByKey()
            objects = objects | "ObjectItems" >> beam.Map(join_object)
            if self.builder_config.name == "alerts" and self._summary_path:
                self._summarise(beam, decoded, alerts, objects)
            return objects

        def _summarise(self, beam, decoded, alerts, objects):
            rejections = [
                decoded | "DecodeRejections" >> beam.Filter(lambda item: item[0] == "rejection"),
                alerts | "DuplicateRejections" >> beam.Filter(lambda item: item[0] == "rejection"),
            ]
            rejections = (
                rejections
                | "Rejections" >> beam.Flatten()
                | "RejectionDicts" >> beam.Map(lambda item: item[1])
            )
            alerts_read = (
                decoded
                | "Read" >> beam.Filter(lambda item: item[0] == "alert")
                | "CountRead" >> beam.combiners.Count.Globally()
            )
            seen = objects | "Seen" >> beam.FlatMap(
                lambda item: [(alert["object_id"], alert["candid"]) for alert in item[2]]
            )
            (
                objects
                | "ObjectSummary" >> beam.Map(_object_summary)
                | "Summary" >> beam.CombineGlobally(_merge_summaries)
                | "WriteSummary"
                >> beam.Map(
                    _write_summary,
                    path=str(self._summary_path),
                    alerts_read=beam.pvalue.AsSingleton(alerts_read),
                    rejections=beam.pvalue.AsList(rejections),
                    seen=beam.pvalue.AsList(seen),
                )
            )


class _Summary:
    """The parts of a ``Staging`` that ``build._card`` reads, from the pipeline's summary."""

    def __init__(self, summary: dict, labels: LabelTable | None):
        self.alerts_read = int(summary["alerts_read"])
        self._summary = summary
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

    def feature_accumulator(self, split: str = "train") -> FeatureAccumulator:
        if split != SPLITS[0]:
            raise ValueError(f"The Beam build summarises the train split only, asked {split!r}")
        accumulator = FeatureAccumulator(METADATA_FIELDS)
        accumulator.count = np.asarray(self._summary["feature_count"], np.float64)
        accumulator.mean = np.asarray(self._summary["feature_mean"], np.float64)
        accumulator.squares = np.asarray(self._summary["feature_squares"], np.float64)
        return accumulator


def build_dataset_beam(
    sources,
    data_dir: str | Path,
    *,
    labels: str | Path | LabelTable | None = None,
    seed: int = 0,
    max_detections: int = DEFAULT_STORED_DETECTIONS,
    split_fractions=DEFAULT_SPLIT_FRACTIONS,
    generator: str | None = None,
    overwrite: bool = False,
    num_workers: int = 2,
    beam_args=(),
) -> dict:
    """``build_dataset`` as Beam pipelines; same arguments, plus:

    Args:
        num_workers: DirectRunner processes (ignored when ``beam_args`` names a runner).
        beam_args: Beam pipeline options, e.g. ``["--runner=DataflowRunner", "--project=P",
            "--region=R", "--temp_location=gs://B/tmp"]``; ``data_dir`` must then be a path
            the runner's workers can write (``gs://...`` for Dataflow).

    Returns:
        The dataset card, as written to ``<data_dir>/dataset_card.json``.
    """
    started = time.perf_counter()
    data_dir = Path(data_dir)
    fractions = check_fractions(split_fractions)
    if int(max_detections) < 1:
        raise ValueError(f"max_detections must be >= 1, received {max_detections}")
    files = resolve_sources(sources)
    if not files:
        raise ValueError(f"No alert files found in {sources!r}: nothing to build.")
    label_table = LabelTable.from_csv(labels) if isinstance(labels, str | Path) else labels
    _clear(data_dir, overwrite)
    data_dir.mkdir(parents=True, exist_ok=True)
    options = pipeline_options(num_workers, beam_args)
    with tempfile.TemporaryDirectory(prefix="stampnet-beam-") as scratch:
        summary_path = Path(scratch) / SUMMARY_NAME
        for config in ("alerts", "sequences"):
            BeamZtfAlerts(
                config=config,
                data_dir=str(data_dir),
                files=files,
                labels=label_table,
                seed=seed,
                max_detections=max_detections,
                split_fractions=fractions,
                summary_path=summary_path,
            ).download_and_prepare(
                download_dir=str(Path(scratch) / "downloads"),
                download_config=tfds.download.DownloadConfig(beam_options=options),
            )
        summary = _Summary(json.loads(summary_path.read_text()), label_table)
    if summary.num_alerts() == 0:
        raise ValueError(f"No usable alert in {sources!r} ({summary.rejections.counts()})")
    card = _card(summary, files, label_table, seed, max_detections, fractions, generator)
    card["build_seconds"] = round(time.perf_counter() - started, 2)
    card["build_runner"] = {"beam": True, "options": options.get_all_options(drop_default=True)}
    card_lib.write_card(data_dir, card)
    return card
