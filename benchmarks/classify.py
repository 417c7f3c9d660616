"""End-to-end speed of ``stampnet classify`` with ALeRCE's 2020 stamp classifier.

Measures alerts per second for read + decode + preprocessing + model + CSV, the real-time
target being >= 350 alerts/s on 2 CPU cores, and separately the reader alone and the model alone,
so a regression can be located. The process is pinned to ``--cores`` CPUs (default 2) so that a
bigger machine measures the target configuration. Resident memory is printed after every pass:
it must not grow with the number of alerts.

    python benchmarks/classify.py [--source ../shared/data/ztf] [--passes 3] [--batch-size 256]

Needs the ``bench`` extra (psutil): ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STAMPNET_SHARED", REPO.parent / "shared"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(SHARED / "data" / "ztf"))
    parser.add_argument(
        "--checkpoint", default=str(SHARED / "reference" / "alerce_stamp_classifier_2020")
    )
    parser.add_argument("--passes", type=int, default=3, help="classify the source this often")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--cores", type=int, default=2, help="CPUs to pin the process to")
    parser.add_argument(
        "--history",
        action="store_true",
        help="decode every alert's light-curve history (prv_candidates, fp_hists) too",
    )
    parser.add_argument(
        "--light-curve-units",
        type=int,
        default=0,
        help="classify with ALeRCE's architecture + a light-curve branch of this width "
        "(untrained weights: the speed is the same); implies --history",
    )
    args = parser.parse_args()
    args.history = args.history or args.light_curve_units > 0

    cpus = sorted(os.sched_getaffinity(0))[: args.cores]
    os.sched_setaffinity(0, cpus)  # before TensorFlow sizes its thread pools
    import numpy as np
    import psutil

    from stampnet.data.alert import RejectionLog
    from stampnet.data.readers import iter_alerts
    from stampnet.inference import classify, load_classifier
    from stampnet.models.alerce_import import import_alerce_checkpoint

    process = psutil.Process()
    print(f"pinned to CPUs {cpus}; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "alerce_2020.keras"
        model = import_alerce_checkpoint(args.checkpoint)
        if args.light_curve_units:
            from stampnet.models.stamp_classifier import build_stamp_classifier

            model = build_stamp_classifier(
                class_names=model.get_layer("probabilities").class_names,
                feature_stats=model.get_layer("feature_normalization").stats,
                light_curve_units=args.light_curve_units,
            )
        model.save(model_path)
        classifier = load_classifier(model_path)
        print(f"model {classifier.name}; light-curve history decoded: {args.history}")

        start, cpu_start = time.perf_counter(), time.process_time()
        alerts = list(
            iter_alerts(args.source, rejections=RejectionLog(warn=False), history=args.history)
        )
        read_rate = len(alerts) / (time.perf_counter() - start)
        read_cpu_rate = len(alerts) / (time.process_time() - cpu_start)
        print(
            f"reader alone: {read_rate:.0f} alerts/s wall, {read_cpu_rate:.0f} alerts per CPU "
            f"second (single-threaded Python: its ceiling) ({len(alerts)} alerts)"
        )

        inputs = classifier.inputs(alerts[: args.batch_size])
        classifier.predict(inputs)  # trace once
        start, cpu_start, done = time.perf_counter(), time.process_time(), 0
        while time.perf_counter() - start < 5.0:
            classifier.predict(inputs)
            done += args.batch_size
        print(
            f"model alone: {done / (time.perf_counter() - start):.0f} alerts/s wall, "
            f"{done / (time.process_time() - cpu_start):.0f} alerts per CPU second"
        )
        del alerts, inputs

        rates, cpu_rates = [], []
        for index in range(args.passes):
            cpu_start = process.cpu_times()
            summary = classify(
                classifier,
                args.source,
                Path(tmp) / "p.csv",
                batch_size=args.batch_size,
                history=args.history,
            )
            cpu_end = process.cpu_times()
            # CPU seconds spent: on a shared machine wall time measures the neighbours too.
            cpu = (cpu_end.user - cpu_start.user) + (cpu_end.system - cpu_start.system)
            rates.append(summary["alerts_per_second"])
            cpu_rates.append(summary["classified"] / cpu)
            print(
                f"pass {index + 1}: {summary['classified']} alerts in {summary['seconds']:.2f} s"
                f" = {summary['alerts_per_second']:.0f} alerts/s end to end, {cpu:.2f} CPU s "
                f"= {cpu_rates[-1]:.0f} alerts per CPU second; "
                f"RSS {process.memory_info().rss / 2**20:.0f} MiB"
            )
    print(
        f"end to end (read+decode+model+CSV): median {np.median(rates):.0f} alerts/s wall on "
        f"{len(cpus)} cores (target >= 350); CPU-time ceiling on {len(cpus)} idle cores: "
        f"{len(cpus) * np.median(cpu_rates):.0f} alerts/s; load average now "
        f"{os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
