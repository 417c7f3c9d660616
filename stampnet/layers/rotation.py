"""Rotation invariance by stacking the four right-angle rotations and pooling over them.

Dieleman, Willett & Dambre (2015) and, for alert stamps, Reyes et al. (2018) and Carrasco-Davis et
al. (2021, the ALeRCE stamp classifier): a sky stamp has no preferred orientation, so the network
sees every image at 0, 90, 180 and 270 degrees through one shared trunk and averages the four
results ("cyclic average pooling"). Rotating the input only permutes the four copies, so the
pooled output is invariant to it up to floating-point summation order.

The copies are stacked along the batch axis, in ALeRCE's order (all rotation-0 images, then all
90-degree ones, ...), so that every trunk layer runs once on a batch of 4B images and its outputs
compare row for row with ALeRCE's graph.
"""

from __future__ import annotations

import math

import keras
from keras import ops

NUM_ROTATIONS = 4


def rot90(images, k: int):
    """``np.rot90(images, k, axes=(1, 2))`` for a batch (B, H, W, C): counter-clockwise turns."""
    k = k % NUM_ROTATIONS
    if k == 0:
        return images
    if k == 2:
        return ops.flip(ops.flip(images, axis=1), axis=2)
    transposed = ops.transpose(images, (0, 2, 1, 3))
    # numpy: k=1 flips the new rows (axis 1) of the transpose, k=3 its new columns (axis 2).
    return ops.flip(transposed, axis=1 if k == 1 else 2)


@keras.saving.register_keras_serializable(package="stampnet")
class RotationStack(keras.layers.Layer):
    """Stacks a batch of square images with its 90, 180 and 270 degree rotations: (B,H,W,C) ->
    (4B,H,W,C), rows [kB:(k+1)B] holding ``np.rot90(images, k, axes=(1, 2))``.

    Paper: Carrasco-Davis et al. (2021), "Alert classification for the ALeRCE broker system: the
    real-time stamp classifier", Sect. 4 (after Dieleman et al. 2015). Pair with
    ``CyclicAveragePooling``, which undoes the stacking.

    Example:
        >>> stacked = RotationStack()(images)  # (4B, 21, 21, 3)
        >>> pooled = CyclicAveragePooling()(trunk(stacked))  # (B, D)
    """

    def call(self, images):
        if images.shape[1] is not None and images.shape[1] != images.shape[2]:
            raise ValueError(
                f"RotationStack needs square images, received shape {tuple(images.shape)}"
            )
        return ops.concatenate([rot90(images, k) for k in range(NUM_ROTATIONS)], axis=0)

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else NUM_ROTATIONS * input_shape[0]
        return (batch, *input_shape[1:])


@keras.saving.register_keras_serializable(package="stampnet")
class CyclicAveragePooling(keras.layers.Layer):
    """Averages the four rotated copies stacked by ``RotationStack``: (4B, ...) -> (B, ...).

    ALeRCE's ``cyclic_avg_pool``: reshape to (4, B, ...) and take the mean over the first axis.

    Example:
        >>> pooled = CyclicAveragePooling()(dense_features)  # (4B, 64) -> (B, 64)
    """

    def call(self, inputs):
        copies = ops.reshape(inputs, (NUM_ROTATIONS, -1, *inputs.shape[1:]))
        return ops.mean(copies, axis=0)

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else input_shape[0] // NUM_ROTATIONS
        return (batch, *input_shape[1:])


@keras.saving.register_keras_serializable(package="stampnet")
class CyclicConcatenation(keras.layers.Layer):
    """Joins the four rotated copies stacked by ``RotationStack`` side by side: (4B, D) ->
    (B, 4D), the features of rotation 0 first, then 90, 180 and 270 degrees.

    Deep-HiTS (Cabrera-Vives et al. 2017, Sect. 3) concatenates the rotations' features before
    its dense layers instead of averaging them: the dense layers then see every orientation at
    once, and the model is not exactly rotation invariant (a rotation permutes the blocks).

    Example:
        >>> joined = CyclicConcatenation()(flat_features)  # (4B, 2304) -> (B, 9216)
    """

    def call(self, inputs):
        copies = ops.reshape(inputs, (NUM_ROTATIONS, -1, *inputs.shape[1:]))
        copies = ops.moveaxis(copies, 0, 1)  # (B, 4, ...)
        return ops.reshape(copies, (-1, NUM_ROTATIONS * math.prod(inputs.shape[1:])))

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else input_shape[0] // NUM_ROTATIONS
        return (batch, NUM_ROTATIONS * math.prod(input_shape[1:]))
