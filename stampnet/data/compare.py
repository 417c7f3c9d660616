"""Do two built data directories hold the same dataset? Per-example digests, split by split.

Used to check that a Beam build (``stampnet.data.beam_build``), on any runner, wrote what the
single-process build writes: the same examples (decoded, every feature), in the same splits,
with the same card. TFRecord bytes and shard boundaries may differ (the writers shuffle
differently); the decoded examples may not.

Example:
    >>> differences(digests("tfrecords/plain"), digests("tfrecords/beam"))
    []
"""

from __future__ import annotations

import hashlib

import numpy as np

from stampnet.data import card as card_lib
from stampnet.data.builder import CONFIGS, load_builder, raw_bytes_decoders

#: Card fields that must be equal between two builds of the same sources and settings.
CARD_FIELDS = (
    "counts",
    "class_names",
    "num_alerts",
    "num_objects",
    "num_alerts_read",
    "rejection_counts",
    "num_rejections",
    "stamp_shape",
    "channels",
    "history",
    "reading",
)


def example_digest(example: dict) -> str:
    """sha256 over every feature's name, dtype, shape and bytes (sorted by name)."""
    digest = hashlib.sha256()
    for name in sorted(example):
        value = np.asarray(example[name])
        digest.update(f"{name}:{value.dtype.str}:{value.shape}:".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def digests(data_dir) -> dict:
    """``{config: {split: {key: digest}}}``: alerts keyed by candid, sequences by object id."""
    found = {}
    for config in CONFIGS:
        builder = load_builder(data_dir, config)
        key = "candid" if config == "alerts" else "object_id"
        found[config] = {}
        for split in builder.info.splits:
            dataset = builder.as_dataset(split=split, decoders=raw_bytes_decoders(builder))
            found[config][split] = {
                _plain(example[key]): example_digest(example)
                for example in dataset.as_numpy_iterator()
            }
    return found


def _plain(value):
    return value.decode() if isinstance(value, bytes) else int(value)


def differences(expected: dict, found: dict, limit: int = 10) -> list[str]:
    """What differs between two ``digests`` (at most ``limit`` lines per split), [] if none."""
    lines = []
    for config in sorted(set(expected) | set(found)):
        for split in sorted(set(expected.get(config, {})) | set(found.get(config, {}))):
            want = expected.get(config, {}).get(split, {})
            got = found.get(config, {}).get(split, {})
            bad = [f"{key}: missing" for key in sorted(set(want) - set(got))]
            bad += [f"{key}: not expected" for key in sorted(set(got) - set(want))]
            bad += [
                f"{key}: differs" for key in sorted(set(want) & set(got)) if want[key] != got[key]
            ]
            lines += [f"{config}/{split} {line}" for line in bad[:limit]]
    return lines


def card_differences(expected_dir, found_dir) -> list[str]:
    """The ``CARD_FIELDS`` that differ between two data directories' cards."""
    expected = card_lib.load_card(expected_dir)
    found = card_lib.load_card(found_dir)
    lines = [
        f"card {field}: {expected.get(field)!r} != {found.get(field)!r}"
        for field in CARD_FIELDS
        if expected.get(field) != found.get(field)
    ]
    # Summed in another order (merged per object): equal to rounding only.
    for key in card_lib.FEATURE_STATS_KEYS.values():
        for name in ("mean", "std"):
            want = np.asarray(expected[key][name], np.float64)
            got = np.asarray(found[key][name], np.float64)
            if want.shape != got.shape or not np.allclose(got, want, rtol=1e-9, atol=1e-12):
                lines.append(f"card {key} {name}: {want.tolist()} != {got.tolist()}")
    return lines
