"""End-to-end speed of ``stampnet classify`` with ALeRCE's 2020 stamp classifier.

The real-time target: >= 350 alerts/s end to end (Avro bytes -> probabilities -> CSV) on 2 CPU
cores, on 20 copies of the shared sample (~40,000 alerts). The process is pinned to ``--cores``
CPUs (default 2), so a bigger machine measures the target configuration. In one run it measures:

- the model's FLOPs per alert (TensorFlow's profiler on the frozen graph) and the matmul peak of
  the same cores, hence the FLOP-bound limit on alerts/s;
- the reader alone, the model alone and the CSV writer alone, in CPU ms per alert (the split of
  the end-to-end cost);
- the end-to-end pass: alerts/s wall and alerts per CPU-second (process CPU time: on a shared
  machine the wall time measures the neighbours too), and resident memory.

It ends with one line starting ``VERDICT``. ``--history`` decodes every alert's light-curve history
and classifies with ALeRCE's architecture plus the light-curve branch (untrained weights: the
speed is the same). ``--json PATH`` also writes the figures.

    python benchmarks/classify.py [--copies 20] [--history] [--cores 2] [--json out.json]

Needs the ``bench`` extra (psutil): ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import tempfile
import time
from pathlib import Path

from stampnet.shared_data import shared_dir

REPO = Path(__file__).resolve().parents[1]
SHARED = shared_dir()
TARGET = 350.0


def replicated_sample(source: str, copies: int, folder: Path) -> Path:
    """``copies`` copies of every alert file of ``source`` as symbolic links under ``folder``."""
    from stampnet.data.readers import resolve_sources

    base = Path(source)
    for path in resolve_sources(source):
        relative = path.relative_to(base) if base.is_dir() else Path(path.name)
        for copy in range(copies):
            link = folder / f"copy{copy:03d}" / relative
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path.resolve())
    return folder


def flops_per_alert(model) -> int:
    """Float operations of one alert through ``model`` (TensorFlow's profiler, batch of 1)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = {name: tf.TensorSpec((1, *t.shape[1:]), t.dtype) for name, t in model.input.items()}

    @tf.function
    def forward(inputs):
        return model(inputs, training=False)

    graph = convert_variables_to_constants_v2(forward.get_concrete_function(spec)).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops


def matmul_peak(seconds: float = 3.0, size: int = 1024) -> tuple[float, float]:
    """float32 matmul GFLOP/s on the pinned cores: (per wall second, per CPU second)."""
    import tensorflow as tf

    a, b = tf.random.normal((size, size)), tf.random.normal((size, size))
    matmul = tf.function(tf.matmul)
    matmul(a, b).numpy()
    start, cpu_start, done = time.perf_counter(), time.process_time(), 0
    while time.perf_counter() - start < seconds:
        matmul(a, b).numpy()
        done += 1
    flops = 2.0 * size**3 * done
    return flops / (time.perf_counter() - start) / 1e9, flops / (
        time.process_time() - cpu_start
    ) / 1e9


def onednn_enabled() -> bool | None:
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # a private API: unknown in other builds
        return None


def cpu_ms_per_item(function, count: int) -> tuple[float, object]:
    start = time.process_time()
    result = function()
    return 1000.0 * (time.process_time() - start) / count, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(SHARED / "data" / "ztf"))
    parser.add_argument(
        "--checkpoint", default=str(SHARED / "reference" / "alerce_stamp_classifier_2020")
    )
    parser.add_argument("--copies", type=int, default=20, help="copies of the source classified")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--cores", type=int, default=2, help="CPUs to pin the process to")
    parser.add_argument(
        "--history",
        action="store_true",
        help="decode every alert's light-curve history and use a model with the branch",
    )
    parser.add_argument("--light-curve-units", type=int, default=32)
    parser.add_argument(
        "--onednn",
        choices=("on", "off"),
        default="on",
        help="TF_ENABLE_ONEDNN_OPTS, as `stampnet classify` sets it (on) or TF's default here",
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    cpus = sorted(os.sched_getaffinity(0))[: args.cores]
    os.sched_setaffinity(0, cpus)  # before TensorFlow sizes its thread pools
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if args.onednn == "on" else "0"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import psutil

    from stampnet.data.alert import RejectionLog
    from stampnet.data.readers import iter_alerts
    from stampnet.inference import classify, load_classifier
    from stampnet.models.alerce_import import import_alerce_checkpoint

    process = psutil.Process()
    figures = {"cores": len(cpus), "load_average_start": os.getloadavg()[0]}
    print(f"pinned to CPUs {cpus}; load average {figures['load_average_start']:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "alerce_2020.keras"
        model = import_alerce_checkpoint(args.checkpoint)
        if args.history:
            from stampnet.models.stamp_classifier import build_stamp_classifier

            model = build_stamp_classifier(
                class_names=model.get_layer("probabilities").class_names,
                feature_stats=model.get_layer("feature_normalization").stats,
                light_curve_units=args.light_curve_units,
            )
        model.save(model_path)
        classifier = load_classifier(model_path)
        figures.update(model=classifier.name, history=args.history, onednn=onednn_enabled())
        print(
            f"model {classifier.name}; history decoded: {args.history}; oneDNN: {figures['onednn']}"
        )

        figures["mflops_per_alert"] = flops_per_alert(classifier.model) / 1e6
        wall_peak, cpu_peak = matmul_peak()
        figures.update(matmul_gflops_wall=wall_peak, matmul_gflops_per_cpu_second=cpu_peak)
        # The FLOP bound: every core at the matmul peak on the model alone.
        figures["flop_bound_alerts_per_second"] = (
            len(cpus) * cpu_peak * 1e3 / figures["mflops_per_alert"]
        )
        print(
            f"model: {figures['mflops_per_alert']:.1f} MFLOP per alert; matmul peak "
            f"{cpu_peak:.1f} GFLOP per CPU second ({wall_peak:.1f} GFLOP/s wall now); FLOP-bound "
            f"limit on {len(cpus)} idle cores: {figures['flop_bound_alerts_per_second']:.0f} "
            "alerts/s"
        )

        def read():
            log = RejectionLog(warn=False)
            return list(iter_alerts(args.source, rejections=log, history=args.history))

        read()  # one-off costs (imports, caches) out of the figures
        reader_ms, alerts = cpu_ms_per_item(read, 1)
        reader_ms /= len(alerts)
        inputs = classifier.inputs(alerts[: args.batch_size])
        classifier.predict(inputs)  # trace once
        rounds = max(1, 2048 // args.batch_size)
        model_ms, _ = cpu_ms_per_item(
            lambda: [classifier.predict(inputs) for _ in range(rounds)], rounds * args.batch_size
        )
        rows = [[a.candid, a.object_id, 0.1, 0.2, 0.3, 0.2, 0.2, "SN", "m", "v", a.source, "", ""]
                for a in alerts]  # fmt: skip

        def write():
            writer = csv.writer(io.StringIO())
            for row in rows:
                writer.writerow([*row[:2], *(f"{p:.9g}" for p in row[2:7]), *row[7:]])

        writer_ms, _ = cpu_ms_per_item(write, len(rows))
        figures.update(
            reader_cpu_ms_per_alert=reader_ms,
            model_cpu_ms_per_alert=model_ms,
            writer_cpu_ms_per_alert=writer_ms,
        )
        print(
            f"CPU ms per alert: reader {reader_ms:.2f} ({1000 / reader_ms:.0f} alerts per CPU-s,"
            f" one Python thread: its ceiling), model {model_ms:.2f} ({1000 / model_ms:.0f} per "
            f"CPU-s), CSV writer {writer_ms:.3f}; sum {reader_ms + model_ms + writer_ms:.2f}"
        )

        alerts = inputs = rows = None  # memory: the end-to-end pass holds one batch at a time
        sample = replicated_sample(args.source, args.copies, Path(tmp) / "sample")
        cpu_start = process.cpu_times()
        summary = classify(
            classifier,
            sample,
            Path(tmp) / "p.csv",
            batch_size=args.batch_size,
            history=args.history,
        )
        cpu_end = process.cpu_times()
        cpu = (cpu_end.user - cpu_start.user) + (cpu_end.system - cpu_start.system)
        count = summary["classified"]
        figures.update(
            alerts=count,
            copies=args.copies,
            rejected=summary["rejected"],
            seconds=summary["seconds"],
            alerts_per_second=summary["alerts_per_second"],
            alerts_per_cpu_second=count / cpu,
            cpu_ms_per_alert=1000 * cpu / count,
            rss_mib=process.memory_info().rss / 2**20,
            load_average_end=os.getloadavg()[0],
        )
        # What 2 idle cores would reach if the CPU time per alert stayed the same.
        figures["cpu_ceiling_alerts_per_second"] = len(cpus) * figures["alerts_per_cpu_second"]
    print(
        f"end to end: {count} alerts ({args.copies}x the sample, {summary['rejected']} rejected) "
        f"in {figures['seconds']:.1f} s = {figures['alerts_per_second']:.0f} alerts/s wall; "
        f"{figures['cpu_ms_per_alert']:.2f} CPU ms per alert = "
        f"{figures['alerts_per_cpu_second']:.0f} alerts per CPU second; RSS "
        f"{figures['rss_mib']:.0f} MiB; load average {figures['load_average_end']:.2f}"
    )
    wall = figures["alerts_per_second"]
    verdict = "MET" if wall >= TARGET else "NOT MET"
    busy = max(figures["load_average_start"], figures["load_average_end"]) > os.cpu_count()
    print(
        f"VERDICT: {verdict}: {wall:.0f} alerts/s end to end on {len(cpus)} cores against the "
        f"target {TARGET:.0f} (history: {args.history}); CPU-time ceiling "
        f"{figures['cpu_ceiling_alerts_per_second']:.0f} alerts/s, FLOP bound "
        f"{figures['flop_bound_alerts_per_second']:.0f} alerts/s"
        + ("; the machine was busy (load > cores): the wall figure understates" if busy else "")
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
