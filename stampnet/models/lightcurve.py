"""The recurrent light-curve branch the classifiers and the sequence VAE add to their stamps.

``light_curve_branch`` turns a light curve (``stampnet.layers.lightcurve.light_curve_inputs``)
into one vector: each row is encoded (``LightCurveEncoding``) and embedded by a dense layer, and
a GRU reads the rows in time order with an explicit boolean mask (keras-io's video
classification example), so right padding changes nothing. ``build_light_curve_decoder`` is the
sequence VAE's way back: given z and only when, in which band and of which kind each row is, it
predicts the row's scaled difference flux (``layers.lightcurve.scaled_flux``). After the
recurrent light-curve classifiers of Charnock & Moss 2017 and Möller & de Boissière 2020
(SuperNNova), here fed by the history every ZTF alert carries.
"""

from __future__ import annotations

import keras

from stampnet.layers.lightcurve import LightCurveEncoding, light_curve_inputs, scaled_flux
from stampnet.layers.sequence import DetectionMask, RepeatOverTime, ZeroPadding

LIGHT_CURVE_KEYS = ("light_curve", "light_curve_mask")


def light_curve_branch(light_curve, light_curve_mask, units: int, name: str = "light_curve"):
    """(B, L, K) rows and (B, L) mask -> (B, units), independent of the padding length."""
    if units < 1:
        raise ValueError(f"light-curve units must be >= 1, received {units}")
    encoded = LightCurveEncoding(name=f"{name}_encoding")(light_curve, light_curve_mask)
    steps = keras.layers.Dense(units, activation="relu", name=f"{name}_embedding")(encoded)
    steps = ZeroPadding(name=f"{name}_zero_padding")(steps, light_curve_mask)
    mask = DetectionMask(name=f"{name}_boolean_mask")(light_curve_mask)
    return keras.layers.GRU(units, name=f"{name}_gru")(steps, mask=mask)


def build_light_curve_encoder(units: int = 32, name: str = "light_curve_encoder") -> keras.Model:
    """The branch alone as a model: ``{"light_curve", "light_curve_mask"}`` -> (B, units)."""
    inputs = light_curve_inputs()
    return keras.Model(inputs, light_curve_branch(**inputs, units=units), name=name)


def build_light_curve_decoder(
    *, latent_dim: int = 16, units: int = 32, name: str = "light_curve_decoder"
) -> keras.Model:
    """``{"z", "light_curve", "light_curve_mask"}`` -> predicted scaled flux (B, L).

    Only the time, band and kind of each row enter (``LightCurveEncoding(values=False)``): the
    values themselves must come from z. Each row is decoded on its own, so the padding cannot
    change a real row's prediction; padded rows give 0.
    """
    inputs = {"z": keras.Input((latent_dim,), name="z"), **light_curve_inputs()}
    conditions = LightCurveEncoding(values=False, name="light_curve_conditions")(
        inputs["light_curve"], inputs["light_curve_mask"]
    )
    repeated = RepeatOverTime(name="repeat_z_over_rows")(inputs["z"], conditions)
    x = keras.layers.Concatenate(name="light_curve_decoder_rows")([repeated, conditions])
    for index in range(2):
        x = keras.layers.Dense(units, activation="relu", name=f"light_curve_decoder_{index}")(x)
    flux = keras.layers.Dense(1, name="light_curve_flux")(x)
    flux = ZeroPadding(name="light_curve_decoder_padding")(flux, inputs["light_curve_mask"])
    flux = keras.layers.Reshape((-1,), name="light_curve_reconstruction")(flux)
    return keras.Model(inputs, flux, name=name)


def light_curve_target(light_curve, light_curve_mask):
    """What the VAE reconstructs: (scaled flux (B, L), weight (B, L)): real rows with a flux."""
    from keras import ops

    flux = ops.cast(light_curve, "float32")[..., 7]  # HISTORY_FIELDS "flux"
    weight = ops.cast(light_curve_mask, "float32") * ops.cast(ops.isfinite(flux), "float32")
    return ops.where(weight > 0, scaled_flux(ops.nan_to_num(flux)), 0.0), weight
