"""Training end to end with the light-curve branch on, on real alerts: the run trains, saves,
exports a SavedModel whose signature takes the light curve, and reloads to the same outputs."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from stampnet.data.readers import iter_alerts
from stampnet.saving import load_model
from stampnet.training.export import serving_inputs_from_batch
from tests.dataset_helpers import build_quietly
from tests.test_training import parse

SOURCES = (
    "schema_versions/v4.02_3044341005815015012.avro",
    "fink_parquet/fink-filters__datatest__tde__tde_ZTF20abfcszi_202008.parquet",
    "fink_parquet/fink-filters__fink_filters__data__few_SLSN_alerts.parquet",
)


@pytest.fixture(scope="module")
def light_curve_data(ztf_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("light_curve_data")
    sources = [ztf_dir / name for name in SOURCES]
    names = sorted({alert.object_id for alert in iter_alerts(sources)})
    labels = root / "labels.csv"
    labels.write_text(
        "objectId,label\n"
        + "".join(f"{name},{('SN', 'AGN')[i % 2]}\n" for i, name in enumerate(names))
    )
    build_quietly(sources, root / "data", labels=labels, split_fractions=(0.6, 0.2, 0.2))
    return root / "data"


def train_tiny(data_dir, out, model, *extra):
    from stampnet.training.trainer import train

    config = parse(
        "--model", model, "--data", str(data_dir), "--out", str(out), "--batch-size", "4",
        "--steps-per-epoch", "2", "--epochs", "1", "--verbose", "0",
        "--option", "light_curve_units=8", *extra,
    )  # fmt: skip
    return train(config)


@pytest.mark.slow
def test_stamp_classifier_with_light_curve_trains_exports_and_reloads(light_curve_data, tmp_path):
    from stampnet.data.pipeline import alert_dataset

    train_tiny(light_curve_data, tmp_path / "run", "stamp_classifier")
    model = load_model(tmp_path / "run" / "model.keras")
    assert "light_curve" in model.input
    inputs, _ = next(
        iter(alert_dataset(light_curve_data, "train", batch_size=4, with_history=True))
    )
    inputs = {key: inputs[key].numpy() for key in model.input}
    expected = np.asarray(model(inputs, training=False))
    serving = tf.saved_model.load(str(tmp_path / "run" / "saved_model"))
    signature = serving.signatures["serving_default"]
    assert {"light_curve", "light_curve_mask"} <= set(signature.structured_input_signature[1])
    served = signature(**{k: tf.constant(v) for k, v in serving_inputs_from_batch(inputs).items()})
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)


@pytest.mark.slow
def test_sequence_vae_with_light_curve_trains_and_tracks_its_loss(light_curve_data, tmp_path):
    import pandas as pd

    train_tiny(light_curve_data, tmp_path / "run", "seq_vae", "--max-detections", "3")
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert "light_curve_loss" in history.columns
    assert np.isfinite(history["light_curve_loss"]).all()
    model = load_model(tmp_path / "run" / "model.keras")
    assert {"light_curve", "light_curve_mask"} <= set(model.input)
