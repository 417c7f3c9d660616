"""``build_dataset``: alert files in, a finished data directory (TFRecords + card) out.

The alerts are read and decoded once into a scratch ``Staging``; both TFDS configs are written from
it; the dataset card is written last. Everything is written beside ``data_dir`` and swapped in when
finished (``stampnet.data.output``): a data directory with a card is a finished dataset, a killed
build resumes its staging, and a failed one leaves an earlier dataset untouched.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Sequence
from pathlib import Path

import stampnet
from stampnet.constants import UNLABELLED
from stampnet.data import card as card_lib
from stampnet.data import output
from stampnet.data.alert import REJECTIONS_FILE
from stampnet.data.builder import (
    BUILDER_NAME,
    CONFIGS,
    DEFAULT_STORED_DETECTIONS,
    ZtfAlerts,
)
from stampnet.data.example_format import STORAGE
from stampnet.data.labels import LabelTable
from stampnet.data.own import AlertReader
from stampnet.data.readers import resolve_sources
from stampnet.data.splits import DEFAULT_SPLIT_FRACTIONS, check_fractions, class_names_for
from stampnet.data.staging import Staging, staged
from stampnet.features import METADATA_FIELDS


def build_dataset(
    sources,
    data_dir: str | Path,
    *,
    labels: str | Path | LabelTable | None = None,
    seed: int = 0,
    max_detections: int = DEFAULT_STORED_DETECTIONS,
    split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    generator: str | None = None,
    overwrite: bool = False,
    scratch_dir: str | Path | None = None,
    reader=None,
) -> dict:
    """Builds the ``alerts`` and ``sequences`` configs of ``ztf_alerts`` and the dataset card.

    Args:
        sources: alert files, directories or globs (Avro, ZTF-archive .tar.gz, Fink parquet).
        data_dir: the data directory, e.g. ``tfrecords/ztf_sample``.
        labels: a labels CSV (``objectId[,candid],label``), a ``LabelTable``, or None.
        seed: seed of the per-object split.
        max_detections: alerts stored per object in ``sequences`` (pipelines may use fewer).
        split_fractions: (train, validation, test) fractions of the objects of every label.
        generator: what produced the alerts when not real data (the simulator's version).
        overwrite: replace a finished dataset in ``data_dir`` (otherwise that is an error); the
            earlier dataset stays in place until the new one is complete.
        scratch_dir: where to spill decoded alerts (by default ``.<data_dir name>.staging`` beside
            ``data_dir``); kept after a failure, so that the next build resumes it.
        reader: ``reader(sources, rejections=...) -> Iterator[Alert]``; by default
            ``stampnet.data.own.AlertReader()``, which reads ZTF packets and a user's own
            arrays, tables and HDF5 files (give it a mapping, a preset, ``allow_pickle`` or
            ``derive_snr``). The stamp geometry (size, channel names) is the data's and is
            recorded in the card, with ``reader.reading()`` as ``reading``.

    Returns:
        The dataset card, as written to ``<data_dir>/dataset_card.json``.
    """
    started = time.perf_counter()
    request = BuildRequest.check(sources, labels, max_detections, split_fractions, reader)
    fractions = request.fractions
    with output.building(
        data_dir, request.files, overwrite=overwrite, scratch_dir=scratch_dir
    ) as paths:
        with staged(
            paths.staging, sources, request.labels, fractions, seed, request.reader
        ) as staging:
            for config in CONFIGS:
                ZtfAlerts(
                    config=config,
                    data_dir=str(paths.partial),
                    seed=seed,
                    max_detections=max_detections,
                    split_fractions=fractions,
                    staging=staging,
                ).download_and_prepare(download_dir=str(paths.staging / "downloads"))
            card = request.card(staging, paths, seed, max_detections, generator)
            card["staging"] = output.staging_summary(staging)
        card["build_seconds"] = round(time.perf_counter() - started, 2)
        card_lib.write_card(paths.partial, card)
    staging.rejections.warn_summary(f"building {data_dir}", saved=Path(data_dir) / REJECTIONS_FILE)
    return card


@dataclasses.dataclass(frozen=True)
class BuildRequest:
    """A build's checked arguments, shared by the plain build and the Beam build
    (``stampnet.data.beam_build``): one place that checks them and writes the card."""

    sources: object
    files: list[Path]
    labels: LabelTable | None
    fractions: tuple[float, float, float]
    reader: object

    @classmethod
    def check(cls, sources, labels, max_detections, split_fractions, reader) -> BuildRequest:
        """Checks the arguments, finds the files; raises ValueError saying what is wrong."""
        fractions = check_fractions(split_fractions)
        if int(max_detections) < 1:
            raise ValueError(f"max_detections must be >= 1, received {max_detections}")
        reader = AlertReader() if reader is None else reader
        if isinstance(reader, AlertReader) and not reader.history:
            reader = dataclasses.replace(reader, history=True)  # datasets store the light curves
        files = getattr(reader, "resolve_sources", resolve_sources)(sources)
        if not files:
            raise ValueError(f"No alert files found in {sources!r}: nothing to build.")
        label_table = LabelTable.from_csv(labels) if isinstance(labels, str | Path) else labels
        return cls(sources, files, label_table, fractions, reader)

    def card(self, staging, paths, seed, max_detections, generator) -> dict:
        """The dataset card of ``staging`` (a ``Staging``, or what stands in for one); saves
        every rejection beside it in ``paths.partial``."""
        card = _card(
            staging, self.files, self.labels, seed, max_detections, self.fractions, generator
        )
        card["reading"] = self.reader.reading() if hasattr(self.reader, "reading") else None
        staging.rejections.save(paths.partial / REJECTIONS_FILE)
        return card


def _card(
    staging: Staging,
    files: list[Path],
    labels: LabelTable | None,
    seed: int,
    max_detections: int,
    fractions: tuple[float, float, float],
    generator: str | None,
) -> dict:
    rejections = staging.rejections
    return {
        "name": BUILDER_NAME,
        "configs": list(CONFIGS),
        "version": str(ZtfAlerts.VERSION),
        "stampnet_version": stampnet.__version__,
        "generator": generator,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "sources": card_lib.source_entries(files),
        "labels": None
        if labels is None or labels.path is None
        else {"path": labels.path, "sha256": card_lib.file_sha256(labels.path)},
        "seed": int(seed),
        "split_fractions": list(fractions),
        "max_detections": int(max_detections),
        **staging.geometry.to_dict(),  # stamp_shape, channels: the data's
        "storage": dict(STORAGE),
        "class_names": class_names_for(staging.labels()),
        "unlabelled": UNLABELLED,
        "metadata_fields": list(METADATA_FIELDS),
        **staging.feature_accumulator("train").card_entries(),
        "feature_stats_split": "train",
        "num_alerts_read": staging.alerts_read,
        "num_alerts": staging.num_alerts(),
        "num_objects": staging.num_objects(),
        "counts": staging.counts(),
        "history": staging.history_card(),
        "rejection_counts": rejections.counts(),
        "num_rejections": len(rejections),
        # The first rejections only: all of them are in the file beside the card.
        "rejections": rejections.to_list(),
        "rejections_file": REJECTIONS_FILE,
    }
