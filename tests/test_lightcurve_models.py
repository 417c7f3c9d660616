"""The light-curve branch: padding-invariant, optional in the stamp classifier, joined with the
stamps in the sequence models, reconstructed by the sequence VAE; on real ZTF light curves."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from stampnet.data.history import HISTORY_FIELDS, pad_history
from stampnet.data.readers import iter_alerts
from stampnet.evaluation.light_curves import sequence_reconstruction_report
from stampnet.evaluation.runner import truncate_detections
from stampnet.layers.lightcurve import ENCODED_WIDTH, LightCurveEncoding
from stampnet.models.lightcurve import build_light_curve_encoder, light_curve_target
from stampnet.models.seq_classifier import build_seq_classifier
from stampnet.models.seq_vae import build_seq_vae
from stampnet.models.stamp_classifier import build_stamp_classifier
from tests.model_checks import run_model_checks
from tests.test_seq_classifier import STATS, random_sequences, repad

PACKET_402 = "schema_versions/v4.02_3044341005815015012.avro"
MULTI_PACKET_PARQUET = "fink_parquet/fink-filters__datatest__tde__tde_ZTF20abfcszi_202008.parquet"
TINY_SEQUENCE = dict(conv_filters=(4, 8), embedding_dim=8, units=8)


def real_light_curves(ztf_dir, length: int = 32, count: int = 3) -> dict:
    """Light curves of real alerts (the 4.02 packet with fp_hists, then a TDE's packets)."""
    alerts = list(iter_alerts(ztf_dir / PACKET_402, history=True))
    alerts += list(iter_alerts(ztf_dir / MULTI_PACKET_PARQUET, history=True))[: count - 1]
    padded = [pad_history(alert.history, length) for alert in alerts[:count]]
    return {
        "light_curve": np.stack([rows for rows, _ in padded]),
        "light_curve_mask": np.stack([mask for _, mask in padded]).astype("float32"),
    }


def repad_light_curve(inputs: dict, length: int) -> dict:
    """The same light curves padded to ``length``, padded rows full of garbage (mask 0)."""
    rows = np.full((len(inputs["light_curve"]), length, len(HISTORY_FIELDS)), 7.0, "float32")
    mask = np.zeros((len(rows), length), "float32")
    kept = min(length, inputs["light_curve"].shape[1])
    rows[:, :kept] = inputs["light_curve"][:, :kept]
    mask[:, :kept] = inputs["light_curve_mask"][:, :kept]
    rows[mask == 0] = 7.0
    return {**inputs, "light_curve": rows, "light_curve_mask": mask}


def test_encoding_is_finite_and_zero_on_padding(ztf_dir):
    inputs = real_light_curves(ztf_dir)
    assert np.isnan(inputs["light_curve"]).any()  # upper limits have no magnitude
    encoded = np.asarray(LightCurveEncoding()(**repad_light_curve(inputs, 40)))
    assert encoded.shape == (3, 40, ENCODED_WIDTH)
    assert np.isfinite(encoded).all()
    assert not encoded[repad_light_curve(inputs, 40)["light_curve_mask"] == 0].any()


def test_light_curve_branch_ignores_padding_length_and_content(ztf_dir):
    encoder = build_light_curve_encoder(units=8)
    inputs = real_light_curves(ztf_dir, length=24)
    reference = np.asarray(encoder(inputs))
    for length in (24, 30, 64):
        np.testing.assert_allclose(
            encoder(repad_light_curve(inputs, length)), reference, atol=1e-5, rtol=0
        )
    # ... but a real row does change it.
    changed = {**inputs, "light_curve": inputs["light_curve"].copy()}
    last = int(inputs["light_curve_mask"][0].sum()) - 1
    changed["light_curve"][0, last, 3] -= 2.0  # the alert itself, 2 mag brighter
    assert np.abs(np.asarray(encoder(changed))[0] - reference[0]).max() > 1e-4


def test_stamp_classifier_branch_is_off_by_default_and_checks_pass(ztf_dir, tmp_path):
    plain = build_stamp_classifier(class_names=("SN", "AGN", "VS"), feature_stats=STATS)
    assert sorted(plain.input) == ["features", "stamp_mask", "stamps"]
    assert not any("light_curve" in layer.name for layer in plain.layers)
    model = build_stamp_classifier(
        class_names=("SN", "AGN", "VS"), feature_stats=STATS, light_curve_units=8
    )
    alerts = list(iter_alerts(ztf_dir / MULTI_PACKET_PARQUET, history=True))[:3]
    inputs = {
        "stamps": np.stack([alert.stamps for alert in alerts]),
        "stamp_mask": np.stack([alert.stamp_mask for alert in alerts]).astype("float32"),
        "features": np.zeros((3, 2), "float32"),
        **real_light_curves(ztf_dir, length=32),
    }
    run_model_checks(model, inputs, [(3, 3)], tmp_path, atol=1e-5)
    np.testing.assert_allclose(
        model(repad_light_curve(inputs, 50)), model(inputs), atol=1e-5, rtol=0
    )


def sequences_with_light_curves(ztf_dir, lengths=(3, 1, 2), steps=5) -> dict:
    """Random stamp sequences joined with real light curves, as ``sequence_dataset`` gives."""
    return {**random_sequences(lengths, steps), **real_light_curves(ztf_dir, 32, len(lengths))}


def test_sequence_classifier_with_light_curve_checks_and_padding(ztf_dir, tmp_path):
    model = build_seq_classifier(
        ["SN", "AGN"], STATS, recurrent="gru", light_curve_units=8, **TINY_SEQUENCE
    )
    inputs = sequences_with_light_curves(ztf_dir)
    run_model_checks(model, inputs, [(3, 2)], tmp_path, atol=1e-5)
    stamps_only = {k: v for k, v in inputs.items() if not k.startswith("light_curve")}
    padded = repad_light_curve({**inputs, **repad(stamps_only, 8)}, 48)
    np.testing.assert_allclose(model(padded), model(inputs), atol=1e-5, rtol=0)


def test_truncating_detections_hides_later_light_curve_rows():
    inputs = random_sequences((3,), steps=4)
    days = inputs["detection_features"][0, :3, -1]  # since the first detection
    rows = np.zeros((1, 6, len(HISTORY_FIELDS)), "float32")
    rows[0, :, 0] = [days[0] - days[2] - 5, days[0] - days[2], -1e-3 + days[1] - days[2],
                     days[1] - days[2], -0.5, 0.0]  # fmt: skip
    inputs.update(light_curve=rows, light_curve_mask=np.ones((1, 6), "float32"))
    cut = truncate_detections(inputs, 2)
    np.testing.assert_array_equal(cut["light_curve_mask"][0], [1, 1, 1, 1, 0, 0])
    np.testing.assert_allclose(cut["light_curve"][0, 3, 0], 0.0, atol=1e-5)
    assert not cut["light_curve"][0, 4:].any()
    unchanged = truncate_detections(inputs, 3)
    np.testing.assert_array_equal(unchanged["light_curve"], rows)


def test_sequence_vae_reconstructs_light_curves_and_ignores_their_padding(ztf_dir, tmp_path):
    vae = build_seq_vae(latent_dim=3, seed=0, light_curve_units=8, **TINY_SEQUENCE)
    inputs = sequences_with_light_curves(ztf_dir)
    outputs = vae(inputs)
    assert outputs["light_curve_reconstruction"].shape == (3, 32)
    run_model_checks(vae, inputs, [(3, 32), (3, 5, 21, 21, 3), (3, 3), (3, 3)], tmp_path, atol=1e-5)
    losses = [float(x) for x in vae.compute_losses(inputs)]
    padded = [float(x) for x in vae.compute_losses(repad_light_curve(inputs, 48))]
    np.testing.assert_allclose(padded, losses, rtol=1e-5)
    flux, weight = (np.asarray(x) for x in light_curve_target(
        inputs["light_curve"], inputs["light_curve_mask"]))  # fmt: skip
    assert weight.sum() > 10 and np.isfinite(flux).all()
    # A few steps on these three objects lower the light-curve term.
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = float(vae.compute_losses(inputs)[-1])
    vae.fit(inputs, epochs=20, batch_size=3, verbose=0)
    assert float(vae.compute_losses(inputs)[-1]) < before
    report = sequence_reconstruction_report(vae, _Batches([inputs]))
    assert report["light_curve_rows"] == int(weight.sum())
    assert report["light_curve_mse_ratio"] > 0


class _Batches(list):
    """A list that behaves like the ``tf.data`` datasets ``reconstruction_report`` takes."""

    def take(self, count):
        return self[:count]


def test_vae_refuses_a_light_curve_decoder_without_the_branch():
    from stampnet.models.lightcurve import build_light_curve_decoder
    from stampnet.models.seq_vae import (
        SequenceVAE,
        build_sequence_decoder,
        build_sequence_encoder,
    )

    tiny = dict(latent_dim=3, conv_filters=(4, 8), units=8)
    with pytest.raises(ValueError, match="light_curve_units"):
        SequenceVAE(
            build_sequence_encoder(embedding_dim=8, **tiny),
            build_sequence_decoder(dense_units=8, **tiny),
            build_light_curve_decoder(latent_dim=3, units=8),
        )


def test_classify_reads_the_history_for_a_model_with_the_branch(ztf_dir, tmp_path):
    import csv

    from stampnet.inference import classify, load_classifier

    model = build_stamp_classifier(
        class_names=("SN", "AGN", "VS"), feature_stats=STATS, light_curve_units=8
    )
    classifier = load_classifier(model)
    assert classifier.uses_history
    summary = classify(classifier, ztf_dir / MULTI_PACKET_PARQUET, tmp_path / "p.csv")
    alerts = list(iter_alerts(ztf_dir / MULTI_PACKET_PARQUET, history=True))
    assert summary["classified"] == len(alerts)
    expected = classifier.predict(classifier.inputs(alerts))
    with open(tmp_path / "p.csv") as handle:
        rows = {int(row["candid"]): row for row in csv.DictReader(handle)}
    for alert, probabilities in zip(alerts, expected, strict=True):
        written = [float(rows[alert.candid][f"p_{name}"]) for name in ("SN", "AGN", "VS")]
        np.testing.assert_allclose(written, probabilities, atol=1e-4)
