"""Classification from a frozen autoencoder latent: z_mean of the first alert + metadata features.

Answers the research question of issue #5: does the unsupervised latent space, with the ALeRCE
metadata features, classify as well as the supervised stamp classifier (Carrasco-Davis et al.
2021)? ``stampnet.models.baselines`` fits gradient boosting on the same inputs for comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras

from stampnet import __version__
from stampnet.features import FeatureStats
from stampnet.layers.preprocessing import FeatureNormalization
from stampnet.models.conv_autoencoder import STAMP_KEYS, inputs_like
from stampnet.models.stamp_classifier import check_classifier_arguments, classifier_model
from stampnet.saving import load_model

#: Files of a run folder that may hold the encoder, in the order they are tried.
ENCODER_FILES = ("encoder.keras", "model.keras")


def load_encoder(path: str | Path) -> keras.Model:
    """The encoder of a trained autoencoder: a run folder, or a ``.keras`` file.

    Accepts an encoder itself (outputs ``[z_mean, ...]``) or a model that contains a layer named
    ``encoder`` (a run's ``model.keras``).
    """
    path = Path(path)
    if path.is_dir():
        found = [path / name for name in ENCODER_FILES if (path / name).exists()]
        if not found:
            raise ValueError(
                f"No encoder in run folder {path}: expected one of {ENCODER_FILES} "
                "(train one with `python train.py --model vae`)"
            )
        path = found[0]
    if not path.exists():
        raise ValueError(f"Encoder file {path} does not exist")
    model = load_model(path)
    if any(layer.name == "encoder" for layer in model.layers):
        model = model.get_layer("encoder")
    try:
        inputs = model.input
    except (AttributeError, ValueError):  # a model never called has no symbolic input
        inputs = None
    if not isinstance(inputs, dict) or set(inputs) != set(STAMP_KEYS):
        raise ValueError(
            f"{path} does not hold a stamp encoder taking {STAMP_KEYS}; found model "
            f"{model.name!r} with inputs {model.inputs}"
        )
    return model


def encoder_latent_mean(encoder: keras.Model, stamp_inputs_dict: dict, training=False):
    """z_mean from any stampnet encoder ([z_mean] or [z_mean, z_log_var, z])."""
    outputs = encoder({key: stamp_inputs_dict[key] for key in STAMP_KEYS}, training=training)
    return outputs[0] if isinstance(outputs, list | tuple) else outputs


def build_latent_classifier(
    encoder: keras.Model,
    *,
    class_names: Sequence[str],
    feature_stats: FeatureStats | None = None,
    hidden_units: Sequence[int] = (64, 64),
    dropout_rate: float = 0.2,
    freeze_encoder: bool = True,
    model_version: str = f"stampnet-{__version__}",
    name: str = "latent_classifier",
) -> keras.Model:
    """A dense classifier head on a (frozen) encoder's z_mean and the normalised features.

    Args:
        encoder: a stampnet encoder (``load_encoder``); frozen unless ``freeze_encoder=False``.
        class_names: output classes, in order.
        feature_stats: train statistics of the metadata features; None: latent only.
        hidden_units: widths of the hidden dense layers.
        dropout_rate: dropout after each hidden layer during training.
        model_version: recorded in the output layer (as the stamp classifier does).

    Returns:
        A functional model {"stamps", "stamp_mask"[, "features"]} -> probabilities (B, C).
    """
    class_names = check_classifier_arguments(class_names, dropout_rate)
    if feature_stats is not None and not feature_stats.names:
        feature_stats = None
    encoder.trainable = not freeze_encoder
    inputs = inputs_like(encoder)  # the encoder's stamp geometry
    # training=False keeps a frozen encoder deterministic (posterior mean, no sampling).
    tensor = encoder_latent_mean(encoder, inputs, training=False if freeze_encoder else None)
    if feature_stats is not None:
        inputs["features"] = keras.Input((len(feature_stats.names),), name="features")
        features = FeatureNormalization(feature_stats, name="feature_normalization")(
            inputs["features"]
        )
        tensor = keras.layers.Concatenate(name="latent_and_features")([tensor, features])
    for index, units in enumerate(hidden_units, start=1):
        tensor = keras.layers.Dense(units, activation="relu", name=f"dense_{index}")(tensor)
        if dropout_rate:
            tensor = keras.layers.Dropout(dropout_rate, name=f"dropout_{index}")(tensor)
    return classifier_model(inputs, tensor, class_names, model_version, name)
