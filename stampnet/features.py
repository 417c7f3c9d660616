"""Metadata features of an alert: the one module that defines them.

Every alert is reduced to a fixed vector of raw metadata values, ``METADATA_FIELDS`` (NaN where a
field is missing, e.g. ``drb`` before schema 3.3), stored in the datasets as is. A model selects
its *feature set* from it by name and normalises it itself (clip, then z-score with train
statistics), so normalisation choices never need a dataset rebuild.

Feature sets:
- ``alerce23``: the 23 features of the ALeRCE stamp classifier paper (Carrasco-Davis et al. 2021).
- ``alerce26``: the 26 features of ALeRCE's published June 2020 weights (adds rb, distnr, magnr).
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from stampnet.sky import sky_coordinates

ALERCE23 = (
    "sgscore1", "distpsnr1", "sgscore2", "distpsnr2", "sgscore3", "distpsnr3", "isdiffpos",
    "fwhm", "magpsf", "sigmapsf", "ra", "dec", "diffmaglim", "classtar", "ndethist", "ncovhist",
    "ecl_lat", "ecl_long", "gal_lat", "gal_long", "non_detections", "chinr", "sharpnr",
)  # fmt: skip
ALERCE26 = (
    "sgscore1", "distpsnr1", "sgscore2", "distpsnr2", "sgscore3", "distpsnr3", "isdiffpos",
    "fwhm", "magpsf", "sigmapsf", "ra", "dec", "diffmaglim", "rb", "distnr", "magnr", "classtar",
    "ndethist", "ncovhist", "ecl_lat", "ecl_long", "gal_lat", "gal_long", "non_detections",
    "chinr", "sharpnr",
)  # fmt: skip
FEATURE_SETS = {"alerce23": ALERCE23, "alerce26": ALERCE26, "none": ()}
DEFAULT_FEATURE_SET = "alerce23"

#: Features derived from candidate fields rather than copied from them.
DERIVED_FIELDS = ("ecl_lat", "ecl_long", "gal_lat", "gal_long", "non_detections")

#: Per-detection values the sequence models read, in this order (see ``detection_features``).
DETECTION_FIELDS = ("magpsf", "sigmapsf", "diffmaglim", "isdiffpos", "fid")

#: The raw metadata vector stored with every alert: the union of all feature sets, what the
#: sequence models need per detection, and fields used for labels, quality cuts and padding.
METADATA_FIELDS = tuple(
    dict.fromkeys(
        ALERCE26
        + DETECTION_FIELDS
        + ("jd", "drb", "xpos", "ypos", "ssdistnr", "ssmagnr", "nbad", "elong", "programid")
    )
)

#: ALeRCE's clipping ranges (lower, upper); None means unbounded on that side.
ALERCE_CLIPPING = {
    **{name: (-1.0, None) for name in ("sgscore1", "sgscore2", "sgscore3")},
    **{name: (-1.0, None) for name in ("distpsnr1", "distpsnr2", "distpsnr3", "distnr", "magnr")},
    "fwhm": (None, 10.0),
    "ndethist": (None, 20.0),
    "ncovhist": (None, 3000.0),
    "chinr": (-1.0, 15.0),
    "sharpnr": (-1.0, 1.5),
    "non_detections": (None, 2000.0),
}

#: ZTF's value for "no catalogue match": no PS1 source within 30" (``sgscore``/``distpsnr``), no
#: reference-image source (``distnr``, ``magnr``, ``chinr``, ``sharpnr``), no known asteroid.
NO_MATCH = -999.0
NO_MATCH_FIELDS = (
    "sgscore1", "distpsnr1", "sgscore2", "distpsnr2", "sgscore3", "distpsnr3",
    "distnr", "magnr", "chinr", "sharpnr", "ssdistnr", "ssmagnr",
)  # fmt: skip
#: ZTF looks for catalogue matches within a radius (arcsec; ``distnr``: reference-image pixels), so
#: a distance listed beyond it is not a match. In 285 of the 838 real alerts of the night of
#: 2023-10-18 in ../shared/data/ztf the first PS1 slot reads distpsnr1 = 120", sgscore1 = 0.2 and
#: ssdistnr = 60", while the second and third PS1 slots hold sources at 2-25" (as the other
#: alerts' do); no other night holds such values.
MATCH_RADIUS = {"distpsnr1": 30.0, "distpsnr2": 30.0, "distpsnr3": 30.0, "distnr": 30.0,
                "ssdistnr": 30.0}  # fmt: skip
#: The fields of a match that go missing with its distance.
MATCH_OF = {
    "sgscore1": "distpsnr1", "sgscore2": "distpsnr2", "sgscore3": "distpsnr3",
    "magnr": "distnr", "chinr": "distnr", "sharpnr": "distnr", "ssmagnr": "ssdistnr",
}  # fmt: skip
#: How a model reads a missing match: ``clip`` (ALeRCE's: -999 clipped to -1, a value below any
#: real one) or ``missing`` (like any missing value: normalised to 0, the train mean of the
#: matches). ALeRCE's published weights were trained with ``clip``.
NO_MATCH_ENCODINGS = ("clip", "missing")
#: The recipe's (``--no-match-as``), since round 14: it kept asteroids in fields without a PS1
#: source from reading as SNe on the real sample; ALeRCE's imported models keep their ``clip``.
DEFAULT_NO_MATCH = "missing"


def resolve_feature_names(feature_set: str | Sequence[str]) -> tuple[str, ...]:
    """Returns the feature names of a named set, or checks and returns an explicit list."""
    if isinstance(feature_set, str):
        if feature_set not in FEATURE_SETS:
            raise ValueError(
                f"Unknown feature set {feature_set!r}; expected one of {sorted(FEATURE_SETS)} "
                "or an explicit list of names from stampnet.features.METADATA_FIELDS."
            )
        return FEATURE_SETS[feature_set]
    names = tuple(feature_set)
    unknown = [name for name in names if name not in METADATA_FIELDS]
    if unknown:
        raise ValueError(f"Unknown features {unknown}; known: {METADATA_FIELDS}")
    return names


def metadata_indices(names: Sequence[str]) -> list[int]:
    """Positions of ``names`` in the stored metadata vector."""
    return [METADATA_FIELDS.index(name) for name in names]


@dataclasses.dataclass(frozen=True)
class FeatureStats:
    """Everything needed to normalise a feature set: clip, then ``(x - mean) / std``.

    Args:
        names: feature names, in model input order.
        mean, std: train-split statistics, one per name.
        clip_low, clip_high: per-name bounds; NaN where unbounded.
        missing_value: per-name value that means "missing" (ZTF's -999 for no match, under the
            ``missing`` encoding), NaN where none; empty: no such value (ALeRCE's clipping).
        missing_above: per-name bound above which a value is not a match and reads as missing
            (a match distance beyond the search radius, ``MATCH_RADIUS``, under ``missing``),
            NaN where none.
        missing_with: per name, the feature whose missing value makes this one missing too (a
            match's score or magnitude goes with its distance, ``MATCH_OF``), "" where none; a
            name outside ``names`` is ignored. Both empty in statistics saved before they
            existed: no such rule.
    """

    names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    clip_low: tuple[float, ...]
    clip_high: tuple[float, ...]
    missing_value: tuple[float, ...] = ()
    missing_above: tuple[float, ...] = ()
    missing_with: tuple[str, ...] = ()

    def __post_init__(self):
        for field in ("missing_value", "missing_above", "missing_with"):
            column = getattr(self, field)
            if column and len(column) != len(self.names):
                raise ValueError(f"{field} has {len(column)} entries for {len(self.names)} names")

    def partner_indices(self) -> list[int]:
        """Per name, the index of the feature it goes missing with (``missing_with``), else its
        own index."""
        position = {name: index for index, name in enumerate(self.names)}
        partners = self.missing_with or ("",) * len(self.names)
        return [position.get(partner, index) for index, partner in enumerate(partners)]

    @property
    def no_match(self) -> str:
        """The encoding of a missing catalogue match (``NO_MATCH_ENCODINGS``)."""
        return "missing" if self.missing_value else "clip"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, config: Mapping) -> FeatureStats:
        # Models saved before ``missing_value`` existed carry no such key: ALeRCE's clipping.
        return cls(**{key: tuple(config[key]) for key in cls.__dataclass_fields__ if key in config})

    def select(self, names: Sequence[str]) -> FeatureStats:
        """The statistics of ``names``, a subset of this one's, in that order."""
        positions = {name: index for index, name in enumerate(self.names)}
        unknown = [name for name in names if name not in positions]
        if unknown:
            raise ValueError(f"No statistics for {unknown}; these hold {self.names}")
        pick = [positions[name] for name in names]
        return FeatureStats(
            *(
                tuple(column[i] for i in pick) if column else ()
                for column in dataclasses.astuple(self)
            )
        )

    @classmethod
    def from_alerce_json(cls, path: str | Path) -> FeatureStats:
        """Reads ALeRCE's ``feature_norm_stats.json`` (feature order, clipping, mean/std)."""
        data = json.loads(Path(path).read_text())
        names = tuple(data["feature_order"])
        clipping = {name: tuple(bounds) for name, bounds in data.get("clipping", {}).items()}
        return cls.from_values(
            names,
            mean=[data["stats"][name]["mean"] for name in names],
            std=[data["stats"][name]["std"] for name in names],
            clipping=clipping,
        )

    @classmethod
    def from_values(cls, names, mean, std, clipping=None, no_match="clip") -> FeatureStats:
        """Statistics from given means and stds; clipping: ALeRCE's unless given."""
        clipping = ALERCE_CLIPPING if clipping is None else clipping
        low, high = [], []
        for name in names:
            lo, hi = clipping.get(name, (None, None))
            low.append(math.nan if lo is None else float(lo))
            high.append(math.nan if hi is None else float(hi))
        stats = cls(
            tuple(names),
            tuple(float(m) for m in mean),
            tuple(float(s) for s in std),
            tuple(low),
            tuple(high),
        )
        return stats.with_no_match(no_match)

    def with_no_match(self, no_match: str) -> FeatureStats:
        """These statistics with a missing catalogue match read as ``no_match`` says (the means
        and stds are kept: fit them under the same encoding)."""
        if no_match not in NO_MATCH_ENCODINGS:
            raise ValueError(f"no_match={no_match!r}; expected one of {NO_MATCH_ENCODINGS}")
        missing, above, partner = (), (), ()
        if no_match == "missing":
            missing = tuple(
                NO_MATCH if name in NO_MATCH_FIELDS else math.nan for name in self.names
            )
            above = tuple(MATCH_RADIUS.get(name, math.nan) for name in self.names)
            partner = tuple(MATCH_OF.get(name, "") for name in self.names)
        return dataclasses.replace(
            self, missing_value=missing, missing_above=above, missing_with=partner
        )

    @classmethod
    def fit(
        cls, names: Sequence[str], values: np.ndarray, clipping=None, no_match="clip"
    ) -> FeatureStats:
        """Train statistics of clipped ``values`` (N, len(names)), ignoring NaN (missing)."""
        unfitted = cls.from_values(
            names, [0.0] * len(names), [1.0] * len(names), clipping, no_match
        )
        clipped = unfitted.clip(unfitted.mask_missing(values))
        with warnings.catch_warnings():
            # A feature missing from every train alert (e.g. drb before schema 3.3) is expected:
            # it gets mean 0, std 1 instead of numpy's "Mean of empty slice" warning.
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nan_to_num(np.nanmean(clipped, axis=0), nan=0.0)
            std = np.nan_to_num(np.nanstd(clipped, axis=0), nan=1.0)
        std = np.where(std > 0, std, 1.0)  # a constant feature must not divide by zero
        return dataclasses.replace(
            unfitted, mean=tuple(float(m) for m in mean), std=tuple(float(d) for d in std)
        )

    def mask_missing(self, values: np.ndarray) -> np.ndarray:
        """``values`` as float64 with NaN where a value means missing (``missing_value``,
        ``missing_above``, ``missing_with``)."""
        values = np.asarray(values, dtype=np.float64)
        if self.missing_value:
            values = np.where(values == np.asarray(self.missing_value), np.nan, values)
        if self.missing_above:
            above = np.asarray(self.missing_above)
            values = np.where(~np.isnan(above) & (values > above), np.nan, values)
        if self.missing_with:
            values = np.where(np.isnan(values[..., self.partner_indices()]), np.nan, values)
        return values

    def clip(self, values: np.ndarray) -> np.ndarray:
        low = np.asarray(self.clip_low)
        high = np.asarray(self.clip_high)
        values = np.where(np.isnan(low) | ~(values < low), values, low)
        return np.where(np.isnan(high) | ~(values > high), values, high)

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """Numpy reference of ``stampnet.layers.FeatureNormalization`` (missing -> 0)."""
        clipped = self.clip(self.mask_missing(values))
        normalised = (clipped - np.asarray(self.mean)) / np.asarray(self.std)
        return np.nan_to_num(normalised, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


#: The largest float32: metadata are stored as float32 (TFRecords, model inputs).
FLOAT32_MAX = 3.4028234663852886e38


def _as_float(value) -> float:
    """The value as a float; NaN (missing) when absent, not a number, or infinite (no
    measurement is infinite: an inf is a corrupt field, and must not reach a model)."""
    if value is None:
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan
    # Stored as float32: a value beyond its range would become inf there.
    return number if math.isfinite(number) and abs(number) <= FLOAT32_MAX else math.nan


def isdiffpos_value(value) -> float:
    """ALeRCE's encoding, kept verbatim: 'f' (negative difference) -> 1, 't' -> 0 (sic)."""
    if value is None:
        return math.nan
    text = str(value).strip().lower()
    if text in ("t", "1", "true"):
        return 0.0
    if text in ("f", "0", "false"):
        return 1.0
    return math.nan


def metadata_vector(candidate: Mapping) -> np.ndarray:
    """The raw ``METADATA_FIELDS`` vector (float64, NaN = missing) of one alert's candidate."""
    values = {name: _as_float(candidate.get(name)) for name in METADATA_FIELDS}
    values["isdiffpos"] = isdiffpos_value(candidate.get("isdiffpos"))
    # ALeRCE takes non_detections from the unclipped history counts.
    values["non_detections"] = values["ncovhist"] - values["ndethist"]
    coordinates = sky_coordinates(values["ra"], values["dec"])
    values.update({name: float(value) for name, value in coordinates.items()})
    return np.array([values[name] for name in METADATA_FIELDS], dtype=np.float64)
