"""What a ``ztf_alerts`` example holds and how it is stored (TFDS features, ``STORAGE``).

Stamps are stored raw (float32 counts, invalid pixels 0) with their validity masks, at the stamp
geometry of the data (``stampnet.geometry.StampGeometry``: ZTF's 63x63x3 by default, whatever the
input holds otherwise, e.g. Deep-HiTS' 21x21x4), and metadata raw with presence flags, so every
normalisation choice lives in the models and none needs a rebuild. The light-curve history is
stored beside them (``stampnet.data.history``).
"""

from __future__ import annotations

import contextlib

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import shuffle as tfds_shuffle

from stampnet.data.history import HISTORY_FIELDS, MAX_ALERT_HISTORY, MAX_SEQUENCE_HISTORY
from stampnet.features import METADATA_FIELDS
from stampnet.geometry import ZTF, StampGeometry

#: How stamps are stored, chosen by ``benchmarks/own_data.py`` and recorded in every card.
#: Measured on 21x21x4 Deep-HiTS-layout records (bytes per example: float32 raw 9328, GZIP 6536;
#: float16 raw 5800, GZIP 3154): float16 overflows on real ZTF counts (48 of 5.4 M sample pixels
#: exceed its 65504 maximum and would become inf) and rounds by up to 4.9e-4 elsewhere, while
#: models normalise raw counts; GZIP saves 30 % at float32 but read+parse was slower in 2 of 3
#: runs on the shared 2-core machine (0.4x to 1.4x of raw). So: float32, uncompressed records.
STORAGE = {
    "stamps": "float32",
    "stamp_mask": "uint8",
    "encoding": "raw bytes",
    "record_compression": None,
    "chosen_by": "benchmarks/own_data.py",
}
#: Bytes TFDS may hold in memory while shuffling a split before spilling to disk buckets.
SHUFFLE_MEMORY_BYTES = 64 << 20


@contextlib.contextmanager
def bounded_shuffle_memory(limit_bytes: int = SHUFFLE_MEMORY_BYTES):
    """Caps the memory TFDS' example shuffler uses, for the duration of one plain build.

    TFDS keeps a split's serialised examples in memory up to a module constant of 1 GB before
    spilling them to 1000 on-disk buckets. Raw stamps are ~60 KB per alert, so the default would
    make a build's memory grow with its input up to 1 GB. So the constant is lowered here and
    restored afterwards: TFDS 4.9.10 has no supported setting for it. ``shuffle.Shuffler`` takes
    no size, ``writer.Writer`` makes one without passing any, ``DownloadConfig`` has no such field
    (its ``nondeterministic_order`` is for Beam builds; elsewhere it only turns shuffling off),
    and a builder's ``disable_shuffling = True`` still buffers in memory, only keeping key order.
    The supported way around the in-memory shuffle is TFDS' Beam writer, which shuffles through
    the runner, out of core: the Beam build (``stampnet.data.beam_build``) needs no cap.
    """
    previous = tfds_shuffle.MAX_MEM_BUFFER_SIZE
    tfds_shuffle.MAX_MEM_BUFFER_SIZE = limit_bytes
    try:
        yield
    finally:
        tfds_shuffle.MAX_MEM_BUFFER_SIZE = previous


def features(config_name: str, geometry: StampGeometry = ZTF) -> tfds.features.FeaturesDict:
    num_fields = len(METADATA_FIELDS)
    stamp_shape = geometry.shape
    raw = tfds.features.Encoding.BYTES  # decode_raw: faster to parse than float lists
    if config_name == "alerts":
        return tfds.features.FeaturesDict(
            {
                "candid": tfds.features.Scalar(np.int64),
                "object_id": tfds.features.Text(),
                "jd": tfds.features.Tensor(shape=(), dtype=np.float64, encoding=raw),
                "fid": tfds.features.Scalar(np.int64),
                "label": tfds.features.Text(),
                "stamps": tfds.features.Tensor(shape=stamp_shape, dtype=np.float32, encoding=raw),
                "stamp_mask": tfds.features.Tensor(shape=stamp_shape, dtype=np.uint8, encoding=raw),
                "metadata": tfds.features.Tensor(shape=(num_fields,), dtype=np.float32),
                "metadata_present": tfds.features.Tensor(shape=(num_fields,), dtype=np.bool_),
                "source": tfds.features.Text(),
                **history_features(MAX_ALERT_HISTORY),
            }
        )
    return tfds.features.FeaturesDict(
        {
            "object_id": tfds.features.Text(),
            "label": tfds.features.Text(),
            "num_alerts": tfds.features.Scalar(np.int64),
            "candid": tfds.features.Tensor(shape=(None,), dtype=np.int64),
            # Raw bytes: a tf.train.Example float list is float32, which rounds a jd to 0.25 d.
            "jd": tfds.features.Tensor(shape=(None,), dtype=np.float64, encoding=raw),
            "stamps": tfds.features.Tensor(
                shape=(None, *stamp_shape), dtype=np.float32, encoding=raw
            ),
            "stamp_mask": tfds.features.Tensor(
                shape=(None, *stamp_shape), dtype=np.uint8, encoding=raw
            ),
            "metadata": tfds.features.Tensor(
                shape=(None, num_fields), dtype=np.float32, encoding=raw
            ),
            "metadata_present": tfds.features.Tensor(
                shape=(None, num_fields), dtype=np.bool_, encoding=raw
            ),
            **history_features(MAX_SEQUENCE_HISTORY),
        }
    )


def history_features(length: int) -> dict:
    """The light-curve history (``stampnet.data.history``), fixed length with a mask."""
    raw = tfds.features.Encoding.BYTES
    return {
        "history": tfds.features.Tensor(
            shape=(length, len(HISTORY_FIELDS)), dtype=np.float32, encoding=raw
        ),
        "history_mask": tfds.features.Tensor(shape=(length,), dtype=np.bool_, encoding=raw),
    }
