"""The dataset card: what a built dataset holds, where it came from, and its train statistics.

Every data directory carries ``dataset_card.json`` beside its TFRecords. Models read their class
names and feature statistics from it, and a training run copies it into its model card, so a
trained model always knows what it was trained on. The card is written last, atomically: a data
directory without one is not a finished dataset.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from stampnet.features import METADATA_FIELDS, FeatureStats, resolve_feature_names

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


def feature_stats_for(card: dict, names: str | Sequence[str]) -> FeatureStats:
    """The train statistics of a feature set (a set name such as "alerce23", or a list of names)."""
    names = resolve_feature_names(names)
    stats = FeatureStats.from_dict(card["feature_stats"])
    positions = {name: index for index, name in enumerate(stats.names)}
    missing = [name for name in names if name not in positions]
    if missing:
        raise ValueError(f"The dataset card has no statistics for {missing}; it has {stats.names}")
    pick = [positions[name] for name in names]
    return FeatureStats(
        names=tuple(names),
        mean=tuple(stats.mean[i] for i in pick),
        std=tuple(stats.std[i] for i in pick),
        clip_low=tuple(stats.clip_low[i] for i in pick),
        clip_high=tuple(stats.clip_high[i] for i in pick),
    )


class FeatureAccumulator:
    """``FeatureStats.fit`` as streaming sums, so fitting never holds the training set in memory.

    Values are clipped as ALeRCE does, then per-feature count, mean and sum of squared deviations
    are merged chunk by chunk (Chan et al.'s pairwise update, stable where naive sums of squares
    lose precision, e.g. for ``jd`` around 2.46e6). NaN (missing) values are ignored.

    Args:
        names: feature names, in the order of the value vectors passed to ``update``.
        clipping: per-name (low, high) bounds; None uses ``features.ALERCE_CLIPPING``.
    """

    def __init__(self, names: Sequence[str] = METADATA_FIELDS, clipping=None):
        self._clip = FeatureStats.from_values(
            names, [0.0] * len(names), [1.0] * len(names), clipping
        )
        self.count = np.zeros(len(names), np.float64)
        self.mean = np.zeros(len(names), np.float64)
        self.squares = np.zeros(len(names), np.float64)

    def update(self, values: np.ndarray) -> None:
        """Adds a chunk of vectors, shape (N, len(names)), NaN = missing."""
        values = self._clip.clip(np.asarray(values, np.float64).reshape(-1, len(self.count)))
        present = ~np.isnan(values)
        count = present.sum(axis=0).astype(np.float64)
        total = np.where(present, values, 0.0).sum(axis=0)
        mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        squares = np.where(present, (values - mean) ** 2, 0.0).sum(axis=0)
        merged = self.count + count
        delta = mean - self.mean
        weight = np.divide(count, merged, out=np.zeros_like(count), where=merged > 0)
        self.mean = self.mean + delta * weight
        self.squares = self.squares + squares + delta**2 * self.count * weight
        self.count = merged

    def stats(self) -> FeatureStats:
        """Mean and population std (as ``np.nanstd``); 0 and 1 where a feature never appears."""
        seen = self.count > 0
        mean = np.where(seen, self.mean, 0.0)
        variance = np.divide(self.squares, self.count, out=np.ones_like(self.squares), where=seen)
        std = np.sqrt(np.maximum(variance, 0.0))
        std = np.where(std > 0, std, 1.0)  # a constant feature must not divide by zero
        return FeatureStats(
            names=self._clip.names,
            mean=tuple(float(m) for m in mean),
            std=tuple(float(s) for s in std),
            clip_low=self._clip.clip_low,
            clip_high=self._clip.clip_high,
        )


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
