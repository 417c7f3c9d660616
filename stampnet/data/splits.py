"""Train/validation/test splits made per object, stratified by label, reproducible from a seed.

All alerts of one object go to the same split: alerts of an object share its host, its position on
the sky and, for variable sources, its light curve, so an object in two splits would leak its answer
into the validation and test scores. Within each label the objects are ordered by a keyed hash of
their name and cut at the configured fractions, so the split of an object depends only on the seed,
its label and how many objects share that label, never on the order files were read.

The assignment itself is one SQL statement over the build's on-disk index
(``stampnet.data.staging.Staging.assign_splits``), so its memory stays flat for millions of
objects; this module holds the pieces it is made of.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Sequence

from stampnet.constants import ALERCE_CLASSES, UNLABELLED

SPLITS = ("train", "validation", "test")
DEFAULT_SPLIT_FRACTIONS = (0.7, 0.15, 0.15)


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Validates (train, validation, test) fractions: three non-negative numbers summing to 1."""
    values = tuple(float(value) for value in fractions)
    if len(values) != 3 or any(value < 0 for value in values) or not math.isclose(sum(values), 1):
        raise ValueError(
            "split_fractions must be three non-negative numbers (train, validation, test) summing "
            f"to 1, received {tuple(fractions)}"
        )
    return values


def split_key(object_id: str, seed: int) -> int:
    """A 63-bit ordering key of an object: a keyed hash, stable across runs and platforms."""
    digest = hashlib.blake2b(
        object_id.encode("utf-8"), digest_size=8, key=str(int(seed)).encode()
    ).digest()
    return int.from_bytes(digest, "big") >> 1  # fits SQLite's signed 64-bit integers


def split_sizes(num_objects: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Objects per split for one label: largest remainder rounding, ties to the earlier split."""
    fractions = check_fractions(fractions)
    exact = [num_objects * fraction for fraction in fractions]
    sizes = [math.floor(value) for value in exact]
    by_remainder = sorted(range(3), key=lambda index: (-(exact[index] - sizes[index]), index))
    for index in by_remainder[: num_objects - sum(sizes)]:
        sizes[index] += 1
    return sizes[0], sizes[1], sizes[2]


def object_label(alert_labels: Iterable[str]) -> str:
    """One label for an object from its alerts' labels: the most frequent labelled one.

    Catalogue labels hold for the object, but only the alerts that travelled with a broker
    annotation carry them, so ``unknown`` alerts do not outvote a labelled one. Ties go to the
    alphabetically first label, so the choice never depends on reading order.
    """
    counts = Counter(label for label in alert_labels if label != UNLABELLED)
    if not counts:
        return UNLABELLED
    best = max(counts.values())
    return min(label for label, count in counts.items() if count == best)


def class_names_for(labels: Iterable[str]) -> list[str]:
    """Class names in label-id order: ALeRCE's order when the labels are a subset of its five
    classes (so ALeRCE weights line up), otherwise sorted; ``unknown`` is never a class."""
    present = {label for label in labels if label != UNLABELLED}
    if present <= set(ALERCE_CLASSES):
        return [name for name in ALERCE_CLASSES if name in present]
    return sorted(present)
