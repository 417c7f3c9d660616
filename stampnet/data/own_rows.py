"""One row of a user's own table, array or HDF5 chunk turned into an ``Alert`` by a
``DataMapping``: stamps stacked and fitted to the file's stamp size with a validity mask, metadata
as the ``METADATA_FIELDS`` vector (NaN = missing), ids, label and split (``stampnet.data.own``
describes what rows become; ``AlertReader`` reads the files and hands their chunks to a
``RowReader``)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from stampnet.data import chunks as chunk_lib
from stampnet.data.alert import Alert, AlertError
from stampnet.data.fits import FitsError, decode_cutout
from stampnet.data.mapping import AUTO, DataMapping
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


class RowReader:
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
