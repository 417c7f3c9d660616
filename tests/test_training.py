"""Training runs end to end on a tiny real dataset: the run folder, reloads, resume, the CLI."""

from __future__ import annotations

import argparse
import contextlib
import io
import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from stampnet.features import ALERCE23
from stampnet.training import runs
from stampnet.training.command import add_arguments, resolve_config
from stampnet.training.config import RunConfig
from stampnet.training.registry import REGISTRY, get_spec
from stampnet.training.spec import ModelSpec
from tests.dataset_helpers import build_tiny_nights


@pytest.fixture(scope="session")
def tiny_data(ztf_dir, tmp_path_factory):
    return build_tiny_nights(ztf_dir, tmp_path_factory.mktemp("tiny_ztf"))


def parse(*argv: str) -> RunConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return resolve_config(parser.parse_args(list(argv)))


def tiny_config(data_dir, out, *extra: str) -> RunConfig:
    return parse(
        "--model", "stamp_classifier", "--data", str(data_dir), "--out", str(out),
        "--batch-size", "16", "--steps-per-epoch", "2", "--verbose", "0", *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tiny_data, tmp_path_factory):
    from stampnet.training.trainer import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    output = io.StringIO()  # not a terminal, as CI logs and `| tee`
    with contextlib.redirect_stdout(output):
        result = train(tiny_config(tiny_data, out, "--epochs", "2", "--verbose", "1"))
    (out.parent / "stdout.txt").write_text(output.getvalue())
    return result


def test_training_output_without_a_terminal_is_one_line_per_epoch(finished_run):
    output = (finished_run.run_dir.parent / "stdout.txt").read_text()
    lines = [line for line in output.splitlines() if line.startswith("epoch ")]
    assert [line.split(" - ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"], output
    assert "val_loss: " in lines[0]
    assert "\r" not in output and "\b" not in output and "Epoch 1/2" not in output


def test_run_folder_is_complete(finished_run, tiny_data):
    run_dir = finished_run.run_dir
    for name in ("model.keras", "config.json", "history.csv", "model_card.json", "evaluation.json"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "saved_model" / "saved_model.pb").is_file()
    assert list((run_dir / "logs").rglob("events.out.tfevents*"))
    assert (run_dir / "checkpoints" / "best.weights.h5").is_file()
    assert not (run_dir / "backup").exists()  # BackupAndRestore cleans up after a finished run

    history = pd.read_csv(run_dir / "history.csv")
    assert list(history["epoch"]) == [0, 1]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history.columns)

    card = json.loads((run_dir / "model_card.json").read_text())
    data_card = json.loads((tiny_data / "dataset_card.json").read_text())
    assert card["class_names"] == data_card["class_names"]
    assert card["feature_names"] == list(ALERCE23) and card["no_match"] == "missing"
    assert card["data"]["card_sha256"] == runs.file_sha256(tiny_data / "dataset_card.json")
    assert card["exports"] == {"classifier": "classifier"}
    assert card["seed"] == 0 and card["versions"]["keras"] == keras.__version__

    test = card["metrics"]["test"]
    matrix = np.asarray(test["confusion_matrix"])
    labelled = sum(
        n for label, n in data_card["counts"]["alerts"]["test"].items() if label != "unknown"
    )
    assert matrix.shape == (len(card["class_names"]),) * 2
    assert matrix.sum() == test["num_examples"] == labelled
    assert test["classifier_accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    assert RunConfig.from_dict(json.loads((run_dir / "config.json").read_text())).train.epochs == 2


def test_keras_and_saved_model_reloads_give_identical_outputs(finished_run, tiny_data):
    from stampnet.data.pipeline import alert_dataset
    from stampnet.training.export import serving_inputs_from_batch

    inputs, _ = next(iter(alert_dataset(tiny_data, "test", batch_size=8, shuffle=False)))
    inputs = {key: value.numpy() for key, value in inputs.items()}
    trained = finished_run.bundle.exports["classifier"].model
    expected = trained.predict_on_batch(inputs)

    reloaded = keras.saving.load_model(finished_run.run_dir / "model.keras")
    np.testing.assert_allclose(reloaded.predict_on_batch(inputs), expected, atol=1e-6, rtol=0)

    served = tf.saved_model.load(str(finished_run.run_dir / "saved_model"))
    serving = {key: tf.constant(value) for key, value in serving_inputs_from_batch(inputs).items()}
    for signature in ("classifier", "serving_default"):
        got = served.signatures[signature](**serving)["probabilities"].numpy()
        np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_a_missing_catalogue_match_reads_as_missing_unless_clipping_is_asked(
    finished_run, tiny_data, tmp_path
):
    """The recipe reads ZTF's -999 (no PS1 source within 30") exactly as a missing value, in the
    trained model and its .keras; ``--no-match-as clip`` (ALeRCE's encoding) reads it as a value
    of its own, and its SavedModel serves it so."""
    from stampnet.data.card import feature_stats_for, load_card
    from stampnet.data.pipeline import alert_dataset
    from stampnet.features import NO_MATCH
    from stampnet.training.export import serving_inputs_from_batch
    from stampnet.training.trainer import train

    def recorded(run) -> tuple:
        stats = run.bundle.exports["classifier"].model.get_layer("feature_normalization").stats
        config = RunConfig.from_dict(json.loads((run.run_dir / "config.json").read_text()))
        return stats, config.data.no_match

    card = load_card(tiny_data)
    assert recorded(finished_run) == (feature_stats_for(card, "alerce23", "missing"), "missing")
    inputs, _ = next(iter(alert_dataset(tiny_data, "test", batch_size=64, shuffle=False)))
    inputs = {key: value.numpy() for key, value in inputs.items()}
    no_match = inputs["features"] == NO_MATCH
    assert no_match.any(), "the real test alerts hold no missing match"
    as_nan = {**inputs, "features": np.where(no_match, np.nan, inputs["features"])}
    default = finished_run.bundle.exports["classifier"].model
    np.testing.assert_array_equal(
        default.predict_on_batch(as_nan), default.predict_on_batch(inputs)
    )
    reloaded = keras.saving.load_model(finished_run.run_dir / "model.keras")
    np.testing.assert_array_equal(
        reloaded.predict_on_batch(as_nan), reloaded.predict_on_batch(inputs)
    )

    clip_run = train(
        tiny_config(tiny_data, tmp_path / "run", "--epochs", "1", "--no-match-as", "clip")
    )
    assert recorded(clip_run) == (feature_stats_for(card, "alerce23", "clip"), "clip")
    assert json.loads((clip_run.run_dir / "model_card.json").read_text())["no_match"] == "clip"
    clipping = clip_run.bundle.exports["classifier"].model
    expected = clipping.predict_on_batch(inputs)
    assert np.abs(clipping.predict_on_batch(as_nan) - expected).max() > 1e-4
    reloaded = keras.saving.load_model(clip_run.run_dir / "model.keras")
    np.testing.assert_allclose(reloaded.predict_on_batch(inputs), expected, atol=1e-6, rtol=0)
    served = tf.saved_model.load(str(clip_run.run_dir / "saved_model"))
    serving = {key: tf.constant(value) for key, value in serving_inputs_from_batch(inputs).items()}
    got = served.signatures["classifier"](**serving)["probabilities"].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


class Interrupt(Exception):
    pass


class InterruptAfter(keras.callbacks.Callback):
    """Simulates a crash at the end of an epoch (after the backup of that epoch is written)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Interrupt(f"interrupted after epoch {epoch}")


class EpochRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_resume_continues_from_the_saved_epoch(tiny_data, tmp_path):
    from stampnet.training.trainer import train

    out = tmp_path / "interrupted"
    with pytest.raises(Interrupt):
        train(tiny_config(tiny_data, out, "--epochs", "3"), callbacks=[InterruptAfter(1)])
    assert (out / "backup").is_dir() and not (out / "model_card.json").exists()

    recorder = EpochRecorder()
    result = train(parse("--resume", str(out), "--verbose", "0"), callbacks=[recorder])
    assert recorder.epochs == [2]
    assert result.run_dir == out
    assert list(pd.read_csv(out / "history.csv")["epoch"]) == [0, 1, 2]
    assert json.loads((out / "model_card.json").read_text())["epochs_trained"] == 3
    with pytest.raises(ValueError, match="finished"):
        train(parse("--resume", str(out)))


def test_flags_override_the_preset_and_only_where_given(tmp_path):
    preset = get_spec("stamp_classifier").preset()
    config = parse(
        "--model", "stamp_classifier", "--epochs", "7", "--learning-rate", "0.01",
        "--channels", "science,difference", "--features", "magpsf,fwhm", "--no-augment",
        "--crop-size", "41", "--option", "width=3", "--option", "name=x", "--balance", "none",
    )  # fmt: skip
    assert config.train.epochs == 7 and config.train.learning_rate == 0.01
    assert config.model_config.channels == ("science", "difference")
    assert config.model_config.crop_size == 41
    assert config.model_config.options == {"width": 3, "name": "x"}
    # yes/no options take JSON booleans only: "False" would otherwise read as true
    flags = parse("--model", "seq_vae", "--option", "latent_skip=false", "--option", "x=False")
    assert flags.model_config.flag("latent_skip", True) is False
    assert flags.model_config.flag("bidirectional", False) is False
    with pytest.raises(ValueError, match="--option x takes true or false, received 'False'"):
        flags.model_config.flag("x", True)
    assert config.data.feature_set == "magpsf,fwhm" and config.data.augment is False
    assert config.data.balance == "none"
    # untouched fields keep the preset, which differs from the base defaults where it says so
    assert config.train.batch_size == preset.train.batch_size == 64
    assert parse("--model", "stamp_classifier").data.balance == "oversample"
    assert RunConfig.from_dict(json.loads(config.to_json())) == config


def test_resume_reads_the_run_config_and_applies_new_flags(tmp_path):
    config = parse("--model", "stamp_classifier", "--epochs", "4", "--seed", "3")
    runs.write_config(tmp_path, config)
    resumed = parse("--resume", str(tmp_path), "--epochs", "9")
    assert resumed.train.epochs == 9 and resumed.train.seed == 3
    assert resumed.data.no_match == "missing"  # the recipe's, as written
    # A run saved before --no-match-as existed clipped (round 13's default): it resumes so.
    saved = json.loads(config.to_json())
    del saved["data"]["no_match"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert parse("--resume", str(tmp_path)).data.no_match == "clip"
    assert parse("--resume", str(tmp_path), "--no-match-as", "missing").data.no_match == "missing"
    assert resumed.train.resume == str(tmp_path)
    with pytest.raises(ValueError, match="is a 'stamp_classifier' run"):
        parse("--resume", str(tmp_path), "--model", "vae")


def test_bad_flags_fail_clearly(tmp_path):
    with pytest.raises(SystemExit):
        parse("--model", "stamp_classifier", "--channels", "science,science")
    with pytest.raises(SystemExit):
        parse("--model", "not_a_model")
    with pytest.raises(ValueError, match="--model is required"):
        parse("--epochs", "3")
    with pytest.raises(ValueError, match="no config.json"):
        parse("--resume", str(tmp_path))


def test_registry_names_every_model_and_loads_specs_lazily():
    assert set(REGISTRY) == {
        "stamp_classifier", "deep_hits", "cae", "vae", "vade", "latent_classifier",
        "seq_classifier", "seq_vae",
    }  # fmt: skip
    spec = get_spec("stamp_classifier")
    assert isinstance(spec, ModelSpec) and spec.dataset == "alerts" and spec.needs_labels
    with pytest.raises(ValueError, match="Unknown model 'resnet'"):
        get_spec("resnet")


def test_augmentation_wrapper_shares_weights_and_is_identity_at_inference():
    from stampnet.constants import STAMP_SHAPE
    from stampnet.layers.preprocessing import StampPreprocessing
    from stampnet.training.spec import with_augmentation

    inputs = {
        "stamps": keras.Input(STAMP_SHAPE, name="stamps"),
        "stamp_mask": keras.Input(STAMP_SHAPE, name="stamp_mask"),
    }
    images = StampPreprocessing(21)(inputs["stamps"], inputs["stamp_mask"])
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(images))
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    batch = {
        "stamps": rng.normal(size=(4, *STAMP_SHAPE)).astype(np.float32),
        "stamp_mask": np.ones((4, *STAMP_SHAPE), np.float32),
    }
    for enabled in (True, False):
        wrapper = with_augmentation(model, None, enabled=enabled, seed=1)
        assert wrapper is not model and wrapper.count_params() == model.count_params()
        np.testing.assert_allclose(
            wrapper(batch, training=False), model(batch, training=False), atol=1e-6
        )
    augmented = with_augmentation(model, None, seed=1)(batch, training=True)
    assert not np.allclose(augmented, model(batch, training=False), atol=1e-3)
