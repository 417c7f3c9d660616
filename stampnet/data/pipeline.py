"""tf.data pipelines from a built data directory to batched model inputs.

The pipelines hand models *raw* inputs (stamps in counts with a float validity mask, metadata
unnormalised with NaN where missing): preprocessing lives inside the models
(``stampnet.layers.preprocessing``), so training, evaluation and serving read the same thing.
Memory does not depend on the dataset size: examples stream from the TFRecords, and only the
shuffle buffer (a fixed number of examples) and a few prefetched batches are ever held.

Labels, class balancing (ALeRCE's oversampling or per-example weights), shuffling and batching
are ``stampnet.data.batching``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from stampnet.data.batching import labelled_batches
from stampnet.data.builder import load_builder
from stampnet.data.card import load_card
from stampnet.data.records import SplitRecords
from stampnet.features import DETECTION_FIELDS, metadata_indices, resolve_feature_names
from stampnet.geometry import StampGeometry

#: Examples held by the shuffle buffer (ZTF alerts ~60 KB each; sequences hold up to T alerts).
ALERT_SHUFFLE_BUFFER = 1024
SEQUENCE_SHUFFLE_BUFFER = 128


def _check_history(data_dir, config: str) -> None:
    if "history" not in load_builder(data_dir, config).info.features:
        raise ValueError(
            f"{data_dir} ({config}) has no light-curve history (built before stampnet stored "
            "it): rebuild it with `stampnet build --overwrite`, or use a model without the "
            "light-curve branch"
        )


def _light_curve(history, history_mask, days_offset=None):
    """The stored history as model inputs: rows (L, K) raw, mask (L,) float32.

    ``days_offset`` (a scalar) is subtracted from ``days`` (sequences: so that the last alert
    used is at 0). Padded rows are zero.
    """
    mask = tf.cast(history_mask, tf.float32)
    if days_offset is not None:
        history = tf.concat([history[:, :1] - days_offset, history[:, 1:]], axis=-1)
    return tf.where(mask[:, None] > 0, history, 0.0), mask


def _raw_metadata(example) -> tf.Tensor:
    return tf.where(
        example["metadata_present"],
        example["metadata"],
        tf.constant(np.nan, tf.float32),
    )


def alert_dataset(
    data_dir: str | Path,
    split: str,
    *,
    batch_size: int,
    feature_names="alerce23",
    class_names: Sequence[str] | None = None,
    labelled_only: bool = True,
    balance: str | None = None,
    shuffle: bool = True,
    seed: int = 0,
    repeat: bool = False,
    drop_remainder: bool = False,
    with_ids: bool = False,
    shuffle_buffer: int = ALERT_SHUFFLE_BUFFER,
    with_history: bool = False,
) -> tf.data.Dataset:
    """Batches of single alerts: ``(inputs, label)`` or ``(inputs, label, sample_weight)``.

    ``inputs`` = {"stamps": (B,H,W,C) float32 raw, "stamp_mask": (B,H,W,C) float32 (1 valid),
    "features": (B,F) float32 raw with NaN = missing} (+ "candid", "object_id" with ``with_ids``);
    ``label`` is an int32 index into ``class_names`` (the card's by default), -1 for unlabelled
    examples, which are dropped when ``labelled_only``. ``balance="oversample"`` repeats forever
    (set ``steps_per_epoch``). ``split`` accepts TFDS slicing, e.g. "train[:10%]". (H, W, C) is
    the card's ``stamp_shape`` (ZTF: 63, 63, 3).
    ``with_history`` adds "light_curve" (B,L,K) raw rows of ``history.HISTORY_FIELDS`` (the
    alert's light curve up to and including itself, days relative to it) and
    "light_curve_mask" (B,L) float32 (1 = a real row), zero-padded.
    """
    card = load_card(data_dir)
    stamp_shape = StampGeometry.from_card(card).shape
    class_names = list(card["class_names"] if class_names is None else class_names)
    feature_index = tf.constant(metadata_indices(resolve_feature_names(feature_names)), tf.int32)

    def to_inputs(example):
        inputs = {
            "stamps": tf.ensure_shape(example["stamps"], stamp_shape),
            "stamp_mask": tf.ensure_shape(tf.cast(example["stamp_mask"], tf.float32), stamp_shape),
            "features": tf.gather(_raw_metadata(example), feature_index, axis=-1),
        }
        if with_history:
            inputs["light_curve"], inputs["light_curve_mask"] = _light_curve(
                example["history"], example["history_mask"]
            )
        if with_ids:
            inputs["candid"] = example["candid"]
            inputs["object_id"] = example["object_id"]
        return inputs

    if with_history:
        _check_history(data_dir, "alerts")
    records = SplitRecords(data_dir, "alerts", split)
    # Only what ``to_inputs`` reads is parsed (not the label, source, jd, fid, and the history
    # unless asked for), a batch of records at a time.
    keys = ["stamps", "stamp_mask", "metadata", "metadata_present"]
    keys += ["history", "history_mask"] if with_history else []
    keys += ["candid", "object_id"] if with_ids else []
    return labelled_batches(
        records,
        records.decode,
        to_inputs,
        decode_batch=lambda batch: records.decode_batch(batch, keys),
        card=card,
        config="alerts",
        split=split,
        class_names=class_names,
        labelled_only=labelled_only,
        balance=balance,
        shuffle=shuffle,
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        repeat=repeat,
        batch_size=batch_size,
        drop_remainder=drop_remainder,
    )


def sequence_dataset(
    data_dir: str | Path,
    split: str,
    *,
    batch_size: int,
    max_detections: int = 5,
    feature_names="alerce23",
    class_names: Sequence[str] | None = None,
    labelled_only: bool = True,
    balance: str | None = None,
    shuffle: bool = True,
    seed: int = 0,
    repeat: bool = False,
    drop_remainder: bool = False,
    with_ids: bool = False,
    shuffle_buffer: int = SEQUENCE_SHUFFLE_BUFFER,
    with_history: bool = False,
) -> tf.data.Dataset:
    """Batches of objects: each its first ``max_detections`` alerts in time order, zero-padded.

    ``inputs`` = {"stamps": (B,T,H,W,C), "stamp_mask": (B,T,H,W,C) float32 (the card's geometry),
    "detection_mask": (B,T) float32 (1 = a real detection), "detection_features": (B,T,K) float32
    raw (``features.DETECTION_FIELDS`` then days since the first detection; NaN = missing in a
    real detection, 0 in padding), "features": (B,F) raw static features of the first alert}, with
    T = ``max_detections`` (+ "candid" (B,T) and "object_id" with ``with_ids``). Labels, balancing
    and the other arguments as ``alert_dataset``. ``with_history`` adds "light_curve" (B,L,K)
    and "light_curve_mask" (B,L): the object's merged light curve up to its last alert used
    (later rows are masked out), days relative to that alert.
    """
    card = load_card(data_dir)
    if not 1 <= int(max_detections) <= int(card["max_detections"]):
        raise ValueError(
            f"max_detections must be in [1, {card['max_detections']}] (the number stored in "
            f"{data_dir}), received {max_detections}"
        )
    steps = int(max_detections)
    stamp_shape = StampGeometry.from_card(card).shape
    class_names = list(card["class_names"] if class_names is None else class_names)
    feature_index = tf.constant(metadata_indices(resolve_feature_names(feature_names)), tf.int32)
    detection_index = tf.constant(metadata_indices(DETECTION_FIELDS), tf.int32)

    def to_inputs(example):
        # ``example``: the first ``steps`` alerts, zero-padded, and how many are real.
        count = example["num_rows"]
        real = tf.range(steps) < count
        raw = _raw_metadata(example)
        jd = example["jd"]
        days = tf.cast(jd - jd[0], tf.float32)[:, None]
        detection = tf.concat([tf.gather(raw, detection_index, axis=-1), days], axis=-1)
        inputs = {
            "stamps": tf.ensure_shape(example["stamps"], [steps, *stamp_shape]),
            "stamp_mask": tf.ensure_shape(
                tf.cast(example["stamp_mask"], tf.float32), [steps, *stamp_shape]
            ),
            "detection_mask": tf.cast(real, tf.float32),
            "detection_features": tf.where(real[:, None], detection, 0.0),
            "features": tf.gather(raw[0], feature_index),
        }
        if with_history:
            # Only what was known at the last alert used: later rows would leak the future.
            last = tf.cast(jd[count - 1] - jd[0], tf.float32)
            known = example["history_mask"] & (example["history"][:, 0] <= last + 1e-4)
            inputs["light_curve"], inputs["light_curve_mask"] = _light_curve(
                example["history"], known, last
            )
        if with_ids:
            inputs["candid"] = example["candid"]
            inputs["object_id"] = example["object_id"]
        return inputs

    if with_history:
        _check_history(data_dir, "sequences")
    records = SplitRecords(data_dir, "sequences", split)
    # Only what ``to_inputs`` reads, and only the first ``steps`` alerts of each object, are
    # decoded, zero-padded to ``steps`` alerts (``sequence_records``): the shuffle buffer holds
    # ``steps`` alerts per object. One record at a time: a batched parse has to be split again,
    # copying every decoded alert (~60 KB), which cost more than it saved (built-in data: 0.46 to
    # 0.63 CPU ms per object in batches of 16 to 64, against 0.31 alone).
    keys = ["jd", "stamps", "stamp_mask", "metadata", "metadata_present"]
    keys += ["history", "history_mask"] if with_history else []
    keys += ["candid", "object_id"] if with_ids else []
    return labelled_batches(
        records,
        lambda record: records.decode_first(record, keys, steps),
        to_inputs,
        card=card,
        config="sequences",
        split=split,
        class_names=class_names,
        labelled_only=labelled_only,
        balance=balance,
        shuffle=shuffle,
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        repeat=repeat,
        batch_size=batch_size,
        drop_remainder=drop_remainder,
    )
