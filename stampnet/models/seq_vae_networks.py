"""The encoder and decoder networks of the sequence VAE (``stampnet.models.seq_vae``).

``build_sequence_encoder``: a TimeDistributed conv encoder and a masked LSTM summarise an object's
detections into q(z|x) = N(z_mean, exp(z_log_var)). ``build_sequence_decoder``: an LSTM, given z
and the time and band of each detection, emits one state per detection, which a TimeDistributed
deconvolution turns back into a preprocessed stamp.
"""

from __future__ import annotations

import keras

from stampnet.geometry import ZTF, StampGeometry
from stampnet.layers.latent import Sampling
from stampnet.layers.sequence import (
    DetectionFeatureEncoding,
    DetectionMask,
    FoldedTimeDistributed,
    RepeatOverTime,
)
from stampnet.models.conv_autoencoder import build_decoder
from stampnet.models.seq_classifier import (
    build_stamp_encoder,
    sequence_inputs,
    sequence_trunk,
    with_light_curve,
    with_static_features,
)

ENCODER_KEYS = ("stamps", "stamp_mask", "detection_mask", "detection_features", "features")
CONDITION_KEYS = ("detection_features", "detection_mask")


def build_sequence_encoder(
    *,
    latent_dim: int = 16,
    crop_size: int = 21,
    normalisation: str = "minmax",
    conv_filters=(16, 32),
    embedding_dim: int = 64,
    units: int = 64,
    bidirectional: bool = False,
    seed: int | None = None,
    feature_stats=None,
    stamp_encoder: keras.Model | None = None,
    geometry: StampGeometry = ZTF,
    light_curve_units: int = 0,
    name: str = "sequence_encoder",
) -> keras.Model:
    """Raw sequence inputs (all five ``sequence_dataset`` keys) -> ``[z_mean, z_log_var, z]``.

    The served / embedding model: padding never changes z_mean (masked LSTM, zeroed padded
    steps). The static ``features`` of the first alert enter the latent only when
    ``feature_stats`` is given; otherwise the input is accepted (any width) and ignored, so that
    every consumer can pass the pipeline's dict as it comes (a functional model matches dict
    inputs by position, not by key, and fails on extra keys). ``light_curve_units > 0`` adds the
    light-curve branch (``stampnet.models.lightcurve``) and its two inputs.
    """
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be >= 1, received {latent_dim}")
    num_features = _num_features(feature_stats)
    inputs = sequence_inputs(num_features if feature_stats is not None else None, geometry)
    stamp_encoder = stamp_encoder or build_stamp_encoder(
        crop_size, conv_filters, embedding_dim, num_channels=geometry.num_channels
    )
    frames, mask = sequence_trunk(inputs, stamp_encoder, crop_size, normalisation, geometry)
    recurrent = keras.layers.LSTM(units, name="lstm")
    if bidirectional:
        recurrent = keras.layers.Bidirectional(recurrent, name="bidirectional_lstm")
    summary = recurrent(frames, mask=mask)
    if light_curve_units:
        summary = with_light_curve(inputs, summary, light_curve_units)
    if num_features:
        summary = with_static_features(inputs, summary, feature_stats)
    hidden = keras.layers.Dense(units, activation="relu", name="hidden_summary")(summary)
    z_mean = keras.layers.Dense(latent_dim, name="z_mean")(hidden)
    # Zero-initialised log-variance: the posterior starts at the prior's unit variance.
    z_log_var = keras.layers.Dense(latent_dim, kernel_initializer="zeros", name="z_log_var")(hidden)
    z = Sampling(seed=seed, name="z")([z_mean, z_log_var])
    return keras.Model(inputs, [z_mean, z_log_var, z], name=name)


def _num_features(feature_stats) -> int:
    if feature_stats is None:
        return 0
    return len(feature_stats["names"] if isinstance(feature_stats, dict) else feature_stats.names)


def build_sequence_decoder(
    *,
    latent_dim: int = 16,
    crop_size: int = 21,
    conv_filters=(16, 32),
    dense_units: int = 64,
    units: int = 64,
    num_channels: int = ZTF.num_channels,
    latent_skip: bool = True,
    name: str = "sequence_decoder",
) -> keras.Model:
    """``{"z", "detection_features", "detection_mask"}`` -> stamps (B, T, crop, crop, C).

    The decoder knows when (days since the first detection) and in which band each stamp was
    taken, not its magnitude: what the stamps look like must come from z. ``latent_skip``: z
    also enters the frame decoder beside each LSTM state (a generative skip path, Dieng et al.
    2019), so the pixels depend on z through a short path and the decoder cannot settle on the
    mean sequence while ignoring it.
    """
    inputs = {
        "z": keras.Input((latent_dim,), name="z"),
        **{key: value for key, value in sequence_inputs().items() if key in CONDITION_KEYS},
    }
    conditions = DetectionFeatureEncoding(parts=("band", "time"), name="time_band")(
        inputs["detection_features"], inputs["detection_mask"]
    )
    repeated = RepeatOverTime(name="repeat_z")(inputs["z"], conditions)
    steps = keras.layers.Concatenate(name="decoder_steps")([repeated, conditions])
    mask = DetectionMask(name="boolean_mask")(inputs["detection_mask"])
    states = keras.layers.LSTM(units, return_sequences=True, name="decoder_lstm")(steps, mask=mask)
    if latent_skip:
        states = keras.layers.Concatenate(name="states_and_z")([states, repeated])
    frame_decoder = build_decoder(
        latent_dim=units + (latent_dim if latent_skip else 0),
        crop_size=crop_size,
        conv_filters=tuple(conv_filters),
        dense_units=dense_units,
        num_channels=num_channels,
        name="frame_decoder",
    )
    stamps = FoldedTimeDistributed(frame_decoder, name="reconstruction")(states)
    return keras.Model(inputs, stamps, name=name)
