"""ALeRCE's published stamp classifiers, imported from their TF1 checkpoints, give ALeRCE's own
outputs: layer by layer on the reference intermediates, on the reference inputs, and on the real
alerts of ../shared/data/ztf read through stampnet's ingestion by ``stampnet classify``.

The 2020 weights check the feature path (their convolutional branch is inactive on real stamps,
so its image path is checked through the intermediates); the 2019 images-only weights check the
whole image path.
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from stampnet.cli import main as stampnet_main
from stampnet.constants import ALERCE_CLASSES
from stampnet.features import ALERCE26
from stampnet.models.alerce_import import import_alerce_checkpoint, stampnet_layer_for

PROBABILITY_COLUMNS = [f"p_{name}" for name in ALERCE_CLASSES]
VERSIONS = ("2020", "2019")


@pytest.fixture(scope="session")
def reference_dirs(alerce_2020_dir, alerce_2019_dir):
    return {"2020": alerce_2020_dir, "2019": alerce_2019_dir}


@pytest.fixture(scope="session")
def imported_models(reference_dirs, tmp_path_factory):
    """Both references converted once per session with ``stampnet import-alerce``."""
    folder = tmp_path_factory.mktemp("alerce_models")
    paths = {}
    for version, reference in reference_dirs.items():
        paths[version] = folder / f"alerce_{version}.keras"
        assert stampnet_main(["import-alerce", str(reference), "--out", str(paths[version])]) == 0
    return {version: keras.saving.load_model(path) for version, path in paths.items()} | {
        "paths": paths
    }


@pytest.fixture(scope="session")
def classified(imported_models, ztf_dir, tmp_path_factory):
    """``stampnet classify`` over every alert of ../shared/data/ztf, once per model."""
    folder = tmp_path_factory.mktemp("alerce_predictions")
    tables = {}
    for version in VERSIONS:
        out = folder / f"p_{version}.csv"
        model = str(imported_models["paths"][version])
        arguments = ["classify", "--model", model, "--source", str(ztf_dir), "--out", str(out)]
        if version == "2020":
            # ALeRCE's features read a PS1 match listed at 120" (beyond ZTF's 30") as a
            # distance, as its graph does: classify says so for those alerts of 2023-10-18.
            with pytest.warns(UserWarning, match="285 alerts list a catalogue match beyond"):
                assert stampnet_main(arguments) == 0
        else:  # images only: nothing to warn about
            assert stampnet_main(arguments) == 0
        tables[version] = pd.read_csv(out, dtype={"rejected": str})
    return tables


def _padded(images: np.ndarray) -> dict[str, np.ndarray]:
    """Raw inputs whose preprocessing returns ``images`` exactly: ALeRCE's preprocessed 21x21
    crops (min 0, max 1 per channel) in the centre of zero 63x63 stamps."""
    stamps = np.zeros((len(images), 63, 63, 3), np.float32)
    stamps[:, 21:42, 21:42] = images
    return {"stamps": stamps, "stamp_mask": np.ones_like(stamps)}


def _reference_inputs(reference, candids=None) -> tuple[dict, np.lib.npyio.NpzFile]:
    expected = np.load(reference / "expected_inputs.npz")
    rows = slice(None)
    if candids is not None:
        rows = [list(expected["candid"]).index(candid) for candid in candids]
    inputs = _padded(expected["images"][rows])
    if "raw_features" in expected.files:
        inputs["features"] = expected["raw_features"][rows].astype(np.float32)
    return inputs, expected


def test_import_infers_each_variant(imported_models):
    model_2020, model_2019 = imported_models["2020"], imported_models["2019"]
    assert model_2020.get_layer("feature_normalization").stats.names == ALERCE26
    assert "dense_3" in [layer.name for layer in model_2020.layers]
    assert sorted(model_2019.input) == ["stamp_mask", "stamps"]
    assert "dense_3" not in [layer.name for layer in model_2019.layers]
    for model in (model_2020, model_2019):
        assert model.get_layer("probabilities").class_names == ALERCE_CLASSES
        assert model.get_layer("stamp_preprocessing").crop_size == 21


def test_import_names_a_folder_without_checkpoint(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path)):
        import_alerce_checkpoint(tmp_path)


@pytest.mark.parametrize("version", VERSIONS)
def test_intermediate_outputs_match_alerce_graph(version, reference_dirs, imported_models):
    reference, model = reference_dirs[version], imported_models[version]
    intermediates = np.load(reference / "expected_intermediates.npz")
    inputs, _ = _reference_inputs(reference, intermediates["candid"])
    layers = {name: stampnet_layer_for(name) for name in intermediates.files}
    layers = {name: layer for name, layer in layers.items() if layer}
    # Every tensor of the graph has a twin, from the stacked rotations to the softmax.
    assert len(layers) == len(intermediates.files) - 1 - ("input_images" in intermediates.files)
    probe = keras.Model(
        model.inputs, {name: model.get_layer(layer).output for name, layer in layers.items()}
    )
    outputs = probe(inputs, training=False)
    for name in layers:
        want = intermediates[name]
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(outputs[name], want, rtol=0, atol=1e-5 * scale, err_msg=name)
    if version == "2020":
        # The inactive branch: conv_4 is all zeros after ReLU, conv_1 to conv_3 are not.
        assert not np.any(intermediates["network/conv_4_5/Relu"])
        assert np.any(intermediates["network/conv_3_4/Relu"])


@pytest.mark.parametrize("version", VERSIONS)
def test_probabilities_on_reference_inputs(version, reference_dirs, imported_models):
    inputs, expected = _reference_inputs(reference_dirs[version])
    probabilities = imported_models[version].predict(inputs, batch_size=512, verbose=0)
    np.testing.assert_allclose(probabilities, expected["probs"], rtol=0, atol=1e-5)
    if version == "2020":
        normaliser = imported_models[version].get_layer("feature_normalization")
        features = np.asarray(normaliser(inputs["features"]))
        np.testing.assert_allclose(features, expected["features"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("version", VERSIONS)
def test_classify_on_real_alerts_gives_alerce_probabilities(version, reference_dirs, classified):
    expected = pd.read_csv(reference_dirs[version] / "expected_probabilities.csv")
    expected = expected[expected["skipped"] == 0]
    got = classified[version]
    assert got["rejected"].isna().all(), got[got["rejected"].notna()]
    # The four schema_versions/ packets of one alert all get rows; every one must match.
    merged = expected.merge(got, on="candid", suffixes=("_alerce", ""), validate="one_to_many")
    assert set(merged["candid"]) == set(expected["candid"])
    want = merged[[f"{column}_alerce" for column in PROBABILITY_COLUMNS]].to_numpy()
    np.testing.assert_allclose(merged[PROBABILITY_COLUMNS].to_numpy(), want, rtol=0, atol=1e-4)
    if "pred_class" in expected:
        agree = (merged["pred_class"] == merged["predicted_class"]).mean()
        assert agree > 0.995  # argmax may flip only where two probabilities tie within 1e-6
