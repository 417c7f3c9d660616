"""A split's serialized examples, read like TFDS, so that examples can be chosen before decoding.

``builder.as_dataset`` parses and decodes every example of a split (stamps, masks, metadata,
light curve: ~60 KB per ZTF alert) before anything downstream can drop it. Class balancing
filters one stream per class out of the whole split, so on a split where a class is rare almost
all of that work was thrown away (``balance="oversample"`` on the shared ZTF sample, AGN 21 of
496 training alerts: the feed alone gave 162 examples/s against 1,530 unbalanced).

``SplitRecords`` reads the same TFRecord files in the same order as ``as_dataset`` (the split's
TFDS file instructions, the files shuffled with the same seed, TFDS' default interleave of 16
files in blocks of 16), but yields the serialized examples. ``labels`` parses only the label
feature of a batch of them, ``decode`` one whole example exactly as ``as_dataset(decoders=...)``
would. So a pipeline filters on the label first and decodes only what it keeps, with the same
examples in the same order as before (``tests/test_pipeline.py`` checks both).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_datasets.core import example_parser

from stampnet.data import sequence_records
from stampnet.data.builder import load_builder, raw_bytes_decoders

#: ``tfds.ReadConfig``'s defaults, which ``as_dataset`` uses when it is not told otherwise.
INTERLEAVE_CYCLE_LENGTH = 16
INTERLEAVE_BLOCK_LENGTH = 16

_LABEL_SPEC = {"label": tf.io.FixedLenFeature([], tf.string)}


def in_tfds_order(instructions, keys, read, *, shuffle: bool, seed: int) -> tf.data.Dataset:
    """``read(key, skip, take)`` of every file instruction, interleaved in ``as_dataset``'s order.

    ``keys`` name each instruction's file (a filename, or a file number); ``shuffle`` shuffles the
    instructions with ``seed`` as TFDS does. ``SplitRecords.dataset`` reads records this way and
    ``record_index.RecordIndex.positions`` record positions, so both walk the same order.
    """
    files = tf.data.Dataset.from_tensor_slices(
        (
            keys,
            np.array([item.skip for item in instructions], np.int64),
            np.array([item.take for item in instructions], np.int64),
        )
    )
    if shuffle:
        files = files.shuffle(len(instructions), seed=seed)
    return files.interleave(
        read,
        cycle_length=INTERLEAVE_CYCLE_LENGTH,
        block_length=INTERLEAVE_BLOCK_LENGTH,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


class SplitRecords:
    """The serialized examples of ``split`` of ``config`` in ``data_dir`` and how to decode them.

    ``split`` accepts TFDS slicing ("train[:10%]"). ``shuffle``/``seed``: the file order, as
    ``as_dataset(shuffle_files=shuffle, read_config=tfds.ReadConfig(shuffle_seed=seed))``.
    """

    def __init__(self, data_dir: str | Path, config: str, split: str):
        self.builder = load_builder(data_dir, config)
        base_split = split.split("[")[0]
        if base_split not in self.builder.info.splits:
            raise ValueError(
                f"Split {split!r} is not in {data_dir} ({config}); it has "
                f"{list(self.builder.info.splits)}"
            )
        file_format = getattr(self.builder.info.file_format, "value", "tfrecord")
        if file_format != "tfrecord":
            raise ValueError(
                f"{data_dir} ({config}) is stored as {file_format!r}; stampnet reads TFRecords "
                "(rebuild it with `stampnet build --overwrite`)"
            )
        self.instructions = list(self.builder.info.splits[split].file_instructions)
        if not self.instructions:
            raise ValueError(f"Split {split!r} of {data_dir} ({config}) selects no examples")
        self._features = self.builder.info.features
        self._decoders = raw_bytes_decoders(self.builder)

    def dataset(self, *, shuffle: bool, seed: int) -> tf.data.Dataset:
        """Serialized examples (scalar tf.string), in ``as_dataset``'s order."""

        def read(filename, skip, take):
            # ``take`` is -1 for "to the end of the file", as ``Dataset.take`` reads it.
            return tf.data.TFRecordDataset(filename).skip(skip).take(take)

        filenames = [str(item.filename) for item in self.instructions]
        return in_tfds_order(self.instructions, filenames, read, shuffle=shuffle, seed=seed)

    @staticmethod
    def labels(serialized: tf.Tensor) -> tf.Tensor:
        """The ``label`` strings of serialized examples (any shape); nothing else is parsed."""
        return tf.io.parse_example(serialized, _LABEL_SPEC)["label"]

    def decode(self, serialized: tf.Tensor) -> dict:
        """One serialized example as ``as_dataset(decoders=raw_bytes_decoders(...))`` yields it."""
        return self._features.deserialize_example(serialized, decoders=self._decoders)

    def decode_first(self, serialized: tf.Tensor, keys, first: int) -> dict:
        """The features ``keys`` of one serialized example, the variable-length ones cut or
        zero-padded to their first ``first`` rows, with ``"num_rows"``: ``decode_batch`` of it."""
        batch = self.decode_batch(serialized[None], keys, first=first)
        return {key: tf.squeeze(value, 0) for key, value in batch.items()}

    # Plain Python over the static feature list: autograph's conversion only costs start time.
    @tf.autograph.experimental.do_not_convert
    def decode_batch(self, serialized: tf.Tensor, keys, *, first: int | None = None) -> dict:
        """The features ``keys`` of a batch of serialized examples (1-D), parsed together.

        Row ``i`` of each value equals ``decode(serialized[i])[key]`` byte for byte; features not
        asked for are not parsed (one ``parse_example`` for the batch instead of one parse of
        every feature per example). Fixed-shape features batch as they are. Features with a
        variable first dimension (a sequence's alerts) need ``first=T``: row ``i`` then holds
        the first T rows of ``decode(serialized[i])[key]``, zero-padded to T, and ``"num_rows"``
        (int32, (B,)) how many of them are real (see ``sequence_records``).
        """
        parser = example_parser.ExampleParser(self._features.get_serialized_info())
        specs = {key: parser.flat_feature_specs[key] for key in keys}
        variable = [key for key in keys if self._features[key].shape[:1] == (None,)]
        if variable and first is None:
            raise ValueError(
                f"{variable} have a variable first dimension: only fixed shapes batch, or "
                "pass first=T to batch their first T rows"
            )
        for key in variable:
            specs[key] = sequence_records.variable_spec(self._features[key], specs[key])
        parsed = tf.io.parse_example(serialized, specs)
        decoded = {}
        for key, value in parsed.items():
            feature = self._features[key]
            shape = feature.shape
            if key in variable:
                continue
            if any(size is None for size in shape):
                raise ValueError(f"{key!r} has shape {shape}: only fixed shapes batch")
            if key in self._decoders:  # raw bytes: the decoder's ``decode_raw``, a batch at once
                value = tf.io.decode_raw(value, feature.tf_dtype)
            elif value.dtype != feature.tf_dtype:  # as TFDS restores bools stored as int64
                value = tf.cast(value, feature.tf_dtype)
            decoded[key] = tf.reshape(value, [-1, *shape])
        if variable:
            features = {key: self._features[key] for key in variable}
            where = f"{self.builder.data_dir}"
            decoded.update(sequence_records.first_rows(features, parsed, int(first), where))
        return decoded


def decoded_split(
    data_dir: str | Path, config: str, split: str, *, shuffle: bool = False, seed: int = 0
) -> tf.data.Dataset:
    """Every example of a split, decoded, in ``as_dataset``'s order (for checks and tools)."""
    records = SplitRecords(data_dir, config, split)
    return records.dataset(shuffle=shuffle, seed=seed).map(
        records.decode, num_parallel_calls=tf.data.AUTOTUNE
    )
