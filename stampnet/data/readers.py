"""Streaming readers of ZTF alert packets: Avro files, ZTF-archive tarballs and Fink parquet.

One entry point, ``iter_alerts(sources)``, reads whatever mix of files a user has: single- or
multi-record Avro of every ZTF schema (1.7 to 4.02, and Spark's ``topLevelRecord``
re-serialisations with nullable unions and the snappy codec), nightly ``.tar.gz`` archives of the
ZTF public archive (streamed member by member, never extracted), and Fink parquet dumps (read in
row batches). The format is told by the file's first bytes, not its name (``sources.py``).
Memory stays flat: at most one tar member, Avro data block or parquet row batch is held at a time.

Bad input never crashes a reader: a corrupt file, member or packet is recorded in the
``RejectionLog`` (source, candid if known, reason), and reading goes on with the next one.
"""

from __future__ import annotations

import functools
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from stampnet.constants import CUTOUT_FIELDS
from stampnet.data.alert import Alert, AlertError, RejectionLog
from stampnet.data.avro import AVRO_MAGIC, AvroDecoder, SkippedBlock
from stampnet.data.errors import CORRUPT_INPUT_ERRORS, parquet_errors
from stampnet.data.fits import FitsError, decode_cutout
from stampnet.data.history import HISTORY_COLUMNS, HISTORY_SUBFIELDS, history_records
from stampnet.data.sources import file_format, resolve_sources
from stampnet.data.stamps import StampError, stack_stamps
from stampnet.features import metadata_vector

#: Packet fields an Alert needs; the others (prv_candidates, fp_hists, broker values) are skipped.
ALERT_COLUMNS = ("objectId", "candid", "schemavsn", "candidate", *CUTOUT_FIELDS)
#: Tar members are read whole (one alert packet each): a larger member is rejected unread.
MAX_TAR_MEMBER_BYTES = 64 << 20
#: Rows decoded at a time from a parquet file (each row holds three stamps, ~15 KB).
PARQUET_BATCH_ROWS = 64


def _iter_avro(records, source: str, rejections: RejectionLog) -> Iterator[tuple[str, dict]]:
    """Names the records of one container: ``source`` if it holds one record, else ``#index``.

    ``records`` is a zero-argument callable returning ``AvroDecoder.records``, so that errors in
    the header are caught here too. Undecodable blocks are rejected and reading goes on.
    """
    previous = None  # (index in the file, record), yielded once the next one is known
    index = 0
    skipped = False
    try:
        for record in records():
            if isinstance(record, SkippedBlock):
                skipped = True
                rejections.add(
                    f"{source}#{record.first_record}",
                    None,
                    f"corrupt Avro data block from record {record.first_record}; its records "
                    f"were skipped ({record.reason})",
                )
                index = record.next_record
                continue
            if previous is not None:
                yield f"{source}#{previous[0]}", previous[1]
            previous = (index, record)
            index += 1
    except CORRUPT_INPUT_ERRORS as error:  # a rejection; bugs surface
        if previous is not None:
            yield f"{source}#{previous[0]}", previous[1]
        rejections.add(source, None, f"not a readable Avro file ({_describe(error)})")
        return
    if previous is not None:
        alone = index == 1 and not skipped  # a one-alert file is named by its path alone
        yield (source if alone else f"{source}#{previous[0]}"), previous[1]
    elif not skipped:
        rejections.add(source, None, "Avro file holds no records")


def _candid_from_member(name: str) -> int | None:
    stem = Path(name).name.split(".", 1)[0]
    return int(stem) if stem.isdigit() else None


def _iter_tar(
    path: Path, rejections: RejectionLog, decoder: AvroDecoder
) -> Iterator[tuple[str, dict]]:
    """Members of a (gzip-compressed) tarball, streamed: nothing is extracted to disk."""
    last = None
    try:
        with open(path, "rb") as handle, tarfile.open(fileobj=handle, mode="r|*") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                last = member.name
                source = f"{path}::{member.name}"
                if member.size > MAX_TAR_MEMBER_BYTES:  # skipped unread: the stream moves past
                    rejections.add(
                        source,
                        _candid_from_member(member.name),
                        f"tar member of {member.size} bytes exceeds the limit of "
                        f"{MAX_TAR_MEMBER_BYTES} bytes (stampnet.data.readers."
                        "MAX_TAR_MEMBER_BYTES); a ZTF alert packet is < 1 MB",
                    )
                    continue
                data = archive.extractfile(member).read()
                if not data.startswith(AVRO_MAGIC):
                    rejections.add(
                        source,
                        _candid_from_member(member.name),
                        f"tar member is not an Avro file (starts with {data[:8]!r})",
                    )
                    continue
                records = functools.partial(decoder.records_of_bytes, data)
                yield from _iter_avro(records, source, rejections)
    except CORRUPT_INPUT_ERRORS as error:  # a rejection; bugs surface
        where = f"after member {last}" if last else "at its start"
        rejections.add(
            str(path),
            None,
            f"corrupt or truncated tarball {where}; rest of the file skipped ({_describe(error)})",
        )


def _iter_parquet(path: Path, rejections: RejectionLog, columns) -> Iterator[tuple[str, dict]]:
    """Rows of a parquet file as packet dicts, decoded PARQUET_BATCH_ROWS rows at a time."""
    import pyarrow.parquet as parquet

    row = 0
    try:
        parquet_file = parquet.ParquetFile(path)
        names = parquet_file.schema_arrow.names
        selected = None if columns is None else [name for name in columns if name in names]
        for batch in parquet_file.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=selected):
            for packet in batch.to_pylist():
                yield f"{path}#{row}", packet
                row += 1
    except parquet_errors() as error:
        rejections.add(
            f"{path}#{row}",
            None,
            f"corrupt parquet data at row {row}; rest of the file skipped ({_describe(error)})",
        )


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__


def iter_packets(
    sources,
    rejections: RejectionLog | None = None,
    *,
    columns: Iterable[str] | None = None,
    subfields: Mapping[str, Iterable[str]] | None = None,
    history_columns: bool = False,
) -> Iterator[tuple[str, dict]]:
    """Raw alert packets ``(source, packet dict)`` from every file of ``sources``, in sorted order.

    Args:
        sources: a path, a directory (searched recursively), a glob, or a list of these.
        rejections: where unreadable files and members are recorded; a fresh ``RejectionLog``
            if None.
        columns: top-level packet fields to decode (all if None); the others are skipped, which
            saves decoding each alert's history (``prv_candidates``, ``fp_hists``).
        subfields: names kept inside record-valued columns of Avro files (see
            ``avro.reduced_schema``), e.g. ``history.HISTORY_SUBFIELDS``.
        history_columns: decode those subfields of Avro histories into ``HistoryColumns``.
    """
    rejections = RejectionLog() if rejections is None else rejections
    columns = None if columns is None else tuple(columns)
    decoder = AvroDecoder(columns, subfields, history_columns=history_columns and subfields)
    for path in resolve_sources(sources):
        try:
            kind = file_format(path)
        except OSError as error:
            rejections.add(str(path), None, f"cannot open file ({_describe(error)})")
            continue
        if kind == "avro":
            with open(path, "rb") as handle:
                records = functools.partial(decoder.records, handle)
                yield from _iter_avro(records, str(path), rejections)
        elif kind == "tar":
            yield from _iter_tar(path, rejections, decoder)
        elif kind == "parquet":
            yield from _iter_parquet(path, rejections, columns)
        else:
            rejections.add(
                str(path),
                None,
                "unknown file format: expected Avro ('Obj\\x01'), a (gzip) tarball of Avro "
                "alerts, or parquet ('PAR1')",
            )


def _candid_of(packet: Mapping, candidate) -> int | None:
    value = packet.get("candid")
    if value is None and isinstance(candidate, Mapping):
        value = candidate.get("candid")
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _required(candidate: Mapping, name: str, source: str, candid) -> float:
    value = candidate.get(name)
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value):
        raise AlertError(source, candid, f"candidate.{name} is missing or not a number: {value!r}")
    return value


def _cutout_array(packet: Mapping, field: str, source: str, candid) -> np.ndarray:
    cutout = packet.get(field)
    if cutout is None:
        raise AlertError(source, candid, f"{field} is missing")
    stamp_data = cutout.get("stampData") if isinstance(cutout, Mapping) else cutout
    if stamp_data is None:
        raise AlertError(source, candid, f"{field}.stampData is missing (None)")
    try:
        return decode_cutout(stamp_data)
    except FitsError as error:
        raise AlertError(source, candid, f"{field}: {error}") from None


def alert_from_packet(packet: Mapping, source: str, *, history: bool = False) -> Alert:
    """Turns one alert packet (Avro record or parquet row as a dict) into an ``Alert``.

    ``history=True`` also decodes its light curve (``stampnet.data.history.history_records``).

    Raises:
        AlertError: the packet lacks a candidate, objectId, jd or fid, a cutout is missing or not
            decodable, or the stamps have an unexpected shape or a channel without valid pixels.
    """
    if not isinstance(packet, Mapping):
        raise AlertError(source, None, f"packet is a {type(packet).__name__}, not a record")
    candidate = packet.get("candidate")
    candid = _candid_of(packet, candidate)
    if not isinstance(candidate, Mapping):
        raise AlertError(source, candid, "packet has no candidate record")
    if candid is None:
        raise AlertError(source, None, "packet has no candid")
    object_id = packet.get("objectId")
    if not isinstance(object_id, str) or not object_id:
        raise AlertError(source, candid, f"objectId is missing or not a string: {object_id!r}")
    jd = _required(candidate, "jd", source, candid)
    fid = _required(candidate, "fid", source, candid)
    cutouts = [_cutout_array(packet, field, source, candid) for field in CUTOUT_FIELDS]
    try:
        stamps, mask, original_shape = stack_stamps(
            cutouts, candidate.get("xpos"), candidate.get("ypos")
        )
    except StampError as error:
        raise AlertError(source, candid, str(error)) from None
    schema_version = packet.get("schemavsn") or candidate.get("schemavsn") or ""
    return Alert(
        object_id=object_id,
        candid=candid,
        jd=jd,
        fid=int(fid),
        stamps=stamps,
        stamp_mask=mask,
        metadata=metadata_vector(candidate),
        source=source,
        schema_version=str(schema_version),
        original_shape=original_shape,
        history=history_records(packet, jd, include_alert=True) if history else None,
    )


def iter_alerts(
    sources, *, rejections: RejectionLog | None = None, history: bool = False
) -> Iterator[Alert]:
    """Decoded ``Alert`` records from every file of ``sources`` (see ``iter_packets``).

    ``history=True`` also decodes each alert's ``prv_candidates`` and ``fp_hists`` into
    ``Alert.history``; without it they are skipped while decoding (the fast path).

    Packets that cannot be decoded are recorded in ``rejections`` and skipped; reading always goes
    on. Without a ``rejections`` log, one ``RejectionWarning`` sums them up at the end.
    """
    owned = rejections is None  # then its summary warning is ours to give, at the end
    rejections = RejectionLog() if owned else rejections
    columns = ALERT_COLUMNS + HISTORY_COLUMNS if history else ALERT_COLUMNS
    history_options = dict(subfields=HISTORY_SUBFIELDS, history_columns=True) if history else {}
    for source, packet in iter_packets(sources, rejections, columns=columns, **history_options):
        try:
            yield alert_from_packet(packet, source, history=history)
        except AlertError as error:
            rejections.add_error(error)
        except CORRUPT_INPUT_ERRORS as error:  # a packet of valid Avro but absurd content
            candid = packet.get("candid") if isinstance(packet, Mapping) else None
            candid = candid if isinstance(candid, int) else None
            rejections.add(source, candid, f"cannot decode the packet ({_describe(error)})")
    if owned:
        rejections.warn_summary(f"reading {sources}")
