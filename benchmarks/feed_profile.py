"""Where the alert feed's CPU goes: CPU ms per example of each tf.data stage and per feature.

The stamp classifier's training feed (``trainer.make_dataset``: oversampled, shuffled, batch 64)
is rebuilt stage by stage and each prefix is run alone; a stage's cost is the difference of CPU
time (all threads of the process: ``time.process_time``) per example yielded from the prefix
before it. Also: the cost of parsing each feature of an example alone, a batch of 64 at a time.

    python benchmarks/feed_profile.py --data tfrecords/builtin [--examples 4096] [--json out.json]
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


def stage_prefixes(data_dir: Path, batch_size: int):
    """(name, dataset, examples per element) for growing prefixes of the training feed."""
    import tensorflow as tf

    from stampnet.data.batching import LABEL_BATCH, _label_lookup
    from stampnet.data.card import load_card
    from stampnet.data.record_index import POSITION_BATCH, RecordIndex
    from stampnet.data.records import SplitRecords
    from stampnet.training import trainer
    from stampnet.training.config import apply_overrides
    from stampnet.training.registry import get_spec

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

    spec = get_spec("stamp_classifier")
    config = apply_overrides(
        spec.preset(), {"data": {"data_dir": str(data_dir)}, "train": {"batch_size": batch_size}}
    )
    info = trainer.data_info(config, spec, data_dir, card)
    bundle = spec.build(config, info)
    keys = trainer.input_keys(bundle.model)
    feed = trainer.make_dataset(
        config, spec, info, "train", bundle.batch_transform, keys=keys, training=True
    )
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
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    data_dir = Path(args.data)
    print(f"load average {os.getloadavg()[0]:.2f}")
    stages, previous = [], 0.0
    for name, dataset, per_element in stage_prefixes(data_dir, args.batch_size):
        cost = cpu_per_example(dataset, args.examples, per_element)
        if name.startswith("AFTER"):
            previous = 0.0
        cost.update(stage=name, stage_cpu_ms=cost["cpu_ms"] - previous)
        previous = cost["cpu_ms"]
        stages.append(cost)
        print(
            f"{name:<55} {cost['cpu_ms']:6.3f} CPU ms/ex (stage {cost['stage_cpu_ms']:+6.3f}) "
            f"{cost['wall_ms']:6.3f} wall ms/ex"
        )
    features = feature_costs(data_dir, args.examples)
    for name, cost in features.items():
        print(f"parse {name:<36} {cost['cpu_ms']:6.3f} CPU ms/ex")
    print(f"load average {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"stages": stages, "features": features}, indent=2))


if __name__ == "__main__":
    main()
