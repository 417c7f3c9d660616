"""The sequence classifier: padding never changes its answer, it saves and reloads, it runs on
real multi-alert ZTF objects, and its encoder can start from a trained stamp model."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from stampnet.constants import STAMP_SHAPE
from stampnet.evaluation.runner import truncate_detections
from stampnet.features import DETECTION_FIELDS, FeatureStats, metadata_indices
from stampnet.layers.sequence import DetectionFeatureEncoding, MaskedPooling
from stampnet.models import seq_classifier
from tests.model_checks import run_model_checks

FEATURES = ("magpsf", "fwhm")
STATS = FeatureStats.from_values(FEATURES, mean=[18.0, 2.0], std=[1.0, 1.0])
TINY = dict(conv_filters=(4, 8), embedding_dim=8, units=8)
#: Real multi-alert objects: a TDE with 21 alerts in one Fink file, and the SLSN test file.
REAL_FILES = (
    "fink_parquet/fink-filters__datatest__tde__tde_ZTF20abfcszi_202008.parquet",
    "fink_parquet/fink-filters__fink_filters__data__few_SLSN_alerts.parquet",
)


def random_sequences(lengths=(3, 1), steps=5, seed=0) -> dict:
    """A batch like ``sequence_dataset``'s: objects with ``lengths`` detections, zero padded."""
    rng = np.random.default_rng(seed)
    batch = len(lengths)
    inputs = {
        "stamps": np.zeros((batch, steps, *STAMP_SHAPE), "float32"),
        "stamp_mask": np.zeros((batch, steps, *STAMP_SHAPE), "float32"),
        "detection_mask": np.zeros((batch, steps), "float32"),
        "detection_features": np.zeros((batch, steps, len(DETECTION_FIELDS) + 1), "float32"),
        "features": rng.normal(size=(batch, len(FEATURES))).astype("float32"),
    }
    for row, length in enumerate(lengths):
        inputs["stamps"][row, :length] = rng.gamma(2.0, 50.0, size=(length, *STAMP_SHAPE))
        inputs["stamp_mask"][row, :length] = rng.random((length, *STAMP_SHAPE)) > 0.05
        inputs["detection_mask"][row, :length] = 1.0
        inputs["detection_features"][row, :length] = [
            [rng.normal(18.5, 1), 0.1, 20.0, rng.integers(0, 2), rng.integers(1, 3), day]
            for day in np.sort(rng.uniform(0, 20, length))
        ]
    return inputs


def repad(inputs: dict, steps: int, garbage: bool = True) -> dict:
    """The same objects padded to ``steps``; padded slots filled with garbage, mask 0."""
    padded = {}
    for key, value in inputs.items():
        if key == "features":
            padded[key] = value
            continue
        extra = np.zeros((value.shape[0], steps - value.shape[1], *value.shape[2:]), "float32")
        padded[key] = np.concatenate([value[:, :steps], extra], axis=1)[:, :steps].copy()
    if garbage:
        # Whatever a padded slot holds must not matter: only detection_mask says it is padding.
        lengths = inputs["detection_mask"].sum(axis=1).astype(int)
        for row, length in enumerate(lengths):
            padded["stamps"][row, length:] = 1e4
            padded["stamp_mask"][row, length:] = 1.0
            padded["detection_features"][row, length:] = 7.0
    return padded


def real_sequences(ztf_dir, steps: int = 5, num_objects: int = 4) -> dict:
    """The first ``steps`` alerts of real multi-alert objects, as ``sequence_dataset`` gives."""
    from stampnet.data.readers import iter_alerts

    by_object: dict[str, list] = {}
    for alert in iter_alerts([ztf_dir / name for name in REAL_FILES]):
        by_object.setdefault(alert.object_id, []).append(alert)
    objects = sorted(
        (alerts for alerts in by_object.values() if len(alerts) >= 2), key=len, reverse=True
    )[:num_objects]
    assert len(objects) >= 2, "the real sample should hold several multi-alert objects"
    batch = random_sequences((1,) * len(objects), steps)
    detection_index = metadata_indices(DETECTION_FIELDS)
    for row, alerts in enumerate(objects):
        alerts = sorted(alerts, key=lambda alert: alert.jd)[:steps]
        for step, alert in enumerate(alerts):
            batch["stamps"][row, step] = alert.stamps
            batch["stamp_mask"][row, step] = alert.stamp_mask
            batch["detection_mask"][row, step] = 1.0
            days = alert.jd - alerts[0].jd
            batch["detection_features"][row, step] = [*alert.metadata[detection_index], days]
        batch["features"][row] = alerts[0].metadata[metadata_indices(FEATURES)]
    return batch


def tiny_classifier(**kwargs):
    return seq_classifier.build_seq_classifier(["AGN", "SN", "VS"], STATS, **{**TINY, **kwargs})


@pytest.mark.parametrize(
    "recurrent, bidirectional", [("lstm", False), ("lstm", True), ("gru", True), ("conv1d", False)]
)
def test_padding_to_5_or_8_gives_same_probabilities(recurrent, bidirectional):
    model = tiny_classifier(recurrent=recurrent, bidirectional=bidirectional)
    short = random_sequences((3, 1, 5), steps=5)
    padded = repad(short, 8)
    np.testing.assert_allclose(model(padded), model(short), atol=1e-5, rtol=0)


def test_model_checks_shapes_config_reload_and_saved_model(tmp_path):
    model = tiny_classifier(bidirectional=True)
    run_model_checks(model, random_sequences((3, 1)), [(2, 3)], tmp_path)


def test_saved_model_accepts_other_sequence_lengths(tmp_path):
    model = tiny_classifier(recurrent="conv1d")
    model.export(str(tmp_path / "export"), format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(str(tmp_path / "export"))
    for steps in (2, 7):
        inputs = repad(random_sequences((2, 1), steps=2), steps)
        np.testing.assert_allclose(served.serve(inputs), model(inputs), atol=1e-5)


def test_masking_out_detections_equals_having_fewer():
    model = tiny_classifier()
    full = random_sequences((4, 5), steps=5)
    for count in (1, 2, 4):
        only_first = repad({k: v if k == "features" else v[:, :count] for k, v in full.items()}, 5)
        truncated = truncate_detections(full, count)
        np.testing.assert_allclose(model(truncated), model(only_first), atol=1e-5)


def test_runs_on_real_multi_alert_objects(ztf_dir):
    inputs = real_sequences(ztf_dir)
    assert inputs["detection_mask"].sum(axis=1).min() >= 2
    model = tiny_classifier()
    probabilities = np.asarray(model(inputs))
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(model(repad(inputs, 8)), probabilities, atol=1e-5)


def test_detection_encoding_is_zero_for_padding_and_missing_values():
    features = np.array([[[np.nan, 0.1, 20.0, 1.0, 2.0, 3.0], [19.0, 0.1, 20.0, 0.0, 1.0, 0.0]]])
    encoded = np.asarray(DetectionFeatureEncoding()(features, np.array([[1.0, 0.0]])))
    assert encoded.shape == (1, 2, 9)
    assert encoded[0, 0, 0] == 0.0  # missing magpsf
    np.testing.assert_array_equal(encoded[0, 0, 4:7], [0.0, 1.0, 0.0])  # fid 2 = r band
    np.testing.assert_array_equal(encoded[0, 1], 0.0)  # padding
    with pytest.raises(ValueError, match="detection_features must have 6 columns"):
        DetectionFeatureEncoding()(features[..., :5], np.ones((1, 2)))


def test_masked_pooling_ignores_padding():
    values = np.array([[[1.0], [3.0], [100.0]]], "float32")
    mask = np.array([[1.0, 1.0, 0.0]], "float32")
    assert float(MaskedPooling("mean")(values, mask)[0, 0]) == 2.0
    assert float(MaskedPooling("max")(values, mask)[0, 0]) == 3.0


def test_encoder_starts_from_trained_stamp_vae(tmp_path):
    from stampnet.models.conv_autoencoder import build_encoder

    source = build_encoder(latent_dim=3, conv_filters=(4, 8), dense_units=8)
    source.save(tmp_path / "model.keras")
    encoder = seq_classifier.build_stamp_encoder(21, (4, 8), 8)
    filled = seq_classifier.initialise_encoder_from_run(encoder, tmp_path)
    assert len(filled) == 6  # five convolutions and the dense layer
    images = np.random.default_rng(0).random((2, 21, 21, 3)).astype("float32")
    trunk = source.get_layer("conv_trunk")
    np.testing.assert_allclose(
        encoder.get_layer("conv_trunk")(images), trunk(images), atol=1e-6, rtol=0
    )


def test_bad_arguments_are_rejected_with_what_was_received(tmp_path):
    with pytest.raises(ValueError, match="'transformer'"):
        tiny_classifier(recurrent="transformer")
    with pytest.raises(ValueError, match="class_names"):
        seq_classifier.build_seq_classifier(["SN"], STATS)
    with pytest.raises(ValueError, match="No model.keras"):
        seq_classifier.initialise_encoder_from_run(seq_classifier.build_stamp_encoder(), tmp_path)
