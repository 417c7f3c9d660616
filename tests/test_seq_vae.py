"""The sequence VAE: padding and invalid pixels contribute nothing, the latent mean does not
depend on the padding length, it trains, saves and reloads, and it runs on real ZTF objects."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from stampnet.models.seq_vae import build_seq_vae
from stampnet.models.seq_vae_networks import CONDITION_KEYS
from stampnet.training.annealing import KLAnnealing
from tests.model_checks import run_model_checks
from tests.test_seq_classifier import random_sequences, real_sequences, repad

TINY = dict(latent_dim=3, conv_filters=(4, 8), embedding_dim=8, units=8, seed=0)


def losses(vae, inputs):
    return [float(value) for value in vae.compute_losses(inputs, training=False)]


def test_padding_to_5_or_8_gives_same_latent_mean():
    # Bidirectional: the backward LSTM meets the padding first, the harder case.
    vae = build_seq_vae(bidirectional=True, **TINY)
    short = random_sequences((3, 1, 5), steps=5)
    padded = repad(short, 8)
    z_short, z_padded = (np.asarray(vae.encoder(x)[0]) for x in (short, padded))
    np.testing.assert_allclose(z_padded, z_short, atol=1e-5, rtol=0)
    reconstruction = np.asarray(vae(padded)["reconstruction"])
    np.testing.assert_allclose(
        reconstruction[:, :5], vae(short)["reconstruction"], atol=1e-5, rtol=0
    )


def test_padding_and_invalid_pixels_contribute_nothing_to_the_loss():
    vae = build_seq_vae(**TINY)
    inputs = random_sequences((3, 2), steps=5)
    reference = losses(vae, inputs)
    np.testing.assert_allclose(losses(vae, repad(inputs, 8)), reference, rtol=1e-5)
    changed = {**inputs, "stamps": inputs["stamps"].copy()}
    invalid = inputs["stamp_mask"] == 0
    assert invalid.any()
    changed["stamps"][invalid] = 1e6  # ALeRCE-style NaN/garbage where the mask says invalid
    np.testing.assert_allclose(losses(vae, changed), reference, rtol=1e-5)


@pytest.mark.parametrize("latent_skip", [False, True])
def test_model_checks_for_vae_and_its_encoder(tmp_path, latent_skip):
    vae = build_seq_vae(**TINY, latent_skip=latent_skip)
    inputs = random_sequences((3, 1))
    run_model_checks(vae, inputs, [(2, 5, 21, 21, 3), (2, 3), (2, 3)], tmp_path)
    run_model_checks(vae.encoder, inputs, [(2, 3)] * 3, tmp_path)
    # The functional view a run may save shares the weights and gives the same outputs.
    view = vae.functional_model()
    for key, value in vae(inputs).items():
        np.testing.assert_allclose(view(inputs)[key], value, atol=1e-6)


def test_training_lowers_the_loss_and_anneals_beta():
    vae = build_seq_vae(**TINY)
    vae.compile(optimizer="adam")
    inputs = random_sequences((3, 2, 4, 1), steps=4)
    dataset = tf.data.Dataset.from_tensors((inputs, np.zeros(4, "int32"))).repeat(12)
    before = losses(vae, inputs)[1]
    history = vae.fit(
        dataset,
        epochs=2,
        verbose=0,
        shuffle=False,  # a tf.data pipeline shuffles itself; Keras warns on shuffle=True
        callbacks=[KLAnnealing("linear", ramp_epochs=4)],
    )
    assert losses(vae, inputs)[1] < before
    assert set(history.history) >= {"loss", "reconstruction_loss", "kl_loss", "elbo_loss", "beta"}
    assert 0.0 < history.history["beta"][0] < history.history["beta"][1] <= 1.0


@pytest.mark.parametrize("latent_skip", [False, True])
def test_latent_skip_is_a_path_from_z_to_the_pixels_beside_the_lstm(latent_skip):
    vae = build_seq_vae(**TINY, latent_skip=latent_skip)
    inputs = random_sequences((3, 1), steps=5)
    # Cut z out of the decoder LSTM: its input is [z, time and band], z first.
    lstm = vae.decoder.get_layer("decoder_lstm")
    kernel, recurrent_kernel, bias = lstm.get_weights()
    kernel[: TINY["latent_dim"]] = 0.0
    lstm.set_weights([kernel, recurrent_kernel, bias])
    conditions = {key: inputs[key] for key in CONDITION_KEYS}
    z = np.random.default_rng(0).normal(size=(2, 2, TINY["latent_dim"])).astype("float32")
    first, second = (np.asarray(vae.decoder({"z": value, **conditions})) for value in z)
    # Without the skip the pixels no longer depend on z; with it they still do.
    assert (np.abs(first - second).max() > 1e-4) == latent_skip


def test_runs_on_real_multi_alert_objects(ztf_dir):
    inputs = real_sequences(ztf_dir)
    vae = build_seq_vae(**TINY)
    outputs = vae(inputs)
    assert np.all(np.isfinite(outputs["reconstruction"]))
    assert np.all(np.isfinite(losses(vae, inputs)))
    np.testing.assert_allclose(vae.encoder(repad(inputs, 8))[0], outputs["z_mean"], atol=1e-5)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="latent_dim"):
        build_seq_vae(**{**TINY, "latent_dim": 0})
    with pytest.raises(ValueError, match="'l1'"):
        build_seq_vae(**TINY, reconstruction_loss="l1")


@pytest.mark.slow
def test_train_py_seq_vae_leaves_a_complete_run_folder(tmp_path):
    import keras

    from stampnet.simulation.builtin import ensure_builtin_dataset
    from stampnet.training.config import apply_overrides
    from stampnet.training.registry import get_spec
    from stampnet.training.trainer import train

    data_dir = ensure_builtin_dataset(tmp_path / "data", size=10, seed=0)
    overrides = {
        "data": {"data_dir": str(data_dir)},
        "model_config": {"latent_dim": 3, "filters": 4, "dense_units": 8, "recurrent_units": 8},
        "train": {"epochs": 2, "steps_per_epoch": 1, "batch_size": 4, "verbose": 0,
                  "out": str(tmp_path / "run")},
    }  # fmt: skip
    result = train(apply_overrides(get_spec("seq_vae").preset(), overrides))
    for name in ("model.keras", "encoder.keras", "saved_model", "history.csv", "config.json",
                 "model_card.json", "evaluation.json"):  # fmt: skip
        assert (result.run_dir / name).exists(), name
    assert len(result.history) == 2
    batch = repad(random_sequences((2, 1), steps=3), 5)
    encoder = keras.saving.load_model(result.run_dir / "encoder.keras")
    served = tf.saved_model.load(str(result.run_dir / "saved_model"))
    from stampnet.training.export import serving_inputs_from_batch

    z_served = served.signatures["encoder"](
        **{key: tf.constant(value) for key, value in serving_inputs_from_batch(batch).items()}
    )["z_mean"]
    np.testing.assert_allclose(z_served, encoder(batch)[0], atol=1e-5)
