"""Sequence classifier: a TimeDistributed stamp encoder, a masked recurrent layer, static features.

After the Temporal Stamp Classifier of Neira et al. 2024 (the first detections of an object beat
its first stamp alone) and keras-io's video classification example (an explicit mask handed to
the recurrent layer). Raw dataset inputs in, probabilities out; preprocessing lives inside.
"""

from __future__ import annotations

from pathlib import Path

import keras

from stampnet.geometry import ZTF, StampGeometry
from stampnet.layers.preprocessing import (
    FeatureNormalization,
    StampPreprocessing,
    center_crop_bounds,
)
from stampnet.layers.sequence import (
    NUM_DETECTION_INPUTS,
    DetectionFeatureEncoding,
    DetectionMask,
    FoldedTimeDistributed,
    MaskedPooling,
    ZeroPadding,
)
from stampnet.models.conv_autoencoder import build_conv_trunk
from stampnet.saving import load_model

RECURRENT_KINDS = ("lstm", "gru", "conv1d")
INPUT_KEYS = (
    "stamps", "stamp_mask", "detection_mask", "detection_features", "features",
    "light_curve", "light_curve_mask",
)  # fmt: skip


def sequence_inputs(
    num_features: int | None = None, geometry: StampGeometry = ZTF
) -> dict[str, keras.KerasTensor]:
    """Keras inputs matching ``sequence_dataset`` batches; the time axis is free (None).

    ``num_features=None`` leaves the width of ``features`` free (for a model that ignores it);
    ``geometry``: the stamps' size and channels (the dataset card's).
    """
    return {
        "stamps": keras.Input((None, *geometry.shape), name="stamps"),
        "stamp_mask": keras.Input((None, *geometry.shape), name="stamp_mask"),
        "detection_mask": keras.Input((None,), name="detection_mask"),
        "detection_features": keras.Input((None, NUM_DETECTION_INPUTS), name="detection_features"),
        "features": keras.Input((num_features,), name="features"),
    }


def build_stamp_encoder(
    crop_size: int = 21,
    conv_filters=(16, 32),
    embedding_dim: int = 64,
    kernel_size: int = 3,
    num_channels: int = ZTF.num_channels,
    name: str = "stamp_encoder",
) -> keras.Model:
    """One preprocessed stamp (crop, crop, C) -> (embedding_dim,): the conv trunk of ALeRCE's
    stamp classifier and of the stamp VAE (``conv_autoencoder.build_conv_trunk``) + a dense layer.

    Sharing the trunk's layer shapes is what lets ``initialise_encoder_from_run`` start from a
    trained stamp classifier or VAE (with ``conv_filters=(32, 64)``, ``embedding_dim=64``).
    It has no batch normalisation, whose batch statistics would mix padded frames into real ones.
    """
    images = keras.Input((crop_size, crop_size, num_channels), name="images")
    trunk = build_conv_trunk(images.shape[1:], tuple(conv_filters), kernel_size, name="conv_trunk")
    embedding = keras.layers.Dense(embedding_dim, activation="relu", name="hidden")(trunk(images))
    return keras.Model(images, embedding, name=name)


def _layers_with_weights(model) -> list:
    found = []
    for layer in getattr(model, "layers", []):
        inner = getattr(layer, "layer", None)  # TimeDistributed / Bidirectional wrappers
        if hasattr(layer, "layers") or inner is not None:
            found.extend(_layers_with_weights(inner if inner is not None else layer))
        elif layer.weights:
            found.append(layer)
    if not hasattr(model, "layers") and getattr(model, "weights", None):
        found.append(model)
    return found


def transfer_encoder_weights(encoder: keras.Model, source: keras.Model) -> list[str]:
    """Copies weights from ``source`` into ``encoder`` layer by layer, in order, where the
    layer type and every weight shape match; returns the names of the layers filled.

    ``source`` is any trained stampnet model (stamp classifier, VAE): its conv trunk is found
    by walking its layers (nested models and TimeDistributed included).
    """
    candidates = _layers_with_weights(source)
    filled = []
    start = 0
    for layer in _layers_with_weights(encoder):
        shapes = [tuple(w.shape) for w in layer.get_weights()]
        for index in range(start, len(candidates)):
            other = candidates[index]
            same_type = type(other) is type(layer)
            if same_type and [tuple(w.shape) for w in other.get_weights()] == shapes:
                layer.set_weights(other.get_weights())
                filled.append(layer.name)
                start = index + 1
                break
    return filled


def initialise_encoder_from_run(encoder: keras.Model, run_dir: str | Path) -> list[str]:
    """Loads ``run_dir/model.keras`` (a stamp classifier or VAE run) and copies its trunk."""
    path = Path(run_dir)
    path = path if path.suffix == ".keras" else path / "model.keras"
    if not path.exists():
        raise ValueError(f"No model.keras at {path}: pass a run folder of a trained model")
    source = load_model(path)
    filled = transfer_encoder_weights(encoder, source)
    if not filled:
        raise ValueError(
            f"No layer of {path} matches the stamp encoder (crop size, filters and "
            "embedding_dim must match the trained model's)"
        )
    return filled


def sequence_trunk(
    inputs,
    encoder: keras.Model,
    crop_size: int,
    normalisation: str = "minmax",
    geometry: StampGeometry = ZTF,
):
    """Per-frame features (B, T, E + detection encoding), zero at padded steps, and the mask."""
    center_crop_bounds(crop_size, geometry.size)
    images = StampPreprocessing(
        crop_size, normalisation, geometry.channels, name="stamp_preprocessing"
    )(inputs["stamps"], inputs["stamp_mask"])
    frames = FoldedTimeDistributed(encoder, name="frame_encoder")(images)
    detections = DetectionFeatureEncoding(name="detection_encoding")(
        inputs["detection_features"], inputs["detection_mask"]
    )
    frames = keras.layers.Concatenate(name="frame_features")([frames, detections])
    frames = ZeroPadding(name="zero_padding")(frames, inputs["detection_mask"])
    mask = DetectionMask(name="boolean_mask")(inputs["detection_mask"])
    return frames, mask


def temporal_summary(frames, mask, detection_mask, recurrent, units, bidirectional, kernel_size):
    """One vector per sequence that ignores padded steps exactly."""
    if recurrent == "conv1d":
        # Causal convolutions: a real step only sees itself and earlier (real) steps.
        x = frames
        for index in range(2):
            x = keras.layers.Conv1D(
                units,
                kernel_size,
                padding="causal",
                activation="relu",
                name=f"temporal_conv{index}",
            )(x)
            x = ZeroPadding(name=f"temporal_zero{index}")(x, detection_mask)
        return MaskedPooling("mean", name="temporal_pooling")(x, detection_mask)
    cell = keras.layers.LSTM if recurrent == "lstm" else keras.layers.GRU
    layer = cell(units, name=recurrent)
    if bidirectional:
        layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{recurrent}")
    return layer(frames, mask=mask)


def build_seq_classifier(
    class_names,
    feature_stats=None,
    *,
    crop_size: int = 21,
    conv_filters=(16, 32),
    embedding_dim: int = 64,
    normalisation: str = "minmax",
    recurrent: str = "lstm",
    units: int = 64,
    bidirectional: bool = False,
    kernel_size: int = 3,
    dropout_rate: float = 0.2,
    encoder: keras.Model | None = None,
    geometry: StampGeometry = ZTF,
    light_curve_units: int = 0,
    name: str = "seq_classifier",
) -> keras.Model:
    """Sequence classifier over the first detections of an object (Neira et al. 2024).

    Args:
        class_names: output classes, in label-id order (the dataset card's ``class_names``).
        feature_stats: ``FeatureStats`` (or its dict) of the static features of the first
            alert; None or no names: static features are not used.
        crop_size, conv_filters, embedding_dim: the TimeDistributed stamp encoder.
        normalisation: per-stamp normalisation (``StampPreprocessing``).
        recurrent: "lstm", "gru" or "conv1d" (two causal 1-D convolutions + masked mean).
        units: width of the recurrent / temporal layer.
        bidirectional: run the LSTM/GRU in both directions.
        kernel_size: temporal kernel of "conv1d".
        dropout_rate: dropout before the softmax head.
        encoder: a prepared stamp encoder (e.g. ``initialise_encoder_from_run``); built if None.
        geometry: size and channel names of the stamps (the dataset card's; ZTF by default).
        light_curve_units: > 0 adds the recurrent light-curve branch
            (``stampnet.models.lightcurve``) on the inputs "light_curve" and "light_curve_mask"
            (``sequence_dataset(..., with_history=True)``), joined with the stamp summary.

    Example:
        >>> model = build_seq_classifier(["SN", "AGN"], stats, recurrent="gru")
        >>> probabilities = model(batch)  # (B, 2)
    """
    if recurrent not in RECURRENT_KINDS:
        raise ValueError(f"recurrent must be one of {RECURRENT_KINDS}, received {recurrent!r}")
    if len(class_names) < 2:
        raise ValueError(f"Need at least 2 classes, received class_names={list(class_names)}")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), received {dropout_rate}")
    num_features = len(
        feature_stats["names"]
        if isinstance(feature_stats, dict)
        else (feature_stats.names if feature_stats is not None else ())
    )
    inputs = sequence_inputs(num_features, geometry)
    encoder = encoder or build_stamp_encoder(
        crop_size, conv_filters, embedding_dim, num_channels=geometry.num_channels
    )
    frames, mask = sequence_trunk(inputs, encoder, crop_size, normalisation, geometry)
    summary = temporal_summary(
        frames, mask, inputs["detection_mask"], recurrent, units, bidirectional, kernel_size
    )
    if light_curve_units:
        summary = with_light_curve(inputs, summary, light_curve_units)
    if num_features:
        summary = with_static_features(inputs, summary, feature_stats)
    x = keras.layers.Dense(units, activation="relu", name="head")(summary)
    x = keras.layers.Dropout(dropout_rate, name="dropout")(x)
    probabilities = keras.layers.Dense(
        len(class_names), activation="softmax", name="probabilities", dtype="float32"
    )(x)
    return keras.Model(inputs, probabilities, name=name)


def with_static_features(inputs: dict, summary, feature_stats):
    """Joins the normalised static ``features`` input with ``summary``."""
    static = FeatureNormalization(feature_stats, name="feature_normalization")(inputs["features"])
    return keras.layers.Concatenate(name="with_static_features")([summary, static])


def with_light_curve(inputs: dict, summary, units: int):
    """Adds the light-curve inputs to ``inputs`` and joins their branch with ``summary``."""
    from stampnet.layers.lightcurve import light_curve_inputs
    from stampnet.models.lightcurve import light_curve_branch

    inputs.update(light_curve_inputs())
    branch = light_curve_branch(inputs["light_curve"], inputs["light_curve_mask"], units)
    return keras.layers.Concatenate(name="with_light_curve")([summary, branch])
