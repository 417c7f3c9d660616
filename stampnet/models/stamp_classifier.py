"""The rotation-invariant stamp classifier of the ALeRCE broker (Carrasco-Davis et al. 2021).

Raw stamps (ZTF: science, template, difference; any channels a dataset card names) are cropped and
min-max normalised inside the model, seen at four right-angle rotations through a shared
convolutional trunk, pooled over the rotations, joined with the normalised metadata features, and
classified by two dense layers. Two published variants differ in where the rotations are pooled:

- ``pool_after="dense_1"`` (ALeRCE 2020, with features): trunk ... dense_1 -> pool ->
  concat(features) -> dense_2 -> dense_3 -> output_logits;
- ``pool_after="dense_2"`` (ALeRCE 2019, images only): trunk ... dense_1 -> dense_2 -> pool ->
  [concat(features)] -> output_logits.

Layer names follow ALeRCE's graph without its op counters (``conv_1_1`` -> ``conv_1``,
``dense_1_10`` -> ``dense_1``; the ReLU after each is ``conv_1_relu``...) so that weights and
intermediate outputs map one to one (``alerce_import.stampnet_layer_for``).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from stampnet import __version__
from stampnet.constants import CHANNELS, DEFAULT_CROP_SIZE
from stampnet.features import FeatureStats
from stampnet.geometry import ZTF, StampGeometry
from stampnet.layers.preprocessing import (
    FeatureNormalization,
    StampPreprocessing,
    center_crop_bounds,
)
from stampnet.layers.rotation import CyclicAveragePooling, RotationStack
from stampnet.models.trunk import apply_conv_trunk

POOL_POSITIONS = ("dense_1", "dense_2")
HIDDEN_UNITS = 64
#: Keras' default, and the epsilon of ALeRCE's graph (batchnorm/add/y = 0.001).
BATCHNORM_EPSILON = 1e-3


@keras.saving.register_keras_serializable(package="stampnet")
class ChannelSelection(keras.layers.Layer):
    """Keeps a subset of the stamp channels, in the given order (the paper's input comparisons).

    Args:
        channels: the channels kept, names from ``available``.
        available: the channels of the input stamps, in order (the dataset card's ``channels``;
            ZTF's science, template, difference by default).
    """

    def __init__(
        self, channels: Sequence[str] = CHANNELS, available: Sequence[str] = CHANNELS, **kwargs
    ):
        super().__init__(**kwargs)
        channels, available = tuple(channels), tuple(available)
        unknown = [name for name in channels if name not in available]
        if not channels or unknown or len(set(channels)) != len(channels):
            raise ValueError(
                f"channels must be distinct names from the data's {available}, "
                f"received {channels!r}"
            )
        self.channels = channels
        self.available = available
        self.indices = [available.index(name) for name in channels]

    def call(self, stamps):
        if self.indices == list(range(len(self.available))):
            return stamps
        return ops.take(stamps, self.indices, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], len(self.channels))

    def get_config(self):
        return {
            **super().get_config(),
            "channels": list(self.channels),
            "available": list(self.available),
        }


@keras.saving.register_keras_serializable(package="stampnet")
class ClassProbabilities(keras.layers.Layer):
    """Softmax over logits that also records what the outputs mean, so a saved model is
    self-describing: ``stampnet classify`` reads the class names and version from this layer.

    Args:
        class_names: output order of the classes.
        model_version: free text recorded with every prediction (e.g. "stampnet-0.1.0").
    """

    def __init__(self, class_names: Sequence[str], model_version: str = "", **kwargs):
        # float32 even under mixed precision: a float16 softmax rounds small probabilities to 0
        # and the log-loss to infinity (the Keras mixed-precision guide's rule for outputs).
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.class_names = tuple(str(name) for name in class_names)
        self.model_version = str(model_version)

    def call(self, logits):
        return ops.softmax(logits, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "class_names": list(self.class_names),
            "model_version": self.model_version,
        }


def stamp_inputs(geometry: StampGeometry = ZTF) -> dict:
    """``{"stamps", "stamp_mask"}`` Keras inputs of the geometry's (H, W, C)."""
    return {key: keras.Input(geometry.shape, name=key) for key in ("stamps", "stamp_mask")}


def check_classifier_arguments(class_names: Sequence[str], dropout_rate: float) -> tuple:
    """``class_names`` as a tuple, after the checks every stamp classifier makes."""
    class_names = tuple(class_names)
    if len(class_names) < 2:
        raise ValueError(f"class_names needs at least 2 classes, received {class_names!r}")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), received {dropout_rate}")
    return class_names


def classifier_model(
    inputs: dict, tensor, class_names, model_version: str, name: str
) -> keras.Model:
    """The head every stamp classifier ends with: ``output_logits`` (ALeRCE's layer name) and
    ``ClassProbabilities``, as a functional model of ``inputs``."""
    logits = keras.layers.Dense(len(class_names), name="output_logits")(tensor)
    probabilities = ClassProbabilities(class_names, model_version, name="probabilities")(logits)
    return keras.Model(inputs, probabilities, name=name)


def _dense(tensor, units, name, dropout_rate):
    """Dense, ReLU (a layer of its own, so both ALeRCE tensors BiasAdd and Relu have a twin),
    and dropout in training."""
    tensor = keras.layers.Dense(units, name=name)(tensor)
    tensor = keras.layers.ReLU(name=f"{name}_relu")(tensor)
    if dropout_rate:
        tensor = keras.layers.Dropout(dropout_rate, name=f"{name}_dropout")(tensor)
    return tensor


def _image_trunk(images, kernel_size, dropout_rate, pool_after):
    """The shared Deep-HiTS trunk on the 4B stacked rotations; returns the pooled (B, 64)."""
    tensor = apply_conv_trunk(images, conv_filters=(32, 64), kernel_size=kernel_size)
    tensor = _dense(tensor, HIDDEN_UNITS, "dense_1", dropout_rate)
    if pool_after == "dense_2":
        tensor = _dense(tensor, HIDDEN_UNITS, "dense_2", dropout_rate)
    return CyclicAveragePooling(name="cyclic_pooling")(tensor)


def rotated_images(inputs: dict, geometry, crop_size: int, normalisation: str, channels=None):
    """Raw stamp inputs -> the cropped, normalised, channel-selected stamps at four rotations
    (the part ALeRCE's and Deep-HiTS' classifiers share before their trunks)."""
    images = StampPreprocessing(
        crop_size, normalisation, geometry.channels, name="stamp_preprocessing"
    )(inputs["stamps"], inputs["stamp_mask"])
    images = ChannelSelection(
        geometry.channels if channels is None else channels,
        geometry.channels,
        name="channel_selection",
    )(images)
    return RotationStack(name="rotations")(images)


def build_stamp_classifier(
    *,
    class_names: Sequence[str],
    feature_stats: FeatureStats | None = None,
    crop_size: int = DEFAULT_CROP_SIZE,
    kernel_size: int = 3,
    channels: Sequence[str] | None = None,
    geometry: StampGeometry = ZTF,
    pool_after: str = "dense_1",
    dropout_rate: float = 0.5,
    normalisation: str = "minmax",
    model_version: str = f"stampnet-{__version__}",
    light_curve_units: int = 0,
    name: str = "stamp_classifier",
) -> keras.Model:
    """Builds ALeRCE's rotation-invariant stamp classifier (Carrasco-Davis et al. 2021).

    Args:
        class_names: output classes, in order.
        feature_stats: names and train statistics of the metadata features; None builds an
            images-only model without a "features" input.
        crop_size: side of the centred crop: 21 (ALeRCE), 41, 63, any side up to the stamp's.
        kernel_size: side of the 3x3-style convolutions (the first one is always 4x4).
        channels: stamp channels used, any subset of ``geometry.channels`` (None: all).
        geometry: size and channel names of the input stamps (the dataset card's; ZTF default).
        pool_after: "dense_1" (2020 model) or "dense_2" (2019 images-only model); see module doc.
        dropout_rate: dropout after each hidden dense layer in training (0 = none).
        normalisation: stamp normalisation of ``StampPreprocessing`` ("minmax" as ALeRCE).
        model_version: recorded in the output layer and in every ``stampnet classify`` row.
        light_curve_units: > 0 adds a recurrent branch over the alert's light-curve history
            (inputs "light_curve", "light_curve_mask"; ``stampnet.models.lightcurve``), joined
            with the stamps and features; 0 (default) is ALeRCE's model, unchanged.
        name: model name.

    Returns:
        A functional model: {"stamps", "stamp_mask"[, "features"][, "light_curve",
        "light_curve_mask"]} -> probabilities (B, C).
    """
    class_names = check_classifier_arguments(class_names, dropout_rate)
    center_crop_bounds(crop_size, geometry.size)
    if pool_after not in POOL_POSITIONS:
        raise ValueError(f"pool_after must be one of {POOL_POSITIONS}, received {pool_after!r}")
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be positive, received {kernel_size}")
    if feature_stats is not None and not feature_stats.names:
        feature_stats = None  # the "none" feature set

    inputs = stamp_inputs(geometry)
    stacked = rotated_images(inputs, geometry, crop_size, normalisation, channels)
    tensor = _image_trunk(stacked, kernel_size, dropout_rate, pool_after)

    if feature_stats is not None:
        inputs["features"] = keras.Input((len(feature_stats.names),), name="features")
        features = FeatureNormalization(feature_stats, name="feature_normalization")(
            inputs["features"]
        )
        features = keras.layers.BatchNormalization(
            epsilon=BATCHNORM_EPSILON, name="batchnorm_features"
        )(features)
        tensor = keras.layers.Concatenate(name="dense_with_features")([tensor, features])
    if light_curve_units:
        from stampnet.layers.lightcurve import light_curve_inputs
        from stampnet.models.lightcurve import light_curve_branch

        inputs.update(light_curve_inputs())
        branch = light_curve_branch(
            inputs["light_curve"], inputs["light_curve_mask"], light_curve_units
        )
        tensor = keras.layers.Concatenate(name="dense_with_light_curve")([tensor, branch])
    if pool_after == "dense_1":
        tensor = _dense(tensor, HIDDEN_UNITS, "dense_2", dropout_rate)
        tensor = _dense(tensor, HIDDEN_UNITS, "dense_3", dropout_rate)
    return classifier_model(inputs, tensor, class_names, model_version, name)
