"""The checks every stampnet model passes (after KerasHub's test_case): output shapes, config
round-trip, .keras save -> reload -> allclose, and SavedModel export -> reload -> allclose."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf


def _as_list(outputs):
    if isinstance(outputs, dict):
        return [np.asarray(outputs[key]) for key in sorted(outputs)]
    if isinstance(outputs, list | tuple):
        return [np.asarray(output) for output in outputs]
    return [np.asarray(outputs)]


def assert_outputs_close(expected, actual, atol=1e-6):
    expected, actual = _as_list(expected), _as_list(actual)
    assert len(expected) == len(actual)
    for want, got in zip(expected, actual, strict=True):
        np.testing.assert_allclose(got, want, atol=atol, rtol=0)


def check_output_shapes(model: keras.Model, inputs, expected_shapes):
    outputs = _as_list(model(inputs, training=False))
    assert [tuple(output.shape) for output in outputs] == [tuple(s) for s in expected_shapes]


def check_config_round_trip(model: keras.Model, inputs, atol=1e-6):
    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    assert_outputs_close(model(inputs, training=False), clone(inputs, training=False), atol)


def check_keras_save_reload(model: keras.Model, inputs, tmp_path: Path, atol=1e-6):
    path = Path(tmp_path) / f"{model.name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert_outputs_close(model(inputs, training=False), reloaded(inputs, training=False), atol)
    return reloaded


def check_saved_model_export(model: keras.Model, inputs, tmp_path: Path, atol=1e-6):
    """Exports with Keras' default serving endpoint and compares the reloaded graph's outputs."""
    path = Path(tmp_path) / f"{model.name}_savedmodel"
    model.export(str(path), format="tf_saved_model", verbose=False)
    reloaded = tf.saved_model.load(str(path))
    assert_outputs_close(model(inputs, training=False), reloaded.serve(inputs), atol)
    return reloaded


def run_model_checks(model, inputs, expected_shapes, tmp_path, atol=1e-6):
    check_output_shapes(model, inputs, expected_shapes)
    check_config_round_trip(model, inputs, atol)
    check_keras_save_reload(model, inputs, tmp_path, atol)
    check_saved_model_export(model, inputs, tmp_path, atol)
