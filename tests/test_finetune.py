"""Fine-tuning: ``--init`` loads the layers that match by name and weight shapes (exactly, from
the ALeRCE 2019 import), says which it did not load and why, refuses a source built for other
stamps; ``--freeze trunk`` keeps the convolutional trunk unchanged while the rest trains."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from stampnet import compat
from stampnet.constants import ALERCE_CLASSES
from stampnet.features import METADATA_FIELDS
from stampnet.geometry import ZTF
from stampnet.models.alerce_import import import_alerce_checkpoint
from stampnet.models.deep_hits import DEEP_HITS_GEOMETRY, build_deep_hits
from stampnet.models.stamp_classifier import build_stamp_classifier
from stampnet.models.trunk import TRUNK_LAYERS
from stampnet.training import finetune
from tests.test_stamp_classifier import real_batch  # noqa: F401 (fixture)
from tests.test_training import parse, tiny_data  # noqa: F401 (fixture)

ZTF_CARD = {
    **ZTF.to_dict(),
    "class_names": ["AGN", "SN", "VS", "asteroid", "bogus", "other"],
    "metadata_fields": list(METADATA_FIELDS),
}


@pytest.fixture(scope="module")
def alerce_2019(alerce_2019_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("alerce") / "alerce_2019.keras"
    import_alerce_checkpoint(alerce_2019_dir).save(path)
    return path


def _kernels(model, names=TRUNK_LAYERS):
    layers = {layer.name: layer for layer in finetune.layers_with_weights(model)}
    return {name: [np.array(w) for w in layers[name].get_weights()] for name in names}


def test_init_from_the_alerce_2019_import_loads_the_trunk_exactly(alerce_2019, capsys):
    from stampnet.saving import load_model

    source = load_model(alerce_2019)
    keras.utils.set_random_seed(0)
    target = build_stamp_classifier(
        class_names=ZTF_CARD["class_names"], crop_size=21, pool_after="dense_2"
    )
    report = finetune.initialise_from(target, alerce_2019, ZTF_CARD)
    assert report.loaded == [*TRUNK_LAYERS, "dense_1", "dense_2"]
    assert report.not_loaded == {
        "output_logits": f"classes {list(ALERCE_CLASSES)} vs {ZTF_CARD['class_names']}"
    }
    for name, weights in _kernels(source).items():
        for want, got in zip(weights, _kernels(target)[name], strict=True):
            np.testing.assert_array_equal(got, want)
    printed = capsys.readouterr().out
    assert "7 layers loaded" in printed and "output_logits (classes" in printed

    # A model of another kind takes what fits: the Deep-HiTS trunk on ZTF stamps.
    deep_hits = build_deep_hits(class_names=ALERCE_CLASSES, geometry=ZTF)
    report = finetune.initialise_from(deep_hits, alerce_2019, ZTF_CARD)
    assert report.loaded == [*TRUNK_LAYERS, "dense_2", "output_logits"]
    assert report.not_loaded["dense_1"] == "weight shapes [(2304, 64), (64,)] in the source " \
        "vs [(9216, 64), (64,)]"  # fmt: skip


def test_init_keeps_the_feature_normalisation_of_another_no_match_encoding(
    alerce_2020_dir, tmp_path
):
    """ALeRCE's 2020 weights read a missing PS1 match clipped to -1: a model that reads it as
    missing does not take their feature batch normalisation, one that clips does."""
    from stampnet.features import FeatureStats

    source = tmp_path / "alerce_2020.keras"
    import_alerce_checkpoint(alerce_2020_dir).save(source)
    stats = FeatureStats.from_alerce_json(alerce_2020_dir / "feature_norm_stats.json")
    reports = {}
    for encoding in ("clip", "missing"):
        target = build_stamp_classifier(
            class_names=ALERCE_CLASSES, feature_stats=stats.with_no_match(encoding), crop_size=21
        )
        reports[encoding] = finetune.initialise_from(target, source, ZTF_CARD)
    assert "batchnorm_features" in reports["clip"].loaded
    assert reports["missing"].not_loaded == {
        "batchnorm_features": "a missing catalogue match read as clip vs missing (--no-match-as)"
    }
    assert reports["missing"].loaded == [
        name for name in reports["clip"].loaded if name != "batchnorm_features"
    ]


def test_init_refuses_a_source_built_for_other_stamps_saying_what_differs(alerce_2019, tmp_path):
    deep_hits = build_deep_hits(class_names=("bogus", "real"))
    deep_hits.save(tmp_path / "deep_hits.keras")
    ztf_model = build_stamp_classifier(class_names=ZTF_CARD["class_names"])
    with pytest.raises(ValueError, match="stamp size 21x21 vs 63x63; channels"):
        finetune.initialise_from(ztf_model, tmp_path / "deep_hits.keras", ZTF_CARD)
    subset = build_stamp_classifier(class_names=ALERCE_CLASSES, channels=("difference",))
    with pytest.raises(
        ValueError, match="channels used .*'science', 'template', 'difference'.* vs"
    ):
        finetune.initialise_from(subset, alerce_2019, ZTF_CARD)
    four_channels = {**ZTF_CARD, **DEEP_HITS_GEOMETRY.to_dict()}
    with pytest.raises(ValueError, match="stamp size 63x63 vs 21x21"):
        finetune.initialise_from(deep_hits, alerce_2019, four_channels)


def test_freeze_trunk_keeps_it_unchanged_after_a_training_step(alerce_2019, real_batch):  # noqa: F811
    inputs, labels = real_batch
    keras.utils.set_random_seed(0)
    model = build_stamp_classifier(class_names=ALERCE_CLASSES, pool_after="dense_2")
    finetune.initialise_from(model, alerce_2019, {**ZTF_CARD, "class_names": ALERCE_CLASSES})
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    assert finetune.freeze(model, "trunk") == list(TRUNK_LAYERS)
    before = _kernels(model, (*TRUNK_LAYERS, "dense_1"))
    stamps = {key: inputs[key] for key in ("stamps", "stamp_mask")}
    model.train_on_batch(stamps, labels)
    after = _kernels(model, (*TRUNK_LAYERS, "dense_1"))
    for name in TRUNK_LAYERS:
        for want, got in zip(before[name], after[name], strict=True):
            np.testing.assert_array_equal(got, want)
    assert not np.array_equal(before["dense_1"][0], after["dense_1"][0])


def test_train_with_init_and_freeze_records_what_was_loaded(tiny_data, alerce_2019, tmp_path):  # noqa: F811
    from stampnet.saving import load_model
    from stampnet.training.trainer import train

    config = parse(
        "--model", "stamp_classifier", "--data", str(tiny_data), "--out", str(tmp_path / "run"),
        "--batch-size", "16", "--steps-per-epoch", "2", "--epochs", "1", "--verbose", "0",
        "--features", "none", "--pool-after", "dense_2", "--init", str(alerce_2019),
        "--freeze", "trunk",
    )  # fmt: skip
    result = train(config)
    card = json.loads((result.run_dir / "model_card.json").read_text())
    assert card["init"]["loaded"][:5] == list(TRUNK_LAYERS)
    assert card["stamp_shape"] == [63, 63, 3] and card["crop_size"] == 21
    trained = _kernels(load_model(result.run_dir / "model.keras"))
    for name, weights in _kernels(load_model(alerce_2019)).items():
        for want, got in zip(weights, trained[name], strict=True):
            np.testing.assert_array_equal(got, want)
    record = compat.model_record(load_model(result.run_dir / "model.keras"), card)
    assert record.class_names == tuple(card["class_names"])
    # A run folder is a source too: its model.keras, with its model card.
    again = build_stamp_classifier(class_names=card["class_names"], pool_after="dense_2")
    report = finetune.initialise_from(again, result.run_dir, {**ZTF_CARD, **card})
    assert report.loaded == [*TRUNK_LAYERS, "dense_1", "dense_2", "output_logits"]


def test_evaluate_refuses_a_model_of_another_geometry(tiny_data, tmp_path):  # noqa: F811
    from stampnet.evaluation.command import evaluate_run

    model = build_deep_hits(class_names=("bogus", "real"), conv_filters=(4, 8), dense_units=8)
    model.save(tmp_path / "deep_hits.keras")
    with pytest.raises(ValueError, match="stamp size 21x21 vs 63x63; channels"):
        evaluate_run(tmp_path / "deep_hits.keras", data_dir=tiny_data, out_dir=tmp_path)
