"""The Alert record every reader yields, and how bad input is reported.

An ``Alert`` is one ZTF alert packet (or one row of a user's own stamp database, see
``stampnet.data.own``) reduced to what stampnet learns from: the cutouts stacked into one (H, W, C)
float32 array with a validity mask (ZTF: (63, 63, 3)), the raw metadata vector of
``stampnet.features.METADATA_FIELDS`` (NaN where absent) and where the packet came from. Bad
input never stops a build: readers raise ``AlertError`` for a packet they cannot use, and a
``RejectionLog`` records it (source, candid, reason), warns, and lets the reader go on.
"""

from __future__ import annotations

import collections
import dataclasses
import warnings

import numpy as np

from stampnet.constants import CHANNELS


@dataclasses.dataclass
class Alert:
    """One decoded alert.

    Args:
        object_id: ZTF object name (``objectId``), e.g. ``"ZTF18aaxjlwy"``.
        candid: candidate id, unique per alert.
        jd: Julian date of the observation (``candidate.jd``).
        fid: filter id (1 g, 2 r, 3 i).
        stamps: (H, W, C) float32 in the order of ``channels``; invalid pixels are 0.0. ZTF
            packets give (63, 63, 3) in ``constants.CHANNELS`` order.
        stamp_mask: (H, W, C) bool, True = valid pixel (False: NaN in the FITS, or padding added
            where a stamp was truncated at the CCD edge).
        metadata: (len(METADATA_FIELDS),) float64 from ``features.metadata_vector``; NaN = missing.
        source: ``"path"``, ``"path::member"`` (tarball member) or ``"path#index"`` (record of a
            multi-record Avro file or row of a parquet file).
        schema_version: the candidate's ``schemavsn``; ``""`` when the packet has none (1.7/1.8).
        original_shape: stamp shape before padding, (63, 63) normally.
        channels: the channel names of ``stamps``' last axis (ZTF's by default).
        label: the label the input itself carries (a label column of a table), else None (the
            build then takes it from a labels CSV, or "unknown").
        split: the split the input itself assigns (a split column, a train/ folder), else None
            (the build then draws one per object).
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
    channels: tuple[str, ...] = CHANNELS
    label: str | None = None
    split: str | None = None


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
