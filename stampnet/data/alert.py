"""The Alert record every reader yields, and how bad input is reported.

An ``Alert`` is one ZTF alert packet (or one row of a user's own stamp database, see
``stampnet.data.own``) reduced to what stampnet learns from: the cutouts stacked into one (H, W, C)
float32 array with a validity mask (ZTF: (63, 63, 3)), the raw metadata vector of
``stampnet.features.METADATA_FIELDS`` (NaN where absent) and where the packet came from. Bad
input never stops a build: readers raise ``AlertError`` for a packet they cannot use, and a
``RejectionLog`` records it (source, candid, reason) and lets the reader go on with the next
packet; one warning sums them up.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gzip
import json
import os
import shutil
import tempfile
import threading
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path

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
    channels: tuple[str, ...] = CHANNELS
    label: str | None = None
    split: str | None = None
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
    """Emitted once when reading ends with rejections: their counts, an example, and where the
    full list is (``RejectionLog.warn_summary``)."""


#: Rejections kept in memory (and written into a dataset card); the rest are only counted here.
DEFAULT_KEPT_REJECTIONS = 100
#: The full list of rejections, one JSON object per line, written beside the dataset card.
REJECTIONS_FILE = "rejections.jsonl.gz"


class RejectionLog:
    """Collects the packets and files that readers had to skip, in bounded memory.

    A million bad packets must not hold a million records in memory nor a million warnings: the
    log keeps counts per reason and the first ``keep`` rejections, and streams every rejection
    to a gzip-compressed JSON-lines temporary file, which ``save`` copies beside a dataset card.
    ``warn_summary`` emits one ``RejectionWarning`` for the lot.

    Args:
        warn: whether ``warn_summary`` warns (readers call it when they own the log).
        keep: rejections kept in memory (``rejections``); the rest are counted and streamed.
        on_reject: called with each ``Rejection`` as it is added (e.g. to write a CSV row).

    Example:
        >>> log = RejectionLog()
        >>> alerts = list(iter_alerts("ztf/", rejections=log))
        >>> log.counts()  # {"reason": count, ...}
        >>> log.save("data/rejections.jsonl.gz")  # every rejection, one JSON object a line
    """

    def __init__(self, warn: bool = True, *, keep: int = DEFAULT_KEPT_REJECTIONS, on_reject=None):
        if keep < 0:
            raise ValueError(f"keep must be >= 0, received {keep}")
        self.warn = warn
        self.keep = int(keep)
        self.on_reject = on_reject
        #: The first ``keep`` rejections; ``len(log)`` and ``counts()`` cover all of them.
        self.rejections: list[Rejection] = []
        self._counts: collections.Counter = collections.Counter()
        self._total = 0
        self._file = None  # temporary file holding gzip members of JSON lines
        self._path = None
        self._stream = None  # the open gzip member being written
        self._lock = threading.Lock()  # readers may add from a prefetch thread

    def add(self, source: str, candid: int | None, reason: str) -> Rejection:
        rejection = Rejection(str(source), candid, str(reason))
        with self._lock:
            if len(self.rejections) < self.keep:
                self.rejections.append(rejection)
            self._counts[rejection.reason] += 1
            self._total += 1
            self._writer().write(json.dumps(rejection.to_dict()).encode() + b"\n")
        if self.on_reject is not None:
            self.on_reject(rejection)
        return rejection

    def add_error(self, error: AlertError) -> Rejection:
        return self.add(error.source, error.candid, error.reason)

    def counts(self) -> dict[str, int]:
        """Number of rejections per reason."""
        return dict(self._counts)

    def to_list(self) -> list[dict]:
        """The kept rejections (the first ``keep``) as dicts."""
        return [rejection.to_dict() for rejection in self.rejections]

    def __len__(self) -> int:
        return self._total

    def __iter__(self) -> Iterator[Rejection]:
        """Every rejection added so far, in order, streamed back from the temporary file."""
        with self._lock:
            if self._file is None:
                return iter(())
            self._close_member()
            size = self._file.tell()
        return self._read(size)

    def _read(self, size: int) -> Iterator[Rejection]:
        with open(self._path, "rb") as raw:
            with gzip.GzipFile(fileobj=_Prefix(raw, size), mode="rb") as lines:
                for line in lines:
                    yield Rejection(**json.loads(line))

    def save(self, path: str | Path) -> Path:
        """Writes every rejection to ``path`` (gzip JSON lines, written whole then renamed)."""
        path = Path(path)
        partial = path.with_name(path.name + ".partial")
        with self._lock, open(partial, "wb") as out:
            if self._file is None:
                gzip.GzipFile(fileobj=out, mode="wb", mtime=0).close()
            else:
                self._close_member()
                with open(self._path, "rb") as raw:
                    shutil.copyfileobj(raw, out)
        os.replace(partial, path)
        return path

    def warn_summary(self, where: str = "", saved: str | Path | None = None) -> None:
        """One ``RejectionWarning`` for all rejections (if any and ``warn``): counts per reason,
        the first one, and the file that lists them all."""
        if not self.warn or not self._total:
            return
        first = self.rejections[0] if self.rejections else None
        counts = ", ".join(f"{count} x {reason}" for reason, count in self._counts.most_common())
        message = f"{self._total} input(s) skipped{f' {where}' if where else ''}: {counts}."
        if first is not None:
            message += f" First: {first.source} (candid {first.candid}): {first.reason}."
        if saved is not None:
            message += f" All of them are listed in {saved}."
        warnings.warn(message, RejectionWarning, stacklevel=2)

    def _writer(self):
        if self._file is None:
            handle, self._path = tempfile.mkstemp(prefix="stampnet-rejections-", suffix=".gz")
            self._file = os.fdopen(handle, "ab")
            weakref.finalize(self, _remove, self._file, self._path)
        if self._stream is None:
            self._stream = gzip.GzipFile(fileobj=self._file, mode="ab", mtime=0)
        return self._stream

    def _close_member(self) -> None:
        # Ends the current gzip member; later rejections go into a new one (gzip readers read
        # concatenated members as one stream).
        if self._stream is not None:
            self._stream.close()
            self._stream = None
            self._file.flush()

    def __repr__(self) -> str:
        return f"RejectionLog({self._total} rejections: {self.counts()})"


class _Prefix:
    """The first ``size`` bytes of a binary file, as a file (rejections appended later are not
    read, so a member still being written is never seen half-done)."""

    def __init__(self, raw, size: int):
        self._raw, self._left = raw, size

    def read(self, size: int = -1) -> bytes:
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._raw.read(size)
        self._left -= len(data)
        return data


def _remove(file, path: str) -> None:
    file.close()
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
