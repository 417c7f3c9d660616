"""The dataset card: what a built dataset holds, where it came from, and its train statistics.

Every data directory carries ``dataset_card.json`` beside its TFRecords. Models read their class
names and feature statistics from it, and a training run copies it into its model card, so a
trained model always knows what it was trained on. The card is written last, atomically: a data
directory without one is not a finished dataset.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from stampnet.features import (
    METADATA_FIELDS,
    NO_MATCH_ENCODINGS,
    FeatureStats,
    resolve_feature_names,
)

CARD_NAME = "dataset_card.json"


def card_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / CARD_NAME


def load_card(data_dir: str | Path) -> dict:
    """Reads ``<data_dir>/dataset_card.json``; a clear error when the dataset is not built."""
    path = card_path(data_dir)
    if not path.is_file():
        raise FileNotFoundError(
            f"No dataset card at {path}: {data_dir} holds no finished dataset. Build one with "
            "`stampnet build --source ALERTS --out DIR` (an interrupted build leaves no card)."
        )
    return json.loads(path.read_text())


def write_card(data_dir: str | Path, card: dict) -> Path:
    """Writes the card through a temporary file and a rename, so it is never half-written."""
    path = card_path(data_dir)
    temporary = path.with_name(f".{CARD_NAME}.tmp")
    temporary.write_text(json.dumps(card, indent=2, sort_keys=False, allow_nan=True) + "\n")
    os.replace(temporary, path)
    return path


#: The card's key of the train statistics under each encoding of a missing catalogue match.
FEATURE_STATS_KEYS = {"clip": "feature_stats", "missing": "feature_stats_no_match_missing"}


def feature_stats_for(
    card: dict, names: str | Sequence[str], no_match: str = "clip"
) -> FeatureStats:
    """The train statistics of a feature set (a set name such as "alerce23", or a list of names),
    with a missing catalogue match read as ``no_match`` says (``features.NO_MATCH_ENCODINGS``)."""
    names = resolve_feature_names(names)
    if no_match not in FEATURE_STATS_KEYS:
        raise ValueError(f"no_match={no_match!r}; expected one of {tuple(FEATURE_STATS_KEYS)}")
    key = FEATURE_STATS_KEYS[no_match]
    if key not in card:
        raise ValueError(
            f"The dataset card has no {key!r} (written by stampnet "
            f"{card.get('stampnet_version', '?')}, before --no-match-as {no_match} existed); "
            "rebuild the dataset to train with it"
        )
    # The card keeps the means and stds; what reads as missing is the code's (``with_no_match``),
    # so a card written before a rule existed gets it too.
    stats = FeatureStats.from_dict(card[key]).with_no_match(no_match)
    try:
        return stats.select(names)
    except ValueError as error:
        raise ValueError(f"The dataset card: {error}") from None


class FeatureAccumulator:
    """``FeatureStats.fit`` as streaming sums, so fitting never holds the training set in memory.

    Values are clipped as ALeRCE does, then per-feature count, mean and sum of squared deviations
    are merged chunk by chunk (Chan et al.'s pairwise update, stable where naive sums of squares
    lose precision, e.g. for ``jd`` around 2.46e6). NaN (missing) values are ignored. The sums
    are kept for each encoding of a missing catalogue match at once (rows of ``count``, ``mean``,
    ``squares``, in ``features.NO_MATCH_ENCODINGS`` order), so one pass serves both.

    Args:
        names: feature names, in the order of the value vectors passed to ``update``.
        clipping: per-name (low, high) bounds; None uses ``features.ALERCE_CLIPPING``.
    """

    def __init__(self, names: Sequence[str] = METADATA_FIELDS, clipping=None):
        unit = ([0.0] * len(names), [1.0] * len(names))
        self._encodings = [
            FeatureStats.from_values(names, *unit, clipping, encoding)
            for encoding in NO_MATCH_ENCODINGS
        ]
        shape = (len(NO_MATCH_ENCODINGS), len(names))
        self.count = np.zeros(shape, np.float64)
        self.mean = np.zeros(shape, np.float64)
        self.squares = np.zeros(shape, np.float64)

    def update(self, values: np.ndarray) -> None:
        """Adds a chunk of vectors, shape (N, len(names)), NaN = missing."""
        values = np.asarray(values, np.float64).reshape(-1, self.count.shape[1])
        # (N, encodings, names): each encoding's view of the chunk.
        values = np.stack([stats.clip(stats.mask_missing(values)) for stats in self._encodings], 1)
        present = ~np.isnan(values)
        count = present.sum(axis=0).astype(np.float64)
        total = np.where(present, values, 0.0).sum(axis=0)
        mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        self._add(count, mean, np.where(present, (values - mean) ** 2, 0.0).sum(axis=0))

    def merge(self, other: FeatureAccumulator) -> None:
        """Adds another accumulator's sums."""
        self._add(other.count, other.mean, other.squares)

    def _add(self, count: np.ndarray, mean: np.ndarray, squares: np.ndarray) -> None:
        # Chan et al.'s pairwise update of (count, mean, sum of squared deviations).
        merged = self.count + count
        delta = mean - self.mean
        weight = np.divide(count, merged, out=np.zeros_like(merged), where=merged > 0)
        self.mean = self.mean + delta * weight
        self.squares = self.squares + squares + delta**2 * self.count * weight
        self.count = merged

    def stats(self, no_match: str = "clip") -> FeatureStats:
        """Mean and population std (as ``np.nanstd``); 0 and 1 where a feature never appears."""
        row = NO_MATCH_ENCODINGS.index(no_match)
        count, squares = self.count[row], self.squares[row]
        seen = count > 0
        mean = np.where(seen, self.mean[row], 0.0)
        variance = np.divide(squares, count, out=np.ones_like(squares), where=seen)
        std = np.sqrt(np.maximum(variance, 0.0))
        std = np.where(std > 0, std, 1.0)  # a constant feature must not divide by zero
        return dataclasses.replace(
            self._encodings[row],
            mean=tuple(float(m) for m in mean),
            std=tuple(float(s) for s in std),
        )

    def card_entries(self) -> dict:
        """The card's statistics under every encoding, keyed as ``FEATURE_STATS_KEYS``."""
        return {key: self.stats(encoding).to_dict() for encoding, key in FEATURE_STATS_KEYS.items()}


def expand_sources(sources: str | Path | Iterable[str | Path]) -> list[Path]:
    """Every file a list of paths, directories and globs names, sorted (for the card's hashes)."""
    if isinstance(sources, str | Path):
        sources = [sources]
    files: set[Path] = set()
    for source in sources:
        text = str(source)
        matches = glob.glob(text, recursive=True) if glob.has_magic(text) else [text]
        for match in map(Path, matches):
            if match.is_dir():
                files.update(path for path in match.rglob("*") if path.is_file())
            elif match.is_file():
                files.add(match)
    return sorted(files)


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def source_entries(files: Iterable[Path]) -> list[dict]:
    """The card's ``sources``: one (path, sha256, bytes) per input file."""
    return [
        {"path": str(path), "sha256": file_sha256(path), "bytes": path.stat().st_size}
        for path in files
    ]
