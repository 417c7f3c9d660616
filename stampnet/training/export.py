"""SavedModel export with fixed, named serving signatures (after simclr's ``build_saved_model``).

A broker hands a model what an alert holds: one cutout per channel (ZTF: science, template,
difference; any data: the channel names of its dataset card, which the model records) as 2-D float
arrays in which NaN marks an invalid pixel, and raw metadata features with NaN for missing values.
The signatures take exactly that, build the ``stamp_mask`` from ``is_finite`` inside the graph, and
call the model, whose own layers do the preprocessing; so a served model and ``model.keras`` give
the same outputs from the same alert.

Signatures, one per ``Export`` of a run (named after its key; the first is also
``serving_default``), by kind:

====================  ==========================================================  ===============
kind                  inputs (float32)                                            outputs
====================  ==========================================================  ===============
classifier            one per channel (None,H,W); features (None,F)                 probabilities
sequence_classifier   one per channel (None,T,H,W);                                 probabilities
                      detection_features (None,T,K); detection_mask (None,T);
                      features (None,F)
encoder               as classifier                                               z_mean, z_log_var
sequence_encoder      as sequence_classifier                                      z_mean, z_log_var
====================  ==========================================================  ===============

Channels and H, W are the model's (``stampnet.compat.model_record``): ZTF models take
``science, template, difference`` (None, 63, 63). A model with the light-curve branch
(``stampnet.models.lightcurve``) also takes, last, light_curve (None,L,K) (rows of
``stampnet.data.history.HISTORY_FIELDS``, NaN = not measured) and light_curve_mask (None,L), with
L free. T is the model's time axis (``None`` when the model accepts any length). Reload with
``tf.saved_model.load(path).signatures["classifier"](science=..., ...)`` or, in Keras,
``keras.layers.TFSMLayer(path, call_endpoint="classifier")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from stampnet.compat import model_record
from stampnet.constants import CHANNELS
from stampnet.training.spec import Export

SEQUENCE_KINDS = ("sequence_classifier", "sequence_encoder")


def _model_inputs(model: keras.Model) -> dict:
    if not isinstance(model.input, dict):
        raise ValueError(
            f"Model {model.name!r} must take the pipeline's input dict (stamps, stamp_mask, "
            f"features, ...), received inputs {model.inputs}"
        )
    return dict(model.input)


def serving_channels(model: keras.Model) -> tuple[str, ...]:
    """The channel names a model's serving signature takes, one input each, in stamp order."""
    return model_record(model).geometry.channels


def _input_signature(export: Export) -> list[tf.TensorSpec]:
    inputs = _model_inputs(export.model)
    sequence = export.kind in SEQUENCE_KINDS
    time = [inputs["stamps"].shape[1]] if sequence else []
    stamp_shape = (None, *time, *inputs["stamps"].shape[-3:-1])
    num_features = inputs["features"].shape[-1] if "features" in inputs else 0
    signature = [
        tf.TensorSpec(stamp_shape, tf.float32, name=name) for name in serving_channels(export.model)
    ]
    if sequence:
        num_detection = inputs["detection_features"].shape[-1]
        signature += [
            tf.TensorSpec((None, *time, num_detection), tf.float32, name="detection_features"),
            tf.TensorSpec((None, *time), tf.float32, name="detection_mask"),
        ]
    signature.append(tf.TensorSpec((None, num_features), tf.float32, name="features"))
    if "light_curve" in inputs:
        width = inputs["light_curve"].shape[-1]
        signature += [
            tf.TensorSpec((None, None, width), tf.float32, name="light_curve"),
            tf.TensorSpec((None, None), tf.float32, name="light_curve_mask"),
        ]
    return signature


def model_inputs_from_serving(channels: list, features, **sequence_inputs) -> dict:
    """Serving inputs (one (.., H, W) tensor per channel, NaN = invalid pixel) -> the pipeline
    dict the models take."""
    stamps = tf.stack(list(channels), axis=-1)
    valid = tf.math.is_finite(stamps)
    return {
        "stamps": tf.where(valid, stamps, tf.zeros_like(stamps)),
        "stamp_mask": tf.cast(valid, tf.float32),
        "features": features,
        **sequence_inputs,
    }


def serving_inputs_from_batch(inputs: Mapping, channels=CHANNELS) -> dict[str, np.ndarray]:
    """A pipeline batch -> the signature's inputs (invalid pixels become NaN). For tests/tools.

    ``channels``: the names of the stamps' channels (``serving_channels(model)``; ZTF's default).
    """
    stamps = np.asarray(inputs["stamps"], np.float32)
    valid = np.asarray(inputs["stamp_mask"]) > 0
    stamps = np.where(valid, stamps, np.nan).astype(np.float32)
    serving = {name: stamps[..., index] for index, name in enumerate(channels)}
    for name in (
        "detection_features", "detection_mask", "features", "light_curve", "light_curve_mask"
    ):  # fmt: skip
        if name in inputs:
            serving[name] = np.asarray(inputs[name], np.float32)
    return serving


def _outputs(export: Export, outputs) -> dict:
    if export.kind in ("classifier", "sequence_classifier"):
        if isinstance(outputs, dict):
            outputs = outputs["probabilities"]
        return {"probabilities": outputs}
    # A deterministic encoder (the CAE) has z_mean only: serve what the model has.
    if isinstance(outputs, dict):
        return {key: outputs[key] for key in ("z_mean", "z_log_var") if key in outputs}
    outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
    return dict(zip(("z_mean", "z_log_var"), outputs[:2], strict=False))


def _endpoint(export: Export):
    model = export.model
    model_keys = set(_model_inputs(model))

    def call(inputs: dict) -> dict:
        inputs = {key: value for key, value in inputs.items() if key in model_keys}
        return _outputs(export, model(inputs, training=False))

    # Positional arguments in the order of ``_input_signature``, whose TensorSpec names become
    # the signature's input names: one per channel of the model's data, then the others by name.
    num_channels = len(serving_channels(model))
    names = [spec.name for spec in _input_signature(export)][num_channels:]

    def serve(*arguments):
        named = dict(zip(names, arguments[num_channels:], strict=True))
        features = named.pop("features")
        return call(model_inputs_from_serving(arguments[:num_channels], features, **named))

    return serve


def export_saved_model(exports: Mapping[str, Export], path: str | Path) -> Path:
    """Writes one SavedModel holding a named signature per export; returns its path.

    Args:
        exports: signature name -> ``Export`` (model + kind); the first is ``serving_default``.
        path: output directory (overwritten).
    """
    if not exports:
        raise ValueError("export_saved_model needs at least one Export, received none")
    archive = keras.export.ExportArchive()
    for name, export in exports.items():
        archive.track(export.model)
        archive.add_endpoint(name, _endpoint(export), input_signature=_input_signature(export))
    path = Path(path)
    archive.write_out(str(path), verbose=False)
    return path
