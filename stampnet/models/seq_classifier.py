"""Sequence classifier: a TimeDistributed stamp encoder, a masked recurrent layer, static features.

After the Temporal Stamp Classifier of Neira et al. 2024 (the first detections of an object beat
its first stamp alone) and keras-io's video classification example (an explicit mask handed to
the recurrent layer). Raw dataset inputs in, probabilities out; preprocessing lives inside.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from stampnet.constants import STAMP_SHAPE
from stampnet.layers.preprocessing import FeatureNormalization, StampPreprocessing
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


def sequence_inputs(num_features: int | None = None) -> dict[str, keras.KerasTensor]:
    """Keras inputs matching ``sequence_dataset`` batches; the time axis is free (None).

    ``num_features=None`` leaves the width of ``features`` free (for a model that ignores it).
    """
    return {
        "stamps": keras.Input((None, *STAMP_SHAPE), name="stamps"),
        "stamp_mask": keras.Input((None, *STAMP_SHAPE), name="stamp_mask"),
        "detection_mask": keras.Input((None,), name="detection_mask"),
        "detection_features": keras.Input((None, NUM_DETECTION_INPUTS), name="detection_features"),
        "features": keras.Input((num_features,), name="features"),
    }


def build_stamp_encoder(
    crop_size: int = 21,
    conv_filters=(16, 32),
    embedding_dim: int = 64,
    kernel_size: int = 3,
    name: str = "stamp_encoder",
) -> keras.Model:
    """One preprocessed stamp (crop, crop, 3) -> (embedding_dim,): the conv trunk of ALeRCE's
    stamp classifier and of the stamp VAE (``conv_autoencoder.build_conv_trunk``) + a dense layer.

    Sharing the trunk's layer shapes is what lets ``initialise_encoder_from_run`` start from a
    trained stamp classifier or VAE (with ``conv_filters=(32, 64)``, ``embedding_dim=64``).
    It has no batch normalisation, whose batch statistics would mix padded frames into real ones.
    """
    images = keras.Input((crop_size, crop_size, STAMP_SHAPE[-1]), name="images")
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


def sequence_trunk(inputs, encoder: keras.Model, crop_size: int, normalisation: str = "minmax"):
    """Per-frame features (B, T, E + detection encoding), zero at padded steps, and the mask."""
    images = StampPreprocessing(crop_size, normalisation, name="stamp_preprocessing")(
        inputs["stamps"], inputs["stamp_mask"]
    )
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
    inputs = sequence_inputs(num_features)
    encoder = encoder or build_stamp_encoder(crop_size, conv_filters, embedding_dim)
    frames, mask = sequence_trunk(inputs, encoder, crop_size, normalisation)
    summary = temporal_summary(
        frames, mask, inputs["detection_mask"], recurrent, units, bidirectional, kernel_size
    )
    if light_curve_units:
        summary = with_light_curve(inputs, summary, light_curve_units)
    if num_features:
        static = FeatureNormalization(feature_stats, name="feature_normalization")(
            inputs["features"]
        )
        summary = keras.layers.Concatenate(name="with_static_features")([summary, static])
    x = keras.layers.Dense(units, activation="relu", name="head")(summary)
    x = keras.layers.Dropout(dropout_rate, name="dropout")(x)
    probabilities = keras.layers.Dense(
        len(class_names), activation="softmax", name="probabilities"
    )(x)
    return keras.Model(inputs, probabilities, name=name)


def with_light_curve(inputs: dict, summary, units: int):
    """Adds the light-curve inputs to ``inputs`` and joins their branch with ``summary``."""
    from stampnet.layers.lightcurve import light_curve_inputs
    from stampnet.models.lightcurve import light_curve_branch

    inputs.update(light_curve_inputs())
    branch = light_curve_branch(inputs["light_curve"], inputs["light_curve_mask"], units)
    return keras.layers.Concatenate(name="with_light_curve")([summary, branch])


def truncate_detections(inputs: dict, num_detections: int) -> dict:
    """The same batch with every detection after the first ``num_detections`` masked out.

    A light curve (days relative to the last detection given) then loses the rows after the
    ``num_detections``-th detection, and its days are counted from that detection again.
    """
    if num_detections < 1:
        raise ValueError(f"num_detections must be >= 1, received {num_detections}")
    detection_mask = np.asarray(inputs["detection_mask"], dtype=np.float32).copy()
    available = (detection_mask > 0.5).sum(axis=1)
    detection_mask[:, num_detections:] = 0.0
    truncated = {**inputs, "detection_mask": detection_mask}
    if "light_curve" in inputs:
        days = np.asarray(inputs["detection_features"])[..., -1]  # since the first detection
        rows = np.arange(len(days))
        last = days[rows, np.maximum(available - 1, 0)]
        kept = days[rows, np.maximum(np.minimum(available, num_detections) - 1, 0)]
        shift = (kept - last)[:, None]  # <= 0: how far before the last detection we stop
        light_curve = np.asarray(inputs["light_curve"], np.float32).copy()
        mask = np.asarray(inputs["light_curve_mask"], np.float32).copy()
        mask[light_curve[..., 0] > shift + 1e-4] = 0.0
        light_curve[..., 0] -= shift
        light_curve[mask == 0] = 0.0
        truncated.update(light_curve=light_curve, light_curve_mask=mask)
    return truncated


def accuracy_by_num_detections(model, dataset, max_detections: int) -> list[dict]:
    """Accuracy when the model sees only the first n detections, n = 1..max_detections.

    Neira et al. 2024's comparison. ``dataset`` yields ``(inputs, label[, weight])``. Per n:
    ``accuracy`` over all objects (those with fewer detections use all they have),
    ``accuracy_with_n`` over objects with at least n detections, and their count.
    """
    correct = np.zeros(max_detections)
    correct_with_n = np.zeros(max_detections)
    count_with_n = np.zeros(max_detections)
    total = 0
    for batch in dataset:
        inputs, labels = batch[0], np.asarray(batch[1])
        keys = set(model.input) if isinstance(getattr(model, "input", None), dict) else INPUT_KEYS
        inputs = {key: np.asarray(value) for key, value in inputs.items() if key in keys}
        available = np.asarray(inputs["detection_mask"]).sum(axis=1)
        total += len(labels)
        for n in range(1, max_detections + 1):
            predicted = np.argmax(model(truncate_detections(inputs, n), training=False), axis=-1)
            hit = predicted == labels
            correct[n - 1] += hit.sum()
            correct_with_n[n - 1] += hit[available >= n].sum()
            count_with_n[n - 1] += (available >= n).sum()
    if total == 0:
        raise ValueError("accuracy_by_num_detections received an empty dataset")
    return [
        {
            "num_detections": n,
            "accuracy": float(correct[n - 1] / total),
            "accuracy_with_n": float(correct_with_n[n - 1] / max(count_with_n[n - 1], 1)),
            "objects_with_n": int(count_with_n[n - 1]),
        }
        for n in range(1, max_detections + 1)
    ]


def plot_accuracy_by_num_detections(results: list[dict], path: str | Path, baseline=None):
    """Accuracy against the number of detections used; ``baseline``: single-stamp accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axis = pyplot.subplots(figsize=(5, 3.5))
    counts = [row["num_detections"] for row in results]
    axis.plot(counts, [row["accuracy"] for row in results], "o-", label="sequence classifier")
    if baseline is not None:
        axis.axhline(baseline, color="grey", linestyle="--", label="single-stamp classifier")
    axis.set_xlabel("detections used")
    axis.set_ylabel("accuracy")
    axis.set_xticks(counts)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
    return Path(path)
