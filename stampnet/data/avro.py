"""Decoding Avro alert records fast: parsed schemas are reused, unneeded fields are skipped.

A ZTF archive tarball holds one Avro container per alert, each with its own copy of the writer
schema (~20 KB of JSON), which ``fastavro.reader`` parses again for every alert. ``AvroDecoder``
reads the container itself (``avro_container``), keeps the parsed writer schema (and a reader
schema limited to the requested fields) per distinct schema text, and decodes records with
``fastavro.schemaless_reader``. A corrupt block costs only its own records.

**The history jump** (``AvroDecoder._decode_split``). Avro cannot skip a field without decoding
it, and an alert's history (``prv_candidates``, ``fp_hists``: tens of records of ~100 fields)
is most of a packet's decoding cost, even with a reader schema that drops it. When the history is
not requested, a one-record block is decoded as: the fields before the history, then the cutouts
found by their first file name. Its contract:

- it returns exactly the requested fields that a full decode returns, or None, and then the
  block is decoded in full (slower, same result); it never returns a wrong record: a candidate
  position counts only if the cutouts decoded from it end exactly at the block's end and the
  first cutout holds gzip data;
- it applies only to blocks of one record (the ZTF archive's layout; Spark and multi-alert files
  take the reader schema), to writer schemas with ``cutoutScience`` after the skipped fields, and
  when the requested fields before ``cutoutScience`` end before the history;
- it assumes ZTF's cutout names (ending ``.fits.gz``, < 512 bytes, found among the first 16
  matches); other names fall back to the full decode.

``benchmarks/read.py`` measures it against plain fastavro and against the same decoder without it
in one run; it is moot when the history is requested (``iter_alerts(..., history=True)``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator, Mapping

import fastavro

from stampnet.data.avro_container import (
    AVRO_MAGIC,
    HEADER_CHUNK,
    MAX_HEADER,
    AvroFormatError,
    SkippedBlock,
    decompress_block,
    read_block,
    read_header,
    seek_past,
)
from stampnet.data.avro_history import ColumnarHistory
from stampnet.data.errors import CORRUPT_INPUT_ERRORS

__all__ = ["AVRO_MAGIC", "AvroDecoder", "AvroFormatError", "SkippedBlock", "reduced_schema"]

#: The first field after an alert's history; cutout file names end with CUTOUT_NAME_SUFFIX.
TAIL_START = "cutoutScience"
CUTOUT_NAME_SUFFIX = b".fits.gz"
MAX_NAME_LENGTH = 512
MAX_NAME_CANDIDATES = 16


def _encode_long(value: int) -> bytes:
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value & ~0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


#: Avro encodings of every possible cutout-name length, looked up while locating the cutouts.
_LENGTH_PREFIXES = tuple(_encode_long(length) for length in range(MAX_NAME_LENGTH))


def reduced_schema(
    writer_schema: dict, fields: Iterable[str], subfields: Mapping[str, Iterable[str]] | None = None
) -> dict:
    """The writer's record schema with only ``fields`` (in writer order) at the top level.

    ``subfields`` maps a kept field holding records (or an array / nullable union of them, as
    ``prv_candidates``) to the names kept inside those records: fastavro then skips the others
    instead of building them, which is most of the cost of decoding an alert's history.
    """
    wanted = set(fields)
    subfields = subfields or {}
    return {
        **writer_schema,
        "fields": [
            {**field, "type": _reduced_type(field["type"], set(subfields[field["name"]]))}
            if field["name"] in subfields
            else field
            for field in writer_schema["fields"]
            if field["name"] in wanted
        ],
    }


def _reduced_type(schema, names: set):
    """``schema`` with its record types (inside unions and arrays) cut down to ``names``."""
    if isinstance(schema, list):
        return [_reduced_type(branch, names) for branch in schema]
    if isinstance(schema, dict) and schema.get("type") == "array":
        return {**schema, "items": _reduced_type(schema["items"], names)}
    if isinstance(schema, dict) and schema.get("type") == "record":
        return {**schema, "fields": [f for f in schema["fields"] if f["name"] in names]}
    return schema


class AvroDecoder:
    """Decodes Avro containers, caching parsed schemas by their text.

    Args:
        fields: top-level fields to decode (all if None); others are skipped, not built.
        subfields: for some of ``fields`` holding records, the names kept inside them
            (``reduced_schema``); ignored when ``fields`` is None.
        skip_history: jump over an unwanted history in one-record blocks (``_decode_split``);
            False decodes it with the reader schema (for measuring what the jump buys).
        history_columns: for history fields among ``fields`` (``prv_candidates``,
            ``fp_hists``), the entry fields to decode into ``HistoryColumns`` with the compiled
            walker (``avro_history``) instead of lists of dicts; None: lists of dicts.

    Example:
        >>> decoder = AvroDecoder(fields=("candid", "candidate", "cutoutScience"))
        >>> with open("alerts.avro", "rb") as handle:
        ...     packets = list(decoder.records(handle))
    """

    def __init__(
        self,
        fields: Iterable[str] | None = None,
        subfields: Mapping[str, Iterable[str]] | None = None,
        *,
        skip_history: bool = True,
        history_columns: Mapping[str, Iterable[str]] | None = None,
    ):
        self.fields = None if fields is None else tuple(fields)
        self.skip_history = skip_history
        self.subfields = {key: tuple(value) for key, value in (subfields or {}).items()}
        self.history_columns = {k: tuple(v) for k, v in (history_columns or {}).items()}
        self._schemas: dict[bytes, tuple] = {}

    def _parsed(self, schema_text: bytes) -> tuple:
        cached = self._schemas.get(schema_text)
        if cached is None:
            writer = json.loads(schema_text)
            reader = self._reader_schema(writer)
            parsed_writer = fastavro.parse_schema(writer)
            cached = (
                parsed_writer,
                reader and fastavro.parse_schema(reader),
                self._split_schemas(writer) if self.skip_history else None,
                ColumnarHistory.of_schema(writer, self.fields, self.history_columns),
            )
            self._schemas[schema_text] = cached
        return cached

    def _reader_schema(self, writer: dict) -> dict | None:
        if self.fields is None or not isinstance(writer, dict) or "fields" not in writer:
            return None
        reader = reduced_schema(writer, self.fields, self.subfields)
        try:
            # A kept field may use a named type defined inside a dropped one: decode it all.
            fastavro.parse_schema(reader)
        except CORRUPT_INPUT_ERRORS:  # fastavro raises several types for unknown named types
            reader = reduced_schema(writer, self.fields)
            try:
                fastavro.parse_schema(reader)
            except CORRUPT_INPUT_ERRORS:  # as above
                return None
        return reader if reader != writer else None

    def _split_schemas(self, writer: dict) -> tuple | None:
        """(prefix, tail) writer schemas around an unwanted history, for ``_decode_split``."""
        if self.fields is None or not isinstance(writer, dict) or "fields" not in writer:
            return None
        names = [field["name"] for field in writer["fields"]]
        if TAIL_START not in names:
            return None
        tail_at = names.index(TAIL_START)
        wanted_before = [i for i, name in enumerate(names[:tail_at]) if name in self.fields]
        prefix_end = wanted_before[-1] + 1 if wanted_before else 0
        if prefix_end == tail_at:
            return None  # nothing to skip
        try:
            prefix = fastavro.parse_schema({**writer, "fields": writer["fields"][:prefix_end]})
            tail = fastavro.parse_schema({**writer, "fields": writer["fields"][tail_at:]})
        except CORRUPT_INPUT_ERRORS:  # a tail type defined in the skipped fields: no shortcut
            return None
        return prefix, tail

    def _decode_split(self, block: bytes, split: tuple) -> dict | None:
        """Decodes a one-record block without its history fields, or returns None.

        Avro cannot skip a field without decoding it, and an alert's history (prv_candidates,
        fp_hists) costs most of the decoding. So the fields before it are read with a schema that
        stops there, and the cutouts at the end are found by their first ``fileName`` (ZTF names
        end in ".fits.gz"): every position where that name's length prefix fits is tried, and
        a position counts only if the fields decoded from it end exactly at the block's end and
        the first cutout holds a gzip stamp. Anything else falls back to decoding the whole record.
        """
        prefix_schema, tail_schema = split
        stream = io.BytesIO(block)
        record = fastavro.schemaless_reader(stream, prefix_schema)
        search_from = stream.tell()
        for _ in range(MAX_NAME_CANDIDATES):
            name_end = block.find(CUTOUT_NAME_SUFFIX, search_from) + len(CUTOUT_NAME_SUFFIX)
            if name_end < len(CUTOUT_NAME_SUFFIX):
                return None
            search_from = name_end
            tail = self._tail_at(block, stream, name_end, tail_schema)
            if tail is not None:
                record.update(tail)
                return {name: record[name] for name in self.fields if name in record}
        return None

    @staticmethod
    def _tail_at(block: bytes, stream, name_end: int, tail_schema) -> dict | None:
        for length in range(len(CUTOUT_NAME_SUFFIX), MAX_NAME_LENGTH):
            encoded = _LENGTH_PREFIXES[length]
            length_at = name_end - length - len(encoded)
            if length_at < 0:
                return None
            if block[length_at : name_end - length] != encoded:
                continue
            for union_bytes in range(3):  # union branch indexes before the record and name
                stream.seek(length_at - union_bytes)
                try:
                    tail = fastavro.schemaless_reader(stream, tail_schema)
                except CORRUPT_INPUT_ERRORS:  # not the start of the cutouts
                    continue
                first = tail.get(TAIL_START)
                if (
                    stream.tell() == len(block)
                    and isinstance(first, dict)
                    and isinstance(first.get("stampData"), bytes)
                    and first["stampData"][:2] == b"\x1f\x8b"
                ):
                    return tail
        return None

    def records_of_bytes(self, buffer: bytes) -> Iterator[dict | SkippedBlock]:
        """Records of an Avro container held in memory (e.g. one tarball member)."""
        return self.records(io.BytesIO(buffer))

    def records(self, handle) -> Iterator[dict | SkippedBlock]:
        """Records of an Avro container read from a seekable binary file, block by block.

        A data block that cannot be decoded is reported by yielding a ``SkippedBlock`` instead of
        its records; reading resumes at the next block (found by its sync marker), so one bad
        block costs only its own records. A bad header raises ``AvroFormatError``.
        """
        end = handle.seek(0, io.SEEK_END)
        handle.seek(0)
        head = handle.read(HEADER_CHUNK)
        while True:
            try:
                metadata, sync, position = read_header(head)
                break
            except AvroFormatError:
                if len(head) >= min(end, MAX_HEADER):
                    raise
                head += handle.read(len(head))  # a header larger than the first chunk
        if "avro.schema" not in metadata:
            raise AvroFormatError("container header has no avro.schema")
        writer, reader, split, columnar = self._parsed(metadata["avro.schema"])
        codec = metadata.get("avro.codec", b"null")
        handle.seek(position)
        decoded = 0  # index in the file of the next record
        while position < end:
            try:
                count, block = read_block(handle, sync, end)
            except AvroFormatError as error:
                # The block's record count is unknown: later records are numbered as if none.
                yield SkippedBlock(decoded, decoded, str(error))
                position = seek_past(handle, sync, position + 1)
                continue
            position = handle.tell()
            block_start = decoded
            try:
                data = decompress_block(block, codec)
                records = columnar and columnar.records(data, count)
                if records is not None:  # a full decode's, with the history as columns
                    decoded += len(records)
                    yield from records
                    continue
                if count == 1 and split is not None:
                    record = self._decode_split(data, split)
                    if record is not None:
                        decoded += 1
                        yield record
                        continue
                stream = io.BytesIO(data)
                for _ in range(count):
                    record = fastavro.schemaless_reader(stream, writer, reader)
                    decoded += 1
                    yield record
            except CORRUPT_INPUT_ERRORS as error:  # fastavro/cramjam: many types on corrupt data
                first = decoded
                decoded = max(decoded, block_start + min(count, len(block)))
                yield SkippedBlock(first, decoded, f"{type(error).__name__}: {str(error)[:200]}")
