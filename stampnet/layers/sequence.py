"""Layers for sequences of detections: padding masks, per-detection feature encoding, pooling.

A sequence input is right-padded to a common length T and carries ``detection_mask`` (B, T),
1 for a real detection and 0 for padding. Every layer here treats padded steps so that the
answer for an object does not depend on T: padded steps are zeroed before any operation that
mixes time steps, and pooling averages over real detections only.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from stampnet.constants import BANDS
from stampnet.features import DETECTION_FIELDS

#: Fixed offsets and scales of the per-detection photometry: typical ZTF values, so that the
#: encoding needs no train statistics (a sequence model never depends on a dataset's card for it).
#: magpsf and diffmaglim span ~13-21.5 mag; sigmapsf is ~0.01-0.3 mag (clipped at 1 mag).
DETECTION_OFFSETS = {"magpsf": 18.5, "sigmapsf": 0.1, "diffmaglim": 20.0, "isdiffpos": 0.5}
DETECTION_SCALES = {"magpsf": 1.5, "sigmapsf": 0.1, "diffmaglim": 1.0, "isdiffpos": 0.5}
DETECTION_CLIP = {"sigmapsf": (0.0, 1.0), "magpsf": (5.0, 30.0), "diffmaglim": (5.0, 30.0)}
#: Number of raw per-detection inputs: DETECTION_FIELDS plus days since the first detection.
NUM_DETECTION_INPUTS = len(DETECTION_FIELDS) + 1
PARTS = ("photometry", "band", "time")


@keras.saving.register_keras_serializable(package="stampnet")
class DetectionMask(keras.layers.Layer):
    """Turns the float ``detection_mask`` (B, T) into the boolean mask recurrent layers take."""

    def call(self, detection_mask):
        return ops.greater(ops.cast(detection_mask, "float32"), 0.5)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, detection_mask):
        return keras.KerasTensor(detection_mask.shape, dtype="bool")


@keras.saving.register_keras_serializable(package="stampnet")
class ZeroPadding(keras.layers.Layer):
    """Sets the features of padded time steps to exactly 0: ``x * detection_mask[..., None]``.

    Needed before anything that mixes neighbouring steps (a 1-D convolution), so that what a
    padded step holds (the encoder's answer to an empty stamp) cannot leak into real steps.
    """

    def call(self, features, detection_mask):
        weight = ops.cast(detection_mask, features.dtype)
        weight = ops.reshape(weight, (*ops.shape(weight), *([1] * (len(features.shape) - 2))))
        return ops.where(weight > 0.5, features, ops.zeros_like(features))


@keras.saving.register_keras_serializable(package="stampnet")
class MaskedPooling(keras.layers.Layer):
    """Mean or max over the real detections of a (B, T, D) sequence; an empty sequence gives 0.

    Args:
        mode: "mean" or "max".
    """

    def __init__(self, mode: str = "mean", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("mean", "max"):
            raise ValueError(f"mode must be 'mean' or 'max', received {mode!r}")
        self.mode = mode

    def call(self, features, detection_mask):
        valid = ops.expand_dims(ops.greater(ops.cast(detection_mask, "float32"), 0.5), -1)
        count = ops.sum(ops.cast(valid, features.dtype), axis=1)
        if self.mode == "mean":
            total = ops.sum(ops.where(valid, features, 0.0), axis=1)
            return total / ops.maximum(count, 1.0)
        maximum = ops.max(ops.where(valid, features, -3.0e38), axis=1)
        return ops.where(count > 0, maximum, 0.0)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="stampnet")
class DetectionFeatureEncoding(keras.layers.Layer):
    """Encodes raw per-detection values (B, T, K) into network inputs, padded steps -> 0.

    Input columns are ``stampnet.features.DETECTION_FIELDS`` (magpsf, sigmapsf, diffmaglim,
    isdiffpos, fid) then days since the first detection, as ``sequence_dataset`` yields them.
    Output parts, in this order (select with ``parts``):
    - "photometry": ``(clip(x) - offset) / scale`` for magpsf, sigmapsf, diffmaglim, isdiffpos
      with the fixed, documented ``DETECTION_OFFSETS``/``DETECTION_SCALES``; missing (NaN) -> 0.
    - "band": one-hot of fid over ``bands`` (ZTF g, r, i); an unknown fid gives all zeros.
    - "time": ``log1p(days) / log1p(time_scale_days)`` and ``days / time_scale_days``: the log
      resolves the first nights (Neira et al. 2024 use the first few detections), the linear
      term keeps long baselines apart.

    Args:
        parts: which parts to output, a subset of ("photometry", "band", "time").
        bands: the fid values of the one-hot band encoding.
        time_scale_days: the time unit of the "time" part.

    Example:
        >>> encoding = DetectionFeatureEncoding(parts=("band", "time"))
        >>> encoded = encoding(detection_features, detection_mask)  # (B, T, 5)
    """

    def __init__(
        self,
        parts=PARTS,
        bands=tuple(BANDS),
        time_scale_days: float = 30.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        parts = tuple(parts)
        if not parts or any(part not in PARTS for part in parts):
            raise ValueError(f"parts must be a non-empty subset of {PARTS}, received {parts}")
        if not time_scale_days > 0:
            raise ValueError(f"time_scale_days must be > 0, received {time_scale_days}")
        self.parts = tuple(part for part in PARTS if part in parts)
        self.bands = tuple(int(band) for band in bands)
        self.time_scale_days = float(time_scale_days)

    @property
    def output_dim(self) -> int:
        sizes = {"photometry": 4, "band": len(self.bands), "time": 2}
        return sum(sizes[part] for part in self.parts)

    def call(self, detection_features, detection_mask):
        features = ops.cast(detection_features, "float32")
        if features.shape[-1] != NUM_DETECTION_INPUTS:
            raise ValueError(
                f"detection_features must have {NUM_DETECTION_INPUTS} columns "
                f"({DETECTION_FIELDS} + days since first detection), "
                f"received shape {features.shape}"
            )
        columns = {name: features[..., i] for i, name in enumerate(DETECTION_FIELDS)}
        encoded = []
        if "photometry" in self.parts:
            for name in ("magpsf", "sigmapsf", "diffmaglim", "isdiffpos"):
                value = columns[name]
                if name in DETECTION_CLIP:
                    value = ops.clip(value, *DETECTION_CLIP[name])
                value = (value - DETECTION_OFFSETS[name]) / DETECTION_SCALES[name]
                encoded.append(value)
        if "band" in self.parts:
            for band in self.bands:
                encoded.append(ops.cast(ops.equal(columns["fid"], float(band)), "float32"))
        if "time" in self.parts:
            days = ops.maximum(features[..., -1], 0.0)
            encoded.append(ops.log1p(days) / math.log1p(self.time_scale_days))
            encoded.append(days / self.time_scale_days)
        encoded = ops.stack(encoded, axis=-1)
        valid = ops.expand_dims(ops.greater(ops.cast(detection_mask, "float32"), 0.5), -1)
        # NaN (missing) and padded steps both become exactly 0.
        return ops.where(valid & ops.isfinite(encoded), encoded, 0.0)

    def get_config(self):
        return {
            **super().get_config(),
            "parts": list(self.parts),
            "bands": list(self.bands),
            "time_scale_days": self.time_scale_days,
        }


@keras.saving.register_keras_serializable(package="stampnet")
class RepeatOverTime(keras.layers.Layer):
    """Repeats a per-sequence vector (B, D) along the time axis of a reference (B, T, ...).

    ``keras.layers.RepeatVector`` needs T at build time; sequences here have a free length.
    """

    def call(self, vector, reference):
        steps = ops.shape(reference)[1]
        return ops.repeat(ops.expand_dims(vector, 1), steps, axis=1)


@keras.saving.register_keras_serializable(package="stampnet")
class FoldedTimeDistributed(keras.layers.Wrapper):
    """Applies ``layer`` to every time step by folding time into the batch: (B, T, ...) ->
    (B*T, ...) -> layer -> (B, T, ...). One batched call, and a free (None) time axis.

    Used instead of ``keras.layers.TimeDistributed``, which (Keras 3.15) maps over the *batch*
    size instead of the time steps when T is unknown at trace time (``vectorized_map`` over
    ``ops.arange(shape(inputs)[0])`` taken before its transpose), so a SavedModel exported with a
    free T returns wrong shapes.

    Args:
        layer: the per-frame layer or model (e.g. a stamp encoder taking (B, H, W, C)).

    Example:
        >>> frames = FoldedTimeDistributed(stamp_encoder)(images)  # (B, T, embedding_dim)
    """

    def __init__(self, layer, **kwargs):
        super().__init__(layer, **kwargs)
        # A (B, T) mask from a recurrent layer still describes the (B, T, ...) output.
        self.supports_masking = True

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build((None, *input_shape[2:]))
        self.built = True

    def call(self, inputs, training=None):
        shape = ops.shape(inputs)
        folded = ops.reshape(inputs, (-1, *inputs.shape[2:]))
        outputs = self.layer(folded, training=training)
        return ops.reshape(outputs, (shape[0], shape[1], *outputs.shape[1:]))

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None, *input_shape[2:]))
        return (input_shape[0], input_shape[1], *inner[1:])
