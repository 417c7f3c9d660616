"""How ``stampnet export`` writes one chunk of alerts in each layout, and the ``mapping.json``
that reads the layout back as a user's own data (``stampnet.data.own``):

- ``deep-hits-npz`` / ``deep-hits-pickle``: Deep-HiTS chunks (Cabrera-Vives et al. 2017): dicts of
  ``temp_images``, ``sci_images``, ``diff_images``, ``SNR_images`` (flattened images), ``labels``,
  ``SNRs`` and ``features``; the SNR-difference channel is computed (``stampnet.data.derived``),
  ZTF alerts have none. ``features`` holds the ``METADATA_FIELDS`` vector, and ``object_ids``,
  ``candids``, ``jd``, ``fid`` are added so alerts keep their ids. The pickle is written with
  protocol 2, as Python 2 wrote the originals;
- ``alerce-table``: ALeRCE-style parquet, one row per alert: ``oid``, ``candid``, ``class``, the
  cutouts as the packets' gzipped-FITS bytes, and the candidate's fields as flat columns
  (``isdiffpos`` as 't'/'f');
- ``btsbot``: ``part-NNNNN_triplets.npy`` (N, 63, 63, 3) float32 beside ``part-NNNNN_cand.csv``
  (ids, label, candidate fields) in the same row order;
- ``hdf5``: ``part-NNNNN.h5`` with one dataset per channel, ``label``, ids and ``metadata``.

Array layouts store invalid pixels (NaN in the FITS, padding of cut-off stamps) as NaN, which the
readers turn back into mask False.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from stampnet.constants import CUTOUT_FIELDS
from stampnet.data.alert import Alert
from stampnet.data.derived import snr_difference
from stampnet.features import DERIVED_FIELDS, METADATA_FIELDS

LAYOUTS = ("deep-hits-npz", "deep-hits-pickle", "alerce-table", "btsbot", "hdf5")
#: Candidate fields written as flat columns: the raw ones of METADATA_FIELDS (derived ones such
#: as galactic coordinates are recomputed by the reader, as for packets).
CANDIDATE_COLUMNS = tuple(name for name in METADATA_FIELDS if name not in DERIVED_FIELDS)
#: Class names of the binary real/bogus task, in Deep-HiTS' label order (0 bogus, 1 real).
REAL_BOGUS = ("bogus", "real")


def reading_mapping(layout: str, size: int, real_bogus: bool) -> dict:
    """The ``mapping.json`` contents that read ``layout`` back (stamps of ``size`` pixels)."""
    ids = {"object_id": "object_ids", "candid": "candids", "jd": "jd", "fid": "fid"}
    if layout.startswith("deep-hits"):
        return {
            "preset": "deep-hits",
            **ids,
            "features": "features",
            "feature_names": list(METADATA_FIELDS),
            **({} if real_bogus else {"label_names": {}}),
            "image_shape": [size, size],
            "stamp_size": [size, size],
        }
    if layout == "alerce-table":
        return {"preset": "alerce-table"}
    if layout == "btsbot":
        return {"preset": "btsbot", "array_file": "{stem}.npy", "stamp_size": [size, size]}
    return {
        "channels": {name: name for name in ("science", "template", "difference")},
        "object_id": "object_id",
        "candid": "candid",
        "label": "label",
        "jd": "jd",
        "fid": "fid",
        "features": "metadata",
        "feature_names": list(METADATA_FIELDS),
        "stamp_size": [size, size],
    }


def _nan_stamps(alerts: list[Alert]) -> np.ndarray:
    stamps = np.stack([alert.stamps for alert in alerts]).astype(np.float32)
    return np.where(np.stack([alert.stamp_mask for alert in alerts]), stamps, np.nan)


def _deep_hits_chunk(rows: list) -> dict:
    alerts = [alert for alert, _, _ in rows]
    stamps = _nan_stamps(alerts)
    count = len(alerts)
    snr = np.stack(
        [snr_difference(alert.stamps[..., 2], alert.stamp_mask[..., 2]) for alert in alerts]
    )
    snr = np.where(stamps[..., 2] == stamps[..., 2], snr, np.nan)  # NaN where invalid
    sigmapsf = np.array([alert.metadata[METADATA_FIELDS.index("sigmapsf")] for alert in alerts])
    return {
        "temp_images": stamps[..., 1].reshape(count, -1),
        "sci_images": stamps[..., 0].reshape(count, -1),
        "diff_images": stamps[..., 2].reshape(count, -1),
        "SNR_images": snr.reshape(count, -1).astype(np.float32),
        "labels": _deep_hits_labels([label for _, _, label in rows]),
        # Deep-HiTS' SNRs: the candidate's; 1.0857 / sigmapsf is its SNR from the magnitude error.
        "SNRs": 2.5 / np.log(10) / sigmapsf,
        "features": np.stack([alert.metadata for alert in alerts]),
        "object_ids": np.array([alert.object_id for alert in alerts], dtype=str),
        "candids": np.array([alert.candid for alert in alerts], np.int64),
        "jd": np.array([alert.jd for alert in alerts], np.float64),
        "fid": np.array([alert.fid for alert in alerts], np.int64),
    }


def write_deep_hits_chunk(path: Path, arrays: Mapping[str, np.ndarray], fmt: str = "npz") -> Path:
    """Writes one Deep-HiTS chunk (a dict of arrays) as ``.npz``, a protocol-2 pickle (as Python
    2 wrote the originals; ``.pkl``) or HDF5 (``.h5``, one dataset per key); returns its path."""
    path = Path(path)
    if fmt == "npz":
        path = path.with_suffix(".npz")
        np.savez(path, **arrays)
    elif fmt == "pickle":
        path = path.with_suffix(".pkl")
        with open(path, "wb") as handle:
            pickle.dump(dict(arrays), handle, protocol=2)
    elif fmt == "hdf5":
        import h5py

        path = path.with_suffix(".h5")
        with h5py.File(path, "w") as handle:
            for key, value in arrays.items():
                value = np.asarray(value)
                if value.dtype.kind == "U":
                    handle.create_dataset(key, data=value.tolist(), dtype=h5py.string_dtype())
                else:
                    handle.create_dataset(key, data=value)
    else:
        raise ValueError(f"fmt must be npz, pickle or hdf5, received {fmt!r}")
    return path


def _deep_hits_labels(labels: list[str]) -> np.ndarray:
    """Deep-HiTS' int labels (1 real, 0 bogus) for real/bogus exports, else the class names."""
    if set(labels) <= set(REAL_BOGUS):
        return np.array([REAL_BOGUS.index(label) for label in labels], np.int64)
    return np.array(labels, dtype=str)


def _candidate_columns(rows: list) -> dict:
    columns = {}
    for name in CANDIDATE_COLUMNS:
        if name == "isdiffpos":
            values = [packet["candidate"].get(name) for _, packet, _ in rows]
            columns[name] = [None if value is None else str(value) for value in values]
        else:
            index = METADATA_FIELDS.index(name)
            columns[name] = np.array([alert.metadata[index] for alert, _, _ in rows])
    return columns


def _stamp_bytes(packet: Mapping, field: str) -> bytes:
    cutout = packet[field]
    return bytes(cutout["stampData"] if isinstance(cutout, Mapping) else cutout)


def write_chunk(layout: str, rows: list, out_dir: Path, part: int) -> list[Path]:
    name = f"part-{part:05d}"
    alerts = [alert for alert, _, _ in rows]
    if layout in ("deep-hits-npz", "deep-hits-pickle"):
        fmt = layout.rsplit("-", 1)[1]
        return [write_deep_hits_chunk(out_dir / name, _deep_hits_chunk(rows), fmt)]
    if layout == "alerce-table":
        import pyarrow
        import pyarrow.parquet as parquet

        columns = {
            "oid": [alert.object_id for alert in alerts],
            "candid": np.array([alert.candid for alert in alerts], np.int64),
            "class": [label for _, _, label in rows],
            **{field: [_stamp_bytes(p, field) for _, p, _ in rows] for field in CUTOUT_FIELDS},
            **_candidate_columns(rows),
        }
        path = out_dir / f"{name}.parquet"
        parquet.write_table(pyarrow.table(columns), path)
        return [path]
    if layout == "btsbot":
        import pandas

        array_path, table_path = out_dir / f"{name}_triplets.npy", out_dir / f"{name}_cand.csv"
        np.save(array_path, _nan_stamps(alerts))
        frame = pandas.DataFrame(
            {
                "objectId": [alert.object_id for alert in alerts],
                "candid": [alert.candid for alert in alerts],
                "label": [label for _, _, label in rows],
                **_candidate_columns(rows),
            }
        )
        frame.to_csv(table_path, index=False)
        return [table_path, array_path]
    import h5py

    path = out_dir / f"{name}.h5"
    stamps = _nan_stamps(alerts)
    text = h5py.string_dtype()
    with h5py.File(path, "w") as handle:
        for index, channel in enumerate(("science", "template", "difference")):
            handle.create_dataset(channel, data=stamps[..., index], compression="gzip")
        handle.create_dataset("label", data=[label for _, _, label in rows], dtype=text)
        handle.create_dataset("object_id", data=[alert.object_id for alert in alerts], dtype=text)
        handle.create_dataset("candid", data=np.array([a.candid for a in alerts], np.int64))
        handle.create_dataset("jd", data=np.array([a.jd for a in alerts], np.float64))
        handle.create_dataset("fid", data=np.array([a.fid for a in alerts], np.int64))
        handle.create_dataset("metadata", data=np.stack([a.metadata for a in alerts]))
    return [path]
