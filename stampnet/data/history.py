"""The light-curve history every ZTF alert carries, as per-epoch records.

A ZTF alert packet holds, besides its own detection (``candidate``), the previous 30 days of the
object: ``prv_candidates`` (earlier detections, and non-detections that only give an upper limit
``diffmaglim``) and, from schema 4.0, ``fp_hists`` (forced PSF photometry on the difference
images at the alert's position, detected or not). ``history_records`` turns both into one
(N, len(HISTORY_FIELDS)) float32 array sorted by time, one row per epoch:

- ``days``: ``jd - reference_jd`` (the alert's jd): <= 0 for the history, 0 for the alert itself;
- ``fid``: ZTF filter (1 g, 2 r, 3 i);
- ``kind``: ``KIND_DETECTION`` (0), ``KIND_UPPER_LIMIT`` (1) or ``KIND_FORCED`` (2);
- ``magpsf``, ``sigmapsf``: the PSF magnitude of the difference and its error. Detections: as
  delivered. Forced photometry: ``23.9 - 2.5 log10(flux)`` and ``1.0857 flux_error / flux`` where
  the flux is positive at >= ``FORCED_MAG_MIN_SNR`` sigma, NaN otherwise. Upper limits: NaN;
- ``diffmaglim``: the 5-sigma limiting magnitude of the difference image (every kind);
- ``isdiffpos``: 1 if the difference is positive (science brighter than template), 0 if negative;
  detections only (NaN otherwise: a forced flux carries its own sign);
- ``flux``, ``flux_error``: the signed difference flux and its error in microjansky (AB zero point
  23.9), one scale for every kind that has one. Forced photometry: ``forcediffimflux`` (DN) times
  ``10**(-0.4 (magzpsci - 23.9))``; ZTF's missing value -99999 and non-positive errors -> NaN.
  Detections: ``±10**(-0.4 (magpsf - 23.9))``, signed by ``isdiffpos``, error
  ``|flux| sigmapsf / 1.0857``. Upper limits: NaN.

Missing values are NaN. The forced photometry repeats the epochs of detections (it is measured on
every image), so one night can appear as a detection and as a forced point: they are different
measurements and both are kept; ``merge_histories`` only drops exact repeats (same kind, band and
time) of the light curves of several packets of one object.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from stampnet.data.history_columns import HistoryColumns

HISTORY_FIELDS = (
    "days",
    "fid",
    "kind",
    "magpsf",
    "sigmapsf",
    "diffmaglim",
    "isdiffpos",
    "flux",
    "flux_error",
)
KIND_DETECTION, KIND_UPPER_LIMIT, KIND_FORCED = 0, 1, 2
KIND_NAMES = ("detection", "upper_limit", "forced")
#: Packet fields decoded only when the history is wanted.
HISTORY_COLUMNS = ("prv_candidates", "fp_hists")
#: Rows of history stored per alert (``alerts`` config) and per object (``sequences``); the most
#: recent are kept. On the real sample an alert carries 19 rows at the median, 85 at the 99th
#: percentile (prv_candidates + fp_hists + itself).
MAX_ALERT_HISTORY = 64
MAX_SEQUENCE_HISTORY = 256
#: The fields of those records that ``history_records`` reads; the others are skipped.
HISTORY_SUBFIELDS = {
    "prv_candidates": ("jd", "fid", "magpsf", "sigmapsf", "diffmaglim", "isdiffpos"),
    "fp_hists": ("jd", "fid", "diffmaglim", "forcediffimflux", "forcediffimfluxunc", "magzpsci"),
}
#: AB zero point of microjansky: m = 23.9 - 2.5 log10(f / uJy).
MICROJANSKY_ZERO_POINT = 23.9
#: ZTF's placeholder for a forced flux that could not be measured.
FORCED_FLUX_MISSING = -99999.0
#: A forced flux gives a magnitude only when positive at this significance (else a limit).
FORCED_MAG_MIN_SNR = 3.0
#: 2.5 / ln(10): magnitude error of a relative flux error of 1.
MAG_PER_RELATIVE_FLUX = 2.5 / math.log(10.0)
#: Rows closer than this (days, ~9 s; ZTF exposures are 30 s long) in the same band and kind
#: are one epoch when merging (times relative to different packets differ by float32 rounding).
SAME_EPOCH_DAYS = 1.0e-4
_COLUMN = {name: index for index, name in enumerate(HISTORY_FIELDS)}


def _number(record: Mapping, name: str) -> float:
    value = record.get(name)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def _sign(isdiffpos) -> float:
    """ZTF's isdiffpos ('t'/'f', '1'/'0', or a bool) -> 1.0 / 0.0, NaN when absent."""
    if isdiffpos is None:
        return math.nan
    return _SIGNS.get(str(isdiffpos).strip().lower(), math.nan)


def _table(entries: list, names: tuple[str, ...]) -> np.ndarray:
    """Fields ``names`` of every entry as (N, len(names)) float64; None, non-numbers and
    infinities -> NaN. One numpy conversion for the whole table: per-field loops cost as much as
    decoding the history itself."""
    if isinstance(entries, HistoryColumns):
        return entries.table(names)
    try:
        values = np.array([[entry.get(name) for name in names] for entry in entries], np.float64)
    except (TypeError, ValueError):  # a string or other odd value: convert one by one
        values = np.array([[_number(entry, name) for name in names] for entry in entries])
    values = values.reshape(len(entries), len(names))
    values[~np.isfinite(values)] = np.nan
    return values


_DETECTION_FIELDS = ("jd", "fid", "magpsf", "sigmapsf", "diffmaglim")
_FORCED_FIELDS = ("jd", "fid", "diffmaglim", "forcediffimflux", "forcediffimfluxunc", "magzpsci")
_SIGNS = {"t": 1.0, "1": 1.0, "true": 1.0, "f": 0.0, "0": 0.0, "false": 0.0}


def _signs(entries: list) -> np.ndarray:
    """``_sign`` of every entry's isdiffpos; the common 't'/'f' strings by one dict look-up."""
    if isinstance(entries, HistoryColumns):
        return entries.column("isdiffpos")
    return np.array(
        [_SIGNS.get(value) if type(value) is str and value in _SIGNS else _sign(value)
         for value in (entry.get("isdiffpos") for entry in entries)],
        np.float64,
    )  # fmt: skip


def detection_rows(entries: list, reference_jd: float) -> np.ndarray:
    """``prv_candidates`` entries (or ``[candidate]``) -> rows (N, K) float64, jd-less dropped.

    An entry without ``magpsf`` (and, in ZTF packets, without ``candid``) is a non-detection:
    an upper limit at ``diffmaglim``.
    """
    return _detection_rows(_table(entries, _DETECTION_FIELDS), _signs(entries), reference_jd)


def _detection_rows(table: np.ndarray, positive: np.ndarray, reference_jd: float) -> np.ndarray:
    """``detection_rows`` of the ``_DETECTION_FIELDS`` table and the isdiffpos signs."""
    jd, fid, magpsf, sigmapsf, diffmaglim = table.T
    detected = np.isfinite(magpsf)
    flux = 10.0 ** (-0.4 * (magpsf - MICROJANSKY_ZERO_POINT))  # NaN for upper limits
    rows = np.array(  # in HISTORY_FIELDS order: columns, transposed (faster than np.stack)
        [
            jd - reference_jd,
            fid,
            np.where(detected, float(KIND_DETECTION), float(KIND_UPPER_LIMIT)),
            magpsf,
            np.where(detected, sigmapsf, np.nan),
            diffmaglim,
            np.where(detected, positive, np.nan),
            np.where(positive == 0.0, -flux, flux),
            flux * sigmapsf / MAG_PER_RELATIVE_FLUX,
        ]
    ).T
    return rows[np.isfinite(jd)]


def forced_rows(entries: list, reference_jd: float) -> np.ndarray:
    """``fp_hists`` entries -> rows (N, K) of kind ``KIND_FORCED``, jd-less dropped."""
    jd, fid, diffmaglim, flux, error, magzpsci = _table(entries, _FORCED_FIELDS).T
    missing = (flux == FORCED_FLUX_MISSING) | (error == FORCED_FLUX_MISSING) | ~(error > 0)
    scale = 10.0 ** (-0.4 * (magzpsci - MICROJANSKY_ZERO_POINT))
    flux = np.where(missing, np.nan, flux * scale)  # NaN too without a zero point
    error = np.where(missing, np.nan, error * scale)
    significant = flux >= FORCED_MAG_MIN_SNR * error
    with np.errstate(invalid="ignore", divide="ignore"):
        magpsf = MICROJANSKY_ZERO_POINT - 2.5 * np.log10(np.where(significant, flux, np.nan))
        sigmapsf = np.where(significant, MAG_PER_RELATIVE_FLUX * error / flux, np.nan)
    rows = np.array(  # in HISTORY_FIELDS order, transposed
        [jd - reference_jd, fid, np.full(len(jd), float(KIND_FORCED)), magpsf, sigmapsf,
         diffmaglim, np.full(len(jd), np.nan), flux, error]
    ).T  # fmt: skip
    return rows[np.isfinite(jd)]


def _entries(value) -> list:
    # Avro gives None or a list of dicts; parquet rows the same (or a numpy array of dicts).
    if value is None:
        return []
    if isinstance(value, HistoryColumns):  # decoded by the compiled walker (avro_history)
        return value
    return [entry for entry in value if isinstance(entry, Mapping)]


def history_records(
    packet: Mapping, reference_jd: float | None = None, *, include_alert: bool = False
) -> np.ndarray:
    """(N, len(HISTORY_FIELDS)) float32 rows of ``prv_candidates`` and ``fp_hists``, by time.

    Args:
        packet: a decoded alert packet (Avro record or parquet row as a dict).
        reference_jd: the time origin of ``days``; the packet's ``candidate.jd`` if None.
        include_alert: also add the packet's own detection (``candidate``) at ``days = 0``.

    Rows with no jd are dropped, and so are rows after ``reference_jd`` (some re-serialised
    packets of the shared sample list later epochs of the object in ``prv_candidates``: a model
    must not see the future). A packet without history gives a (0, K) array.
    """
    candidate = packet.get("candidate") if isinstance(packet.get("candidate"), Mapping) else {}
    if reference_jd is None:
        reference_jd = _number(candidate, "jd")
    previous = _entries(packet.get("prv_candidates"))
    table, signs = _table(previous, _DETECTION_FIELDS), _signs(previous)
    if include_alert and candidate:  # one conversion for the history and the alert itself
        table = np.concatenate([table, _table([candidate], _DETECTION_FIELDS)])
        signs = np.concatenate([signs, _signs([candidate])])
    array = np.concatenate(
        [
            _detection_rows(table, signs, reference_jd),
            forced_rows(_entries(packet.get("fp_hists")), reference_jd),
        ]
    )
    array = array[array[:, _COLUMN["days"]] < SAME_EPOCH_DAYS]
    if not len(array):
        return np.zeros((0, len(HISTORY_FIELDS)), np.float32)
    order = np.lexsort((array[:, _COLUMN["kind"]], array[:, _COLUMN["days"]]))
    return array[order].astype(np.float32)


def pad_history(records: np.ndarray, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """The LAST ``max_length`` rows (the most recent), right-padded with zeros, and the mask.

    Returns ``(history (max_length, K) float32, history_mask (max_length,) bool)``.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, received {max_length}")
    records = np.asarray(records, np.float32).reshape(-1, len(HISTORY_FIELDS))[-max_length:]
    history = np.zeros((max_length, len(HISTORY_FIELDS)), np.float32)
    mask = np.zeros(max_length, bool)
    history[: len(records)] = records
    mask[: len(records)] = True
    return history, mask


def light_curve_batch(alerts, max_length: int = MAX_ALERT_HISTORY):
    """Model inputs of a list of ``Alert`` records read with history: ``(light_curve (B, L, K)
    float32, light_curve_mask (B, L) float32)``, L the longest history (at most
    ``max_length``, the most recent rows), padded rows zero."""
    missing = [alert.source for alert in alerts if alert.history is None]
    if missing:
        raise ValueError(
            f"Alerts read without history (iter_alerts(..., history=True)): {missing[:3]}"
        )
    length = max([1, *(min(len(alert.history), max_length) for alert in alerts)])
    padded = [pad_history(alert.history, length) for alert in alerts]
    return (
        np.stack([rows for rows, _ in padded]),
        np.stack([mask for _, mask in padded]).astype(np.float32),
    )


def merge_histories(histories: Iterable[tuple[float, np.ndarray]], reference_jd: float):
    """One light curve from the histories of several packets of an object, de-duplicated.

    Args:
        histories: ``(jd the history's days are relative to, records)`` per packet.
        reference_jd: the time origin of the merged ``days``.

    Consecutive packets repeat most of each other's 30-day history; rows with the same kind and
    band within ``SAME_EPOCH_DAYS`` are one epoch, and the copy with the most measured values is
    kept (a later packet may carry a forced flux an earlier one had not yet).
    """
    shifted = []
    for jd, records in histories:
        records = np.asarray(records, np.float64).reshape(-1, len(HISTORY_FIELDS)).copy()
        records[:, _COLUMN["days"]] += jd - reference_jd
        shifted.append(records)
    if not shifted:
        return np.zeros((0, len(HISTORY_FIELDS)), np.float32)
    rows = np.concatenate(shifted)
    if not len(rows):
        return rows.astype(np.float32)
    measured = np.isfinite(rows).sum(axis=1)
    kind, fid = rows[:, _COLUMN["kind"]], np.nan_to_num(rows[:, _COLUMN["fid"]], nan=-1.0)
    days = rows[:, _COLUMN["days"]]
    order = np.lexsort((days, fid, kind))
    kept: list[int] = []  # per epoch, the row with the most measured values
    epoch_start = None
    for index in order:
        key = (kind[index], fid[index])
        if (
            epoch_start is not None
            and key == epoch_start[0]
            and (days[index] - epoch_start[1] < SAME_EPOCH_DAYS)
        ):
            if measured[index] > measured[kept[-1]]:
                kept[-1] = index
            continue
        epoch_start = (key, days[index])
        kept.append(index)
    rows = rows[kept]
    by_time = np.lexsort((rows[:, _COLUMN["kind"]], rows[:, _COLUMN["days"]]))
    return rows[by_time].astype(np.float32)


def history_summary(records: np.ndarray) -> dict[str, int]:
    """Counts of rows per kind (before the alert, ``days < 0``): for reports and the card."""
    records = np.asarray(records).reshape(-1, len(HISTORY_FIELDS))
    before = records[records[:, _COLUMN["days"]] < 0]
    return {name: int((before[:, _COLUMN["kind"]] == kind).sum()) for kind, name in
            enumerate(KIND_NAMES)}  # fmt: skip
