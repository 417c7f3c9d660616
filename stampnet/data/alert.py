"""The Alert record every reader yields, and how bad input is reported.

An ``Alert`` is one ZTF alert packet reduced to what stampnet learns from: the three cutouts stacked
into a fixed (63, 63, 3) float32 array with a validity mask, the raw metadata vector of
``stampnet.features.METADATA_FIELDS`` and where the packet came from. Bad input never stops a
build: readers raise ``AlertError`` for a packet they cannot use, and a ``RejectionLog`` records it
(source, candid, reason), warns, and lets the reader go on with the next packet.
"""

from __future__ import annotations

import collections
import dataclasses
import warnings

import numpy as np


@dataclasses.dataclass
class Alert:
    """One decoded alert.

    Args:
        object_id: ZTF object name (``objectId``), e.g. ``"ZTF18aaxjlwy"``.
        candid: candidate id, unique per alert.
        jd: Julian date of the observation (``candidate.jd``).
        fid: filter id (1 g, 2 r, 3 i).
        stamps: (63, 63, 3) float32 in channel order ``constants.CHANNELS``; invalid pixels are 0.0.
        stamp_mask: (63, 63, 3) bool, True = valid pixel (False: NaN in the FITS, or padding added
            where a stamp was truncated at the CCD edge).
        metadata: (len(METADATA_FIELDS),) float64 from ``features.metadata_vector``; NaN = missing.
        source: ``"path"``, ``"path::member"`` (tarball member) or ``"path#index"`` (record of a
            multi-record Avro file or row of a parquet file).
        schema_version: the candidate's ``schemavsn``; ``""`` when the packet has none (1.7/1.8).
        original_shape: stamp shape before padding, (63, 63) normally.
        history: (N, len(history.HISTORY_FIELDS)) float32 light curve of ``prv_candidates``,
            ``fp_hists`` and the alert's own detection (last, ``days`` = 0), by time
            (``stampnet.data.history``); None where it was not decoded.
    """

    object_id: str
    candid: int
    jd: float
    fid: int
    stamps: np.ndarray
    stamp_mask: np.ndarray
    metadata: np.ndarray
    source: str
    schema_version: str
    original_shape: tuple[int, int]
    history: np.ndarray | None = None


class AlertError(ValueError):
    """An alert packet (or a whole file) that cannot be turned into an ``Alert``.

    Args:
        source: the file (``"path"``, ``"path::member"``, ``"path#index"``) holding the packet.
        candid: the packet's candid, or None where it could not be read.
        reason: what is wrong and, where it helps, what was expected.
    """

    def __init__(self, source: str, candid: int | None, reason: str):
        self.source = str(source)
        self.candid = candid
        self.reason = str(reason)
        super().__init__(f"{self.source} (candid {candid}): {self.reason}")

    def __reduce__(self):
        return (type(self), (self.source, self.candid, self.reason))


@dataclasses.dataclass(frozen=True)
class Rejection:
    """One skipped packet or file: where it was, its candid (None if unknown), and why."""

    source: str
    candid: int | None
    reason: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class RejectionWarning(UserWarning):
    """Emitted for each rejected packet, so users see bad input while a build goes on."""


class RejectionLog:
    """Collects the packets and files that readers had to skip.

    Args:
        warn: emit a ``RejectionWarning`` naming the file and candid for every rejection.

    Example:
        >>> log = RejectionLog()
        >>> alerts = list(iter_alerts("ztf/", rejections=log))
        >>> log.counts()  # {"reason": count, ...}
    """

    def __init__(self, warn: bool = True):
        self.warn = warn
        self.rejections: list[Rejection] = []

    def add(self, source: str, candid: int | None, reason: str) -> Rejection:
        rejection = Rejection(str(source), candid, str(reason))
        self.rejections.append(rejection)
        if self.warn:
            warnings.warn(
                f"Skipped alert {candid} in {source}: {reason}", RejectionWarning, stacklevel=3
            )
        return rejection

    def add_error(self, error: AlertError) -> Rejection:
        return self.add(error.source, error.candid, error.reason)

    def counts(self) -> dict[str, int]:
        """Number of rejections per reason."""
        return dict(collections.Counter(rejection.reason for rejection in self.rejections))

    def to_list(self) -> list[dict]:
        return [rejection.to_dict() for rejection in self.rejections]

    def __len__(self) -> int:
        return len(self.rejections)

    def __iter__(self):
        return iter(self.rejections)

    def __repr__(self) -> str:
        return f"RejectionLog({len(self.rejections)} rejections: {self.counts()})"
