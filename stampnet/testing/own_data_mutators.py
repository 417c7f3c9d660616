"""Mutators of a user's own data, as ``stampnet export`` writes it and its mapping reads it.

Deep-HiTS ``.npz``, HDF5, BTSbot ``.npy`` + CSV and ALeRCE-style parquet tables: odd pixel values,
wrong dtypes and shapes, rows missing from one array, deleted keys, null and non-finite cells,
corrupt cutout bytes, broken CSV lines.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

from stampnet.testing.byte_mutators import (
    BYTE_MUTATORS,
    ReplaceExtras,
    Unencodable,
    mutator,
)
from stampnet.testing.corpus import Seed
from stampnet.testing.packet_mutators import ODD_PIXELS, ODD_VALUES, stamp_bytes


def _load_arrays(kind: str, data: bytes) -> dict[str, np.ndarray]:
    if kind == "npz":
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    if kind == "hdf5":
        import h5py

        with h5py.File(io.BytesIO(data), "r") as handle:
            return {key: handle[key][()] for key in handle if isinstance(handle[key], h5py.Dataset)}
    return {"stamps": np.load(io.BytesIO(data), allow_pickle=False)}  # a BTSbot .npy


def _save_arrays(kind: str, arrays: dict[str, np.ndarray]) -> bytes:
    sink = io.BytesIO()
    if kind == "npz":
        np.savez(sink, **arrays)
    elif kind == "hdf5":
        import h5py

        with h5py.File(sink, "w") as handle:
            for key, value in arrays.items():
                value = np.asarray(value)
                if value.dtype.kind in "OU":  # strings: as fixed-length bytes
                    value = value.astype("S")
                handle.create_dataset(key, data=value)
    else:
        stamps = arrays.get("stamps", np.zeros(0, np.float32))  # a deleted key: an empty array
        np.save(sink, stamps, allow_pickle=False)
    return sink.getvalue()


def _damage_arrays(rng, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    arrays = dict(arrays)
    key = sorted(arrays)[int(rng.integers(len(arrays)))]
    value = np.array(arrays[key])
    operation = int(rng.integers(0, 6))
    if operation == 0 and value.dtype.kind == "f" and value.size:  # odd pixel/feature values
        flat = value.reshape(-1)
        picks = rng.integers(0, flat.size, size=int(rng.integers(1, min(flat.size, 5000) + 1)))
        flat[picks] = rng.choice(ODD_PIXELS, size=picks.size)
    elif operation == 1 and len(value.shape):  # rows missing from one array only
        value = value[: int(rng.integers(0, len(value)))]
    elif operation == 2:  # another dtype
        dtype = [np.int8, np.float16, np.bool_, np.uint64, "U3"][int(rng.integers(5))]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                value = value.astype(dtype)
            except (TypeError, ValueError, OverflowError) as error:  # e.g. ids to integers
                raise Unencodable(str(error)[:200]) from None
    elif operation == 3:  # another shape
        value = value[..., : max(1, value.shape[-1] // 2)] if value.ndim else value[None]
    elif operation == 4:
        del arrays[key]
        return arrays
    else:
        value = value[:0]
    arrays[key] = value
    return arrays


@mutator("npz", "hdf5")
def damage_arrays(rng, seed: Seed) -> bytes:
    return _save_arrays(seed.kind, _damage_arrays(rng, _load_arrays(seed.kind, seed.data)))


@mutator("btsbot")
def damage_sidecar_array(rng, seed: Seed) -> bytes:
    """Damages the BTSbot ``.npy`` beside the CSV (the case's extra file); keeps the CSV."""
    name, data = seed.extras[0]
    if rng.random() < 0.3:
        data = BYTE_MUTATORS[int(rng.integers(len(BYTE_MUTATORS)))](rng, Seed("npy", name, data))
    else:
        data = _save_arrays("npy", _damage_arrays(rng, _load_arrays("npy", data)))
    raise ReplaceExtras(seed.data, ((name, data),))


@mutator("btsbot")
def damage_csv(rng, seed: Seed) -> bytes:
    lines = seed.data.decode().splitlines()
    operation = int(rng.integers(0, 4))
    if operation == 0:  # a garbage line
        lines.insert(
            int(rng.integers(1, len(lines) + 1)), rng.bytes(40).hex()[: int(rng.integers(80))]
        )
    elif operation == 1 and len(lines) > 1:  # a row fewer than the array
        del lines[int(rng.integers(1, len(lines)))]
    elif operation == 2:  # an odd cell
        row = int(rng.integers(0, len(lines)))
        cells = lines[row].split(",")
        cells[int(rng.integers(len(cells)))] = str(
            rng.choice(["nan", "inf", "-inf", "", "x", "1e999"])
        )
        lines[row] = ",".join(cells)
    else:  # a column gone from the header
        cells = lines[0].split(",")
        del cells[int(rng.integers(len(cells)))]
        lines[0] = ",".join(cells)
    return ("\n".join(lines) + "\n").encode()


@mutator("table")
def damage_table(rng, seed: Seed) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as parquet

    table = parquet.read_table(io.BytesIO(seed.data))
    if rng.random() < 0.15:  # a column gone
        table = table.drop_columns([table.column_names[int(rng.integers(table.num_columns))]])
    else:
        rows = table.to_pylist()
        row = rows[int(rng.integers(len(rows)))]
        key = sorted(row)[int(rng.integers(len(row)))]
        if isinstance(row[key], bytes) and row[key][:2] == b"\x1f\x8b":
            row[key] = stamp_bytes(rng, row[key])
        else:
            row[key] = ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]
        try:
            table = pa.Table.from_pylist(rows, schema=table.schema)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as error:
            raise Unencodable(str(error)[:200]) from None
    sink = io.BytesIO()
    parquet.write_table(table, sink)
    return sink.getvalue()
