"""The rotation-invariant stamp classifier: shapes, serialisation, exact rotation invariance,
the configuration choices of the paper's comparisons, its loss, and that it learns."""

from __future__ import annotations

import re

import keras
import numpy as np
import pandas as pd
import pytest

from stampnet.constants import ALERCE_CLASSES
from stampnet.data.alert import RejectionLog
from stampnet.data.readers import iter_alerts
from stampnet.features import FeatureStats, metadata_indices
from stampnet.losses.classification import (
    EntropyRegularisedCrossentropy,
    entropy_regularised_crossentropy,
    prediction_entropy,
)
from stampnet.models.alerce_import import import_alerce_checkpoint
from stampnet.models.stamp_classifier import build_stamp_classifier
from tests.model_checks import run_model_checks

FEATURES = ("magpsf", "sgscore1", "ndethist")
STATS = FeatureStats.from_values(FEATURES, mean=[18.0, 0.5, 5.0], std=[1.5, 0.4, 6.0])


def random_inputs(batch=3, features=True, seed=0):
    rng = np.random.default_rng(seed)
    stamps = rng.normal(100.0, 20.0, (batch, 63, 63, 3)).astype(np.float32)
    mask = (rng.random((batch, 63, 63, 3)) > 0.05).astype(np.float32)
    stamps[mask == 0] = np.nan  # invalid pixels may hold NaN, the model must not read them
    inputs = {"stamps": stamps, "stamp_mask": mask}
    if features:
        values = rng.normal([18.0, 0.5, 5.0], [1.5, 0.4, 6.0], (batch, 3)).astype(np.float32)
        values[0, 1] = np.nan  # a missing feature
        inputs["features"] = values
    return inputs


def rotated(inputs, k):
    turned = {name: np.rot90(inputs[name], k, axes=(1, 2)) for name in ("stamps", "stamp_mask")}
    return {**inputs, **{name: np.ascontiguousarray(value) for name, value in turned.items()}}


@pytest.fixture(scope="module")
def real_batch(ztf_dir):
    """32 labelled real alerts (stamps, masks, ALeRCE-26 raw features) and their labels."""
    labels = pd.read_csv(ztf_dir / "labels.csv").set_index("candid")["label"]
    alerts, targets = [], []
    for alert in iter_alerts(ztf_dir, rejections=RejectionLog(warn=False)):
        label = labels.get(alert.candid)
        if label in ALERCE_CLASSES:
            alerts.append(alert)
            targets.append(ALERCE_CLASSES.index(label))
        if len(alerts) == 32:
            break
    inputs = {
        "stamps": np.stack([alert.stamps for alert in alerts]),
        "stamp_mask": np.stack([alert.stamp_mask for alert in alerts]).astype(np.float32),
        "metadata": np.stack([alert.metadata for alert in alerts]).astype(np.float32),
    }
    return inputs, np.array(targets, np.int32)


def test_model_checks_tiny_config(tmp_path):
    model = build_stamp_classifier(class_names=("a", "b", "c"), feature_stats=STATS)
    run_model_checks(model, random_inputs(), [(3, 3)], tmp_path, atol=1e-6)
    probabilities = np.asarray(model(random_inputs(), training=False))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-6)
    assert np.all(np.isfinite(probabilities))


@pytest.mark.parametrize(
    "pool_after, features, channels",
    [
        ("dense_1", True, ("science", "template", "difference")),
        ("dense_2", False, ("science", "template", "difference")),
        ("dense_2", True, ("difference",)),
        ("dense_1", False, ("science", "difference")),
    ],
)
def test_rotated_stamp_gives_same_probabilities(pool_after, features, channels):
    model = build_stamp_classifier(
        class_names=ALERCE_CLASSES,
        feature_stats=STATS if features else None,
        channels=channels,
        pool_after=pool_after,
    )
    inputs = random_inputs(features=features)
    reference = np.asarray(model(inputs, training=False))
    for k in (1, 2, 3):
        turned = np.asarray(model(rotated(inputs, k), training=False))
        np.testing.assert_allclose(turned, reference, rtol=0, atol=1e-5)
    # Not a trivially constant model: a mirrored stamp is a different input.
    mirrored = {**inputs, "stamps": np.ascontiguousarray(inputs["stamps"][:, ::-1])}
    assert np.abs(np.asarray(model(mirrored, training=False)) - reference).max() > 1e-6


def test_rotated_real_stamps_give_same_alerce_probabilities(real_batch, alerce_2019_dir):
    model = import_alerce_checkpoint(alerce_2019_dir)
    inputs = {name: real_batch[0][name] for name in ("stamps", "stamp_mask")}
    reference = model.predict(inputs, verbose=0)
    for k in (1, 2, 3):
        turned = model.predict(rotated(inputs, k), verbose=0)
        np.testing.assert_allclose(turned, reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("channels", [("difference",), ("template", "science")])
def test_channel_subsets_feed_only_those_channels(channels):
    model = build_stamp_classifier(class_names=("a", "b"), channels=channels)
    assert model.get_layer("conv_1").kernel.shape == (4, 4, len(channels), 32)
    inputs = random_inputs(features=False)
    unused = [index for index, name in enumerate(("science", "template", "difference"))
              if name not in channels]  # fmt: skip
    changed = {**inputs, "stamps": inputs["stamps"].copy()}
    changed["stamps"][..., unused] *= 3.0
    np.testing.assert_array_equal(model(inputs), model(changed))


def test_images_only_model_has_no_features_input():
    model = build_stamp_classifier(class_names=ALERCE_CLASSES, feature_stats=None)
    assert sorted(model.input) == ["stamp_mask", "stamps"]
    assert model(random_inputs(features=False)).shape == (3, 5)


@pytest.mark.parametrize("crop_size, flat", [(21, 2304), (41, 7744), (63, 16384)])
def test_pool_positions_and_crop_sizes(crop_size, flat):
    dense_1 = build_stamp_classifier(class_names=ALERCE_CLASSES, crop_size=crop_size)
    dense_2 = build_stamp_classifier(
        class_names=ALERCE_CLASSES, crop_size=crop_size, pool_after="dense_2", dropout_rate=0.0
    )
    assert dense_1.get_layer("dense_1").kernel.shape == (flat, 64)
    names_1 = [layer.name for layer in dense_1.layers]
    names_2 = [layer.name for layer in dense_2.layers]
    # 2020 layout: pool after dense_1, then dense_2 and dense_3; 2019: pool after dense_2.
    assert names_1.index("cyclic_pooling") < names_1.index("dense_2") and "dense_3" in names_1
    assert names_2.index("dense_2") < names_2.index("cyclic_pooling") and "dense_3" not in names_2
    assert not any("dropout" in name for name in names_2)


@pytest.mark.parametrize(
    "arguments",
    [
        {"crop_size": 64},
        {"pool_after": "dense_3"},
        {"channels": ("science", "science")},
        {"channels": ("red",)},
        {"dropout_rate": 1.0},
        {"class_names": ("only",)},
    ],
)
def test_invalid_configuration_is_rejected_with_the_value(arguments):
    config = {"class_names": ALERCE_CLASSES, **arguments}
    with pytest.raises(ValueError, match=re.escape(repr(next(iter(arguments.values()))))):
        build_stamp_classifier(**config)


def test_entropy_regularised_crossentropy_values():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    labels = np.array([0, 2])
    entropy = -(probabilities * np.log(probabilities)).sum(axis=1)
    crossentropy = -np.log([0.7, 0.8])
    for beta in (0.0, 0.5, 1.0):
        got = np.asarray(entropy_regularised_crossentropy(labels, probabilities, beta=beta))
        np.testing.assert_allclose(got, crossentropy - beta * entropy, rtol=1e-6)
    np.testing.assert_allclose(prediction_entropy(probabilities), entropy, rtol=1e-6)
    one_hot = np.eye(3, dtype=np.float32)[labels]
    np.testing.assert_allclose(
        entropy_regularised_crossentropy(one_hot, probabilities, sparse=False),
        entropy_regularised_crossentropy(labels, probabilities),
        rtol=1e-6,
    )
    loss = EntropyRegularisedCrossentropy(beta=0.5)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert clone.beta == 0.5 and clone.sparse
    expected = np.mean(crossentropy - 0.5 * entropy)
    np.testing.assert_allclose(clone(labels, probabilities), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="-1"):
        EntropyRegularisedCrossentropy(beta=-1)


def test_a_few_training_steps_reduce_the_loss_on_real_alerts(real_batch):
    batch, labels = real_batch
    assert len(set(labels.tolist())) > 1  # a real mix of classes
    names = ("magpsf", "sigmapsf", "sgscore1", "distpsnr1", "ndethist", "ncovhist")
    raw = batch["metadata"][:, metadata_indices(names)]
    inputs = {"stamps": batch["stamps"], "stamp_mask": batch["stamp_mask"], "features": raw}
    keras.utils.set_random_seed(0)
    model = build_stamp_classifier(
        class_names=ALERCE_CLASSES, feature_stats=FeatureStats.fit(names, raw)
    )
    loss = EntropyRegularisedCrossentropy(beta=0.5)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    before = model.evaluate(inputs, labels, verbose=0)
    model.fit(inputs, labels, batch_size=32, epochs=15, verbose=0, shuffle=False)
    after = model.evaluate(inputs, labels, verbose=0)
    assert after < before - 0.1, (before, after)
