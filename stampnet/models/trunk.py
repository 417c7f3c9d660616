"""The convolutional trunk that every stampnet stamp model shares.

It is the Deep-HiTS trunk (Cabrera-Vives et al. 2017) as ALeRCE's stamp classifier uses it
(Carrasco-Davis et al. 2021): zero-pad 3 (a 21x21 crop becomes 27x27, so the 4x4 valid convolution
keeps 24x24), Conv 4x4 valid, Conv kxk, MaxPool, 3x Conv kxk, MaxPool, Flatten. Layer names follow
ALeRCE's graph (``conv_1`` ... ``conv_5``, ``down_1``, ``down_2``) and every ReLU is a layer of its
own, so imported TF1 weights and intermediate tensors map one to one, and weights move between the
stamp classifier, the autoencoders and the sequence models by name.
"""

from __future__ import annotations

import keras

#: The layers of the trunk that hold weights (``train.py --freeze trunk`` keeps them fixed).
TRUNK_LAYERS = ("conv_1", "conv_2", "conv_3", "conv_4", "conv_5")


def conv_relu(tensor, filters, kernel_size, padding, name):
    """Conv2D then a separate ReLU layer (``<name>_relu``), as ALeRCE's BiasAdd and Relu."""
    tensor = keras.layers.Conv2D(filters, kernel_size, padding=padding, name=name)(tensor)
    return keras.layers.ReLU(name=f"{name}_relu")(tensor)


def apply_conv_trunk(images, *, conv_filters=(32, 64), kernel_size=3):
    """Applies the trunk to images (B, H, W, C) and returns the flat features.

    Args:
        conv_filters: widths of the first two and of the last three convolutions; ALeRCE uses
            (32, 64), smaller widths keep test models tiny.
        kernel_size: side of every convolution but the first (always 4x4).
    """
    if len(conv_filters) != 2 or min(conv_filters) < 1:
        raise ValueError(f"conv_filters must be (first, second) > 0, received {conv_filters!r}")
    first, second = conv_filters
    tensor = keras.layers.ZeroPadding2D(3, name="padding")(images)
    tensor = conv_relu(tensor, first, 4, "valid", "conv_1")
    tensor = conv_relu(tensor, first, kernel_size, "same", "conv_2")
    tensor = keras.layers.MaxPooling2D(2, name="down_1")(tensor)
    for name in ("conv_3", "conv_4", "conv_5"):
        tensor = conv_relu(tensor, second, kernel_size, "same", name)
    tensor = keras.layers.MaxPooling2D(2, name="down_2")(tensor)
    return keras.layers.Flatten(name="flatten")(tensor)  # row-major (H, W, C), as ALeRCE
