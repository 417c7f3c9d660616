"""Classify alert files with a saved stampnet classifier: ``stampnet classify``.

``stampnet classify --model MODEL.keras --source ALERTS... --out predictions.csv`` streams alerts
from any mix of Avro files, ZTF tarballs and Fink parquet, and a user's own arrays, tables and
HDF5 files (``stampnet.data.own``, with ``--preset``/``--mapping`` as for ``stampnet build``), in
batches, through the model, and writes one CSV row per alert:
``candid, objectId, p_<class>..., predicted_class, model_name, model_version, source, rejected``.
An alert that cannot be read is not dropped silently: it gets a row with empty probabilities and
the reason in ``rejected`` (empty for classified alerts). Rows of a user's own data may lack
metadata: a model with a feature branch still classifies them (missing features are normalised
to the training mean, 0), and the last column, ``missing_features``, says how many of the model's
features the row lacked (empty for images-only models), so such rows are never silently mixed
with complete ones. Memory stays flat: one batch in flight.

The model carries everything needed (the preprocessing layers, the feature names and statistics
in ``FeatureNormalization``, the class names and version in its ``probabilities`` layer; read by
``stampnet.classifier``), so any model from ``train.py`` or ``stampnet import-alerce`` works as is.

Speed: the command runs TensorFlow with oneDNN's kernels (``TF_ENABLE_ONEDNN_OPTS=1``, set by
``stampnet.cli`` before TensorFlow is imported; an explicit setting wins), about twice as fast on
CPUs where TensorFlow leaves them off (AVX2 without AVX-512 VNNI/AMX). From Python, set it before
importing TensorFlow. ``benchmarks/classify.py`` measures the whole path.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import queue
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from stampnet.classifier import Classifier, load_classifier

DEFAULT_BATCH_SIZE = 256
#: Batches decoded ahead of the model by the reader thread (bounds memory).
PREFETCH_BATCHES = 2
#: Rejections held before their rows are written without waiting for the next batch.
MAX_PENDING_REJECTIONS = 1024


def _batches(sources, batch_size: int, rejections, reader=None, history=False) -> Iterator[list]:
    from stampnet.data.own import AlertReader

    reader = AlertReader() if reader is None else reader
    if history and hasattr(reader, "history"):
        reader = dataclasses.replace(reader, history=True)
    batch = []
    for alert in reader(sources, rejections=rejections):
        batch.append(alert)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _prefetch(batches: Iterable, depth: int) -> Iterator:
    """Runs ``batches`` in a reader thread, ``depth`` items ahead: decoding (Python, under the
    GIL) overlaps the model (TensorFlow kernels release the GIL). If the consumer stops early
    (an error in the model, a closed generator) the reader thread is told to stop too."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()
    failure = []

    def offer(item) -> bool:
        """Puts ``item`` unless the consumer has stopped; False once it has."""
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in batches:
                if not offer(item):
                    return
        except BaseException as error:  # re-raised in the consumer thread
            failure.append(error)
        offer(done)

    thread = threading.Thread(target=produce, name="stampnet-classify-reader", daemon=True)
    thread.start()
    try:
        while (item := items.get()) is not done:
            yield item
    finally:
        stop.set()
        thread.join()
    if failure:
        raise failure[0]


def distances_read_as_listed(classifier) -> dict[int, float]:
    """Positions, in the model's features, of match distances it reads as listed even beyond
    ZTF's search radius (ALeRCE's clipping, or ``missing`` saved before such values read as
    missing), each with its radius; empty for a model that reads them as missing."""
    from stampnet.compat import feature_statistics
    from stampnet.features import MATCH_RADIUS

    stats = feature_statistics(classifier.model)
    if stats is None or stats.missing_above:
        return {}
    return {
        index: MATCH_RADIUS[name]
        for index, name in enumerate(classifier.feature_names)
        if name in MATCH_RADIUS
    }


def classify(
    model,
    sources,
    out_csv: str | Path,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    prefetch: int = PREFETCH_BATCHES,
    reader=None,
    history: bool | None = None,
) -> dict:
    """Classifies every alert of ``sources`` and writes one CSV row per alert to ``out_csv``.

    Args:
        model: a ``.keras`` path, a Keras model, or a ``Classifier``.
        sources: alert files, directories or globs (``stampnet.data.readers.iter_alerts``).
        out_csv: output file; rejected alerts get rows with empty probabilities and the reason
            in the ``rejected`` column.
        batch_size: alerts per model call.
        prefetch: batches decoded ahead in a reader thread (0 reads in the calling thread).
        reader: what reads ``sources`` (``stampnet.data.own.AlertReader``, which reads packets
            and a user's own arrays, tables and HDF5 files, by default).
        history: decode each alert's light-curve history; None: only for a model with the
            light-curve branch (True forces it, e.g. to measure its cost).

    Returns:
        A summary: ``classified``, ``rejected``, ``rejections`` (counts per reason), ``seconds``,
        ``alerts_per_second``, ``model_name``, ``model_version`` and ``read_beyond_radius``:
        alerts listing a catalogue match beyond ZTF's search radius that the model read as a
        distance (``distances_read_as_listed``; a warning says so).
    """
    from stampnet.data.alert import RejectionLog

    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, received {batch_size}")
    classifier = model if isinstance(model, Classifier) else load_classifier(model)
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    header = ["candid", "objectId", *(f"p_{name}" for name in classifier.class_names)]
    header += ["predicted_class", "model_name", "model_version", "source", "rejected"]
    header += ["missing_features"]
    empty = [""] * (len(classifier.class_names) + 1)
    identity = [classifier.name, classifier.version]
    radii = distances_read_as_listed(classifier)
    radius_columns, radius_limits = list(radii), np.array(list(radii.values()), np.float32)
    start, classified, read_beyond = time.perf_counter(), 0, 0
    with open(out_csv, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        # The reader (thread) hands each rejection over under a lock; rows of rejections are
        # written after the rows of each batch, so that every counted rejection is a row and the
        # order does not depend on timing. A long run of bad input without a batch is written by
        # the reader itself once MAX_PENDING_REJECTIONS wait: memory stays bounded.
        lock = threading.Lock()
        pending = []

        def write_pending() -> None:  # with the lock held
            for rejection in pending:
                candid = "" if rejection.candid is None else rejection.candid
                writer.writerow(
                    [candid, "", *empty, *identity, rejection.source, rejection.reason, ""]
                )
            pending.clear()

        def write_rejection(rejection) -> None:
            with lock:
                pending.append(rejection)
                if len(pending) >= MAX_PENDING_REJECTIONS:
                    write_pending()

        rejections = RejectionLog(warn=False, on_reject=write_rejection)
        history = classifier.uses_history if history is None else bool(history)
        batches = _batches(sources, batch_size, rejections, reader, history)
        if prefetch:
            batches = _prefetch(batches, prefetch)
        try:
            for batch in batches:
                inputs = classifier.inputs(batch)
                probabilities = classifier.predict(inputs)
                predicted = np.argmax(probabilities, axis=1)
                missing = (
                    np.isnan(inputs["features"]).sum(axis=1)
                    if "features" in inputs
                    else [""] * len(batch)
                )
                if radius_columns:
                    distances = inputs["features"][:, radius_columns]
                    read_beyond += int((distances > radius_limits).any(axis=1).sum())
                with lock:
                    for alert, row, label, lacking in zip(
                        batch, probabilities, predicted, missing, strict=True
                    ):
                        writer.writerow(
                            [alert.candid, alert.object_id, *(f"{p:.9g}" for p in row)]
                            + [classifier.class_names[label], *identity, alert.source, "", lacking]
                        )
                    write_pending()
                classified += len(batch)
        finally:
            batches.close()  # stops and joins the reader thread before the file closes
        write_pending()
    seconds = time.perf_counter() - start
    if read_beyond:
        warnings.warn(
            f"{read_beyond} alerts list a catalogue match beyond ZTF's search radius (e.g. "
            f'distpsnr1 = 120" in alerts of 2023-10-18); {classifier.name} reads those values as '
            "distances (ALeRCE's clipping, or a model saved before stampnet read them as "
            "missing), so their features lie far outside its training range",
            stacklevel=2,
        )
    return {
        "classified": classified,
        "rejected": len(rejections),
        "rejections": rejections.counts(),
        "seconds": seconds,
        "alerts_per_second": classified / seconds if seconds > 0 else float("nan"),
        "model_name": classifier.name,
        "model_version": classifier.version,
        "read_beyond_radius": read_beyond,
        "out": str(out_csv),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a .keras model (train.py, import-alerce)")
    parser.add_argument(
        "--source", required=True, nargs="+", help="alert files, directories or globs"
    )
    parser.add_argument("--out", required=True, help="CSV to write, one row per alert")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    from stampnet.data.command import add_reading_arguments

    add_reading_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from stampnet.data.command import reader_from_args

    try:
        summary = classify(
            args.model,
            args.source,
            args.out,
            batch_size=args.batch_size,
            reader=reader_from_args(args),
        )
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"stampnet classify: {error}") from error
    print(
        f"{summary['classified']} alerts classified with {summary['model_name']} "
        f"({summary['model_version']}) in {summary['seconds']:.1f} s "
        f"({summary['alerts_per_second']:.0f} alerts/s) -> {summary['out']}"
    )
    if summary["rejected"]:
        print(
            f"{summary['rejected']} alerts rejected (rows with a 'rejected' reason): "
            f"{summary['rejections']}",
            file=sys.stderr,
        )
    return 0
