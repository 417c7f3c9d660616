"""One reader for every input: ZTF alert packets and a user's own arrays, tables and HDF5 files.

``AlertReader(mapping=..., allow_pickle=..., derive_snr=...)`` is called like
``readers.iter_alerts`` and yields the same ``Alert`` records, reporting bad rows to the same
``RejectionLog`` (``<file>#<row>`` and the reason). Per file, the format is told by its first
bytes (its name for CSV and pickle): Avro, ZTF tarballs and Fink parquet (a ``candidate`` column)
go to ``readers.iter_alerts``; ``.npy``, ``.npz``, HDF5, parquet/feather tables, CSV with a
sidecar ``.npy`` and (only with ``allow_pickle``) pickled Deep-HiTS chunks are read through a
``DataMapping`` (``stampnet.data.mapping``), chosen automatically when a file's keys are those
of a preset.

What rows become:
- stamps (H, W, C) float32 in the mapping's channel order, NaN/inf -> 0 with mask False; cutouts
  may be gzipped or plain FITS bytes, or numeric arrays (flat or 2-D); all rows of a file share
  the declared ``stamp_size`` (or the first row's), smaller stamps padded, larger centre-cropped;
- metadata: the ``METADATA_FIELDS`` vector with NaN where the data has no value, so rows
  without metadata are fine (images-only models use none of it);
- ids: the mapped columns, else ``<file>#<row>`` as object id and a 63-bit hash of it as candid,
  so every row is its own object and object-level splits still work;
- label and split: carried on the ``Alert`` and kept by the build; a split comes from a split
  column or a ``train``/``validation``/``test`` folder holding the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from stampnet.data import chunks as chunk_lib
from stampnet.data.alert import Alert, AlertError, RejectionLog
from stampnet.data.derived import DerivationError, add_snr_channel
from stampnet.data.errors import own_data_errors
from stampnet.data.fits import FitsError, decode_cutout
from stampnet.data.mapping import AUTO, DataMapping, guess_mapping
from stampnet.data.readers import _file_format, _in_directory_scan, iter_alerts, resolve_sources
from stampnet.data.stamps import MAX_ABS_PIXEL, StampError, fit_to_shape, stack_stamps
from stampnet.features import FLOAT32_MAX, METADATA_FIELDS, metadata_vector

SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "test": "test",
    "testing": "test",
}
_FIELD_INDEX = {name: index for index, name in enumerate(METADATA_FIELDS)}


class PickleWarning(UserWarning):
    """Reading pickled files runs whatever code they hold: emitted once per read that allows it."""


@dataclasses.dataclass
class AlertReader:
    """Reads alert packets and a user's own stamp files into ``Alert`` records.

    Args:
        mapping: a ``DataMapping`` for own-data files; None chooses a preset by the file's keys.
        allow_pickle: read pickled chunks (Deep-HiTS); they can run code, so it warns. Convert
            them once with ``stampnet convert`` and read the npz/HDF5 instead.
        derive_snr: append an ``snr_difference`` channel (``stampnet.data.derived``) to stamps
            that have a ``difference`` channel and no SNR channel.
        history: decode the light-curve history of alert packets (``Alert.history``); own-data
            rows carry none.

    Example:
        >>> reader = AlertReader(mapping=preset("deep-hits"))
        >>> for alert in reader("deep_hits/", rejections=log): ...
    """

    mapping: DataMapping | None = None
    allow_pickle: bool = False
    derive_snr: bool = False
    history: bool = False

    def reading(self) -> dict:
        """How the input was read, for the dataset card."""
        return {
            "mapping": None if self.mapping is None else self.mapping.to_dict(),
            "allow_pickle": self.allow_pickle,
            "derive_snr": self.derive_snr,
        }

    def resolve_sources(self, sources) -> list[Path]:
        """Files of ``sources``: packets as ``readers.resolve_sources`` finds them, plus own
        files in directories (a CSV only with its sidecar array, which is then not listed
        again on its own)."""
        if isinstance(sources, str | Path):
            sources = [sources]
        files: dict[Path, None] = {}
        for source in sources:
            path = Path(source)
            if not path.is_dir():
                files.update(dict.fromkeys(resolve_sources(source)))
                continue
            for item in sorted(path.rglob("*")):
                relative = item.relative_to(path)
                if not item.is_file() or any(p.startswith((".", "_")) for p in relative.parts):
                    continue
                suffix = item.suffix.lower()
                if suffix == ".csv":
                    if self._sidecar(item) is not None:
                        files[item] = None
                elif suffix in chunk_lib.OWN_SUFFIXES or _in_directory_scan(relative, item):
                    files[item] = None
        sidecars = {self._sidecar(item) for item in files if item.suffix.lower() == ".csv"}
        return [item for item in files if item not in sidecars]

    def _sidecar(self, path: Path) -> Path | None:
        pattern = self.mapping.array_file if self.mapping else DataMapping.array_file
        return chunk_lib.sidecar_array(path, pattern)

    def __call__(self, sources, *, rejections: RejectionLog | None = None) -> Iterator[Alert]:
        rejections = RejectionLog() if rejections is None else rejections
        files = self.resolve_sources(sources)
        if self.allow_pickle and any(_is_pickle(path) for path in files):
            warnings.warn(
                "Reading pickled files (allow_pickle): unpickling runs any code the file holds; "
                "read only files you trust, and convert them once with `stampnet convert`.",
                PickleWarning,
                stacklevel=2,
            )
        for path in files:
            for alert in self._read_file(path, rejections):
                if self.derive_snr:
                    alert = _with_snr(alert, rejections)
                    if alert is None:
                        continue
                yield alert

    def _read_file(self, path: Path, rejections: RejectionLog) -> Iterator[Alert]:
        try:
            with open(path, "rb") as handle:
                head = handle.read(262)
            packets = _file_format(path)
            kind = chunk_lib.own_format(path, head) if packets in (None, "parquet") else None
            opened = None
            if packets == "parquet":
                opened = chunk_lib.ArrowTable(path, "parquet")
                if "candidate" in opened.keys():
                    # Alert packets (Fink): a nested candidate record, which tables flatten.
                    opened, kind = None, None
                else:
                    kind = "parquet"
        except own_data_errors() as error:  # a corrupt file; bugs surface
            rejections.add(str(path), None, f"cannot open file ({_describe(error)})")
            return
        if kind is None:
            yield from iter_alerts(path, rejections=rejections, history=self.history)
            return
        if kind == "pickle" and not self.allow_pickle:
            rejections.add(
                str(path),
                None,
                "pickled file: reading it runs code, so it is read only with --allow-pickle "
                "(files you trust); or convert it once with `stampnet convert`",
            )
            return
        try:
            opened = opened or self._open(path, kind)
            mapping = self.mapping or guess_mapping(opened.keys())
            if mapping is None:
                raise ValueError(
                    f"no mapping says which of its keys {opened.keys()[:20]} are the channels; "
                    "pass --preset (deep-hits, alerce-table, btsbot) or --mapping FILE"
                )
            rows = _RowReader(path, mapping, opened.keys())
            for chunk in opened.chunks(rows.keys):
                for index in range(chunk.length):
                    try:
                        yield rows.alert(chunk, index)
                    except AlertError as error:
                        rejections.add_error(error)
        except own_data_errors() as error:  # a file the readers cannot go on with
            rejections.add(str(path), None, f"cannot read {kind} file ({_describe(error)})")

    def _open(self, path: Path, kind: str):
        if kind == "npz":
            return chunk_lib.ArrayDict.from_npz(path)
        if kind == "pickle":
            return chunk_lib.ArrayDict.from_pickle(path)
        if kind == "hdf5":
            return chunk_lib.Hdf5File(path)
        if kind == "feather":
            return chunk_lib.ArrowTable(path, "feather")
        mapping = self.mapping
        stamps_key = mapping.stamps if mapping and mapping.stamps else "stamps"
        if kind == "npy":
            return chunk_lib.NpyArray(path, stamps_key)
        array = self._sidecar(path)
        if array is None:
            raise ValueError(f"no array file beside the CSV (looked for {self._pattern(path)})")
        return chunk_lib.CsvWithArray(path, array, stamps_key)

    def _pattern(self, path: Path) -> str:
        pattern = self.mapping.array_file if self.mapping else DataMapping.array_file
        return pattern.format(stem=path.stem)


class _RowReader:
    """Turns row ``i`` of a chunk into an ``Alert`` following one mapping, for one file."""

    def __init__(self, path: Path, mapping: DataMapping, keys):
        self.path = path
        self.mapping = mapping
        present = set(keys)
        missing = [key for key in (*mapping.required_keys(), mapping.stamps) if key]
        missing = [key for key in missing if key not in present]
        if missing:
            raise ValueError(f"keys {missing} of the mapping are not in the file (it has {keys})")

        def optional(key):
            return key if key is not None and key in present else None

        self.object_id, self.candid = optional(mapping.object_id), optional(mapping.candid)
        self.label, self.split = optional(mapping.label), optional(mapping.split)
        self.jd, self.fid = optional(mapping.jd), optional(mapping.fid)
        self.features = optional(mapping.features)
        columns = mapping.feature_columns
        if columns == AUTO:
            columns = [key for key in keys if key in _FIELD_INDEX]
        self.feature_columns = [key for key in columns if key in present]
        keys_read = [*mapping.channel_keys, mapping.stamps, self.object_id, self.candid]
        keys_read += [self.label, self.split, self.jd, self.fid, self.features]
        self.keys = list(dict.fromkeys(k for k in [*keys_read, *self.feature_columns] if k))
        self.folder_split = SPLIT_NAMES.get(path.parent.name.lower())
        self.size = mapping.stamp_size

    def alert(self, chunk: chunk_lib.Chunk, index: int) -> Alert:
        row = chunk.start + index
        source = f"{self.path}#{row}"
        columns = chunk.columns
        candid = _integer(columns[self.candid][index]) if self.candid else None
        candid = _row_candid(source) if candid is None else candid
        try:
            return self._alert(columns, index, source, candid)
        except (FitsError, StampError, ValueError, TypeError) as error:
            raise AlertError(source, candid, str(error)) from None

    def _alert(self, columns: dict, index: int, source: str, candid: int) -> Alert:
        metadata = self._metadata(columns, index)
        images = self._images(columns, index)
        stamps, mask, original = self._stack(images, metadata)
        object_id = _text(columns[self.object_id][index]) if self.object_id else None
        jd = _number(columns[self.jd][index]) if self.jd else math.nan
        jd = metadata[_FIELD_INDEX["jd"]] if math.isnan(jd) else jd
        fid = _number(columns[self.fid][index]) if self.fid else math.nan
        fid = metadata[_FIELD_INDEX["fid"]] if math.isnan(fid) else fid
        return Alert(
            object_id=object_id or source,
            candid=candid,
            jd=0.0 if math.isnan(jd) else float(jd),
            fid=0 if math.isnan(fid) else int(fid),
            stamps=stamps,
            stamp_mask=mask,
            metadata=metadata,
            source=source,
            schema_version="",
            original_shape=original,
            channels=self.mapping.channels,
            label=self._label(columns, index),
            split=self._split(columns, index),
        )

    def _images(self, columns: dict, index: int) -> list[np.ndarray]:
        mapping = self.mapping
        if mapping.stamps:
            stack = np.asarray(columns[mapping.stamps][index], np.float32)
            if stack.ndim != 3 or stack.shape[-1] != len(mapping.channels):
                raise ValueError(
                    f"{mapping.stamps} row has shape {stack.shape}, expected (H, W, "
                    f"{len(mapping.channels)}) for channels {list(mapping.channels)}"
                )
            return [stack[..., c] for c in range(stack.shape[-1])]
        return [
            _image(columns[key][index], key, mapping.image_shape) for key in mapping.channel_keys
        ]

    def _stack(self, images, metadata):
        shapes = {image.shape for image in images}
        if len(shapes) != 1:
            raise StampError(f"channels have different shapes {[i.shape for i in images]}")
        shape = shapes.pop()
        if self.size is None:
            self.size = shape  # the first row's size, for every row of the file
        height, width = self.size
        xpos, ypos = metadata[_FIELD_INDEX["xpos"]], metadata[_FIELD_INDEX["ypos"]]
        square = height == width and shape[0] <= height and shape[1] <= width
        if square and (shape == self.size or (np.isfinite(xpos) and np.isfinite(ypos))):
            # As for ZTF packets: cut-off stamps padded on the side of the CCD edge.
            return stack_stamps(images, xpos, ypos, num_channels=len(images), size=height)
        stacked = np.stack(images, axis=-1).astype(np.float32)
        valid = np.isfinite(stacked)
        stacked[~valid] = 0.0
        np.clip(stacked, -MAX_ABS_PIXEL, MAX_ABS_PIXEL, out=stacked)  # as stack_stamps does
        empty = [c for c in range(stacked.shape[-1]) if not valid[..., c].any()]
        if empty:
            raise StampError(f"channel(s) {empty} hold no valid (finite) pixel")
        stamps, mask = fit_to_shape(stacked, valid, height, width)
        return stamps, mask, shape

    def _metadata(self, columns: dict, index: int) -> np.ndarray:
        if self.feature_columns:
            candidate = {key: _value(columns[key][index]) for key in self.feature_columns}
            metadata = metadata_vector(candidate)
            for key, value in candidate.items():  # e.g. a non_detections column, no history
                position = _FIELD_INDEX[key]
                if math.isnan(metadata[position]) and key != "isdiffpos":
                    metadata[position] = _number(value)
        else:
            metadata = np.full(len(METADATA_FIELDS), np.nan)
        if self.features:
            values = np.asarray(columns[self.features][index], np.float64).reshape(-1)
            names = self.mapping.feature_names
            if len(names) != len(values):
                raise ValueError(
                    f"{self.features} has {len(values)} values but the mapping names "
                    f"{len(names)} feature_names"
                )
            for name, value in zip(names, values, strict=True):
                if name in _FIELD_INDEX:
                    metadata[_FIELD_INDEX[name]] = value
        # NaN = missing; an infinite value (or one beyond float32, as stored) is a corrupt cell,
        # not a measurement (found by fuzzing).
        usable = np.isfinite(metadata) & (np.abs(metadata) <= FLOAT32_MAX)
        return np.where(usable, metadata, np.nan)

    def _label(self, columns: dict, index: int) -> str | None:
        if not self.label:
            return None
        value = _value(columns[self.label][index])
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value)
        return self.mapping.label_names.get(text, text)

    def _split(self, columns: dict, index: int) -> str | None:
        if not self.split:
            return self.folder_split
        value = _value(columns[self.split][index])
        if value is None or value == "":
            return self.folder_split
        split = SPLIT_NAMES.get(str(value).strip().lower())
        if split is None:
            raise ValueError(
                f"split {value!r} is not one of {sorted(set(SPLIT_NAMES))} (column {self.split})"
            )
        return split


def _image(value, key: str, image_shape) -> np.ndarray:
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return decode_cutout(bytes(value))
        except FitsError as error:
            raise FitsError(f"{key}: {error}") from None
    if value is None:
        raise ValueError(f"{key} is missing")
    array = np.asarray(value, np.float32)
    if array.ndim == 1:
        shape = image_shape
        if shape is None:
            side = math.isqrt(array.size)
            if side * side != array.size:
                raise ValueError(
                    f"{key} holds {array.size} values, not a square image: give image_shape"
                )
            shape = (side, side)
        if array.size != shape[0] * shape[1]:
            raise ValueError(f"{key} holds {array.size} values, expected {shape[0]}x{shape[1]}")
        return array.reshape(shape)
    if array.ndim == 2 and array.dtype != object:
        return array
    raise ValueError(f"{key} has shape {array.shape}; expected a 2-D image, a flat one, or FITS")


def _with_snr(alert: Alert, rejections: RejectionLog) -> Alert | None:
    try:
        stamps, mask, channels = add_snr_channel(alert.stamps, alert.stamp_mask, alert.channels)
    except DerivationError as error:
        rejections.add(alert.source, alert.candid, f"--derive-snr: {error}")
        return None
    return dataclasses.replace(alert, stamps=stamps, stamp_mask=mask, channels=channels)


def _row_candid(source: str) -> int:
    """A stable 63-bit id for a row without a candid (fits SQLite's signed integers)."""
    digest = hashlib.blake2b(source.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def _value(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value


def _text(value) -> str | None:
    value = _value(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _number(value) -> float:
    try:
        return float(_value(value))
    except (TypeError, ValueError):
        return math.nan


def _integer(value) -> int | None:
    value = _value(value)
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number


def _is_pickle(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return chunk_lib.own_format(path, handle.read(8)) == "pickle"
    except OSError:
        return False


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__
