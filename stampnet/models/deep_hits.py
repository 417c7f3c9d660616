"""Deep-HiTS: the rotation-aware real/bogus classifier of Cabrera-Vives et al. (2017).

The first convolutional network for image differences of a transient survey (HiTS, 21x21 stamps
of template, science, difference and SNR-difference). Every stamp is seen at the four
right-angle rotations through one trunk: zero-pad 3, Conv 4x4 32 valid, Conv 3x3 32, max-pool,
three Conv 3x3 64, max-pool; the four rotations' flat features are CONCATENATED (not averaged,
as the later ALeRCE stamp classifier does), then dense 64, dense 64, dropout 0.5 and softmax.

The trunk is ``stampnet.models.trunk`` with ALeRCE's layer names (``conv_1`` ... ``conv_5``),
which ALeRCE took from Deep-HiTS: weights of an ALeRCE import or of a stamp classifier run move
into it by name (``train.py --model deep_hits --init RUN``) when the channels match. As every
stampnet model it takes raw stamps and a validity mask of the data's geometry and does its own
crop and normalisation (``StampPreprocessing``).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from stampnet import __version__
from stampnet.geometry import StampGeometry
from stampnet.layers.preprocessing import center_crop_bounds
from stampnet.layers.rotation import CyclicConcatenation
from stampnet.models.stamp_classifier import (
    check_classifier_arguments,
    classifier_model,
    rotated_images,
    stamp_inputs,
)
from stampnet.models.trunk import apply_conv_trunk

#: The Deep-HiTS database: 21x21 stamps of four channels.
DEEP_HITS_GEOMETRY = StampGeometry(21, 21, ("template", "science", "difference", "snr_difference"))


def build_deep_hits(
    *,
    class_names: Sequence[str],
    geometry: StampGeometry = DEEP_HITS_GEOMETRY,
    channels: Sequence[str] | None = None,
    crop_size: int = 21,
    normalisation: str = "minmax",
    conv_filters: tuple[int, int] = (32, 64),
    dense_units: int = 64,
    dropout_rate: float = 0.5,
    model_version: str = f"stampnet-{__version__}",
    name: str = "deep_hits",
) -> keras.Model:
    """Builds the Deep-HiTS classifier (Cabrera-Vives et al. 2017, Fig. 3).

    Args:
        class_names: output classes in order (Deep-HiTS: bogus, real).
        geometry: size and channel names of the input stamps (the dataset card's).
        channels: the channels used, a subset of ``geometry.channels`` (None: all).
        crop_size: side of the centred crop (21, the Deep-HiTS stamp; at most the stamp's).
        normalisation: per-stamp normalisation of ``StampPreprocessing``.
        conv_filters: widths of the first two and of the last three convolutions (paper: 32, 64).
        dense_units: width of the two dense layers (paper: 64).
        dropout_rate: dropout before the softmax in training (paper: 0.5).
        model_version: recorded in the output layer and in ``stampnet classify`` rows.
        name: model name.

    Returns:
        A functional model {"stamps", "stamp_mask"} -> probabilities (B, C).

    Example:
        >>> model = build_deep_hits(class_names=("bogus", "real"))
        >>> model({"stamps": stamps, "stamp_mask": mask})  # (B, 2)
    """
    class_names = check_classifier_arguments(class_names, dropout_rate)
    if dense_units < 1:
        raise ValueError(f"dense_units must be positive, received {dense_units}")
    center_crop_bounds(crop_size, geometry.size)
    inputs = stamp_inputs(geometry)
    stacked = rotated_images(inputs, geometry, crop_size, normalisation, channels)
    features = apply_conv_trunk(stacked, conv_filters=tuple(conv_filters), kernel_size=3)
    tensor = CyclicConcatenation(name="cyclic_concatenation")(features)
    for index in (1, 2):
        tensor = keras.layers.Dense(dense_units, name=f"dense_{index}")(tensor)
        tensor = keras.layers.ReLU(name=f"dense_{index}_relu")(tensor)
    if dropout_rate:
        tensor = keras.layers.Dropout(dropout_rate, name="dropout")(tensor)
    return classifier_model(inputs, tensor, class_names, model_version, name)
