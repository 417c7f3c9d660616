"""Preprocessing as Keras layers, so that it is written once and travels inside every saved model.

A stampnet model takes *raw* inputs, exactly what the datasets store and what a broker decodes:
stamps in counts with a validity mask, metadata features unnormalised (NaN = missing). The layers
below turn them into network inputs; the tf.data pipeline, `stampnet classify`, the SavedModel
serving signature and training all go through them, so none can drift from the others.
"""

from __future__ import annotations

import keras
from keras import ops

from stampnet.constants import CHANNELS, STAMP_SIZE
from stampnet.features import FeatureStats

NORMALISATIONS = ("minmax", "standardize", "none")


def center_crop_bounds(crop_size: int, full_size: int = STAMP_SIZE) -> tuple[int, int]:
    """Start and stop of a centred crop; 21 of 63 gives ALeRCE's [21:42], 21 of 21 all of it."""
    if not 1 <= crop_size <= full_size:
        raise ValueError(
            f"crop_size must be in [1, {full_size}] for {full_size}x{full_size} stamps, received "
            f"crop_size={crop_size}; choose --crop-size {min(crop_size, full_size)} or less"
        )
    start = (full_size - crop_size) // 2
    return start, start + crop_size


@keras.saving.register_keras_serializable(package="stampnet")
class StampPreprocessing(keras.layers.Layer):
    """Centre crop, per-image per-channel normalisation over valid pixels, invalid pixels -> 0.

    With ``normalisation="minmax"`` this is ALeRCE's preprocessing (Carrasco-Davis et al. 2021):
    crop, subtract the channel's minimum, divide by the maximum of the result, NaN -> 0. Here the
    minimum and maximum are taken over the pixels that ``mask`` marks valid (NaN or padded pixels
    are not), which equals numpy's nanmin/nanmax on the original stamp. A constant channel becomes
    0, as ALeRCE's 0/0 -> NaN -> 0 does.

    Works on a batch of stamps (B, H, W, C) or of sequences (B, T, H, W, C).

    Args:
        crop_size: side of the centred crop (21 as ALeRCE; 63 keeps the whole stamp).
        normalisation: "minmax" (ALeRCE), "standardize" (zero mean, unit variance per channel),
            or "none".
        channels: names of the input channels, in order (the dataset card's ``channels``): not
            used by the computation, recorded so that a saved model says which stamps it takes
            (``stampnet.compat``). ZTF's by default.

    Example:
        >>> layer = StampPreprocessing(crop_size=21)
        >>> images = layer(stamps, stamp_mask)  # (B, 21, 21, 3), values in [0, 1]
    """

    def __init__(
        self, crop_size: int = 21, normalisation: str = "minmax", channels=CHANNELS, **kwargs
    ):
        # Always float32, also under a mixed_float16 policy: raw stamps in counts exceed
        # float16's 65504 on bright or saturated stars (inf - inf = NaN); normalised to [0, 1]
        # here, they reach the float16 layers after it safely.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if normalisation not in NORMALISATIONS:
            raise ValueError(
                f"normalisation must be one of {NORMALISATIONS}, received {normalisation!r}"
            )
        if crop_size < 1:
            raise ValueError(f"crop_size must be positive, received crop_size={crop_size}")
        self.crop_size = crop_size
        self.normalisation = normalisation
        self.channels = tuple(str(name) for name in channels)

    def call(self, stamps, mask=None):
        if mask is None:
            mask = ops.ones_like(stamps)
        start, stop = center_crop_bounds(self.crop_size, stamps.shape[-2])
        stamps = stamps[..., start:stop, start:stop, :]
        valid = ops.cast(mask[..., start:stop, start:stop, :], "bool")
        # Invalid pixels may hold NaN (from a broker) or 0 (from our datasets): never read them.
        stamps = ops.where(valid, stamps, 0.0)
        if self.normalisation == "minmax":
            stamps = self._minmax(stamps, valid)
        elif self.normalisation == "standardize":
            stamps = self._standardize(stamps, valid)
        return ops.where(valid, stamps, 0.0)

    @staticmethod
    def _minmax(stamps, valid):
        image_axes = (-3, -2)
        big = 3.0e38
        minimum = ops.min(ops.where(valid, stamps, big), axis=image_axes, keepdims=True)
        shifted = ops.where(valid, stamps - minimum, 0.0)
        maximum = ops.max(shifted, axis=image_axes, keepdims=True)
        safe = ops.where(maximum > 0, maximum, 1.0)
        return ops.where(maximum > 0, shifted / safe, 0.0)

    @staticmethod
    def _standardize(stamps, valid):
        image_axes = (-3, -2)
        weight = ops.cast(valid, stamps.dtype)
        count = ops.maximum(ops.sum(weight, axis=image_axes, keepdims=True), 1.0)
        mean = ops.sum(stamps * weight, axis=image_axes, keepdims=True) / count
        variance = ops.sum(ops.square(stamps - mean) * weight, axis=image_axes, keepdims=True)
        std = ops.sqrt(variance / count)
        return (stamps - mean) / ops.maximum(std, 1e-6)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-3], self.crop_size, self.crop_size, input_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "crop_size": self.crop_size,
            "normalisation": self.normalisation,
            "channels": list(self.channels),
        }


@keras.saving.register_keras_serializable(package="stampnet")
class FeatureNormalization(keras.layers.Layer):
    """Clips and z-scores raw metadata features with stored train statistics; missing -> 0.

    Missing is NaN, and under the ``missing`` encoding of a catalogue match also ZTF's -999
    (``stats.missing_value``), a match distance beyond ZTF's search radius (``missing_above``)
    and a match's score or magnitude whose distance is missing (``missing_with``); ALeRCE's
    encoding clips the -999 like any other value and reads every listed distance as it is.

    The statistics are part of the layer's config, so a saved model carries them and needs no side
    file. ``stats`` is a ``stampnet.features.FeatureStats`` or its ``to_dict()``.

    Args:
        stats: feature names, means, standard deviations and clipping bounds (NaN = unbounded).
    """

    def __init__(self, stats, **kwargs):
        # float32 under mixed_float16 too: raw features may exceed float16's range.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.stats = stats if isinstance(stats, FeatureStats) else FeatureStats.from_dict(stats)

    def call(self, features):
        features = ops.cast(features, "float32")
        finite = ops.isfinite(features)
        if self.stats.missing_value:
            # x != NaN holds, so features without a missing value keep every finite value.
            missing_value = ops.convert_to_tensor(self.stats.missing_value, "float32")
            finite = finite & ops.not_equal(features, missing_value)
        if self.stats.missing_above:
            above = ops.convert_to_tensor(self.stats.missing_above, "float32")
            finite = finite & (ops.isnan(above) | ops.less_equal(features, above))
        if self.stats.missing_with:
            finite = finite & ops.take(finite, self.stats.partner_indices(), axis=-1)
        low = ops.convert_to_tensor(self.stats.clip_low, "float32")
        high = ops.convert_to_tensor(self.stats.clip_high, "float32")
        features = ops.where(ops.isnan(low) | (features >= low), features, low)
        features = ops.where(ops.isnan(high) | (features <= high), features, high)
        mean = ops.convert_to_tensor(self.stats.mean, "float32")
        std = ops.convert_to_tensor(self.stats.std, "float32")
        normalised = (features - mean) / std
        return ops.where(finite, normalised, 0.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "stats": self.stats.to_dict()}
