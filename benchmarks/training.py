"""Training throughput: input-pipeline headroom and compute efficiency, measured in one run.

For each model (default: the stamp classifier and the two sequence models), on one device:

- headroom = training examples/s fed from the TFRecord pipeline (``trainer.make_dataset``:
  parse, balance, shuffle, batch; augmentation runs inside the model) ÷ examples/s of the same
  model fed the same batches from memory (``take(k).cache().repeat()``). Target >= 0.95: the
  input pipeline must not be what bounds training. "feed alone" is the pipeline's examples/s
  with no model: the most it could feed. Far above the training rate, the pipeline cannot be
  the bound, and a headroom below 1 is the machine's load drifting between measurements.
- efficiency = achieved FLOP/s of a training step ÷ the float32 matmul peak measured in the same
  run on the same device, the best of a measurement at the start and one beside each in-memory
  training measurement (on a shared machine, a peak measured once, at other moments' load, gave
  ratios above 1). A step's FLOPs are 3 x the forward pass (forward + two backward
  matmuls per layer), the forward pass counted by TensorFlow's profiler on the frozen graph of
  the exported model at the training batch size, in inference mode (the stamp classifier's four
  rotations included; dropout and augmentation add no multiply-adds, and their seed variables
  cannot be frozen). Target >= 0.5 on CPU for the stamp classifier.
- with ``--profile-steps N``: where a training step's time goes, per TensorFlow op type (the
  TF profiler's trace of N in-memory steps; op times summed over the threads that ran them).
- oneDNN: ``--onednn on`` (the default, as ``stampnet train`` runs) or ``off`` sets
  ``TF_ENABLE_ONEDNN_OPTS`` before TensorFlow starts; ``default`` leaves TensorFlow's choice.
- the ALeRCE classifier's FLOP-bound limit for ``stampnet classify``: peak ÷ forward FLOPs per
  alert (the ceiling ``benchmarks/classify.py``'s alerts/s could reach if only arithmetic cost).

    python benchmarks/training.py --data tfrecords/ztf_sample [--steps 20] [--onednn off]
        [--profile-steps 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from stampnet.shared_data import shared_dir

REPO = Path(__file__).resolve().parents[1]
SHARED = shared_dir()
MODELS = ("stamp_classifier", "seq_classifier", "seq_vae")


def matmul_peak(size: int = 1024, repeats: int = 20) -> float:
    """float32 FLOP/s of a square matmul chain on the default device (best of 3)."""
    import tensorflow as tf

    a = tf.random.normal((size, size))

    @tf.function
    def chain(x):
        for _ in range(repeats):
            x = tf.matmul(x, a) * (1.0 / size)
        return x

    chain(a).numpy()
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        chain(a).numpy()
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - started))
    return best


def forward_flops(model, inputs) -> int:
    """Float operations of one forward pass of ``model`` on ``inputs`` (a batch)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    specs = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), inputs)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(specs)
    frozen = convert_variables_to_constants_v2(concrete)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(frozen.graph, options=options)
    return int(profile.total_float_ops)


def feed_rate(dataset, steps: int, batch_size: int) -> float:
    """Examples/s the pipeline alone yields (no model): what it could feed if training were free.

    Compared with the TFRecords training rate it says whether the pipeline can bound training:
    at a ratio far above 1 it cannot, and a headroom below 1 is measurement noise.
    """
    iterator = iter(dataset)
    for _ in range(2):  # the shuffle buffer fills on the first batch
        next(iterator)
    started = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return steps * batch_size / (time.perf_counter() - started)


def fit_rate(model, dataset, steps: int, batch_size: int) -> tuple[float, float]:
    """Training examples/s over ``steps`` batches (after one traced warm-up epoch), and the CPU
    ms per example the process spent meanwhile (all its threads: the step and the feed)."""
    model.fit(dataset, epochs=1, steps_per_epoch=3, verbose=0)
    started, cpu = time.perf_counter(), time.process_time()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    examples = steps * batch_size
    return examples / (time.perf_counter() - started), 1e3 * (time.process_time() - cpu) / examples


def op_profile(model, dataset, steps: int, top: int = 12) -> list[dict]:
    """Seconds per TensorFlow op type over ``steps`` training steps, the ``top`` ones first.

    The TF profiler's host trace: every op event on the executor's compute threads, summed by
    type (the executor's own ``Process`` and the thread pools' ``ParallelFor`` spans contain
    ops, so they are left out)."""
    import collections
    import tempfile

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(next(Path(logdir).rglob("*.xplane.pb")).read_bytes())
    seconds, counts = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = {key: value.name for key, value in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                op_type = names[event.metadata_id].rpartition(":")[2]
                if op_type not in ("Process", "ParallelFor"):
                    seconds[op_type] += event.duration_ps / 1e12
                    counts[op_type] += 1
    total = sum(seconds.values()) or 1.0
    return [
        {
            "op": op,
            "seconds_per_step": value / steps,
            "share": round(value / total, 3),
            "calls_per_step": counts[op] / steps,
        }  # fmt: skip
        for op, value in seconds.most_common(top)
    ]


def bench_model(name: str, data_dir: Path, args, peaks: list[float]) -> dict:
    import tensorflow as tf

    from stampnet.data.card import load_card
    from stampnet.training import trainer
    from stampnet.training.config import apply_overrides
    from stampnet.training.registry import get_spec

    spec = get_spec(name)
    config = apply_overrides(
        spec.preset(),
        {"data": {"data_dir": str(data_dir)}, "train": {"batch_size": args.batch_size}},
    )
    info = trainer.data_info(config, spec, data_dir, load_card(data_dir))
    bundle = spec.build(config, info)
    keys = trainer.input_keys(bundle.model)
    pipeline = trainer.make_dataset(
        config, spec, info, "train", bundle.batch_transform, keys=keys, training=True
    )
    if args.feed_threads:  # the feed in its own pool of N threads, one op thread each
        options = tf.data.Options()
        options.threading.private_threadpool_size = args.feed_threads
        options.threading.max_intra_op_parallelism = 1
        pipeline = pipeline.with_options(options)
    trainer.ensure_built(bundle.model, pipeline)
    memory = pipeline.take(args.cached_batches).cache().repeat()
    for _ in memory.take(args.cached_batches):  # fill the cache before timing
        pass
    # Interleave the two feeds so that machine load drifts alike on both.
    from_records, from_memory = [], []
    for _ in range(args.rounds):
        from_records.append(fit_rate(bundle.model, pipeline, args.steps, args.batch_size))
        peaks.append(matmul_peak(repeats=5))
        from_memory.append(fit_rate(bundle.model, memory, args.steps, args.batch_size))
    (records_rate, records_cpu), (memory_rate, memory_cpu) = max(from_records), max(from_memory)
    peak = max(peaks)
    feed = feed_rate(pipeline, 4 * args.steps, args.batch_size)
    # FLOPs of the exported model (the training model's augmentation holds a seed variable that
    # cannot be frozen; flips and rotations cost no multiply-adds anyway).
    export = bundle.main_export[1].model
    element = next(iter(pipeline.take(1)))[0]
    names = [tensor.name.split(":")[0] for tensor in export.inputs]
    if isinstance(export.input, dict):
        names = list(export.input)
    flops = 3 * forward_flops(export, {name: element[name] for name in names})
    achieved = flops / args.batch_size * memory_rate
    profile = op_profile(bundle.model, memory, args.profile_steps) if args.profile_steps else []
    return {
        "model": name,
        "batch_size": args.batch_size,
        "records_examples_per_s": round(records_rate, 1),
        "memory_examples_per_s": round(memory_rate, 1),
        "headroom": round(records_rate / memory_rate, 3),
        # CPU ms per training example in the same (best) measurements: the feed's own CPU is
        # the difference, whatever the load of other processes did to the wall time.
        "records_cpu_ms_per_example": round(records_cpu, 3),
        "memory_cpu_ms_per_example": round(memory_cpu, 3),
        "load_average": os.getloadavg()[0],
        "feed_only_examples_per_s": round(feed, 1),
        "train_step_flops_per_example": flops // args.batch_size,
        "achieved_flop_per_s": achieved,
        "matmul_peak_flop_per_s": peak,
        "efficiency": round(achieved / peak, 3),
        "device": tf.config.list_logical_devices()[0].name,
        "profile": profile,
    }


def classify_limit(peak: float) -> dict:
    import numpy as np

    from stampnet.models.alerce_import import import_alerce_checkpoint

    model = import_alerce_checkpoint(SHARED / "reference" / "alerce_stamp_classifier_2020")
    batch = {
        tensor.name.split(":")[0]: np.zeros((256, *tensor.shape[1:]), "float32")
        for tensor in model.inputs
    }
    if isinstance(model.input, dict):
        batch = {name: np.zeros((256, *t.shape[1:]), "float32") for name, t in model.input.items()}
    flops = forward_flops(model, batch) / 256
    return {"alerce_forward_flops_per_alert": flops, "flop_bound_alerts_per_s": peak / flops}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a built dataset (stampnet build)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed batches per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per feed (best)")
    parser.add_argument("--cached-batches", type=int, default=8)
    parser.add_argument("--onednn", choices=("on", "off", "default"), default="on",
                        help="TF_ENABLE_ONEDNN_OPTS: on (as stampnet train sets it), off, or "
                        "TensorFlow's default for this CPU")  # fmt: skip
    parser.add_argument("--feed-threads", type=int, default=0,
                        help="TFRecord feed in a private pool of N threads")  # fmt: skip
    parser.add_argument("--profile-steps", type=int, default=0, help="profile N steps per model")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.onednn != "default":
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if args.onednn == "on" else "0"
    import tensorflow as tf

    peaks = [matmul_peak()]
    print(f"load average {os.getloadavg()[0]:.2f}; devices {tf.config.list_logical_devices()}")
    setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    print(f"oneDNN: {args.onednn} (TF_ENABLE_ONEDNN_OPTS={setting})")
    results = [bench_model(name, Path(args.data), args, peaks) for name in args.models.split(",")]
    peak = max(peaks)
    print(f"float32 matmul peak: {peak / 1e9:.1f} GFLOP/s (best of {len(peaks)})")
    limit = classify_limit(peak)
    print(f"load average {os.getloadavg()[0]:.2f}")
    print("| model | TFRecords ex/s | in-memory ex/s | headroom (>= 0.95) | CPU ms/ex TFRecords, "
          "in-memory | feed alone ex/s | step GFLOP/s | efficiency (>= 0.5) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['model']} | {r['records_examples_per_s']} | {r['memory_examples_per_s']} | "
            f"{r['headroom']} | {r['records_cpu_ms_per_example']}, "
            f"{r['memory_cpu_ms_per_example']} | {r['feed_only_examples_per_s']} | "
            f"{r['achieved_flop_per_s'] / 1e9:.2f} | {r['efficiency']} |"
        )
    for r in results:
        if r["profile"]:
            print(f"{r['model']}: top ops per training step ({args.profile_steps} steps profiled)")
            for row in r["profile"]:
                print(f"  {row['op']:<45} {row['seconds_per_step']:7.3f} s  {row['share']:6.1%}")
    print(
        f"ALeRCE classifier: {limit['alerce_forward_flops_per_alert'] / 1e6:.1f} MFLOP per alert; "
        f"FLOP-bound limit {limit['flop_bound_alerts_per_s']:.0f} alerts/s"
    )
    if args.json:
        payload = {"matmul_peak_flop_per_s": peak, "onednn": args.onednn, "models": results}
        payload["feed_threads"] = args.feed_threads
        payload["classify"] = limit
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
