"""The Avro object-container format, read block by block (the Avro 1.x specification).

A container is a header (magic, a metadata map holding ``avro.schema`` and ``avro.codec``, a
16-byte sync marker), then data blocks: a record count, a byte size, the (compressed) records
and the sync marker again. This module reads the header and the blocks and checks them against
the sync marker, so that a corrupt block can be skipped by searching for the next marker;
``stampnet.data.avro`` decodes the records.
"""

from __future__ import annotations

import dataclasses
import zlib

AVRO_MAGIC = b"Obj\x01"
SYNC_SIZE = 16
#: Bytes read at once for the header (the ZTF schema is ~20 KB) and while resyncing.
HEADER_CHUNK = 65536
#: A header (schema and metadata) beyond this is taken as corrupt rather than read on.
MAX_HEADER = 1 << 24


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


def decompress_block(block: bytes, codec: bytes) -> bytes:
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


@dataclasses.dataclass(frozen=True)
class SkippedBlock:
    """Records ``first_record`` to ``next_record - 1`` of a file, in a block that could not be
    decoded (``next_record == first_record`` where the block's record count is unreadable)."""

    first_record: int
    next_record: int
    reason: str


def _stream_long(handle) -> int:
    result = shift = 0
    while True:
        byte = handle.read(1)
        if not byte:
            raise AvroFormatError("container ends inside a block header (truncated)")
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return (result >> 1) ^ -(result & 1)
        shift += 7
        if shift > 63:
            raise AvroFormatError("malformed variable-length number")


def read_block(handle, sync: bytes, end: int) -> tuple[int, bytes]:
    """(record count, raw block bytes) of the next data block, checked against the sync marker."""
    count = _stream_long(handle)
    size = _stream_long(handle)
    if count < 0 or size < 0 or handle.tell() + size + SYNC_SIZE > end:
        raise AvroFormatError(
            f"data block header is corrupt or the file is truncated "
            f"({count} records, {size} bytes, {end - handle.tell()} bytes left)"
        )
    block = handle.read(size)
    if handle.read(SYNC_SIZE) != sync:
        raise AvroFormatError("data block is not followed by the file's sync marker")
    return count, block


def seek_past(handle, sync: bytes, start: int) -> int:
    """Moves ``handle`` just past the next sync marker at or after ``start``; returns the offset
    (the end of the file if there is none)."""
    handle.seek(start)
    carry = b""
    while True:
        chunk = handle.read(HEADER_CHUNK)
        if not chunk:
            return handle.tell()
        window = carry + chunk
        found = window.find(sync)
        if found >= 0:
            offset = handle.tell() - len(window) + found + SYNC_SIZE
            handle.seek(offset)
            return offset
        carry = window[-(SYNC_SIZE - 1) :]
