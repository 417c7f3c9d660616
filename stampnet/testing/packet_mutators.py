"""Mutators of alert packets and tarballs: decode, damage, re-encode with the packet's schema.

Packet mutators (Avro records, parquet rows) damage a cutout (corrupt gzip, broken FITS header or
data, other shapes and BITPIX, missing stamps) or a field (NaN, inf, extremes, null, wrong types);
container mutators make tarballs with damaged, foreign, empty or duplicated members, links and
directories.
"""

from __future__ import annotations

import copy
import gzip
import io
import math
import tarfile

import fastavro
import numpy as np

from stampnet.constants import CUTOUT_FIELDS
from stampnet.features import METADATA_FIELDS
from stampnet.testing.byte_mutators import Unencodable, flip_bits, mutator
from stampnet.testing.corpus import SYNC, Seed, avro_seed

#: Values a damaged field takes: missing, non-finite, extreme, of the wrong type.
ODD_VALUES = (
    None, math.nan, math.inf, -math.inf, 1e308, -1e308, 0.0, -1.0, 2**62, -(2**62), "", "x",
    True,
)  # fmt: skip
#: Pixel values of damaged stamps: non-finite, float32 extremes, denormals.
ODD_PIXELS = (np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 1e-45, 0.0)
#: FITS header changes (keyword, value) that a reader must survive.
HEADER_EDITS = (
    ("BITPIX", "16"), ("BITPIX", "8"), ("BITPIX", "64"), ("BITPIX", "-64"), ("BITPIX", "7"),
    ("NAXIS", "3"), ("NAXIS", "0"), ("NAXIS", "1"), ("NAXIS1", "1000000000"), ("NAXIS2", "-5"),
    ("NAXIS1", "abc"), ("BSCALE", "0"), ("BZERO", "1E308"), ("BLANK", "-32768"),
    ("END", ""),
)  # fmt: skip


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _fits(image: np.ndarray, bitpix: int) -> bytes:
    from astropy.io import fits

    dtype = {8: np.uint8, 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}[bitpix]
    sink = io.BytesIO()
    fits.PrimaryHDU(np.asarray(image).astype(dtype)).writeto(sink)
    return sink.getvalue()


def stamp_bytes(rng, original: bytes) -> bytes:
    """Damaged cutout bytes: corrupt gzip, broken FITS header/data, other shape or BITPIX."""
    choice = int(rng.integers(0, 7))
    raw = gzip.decompress(original) if original[:2] == b"\x1f\x8b" else original
    if choice == 0:  # corrupt the compressed stream
        return flip_bits(rng, Seed("avro", "", original))
    if choice == 1:  # truncated compressed stream
        return original[: int(rng.integers(0, len(original)))]
    if choice == 2:  # an edited header card
        keyword, value = HEADER_EDITS[int(rng.integers(len(HEADER_EDITS)))]
        return _gzip(_edit_header(raw, keyword, value))
    if choice == 3:  # truncated FITS inside a valid gzip stream
        return _gzip(raw[: int(rng.integers(0, len(raw)))])
    if choice == 4:  # odd pixel values
        size = 63 * 63
        enough = len(raw) >= 2880 + 4 * size
        flat = np.frombuffer(raw, ">f4", size, 2880).copy() if enough else np.zeros(size)
        picks = rng.integers(0, flat.size, size=int(rng.integers(1, flat.size + 1)))
        flat[picks] = rng.choice(ODD_PIXELS, size=picks.size)
        return _gzip(_fits(flat.reshape(63, 63), -32))
    if choice == 5:  # other shapes (1-D to 3-D, empty axes) and BITPIX
        ndim = int(rng.integers(1, 4))
        shape = tuple(int(side) for side in rng.integers(0, 80 if ndim < 3 else 12, size=ndim))
        bitpix = int(rng.choice([8, 16, 32, 64, -32, -64]))
        return _gzip(_fits(rng.normal(100, 30, size=shape), bitpix))
    return rng.bytes(int(rng.integers(0, 64)))  # not FITS at all


def _edit_header(raw: bytes, keyword: str, value: str) -> bytes:
    cards = [raw[start : start + 80] for start in range(0, 2880, 80)]
    card = f"{keyword:<8}= {value:>20}".ljust(80).encode() if value else b" " * 80
    for index, existing in enumerate(cards):
        if existing[:8].rstrip() == keyword.encode():
            cards[index] = card
            break
    else:  # a keyword that was absent: in place of the first blank card
        blank = next((i for i, c in enumerate(cards) if not c.strip()), len(cards) - 1)
        cards[blank] = card
    return b"".join(cards) + raw[2880:]


def _damage_record(rng, record: dict) -> dict:
    record = copy.deepcopy(record)
    roll = rng.random()
    if roll < 0.45:
        field = CUTOUT_FIELDS[int(rng.integers(len(CUTOUT_FIELDS)))]
        cutout = record.get(field)
        if isinstance(cutout, dict) and isinstance(cutout.get("stampData"), bytes):
            if rng.random() < 0.1:
                record[field] = None
            else:
                cutout["stampData"] = stamp_bytes(rng, cutout["stampData"])
        return record
    if roll < 0.55:  # all three stamps reshaped alike (a consistent but odd geometry)
        shape = tuple(int(side) for side in rng.integers(1, 80, size=2))
        for field in CUTOUT_FIELDS:
            if isinstance(record.get(field), dict):
                record[field]["stampData"] = _gzip(_fits(rng.normal(0, 1, size=shape), -32))
        return record
    candidate = record.get("candidate")
    names = ("objectId", "candid", "candidate") if rng.random() < 0.2 else None
    if names is None and isinstance(candidate, dict):
        name = str(rng.choice([*METADATA_FIELDS[:40], "jd", "fid", "xpos", "ypos", "candid"]))
        if name in candidate:
            candidate[name] = ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]
            return record
    name = str(rng.choice(names or ("objectId", "candid")))
    record[name] = ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]
    return record


def _encode_avro(schema: dict, records, codec: str) -> bytes:
    sink = io.BytesIO()
    try:
        fastavro.writer(sink, schema, list(records), codec=codec, validator=True, sync_marker=SYNC)
    except (ValueError, TypeError, OverflowError, fastavro.validation.ValidationError) as error:
        raise Unencodable(str(error)[:200]) from None
    return sink.getvalue()


@mutator("avro")
def damage_packet(rng, seed: Seed) -> bytes:
    records = list(seed.records)
    index = int(rng.integers(len(records)))
    records[index] = _damage_record(rng, records[index])
    return _encode_avro(seed.schema, records, seed.codec)


@mutator("parquet")
def damage_row(rng, seed: Seed) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as parquet

    rows = list(seed.records)
    index = int(rng.integers(len(rows)))
    rows[index] = _damage_record(rng, rows[index])
    schema = parquet.read_schema(io.BytesIO(seed.data))
    try:
        table = pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as error:
        raise Unencodable(str(error)[:200]) from None
    sink = io.BytesIO()
    parquet.write_table(table, sink)
    return sink.getvalue()


# ---------------------------------------------------------------------- container mutators
def _tarball(members, rng) -> bytes:
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w") as archive:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, "elsewhere.avro"
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return _gzip(sink.getvalue())  # gzip header time 0: equal cases have equal bytes


@mutator("tar")
def damage_member(rng, seed: Seed) -> bytes:
    members = [(name, data, "file") for name, data in seed.members]
    index = int(rng.integers(len(members)))
    name, data, _ = members[index]
    avro = avro_seed(name, data)
    members[index] = (name, damage_packet(rng, avro), "file")
    return _tarball(members, rng)


@mutator("tar")
def odd_members(rng, seed: Seed) -> bytes:
    members = [(name, data, "file") for name, data in seed.members]
    extra = [
        ("README.txt", b"not an alert", "file"),
        ("empty.avro", b"", "file"),
        ("subdir", b"", "dir"),
        ("link.avro", b"", "link"),
        (members[0][0], members[0][1], "file"),  # the same member twice
        ("garbage.avro", rng.bytes(int(rng.integers(1, 5000))), "file"),
    ]
    chosen = rng.choice(len(extra), size=int(rng.integers(1, len(extra) + 1)), replace=False)
    members.extend(extra[int(i)] for i in chosen)
    order = rng.permutation(len(members))
    return _tarball([members[int(i)] for i in order], rng)
