"""Decoding Avro alert containers fast: parsed schemas are reused, unneeded fields are skipped.

A ZTF archive tarball holds one Avro container file per alert, each with its own copy of the
writer schema (~20 KB of JSON). ``fastavro.reader`` parses that schema again for every alert,
and decodes the alert's history (``prv_candidates``, ``fp_hists``: tens of records of ~100
fields) that stampnet does not use. Together that is about two thirds of the cost of reading an
alert. ``AvroDecoder`` parses the container header itself, keeps the parsed writer schema (and a
reader schema limited to the requested top-level fields, so fastavro skips the rest) per distinct
schema text, and decodes records with ``fastavro.schemaless_reader``. Files on disk, which may
hold many records, are streamed with ``fastavro.reader`` instead.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Iterable, Iterator

import fastavro

AVRO_MAGIC = b"Obj\x01"
SYNC_SIZE = 16


class AvroFormatError(ValueError):
    """Bytes that break the Avro object-container format; the message says where."""


def _read_long(buffer: bytes, position: int) -> tuple[int, int]:
    """Avro zig-zag varint at ``position`` -> (value, next position)."""
    result = shift = 0
    while True:
        if position >= len(buffer):
            raise AvroFormatError("container ends inside a number (truncated)")
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), position
        shift += 7
        if shift > 63:
            raise AvroFormatError("malformed variable-length number")


def _read_bytes(buffer: bytes, position: int) -> tuple[bytes, int]:
    size, position = _read_long(buffer, position)
    if size < 0 or position + size > len(buffer):
        raise AvroFormatError(f"byte string of size {size} runs past the end of the container")
    return buffer[position : position + size], position + size


def read_header(buffer: bytes) -> tuple[dict[str, bytes], bytes, int]:
    """Container header -> (metadata map, sync marker, position of the first data block)."""
    if buffer[:4] != AVRO_MAGIC:
        raise AvroFormatError(f"not an Avro container (starts with {buffer[:4]!r})")
    metadata: dict[str, bytes] = {}
    position = 4
    while True:
        count, position = _read_long(buffer, position)
        if count == 0:
            break
        if count < 0:  # a negative block count is followed by the block's size in bytes
            count = -count
            _, position = _read_long(buffer, position)
        for _ in range(count):
            key, position = _read_bytes(buffer, position)
            value, position = _read_bytes(buffer, position)
            metadata[key.decode("utf-8")] = value
    sync = buffer[position : position + SYNC_SIZE]
    if len(sync) != SYNC_SIZE:
        raise AvroFormatError("container header is truncated")
    return metadata, sync, position + SYNC_SIZE


def _decompress(block: bytes, codec: bytes) -> bytes:
    if codec == b"null":
        return block
    if codec == b"deflate":
        return zlib.decompress(block, -15)
    if codec == b"snappy":
        import cramjam

        # Avro's snappy blocks end with the big-endian CRC32 of the uncompressed data.
        data = bytes(cramjam.snappy.decompress_raw(block[:-4]))
        if zlib.crc32(data).to_bytes(4, "big") != block[-4:]:
            raise AvroFormatError("snappy block fails its CRC32 check")
        return data
    raise AvroFormatError(f"unsupported Avro codec {codec!r} (expected null, deflate, snappy)")


def reduced_schema(writer_schema: dict, fields: Iterable[str]) -> dict:
    """The writer's record schema with only ``fields`` (in writer order) at the top level."""
    wanted = set(fields)
    return {
        **writer_schema,
        "fields": [field for field in writer_schema["fields"] if field["name"] in wanted],
    }


class AvroDecoder:
    """Decodes Avro containers, caching parsed schemas by their text.

    Args:
        fields: top-level fields to decode (all if None); others are skipped, not built.

    Example:
        >>> decoder = AvroDecoder(fields=("candid", "candidate", "cutoutScience"))
        >>> packets = list(decoder.records_of_bytes(member_bytes))
    """

    def __init__(self, fields: Iterable[str] | None = None):
        self.fields = None if fields is None else tuple(fields)
        self._schemas: dict[bytes, tuple] = {}

    def _parsed(self, schema_text: bytes) -> tuple:
        cached = self._schemas.get(schema_text)
        if cached is None:
            writer = json.loads(schema_text)
            reader = self._reader_schema(writer)
            parsed_writer = fastavro.parse_schema(writer)
            cached = (parsed_writer, reader and fastavro.parse_schema(reader))
            self._schemas[schema_text] = cached
        return cached

    def _reader_schema(self, writer: dict) -> dict | None:
        if self.fields is None or not isinstance(writer, dict) or "fields" not in writer:
            return None
        reader = reduced_schema(writer, self.fields)
        try:
            # A kept field may use a named type defined inside a dropped one: decode it all.
            fastavro.parse_schema(reader)
        except Exception:  # fastavro raises several types for unknown named types
            return None
        return reader if len(reader["fields"]) < len(writer["fields"]) else None

    def records_of_bytes(self, buffer: bytes) -> Iterator[dict]:
        """Every record of an Avro container held in memory (e.g. one tarball member)."""
        metadata, sync, position = read_header(buffer)
        if "avro.schema" not in metadata:
            raise AvroFormatError("container header has no avro.schema")
        writer, reader = self._parsed(metadata["avro.schema"])
        codec = metadata.get("avro.codec", b"null")
        while position < len(buffer):
            count, position = _read_long(buffer, position)
            block, position = _read_bytes(buffer, position)
            if buffer[position : position + SYNC_SIZE] != sync:
                raise AvroFormatError("data block is not followed by the sync marker")
            position += SYNC_SIZE
            stream = io.BytesIO(_decompress(block, codec))
            for _ in range(count):
                yield fastavro.schemaless_reader(stream, writer, reader)

    def records_of_file(self, handle) -> Iterator[dict]:
        """Every record of an Avro container file, streamed block by block."""
        reader = fastavro.reader(handle)
        if self.fields is not None:
            schema = self._reader_schema(reader.writer_schema)
            if schema is not None:
                handle.seek(0)
                reader = fastavro.reader(handle, reader_schema=schema)
        yield from reader
