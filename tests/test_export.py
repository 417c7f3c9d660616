"""SavedModel export: fixed named signatures, raw inputs with NaN pixels, outputs as in Keras."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from stampnet.constants import ALERCE_CLASSES, CHANNELS, STAMP_SHAPE
from stampnet.features import ALERCE23, FeatureStats, metadata_indices
from stampnet.layers.preprocessing import FeatureNormalization, StampPreprocessing
from stampnet.training.export import export_saved_model, serving_inputs_from_batch
from stampnet.training.spec import Export


@pytest.fixture(scope="module")
def real_batch(ztf_dir):
    """Eight real alerts, including ones whose stamps hold NaN (invalid) pixels."""
    from stampnet.data.readers import iter_alerts

    alerts = list(
        itertools.islice(iter_alerts(ztf_dir / "alerts" / "ztf_public_20200101.tar.gz"), 40)
    )
    with_invalid = [alert for alert in alerts if not alert.stamp_mask.all()]
    chosen = (with_invalid[:3] + [a for a in alerts if a.stamp_mask.all()])[:8]
    features = np.stack([alert.metadata[metadata_indices(ALERCE23)] for alert in chosen])
    return {
        "stamps": np.stack([alert.stamps for alert in chosen]).astype(np.float32),
        "stamp_mask": np.stack([alert.stamp_mask for alert in chosen]).astype(np.float32),
        "features": features.astype(np.float32),
    }


def _stats(batch) -> FeatureStats:
    return FeatureStats.fit(ALERCE23, batch["features"])


def _call_signature(loaded, name, serving):
    return loaded.signatures[name](**{key: tf.constant(value) for key, value in serving.items()})


def test_classifier_signature_names_and_outputs_match_keras(real_batch, tmp_path):
    from stampnet.models.stamp_classifier import build_stamp_classifier

    keras.utils.set_random_seed(1)
    model = build_stamp_classifier(
        class_names=ALERCE_CLASSES, feature_stats=_stats(real_batch), crop_size=21
    )
    path = export_saved_model({"classifier": Export(model, "classifier")}, tmp_path / "sm")
    loaded = tf.saved_model.load(str(path))

    assert set(loaded.signatures) == {"classifier", "serving_default"}
    inputs = loaded.signatures["classifier"].structured_input_signature[1]
    assert sorted(inputs) == sorted([*CHANNELS, "features"])
    assert inputs["science"].shape.as_list() == [None, 63, 63]
    assert inputs["features"].shape.as_list() == [None, len(ALERCE23)]
    assert list(loaded.signatures["serving_default"].structured_outputs) == ["probabilities"]

    serving = serving_inputs_from_batch(real_batch)
    assert np.isnan(serving["science"]).any() or np.isnan(serving["template"]).any()
    expected = model.predict_on_batch(real_batch)
    for name in ("classifier", "serving_default"):
        got = _call_signature(loaded, name, serving)["probabilities"].numpy()
        np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_images_only_classifier_ignores_features_input(real_batch, tmp_path):
    from stampnet.models.stamp_classifier import build_stamp_classifier

    model = build_stamp_classifier(class_names=("bogus", "real"), feature_stats=None, crop_size=21)
    path = export_saved_model({"classifier": Export(model, "classifier")}, tmp_path / "sm")
    loaded = tf.saved_model.load(str(path))
    serving = serving_inputs_from_batch(real_batch)
    serving["features"] = np.zeros((len(serving["science"]), 0), np.float32)
    got = _call_signature(loaded, "classifier", serving)["probabilities"].numpy()
    images_only = {key: real_batch[key] for key in ("stamps", "stamp_mask")}
    np.testing.assert_allclose(got, model.predict_on_batch(images_only), atol=1e-6, rtol=0)


def _toy_encoder(stats: FeatureStats, latent_dim=3) -> keras.Model:
    inputs = {
        "stamps": keras.Input(STAMP_SHAPE, name="stamps"),
        "stamp_mask": keras.Input(STAMP_SHAPE, name="stamp_mask"),
        "features": keras.Input((len(stats.names),), name="features"),
    }
    images = StampPreprocessing(21)(inputs["stamps"], inputs["stamp_mask"])
    hidden = keras.layers.Flatten()(keras.layers.Conv2D(2, 5, strides=4)(images))
    hidden = keras.layers.Concatenate()([hidden, FeatureNormalization(stats)(inputs["features"])])
    z_mean = keras.layers.Dense(latent_dim, name="z_mean")(hidden)
    z_log_var = keras.layers.Dense(latent_dim, name="z_log_var")(hidden)
    return keras.Model(inputs, [z_mean, z_log_var], name="encoder")


def test_encoder_signature_beside_classifier(real_batch, tmp_path):
    from stampnet.models.stamp_classifier import build_stamp_classifier

    stats = _stats(real_batch)
    classifier = build_stamp_classifier(class_names=ALERCE_CLASSES, feature_stats=stats)
    encoder = _toy_encoder(stats)
    path = export_saved_model(
        {"encoder": Export(encoder, "encoder"), "classifier": Export(classifier, "classifier")},
        tmp_path / "sm",
    )
    loaded = tf.saved_model.load(str(path))
    assert set(loaded.signatures) == {"encoder", "classifier", "serving_default"}
    out = _call_signature(loaded, "serving_default", serving_inputs_from_batch(real_batch))
    assert sorted(out) == ["z_log_var", "z_mean"]
    z_mean, z_log_var = encoder.predict_on_batch(real_batch)
    np.testing.assert_allclose(out["z_mean"].numpy(), z_mean, atol=1e-6, rtol=0)
    np.testing.assert_allclose(out["z_log_var"].numpy(), z_log_var, atol=1e-6, rtol=0)


def test_sequence_classifier_signature_has_time_axis(real_batch, tmp_path):
    stats = _stats(real_batch)
    inputs = {
        "stamps": keras.Input((None, *STAMP_SHAPE), name="stamps"),
        "stamp_mask": keras.Input((None, *STAMP_SHAPE), name="stamp_mask"),
        "detection_features": keras.Input((None, 6), name="detection_features"),
        "detection_mask": keras.Input((None,), name="detection_mask"),
        "features": keras.Input((len(stats.names),), name="features"),
    }
    images = StampPreprocessing(21)(inputs["stamps"], inputs["stamp_mask"])
    per_detection = keras.layers.Concatenate()(
        [keras.ops.mean(images, axis=(2, 3)), inputs["detection_features"]]
    )
    weights = keras.ops.expand_dims(inputs["detection_mask"], -1)
    pooled = keras.ops.sum(per_detection * weights, axis=1)
    hidden = keras.layers.Concatenate()([pooled, FeatureNormalization(stats)(inputs["features"])])
    probabilities = keras.layers.Dense(3, activation="softmax")(hidden)
    model = keras.Model(inputs, probabilities, name="seq")

    path = export_saved_model({"seq": Export(model, "sequence_classifier")}, tmp_path / "sm")
    loaded = tf.saved_model.load(str(path))
    spec = loaded.signatures["seq"].structured_input_signature[1]
    assert sorted(spec) == sorted([*CHANNELS, "detection_features", "detection_mask", "features"])
    assert spec["difference"].shape.as_list() == [None, None, 63, 63]

    rng = np.random.default_rng(0)
    batch = {
        "stamps": np.stack([real_batch["stamps"][:4]] * 2, axis=1),
        "stamp_mask": np.stack([real_batch["stamp_mask"][:4]] * 2, axis=1),
        "detection_features": rng.normal(size=(4, 2, 6)).astype(np.float32),
        "detection_mask": np.array([[1, 1], [1, 0], [1, 1], [1, 0]], np.float32),
        "features": real_batch["features"][:4],
    }
    got = _call_signature(loaded, "seq", serving_inputs_from_batch(batch))["probabilities"]
    np.testing.assert_allclose(got.numpy(), model.predict_on_batch(batch), atol=1e-6, rtol=0)


def test_export_rejects_unknown_kind_and_empty_exports(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of"):
        Export(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), "regressor")
    with pytest.raises(ValueError, match="at least one Export"):
        export_saved_model({}, tmp_path / "sm")
