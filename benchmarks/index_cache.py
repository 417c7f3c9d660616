"""What the record index's cache saves at a pipeline start (``stampnet.data.record_index_cache``).

For each config's train split: CPU seconds (``time.process_time``, all threads) and wall seconds
to make the ``RecordIndex`` with no cache (the whole split read: the cache removed first) and
from the cache, and the same for a whole pipeline start (``alert_dataset``/``sequence_dataset``,
oversampled, up to its first batch). The index's per-record costs extrapolate to a database of
``--extrapolate`` examples (default 1.25 M); a start's tracing and first batch do not scale. The
cache is written beside the data, as it is for a writable data folder.

    python benchmarks/index_cache.py --data tfrecords/builtin [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path


def timed(function) -> dict:
    cpu, wall = time.process_time(), time.perf_counter()
    function()
    return {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}


def measure(data_dir: Path, config: str, repeats: int) -> dict:
    from stampnet.data import record_index_cache
    from stampnet.data.batching import _label_lookup
    from stampnet.data.card import load_card
    from stampnet.data.pipeline import alert_dataset, sequence_dataset
    from stampnet.data.record_index import RecordIndex
    from stampnet.data.records import SplitRecords

    records = SplitRecords(data_dir, config, "train")
    lookup = _label_lookup(load_card(data_dir)["class_names"]).lookup
    filenames = sorted({str(item.filename) for item in records.instructions})
    make = {"alerts": alert_dataset, "sequences": sequence_dataset}[config]

    def uncache():
        for path in record_index_cache.cache_paths(filenames):
            path.unlink(missing_ok=True)

    def start():
        next(iter(make(data_dir, "train", batch_size=32, balance="oversample")))

    RecordIndex(records, lookup)  # warm up TensorFlow's tracing and the page cache
    runs = {"index, no cache": [], "index, cached": [], "start, no cache": [], "start, cached": []}
    for _ in range(repeats):
        uncache()
        runs["index, no cache"].append(timed(lambda: RecordIndex(records, lookup)))
        runs["index, cached"].append(timed(lambda: RecordIndex(records, lookup)))
        uncache()
        runs["start, no cache"].append(timed(start))
        runs["start, cached"].append(timed(start))
    located = RecordIndex(records, lookup)
    result = {"records": len(located.offsets), "bytes": int(located.lengths.sum())}
    for name, values in runs.items():
        result[name] = {
            key: statistics.median(value[key] for value in values) for key in values[0]
        } | {"runs": values}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--extrapolate", type=float, default=1.25e6)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(f"load average {os.getloadavg()[0]:.2f}")
    results = {}
    for config in ("alerts", "sequences"):
        found = results[config] = measure(Path(args.data), config, args.repeats)
        print(f"{config} train: {found['records']} records, {found['bytes'] / 1e6:.0f} MB")
        for name in ("index, no cache", "index, cached", "start, no cache", "start, cached"):
            cost = found[name]
            line = f"  {name:<16} {cost['cpu_s']:7.3f} CPU s {cost['wall_s']:7.3f} wall s"
            if name.startswith("index"):  # the start's tracing and first batch do not scale
                per = args.extrapolate * cost["cpu_s"] / found["records"]
                line += f" ({per:.1f} CPU s at {args.extrapolate:.3g} records)"
            print(line + f", median of {args.repeats}")
    print(f"load average {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
