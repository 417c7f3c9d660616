"""Encoding the light-curve history (``stampnet.data.history`` rows) into network inputs.

A light curve arrives as ``light_curve`` (B, L, K) raw rows of ``HISTORY_FIELDS`` (days before
the alert, band, kind, magnitudes, microjansky fluxes; NaN = not measured) and
``light_curve_mask`` (B, L), 1 for a real row and 0 for right padding. The encoding uses fixed,
documented offsets and scales (typical ZTF values), so it needs no train statistics, and it is
exactly 0 on padded rows, so that what follows can be made padding-invariant.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from stampnet.constants import BANDS
from stampnet.data.history import HISTORY_FIELDS, KIND_NAMES

_COLUMN = {name: index for index, name in enumerate(HISTORY_FIELDS)}
#: Magnitudes: (clip(x) - offset) / scale, as the per-detection encoding of the sequence models.
MAG_OFFSETS = {"magpsf": 18.5, "sigmapsf": 0.1, "diffmaglim": 20.0}
MAG_SCALES = {"magpsf": 1.5, "sigmapsf": 0.1, "diffmaglim": 1.0}
MAG_CLIP = {"magpsf": (5.0, 30.0), "sigmapsf": (0.0, 1.0), "diffmaglim": (5.0, 30.0)}
#: Fluxes: asinh(flux / FLUX_SOFTENING_UJY) / FLUX_SCALE: linear near 0 (forced photometry of
#: an empty position scatters around 0 with either sign), logarithmic for bright differences.
FLUX_SOFTENING_UJY = 10.0
FLUX_SCALE = 3.0
#: Time unit (days) of the time encoding: the history covers the previous 30 days.
TIME_SCALE_DAYS = 30.0
#: Width of ``LightCurveEncoding``'s output: time (2), band (3), kind (3), magpsf, sigmapsf,
#: diffmaglim, isdiffpos, flux, flux_error (6), and "has a magnitude" / "has a flux" flags (2).
ENCODED_WIDTH = 2 + len(BANDS) + len(KIND_NAMES) + 6 + 2
CONDITION_WIDTH = 2 + len(BANDS) + len(KIND_NAMES)


def light_curve_inputs() -> dict[str, keras.KerasTensor]:
    """Keras inputs matching the pipelines' ``with_history=True`` keys; the length L is free."""
    return {
        "light_curve": keras.Input((None, len(HISTORY_FIELDS)), name="light_curve"),
        "light_curve_mask": keras.Input((None,), name="light_curve_mask"),
    }


def scaled_flux(flux):
    """The flux target and input scale: asinh(flux / FLUX_SOFTENING_UJY) / FLUX_SCALE."""
    return ops.arcsinh(flux / FLUX_SOFTENING_UJY) / FLUX_SCALE


@keras.saving.register_keras_serializable(package="stampnet")
class LightCurveEncoding(keras.layers.Layer):
    """Raw history rows (B, L, len(HISTORY_FIELDS)) -> (B, L, ENCODED_WIDTH), padded rows -> 0.

    - time: ``-log1p(-days) / log1p(30)`` and ``days / 30`` (days <= 0 before the alert): the
      log resolves the last nights, the linear term keeps a month apart;
    - band: one-hot of fid over ``bands``; kind: one-hot of detection / upper limit / forced;
    - magnitudes: ``(clip(x) - offset) / scale`` with ``MAG_OFFSETS``/``MAG_SCALES``;
      isdiffpos as ±1; flux and flux error through ``scaled_flux``;
    - two flags: the row has a magnitude, the row has a flux. Missing (NaN) values -> 0.

    Args:
        bands: the fid values of the one-hot band encoding.
        values: also encode the measured values; False gives only when, in which band and of
            which kind each row is (``CONDITION_WIDTH`` columns: a decoder's conditions).

    Example:
        >>> encoded = LightCurveEncoding()(light_curve, light_curve_mask)  # (B, L, 16)
    """

    def __init__(self, bands=tuple(BANDS), values: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.bands = tuple(int(band) for band in bands)
        self.values = bool(values)

    def call(self, light_curve, light_curve_mask):
        rows = ops.cast(light_curve, "float32")
        if rows.shape[-1] != len(HISTORY_FIELDS):
            raise ValueError(
                f"light_curve must have {len(HISTORY_FIELDS)} columns {HISTORY_FIELDS}, "
                f"received shape {rows.shape}"
            )
        column = {name: rows[..., index] for name, index in _COLUMN.items()}
        days = ops.minimum(ops.nan_to_num(column["days"]), 0.0)
        encoded = [
            -ops.log1p(-days) / math.log1p(TIME_SCALE_DAYS),
            days / TIME_SCALE_DAYS,
        ]
        encoded += [
            ops.cast(ops.equal(column["fid"], float(band)), "float32") for band in self.bands
        ]
        encoded += [
            ops.cast(ops.equal(column["kind"], float(kind)), "float32")
            for kind in range(len(KIND_NAMES))
        ]
        for name in ("magpsf", "sigmapsf", "diffmaglim") if self.values else ():
            value = ops.clip(column[name], *MAG_CLIP[name])
            encoded.append((value - MAG_OFFSETS[name]) / MAG_SCALES[name])
        if self.values:
            encoded.append(2.0 * column["isdiffpos"] - 1.0)
            encoded.append(scaled_flux(column["flux"]))
            encoded.append(scaled_flux(ops.abs(column["flux_error"])))
            encoded.append(ops.cast(ops.isfinite(column["magpsf"]), "float32"))
            encoded.append(ops.cast(ops.isfinite(column["flux"]), "float32"))
        encoded = ops.stack(encoded, axis=-1)
        valid = ops.expand_dims(ops.greater(ops.cast(light_curve_mask, "float32"), 0.5), -1)
        # NaN (not measured) and padded rows both become exactly 0.
        return ops.where(valid & ops.isfinite(encoded), encoded, 0.0)

    def compute_output_shape(self, input_shape):
        width = len(self.bands) + 2 + len(KIND_NAMES) + (8 if self.values else 0)
        return (*input_shape[:-1], width)

    def get_config(self):
        return {**super().get_config(), "bands": list(self.bands), "values": self.values}
