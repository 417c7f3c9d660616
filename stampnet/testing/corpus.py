"""The fuzzer's seeds: a few real files of every input kind, decoded once (``load_corpus``).

Avro containers of both writer schemas (single- and multi-record), ZTF-archive tarballs, Fink
parquet rows, and the same real alerts exported by ``stampnet export`` to every own-data layout.
The mutators of ``stampnet.testing.mutators`` damage them. A new input kind plugs in here with a
seed loader (real files -> ``Seed``).
"""

from __future__ import annotations

import dataclasses
import io
import tarfile
import warnings
from pathlib import Path

import fastavro


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


#: The sync marker of every Avro container the fuzzer writes (fastavro draws a random one).
SYNC = b"stampnet-fuzz-16"
#: Own-data layouts of ``stampnet export`` and the kind of their seeds.
OWN_LAYOUTS = {"deep-hits-npz": "npz", "hdf5": "hdf5", "btsbot": "btsbot", "alerce-table": "table"}


def avro_seed(name: str, data: bytes) -> Seed:
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
    seeds = [avro_seed(p.name, p.read_bytes()) for p in sorted(ztf_dir.glob("schema_versions/*"))]
    seeds.append(avro_seed("avro_multi_alerts_other.avro", _first_records(ztf_dir)))
    tarballs = sorted((ztf_dir / "alerts").glob("*.tar.gz"), key=lambda p: p.stat().st_size)
    for tarball in (*tarballs[:3], tarballs[len(tarballs) // 2]):
        seed = _tar_seed(tarball)
        seeds.append(seed)
        seeds.extend(avro_seed(f"{tarball.name}::{n}", data) for n, data in seed.members[:1])
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
