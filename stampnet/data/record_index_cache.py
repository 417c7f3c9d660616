"""The record index on disk, so that a pipeline start does not read the whole split again.

``record_index.RecordIndex`` reads every record of a split's files once, for each record's length
and label: 0.5 CPU-s on the built-in data, about 150 CPU-s at 1.25 M examples, at every training
start, evaluation and worker. What it reads depends only on the files, so it is kept on disk:

- **Where:** next to the data (the TFDS version folder holding the files) when that folder can
  be written, else in the per-user cache (``$STAMPNET_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/stampnet``, else ``~/.cache/stampnet``; under ``record-index/``), named by the
  data folder's absolute path. One cache per set of files (a split, or the files of a slice).
- **When it is used:** every file must have the name, size and modification time (ns) it had
  when the cache was written, and the cache must agree with the files' contents where a check
  is cheap: each file's size is the sum of its indexed records and their framing, and the length
  that TFRecord stores before a record is the indexed one at the first, the last and evenly
  spaced records of each file. Anything else (a changed file, another format, a truncated or
  corrupt cache) rebuilds the index, and the rebuilt one replaces the cache: a cache is never
  trusted over the files.
- **Writes** go to a temporary file in the cache's folder, renamed over the cache when complete
  (``os.replace``): concurrent workers read the old cache or the whole new one, never half of
  one; two workers building at once both write complete caches of the same files.

The cache holds each record's length and label string (coded into the split's label
vocabulary), not the pipeline's class indices, so pipelines with other class names share it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np

#: Bumped when the cache's content changes meaning; other versions are rebuilt.
FORMAT = 1
#: TFRecord framing, which the index and its checks read: before each record's data its 8-byte
#: little-endian length and a 4-byte checksum of that; after the data a 4-byte checksum.
HEADER_BYTES, FOOTER_BYTES = 12, 4
#: Record headers compared with the index per file, when a cache is read.
CHECKED_HEADERS = 8

_log = logging.getLogger(__name__)


def user_cache_dir() -> Path:
    """The per-user folder for caches of data that cannot be written beside."""
    chosen = os.environ.get("STAMPNET_CACHE_DIR")
    if chosen:
        return Path(chosen) / "record-index"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stampnet" / "record-index"


def cache_paths(filenames: list[str]) -> list[Path]:
    """Where the index of ``filenames`` (one folder) is kept: beside them, then the user's."""
    folders = {str(Path(name).resolve().parent) for name in filenames}
    if len(folders) != 1:
        return []  # files of several folders: not a TFDS split, nothing is cached
    folder = Path(folders.pop())
    names = "\n".join(Path(name).name for name in filenames)
    name = f"record-index-{hashlib.sha256(names.encode()).hexdigest()[:16]}.npz"
    place = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    return [folder / f".stampnet-{name}", user_cache_dir() / f"{place}-{name}"]


def record_offsets(lengths: np.ndarray) -> np.ndarray:
    """The byte offset in its file of each record of a file whose records' data have ``lengths``."""
    framed = lengths + HEADER_BYTES + FOOTER_BYTES
    return np.concatenate([[0], np.cumsum(framed)[:-1]]).astype(np.int64)


def _stats(filenames: list[str]) -> np.ndarray:
    stats = [os.stat(name) for name in filenames]
    return np.array([[stat.st_size, stat.st_mtime_ns] for stat in stats], np.int64)


def indexed_files(filenames: list[str], read_file):
    """Per file, ``(lengths, labels)``: its records' byte lengths (int64) and label strings
    (bytes), from the cache when it is valid, else from ``read_file(filename)`` (then cached).
    """
    paths = cache_paths(filenames)
    stats = _stats(filenames)
    for path in paths:
        found = _load(path, filenames, stats)
        if found is not None:
            return found
    entries = [read_file(name) for name in filenames]
    # The sizes and times from before the read: a file changed meanwhile misses next time.
    _save(paths, filenames, stats, entries)
    return entries


def _load(path: Path, filenames: list[str], stats: np.ndarray):
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            if int(data["format"]) != FORMAT:
                raise ValueError(f"format {int(data['format'])}, not {FORMAT}")
            names = [Path(name).name for name in filenames]
            if data["names"].tolist() != names or not np.array_equal(data["stats"], stats):
                return None  # other files, or files changed since: rebuilt quietly
            counts, lengths = data["counts"], data["lengths"]
            codes, vocabulary = data["codes"], data["vocabulary"]
        if counts.sum() != len(lengths) or len(codes) != len(lengths):
            raise ValueError("records and labels disagree")
        if len(codes) and not 0 <= codes.min() <= codes.max() < len(vocabulary):
            raise ValueError("label codes out of range")
        starts = np.concatenate([[0], np.cumsum(counts)])
        labels = vocabulary.astype(object)[codes]
        entries = []
        for number, name in enumerate(filenames):
            file_lengths = lengths[starts[number] : starts[number + 1]]
            _check_file(name, file_lengths, int(stats[number, 0]))
            entries.append((file_lengths, labels[starts[number] : starts[number + 1]]))
        return entries
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        _log.info("record index cache %s not used (%s): rebuilding it", path, error)
        return None


def _check_file(filename: str, lengths: np.ndarray, size: int) -> None:
    """Raises ValueError unless ``filename``'s records have ``lengths`` where it is cheap to see."""
    if int(np.sum(lengths + HEADER_BYTES + FOOTER_BYTES)) != size:
        raise ValueError(f"{filename}: {size} bytes, not the indexed records'")
    if not len(lengths):
        return
    offsets = record_offsets(lengths)
    checked = np.unique(np.linspace(0, len(lengths) - 1, CHECKED_HEADERS).astype(np.int64))
    descriptor = os.open(filename, os.O_RDONLY)
    try:
        for position in checked:
            header = os.pread(descriptor, 8, int(offsets[position]))
            if len(header) != 8 or struct.unpack("<Q", header)[0] != lengths[position]:
                raise ValueError(f"{filename}: record {position} is not the indexed one")
    finally:
        os.close(descriptor)


def _save(paths: list[Path], filenames: list[str], stats: np.ndarray, entries) -> None:
    """Writes the cache at the first of ``paths`` that can be written (temporary file, rename)."""
    labels = np.concatenate([np.asarray(file_labels, object) for _, file_labels in entries])
    vocabulary, codes = np.unique(labels.astype(bytes), return_inverse=True)
    arrays = {
        "format": np.array(FORMAT),
        "names": np.array([Path(name).name for name in filenames]),
        "stats": stats,
        "counts": np.array([len(lengths) for lengths, _ in entries], np.int64),
        "lengths": np.concatenate([np.zeros(0, np.int64)] + [lengths for lengths, _ in entries]),
        "codes": codes.astype(np.int32),
        "vocabulary": vocabulary,
    }
    for path in paths:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(
                dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
            )
        except OSError:
            continue  # not writable: the next place
        try:
            with os.fdopen(descriptor, "wb") as handle:
                np.savez(handle, **arrays)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, 0o644)  # other users of shared data may read it
            os.replace(temporary, path)
            return
        except OSError as error:
            _log.info("record index cache %s not written (%s)", path, error)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
