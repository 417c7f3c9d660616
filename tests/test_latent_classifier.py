"""Classifier on a frozen autoencoder latent, and the gradient-boosting baselines beside it."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from stampnet.data.readers import iter_alerts
from stampnet.features import FeatureStats, metadata_indices
from stampnet.models.baselines import fit_baselines
from stampnet.models.latent_classifier import build_latent_classifier, load_encoder
from stampnet.models.vae import build_vae
from tests.model_checks import run_model_checks

FEATURES = ("sgscore1", "distpsnr1", "magpsf", "fwhm")
TINY = dict(latent_dim=3, conv_filters=(4, 8), dense_units=8)


@pytest.fixture(scope="module")
def batch(ztf_dir):
    alerts = list(
        itertools.islice(iter_alerts(ztf_dir / "alerts" / "ztf_public_20200101.tar.gz"), 12)
    )
    metadata = np.stack([alert.metadata for alert in alerts])[:, metadata_indices(FEATURES)]
    return {
        "stamps": np.stack([a.stamps for a in alerts]).astype("float32"),
        "stamp_mask": np.stack([a.stamp_mask for a in alerts]).astype("float32"),
        "features": metadata.astype("float32"),  # raw, NaN = missing
    }


@pytest.fixture(scope="module")
def stats(batch):
    return FeatureStats.fit(FEATURES, batch["features"])


def test_latent_classifier_passes_model_checks(batch, stats, tmp_path):
    encoder = build_vae(**TINY, seed=0).encoder
    classifier = build_latent_classifier(
        encoder, class_names=("bogus", "asteroid", "SN"), feature_stats=stats, hidden_units=(8,)
    )
    run_model_checks(classifier, batch, [(12, 3)], tmp_path)
    images_only = build_latent_classifier(encoder, class_names=("a", "b"), feature_stats=None)
    assert set(images_only.input) == {"stamps", "stamp_mask"}


def test_training_the_head_leaves_the_frozen_encoder_unchanged(batch, stats):
    encoder = build_vae(**TINY, seed=0).encoder
    before = [np.array(weight) for weight in encoder.get_weights()]
    classifier = build_latent_classifier(encoder, class_names=("a", "b"), feature_stats=stats)
    classifier.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    head = [np.array(weight) for weight in classifier.get_layer("output_logits").get_weights()]
    labels = np.arange(12) % 2
    classifier.fit(batch, labels, epochs=2, batch_size=6, verbose=0)
    for old, new in zip(before, encoder.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    assert not np.allclose(head[0], classifier.get_layer("output_logits").get_weights()[0])


def test_load_encoder_from_a_run_folder_gives_the_trained_encoder(batch, tmp_path):
    vae = build_vae(**TINY, seed=0)
    vae.functional_model(name="vae_autoencoder").save(tmp_path / "model.keras")
    encoder = load_encoder(tmp_path)
    stamps = {key: batch[key] for key in ("stamps", "stamp_mask")}
    np.testing.assert_allclose(encoder(stamps)[0], vae.encoder(stamps)[0], atol=1e-6)
    vae.encoder.save(tmp_path / "encoder.keras")
    assert load_encoder(tmp_path / "encoder.keras").name == "encoder"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No encoder in run folder"):
        load_encoder(tmp_path / "empty")
    with pytest.raises(ValueError, match="does not exist"):
        load_encoder(tmp_path / "missing.keras")
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(tmp_path / "other.keras")
    with pytest.raises(ValueError, match="does not hold a stamp encoder"):
        load_encoder(tmp_path / "other.keras")


def _arrays(rng, count, informative_latent):
    label = rng.integers(0, 3, size=count)
    z_mean = rng.normal(size=(count, 4))
    if informative_latent:
        z_mean[:, 0] += 4.0 * label
    features = rng.normal(size=(count, 3))
    features[rng.uniform(size=features.shape) < 0.1] = np.nan  # missing values are fine
    label[:5] = -1  # unlabelled rows are left out
    return {"z_mean": z_mean, "features": features, "label": label}


def test_baselines_tell_what_the_latent_adds():
    rng = np.random.default_rng(0)
    train, test = _arrays(rng, 300, True), _arrays(rng, 150, True)
    results = fit_baselines(train, test, 3, max_iter=20)
    assert set(results) == {"latent+features", "latent", "features"}
    assert results["latent"]["accuracy"] > 0.9
    assert results["features"]["accuracy"] < 0.6
    assert results["latent"]["num_examples"] == 145
    with pytest.raises(ValueError, match="'pixels'"):
        fit_baselines(train, test, 3, inputs=("pixels",))
