"""The first T alerts of a batch of ``sequences`` records, decoded together and zero-padded.

A ``sequences`` example stores up to the card's ``max_detections`` alerts of an object (10 by
default), each ~60 KB of ZTF stamps and masks, and holds as many as the object has, so examples
differ in shape. TFDS decodes one example at a time, every feature and every alert; the sequence
models read the first T (5 by default), so half of that work was thrown away, and examples of
different lengths could not be parsed as a batch (``records.SplitRecords.decode_batch``).

Here the alerts' raw-bytes features of a batch are decoded straight to T rows each:
``decode_raw(..., fixed_length=T * bytes_per_row)`` reads the first T rows' bytes and pads
shorter values with zero bytes, which are 0 in every stored dtype (0.0, False, 0), the values
the pipeline padded with before. A list feature (``candid``) is parsed ragged and cut or padded
to T alike. How many rows are real is told by each feature's stored length; every feature of a
record must agree (they are one row per alert), and a value that is not a whole number of rows
is an error, as it is for TFDS' own decoding.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def variable_spec(feature, spec):
    """The ``parse_example`` spec of a feature with a variable first dimension: raw bytes stay
    one string per example (TFDS' spec); a list of values is parsed ragged."""
    if spec.dtype == tf.string:
        return spec
    if feature.shape[1:]:
        raise ValueError(f"a list feature of shape {feature.shape} cannot be parsed by rows")
    return tf.io.RaggedFeature(spec.dtype)


@tf.autograph.experimental.do_not_convert
def first_rows(features: dict, parsed: dict, first: int, where: str) -> dict:
    """``parsed`` (``parse_example`` with ``variable_spec``) of the ``features`` (name ->
    TFDS feature) as (B, first, ...) tensors, zero-padded, and ``"num_rows"`` (B,) int32.

    ``where`` names the data in error messages.
    """
    if first < 1:
        raise ValueError(f"first must be >= 1, received {first}")
    # Each feature's stored size in bytes (raw) or values (lists), and that of one row: every
    # feature must hold the same whole number of rows. One check for all (few ops per record).
    sizes, row_sizes = [], []
    for key, feature in features.items():
        value = parsed[key]
        if isinstance(value, tf.RaggedTensor):
            sizes.append(tf.cast(value.row_lengths(), tf.int64))
            row_sizes.append(1)
        else:
            sizes.append(tf.cast(tf.strings.length(value), tf.int64))
            row_sizes.append(_row_bytes(feature))
    sizes = tf.stack(sizes)  # (features, B)
    rows = sizes[:1] // row_sizes[0]
    check = tf.debugging.assert_equal(
        sizes,
        rows * tf.constant(row_sizes, tf.int64)[:, None],
        message=f"{where}: a record's {list(features)} do not hold the same whole number of "
        f"rows of {row_sizes} bytes (lists: values) each; rebuild the data",
    )
    decoded = {}
    with tf.control_dependencies([check]):
        for (key, feature), row_size in zip(features.items(), row_sizes, strict=True):
            value = parsed[key]
            if isinstance(value, tf.RaggedTensor):
                values = value.to_tensor(shape=[None, first])
                if values.dtype != feature.tf_dtype:  # as TFDS restores bools stored as int64
                    values = tf.cast(values, feature.tf_dtype)
            else:
                # decode_raw pads only numbers: bools (stored as bytes 0 and 1) are read as uint8.
                dtype = tf.uint8 if feature.tf_dtype == tf.bool else feature.tf_dtype
                values = tf.io.decode_raw(value, dtype, fixed_length=first * int(row_size))
                if dtype != feature.tf_dtype:
                    values = tf.cast(values, feature.tf_dtype)
            decoded[key] = tf.reshape(values, [-1, first, *feature.shape[1:]])
        decoded["num_rows"] = tf.cast(tf.minimum(rows[0], first), tf.int32)
    return decoded


def _row_bytes(feature) -> int:
    return int(np.prod(feature.shape[1:], dtype=np.int64)) * feature.tf_dtype.size
