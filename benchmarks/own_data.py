"""Own-data benchmark: a synthetic database in the Deep-HiTS layout, built, measured, trained on.

Deep-HiTS (Cabrera-Vives et al. 2017) holds 1,250,000 training, 100,000 validation and 100,000
test candidates, 21x21 stamps with four channels, balanced real/bogus, as chunk files of dicts.
This script writes a stated fraction of it (``--fraction 0.01 0.05``; ``1.0`` is the full size)
as npz chunks in ``train/``, ``validation/`` and ``test/`` folders, then, each step in a fresh
subprocess so that its peak RSS is its own:

1. builds it (``stampnet build --preset deep-hits``): alerts/s and peak RSS (flat as the
   fraction grows: the readers stream chunk by chunk and the build spills to disk);
2. measures bytes per example (TFRecords of the ``alerts`` config vs the input chunks) and the
   stored stamp dtype and compression: float32 vs float16 stamps and raw vs GZIP records (bytes
   per example, read+parse speed, float16 overflow on real ZTF counts);
3. trains the ``deep_hits`` preset's model for ``--train-steps`` steps (after a warm-up) when it
   is registered (``stampnet.training.registry``), giving training examples/s.

Prints a table and the same figures as JSON. Synthetic stamps: sky ~ N(1000, 30) counts in
science and template, a Gaussian PSF source (real) or an artefact (bogus: hot pixel, cosmic-ray
streak or subtraction dipole) in the difference, and the SNR channel from ``stampnet.data.derived``.

    python benchmarks/own_data.py --fraction 0.01 0.05 --out /tmp/own_data
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from stampnet.shared_data import shared_dir

FULL_SIZES = {"train": 1_250_000, "validation": 100_000, "test": 100_000}
CHUNK_ROWS = 10_000
SIZE = 21
NUM_FEATURES = 56
REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------- synthetic data
def synthetic_chunk(rows: int, rng: np.random.Generator) -> dict:
    """One Deep-HiTS chunk: flattened 21x21 float32 images, labels 1 = real, SNRs, features."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] - SIZE // 2
    labels = rng.integers(0, 2, rows)
    sky = rng.normal(1000.0, 30.0, (rows, 2, SIZE, SIZE)).astype(np.float32)
    template, science = sky[:, 0], sky[:, 1]
    difference = rng.normal(0.0, 40.0, (rows, SIZE, SIZE)).astype(np.float32)
    fwhm = rng.uniform(1.5, 3.5, rows)[:, None, None]
    flux = rng.uniform(200.0, 5000.0, rows)[:, None, None]
    shift = rng.normal(0.0, 0.5, (rows, 2, 1, 1))
    psf = np.exp(-((xx - shift[:, 0]) ** 2 + (yy - shift[:, 1]) ** 2) / (2 * (fwhm / 2.355) ** 2))
    psf = flux * psf / psf.sum(axis=(1, 2), keepdims=True)
    real = labels == 1
    difference[real] += psf[real]
    science[real] += psf[real]
    bogus = np.flatnonzero(~real)
    kinds = rng.integers(0, 3, bogus.size)
    centre = SIZE // 2
    for index, kind in zip(bogus, kinds, strict=True):
        if kind == 0:  # hot pixel
            difference[index, centre, centre] += flux[index, 0, 0]
        elif kind == 1:  # cosmic-ray streak
            difference[index, centre, centre - 3 : centre + 4] += flux[index, 0, 0] / 7
        else:  # subtraction dipole
            difference[index] += psf[index] - np.roll(psf[index], 2, axis=1)
    median = np.median(difference, axis=(1, 2), keepdims=True)
    mad = np.median(np.abs(difference - median), axis=(1, 2), keepdims=True)
    snr = difference / (1.4826 * mad)
    flat = {
        "temp_images": template,
        "sci_images": science,
        "diff_images": difference,
        "SNR_images": snr.astype(np.float32),
    }
    arrays = {key: value.reshape(rows, SIZE * SIZE) for key, value in flat.items()}
    arrays["labels"] = labels.astype(np.int64)
    arrays["SNRs"] = (flux[:, 0, 0] / (40.0 * fwhm[:, 0, 0])).astype(np.float64)
    arrays["features"] = rng.normal(size=(rows, NUM_FEATURES))
    return arrays


def write_database(out: Path, fraction: float, seed: int = 0) -> dict:
    from stampnet.data.export_layouts import write_deep_hits_chunk

    rng = np.random.default_rng(seed)
    counts = {split: round(size * fraction) for split, size in FULL_SIZES.items()}
    started = time.perf_counter()
    for split, count in counts.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        for part, start in enumerate(range(0, count, CHUNK_ROWS)):
            rows = min(CHUNK_ROWS, count - start)
            write_deep_hits_chunk(out / split / f"chunk_{part:04d}", synthetic_chunk(rows, rng))
    files = [path for path in out.rglob("*.npz")]
    return {
        "counts": counts,
        "input_bytes": sum(path.stat().st_size for path in files),
        "input_files": len(files),
        "write_seconds": time.perf_counter() - started,
    }


# ------------------------------------------------------------------------------------- workers
def worker_build(source: Path, out: Path) -> dict:
    from stampnet.data.build import build_dataset
    from stampnet.data.mapping import preset
    from stampnet.data.own import AlertReader

    started, cpu = time.perf_counter(), time.process_time()
    card = build_dataset(
        source, out, reader=AlertReader(mapping=preset("deep-hits")), overwrite=True
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    alerts_dir = next((out / "ztf_alerts" / "alerts").iterdir())
    records = [path for path in alerts_dir.glob("*.tfrecord*")]
    return {
        "alerts": card["num_alerts"],
        "build_seconds": seconds,
        "build_alerts_per_s": card["num_alerts"] / seconds,
        "build_cpu_seconds": cpu,
        "build_alerts_per_cpu_s": card["num_alerts"] / cpu,
        "tfrecord_bytes_alerts": sum(path.stat().st_size for path in records),
        "stamp_shape": card["stamp_shape"],
        "class_names": card["class_names"],
        "rejections": len(card["rejections"]),
    }


def _read_speed(files: list[str], compression: str, dtype: str, limit: int) -> float:
    import tensorflow as tf

    spec = {
        "stamps": tf.io.FixedLenFeature([], tf.string),
        "stamp_mask": tf.io.FixedLenFeature([], tf.string),
    }
    out_dtype = tf.float16 if dtype == "float16" else tf.float32

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        stamps = tf.cast(tf.io.decode_raw(example["stamps"], out_dtype), tf.float32)
        return stamps, tf.io.decode_raw(example["stamp_mask"], tf.uint8)

    dataset = tf.data.TFRecordDataset(files, compression_type=compression or None)
    dataset = dataset.take(limit).map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(256)
    started, count = time.perf_counter(), 0
    for stamps, _ in dataset:
        count += int(stamps.shape[0])
    return count / (time.perf_counter() - started)


def worker_storage(data_dir: Path, ztf_dir: Path | None, limit: int = 20_000) -> dict:
    """float32 vs float16 stamps, raw vs GZIP records, on the built train split."""
    import tensorflow as tf

    alerts_dir = next((data_dir / "ztf_alerts" / "alerts").iterdir())
    train = sorted(str(path) for path in alerts_dir.glob("*-train.tfrecord*"))
    scratch = data_dir / "storage_variants"
    scratch.mkdir(exist_ok=True)
    variants = {}
    for dtype in ("float32", "float16"):
        for compression in ("", "GZIP"):
            path = scratch / f"{dtype}-{compression or 'raw'}.tfrecord"
            options = tf.io.TFRecordOptions(compression_type=compression or None)
            count, error = 0, 0.0
            with tf.io.TFRecordWriter(str(path), options) as writer:
                for record in tf.data.TFRecordDataset(train).take(limit):
                    example = tf.train.Example.FromString(record.numpy())
                    features = example.features.feature
                    stamps = np.frombuffer(features["stamps"].bytes_list.value[0], np.float32)
                    if dtype == "float16":
                        half = stamps.astype(np.float16)
                        scale = np.maximum(np.abs(stamps), 1e-3)
                        error = max(error, float(np.max(np.abs(half - stamps) / scale)))
                        features["stamps"].bytes_list.value[0] = half.tobytes()
                    writer.write(example.SerializeToString())
                    count += 1
            variants[f"{dtype}/{compression or 'raw'}"] = {
                "bytes_per_example": path.stat().st_size / count,
                "read_examples_per_s": _read_speed([str(path)], compression, dtype, limit),
                "max_relative_error": error,
            }
    overflow = None
    if ztf_dir is not None and ztf_dir.exists():
        from stampnet.data.alert import RejectionLog
        from stampnet.data.readers import iter_alerts

        pixels = large = 0
        sources = [ztf_dir / "multi_record_avro", ztf_dir / "fink_parquet"]
        for alert in iter_alerts(sources, rejections=RejectionLog(warn=False)):
            pixels += alert.stamps.size
            large += int(np.sum(np.abs(alert.stamps) > np.finfo(np.float16).max))
        overflow = {"ztf_pixels": pixels, "ztf_pixels_over_float16_max": large}
    shutil.rmtree(scratch)
    return {"variants": variants, "float16_overflow": overflow}


def worker_train(data_dir: Path, steps: int, batch_size: int) -> dict:
    """Training examples/s of the ``deep_hits`` preset's model on the built train split, timed
    after a warm-up epoch (tracing, the first shuffle buffer fill), as ``train.py`` feeds it."""
    from stampnet.training.registry import REGISTRY

    if "deep_hits" not in REGISTRY:
        return {"skipped": "no deep_hits model registered on this branch (own11b adds it)"}
    import keras
    import tensorflow as tf

    from stampnet.data.card import load_card
    from stampnet.data.pipeline import alert_dataset
    from stampnet.geometry import StampGeometry
    from stampnet.models.deep_hits import build_deep_hits

    card = load_card(data_dir)
    model = build_deep_hits(class_names=card["class_names"], geometry=StampGeometry.from_card(card))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    )
    dataset = alert_dataset(
        data_dir, "train", batch_size=batch_size, feature_names="none", repeat=True
    ).map(lambda inputs, label: ({k: inputs[k] for k in ("stamps", "stamp_mask")}, label))
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    warmup = max(steps // 5, 5)
    model.fit(dataset, epochs=1, steps_per_epoch=warmup, verbose=0)
    started, cpu = time.perf_counter(), time.process_time()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "steps": steps,
        "batch_size": batch_size,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "train_examples_per_s": steps * batch_size / seconds,
        # On a shared machine wall time depends on the others; CPU time much less so.
        "train_examples_per_cpu_s": steps * batch_size / cpu,
        "parameters": model.count_params(),
    }


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _run_worker(*arguments: str) -> dict:
    command = [sys.executable, __file__, "--worker", *arguments]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"worker {arguments[0]} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ reporting
def run_fraction(fraction: float, out: Path, args) -> dict:
    source, data_dir = out / f"input_{fraction:g}", out / f"data_{fraction:g}"
    shutil.rmtree(source, ignore_errors=True)
    row = {"fraction": fraction, **_run_worker("write", str(source), str(fraction))}
    row.update(_run_worker("build", str(source), str(data_dir)))
    row["input_bytes_per_example"] = row["input_bytes"] / row["alerts"]
    row["tfrecord_bytes_per_example"] = row["tfrecord_bytes_alerts"] / row["alerts"]
    if args.storage:
        row["storage"] = _run_worker("storage", str(data_dir), str(args.ztf))
    if args.train_steps:
        row["training"] = _run_worker(
            "train", str(data_dir), str(args.train_steps), str(args.batch_size)
        )
    if not args.keep:
        shutil.rmtree(source, ignore_errors=True)
    return row


def print_table(rows: list[dict]) -> None:
    print(
        f"{'fraction':>8} {'alerts':>9} {'build s':>8} {'alerts/s':>9} {'alerts/cpu-s':>12} "
        f"{'peak RSS MB':>11} {'input B/ex':>10} {'TFRecord B/ex':>13} {'train ex/s':>10} "
        f"{'train ex/cpu-s':>14}"
    )
    for row in rows:
        training = row.get("training", {})
        speed = training.get("train_examples_per_s")
        per_cpu = training.get("train_examples_per_cpu_s")
        print(
            f"{row['fraction']:>8g} {row['alerts']:>9d} {row['build_seconds']:>8.1f} "
            f"{row['build_alerts_per_s']:>9.0f} {row['build_alerts_per_cpu_s']:>12.0f} "
            f"{row['build_peak_rss_mb']:>11.0f} "
            f"{row['input_bytes_per_example']:>10.0f} {row['tfrecord_bytes_per_example']:>13.0f} "
            f"{'-' if speed is None else f'{speed:.0f}':>10} "
            f"{'-' if per_cpu is None else f'{per_cpu:.0f}':>14}"
        )
    full = sum(FULL_SIZES.values())
    last = rows[-1]
    print(
        f"Projection to the full {full:,} candidates (linear from fraction {last['fraction']:g}): "
        f"build {full / last['build_alerts_per_s'] / 3600:.1f} h at this load "
        f"({full / last['build_alerts_per_cpu_s'] / 3600:.1f} CPU-hours), TFRecords "
        f"{full * last['tfrecord_bytes_per_example'] / 2**30:.1f} GiB, input "
        f"{full * last['input_bytes_per_example'] / 2**30:.1f} GiB"
    )
    for row in rows:
        for name, variant in row.get("storage", {}).get("variants", {}).items():
            print(
                f"  storage {name:14s} {variant['bytes_per_example']:8.0f} B/example, "
                f"{variant['read_examples_per_s']:8.0f} examples/s read+parse, "
                f"max rel. error {variant['max_relative_error']:.1e}"
            )
        if row.get("storage", {}).get("float16_overflow"):
            print(f"  float16 overflow on real ZTF stamps: {row['storage']['float16_overflow']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fraction", type=float, nargs="+", default=[0.01])
    parser.add_argument("--out", type=Path, default=Path("/tmp/stampnet_own_data"))
    parser.add_argument("--ztf", type=Path, default=shared_dir() / "data" / "ztf")
    parser.add_argument("--storage", action="store_true", help="measure dtype/compression")
    parser.add_argument("--train-steps", type=int, default=0, help="deep_hits steps (0: skip)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--keep", action="store_true", help="keep the synthetic input")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        if kind == "write":
            result = write_database(Path(rest[0]), float(rest[1]))
        elif kind == "build":
            result = worker_build(Path(rest[0]), Path(rest[1]))
            result["build_peak_rss_mb"] = _peak_rss_mb()
        elif kind == "storage":
            result = worker_storage(Path(rest[0]), Path(rest[1]))
        else:
            result = worker_train(Path(rest[0]), int(rest[1]), int(rest[2]))
        print(json.dumps(result))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [run_fraction(fraction, args.out, args) for fraction in sorted(args.fraction)]
    print_table(rows)
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
