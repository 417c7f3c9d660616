"""Where a training feed's CPU goes: CPU ms per example of each tf.data stage and per feature.

``--config alerts`` (default): the stamp classifier's training feed (``trainer.make_dataset``:
oversampled, shuffled, batch 64) is rebuilt stage by stage and each prefix is run alone; a
stage's cost is the difference of CPU time (all threads of the process: ``time.process_time``)
per example yielded from the prefix before it. Also: the cost of parsing each feature of an
example alone, a batch of 64 at a time.

``--config sequences``: the same for the sequence models' feed (``sequence_dataset``, one example
per object, ``--max-detections`` alerts): the stages of decoding, then the whole training feeds of
seq_classifier (plain, and oversampled) and seq_vae (every object) as ``stampnet train`` makes
them. Only the public pipeline is used for those, so the script also profiles an older checkout
(``PYTHONPATH=old-tree``): run both in one session for a before/after comparison.

    python benchmarks/feed_profile.py --data tfrecords/builtin [--config sequences]
        [--examples 4096] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def cpu_per_example(dataset, examples: int, per_element: int) -> dict:
    """CPU ms and wall ms per example over ``examples`` (elements of ``per_element``)."""
    iterator = iter(dataset)
    for _ in range(max(4, 256 // per_element)):  # fill buffers and trace before timing
        next(iterator)
    elements = max(examples // per_element, 1)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(elements):
        next(iterator)
    count = elements * per_element
    return {
        "cpu_ms": 1e3 * (time.process_time() - cpu) / count,
        "wall_ms": 1e3 * (time.perf_counter() - wall) / count,
    }


def training_feed(data_dir: Path, model: str, overrides: dict):
    """``model``'s training feed as ``stampnet train`` makes it (its preset and ``overrides``)."""
    from stampnet.data.card import load_card
    from stampnet.training import trainer
    from stampnet.training.config import apply_overrides
    from stampnet.training.registry import get_spec

    spec = get_spec(model)
    config = apply_overrides(spec.preset(), {"data": {"data_dir": str(data_dir)}, **overrides})
    info = trainer.data_info(config, spec, data_dir, load_card(data_dir))
    bundle = spec.build(config, info)
    keys = trainer.input_keys(bundle.model)
    return trainer.make_dataset(
        config, spec, info, "train", bundle.batch_transform, keys=keys, training=True
    )


def stage_prefixes(data_dir: Path, batch_size: int):
    """(name, dataset, examples per element) for growing prefixes of the training feed."""
    import tensorflow as tf

    from stampnet.data.batching import LABEL_BATCH, _label_lookup
    from stampnet.data.card import load_card
    from stampnet.data.record_index import POSITION_BATCH, RecordIndex
    from stampnet.data.records import SplitRecords

    card = load_card(data_dir)
    records = SplitRecords(data_dir, "alerts", "train")
    lookup = _label_lookup(card["class_names"])
    read = records.dataset(shuffle=True, seed=0).repeat()
    labelled = read.batch(LABEL_BATCH).map(
        lambda batch: (batch, lookup.lookup(records.labels(batch))),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    classes = range(len(card["class_names"]))

    def streams(decode):
        def one(index):
            def select(batch, labels):
                mask = tf.equal(labels, index)
                return tf.boolean_mask(batch, mask), tf.boolean_mask(labels, mask)

            stream = labelled.map(select).unbatch()
            if decode:
                stream = stream.map(
                    lambda record, label: (records.decode(record), label),
                    num_parallel_calls=tf.data.AUTOTUNE,
                )
            return stream

        weights = [1.0 / len(classes)] * len(classes)
        return tf.data.Dataset.sample_from_datasets([one(i) for i in classes], weights, seed=0)

    feed = training_feed(data_dir, "stamp_classifier", {"train": {"batch_size": batch_size}})
    started = time.process_time()
    located = RecordIndex(records, lookup.lookup)
    spent = time.process_time() - started
    print(f"record index of {len(located.offsets)} records: {spent:.2f} CPU s")
    positions = located.positions(shuffle=True, seed=0)
    keys = ["stamps", "stamp_mask", "metadata", "metadata_present"]

    def indexed(stage):
        def one(index):
            def keep(labels):
                return tf.equal(labels, index)

            if stage == "positions":
                select = positions.batch(POSITION_BATCH).map(
                    lambda p: tf.boolean_mask(p, keep(tf.gather(located.labels, p)))
                )
                return select.unbatch()
            stream = located.selected(positions, keep)
            if stage == "decode":
                stream = stream.map(
                    lambda batch, labels: (records.decode_batch(batch, keys), labels),
                    num_parallel_calls=tf.data.AUTOTUNE,
                )
            return stream.unbatch()

        weights = [1.0 / len(classes)] * len(classes)
        return tf.data.Dataset.sample_from_datasets(
            [one(i).repeat() for i in classes], weights, seed=0
        ).batch(256)

    return [
        ("BEFORE: read records (TFRecordDataset, interleave)", read.batch(256), 256),
        ("+ parse labels, 64 at a time", labelled, LABEL_BATCH),
        ("+ one stream per class (select, unbatch, sample)", streams(False).batch(256), 256),
        ("+ decode every feature of the kept examples", streams(True).batch(256), 256),
        ("AFTER: one stream per class of indexed positions", indexed("positions"), 256),
        ("+ read only the kept records (pread)", indexed("read"), 256),
        ("+ parse 4 features, a batch of records at a time", indexed("decode"), 256),
        ("the training feed (+ shuffle, inputs, batch, keys)", feed, batch_size),
    ]


def sequence_prefixes(data_dir: Path, max_detections: int, batch_size: int):
    """(name, dataset, examples per element): stages of decoding the sequences, then the sequence
    models' whole training feeds."""
    import tensorflow as tf

    from stampnet.data.batching import LABEL_BATCH, _label_lookup
    from stampnet.data.card import load_card
    from stampnet.data.records import SplitRecords

    records = SplitRecords(data_dir, "sequences", "train")
    lookup = _label_lookup(load_card(data_dir)["class_names"])
    read = records.dataset(shuffle=True, seed=0).repeat()
    labelled = read.batch(LABEL_BATCH).map(
        lambda batch: (batch, lookup.lookup(records.labels(batch))),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    kept = labelled.map(lambda batch, labels: tf.boolean_mask(batch, labels >= 0))
    sliced = ("candid", "jd", "stamps", "stamp_mask", "metadata", "metadata_present")
    decoded = kept.unbatch().map(records.decode, num_parallel_calls=tf.data.AUTOTUNE)
    truncated = decoded.map(
        lambda example: {
            key: value[:max_detections] if key in sliced else value
            for key, value in example.items()
        }
    )

    def batched(examples):
        # Examples of different lengths do not batch: each becomes its size (a few tiny ops).
        sizes = examples.map(lambda example: tf.add_n([tf.size(v) for v in example.values()]))
        return sizes.batch(256)

    stages = [
        ("read records (TFRecordDataset, interleave)", read.batch(256), 256),
        ("+ parse labels, 64 at a time", labelled, LABEL_BATCH),
        ("+ keep labelled, decode every feature, per example", batched(decoded), 256),
        (f"+ keep the first {max_detections} alerts", batched(truncated), 256),
    ]
    if hasattr(records, "decode_first"):  # round 6's decode
        keys = ["jd", "stamps", "stamp_mask", "metadata", "metadata_present"]

        def first(record):
            return records.decode_first(record, keys, max_detections)

        name = f"AFTER: + keep labelled, decode 5 features of the first {max_detections} alerts"
        stages.append((name, batched(kept.unbatch().map(first)), 256))
    data = {"max_detections": max_detections}
    feeds = [
        ("seq_classifier", {}),
        ("seq_classifier", {"balance": "oversample"}),
        ("seq_vae", {}),
    ]
    for model, options in feeds:
        overrides = {"data": {**data, **options}, "train": {"batch_size": batch_size}}
        feed = training_feed(data_dir, model, overrides)
        name = f"the {model} training feed ({options.get('balance', 'plain')}, all stages)"
        stages.append((name, feed, batch_size))
    return stages


def feature_costs(data_dir: Path, examples: int) -> dict:
    """CPU ms per example to parse each feature alone, 64 serialized examples at a time
    (``decode_batch``), beside TFDS' per-example decoding of every feature, and the cost of
    iterating the same cached batches with nothing parsed (subtract it)."""
    import tensorflow as tf

    from stampnet.data.records import SplitRecords

    records = SplitRecords(data_dir, "alerts", "train")
    serialized = records.dataset(shuffle=False, seed=0).take(64).cache().repeat()
    batches = serialized.batch(64)
    names = list(records.builder.info.features.keys())
    costs = {
        "nothing parsed": cpu_per_example(batches.map(tf.identity), examples, 64),
        "every feature, per example (TFDS)": cpu_per_example(
            serialized.map(records.decode).batch(64), examples, 64
        ),
        "every feature, a batch at a time": cpu_per_example(
            batches.map(lambda batch: records.decode_batch(batch, names)), examples, 64
        ),
    }
    for name in names:
        dataset = batches.map(lambda batch, name=name: records.decode_batch(batch, [name]))
        costs[name] = cpu_per_example(dataset, examples, 64)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--config", choices=("alerts", "sequences"), default="alerts")
    parser.add_argument("--max-detections", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=None, help="64 alerts, 32 sequences")
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    data_dir = Path(args.data)
    if args.batch_size is None:
        args.batch_size = 32 if args.config == "sequences" else 64
    print(f"load average {os.getloadavg()[0]:.2f}")
    stages, previous = [], 0.0
    if args.config == "sequences":
        prefixes = sequence_prefixes(data_dir, args.max_detections, args.batch_size)
    else:
        prefixes = stage_prefixes(data_dir, args.batch_size)
    for name, dataset, per_element in prefixes:
        cost = cpu_per_example(dataset, args.examples, per_element)
        if name.startswith("AFTER") and args.config == "sequences":
            previous = stages[1]["cpu_ms"]  # decoding follows the label parse
        elif name.startswith("AFTER") or (name.startswith("the ") and args.config == "sequences"):
            previous = 0.0  # a new prefix, or a whole feed alone
        cost.update(stage=name, stage_cpu_ms=cost["cpu_ms"] - previous)
        previous = cost["cpu_ms"]
        stages.append(cost)
        print(
            f"{name:<55} {cost['cpu_ms']:6.3f} CPU ms/ex (stage {cost['stage_cpu_ms']:+6.3f}) "
            f"{cost['wall_ms']:6.3f} wall ms/ex"
        )
    features = feature_costs(data_dir, args.examples) if args.config == "alerts" else {}
    for name, cost in features.items():
        print(f"parse {name:<36} {cost['cpu_ms']:6.3f} CPU ms/ex")
    print(f"load average {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"stages": stages, "features": features}, indent=2))


if __name__ == "__main__":
    main()
