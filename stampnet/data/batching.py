"""Labels, class balancing, shuffling and batching of a stream of decoded examples (the last
stage of ``stampnet.data.pipeline``'s datasets).

Class balancing follows ALeRCE's stamp classifier (Carrasco-Davis et al. 2021), which trains on
batches with the same number of examples of every class: ``balance="oversample"`` reads one
endlessly repeated stream per class and samples them uniformly; ``balance="weights"`` instead adds
a per-example weight ``N / (K n_class)`` from the split's counts in the dataset card.

Examples are labelled and filtered while still serialized (``records.SplitRecords.labels`` parses
the label alone, or the record index holds it) and decoded only once kept: a class's stream
decodes that class's examples, not the whole split, and ``labelled_only`` decodes no unlabelled
example. The examples and their order are those of filtering the decoded split, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from stampnet.data.record_index import RecordIndex
from stampnet.data.records import SplitRecords

BALANCE_MODES = (None, "oversample", "weights")
#: Serialized examples whose labels are parsed together (``records.SplitRecords.labels``).
LABEL_BATCH = 64
#: Records read at a time by a class's stream that decodes one record at a time (large records).
READ_BATCH = 8


def _label_lookup(class_names: Sequence[str]) -> tf.lookup.StaticHashTable:
    """Label string -> index into ``class_names``; anything else (``unknown``, ...) -> -1."""
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(class_names), tf.string),
            tf.range(len(class_names), dtype=tf.int32),
        ),
        default_value=-1,
    )


def _class_counts(card: dict, config: str, split: str, class_names: Sequence[str]) -> np.ndarray:
    base_split = split.split("[")[0]  # "train[:50%]" is counted as "train"
    per_label = card["counts"][config].get(base_split, {})
    return np.array([per_label.get(name, 0) for name in class_names], np.float64)


def labelled_batches(
    records: SplitRecords,
    decode,
    to_inputs,
    *,
    card: dict,
    config: str,
    split: str,
    class_names: Sequence[str],
    labelled_only: bool,
    balance: str | None,
    shuffle: bool,
    shuffle_buffer: int,
    seed: int,
    repeat: bool,
    batch_size: int,
    drop_remainder: bool,
    decode_batch=None,
) -> tf.data.Dataset:
    """Labels, filtering, decoding, balancing, shuffling, parsing into inputs, batching, prefetch.

    ``records``: the split's serialized examples; ``decode``: one of them -> the example dict
    ``to_inputs`` takes (``records.decode``, or fewer features and alerts). ``decode_batch``: a
    1-D batch of them -> those dicts stacked, used instead (one parse per batch, of the
    features ``to_inputs`` reads; ``records.decode_batch``). Under oversampling a class's
    stream reads only that class's records (``record_index.RecordIndex``), a few at a time when
    they are decoded one by one (large records, such as sequences of alerts).
    """
    if balance not in BALANCE_MODES:
        raise ValueError(f"balance must be one of {BALANCE_MODES}, received {balance!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, received {batch_size}")
    if not class_names and (labelled_only or balance):
        raise ValueError(f"{split!r} of this dataset has no class names to label examples with")
    lookup = _label_lookup(class_names)
    # Labels are parsed a batch of serialized examples at a time (per example, parsing and
    # filtering cost more than reading the example); the batches are split again in order.
    labelled = (
        records.dataset(shuffle=shuffle, seed=seed)
        .batch(LABEL_BATCH)
        .map(
            lambda batch: (batch, lookup.lookup(records.labels(batch))),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    )

    def decoded(keep=None) -> tf.data.Dataset:
        """The examples whose label index passes ``keep`` (all: None), decoded; the others never
        are."""

        def select(batch, labels):
            mask = keep(labels)
            return tf.boolean_mask(batch, mask), tf.boolean_mask(labels, mask)

        kept = labelled if keep is None else labelled.map(select)
        if decode_batch is not None:
            return kept.map(
                lambda batch, labels: (decode_batch(batch), labels),
                num_parallel_calls=tf.data.AUTOTUNE,
            ).unbatch()
        return kept.unbatch().map(
            lambda record, label: (decode(record), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    def class_stream(number: int) -> tf.data.Dataset:
        """The examples of class ``number``, decoded, in the split's order."""

        def keep(labels):
            return tf.equal(labels, number)

        if decode_batch is None:
            selected = located.selected(positions, keep, read_batch=READ_BATCH)
            return selected.unbatch().map(
                lambda record, label: (decode(record), label),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        return (
            located.selected(positions, keep)
            .map(
                lambda batch, labels: (decode_batch(batch), labels),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
            .unbatch()
        )

    counts = _class_counts(card, config, split, class_names)
    if balance == "oversample":
        present = [index for index, count in enumerate(counts) if count > 0]
        if not present:
            raise ValueError(f"No labelled example of {list(class_names)} in split {split!r}")
        buffer = max(shuffle_buffer // len(present), 1)
        located = RecordIndex(records, lookup.lookup)  # from its cache when the files are unchanged
        # One dataset for every class, as one split's records were: they share its file shuffle.
        positions = located.positions(shuffle=shuffle, seed=seed)
        streams = []
        for index in present:
            stream = class_stream(index)
            if shuffle:
                stream = stream.shuffle(buffer, seed=seed + index)
            streams.append(stream.repeat())
        dataset = tf.data.Dataset.sample_from_datasets(
            streams, weights=[1.0 / len(present)] * len(present), seed=seed
        )
    else:
        dataset = decoded((lambda labels: labels >= 0) if labelled_only else None)
        if shuffle:
            dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            dataset = dataset.repeat()

    dataset = dataset.map(
        lambda example, label: (to_inputs(example), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if balance == "weights":
        seen = counts > 0
        weights = np.zeros(len(class_names), np.float32)
        weights[seen] = counts.sum() / (seen.sum() * counts[seen])
        table = tf.constant(weights)
        dataset = dataset.map(
            lambda inputs, label: (
                inputs,
                label,
                tf.where(label >= 0, tf.gather(table, tf.maximum(label, 0)), 0.0),
            )
        )
    dataset = dataset.batch(int(batch_size), drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)
