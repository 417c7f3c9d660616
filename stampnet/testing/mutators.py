"""Mutations of real alert files: the inputs of the fuzzer (``stampnet.testing.fuzz``).

A ``Corpus`` holds a few real files of each input kind (``avro``: single- and multi-record Avro
containers of both writer schemas; ``tar``: ZTF-archive tarballs; ``parquet``: Fink rows), decoded
once. ``make_case(corpus, seed, index)`` turns one of them into a damaged file, deterministically
from ``(seed, index)``, with one mutator of that kind:

- byte mutators (every kind): truncation, bit flips, zeroed ranges, garbage, empty files;
- packet mutators (Avro records, tar members, parquet rows): decode the record, damage a cutout
  (corrupt gzip, broken FITS header or data, other shapes and BITPIX, missing stamps) or a field
  (NaN, inf, extremes, null, wrong types), and re-encode with the packet's own schema;
- container mutators: tarballs with foreign, empty or duplicated members, links and directories;
- own-data mutators (the same real alerts exported by ``stampnet export`` as Deep-HiTS ``.npz``,
  HDF5, BTSbot ``.npy`` + CSV and ALeRCE-style parquet tables, read back with their mapping):
  odd pixel values, wrong dtypes and shapes, rows missing from one array, deleted keys, null and
  non-finite cells, corrupt cutout bytes, broken CSV lines.

A new input kind plugs in with a seed loader in ``load_corpus`` (real files -> ``Seed``) and
``@mutator(kind)`` functions; ``make_case`` picks among the mutators registered for a seed's kind.
"""

from __future__ import annotations

import copy
import dataclasses
import gzip
import io
import math
import tarfile
import warnings
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
    extras: tuple = ()  # (name, bytes) of files read with the main one (a BTSbot array)
    mapping: dict | None = None  # own data: the mapping that reads it


@dataclasses.dataclass(frozen=True)
class Case:
    """One fuzz input: a file name (its suffix tells the kind) and its bytes."""

    index: int
    mutator: str
    seed: str
    filename: str
    data: bytes
    extras: tuple = ()
    mapping: dict | None = None


class Unencodable(ValueError):
    """A mutated record that its schema cannot encode; the case falls back to a byte mutator."""


MUTATORS: dict[str, list[Callable]] = {}
SYNC = b"stampnet-fuzz-16"
SUFFIXES = {"avro": ".avro", "tar": ".tar.gz", "parquet": ".parquet"}
#: Own-data layouts of ``stampnet export`` and the kind of their seeds.
OWN_LAYOUTS = {"deep-hits-npz": "npz", "hdf5": "hdf5", "btsbot": "btsbot", "alerce-table": "table"}
BYTE_KINDS = ("avro", "tar", "parquet", *OWN_LAYOUTS.values())


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
    seeds.extend(_own_seeds(ztf_dir / "schema_versions"))
    return seeds


def _own_seeds(source: Path) -> list[Seed]:
    """The alerts of ``source`` exported to every own-data layout (``stampnet export``)."""
    import json
    import tempfile

    from stampnet.data.alert import RejectionLog
    from stampnet.data.export import export_alerts

    seeds = []
    with tempfile.TemporaryDirectory(prefix="stampnet-fuzz-own-") as scratch:
        for layout, kind in OWN_LAYOUTS.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                summary = export_alerts(
                    source, Path(scratch) / layout, layout, rejections=RejectionLog(warn=False)
                )
            files = [Path(name) for name in summary["files"]]
            main = next((path for path in files if path.suffix == ".csv"), files[0])
            extras = tuple((p.name, p.read_bytes()) for p in files if p != main)
            mapping = json.loads(Path(summary["mapping"]).read_text())
            name = f"{layout}/{main.name}"
            seeds.append(Seed(kind, name, main.read_bytes(), extras=extras, mapping=mapping))
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
@mutator(*BYTE_KINDS)
def truncate(rng, seed: Seed) -> bytes:
    return seed.data[: int(rng.integers(0, len(seed.data)))]


@mutator(*BYTE_KINDS)
def flip_bits(rng, seed: Seed) -> bytes:
    data = bytearray(seed.data)
    for position in rng.integers(0, len(data) * 8, size=int(rng.integers(1, 64))):
        data[position // 8] ^= 1 << (position % 8)
    return bytes(data)


@mutator(*BYTE_KINDS)
def zero_range(rng, seed: Seed) -> bytes:
    start = int(rng.integers(0, len(seed.data)))
    stop = min(len(seed.data), start + int(rng.integers(1, 4096)))
    return seed.data[:start] + bytes(stop - start) + seed.data[stop:]


@mutator(*BYTE_KINDS)
def garbage(rng, seed: Seed) -> bytes:
    start = int(rng.integers(0, len(seed.data)))
    noise = rng.bytes(int(rng.integers(1, 2048)))
    if rng.random() < 0.5:  # overwrite
        return seed.data[:start] + noise + seed.data[start + len(noise) :]
    return seed.data[:start] + noise + seed.data[start:]  # insert


@mutator(*BYTE_KINDS)
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


# ------------------------------------------------------------------------- own-data mutators
def _load_arrays(kind: str, data: bytes) -> dict[str, np.ndarray]:
    if kind == "npz":
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    if kind == "hdf5":
        import h5py

        with h5py.File(io.BytesIO(data), "r") as handle:
            return {key: handle[key][()] for key in handle if isinstance(handle[key], h5py.Dataset)}
    return {"stamps": np.load(io.BytesIO(data), allow_pickle=False)}  # a BTSbot .npy


def _save_arrays(kind: str, arrays: dict[str, np.ndarray]) -> bytes:
    sink = io.BytesIO()
    if kind == "npz":
        np.savez(sink, **arrays)
    elif kind == "hdf5":
        import h5py

        with h5py.File(sink, "w") as handle:
            for key, value in arrays.items():
                value = np.asarray(value)
                if value.dtype.kind in "OU":  # strings: as fixed-length bytes
                    value = value.astype("S")
                handle.create_dataset(key, data=value)
    else:
        stamps = arrays.get("stamps", np.zeros(0, np.float32))  # a deleted key: an empty array
        np.save(sink, stamps, allow_pickle=False)
    return sink.getvalue()


def _damage_arrays(rng, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    arrays = dict(arrays)
    key = sorted(arrays)[int(rng.integers(len(arrays)))]
    value = np.array(arrays[key])
    operation = int(rng.integers(0, 6))
    if operation == 0 and value.dtype.kind == "f" and value.size:  # odd pixel/feature values
        flat = value.reshape(-1)
        picks = rng.integers(0, flat.size, size=int(rng.integers(1, min(flat.size, 5000) + 1)))
        flat[picks] = rng.choice(ODD_PIXELS, size=picks.size)
    elif operation == 1 and len(value.shape):  # rows missing from one array only
        value = value[: int(rng.integers(0, len(value)))]
    elif operation == 2:  # another dtype
        dtype = [np.int8, np.float16, np.bool_, np.uint64, "U3"][int(rng.integers(5))]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                value = value.astype(dtype)
            except (TypeError, ValueError, OverflowError) as error:  # e.g. ids to integers
                raise Unencodable(str(error)[:200]) from None
    elif operation == 3:  # another shape
        value = value[..., : max(1, value.shape[-1] // 2)] if value.ndim else value[None]
    elif operation == 4:
        del arrays[key]
        return arrays
    else:
        value = value[:0]
    arrays[key] = value
    return arrays


@mutator("npz", "hdf5")
def damage_arrays(rng, seed: Seed) -> bytes:
    return _save_arrays(seed.kind, _damage_arrays(rng, _load_arrays(seed.kind, seed.data)))


@mutator("btsbot")
def damage_sidecar_array(rng, seed: Seed) -> bytes:
    """Damages the BTSbot ``.npy`` beside the CSV (the case's extra file); keeps the CSV."""
    name, data = seed.extras[0]
    if rng.random() < 0.3:
        data = BYTE_MUTATORS[int(rng.integers(len(BYTE_MUTATORS)))](rng, Seed("npy", name, data))
    else:
        data = _save_arrays("npy", _damage_arrays(rng, _load_arrays("npy", data)))
    raise ReplaceExtras(seed.data, ((name, data),))


@mutator("btsbot")
def damage_csv(rng, seed: Seed) -> bytes:
    lines = seed.data.decode().splitlines()
    operation = int(rng.integers(0, 4))
    if operation == 0:  # a garbage line
        lines.insert(
            int(rng.integers(1, len(lines) + 1)), rng.bytes(40).hex()[: int(rng.integers(80))]
        )
    elif operation == 1 and len(lines) > 1:  # a row fewer than the array
        del lines[int(rng.integers(1, len(lines)))]
    elif operation == 2:  # an odd cell
        row = int(rng.integers(0, len(lines)))
        cells = lines[row].split(",")
        cells[int(rng.integers(len(cells)))] = str(
            rng.choice(["nan", "inf", "-inf", "", "x", "1e999"])
        )
        lines[row] = ",".join(cells)
    else:  # a column gone from the header
        cells = lines[0].split(",")
        del cells[int(rng.integers(len(cells)))]
        lines[0] = ",".join(cells)
    return ("\n".join(lines) + "\n").encode()


@mutator("table")
def damage_table(rng, seed: Seed) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as parquet

    table = parquet.read_table(io.BytesIO(seed.data))
    if rng.random() < 0.15:  # a column gone
        table = table.drop_columns([table.column_names[int(rng.integers(table.num_columns))]])
    else:
        rows = table.to_pylist()
        row = rows[int(rng.integers(len(rows)))]
        key = sorted(row)[int(rng.integers(len(row)))]
        if isinstance(row[key], bytes) and row[key][:2] == b"\x1f\x8b":
            row[key] = _stamp_bytes(rng, row[key])
        else:
            row[key] = ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]
        try:
            table = pa.Table.from_pylist(rows, schema=table.schema)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as error:
            raise Unencodable(str(error)[:200]) from None
    sink = io.BytesIO()
    parquet.write_table(table, sink)
    return sink.getvalue()


class ReplaceExtras(Exception):  # noqa: N818 (a result, not an error)
    """Raised by a mutator that changes a case's extra files: (main bytes, extras)."""

    def __init__(self, data: bytes, extras: tuple):
        super().__init__("extras replaced")
        self.data, self.extras = data, extras


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
    extras = chosen.extras
    try:
        data = function(rng, chosen)
    except ReplaceExtras as replaced:
        data, extras = replaced.data, replaced.extras
    except Unencodable:  # e.g. null in a field its schema does not allow: damage the bytes
        function = BYTE_MUTATORS[int(rng.integers(len(BYTE_MUTATORS)))]
        label = f"{label}>{function.__name__}"
        data = function(rng, chosen)
    if chosen.mapping is not None:  # own data: the exported names, which the mapping expects
        name = chosen.name.split("/")[-1]
    else:
        name = f"case{index:06d}_{function.__name__}{SUFFIXES[chosen.kind]}"
    return Case(index, label, chosen.name, name, data, extras, chosen.mapping)
