"""tf.data pipelines: input dicts, labels, padding, balancing, shuffling, on real alerts."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from stampnet.data.batching import _label_lookup, labelled_batches
from stampnet.data.builder import load_builder, raw_bytes_decoders
from stampnet.data.card import load_card
from stampnet.data.pipeline import alert_dataset, sequence_dataset
from stampnet.data.record_index import RecordIndex
from stampnet.data.records import SplitRecords, decoded_split
from stampnet.features import ALERCE23, DETECTION_FIELDS, metadata_indices
from tests.dataset_helpers import build_quietly, small_sources, write_small_labels


@pytest.fixture(scope="module")
def data_dir(ztf_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    labels = write_small_labels(ztf_dir, root / "labels.csv")
    build_quietly(small_sources(ztf_dir), root / "data", labels=labels, seed=0)
    return root / "data"


def stored(data_dir, config, split):
    builder = load_builder(data_dir, config)
    return {
        ex["object_id" if config == "sequences" else "candid"]: ex
        for ex in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))
    }


def test_alert_inputs_are_raw_with_nan_only_where_missing(data_dir):
    truth = stored(data_dir, "alerts", "train")
    dataset = alert_dataset(
        data_dir, "train", batch_size=16, labelled_only=False, shuffle=False, with_ids=True
    )
    seen = 0
    for inputs, label in dataset.as_numpy_iterator():
        assert inputs["stamps"].shape[1:] == (63, 63, 3) and inputs["features"].shape[1:] == (23,)
        assert np.isfinite(inputs["stamps"]).all() and inputs["stamp_mask"].dtype == np.float32
        assert set(np.unique(inputs["stamp_mask"])) <= {0.0, 1.0} and label.dtype == np.int32
        for row, candid in enumerate(inputs["candid"]):
            example = truth[candid]
            present = example["metadata_present"][metadata_indices(ALERCE23)]
            features = inputs["features"][row]
            assert np.array_equal(np.isnan(features), ~present)
            np.testing.assert_array_equal(
                features[present], example["metadata"][metadata_indices(ALERCE23)][present]
            )
            np.testing.assert_array_equal(inputs["stamps"][row], example["stamps"])
            seen += 1
    assert seen == len(truth) and -1 in label  # unlabelled kept when labelled_only=False


def test_labelled_only_drops_unknown_and_ids_only_on_request(data_dir):
    inputs, label = next(iter(alert_dataset(data_dir, "train", batch_size=64, shuffle=False)))
    assert set(inputs) == {"stamps", "stamp_mask", "features"}
    assert (label.numpy() >= 0).all()


def test_sequences_are_padded_and_time_ordered(data_dir):
    truth = stored(data_dir, "sequences", "train")
    dataset = sequence_dataset(
        data_dir, "train", batch_size=8, max_detections=5, labelled_only=False, shuffle=False,
        with_ids=True,
    )  # fmt: skip
    found_long = False
    for inputs, _ in dataset.as_numpy_iterator():
        assert inputs["stamps"].shape[1:] == (5, 63, 63, 3)
        assert inputs["detection_features"].shape[1:] == (5, len(DETECTION_FIELDS) + 1)
        for row, object_id in enumerate(inputs["object_id"]):
            example = truth[object_id]
            count = min(len(example["candid"]), 5)
            mask = inputs["detection_mask"][row]
            assert mask.tolist() == [1.0] * count + [0.0] * (5 - count)
            assert (
                not inputs["stamps"][row, count:].any()
                and not inputs["stamp_mask"][row, count:].any()
            )
            assert not inputs["detection_features"][row, count:].any()
            days = inputs["detection_features"][row, :count, -1]
            np.testing.assert_allclose(days, example["jd"][:count] - example["jd"][0], atol=1e-4)
            assert np.all(np.diff(days) >= 0)
            np.testing.assert_array_equal(inputs["candid"][row, :count], example["candid"][:count])
            found_long |= count == 5
            assert np.isfinite(inputs["stamps"]).all()
    assert found_long


def test_oversampling_balances_classes(data_dir):
    dataset = alert_dataset(data_dir, "train", batch_size=50, balance="oversample", seed=1)
    counts = Counter(np.concatenate([label for _, label in dataset.take(8).as_numpy_iterator()]))
    assert len(counts) == 5 and min(counts.values()) > 400 / 5 * 0.6  # uniform over 5 classes


def test_sample_weights_are_inverse_class_frequency(data_dir):
    from stampnet.data.card import load_card

    per_label = load_card(data_dir)["counts"]["alerts"]["train"]
    classes = load_card(data_dir)["class_names"]
    counts = np.array([per_label.get(name, 0) for name in classes], float)
    dataset = alert_dataset(data_dir, "train", batch_size=200, balance="weights", shuffle=False)
    _, label, weight = next(iter(dataset))
    expected = counts.sum() / ((counts > 0).sum() * counts[label.numpy()])
    np.testing.assert_allclose(weight.numpy(), expected, rtol=1e-6)


def test_shuffling_is_seeded(data_dir):
    def order(seed):
        dataset = alert_dataset(
            data_dir, "train", batch_size=1000, labelled_only=False, seed=seed, with_ids=True
        )
        return next(iter(dataset))[0]["candid"].numpy().tolist()

    assert order(0) == order(0) and order(0) != order(1)


def test_bad_arguments_are_clear_errors(data_dir, tmp_path):
    with pytest.raises(ValueError, match="balance"):
        alert_dataset(data_dir, "train", batch_size=4, balance="smote")
    with pytest.raises(ValueError, match="not in"):
        alert_dataset(data_dir, "holdout", batch_size=4)
    with pytest.raises(ValueError, match="max_detections"):
        sequence_dataset(data_dir, "train", batch_size=4, max_detections=11)
    with pytest.raises(FileNotFoundError, match="No dataset card"):
        alert_dataset(tmp_path, "train", batch_size=4)


def as_dataset_order(data_dir, config, split, shuffle, seed):
    """The split as ``tfds`` decodes it: the reference the serialized-record reader must match."""
    builder = load_builder(data_dir, config)
    return builder.as_dataset(
        split=split,
        shuffle_files=shuffle,
        read_config=tfds.ReadConfig(shuffle_seed=seed, try_autocache=False),
        decoders=raw_bytes_decoders(builder),
    )


@pytest.mark.parametrize("config", ["alerts", "sequences"])
@pytest.mark.parametrize("split,shuffle", [("train", False), ("train[5:-7]", True)])
def test_split_records_decode_to_as_dataset_in_its_order(data_dir, config, split, shuffle):
    expected = list(tfds.as_numpy(as_dataset_order(data_dir, config, split, shuffle, 3)))
    found = list(tfds.as_numpy(decoded_split(data_dir, config, split, shuffle=shuffle, seed=3)))
    assert len(found) == len(expected) > 0
    for got, want in zip(found, expected, strict=True):
        assert set(got) == set(want)
        for key in want:  # same values, same dtypes: byte for byte
            assert np.asarray(got[key]).dtype == np.asarray(want[key]).dtype, key
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def split_into_four_shards(data_dir, tmp_path):
    """A copy of ``data_dir``'s alerts whose train split is 4 shards of ~18 records (more than
    TFDS' interleave blocks of 16); returns the records in their original order."""
    return split_into_shards(data_dir, tmp_path, "alerts", 4)


def split_into_shards(data_dir, tmp_path, config, count):
    """A copy of ``data_dir``'s ``config`` whose train split is ``count`` shards; returns the
    records in their original order."""
    source = load_builder(data_dir, config).data_dir
    target = tmp_path / "ztf_alerts" / config / Path(source).name
    shutil.copytree(source, target)
    records = list(tf.data.TFRecordDataset(str(next(target.glob("*-train.tfrecord-*")))))
    for old in target.glob("*-train.tfrecord-*"):
        old.unlink()
    shards = np.array_split(np.arange(len(records)), count)
    for number, rows in enumerate(shards):
        name = f"ztf_alerts-train.tfrecord-{number:05d}-of-{len(shards):05d}"
        with tf.io.TFRecordWriter(str(target / name)) as out:
            for row in rows:
                out.write(records[row].numpy())
    info = json.loads((target / "dataset_info.json").read_text())
    train = next(split for split in info["splits"] if split["name"] == "train")
    train["shardLengths"] = [str(len(rows)) for rows in shards]
    (target / "dataset_info.json").write_text(json.dumps(info))
    shutil.copy(Path(data_dir) / "dataset_card.json", tmp_path)
    return records


def test_split_records_follow_as_dataset_over_several_shards(data_dir, tmp_path):
    """4 shards, shuffled files, a slice."""
    records = split_into_four_shards(data_dir, tmp_path)
    for split, shuffle, seed in [("train", False, 0), ("train", True, 5), ("train[3:-4]", True, 6)]:
        want = as_dataset_order(tmp_path, "alerts", split, shuffle, seed).map(lambda e: e["candid"])
        got = decoded_split(tmp_path, "alerts", split, shuffle=shuffle, seed=seed)
        expected = list(want.as_numpy_iterator())
        assert [int(e["candid"]) for e in got.as_numpy_iterator()] == expected
        assert len(expected) == len(records) - (7 if "[" in split else 0)
    assert expected != sorted(expected)


def old_oversampled_ids(data_dir, seed, count):
    """Candids of the oversampled stream as the pipeline drew them when it decoded every example
    of the split in every class's stream (the code before label-first filtering)."""
    classes = load_card(data_dir)["class_names"]
    lookup = {name.encode(): index for index, name in enumerate(classes)}
    decoded = as_dataset_order(data_dir, "alerts", "train", True, seed)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(list(lookup), list(lookup.values())), -1
    )
    labelled = decoded.map(lambda ex: (ex["candid"], table.lookup(ex["label"])))
    per_label = load_card(data_dir)["counts"]["alerts"]["train"]
    present = [i for i, name in enumerate(classes) if per_label.get(name, 0) > 0]
    streams = [
        labelled.filter(lambda candid, label, i=i: label == i)
        .shuffle(max(1024 // len(present), 1), seed=seed + i)
        .repeat()
        for i in present
    ]
    sampled = tf.data.Dataset.sample_from_datasets(
        streams, weights=[1.0 / len(present)] * len(present), seed=seed
    )
    return [int(candid) for candid, _ in sampled.take(count).as_numpy_iterator()]


def test_oversampled_stream_draws_balanced_classes_of_exact_decoded_examples(data_dir):
    truth = stored(data_dir, "alerts", "train")
    classes = load_card(data_dir)["class_names"]

    def drawn(seed, batches=4):
        dataset = alert_dataset(
            data_dir, "train", batch_size=50, balance="oversample", seed=seed, with_ids=True
        )
        return [(inputs, label) for inputs, label in dataset.take(batches).as_numpy_iterator()]

    batches = drawn(seed=1)
    ids = [int(candid) for inputs, _ in batches for candid in inputs["candid"]]
    labels = np.concatenate([label for _, label in batches])
    # The intended frequencies: uniform over the classes present (5 here), 200 draws.
    counts = Counter(labels.tolist())
    per_label = load_card(data_dir)["counts"]["alerts"]["train"]
    present = {i for i, name in enumerate(classes) if per_label.get(name, 0) > 0}
    assert set(counts) == present and len(present) == 5
    assert all(abs(n - 40) <= 4 * np.sqrt(200 * 0.2 * 0.8) for n in counts.values()), counts
    # Every example is the stored one, byte for byte, under its own label.
    features = metadata_indices(ALERCE23)
    for inputs, label in batches:
        for row, candid in enumerate(inputs["candid"]):
            example = truth[candid]
            assert classes[label[row]] == example["label"].decode()
            assert inputs["stamps"][row].tobytes() == example["stamps"].tobytes()
            np.testing.assert_array_equal(inputs["stamp_mask"][row], example["stamp_mask"])
            raw = np.where(example["metadata_present"], example["metadata"], np.nan)
            np.testing.assert_array_equal(inputs["features"][row], raw[features])
    # Seeded: the same draws again, other draws for another seed, and exactly the draws of the
    # pipeline that decoded the whole split in every class's stream.
    assert [int(c) for inputs, _ in drawn(seed=1, batches=2) for c in inputs["candid"]] == ids[:100]
    assert [int(c) for inputs, _ in drawn(seed=2, batches=1) for c in inputs["candid"]] != ids[:50]
    assert old_oversampled_ids(data_dir, seed=1, count=100) == ids[:100]


def test_only_kept_examples_are_decoded(data_dir):
    records = SplitRecords(data_dir, "alerts", "train")
    card = load_card(data_dir)
    decoded_labels = tf.Variable(tf.zeros([len(card["class_names"]) + 1], tf.int64))
    lookup = {name: index for index, name in enumerate(card["class_names"])}
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(list(lookup), list(lookup.values())),
        len(lookup),  # unlabelled: the last counter
    )

    def counted_decode(record):
        example = records.decode(record)
        one = tf.one_hot(table.lookup(example["label"]), len(lookup) + 1, dtype=tf.int64)
        with tf.control_dependencies([decoded_labels.assign_add(one)]):
            return {key: tf.identity(value) for key, value in example.items()}

    def batches(balance, labelled_only, take):
        dataset = labelled_batches(
            records, counted_decode, lambda example: example["candid"], card=card,
            config="alerts", split="train", class_names=card["class_names"],
            labelled_only=labelled_only, balance=balance, shuffle=False, shuffle_buffer=1024,
            seed=0, repeat=False, batch_size=10, drop_remainder=False,
        )  # fmt: skip
        decoded_labels.assign(tf.zeros_like(decoded_labels))
        drawn = np.zeros(len(lookup), np.int64)
        for _, labels in dataset.take(take).as_numpy_iterator():
            drawn += np.bincount(labels, minlength=len(lookup))
        return decoded_labels.numpy(), drawn

    per_label = card["counts"]["alerts"]["train"]
    labelled = sum(n for name, n in per_label.items() if name in lookup)
    # labelled_only: every labelled example is decoded once, no unlabelled one.
    counts, drawn = batches(None, True, take=1000)
    assert counts[-1] == 0 and counts.sum() == drawn.sum() == labelled
    # Oversampling: a class's stream decodes its own examples, so the decodes are those drawn
    # plus what the streams and the prefetch hold ahead, a fixed amount (how much depends on
    # tf.data's autotuning and the load: it is not asserted exactly). A stream that decoded the
    # whole split to find its class, as before, made about 5 x 1,000 decodes here.
    counts, drawn = batches("oversample", True, take=100)
    assert counts[-1] == 0 and drawn.sum() == 1000, (counts, drawn)
    ahead = counts.sum() - drawn.sum()
    assert (counts[:-1] >= drawn).all() and ahead < 4 * labelled, (counts, drawn)


def old_feed(*args, decode_batch=None, **kwargs):
    """``labelled_batches`` as it was before batched parsing and the record index: every example
    decoded alone, every feature, and every class's stream reading the whole split."""
    return labelled_batches(*args, **kwargs)


def assert_same_batches(got, want):
    assert len(got) == len(want) > 0
    for got_batch, want_batch in zip(got, want, strict=True):
        for got_part, want_part in zip(got_batch, want_batch, strict=True):
            got_part = got_part if isinstance(got_part, dict) else {"label": got_part}
            want_part = want_part if isinstance(want_part, dict) else {"label": want_part}
            assert set(got_part) == set(want_part)
            for key, value in want_part.items():
                assert got_part[key].dtype == value.dtype and got_part[key].shape == value.shape
                if value.dtype == object:  # strings: numpy's bytes would be pointers
                    assert got_part[key].tolist() == value.tolist(), key
                else:
                    assert got_part[key].tobytes() == value.tobytes(), key


@pytest.mark.parametrize(
    "arguments,batches",
    [
        # 320 draws: about 3 epochs of the rarest class's stream (AGN, 21 alerts), each with its
        # own order of the 4 shards.
        (dict(balance="oversample", seed=3, with_ids=True), 8),
        (dict(balance=None, seed=1, repeat=True, with_ids=True), 14),
        (dict(balance="weights", shuffle=False, labelled_only=False, with_history=True), 14),
    ],
)
def test_feed_gives_the_models_what_the_old_feed_gave_byte_for_byte(
    data_dir, tmp_path, monkeypatch, arguments, batches
):
    import stampnet.data.pipeline as pipeline

    split_into_four_shards(data_dir, tmp_path)
    new = alert_dataset(tmp_path, "train", batch_size=40, **arguments)
    got = list(new.take(batches).as_numpy_iterator())
    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "labelled_batches", old_feed)
        old = alert_dataset(tmp_path, "train", batch_size=40, **arguments)
        want = list(old.take(batches).as_numpy_iterator())
    assert_same_batches(got, want)


def test_batched_parse_equals_decoding_each_example(data_dir):
    records = SplitRecords(data_dir, "alerts", "train")
    names = list(records.builder.info.features.keys())
    serialized = records.dataset(shuffle=False, seed=0).batch(17)
    for batch in serialized.take(3):
        parsed = records.decode_batch(batch, names)
        for row, record in enumerate(batch):
            want = records.decode(record)
            for key in names:
                assert parsed[key].dtype == want[key].dtype, key
                np.testing.assert_array_equal(parsed[key][row].numpy(), want[key].numpy(), key)
    with pytest.raises(ValueError, match="only fixed shapes"):
        SplitRecords(data_dir, "sequences", "train").decode_batch(batch, ["stamps"])


def test_batched_parse_of_the_first_alerts_equals_each_sequence_cut_and_zero_padded(data_dir):
    records = SplitRecords(data_dir, "sequences", "train")
    names = [name for name in records.builder.info.features.keys() if name != "label"]
    lengths = []
    for batch in records.dataset(shuffle=False, seed=0).batch(13):
        parsed = records.decode_batch(batch, names, first=3)
        for row, record in enumerate(batch):
            want = records.decode(record)
            count = min(len(want["candid"]), 3)
            lengths.append(len(want["candid"]))
            assert parsed["num_rows"][row] == count
            for key in names:
                value = want[key].numpy()
                if key in ("candid", "jd", "stamps", "stamp_mask", "metadata", "metadata_present"):
                    padding = np.zeros((3 - count, *value.shape[1:]), value.dtype)
                    value = np.concatenate([value[:3], padding])
                assert parsed[key].dtype == want[key].dtype, key
                got = parsed[key][row].numpy()
                assert got == value if key == "object_id" else got.tobytes() == value.tobytes()
    assert min(lengths) < 3 < max(lengths)  # cut and padded objects
    # A record whose stamps are not a whole number of alerts is an error, not padding.
    example = tf.train.Example.FromString(batch[0].numpy())
    stamps = example.features.feature["stamps"].bytes_list
    stamps.value[0] = stamps.value[0][:-4]
    with pytest.raises(tf.errors.InvalidArgumentError, match="rebuild the data"):
        records.decode_batch(tf.constant([example.SerializeToString()]), names, first=3)


def test_record_index_reads_the_records_of_a_class_in_the_split_order(data_dir, tmp_path):
    split_into_four_shards(data_dir, tmp_path)
    classes = load_card(data_dir)["class_names"]
    lookup = {name.encode(): index for index, name in enumerate(classes)}
    for split, shuffle, seed in [("train", True, 5), ("train[3:-4]", False, 0)]:
        records = SplitRecords(tmp_path, "alerts", split)
        located = RecordIndex(records, _label_lookup(classes).lookup)
        # Two epochs: the file order of the second is drawn again, as the reader's is.
        want = [
            (record, lookup.get(records.labels(record).numpy(), -1))
            for record in records.dataset(shuffle=shuffle, seed=seed).repeat(2).as_numpy_iterator()
        ]
        for index in (None, classes.index("AGN")):
            keep = (lambda labels: labels >= -1) if index is None else (lambda labels: labels == 0)
            positions = located.positions(shuffle=shuffle, seed=seed).repeat(2)
            got = [
                (record, label)
                for batch, labels in located.selected(positions, keep).as_numpy_iterator()
                for record, label in zip(batch, labels, strict=True)
            ]
            assert got == [item for item in want if index is None or item[1] == index]
    # A file rewritten after the index was made is an error naming it, not other bytes.
    shard = sorted(located.filenames)[0]
    Path(shard).write_bytes(Path(shard).read_bytes()[:100])
    with pytest.raises(tf.errors.InvalidArgumentError, match="indexed when the pipeline"):
        list(located.selected(located.positions(shuffle=False, seed=0), keep))


def old_sequence_inputs(example, steps, with_history, with_ids):
    """``sequence_dataset``'s inputs as round 5 made them: from an example decoded whole by TFDS
    and cut to its first ``steps`` alerts, padded after decoding."""
    feature_index = tf.constant(metadata_indices(ALERCE23), tf.int32)
    detection_index = tf.constant(metadata_indices(DETECTION_FIELDS), tf.int32)

    def pad(tensor):
        missing = steps - tf.shape(tensor)[0]
        paddings = tf.concat([[[0, missing]], tf.zeros([tf.rank(tensor) - 1, 2], tf.int32)], 0)
        return tf.ensure_shape(tf.pad(tensor, paddings), [steps, *tensor.shape[1:]])

    count = tf.minimum(tf.shape(example["candid"])[0], steps)
    raw = tf.where(example["metadata_present"], example["metadata"], np.nan)[:count]
    jd = example["jd"][:count]
    days = tf.cast(jd - jd[0], tf.float32)[:, None]
    detection = tf.concat([tf.gather(raw, detection_index, axis=-1), days], axis=-1)
    inputs = {
        "stamps": pad(example["stamps"][:count]),
        "stamp_mask": pad(tf.cast(example["stamp_mask"][:count], tf.float32)),
        "detection_mask": pad(tf.ones([count], tf.float32)),
        "detection_features": pad(detection),
        "features": tf.gather(raw[0], feature_index),
    }
    if with_history:
        last = tf.cast(jd[-1] - jd[0], tf.float32)
        mask = example["history_mask"] & (example["history"][:, 0] <= last + 1e-4)
        history = tf.concat([example["history"][:, :1] - last, example["history"][:, 1:]], -1)
        mask = tf.cast(mask, tf.float32)
        inputs["light_curve"] = tf.where(mask[:, None] > 0, history, 0.0)
        inputs["light_curve_mask"] = mask
    if with_ids:
        inputs["candid"] = pad(example["candid"][:count])
        inputs["object_id"] = example["object_id"]
    return inputs


def old_sequence_feed(data_dir, *, batch_size, max_detections, balance=None, shuffle=True,
                      seed=0, repeat=False, labelled_only=True, with_ids=False,
                      with_history=False):  # fmt: skip
    """The sequence feed before this round: every example of the train split decoded whole (TFDS,
    ``as_dataset``'s order), labelled, filtered per class, shuffled, then cut and padded."""
    from stampnet.data.pipeline import SEQUENCE_SHUFFLE_BUFFER

    card = load_card(data_dir)
    classes = card["class_names"]
    table = _label_lookup(classes)
    examples = as_dataset_order(data_dir, "sequences", "train", shuffle, seed).map(
        lambda example: (example, table.lookup(example["label"]))
    )
    per_label = card["counts"]["sequences"]["train"]
    counts = np.array([per_label.get(name, 0) for name in classes], np.float64)
    if balance == "oversample":
        present = [index for index, count in enumerate(counts) if count > 0]
        streams = []
        for index in present:
            stream = examples.filter(lambda example, label, i=index: label == i)
            if shuffle:
                stream = stream.shuffle(SEQUENCE_SHUFFLE_BUFFER // len(present), seed=seed + index)
            streams.append(stream.repeat())
        weights = [1.0 / len(present)] * len(present)
        dataset = tf.data.Dataset.sample_from_datasets(streams, weights=weights, seed=seed)
    else:
        dataset = examples.filter(lambda example, label: label >= 0) if labelled_only else examples
        if shuffle:
            dataset = dataset.shuffle(SEQUENCE_SHUFFLE_BUFFER, seed=seed)
        if repeat:
            dataset = dataset.repeat()
    dataset = dataset.map(
        lambda example, label: (
            old_sequence_inputs(example, max_detections, with_history, with_ids),
            label,
        )
    )
    if balance == "weights":
        table = np.zeros(len(classes), np.float32)
        table[counts > 0] = counts.sum() / ((counts > 0).sum() * counts[counts > 0])
        dataset = dataset.map(
            lambda inputs, label: (
                inputs,
                label,
                tf.where(label >= 0, tf.gather(table, tf.maximum(label, 0)), 0.0),
            )
        )
    return dataset.batch(batch_size)


@pytest.mark.parametrize(
    "arguments,batches",
    [
        # 32 draws: about 2 epochs of the rarest classes (3 objects each), 2 shuffled shards.
        (dict(balance="oversample", seed=3, with_ids=True, max_detections=3), 4),
        (dict(seed=1, repeat=True, with_ids=True, with_history=True, max_detections=5), 8),
        (
            dict(
                balance="weights",
                shuffle=False,
                labelled_only=False,
                with_history=True,
                max_detections=2,
            ),
            6,
        ),  # fmt: skip
        (dict(seed=4, labelled_only=False, repeat=True, max_detections=10), 8),  # seq_vae
    ],
)
def test_sequence_feed_gives_the_models_what_the_old_feed_gave_byte_for_byte(
    data_dir, tmp_path, arguments, batches
):
    split_into_shards(data_dir, tmp_path, "sequences", 2)  # 20 and 19 objects
    new = sequence_dataset(tmp_path, "train", batch_size=8, **arguments)
    got = list(new.take(batches).as_numpy_iterator())
    want = list(old_sequence_feed(tmp_path, batch_size=8, **arguments).take(batches))
    assert_same_batches(got, [tf.nest.map_structure(np.asarray, batch) for batch in want])
    if arguments["max_detections"] < 10:  # some objects were cut
        assert any(batch[0]["detection_mask"].all(axis=1).any() for batch in got)


def test_record_index_is_read_from_its_cache_at_the_next_pipeline_start(
    data_dir, tmp_path, monkeypatch
):
    import stampnet.data.record_index as record_index

    monkeypatch.setenv("STAMPNET_CACHE_DIR", str(tmp_path / "user"))
    split_into_four_shards(data_dir, tmp_path)
    classes = load_card(data_dir)["class_names"]
    records = SplitRecords(tmp_path, "alerts", "train")
    first = RecordIndex(records, _label_lookup(classes).lookup)

    def unexpected(filename):
        raise AssertionError(f"{filename} was read again")

    monkeypatch.setattr(record_index, "_read_file", unexpected)
    # Another class order: the cache holds label strings, not one pipeline's class indices.
    again = RecordIndex(records, _label_lookup(classes[::-1]).lookup)
    np.testing.assert_array_equal(again.offsets, first.offsets)
    np.testing.assert_array_equal(again.lengths, first.lengths)
    labels = first.labels.numpy()
    assert labels.min() == -1 and set(labels) - {-1} == set(range(len(classes)))
    np.testing.assert_array_equal(
        again.labels.numpy(), np.where(labels >= 0, len(classes) - 1 - labels, -1)
    )
    # A pipeline starts from the cache, and the feed checks each record against it.
    dataset = alert_dataset(tmp_path, "train", batch_size=16, balance="oversample", seed=2)
    _, label = next(iter(dataset))
    assert label.shape == (16,)
