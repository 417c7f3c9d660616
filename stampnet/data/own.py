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

Rows become alerts in ``stampnet.data.own_rows``; this module finds and opens the files.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from pathlib import Path

from stampnet.data import chunks as chunk_lib
from stampnet.data.alert import Alert, AlertError, RejectionLog
from stampnet.data.derived import DerivationError, add_snr_channel
from stampnet.data.errors import own_data_errors
from stampnet.data.mapping import DataMapping, guess_mapping
from stampnet.data.own_rows import RowReader
from stampnet.data.readers import iter_alerts
from stampnet.data.sources import file_format, in_directory_scan, resolve_sources


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
                elif suffix in chunk_lib.OWN_SUFFIXES or in_directory_scan(relative, item):
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
            packets = file_format(path)
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
            rows = RowReader(path, mapping, opened.keys())
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


def _with_snr(alert: Alert, rejections: RejectionLog) -> Alert | None:
    try:
        stamps, mask, channels = add_snr_channel(alert.stamps, alert.stamp_mask, alert.channels)
    except DerivationError as error:
        rejections.add(alert.source, alert.candid, f"--derive-snr: {error}")
        return None
    return dataclasses.replace(alert, stamps=stamps, stamp_mask=mask, channels=channels)


def _is_pickle(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return chunk_lib.own_format(path, handle.read(8)) == "pickle"
    except OSError:
        return False


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__
