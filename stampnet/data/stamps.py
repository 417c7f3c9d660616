"""Stacking the three cutouts of an alert into one fixed-size stamp with a validity mask.

ZTF cutouts are 63x63 pixels centred on the candidate, except near the edge of a CCD quadrant,
where the cutout is cut off by the image border (e.g. 48x63). Such stamps are padded back to 63x63
on the side where the CCD edge is, so the candidate stays at the centre pixel (31, 31), which is
what centre crops and rotation-invariant models assume. The side is decided from the candidate's
position on the quadrant image: ``xpos``/``ypos`` are 1-based pixel coordinates (SExtractor
convention) on a quadrant of ``QUADRANT_WIDTH`` x ``QUADRANT_HEIGHT`` pixels, and the cutout spans
``round(pos) - 1 +- 31`` in 0-based pixels, clipped to the image. Both facts were read off the 24
truncated alerts of the real sample, where this geometry predicts every truncated shape exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from stampnet.constants import NUM_CHANNELS, STAMP_SIZE

#: Size of a ZTF CCD quadrant image in pixels (NAXIS1 = x, NAXIS2 = y).
QUADRANT_WIDTH = 3072
QUADRANT_HEIGHT = 3080
#: Finite pixels are clipped to this magnitude: ZTF counts stay below ~1e7, and normalising
#: float32 stamps squares and subtracts pixel values (3969 squares of 1e15 still fit in float32,
#: while a -3.4e38 pixel made a standardised stamp NaN). Some real ZTF templates hold -3.4e38
#: (-FLT_MAX) blank pixels: they stay valid, as ALeRCE's graph saw them, so its published
#: probabilities are reproduced on those alerts too (clipped or not, min-max normalisation in
#: float32 gives the same stamp).
MAX_ABS_PIXEL = 1e15


class StampError(ValueError):
    """Cutouts that cannot be stacked into a valid stamp; the message says why."""


def edge_padding(
    length: int, position: float, image_size: int, size: int = STAMP_SIZE
) -> tuple[int, int]:
    """Pixels to add (before, after) along one axis to bring a cut-off cutout back to ``size``.

    Args:
        length: the cutout's length along this axis (<= size).
        position: the candidate's 1-based pixel coordinate along this axis (xpos or ypos).
        image_size: the quadrant image's size along this axis.
        size: the full stamp's side (ZTF: STAMP_SIZE).
    """
    missing = size - length
    if missing == 0:
        return 0, 0
    if position is None or not math.isfinite(position):
        raise StampError(
            f"stamp truncated to {length} pixels but the candidate position is missing, "
            "so the side of the CCD edge is unknown"
        )
    half = size // 2
    centre = round(position) - 1  # 0-based pixel holding the candidate
    before = max(0, half - centre)
    after = max(0, centre + half - (image_size - 1))
    if before + after == missing:
        return before, after
    # Position and shape disagree (another camera geometry?): pad on the side of the nearer edge.
    return (missing, 0) if position < image_size / 2 else (0, missing)


def _check_shapes(cutouts: Sequence[np.ndarray], num_channels: int, size: int) -> tuple[int, int]:
    if len(cutouts) != num_channels:
        raise StampError(f"expected {num_channels} cutouts, got {len(cutouts)}")
    shapes = [np.shape(cutout) for cutout in cutouts]
    if any(len(shape) != 2 for shape in shapes):
        raise StampError(f"cutouts must be 2-D images, got shapes {shapes}")
    if len(set(shapes)) != 1:
        raise StampError(f"cutouts have different shapes {shapes}; expected one shared shape")
    height, width = shapes[0]
    if not (0 < height <= size and 0 < width <= size):
        raise StampError(f"unexpected stamp shape {height}x{width}: expected at most {size}x{size}")
    return height, width


def stack_stamps(
    cutouts: Sequence[np.ndarray],
    xpos: float | None = None,
    ypos: float | None = None,
    *,
    num_channels: int = NUM_CHANNELS,
    size: int = STAMP_SIZE,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Stacks (science, template, difference) into a (63, 63, 3) stamp and its validity mask.

    Args:
        cutouts: three 2-D float arrays of one shared shape, indexed [y, x] as FITS stores them.
        xpos, ypos: the candidate's 1-based position on the quadrant; needed only for truncated
            stamps, to pad them on the side of the CCD edge.
        num_channels, size: how many cutouts and the full stamp's side; ZTF's by default (other
            data read through ``stampnet.data.own`` declares its own).

    Returns:
        ``(stamps, mask, original_shape)``: float32 stamps with invalid pixels (NaN, inf,
        padding) set to 0.0 and finite ones clipped to +-``MAX_ABS_PIXEL``, a bool mask that is
        True on valid pixels, and the cutouts' shape.

    Raises:
        StampError: wrong number of cutouts, not 2-D, mismatched or too large shapes, a truncated
            stamp without a candidate position, or a channel with no valid pixel.
    """
    height, width = _check_shapes(cutouts, num_channels, size)
    stacked = np.stack(cutouts, axis=-1).astype(np.float32, copy=False)
    valid = np.isfinite(stacked)
    if not valid.all():
        stacked[~valid] = 0.0
        empty = [index for index in range(num_channels) if not valid[..., index].any()]
        if empty:
            raise StampError(f"channel(s) {empty} hold no valid (finite) pixel")
    np.clip(stacked, -MAX_ABS_PIXEL, MAX_ABS_PIXEL, out=stacked)
    if (height, width) == (size, size):
        return stacked, valid, (height, width)

    top, bottom = edge_padding(height, ypos, QUADRANT_HEIGHT, size)
    left, right = edge_padding(width, xpos, QUADRANT_WIDTH, size)
    stamps = np.zeros((size, size, num_channels), dtype=np.float32)
    mask = np.zeros((size, size, num_channels), dtype=bool)
    stamps[top : size - bottom, left : size - right] = stacked
    mask[top : size - bottom, left : size - right] = valid
    return stamps, mask, (height, width)


def fit_to_shape(
    stamps: np.ndarray, mask: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Centre-crops or zero-pads (H, W, C) stamps and their mask to a declared (height, width).

    Surveys whose cutouts vary in size (Rubin/LSST: 30 to 102 pixels) are stored at one declared
    size: larger stamps lose their borders, smaller ones gain invalid (mask False) borders, and
    the candidate stays at the centre pixel (size // 2) either way.
    """
    out_stamps = np.zeros((height, width, stamps.shape[-1]), np.float32)
    out_mask = np.zeros((height, width, stamps.shape[-1]), bool)
    spans = []
    for have, want in ((stamps.shape[0], height), (stamps.shape[1], width)):
        take = min(have, want)
        source_start = have // 2 - take // 2 if have > want else 0
        target_start = want // 2 - take // 2 if want > have else 0
        spans.append(
            (slice(source_start, source_start + take), slice(target_start, target_start + take))
        )
    (rows_in, rows_out), (cols_in, cols_out) = spans
    out_stamps[rows_out, cols_out] = stamps[rows_in, cols_in]
    out_mask[rows_out, cols_out] = mask[rows_in, cols_in]
    return out_stamps, out_mask
