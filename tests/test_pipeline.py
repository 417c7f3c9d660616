"""tf.data pipelines: input dicts, labels, padding, balancing, shuffling, on real alerts."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import tensorflow_datasets as tfds

from stampnet.data.builder import load_builder
from stampnet.data.pipeline import alert_dataset, sequence_dataset
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
