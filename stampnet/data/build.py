"""``build_dataset``: alert files in, a finished data directory (TFRecords + card) out.

The alerts are read and decoded once into a scratch ``Staging``; both TFDS configs are written from
it; the dataset card is written last. A data directory with a card is a finished dataset, one
without a card is not, and a new build clears such leftovers before starting.
"""

from __future__ import annotations

import datetime
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import stampnet
from stampnet.constants import CHANNELS, STAMP_SHAPE, UNLABELLED
from stampnet.data import card as card_lib
from stampnet.data.builder import (
    BUILDER_NAME,
    CONFIGS,
    DEFAULT_STORED_DETECTIONS,
    ZtfAlerts,
)
from stampnet.data.labels import LabelTable
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
        overwrite: replace a finished dataset in ``data_dir`` (otherwise that is an error).
        scratch_dir: where to spill decoded alerts (a temporary directory by default).

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

    with tempfile.TemporaryDirectory(prefix="stampnet-build-", dir=scratch_dir) as scratch:
        with staged(scratch, sources, label_table, fractions, seed) as staging:
            for config in CONFIGS:
                ZtfAlerts(
                    config=config,
                    data_dir=str(data_dir),
                    seed=seed,
                    max_detections=max_detections,
                    split_fractions=fractions,
                    staging=staging,
                ).download_and_prepare(download_dir=str(Path(scratch) / "downloads"))
            card = _card(staging, files, label_table, seed, max_detections, fractions, generator)
    card["build_seconds"] = round(time.perf_counter() - started, 2)
    card_lib.write_card(data_dir, card)
    return card


def _clear(data_dir: Path, overwrite: bool) -> None:
    """Removes what a previous build left; a finished one only with ``overwrite``."""
    if card_lib.card_path(data_dir).exists():
        if not overwrite:
            raise FileExistsError(
                f"{data_dir} already holds a finished dataset ({card_lib.CARD_NAME}); pass "
                "overwrite=True (`stampnet build --overwrite`) or choose another --out."
            )
        card_lib.card_path(data_dir).unlink()  # first: from now on it is not a finished dataset
    # Without a card whatever is here is unfinished (an interrupted build): start clean.
    shutil.rmtree(data_dir / BUILDER_NAME, ignore_errors=True)


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
        "stamp_shape": list(STAMP_SHAPE),
        "channels": list(CHANNELS),
        "class_names": class_names_for(staging.labels()),
        "unlabelled": UNLABELLED,
        "metadata_fields": list(METADATA_FIELDS),
        "feature_stats": staging.feature_accumulator("train").stats().to_dict(),
        "feature_stats_split": "train",
        "num_alerts_read": staging.alerts_read,
        "num_alerts": staging.num_alerts(),
        "num_objects": staging.num_objects(),
        "counts": staging.counts(),
        "history": staging.history_card(),
        "rejection_counts": rejections.counts(),
        "rejections": rejections.to_list(),
    }
