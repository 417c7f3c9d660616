"""Mutations of real alert files: the inputs of the fuzzer (``stampnet.testing.fuzz``).

A ``Corpus`` holds a few real files of each input kind (``avro``: single- and multi-record Avro
containers of both writer schemas; ``tar``: ZTF-archive tarballs; ``parquet``: Fink rows), decoded
once. ``make_case(corpus, seed, index)`` turns one of them into a damaged file, deterministically
from ``(seed, index)``, with one mutator of that kind:

- byte mutators (every kind): truncation, bit flips, zeroed ranges, garbage, empty files;
- packet mutators (Avro records, tar members, parquet rows): decode the record, damage a cutout
  (corrupt gzip, broken FITS header or data, other shapes and BITPIX, missing stamps) or a field
  (NaN, inf, extremes, null, wrong types), and re-encode with the packet's own schema;
- container mutators: tarballs with foreign, empty or duplicated members, links and directories.

New input kinds (arrays, tables) plug in with ``SEED_LOADERS[kind]`` (real files -> seeds) and
``@mutator(kind)`` functions; ``make_case`` picks among the mutators registered for a seed's kind.
"""

from __future__ import annotations

import copy
import dataclasses
import gzip
import io
import math
import tarfile
from collections.abc import Callable
from pathlib import Path

import fastavro
import numpy as np

from stampnet.constants import CUTOUT_FIELDS
from stampnet.features import METADATA_FIELDS

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


@dataclasses.dataclass(frozen=True)
class Seed:
    """One real input file: its bytes and, for packets, its decoded records and schema."""

    kind: str
    name: str
    data: bytes
    records: tuple = ()
    schema: dict | None = None
    codec: str = "null"
    members: tuple = ()  # (name, bytes) of a tarball


@dataclasses.dataclass(frozen=True)
class Case:
    """One fuzz input: a file name (its suffix tells the kind) and its bytes."""

    index: int
    mutator: str
    seed: str
    filename: str
    data: bytes


class Unencodable(ValueError):
    """A mutated record that its schema cannot encode; the case falls back to a byte mutator."""


MUTATORS: dict[str, list[Callable]] = {}
SYNC = b"stampnet-fuzz-16"
SUFFIXES = {"avro": ".avro", "tar": ".tar.gz", "parquet": ".parquet"}


def mutator(*kinds: str):
    """Registers ``function(rng, seed) -> bytes`` as a mutator of the seeds of ``kinds``."""

    def register(function):
        for kind in kinds:
            MUTATORS.setdefault(kind, []).append(function)
        return function

    return register


# ----------------------------------------------------------------------------- the corpus
def _avro_seed(name: str, data: bytes) -> Seed:
    reader = fastavro.reader(io.BytesIO(data))
    records = tuple(reader)
    return Seed("avro", name, data, records, reader.writer_schema, reader.codec or "null")


def _tar_seed(path: Path, max_members: int = 3) -> Seed:
    with tarfile.open(path) as archive:
        members = tuple(
            (member.name, archive.extractfile(member).read())
            for member in archive.getmembers()[:max_members]
            if member.isfile()
        )
    return Seed("tar", path.name, path.read_bytes(), members=members)


def _parquet_seed(path: Path, rows: int = 3) -> Seed:
    import pyarrow.parquet as parquet

    table = parquet.read_table(path).slice(0, rows)
    sink = io.BytesIO()
    parquet.write_table(table, sink)
    return Seed("parquet", path.name, sink.getvalue(), tuple(table.to_pylist()))


def load_corpus(ztf_dir: str | Path) -> list[Seed]:
    """Real files of every kind from the shared ZTF sample (``../shared/data/ztf``)."""
    ztf_dir = Path(ztf_dir)
    seeds = [_avro_seed(p.name, p.read_bytes()) for p in sorted(ztf_dir.glob("schema_versions/*"))]
    seeds.append(_avro_seed("avro_multi_alerts_other.avro", _first_records(ztf_dir)))
    tarballs = sorted((ztf_dir / "alerts").glob("*.tar.gz"), key=lambda p: p.stat().st_size)
    for tarball in (*tarballs[:3], tarballs[len(tarballs) // 2]):
        seed = _tar_seed(tarball)
        seeds.append(seed)
        seeds.extend(_avro_seed(f"{tarball.name}::{n}", data) for n, data in seed.members[:1])
    parquets = sorted((ztf_dir / "fink_parquet").glob("*.parquet"), key=lambda p: p.stat().st_size)
    seeds.extend(_parquet_seed(path) for path in parquets[:2])
    return seeds


def _first_records(ztf_dir: Path, count: int = 3) -> bytes:
    """A multi-record container of a few records (kept small so that a case stays fast)."""
    with open(ztf_dir / "multi_record_avro" / "avro_multi_alerts_other.avro", "rb") as handle:
        reader = fastavro.reader(handle)
        records = [record for _, record in zip(range(count), reader, strict=False)]
        schema, codec = reader.writer_schema, reader.codec
    sink = io.BytesIO()
    # One record per block; a fixed sync marker (fastavro draws a random one) keeps cases equal.
    fastavro.writer(sink, schema, records, codec=codec, sync_interval=1, sync_marker=SYNC)
    return sink.getvalue()


# --------------------------------------------------------------------------- byte mutators
@mutator("avro", "tar", "parquet")
def truncate(rng, seed: Seed) -> bytes:
    return seed.data[: int(rng.integers(0, len(seed.data)))]


@mutator("avro", "tar", "parquet")
def flip_bits(rng, seed: Seed) -> bytes:
    data = bytearray(seed.data)
    for position in rng.integers(0, len(data) * 8, size=int(rng.integers(1, 64))):
        data[position // 8] ^= 1 << (position % 8)
    return bytes(data)


@mutator("avro", "tar", "parquet")
def zero_range(rng, seed: Seed) -> bytes:
    start = int(rng.integers(0, len(seed.data)))
    stop = min(len(seed.data), start + int(rng.integers(1, 4096)))
    return seed.data[:start] + bytes(stop - start) + seed.data[stop:]


@mutator("avro", "tar", "parquet")
def garbage(rng, seed: Seed) -> bytes:
    start = int(rng.integers(0, len(seed.data)))
    noise = rng.bytes(int(rng.integers(1, 2048)))
    if rng.random() < 0.5:  # overwrite
        return seed.data[:start] + noise + seed.data[start + len(noise) :]
    return seed.data[:start] + noise + seed.data[start:]  # insert


@mutator("avro", "tar", "parquet")
def keep_magic_only(rng, seed: Seed) -> bytes:
    return seed.data[: int(rng.integers(0, 9))]


BYTE_MUTATORS = (truncate, flip_bits, zero_range, garbage, keep_magic_only)


# ------------------------------------------------------------------------- packet mutators
def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _fits(image: np.ndarray, bitpix: int) -> bytes:
    from astropy.io import fits

    dtype = {8: np.uint8, 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}[bitpix]
    sink = io.BytesIO()
    fits.PrimaryHDU(np.asarray(image).astype(dtype)).writeto(sink)
    return sink.getvalue()


def _stamp_bytes(rng, original: bytes) -> bytes:
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
                cutout["stampData"] = _stamp_bytes(rng, cutout["stampData"])
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
    avro = _avro_seed(name, data)
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


# ------------------------------------------------------------------------------- the cases
def make_case(corpus: list[Seed], seed: int, index: int) -> Case:
    """The ``index``-th case of run ``seed``: a random seed file and one of its mutators."""
    rng = np.random.default_rng([seed, index])
    chosen = corpus[int(rng.integers(len(corpus)))]
    # Half the cases damage the content (packets, members), half the raw bytes.
    structured = [m for m in MUTATORS[chosen.kind] if m not in BYTE_MUTATORS]
    mutators = structured if structured and rng.random() < 0.5 else BYTE_MUTATORS
    function = mutators[int(rng.integers(len(mutators)))]
    label = function.__name__
    try:
        data = function(rng, chosen)
    except Unencodable:  # e.g. null in a field its schema does not allow: damage the bytes
        function = BYTE_MUTATORS[int(rng.integers(len(BYTE_MUTATORS)))]
        label = f"{label}>{function.__name__}"
        data = function(rng, chosen)
    name = f"case{index:06d}_{function.__name__}{SUFFIXES[chosen.kind]}"
    return Case(index, label, chosen.name, name, data)
