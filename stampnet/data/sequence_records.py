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


def first_rows(features: dict, parsed: dict, first: int, where: str) -> dict:
    """``parsed`` (``parse_example`` with ``variable_spec``) of the ``features`` (name ->
    TFDS feature) as (B, first, ...) tensors, zero-padded, and ``"num_rows"`` (B,) int32.

    ``where`` names the data in error messages.
    """
    if first < 1:
        raise ValueError(f"first must be >= 1, received {first}")
    decoded, counts, checks = {}, {}, []
    for key, feature in features.items():
        value, row_shape = parsed[key], list(feature.shape[1:])
        if isinstance(value, tf.RaggedTensor):
            counts[key] = tf.cast(value.row_lengths(), tf.int64)
            rows = value.to_tensor(shape=[None, first])
            if rows.dtype != feature.tf_dtype:  # as TFDS restores bools stored as int64
                rows = tf.cast(rows, feature.tf_dtype)
        else:
            row_bytes = int(np.prod(row_shape, dtype=np.int64)) * feature.tf_dtype.size
            lengths = tf.cast(tf.strings.length(value), tf.int64)
            counts[key] = lengths // row_bytes
            checks.append(
                tf.debugging.assert_equal(
                    lengths % row_bytes,
                    tf.zeros_like(lengths),
                    message=f"{where}: a record's {key!r} is not a whole number of "
                    f"{row_bytes}-byte rows of shape {row_shape}; rebuild the data",
                )
            )
            # decode_raw pads only numbers: bools (stored as bytes 0 and 1) are read as uint8.
            dtype = tf.uint8 if feature.tf_dtype == tf.bool else feature.tf_dtype
            rows = tf.io.decode_raw(value, dtype, fixed_length=first * row_bytes)
            rows = tf.reshape(tf.cast(rows, feature.tf_dtype), [-1, first, *row_shape])
        decoded[key] = rows
    names = list(counts)
    for key in names[1:]:
        checks.append(
            tf.debugging.assert_equal(
                counts[key],
                counts[names[0]],
                message=f"{where}: a record holds a different number of alerts in {key!r} "
                f"than in {names[0]!r}; rebuild the data",
            )
        )
    decoded["num_rows"] = tf.cast(tf.minimum(counts[names[0]], first), tf.int32)
    with tf.control_dependencies(checks):
        return {key: tf.identity(value) for key, value in decoded.items()}
