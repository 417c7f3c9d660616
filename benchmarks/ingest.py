"""Ingest benchmark: build speed (alerts/s) and peak memory as the input grows.

The real ZTF sample's Avro alerts are replicated N times (each copy with new candid and objectId,
written with fastavro as multi-record Avro files, the sample's own writer schemas) and built with
``build_dataset`` in a fresh subprocess per size, whose peak RSS is read from
``getrusage(RUSAGE_CHILDREN)``. Peak memory must stay flat as N grows.

    python benchmarks/ingest.py --ztf ../shared/data/ztf --scales 1 5 20
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import fastavro

from stampnet.shared_data import shared_dir

#: Offset between copies' candids; ZTF candids are ~1e18, well below int64's 9.2e18.
CANDID_STRIDE = 10**15


def _avro_inputs(ztf_dir: Path):
    """(name, writer schema, records) of every Avro container of the sample (tarballs streamed)."""
    for path in sorted((ztf_dir / "alerts").glob("*.tar.gz")):
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                if member.isfile():
                    reader = fastavro.reader(archive.extractfile(member))
                    yield f"{path.stem}_{member.name}", reader.writer_schema, list(reader)
    for folder in ("multi_record_avro", "schema_versions"):
        for path in sorted((ztf_dir / folder).glob("*.avro")):
            with open(path, "rb") as handle:
                reader = fastavro.reader(handle)
                yield path.name, reader.writer_schema, list(reader)


def replicate(ztf_dir: Path, out_dir: Path, copies: int) -> int:
    """Writes ``copies`` renamed copies of every Avro alert; returns the number of alerts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, schema, records in _avro_inputs(ztf_dir):
        parsed = fastavro.parse_schema(schema)
        for copy in range(copies):
            renamed = []
            for record in records:
                record = dict(record)
                candid = record["candidate"]["candid"] + copy * CANDID_STRIDE
                if "candid" in record:  # schema 1.7/1.8 packets carry it in the candidate only
                    record["candid"] = candid
                record["objectId"] = f"{record['objectId']}r{copy}"
                record["candidate"] = {**record["candidate"], "candid": candid}
                renamed.append(record)
            with open(out_dir / f"c{copy:03d}_{name}.avro", "wb") as handle:
                fastavro.writer(handle, parsed, renamed)
            total += len(renamed)
    return total


def _build_child(source: str, data_dir: str) -> None:
    import warnings

    from stampnet.data.alert import RejectionWarning
    from stampnet.data.build import build_dataset

    warnings.simplefilter("ignore", RejectionWarning)
    started = time.perf_counter()
    card = build_dataset(source, data_dir)
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"alerts": card["num_alerts"], "seconds": seconds, "peak_mib": peak_mib}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ztf", default=str(shared_dir() / "data" / "ztf"))
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--work-dir", help="where to write replicas and datasets (default: tmp)")
    args = parser.parse_args()
    ztf_dir = Path(args.ztf)
    with tempfile.TemporaryDirectory(prefix="stampnet-ingest-", dir=args.work_dir) as work:
        print(f"{'copies':>6} {'alerts':>8} {'build s':>8} {'alerts/s':>9} {'peak RSS MiB':>13}")
        results = []
        for scale in args.scales:
            source = Path(work) / f"x{scale}"
            replicate(ztf_dir, source, scale)
            completed = subprocess.run(
                [sys.executable, __file__, "--child", str(source), str(Path(work) / f"d{scale}")],
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(completed.stdout.strip().splitlines()[-1])
            results.append(result)
            rate = result["alerts"] / result["seconds"]
            print(
                f"{scale:>6} {result['alerts']:>8} {result['seconds']:>8.1f} {rate:>9.1f} "
                f"{result['peak_mib']:>13.0f}",
                flush=True,
            )
            subprocess.run(["rm", "-rf", str(source), str(Path(work) / f"d{scale}")], check=True)
        growth = results[-1]["peak_mib"] / results[0]["peak_mib"]
        print(f"peak RSS x{growth:.2f} from {args.scales[0]}x to {args.scales[-1]}x input")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _build_child(sys.argv[2], sys.argv[3])
    else:
        main()
