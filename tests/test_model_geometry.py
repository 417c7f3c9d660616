"""Models built from the data's stamp geometry: a 21x21x4 real/bogus layout (Deep-HiTS' template,
science, difference, SNR-difference), cut from real ZTF alerts, builds and runs every model with
no code change; the Deep-HiTS preset; serving signatures per channel name; and a saved model that
refuses data of another geometry, channels, features or classes, saying what differs."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from stampnet import compat
from stampnet.data.alert import RejectionLog
from stampnet.data.readers import iter_alerts
from stampnet.features import ALERCE23, FeatureStats, metadata_indices
from stampnet.geometry import ZTF, StampGeometry
from stampnet.layers.rotation import CyclicConcatenation, RotationStack
from stampnet.models.deep_hits import DEEP_HITS_GEOMETRY, build_deep_hits
from stampnet.models.stamp_classifier import build_stamp_classifier
from stampnet.training.export import export_saved_model, serving_inputs_from_batch
from stampnet.training.spec import Export
from tests.model_checks import run_model_checks

BINARY = ("bogus", "real")


def four_channel_layout(alerts) -> dict:
    """Deep-HiTS' layout of real ZTF alerts: the central 21x21 of template, science and
    difference, and the difference over its robust noise (1.4826 x MAD of its valid pixels)."""
    stamps = np.stack([alert.stamps for alert in alerts])[:, 21:42, 21:42]
    mask = np.stack([alert.stamp_mask for alert in alerts])[:, 21:42, 21:42]
    template, science, difference = stamps[..., 1], stamps[..., 0], stamps[..., 2]
    valid = mask[..., 2]
    noise = []
    for image, ok in zip(difference, valid, strict=True):
        values = image[ok]
        noise.append(1.4826 * np.median(np.abs(values - np.median(values))) if values.size else 1)
    snr = difference / np.maximum(np.array(noise), 1e-6)[:, None, None]
    return {
        "stamps": np.stack([template, science, difference, snr], -1).astype(np.float32),
        "stamp_mask": np.stack([mask[..., 1], mask[..., 0], valid, valid], -1).astype(np.float32),
    }


@pytest.fixture(scope="module")
def alerts(ztf_dir):
    source = ztf_dir / "alerts" / "ztf_public_20200101.tar.gz"
    return list(itertools.islice(iter_alerts(source, rejections=RejectionLog(warn=False)), 6))


@pytest.fixture(scope="module")
def four_channel(alerts):
    return four_channel_layout(alerts)


def test_deep_hits_passes_model_checks_on_real_21x21x4_stamps(four_channel, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_deep_hits(class_names=BINARY, conv_filters=(4, 8), dense_units=8)
    run_model_checks(model, four_channel, [(6, 2)], tmp_path, atol=1e-6)
    assert model.get_layer("dense_1").kernel.shape == (4 * 6 * 6 * 8, 8)  # 4 rotations joined
    assert model.get_layer("conv_1").kernel.shape == (4, 4, 4, 4)


def test_deep_hits_paper_sizes():
    model = build_deep_hits(class_names=BINARY)
    kernels = {layer.name: tuple(layer.kernel.shape) for layer in model.layers if layer.weights}
    assert kernels == {
        "conv_1": (4, 4, 4, 32), "conv_2": (3, 3, 32, 32), "conv_3": (3, 3, 32, 64),
        "conv_4": (3, 3, 64, 64), "conv_5": (3, 3, 64, 64), "dense_1": (4 * 2304, 64),
        "dense_2": (64, 64), "output_logits": (64, 2),
    }  # fmt: skip
    assert model.get_layer("dropout").rate == 0.5


def test_cyclic_concatenation_joins_the_rotations_in_order():
    features = np.arange(4 * 2 * 3, dtype=np.float32).reshape(8, 3)  # rows: rotation-major
    joined = np.asarray(CyclicConcatenation()(features))
    np.testing.assert_array_equal(joined[0], np.concatenate(features[[0, 2, 4, 6]]))
    np.testing.assert_array_equal(joined[1], np.concatenate(features[[1, 3, 5, 7]]))
    images = np.random.default_rng(0).normal(size=(2, 5, 5, 1)).astype(np.float32)
    stacked = np.asarray(RotationStack()(images)).reshape(8, -1)
    rotated = np.asarray(RotationStack()(np.rot90(images, 1, axes=(1, 2)).copy())).reshape(8, -1)
    # Turning the input by 90 degrees moves each rotation's block one place along.
    np.testing.assert_allclose(
        np.asarray(CyclicConcatenation()(rotated))[:, :25],
        np.asarray(CyclicConcatenation()(stacked))[:, 25:50],
    )


@pytest.mark.parametrize("name", ["deep_hits", "stamp_classifier", "vae", "cae", "seq_vae"])
def test_every_model_builds_from_a_21x21x4_geometry(name, four_channel):
    from stampnet.models.cae import build_cae
    from stampnet.models.seq_vae import build_seq_vae
    from stampnet.models.vae import build_vae

    small = dict(latent_dim=3, conv_filters=(4, 8), geometry=DEEP_HITS_GEOMETRY)
    if name == "deep_hits":
        outputs = build_deep_hits(class_names=BINARY, conv_filters=(4, 8))(four_channel)
        assert outputs.shape == (6, 2)
    elif name == "stamp_classifier":
        model = build_stamp_classifier(class_names=BINARY, geometry=DEEP_HITS_GEOMETRY)
        assert model(four_channel).shape == (6, 2)
        assert model.get_layer("conv_1").kernel.shape == (4, 4, 4, 32)
    elif name in ("vae", "cae"):
        model = (build_vae if name == "vae" else build_cae)(dense_units=8, **small)
        model.compile(optimizer="adam")
        assert model(four_channel)["reconstruction"].shape == (6, 21, 21, 4)
        assert np.all(np.isfinite(model.test_on_batch(four_channel)))
    else:
        from stampnet.features import DETECTION_FIELDS

        steps = 2
        sequences = {key: np.repeat(x[:, None], steps, 1) for key, x in four_channel.items()}
        sequences["detection_mask"] = np.ones((6, steps), np.float32)
        detection = np.zeros((6, steps, len(DETECTION_FIELDS) + 1), np.float32)
        detection[..., -1] = [0.0, 1.5]
        sequences["detection_features"] = detection
        sequences["features"] = np.zeros((6, 0), np.float32)
        model = build_seq_vae(embedding_dim=8, units=8, **small)
        assert model(sequences)["reconstruction"].shape == (6, steps, 21, 21, 4)
    record = compat.model_record(model if name != "deep_hits" else build_deep_hits(
        class_names=BINARY))  # fmt: skip
    assert record.geometry == DEEP_HITS_GEOMETRY


def test_channel_subset_of_the_card_and_crop_larger_than_the_stamp_are_checked(four_channel):
    model = build_deep_hits(class_names=BINARY, channels=("difference", "snr_difference"))
    assert model(four_channel).shape == (6, 2)
    assert model.get_layer("conv_1").kernel.shape[2] == 2
    with pytest.raises(ValueError, match="from the data's .*'science', 'red'"):
        build_deep_hits(class_names=BINARY, channels=("science", "red"))
    with pytest.raises(ValueError, match="crop_size must be in \\[1, 21\\] for 21x21 stamps"):
        build_stamp_classifier(class_names=BINARY, crop_size=41, geometry=DEEP_HITS_GEOMETRY)


def test_serving_signature_takes_one_input_per_channel_name(four_channel, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_deep_hits(class_names=BINARY, conv_filters=(4, 8), dense_units=8)
    loaded = tf.saved_model.load(
        str(export_saved_model({"classifier": Export(model, "classifier")}, tmp_path / "sm"))
    )
    inputs = loaded.signatures["classifier"].structured_input_signature[1]
    assert sorted(inputs) == sorted([*DEEP_HITS_GEOMETRY.channels, "features"])
    assert inputs["snr_difference"].shape.as_list() == [None, 21, 21]
    serving = serving_inputs_from_batch(four_channel, DEEP_HITS_GEOMETRY.channels)
    serving["features"] = np.zeros((6, 0), np.float32)
    served = loaded.signatures["classifier"](**{k: tf.constant(v) for k, v in serving.items()})
    np.testing.assert_allclose(
        served["probabilities"], model(four_channel, training=False), atol=1e-6, rtol=0
    )


def test_saved_model_records_geometry_and_refuses_other_data_saying_what_differs(tmp_path):
    stats = FeatureStats.from_values(ALERCE23[:2], mean=[18.0, 0.5], std=[1.5, 0.4])
    model = build_stamp_classifier(
        class_names=BINARY, feature_stats=stats, geometry=DEEP_HITS_GEOMETRY, crop_size=15
    )
    model.save(tmp_path / "model.keras")
    from stampnet.saving import load_model

    record = compat.model_record(load_model(tmp_path / "model.keras"))
    assert record.to_dict() == {
        "stamp_shape": [21, 21, 4], "channels": list(DEEP_HITS_GEOMETRY.channels),
        "channels_used": list(DEEP_HITS_GEOMETRY.channels), "crop_size": 15,
        "class_names": list(BINARY), "feature_names": list(ALERCE23[:2]), "no_match": "clip",
    }  # fmt: skip
    same = compat.DataRecord(DEEP_HITS_GEOMETRY, BINARY, tuple(ALERCE23))
    compat.check(record, same)
    ztf = compat.DataRecord(ZTF, ("AGN", "SN"), (ALERCE23[0],))
    with pytest.raises(ValueError) as error:
        compat.check(record, ztf, what="the model", against="the data")
    message = str(error.value)
    assert "stamp size 21x21 vs 63x63" in message
    assert "channels ['template', 'science', 'difference', 'snr_difference'] vs" in message
    assert f"features ['{ALERCE23[1]}'] are read by the model but absent" in message
    assert "classes ['bogus', 'real'] vs ['AGN', 'SN']" in message
    assert compat.differences(record, ztf, classes="overlap")[-1].startswith("no class in common")
    other_order = StampGeometry(21, 21, ("science", "template", "difference", "snr_difference"))
    assert compat.differences(record, compat.DataRecord(other_order, BINARY, ALERCE23)) == [
        "channels ['template', 'science', 'difference', 'snr_difference'] vs "
        "['science', 'template', 'difference', 'snr_difference']"
    ]


def test_ztf_models_saved_before_channel_names_were_recorded_read_as_ztf(alerts):
    model = build_stamp_classifier(class_names=BINARY)
    config = model.get_layer("stamp_preprocessing").get_config()
    config.pop("channels")  # a layer saved by an earlier stampnet
    from stampnet.layers.preprocessing import StampPreprocessing

    assert StampPreprocessing.from_config(config).channels == ZTF.channels
    assert compat.model_record(model).geometry == ZTF


def test_classify_refuses_alerts_of_another_geometry(alerts, tmp_path):
    from stampnet.inference import load_classifier

    classifier = load_classifier(build_deep_hits(class_names=BINARY, conv_filters=(4, 8)))
    with pytest.raises(ValueError, match="stamp size 21x21 vs 63x63"):
        classifier.inputs(alerts)
    ztf_model = build_stamp_classifier(
        class_names=BINARY,
        feature_stats=FeatureStats.fit(ALERCE23, np.stack([a.metadata for a in alerts])[
            :, metadata_indices(ALERCE23)]),
    )  # fmt: skip
    inputs = load_classifier(ztf_model).inputs(alerts)
    assert inputs["stamps"].shape == (6, 63, 63, 3)
