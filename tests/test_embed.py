"""``stampnet embed`` and the autoencoder training specs, on a tiny dataset of real alerts."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from stampnet.cli import main as stampnet_main
from stampnet.data.build import build_dataset
from stampnet.data.card import load_card
from stampnet.data.pipeline import alert_dataset
from stampnet.models.vae import build_vae

#: Three nightly files: 26 bogus, 17 asteroids and 38 unlabelled alerts.
NIGHTS = ("20200101", "20231012", "20180607")
TINY = dict(latent_dim=3, conv_filters=(4, 8), dense_units=8)


@pytest.fixture(scope="module")
def data_dir(ztf_dir, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tiny_ztf")
    sources = [ztf_dir / "alerts" / f"ztf_public_{night}.tar.gz" for night in NIGHTS]
    # Only the labels of these nights: the others would each be a "label for an object never
    # seen" rejection warning.
    labels = pd.read_csv(ztf_dir / "labels.csv")
    labels_path = data_dir.parent / f"{data_dir.name}_labels.csv"
    labels[labels["file"].isin([f"alerts/ztf_public_{night}.tar.gz" for night in NIGHTS])].to_csv(
        labels_path, index=False
    )
    build_dataset(sources, data_dir, labels=labels_path, seed=0)
    return data_dir


def test_embed_writes_the_latent_mean_of_every_alert(data_dir, tmp_path):
    vae = build_vae(**TINY, seed=0)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    vae.functional_model(name="vae_autoencoder").save(run_dir / "model.keras")
    output = tmp_path / "z.parquet"
    assert (
        stampnet_main(
            ["embed", "--run", str(run_dir), "--data", str(data_dir), "--output", str(output)]
        )
        == 0
    )

    frame = pd.read_parquet(output)
    assert list(frame.columns) == ["candid", "objectId", "label", "split", "z_0", "z_1", "z_2"]
    counts = load_card(data_dir)["counts"]["alerts"]
    assert len(frame) == sum(sum(per_label.values()) for per_label in counts.values())
    assert frame["candid"].is_unique
    assert set(frame["label"]) <= {"bogus", "asteroid", "unknown"}
    for split, per_label in counts.items():
        assert (frame["split"] == split).sum() == sum(per_label.values())

    # The stored vectors are the encoder's posterior means of those very alerts.
    inputs, _ = next(
        iter(
            alert_dataset(
                data_dir, "train", batch_size=4, labelled_only=False, shuffle=False, with_ids=True
            )
        )
    )
    expected = np.asarray(vae.encoder({k: inputs[k] for k in ("stamps", "stamp_mask")})[0])
    rows = frame.set_index("candid").loc[np.asarray(inputs["candid"]), ["z_0", "z_1", "z_2"]]
    np.testing.assert_allclose(rows.to_numpy(), expected, atol=1e-5)


@pytest.mark.slow
def test_train_vae_then_latent_classifier_from_its_encoder(data_dir, tmp_path):
    from stampnet.training.registry import get_spec
    from stampnet.training.trainer import train

    def tiny(model, **model_options):
        config = get_spec(model).preset()
        config.data.data_dir = str(data_dir)
        config.model_config.filters, config.model_config.dense_units = 4, 8
        config.model_config.latent_dim = 3
        for key, value in model_options.items():
            setattr(config.model_config, key, value)
        config.train.epochs, config.train.steps_per_epoch, config.train.batch_size = 2, 2, 16
        config.train.out, config.train.verbose = str(tmp_path / model), 0
        return config

    vae_run = train(tiny("vae", kl_annealing_epochs=1)).run_dir
    assert {"model.keras", "encoder.keras", "saved_model", "history.csv"} <= {
        p.name for p in vae_run.iterdir()
    }
    history = pd.read_csv(vae_run / "history.csv")
    assert {"reconstruction_loss", "kl_loss", "elbo_loss", "beta", "val_elbo_loss"} <= set(
        history.columns
    )
    autoencoder = keras.saving.load_model(vae_run / "model.keras")
    assert set(autoencoder.output) == {"reconstruction", "z_mean", "z_log_var"}

    result = train(tiny("latent_classifier", encoder_run=str(vae_run)))
    classifier = keras.saving.load_model(result.run_dir / "model.keras")
    assert classifier.get_layer("probabilities").class_names == ("asteroid", "bogus")
    assert "accuracy" in result.metrics["test"]


def test_evaluation_compares_with_the_mean_stamp_and_gradient_boosting(data_dir, tmp_path):
    from stampnet.evaluation.command import EvaluationOptions, evaluate_run
    from stampnet.models.vade import build_vade

    run = tmp_path / "vade-1"
    run.mkdir()
    vade = build_vade(**TINY, num_clusters=2, seed=0)
    vade.functional_model(name="vade_autoencoder").save(run / "model.keras")
    options = EvaluationOptions(baselines=True)
    section = evaluate_run(run, data_dir=data_dir, split="test", options=options)["models"]["model"]
    assert section["kind"] == "autoencoder"
    mean_stamp = section["reconstruction_error"]["mean_stamp"]
    assert mean_stamp["mse_ratio_to_mean_stamp"] == pytest.approx(
        mean_stamp["pixel_mse"] / mean_stamp["mean_stamp_mse"]
    )
    assert section["latent_dim"] == 3 and 0 <= section["clustering"]["active_units"] <= 3
    assert "clustering_own" in section  # VaDE's own p(c|z) clusters
    assert set(section["baselines"]) == {"latent+features", "latent", "features"}
