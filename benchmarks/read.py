"""Ingestion speed: alerts/s of ``iter_alerts`` (decode + stamps + features) on the real sample.

Prints wall-clock and CPU-time rates (CPU time is the honest figure on a shared machine), per
format and per stage, and the fast FITS decoder's speed against astropy's. The real-time target is
>= 350 alerts/s end to end on 2 cores including the model, so ingestion alone should reach well
over 1000 alerts/s on one core.

The packet decoder is also compared, in the same run, with plain fastavro on the tarballs' packets
(one alert per container, the ZTF archive's layout): what the parsed-schema cache, the reader
schema and the history-skipping jump (``stampnet.data.avro.AvroDecoder._decode_split``) each buy,
and what decoding the light-curve history costs: with fastavro (history subfields, a dict per
entry) and with the compiled walker (``stampnet.data.history_columns``, numpy columns), the
default of ``iter_alerts(..., history=True)``.

Usage: python benchmarks/read.py [--source ../shared/data/ztf] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import resource
import tarfile
import time
from pathlib import Path

import fastavro

from stampnet.constants import CUTOUT_FIELDS
from stampnet.data.alert import RejectionLog
from stampnet.data.avro import AvroDecoder
from stampnet.data.fits import decode_cutout, decode_cutout_astropy
from stampnet.data.history import HISTORY_COLUMNS, HISTORY_SUBFIELDS, history_records
from stampnet.data.readers import ALERT_COLUMNS, alert_from_packet, iter_alerts, iter_packets
from stampnet.features import metadata_vector
from stampnet.shared_data import shared_dir

DEFAULT_SOURCE = shared_dir() / "data" / "ztf"


def timed(function):
    """(result, wall seconds, CPU seconds) of the best of one call (no repeats here)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def best_of(repeats, function):
    runs = [timed(function) for _ in range(repeats)]
    result = runs[0][0]
    return result, min(run[1] for run in runs), min(run[2] for run in runs)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rate_line(label, count, wall, cpu, unit="alerts"):
    return (
        f"{label:<34} {count:>6} {unit}  {count / wall:>8.0f} {unit}/s wall  "
        f"{count / cpu:>8.0f} {unit}/s CPU"
    )


def tarball_packets(source: Path) -> list[bytes]:
    """The Avro bytes of every member of the sample's tarballs (one alert each)."""
    packets = []
    for path in sorted(source.rglob("*.tar.gz")):
        with tarfile.open(path) as archive:
            packets += [archive.extractfile(m).read() for m in archive if m.isfile()]
    return packets


def compare_decoders(source: Path, repeats: int) -> None:
    """Avro bytes -> packet dicts, per decoder, in one run (records per CPU second)."""
    packets = tarball_packets(source)
    if not packets:
        return
    history_columns = ALERT_COLUMNS + HISTORY_COLUMNS
    decoders = {
        "plain fastavro.reader (everything)": None,
        "AvroDecoder, all fields": AvroDecoder(),
        "AvroDecoder, reader schema, no jump": AvroDecoder(ALERT_COLUMNS, skip_history=False),
        "AvroDecoder, history jump (default)": AvroDecoder(ALERT_COLUMNS),
        "AvroDecoder, with history subfields": AvroDecoder(history_columns, HISTORY_SUBFIELDS),
        "AvroDecoder, history as columns": AvroDecoder(
            history_columns, HISTORY_SUBFIELDS, history_columns=HISTORY_SUBFIELDS
        ),
    }
    print(f"Avro decoding of the {len(packets)} tarball packets (one alert per container):")
    cpu_by_name = {}
    for name, decoder in decoders.items():

        def decode(decoder=decoder):
            if decoder is None:
                return [list(fastavro.reader(io.BytesIO(packet))) for packet in packets]
            return [list(decoder.records_of_bytes(packet)) for packet in packets]

        decode()  # schemas parsed and cached once
        _, wall, cpu = best_of(repeats, decode)
        cpu_by_name[name] = cpu
        print(rate_line(f"  {name}", len(packets), wall, cpu))
    jump, plain = (
        cpu_by_name["AvroDecoder, history jump (default)"],
        cpu_by_name["plain fastavro.reader (everything)"],
    )
    no_jump = cpu_by_name["AvroDecoder, reader schema, no jump"]
    print(
        f"  the history jump: {plain / jump:.1f}x plain fastavro, {no_jump / jump:.1f}x the "
        f"same decoder without it; saves {1e3 * (no_jump - jump) / len(packets):.2f} CPU ms "
        "per alert"
    )
    subfields, columns = (
        cpu_by_name["AvroDecoder, with history subfields"],
        cpu_by_name["AvroDecoder, history as columns"],
    )
    print(
        f"  the history as columns: {subfields / columns:.1f}x the subfields decode; the history "
        f"costs {1e3 * (columns - jump) / len(packets):.2f} CPU ms per alert over the jump "
        f"({1e3 * (subfields - jump) / len(packets):.2f} with fastavro's dicts)"
    )
    for name in ("AvroDecoder, with history subfields", "AvroDecoder, history as columns"):
        records = [r for p in packets for r in decoders[name].records_of_bytes(p)]
        _, wall, cpu = best_of(
            repeats, lambda records=records: [history_records(r) for r in records]
        )
        label = "dicts" if "subfields" in name else "columns"
        print(rate_line(f"  history_records of {label}", len(records), wall, cpu))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(DEFAULT_SOURCE))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    source = Path(args.source)

    def read_all(sources=source):
        log = RejectionLog()
        return sum(1 for _ in iter_alerts(sources, rejections=log)), len(log)

    # The first pass pays one-off costs (imports, astropy's coordinate frames): shown apart.
    (count, rejected), wall, cpu = timed(read_all)
    print(rate_line("iter_alerts, first pass", count, wall, cpu) + f"  ({rejected} rejected)")
    peak_after_first = peak_rss_mib()
    (count, _), wall, cpu = best_of(args.repeats, read_all)
    print(rate_line("iter_alerts, warm (best)", count, wall, cpu))
    # Streaming: the peak memory must not grow with the number of alerts read.
    print(
        f"peak RSS after 1 pass: {peak_after_first:.0f} MiB; after {1 + args.repeats} passes "
        f"({(1 + args.repeats) * count} alerts): {peak_rss_mib():.0f} MiB"
    )
    for folder in sorted(path for path in source.iterdir() if path.is_dir()):
        (count, _), wall, cpu = best_of(args.repeats, lambda folder=folder: read_all(folder))
        print(rate_line(f"  {folder.name}", count, wall, cpu))

    # Stages: container decoding, then stamps (FITS + stacking), then features.
    packets, wall, cpu = best_of(
        args.repeats, lambda: list(iter_packets(source, columns=ALERT_COLUMNS))
    )
    print(rate_line("stage: packets only", len(packets), wall, cpu))
    _, wall, cpu = best_of(
        args.repeats, lambda: [metadata_vector(p["candidate"]) for _, p in packets]
    )
    print(rate_line("stage: metadata_vector only", len(packets), wall, cpu))
    _, wall, cpu = best_of(args.repeats, lambda: [alert_from_packet(p, s) for s, p in packets])
    print(rate_line("stage: alert_from_packet", len(packets), wall, cpu))

    stamps = [packet[field]["stampData"] for _, packet in packets for field in CUTOUT_FIELDS]
    _, wall, cpu = best_of(args.repeats, lambda: [decode_cutout(stamp) for stamp in stamps])
    print(rate_line("FITS: fast decoder", len(stamps), wall, cpu, unit="stamps"))
    fast_cpu = cpu
    _, wall, cpu = timed(lambda: [decode_cutout_astropy(stamp) for stamp in stamps])
    print(rate_line("FITS: astropy", len(stamps), wall, cpu, unit="stamps"))
    print(f"FITS: fast decoder is {cpu / fast_cpu:.1f}x faster than astropy (CPU time)")

    def read_with_history():
        log = RejectionLog()
        return sum(1 for _ in iter_alerts(source, rejections=log, history=True)), len(log)

    (count, _), wall, cpu = best_of(args.repeats, read_with_history)
    print(rate_line("iter_alerts with history (best)", count, wall, cpu))
    compare_decoders(source, args.repeats)


if __name__ == "__main__":
    main()
