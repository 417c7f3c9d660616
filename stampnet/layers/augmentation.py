"""Training-time augmentation of stamps and their validity masks, as a batched Keras layer.

Carrasco-Davis et al. (2021) rotate stamps by multiples of 90 degrees (the sky has no preferred
orientation); Neira et al. (2024) improve on it with flips, small shifts and "varying image
sizes" (random crops). Every geometric transform here is one pixel re-indexing: for each output
pixel the layer computes where it comes from, gathers it, and marks it invalid (mask 0, value 0)
when it comes from outside the stamp or falls outside the random crop. So the stamps and the mask
always move together, the three channels share one transform, and a sequence (B, T, H, W, C) gets
the same transform at every time step, a new one per sample.
"""

from __future__ import annotations

import keras
from keras import ops

#: Median absolute deviation -> standard deviation for Gaussian noise.
MAD_TO_SIGMA = 1.4826


@keras.saving.register_keras_serializable(package="stampnet")
class StampAugmentation(keras.layers.Layer):
    """Random rot90, flips, integer shifts, centred crops and noise of (stamps, stamp_mask).

    Active only when called with ``training=True``; otherwise the inputs come back unchanged, so
    the layer can stay inside a model that is evaluated or saved (exports should leave it out).

    Args:
        rotate: random multiples of 90 degrees (Carrasco-Davis et al. 2021).
        flip: random horizontal and vertical flips.
        max_shift: shifts drawn uniformly in [-max_shift, max_shift] pixels per axis; the
            uncovered border is zero with mask 0.
        min_crop_size: when set, pixels outside a centred square of random side in
            [min_crop_size, H] are invalidated (Neira et al. 2024, "varying image sizes").
        noise_level: standard deviation of added Gaussian noise, in units of each stamp's robust
            sigma (1.4826 x median absolute deviation of its valid pixels); 0 disables it.
        seed: seed of the layer's ``keras.random.SeedGenerator``.

    Example:
        >>> augment = StampAugmentation(max_shift=2, min_crop_size=41, seed=0)
        >>> stamps, mask = augment(stamps, stamp_mask, training=True)
    """

    def __init__(
        self,
        rotate: bool = True,
        flip: bool = True,
        max_shift: int = 2,
        min_crop_size: int | None = None,
        noise_level: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        # float32 under mixed_float16 too: it moves raw stamps, which overflow float16.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if int(max_shift) < 0:
            raise ValueError(f"max_shift must be >= 0, received {max_shift}")
        if min_crop_size is not None and int(min_crop_size) < 1:
            raise ValueError(f"min_crop_size must be >= 1 or None, received {min_crop_size}")
        if float(noise_level) < 0:
            raise ValueError(f"noise_level must be >= 0, received {noise_level}")
        self.rotate = bool(rotate)
        self.flip = bool(flip)
        self.max_shift = int(max_shift)
        self.min_crop_size = None if min_crop_size is None else int(min_crop_size)
        self.noise_level = float(noise_level)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, stamps, stamp_mask=None, training=None):
        if stamp_mask is None:
            stamp_mask = ops.ones_like(stamps)
        if not training:
            return stamps, stamp_mask
        images, mask = _to_channels_last(stamps), _to_channels_last(stamp_mask)
        size = images.shape[1]
        if size is None or images.shape[2] != size:
            raise ValueError(f"StampAugmentation needs square stamps, received {stamps.shape}")
        batch = ops.shape(images)[0]

        def draw(low, high):
            return keras.random.randint((batch,), low, high, seed=self.seed_generator)

        zeros = ops.zeros((batch,), "int32")
        rotations = draw(0, 4) if self.rotate else zeros
        flips_up = draw(0, 2) if self.flip else zeros
        flips_left = draw(0, 2) if self.flip else zeros
        shifts = (
            (draw(-self.max_shift, self.max_shift + 1), draw(-self.max_shift, self.max_shift + 1))
            if self.max_shift
            else (zeros, zeros)
        )
        low = min(self.min_crop_size or size, size)
        crops = draw(low, size + 1) if low < size else zeros + size
        if self.noise_level > 0:
            images = self._add_noise(images, mask)
        images, mask = transform(images, mask, rotations, flips_up, flips_left, shifts, crops)
        return (
            _from_channels_last(images, ops.shape(stamps)),
            ops.cast(_from_channels_last(mask, ops.shape(stamps)), stamp_mask.dtype),
        )

    def _add_noise(self, images, mask):
        sigma = robust_sigma(images, mask)
        noise = keras.random.normal(ops.shape(images), seed=self.seed_generator)
        valid = ops.cast(mask, "bool")
        return ops.where(valid, images + self.noise_level * sigma * noise, images)

    def compute_output_shape(self, stamps_shape, stamp_mask_shape=None):
        return stamps_shape, stamps_shape

    def get_config(self):
        return {
            **super().get_config(),
            "rotate": self.rotate,
            "flip": self.flip,
            "max_shift": self.max_shift,
            "min_crop_size": self.min_crop_size,
            "noise_level": self.noise_level,
            "seed": self.seed,
        }


def _to_channels_last(tensor):
    """(B, H, W, C) as is; (B, T, H, W, C) -> (B, H, W, T*C), so one transform covers all T."""
    if len(tensor.shape) == 4:
        return tensor
    if len(tensor.shape) != 5:
        raise ValueError(f"expected stamps (B,H,W,C) or (B,T,H,W,C), received {tensor.shape}")
    _, steps, height, width, channels = tensor.shape
    moved = ops.transpose(tensor, (0, 2, 3, 1, 4))
    return ops.reshape(moved, (-1, height, width, steps * channels))


def _from_channels_last(tensor, shape):
    if len(shape) == 4:
        return tensor
    batch, steps, height, width, channels = shape
    split = ops.reshape(tensor, (batch, height, width, steps, channels))
    return ops.transpose(split, (0, 3, 1, 2, 4))


def robust_sigma(images, mask):
    """1.4826 x MAD of each image's valid pixels, per channel: shape (B, 1, 1, C)."""
    valid = ops.cast(mask, "bool")
    flat_valid = ops.reshape(valid, (ops.shape(images)[0], -1, images.shape[-1]))
    count = ops.sum(ops.cast(flat_valid, "int32"), axis=1, keepdims=True)
    middle = ops.maximum(count - 1, 0) // 2

    def valid_median(values):
        flat = ops.reshape(values, ops.shape(flat_valid))
        ordered = ops.sort(ops.where(flat_valid, flat, 3.0e38), axis=1)
        return ops.take_along_axis(ordered, middle, axis=1)[:, :, None, :]

    median = valid_median(images)  # (B, 1, 1, C)
    deviation = valid_median(ops.abs(images - median))
    return ops.where(count[:, :, None, :] > 0, MAD_TO_SIGMA * deviation, 0.0)


def transform(images, mask, rotations, flips_up, flips_left, shifts, crop_sizes):
    """Applies per-sample rot90 (counter-clockwise, as ``np.rot90``), flips, shifts and centred
    crops, in that order, to square images (B, N, N, C) and their masks.

    Args:
        rotations: (B,) int, quarter turns; flips_up, flips_left: (B,) int 0/1 (up-down and
            left-right flips); shifts: ((B,), (B,)) int row and column shifts; crop_sizes: (B,)
            int, side of the kept centred square.
    """
    size = images.shape[1]
    last = size - 1
    rows = ops.arange(size, dtype="int32")[None, :, None]
    cols = ops.arange(size, dtype="int32")[None, None, :]

    def per_sample(value):
        return ops.cast(value, "int32")[:, None, None]

    crop = per_sample(crop_sizes)
    start = (size - crop) // 2
    inside_crop = (rows >= start) & (rows < start + crop) & (cols >= start) & (cols < start + crop)
    # Walk back from each output pixel to its source: undo the shift, the flips, the rotation.
    row, col = rows - per_sample(shifts[0]), cols - per_sample(shifts[1])
    in_bounds = (row >= 0) & (row <= last) & (col >= 0) & (col <= last)
    row = ops.where(per_sample(flips_up) == 1, last - row, row)
    col = ops.where(per_sample(flips_left) == 1, last - col, col)
    turns = per_sample(rotations) % 4
    # np.rot90 by k: out[i, j] = in[j, N-1-i] (k=1), in[N-1-i, N-1-j] (k=2), in[N-1-j, i] (k=3).
    source_row = ops.where(
        turns == 1, col, ops.where(turns == 2, last - row, ops.where(turns == 3, last - col, row))
    )
    source_col = ops.where(
        turns == 1, last - row, ops.where(turns == 2, last - col, ops.where(turns == 3, row, col))
    )
    keep = in_bounds & inside_crop
    index = ops.clip(source_row, 0, last) * size + ops.clip(source_col, 0, last)
    batch, channels = ops.shape(images)[0], images.shape[-1]
    index = ops.broadcast_to(
        ops.reshape(index, (batch, size * size, 1)), (batch, size * size, channels)
    )

    def gather(values):
        flat = ops.reshape(values, (batch, size * size, channels))
        return ops.reshape(ops.take_along_axis(flat, index, axis=1), ops.shape(values))

    keep = ops.cast(keep, "bool")[..., None]
    new_mask = ops.cast(gather(mask), "bool") & keep
    new_images = ops.where(new_mask, gather(images), ops.zeros_like(images))
    return new_images, ops.cast(new_mask, mask.dtype)
