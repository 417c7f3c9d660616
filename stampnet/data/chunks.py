"""Chunked access to a user's own stamp files: arrays, tables and HDF5, a few rows at a time.

Every format is opened as a ``ChunkedFile``: the names of its keys/columns (to choose or check a
mapping) and ``chunks(keys)``, which yields ``Chunk`` s of at most ``CHUNK_ROWS`` rows holding only
the keys asked for. Memory stays flat whatever the file's length: ``.npy`` files are
memory-mapped, HDF5 datasets sliced, parquet read in row batches, feather memory-mapped and CSV
read with pandas' ``chunksize``. ``.npz`` and pickled chunks are loaded one file at a time (zip
members and pickles cannot be sliced), so a database of such chunks is as flat as its chunk size.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

#: Rows converted at a time (a 63x63x3 float32 row is ~48 KB: a chunk is ~50 MB at most).
CHUNK_ROWS = 1024
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ARROW_MAGIC = b"ARROW1"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".p")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
#: Own-data formats a directory scan lists, by suffix (bytes decide the format when reading).
OWN_SUFFIXES = (".npy", ".npz", *HDF5_SUFFIXES, ".feather", ".arrow", *PICKLE_SUFFIXES, ".csv")


@dataclasses.dataclass
class Chunk:
    """Rows ``start .. start + length - 1`` of a file: ``columns[key][i]`` is row ``start + i``."""

    start: int
    length: int
    columns: dict


def own_format(path: Path, head: bytes) -> str | None:
    """The own-data format of a file from its first bytes (and, for pickle and CSV, its name)."""
    suffix = path.suffix.lower()
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(ZIP_MAGIC):
        return "npz"
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if head.startswith(ARROW_MAGIC):
        return "feather"
    if (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")) or (
        suffix in PICKLE_SUFFIXES
    ):
        return "pickle"
    if suffix == ".csv":
        return "csv"
    return None


def _slices(total: int, rows: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, rows):
        yield start, min(start + rows, total)


class ArrayDict:
    """A dict of equal-length arrays (``.npz`` or an unpickled Deep-HiTS chunk), chunked."""

    def __init__(self, arrays: dict, path: Path):
        self.arrays = arrays
        self.path = path

    @classmethod
    def from_npz(cls, path: Path) -> ArrayDict:
        # allow_pickle=False: an npz holding object arrays is refused, never unpickled.
        return cls(_LazyNpz(path), path)

    @classmethod
    def from_pickle(cls, path: Path) -> ArrayDict:
        # Python 2 pickles of numpy arrays need latin1 to read their str buffers as bytes.
        loaded = np.load(path, allow_pickle=True, encoding="latin1")
        if isinstance(loaded, np.ndarray) and loaded.dtype == object and loaded.shape == ():
            loaded = loaded.item()
        if not isinstance(loaded, dict):
            raise ValueError(f"pickle holds a {type(loaded).__name__}, expected a dict of arrays")
        return cls({_text(key): value for key, value in loaded.items()}, path)

    def keys(self) -> list[str]:
        return list(self.arrays.keys())

    def chunks(self, keys: Sequence[str], rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
        arrays = {key: np.asarray(self.arrays[key]) for key in keys}
        total = _common_length(arrays, self.path)
        for start, stop in _slices(total, rows):
            yield Chunk(start, stop - start, {key: a[start:stop] for key, a in arrays.items()})


class _LazyNpz(dict):
    """The members of an ``.npz``, each read from the zip only when asked for."""

    def __init__(self, path: Path):
        super().__init__()
        self._path = path
        with np.load(path, allow_pickle=False) as archive:
            self._names = list(archive.files)

    def keys(self):
        return list(self._names)

    def __getitem__(self, key):
        with np.load(self._path, allow_pickle=False) as archive:
            return archive[key]


class NpyArray:
    """One memory-mapped ``.npy`` (N, H, W, C) array, read as the key ``name``."""

    def __init__(self, path: Path, name: str):
        self.array = np.load(path, mmap_mode="r", allow_pickle=False)
        self.name = name
        self.path = path

    def keys(self) -> list[str]:
        return [self.name]

    def chunks(self, keys: Sequence[str], rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
        for start, stop in _slices(len(self.array), rows):
            yield Chunk(start, stop - start, {self.name: np.asarray(self.array[start:stop])})


class Hdf5File:
    """Datasets of an HDF5 file (paths such as ``"images/science"`` allowed), sliced per chunk.

    The HDF5 library reports some damaged files as ``RuntimeError`` ("Object visitation failed",
    found by the fuzzer): those become ``OSError`` naming the file, so they are rejections like
    any corrupt input, while a ``RecursionError`` (also a ``RuntimeError``) still surfaces.
    """

    def __init__(self, path: Path):
        import h5py

        self.path = path
        with self._corrupt_as_oserror():
            self.handle = h5py.File(path, "r")

    @contextlib.contextmanager
    def _corrupt_as_oserror(self):
        try:
            yield
        except RecursionError:
            raise
        except RuntimeError as error:
            raise OSError(f"damaged HDF5 file {self.path}: {error}") from error

    def keys(self) -> list[str]:
        import h5py

        names = []
        with self._corrupt_as_oserror():
            self.handle.visititems(
                lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None
            )
        return names

    def chunks(self, keys: Sequence[str], rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
        try:
            with self._corrupt_as_oserror():
                datasets = {key: self.handle[key] for key in keys}
                total = _common_length(datasets, self.path)
            for start, stop in _slices(total, rows):
                with self._corrupt_as_oserror():
                    arrays = {key: d[start:stop] for key, d in datasets.items()}
                yield Chunk(start, stop - start, arrays)
        finally:
            self.handle.close()


class ArrowTable:
    """A parquet (row batches) or feather (memory-mapped) table, converted batch by batch."""

    def __init__(self, path: Path, kind: str):
        self.path = path
        self.kind = kind
        if kind == "parquet":
            import pyarrow.parquet as parquet

            self.file = parquet.ParquetFile(path)
            self.names = list(self.file.schema_arrow.names)
        else:
            import pyarrow.feather as feather

            self.table = feather.read_table(path, memory_map=True)
            self.names = list(self.table.column_names)

    def keys(self) -> list[str]:
        return self.names

    def chunks(self, keys: Sequence[str], rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
        keys = list(dict.fromkeys(keys))
        if self.kind == "parquet":
            batches = self.file.iter_batches(batch_size=rows, columns=keys)
        else:
            batches = self.table.select(keys).to_batches(max_chunksize=rows)
        start = 0
        for batch in batches:
            columns = {key: batch.column(key).to_pylist() for key in keys}
            yield Chunk(start, batch.num_rows, columns)
            start += batch.num_rows
        # A damaged parquet file can yield fewer rows than its footer declares, without an
        # error (found by fuzzing): the rows it lost must be a rejection, not vanish.
        declared = self.file.metadata.num_rows if self.kind == "parquet" else start
        if start != declared:
            raise ValueError(f"the file declares {declared} rows but only {start} could be read")


class CsvWithArray:
    """A CSV of candidates beside a ``.npy`` array of their stamps, in the same row order."""

    def __init__(self, path: Path, array_path: Path, stamps_key: str):
        import pandas

        self.path = path
        self.array = NpyArray(array_path, stamps_key)
        self.names = [*pandas.read_csv(path, nrows=0).columns, stamps_key]

    def keys(self) -> list[str]:
        return self.names

    def chunks(self, keys: Sequence[str], rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
        import pandas

        columns = [key for key in dict.fromkeys(keys) if key != self.array.name]
        total = len(self.array.array)
        start = 0
        frames = pandas.read_csv(self.path, usecols=columns, chunksize=rows)
        with frames:
            for frame in frames:
                stop = start + len(frame)
                if stop > total:
                    raise ValueError(
                        f"{self.path} has more rows than {self.array.path} ({total}): the CSV "
                        "and its array must list the same candidates in the same order"
                    )
                data = {key: frame[key].to_numpy() for key in columns}
                data[self.array.name] = np.asarray(self.array.array[start:stop])
                yield Chunk(start, stop - start, data)
                start = stop
        if start != total:
            raise ValueError(
                f"{self.path} has {start} rows but {self.array.path} {total}: the CSV and its "
                "array must list the same candidates in the same order"
            )


def sidecar_array(path: Path, pattern: str) -> Path | None:
    """The ``.npy`` beside a CSV: ``pattern`` with ``{stem}``, or BTSbot's cand -> triplets."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    for name in (pattern.format(stem=stem), pattern.format(stem=stem.replace("cand", "triplets"))):
        candidate = path.with_name(name)
        if candidate != path and candidate.is_file():
            return candidate
    return None


def _common_length(arrays: dict, path: Path) -> int:
    lengths = {key: len(value) for key, value in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{path}: keys have different numbers of rows {lengths}")
    return next(iter(lengths.values()), 0)


def _text(value) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)
