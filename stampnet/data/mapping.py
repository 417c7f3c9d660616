"""Which key or column of a user's own stamp database is which channel, id, label, split, feature.

A ``DataMapping`` is small and explicit; it comes from a named preset (``--preset deep-hits``), a
JSON or YAML file (``--mapping FILE``, which may start from a preset with ``"preset": NAME`` and
override any field), or is chosen automatically when a file's keys or columns are exactly those
of one preset. Presets:

- ``deep-hits``: the Deep-HiTS real/bogus chunks (Cabrera-Vives et al. 2017): dicts of arrays
  ``temp_images``, ``sci_images``, ``diff_images``, ``SNR_images`` (21x21 images flattened to 441
  values), ``labels`` (1 = real, 0 = bogus), ``SNRs`` and 56 unnamed ``features`` columns (not
  among ``METADATA_FIELDS``, so not read: the metadata of these rows is missing, NaN);
- ``alerce-table``: ALeRCE's labelled stamp tables: one row per alert, ``oid``, ``class``, the
  cutouts as gzipped-FITS bytes in ``cutoutScience``/``cutoutTemplate``/``cutoutDifference`` and
  the candidate fields as flat columns (``isdiffpos`` as 't'/'f');
- ``btsbot``: BTSbot-style triplets, a ``.npy`` (N, 63, 63, 3) (science, reference, difference)
  beside a CSV of candidates in the same row order (``objectId``, ``candid``, ``label``, ...).

Example mapping file (JSON)::

    {"preset": "deep-hits", "object_id": "object_ids", "split": "split"}
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

#: Table columns read as metadata when ``feature_columns`` is "auto": every METADATA_FIELDS name
#: present (derived fields such as galactic coordinates are recomputed from ra/dec as for packets).
AUTO = "auto"


@dataclasses.dataclass(frozen=True)
class DataMapping:
    """Where each part of an alert is in an array file, table or HDF5 file.

    Args:
        channels: channel names, in stamp order (e.g. ``("science", "template", "difference")``).
        channel_keys: the key/column/dataset of each channel, same order; empty when ``stamps``
            names one (N, H, W, C) array instead.
        stamps: key/dataset of one (N, H, W, C) array, or for CSV tables the sidecar array file
            (see ``array_file``).
        object_id, candid, label, split, jd, fid: keys/columns, or None when the data has none
            (ids are then made from the file and row, ``<file>#<row>``; jd 0, fid 0).
        label_names: raw label value -> class name (e.g. ``{"0": "bogus", "1": "real"}``); values
            not listed are used as they are.
        features: key of an (N, F) feature array whose columns are ``feature_names``; names that
            are ``METADATA_FIELDS`` fill the metadata vector, the others are not read.
        feature_names: names of the columns of ``features``.
        feature_columns: flat table columns holding candidate fields, or "auto" (every
            ``METADATA_FIELDS`` name present, plus ``isdiffpos``).
        image_shape: (H, W) of images stored flattened (Deep-HiTS: 441 values = 21x21); flat
            square images need none.
        stamp_size: declared (H, W) of every stamp; smaller stamps are padded (on the CCD edge's
            side when xpos/ypos are known, else around the centre) and larger ones centre-cropped,
            with the mask saying which pixels are real. None: the first row's size.
        array_file: for CSV tables, the sidecar array file; ``{stem}`` is the CSV's name without
            its suffix. Tried as well: the stem with ``cand`` replaced by ``triplets`` (BTSbot).
        preset: the preset this mapping was made from, for the card.
    """

    channels: tuple[str, ...]
    channel_keys: tuple[str, ...] = ()
    stamps: str | None = None
    object_id: str | None = None
    candid: str | None = None
    label: str | None = None
    split: str | None = None
    jd: str | None = None
    fid: str | None = None
    label_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    features: str | None = None
    feature_names: tuple[str, ...] = ()
    feature_columns: tuple[str, ...] | str = ()
    image_shape: tuple[int, int] | None = None
    stamp_size: tuple[int, int] | None = None
    array_file: str = "{stem}.npy"
    preset: str | None = None

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "channels", tuple(str(name) for name in self.channels))
        set_(self, "channel_keys", tuple(str(key) for key in self.channel_keys))
        set_(self, "feature_names", tuple(str(name) for name in self.feature_names))
        set_(self, "label_names", {str(k): str(v) for k, v in dict(self.label_names).items()})
        if self.feature_columns != AUTO:
            set_(self, "feature_columns", tuple(self.feature_columns))
        for name in ("image_shape", "stamp_size"):
            value = getattr(self, name)
            if value is not None:
                value = (value, value) if isinstance(value, int) else tuple(int(v) for v in value)
                if len(value) != 2 or min(value) < 1:
                    raise ValueError(f"mapping {name} must be (height, width), received {value}")
                set_(self, name, value)
        if not self.channels or len(set(self.channels)) != len(self.channels):
            raise ValueError(f"mapping channels must be distinct names, received {self.channels}")
        if self.stamps is None and len(self.channel_keys) != len(self.channels):
            raise ValueError(
                f"mapping names {len(self.channels)} channels {list(self.channels)} but "
                f"{len(self.channel_keys)} keys {list(self.channel_keys)}: give one key per "
                "channel, or 'stamps' for one (N, H, W, C) array"
            )

    def required_keys(self) -> tuple[str, ...]:
        """Keys/columns that must be present (channels, and the (N, H, W, C) array if any)."""
        return self.channel_keys if self.stamps is None else ()

    def to_dict(self) -> dict:
        record = dataclasses.asdict(self)
        for name, value in record.items():
            if isinstance(value, tuple):
                record[name] = list(value)
        return record

    @classmethod
    def from_dict(cls, record: Mapping) -> DataMapping:
        """A mapping from a dict; ``preset`` starts from that preset and the rest overrides it.

        ``channels`` may be a dict ``{channel name: key}`` (``channel_keys`` follows from it) or
        a list of names (with ``channel_keys``, or ``stamps``).
        """
        record = dict(record)
        preset = record.pop("preset", None)
        base = dataclasses.asdict(PRESETS[_preset_name(preset)]) if preset else {}
        channels = record.get("channels")
        if isinstance(channels, Mapping):
            record["channels"] = list(channels)
            record["channel_keys"] = list(channels.values())
        unknown = sorted(set(record) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(
                f"unknown mapping field(s) {unknown}; known: "
                f"{[field.name for field in dataclasses.fields(cls)]}"
            )
        base.update(record)
        if preset:
            base["preset"] = _preset_name(preset)
        return cls(**base)


def _preset_name(name: str) -> str:
    key = str(name).lower().replace("_", "-")
    if key not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}")
    return key


ZTF_CHANNELS = ("science", "template", "difference")
#: What ALeRCE's and BTSbot's tables share: ZTF's three stamps, columns named after the packet's
#: candidate fields (read as metadata), 63x63 stamps.
_ZTF_TABLE = dict(
    channels=ZTF_CHANNELS, candid="candid", jd="jd", fid="fid", feature_columns=AUTO, stamp_size=63
)

PRESETS: dict[str, DataMapping] = {
    "deep-hits": DataMapping(
        channels=("template", "science", "difference", "snr_difference"),
        channel_keys=("temp_images", "sci_images", "diff_images", "SNR_images"),
        label="labels",
        label_names={"0": "bogus", "1": "real"},
        image_shape=(21, 21),
        stamp_size=(21, 21),
        preset="deep-hits",
    ),
    "alerce-table": DataMapping(
        **_ZTF_TABLE,
        channel_keys=("cutoutScience", "cutoutTemplate", "cutoutDifference"),
        object_id="oid",
        label="class",
        preset="alerce-table",
    ),
    "btsbot": DataMapping(
        **_ZTF_TABLE, stamps="triplets", object_id="objectId", label="label", preset="btsbot"
    ),
}


def preset(name: str) -> DataMapping:
    return PRESETS[_preset_name(name)]


def load_mapping(path: str | Path) -> DataMapping:
    """A mapping from a JSON (``.json``) or YAML (``.yaml``/``.yml``) file."""
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        record = yaml.safe_load(text)
    else:
        record = json.loads(text)
    if not isinstance(record, Mapping):
        raise ValueError(f"mapping file {path} must hold one object, found {type(record).__name__}")
    try:
        return DataMapping.from_dict(record)
    except (TypeError, ValueError) as error:
        raise ValueError(f"mapping file {path}: {error}") from None


def resolve_mapping(mapping=None, preset_name: str | None = None) -> DataMapping | None:
    """A mapping from a ``DataMapping``, dict, file path, or preset name; None if none given."""
    if mapping is not None and preset_name is not None:
        raise ValueError(
            "give a mapping file or a preset, not both (a mapping file can start from a preset "
            'with "preset": NAME)'
        )
    if preset_name is not None:
        return preset(preset_name)
    if mapping is None or isinstance(mapping, DataMapping):
        return mapping
    if isinstance(mapping, Mapping):
        return DataMapping.from_dict(mapping)
    return load_mapping(mapping)


def guess_mapping(keys) -> DataMapping | None:
    """The preset whose channel keys are all among ``keys`` (a file's keys or columns), if one."""
    keys = set(keys)
    for mapping in PRESETS.values():
        if mapping.channel_keys and set(mapping.channel_keys) <= keys:
            return mapping
    return None
