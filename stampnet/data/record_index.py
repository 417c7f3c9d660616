"""Where each serialized example of a split lies, so that a class's stream reads only that class.

Oversampling (``batching``, ``balance="oversample"``) samples one endlessly repeated stream per
class. Filtering the split's records per class reads every record of the split in every class's
stream: on the built-in data (asteroids 140 of 4,145 training alerts) that was 11 records, about
700 KB, read and label-parsed per example drawn, 78 % of the feed's CPU (``benchmarks/
feed_profile.py``). ``RecordIndex`` reads the split once, when the pipeline is made, and keeps
for every record its file, byte offset, length and label. A class's stream then walks *record
positions* in exactly the order ``SplitRecords.dataset`` yields records (the same shuffled file
instructions, the same interleave, over ranges of positions instead of files), keeps the
positions of its class, and reads only those records' bytes (``os.pread``, a batch per call).
What the read of the split finds is cached on disk (``record_index_cache``): a later pipeline
start over unchanged files reads the cache instead.

The TFRecord framing: each record is an 8-byte little-endian length, a 4-byte checksum of it, the
serialized example and a 4-byte checksum of the data. The index pass reads the files through
``TFRecordDataset``, which verifies both checksums; a read checks that the length stored before
the record is still the indexed one, so a file rewritten since the index was made is an error.
"""

from __future__ import annotations

import os
import struct

import numpy as np
import tensorflow as tf

from stampnet.data import record_index_cache
from stampnet.data.record_index_cache import HEADER_BYTES
from stampnet.data.records import SplitRecords, in_tfds_order

#: Record positions whose labels are compared at a time (a class keeps 1 in 30 on the built-in
#: data's rarest class, so a read batch is still a few dozen records).
POSITION_BATCH = 1024


def _read_file(filename: str):
    """The byte lengths (int64) and label strings (bytes) of every record of ``filename``."""
    lengths, labels = [np.zeros(0, np.int64)], [np.zeros(0, object)]
    batches = (
        tf.data.TFRecordDataset(filename)
        .batch(256)
        .map(lambda batch: (tf.strings.length(batch, unit="BYTE"), SplitRecords.labels(batch)))
    )
    for batch_lengths, batch_labels in batches.as_numpy_iterator():
        lengths.append(batch_lengths.astype(np.int64))
        labels.append(batch_labels.astype(object))
    return np.concatenate(lengths), np.concatenate(labels)


class RecordIndex:
    """File, byte offset, length and label index of every record of ``records``' files.

    ``label_index``: serialized label strings (a 1-D tf.string tensor) -> int32 indices (the
    pipeline's class lookup); the index keeps those indices.
    """

    def __init__(self, records: SplitRecords, label_index):
        self.records = records
        self.filenames = sorted({str(item.filename) for item in records.instructions})
        offsets, lengths, labels, starts = [], [], [], [0]
        for file_lengths, file_labels in record_index_cache.indexed_files(
            self.filenames, _read_file
        ):
            offsets.append(record_index_cache.record_offsets(file_lengths))
            lengths.append(file_lengths)
            labels.append(file_labels)
            starts.append(starts[-1] + len(file_lengths))
        labels = np.concatenate([np.zeros(0, object)] + labels)
        vocabulary, codes = np.unique(labels.astype(bytes), return_inverse=True)
        label_indices = np.asarray(label_index(tf.constant(vocabulary, tf.string)), np.int32)
        labels = label_indices[codes] if len(labels) else np.zeros(0, np.int32)
        self.offsets = np.concatenate(offsets)
        self.lengths = np.concatenate(lengths)
        self.file_of = np.repeat(np.arange(len(self.filenames)), np.diff(starts))
        self.labels = tf.constant(labels, tf.int32)
        self._starts = np.array(starts, np.int64)
        self._file_number = {name: number for number, name in enumerate(self.filenames)}

    def positions(self, *, shuffle: bool, seed: int) -> tf.data.Dataset:
        """Record positions (int64 scalars) in the order ``records.dataset`` yields records."""
        instructions = self.records.instructions
        file_numbers = np.array([self._file_number[str(item.filename)] for item in instructions])
        starts = tf.constant(self._starts[file_numbers])
        ends = tf.constant(self._starts[file_numbers + 1])

        def read(number, skip, take):
            return tf.data.Dataset.range(starts[number], ends[number]).skip(skip).take(take)

        numbers = np.arange(len(instructions), dtype=np.int64)
        return in_tfds_order(instructions, numbers, read, shuffle=shuffle, seed=seed)

    def selected(
        self, positions: tf.data.Dataset, keep, read_batch: int | None = None
    ) -> tf.data.Dataset:
        """Batches ``(serialized, labels)`` (1-D) of the records at ``positions`` (``positions``'
        dataset) whose label index passes ``keep`` (a vectorised predicate); only those records
        are read. A batch holds the kept records of ``POSITION_BATCH`` positions, or at most
        ``read_batch`` records (large records: a batch is held in memory whole).

        Streams made from one ``positions`` dataset share its file shuffle, as streams made from
        one ``records.dataset`` do: tf.data draws each epoch's file order from that shuffle's
        one seed generator, whichever stream starts the epoch, so the orders depend on that.
        """

        def select(positions):
            return tf.boolean_mask(positions, keep(tf.gather(self.labels, positions)))

        def read(positions):
            serialized = tf.py_function(self._read_records, [positions], tf.string)
            serialized.set_shape([None])
            return serialized, tf.gather(self.labels, positions)

        kept = positions.batch(POSITION_BATCH).map(select)
        if read_batch is not None:
            kept = kept.unbatch().batch(int(read_batch))
        return kept.filter(lambda positions: tf.size(positions) > 0).map(read)

    def _read_records(self, positions) -> tf.Tensor:
        """The serialized examples at ``positions`` (eager int64 tensor), read with ``pread``."""
        records = []
        descriptors = {}
        try:
            for position in positions.numpy():
                number = int(self.file_of[position])
                if number not in descriptors:
                    descriptors[number] = os.open(self.filenames[number], os.O_RDONLY)
                offset, length = int(self.offsets[position]), int(self.lengths[position])
                framed = os.pread(descriptors[number], HEADER_BYTES + length, offset)
                if len(framed) != HEADER_BYTES + length or (
                    struct.unpack("<Q", framed[:8])[0] != length
                ):
                    raise ValueError(
                        f"{self.filenames[number]}: the record at byte {offset} is not the "
                        f"{length}-byte record indexed when the pipeline was made (was the "
                        "dataset rebuilt while it was read?); make the pipeline again"
                    )
                records.append(framed[HEADER_BYTES:])
        finally:
            for descriptor in descriptors.values():
                os.close(descriptor)
        return tf.constant(records, tf.string)
